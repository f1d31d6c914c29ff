/* Checks shared by test_synth.c and test_synth_slow.c: a synthetic file loads with the preset's
 * hyper-parameters, holds the tensor types llama.cpp's quantizer would choose (written out by
 * hand here, not derived from synth.c) and dequantizes to finite values of sane magnitude. */
#ifndef AUGURY_TESTS_UNIT_ENGINE_SYNTH_CHECK_H
#define AUGURY_TESTS_UNIT_ENGINE_SYNTH_CHECK_H

#include "tests/unit/test_support.h"

#include <math.h>
#include <unistd.h>

#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/quant.h"
#include "engine/synth.h"

#define ABSENT UINT32_MAX

struct expected_types {
  uint32_t token_embd, output, attn_q, attn_v0, attn_v1, ffn_down0, ffn_down1, attn_output,
      ffn_gate0, ffn_up1;
};

/* What llama.cpp's quantizer picks for the 2-block reductions (use_more_bits(i, 2) is true only
 * for block 1; IQ3_XS's "middle" blocks [n/8, 7n/8) are block 0 only), written out by hand from
 * llama-quant.cpp. output is ABSENT when tied. */
static inline struct expected_types synth_expected(const char *like, enum synth_type type) {
  bool small = !strcmp(like, "qwen2.5-coder-0.5b"); /* n_embd 896: not a multiple of 256 */
  bool untied = !strcmp(like, "qwen2.5-coder-7b");
  struct expected_types e;
  switch (type) {
  case SYNTH_TYPE_F16:
    e = (struct expected_types){QUANT_F16, QUANT_F16, QUANT_F16, QUANT_F16, QUANT_F16,
                                QUANT_F16, QUANT_F16, QUANT_F16, QUANT_F16, QUANT_F16};
    break;
  case SYNTH_TYPE_Q8_0:
    e = (struct expected_types){QUANT_Q8_0, QUANT_Q8_0, QUANT_Q8_0, QUANT_Q8_0, QUANT_Q8_0,
                                QUANT_Q8_0, QUANT_Q8_0, QUANT_Q8_0, QUANT_Q8_0, QUANT_Q8_0};
    break;
  case SYNTH_TYPE_Q4_0: {
    uint32_t head = small ? QUANT_Q8_0 : QUANT_Q6_K;
    e = (struct expected_types){untied ? QUANT_Q4_0 : head,
                                head,
                                QUANT_Q4_0,
                                QUANT_Q4_0,
                                QUANT_Q4_0,
                                QUANT_Q4_0,
                                QUANT_Q4_0,
                                QUANT_Q4_0,
                                QUANT_Q4_0,
                                QUANT_Q4_0};
    break;
  }
  case SYNTH_TYPE_Q4_K_M: {
    uint32_t k4 = small ? QUANT_Q5_0 : QUANT_Q4_K, k6 = small ? QUANT_Q8_0 : QUANT_Q6_K;
    /* ffn_down rows are n_ff long: 4864 = 19 * 256, so even the 0.5B keeps k-quants there. */
    e = (struct expected_types){untied ? k4 : k6, k6,         k4, k4, k6,
                                QUANT_Q4_K,       QUANT_Q6_K, k4, k4, k4};
    break;
  }
  case SYNTH_TYPE_Q5_K_M: {
    /* As Q4_K_M with Q5_K, whose fallback is Q5_1. */
    uint32_t k5 = small ? QUANT_Q5_1 : QUANT_Q5_K, k6 = small ? QUANT_Q8_0 : QUANT_Q6_K;
    e = (struct expected_types){untied ? k5 : k6, k6,         k5, k5, k6,
                                QUANT_Q5_K,       QUANT_Q6_K, k5, k5, k5};
    break;
  }
  default: {
    /* IQ3_XS: attn_q and the middle blocks' ffn_gate/ffn_up IQ3_XXS, attn_v Q4_K (every preset
     * has n_head / n_head_kv >= 4), the rest IQ3_S; both IQ3 fall back to IQ4_NL. */
    uint32_t s3 = small ? QUANT_IQ4_NL : QUANT_IQ3_S, xxs = small ? QUANT_IQ4_NL : QUANT_IQ3_XXS;
    uint32_t k4 = small ? QUANT_Q5_0 : QUANT_Q4_K, k6 = small ? QUANT_Q8_0 : QUANT_Q6_K;
    e = (struct expected_types){untied ? s3 : k6, k6,          xxs, k4,  k4,
                                QUANT_IQ3_S,      QUANT_IQ3_S, s3,  xxs, s3};
    break;
  }
  }
  if (!untied) e.output = ABSENT;
  return e;
}

static inline void check_type(const struct gguf_file *f, const char *name, uint32_t type) {
  const struct gguf_tensor *t = gguf_find_tensor(f, name);
  if (type == ABSENT) {
    if (t) fail_msg("%s should be absent (tied output)", name);
    return;
  }
  if (!t) fail_msg("%s is missing", name);
  if (t->type != type)
    fail_msg("%s has type %s, expected %s", name, quant_type_name(t->type), quant_type_name(type));
}

