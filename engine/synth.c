/* Synthetic model writer (see synth.h). The GGUF header (ggml docs/gguf.md, version 3) is encoded
 * here rather than with gguf_writer because that writer copies every tensor into memory; synth
 * streams tensor data, chunk by chunk, straight after the header. The file is written as
 * PATH.tmp, renamed when complete and then reopened through model_load, so a file synth leaves
 * behind has passed the same validation as any model. */
#include "engine/synth.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/alloc.h"
#include "engine/gguf.h"
#include "engine/quant.h"
#include "engine/tokenizer.h"

/* ---- Presets: published hyper-parameters (each model's config.json on Hugging Face) ------- */

struct synth_preset {
  const char *name;
  enum model_arch arch;
  uint32_t n_vocab, n_ctx, n_embd, n_layer, n_head, n_head_kv, n_ff;
  float rope_base, rms_eps;
  bool tied;
  /* Llama 3.1 style rope scaling, stored as the rope_freqs tensor (convert_hf_to_gguf.py). */
  bool llama3_rope;
  float rope_factor, low_freq_factor, high_freq_factor;
  uint32_t original_ctx;
  const char *pre; /* tokenizer.ggml.pre of the built-in vocabulary */
};

static const struct synth_preset presets[] = {
    {"qwen2.5-coder-0.5b", MODEL_ARCH_QWEN2, 151936, 32768, 896, 24, 14, 2, 4864, 1e6f, 1e-6f, true,
     false, 0, 0, 0, 0, "qwen2"},
    {"qwen2.5-coder-1.5b", MODEL_ARCH_QWEN2, 151936, 32768, 1536, 28, 12, 2, 8960, 1e6f, 1e-6f,
     true, false, 0, 0, 0, 0, "qwen2"},
    {"qwen2.5-coder-7b", MODEL_ARCH_QWEN2, 152064, 32768, 3584, 28, 28, 4, 18944, 1e6f, 1e-6f,
     false, false, 0, 0, 0, 0, "qwen2"},
    {"llama-3.2-1b", MODEL_ARCH_LLAMA, 128256, 131072, 2048, 16, 32, 8, 8192, 500000.0f, 1e-5f,
     true, true, 32.0f, 1.0f, 4.0f, 8192, "llama-bpe"},
};
#define N_PRESETS (sizeof presets / sizeof presets[0])

size_t synth_preset_count(void) {
  return N_PRESETS;
}

const char *synth_preset_name(size_t index) {
  return index < N_PRESETS ? presets[index].name : NULL;
}

static const char *const type_names[SYNTH_TYPE_COUNT] = {"f16",    "q8_0",   "q4_0",
                                                         "q4_k_m", "q5_k_m", "iq3_xs"};

const char *synth_type_name(enum synth_type type) {
  return (unsigned)type < SYNTH_TYPE_COUNT ? type_names[type] : "unknown";
}

int synth_type_from_name(const char *name, enum synth_type *out) {
  for (int t = 0; t < SYNTH_TYPE_COUNT; t++) {
    if (name && !strcmp(name, type_names[t])) {
      *out = (enum synth_type)t;
      return 0;
    }
  }
  return AUG_EINVAL;
}

struct synth_params synth_params_default(void) {
  return (struct synth_params){.like = "qwen2.5-coder-1.5b", .type = SYNTH_TYPE_Q4_K_M, .seed = 1};
}

static const struct synth_preset *find_preset(const char *name) {
  for (size_t i = 0; name && i < N_PRESETS; i++)
    if (!strcmp(presets[i].name, name)) return &presets[i];
  return NULL;
}

int synth_hparams(const struct synth_params *params, struct model_hparams *hp,
                  struct aug_err *err) {
  const struct synth_preset *p = find_preset(params->like);
  if (!p)
    return aug_err_set(err, AUG_EINVAL,
                       "synth: unknown model '%s' (known: qwen2.5-coder-0.5b, qwen2.5-coder-1.5b, "
                       "qwen2.5-coder-7b, llama-3.2-1b)",
                       params->like ? params->like : "(none)");
  if ((unsigned)params->type >= SYNTH_TYPE_COUNT)
    return aug_err_set(err, AUG_EINVAL, "synth: unknown type %d", (int)params->type);
  if (params->n_layers > p->n_layer)
    return aug_err_set(err, AUG_EINVAL, "synth: %s has %" PRIu32 " layers, not %" PRIu32, p->name,
                       p->n_layer, params->n_layers);
  if (params->n_vocab > p->n_vocab)
    return aug_err_set(err, AUG_EINVAL, "synth: %s has %" PRIu32 " tokens, not %" PRIu32, p->name,
                       p->n_vocab, params->n_vocab);
  *hp = (struct model_hparams){
      .arch = p->arch,
      .arch_name = model_arch_name(p->arch),
      .n_vocab = params->n_vocab ? params->n_vocab : p->n_vocab,
      .n_ctx_train = p->n_ctx,
      .n_embd = p->n_embd,
      .n_layer = params->n_layers ? params->n_layers : p->n_layer,
      .n_head = p->n_head,
      .n_head_kv = p->n_head_kv,
      .n_ff = p->n_ff,
      .head_dim = p->n_embd / p->n_head,
      .n_rot = p->n_embd / p->n_head,
      .rms_eps = p->rms_eps,
      .rope_freq_base = p->rope_base,
      .rope_freq_scale = 1.0f,
      .rope_layout = p->arch == MODEL_ARCH_QWEN2 ? ROPE_LAYOUT_NEOX : ROPE_LAYOUT_NORMAL,
      .has_rope_freqs = p->llama3_rope,
      .tied_output = p->tied,
      .has_qkv_bias = p->arch == MODEL_ARCH_QWEN2,
  };
  return 0;
}

