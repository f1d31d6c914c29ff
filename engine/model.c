/* Model metadata: reads the hyper-parameters of a qwen2 or llama GGUF (keys as llama.cpp's
 * llama-arch.cpp names them, "{arch}.block_count" etc.), derives the tensors the architecture
 * needs (names and shapes as in llama.cpp's llama-model.cpp load_tensors) and checks the file
 * against them: every expected tensor present with its exact shape and a type we can dequantize,
 * and no tensor the architecture does not know. Nothing is used before it is checked. */
#include "engine/model.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/alloc.h"
#include "engine/quant.h"

#define MODEL_MAX_LAYERS 512
/* Far above any released model, low enough that products of two dimensions fit in 64 bits. */
#define MODEL_MAX_DIM (1u << 24)

static const char *const arch_names[MODEL_ARCH_COUNT] = {
    [MODEL_ARCH_LLAMA] = "llama",
    [MODEL_ARCH_QWEN2] = "qwen2",
};

int model_arch_from_name(const char *name, size_t len, enum model_arch *out) {
  for (int a = 0; a < MODEL_ARCH_COUNT; a++) {
    if (strlen(arch_names[a]) == len && !memcmp(arch_names[a], name, len)) {
      *out = (enum model_arch)a;
      return 0;
    }
  }
  return AUG_EUNSUPPORTED;
}

const char *model_arch_name(enum model_arch arch) {
  return (unsigned)arch < MODEL_ARCH_COUNT ? arch_names[arch] : "unknown";
}

/* llama.cpp's enum llama_ftype (llama.h): the label quantizers give a whole file (gaps are
 * removed types). */
const char *model_file_type_name(uint64_t ftype) {
  static const char *const names[] = {
      [0] = "F32",      [1] = "F16",      [2] = "Q4_0",      [3] = "Q4_1",    [7] = "Q8_0",
      [8] = "Q5_0",     [9] = "Q5_1",     [10] = "Q2_K",     [11] = "Q3_K_S", [12] = "Q3_K_M",
      [13] = "Q3_K_L",  [14] = "Q4_K_S",  [15] = "Q4_K_M",   [16] = "Q5_K_S", [17] = "Q5_K_M",
      [18] = "Q6_K",    [19] = "IQ2_XXS", [20] = "IQ2_XS",   [21] = "Q2_K_S", [22] = "IQ3_XS",
      [23] = "IQ3_XXS", [24] = "IQ1_S",   [25] = "IQ4_NL",   [26] = "IQ3_S",  [27] = "IQ3_M",
      [28] = "IQ2_S",   [29] = "IQ2_M",   [30] = "IQ4_XS",   [31] = "IQ1_M",  [32] = "BF16",
      [36] = "TQ1_0",   [37] = "TQ2_0",   [38] = "MXFP4_MOE"};
  return ftype < sizeof names / sizeof names[0] ? names[ftype] : NULL;
}

/* ---- Tensor specs ------------------------------------------------------------------------- */

struct spec_walk {
  model_tensor_spec_fn fn;
  void *user;
  char name[96];
};

static int emit(struct spec_walk *w, enum model_tensor_role role, int32_t layer, const char *base,
                const char *suffix, uint32_t n_dims, uint64_t ne0, uint64_t ne1, bool optional,
                bool norm_or_bias) {
  if (layer >= 0)
    snprintf(w->name, sizeof w->name, "blk.%" PRId32 ".%s.%s", layer, base, suffix);
  else
    snprintf(w->name, sizeof w->name, "%s.%s", base, suffix);
  struct model_tensor_spec spec = {
      .name = w->name,
      .n_dims = n_dims,
      .ne = {ne0, n_dims > 1 ? ne1 : 1, 1, 1},
      .optional = optional,
      .is_norm_or_bias = norm_or_bias,
      .role = role,
      .layer = layer,
  };
  return w->fn(&spec, w->user);
}

