/* Sampler tests against distributions computed by hand: greedy ties, the repetition penalty (and
 * its window), top-k / top-p / min-p cut points, temperature, and seeded draws whose frequencies
 * match the distribution. */
#include <math.h>

#include "engine/sampler.h"
#include "tests/unit/test_support.h"

static struct sampler *make(struct sampler_params p, int32_t n_vocab) {
  struct sampler *s = NULL;
  struct aug_err err = {0};
  assert_int_equal(sampler_create(&p, n_vocab, &s, &err), 0);
  return s;
}

static struct sampler_params plain(float temperature) {
  struct sampler_params p = sampler_params_default();
  p.temperature = temperature;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  return p;
}

/* Logits for probabilities 1/2, 1/4, 1/8, 1/8. */
static const float quarter_logits[4] = {1.3862944f, 0.6931472f, 0.0f, 0.0f};

static void expect_dist(struct sampler *s, const float *logits, size_t n_expected,
                        const int32_t *ids_expected, const double *probs_expected) {
  const int32_t *ids;
  const float *probs;
  size_t n;
  sampler_distribution(s, logits, &ids, &probs, &n);
  assert_int_equal(n, n_expected);
  for (size_t i = 0; i < n; i++) {
    assert_int_equal(ids[i], ids_expected[i]);
    assert_true(fabs(probs[i] - probs_expected[i]) < 1e-5);
  }
}

static void test_greedy_first_max(void **state) {
  (void)state;
  struct sampler *s = make(plain(0.0f), 4);
  const float logits[4] = {1.0f, 3.0f, 3.0f, 2.0f};
  assert_int_equal(sampler_sample(s, logits), 1);
  sampler_destroy(s);
  sampler_destroy(NULL);
}

static void test_repeat_penalty_once_per_token(void **state) {
  (void)state;
  struct sampler_params p = plain(0.0f);
  p.repeat_penalty = 1.5f;
  struct sampler *s = make(p, 2);
  const float logits[2] = {2.0f, 1.0f};
  /* 2.0 / 1.5 = 1.33 > 1.0: still token 0. Applied twice it would be 0.89 and lose. */
  sampler_accept(s, 0);
  sampler_accept(s, 0);
  assert_int_equal(sampler_sample(s, logits), 0);
  /* Negative logits are multiplied: -1 * 1.5 = -1.5 < -1.2. */
  const float negative[2] = {-1.0f, -1.2f};
  assert_int_equal(sampler_sample(s, negative), 1);
  sampler_destroy(s);
}

static void test_repeat_penalty_window(void **state) {
  (void)state;
  struct sampler_params p = plain(0.0f);
  p.repeat_penalty = 2.0f;
  p.repeat_last_n = 3;
  struct sampler *s = make(p, 8);
  const float logits[8] = {2.0f, 1.5f, 0, 0, 0, 0, 0, 0};
  sampler_accept(s, 0);
  assert_int_equal(sampler_sample(s, logits), 1); /* 2.0 / 2 = 1.0 < 1.5 */
  sampler_accept(s, 5);
  sampler_accept(s, 6);
  assert_int_equal(sampler_sample(s, logits), 1); /* 0 still among the last 3 */
  sampler_accept(s, 7);
  assert_int_equal(sampler_sample(s, logits), 0); /* 0 left the window */
  sampler_reset(s);
  sampler_accept(s, 0);
  assert_int_equal(sampler_sample(s, logits), 1);
  sampler_destroy(s);
}

static void test_temperature_one_is_softmax(void **state) {
  (void)state;
  struct sampler *s = make(plain(1.0f), 4);
  const int32_t ids[4] = {0, 1, 2, 3};
  const double probs[4] = {0.5, 0.25, 0.125, 0.125};
  expect_dist(s, quarter_logits, 4, ids, probs);
  sampler_destroy(s);
}

static void test_temperature_two_flattens(void **state) {
  (void)state;
  struct sampler *s = make(plain(2.0f), 4);
  /* p ~ exp(l / 2) = 2, sqrt(2), 1, 1. */
  double z = 2.0 + sqrt(2.0) + 2.0;
  const int32_t ids[4] = {0, 1, 2, 3};
  const double probs[4] = {2.0 / z, sqrt(2.0) / z, 1.0 / z, 1.0 / z};
  expect_dist(s, quarter_logits, 4, ids, probs);
  sampler_destroy(s);
}

static void test_top_k(void **state) {
  (void)state;
  struct sampler_params p = plain(1.0f);
  p.top_k = 2;
  struct sampler *s = make(p, 4);
  const int32_t ids[2] = {0, 1};
  const double probs[2] = {2.0 / 3.0, 1.0 / 3.0};
  expect_dist(s, quarter_logits, 2, ids, probs);
  sampler_destroy(s);
}

static void test_top_p(void **state) {
  (void)state;
  struct sampler_params p = plain(1.0f);
  p.top_p = 0.7f; /* 0.5 < 0.7 <= 0.75: two tokens */
  struct sampler *s = make(p, 4);
  const int32_t ids[2] = {0, 1};
  const double probs[2] = {2.0 / 3.0, 1.0 / 3.0};
  expect_dist(s, quarter_logits, 2, ids, probs);
  sampler_destroy(s);
  p.top_p = 0.5f; /* reached by the first token alone */
  s = make(p, 4);
  const double one[1] = {1.0};
  expect_dist(s, quarter_logits, 1, ids, one);
  sampler_destroy(s);
}

