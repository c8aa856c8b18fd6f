#!/usr/bin/env bash
# chroot-loop.sh: the floor of a smoke run: each program's --version run in
# the tree, one process after the other, with nothing else (no namespaces,
# no limits, no run on the host to compare with):
#   timeout 10 chroot TREE PROGRAM --version </dev/null >/dev/null 2>&1   (for each program)
# An exit status other than 0 is not a failure of the loop.  With SECONDS
# given as 0, `timeout` is left out (one process fewer per program; only for
# lists without a program that hangs).
# A plain chroot lets programs write into the tree (`apt-cdrom --version`
# creates TREE/dev/null as a regular file), so the loop first makes TREE
# read-only with a bind mount in a mount namespace of its own: one
# `unshare` and one `mount` for the whole loop, nothing per program, and
# the host's mount table does not change.
# Needs root (chroot, mount).
# Usage: chroot-loop.sh TREE LIST_FILE [SECONDS, default 10]
set -uo pipefail

if [[ ${1:-} != --read-only ]]; then
    exec unshare --mount --propagation private -- "$0" --read-only "$@"
fi
shift
tree=$1 list=$2 seconds=${3:-10}
mount --bind -o ro "$tree" "$tree" || exit 1

while IFS= read -r prog; do
    [[ -n $prog ]] || continue
    if [[ $seconds == 0 ]]; then
        chroot "$tree" "$prog" --version </dev/null >/dev/null 2>&1
    else
        timeout "$seconds" chroot "$tree" "$prog" --version </dev/null >/dev/null 2>&1
    fi
done < "$list"
exit 0
