#!/usr/bin/env bash
# ldd-each.sh: resolution only, the classic way: one `ldd` per program, as
# the classic recipe does before copying.  Output is discarded.
#   ldd PROGRAM > /dev/null      (for each program)
# Usage: ldd-each.sh LIST_FILE [DEST_DIR, ignored]
set -euo pipefail
list=$1

while IFS= read -r prog; do
    [[ -n $prog ]] || continue
    ldd "$prog" > /dev/null 2>&1 || true
done < "$list"
