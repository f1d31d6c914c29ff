/* The default model (Qwen2.5-Coder-1.5B-Instruct Q4_K_M) against llama.cpp fixtures
 * (tests/fixtures/forward/make_fixtures.py): 20 greedy 64-token continuations and teacher-forced
 * top-1 / top-10 logits at 2000 positions; prints the agreement and the max and mean absolute
 * difference of the top-10 logits. Labelled slow (minutes).
 *
 * The CPU backend reproduces the summation order of every kernel llama.cpp runs for this model
 * (backends/cpu/cpu_ref.h), so the result is exact: every continuation and every top-1 token the
 * same, and the logits equal to the fixture's 4 decimals. With 8-bit activations any last-bit
 * difference flips roundings that cascade through 28 layers (llama.cpp's own single-token and
 * batched paths agree on only 97.5% of top-1 tokens), so anything short of exact here means an
 * order was lost; the Engine issue's bar (>= 18/20 greedy, >= 99% top-1) is printed too. */
#include "tests/unit/engine/test_forward_common.h"

static void test_default_model_matches_llama_cpp(void **state) {
  (void)state;
  const char *path = test_model_path(TEST_MODEL_DEFAULT);
  struct fixture_result r;
  fixture_check(path, "forward/default.json", SIZE_MAX, SIZE_MAX, &r);
  assert_int_equal(r.greedy_total, 20);
  assert_int_equal(r.top1_total, 2000);
  bool issue_met = r.greedy_same >= 18 && r.top1_same * 100 >= r.top1_total * 99;
  print_message("Engine issue exactness target (>= 18/20 greedy, >= 99%% top-1): %s\n",
                issue_met ? "met" : "NOT met");
  assert_int_equal(r.greedy_same, 20);
  assert_int_equal(r.top1_same, 2000);
  assert_true(r.max_diff <= 1e-4); /* the fixture rounds logits to 4 decimals */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_default_model_matches_llama_cpp),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
