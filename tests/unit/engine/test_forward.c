/* Forward-pass tests. On tiny random models (qwen2 with biases and NeoX RoPE; llama with normal
 * RoPE and rope_freqs; every weight type): the pass matches a scalar reference, batched prompt
 * evaluation equals token-by-token, truncating and re-evaluating equals a fresh pass, a Q8_0 KV
 * cache stays close to F16, cancellation leaves a consistent cache, and a placement split over
 * two backend instances gives the same logits. On the small real model:
 * greedy continuations and teacher-forced top-1 against llama.cpp fixtures. */
#include <stdatomic.h>

#include "tests/unit/engine/test_forward_common.h"

static const struct tiny_spec tiny_qwen2 = {.arch = MODEL_ARCH_QWEN2,
                                            .n_layer = 2,
                                            .n_embd = 256,
                                            .n_head = 8,
                                            .n_head_kv = 2,
                                            .n_ff = 512,
                                            .n_vocab = 320};
static const struct tiny_spec tiny_llama = {.arch = MODEL_ARCH_LLAMA,
                                            .n_layer = 2,
                                            .n_embd = 256,
                                            .n_head = 4,
                                            .n_head_kv = 4,
                                            .n_ff = 256,
                                            .n_vocab = 300,
                                            .rope_freqs = true};

enum { SEQ = 24 };

static void tokens_for(int32_t *t, size_t n, uint32_t n_vocab, uint32_t seed) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    t[i] = (int32_t)((seed >> 8) % n_vocab);
  }
}

static struct forward_params small_params(uint32_t n_batch, uint32_t kv_type) {
  struct forward_params fp = forward_params_default();
  fp.n_ctx = 64;
  fp.n_batch = n_batch;
  fp.n_outputs = SEQ;
  fp.kv_type = kv_type;
  return fp;
}

/* Logits of every position of tokens, one forward_eval per n_batch-sized piece of `step`. */
static float *all_logits(struct test_fwd *t, const int32_t *tokens, size_t n, size_t step) {
  size_t nv = t->model->hp.n_vocab;
  float *out = malloc(n * nv * sizeof *out);
  assert_non_null(out);
  for (size_t i = 0; i < n; i += step) {
    size_t m = n - i < step ? n - i : step;
    test_fwd_eval(t, tokens + i, m, true);
    for (size_t j = 0; j < m; j++)
      memcpy(out + (i + j) * nv, forward_logits(t->fwd, j), nv * 4);
  }
  return out;
}

static void check_against_reference(const struct tiny_spec *spec, uint64_t seed) {
  char path[64];
  tiny_write(spec, seed, path, sizeof path);
  struct test_fwd t;
  test_fwd_open(&t, path, "threads=2", small_params(7, QUANT_F16));
  int32_t tokens[SEQ];
  tokens_for(tokens, SEQ, spec->n_vocab, (uint32_t)seed);
  float *got = all_logits(&t, tokens, SEQ, SEQ);
  struct ref_model r;
  ref_open(&r, t.model, 64);
  double worst = 0.0;
  size_t nv = spec->n_vocab;
  for (int p = 0; p < SEQ; p++) {
    ref_step(&r, tokens[p], p);
    /* The backend quantizes activations to 8 bits for the integer dot products (as ggml does):
     * allow 3% of the logit range. */
    double d = max_abs_diff(got + (size_t)p * nv, r.logits, nv) / (1.0 + max_abs(r.logits, nv));
    if (d > worst) worst = d;
  }
  print_message("%s: max |forward - reference| / (1 + max|logit|) = %.5f\n",
                model_arch_name(spec->arch), worst);
  assert_true(worst < 0.03);
  ref_close(&r);
  free(got);
  test_fwd_close(&t);
  unlink(path);
}

static void test_tiny_qwen2_matches_reference(void **state) {
  (void)state;
  check_against_reference(&tiny_qwen2, 7);
}

static void test_tiny_llama_matches_reference(void **state) {
  (void)state;
  check_against_reference(&tiny_llama, 11);
}