static void test_min_p(void **state) {
  (void)state;
  struct sampler_params p = plain(1.0f);
  p.min_p = 0.3f; /* keep p >= 0.15: 0.5 and 0.25 */
  struct sampler *s = make(p, 4);
  const int32_t ids[4] = {0, 1, 2, 3};
  const double two[2] = {2.0 / 3.0, 1.0 / 3.0};
  expect_dist(s, quarter_logits, 2, ids, two);
  sampler_destroy(s);
  p.min_p = 0.2f; /* keep p >= 0.1: all four */
  s = make(p, 4);
  const double all[4] = {0.5, 0.25, 0.125, 0.125};
  expect_dist(s, quarter_logits, 4, ids, all);
  sampler_destroy(s);
}

static void test_top_p_then_min_p_normalize_before_cut(void **state) {
  (void)state;
  /* top-p runs before min-p (llama.cpp order) on the top-k set's probabilities: with min-p 0.3
   * and top-p 0.6, top-p alone keeps {0, 1} (0.5 < 0.6 <= 0.75); min-p keeps {0, 1} too. Had
   * min-p renormalized first (p = 2/3, 1/3), top-p 0.6 would have kept only token 0. */
  struct sampler_params p = plain(1.0f);
  p.min_p = 0.3f;
  p.top_p = 0.6f;
  struct sampler *s = make(p, 4);
  const int32_t ids[2] = {0, 1};
  const double probs[2] = {2.0 / 3.0, 1.0 / 3.0};
  expect_dist(s, quarter_logits, 2, ids, probs);
  sampler_destroy(s);
}

static void test_top_k_large_vocab_matches_sort(void **state) {
  (void)state;
  enum { N = 5003, K = 57 };
  static float logits[N];
  uint32_t x = 12345;
  for (int i = 0; i < N; i++) {
    x = x * 1664525u + 1013904223u;
    logits[i] = (float)(x >> 8) / (float)(1u << 24) * 10.0f;
  }
  logits[17] = logits[4000]; /* a tie: lower id first */
  struct sampler_params p = plain(1.0f);
  p.top_k = K;
  struct sampler *s = make(p, N);
  const int32_t *ids;
  const float *probs;
  size_t n;
  sampler_distribution(s, logits, &ids, &probs, &n);
  assert_int_equal(n, K);
  /* Brute force: the i-th best is the one with exactly i tokens ordered before it. */
  for (size_t i = 0; i < n; i++) {
    int32_t id = ids[i];
    int before = 0;
    for (int j = 0; j < N; j++)
      if (logits[j] > logits[id] || (logits[j] == logits[id] && j < id)) before++;
    assert_int_equal(before, (int)i);
    if (i > 0) assert_true(probs[i] <= probs[i - 1]);
  }
  sampler_destroy(s);
}

static void test_seeded_draws_follow_distribution(void **state) {
  (void)state;
  struct sampler_params p = plain(1.0f);
  p.seed = 42;
  struct sampler *s = make(p, 4);
  enum { DRAWS = 40000 };
  int counts[4] = {0};
  int32_t first[16];
  for (int i = 0; i < DRAWS; i++) {
    int32_t t = sampler_sample(s, quarter_logits);
    assert_true(t >= 0 && t < 4);
    counts[t]++;
    if (i < 16) first[i] = t;
  }
  const double expected[4] = {0.5, 0.25, 0.125, 0.125};
  for (int i = 0; i < 4; i++) {
    double f = (double)counts[i] / DRAWS;
    /* 5 standard deviations of a binomial frequency at p = 0.5 is 0.0125. */
    assert_true(fabs(f - expected[i]) < 0.0125);
  }
  /* Same seed after reset: the same tokens. */
  sampler_reset(s);
  for (int i = 0; i < 16; i++)
    assert_int_equal(sampler_sample(s, quarter_logits), first[i]);
  sampler_destroy(s);
  /* Another seed: a different sequence (16 draws from 4 tokens colliding is ~1e-5 likely). */
  p.seed = 43;
  s = make(p, 4);
  int same = 0;
  for (int i = 0; i < 16; i++)
    same += sampler_sample(s, quarter_logits) == first[i];
  assert_true(same < 16);
  sampler_destroy(s);
}

static void test_invalid_params(void **state) {
  (void)state;
  struct sampler *s = NULL;
  struct aug_err err = {0};
  struct sampler_params p = plain(0.0f);
  assert_int_equal(sampler_create(&p, 0, &s, &err), AUG_EINVAL);
  p.repeat_penalty = 0.0f;
  assert_int_equal(sampler_create(&p, 10, &s, &err), AUG_EINVAL);
  assert_null(s);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_greedy_first_max),
      cmocka_unit_test(test_repeat_penalty_once_per_token),
      cmocka_unit_test(test_repeat_penalty_window),
      cmocka_unit_test(test_temperature_one_is_softmax),
      cmocka_unit_test(test_temperature_two_flattens),
      cmocka_unit_test(test_top_k),
      cmocka_unit_test(test_top_p),
      cmocka_unit_test(test_min_p),
      cmocka_unit_test(test_top_p_then_min_p_normalize_before_cut),
      cmocka_unit_test(test_top_k_large_vocab_matches_sort),
      cmocka_unit_test(test_seeded_draws_follow_distribution),
      cmocka_unit_test(test_invalid_params),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
