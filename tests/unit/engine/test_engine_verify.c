/* engine_push_tokens on the small real model against one-token decode, over the llama.cpp greedy
 * fixtures (tests/fixtures/forward/small.json): every continuation is pushed in windows of k
 * tokens (k = 2 .. ENGINE_MAX_VERIFY, as a draft verification that accepts everything would), and
 * every row must equal, bit for bit, the logits one-token decode gives at that position (which
 * reproduce the fixture's greedy tokens exactly). A verify batch runs in one-token summation
 * order (backend_ops.set_decode_order): without it the batched kernels' order moved logits by up
 * to ~0.7 and flipped the argmax on ~1.5% of rows, so drafts would change greedy output. */
#include <jansson.h>
#include <math.h>

#include "engine/engine.h"
#include "tests/unit/test_support.h"

static int32_t argmax(const float *v, size_t n) {
  size_t best = 0;
  for (size_t i = 1; i < n; i++)
    if (v[i] > v[best]) best = i;
  return (int32_t)best;
}

static size_t ids_of(json_t *array, int32_t *out, size_t cap) {
  size_t n = json_array_size(array);
  assert_true(n <= cap);
  for (size_t i = 0; i < n; i++)
    out[i] = (int32_t)json_integer_value(json_array_get(array, i));
  return n;
}

static void test_small_model_verify_is_decode(void **state) {
  (void)state;
#if defined(__SANITIZE_ADDRESS__)
  skip(); /* ~3 minutes at -O0 for one prompt; test_engine.c covers the mechanics under ASan */
#endif
  const char *model = test_model_path(TEST_MODEL_SMALL);
  struct engine_params ep = engine_params_default();
  ep.model_path = model;
  ep.n_threads = 2;
  ep.n_ctx = 256;
  struct engine *e = NULL;
  struct aug_err err = {0};
  if (engine_create(&ep, &e, &err)) fail_msg("%s", err.msg);
  char *text = test_read_fixture("forward/small.json", NULL);
  json_error_t jerr;
  json_t *root = json_loads(text, 0, &jerr);
  assert_non_null(root);
  json_t *greedy = json_object_get(root, "greedy");
  size_t nv = engine_model(e)->hp.n_vocab;
  static const size_t windows[] = {2, 3, 4, 5, 8, ENGINE_MAX_VERIFY};
  size_t rows = 0, exact = 0, prompts = json_array_size(greedy);
  double worst = 0.0;
  for (size_t p = 0; p < prompts; p++) {
    json_t *item = json_array_get(greedy, p);
    int32_t prompt[256], cont[64];
    size_t np = ids_of(json_object_get(item, "prompt_ids"), prompt, 256);
    size_t nc = ids_of(json_object_get(item, "continuation"), cont, 64);
    /* One-token decode: the fixture's greedy continuation, and its logits for comparison. */
    assert_int_equal(engine_set_prompt(e, prompt, np, NULL, NULL, &err), 0);
    assert_int_equal(argmax(engine_logits(e), nv), cont[0]);
    float *seq = malloc(nc * nv * sizeof *seq);
    for (size_t i = 0; i + 1 < nc; i++) {
      assert_int_equal(engine_push(e, cont[i], NULL, &err), 0);
      memcpy(seq + i * nv, engine_logits(e), nv * sizeof *seq);
      assert_int_equal(argmax(seq + i * nv, nv), cont[i + 1]);
    }
    for (size_t w = 0; w < sizeof windows / sizeof windows[0]; w++) {
      size_t k = windows[w];
      engine_truncate(e, np);
      for (size_t s = 0; s + k < nc; s += k) {
        assert_int_equal(engine_push_tokens(e, cont + s, k, NULL, &err), 0);
        for (size_t i = 0; i < k; i++) {
          const float *row = engine_logits_at(e, i);
          const float *want = seq + (s + i) * nv;
          for (size_t j = 0; j < nv; j++)
            if (fabs((double)row[j] - want[j]) > worst) worst = fabs((double)row[j] - want[j]);
          rows++;
          exact += memcmp(row, want, nv * sizeof *row) == 0;
        }
      }
    }
    free(seq);
  }
  print_message("push_tokens (windows 2..%d) vs one-token decode on %zu fixture prompts: %zu/%zu "
                "rows bit-identical, logits max |diff| %.2e\n",
                ENGINE_MAX_VERIFY, prompts, exact, rows, worst);
  assert_int_equal(exact, rows);
  json_decref(root);
  free(text);
  engine_destroy(e);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_small_model_verify_is_decode),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