/* Batches of 7 (so batches straddle positions) and single tokens give the same logits. */
static void test_batched_equals_token_by_token(void **state) {
  (void)state;
  char path[64];
  tiny_write(&tiny_qwen2, 3, path, sizeof path);
  int32_t tokens[SEQ];
  tokens_for(tokens, SEQ, tiny_qwen2.n_vocab, 5);
  struct test_fwd a, b;
  test_fwd_open(&a, path, "threads=2", small_params(7, QUANT_F16));
  test_fwd_open(&b, path, "threads=2", small_params(1, QUANT_F16));
  float *batched = all_logits(&a, tokens, SEQ, SEQ); /* 24 tokens in batches of 7 */
  float *single = all_logits(&b, tokens, SEQ, 1);    /* 24 decode steps */
  size_t nv = tiny_qwen2.n_vocab;
  double worst = max_abs_diff(batched, single, SEQ * nv) / (1.0 + max_abs(single, SEQ * nv));
  print_message("batched vs token-by-token: max relative difference %.6f\n", worst);
  assert_true(worst < 1e-3);
  for (size_t p = 0; p < SEQ; p++)
    assert_int_equal(test_argmax(batched + p * nv, nv), test_argmax(single + p * nv, nv));
  /* Only the last token's logits when all_logits is false: equal to the last row above. */
  kvcache_truncate(forward_kvcache(a.fwd), 0);
  test_fwd_eval(&a, tokens, SEQ, false);
  assert_int_equal(forward_n_logits(a.fwd), 1);
  assert_null(forward_logits(a.fwd, 1));
  assert_true(max_abs_diff(forward_logits(a.fwd, 0), batched + (SEQ - 1) * nv, nv) < 1e-4);
  free(batched);
  free(single);
  test_fwd_close(&a);
  test_fwd_close(&b);
  unlink(path);
}

/* Keeping a prefix and evaluating a different tail equals evaluating the new sequence afresh. */
static void test_truncate_reuse_equals_fresh(void **state) {
  (void)state;
  char path[64];
  tiny_write(&tiny_llama, 9, path, sizeof path);
  int32_t first[SEQ], second[SEQ];
  tokens_for(first, SEQ, tiny_llama.n_vocab, 21);
  memcpy(second, first, sizeof first);
  tokens_for(second + 13, SEQ - 13, tiny_llama.n_vocab, 99); /* common prefix of 13 */
  struct test_fwd t;
  test_fwd_open(&t, path, "threads=2", small_params(8, QUANT_F16));
  struct kvcache *kv = forward_kvcache(t.fwd);
  test_fwd_eval(&t, first, SEQ, false);
  assert_int_equal(kvcache_n_used(kv), SEQ);
  kvcache_truncate(kv, 13);
  assert_int_equal(kvcache_n_used(kv), 13);
  test_fwd_eval(&t, second + 13, SEQ - 13, false);
  size_t nv = tiny_llama.n_vocab;
  float *reused = malloc(nv * sizeof *reused);
  memcpy(reused, forward_logits(t.fwd, 0), nv * sizeof *reused);
  kvcache_remove_tail(kv, SEQ); /* everything */
  assert_int_equal(kvcache_n_used(kv), 0);
  test_fwd_eval(&t, second, SEQ, false);
  double d = max_abs_diff(reused, forward_logits(t.fwd, 0), nv);
  print_message("prefix reuse vs fresh: max |diff| %.6f\n", d);
  assert_true(d < 1e-3 * (1.0 + max_abs(reused, nv)));
  free(reused);
  test_fwd_close(&t);
  unlink(path);
}

static void test_q8_0_kv_close_to_f16(void **state) {
  (void)state;
  char path[64];
  tiny_write(&tiny_qwen2, 13, path, sizeof path);
  int32_t tokens[SEQ];
  tokens_for(tokens, SEQ, tiny_qwen2.n_vocab, 17);
  struct test_fwd a, b;
  test_fwd_open(&a, path, "threads=2", small_params(16, QUANT_F16));
  test_fwd_open(&b, path, "threads=2", small_params(16, QUANT_Q8_0));
  assert_int_equal(kvcache_type(forward_kvcache(b.fwd)), QUANT_Q8_0);
  assert_true(kvcache_bytes(forward_kvcache(b.fwd)) < kvcache_bytes(forward_kvcache(a.fwd)));
  float *f16 = all_logits(&a, tokens, SEQ, SEQ);
  float *q8 = all_logits(&b, tokens, SEQ, SEQ);
  size_t nv = tiny_qwen2.n_vocab;
  double worst = max_abs_diff(f16, q8, SEQ * nv) / (1.0 + max_abs(f16, SEQ * nv));
  print_message("q8_0 vs f16 KV: max relative difference %.5f\n", worst);
  assert_true(worst < 0.02);
  assert_true(worst > 0.0); /* the cache type really changed something */
  free(f16);
  free(q8);
  test_fwd_close(&a);
  test_fwd_close(&b);
  unlink(path);
}

