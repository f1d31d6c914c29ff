/* The non-linear types: values are looked up, not scaled integers. IQ4_NL/IQ4_XS: 4-bit indices
 * into 16 levels denser near zero (the shape of weight distributions). IQ2/IQ3/IQ1: indices into
 * grids of 8 or 4 values (engine/quant_grids.c) plus sign bits. TQ1_0/TQ2_0: ternary. MXFP4:
 * FP4 values with a power-of-two scale. Layouts and element order: ggml-common.h and gguf-py's
 * quants.py, against which tests/unit/engine/test_quant.c checks every type. */
#include "engine/quant_internal.h"

const int8_t quant_iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                       1,    13,   25,  38,  53,  69,  89,  113};

/* IQ4_NL: x = d * level[q]; byte j holds element j (low nibble) and element j+16 (high). */
static void dequantize_block_iq4_nl(const struct block_iq4_nl *b, float *y /* [32] */) {
  float d = quant_f16_to_f32(b->d);
  for (int j = 0; j < QK4_NL / 2; j++) {
    y[j] = d * (float)quant_iq4nl_values[b->qs[j] & 0x0f];
    y[j + QK4_NL / 2] = d * (float)quant_iq4nl_values[b->qs[j] >> 4];
  }
}

/* IQ4_XS: 8 sub-blocks of 32, each with a 6-bit scale biased by 32: low 4 bits in the nibble
 * ib % 2 of scales_l[ib / 2], high 2 bits at bit 2 * ib of scales_h. Values as in IQ4_NL. */
