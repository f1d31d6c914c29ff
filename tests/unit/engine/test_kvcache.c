/* KV cache tests on the CPU backend: stored K/V read back through the buffers (F16 exact to
 * rounding, Q8_0 and Q4_0 within their quantization steps), used-cell accounting (commit, truncate,
 * remove_tail), and the refusals: holes, overflow, wrong shapes, unsupported types. Moving cells:
 * a download/upload round trip is bit-exact, and re-rotating K by delta equals RoPE at the new
 * position directly (within F16 rounding / the Q8_0 step) for both layouts. */
#include <math.h>

#include "backends/backend.h"
#include "engine/kvcache.h"
#include "engine/quant.h"
#include "tests/unit/test_support.h"

enum { LAYERS = 2, CTX = 8, HEADS = 2, DIM = 64 };

struct fixture {
  const struct backend_ops *ops;
  struct backend *be;
  struct backend_buffer *src;
};

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof *f);
  struct aug_err err = {0};
  f->ops = backend_cpu_ops();
  assert_int_equal(f->ops->create("threads=1", &f->be, &err), 0);
  assert_int_equal(
      f->ops->buffer_alloc(f->be, BACKEND_BUFFER_COMPUTE, 2 * DIM * HEADS * CTX * 4, &f->src, &err),
      0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  f->ops->buffer_free(f->be, f->src);
  f->ops->destroy(f->be);
  free(f);
  return 0;
}

static struct kvcache *make(struct fixture *f, uint32_t type, uint32_t head_dim, int *rc) {
  const struct backend_ops *ops[LAYERS] = {f->ops, f->ops};
  struct backend *bes[LAYERS] = {f->be, f->be};
  struct kvcache_params p = {LAYERS, CTX, HEADS, head_dim, type};
  struct kvcache *c = NULL;
  struct aug_err err = {0};
  *rc = kvcache_create(&p, ops, bes, &c, &err);
  return c;
}

/* F32 K and V [DIM, HEADS, n] at the start of the source buffer: value = pos + head / 8 + i / 64.
 */
static void source(struct fixture *f, uint32_t pos0, int64_t n, struct backend_tensor *k,
                   struct backend_tensor *v) {
  size_t count = (size_t)DIM * HEADS * (size_t)n;
  float *data = malloc(2 * count * sizeof *data);
  for (int64_t t = 0; t < n; t++)
    for (int h = 0; h < HEADS; h++)
      for (int i = 0; i < DIM; i++) {
        size_t at = ((size_t)t * HEADS + h) * DIM + i;
        data[at] = (float)(pos0 + t) + h / 8.0f + i / 64.0f;
        data[count + at] = -data[at];
      }
  f->ops->upload(f->be, f->src, 0, data, 2 * count * sizeof *data);
  free(data);
  struct backend_tensor t = {.type = QUANT_F32,
                             .ne = {DIM, HEADS, n, 1},
                             .row_stride = DIM * 4,
                             .plane_stride = DIM * HEADS * 4,
                             .buffer = f->src};
  *k = t;
  *v = t;
  v->offset = count * sizeof(float);
}

/* Reads cell pos of layer il's K (or V) back as floats. */
static void read_cell(struct fixture *f, struct kvcache *c, uint32_t il, bool value, uint32_t pos,
                      float *out /* [HEADS * DIM] */) {
  const struct backend_tensor *t = value ? kvcache_v(c, il) : kvcache_k(c, il);
  size_t bytes = t->plane_stride;
  unsigned char *raw = malloc(bytes);
  f->ops->download(f->be, t->buffer, t->offset + pos * t->plane_stride, raw, bytes);
  assert_int_equal(quant_dequantize_row(t->type, raw, out, HEADS * DIM), 0);
  free(raw);
}

