/* Sampler: penalty, filters and a seeded draw over scratch arrays sized at creation.
 * The filter order and the repetition-penalty formula follow llama.cpp (src/llama-sampling.cpp:
 * penalties, top-k, top-p, min-p, temperature, dist) so that the same settings mean the same
 * thing in both. Sorting is our own quicksort: qsort may allocate (glibc's merge sort). */
#include "engine/sampler.h"

#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "engine/alloc.h"

struct sampler_candidate {
  float logit;
  int32_t id;
};

struct sampler {
  struct sampler_params params;
  int32_t n_vocab;
  uint64_t rng;    /* splitmix64 state */
  float *work;     /* [n_vocab] logits after the penalty */
  uint32_t *stamp; /* [n_vocab] last pass that penalized the token */
  uint32_t pass;
  struct sampler_candidate *cands; /* [n_vocab] */
  int32_t *ids;                    /* [n_vocab] the distribution's ids */
  float *probs;                    /* [n_vocab] and probabilities */
  int32_t *history;                /* ring of the last repeat_last_n accepted tokens */
  size_t n_history, history_next;
};

struct sampler_params sampler_params_default(void) {
  return (struct sampler_params){.temperature = 0.0f,
                                 .top_k = 40,
                                 .top_p = 0.95f,
                                 .min_p = 0.05f,
                                 .repeat_penalty = 1.0f,
                                 .repeat_last_n = 64,
                                 .seed = 0};
}

