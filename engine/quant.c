/* Tensor types: the trait table (names as gguf-py prints them, block and type sizes as ggml's
 * type_traits), f16/bf16 conversions, and scalar dequantization and quantization of the 32-element
 * block types. The k-quants (256-element super-blocks) live in quant_k.c; the looked-up types
 * (IQ*, TQ*, MXFP4) in quant_iq.c with their grids in quant_grids.c. Every routine here is the
 * scalar reference that faster kernels are checked against; none allocates. Block layouts:
 * ggml/src/ggml-common.h. */
#include "engine/quant.h"

#include <math.h>
#include <string.h>

#include "engine/error.h"
#include "engine/quant_internal.h"

/* The on-disk layouts are packed C structs of 2-byte and 1-byte fields; check that the compiler
 * lays them out with no padding, exactly as ggml-common.h's static_asserts do. */
_Static_assert(sizeof(struct block_q4_0) == 2 + QK4_0 / 2, "block_q4_0 size");
_Static_assert(sizeof(struct block_q4_1) == 4 + QK4_1 / 2, "block_q4_1 size");
_Static_assert(sizeof(struct block_q5_0) == 2 + 4 + QK5_0 / 2, "block_q5_0 size");
_Static_assert(sizeof(struct block_q5_1) == 4 + 4 + QK5_1 / 2, "block_q5_1 size");
_Static_assert(sizeof(struct block_q8_0) == 2 + QK8_0, "block_q8_0 size");
_Static_assert(sizeof(struct block_q8_1) == 4 + QK8_1, "block_q8_1 size");
_Static_assert(sizeof(struct block_q2_k) == QK_K / 16 + QK_K / 4 + 4, "block_q2_k size");
_Static_assert(sizeof(struct block_q3_k) == QK_K / 8 + QK_K / 4 + 12 + 2, "block_q3_k size");
_Static_assert(sizeof(struct block_q4_k) == 4 + K_SCALE_SIZE + QK_K / 2, "block_q4_k size");
_Static_assert(sizeof(struct block_q5_k) == 4 + K_SCALE_SIZE + QK_K / 8 + QK_K / 2,
               "block_q5_k size");
_Static_assert(sizeof(struct block_q6_k) == QK_K / 2 + QK_K / 4 + QK_K / 16 + 2, "block_q6_k size");
_Static_assert(sizeof(struct block_q8_k) == 4 + QK_K + QK_K / 16 * 2, "block_q8_k size");
_Static_assert(sizeof(struct block_iq4_nl) == 2 + QK4_NL / 2, "block_iq4_nl size");
_Static_assert(sizeof(struct block_iq4_xs) == 4 + QK_K / 64 + QK_K / 2, "block_iq4_xs size");
_Static_assert(sizeof(struct block_iq2_xxs) == 2 + QK_K / 4, "block_iq2_xxs size");
_Static_assert(sizeof(struct block_iq2_xs) == 2 + QK_K / 4 + QK_K / 32, "block_iq2_xs size");
_Static_assert(sizeof(struct block_iq2_s) == 2 + QK_K / 4 + QK_K / 16, "block_iq2_s size");
_Static_assert(sizeof(struct block_iq3_xxs) == 2 + 3 * QK_K / 8, "block_iq3_xxs size");
_Static_assert(sizeof(struct block_iq3_s) == 2 + 13 * QK_K / 32 + QK_K / 64, "block_iq3_s size");
_Static_assert(sizeof(struct block_iq1_s) == 2 + QK_K / 8 + QK_K / 16, "block_iq1_s size");
_Static_assert(sizeof(struct block_iq1_m) == QK_K / 8 + QK_K / 16 + QK_K / 32, "block_iq1_m size");
_Static_assert(sizeof(struct block_tq1_0) == 2 + 4 * 13, "block_tq1_0 size");
_Static_assert(sizeof(struct block_tq2_0) == 2 + QK_K / 4, "block_tq2_0 size");
_Static_assert(sizeof(struct block_mxfp4) == 1 + QK_MXFP4 / 2, "block_mxfp4 size");

