#!/usr/bin/env bash
# lddtree-list.sh: resolution only with pax-utils' lddtree, all programs in
# one call, printing the flat list of files.  Output is discarded.
#   /usr/bin/python3 /usr/bin/lddtree -l PROGRAM... > /dev/null
# (the system python3, which has pyelftools; a pyenv python3 may not).
# Usage: lddtree-list.sh LIST_FILE [DEST_DIR, ignored]
set -euo pipefail
list=$1

mapfile -t programs < <(grep -v '^$' "$list")
/usr/bin/python3 /usr/bin/lddtree -l "${programs[@]}" > /dev/null 2>&1 || true
