#!/usr/bin/env bash
# classic.sh: the classic shell recipe done right (one `ldd` per program).
# Creates the FHS skeleton, then for each program P and each absolute path F
# that `ldd P` prints (`lib => /path` and the bare interpreter line):
#   cp --parents -P F DEST
#   cp --parents -P "$(readlink -f F)" DEST     (only when F is a symlink)
# Each path is copied once.  "Done right" includes making bin, sbin, lib and
# lib64 the same symlinks into usr/ as on this merged-/usr host: with real
# directories there (the textbook `mkdir`), `readlink -f` lands in usr/lib,
# the copied /lib64/ld-linux-x86-64.so.2 and lib/*.so.N symlinks dangle, and
# every program fails.  Chains of two or more hops (libXaw.so.7,
# /usr/bin/vim via /etc/alternatives) still lose their middle links.
# Usage: classic.sh LIST_FILE DEST_DIR
set -euo pipefail
list=$1 dest=$2

mkdir -p "$dest"
(cd "$dest" && mkdir -p dev etc home proc root sys tmp usr/bin usr/lib usr/lib64 usr/sbin var &&
    ln -s usr/bin bin && ln -s usr/sbin sbin && ln -s usr/lib lib && ln -s usr/lib64 lib64)

declare -A seen=()
copy() {
    [[ -n ${seen[$1]:-} ]] && return 0
    seen[$1]=1
    cp --parents -P "$1" "$dest"
}

while IFS= read -r prog; do
    [[ -n $prog ]] || continue
    # `ldd` exits 1 on a static program: it then just has no libraries.
    libs=$(ldd "$prog" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }') || true
    for f in "$prog" $libs; do
        copy "$f"
        if [[ -L $f ]]; then copy "$(readlink -f "$f")"; fi
    done
done < "$list"