/* ---- Tensor types (llama.cpp llama-quant.cpp) --------------------------------------------- */

/* llama.cpp's use_more_bits: the first and last eighth of the layers and every third between
 * get more bits in Q4_K_M (about half of attn_v and ffn_down). */
static bool use_more_bits(int32_t i, int32_t n) {
  return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

/* IQ3_XS (llama.cpp's default type IQ3_S): attn_q and attn_k drop to IQ3_XXS, so do ffn_gate
 * and ffn_up outside the first and last eighth of the blocks; attn_v rises to Q4_K when at least
 * 4 query heads share a KV head (n_gqa >= 4, true of every preset); the rest (attn_output,
 * ffn_down, an untied token_embd) stay IQ3_S. (llama_tensor_get_type, without an imatrix.) */
static uint32_t iq3_xs_type(const struct model_hparams *hp, const struct model_tensor_spec *spec) {
  int32_t n = (int32_t)hp->n_layer;
  bool middle = spec->layer >= n / 8 && spec->layer < 7 * n / 8;
  switch (spec->role) {
  case MODEL_TENSOR_ATTN_Q:
  case MODEL_TENSOR_ATTN_K: return QUANT_IQ3_XXS;
  case MODEL_TENSOR_ATTN_V:
    return hp->n_head_kv && hp->n_head / hp->n_head_kv >= 4 ? QUANT_Q4_K : QUANT_IQ3_S;
  case MODEL_TENSOR_FFN_GATE:
  case MODEL_TENSOR_FFN_UP: return middle ? QUANT_IQ3_XXS : QUANT_IQ3_S;
  default: return QUANT_IQ3_S;
  }
}

uint32_t synth_tensor_type(enum synth_type type, const struct model_hparams *hp,
                           const struct model_tensor_spec *spec) {
  if (spec->is_norm_or_bias || spec->n_dims < 2) return QUANT_F32;
  /* llama.cpp treats the token embedding of a tied model as the output head. */
  bool is_output = spec->role == MODEL_TENSOR_OUTPUT ||
                   (spec->role == MODEL_TENSOR_TOKEN_EMBD && hp->tied_output);
  bool more_bits = (spec->role == MODEL_TENSOR_ATTN_V || spec->role == MODEL_TENSOR_FFN_DOWN) &&
                   use_more_bits(spec->layer, (int32_t)hp->n_layer);
  uint32_t t;
  switch (type) {
  case SYNTH_TYPE_F16: return QUANT_F16;
  case SYNTH_TYPE_Q8_0: return QUANT_Q8_0;
  case SYNTH_TYPE_Q4_0: t = is_output ? QUANT_Q6_K : QUANT_Q4_0; break;
  /* Q4_K_M and Q5_K_M: the output head and the use_more_bits half of attn_v and ffn_down get
   * Q6_K, the rest the file's k-quant. */
  case SYNTH_TYPE_Q4_K_M: t = is_output || more_bits ? QUANT_Q6_K : QUANT_Q4_K; break;
  case SYNTH_TYPE_Q5_K_M: t = is_output || more_bits ? QUANT_Q6_K : QUANT_Q5_K; break;
  /* IQ3_XS's head is Q6_K too: only the IQ2/IQ1/IQ3_XXS file types lower it to Q5_K. */
  case SYNTH_TYPE_IQ3_XS: t = is_output ? QUANT_Q6_K : iq3_xs_type(hp, spec); break;
  default: return QUANT_F16;
  }
  /* Rows that are not a multiple of the 256-element super-block fall back to a 32-element type
   * (llama.cpp's convert_incompatible_tensor): the 0.5B's n_embd of 896 is one. */
  if (spec->ne[0] % QK_K != 0) {
    switch (t) {
    case QUANT_Q4_K: return QUANT_Q5_0;
    case QUANT_Q5_K: return QUANT_Q5_1;
    case QUANT_Q6_K: return QUANT_Q8_0;
    case QUANT_IQ3_XXS:
    case QUANT_IQ3_S: return QUANT_IQ4_NL;
    default: break;
    }
  }
  return t;
}

/* llama_ftype of the whole file (general.file_type). */
static uint32_t file_type_id(enum synth_type type) {
  switch (type) {
  case SYNTH_TYPE_F16: return 1;
  case SYNTH_TYPE_Q8_0: return 7;
  case SYNTH_TYPE_Q4_0: return 2;
  case SYNTH_TYPE_Q4_K_M: return 15;
  case SYNTH_TYPE_Q5_K_M: return 17;
  case SYNTH_TYPE_IQ3_XS: return 22;
  default: return 0;
  }
}

/* ---- Random numbers: xoshiro256** seeded by splitmix64 (Blackman & Vigna) ----------------- */

struct rng {
  uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x) {
  uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed, const char *name) {
  uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a of the tensor name: tensors are independent */
  for (const char *c = name; *c; c++)
    h = (h ^ (uint8_t)*c) * 0x100000001b3ull;
  uint64_t x = seed ^ h;
  for (int i = 0; i < 4; i++)
    r->s[i] = splitmix64(&x);
}

static uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(struct rng *r) {
  uint64_t *s = r->s;
  uint64_t result = rotl(s[1] * 5, 7) * 9;
  uint64_t t = s[1] << 17;
  s[2] ^= s[0];
  s[3] ^= s[1];
  s[1] ^= s[2];
  s[0] ^= s[3];
  s[2] ^= t;
  s[3] = rotl(s[3], 45);
  return result;
}

static float rng_uniform(struct rng *r) { /* [0, 1) */
  return (float)(rng_next(r) >> 40) * (1.0f / 16777216.0f);
}

/* Approximately N(0, 1): Irwin-Hall sum of four 16-bit uniforms from one 64-bit draw, rescaled
 * (cheap, bounded by 3.5; the f16 weights of a 7B model are 7 billion draws). */
static float rng_gauss(struct rng *r) {
  uint64_t v = rng_next(r);
  uint32_t s = (uint32_t)(v & 0xFFFF) + (uint32_t)((v >> 16) & 0xFFFF) +
               (uint32_t)((v >> 32) & 0xFFFF) + (uint32_t)(v >> 48);
  /* s / 65536 is a sum of four U[0,1): mean 2, variance 4/12. */
  return ((float)s * (1.0f / 65536.0f) - 2.0f) * 1.7320508f;
}

static void rng_bytes(struct rng *r, uint8_t *dst, size_t n) {
  while (n >= 8) {
    uint64_t v = rng_next(r);
    memcpy(dst, &v, 8);
    dst += 8;
    n -= 8;
  }
  if (n) {
    uint64_t v = rng_next(r);
    memcpy(dst, &v, n);
  }
}

/* ---- Random blocks ------------------------------------------------------------------------ */

#define WEIGHT_STD 0.02f

/* A block scale near base: jittered by +-25% so blocks differ. */
static quant_f16 scale_f16(struct rng *r, float base) {
  return quant_f32_to_f16(base * (0.75f + 0.5f * rng_uniform(r)));
}

/* Packs 8 six-bit scales and mins as ggml's get_scale_min_k4 reads them (ggml-quants.c). */
static void pack_k4_scales(uint8_t q[K_SCALE_SIZE], const uint8_t sc[8], const uint8_t m[8]) {
  for (int j = 0; j < 4; j++) {
    q[j] = (uint8_t)(sc[j] | ((sc[j + 4] >> 4) << 6));
    q[j + 4] = (uint8_t)(m[j] | ((m[j + 4] >> 4) << 6));
    q[j + 8] = (uint8_t)((sc[j + 4] & 0xF) | ((m[j + 4] & 0xF) << 4));
  }
}

/* Root mean square of a table of signed levels (IQ4_NL). */
static float levels_rms_i8(const int8_t *levels, size_t n) {
  double sq = 0.0;
  for (size_t i = 0; i < n; i++)
    sq += (double)levels[i] * levels[i];
  return (float)sqrt(sq / (double)n);
}

/* Root mean square of the values of an IQ3 grid (entries pack 4 unsigned byte values). */
static float grid_rms(const uint32_t *grid, size_t n) {
  double sq = 0.0;
  for (size_t i = 0; i < n; i++)
    for (int j = 0; j < 4; j++) {
      double v = (double)((grid[i] >> (8 * j)) & 0xFF);
      sq += v * v;
    }
  return (float)sqrt(sq / (double)(4 * n));
}

/* Fills n_blocks blocks of type at dst. role decides the f32 contents (norm, bias, weight). */
static void fill_blocks(uint32_t type, enum model_tensor_role role, struct rng *r, uint8_t *dst,
                        size_t n_blocks) {
  switch (type) {
  case QUANT_F32: {
    bool is_norm = role == MODEL_TENSOR_ATTN_NORM || role == MODEL_TENSOR_FFN_NORM ||
                   role == MODEL_TENSOR_OUTPUT_NORM;
    for (size_t i = 0; i < n_blocks; i++) {
      float v = is_norm ? 1.0f + 0.02f * rng_gauss(r) : 0.01f * rng_gauss(r);
      memcpy(dst + 4 * i, &v, 4);
    }
    return;
  }
  case QUANT_F16:
    for (size_t i = 0; i < n_blocks; i++) {
      quant_f16 h = quant_f32_to_f16(WEIGHT_STD * rng_gauss(r));
      memcpy(dst + 2 * i, &h, 2);
    }
    return;
  case QUANT_Q8_0: {
    /* qs uniform in -128..127: std 73.9 */
    struct block_q8_0 *b = (struct block_q8_0 *)dst;
    rng_bytes(r, dst, n_blocks * sizeof *b);
    for (size_t i = 0; i < n_blocks; i++)
      b[i].d = scale_f16(r, WEIGHT_STD / 73.9f);
    return;
  }
  case QUANT_Q4_0: {
    /* (nibble - 8) uniform in -8..7: std 4.61 */
    struct block_q4_0 *b = (struct block_q4_0 *)dst;
    rng_bytes(r, dst, n_blocks * sizeof *b);
    for (size_t i = 0; i < n_blocks; i++)
      b[i].d = scale_f16(r, WEIGHT_STD / 4.61f);
    return;
  }
  case QUANT_Q5_0: {
    /* (5-bit value - 16) uniform in -16..15: std 9.23 */
    struct block_q5_0 *b = (struct block_q5_0 *)dst;
    rng_bytes(r, dst, n_blocks * sizeof *b);
    for (size_t i = 0; i < n_blocks; i++)
      b[i].d = scale_f16(r, WEIGHT_STD / 9.23f);
    return;
  }
  case QUANT_Q5_1: {
    /* y = d * q + m with q in 0..31 (mean 15.5, std 9.23); m = -15.5 d centres the block. */
    struct block_q5_1 *b = (struct block_q5_1 *)dst;
    rng_bytes(r, dst, n_blocks * sizeof *b);
    for (size_t i = 0; i < n_blocks; i++) {
      float d = WEIGHT_STD / 9.23f * (0.75f + 0.5f * rng_uniform(r));
      b[i].d = quant_f32_to_f16(d);
      b[i].m = quant_f32_to_f16(-15.5f * d);
    }
    return;
  }
  case QUANT_IQ4_NL: {
    /* y = d * level[nibble]: any nibble names one of the 16 levels. */
    struct block_iq4_nl *b = (struct block_iq4_nl *)dst;
    rng_bytes(r, dst, n_blocks * sizeof *b);
    float rms = levels_rms_i8(quant_iq4nl_values, 16);
    for (size_t i = 0; i < n_blocks; i++)
      b[i].d = scale_f16(r, WEIGHT_STD / rms);
    return;
  }
  case QUANT_Q4_K: {
    /* y = d * sc * q - dmin * m with q in 0..15 (mean 7.5, std 4.61). dmin = 8 d and
     * m ~ 7.5 sc / 8 keep each sub-block centred; sc uniform in 1..63 has rms 36.8. */
    struct block_q4_k *b = (struct block_q4_k *)dst;
    rng_bytes(r, dst, n_blocks * sizeof *b);
    for (size_t i = 0; i < n_blocks; i++) {
      uint8_t sc[8], m[8];
      for (int j = 0; j < 8; j++) {
        sc[j] = (uint8_t)(1 + rng_next(r) % 63);
        int mm = (int)lroundf(7.5f * sc[j] / 8.0f) + (int)(rng_next(r) % 3) - 1;
        m[j] = (uint8_t)(mm < 0 ? 0 : mm > 63 ? 63 : mm);
      }
      pack_k4_scales(b[i].scales, sc, m);
      float d = WEIGHT_STD / (36.8f * 4.61f) * (0.75f + 0.5f * rng_uniform(r));
      b[i].d = quant_f32_to_f16(d);
      b[i].dmin = quant_f32_to_f16(8.0f * d);
    }
    return;
  }
  case QUANT_Q5_K: {
    /* Q4_K with a fifth bit: q in 0..31 (mean 15.5, std 9.23); dmin = 16 d and m ~ 15.5 sc / 16
     * centre each sub-block (m stays under 63 since sc does); sc uniform in 1..63 (rms 36.8). */
    struct block_q5_k *b = (struct block_q5_k *)dst;
    rng_bytes(r, dst, n_blocks * sizeof *b);
    for (size_t i = 0; i < n_blocks; i++) {
      uint8_t sc[8], m[8];
      for (int j = 0; j < 8; j++) {
        sc[j] = (uint8_t)(1 + rng_next(r) % 63);
        int mm = (int)lroundf(15.5f * sc[j] / 16.0f) + (int)(rng_next(r) % 3) - 1;
        m[j] = (uint8_t)(mm < 0 ? 0 : mm > 63 ? 63 : mm);
      }
      pack_k4_scales(b[i].scales, sc, m);
      float d = WEIGHT_STD / (36.8f * 9.23f) * (0.75f + 0.5f * rng_uniform(r));
      b[i].d = quant_f32_to_f16(d);
      b[i].dmin = quant_f32_to_f16(16.0f * d);
    }
    return;
  }
  case QUANT_Q6_K: {
    /* y = d * scale * (q - 32) with q in 0..63 (std 18.5); scales uniform in 2..31 (rms 18.5). */
    struct block_q6_k *b = (struct block_q6_k *)dst;
    rng_bytes(r, dst, n_blocks * sizeof *b);
    for (size_t i = 0; i < n_blocks; i++) {
      for (int j = 0; j < QK_K / 16; j++)
        b[i].scales[j] = (int8_t)(2 + rng_next(r) % 30);
      b[i].d = scale_f16(r, WEIGHT_STD / (18.5f * 18.5f));
    }
    return;
  }
  case QUANT_IQ3_XXS: {
    /* y = d * (0.5 + s) / 2 * grid[index] * sign. Every field is a full bit field with no
     * invalid value (8-bit indices into a 256-entry grid, 7 sign bits whose 8th is parity, a
     * 4-bit scale), so random bytes make valid blocks; only d is set. (0.5 + s) / 2 for s
     * uniform in 0..15 has rms 4.62. */
    struct block_iq3_xxs *b = (struct block_iq3_xxs *)dst;
    rng_bytes(r, dst, n_blocks * sizeof *b);
    float rms = 4.62f * grid_rms(quant_iq3xxs_grid, 256);
    for (size_t i = 0; i < n_blocks; i++)
      b[i].d = scale_f16(r, WEIGHT_STD / rms);
    return;
  }
  case QUANT_IQ3_S: {
    /* y = d * (1 + 2 s) * grid[index] * sign: 9-bit indices (8 in qs, 1 in qh) into a 512-entry
     * grid, explicit sign bits, 4-bit scales: random bytes are valid. (1 + 2 s) for s uniform in
     * 0..15 has rms 18.47. */
    struct block_iq3_s *b = (struct block_iq3_s *)dst;
    rng_bytes(r, dst, n_blocks * sizeof *b);
    float rms = 18.47f * grid_rms(quant_iq3s_grid, 512);
    for (size_t i = 0; i < n_blocks; i++)
      b[i].d = scale_f16(r, WEIGHT_STD / rms);
    return;
  }
  default:
    /* synth_tensor_type never picks another type. */
    memset(dst, 0, n_blocks * quant_traits(type)->type_size);
    return;
  }
}

/* Llama 3.1 rope frequency factors, as convert_hf_to_gguf.py computes them for rope_freqs. */
static void llama3_rope_factors(const struct synth_preset *p, uint32_t n_rot, float *out) {
  const double pi = 3.14159265358979323846;
  double low_wavelen = p->original_ctx / p->low_freq_factor;
  double high_wavelen = p->original_ctx / p->high_freq_factor;
  for (uint32_t i = 0; i < n_rot / 2; i++) {
    double freq = 1.0 / pow(p->rope_base, (2.0 * i) / n_rot);
    double wavelen = 2 * pi / freq;
    if (wavelen < high_wavelen) {
      out[i] = 1.0f;
    } else if (wavelen > low_wavelen) {
      out[i] = p->rope_factor;
    } else {
      double smooth = (p->original_ctx / wavelen - p->low_freq_factor) /
                      (p->high_freq_factor - p->low_freq_factor);
      out[i] = (float)(1.0 / ((1 - smooth) / p->rope_factor + smooth));
    }
  }
}

/* ---- Header encoding ---------------------------------------------------------------------- */

struct buf {
  uint8_t *data;
  size_t len, cap;
  bool failed; /* an allocation failed: the content is incomplete */
};

static void buf_bytes(struct buf *b, const void *p, size_t n) {
  if (b->failed) return;
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n)
      cap *= 2;
    uint8_t *grown = aug_realloc(b->data, cap);
    if (!grown) {
      b->failed = true;
      return;
    }
    b->data = grown;
    b->cap = cap;
  }
  memcpy(b->data + b->len, p, n);
  b->len += n;
}