/* ids 4 and 5 (Q4_2, Q4_3), 31..33 (Q4_0_4_4 ..) and 36..38 (IQ4_NL_4_4 ..) were removed from the
 * format; they stay empty so a file that uses them is rejected by name. Sizes: ggml's type_traits,
 * which gguf-py mirrors in GGML_QUANT_SIZES. */
struct quant_type_entry {
  struct quant_type_traits traits;
  quant_dequantize_fn dequantize; /* NULL when can_dequantize is false */
  quant_quantize_fn quantize;     /* NULL when can_quantize is false */
};

/* can_dequantize / can_quantize are spelled out (a function address is not a constant expression
 * for every compiler); test_flags_match_functions checks them against the function slots. */

static void quant_dequantize_q4_0(const void *src, float *dst, int64_t nb);
static void quant_dequantize_q4_1(const void *src, float *dst, int64_t nb);
static void quant_dequantize_q5_0(const void *src, float *dst, int64_t nb);
static void quant_dequantize_q5_1(const void *src, float *dst, int64_t nb);
static void quant_dequantize_q8_0(const void *src, float *dst, int64_t nb);
static void quant_dequantize_q8_1(const void *src, float *dst, int64_t nb);
static void quant_dequantize_f32(const void *src, float *dst, int64_t n);
static void quant_dequantize_f16(const void *src, float *dst, int64_t n);
static void quant_dequantize_bf16(const void *src, float *dst, int64_t n);
static void quant_quantize_q4_0(const float *src, void *dst, int64_t nb);
static void quant_quantize_q8_0(const float *src, void *dst, int64_t nb);
static void quant_quantize_q4_1(const float *src, void *dst, int64_t nb);
static void quant_quantize_q5_0(const float *src, void *dst, int64_t nb);
static void quant_quantize_q5_1(const float *src, void *dst, int64_t nb);
static void quant_quantize_f32(const float *src, void *dst, int64_t n);
static void quant_quantize_f16(const float *src, void *dst, int64_t n);
static void quant_quantize_bf16(const float *src, void *dst, int64_t n);

