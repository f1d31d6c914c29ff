/* Prompt cache tests on a CPU-backend KV cache: a snapshot restores the exact cells, a prefix of a
 * held snapshot is not saved again and an extension replaces it, least-recently-used eviction
 * under the byte bound (touch and restore count as use; the kept id is never evicted), and the
 * refusals: a snapshot over the bound, a restore that does not continue the cache. */
#include "backends/backend.h"
#include "engine/kvcache.h"
#include "engine/promptcache.h"
#include "engine/quant.h"
#include "tests/unit/test_support.h"

enum { LAYERS = 2, CTX = 64, HEADS = 2, DIM = 64 };

struct fixture {
  const struct backend_ops *ops;
  struct backend *be;
  struct backend_buffer *src;
  struct kvcache *kv;
};

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof *f);
  struct aug_err err = {0};
  f->ops = backend_cpu_ops();
  assert_int_equal(f->ops->create("threads=1", &f->be, &err), 0);
  assert_int_equal(
      f->ops->buffer_alloc(f->be, BACKEND_BUFFER_COMPUTE, DIM * HEADS * CTX * 4, &f->src, &err), 0);
  const struct backend_ops *ops[LAYERS] = {f->ops, f->ops};
  struct backend *bes[LAYERS] = {f->be, f->be};
  struct kvcache_params p = {LAYERS, CTX, HEADS, DIM, QUANT_F16};
  assert_int_equal(kvcache_create(&p, ops, bes, &f->kv, &err), 0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  kvcache_destroy(f->kv);
  f->ops->buffer_free(f->be, f->src);
  f->ops->destroy(f->be);
  free(f);
  return 0;
}

/* Fills cells [0, n) of every layer with values derived from seed (K = V). */
static void fill(struct fixture *f, uint32_t n, uint32_t seed) {
  size_t count = (size_t)DIM * HEADS * n;
  float *x = malloc(count * sizeof *x);
  for (size_t i = 0; i < count; i++) {
    seed = seed * 1664525u + 1013904223u;
    x[i] = (float)(seed >> 16) / 65536.0f - 0.5f;
  }
  f->ops->upload(f->be, f->src, 0, x, count * sizeof *x);
  free(x);
  struct backend_tensor t = {.type = QUANT_F32,
                             .ne = {DIM, HEADS, n, 1},
                             .row_stride = DIM * 4,
                             .plane_stride = DIM * HEADS * 4,
                             .buffer = f->src};
  struct aug_err err = {0};
  kvcache_truncate(f->kv, 0);
  for (uint32_t il = 0; il < LAYERS; il++)
    assert_int_equal(kvcache_store(f->kv, il, &t, &t, 0, &err), 0);
  assert_int_equal(kvcache_commit(f->kv, n), 0);
}

static void tokens_for(int32_t *t, size_t n, uint32_t seed) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    t[i] = (int32_t)((seed >> 8) % 1000);
  }
}

/* A snapshot's size: tokens padded to 64 bytes, then the cells. */
static uint64_t snapshot_bytes(struct fixture *f, size_t n) {
  return (n * 4 + 63) / 64 * 64 + kvcache_host_bytes(f->kv, (uint32_t)n);
}

