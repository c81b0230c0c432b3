/* SPDX-License-Identifier: MIT */
/* Private helpers shared by every core file. Never installed. */
#ifndef VMMFS_INTERNAL_H
#define VMMFS_INTERNAL_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include <errno.h>
#include <vmmfs/log.h>

#define BIT(n) (1ull << (n))
#define GENMASK(h, l) ((~0ull >> (63 - (h))) & ~((1ull << (l)) - 1))
#define ALIGN_UP(x, a) (((x) + ((a) - 1)) & ~((uint64_t)(a) - 1))
#define ALIGN_DOWN(x, a) ((x) & ~((uint64_t)(a) - 1))
#define IS_ALIGNED(x, a) (((x) & ((uint64_t)(a) - 1)) == 0)
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define container_of(ptr, type, member) \
	((type *)(void *)((char *)(ptr) - offsetof(type, member)))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Field helpers: FIELD_GET(GENMASK(7,4), v), FIELD_PREP(GENMASK(7,4), x). */
#define FIELD_GET(mask, v) (((uint64_t)(v) & (mask)) >> __builtin_ctzll(mask))
#define FIELD_PREP(mask, x) (((uint64_t)(x) << __builtin_ctzll(mask)) & (mask))

#define log_err(...) vmmfs_log(VMMFS_LOG_ERROR, __VA_ARGS__)
#define log_warn(...) vmmfs_log(VMMFS_LOG_WARN, __VA_ARGS__)
#define log_info(...) vmmfs_log(VMMFS_LOG_INFO, __VA_ARGS__)
#define log_dbg(...) vmmfs_log(VMMFS_LOG_DEBUG, __VA_ARGS__)
extern int vmmfs_log_spam_enabled;
#define log_spam(...) do { if (vmmfs_log_spam_enabled) vmmfs_log(VMMFS_LOG_SPAM, __VA_ARGS__); } while (0)

/* An impossibility: logs it (with where) and evaluates to the condition. */
#define VMMFS_WARN_ON(cond) ({ \
	bool __c = !!(cond); \
	if (__c) vmmfs_log(VMMFS_LOG_ERROR, "internal error: %s at %s:%d", #cond, __FILE__, __LINE__); \
	__c; })

#endif
