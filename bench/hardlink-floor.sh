#!/usr/bin/env bash
# hardlink-floor.sh: the lower bound with hard links instead of copies:
# exactly the listed paths (regular files and symlinks, as hard links) with
# their parent directories:
#   mkdir -p DEST/<each parent>    (xargs batches)
#   xargs -d '\n' cp -al --parents -t DEST      (one cp per xargs batch)
# The parents are made first because coreutils 9.1 (Debian 12) fails on the
# directories `cp --parents --preserve=mode` creates ("cp: 'usr/bin': No such
# file or directory", exit 1; see rear/rear#2972).
# DEST must be on the same filesystem as the listed files.
# Usage: hardlink-floor.sh LIST_FILE DEST_DIR
set -euo pipefail
list=$1 dest=$2

mkdir -p "$dest"
sed -n 's|^/\(.*\)/[^/]*$|\1|p' "$list" | sort -u | (cd "$dest" && xargs -r -d '\n' mkdir -p --)
grep -v '^$' "$list" | xargs -r -d '\n' cp -al --parents -t "$dest"