static void store_and_read(void **state, uint32_t type, double tolerance) {
  struct fixture *f = *state;
  int rc;
  struct kvcache *c = make(f, type, DIM, &rc);
  assert_int_equal(rc, 0);
  assert_int_equal(kvcache_type(c), type);
  assert_int_equal(kvcache_bytes(c), 2ull * LAYERS * CTX * HEADS * quant_row_size(type, DIM));
  struct kvcache_params p = {LAYERS, CTX, HEADS, DIM, type};
  assert_int_equal(kvcache_bytes_per_token(&p) * CTX, kvcache_bytes(c));
  struct aug_err err = {0};
  struct backend_tensor k, v;
  source(f, 0, 3, &k, &v);
  for (uint32_t il = 0; il < LAYERS; il++)
    assert_int_equal(kvcache_store(c, il, &k, &v, 0, &err), 0);
  assert_int_equal(kvcache_n_used(c), 0); /* not committed yet */
  assert_int_equal(kvcache_commit(c, 3), 0);
  source(f, 3, 2, &k, &v);
  for (uint32_t il = 0; il < LAYERS; il++)
    assert_int_equal(kvcache_store(c, il, &k, &v, 3, &err), 0);
  assert_int_equal(kvcache_commit(c, 5), 0);
  float cell[HEADS * DIM];
  for (uint32_t il = 0; il < LAYERS; il++)
    for (uint32_t pos = 0; pos < 5; pos++)
      for (int value = 0; value < 2; value++) {
        read_cell(f, c, il, value, pos, cell);
        for (int h = 0; h < HEADS; h++)
          for (int i = 0; i < DIM; i++) {
            float want = (float)pos + h / 8.0f + i / 64.0f;
            if (value) want = -want;
            assert_true(fabs(cell[h * DIM + i] - want) <= tolerance * (1.0 + fabs(want)));
          }
      }
  kvcache_destroy(c);
}

static void test_f16_store(void **state) {
  store_and_read(state, QUANT_F16, 1e-3);
}
static void test_q8_0_store(void **state) {
  store_and_read(state, QUANT_Q8_0, 1.0 / 127.0);
}

/* Q4_0 (ggml's block_q4_0: d = the value of largest magnitude / -8, x = d (q - 8)): within one
 * step, 1/8 of the block's largest magnitude, which is at most 1 + |want| here; half a step
 * except where the positive end clamps at q = 15. 18 bytes per 32 values. */
static void test_q4_0_store(void **state) {
  store_and_read(state, QUANT_Q4_0, 1.0 / 8.0);
  struct kvcache_params p = {LAYERS, CTX, HEADS, DIM, QUANT_Q4_0};
  assert_int_equal(kvcache_bytes_per_token(&p), 2ull * LAYERS * HEADS * (DIM / 32) * 18);
}

static bool refuse_q4_0(struct backend *be, enum backend_op op, uint32_t type) {
  if ((op == BACKEND_OP_ATTENTION || op == BACKEND_OP_COPY) && type == QUANT_Q4_0) return false;
  return backend_cpu_ops()->supports_op(be, op, type);
}

/* A backend whose supports_op refuses the cache type gets no cache of that type: a clear error
 * naming the layer, the backend and the type, not a cache its attention cannot read. */
static void test_backend_refusing_type(void **state) {
  struct fixture *f = *state;
  struct backend_ops refusing = *f->ops;
  refusing.name = "refusing";
  refusing.supports_op = refuse_q4_0;
  assert_false(kvcache_backend_accepts(&refusing, f->be, QUANT_Q4_0));
  assert_true(kvcache_backend_accepts(&refusing, f->be, QUANT_Q8_0));
  assert_true(kvcache_backend_accepts(f->ops, f->be, QUANT_Q4_0));
  const struct backend_ops *ops[LAYERS] = {f->ops, &refusing};
  struct backend *bes[LAYERS] = {f->be, f->be};
  struct kvcache_params p = {LAYERS, CTX, HEADS, DIM, QUANT_Q4_0};
  struct kvcache *c = NULL;
  struct aug_err err = {0};
  assert_int_equal(kvcache_create(&p, ops, bes, &c, &err), AUG_EUNSUPPORTED);
  assert_null(c);
  assert_non_null(strstr(err.msg, "layer 1"));
  assert_non_null(strstr(err.msg, "refusing"));
  assert_non_null(strstr(err.msg, "Q4_0"));
}

