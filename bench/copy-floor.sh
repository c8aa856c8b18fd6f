#!/usr/bin/env bash
# copy-floor.sh: the lower bound of copying: exactly the listed paths
# (regular files and symlinks, as copies) with their parent directories:
#   mkdir -p DEST/<each parent>    (xargs batches)
#   xargs -d '\n' cp -a --parents -t DEST      (one cp per xargs batch)
# The parents are made first because coreutils 9.1 (Debian 12) fails on the
# directories `cp --parents --preserve=mode` creates ("cp: 'usr/bin': No such
# file or directory", exit 1; see rear/rear#2972).
# Usage: copy-floor.sh LIST_FILE DEST_DIR
set -euo pipefail
list=$1 dest=$2

mkdir -p "$dest"
sed -n 's|^/\(.*\)/[^/]*$|\1|p' "$list" | sort -u | (cd "$dest" && xargs -r -d '\n' mkdir -p --)
grep -v '^$' "$list" | xargs -r -d '\n' cp -a --parents -t "$dest"
