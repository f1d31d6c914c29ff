/* Greedy decoding helpers shared by the engine tests that compare two engines (CPU against GPU,
 * f16 against q4_0 KV) token by token. Include after cmocka and the engine and tokenizer headers. */
#ifndef AUGURY_TESTS_UNIT_ENGINE_GREEDY_COMMON_H
#define AUGURY_TESTS_UNIT_ENGINE_GREEDY_COMMON_H

#include <stdint.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/tokenizer.h"

static inline int32_t argmax(const float *l, size_t n) {
  size_t best = 0;
  for (size_t i = 1; i < n; i++)
    if (l[i] > l[best]) best = i;
  return (int32_t)best;
}

/* n_gen greedy tokens after prompt into out; with force, teacher-forced on it (the top-1 of each
 * step is still written to out, so two engines are compared step by step, not by where one
 * flipped argmax sent them). */
static inline void continue_prompt(struct engine *e, const char *prompt, const int32_t *force,
                                   int n_gen, int32_t *out) {
  int32_t ids[256];
  size_t n = 0;
  struct aug_err err = {0};
  struct tokenize_options opts = {0};
  if (tokenizer_encode(engine_tokenizer(e), prompt, strlen(prompt), opts, ids, 256, &n, &err))
    fail_msg("tokenize: %s", err.msg);
  struct engine_eval_stats st;
  if (engine_set_prompt(e, ids, n, NULL, &st, &err)) fail_msg("prompt: %s", err.msg);
  size_t nv = engine_model(e)->hp.n_vocab;
  for (int i = 0; i < n_gen; i++) {
    const float *l = engine_logits(e);
    assert_non_null(l);
    out[i] = argmax(l, nv);
    if (i + 1 < n_gen && engine_push(e, force ? force[i] : out[i], NULL, &err))
      fail_msg("push: %s", err.msg);
  }
}

#endif