static void test_used_cells(void **state) {
  struct fixture *f = *state;
  int rc;
  struct kvcache *c = make(f, QUANT_F16, DIM, &rc);
  struct aug_err err = {0};
  assert_int_equal(kvcache_n_ctx(c), CTX);
  assert_int_equal(kvcache_commit(c, 6), 0);
  assert_int_equal(kvcache_commit(c, CTX + 1), AUG_ERANGE);
  kvcache_truncate(c, 7); /* beyond n_used: no-op */
  assert_int_equal(kvcache_n_used(c), 6);
  kvcache_truncate(c, 4);
  assert_int_equal(kvcache_n_used(c), 4);
  kvcache_remove_tail(c, 1);
  assert_int_equal(kvcache_n_used(c), 3);
  kvcache_remove_tail(c, 10);
  assert_int_equal(kvcache_n_used(c), 0);
  struct backend_tensor k, v;
  source(f, 0, 2, &k, &v);
  /* A hole (cell 1 while none is used), overflow, bad layer, shape mismatch. */
  assert_int_equal(kvcache_store(c, 0, &k, &v, 1, &err), AUG_ERANGE);
  assert_non_null(strstr(err.msg, "cells [1, 3)"));
  assert_int_equal(kvcache_commit(c, 7), 0);
  assert_int_equal(kvcache_store(c, 0, &k, &v, 7, &err), AUG_ERANGE);
  assert_int_equal(kvcache_store(c, LAYERS, &k, &v, 0, &err), AUG_EINVAL);
  struct backend_tensor narrow = k;
  narrow.ne[0] = DIM / 2;
  assert_int_equal(kvcache_store(c, 0, &narrow, &v, 0, &err), AUG_EINVAL);
  kvcache_destroy(c);
  kvcache_destroy(NULL);
}

static void test_refusals(void **state) {
  struct fixture *f = *state;
  int rc;
  assert_null(make(f, QUANT_Q4_K, DIM, &rc));
  assert_int_equal(rc, AUG_EUNSUPPORTED);
  assert_null(make(f, QUANT_Q8_0, 48, &rc)); /* 48 is not a multiple of the 32-element block */
  assert_int_equal(rc, AUG_EUNSUPPORTED);
  assert_null(make(f, QUANT_Q4_0, 48, &rc));
  assert_int_equal(rc, AUG_EUNSUPPORTED);
  assert_null(make(f, QUANT_F16, 0, &rc));
  assert_int_equal(rc, AUG_EINVAL);
}

/* Cells moved out and back (to other cells) through the host layout are the same bytes. */
static void test_download_upload_round_trip(void **state) {
  struct fixture *f = *state;
  int rc;
  struct kvcache *c = make(f, QUANT_Q8_0, DIM, &rc);
  struct aug_err err = {0};
  struct backend_tensor k, v;
  source(f, 0, 4, &k, &v);
  for (uint32_t il = 0; il < LAYERS; il++)
    assert_int_equal(kvcache_store(c, il, &k, &v, 0, &err), 0);
  assert_int_equal(kvcache_commit(c, 4), 0);
  size_t cell = kvcache_cell_bytes(c);
  assert_int_equal(cell, HEADS * quant_row_size(QUANT_Q8_0, DIM));
  enum { CAP = 5 };
  unsigned char *host = calloc(CAP, 2 * LAYERS * cell);
  /* Cells 1..3 into host cells 2..4. */
  assert_int_equal(kvcache_download_cells(c, 1, 3, host, CAP, 2, &err), 0);
  assert_int_equal(kvcache_download_cells(c, 2, 3, host, CAP, 0, &err), AUG_ERANGE); /* > used */
  assert_int_equal(kvcache_download_cells(c, 0, 3, host, CAP, 3, &err), AUG_ERANGE); /* > cap */
  /* Back at cell 4 (the end: no hole), then compare with the originals. */
  assert_int_equal(kvcache_upload_cells(c, 5, 1, host, CAP, 2, &err), AUG_ERANGE); /* hole */
  assert_int_equal(kvcache_upload_cells(c, 4, 3, host, CAP, 2, &err), 0);
  assert_int_equal(kvcache_n_used(c), 4); /* counted only after commit */
  assert_int_equal(kvcache_commit(c, 7), 0);
  for (uint32_t il = 0; il < LAYERS; il++)
    for (int value = 0; value < 2; value++) {
      const struct backend_tensor *t = value ? kvcache_v(c, il) : kvcache_k(c, il);
      const unsigned char *data = f->ops->buffer_host_ptr(f->be, t->buffer);
      assert_memory_equal(data + t->offset + 4 * cell, data + t->offset + 1 * cell, 3 * cell);
    }
  free(host);
  kvcache_destroy(c);
}