static void dequantize_block_iq4_xs(const struct block_iq4_xs *b, float *y /* [256] */) {
  float d = quant_f16_to_f32(b->d);
  uint16_t scales_h = quant_load_u16_le((const uint8_t *)&b->scales_h);
  for (int ib = 0; ib < QK_K / 32; ib++) {
    int ls = ((b->scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0f) | (((scales_h >> (2 * ib)) & 3) << 4);
    float dl = d * (float)(ls - 32);
    const uint8_t *qs = b->qs + 16 * ib;
    for (int j = 0; j < 16; j++) {
      y[j] = dl * (float)quant_iq4nl_values[qs[j] & 0x0f];
      y[j + 16] = dl * (float)quant_iq4nl_values[qs[j] >> 4];
    }
    y += 32;
  }
}

void quant_dequantize_iq4_nl(const void *src, float *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    dequantize_block_iq4_nl((const struct block_iq4_nl *)src + i, dst + i * QK4_NL);
}

void quant_dequantize_iq4_xs(const void *src, float *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    dequantize_block_iq4_xs((const struct block_iq4_xs *)src + i, dst + i * QK_K);
}

/* ---- grid types: IQ2_XXS, IQ2_XS, IQ2_S, IQ3_XXS, IQ3_S, IQ1_S, IQ1_M (ggml-common.h) ---- */

/* Byte j of a packed grid entry (engine/quant_grids.c). */
static inline float grid_value(uint64_t entry, int j) {
  return (float)(uint8_t)(entry >> (8 * j));
}

/* IQ2_XXS/IQ2_XS/IQ3_XXS store 7 sign bits per 8 values; the 8th makes the number of negative
 * values even (ksigns_iq2xs in ggml-common.h is this function tabulated). */
static inline uint8_t signs_from_7(uint32_t s7) {
  uint32_t p = s7 ^ (s7 >> 4);
  p ^= p >> 2;
  p ^= p >> 1;
  return (uint8_t)(s7 | (p & 1) << 7);
}

static inline float apply_sign(float v, uint8_t signs, int j) {
  return (signs >> j) & 1 ? -v : v;
}

/* IQ2_XXS: per 32 values two u32: four 8-bit grid indices (8 values each), then four 7-bit sign
 * groups and a 4-bit scale in the top bits: x = d * (0.5 + s) / 4 * grid * sign. */
static void dequantize_block_iq2_xxs(const struct block_iq2_xxs *b, float *y /* [256] */) {
  float d = quant_f16_to_f32(b->d);
  const uint8_t *q = (const uint8_t *)b->qs;
  for (int ib = 0; ib < QK_K / 32; ib++, q += 8) {
    uint32_t aux = quant_load_u32_le(q + 4);
    float db = d * (0.5f + (float)(aux >> 28)) * 0.25f;
    for (int l = 0; l < 4; l++) {
      uint64_t g = quant_iq2xxs_grid[q[l]];
      uint8_t signs = signs_from_7((aux >> (7 * l)) & 127);
      for (int j = 0; j < 8; j++)
        *y++ = apply_sign(db * grid_value(g, j), signs, j);
    }
  }
}

/* IQ2_XS: u16 per 8 values: 9-bit grid index, 7-bit sign group; two 4-bit scales per 32. */
static void dequantize_block_iq2_xs(const struct block_iq2_xs *b, float *y /* [256] */) {
  float d = quant_f16_to_f32(b->d);
  const uint8_t *q = (const uint8_t *)b->qs;
  for (int ib = 0; ib < QK_K / 32; ib++) {
    float db[2] = {d * (0.5f + (float)(b->scales[ib] & 0x0f)) * 0.25f,
                   d * (0.5f + (float)(b->scales[ib] >> 4)) * 0.25f};
    for (int l = 0; l < 4; l++) {
      uint16_t v = quant_load_u16_le(q + 2 * (4 * ib + l));
      uint64_t g = quant_iq2xs_grid[v & 511];
      uint8_t signs = signs_from_7(v >> 9);
      for (int j = 0; j < 8; j++)
        *y++ = apply_sign(db[l / 2] * grid_value(g, j), signs, j);
    }
  }
}

/* IQ2_S: 10-bit grid indices (8 low bits in qs, 2 high bits in qh) and explicit sign bytes
 * (the second half of qs); two 4-bit scales per 32. */
static void dequantize_block_iq2_s(const struct block_iq2_s *b, float *y /* [256] */) {
  float d = quant_f16_to_f32(b->d);
  const uint8_t *qs = b->qs, *signs = b->qs + QK_K / 8;
  for (int ib = 0; ib < QK_K / 32; ib++, qs += 4, signs += 4) {
    float db[2] = {d * (0.5f + (float)(b->scales[ib] & 0x0f)) * 0.25f,
                   d * (0.5f + (float)(b->scales[ib] >> 4)) * 0.25f};
    for (int l = 0; l < 4; l++) {
      uint64_t g = quant_iq2s_grid[qs[l] | (((b->qh[ib] >> (2 * l)) & 3) << 8)];
      for (int j = 0; j < 8; j++)
        *y++ = apply_sign(db[l / 2] * grid_value(g, j), signs[l], j);
    }
  }
}

/* IQ3_XXS: 8-bit indices into a grid of 4 values; per 32 a u32 of four 7-bit sign groups and a
 * 4-bit scale: x = d * (0.5 + s) / 2 * grid * sign. */
static void dequantize_block_iq3_xxs(const struct block_iq3_xxs *b, float *y /* [256] */) {
  float d = quant_f16_to_f32(b->d);
  const uint8_t *q = b->qs, *scales_signs = b->qs + QK_K / 4;
  for (int ib = 0; ib < QK_K / 32; ib++, q += 8) {
    uint32_t aux = quant_load_u32_le(scales_signs + 4 * ib);
    float db = d * (0.5f + (float)(aux >> 28)) * 0.5f;
    for (int l = 0; l < 4; l++) {
      uint8_t signs = signs_from_7((aux >> (7 * l)) & 127);
      uint32_t g1 = quant_iq3xxs_grid[q[2 * l]], g2 = quant_iq3xxs_grid[q[2 * l + 1]];
      for (int j = 0; j < 4; j++)
        y[j] = apply_sign(db * grid_value(g1, j), signs, j);
      for (int j = 0; j < 4; j++)
        y[j + 4] = apply_sign(db * grid_value(g2, j), signs, j + 4);
      y += 8;
    }
  }
}

/* IQ3_S: 9-bit indices (high bit k % 8 of qh[k / 8]) into a grid of 4 values, explicit sign
 * bytes, one 4-bit scale per 32: x = d * (1 + 2 s) * grid * sign. */
static void dequantize_block_iq3_s(const struct block_iq3_s *b, float *y /* [256] */) {
  float d = quant_f16_to_f32(b->d);
  const uint8_t *q = b->qs, *signs = b->signs;
  for (int ib = 0; ib < QK_K / 32; ib++, q += 8, signs += 4) {
    int s = (b->scales[ib / 2] >> (4 * (ib % 2))) & 0x0f;
    float db = d * (float)(1 + 2 * s);
    uint8_t qh = b->qh[ib];
    for (int l = 0; l < 4; l++) {
      uint32_t g1 = quant_iq3s_grid[q[2 * l] | (((qh >> (2 * l)) & 1) << 8)];
      uint32_t g2 = quant_iq3s_grid[q[2 * l + 1] | (((qh >> (2 * l + 1)) & 1) << 8)];
      for (int j = 0; j < 4; j++)
        y[j] = apply_sign(db * grid_value(g1, j), signs[l], j);
      for (int j = 0; j < 4; j++)
        y[j + 4] = apply_sign(db * grid_value(g2, j), signs[l], j + 4);
      y += 8;
    }
  }
}

/* IQ1_S/IQ1_M grid values are -1, 0, 1, shifted by a shared delta of +-1/8. */
#define IQ1_DELTA 0.125f

static inline float grid_value_signed(uint64_t entry, int j) {
  return (float)(int8_t)(uint8_t)(entry >> (8 * j));
}

/* IQ1_S: per 32 a u16 qh: 4 x 3 high index bits, a 3-bit scale and the delta's sign:
 * x = d * (2 s + 1) * (grid + delta). */
static void dequantize_block_iq1_s(const struct block_iq1_s *b, float *y /* [256] */) {
  float d = quant_f16_to_f32(b->d);
  const uint8_t *qs = b->qs;
  for (int ib = 0; ib < QK_K / 32; ib++, qs += 4) {
    uint16_t qh = quant_load_u16_le((const uint8_t *)&b->qh[ib]);
    float dl = d * (float)(2 * ((qh >> 12) & 7) + 1);
    float delta = qh & 0x8000 ? -IQ1_DELTA : IQ1_DELTA;
    for (int l = 0; l < 4; l++) {
      uint64_t g = quant_iq1s_grid[qs[l] | (((qh >> (3 * l)) & 7) << 8)];
      for (int j = 0; j < 8; j++)
        *y++ = dl * (grid_value_signed(g, j) + delta);
    }
  }
}

/* IQ1_M: like IQ1_S with a 3-bit scale per 16 values and a delta sign per 8; the f16 d is the
 * top nibbles of the four u16 of scales, lowest first. */
static void dequantize_block_iq1_m(const struct block_iq1_m *b, float *y /* [256] */) {
  uint16_t sc[4];
  for (int k = 0; k < 4; k++)
    sc[k] = quant_load_u16_le(b->scales + 2 * k);
  quant_f16 dh = (quant_f16)((sc[0] >> 12) | ((sc[1] >> 8) & 0x00f0) | ((sc[2] >> 4) & 0x0f00) |
                             (sc[3] & 0xf000));
  float d = quant_f16_to_f32(dh);
  const uint8_t *qs = b->qs, *qh = b->qh;
  for (int ib = 0; ib < QK_K / 32; ib++, qs += 4, qh += 2) {
    int shift = 6 * (ib % 2);
    float dl[2] = {d * (float)(2 * ((sc[ib / 2] >> shift) & 7) + 1),
                   d * (float)(2 * ((sc[ib / 2] >> (shift + 3)) & 7) + 1)};
    for (int l = 0; l < 4; l++) {
      uint8_t h = (uint8_t)(qh[l / 2] >> (4 * (l % 2))); /* 3 index bits, then the delta sign */
      uint64_t g = quant_iq1s_grid[qs[l] | ((h & 7) << 8)];
      float delta = h & 0x08 ? -IQ1_DELTA : IQ1_DELTA;
      for (int j = 0; j < 8; j++)
        *y++ = dl[l / 2] * (grid_value_signed(g, j) + delta);
    }
  }
}

/* ---- ternary: TQ1_0, TQ2_0 (values -1, 0, 1 times d) ---- */

/* TQ1_0 packs 5 base-3 digits in a byte as a fixed-point fraction: byte = ceil(n * 256 / 243);
 * digit k is the integer part of 3 * frac after multiplying by 3^k (mod 256). Digit k of byte m
 * is element k * 32 + m for the first 32 bytes, 160 + k * 16 + m for the next 16, and 240 +
 * k * 4 + m for the 4 qh bytes (4 digits each). */
static inline float tq1_digit(uint8_t byte, int k) {
  static const uint8_t pow3[5] = {1, 3, 9, 27, 81};
  uint8_t q = (uint8_t)(byte * pow3[k]);
  return (float)(((uint16_t)q * 3) >> 8) - 1.0f;
}

static void dequantize_block_tq1_0(const struct block_tq1_0 *b, float *y /* [256] */) {
  float d = quant_f16_to_f32(b->d);
  for (int k = 0; k < 5; k++)
    for (int m = 0; m < 32; m++)
      *y++ = d * tq1_digit(b->qs[m], k);
  for (int k = 0; k < 5; k++)
    for (int m = 0; m < 16; m++)
      *y++ = d * tq1_digit(b->qs[32 + m], k);
  for (int k = 0; k < 4; k++)
    for (int m = 0; m < 4; m++)
      *y++ = d * tq1_digit(b->qh[m], k);
}

/* TQ2_0: 2 bits per value (q - 1), four planes of 32 per 32 bytes. */
static void dequantize_block_tq2_0(const struct block_tq2_0 *b, float *y /* [256] */) {
  float d = quant_f16_to_f32(b->d);
  for (int j = 0; j < QK_K / 4; j += 32)
    for (int l = 0; l < 4; l++)
      for (int m = 0; m < 32; m++)
        *y++ = d * (float)(((b->qs[j + m] >> (2 * l)) & 3) - 1);
}

/* ---- MXFP4 (OCP Microscaling spec v1.0): E2M1 values times a power-of-two E8M0 scale ---- */

/* E2M1 magnitudes doubled, so they are integers; the scale is halved to match (kvalues_mxfp4). */
static const int8_t mxfp4_values[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

/* 2^(e - 127) / 2 as a float: e - 1 as the exponent field, or a subnormal for e < 2. */
static float e8m0_to_f32_half(uint8_t e) {
  uint32_t bits = e < 2 ? 0x00200000u << e : (uint32_t)(e - 1) << 23;
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

static void dequantize_block_mxfp4(const struct block_mxfp4 *b, float *y /* [32] */) {
  float d = e8m0_to_f32_half(b->e);
  for (int j = 0; j < QK_MXFP4 / 2; j++) {
    y[j] = d * (float)mxfp4_values[b->qs[j] & 0x0f];
    y[j + QK_MXFP4 / 2] = d * (float)mxfp4_values[b->qs[j] >> 4];
  }
}

void quant_dequantize_iq2_xxs(const void *src, float *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    dequantize_block_iq2_xxs((const struct block_iq2_xxs *)src + i, dst + i * QK_K);
}

void quant_dequantize_iq2_xs(const void *src, float *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    dequantize_block_iq2_xs((const struct block_iq2_xs *)src + i, dst + i * QK_K);
}

void quant_dequantize_iq2_s(const void *src, float *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    dequantize_block_iq2_s((const struct block_iq2_s *)src + i, dst + i * QK_K);
}

void quant_dequantize_iq3_xxs(const void *src, float *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    dequantize_block_iq3_xxs((const struct block_iq3_xxs *)src + i, dst + i * QK_K);
}

void quant_dequantize_iq3_s(const void *src, float *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    dequantize_block_iq3_s((const struct block_iq3_s *)src + i, dst + i * QK_K);
}

void quant_dequantize_iq1_s(const void *src, float *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    dequantize_block_iq1_s((const struct block_iq1_s *)src + i, dst + i * QK_K);
}

void quant_dequantize_iq1_m(const void *src, float *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    dequantize_block_iq1_m((const struct block_iq1_m *)src + i, dst + i * QK_K);
}

void quant_dequantize_tq1_0(const void *src, float *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    dequantize_block_tq1_0((const struct block_tq1_0 *)src + i, dst + i * QK_K);
}

void quant_dequantize_tq2_0(const void *src, float *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    dequantize_block_tq2_0((const struct block_tq2_0 *)src + i, dst + i * QK_K);
}

void quant_dequantize_mxfp4(const void *src, float *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    dequantize_block_mxfp4((const struct block_mxfp4 *)src + i, dst + i * QK_MXFP4);
}
