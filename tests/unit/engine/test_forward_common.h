/* Helpers shared by the forward-pass and engine tests: a tiny random model written with the GGUF
 * writer (real tensor layout, every weight type the CPU backend must handle), a plain scalar
 * reference forward pass over dequantized weights (llama2.c style, one token at a time), and the
 * comparison against llama.cpp fixtures (tests/fixtures/forward/). */
#ifndef AUGURY_TESTS_UNIT_ENGINE_TEST_FORWARD_COMMON_H
#define AUGURY_TESTS_UNIT_ENGINE_TEST_FORWARD_COMMON_H

#include <jansson.h>
#include <math.h>
#include <unistd.h>

#include "backends/backend.h"
#include "engine/forward.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/quant.h"
#include "tests/unit/test_support.h"

/* ---- tiny random model ---------------------------------------------------------------------- */

struct tiny_spec {
  enum model_arch arch;
  uint32_t n_layer, n_embd, n_head, n_head_kv, n_ff, n_vocab;
  bool rope_freqs; /* llama only: write a rope_freqs tensor */
};

struct tiny_writer {
  struct gguf_writer *w;
  uint64_t rng;
  int rc;
  bool rope_freqs;
};

static inline float tiny_rand(uint64_t *s) { /* splitmix64 -> [-1, 1) */
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return (float)(z >> 40) / (float)(1u << 23) - 1.0f;
}

/* Weight types by tensor, so one small model exercises F32, F16, Q8_0, Q4_0, Q4_K and Q6_K. */
static inline uint32_t tiny_type(const char *name, uint64_t ne0) {
  if (strstr(name, "attn_q.")) return QUANT_Q8_0;
  if (strstr(name, "attn_k.")) return QUANT_F16;
  if (strstr(name, "attn_v.")) return QUANT_F32;
  if (strstr(name, "attn_output")) return QUANT_Q4_0;
  if (strstr(name, "ffn_gate")) return ne0 % QK_K == 0 ? QUANT_Q4_K : QUANT_Q8_0;
  if (strstr(name, "ffn_up")) return ne0 % QK_K == 0 ? QUANT_Q6_K : QUANT_Q8_0;
  if (strstr(name, "ffn_down")) return ne0 % QK_K == 0 ? QUANT_Q4_K : QUANT_Q8_0;
  return QUANT_Q8_0; /* token_embd, output */
}

static inline int tiny_add_tensor(const struct model_tensor_spec *spec, void *user) {
  struct tiny_writer *tw = user;
  if (spec->optional && strstr(spec->name, "rope_freqs") && !tw->rope_freqs) return 0;
  uint64_t ne0 = spec->ne[0], rows = spec->ne[1];
  uint32_t type = spec->is_norm_or_bias ? QUANT_F32 : tiny_type(spec->name, ne0);
  float *row = malloc(ne0 * sizeof *row);
  size_t row_size = quant_row_size(type, ne0);
  unsigned char *data = malloc(row_size * rows);
  assert_non_null(row);
  assert_non_null(data);
  /* Weight scale 1/sqrt(fan-in) keeps activations O(1); norms near 1, biases small. */
  float scale = 1.7f / sqrtf((float)ne0);
  for (uint64_t r = 0; r < rows; r++) {
    for (uint64_t i = 0; i < ne0; i++) {
      float u = tiny_rand(&tw->rng);
      if (strstr(spec->name, "rope_freqs"))
        row[i] = 1.0f + 3.0f * (u + 1.0f) / 2.0f;
      else if (strstr(spec->name, "norm"))
        row[i] = 1.0f + 0.2f * u;
      else if (strstr(spec->name, "bias"))
        row[i] = 0.1f * u;
      else if (strstr(spec->name, "token_embd"))
        row[i] = u;
      else
        row[i] = u * scale;
    }
    assert_int_equal(quant_quantize_row(type, row, data + r * row_size, (int64_t)ne0), 0);
  }
  uint64_t ne[4] = {spec->ne[0], spec->ne[1], 1, 1};
  if (tw->rc == 0)
    tw->rc =
        gguf_writer_add_tensor(tw->w, spec->name, type, spec->n_dims, ne, data, row_size * rows);
  free(row);
  free(data);
  return 0;
}

