/* SPDX-License-Identifier: MIT */
/*
 * Helpers shared by the benchmark programs (bench/bench_*.c): timers
 * (monotonic wall clock, and this thread's CPU time), size and seed
 * arguments, a PRNG, resident memory, and the table printer.
 *
 * Every benchmark prints tables whose rows give the figure, the reference
 * measured in the same run, their ratio, and the target with PASS or MISS:
 *
 *   == buddy allocator: 20971520 chunks of 4 KiB (seed 42)
 *   what                                  figure       reference    ratio    target        result
 *   alloc, fragmented vs fresh pool       61.2 ns      48.0 ns      1.28     ratio <= 2    PASS
 *
 * bench_finish() prints how many targets were met. It returns 0, or 1 when
 * a target was missed and BENCH_STRICT=1 is in the environment.
 *
 * Header-only (static inline), no dependency beyond libc.
 */
#ifndef VMMFS_BENCH_H
#define VMMFS_BENCH_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/utsname.h>

enum bench_target_kind {
	BENCH_INFO = 0,     /* no target: figure only */
	BENCH_RATIO_MAX,    /* figure / reference <= limit */
	BENCH_RATIO_MIN,    /* figure / reference >= limit */
	BENCH_VALUE_MAX,    /* figure <= limit */
	BENCH_VALUE_MIN,    /* figure >= limit */
};

struct bench_target {
	enum bench_target_kind kind;
	double limit;
};

#define BENCH_NO_TARGET          ((struct bench_target){ BENCH_INFO, 0 })
#define BENCH_RATIO_AT_MOST(x)   ((struct bench_target){ BENCH_RATIO_MAX, (x) })
#define BENCH_RATIO_AT_LEAST(x)  ((struct bench_target){ BENCH_RATIO_MIN, (x) })
#define BENCH_AT_MOST(x)         ((struct bench_target){ BENCH_VALUE_MAX, (x) })
#define BENCH_AT_LEAST(x)        ((struct bench_target){ BENCH_VALUE_MIN, (x) })

struct bench_tally {
	unsigned int targets, missed;
};

static inline struct bench_tally *bench_tally(void)
{
	static struct bench_tally t;

	return &t;
}

/* Seconds on the monotonic clock. */
static inline double bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* "20M", "4096", "1G", "64k": a count with an optional binary suffix
 * (k/K = 2^10, m/M = 2^20, g/G = 2^30, t/T = 2^40). Returns def for NULL
 * or "", 0 for anything unparsable. */
static inline uint64_t bench_parse_size(const char *s, uint64_t def)
{
	unsigned long long v;
	char *end;

	if (!s || !*s)
		return def;
	v = strtoull(s, &end, 0);
	switch (*end) {
	case 'k': case 'K': v <<= 10; end++; break;
	case 'm': case 'M': v <<= 20; end++; break;
	case 'g': case 'G': v <<= 30; end++; break;
	case 't': case 'T': v <<= 40; end++; break;
	default: break;
	}
	if (*end == 'i' || *end == 'B')
		end++;
	return *end ? 0 : (uint64_t)v;
}

/* Seconds of CPU time used by this thread: for single-threaded, CPU-bound
 * code this is the work done, whatever else runs on the machine. */
static inline double bench_cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* BENCH_SEED from the environment, or the clock. */
static inline uint64_t bench_seed(void)
{
	const char *env = getenv("BENCH_SEED");
	struct timespec ts;

	if (env && *env)
		return strtoull(env, NULL, 0);
	clock_gettime(CLOCK_REALTIME, &ts);
	return ((uint64_t)ts.tv_sec * 1000003u) ^ (uint64_t)ts.tv_nsec;
}

/* xorshift64*: a fast PRNG for benchmark patterns. */
static inline uint64_t bench_rand(uint64_t *state)
{
	uint64_t x = *state ? *state : 0x9e3779b97f4a7c15ull;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545f4914f6cdd1dull;
}

