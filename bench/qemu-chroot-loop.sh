#!/usr/bin/env bash
# qemu-chroot-loop.sh: the floor of a foreign smoke run: each program's
# --version run in the tree through qemu-user, named explicitly (no
# binfmt_misc), one process after the other, with nothing else (no
# namespaces, no limits, no run on the sysroot to compare with):
#   timeout 10 chroot TREE EMULATOR PROGRAM --version </dev/null >/dev/null 2>&1   (for each program)
# EMULATOR is the emulator's path inside TREE (a static qemu-ARCH-static
# copied into a hard-linked copy of the tree). As chroot-loop.sh, TREE is
# made read-only with a bind mount in a mount namespace of its own first.
# Needs root (chroot, mount).
# Usage: qemu-chroot-loop.sh TREE LIST_FILE EMULATOR [SECONDS, default 10]
set -uo pipefail

if [[ ${1:-} != --read-only ]]; then
    exec unshare --mount --propagation private -- "$0" --read-only "$@"
fi
shift
tree=$1 list=$2 emulator=$3 seconds=${4:-10}
mount --bind -o ro "$tree" "$tree" || exit 1

while IFS= read -r prog; do
    [[ -n $prog ]] || continue
    timeout "$seconds" chroot "$tree" "$emulator" "$prog" --version </dev/null >/dev/null 2>&1
done < "$list"
exit 0