int model_for_each_tensor_spec(const struct model_hparams *hp, model_tensor_spec_fn fn,
                               void *user) {
  struct spec_walk w = {.fn = fn, .user = user};
  const uint64_t n_embd = hp->n_embd, n_vocab = hp->n_vocab, n_ff = hp->n_ff;
  const uint64_t q_dim = (uint64_t)hp->n_head * hp->head_dim;
  const uint64_t kv_dim = (uint64_t)hp->n_head_kv * hp->head_dim;
  int rc;
#define EMIT(...)                                                                                  \
  do {                                                                                             \
    if ((rc = emit(&w, __VA_ARGS__)) != 0) return rc;                                              \
  } while (0)
  EMIT(MODEL_TENSOR_TOKEN_EMBD, -1, "token_embd", "weight", 2, n_embd, n_vocab, false, false);
  EMIT(MODEL_TENSOR_OUTPUT_NORM, -1, "output_norm", "weight", 1, n_embd, 1, false, true);
  if (!hp->tied_output)
    EMIT(MODEL_TENSOR_OUTPUT, -1, "output", "weight", 2, n_embd, n_vocab, true, false);
  /* Llama 3.1+ frequency factors, one per rotated pair (llama.cpp: {n_rot / 2}). */
  if (hp->has_rope_freqs)
    EMIT(MODEL_TENSOR_ROPE_FREQS, -1, "rope_freqs", "weight", 1, hp->n_rot / 2, 1, true, true);
  for (int32_t i = 0; i < (int32_t)hp->n_layer; i++) {
    EMIT(MODEL_TENSOR_ATTN_NORM, i, "attn_norm", "weight", 1, n_embd, 1, false, true);
    EMIT(MODEL_TENSOR_ATTN_Q, i, "attn_q", "weight", 2, n_embd, q_dim, false, false);
    EMIT(MODEL_TENSOR_ATTN_K, i, "attn_k", "weight", 2, n_embd, kv_dim, false, false);
    EMIT(MODEL_TENSOR_ATTN_V, i, "attn_v", "weight", 2, n_embd, kv_dim, false, false);
    EMIT(MODEL_TENSOR_ATTN_OUTPUT, i, "attn_output", "weight", 2, q_dim, n_embd, false, false);
    if (hp->has_qkv_bias) {
      /* Required for qwen2, optional for llama (llama.cpp: TENSOR_NOT_REQUIRED). */
      bool opt = hp->arch != MODEL_ARCH_QWEN2;
      EMIT(MODEL_TENSOR_ATTN_Q_BIAS, i, "attn_q", "bias", 1, q_dim, 1, opt, true);
      EMIT(MODEL_TENSOR_ATTN_K_BIAS, i, "attn_k", "bias", 1, kv_dim, 1, opt, true);
      EMIT(MODEL_TENSOR_ATTN_V_BIAS, i, "attn_v", "bias", 1, kv_dim, 1, opt, true);
    }
    EMIT(MODEL_TENSOR_FFN_NORM, i, "ffn_norm", "weight", 1, n_embd, 1, false, true);
    EMIT(MODEL_TENSOR_FFN_GATE, i, "ffn_gate", "weight", 2, n_embd, n_ff, false, false);
    EMIT(MODEL_TENSOR_FFN_DOWN, i, "ffn_down", "weight", 2, n_ff, n_embd, false, false);
    EMIT(MODEL_TENSOR_FFN_UP, i, "ffn_up", "weight", 2, n_embd, n_ff, false, false);
  }
#undef EMIT
  return 0;
}

/* ---- Hyper-parameters --------------------------------------------------------------------- */

static const char *file_label(const struct gguf_file *file) {
  const char *p = gguf_path(file);
  return p ? p : "(memory)";
}

/* Reads "{arch}.{suffix}" as a u32 in min..max. Absent: *out = def when !required. */
static int read_u32(const struct gguf_file *file, const char *arch, const char *suffix,
                    bool required, uint32_t def, uint32_t min, uint32_t max, uint32_t *out,
                    struct aug_err *err) {
  char key[128];
  snprintf(key, sizeof key, "%s.%s", arch, suffix);
  uint64_t v = 0;
  int rc = gguf_get_uint(file, key, &v, err);
  if (rc == AUG_ENOTFOUND) {
    if (required)
      return aug_err_set(err, AUG_EFORMAT, "model: %s: key '%s' is missing", file_label(file), key);
    *out = def;
    return 0;
  }
  if (rc) {
    aug_err_prefix(err, "model: %s", file_label(file));
    return rc;
  }
  if (v < min || v > max)
    return aug_err_set(err, AUG_ERANGE,
                       "model: %s: key '%s' is %" PRIu64 ", expected %" PRIu32 "..%" PRIu32,
                       file_label(file), key, v, min, max);
  *out = (uint32_t)v;
  return 0;
}