/* RoPE of x [DIM, HEADS, n] (F32, host) at positions pos through the backend's rope op. */
static void rope_host(struct fixture *f, float *x, int64_t n, const int32_t *pos,
                      const struct backend_rope_params *rp) {
  size_t bytes = (size_t)DIM * HEADS * (size_t)n * sizeof(float);
  f->ops->upload(f->be, f->src, 0, x, bytes);
  struct backend_tensor t = {.type = QUANT_F32,
                             .ne = {DIM, HEADS, n, 1},
                             .row_stride = DIM * 4,
                             .plane_stride = DIM * HEADS * 4,
                             .buffer = f->src};
  assert_int_equal(f->ops->rope(f->be, &t, pos, rp), 0);
  f->ops->download(f->be, f->src, 0, x, bytes);
}

/* K stored at position p, shifted by delta, against K computed at p + delta directly. */
static void shift_matches_direct(void **state, uint32_t type, const struct backend_rope_params *rp,
                                 double tolerance) {
  struct fixture *f = *state;
  int rc;
  struct kvcache *c = make(f, type, DIM, &rc);
  assert_int_equal(rc, 0);
  struct aug_err err = {0};
  assert_int_equal(kvcache_shift_k(c, 0, 1, 3, rp, &err), AUG_EINVAL); /* no scratch yet */
  assert_int_equal(kvcache_reserve_shift(c, 2, &err), 0); /* 2 cells per step: 3 steps for 5 */
  enum { N = 5 };
  static const int32_t pos[N] = {0, 7, 100, 1500, 3000};
  static const int32_t deltas[] = {1, -7, 250, -1500, 1000};
  size_t count = (size_t)DIM * HEADS * N;
  float *x = malloc(count * sizeof *x), *want = malloc(count * sizeof *want);
  for (size_t di = 0; di < sizeof deltas / sizeof deltas[0]; di++) {
    int32_t d = deltas[di];
    uint64_t seed = 11 + di;
    for (size_t i = 0; i < count; i++) {
      seed = seed * 6364136223846793005ull + 1442695040888963407ull;
      x[i] = (float)((seed >> 40) & 0xffff) / 32768.0f - 1.0f;
    }
    memcpy(want, x, count * sizeof *x);
    int32_t moved[N];
    for (int i = 0; i < N; i++)
      moved[i] = pos[i] + d < 0 ? pos[i] : pos[i] + d;
    int32_t applied[N]; /* skip positions that would go negative: shift those by 0 */
    for (int i = 0; i < N; i++)
      applied[i] = moved[i] - pos[i];
    rope_host(f, x, N, pos, rp);
    rope_host(f, want, N, moved, rp);
    /* Store x as K (and V) in cells 0..N of every layer, then shift each cell by its delta. */
    kvcache_truncate(c, 0);
    struct backend_tensor k = {.type = QUANT_F32,
                               .ne = {DIM, HEADS, N, 1},
                               .row_stride = DIM * 4,
                               .plane_stride = DIM * HEADS * 4,
                               .buffer = f->src};
    f->ops->upload(f->be, f->src, 0, x, count * sizeof *x);
    for (uint32_t il = 0; il < LAYERS; il++)
      assert_int_equal(kvcache_store(c, il, &k, &k, 0, &err), 0);
    assert_int_equal(kvcache_commit(c, N), 0);
    for (int i = 0; i < N; i++)
      assert_int_equal(kvcache_shift_k(c, (uint32_t)i, 1, applied[i], rp, &err), 0);
    double worst = 0.0;
    float cell[HEADS * DIM];
    for (uint32_t il = 0; il < LAYERS; il++)
      for (uint32_t p = 0; p < N; p++) {
        read_cell(f, c, il, false, p, cell);
        for (int i = 0; i < HEADS * DIM; i++) {
          double e = fabs(cell[i] - want[p * HEADS * DIM + i]);
          if (e > worst) worst = e;
        }
        read_cell(f, c, il, true, p, cell); /* V is not rotated */
        for (int i = 0; i < HEADS * DIM; i++)
          assert_true(fabs(cell[i] - x[p * HEADS * DIM + i]) <= tolerance);
      }
    print_message("%s %s delta %d: max |shifted K - K at new position| %.2e\n",
                  quant_type_name(type), rp->layout == BACKEND_ROPE_NEOX ? "neox" : "normal", d,
                  worst);
    assert_true(worst <= tolerance);
  }
  assert_int_equal(kvcache_shift_k(c, CTX - 1, 2, 1, rp, &err), AUG_ERANGE);
  free(x);
  free(want);
  kvcache_destroy(c);
}