static void test_cancel_and_range(void **state) {
  (void)state;
  char path[64];
  tiny_write(&tiny_qwen2, 23, path, sizeof path);
  int32_t tokens[SEQ];
  tokens_for(tokens, SEQ, tiny_qwen2.n_vocab, 29);
  struct test_fwd t;
  test_fwd_open(&t, path, "threads=1", small_params(8, QUANT_F16));
  struct kvcache *kv = forward_kvcache(t.fwd);
  struct aug_err err = {0};
  atomic_bool cancel;
  atomic_init(&cancel, true);
  assert_int_equal(forward_eval(t.fwd, tokens, SEQ, false, &cancel, &err), AUG_ECANCELED);
  assert_int_equal(kvcache_n_used(kv), 0);
  assert_null(forward_logits(t.fwd, 0));
  atomic_store(&cancel, false);
  assert_int_equal(forward_eval(t.fwd, tokens, SEQ, false, &cancel, &err), 0);
  assert_int_equal(kvcache_n_used(kv), SEQ);
  /* 64 cells: 24 used, 41 more do not fit. */
  static int32_t many[41];
  assert_int_equal(forward_eval(t.fwd, many, 41, false, NULL, &err), AUG_ERANGE);
  assert_int_equal(kvcache_n_used(kv), SEQ);
  /* More rows of logits than n_outputs (24). */
  kvcache_truncate(kv, 0);
  assert_int_equal(forward_eval(t.fwd, many, 25, true, NULL, &err), AUG_ERANGE);
  int32_t bad = (int32_t)tiny_qwen2.n_vocab;
  assert_int_equal(forward_eval(t.fwd, &bad, 1, false, NULL, &err), AUG_EINVAL);
  assert_int_equal(kvcache_n_used(kv), 0);
  test_fwd_close(&t);
  forward_destroy(NULL);
  unlink(path);
}

/* A placement over two backend instances (layer 0 and the head on one, layer 1 on the other):
 * weights, KV caches and scratch per instance, the hidden state copied at both boundaries; the
 * logits equal those of the single-instance placement. */
static void test_split_placement_equals_single(void **state) {
  (void)state;
  char path[64];
  tiny_write(&tiny_qwen2, 31, path, sizeof path);
  int32_t tokens[SEQ];
  tokens_for(tokens, SEQ, tiny_qwen2.n_vocab, 37);
  struct test_fwd one;
  test_fwd_open(&one, path, "threads=2", small_params(8, QUANT_F16));
  float *want = all_logits(&one, tokens, SEQ, SEQ);

  struct aug_err err = {0};
  struct backend *second = NULL;
  assert_int_equal(one.ops->create("threads=1", &second, &err), 0);
  struct forward_device layers[2] = {{one.ops, one.be}, {one.ops, second}};
  struct forward_placement pl = {2, layers, {one.ops, one.be}};
  struct forward_params fp = small_params(8, QUANT_F16);
  struct forward *split = NULL;
  if (forward_create(one.model, &pl, &fp, &split, &err)) fail_msg("forward_create: %s", err.msg);
  size_t nv = tiny_qwen2.n_vocab;
  assert_int_equal(forward_eval(split, tokens, SEQ, true, NULL, &err), 0);
  double worst = 0.0;
  for (size_t p = 0; p < SEQ; p++) {
    double d = max_abs_diff(forward_logits(split, p), want + p * nv, nv);
    if (d > worst) worst = d;
  }
  print_message("split placement vs one backend: max |diff| %.2e\n", worst);
  assert_true(worst < 1e-4);
  /* A placement that does not cover the model is refused. */
  struct forward_placement short_pl = {1, layers, {one.ops, one.be}};
  struct forward *bad = NULL;
  assert_int_equal(forward_create(one.model, &short_pl, &fp, &bad, &err), AUG_EINVAL);
  assert_null(bad);
  forward_destroy(split);
  one.ops->destroy(second);
  free(want);
  test_fwd_close(&one);
  unlink(path);
}

/* The small real model against llama.cpp: all fixture prompts and positions. */
static void test_small_model_matches_llama_cpp(void **state) {
  (void)state;
  const char *path = test_model_path(TEST_MODEL_SMALL);
#if defined(__SANITIZE_ADDRESS__)
  /* Under ASan (-O0) a real model runs ~50x slower: teacher forcing over 64 positions only. */
  const size_t prompts = 0, positions = 64;
#else
  const size_t prompts = SIZE_MAX, positions = SIZE_MAX;
#endif
  struct fixture_result r;
  fixture_check(path, "forward/small.json", prompts, positions, &r);
  /* Exact, as for the default model (test_forward_slow.c): this model adds Q5_0 and Q8_0 weights,
   * whose llama.cpp order the kernels reproduce too. */
  assert_int_equal(r.top1_total, positions == SIZE_MAX ? 256 : (long)positions);
  assert_int_equal(r.top1_same, r.top1_total);
  assert_int_equal(r.greedy_same, r.greedy_total);
  assert_true(r.max_diff <= 1e-4); /* the fixture rounds logits to 4 decimals */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_tiny_qwen2_matches_reference),
      cmocka_unit_test(test_tiny_llama_matches_reference),
      cmocka_unit_test(test_batched_equals_token_by_token),
      cmocka_unit_test(test_truncate_reuse_equals_fresh),
      cmocka_unit_test(test_q8_0_kv_close_to_f16),
      cmocka_unit_test(test_cancel_and_range),
      cmocka_unit_test(test_split_placement_equals_single),
      cmocka_unit_test(test_small_model_matches_llama_cpp),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
