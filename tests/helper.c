/* SPDX-License-Identifier: MIT */
#include "helper.h"
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "gpu.h"

const char *const vt_chips[] = { "tu102", "ga102", "ad102", "gh100", "gb202", NULL };

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

uint64_t vt_seed(const char *what)
{
	const char *env = getenv("VMMFS_TEST_SEED");
	uint64_t seed;

	if (env && *env) {
		seed = strtoull(env, NULL, 0);
	} else {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		seed = (uint64_t)ts.tv_sec * 1000003u ^ (uint64_t)ts.tv_nsec;
	}
	printf("\n  %s: seed %llu (rerun with VMMFS_TEST_SEED=%llu)\n", what ? what : "random test",
	       (unsigned long long)seed, (unsigned long long)seed);
	fflush(stdout);
	rng_state = seed ? seed : 1;
	return seed;
}

uint64_t vt_rand(void)
{
	uint64_t x = rng_state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	rng_state = x;
	return x * 0x2545f4914f6cdd1dull;
}

uint64_t vt_rand_below(uint64_t n)
{
	return n ? vt_rand() % n : 0;
}

struct vmmfs_gpu *vt_open_sim(const char *chip, uint64_t vram_size)
{
	struct vmmfs_gpu_config cfg = { .backend = VMMFS_BACKEND_SIM, .chip = chip,
					.vram_size = vram_size };
	struct vmmfs_gpu *gpu = NULL;
	char err[256] = "";
	int r = vmmfs_gpu_open(&cfg, &gpu, err, sizeof(err));

	if (r) {
		fprintf(stderr, "  cannot open simulated %s: %s (%d)\n", chip, err, r);
		CU_FAIL_FATAL("vmmfs_gpu_open(sim)");
		return NULL;
	}
	return gpu;
}

void *vt_sim(struct vmmfs_gpu *gpu)
{
	return gpu->sim;
}

void vt_add_suite(const char *name, const struct vt_test *tests)
{
	CU_pSuite s = CU_add_suite(name, NULL, NULL);

	if (!s) {
		fprintf(stderr, "CU_add_suite(%s) failed\n", name);
		exit(2);
	}
	for (; tests->name; tests++)
		if (!CU_add_test(s, tests->name, tests->fn)) {
			fprintf(stderr, "CU_add_test(%s) failed\n", tests->name);
			exit(2);
		}
}

int vt_main(int argc, char **argv, void (*register_fn)(void))
{
	unsigned int failed;

	/* Library errors that tests provoke on purpose stay out of the output;
	 * VMMFS_TEST_VERBOSE=1 shows them (and debug lines with =2). */
	const char *verbose = getenv("VMMFS_TEST_VERBOSE");

	vmmfs_log_set_stderr_level(verbose ? VMMFS_LOG_WARN + atoi(verbose) : -1);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 2;
	register_fn();
	CU_basic_set_mode(CU_BRM_VERBOSE);
	if (argc >= 2) {
		CU_pSuite s = CU_get_suite(argv[1]);
		if (!s) {
			fprintf(stderr, "%s: no suite named '%s'\n", argv[0], argv[1]);
			CU_cleanup_registry();
			return 2;
		}
		if (argc >= 3) {
			CU_pTest t = CU_get_test(s, argv[2]);
			if (!t) {
				fprintf(stderr, "%s: no test '%s' in suite '%s'\n", argv[0], argv[2], argv[1]);
				CU_cleanup_registry();
				return 2;
			}
			CU_basic_run_test(s, t);
		} else {
			CU_basic_run_suite(s);
		}
	} else {
		CU_basic_run_tests();
	}
	failed = CU_get_number_of_tests_failed() + CU_get_number_of_failures();
	printf("\n");
	CU_cleanup_registry();
	return failed ? 1 : 0;
}