/* splitmix64 (Steele, Lea, Flood 2014): small, fast, good enough to draw tokens. */
static uint64_t sampler_next(struct sampler *s) {
  uint64_t z = (s->rng += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/* Uniform in [0, 1) with 24 bits, exactly representable as a float. */
static float sampler_uniform(struct sampler *s) {
  return (float)(sampler_next(s) >> 40) * (1.0f / 16777216.0f);
}

int sampler_create(const struct sampler_params *params, int32_t n_vocab, struct sampler **out,
                   struct aug_err *err) {
  *out = NULL;
  if (n_vocab <= 0) return aug_err_set(err, AUG_EINVAL, "sampler: n_vocab %d", n_vocab);
  if (params->repeat_last_n < 0 || !(params->repeat_penalty > 0.0f))
    return aug_err_set(err, AUG_EINVAL, "sampler: repeat_last_n %d, repeat_penalty %g",
                       params->repeat_last_n, (double)params->repeat_penalty);
  struct sampler *s = aug_calloc(1, sizeof *s);
  if (!s) return aug_err_set(err, AUG_ENOMEM, "sampler: out of memory");
  s->params = *params;
  s->n_vocab = n_vocab;
  size_t n = (size_t)n_vocab;
  s->work = aug_malloc(n * sizeof *s->work);
  s->stamp = aug_calloc(n, sizeof *s->stamp);
  s->cands = aug_malloc(n * sizeof *s->cands);
  s->ids = aug_malloc(n * sizeof *s->ids);
  s->probs = aug_malloc(n * sizeof *s->probs);
  s->history = aug_malloc(((size_t)params->repeat_last_n + 1) * sizeof *s->history);
  if (!s->work || !s->stamp || !s->cands || !s->ids || !s->probs || !s->history) {
    sampler_destroy(s);
    return aug_err_set(err, AUG_ENOMEM, "sampler: out of memory for %d candidates", n_vocab);
  }
  sampler_reset(s);
  *out = s;
  return 0;
}

void sampler_destroy(struct sampler *s) {
  if (!s) return;
  aug_free(s->work);
  aug_free(s->stamp);
  aug_free(s->cands);
  aug_free(s->ids);
  aug_free(s->probs);
  aug_free(s->history);
  aug_free(s);
}

void sampler_reset(struct sampler *s) {
  s->rng = s->params.seed;
  s->n_history = 0;
  s->history_next = 0;
}

void sampler_accept(struct sampler *s, int32_t token) {
  size_t cap = (size_t)s->params.repeat_last_n;
  if (cap == 0) return;
  s->history[s->history_next] = token;
  s->history_next = (s->history_next + 1) % cap;
  if (s->n_history < cap) s->n_history++;
}

/* work = logits with the repetition penalty applied once per distinct token in the window. */
static void sampler_penalize(struct sampler *s, const float *logits) {
  memcpy(s->work, logits, (size_t)s->n_vocab * sizeof *s->work);
  float r = s->params.repeat_penalty;
  if (r == 1.0f || s->n_history == 0) return;
  if (++s->pass == 0) { /* stamps wrapped: clear them so no token looks already penalized */
    memset(s->stamp, 0, (size_t)s->n_vocab * sizeof *s->stamp);
    s->pass = 1;
  }
  for (size_t i = 0; i < s->n_history; i++) {
    int32_t t = s->history[i];
    if (t < 0 || t >= s->n_vocab || s->stamp[t] == s->pass) continue;
    s->stamp[t] = s->pass;
    s->work[t] = s->work[t] > 0.0f ? s->work[t] / r : s->work[t] * r;
  }
}

/* Higher logit first; equal logits by lower id, so the order is total and deterministic. */
static bool sampler_before(const struct sampler_candidate *a, const struct sampler_candidate *b) {
  return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static void sampler_swap(struct sampler_candidate *a, struct sampler_candidate *b) {
  struct sampler_candidate t = *a;
  *a = *b;
  *b = t;
}

/* Hoare-style partition around the median of three; returns the pivot's final index. */
static size_t sampler_partition(struct sampler_candidate *c, size_t n) {
  size_t mid = n / 2;
  if (sampler_before(&c[mid], &c[0])) sampler_swap(&c[mid], &c[0]);
  if (sampler_before(&c[n - 1], &c[0])) sampler_swap(&c[n - 1], &c[0]);
  if (sampler_before(&c[n - 1], &c[mid])) sampler_swap(&c[n - 1], &c[mid]);
  sampler_swap(&c[mid], &c[n - 1]); /* pivot (the median) at the end */
  struct sampler_candidate pivot = c[n - 1];
  size_t store = 0;
  for (size_t i = 0; i + 1 < n; i++)
    if (sampler_before(&c[i], &pivot)) sampler_swap(&c[i], &c[store++]);
  sampler_swap(&c[store], &c[n - 1]);
  return store;
}

/* Sorts c[0..n) so that its first k entries are the k best, in order (quickselect, then
 * quicksort of the head; recursion only on the smaller side keeps the stack O(log n)). */
static void sampler_partial_sort(struct sampler_candidate *c, size_t n, size_t k) {
  while (n > 1 && k > 0) {
    if (n <= 16) { /* insertion sort */
      for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && sampler_before(&c[j], &c[j - 1]); j--)
          sampler_swap(&c[j], &c[j - 1]);
      return;
    }
    size_t p = sampler_partition(c, n);
    if (p + 1 < k) { /* the head is sorted fully, the tail only up to k */
      sampler_partial_sort(c, p, p);
      c += p + 1;
      n -= p + 1;
      k -= p + 1;
    } else {
      n = p; /* everything we need lies before the pivot (pivot itself is in place) */
      if (k > n) k = n;
    }
  }
}

void sampler_distribution(struct sampler *s, const float *logits, const int32_t **ids,
                          const float **probs, size_t *n_out) {
  const struct sampler_params *p = &s->params;
  sampler_penalize(s, logits);
  size_t n = (size_t)s->n_vocab;
  if (p->temperature <= 0.0f) {
    int32_t best = 0;
    for (int32_t i = 1; i < s->n_vocab; i++)
      if (s->work[i] > s->work[best]) best = i;
    s->ids[0] = best;
    s->probs[0] = 1.0f;
    *ids = s->ids;
    *probs = s->probs;
    *n_out = 1;
    return;
  }
  /* min-p's cut is a logit threshold: max + log(min_p) (llama.cpp applies it to logits), so
   * tokens below it can be dropped before sorting; top-p still normalizes over every token
   * top-k kept, as it runs first in llama.cpp's chain. */
  float max_logit = s->work[0];
  for (size_t i = 1; i < n; i++)
    if (s->work[i] > max_logit) max_logit = s->work[i];
  size_t k = p->top_k > 0 && (size_t)p->top_k < n ? (size_t)p->top_k : n;
  for (size_t i = 0; i < n; i++)
    s->cands[i] = (struct sampler_candidate){s->work[i], (int32_t)i};
  bool use_top_p = p->top_p < 1.0f;
  bool use_min_p = p->min_p > 0.0f;
  size_t kept = k;
  if (k < n) sampler_partial_sort(s->cands, n, k);
  /* Normalizer of the top-k set (for top-p), in doubles for 150k terms. */
  double z = 0.0;
  if (use_top_p)
    for (size_t i = 0; i < k; i++)
      z += exp((double)s->cands[i].logit - max_logit);
  if (use_min_p) {
    float threshold = max_logit + logf(p->min_p);
    size_t m = 0;
    for (size_t i = 0; i < kept; i++)
      if (s->cands[i].logit >= threshold) s->cands[m++] = s->cands[i];
    kept = m > 0 ? m : 1; /* the maximum always passes; keep one regardless (min_keep) */
  }
  if (k == n || use_min_p) sampler_partial_sort(s->cands, kept, kept);
  if (use_top_p) {
    double cum = 0.0;
    size_t m = 0;
    while (m < kept) {
      cum += exp((double)s->cands[m].logit - max_logit) / z;
      m++;
      if (cum >= p->top_p) break;
    }
    kept = m;
  }
  /* Temperature and softmax over what is left. */
  double sum = 0.0;
  for (size_t i = 0; i < kept; i++) {
    double e = exp(((double)s->cands[i].logit - max_logit) / p->temperature);
    s->probs[i] = (float)e;
    s->ids[i] = s->cands[i].id;
    sum += e;
  }
  for (size_t i = 0; i < kept; i++)
    s->probs[i] = (float)(s->probs[i] / sum);
  *ids = s->ids;
  *probs = s->probs;
  *n_out = kept;
}

int32_t sampler_sample(struct sampler *s, const float *logits) {
  const int32_t *ids;
  const float *probs;
  size_t n;
  sampler_distribution(s, logits, &ids, &probs, &n);
  if (n == 1) return ids[0];
  float u = sampler_uniform(s);
  float cum = 0.0f;
  for (size_t i = 0; i < n; i++) {
    cum += probs[i];
    if (u < cum) return ids[i];
  }
  return ids[n - 1]; /* rounding left u above the last partial sum */
}