/* Dequantizes the first row of t and checks it is finite with a spread near the target. */
static inline void check_values(const struct gguf_tensor *t, float lo_rms, float hi_rms,
                                float center) {
  int64_t n = (int64_t)t->ne[0];
  float *row = malloc((size_t)n * sizeof *row);
  assert_non_null(row);
  assert_int_equal(quant_dequantize_row(t->type, t->data, row, n), 0);
  double sq = 0;
  for (int64_t i = 0; i < n; i++) {
    if (!isfinite(row[i])) fail_msg("%s[%lld] is not finite", t->name, (long long)i);
    sq += (double)(row[i] - center) * (row[i] - center);
  }
  double rms = sqrt(sq / (double)n);
  if (rms < lo_rms || rms > hi_rms)
    fail_msg("%s (%s): rms %g outside [%g, %g]", t->name, quant_type_name(t->type), rms, lo_rms,
             hi_rms);
  free(row);
}

static inline void check_file(const char *path, const struct synth_params *p) {
  struct model *m = NULL;
  struct aug_err err = {0};
  if (model_load(path, &m, &err) != 0) fail_msg("%s: %s", path, err.msg);
  struct model_hparams want;
  assert_int_equal(synth_hparams(p, &want, &err), 0);
  const struct model_hparams *hp = &m->hp;
  assert_int_equal(hp->arch, want.arch);
  assert_int_equal(hp->n_layer, 2);
  assert_int_equal(hp->n_embd, want.n_embd);
  assert_int_equal(hp->n_head, want.n_head);
  assert_int_equal(hp->n_head_kv, want.n_head_kv);
  assert_int_equal(hp->head_dim, want.head_dim);
  assert_int_equal(hp->n_ff, want.n_ff);
  assert_int_equal(hp->n_vocab, p->n_vocab);
  assert_int_equal(hp->n_ctx_train, want.n_ctx_train);
  assert_true(hp->rms_eps == want.rms_eps);
  assert_true(hp->rope_freq_base == want.rope_freq_base);
  assert_int_equal(hp->tied_output, want.tied_output);
  assert_int_equal(hp->has_rope_freqs, want.has_rope_freqs);

  struct expected_types e = synth_expected(p->like, p->type);
  check_type(m->file, "token_embd.weight", e.token_embd);
  check_type(m->file, "output.weight", e.output);
  check_type(m->file, "blk.0.attn_q.weight", e.attn_q);
  check_type(m->file, "blk.0.attn_v.weight", e.attn_v0);
  check_type(m->file, "blk.1.attn_v.weight", e.attn_v1);
  check_type(m->file, "blk.0.ffn_down.weight", e.ffn_down0);
  check_type(m->file, "blk.1.ffn_down.weight", e.ffn_down1);
  check_type(m->file, "blk.1.attn_output.weight", e.attn_output);
  check_type(m->file, "blk.0.ffn_gate.weight", e.ffn_gate0);
  check_type(m->file, "blk.1.ffn_up.weight", e.ffn_up1);
  check_type(m->file, "blk.1.ffn_norm.weight", QUANT_F32);

  /* Weights ~0.02 spread (+-50%: jittered scales, finite row), norms ~1, biases small. */
  const struct gguf_tensor *weights[] = {m->tok_embd,           m->output,
                                         m->layers[1].wq,       m->layers[0].wv,
                                         m->layers[1].wv,       m->layers[1].ffn_down,
                                         m->layers[0].ffn_gate, m->layers[1].ffn_up};
  for (size_t i = 0; i < sizeof weights / sizeof weights[0]; i++)
    check_values(weights[i], 0.01f, 0.03f, 0.0f);
  check_values(m->layers[0].attn_norm, 0.005f, 0.04f, 1.0f);
  if (m->layers[0].bq) check_values(m->layers[0].bq, 0.002f, 0.02f, 0.0f);
  if (m->rope_freqs) {
    const float *fr = m->rope_freqs->data;
    assert_true(fr[0] == 1.0f);                         /* highest frequency: unscaled */
    assert_true(fr[m->rope_freqs->ne[0] - 1] == 32.0f); /* lowest: scaled by the factor */
  }
  model_destroy(m);
}

/* Writes like x type reduced to 2 blocks and 512 tokens into dir, checks it, removes it. */
static inline void synth_check_one(const char *dir, const char *like, enum synth_type type) {
  struct synth_params p = synth_params_default();
  p.like = like;
  p.type = type;
  p.n_layers = 2;
  p.n_vocab = 512;
  p.seed = 42;
  char path[512];
  snprintf(path, sizeof path, "%s/%s-%s.gguf", dir, p.like, synth_type_name(p.type));
  struct aug_err err = {0};
  if (synth_write(&p, path, &err) != 0) fail_msg("%s: %s", path, err.msg);
  check_file(path, &p);
  unlink(path);
}

#endif