static void buf_u32(struct buf *b, uint32_t v) {
  uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
  buf_bytes(b, le, 4);
}

static void buf_u64(struct buf *b, uint64_t v) {
  uint8_t le[8];
  for (int i = 0; i < 8; i++)
    le[i] = (uint8_t)(v >> (8 * i));
  buf_bytes(b, le, 8);
}

static void buf_str(struct buf *b, const char *s, size_t len) {
  buf_u64(b, len);
  buf_bytes(b, s, len);
}

/* The key/value section and its count. */
struct kvs {
  struct buf b;
  uint64_t count;
};

static void kv_key(struct kvs *k, const char *key, enum gguf_value_type type) {
  buf_str(&k->b, key, strlen(key));
  buf_u32(&k->b, type);
  k->count++;
}

static void kv_u32(struct kvs *k, const char *key, uint32_t v) {
  kv_key(k, key, GGUF_TYPE_UINT32);
  buf_u32(&k->b, v);
}

static void kv_f32(struct kvs *k, const char *key, float v) {
  uint32_t bits;
  memcpy(&bits, &v, 4);
  kv_key(k, key, GGUF_TYPE_FLOAT32);
  buf_u32(&k->b, bits);
}

static void kv_bool(struct kvs *k, const char *key, bool v) {
  kv_key(k, key, GGUF_TYPE_BOOL);
  buf_bytes(&k->b, &(uint8_t){v ? 1 : 0}, 1);
}