static const struct quant_type_entry quant_types[QUANT_TYPE_COUNT] = {
    [QUANT_F32] = {{"F32", 1, 4, true, true}, quant_dequantize_f32, quant_quantize_f32},
    [QUANT_F16] = {{"F16", 1, 2, true, true}, quant_dequantize_f16, quant_quantize_f16},
    [QUANT_Q4_0] = {{"Q4_0", QK4_0, sizeof(struct block_q4_0), true, true},
                    quant_dequantize_q4_0,
                    quant_quantize_q4_0},
    [QUANT_Q4_1] = {{"Q4_1", QK4_1, sizeof(struct block_q4_1), true, true},
                    quant_dequantize_q4_1,
                    quant_quantize_q4_1},
    [QUANT_Q5_0] = {{"Q5_0", QK5_0, sizeof(struct block_q5_0), true, true},
                    quant_dequantize_q5_0,
                    quant_quantize_q5_0},
    [QUANT_Q5_1] = {{"Q5_1", QK5_1, sizeof(struct block_q5_1), true, true},
                    quant_dequantize_q5_1,
                    quant_quantize_q5_1},
    [QUANT_Q8_0] = {{"Q8_0", QK8_0, sizeof(struct block_q8_0), true, true},
                    quant_dequantize_q8_0,
                    quant_quantize_q8_0},
    [QUANT_Q8_1] = {{"Q8_1", QK8_1, sizeof(struct block_q8_1), true, false},
                    quant_dequantize_q8_1,
                    NULL},
    [QUANT_Q2_K] = {{"Q2_K", QK_K, sizeof(struct block_q2_k), true, false},
                    quant_dequantize_q2_k,
                    NULL},
    [QUANT_Q3_K] = {{"Q3_K", QK_K, sizeof(struct block_q3_k), true, false},
                    quant_dequantize_q3_k,
                    NULL},
    [QUANT_Q4_K] = {{"Q4_K", QK_K, sizeof(struct block_q4_k), true, true},
                    quant_dequantize_q4_k,
                    quant_quantize_q4_k},
    [QUANT_Q5_K] = {{"Q5_K", QK_K, sizeof(struct block_q5_k), true, true},
                    quant_dequantize_q5_k,
                    quant_quantize_q5_k},
    [QUANT_Q6_K] = {{"Q6_K", QK_K, sizeof(struct block_q6_k), true, true},
                    quant_dequantize_q6_k,
                    quant_quantize_q6_k},
    [QUANT_Q8_K] = {{"Q8_K", QK_K, sizeof(struct block_q8_k), true, true},
                    quant_dequantize_q8_k,
                    quant_quantize_q8_k},
    [QUANT_IQ2_XXS] = {{"IQ2_XXS", QK_K, sizeof(struct block_iq2_xxs), true, false},
                       quant_dequantize_iq2_xxs,
                       NULL},
    [QUANT_IQ2_XS] = {{"IQ2_XS", QK_K, sizeof(struct block_iq2_xs), true, false},
                      quant_dequantize_iq2_xs,
                      NULL},
    [QUANT_IQ3_XXS] = {{"IQ3_XXS", QK_K, sizeof(struct block_iq3_xxs), true, false},
                       quant_dequantize_iq3_xxs,
                       NULL},
    [QUANT_IQ1_S] = {{"IQ1_S", QK_K, sizeof(struct block_iq1_s), true, false},
                     quant_dequantize_iq1_s,
                     NULL},
    [QUANT_IQ4_NL] = {{"IQ4_NL", QK4_NL, sizeof(struct block_iq4_nl), true, false},
                      quant_dequantize_iq4_nl,
                      NULL},
    [QUANT_IQ3_S] = {{"IQ3_S", QK_K, sizeof(struct block_iq3_s), true, false},
                     quant_dequantize_iq3_s,
                     NULL},
    [QUANT_IQ2_S] = {{"IQ2_S", QK_K, sizeof(struct block_iq2_s), true, false},
                     quant_dequantize_iq2_s,
                     NULL},
    [QUANT_IQ4_XS] = {{"IQ4_XS", QK_K, sizeof(struct block_iq4_xs), true, false},
                      quant_dequantize_iq4_xs,
                      NULL},
    [QUANT_I8] = {{"I8", 1, 1, false, false}, NULL, NULL},
    [QUANT_I16] = {{"I16", 1, 2, false, false}, NULL, NULL},
    [QUANT_I32] = {{"I32", 1, 4, false, false}, NULL, NULL},
    [QUANT_I64] = {{"I64", 1, 8, false, false}, NULL, NULL},
    [QUANT_F64] = {{"F64", 1, 8, false, false}, NULL, NULL},
    [QUANT_IQ1_M] = {{"IQ1_M", QK_K, sizeof(struct block_iq1_m), true, false},
                     quant_dequantize_iq1_m,
                     NULL},
    [QUANT_BF16] = {{"BF16", 1, 2, true, true}, quant_dequantize_bf16, quant_quantize_bf16},
    [QUANT_TQ1_0] = {{"TQ1_0", QK_K, sizeof(struct block_tq1_0), true, false},
                     quant_dequantize_tq1_0,
                     NULL},
    [QUANT_TQ2_0] = {{"TQ2_0", QK_K, sizeof(struct block_tq2_0), true, false},
                     quant_dequantize_tq2_0,
                     NULL},
    [QUANT_MXFP4] = {{"MXFP4", QK_MXFP4, sizeof(struct block_mxfp4), true, false},
                     quant_dequantize_mxfp4,
                     NULL},
};

const struct quant_type_traits *quant_traits(uint32_t type) {
  if (type >= QUANT_TYPE_COUNT || quant_types[type].traits.name == NULL) return NULL;
  return &quant_types[type].traits;
}

const char *quant_type_name(uint32_t type) {
  const struct quant_type_traits *t = quant_traits(type);
  return t ? t->name : "unknown";
}