/* Reads "{arch}.{suffix}" as a float in (0, max]. Absent: def when !required. */
static int read_positive_float(const struct gguf_file *file, const char *arch, const char *suffix,
                               bool required, double def, double max, float *out,
                               struct aug_err *err) {
  char key[128];
  snprintf(key, sizeof key, "%s.%s", arch, suffix);
  double v = 0;
  int rc = gguf_get_float(file, key, &v, err);
  if (rc == AUG_ENOTFOUND) {
    if (required)
      return aug_err_set(err, AUG_EFORMAT, "model: %s: key '%s' is missing", file_label(file), key);
    *out = (float)def;
    return 0;
  }
  if (rc) {
    aug_err_prefix(err, "model: %s", file_label(file));
    return rc;
  }
  if (!(v > 0) || !(v <= max))
    return aug_err_set(err, AUG_ERANGE, "model: %s: key '%s' is %g, expected a number in (0, %g]",
                       file_label(file), key, v, max);
  *out = (float)v;
  return 0;
}

static int read_hparams(const struct gguf_file *file, struct model_hparams *hp,
                        struct aug_err *err) {
  const char *label = file_label(file);
  const char *arch_str = NULL;
  size_t arch_len = 0;
  int rc = gguf_get_string(file, "general.architecture", &arch_str, &arch_len, err);
  if (rc == AUG_ENOTFOUND)
    return aug_err_set(err, AUG_EFORMAT, "model: %s: key 'general.architecture' is missing", label);
  if (rc) {
    aug_err_prefix(err, "model: %s", label);
    return rc;
  }
  if (model_arch_from_name(arch_str, arch_len, &hp->arch))
    return aug_err_set(err, AUG_EUNSUPPORTED,
                       "model: %s: general.architecture '%.*s' is not supported (supported: "
                       "llama, qwen2)",
                       label, (int)(arch_len > 64 ? 64 : arch_len), arch_str);
  const char *a = arch_names[hp->arch];
  hp->arch_name = a;
  hp->rope_layout = hp->arch == MODEL_ARCH_QWEN2 ? ROPE_LAYOUT_NEOX : ROPE_LAYOUT_NORMAL;

  if ((rc = read_u32(file, a, "block_count", true, 0, 1, MODEL_MAX_LAYERS, &hp->n_layer, err)) ||
      (rc = read_u32(file, a, "context_length", true, 0, 1, UINT32_MAX, &hp->n_ctx_train, err)) ||
      (rc = read_u32(file, a, "embedding_length", true, 0, 1, MODEL_MAX_DIM, &hp->n_embd, err)) ||
      (rc = read_u32(file, a, "feed_forward_length", true, 0, 1, MODEL_MAX_DIM, &hp->n_ff, err)) ||
      (rc = read_u32(file, a, "attention.head_count", true, 0, 1, MODEL_MAX_DIM, &hp->n_head,
                     err)) ||
      (rc = read_u32(file, a, "attention.head_count_kv", false, hp->n_head, 1, MODEL_MAX_DIM,
                     &hp->n_head_kv, err)))
    return rc;
  if (hp->n_head % hp->n_head_kv != 0)
    return aug_err_set(err, AUG_EFORMAT,
                       "model: %s: %s.attention.head_count %" PRIu32
                       " is not a multiple of %s.attention.head_count_kv %" PRIu32,
                       label, a, hp->n_head, a, hp->n_head_kv);

  char key[128];
  snprintf(key, sizeof key, "%s.attention.key_length", a);
  bool has_key_length = gguf_find_key(file, key) >= 0;
  if (!has_key_length && hp->n_embd % hp->n_head != 0)
    return aug_err_set(err, AUG_EFORMAT,
                       "model: %s: %s.embedding_length %" PRIu32
                       " is not a multiple of %s.attention.head_count %" PRIu32,
                       label, a, hp->n_embd, a, hp->n_head);
  if ((rc = read_u32(file, a, "attention.key_length", false, hp->n_embd / hp->n_head, 1,
                     MODEL_MAX_DIM, &hp->head_dim, err)))
    return rc;
  uint32_t value_length = 0;
  if ((rc = read_u32(file, a, "attention.value_length", false, hp->head_dim, 1, MODEL_MAX_DIM,
                     &value_length, err)))
    return rc;
  if (value_length != hp->head_dim)
    return aug_err_set(err, AUG_EUNSUPPORTED,
                       "model: %s: %s.attention.value_length %" PRIu32
                       " differs from key_length %" PRIu32 " (not supported)",
                       label, a, value_length, hp->head_dim);
  if (hp->head_dim % 2 != 0)
    return aug_err_set(err, AUG_EFORMAT, "model: %s: head dimension %" PRIu32 " is odd", label,
                       hp->head_dim);
  if ((rc = read_u32(file, a, "rope.dimension_count", false, hp->head_dim, 2, hp->head_dim,
                     &hp->n_rot, err)))
    return rc;
  if (hp->n_rot % 2 != 0)
    return aug_err_set(err, AUG_EFORMAT, "model: %s: %s.rope.dimension_count %" PRIu32 " is odd",
                       label, a, hp->n_rot);
  if ((rc = read_positive_float(file, a, "attention.layer_norm_rms_epsilon", true, 0, 1.0,
                                &hp->rms_eps, err)) ||
      (rc = read_positive_float(file, a, "rope.freq_base", false, 10000.0, 1e12,
                                &hp->rope_freq_base, err)))
    return rc;

  /* Rope scaling: llama.cpp applies 1/factor to positions for "linear" (and when no type is
   * given but a factor is); YaRN and LongRoPE change the attention math and are not supported. */
  float factor = 1.0f;
  if ((rc = read_positive_float(file, a, "rope.scaling.factor", false, 1.0, 1e6, &factor, err)))
    return rc;
  snprintf(key, sizeof key, "%s.rope.scaling.type", a);
  const char *type = NULL;
  size_t type_len = 0;
  rc = gguf_get_string(file, key, &type, &type_len, err);
  if (rc && rc != AUG_ENOTFOUND) {
    aug_err_prefix(err, "model: %s", label);
    return rc;
  }
  if (rc == 0 && !(type_len == 4 && !memcmp(type, "none", 4)) &&
      !(type_len == 6 && !memcmp(type, "linear", 6)))
    return aug_err_set(err, AUG_EUNSUPPORTED,
                       "model: %s: key '%s' is '%.*s' (supported: none, linear)", label, key,
                       (int)(type_len > 32 ? 32 : type_len), type);
  bool scaling_none = rc == 0 && type_len == 4;
  hp->rope_freq_scale = scaling_none ? 1.0f : 1.0f / factor;
  aug_err_clear(err);
  return 0;
}