static void kv_string(struct kvs *k, const char *key, const char *v) {
  kv_key(k, key, GGUF_TYPE_STRING);
  buf_str(&k->b, v, strlen(v));
}

static void kv_array_header(struct kvs *k, const char *key, enum gguf_value_type elem,
                            uint64_t count) {
  kv_key(k, key, GGUF_TYPE_ARRAY);
  buf_u32(&k->b, elem);
  buf_u64(&k->b, count);
}

static void arch_kv_u32(struct kvs *k, const char *arch, const char *suffix, uint32_t v) {
  char key[128];
  snprintf(key, sizeof key, "%s.%s", arch, suffix);
  kv_u32(k, key, v);
}

static void arch_kv_f32(struct kvs *k, const char *arch, const char *suffix, float v) {
  char key[128];
  snprintf(key, sizeof key, "%s.%s", arch, suffix);
  kv_f32(k, key, v);
}

static void write_model_kvs(struct kvs *k, const struct synth_params *params,
                            const struct synth_preset *p, const struct model_hparams *hp) {
  const char *a = hp->arch_name;
  char name[128];
  snprintf(name, sizeof name, "synthetic %s %s (random weights)", p->name,
           synth_type_name(params->type));
  kv_string(k, "general.architecture", a);
  kv_string(k, "general.type", "model");
  kv_string(k, "general.name", name);
  kv_u32(k, "general.file_type", file_type_id(params->type));
  kv_u32(k, "general.quantization_version", 2);
  arch_kv_u32(k, a, "block_count", hp->n_layer);
  arch_kv_u32(k, a, "context_length", hp->n_ctx_train);
  arch_kv_u32(k, a, "embedding_length", hp->n_embd);
  arch_kv_u32(k, a, "feed_forward_length", hp->n_ff);
  arch_kv_u32(k, a, "attention.head_count", hp->n_head);
  arch_kv_u32(k, a, "attention.head_count_kv", hp->n_head_kv);
  arch_kv_f32(k, a, "rope.freq_base", hp->rope_freq_base);
  arch_kv_f32(k, a, "attention.layer_norm_rms_epsilon", hp->rms_eps);
  if (hp->arch == MODEL_ARCH_LLAMA) {
    /* As llama.cpp's converter writes Llama 3.2 files. */
    arch_kv_u32(k, a, "attention.key_length", hp->head_dim);
    arch_kv_u32(k, a, "attention.value_length", hp->head_dim);
    arch_kv_u32(k, a, "rope.dimension_count", hp->n_rot);
    arch_kv_u32(k, a, "vocab_size", hp->n_vocab);
  }
}

