#!/bin/sh
# SPDX-License-Identifier: MIT
#
# A short tour of vmmfs: mounts a simulated GPU in a temporary directory,
# maps VRAM with echo, looks at the mapping, the page tables and a
# translation, writes and reads memory through the GPU's page tables,
# unmaps with rm, shows the counters and the log, and unmounts.
#
#   sh examples/tour.sh [PATH/TO/vmmfs]   # default: $VMMFS, ./vmmfs, or vmmfs from PATH
#
# Needs /dev/fuse and fusermount3 (apt-get install fuse3); run as root or as
# a user allowed to mount FUSE file systems.
set -eu

VMMFS=${1:-${VMMFS:-}}
if [ -z "$VMMFS" ]; then
	if [ -x ./vmmfs ]; then
		VMMFS=./vmmfs
	elif command -v vmmfs >/dev/null 2>&1; then
		VMMFS=$(command -v vmmfs)
	else
		echo "tour.sh: no vmmfs binary: build it (make), or give its path: tour.sh PATH/TO/vmmfs" >&2
		exit 1
	fi
fi
case $VMMFS in /*) ;; *) VMMFS=$(pwd)/$VMMFS ;; esac

dir=$(mktemp -d "${TMPDIR:-/tmp}/vmmfs-tour.XXXXXX")
mnt=$dir/gpu
mkdir "$mnt"
pid=

cleanup() {
	cd /
	if grep -q " $mnt fuse" /proc/mounts 2>/dev/null; then
		fusermount3 -u "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
	fi
	[ -n "$pid" ] && wait "$pid" 2>/dev/null || true
	rm -rf "$dir"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

if [ -t 1 ]; then bold=$(printf '\033[1m'); plain=$(printf '\033[0m'); else bold=; plain=; fi
# step "why": one line saying what the next commands show
step() { printf '\n%s# %s%s\n' "$bold" "$1" "$plain"; }
# run 'command': prints it as typed, then runs it in the mount
run() { printf '$ %s\n' "$1"; sh -c "$1"; }

step "Mount a simulated GA102 (Ampere, MMU v2) with 1 GiB of VRAM on $mnt"
printf '$ vmmfs --sim=ga102 --vram-size=1G %s\n' "$mnt"
"$VMMFS" -f --sim=ga102 --vram-size=1G "$mnt" 2>"$dir/vmmfs.stderr" &
pid=$!
i=0
until [ -e "$mnt/README" ]; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
		echo "tour.sh: vmmfs did not mount:" >&2
		cat "$dir/vmmfs.stderr" >&2
		exit 1
	fi
	sleep 0.1
done
cd "$mnt"

step "The mount: identity of the GPU, VRAM, one directory per address space"
run 'ls -F . gpu vas/0'
run 'head -n 20 gpu/chipset gpu/arch gpu/mmu_version gpu/va_bits'

step "Map VRAM pages 0x100-0x1ff (1 MiB) into address space 0; the VMM picks the VA"
run 'echo 0x100-0x1ff > vas/0/maps/buf'

step "The mapping file says where it is mapped, which pages and with which page sizes"
run 'cat vas/0/maps/buf'
va=$(awk '$1 == "va" { print $2 }' vas/0/maps/buf)

step "The page-table tree in VRAM: aligned runs use 64 KiB pages, one line per run"
run 'cat vas/0/pagetable'

step "Translate one VA: vmmfs's walk, then what the GPU's own MMU says"
run "cat vas/0/translate/$va"

step "Write through the GPU's page tables (mem: offset = GPU VA), read it back from VRAM"
run "printf 'hello, GPU' | dd of=vas/0/mem bs=1 seek=\$(($va)) conv=notrunc status=none"
run "dd if=vram/raw bs=1 skip=\$((0x100000)) count=10 status=none; echo"

step "A read-only mapping at a fixed VA: writing to it is refused (EACCES)"
run 'echo va=0x7f0000000 ro 0x400 0x402 > vas/0/maps/ro2 && cat vas/0/maps/ro2'
run "printf x | dd of=vas/0/mem bs=1 seek=\$((0x7f0000000)) conv=notrunc status=none || true"

step "A PFN beyond VRAM: the write itself fails and nothing is mapped"
run 'echo 0x99999999 > vas/0/maps/bad || true'
run 'ls vas/0/maps'

step "Fresh zeroed VRAM instead of PFNs, in a second address space"
run 'mkdir vas/gfx && echo alloc=2M > vas/gfx/maps/scratch && cat vas/gfx/maps/scratch'

step "Unmap: rm writes invalid entries and flushes the TLB once"
run 'rm vas/0/maps/buf vas/0/maps/ro2 vas/gfx/maps/scratch && rmdir vas/gfx'

step "What it cost: per address space and for the whole GPU (register accesses, TLB flushes)"
run 'cat vas/0/stats stats'

step "The log: every map, unmap and refusal, newest last"
run 'cat log'

step "Unmount: every mapping left is unmapped, the daemon exits"
cd /
printf '$ fusermount3 -u %s\n' "$mnt"
fusermount3 -u "$mnt"
wait "$pid"
pid=
echo "vmmfs exited with status 0"