static void test_save_find_restore(void **state) {
  struct fixture *f = *state;
  struct promptcache *pc = NULL;
  struct aug_err err = {0};
  assert_int_equal(promptcache_create(1 << 20, &pc, &err), 0);
  int32_t t[40];
  tokens_for(t, 40, 1);
  fill(f, 30, 7);
  size_t bytes = 2 * LAYERS * kvcache_cell_bytes(f->kv) * 30;
  unsigned char *want = malloc(bytes), *got = malloc(bytes);
  assert_int_equal(kvcache_download_cells(f->kv, 0, 30, want, 30, 0, &err), 0);
  assert_int_equal(promptcache_save(pc, f->kv, t, 30, -1, &err), 0);
  assert_int_equal(promptcache_count(pc), 1);
  assert_int_equal(promptcache_bytes(pc), snapshot_bytes(f, 30));
  /* A prompt sharing 25 tokens finds it. */
  int32_t q[40];
  memcpy(q, t, sizeof q);
  q[25] = 9999;
  size_t lcp;
  int id = promptcache_find(pc, q, 40, &lcp);
  assert_true(id >= 0);
  assert_int_equal(lcp, 25);
  assert_int_equal(promptcache_n_tokens(pc, id), 30);
  assert_memory_equal(promptcache_tokens(pc, id), t, 30 * sizeof *t);
  assert_int_equal(promptcache_find(pc, q + 30, 10, &lcp), -1);
  assert_int_equal(lcp, 0);
  /* Other values in the cells, keep 5, restore [5, 25): the saved bytes come back. */
  fill(f, 30, 8);
  kvcache_truncate(f->kv, 5);
  assert_int_equal(promptcache_restore(pc, id, f->kv, 4, 25, &err), AUG_ERANGE); /* not 5 */
  assert_int_equal(promptcache_restore(pc, id, f->kv, 5, 31, &err), AUG_ERANGE); /* > n */
  assert_int_equal(promptcache_restore(pc, id + 1, f->kv, 5, 25, &err), AUG_EINVAL);
  assert_int_equal(promptcache_restore(pc, id, f->kv, 5, 25, &err), 0);
  assert_int_equal(kvcache_n_used(f->kv), 25);
  assert_int_equal(kvcache_download_cells(f->kv, 0, 25, got, 30, 0, &err), 0);
  size_t plane = kvcache_cell_bytes(f->kv);
  for (int p = 0; p < 2 * LAYERS; p++) {
    /* cells 5..25 equal the snapshot; 0..5 are the other fill's */
    assert_memory_equal(got + (p * 30 + 5) * plane, want + (p * 30 + 5) * plane, 20 * plane);
    assert_memory_not_equal(got + p * 30 * plane, want + p * 30 * plane, 5 * plane);
  }
  /* A prefix of the snapshot is held already; an extension replaces it. */
  fill(f, 40, 7);
  assert_int_equal(promptcache_save(pc, f->kv, t, 20, -1, &err), 0);
  assert_int_equal(promptcache_count(pc), 1);
  assert_int_equal(promptcache_save(pc, f->kv, t, 40, -1, &err), 0);
  assert_int_equal(promptcache_count(pc), 1);
  id = promptcache_find(pc, t, 40, &lcp);
  assert_int_equal(lcp, 40);
  assert_int_equal(promptcache_bytes(pc), snapshot_bytes(f, 40));
  assert_int_equal(promptcache_save(pc, f->kv, t, 41, -1, &err), AUG_ERANGE); /* > used */
  free(want);
  free(got);
  promptcache_destroy(pc);
  promptcache_destroy(NULL);
}

static void test_lru_eviction(void **state) {
  struct fixture *f = *state;
  struct promptcache *pc = NULL;
  struct aug_err err = {0};
  uint64_t one = snapshot_bytes(f, 20);
  assert_int_equal(promptcache_create(3 * one + one / 2, &pc, &err), 0);
  int32_t t[5][20];
  fill(f, 20, 3);
  for (int i = 0; i < 5; i++)
    tokens_for(t[i], 20, 100 + (uint32_t)i);
  for (int i = 0; i < 3; i++)
    assert_int_equal(promptcache_save(pc, f->kv, t[i], 20, -1, &err), 0);
  assert_int_equal(promptcache_count(pc), 3);
  size_t lcp;
  promptcache_touch(pc, promptcache_find(pc, t[0], 20, &lcp)); /* t[1] is now the oldest */
  assert_int_equal(promptcache_save(pc, f->kv, t[3], 20, -1, &err), 0);
  assert_int_equal(promptcache_count(pc), 3);
  assert_true(promptcache_bytes(pc) <= 3 * one + one / 2);
  assert_true(promptcache_find(pc, t[0], 20, &lcp) >= 0);
  assert_int_equal(promptcache_find(pc, t[1], 20, &lcp), -1);
  /* A restore counts as use: t[2] stays, t[0] goes; the kept id is never evicted. */
  int id2 = promptcache_find(pc, t[2], 20, &lcp);
  kvcache_truncate(f->kv, 0);
  assert_int_equal(promptcache_restore(pc, id2, f->kv, 0, 20, &err), 0);
  int id0 = promptcache_find(pc, t[0], 20, &lcp);
  assert_int_equal(promptcache_save(pc, f->kv, t[4], 20, id0, &err), 0);
  assert_true(promptcache_find(pc, t[0], 20, &lcp) >= 0);
  assert_true(promptcache_find(pc, t[2], 20, &lcp) >= 0);
  assert_int_equal(promptcache_find(pc, t[3], 20, &lcp), -1);
  promptcache_destroy(pc);
  /* Refusals: a snapshot over the bound; no room beside the kept one. */
  assert_int_equal(promptcache_create(one - 1, &pc, &err), 0);
  assert_int_equal(promptcache_save(pc, f->kv, t[0], 20, -1, &err), AUG_ERANGE);
  assert_non_null(strstr(err.msg, "over the"));
  assert_int_equal(promptcache_count(pc), 0);
  promptcache_destroy(pc);
  assert_int_equal(promptcache_create(one + one / 2, &pc, &err), 0);
  assert_int_equal(promptcache_save(pc, f->kv, t[0], 20, -1, &err), 0);
  int kept = promptcache_find(pc, t[0], 20, &lcp);
  assert_int_equal(promptcache_save(pc, f->kv, t[1], 20, kept, &err), AUG_ERANGE);
  assert_int_equal(promptcache_save(pc, f->kv, t[1], 20, -1, &err), 0);
  assert_int_equal(promptcache_count(pc), 1);
  promptcache_destroy(pc);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_save_find_restore, setup, teardown),
      cmocka_unit_test_setup_teardown(test_lru_eviction, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