/* The built-in vocabulary: the 256 byte tokens of GPT-2's byte-to-unicode map, a few merges
 * (with the tokens they make), control tokens incl. FIM, then unused padding up to n_vocab. */
static const char *const builtin_merges[][2] = {
    {"Ġ", "Ġ"},   {"Ġ", "t"},  {"i", "n"},   {"e", "r"},  {"o", "n"}, {"r", "e"},
    {"Ġ", "a"},   {"e", "n"},  {"Ġ", "s"},   {"a", "t"},  {"o", "r"}, {"e", "s"},
    {"ĠĠ", "ĠĠ"}, {"Ġt", "h"}, {"Ġth", "e"}, {"in", "g"}, {"Ċ", "Ġ"}, {"ĠĠĠĠ", "ĠĠĠĠ"},
};
#define N_BUILTIN_MERGES (sizeof builtin_merges / sizeof builtin_merges[0])

static const char *const builtin_specials[] = {
    "<|endoftext|>",  "<|begin_of_text|>", "<|im_start|>", "<|im_end|>",    "<|fim_prefix|>",
    "<|fim_middle|>", "<|fim_suffix|>",    "<|fim_pad|>",  "<|repo_name|>", "<|file_sep|>",
};
#define N_BUILTIN_SPECIALS (sizeof builtin_specials / sizeof builtin_specials[0])
#define N_BUILTIN_TOKENS (256 + N_BUILTIN_MERGES + N_BUILTIN_SPECIALS)