/* Vocabulary size: tokenizer.ggml.tokens when present (it must then match token_embd), else the
 * rows of token_embd. */
static int read_vocab(const struct gguf_file *file, struct model_hparams *hp, struct aug_err *err) {
  const char *label = file_label(file);
  const struct gguf_tensor *embd = gguf_find_tensor(file, "token_embd.weight");
  if (!embd)
    return aug_err_set(err, AUG_EFORMAT, "model: %s: tensor 'token_embd.weight' is missing", label);
  int64_t idx = gguf_find_key(file, "tokenizer.ggml.tokens");
  if (idx < 0) {
    if (embd->ne[1] > UINT32_MAX || embd->ne[1] == 0)
      return aug_err_set(err, AUG_ERANGE,
                         "model: %s: tensor 'token_embd.weight' has %" PRIu64 " rows", label,
                         embd->ne[1]);
    hp->n_vocab = (uint32_t)embd->ne[1];
    return 0;
  }
  if (gguf_kv_type(file, (size_t)idx) != GGUF_TYPE_ARRAY ||
      gguf_kv_array_type(file, (size_t)idx) != GGUF_TYPE_STRING)
    return aug_err_set(err, AUG_EFORMAT,
                       "model: %s: key 'tokenizer.ggml.tokens' is not an array of strings", label);
  uint64_t n = gguf_kv_array_count(file, (size_t)idx);
  if (n == 0 || n > INT32_MAX)
    return aug_err_set(err, AUG_ERANGE,
                       "model: %s: key 'tokenizer.ggml.tokens' has %" PRIu64
                       " tokens, expected 1..%d",
                       label, n, INT32_MAX);
  if (embd->n_dims != 2 || embd->ne[1] != n)
    return aug_err_set(err, AUG_EFORMAT,
                       "model: %s: vocabulary has %" PRIu64
                       " tokens (tokenizer.ggml.tokens) but tensor 'token_embd.weight' has %" PRIu64
                       " rows",
                       label, n, embd->ne[1]);
  hp->n_vocab = (uint32_t)n;
  return 0;
}

