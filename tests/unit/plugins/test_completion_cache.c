/* Tests for plugins/completion_cache.c: exact and typed-through hits, what must miss (another uri,
 * an edit before or after the cursor, typing that leaves the suggestion), LRU eviction by count and
 * bytes, forgetting a document, and allocation failures. */
#include "../test_support.h"

#include <limits.h>

#include "engine/alloc.h"
#include "plugins/completion_cache.h"

#define URI "file:///w/a.py"

struct doc {
  char text[1024];
  size_t len, cursor;
};

/* The document before + typed + after, with the cursor after typed. */
static struct doc doc_of(const char *before, const char *typed, const char *after) {
  struct doc d;
  snprintf(d.text, sizeof d.text, "%s%s%s", before, typed, after);
  d.len = strlen(d.text);
  d.cursor = strlen(before) + strlen(typed);
  return d;
}

static struct completion_cache *make(size_t entries, size_t bytes) {
  struct completion_cache_params p = completion_cache_params_default();
  p.max_entries = entries;
  p.max_bytes = bytes;
  struct completion_cache *c = NULL;
  struct aug_err err = {0};
  assert_int_equal(completion_cache_create(&p, &c, &err), 0);
  return c;
}

static void put(struct completion_cache *c, const char *uri, const char *before, const char *after,
                const char *completion) {
  struct aug_err err = {0};
  assert_int_equal(completion_cache_put(c, uri, before, strlen(before), after, strlen(after),
                                        completion, strlen(completion), &err),
                   0);
}

static bool lookup(struct completion_cache *c, const char *uri, struct doc d,
                   struct completion_cache_hit *hit) {
  return completion_cache_lookup(c, uri, d.text, d.len, d.cursor, hit);
}

static void test_exact_and_typed_through(void **state) {
  struct completion_cache *c = make(16, 1 << 20);
  const char *before = "def area(r):\n    return ", *after = "\n\nprint(area(2))\n";
  put(c, URI, before, after, "math.pi * r * r");
  struct completion_cache_hit hit;
  assert_true(lookup(c, URI, doc_of(before, "", after), &hit));
  assert_int_equal(hit.typed, 0);
  assert_int_equal(hit.rest_len, strlen("math.pi * r * r"));
  assert_memory_equal(hit.rest, "math.pi * r * r", hit.rest_len);
  /* Typed through the first 8 bytes: the rest is offered. */
  assert_true(lookup(c, URI, doc_of(before, "math.pi ", after), &hit));
  assert_int_equal(hit.typed, 8);
  assert_memory_equal(hit.rest, "* r * r", hit.rest_len);
  /* Typed the whole suggestion: nothing left to offer from the cache. */
  assert_false(lookup(c, URI, doc_of(before, "math.pi * r * r", after), &hit));
  /* Typed something else. */
  assert_false(lookup(c, URI, doc_of(before, "math.e", after), &hit));
  /* Another document, an edit above the cursor, an edit below. */
  assert_false(lookup(c, "file:///w/b.py", doc_of(before, "", after), &hit));
  assert_false(lookup(c, URI, doc_of("def area(x):\n    return ", "", after), &hit));
  assert_false(lookup(c, URI, doc_of(before, "", "\n\nprint(area(3))\n"), &hit));
  /* Text may follow the window on both sides (the window is part of a larger document). */
  struct doc d = doc_of("import math\n\n", "", "");
  snprintf(d.text + d.len, sizeof d.text - d.len, "%smath.pi%s# end\n", before, after);
  d.cursor = d.len + strlen(before) + strlen("math.pi");
  d.len = strlen(d.text);
  assert_true(completion_cache_lookup(c, URI, d.text, d.len, d.cursor, &hit));
  assert_memory_equal(hit.rest, " * r * r", hit.rest_len);
  completion_cache_destroy(c);
}

static void test_typed_bound(void **state) {
  struct completion_cache_params p = completion_cache_params_default();
  p.max_typed = 4;
  struct completion_cache *c = NULL;
  struct aug_err err = {0};
  assert_int_equal(completion_cache_create(&p, &c, &err), 0);
  put(c, URI, "x = ", "\n", "compute(a, b)");
  struct completion_cache_hit hit;
  assert_true(lookup(c, URI, doc_of("x = ", "comp", "\n"), &hit));
  assert_false(lookup(c, URI, doc_of("x = ", "compu", "\n"), &hit));
  completion_cache_destroy(c);
}

