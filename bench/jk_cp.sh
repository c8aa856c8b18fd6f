#!/usr/bin/env bash
# jk_cp.sh: jailkit's jk_cp, all programs in one call:
#   jk_cp -j DEST -o -s PROGRAM...
# jk_cp always copies the libraries (one `ldd` per program) and recreates
# symlink chains and symlinked directories as they are; -o keeps owner and
# group, -s keeps setuid/setgid bits.  It ends with `ldconfig -r DEST`.
# Needs root, and refuses (exit 6) a DEST that is not root-owned or has a
# group- or world-writable parent, so DEST cannot be under /tmp.
# Usage: jk_cp.sh LIST_FILE DEST_DIR
set -euo pipefail
list=$1 dest=$2

mapfile -t programs < <(grep -v '^$' "$list")
mkdir -p "$dest"
jk_cp -j "$dest" -o -s "${programs[@]}"