/* ---- Checking tensors --------------------------------------------------------------------- */

static void format_shape(char *buf, size_t size, uint32_t n_dims, const uint64_t *ne) {
  size_t used = 0;
  used += (size_t)snprintf(buf, size, "[");
  for (uint32_t d = 0; d < n_dims && used < size; d++)
    used += (size_t)snprintf(buf + used, size - used, "%s%" PRIu64, d ? ", " : "", ne[d]);
  if (used < size) snprintf(buf + used, size - used, "]");
}

struct bind_ctx {
  struct model *model;
  const struct gguf_file *file;
  struct aug_err *err;
  size_t n_bound;
};

static const struct gguf_tensor **slot_for(struct model *m, const struct model_tensor_spec *s) {
  struct model_layer *l = s->layer >= 0 ? &m->layers[s->layer] : NULL;
  switch (s->role) {
  case MODEL_TENSOR_TOKEN_EMBD: return &m->tok_embd;
  case MODEL_TENSOR_OUTPUT_NORM: return &m->output_norm;
  case MODEL_TENSOR_OUTPUT: return &m->output;
  case MODEL_TENSOR_ROPE_FREQS: return &m->rope_freqs;
  case MODEL_TENSOR_ATTN_NORM: return &l->attn_norm;
  case MODEL_TENSOR_ATTN_Q: return &l->wq;
  case MODEL_TENSOR_ATTN_K: return &l->wk;
  case MODEL_TENSOR_ATTN_V: return &l->wv;
  case MODEL_TENSOR_ATTN_OUTPUT: return &l->wo;
  case MODEL_TENSOR_ATTN_Q_BIAS: return &l->bq;
  case MODEL_TENSOR_ATTN_K_BIAS: return &l->bk;
  case MODEL_TENSOR_ATTN_V_BIAS: return &l->bv;
  case MODEL_TENSOR_FFN_NORM: return &l->ffn_norm;
  case MODEL_TENSOR_FFN_GATE: return &l->ffn_gate;
  case MODEL_TENSOR_FFN_DOWN: return &l->ffn_down;
  case MODEL_TENSOR_FFN_UP: return &l->ffn_up;
  }
  return NULL;
}

static int bind_tensor(const struct model_tensor_spec *spec, void *user) {
  struct bind_ctx *c = user;
  const char *label = file_label(c->file);
  const struct gguf_tensor *t = gguf_find_tensor(c->file, spec->name);
  if (!t)
    return aug_err_set(c->err, AUG_EFORMAT, "model: %s: tensor '%s' is missing", label, spec->name);
  bool same = t->n_dims == spec->n_dims;
  for (uint32_t d = 0; same && d < spec->n_dims; d++)
    same = t->ne[d] == spec->ne[d];
  if (!same) {
    char found[128], expected[128];
    format_shape(found, sizeof found, t->n_dims, t->ne);
    format_shape(expected, sizeof expected, spec->n_dims, spec->ne);
    return aug_err_set(c->err, AUG_EFORMAT, "model: %s: tensor '%s' has shape %s, expected %s",
                       label, spec->name, found, expected);
  }
  const struct quant_type_traits *tr = quant_traits(t->type);
  if (!tr || !tr->can_dequantize)
    return aug_err_set(c->err, AUG_EUNSUPPORTED,
                       "model: %s: tensor '%s' has type %s (%" PRIu32
                       "), which cannot be dequantized",
                       label, spec->name, quant_type_name(t->type), t->type);
  /* Converters and quantizers keep 1-D tensors in F32 (llama.cpp quantizes only 2-D weights);
   * the forward pass relies on it. */
  if (spec->is_norm_or_bias && t->type != QUANT_F32)
    return aug_err_set(c->err, AUG_EUNSUPPORTED,
                       "model: %s: tensor '%s' has type %s, expected F32 (norms, biases and rope "
                       "factors are kept in F32)",
                       label, spec->name, quant_type_name(t->type));
  *slot_for(c->model, spec) = t;
  c->n_bound++;
  return 0;
}

