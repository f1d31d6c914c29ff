/* Allocation wrappers used by modules whose failure paths are tested (GGUF reader, tokenizer,
 * JSON-RPC): tests make the N-th allocation fail for every N and check for a clean error and no
 * leak (the approach of SQLite's malloc tests and libuv's test/oom.c). */
#ifndef AUGURY_ENGINE_ALLOC_H
#define AUGURY_ENGINE_ALLOC_H

#include <stddef.h>

void *aug_malloc(size_t size);
void *aug_calloc(size_t count, size_t size);
void *aug_realloc(void *ptr, size_t size);
void aug_free(void *ptr);
char *aug_strndup(const char *s, size_t n);

/* Fault injection for tests only: the n-th aug_* allocation from now (1-based) and every one after
 * it fail until aug_alloc_fail_reset(). Returns how many allocations were made since the last call.
 * This is the one piece of process-wide mutable state, and only tests touch it. */
void aug_alloc_fail_after(long n);
long aug_alloc_fail_reset(void);

#endif
