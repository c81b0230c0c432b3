#!/usr/bin/env bash
# Installs (as root) or names (otherwise) the Debian packages vmmfs needs to
# build, test and run. Safe to run again: it does nothing when all are there.
set -euo pipefail

need=(gcc make autoconf automake libtool pkg-config libfuse3-dev fuse3 clang libclang-rt-14-dev
      libpci-dev pciutils libcunit1-dev python3 xxd)
missing=()
for p in "${need[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing+=("$p")
	fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
	echo "vmmfs: installing missing Debian packages: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	echo "vmmfs: packages installed."
else
	echo "vmmfs: these Debian packages are missing: ${missing[*]}" >&2
	echo "vmmfs: install them with:  sudo apt-get install ${missing[*]}" >&2
	echo "vmmfs: (or run this command again as root and it installs them itself)" >&2
	exit 1
fi