static void test_replace_and_evict(void **state) {
  struct completion_cache *c = make(3, 1 << 20);
  put(c, URI, "a = ", "\n", "1");
  put(c, URI, "a = ", "\n", "2"); /* same state: replaces */
  assert_int_equal(completion_cache_count(c), 1);
  struct completion_cache_hit hit;
  assert_true(lookup(c, URI, doc_of("a = ", "", "\n"), &hit));
  assert_memory_equal(hit.rest, "2", 1);
  put(c, URI, "b = ", "\n", "3");
  put(c, URI, "c = ", "\n", "4");
  /* a is used again, so b is now the least recently used and goes first. */
  assert_true(lookup(c, URI, doc_of("a = ", "", "\n"), &hit));
  put(c, URI, "d = ", "\n", "5");
  assert_int_equal(completion_cache_count(c), 3);
  assert_false(lookup(c, URI, doc_of("b = ", "", "\n"), &hit));
  assert_true(lookup(c, URI, doc_of("a = ", "", "\n"), &hit));
  assert_true(lookup(c, URI, doc_of("d = ", "", "\n"), &hit));
  put(c, "file:///other.py", "e = ", "\n", "6");
  completion_cache_forget(c, URI);
  assert_int_equal(completion_cache_count(c), 1); /* the other document's entry stays */
  assert_true(lookup(c, "file:///other.py", doc_of("e = ", "", "\n"), &hit));
  completion_cache_forget(c, NULL); /* every document */
  assert_int_equal(completion_cache_count(c), 0);
  assert_int_equal(completion_cache_bytes(c), 0);
  completion_cache_destroy(c);
  /* A byte bound: each entry costs its texts plus bookkeeping. */
  c = make(100, 600);
  for (int i = 0; i < 20; i++) {
    char before[32];
    snprintf(before, sizeof before, "v%d = ", i);
    put(c, URI, before, "\n", "value_of_something");
    assert_true(completion_cache_bytes(c) <= 600);
  }
  assert_true(completion_cache_count(c) >= 1 && completion_cache_count(c) < 20);
  /* An entry over the whole bound is not stored at all. */
  char big[700];
  memset(big, 'x', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  put(c, URI, big, "\n", "y");
  struct completion_cache_hit hit2;
  assert_false(lookup(c, URI, doc_of(big, "", "\n"), &hit2));
  completion_cache_destroy(c);
  completion_cache_destroy(NULL);
}

static void test_alloc_failures(void **state) {
  for (long n = 1; n <= 3; n++) {
    struct completion_cache *c = make(4, 1 << 20);
    put(c, URI, "a = ", "\n", "1");
    aug_alloc_fail_after(n);
    struct aug_err err = {0};
    int rc = completion_cache_put(c, URI, "b = ", 4, "\n", 1, "2", 1, &err);
    aug_alloc_fail_reset();
    assert_int_equal(rc, AUG_ENOMEM);
    /* Unchanged: the old entry still answers, the new one was not half stored. */
    assert_int_equal(completion_cache_count(c), 1);
    struct completion_cache_hit hit;
    assert_true(lookup(c, URI, doc_of("a = ", "", "\n"), &hit));
    assert_false(lookup(c, URI, doc_of("b = ", "", "\n"), &hit));
    completion_cache_destroy(c);
  }
}

/* A completion still being written: typed text may run ahead of what it has written so far. */
static void test_state_typed_partial(void **state) {
  const char *before = "x = ", *after = "\n";
  struct doc d = doc_of(before, "comp", after);
  /* Written "co" so far: the user typed past it, which agrees. */
  assert_int_equal(
      completion_state_typed(before, 4, after, 1, "co", 2, true, 64, d.text, d.len, d.cursor), 4);
  /* Without guide_may_be_short, typing past the guide is no match. */
  assert_int_equal(
      completion_state_typed(before, 4, after, 1, "co", 2, false, 64, d.text, d.len, d.cursor), -1);
  /* Written "cat": the user's "comp" disagrees. */
  assert_int_equal(
      completion_state_typed(before, 4, after, 1, "cat", 3, true, 64, d.text, d.len, d.cursor), -1);
  /* Nothing written yet: any typing at the state agrees; max_typed bounds it. */
  assert_int_equal(
      completion_state_typed(before, 4, after, 1, "", 0, true, 64, d.text, d.len, d.cursor), 4);
  assert_int_equal(
      completion_state_typed(before, 4, after, 1, "", 0, true, 3, d.text, d.len, d.cursor), -1);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_exact_and_typed_through), cmocka_unit_test(test_typed_bound),
      cmocka_unit_test(test_replace_and_evict),       cmocka_unit_test(test_state_typed_partial),
      cmocka_unit_test(test_alloc_failures),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