/* GPT-2 bytes_to_unicode: printable Latin-1 bytes map to themselves, the rest to U+0100 on. */
static void byte_token(int byte, char out[4]) {
  bool printable = (byte >= '!' && byte <= '~') || (byte >= 0xA1 && byte <= 0xAC) ||
                   (byte >= 0xAE && byte <= 0xFF);
  unsigned cp;
  if (printable) {
    cp = (unsigned)byte;
  } else {
    unsigned n = 0; /* rank of byte among the non-printable ones */
    for (int b = 0; b < byte; b++)
      if (!((b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF))) n++;
    cp = 256 + n;
  }
  if (cp < 0x80) {
    out[0] = (char)cp;
    out[1] = 0;
  } else {
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    out[2] = 0;
  }
}

static uint32_t builtin_special_id(const char *text) {
  for (size_t i = 0; i < N_BUILTIN_SPECIALS; i++)
    if (!strcmp(builtin_specials[i], text)) return (uint32_t)(256 + N_BUILTIN_MERGES + i);
  return 0;
}

static int write_builtin_vocab(struct kvs *k, const struct synth_preset *p, uint32_t n_vocab,
                               struct aug_err *err) {
  if (n_vocab < N_BUILTIN_TOKENS)
    return aug_err_set(err, AUG_EINVAL,
                       "synth: the built-in vocabulary needs %zu tokens, the model has %" PRIu32,
                       (size_t)N_BUILTIN_TOKENS, n_vocab);
  bool llama = p->arch == MODEL_ARCH_LLAMA;
  kv_string(k, "tokenizer.ggml.model", "gpt2");
  kv_string(k, "tokenizer.ggml.pre", p->pre);
  kv_array_header(k, "tokenizer.ggml.tokens", GGUF_TYPE_STRING, n_vocab);
  char text[64];
  for (int b = 0; b < 256; b++) {
    byte_token(b, text);
    buf_str(&k->b, text, strlen(text));
  }
  for (size_t i = 0; i < N_BUILTIN_MERGES; i++) {
    snprintf(text, sizeof text, "%s%s", builtin_merges[i][0], builtin_merges[i][1]);
    buf_str(&k->b, text, strlen(text));
  }
  for (size_t i = 0; i < N_BUILTIN_SPECIALS; i++)
    buf_str(&k->b, builtin_specials[i], strlen(builtin_specials[i]));
  for (uint32_t id = N_BUILTIN_TOKENS; id < n_vocab; id++) {
    int n = snprintf(text, sizeof text, "[PAD%" PRIu32 "]", id);
    buf_str(&k->b, text, (size_t)n);
  }
  kv_array_header(k, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, n_vocab);
  for (uint32_t id = 0; id < n_vocab; id++) {
    uint32_t kind = id < 256 + N_BUILTIN_MERGES ? TOKEN_KIND_NORMAL
                    : id < N_BUILTIN_TOKENS     ? TOKEN_KIND_CONTROL
                                                : TOKEN_KIND_UNUSED;
    buf_u32(&k->b, kind);
  }
  kv_array_header(k, "tokenizer.ggml.merges", GGUF_TYPE_STRING, N_BUILTIN_MERGES);
  for (size_t i = 0; i < N_BUILTIN_MERGES; i++) {
    int n = snprintf(text, sizeof text, "%s %s", builtin_merges[i][0], builtin_merges[i][1]);
    buf_str(&k->b, text, (size_t)n);
  }
  uint32_t eos = builtin_special_id("<|endoftext|>");
  kv_u32(k, "tokenizer.ggml.bos_token_id", llama ? builtin_special_id("<|begin_of_text|>") : eos);
  kv_u32(k, "tokenizer.ggml.eos_token_id", eos);
  kv_u32(k, "tokenizer.ggml.eot_token_id", builtin_special_id("<|im_end|>"));
  kv_u32(k, "tokenizer.ggml.padding_token_id", eos);
  kv_bool(k, "tokenizer.ggml.add_bos_token", llama);
  kv_u32(k, "tokenizer.ggml.fim_pre_token_id", builtin_special_id("<|fim_prefix|>"));
  kv_u32(k, "tokenizer.ggml.fim_suf_token_id", builtin_special_id("<|fim_suffix|>"));
  kv_u32(k, "tokenizer.ggml.fim_mid_token_id", builtin_special_id("<|fim_middle|>"));
  kv_u32(k, "tokenizer.ggml.fim_pad_token_id", builtin_special_id("<|fim_pad|>"));
  kv_u32(k, "tokenizer.ggml.fim_rep_token_id", builtin_special_id("<|repo_name|>"));
  kv_u32(k, "tokenizer.ggml.fim_sep_token_id", builtin_special_id("<|file_sep|>"));
  return 0;
}

