#!/usr/bin/env bash
# lddtree.sh: pax-utils' lddtree (the Python one, 1.3.x), all programs in one call:
#   /usr/bin/python3 /usr/bin/lddtree --copy-to-tree DEST --copy-non-elfs PROGRAM...
# lddtree reads the ELF headers itself (no ldd) and copies each file's
# contents to the path it was found at: symlinks are dereferenced, never kept
# (it has no option to keep them).  It runs with the system python3, which
# has pyelftools (a pyenv python3 earlier on PATH may not).
# Usage: lddtree.sh LIST_FILE DEST_DIR
set -euo pipefail
list=$1 dest=$2

mapfile -t programs < <(grep -v '^$' "$list")
# Exit 1 can mean only that some input was skipped with a warning; the tool
# ran if it copied anything.
/usr/bin/python3 /usr/bin/lddtree --copy-to-tree "$dest" --copy-non-elfs "${programs[@]}" ||
    echo "lddtree.sh: lddtree exited $?" >&2
[[ -n $(ls -A "$dest" 2>/dev/null) ]]