size_t quant_row_size(uint32_t type, uint64_t n) {
  const struct quant_type_traits *t = quant_traits(type);
  if (!t || n % t->block_size != 0) return 0;
  uint64_t blocks = n / t->block_size;
  if (blocks > SIZE_MAX / t->type_size) return 0;
  return (size_t)(blocks * t->type_size);
}

/* ---- f16 and bf16 (IEEE 754 binary16; bfloat16 = the top half of a binary32) ---- */

static float quant_f32_from_bits(uint32_t bits) {
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

static uint32_t quant_f32_bits(float f) {
  uint32_t bits;
  memcpy(&bits, &f, sizeof bits);
  return bits;
}

/* Exact: every binary16 value, subnormals and NaN payloads included, is a binary32 value. */
float quant_f16_to_f32(quant_f16 h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exponent = (h >> 10) & 0x1f;
  uint32_t mantissa = h & 0x3ff;
  if (exponent == 0x1f) return quant_f32_from_bits(sign | 0x7f800000 | mantissa << 13);
  if (exponent != 0) return quant_f32_from_bits(sign | (exponent + 112) << 23 | mantissa << 13);
  if (mantissa == 0) return quant_f32_from_bits(sign);
  /* Subnormal: mantissa * 2^-24. Shift the leading one up to the implicit bit position. */
  uint32_t e = 113;
  while (!(mantissa & 0x400)) {
    mantissa <<= 1;
    e--;
  }
  return quant_f32_from_bits(sign | e << 23 | (mantissa & 0x3ff) << 13);
}

/* Round to nearest, ties to even; overflow to infinity; NaN keeps its sign and the top 10 payload
 * bits, forced non-zero so it stays a NaN (numpy's npy_floatbits_to_halfbits does the same). */
quant_f16 quant_f32_to_f16(float f) {
  uint32_t bits = quant_f32_bits(f);
  uint16_t sign = (uint16_t)((bits >> 16) & 0x8000);
  uint32_t abs = bits & 0x7fffffff;
  if (abs > 0x7f800000) {
    uint16_t payload = (uint16_t)((abs & 0x7fffff) >> 13);
    return (quant_f16)(sign | 0x7c00 | (payload ? payload : 1));
  }
  if (abs >= 0x477ff000) return (quant_f16)(sign | 0x7c00); /* >= 65520 rounds past 65504 */
  if (abs >= 0x38800000) {                                  /* f16 normal range, >= 2^-14 */
    abs += 0x0fff + ((abs >> 13) & 1);                      /* a carry may bump the exponent */
    return (quant_f16)(sign | ((abs - (112u << 23)) >> 13));
  }
  /* f16 subnormal or zero: the value is m * 2^(e-150); in units of 2^-24 that is m >> (126 - e). */
  uint32_t e = abs >> 23;
  if (e < 102) return sign; /* below 2^-25: rounds to zero (2^-25 itself is a tie to 0) */
  uint32_t m = (abs & 0x7fffff) | 0x800000;
  uint32_t shift = 126 - e; /* 14..24 */
  uint32_t q = m >> shift;
  uint32_t rest = m & ((1u << shift) - 1);
  uint32_t half = 1u << (shift - 1);
  if (rest > half || (rest == half && (q & 1))) q++;
  return (quant_f16)(sign | q);
}

float quant_bf16_to_f32(uint16_t h) {
  return quant_f32_from_bits((uint32_t)h << 16);
}

/* Round to nearest even; a NaN is truncated and made quiet (ggml_compute_fp32_to_bf16). */
uint16_t quant_f32_to_bf16(float f) {
  uint32_t bits = quant_f32_bits(f);
  if ((bits & 0x7fffffff) > 0x7f800000) return (uint16_t)((bits >> 16) | 0x40);
  return (uint16_t)((bits + 0x7fff + ((bits >> 16) & 1)) >> 16);
}

/* ---- 32-element block types (ggml-common.h; dequantize_row_* in ggml-quants.c) ---- */

/* Q4_0: x = d * (q - 8); byte j holds element j in its low nibble and element j+16 in its high. */
static void dequantize_block_q4_0(const struct block_q4_0 *b, float *y /* [32] */) {
  float d = quant_f16_to_f32(b->d);
  for (int j = 0; j < QK4_0 / 2; j++) {
    y[j] = d * (float)((b->qs[j] & 0x0f) - 8);
    y[j + QK4_0 / 2] = d * (float)((b->qs[j] >> 4) - 8);
  }
}

/* Q4_1: x = d * q + m. */
static void dequantize_block_q4_1(const struct block_q4_1 *b, float *y /* [32] */) {
  float d = quant_f16_to_f32(b->d), m = quant_f16_to_f32(b->m);
  for (int j = 0; j < QK4_1 / 2; j++) {
    y[j] = d * (float)(b->qs[j] & 0x0f) + m;
    y[j + QK4_1 / 2] = d * (float)(b->qs[j] >> 4) + m;
  }
}

/* Q5_0: x = d * (q - 16) with the fifth bit of element j in bit j of the little-endian u32 qh. */
static void dequantize_block_q5_0(const struct block_q5_0 *b, float *y /* [32] */) {
  float d = quant_f16_to_f32(b->d);
  uint32_t qh = quant_load_u32_le(b->qh);
  for (int j = 0; j < QK5_0 / 2; j++) {
    int lo = (b->qs[j] & 0x0f) | (int)(((qh >> j) & 1) << 4);
    int hi = (b->qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
    y[j] = d * (float)(lo - 16);
    y[j + QK5_0 / 2] = d * (float)(hi - 16);
  }
}

/* Q5_1: x = d * q + m, the fifth bit as in Q5_0. */
static void dequantize_block_q5_1(const struct block_q5_1 *b, float *y /* [32] */) {
  float d = quant_f16_to_f32(b->d), m = quant_f16_to_f32(b->m);
  uint32_t qh = quant_load_u32_le(b->qh);
  for (int j = 0; j < QK5_1 / 2; j++) {
    int lo = (b->qs[j] & 0x0f) | (int)(((qh >> j) & 1) << 4);
    int hi = (b->qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1) << 4);
    y[j] = d * (float)lo + m;
    y[j + QK5_1 / 2] = d * (float)hi + m;
  }
}

/* Q8_0: x = d * q. */
static void dequantize_block_q8_0(const struct block_q8_0 *b, float *y /* [32] */) {
  float d = quant_f16_to_f32(b->d);
  for (int j = 0; j < QK8_0; j++)
    y[j] = d * (float)b->qs[j];
}

/* Q8_1: x = d * q; s (= d * sum q) only serves dot products. */
static void dequantize_block_q8_1(const struct block_q8_1 *b, float *y /* [32] */) {
  float d = quant_f16_to_f32(b->d);
  for (int j = 0; j < QK8_1; j++)
    y[j] = d * (float)b->qs[j];
}

static void quant_dequantize_q4_0(const void *src, float *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    dequantize_block_q4_0((const struct block_q4_0 *)src + i, dst + i * QK4_0);
}

static void quant_dequantize_q4_1(const void *src, float *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    dequantize_block_q4_1((const struct block_q4_1 *)src + i, dst + i * QK4_1);
}

static void quant_dequantize_q5_0(const void *src, float *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    dequantize_block_q5_0((const struct block_q5_0 *)src + i, dst + i * QK5_0);
}

static void quant_dequantize_q5_1(const void *src, float *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    dequantize_block_q5_1((const struct block_q5_1 *)src + i, dst + i * QK5_1);
}

static void quant_dequantize_q8_0(const void *src, float *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    dequantize_block_q8_0((const struct block_q8_0 *)src + i, dst + i * QK8_0);
}

static void quant_dequantize_q8_1(const void *src, float *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    dequantize_block_q8_1((const struct block_q8_1 *)src + i, dst + i * QK8_1);
}

/* Plain types have a block size of 1, so "nb" is the element count. */
static void quant_dequantize_f32(const void *src, float *dst, int64_t n) {
  memcpy(dst, src, (size_t)n * sizeof(float));
}

static void quant_dequantize_f16(const void *src, float *dst, int64_t n) {
  const uint8_t *p = src;
  for (int64_t i = 0; i < n; i++)
    dst[i] = quant_f16_to_f32(quant_load_u16_le(p + 2 * i));
}

static void quant_dequantize_bf16(const void *src, float *dst, int64_t n) {
  const uint8_t *p = src;
  for (int64_t i = 0; i < n; i++)
    dst[i] = quant_bf16_to_f32(quant_load_u16_le(p + 2 * i));
}

/* ---- quantization of the 32-element types (quantize_row_*_ref in ggml-quants.c) ---- */

/* Index of the value of largest magnitude (the first one on ties), as the reference picks it. */
static int index_of_amax(const float *x, int n) {
  int best = 0;
  float amax = 0.0f;
  for (int j = 0; j < n; j++) {
    if (amax < fabsf(x[j])) {
      amax = fabsf(x[j]);
      best = j;
    }
  }
  return best;
}

/* trunc(v) limited to hi; v >= 0 here. */
static int trunc_at_most(float v, int hi) {
  return v >= (float)hi ? hi : (int)v;
}

/* Q8_0: d = amax / 127, q = round(x / d), halves away from zero. */
static void quantize_block_q8_0(const float *x /* [32] */, struct block_q8_0 *b) {
  float amax = 0.0f;
  for (int j = 0; j < QK8_0; j++)
    amax = fabsf(x[j]) > amax ? fabsf(x[j]) : amax;
  float d = amax / 127.0f;
  float id = d != 0.0f ? 1.0f / d : 0.0f;
  b->d = quant_f32_to_f16(d);
  for (int j = 0; j < QK8_0; j++)
    b->qs[j] = (int8_t)quant_round(x[j] * id);
}

/* Q4_0: the value of largest magnitude maps to -8 exactly (d = max / -8), so the full signed
 * range [-8, 7] is used on the side that needs it. q = trunc(x / d + 8.5) clamped to 15. */
static void quantize_block_q4_0(const float *x /* [32] */, struct block_q4_0 *b) {
  float d = x[index_of_amax(x, QK4_0)] / -8.0f;
  float id = d != 0.0f ? 1.0f / d : 0.0f;
  b->d = quant_f32_to_f16(d);
  for (int j = 0; j < QK4_0 / 2; j++) {
    int lo = trunc_at_most(x[j] * id + 8.5f, 15);
    int hi = trunc_at_most(x[j + QK4_0 / 2] * id + 8.5f, 15);
    b->qs[j] = (uint8_t)(lo | hi << 4);
  }
}

/* Q4_1: the block's [min, max] in 15 steps; q = trunc((x - min) / d + 0.5). */
static void quantize_block_q4_1(const float *x /* [32] */, struct block_q4_1 *b) {
  float min = x[0], max = x[0];
  for (int j = 1; j < QK4_1; j++) {
    min = x[j] < min ? x[j] : min;
    max = x[j] > max ? x[j] : max;
  }
  float d = (max - min) / 15.0f;
  float id = d != 0.0f ? 1.0f / d : 0.0f;
  b->d = quant_f32_to_f16(d);
  b->m = quant_f32_to_f16(min);
  for (int j = 0; j < QK4_1 / 2; j++) {
    int lo = trunc_at_most((x[j] - min) * id + 0.5f, 15);
    int hi = trunc_at_most((x[j + QK4_1 / 2] - min) * id + 0.5f, 15);
    b->qs[j] = (uint8_t)(lo | hi << 4);
  }
}

/* Q5_0 and Q5_1 keep the fifth bit of element j in bit j of qh. */
static void pack_q5(const int *q /* [32] */, uint8_t *qs /* [16] */, uint8_t *qh /* [4] */) {
  uint32_t h = 0;
  for (int j = 0; j < 16; j++) {
    qs[j] = (uint8_t)((q[j] & 0x0f) | (q[j + 16] & 0x0f) << 4);
    h |= (uint32_t)((q[j] >> 4) & 1) << j;
    h |= (uint32_t)((q[j + 16] >> 4) & 1) << (j + 16);
  }
  for (int k = 0; k < 4; k++)
    qh[k] = (uint8_t)(h >> (8 * k));
}

/* Q5_0: as Q4_0 with 32 levels: d = max / -16, q = trunc(x / d + 16.5) limited to 31. */
static void quantize_block_q5_0(const float *x /* [32] */, struct block_q5_0 *b) {
  float d = x[index_of_amax(x, QK5_0)] / -16.0f;
  float id = d != 0.0f ? 1.0f / d : 0.0f;
  int q[QK5_0];
  for (int j = 0; j < QK5_0; j++)
    q[j] = trunc_at_most(x[j] * id + 16.5f, 31);
  b->d = quant_f32_to_f16(d);
  pack_q5(q, b->qs, b->qh);
}

/* Q5_1: as Q4_1 with 31 steps. */
static void quantize_block_q5_1(const float *x /* [32] */, struct block_q5_1 *b) {
  float min = x[0], max = x[0];
  for (int j = 1; j < QK5_1; j++) {
    min = x[j] < min ? x[j] : min;
    max = x[j] > max ? x[j] : max;
  }
  float d = (max - min) / 31.0f;
  float id = d != 0.0f ? 1.0f / d : 0.0f;
  int q[QK5_1];
  for (int j = 0; j < QK5_1; j++)
    q[j] = trunc_at_most((x[j] - min) * id + 0.5f, 31);
  b->d = quant_f32_to_f16(d);
  b->m = quant_f32_to_f16(min);
  pack_q5(q, b->qs, b->qh);
}

static void quant_quantize_q4_0(const float *src, void *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    quantize_block_q4_0(src + i * QK4_0, (struct block_q4_0 *)dst + i);
}

static void quant_quantize_q4_1(const float *src, void *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    quantize_block_q4_1(src + i * QK4_1, (struct block_q4_1 *)dst + i);
}

static void quant_quantize_q5_0(const float *src, void *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    quantize_block_q5_0(src + i * QK5_0, (struct block_q5_0 *)dst + i);
}

static void quant_quantize_q5_1(const float *src, void *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    quantize_block_q5_1(src + i * QK5_1, (struct block_q5_1 *)dst + i);
}

static void quant_quantize_q8_0(const float *src, void *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    quantize_block_q8_0(src + i * QK8_0, (struct block_q8_0 *)dst + i);
}

static void quant_quantize_f32(const float *src, void *dst, int64_t n) {
  memcpy(dst, src, (size_t)n * sizeof(float));
}

static void quant_quantize_f16(const float *src, void *dst, int64_t n) {
  uint8_t *p = dst;
  for (int64_t i = 0; i < n; i++) {
    quant_f16 h = quant_f32_to_f16(src[i]);
    p[2 * i] = (uint8_t)h;
    p[2 * i + 1] = (uint8_t)(h >> 8);
  }
}

static void quant_quantize_bf16(const float *src, void *dst, int64_t n) {
  uint8_t *p = dst;
  for (int64_t i = 0; i < n; i++) {
    uint16_t h = quant_f32_to_bf16(src[i]);
    p[2 * i] = (uint8_t)h;
    p[2 * i + 1] = (uint8_t)(h >> 8);
  }
}

/* ---- rows ---- */

int quant_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n) {
  if (type >= QUANT_TYPE_COUNT || !quant_types[type].dequantize) return AUG_EUNSUPPORTED;
  const struct quant_type_entry *e = &quant_types[type];
  if (n < 0 || n % e->traits.block_size != 0 || (n > 0 && (!src || !dst))) return AUG_EINVAL;
  e->dequantize(src, dst, n / e->traits.block_size);
  return 0;
}

int quant_quantize_row(uint32_t type, const float *src, void *dst, int64_t n) {
  if (type >= QUANT_TYPE_COUNT || !quant_types[type].quantize) return AUG_EUNSUPPORTED;
  const struct quant_type_entry *e = &quant_types[type];
  if (n < 0 || n % e->traits.block_size != 0 || (n > 0 && (!src || !dst))) return AUG_EINVAL;
  e->quantize(src, dst, n / e->traits.block_size);
  return 0;
}
