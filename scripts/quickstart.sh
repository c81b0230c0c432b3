#!/usr/bin/env bash
# Builds vmmfs and takes a short tour of a simulated GPU mounted as files.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
bash scripts/deps.sh
if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ]; then
	autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
fi
mkdir -p build
cd build
[ -f Makefile ] || "$top/configure" -q CFLAGS="-O2 -g" 2> >(grep -v "cannot remove 'core'" >&2)
make -j"$(nproc)" >/dev/null
echo "vmmfs built in $top/build"
echo
exec bash "$top/examples/tour.sh" "$top/build/vmmfs"
