#!/usr/bin/env bash
# dracut-install.sh: dracut's installer, all programs in one call:
#   /usr/lib/dracut/dracut-install -D DEST -a -l PROGRAM...
# -a installs every SOURCE at its own path; -l also installs the libraries
# (one `ldd` per file) and shebang interpreters.  Symlink chains (made
# relative) and symlinked parent directories are recreated by default.
# Usage: dracut-install.sh LIST_FILE DEST_DIR
set -euo pipefail
list=$1 dest=$2

mapfile -t programs < <(grep -v '^$' "$list")
mkdir -p "$dest"
# A non-zero exit can mean only that some file could not be installed; the
# tool ran if it installed anything.
/usr/lib/dracut/dracut-install -D "$dest" -a -l "${programs[@]}" ||
    echo "dracut-install.sh: dracut-install exited $?" >&2
[[ -n $(ls -A "$dest") ]]