static void test_shift_neox_f16(void **state) {
  struct backend_rope_params rp = {DIM, BACKEND_ROPE_NEOX, 1000000.0f, 1.0f, NULL};
  /* Values in [-1, 1): an F16 cell is rounded twice (stored, shifted), each <= 2^-11. */
  shift_matches_direct(state, QUANT_F16, &rp, 2e-3);
}
static void test_shift_normal_partial_q8_0(void **state) {
  /* Normal layout, half the dims rotated, linear scaling and llama 3.1 style frequency factors. */
  static float factors[DIM / 4];
  for (int i = 0; i < DIM / 4; i++)
    factors[i] = 1.0f + (float)i / 4.0f;
  struct backend_rope_params rp = {DIM / 2, BACKEND_ROPE_NORMAL, 10000.0f, 0.5f, factors};
  shift_matches_direct(state, QUANT_F16, &rp, 2e-3);
  /* Q8_0 is re-quantized after the shift: two steps of max/127. */
  shift_matches_direct(state, QUANT_Q8_0, &rp, 2.0 / 127.0 + 1e-3);
}
static void test_shift_neox_q4_0(void **state) {
  struct backend_rope_params rp = {DIM, BACKEND_ROPE_NEOX, 1000000.0f, 1.0f, NULL};
  /* Q4_0 is re-quantized after the shift: two steps of a block's largest magnitude / 8, and a
   * rotated pair keeps its norm, so elements stay within sqrt(2). */
  shift_matches_direct(state, QUANT_Q4_0, &rp, 2.0 * 1.4143 / 8.0);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_f16_store, setup, teardown),
      cmocka_unit_test_setup_teardown(test_q8_0_store, setup, teardown),
      cmocka_unit_test_setup_teardown(test_q4_0_store, setup, teardown),
      cmocka_unit_test_setup_teardown(test_backend_refusing_type, setup, teardown),
      cmocka_unit_test_setup_teardown(test_used_cells, setup, teardown),
      cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
      cmocka_unit_test_setup_teardown(test_download_upload_round_trip, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shift_neox_f16, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shift_normal_partial_q8_0, setup, teardown),
      cmocka_unit_test_setup_teardown(test_shift_neox_q4_0, setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
