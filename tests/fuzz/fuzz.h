/* SPDX-License-Identifier: MIT */
/*
 * The vmmfs fuzz targets: tests/fuzz/fuzz_mapfile.c (the mapping-file
 * parser) and tests/fuzz/fuzz_vmm.c (the VMM API on simulated GPUs).
 *
 * Each target is one LLVMFuzzerTestOneInput. Built with clang
 * -fsanitize=fuzzer it is a libFuzzer program (`make fuzz-bin`, `make
 * fuzz`); built with any compiler and -DVMMFS_FUZZ_REPLAY the same body is
 * named vmmfs_fuzz_<target>_one so that one program (tests/test_fuzz) can
 * replay the seed corpora and the regression inputs through both targets.
 *
 * A target reports a broken invariant by printing what it expected and
 * what it found, then calling abort(): libFuzzer saves the input as a crash
 * artifact, and tests/test_fuzz (which runs each file in a child process)
 * counts the file as failed. Nothing here needs libFuzzer: a target uses
 * only libc and libvmmfs.
 */
#ifndef VMMFS_TESTS_FUZZ_H
#define VMMFS_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#ifdef VMMFS_FUZZ_REPLAY
int vmmfs_fuzz_mapfile_one(const uint8_t *data, size_t size);
int vmmfs_fuzz_vmm_one(const uint8_t *data, size_t size);
#define FUZZ_MAPFILE_ENTRY vmmfs_fuzz_mapfile_one
#define FUZZ_VMM_ENTRY vmmfs_fuzz_vmm_one
#else
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
#define FUZZ_MAPFILE_ENTRY LLVMFuzzerTestOneInput
#define FUZZ_VMM_ENTRY LLVMFuzzerTestOneInput
#endif

/* Checking code needs no coverage feedback: leaving it uninstrumented keeps
 * the fuzzer fast and its corpus about the code under test. */
#if defined(__clang__)
#define FUZZ_NOCOV __attribute__((no_sanitize("coverage")))
#elif defined(__has_attribute)
#if __has_attribute(no_sanitize_coverage)
#define FUZZ_NOCOV __attribute__((no_sanitize_coverage))
#endif
#endif
#ifndef FUZZ_NOCOV
#define FUZZ_NOCOV
#endif

#endif