/* Resident memory of this process, bytes. */
static inline uint64_t bench_rss(void)
{
	unsigned long long size = 0, res = 0;
	FILE *f = fopen("/proc/self/statm", "r");

	if (f) {
		if (fscanf(f, "%llu %llu", &size, &res) != 2)
			res = 0;
		fclose(f);
	}
	return (uint64_t)res * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Formats a figure with its unit, 4 significant digits. */
static inline const char *bench_fmt(char *buf, size_t len, double v, const char *unit)
{
	if (v != v)
		snprintf(buf, len, "-");
	else
		snprintf(buf, len, "%.4g %s", v, unit ? unit : "");
	return buf;
}

static inline void bench_table_begin(const char *title)
{
	printf("\n== %s\n", title);
	printf("%-44s %-14s %-14s %-8s %-16s %s\n", "what", "figure", "reference", "ratio",
	       "target", "result");
	fflush(stdout);
}

/* One row. ref <= 0 means "no reference" (ratio not shown). */
static inline void bench_row(const char *what, double figure, double ref, const char *unit,
			     struct bench_target t)
{
	char f[32], r[32], ratio[16] = "-", target[32] = "-";
	const char *result = "";
	double q = ref > 0 ? figure / ref : 0;
	int ok = 1;

	bench_fmt(f, sizeof(f), figure, unit);
	if (ref > 0) {
		bench_fmt(r, sizeof(r), ref, unit);
		snprintf(ratio, sizeof(ratio), "%.3g", q);
	} else {
		snprintf(r, sizeof(r), "-");
	}
	switch (t.kind) {
	case BENCH_INFO:
		break;
	case BENCH_RATIO_MAX:
		snprintf(target, sizeof(target), "ratio <= %g", t.limit);
		ok = ref > 0 && q <= t.limit;
		break;
	case BENCH_RATIO_MIN:
		snprintf(target, sizeof(target), "ratio >= %g", t.limit);
		ok = ref > 0 && q >= t.limit;
		break;
	case BENCH_VALUE_MAX:
		snprintf(target, sizeof(target), "<= %g %s", t.limit, unit ? unit : "");
		ok = figure <= t.limit;
		break;
	case BENCH_VALUE_MIN:
		snprintf(target, sizeof(target), ">= %g %s", t.limit, unit ? unit : "");
		ok = figure >= t.limit;
		break;
	}
	if (t.kind != BENCH_INFO) {
		bench_tally()->targets++;
		if (!ok)
			bench_tally()->missed++;
		result = ok ? "PASS" : "MISS";
	}
	printf("%-44s %-14s %-14s %-8s %-16s %s\n", what, f, r, ratio, target, result);
	fflush(stdout);
}

/* A free-form line under the current table (setup figures, notes). */
__attribute__((format(printf, 1, 2)))
static inline void bench_note(const char *fmt, ...)
{
	va_list ap;

	printf("  ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
}

/* Summary line; the exit status for main. */
static inline int bench_finish(const char *name)
{
	const struct bench_tally *t = bench_tally();
	const char *strict = getenv("BENCH_STRICT");

	printf("\n%s: %u of %u targets met%s\n", name, t->targets - t->missed, t->targets,
	       t->missed ? " (MISS above)" : "");
	fflush(stdout);
	return t->missed && strict && *strict == '1' ? 1 : 0;
}

/* One line naming the machine, and a warning for sanitizer builds. */
static inline void bench_print_machine(void)
{
	char line[256], model[160] = "unknown";
	struct utsname u;
	FILE *f = fopen("/proc/cpuinfo", "r");

	if (f) {
		while (fgets(line, sizeof(line), f)) {
			char *colon = strchr(line, ':');

			if (!strncmp(line, "model name", 10) && colon) {
				snprintf(model, sizeof(model), "%s", colon + 2);
				model[strcspn(model, "\n")] = 0;
				break;
			}
		}
		fclose(f);
	}
	if (uname(&u))
		memset(&u, 0, sizeof(u));
	printf("machine: %ld CPUs, %s, %s %s %s\n", sysconf(_SC_NPROCESSORS_ONLN), model,
	       u.sysname, u.release, u.machine);
#if defined(__SANITIZE_ADDRESS__)
	printf("WARNING: built with AddressSanitizer: times are not meaningful "
	       "(configure without --enable-sanitizers, e.g. ./configure CFLAGS=-O2)\n");
#endif
}

/* Smallest power of two >= x, at least min. */
static inline uint64_t bench_pow2_at_least(uint64_t x, uint64_t min)
{
	uint64_t v = min;

	while (v < x)
		v <<= 1;
	return v;
}

#endif
