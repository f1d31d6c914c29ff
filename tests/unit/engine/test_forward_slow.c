/* The default model (Qwen2.5-Coder-1.5B-Instruct Q4_K_M) against llama.cpp, as the Engine issue
 * accepts it: greedy 64-token continuations identical on >= 18 of 20 prompts, teacher-forced
 * top-1 identical at >= 99% of 2000 positions; prints the max and mean absolute difference of the
 * top-10 logits. Fixtures: tests/fixtures/forward/make_fixtures.py. Labelled slow (minutes). */
#include "tests/unit/engine/test_forward_common.h"

static void test_default_model_matches_llama_cpp(void **state) {
  (void)state;
  const char *path = test_model_path(TEST_MODEL_DEFAULT);
  struct fixture_result r;
  fixture_check(path, "forward/default.json", 0, 0, &r);
  assert_int_equal(r.greedy_total, 20);
  assert_int_equal(r.top1_total, 2000);
  assert_true(r.greedy_same >= 18);
  assert_true(r.top1_same * 100 >= r.top1_total * 99);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_default_model_matches_llama_cpp),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