/* Copies every tokenizer.* key of src; the per-token arrays (tokens, token_type, scores) are
 * padded with unused tokens up to n_vocab. */
static int copy_vocab(struct kvs *k, const struct gguf_file *src, uint32_t n_vocab,
                      struct aug_err *err) {
  const char *label = gguf_path(src);
  int64_t tokens_idx = gguf_find_key(src, "tokenizer.ggml.tokens");
  if (tokens_idx < 0 || gguf_kv_type(src, (size_t)tokens_idx) != GGUF_TYPE_ARRAY ||
      gguf_kv_array_type(src, (size_t)tokens_idx) != GGUF_TYPE_STRING)
    return aug_err_set(err, AUG_EFORMAT,
                       "synth: --vocab-from %s: no tokenizer.ggml.tokens string array", label);
  uint64_t n_src = gguf_kv_array_count(src, (size_t)tokens_idx);
  if (n_src > n_vocab)
    return aug_err_set(err, AUG_EINVAL,
                       "synth: --vocab-from %s has %" PRIu64
                       " tokens, more than the model's %" PRIu32,
                       label, n_src, n_vocab);
  for (size_t i = 0; i < gguf_kv_count(src); i++) {
    const char *key = gguf_kv_key(src, i);
    if (strncmp(key, "tokenizer.", 10) != 0) continue;
    enum gguf_value_type elem = gguf_kv_array_type(src, i);
    bool per_token = gguf_kv_type(src, i) == GGUF_TYPE_ARRAY &&
                     gguf_kv_array_count(src, i) == n_src &&
                     (!strcmp(key, "tokenizer.ggml.tokens") ||
                      (!strcmp(key, "tokenizer.ggml.token_type") && elem == GGUF_TYPE_INT32) ||
                      (!strcmp(key, "tokenizer.ggml.scores") && elem == GGUF_TYPE_FLOAT32));
    if (!per_token || n_src == n_vocab) {
      const void *raw;
      uint64_t size;
      if (gguf_kv_raw_value(src, i, &raw, &size) != 0)
        return aug_err_set(err, AUG_EFORMAT, "synth: --vocab-from %s: cannot read key '%s'", label,
                           key);
      kv_key(k, key, gguf_kv_type(src, i));
      buf_bytes(&k->b, raw, (size_t)size);
      continue;
    }
    kv_array_header(k, key, elem, n_vocab);
    if (elem == GGUF_TYPE_STRING) {
      for (uint64_t t = 0; t < n_src; t++) {
        const char *s;
        size_t len;
        if (gguf_get_array_string(src, i, t, &s, &len) != 0)
          return aug_err_set(err, AUG_EFORMAT, "synth: --vocab-from %s: cannot read token %" PRIu64,
                             label, t);
        buf_str(&k->b, s, len);
      }
      char text[32];
      for (uint64_t t = n_src; t < n_vocab; t++) {
        int n = snprintf(text, sizeof text, "[PAD%" PRIu64 "]", t);
        buf_str(&k->b, text, (size_t)n);
      }
    } else {
      enum gguf_value_type et;
      uint64_t count;
      const void *data;
      if (gguf_get_array(src, key, &et, &count, &data, err) != 0) return AUG_EFORMAT;
      buf_bytes(&k->b, data, (size_t)count * 4);
      for (uint64_t t = n_src; t < n_vocab; t++)
        buf_u32(&k->b, elem == GGUF_TYPE_INT32 ? (uint32_t)TOKEN_KIND_UNUSED : 0u);
    }
  }
  return 0;
}

/* ---- Writing ------------------------------------------------------------------------------ */

struct planned_tensor {
  char *name;
  enum model_tensor_role role;
  uint32_t type, n_dims;
  uint64_t ne[4];
  uint64_t size, offset;
};

struct plan {
  const struct synth_params *params;
  const struct model_hparams *hp;
  struct planned_tensor *tensors;
  size_t n, cap;
  uint64_t data_size;
  int error;
};

#define SYNTH_ALIGNMENT GGUF_DEFAULT_ALIGNMENT

static int plan_tensor(const struct model_tensor_spec *spec, void *user) {
  struct plan *p = user;
  if (p->n == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 64;
    struct planned_tensor *grown = aug_realloc(p->tensors, cap * sizeof *grown);
    if (!grown) return AUG_ENOMEM;
    p->tensors = grown;
    p->cap = cap;
  }
  struct planned_tensor *t = &p->tensors[p->n];
  memset(t, 0, sizeof *t);
  t->name = aug_strndup(spec->name, strlen(spec->name));
  if (!t->name) return AUG_ENOMEM;
  p->n++;
  t->role = spec->role;
  t->type = synth_tensor_type(p->params->type, p->hp, spec);
  t->n_dims = spec->n_dims;
  memcpy(t->ne, spec->ne, sizeof t->ne);
  uint64_t rows = spec->ne[1] * spec->ne[2] * spec->ne[3];
  t->size = quant_row_size(t->type, spec->ne[0]) * rows;
  if (t->size == 0) return AUG_EINVAL;
  t->offset = p->data_size;
  p->data_size = (t->offset + t->size + SYNTH_ALIGNMENT - 1) / SYNTH_ALIGNMENT * SYNTH_ALIGNMENT;
  return 0;
}

static void plan_free(struct plan *p) {
  for (size_t i = 0; i < p->n; i++)
    aug_free(p->tensors[i].name);
  aug_free(p->tensors);
}

static const uint8_t zeros[SYNTH_ALIGNMENT];

