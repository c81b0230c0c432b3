#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the seed corpora tests/fuzz/corpus_mapfile/ and tests/fuzz/corpus_vmm/.

The seeds are small hand-made inputs that reach the interesting paths at
once (see the input layouts at the top of fuzz_mapfile.c and fuzz_vmm.c);
the fuzzer mutates them from there. The files are committed; run this
script only to change them:  python3 tests/fuzz/mkcorpus.py
With VMMFS_FUZZ_TRACE=1, tests/test_fuzz's replay (or a libFuzzer build run
on one file) prints what a VMM seed does, step by step.
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

# ---- mapping-file seeds ------------------------------------------------------
# byte 0: VRAM size (low nibble) and VA size (high nibble) indices:
VRAM = {0: 0, 1: 1, 0x4000: 6, 0x10000: 7, 0x100000: 8, 0xffffff: 9, 0x1000000: 10,
        1 << 28: 11, 1 << 36: 12, 1 << 52: 13, 2**64 - 1: 15}
VA = {1 << 49: 0, 1 << 57: 1, 1 << 32: 2, 1 << 21: 3, 4096: 4, 0: 5, 2**64 - 4096: 7}


def mapfile(text, vram=0x100000, va=1 << 49, pieces=(), bytewise=False):
    if isinstance(text, str):
        text = text.encode("latin-1")
    head = bytes([VRAM[vram] | VA[va] << 4, len(pieces) | (0x10 if bytewise else 0)])
    return head + bytes(pieces) + text


MAPFILE_SEEDS = {
    "range": mapfile("0x100-0x1ff\n"),
    "options": mapfile("va=0x7f0000000 ro 0x400 0x402\n"),
    "alloc-2m": mapfile("alloc=2M\n"),
    "alloc-suffixes": mapfile("alloc=64k"),
    "alloc-hex": mapfile("alloc=0x10000 rw"),
    "alloc-too-big": mapfile("alloc=1T\n", vram=0x4000),
    "alloc-zero": mapfile("alloc=0K"),
    "alloc-overflow": mapfile("alloc=17179869184T"),
    "comments": mapfile("# map these\n0x10, 0x11,0x12 # three\n0x13\n#end"),
    "merge-decimal-hex": mapfile("16 0x11 18,19\t20"),
    "singles-hex": mapfile(" ".join("0x%x" % i for i in range(0x200, 0x300)) + "\n"),
    "singles-decimal": mapfile(",".join(str(i) for i in range(1000, 1300, 3))),
    "singles-long-hex": mapfile("0x12345678 0x123456789 0xABCDEF01 0xabcdef 0x0000000000000001\n",
                                vram=1 << 52),
    "many-runs": mapfile("\n".join("0x%x" % (i * 0x10) for i in range(300))),
    "va-range-inclusive": mapfile("va=0x100000-0x1fffff 1 2 3"),
    "va-range-exclusive": mapfile("va=0x100000-0x200000 rw 5-9"),
    "va-range-top": mapfile("va=0x1000-0x1ffffffffffff 5", va=1 << 49),
    "va-range-near-wrap": mapfile("va=0x1000-0xfffffffffffff000 5", va=2**64 - 4096),
    "va-beyond": mapfile("va=0x2000000000000 1"),
    "va-unaligned": mapfile("va=0x1001 1"),
    "va-twice": mapfile("va=0x1000 va=0x2000 1"),
    "ro-rw": mapfile("ro 1 rw"),
    "backwards": mapfile("0x10-0x5"),
    "bad-hex": mapfile("0xg"),
    "too-large": mapfile("99999999999999999999 0x10000000000000000"),
    "limits-64bit": mapfile("0xffffffffffffffff 18446744073709551615", vram=2**64 - 1),
    "beyond-vram": mapfile("0x3fff 0x4000", vram=0x4000),
    "alloc-then-pfn": mapfile("alloc=4K 0x5"),
    "pfn-then-alloc": mapfile("0x5 alloc=4K"),
    "unknown-word": mapfile("0x10 map 0x11"),
    "long-word": mapfile("0x" + "0" * 62 + "1 " + "1" * 65),
    "empty": mapfile(""),
    "blank": mapfile("   \n\t, \r\n"),
    "only-comment": mapfile("#only a comment"),
    "efbig-pages": mapfile("0-0xffffff 0x1000000", vram=1 << 36),
    "max-pages": mapfile("0-0xfffffe 0x1000000", vram=1 << 36),
    "crlf-vt-ff": mapfile("0x1\r\n0x2\x0b0x3\x0c0x4\r\n"),
    "binary": mapfile(b"0x1\x00 0x2\x80 \xff"),
    "split-words": mapfile("va=0x100000 0x1000-0x1fff ro", pieces=(1, 2, 3)),
    "split-comment": mapfile("# a comment with 0x100\n0x5 #x\n0x6", pieces=(3, 0, 7)),
    "split-long-word": mapfile("0x" + "1" * 70, pieces=(10, 20)),
    "split-fast-path": mapfile(" ".join("0x%x" % i for i in range(64)), pieces=(5, 9, 13, 255)),
    "split-every-byte": mapfile("alloc=2M va=0x200000-0x3fffff rw", bytewise=True, pieces=(1,)),
    "empty-pieces": mapfile("0x10 0x11", pieces=(0, 1, 0, 2)),
    "vram-zero": mapfile("0x0 alloc=4K", vram=0),
}