static bool is_bound(const struct model *m, const struct gguf_tensor *t) {
  if (t == m->tok_embd || t == m->output_norm || t == m->output || t == m->rope_freqs) return true;
  for (uint32_t i = 0; i < m->hp.n_layer; i++) {
    const struct model_layer *l = &m->layers[i];
    const struct gguf_tensor *all[] = {l->attn_norm, l->wq,       l->wk,     l->wv,
                                       l->wo,        l->bq,       l->bk,     l->bv,
                                       l->ffn_norm,  l->ffn_gate, l->ffn_up, l->ffn_down};
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
      if (all[k] == t) return true;
  }
  return false;
}

int model_create(struct gguf_file *file, struct model **out, struct aug_err *err) {
  if (!file || !out) return aug_err_set(err, AUG_EINVAL, "model: no file");
  *out = NULL;
  struct model_hparams hp = {0};
  int rc = read_hparams(file, &hp, err);
  if (rc) return rc;
  if ((rc = read_vocab(file, &hp, err))) return rc;
  /* Which optional tensors this file has decides the exact set it must hold. */
  hp.tied_output = gguf_find_tensor(file, "output.weight") == NULL;
  hp.has_rope_freqs = gguf_find_tensor(file, "rope_freqs.weight") != NULL;
  hp.has_qkv_bias = hp.arch == MODEL_ARCH_QWEN2 || gguf_find_tensor(file, "blk.0.attn_q.bias");

  struct model *m = aug_calloc(1, sizeof *m);
  if (!m) return aug_err_set(err, AUG_ENOMEM, "model: out of memory");
  m->file = file;
  m->hp = hp;
  m->layers = aug_calloc(hp.n_layer, sizeof *m->layers);
  if (!m->layers) {
    aug_free(m);
    return aug_err_set(err, AUG_ENOMEM, "model: out of memory for %" PRIu32 " layers", hp.n_layer);
  }
  struct bind_ctx ctx = {.model = m, .file = file, .err = err};
  rc = model_for_each_tensor_spec(&m->hp, bind_tensor, &ctx);
  if (rc == 0 && ctx.n_bound != gguf_tensor_count(file)) {
    /* llama.cpp refuses files with tensors it did not create ("wrong number of tensors"): name
     * the first one. */
    for (size_t i = 0; i < gguf_tensor_count(file); i++) {
      const struct gguf_tensor *t = gguf_tensor_at(file, i);
      if (!is_bound(m, t)) {
        rc = aug_err_set(err, AUG_EFORMAT,
                         "model: %s: unexpected tensor '%s' (not part of architecture %s with "
                         "%" PRIu32 " blocks)",
                         file_label(file), t->name, hp.arch_name, hp.n_layer);
        break;
      }
    }
  }
  if (rc) {
    model_destroy(m);
    return rc;
  }
  if (m->hp.tied_output) m->output = m->tok_embd;
  for (size_t i = 0; i < gguf_tensor_count(file); i++)
    m->weight_bytes += gguf_tensor_at(file, i)->size;
  aug_err_clear(err);
  *out = m;
  return 0;
}

int model_load(const char *path, struct model **out, struct aug_err *err) {
  if (!out) return aug_err_set(err, AUG_EINVAL, "model: no output");
  *out = NULL;
  struct gguf_open_params params = gguf_open_params_default();
  struct gguf_file *file = NULL;
  int rc = gguf_open(path, &params, &file, err);
  if (rc) return rc;
  rc = model_create(file, out, err);
  if (rc) {
    gguf_close(file);
    return rc;
  }
  (*out)->owns_file = true;
  return 0;
}

void model_destroy(struct model *model) {
  if (!model) return;
  if (model->owns_file) gguf_close(model->file);
  aug_free(model->layers);
  aug_free(model);
}

uint64_t model_param_count(const struct model *model) {
  uint64_t n = 0;
  for (size_t i = 0; i < gguf_tensor_count(model->file); i++)
    n += gguf_tensor_at(model->file, i)->n_elements;
  return n;
}
