/* Allocation wrappers with test-only fault injection (see alloc.h). The counters are atomics so
 * that a test can arm them while other threads allocate. */
#include "engine/alloc.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_long fail_at = 0; /* 0 = never fail */
static atomic_long count = 0;

static int should_fail(void) {
  long limit = atomic_load_explicit(&fail_at, memory_order_relaxed);
  if (limit == 0) return 0;
  long n = atomic_fetch_add_explicit(&count, 1, memory_order_relaxed) + 1;
  return n >= limit;
}

void *aug_malloc(size_t size) { return should_fail() ? NULL : malloc(size ? size : 1); }

void *aug_calloc(size_t n, size_t size) { return should_fail() ? NULL : calloc(n ? n : 1, size ? size : 1); }

void *aug_realloc(void *ptr, size_t size) { return should_fail() ? NULL : realloc(ptr, size ? size : 1); }

void aug_free(void *ptr) { free(ptr); }

char *aug_strndup(const char *s, size_t n) {
  char *copy = aug_malloc(n + 1);
  if (!copy) return NULL;
  memcpy(copy, s, n);
  copy[n] = '\0';
  return copy;
}

void aug_alloc_fail_after(long n) {
  atomic_store(&count, 0);
  atomic_store(&fail_at, n);
}

long aug_alloc_fail_reset(void) {
  atomic_store(&fail_at, 0);
  return atomic_exchange(&count, 0);
}
