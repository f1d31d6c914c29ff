/* Token sampling from logits: greedy, or a chain in llama.cpp's order (common/sampling):
 * repetition penalty over the last n accepted tokens, then top-k, top-p and min-p on the
 * untempered distribution, then temperature and a seeded draw. The random generator lives in the
 * sampler (no global state): the same seed and logits give the same tokens. Scratch is sized at
 * creation, so sampling a token allocates nothing. One sampler per request; not thread-safe. */
#ifndef AUGURY_ENGINE_SAMPLER_H
#define AUGURY_ENGINE_SAMPLER_H

#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"

struct sampler; /* opaque */

struct sampler_params {
  float temperature;     /* <= 0: greedy (argmax after the penalty; first maximum on ties) */
  int32_t top_k;         /* keep the k most likely; <= 0 keeps all */
  float top_p;           /* keep the smallest head whose probability mass reaches p; >= 1 off */
  float min_p;           /* keep tokens with p >= min_p * p_max; <= 0 off */
  float repeat_penalty;  /* llama.cpp's: logit / r if > 0 else logit * r, once per distinct
                            token among the last repeat_last_n accepted; 1 off */
  int32_t repeat_last_n; /* window of the penalty; 0 off */
  uint64_t seed;
};

/* Greedy, no penalty (temperature 0, top_k 40, top_p 0.95, min_p 0.05 for when temperature is
 * raised: llama.cpp's defaults; repeat_penalty 1, last 64; seed 0). */
struct sampler_params sampler_params_default(void);

int sampler_create(const struct sampler_params *params, int32_t n_vocab, struct sampler **out,
                   struct aug_err *err);
void sampler_destroy(struct sampler *s); /* NULL is a no-op */

/* Forgets the accepted tokens and reseeds the generator with params.seed. */
void sampler_reset(struct sampler *s);
/* Records a token in the repetition-penalty window (call for prompt and generated tokens). */
void sampler_accept(struct sampler *s, int32_t token);

/* Picks a token from n_vocab logits (not modified). */
int32_t sampler_sample(struct sampler *s, const float *logits);

/* The distribution sampler_sample draws from: after the penalty and the filters, candidates
 * ids[0..n) sorted by decreasing probability with probs summing to 1 (temperature applied).
 * Greedy gives the single argmax with probability 1. Pointers are valid until the next call. */
void sampler_distribution(struct sampler *s, const float *logits, const int32_t **ids,
                          const float **probs, size_t *n);

#endif