# ---- VMM seeds -------------------------------------------------------------------
TU102, GA102, GH100, GB202 = 0, 1, 2, 3
PREPARE, EXECUTE, ABORT, MAP_PAGES, MAP_ALLOC, UNMAP, LOOKUP, MEM, FAULT, FULL, HW, PIN, CLAIM, \
    UNCLAIM = 0, 1, 2, 3, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15
SECOND = 0x10   # the second address space


def head(chip, two=False, mode=0, big=False):
    """big: gb202 with 1 GiB of VRAM (512 MiB pages); else 64 MiB."""
    return bytes([chip | (4 if two else 0) | mode << 3 | (0x20 if big else 0)])


def u16(v):
    return struct.pack(">H", v & 0xffff)


def u64(v):
    return struct.pack(">Q", v & (2**64 - 1))


HUGE_2_17 = bytes([0xf1])             # 2^17 pages, prepare only
PAGES_512M = bytes([0xf2])            # 131072 pages on gb202


def npages(n):
    """Encodes a page count the way spec_npages decodes it."""
    if n == 131072:
        return PAGES_512M             # gb202 only
    if n < 32:
        return bytes([n])
    if n % 16 == 0 and n <= 256:
        return bytes([160 + n // 16 - 1])
    for k in (0, 1):
        d = n - 512 * (k + 1) + 128
        if 0 <= d <= 255:
            return bytes([208 + k, d])
    return bytes([0xf0]) + u16(n - 1)


def va_pages(p):                      # VA = p * 4 KiB, p < 256
    return bytes([0, p])


def va_boundary(shift_idx, mult, delta_pages):
    """(mult << shift) + delta pages; shifts 16 21 29 30 38 47 48 56."""
    return bytes([1 | shift_idx << 3, mult - 1, delta_pages & 0xff])


def va_near(idx, delta_pages, at_end=False):
    return bytes([2 | (8 if at_end else 0), idx, delta_pages & 0xff])


def va_top(pages):
    return bytes([3, pages - 1])


def va_raw(v):
    return bytes([4]) + u64(v)


def va_2m(slot, chunk64k=0):
    return bytes([6]) + u16(slot) + bytes([chunk64k])


def va_512m(slot):
    return bytes([7, slot])


def anywhere():
    return bytes([0])


def any_hint(pfn=None):
    return bytes([1 | (4 if pfn is None else 0)]) + u16(pfn or 0)


def exact(va):
    return bytes([2]) + va


def in_range(va, end_sel=0, extra=b"", hint=None):
    return bytes([3 | end_sel << 4 | (4 if hint is None else 0)]) + va + extra + u16(hint or 0)


def flags(ro=False, small=False, claim=False, bogus=False):
    return bytes([(1 if ro else 0) | (2 if small else 0) | (4 if claim else 0) |
                  (0xe0 if bogus else 0)])


def pfns(kind=0, base=0, pos=0, arg=b"", shift4=False, align512m=False, huge=False):
    """kind: 0 contiguous, 1 64K-aligned, 2 2M-aligned (512M with align512m),
    3 scattered (arg: seed u16), 4 one page repeated, 5 two runs (arg: u16
    second base at pos), 6 one PFN beyond VRAM at pos, 7 a page-table page
    at pos, 8 the PFNs of an existing mapping (arg: index), 9 interleaved."""
    b = kind | (0x10 if shift4 else 0) | (0x20 if align512m else 0) | (0x40 if huge else 0)
    return bytes([b]) + u16(base) + u16(pos) + arg


def op(code, second=False):
    return bytes([code | (SECOND if second else 0)])


def map_pages(n, place, fl, pf, second=False):
    return op(MAP_PAGES, second) + npages(n) + place + fl + pf


def prepare(n, place, second=False):
    return op(PREPARE, second) + npages(n) + place


def execute(idx, pf, fl, second=False):
    return op(EXECUTE, second) + bytes([idx]) + pf + fl


def map_alloc(n, place, fl, odd_bytes=0, second=False):
    return op(MAP_ALLOC, second) + npages(n) + bytes([odd_bytes]) + place + fl


def unmap(idx, second=False):
    return op(UNMAP, second) + bytes([idx])


def abort(idx, second=False):
    return op(ABORT, second) + bytes([idx])


def lookup(va, second=False):
    return op(LOOKUP, second) + va


def mem(write, va, length, cross=None, big=False, second=False):
    b = (1 if write else 0) | (2 if cross is not None else 0) | (4 if big else 0)
    return op(MEM, second) + bytes([b]) + va + (bytes([cross]) if cross is not None else b"") + \
        bytes([length - 1])


def claim(first, count, where=0, shift=0, off=0):
    """where: 0 at first << shift, 1 the root table (+first & 3), 2 a
    mapping's first page (+off), 3 a claim's first page (+off)."""
    return op(CLAIM) + bytes([where | shift << 2 | off << 4]) + u16(first) + bytes([count])


def unclaim(idx):
    return op(UNCLAIM) + bytes([idx])


def fault(nth=0, every=False):
    return op(FAULT) + bytes([0x80 if every else nth])


def full(second=False):
    return op(FULL, second)


def hw(vanish=False):
    """The next operation meets a TLB invalidate that never completes, or
    (vanish) a device that is gone from then on."""
    return op(HW) + bytes([3 if vanish else 0])


def pin(first, count, where=0, shift=0, off=0):
    """where: 0 at first << shift, 1 the root table (+first & 3), 2 a
    mapping's first page (+off), 3 the last (first & 63) pages of VRAM."""
    return op(PIN) + bytes([where << 1 | shift << 3 | off << 4]) + u16(first) + bytes([count])


def unpin(idx):
    return op(PIN) + bytes([1]) + u16(idx) + bytes([0])


CHIPS = {"tu102": TU102, "ga102": GA102, "gh100": GH100, "gb202": GB202}


def vmm_seeds():
    s = {}
    for name, c in CHIPS.items():
        s["basic-" + name] = head(c) + map_pages(16, anywhere(), flags(), pfns(0, 0x100)) + \
            lookup(va_near(0, 3)) + unmap(0) + lookup(va_near(0, 0))
        s["two-phase-" + name] = head(c, mode=1) + prepare(20, anywhere()) + \
            execute(0, pfns(0, 0x200), flags()) + full()
        s["big-pages-" + name] = head(c, mode=2) + \
            map_pages(512, exact(va_2m(3)), flags(), pfns(2, 0x400)) + \
            map_pages(32, exact(va_2m(5, 2)), flags(), pfns(1, 0x800)) + \
            map_pages(3, exact(va_near(1, 0, at_end=True)), flags(), pfns(0, 0x900)) + full()
        s["alloc-" + name] = head(c) + map_alloc(512, any_hint(), flags()) + \
            map_alloc(5, anywhere(), flags(ro=True), odd_bytes=7) + \
            mem(False, va_near(0, 0), 64) + full()
    s["prepare-abort"] = head(GA102) + prepare(16, anywhere()) + prepare(8, exact(va_pages(64))) + \
        abort(0) + execute(0, pfns(0, 0x40), flags()) + lookup(va_pages(64))
    s["exact-overlap"] = head(GH100) + map_pages(16, exact(va_pages(32)), flags(), pfns()) + \
        map_pages(4, exact(va_pages(40)), flags(), pfns(0, 9)) + \
        prepare(4, exact(va_pages(47))) + prepare(4, exact(va_pages(48)))
    s["range-small"] = head(TU102) + map_pages(16, in_range(va_pages(16), 2), flags(), pfns()) + \
        map_pages(16, in_range(va_pages(0), 1, b"\x40"), flags(), pfns(0, 0x30)) + \
        prepare(8, in_range(va_2m(1), 4, b"\x00", hint=0x1234))
    s["range-busy"] = head(GB202) + map_pages(16, exact(va_pages(0)), flags(), pfns()) + \
        prepare(8, in_range(va_pages(0), 3, va_pages(24))) + \
        prepare(8, in_range(va_pages(0), 3, va_pages(20)))
    s["bad-placements"] = head(GA102) + prepare(4, exact(va_raw(0x1001))) + \
        prepare(4, exact(va_raw(1 << 49))) + prepare(0, anywhere()) + \
        prepare(4, in_range(va_raw(0x2000), 3, va_raw(0x1000))) + \
        prepare(4, in_range(va_raw(0x1000), 3, va_raw(0x1800))) + lookup(va_raw(1 << 50))
    s["execute-errors"] = head(GH100) + prepare(8, anywhere()) + \
        execute(0, pfns(6, 0x10, 3, b"\x00"), flags()) + execute(0, pfns(7, 0x10, 5, b"\x00"), flags()) + \
        execute(0, pfns(0, 0x10), flags(bogus=True)) + execute(0, pfns(0, 0x10), flags()) + full()
    s["pt-page-map"] = head(TU102) + map_pages(16, anywhere(), flags(), pfns()) + \
        lookup(va_near(0, 0)) + map_pages(4, anywhere(), flags(), pfns(7, 0x50, 2, b"\x01")) + \
        map_pages(4, anywhere(), flags(), pfns(6, 0x50, 0, b"\x00", huge=True))
    s["ro-mem"] = head(GA102) + map_pages(2, anywhere(), flags(ro=True), pfns(0, 0x60)) + \
        mem(True, va_near(0, 0), 16) + mem(False, va_near(0, 0), 200, cross=10) + \
        map_pages(2, exact(va_near(0, 0, at_end=True)), flags(), pfns(0, 0x70)) + \
        mem(True, va_near(1, 0), 255, cross=3, big=True) + mem(True, va_near(0, 1), 100, cross=5)
    s["mem-unmapped"] = head(GB202) + mem(False, va_pages(3), 8) + mem(True, va_top(1), 16, cross=2) + \
        mem(False, va_raw(2**57), 4)
    s["two-spaces"] = head(GA102, two=True, mode=1) + map_pages(16, anywhere(), flags(), pfns(0, 0x80)) + \
        map_pages(16, anywhere(), flags(), pfns(0, 0x80), second=True) + \
        map_pages(8, anywhere(), flags(), pfns(7, 0, 1, b"\x01"), second=True) + \
        unmap(0) + full(second=True)
    s["fault-prepare"] = head(GH100) + fault(0) + prepare(600, anywhere()) + fault(1) + \
        prepare(600, anywhere()) + fault(3) + map_pages(16, anywhere(), flags(), pfns()) + \
        fault(2) + map_alloc(16, anywhere(), flags())
    s["fault-everywhere"] = head(TU102, mode=1) + map_pages(16, anywhere(), flags(), pfns()) + \
        prepare(4, anywhere()) + fault(every=True) + execute(0, pfns(0, 0x20), flags()) + \
        fault(every=True) + unmap(0) + fault(every=True) + lookup(va_pages(0)) + \
        fault(every=True) + mem(False, va_near(0, 0), 8) + fault(every=True) + \
        prepare(4, anywhere())
    s["top-of-space"] = head(GB202) + map_pages(16, exact(va_top(16)), flags(), pfns()) + \
        map_pages(2, exact(va_top(1)), flags(), pfns()) + lookup(va_top(1)) + full()
    s["level-boundaries-v2"] = head(GA102, mode=3) + \
        map_pages(16, exact(va_boundary(2, 1, -8)), flags(), pfns(0, 0x100)) + \
        map_pages(16, exact(va_boundary(4, 1, -8)), flags(), pfns(0, 0x200)) + \
        map_pages(16, exact(va_boundary(5, 1, -8)), flags(), pfns(0, 0x300)) + full()
    s["level-boundaries-v3"] = head(GH100, mode=2) + \
        map_pages(16, exact(va_boundary(2, 1, -8)), flags(), pfns(0, 0x100)) + \
        map_pages(16, exact(va_boundary(6, 1, -8)), flags(), pfns(0, 0x200)) + \
        map_pages(16, exact(va_boundary(7, 1, -8)), flags(), pfns(0, 0x300)) + full()
    s["page-512m"] = head(GB202, big=True) + map_pages(131072, any_hint(), flags(),
                                                       pfns(2, 0, align512m=True)) + full() + unmap(0)
    s["page-512m-small-only"] = head(GB202, big=True) + \
        map_pages(131072, exact(va_512m(2)), flags(small=True), pfns(2, 0, align512m=True))
    s["huge-prepare"] = head(GA102) + op(PREPARE) + HUGE_2_17 + anywhere() + full() + abort(0)
    s["scattered"] = head(TU102, mode=2) + map_pages(200, anywhere(), flags(), pfns(3, 0, 0, u16(7))) + \
        map_pages(100, anywhere(), flags(), pfns(9, 0x40)) + full()
    s["same-page"] = head(GH100) + map_pages(31, anywhere(), flags(), pfns(4, 0x77)) + \
        map_pages(16, anywhere(), flags(ro=True), pfns(8, 0, 0, b"\x00")) + full()
    s["remap-same-va"] = head(GA102, mode=1) + map_pages(16, exact(va_2m(1)), flags(), pfns(1, 0x100)) + \
        lookup(va_2m(1)) + unmap(0) + lookup(va_2m(1)) + \
        map_pages(16, exact(va_2m(1)), flags(), pfns(0, 0x205)) + lookup(va_2m(1))
    s["small-to-2m"] = head(GB202, mode=1) + map_pages(4, exact(va_2m(2)), flags(), pfns()) + \
        lookup(va_2m(2)) + unmap(0) + map_pages(512, exact(va_2m(2)), flags(), pfns(2, 0x600)) + \
        lookup(va_2m(2)) + unmap(0) + map_pages(16, exact(va_2m(2)), flags(), pfns(1, 0x700)) + full()
    s["64k-and-4k-mixed"] = head(GH100, mode=3) + map_pages(32, exact(va_2m(4)), flags(), pfns(1, 0x300)) + \
        map_pages(5, exact(va_2m(4, 3)), flags(), pfns(0, 0x401)) + \
        map_pages(16, exact(va_2m(4, 4)), flags(small=True), pfns(1, 0x500)) + \
        map_pages(16, exact(va_2m(4, 8)), flags(ro=True), pfns(1, 0x600)) + full()
    s["pending-many"] = head(TU102) + b"".join(prepare(1 + i, anywhere()) for i in range(8)) + \
        execute(3, pfns(0, 0x10), flags()) + abort(2) + execute(0, pfns(5, 0x20, 1, u16(0x30)), flags())
    s["claim-map"] = head(GA102, mode=1) + claim(0x300, 16) + claim(0x310, 0) + \
        claim(0x1000, 64, shift=2) + map_pages(0, anywhere(), flags(claim=True), b"") + \
        map_pages(4, anywhere(), flags(), pfns(0, 0x302)) + claim(0, 1, where=1) + \
        claim(0, 1, where=3) + unclaim(0) + full()
    s["claim-busy"] = head(TU102, two=True) + map_alloc(16, anywhere(), flags()) + \
        claim(0, 4, where=2, off=2) + claim(0x3ff0, 32) + claim(0x200, 8) + \
        map_pages(8, exact(va_pages(64)), flags(claim=True), b"", second=True) + \
        unmap(0, second=True) + claim(0x200, 8) + fault(0) + claim(0x400, 8) + \
        map_pages(8, anywhere(), flags(claim=True, ro=True), b"") + full()
    # hardware errors: quarantine (vmm.h), then the rest of the input goes on
    for name, c in (("tu102", TU102), ("gh100", GH100)):
        s["stuck-unmap-" + name] = head(c, mode=1) + \
            map_pages(16, exact(va_pages(32)), flags(), pfns(0, 0x100)) + \
            map_pages(4, anywhere(), flags(ro=True), pfns(0, 0x200)) + hw() + unmap(0) + \
            lookup(va_pages(32)) + map_pages(4, exact(va_pages(40)), flags(), pfns(0, 0x300)) + \
            map_pages(4, anywhere(), flags(), pfns(0, 0x300)) + full()
        s["stuck-execute-" + name] = head(c) + prepare(20, anywhere()) + prepare(3, anywhere()) + \
            hw() + execute(0, pfns(0, 0x200), flags()) + execute(0, pfns(0, 0x300), flags()) + full()
    s["stuck-map-2m"] = head(GA102, mode=2) + hw() + \
        map_pages(512, exact(va_2m(3)), flags(), pfns(2, 0x400)) + lookup(va_2m(3)) + \
        map_pages(512, any_hint(0x400), flags(), pfns(2, 0x400)) + full()
    s["stuck-map-alloc"] = head(GB202, mode=1) + hw() + map_alloc(16, anywhere(), flags()) + \
        claim(0, 4, where=2) + map_alloc(16, anywhere(), flags()) + full()
    s["stuck-abort"] = head(TU102) + map_pages(1, exact(va_2m(8)), flags(), pfns(0, 0x10)) + \
        prepare(1, exact(va_2m(8, 1))) + unmap(0) + hw() + abort(0) + \
        map_pages(1, exact(va_2m(8)), flags(), pfns(0, 0x10)) + full()
    s["stuck-claim"] = head(GH100) + claim(0x300, 8) + hw() + \
        map_pages(8, anywhere(), flags(claim=True), b"") + claim(0x300, 8) + full()
    s["vanish-execute"] = head(GA102, two=True) + map_pages(16, anywhere(), flags(), pfns(0, 0x80)) + \
        prepare(8, anywhere()) + hw(vanish=True) + execute(0, pfns(0, 0x90), flags()) + \
        lookup(va_near(0, 0)) + mem(False, va_near(0, 0), 8) + \
        map_pages(4, anywhere(), flags(), pfns(0, 0x100), second=True) + full()
    s["vanish-unmap"] = head(GH100, mode=1) + map_alloc(16, anywhere(), flags()) + \
        map_pages(4, anywhere(), flags(), pfns(0, 0x40)) + hw(vanish=True) + unmap(1) + \
        prepare(4, anywhere()) + claim(0x500, 4) + pin(0x600, 4) + full()
    s["vanish-destroy"] = head(TU102) + map_pages(600, anywhere(), flags(), pfns(0, 0x200)) + \
        prepare(16, anywhere()) + hw(vanish=True) + lookup(va_near(0, 1))
    # pins: references held for crash recovery; no table lands on them
    s["pin-basic"] = head(GA102, mode=1) + pin(0x100, 16) + \
        map_pages(16, anywhere(), flags(), pfns(0, 0x100)) + pin(0, 1, where=1) + \
        pin(8, 16, where=3) + pin(0x100, 0) + pin(0, 4, where=2, off=2) + unpin(0) + full() + \
        unmap(0) + lookup(va_pages(0)) + full()
    s["pin-top-of-vram"] = head(TU102) + pin(60, 60, where=3) + pin(0x3c0, 64, shift=2) + \
        map_pages(16, anywhere(), flags(), pfns(0, 0x10)) + map_pages(600, anywhere(), flags(), pfns()) + \
        full() + unpin(1) + map_alloc(64, anywhere(), flags()) + full()
    s["pin-claim"] = head(GB202) + claim(0x800, 8) + pin(0x800, 8) + unclaim(0) + \
        map_pages(8, anywhere(), flags(), pfns(0, 0x800)) + full()
    return s


def write(dirname, seeds):
    path = os.path.join(HERE, dirname)
    os.makedirs(path, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(path, name), "wb") as f:
            f.write(data)
    print("%s: %d seeds" % (dirname, len(seeds)))


if __name__ == "__main__":
    write("corpus_mapfile", MAPFILE_SEEDS)
    write("corpus_vmm", vmm_seeds())
    sys.exit(0)