/* Writes a random model to a fresh temporary path (caller unlinks) and returns the path. */
static inline void tiny_write(const struct tiny_spec *s, uint64_t seed, char *path,
                              size_t path_cap) {
  snprintf(path, path_cap, "/tmp/augury-tiny-XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  struct aug_err err = {0};
  struct gguf_writer *w = NULL;
  assert_int_equal(gguf_writer_create(&w, &err), 0);
  const char *arch = model_arch_name(s->arch);
  char key[128];
  assert_int_equal(gguf_writer_add_string(w, "general.architecture", arch, strlen(arch)), 0);
#define TINY_U32(suffix, value)                                                                    \
  snprintf(key, sizeof key, "%s." suffix, arch);                                                   \
  assert_int_equal(gguf_writer_add_uint32(w, key, (value)), 0)
  TINY_U32("context_length", 256);
  TINY_U32("embedding_length", s->n_embd);
  TINY_U32("block_count", s->n_layer);
  TINY_U32("feed_forward_length", s->n_ff);
  TINY_U32("attention.head_count", s->n_head);
  TINY_U32("attention.head_count_kv", s->n_head_kv);
#undef TINY_U32
  snprintf(key, sizeof key, "%s.attention.layer_norm_rms_epsilon", arch);
  assert_int_equal(gguf_writer_add_float32(w, key, 1e-6f), 0);
  snprintf(key, sizeof key, "%s.rope.freq_base", arch);
  assert_int_equal(gguf_writer_add_float32(w, key, s->arch == MODEL_ARCH_QWEN2 ? 1e6f : 5e5f), 0);

  struct model_hparams hp = {.arch = s->arch,
                             .n_vocab = s->n_vocab,
                             .n_embd = s->n_embd,
                             .n_layer = s->n_layer,
                             .n_head = s->n_head,
                             .n_head_kv = s->n_head_kv,
                             .n_ff = s->n_ff,
                             .head_dim = s->n_embd / s->n_head,
                             .n_rot = s->n_embd / s->n_head,
                             .has_rope_freqs = s->rope_freqs,
                             .tied_output = false,
                             .has_qkv_bias = s->arch == MODEL_ARCH_QWEN2};
  struct tiny_writer tw = {.w = w, .rng = seed, .rope_freqs = s->rope_freqs};
  assert_int_equal(model_for_each_tensor_spec(&hp, tiny_add_tensor, &tw), 0);
  assert_int_equal(tw.rc, 0);
  int rc = gguf_writer_write(w, path, &err);
  if (rc) fail_msg("writing %s: %s", path, err.msg);
  gguf_writer_destroy(w);
}

/* ---- a forward pass on the CPU backend --------------------------------------------------------
 */

struct test_fwd {
  struct model *model;
  const struct backend_ops *ops;
  struct backend *be;
  struct forward_device *layers;
  struct forward *fwd;
};

static inline void test_fwd_open(struct test_fwd *t, const char *path, const char *backend_options,
                                 struct forward_params fp) {
  struct aug_err err = {0};
  memset(t, 0, sizeof *t);
  if (model_load(path, &t->model, &err)) fail_msg("model_load %s: %s", path, err.msg);
  t->ops = backend_cpu_ops();
  if (t->ops->create(backend_options, &t->be, &err)) fail_msg("cpu backend: %s", err.msg);
  uint32_t n_layer = t->model->hp.n_layer;
  t->layers = calloc(n_layer, sizeof *t->layers);
  assert_non_null(t->layers);
  for (uint32_t i = 0; i < n_layer; i++)
    t->layers[i] = (struct forward_device){t->ops, t->be};
  struct forward_placement pl = {n_layer, t->layers, {t->ops, t->be}};
  if (forward_create(t->model, &pl, &fp, &t->fwd, &err)) fail_msg("forward_create: %s", err.msg);
}

static inline void test_fwd_close(struct test_fwd *t) {
  forward_destroy(t->fwd);
  if (t->be) t->ops->destroy(t->be);
  model_destroy(t->model);
  free(t->layers);
}

static inline void test_fwd_eval(struct test_fwd *t, const int32_t *tokens, size_t n, bool all) {
  struct aug_err err = {0};
  int rc = forward_eval(t->fwd, tokens, n, all, NULL, &err);
  if (rc) fail_msg("forward_eval of %zu tokens: %s", n, err.msg);
}

static inline int32_t test_argmax(const float *v, size_t n) {
  size_t best = 0;
  for (size_t i = 1; i < n; i++)
    if (v[i] > v[best]) best = i;
  return (int32_t)best;
}

/* ---- scalar reference forward (llama2.c style) ------------------------------------------------
 */

struct ref_model {
  const struct model *m;
  float **w;                /* dequantized tensors by slot */
  float *k_cache, *v_cache; /* [n_layer][n_ctx][kv_dim], rounded through f16 like the engine */
  uint32_t n_ctx;
  float *x, *xb, *q, *k, *v, *att, *scores, *hb, *hb2, *logits;
};

static inline float *ref_dequant(const struct gguf_tensor *t) {
  if (!t) return NULL;
  float *out = malloc(t->n_elements * sizeof *out);
  assert_non_null(out);
  assert_int_equal(quant_dequantize_row(t->type, t->data, out, (int64_t)t->n_elements), 0);
  return out;
}

enum {
  REF_ATTN_NORM,
  REF_WQ,
  REF_WK,
  REF_WV,
  REF_WO,
  REF_BQ,
  REF_BK,
  REF_BV,
  REF_FFN_NORM,
  REF_GATE,
  REF_UP,
  REF_DOWN,
  REF_PER_LAYER
};

static inline void ref_open(struct ref_model *r, const struct model *m, uint32_t n_ctx) {
  const struct model_hparams *hp = &m->hp;
  memset(r, 0, sizeof *r);
  r->m = m;
  r->n_ctx = n_ctx;
  size_t n_slots = (size_t)hp->n_layer * REF_PER_LAYER + 3;
  r->w = calloc(n_slots, sizeof *r->w);
  for (uint32_t l = 0; l < hp->n_layer; l++) {
    const struct model_layer *ml = &m->layers[l];
    const struct gguf_tensor *ts[REF_PER_LAYER] = {
        ml->attn_norm, ml->wq, ml->wk,       ml->wv,       ml->wo,     ml->bq,
        ml->bk,        ml->bv, ml->ffn_norm, ml->ffn_gate, ml->ffn_up, ml->ffn_down};
    for (int i = 0; i < REF_PER_LAYER; i++)
      r->w[l * REF_PER_LAYER + i] = ref_dequant(ts[i]);
  }
  r->w[n_slots - 3] = ref_dequant(m->tok_embd);
  r->w[n_slots - 2] = ref_dequant(m->output_norm);
  r->w[n_slots - 1] = ref_dequant(m->output);
  size_t kv_dim = (size_t)hp->n_head_kv * hp->head_dim, q_dim = (size_t)hp->n_head * hp->head_dim;
  r->k_cache = calloc((size_t)hp->n_layer * n_ctx * kv_dim, sizeof(float));
  r->v_cache = calloc((size_t)hp->n_layer * n_ctx * kv_dim, sizeof(float));
  r->x = calloc(hp->n_embd, sizeof(float));
  r->xb = calloc(q_dim > hp->n_embd ? q_dim : hp->n_embd, sizeof(float));
  r->q = calloc(q_dim, sizeof(float));
  r->k = calloc(kv_dim, sizeof(float));
  r->v = calloc(kv_dim, sizeof(float));
  r->att = calloc(q_dim, sizeof(float));
  r->scores = calloc(n_ctx, sizeof(float));
  r->hb = calloc(hp->n_ff, sizeof(float));
  r->hb2 = calloc(hp->n_ff, sizeof(float));
  r->logits = calloc(hp->n_vocab, sizeof(float));
}

static inline void ref_close(struct ref_model *r) {
  size_t n_slots = (size_t)r->m->hp.n_layer * REF_PER_LAYER + 3;
  for (size_t i = 0; i < n_slots; i++)
    free(r->w[i]);
  free(r->w);
  free(r->k_cache);
  free(r->v_cache);
  free(r->x);
  free(r->xb);
  free(r->q);
  free(r->k);
  free(r->v);
  free(r->att);
  free(r->scores);
  free(r->hb);
  free(r->hb2);
  free(r->logits);
}

static inline void ref_rmsnorm(float *o, const float *x, const float *w, int n, float eps) {
  double ss = 0.0;
  for (int i = 0; i < n; i++)
    ss += (double)x[i] * x[i];
  float s = 1.0f / sqrtf((float)(ss / n) + eps);
  for (int i = 0; i < n; i++)
    o[i] = x[i] * s * w[i];
}

/* out[n] = W[n, :] . x for a [k, n] weight (row n holds k values). */
static inline void ref_matmul(float *out, const float *x, const float *w, int k, int n) {
  for (int i = 0; i < n; i++) {
    double s = 0.0;
    for (int j = 0; j < k; j++)
      s += (double)w[(size_t)i * k + j] * x[j];
    out[i] = (float)s;
  }
}

/* RoPE (Su et al. 2021) as ggml computes theta: freq_scale * pos * base^(-2i/n_rot) / factor. */
static inline void ref_rope(float *v, int n_heads, int hd, int n_rot, int pos, bool neox,
                            float base, float freq_scale, const float *factors) {
  for (int h = 0; h < n_heads; h++) {
    float *x = v + h * hd;
    for (int i = 0; i < n_rot / 2; i++) {
      float theta = freq_scale * (float)pos * powf(base, -2.0f * (float)i / (float)n_rot);
      if (factors) theta /= factors[i];
      float c = cosf(theta), s = sinf(theta);
      int a = neox ? i : 2 * i, b = neox ? i + n_rot / 2 : 2 * i + 1;
      float x0 = x[a], x1 = x[b];
      x[a] = x0 * c - x1 * s;
      x[b] = x0 * s + x1 * c;
    }
  }
}

static inline float ref_f16_round(float v) {
  return quant_f16_to_f32(quant_f32_to_f16(v));
}

/* Evaluates one token at pos; r->logits holds its logits. */
static inline void ref_step(struct ref_model *r, int32_t token, int pos) {
  const struct model_hparams *hp = &r->m->hp;
  int E = (int)hp->n_embd, hd = (int)hp->head_dim, nh = (int)hp->n_head, nkv = (int)hp->n_head_kv;
  int qd = nh * hd, kvd = nkv * hd, F = (int)hp->n_ff;
  size_t n_slots = (size_t)hp->n_layer * REF_PER_LAYER + 3;
  memcpy(r->x, r->w[n_slots - 3] + (size_t)token * E, (size_t)E * sizeof(float));
  const float *factors = r->m->rope_freqs ? (const float *)r->m->rope_freqs->data : NULL;
  bool neox = hp->rope_layout == ROPE_LAYOUT_NEOX;
  for (uint32_t l = 0; l < hp->n_layer; l++) {
    float **w = r->w + l * REF_PER_LAYER;
    ref_rmsnorm(r->xb, r->x, w[REF_ATTN_NORM], E, hp->rms_eps);
    ref_matmul(r->q, r->xb, w[REF_WQ], E, qd);
    ref_matmul(r->k, r->xb, w[REF_WK], E, kvd);
    ref_matmul(r->v, r->xb, w[REF_WV], E, kvd);
    if (w[REF_BQ]) {
      for (int i = 0; i < qd; i++)
        r->q[i] += w[REF_BQ][i];
      for (int i = 0; i < kvd; i++)
        r->k[i] += w[REF_BK][i];
      for (int i = 0; i < kvd; i++)
        r->v[i] += w[REF_BV][i];
    }
    ref_rope(r->q, nh, hd, (int)hp->n_rot, pos, neox, hp->rope_freq_base, hp->rope_freq_scale,
             factors);
    ref_rope(r->k, nkv, hd, (int)hp->n_rot, pos, neox, hp->rope_freq_base, hp->rope_freq_scale,
             factors);
    float *kc = r->k_cache + ((size_t)l * r->n_ctx) * kvd;
    float *vc = r->v_cache + ((size_t)l * r->n_ctx) * kvd;
    for (int i = 0; i < kvd; i++) {
      kc[(size_t)pos * kvd + i] = ref_f16_round(r->k[i]);
      vc[(size_t)pos * kvd + i] = ref_f16_round(r->v[i]);
    }
    for (int h = 0; h < nh; h++) {
      int kh = h / (nh / nkv); /* GQA: consecutive query heads share a KV head */
      const float *qh = r->q + h * hd;
      float mx = -INFINITY;
      for (int t = 0; t <= pos; t++) {
        const float *kt = kc + (size_t)t * kvd + kh * hd;
        double s = 0.0;
        for (int i = 0; i < hd; i++)
          s += (double)qh[i] * kt[i];
        r->scores[t] = (float)s / sqrtf((float)hd);
        if (r->scores[t] > mx) mx = r->scores[t];
      }
      double sum = 0.0;
      for (int t = 0; t <= pos; t++) {
        r->scores[t] = expf(r->scores[t] - mx);
        sum += r->scores[t];
      }
      float *out = r->att + h * hd;
      for (int i = 0; i < hd; i++)
        out[i] = 0.0f;
      for (int t = 0; t <= pos; t++) {
        const float *vt = vc + (size_t)t * kvd + kh * hd;
        float a = (float)(r->scores[t] / sum);
        for (int i = 0; i < hd; i++)
          out[i] += a * vt[i];
      }
    }
    ref_matmul(r->xb, r->att, w[REF_WO], qd, E);
    for (int i = 0; i < E; i++)
      r->x[i] += r->xb[i];
    ref_rmsnorm(r->xb, r->x, w[REF_FFN_NORM], E, hp->rms_eps);
    ref_matmul(r->hb, r->xb, w[REF_GATE], E, F);
    ref_matmul(r->hb2, r->xb, w[REF_UP], E, F);
    for (int i = 0; i < F; i++)
      r->hb[i] = r->hb[i] / (1.0f + expf(-r->hb[i])) * r->hb2[i];
    ref_matmul(r->xb, r->hb, w[REF_DOWN], F, E);
    for (int i = 0; i < E; i++)
      r->x[i] += r->xb[i];
  }
  ref_rmsnorm(r->xb, r->x, r->w[n_slots - 2], E, hp->rms_eps);
  ref_matmul(r->logits, r->xb, r->w[n_slots - 1], E, (int)hp->n_vocab);
}

static inline double max_abs_diff(const float *a, const float *b, size_t n) {
  double m = 0.0;
  for (size_t i = 0; i < n; i++) {
    double d = fabs((double)a[i] - (double)b[i]);
    if (d > m) m = d;
  }
  return m;
}

static inline double max_abs(const float *a, size_t n) {
  double m = 0.0;
  for (size_t i = 0; i < n; i++)
    if (fabs(a[i]) > m) m = fabs(a[i]);
  return m;
}

/* ---- llama.cpp fixtures ------------------------------------------------------------------------
 */

struct fixture_result {
  int greedy_same, greedy_total;
  long top1_same, top1_total;
  double max_diff, sum_diff;
  long n_diff;
};

static inline void int_array(json_t *arr, int32_t *out, size_t n) {
  for (size_t i = 0; i < n; i++)
    out[i] = (int32_t)json_integer_value(json_array_get(arr, i));
}

/* Runs the model at path against fixture (relative to tests/fixtures) with 2 threads and F16 KV:
 * greedy continuations (stopping a prompt at its first divergence) and teacher-forced top-1 /
 * top-10 logits, evaluated in chunks of 64 positions. max_prompts / max_positions cap the work
 * (SIZE_MAX = all). */
static inline void fixture_check(const char *path, const char *fixture, size_t max_prompts,
                                 size_t max_positions, struct fixture_result *res) {
  memset(res, 0, sizeof *res);
  char *text = test_read_fixture(fixture, NULL);
  json_error_t jerr;
  json_t *root = json_loads(text, 0, &jerr);
  if (!root) fail_msg("%s: %s at line %d", fixture, jerr.text, jerr.line);
  free(text);
  enum { CHUNK = 64 };
  struct forward_params fp = forward_params_default();
  fp.n_ctx = 1024;
  fp.n_batch = 512;
  fp.n_outputs = CHUNK;
  struct test_fwd t;
  test_fwd_open(&t, path, "threads=2", fp);
  size_t n_vocab = t.model->hp.n_vocab;
  struct kvcache *kv = forward_kvcache(t.fwd);
  int32_t *ids = calloc(1024, sizeof *ids);
  assert_non_null(ids);

  json_t *greedy = json_object_get(root, "greedy");
  size_t n_prompts = json_array_size(greedy);
  if (n_prompts > max_prompts) n_prompts = max_prompts;
  for (size_t p = 0; p < n_prompts; p++) {
    json_t *g = json_array_get(greedy, p);
    json_t *prompt = json_object_get(g, "prompt_ids"), *cont = json_object_get(g, "continuation");
    size_t np = json_array_size(prompt), nc = json_array_size(cont);
    int_array(prompt, ids, np);
    kvcache_truncate(kv, 0);
    test_fwd_eval(&t, ids, np, false);
    bool same = true;
    for (size_t i = 0; i < nc; i++) {
      int32_t want = (int32_t)json_integer_value(json_array_get(cont, i));
      int32_t got = test_argmax(forward_logits(t.fwd, 0), n_vocab);
      if (got != want) {
        print_message("  prompt %zu diverges at token %zu: %d, llama.cpp %d\n", p, i, got, want);
        same = false;
        break;
      }
      if (i + 1 < nc) test_fwd_eval(&t, &got, 1, false);
    }
    res->greedy_same += same;
    res->greedy_total++;
  }

  json_t *teacher = json_object_get(root, "teacher");
  size_t budget = max_positions;
  for (size_t s = 0; s < json_array_size(teacher) && budget > 0; s++) {
    json_t *tx = json_array_get(teacher, s);
    json_t *toks = json_object_get(tx, "tokens");
    json_t *top_ids = json_object_get(tx, "top_ids"),
           *top_logits = json_object_get(tx, "top_logits");
    size_t n = json_array_size(toks);
    if (n > budget) n = budget;
    budget -= n;
    int_array(toks, ids, n);
    kvcache_truncate(kv, 0);
    for (size_t c = 0; c < n; c += CHUNK) {
      size_t m = n - c < CHUNK ? n - c : CHUNK;
      test_fwd_eval(&t, ids + c, m, true);
      for (size_t i = 0; i < m; i++) {
        size_t pos = c + i;
        const float *lg = forward_logits(t.fwd, i);
        int32_t want = (int32_t)json_integer_value(json_array_get(top_ids, pos * 10));
        res->top1_same += test_argmax(lg, n_vocab) == want;
        res->top1_total++;
        for (size_t j = 0; j < 10; j++) {
          int32_t id = (int32_t)json_integer_value(json_array_get(top_ids, pos * 10 + j));
          double ref = json_number_value(json_array_get(top_logits, pos * 10 + j));
          double d = fabs((double)lg[id] - ref);
          if (d > res->max_diff) res->max_diff = d;
          res->sum_diff += d;
          res->n_diff++;
        }
      }
    }
  }
  print_message("%s: greedy identical %d/%d; top-1 identical %ld/%ld (%.2f%%); top-10 logits "
                "|diff| max %.4f mean %.4f\n",
                fixture, res->greedy_same, res->greedy_total, res->top1_same, res->top1_total,
                100.0 * (double)res->top1_same / (double)(res->top1_total ? res->top1_total : 1),
                res->max_diff, res->n_diff ? res->sum_diff / (double)res->n_diff : 0.0);
  free(ids);
  test_fwd_close(&t);
  json_decref(root);
}

#endif
