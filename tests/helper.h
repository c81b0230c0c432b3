/* SPDX-License-Identifier: MIT */
/* Shared test fixtures: CUnit runner, seeded PRNG, simulated GPUs. */
#ifndef VMMFS_TEST_HELPER_H
#define VMMFS_TEST_HELPER_H

#include <stdint.h>
#include <stdio.h>
#include <CUnit/CUnit.h>
#include <CUnit/Basic.h>
#include <vmmfs/vmmfs.h>

/* Registers the suites (register_fn), runs them verbosely, prints the CUnit
 * run summary and returns the process exit status (0 when all passed).
 * `./test_x SUITE [TEST]` runs one suite or test. */
int vt_main(int argc, char **argv, void (*register_fn)(void));

/* Adds a suite with the given tests ({name, fn} pairs ending {NULL, NULL}). */
struct vt_test { const char *name; void (*fn)(void); };
void vt_add_suite(const char *name, const struct vt_test *tests);

/* Seeded PRNG (xorshift64*). vt_seed() takes VMMFS_TEST_SEED from the
 * environment or the clock, prints "seed: N (rerun with VMMFS_TEST_SEED=N)"
 * and seeds the generator; returns the seed. */
uint64_t vt_seed(const char *what);
uint64_t vt_rand(void);
uint64_t vt_rand_below(uint64_t n); /* [0, n) */

/* Opens a simulated GPU; fails the current test (CU_FAIL_FATAL) if it cannot. */
struct vmmfs_gpu *vt_open_sim(const char *chip, uint64_t vram_size);

/* The simulator behind a GPU opened by vt_open_sim (struct vmmfs_sim *). */
void *vt_sim(struct vmmfs_gpu *gpu);

/* Chips every VMM test loops over. */
extern const char *const vt_chips[]; /* NULL-terminated: tu102 ga102 ad102 gh100 gb202 */

/* Assert helpers that print "is X, expected Y" on failure. */
#define VT_EQ_U64(actual, expected) do { \
	uint64_t __a = (uint64_t)(actual), __e = (uint64_t)(expected); \
	if (__a != __e) fprintf(stderr, "  %s:%d: %s is 0x%llx, expected 0x%llx\n", __FILE__, __LINE__, \
				#actual, (unsigned long long)__a, (unsigned long long)__e); \
	CU_ASSERT_EQUAL(__a, __e); } while (0)
#define VT_EQ_INT(actual, expected) do { \
	long long __a = (long long)(actual), __e = (long long)(expected); \
	if (__a != __e) fprintf(stderr, "  %s:%d: %s is %lld, expected %lld\n", __FILE__, __LINE__, \
				#actual, __a, __e); \
	CU_ASSERT_EQUAL(__a, __e); } while (0)

#endif