/* Streams one tensor's data in chunks of whole blocks. */
static int write_tensor(FILE *f, const struct planned_tensor *t, const struct synth_preset *preset,
                        const struct model_hparams *hp, uint64_t seed, uint8_t *chunk,
                        size_t chunk_size) {
  if (t->role == MODEL_TENSOR_ROPE_FREQS) {
    float factors[512];
    if (hp->n_rot / 2 > 512) return AUG_EINVAL;
    llama3_rope_factors(preset, hp->n_rot, factors);
    return fwrite(factors, 4, hp->n_rot / 2, f) == hp->n_rot / 2 ? 0 : AUG_EIO;
  }
  const struct quant_type_traits *tr = quant_traits(t->type);
  struct rng r;
  rng_seed(&r, seed, t->name);
  uint64_t n_blocks = t->size / tr->type_size;
  size_t per_chunk = chunk_size / tr->type_size;
  while (n_blocks > 0) {
    size_t n = n_blocks < per_chunk ? (size_t)n_blocks : per_chunk;
    fill_blocks(t->type, t->role, &r, chunk, n);
    if (fwrite(chunk, tr->type_size, n, f) != n) return AUG_EIO;
    n_blocks -= n;
  }
  return 0;
}

int synth_write(const struct synth_params *params, const char *path, struct aug_err *err) {
  if (!params || !path) return aug_err_set(err, AUG_EINVAL, "synth: no parameters or path");
  struct model_hparams hp;
  int rc = synth_hparams(params, &hp, err);
  if (rc) return rc;
  const struct synth_preset *preset = find_preset(params->like);

  struct kvs kvs = {0};
  struct plan plan = {.params = params, .hp = &hp};
  struct buf header = {0};
  struct gguf_file *vocab_src = NULL;
  uint8_t *chunk = NULL;
  FILE *f = NULL;
  char *tmp = NULL;

  write_model_kvs(&kvs, params, preset, &hp);
  if (params->vocab_from) {
    struct gguf_open_params op = gguf_open_params_default();
    if ((rc = gguf_open(params->vocab_from, &op, &vocab_src, err)) != 0) goto done;
    rc = copy_vocab(&kvs, vocab_src, hp.n_vocab, err);
  } else {
    rc = write_builtin_vocab(&kvs, preset, hp.n_vocab, err);
  }
  if (rc) goto done;

  rc = model_for_each_tensor_spec(&hp, plan_tensor, &plan);
  if (rc) {
    aug_err_set(err, rc, "synth: %s: cannot plan tensors (%s)", preset->name, aug_strerror(rc));
    goto done;
  }

  buf_u32(&header, GGUF_MAGIC);
  buf_u32(&header, 3);
  buf_u64(&header, plan.n);
  buf_u64(&header, kvs.count);
  buf_bytes(&header, kvs.b.data, kvs.b.len);
  for (size_t i = 0; i < plan.n; i++) {
    const struct planned_tensor *t = &plan.tensors[i];
    buf_str(&header, t->name, strlen(t->name));
    buf_u32(&header, t->n_dims);
    for (uint32_t d = 0; d < t->n_dims; d++)
      buf_u64(&header, t->ne[d]);
    buf_u32(&header, t->type);
    buf_u64(&header, t->offset);
  }
  buf_bytes(&header, zeros, (SYNTH_ALIGNMENT - header.len % SYNTH_ALIGNMENT) % SYNTH_ALIGNMENT);
  if (header.failed || kvs.b.failed) {
    rc = aug_err_set(err, AUG_ENOMEM, "synth: out of memory for the header");
    goto done;
  }

  size_t path_len = strlen(path);
  tmp = aug_malloc(path_len + 5);
  const size_t chunk_size = 4u << 20;
  chunk = aug_malloc(chunk_size);
  if (!tmp || !chunk) {
    rc = aug_err_set(err, AUG_ENOMEM, "synth: out of memory");
    goto done;
  }
  memcpy(tmp, path, path_len);
  memcpy(tmp + path_len, ".tmp", 5);
  f = fopen(tmp, "wb");
  if (!f) {
    rc = aug_err_set(err, AUG_EIO, "synth: %s: cannot create: %s", tmp, strerror(errno));
    goto done;
  }
  bool ok = fwrite(header.data, 1, header.len, f) == header.len;
  for (size_t i = 0; ok && i < plan.n; i++) {
    const struct planned_tensor *t = &plan.tensors[i];
    ok = write_tensor(f, t, preset, &hp, params->seed, chunk, chunk_size) == 0;
    uint64_t pad = (SYNTH_ALIGNMENT - t->size % SYNTH_ALIGNMENT) % SYNTH_ALIGNMENT;
    ok = ok && fwrite(zeros, 1, (size_t)pad, f) == pad;
  }
  int saved_errno = errno;
  if (fclose(f) != 0 && ok) {
    ok = false;
    saved_errno = errno;
  }
  f = NULL;
  if (!ok) {
    remove(tmp);
    rc = aug_err_set(err, AUG_EIO, "synth: %s: write failed: %s", tmp, strerror(saved_errno));
    goto done;
  }
  if (rename(tmp, path) != 0) {
    saved_errno = errno;
    remove(tmp);
    rc = aug_err_set(err, AUG_EIO, "synth: cannot rename %s to %s: %s", tmp, path,
                     strerror(saved_errno));
    goto done;
  }
  /* What synth writes must pass the reader's and the architecture's checks like any model. */
  struct model *check = NULL;
  rc = model_load(path, &check, err);
  model_destroy(check);
  if (rc) {
    aug_err_prefix(err, "synth: the written file does not load");
    remove(path);
  }

done:
  if (f) fclose(f);
  aug_free(tmp);
  aug_free(chunk);
  aug_free(header.data);
  aug_free(kvs.b.data);
  plan_free(&plan);
  gguf_close(vocab_src);
  return rc;
}
