/* The k-quants: 256-element super-blocks whose sub-blocks carry small integer scales (and mins)
 * relative to one or two f16 super-block scales. Block layouts and dequantization order follow
 * ggml-common.h and the k-quants PR (ggml-org/llama.cpp#1684). Quantization to Q4_K, Q5_K, Q6_K
 * searches each sub-block's scale (and min) by weighted least squares over a grid of candidate
 * scales, then quantizes the scales themselves to 6 (Q4_K, Q5_K) or 8 (Q6_K) bits and re-fits the
 * weights to the scales that will actually be stored. Q8_K is the activation format of the
 * k-quant dot products: one f32 scale, 8-bit values and per-16 sums. */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "engine/quant_internal.h"

/* ---- dequantization ---- */

/* Q2_K: 16 sub-blocks of 16; scales[i] holds a 4-bit scale (low) and a 4-bit min (high).
 * x = d * sc * q - dmin * m with q in 0..3. Each 32-byte group of qs holds 128 values as four
 * 2-bit planes (shift 0, 2, 4, 6), each plane being two sub-blocks of 16. */
static void dequantize_block_q2_k(const struct block_q2_k *b, float *y /* [256] */) {
  float d = quant_f16_to_f32(b->d), dmin = quant_f16_to_f32(b->dmin);
  const uint8_t *q = b->qs;
  int is = 0;
  for (int n = 0; n < QK_K; n += 128) {
    for (int shift = 0; shift < 8; shift += 2) {
      for (int half = 0; half < 2; half++) {
        uint8_t sc = b->scales[is++];
        float dl = d * (float)(sc & 0x0f), ml = dmin * (float)(sc >> 4);
        for (int l = 0; l < 16; l++)
          *y++ = dl * (float)((q[l + 16 * half] >> shift) & 3) - ml;
      }
    }
    q += 32;
  }
}

/* Q3_K scale i (6 bits, biased by 32): low 4 bits in scales[i % 8] (low nibble for i < 8, high
 * nibble after), high 2 bits in scales[8 + i % 4] at bit 2 * (i / 4). */
static int q3_k_scale(const uint8_t *scales, int i) {
  int lo = i < 8 ? scales[i] & 0x0f : scales[i - 8] >> 4;
  int hi = (scales[8 + i % 4] >> (2 * (i / 4))) & 3;
  return (lo | hi << 4) - 32;
}

/* Q3_K: 16 sub-blocks of 16; x = d * sc * (q - 4 * !h), q the 2-bit value (planes as in Q2_K)
 * and h its bit in hmask (bit j of hmask[l] for the j-th plane of 32). */
static void dequantize_block_q3_k(const struct block_q3_k *b, float *y /* [256] */) {
  float d = quant_f16_to_f32(b->d);
  const uint8_t *q = b->qs;
  int is = 0;
  uint8_t m = 1;
  for (int n = 0; n < QK_K; n += 128) {
    for (int shift = 0; shift < 8; shift += 2) {
      for (int half = 0; half < 2; half++) {
        float dl = d * (float)q3_k_scale(b->scales, is++);
        for (int l = 16 * half; l < 16 * half + 16; l++) {
          int v = ((q[l] >> shift) & 3) - ((b->hmask[l] & m) ? 0 : 4);
          *y++ = dl * (float)v;
        }
      }
      m = (uint8_t)(m << 1);
    }
    q += 32;
  }
}

/* Q4_K/Q5_K sub-block j's 6-bit scale and min, packed in 12 bytes: j < 4 in the low 6 bits of
 * bytes j and j+4; j >= 4 as a nibble in byte j+4 plus 2 high bits in the top of bytes j-4
 * (scale) and j (min). (get_scale_min_k4 in ggml-quants.c.) */
static void k4_scale_min(const uint8_t *q, int j, uint8_t *sc, uint8_t *m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = (uint8_t)((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4));
    *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

/* Q4_K: 8 sub-blocks of 32; x = d * sc * q - dmin * m. Each 32 bytes of qs hold two sub-blocks:
 * the first in the low nibbles, the second in the high nibbles. */
static void dequantize_block_q4_k(const struct block_q4_k *b, float *y /* [256] */) {
  float d = quant_f16_to_f32(b->d), dmin = quant_f16_to_f32(b->dmin);
  const uint8_t *q = b->qs;
  for (int j = 0; j < QK_K / 32; j += 2) {
    uint8_t sc, m;
    k4_scale_min(b->scales, j, &sc, &m);
    float d1 = d * (float)sc, m1 = dmin * (float)m;
    k4_scale_min(b->scales, j + 1, &sc, &m);
    float d2 = d * (float)sc, m2 = dmin * (float)m;
    for (int l = 0; l < 32; l++)
      *y++ = d1 * (float)(q[l] & 0x0f) - m1;
    for (int l = 0; l < 32; l++)
      *y++ = d2 * (float)(q[l] >> 4) - m2;
    q += 32;
  }
}

/* Q5_K: Q4_K plus a fifth bit per value: sub-block j's bit is bit j of qh[l]. */
static void dequantize_block_q5_k(const struct block_q5_k *b, float *y /* [256] */) {
  float d = quant_f16_to_f32(b->d), dmin = quant_f16_to_f32(b->dmin);
  const uint8_t *q = b->qs;
  for (int j = 0; j < QK_K / 32; j += 2) {
    uint8_t sc, m;
    k4_scale_min(b->scales, j, &sc, &m);
    float d1 = d * (float)sc, m1 = dmin * (float)m;
    k4_scale_min(b->scales, j + 1, &sc, &m);
    float d2 = d * (float)sc, m2 = dmin * (float)m;
    for (int l = 0; l < 32; l++) {
      int v = (q[l] & 0x0f) + (((b->qh[l] >> j) & 1) << 4);
      *y++ = d1 * (float)v - m1;
    }
    for (int l = 0; l < 32; l++) {
      int v = (q[l] >> 4) + (((b->qh[l] >> (j + 1)) & 1) << 4);
      *y++ = d2 * (float)v - m2;
    }
    q += 32;
  }
}

/* Q6_K: 16 sub-blocks of 16 with int8 scales; x = d * sc * (q - 32), q 6 bits: 4 in ql, 2 in qh.
 * Per 128 values: ql[0..63] and qh[0..31]; element l (< 32) of each quarter k takes the nibble
 * (k & 1 ? ql[l + 32] : ql[l]) >> (k & 2 ? 4 : 0) and bits 2k..2k+1 of qh[l]. */
static void dequantize_block_q6_k(const struct block_q6_k *b, float *y /* [256] */) {
  float d = quant_f16_to_f32(b->d);
  const uint8_t *ql = b->ql, *qh = b->qh;
  const int8_t *sc = b->scales;
  for (int n = 0; n < QK_K; n += 128) {
    for (int l = 0; l < 32; l++) {
      int is = l / 16;
      int q1 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) - 32;
      int q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
      int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * (float)sc[is] * (float)q1;
      y[l + 32] = d * (float)sc[is + 2] * (float)q2;
      y[l + 64] = d * (float)sc[is + 4] * (float)q3;
      y[l + 96] = d * (float)sc[is + 6] * (float)q4;
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

/* Q8_K: x = d * q (bsums only serve dot products). */
static void dequantize_block_q8_k(const struct block_q8_k *b, float *y /* [256] */) {
  for (int j = 0; j < QK_K; j++)
    y[j] = b->d * (float)b->qs[j];
}

void quant_dequantize_q2_k(const void *src, float *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    dequantize_block_q2_k((const struct block_q2_k *)src + i, dst + i * QK_K);
}

void quant_dequantize_q3_k(const void *src, float *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    dequantize_block_q3_k((const struct block_q3_k *)src + i, dst + i * QK_K);
}

void quant_dequantize_q4_k(const void *src, float *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    dequantize_block_q4_k((const struct block_q4_k *)src + i, dst + i * QK_K);
}

void quant_dequantize_q5_k(const void *src, float *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    dequantize_block_q5_k((const struct block_q5_k *)src + i, dst + i * QK_K);
}

void quant_dequantize_q6_k(const void *src, float *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    dequantize_block_q6_k((const struct block_q6_k *)src + i, dst + i * QK_K);
}

void quant_dequantize_q8_k(const void *src, float *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    dequantize_block_q8_k((const struct block_q8_k *)src + i, dst + i * QK_K);
}

/* ---- quantization ---- */

static int clamp_int(int v, int lo, int hi) {
  return v < lo ? lo : v > hi ? hi : v;
}

/* Level for v >= -0.5 (the search only rounds shifted, non-negative values): nearest of 0..nmax.
 * Cheaper than quant_round; halves go up, and which way a half goes does not matter to a search
 * that measures the error of what it chose. */
static inline int level_near(float v, int nmax) {
  if (!(v >= 0.5f)) return 0; /* also NaN */
  if (v >= (float)nmax) return nmax;
  return (int)(v + 0.5f);
}

/* Weighted least squares for x[i] ~ scale * L[i] + offset with offset <= 0 and L fixed; returns
 * the weighted squared error, or -1 when no positive scale fits. */
static float solve_scale_offset(int n, const float *x, const float *w, const uint8_t *L,
                                float *scale_out, float *offset_out) {
  float sw = 0, sl = 0, sl2 = 0, sx = 0, slx = 0;
  for (int i = 0; i < n; i++) {
    float l = (float)L[i], wl = w[i] * l;
    sw += w[i];
    sl += wl;
    sl2 += wl * l;
    sx += w[i] * x[i];
    slx += wl * x[i];
  }
  float det = sw * sl2 - sl * sl;
  if (!(det > 0.0f)) return -1.0f;
  float scale = (sw * slx - sx * sl) / det;
  float offset = (sl2 * sx - sl * slx) / det;
  if (offset > 0.0f) { /* the best fit wants a positive offset: pin it to 0 */
    offset = 0.0f;
    scale = slx / sl2;
  }
  if (!(scale > 0.0f)) return -1.0f;
  float err = 0.0f;
  for (int i = 0; i < n; i++) {
    float e = scale * (float)L[i] + offset - x[i];
    err += w[i] * e * e;
  }
  *scale_out = scale;
  *offset_out = offset;
  return err;
}

/* Fits x[i] ~ scale * L[i] - min with L in 0..nmax, scale > 0 and min >= 0, minimizing
 * sum w[i] * err[i]^2. Candidates: the min/max grid spacing stretched by -1.0..+1.0 levels in
 * steps of 0.1; for each, L is rounded and (scale, min) solved by weighted least squares. The
 * best is then polished: L re-rounded against its solution and solved again while the error
 * drops (at most 3 rounds). Returns scale (0 when x is constant) and stores min. */
static float fit_scale_min(int n, int nmax, const float *x, const float *w, uint8_t *L,
                           float *min_out) {
  float xmin = x[0], xmax = x[0];
  for (int i = 1; i < n; i++) {
    xmin = x[i] < xmin ? x[i] : xmin;
    xmax = x[i] > xmax ? x[i] : xmax;
  }
  if (xmin > 0.0f) xmin = 0.0f; /* the stored offset -min can only lower values */
  if (xmax <= xmin) {
    memset(L, 0, (size_t)n);
    *min_out = -xmin;
    return 0.0f;
  }
  /* Start from plain min/max: the level grid spans exactly [xmin, xmax]. */
  float best_scale = (xmax - xmin) / (float)nmax, best_offset = xmin;
  float best_err = 0.0f;
  for (int i = 0; i < n; i++) {
    L[i] = (uint8_t)level_near((x[i] - xmin) / best_scale, nmax);
    float e = best_scale * (float)L[i] + xmin - x[i];
    best_err += w[i] * e * e;
  }
  uint8_t trial[QK_K];
  for (int step = -10; step <= 10; step++) {
    float iscale = ((float)nmax + 0.1f * (float)step) / (xmax - xmin);
    for (int i = 0; i < n; i++)
      trial[i] = (uint8_t)level_near(iscale * (x[i] - xmin), nmax);
    float scale, offset;
    float err = solve_scale_offset(n, x, w, trial, &scale, &offset);
    if (err >= 0.0f && err < best_err) {
      best_err = err;
      best_scale = scale;
      best_offset = offset;
      memcpy(L, trial, (size_t)n);
    }
  }
  /* Polish the winner: re-round the levels against its (scale, offset) and solve again. */
  for (int round = 0; round < 3; round++) {
    float inv = 1.0f / best_scale;
    bool changed = false;
    for (int i = 0; i < n; i++) {
      trial[i] = (uint8_t)level_near((x[i] - best_offset) * inv, nmax);
      changed |= trial[i] != L[i];
    }
    if (!changed) break;
    float scale, offset;
    float err = solve_scale_offset(n, x, w, trial, &scale, &offset);
    if (!(err >= 0.0f && err < best_err)) break;
    best_err = err;
    best_scale = scale;
    best_offset = offset;
    memcpy(L, trial, (size_t)n);
  }
  *min_out = -best_offset;
  return best_scale;
}

/* Nearest of -nmax..nmax-1 to v (halves away from zero), for the signed searches. */
static inline int level_signed(float v, int nmax) {
  if (v >= (float)(nmax - 1)) return nmax - 1;
  if (v <= (float)-nmax) return -nmax;
  if (!(v == v)) return 0; /* NaN */
  return (int)(v + (v >= 0.0f ? 0.5f : -0.5f));
}

/* Q4_K/Q5_K-style weights: large magnitudes matter most in a dot product, so errors on them
 * count more (w = rms + |x|, as llama.cpp's reference quantizer weighs them). */
static void k4_weights(const float *x /* [32] */, float rms, float *w /* [32] */) {
  for (int l = 0; l < 32; l++)
    w[l] = rms + fabsf(x[l]);
}

/* Quantizes 32 values with x ~ dl * L - ml, L in 0..nmax; returns the weighted squared error. */
static float k4_requantize(const float *x, const float *w, float dl, float ml, int nmax,
                           uint8_t *L /* [32] */) {
  float err = 0.0f, inv = dl > 0.0f ? 1.0f / dl : 0.0f;
  for (int l = 0; l < 32; l++) {
    int v = level_near((x[l] + ml) * inv, nmax);
    L[l] = (uint8_t)v;
    float e = dl * (float)v - ml - x[l];
    err += w[l] * e * e;
  }
  return err;
}

/* Q4_K and Q5_K (nmax = 15 or 31): per sub-block of 32 a weighted (scale, min) fit; the 8 scales
 * and 8 mins are stored as 6-bit multiples of d = max scale / 63 and dmin = max min / 63.
 * Rounding a 6-bit scale to the nearest is not always best once the values are re-quantized
 * against it, so each sub-block then tries the neighbouring 6-bit scale and min and keeps the
 * pair with the least error. Fills L (0..nmax), the 12 packed scale bytes, d and dmin. */
static void k4_quantize_superblock(const float *x /* [256] */, int nmax, uint8_t *L /* [256] */,
                                   uint8_t *packed /* [12] */, quant_f16 *d_out,
                                   quant_f16 *dmin_out) {
  uint8_t trial[32];
  float w[32], scales[QK_K / 32], mins[QK_K / 32];
  float sum_x2 = 0.0f;
  for (int i = 0; i < QK_K; i++)
    sum_x2 += x[i] * x[i];
  float rms = sqrtf(sum_x2 / QK_K);
  float max_scale = 0.0f, max_min = 0.0f;
  for (int j = 0; j < QK_K / 32; j++) {
    k4_weights(x + 32 * j, rms, w);
    scales[j] = fit_scale_min(32, nmax, x + 32 * j, w, L + 32 * j, &mins[j]);
    max_scale = fmaxf(max_scale, scales[j]);
    max_min = fmaxf(max_min, mins[j]);
  }
  *d_out = quant_f32_to_f16(max_scale / 63.0f);
  *dmin_out = quant_f32_to_f16(max_min / 63.0f);
  float d = quant_f16_to_f32(*d_out), dmin = quant_f16_to_f32(*dmin_out);
  float inv_scale = d > 0.0f ? 1.0f / d : 0.0f, inv_min = dmin > 0.0f ? 1.0f / dmin : 0.0f;
  memset(packed, 0, K_SCALE_SIZE);
  for (int j = 0; j < QK_K / 32; j++) {
    const float *xj = x + 32 * j;
    k4_weights(xj, rms, w);
    int ls0 = clamp_int(quant_round(inv_scale * scales[j]), 0, 63);
    int lm0 = clamp_int(quant_round(inv_min * mins[j]), 0, 63);
    int ls = ls0, lm = lm0;
    float best = k4_requantize(xj, w, d * (float)ls, dmin * (float)lm, nmax, L + 32 * j);
    for (int s = ls0 - 1; s <= ls0 + 1; s++) {
      for (int m = lm0 - 1; m <= lm0 + 1; m++) {
        if (s < 0 || s > 63 || m < 0 || m > 63 || (s == ls0 && m == lm0)) continue;
        float err = k4_requantize(xj, w, d * (float)s, dmin * (float)m, nmax, trial);
        if (err < best) {
          best = err;
          ls = s;
          lm = m;
          memcpy(L + 32 * j, trial, sizeof trial);
        }
      }
    }
    /* the inverse of k4_scale_min */
    if (j < 4) {
      packed[j] = (uint8_t)ls;
      packed[j + 4] = (uint8_t)lm;
    } else {
      packed[j + 4] = (uint8_t)((ls & 0x0f) | (lm & 0x0f) << 4);
      packed[j - 4] |= (uint8_t)((ls >> 4) << 6);
      packed[j] |= (uint8_t)((lm >> 4) << 6);
    }
  }
}

/* Q4_K: 4-bit values; each 32 bytes of qs hold sub-blocks 2k (low nibbles) and 2k+1 (high). */
static void quantize_block_q4_k(const float *x /* [256] */, struct block_q4_k *b) {
  uint8_t L[QK_K];
  k4_quantize_superblock(x, 15, L, b->scales, &b->d, &b->dmin);
  for (int j = 0; j < QK_K; j += 64) {
    for (int l = 0; l < 32; l++)
      b->qs[j / 2 + l] = (uint8_t)(L[j + l] | L[j + l + 32] << 4);
  }
}

/* Q5_K: as Q4_K, with the fifth bit of sub-block j's value l in bit j of qh[l]. */
static void quantize_block_q5_k(const float *x /* [256] */, struct block_q5_k *b) {
  uint8_t L[QK_K];
  k4_quantize_superblock(x, 31, L, b->scales, &b->d, &b->dmin);
  memset(b->qh, 0, sizeof b->qh);
  for (int j = 0; j < QK_K / 32; j += 2) {
    for (int l = 0; l < 32; l++) {
      uint8_t lo = L[32 * j + l], hi = L[32 * (j + 1) + l];
      b->qs[16 * j + l] = (uint8_t)((lo & 0x0f) | (hi & 0x0f) << 4);
      b->qh[l] |= (uint8_t)(((lo >> 4) & 1) << j | ((hi >> 4) & 1) << (j + 1));
    }
  }
}

/* Fits x[i] ~ scale * L[i] with L in -nmax..nmax-1 (signed, no offset), minimizing the squared
 * error. The value of largest magnitude fixes the grid (it maps to -nmax, using the asymmetric
 * end of the range), stretched by -0.9..+0.9 levels; each candidate's scale is solved by least
 * squares. Returns scale, which carries the sign. */
static float fit_scale_signed(int n, int nmax, const float *x, int8_t *L) {
  float amax = 0.0f, max = 0.0f;
  for (int i = 0; i < n; i++) {
    if (fabsf(x[i]) > amax) {
      amax = fabsf(x[i]);
      max = x[i];
    }
  }
  if (amax == 0.0f) {
    memset(L, 0, (size_t)n);
    return 0.0f;
  }
  float best_scale = 0.0f, best_merit = -1.0f;
  int8_t trial[32];
  for (int step = -9; step <= 9; step++) {
    float iscale = -((float)nmax + 0.1f * (float)step) / max;
    float slx = 0.0f, sl2 = 0.0f;
    for (int i = 0; i < n; i++) {
      int l = level_signed(iscale * x[i], nmax);
      trial[i] = (int8_t)l;
      slx += (float)l * x[i];
      sl2 += (float)l * (float)l;
    }
    /* With scale = slx / sl2 the squared error is sum x^2 - slx^2 / sl2: maximize the latter. */
    if (sl2 <= 0.0f) continue;
    float merit = slx * slx / sl2;
    if (merit > best_merit) {
      best_merit = merit;
      best_scale = slx / sl2;
      memcpy(L, trial, (size_t)n);
    }
  }
  return best_scale;
}

/* Q6_K: 16 sub-blocks of 16, each with a signed scale fit; the scales are stored as int8
 * multiples of d, with the largest-magnitude scale mapped to -128; values are re-quantized
 * against the stored scales. */
static void quantize_block_q6_k(const float *x /* [256] */, struct block_q6_k *b) {
  int8_t L[QK_K];
  float scales[QK_K / 16];
  float amax = 0.0f, max_scale = 0.0f;
  for (int ib = 0; ib < QK_K / 16; ib++) {
    scales[ib] = fit_scale_signed(16, 32, x + 16 * ib, L + 16 * ib);
    if (fabsf(scales[ib]) > amax) {
      amax = fabsf(scales[ib]);
      max_scale = scales[ib];
    }
  }
  if (amax == 0.0f) {
    memset(b, 0, sizeof *b); /* d = 0: every value dequantizes to 0 */
    return;
  }
  float iscale = -128.0f / max_scale;
  b->d = quant_f32_to_f16(1.0f / iscale);
  for (int ib = 0; ib < QK_K / 16; ib++)
    b->scales[ib] = (int8_t)clamp_int(quant_round(iscale * scales[ib]), -128, 127);
  float d = quant_f16_to_f32(b->d);
  uint8_t U[QK_K]; /* q + 32, 0..63 */
  for (int ib = 0; ib < QK_K / 16; ib++) {
    float dl = d * (float)b->scales[ib], inv = dl != 0.0f ? 1.0f / dl : 0.0f;
    for (int l = 0; l < 16; l++)
      U[16 * ib + l] = (uint8_t)(level_signed(x[16 * ib + l] * inv, 32) + 32);
  }
  uint8_t *ql = b->ql, *qh = b->qh;
  for (int j = 0; j < QK_K; j += 128) {
    for (int l = 0; l < 32; l++) {
      const uint8_t *u = U + j + l;
      ql[l] = (uint8_t)((u[0] & 0x0f) | (u[64] & 0x0f) << 4);
      ql[l + 32] = (uint8_t)((u[32] & 0x0f) | (u[96] & 0x0f) << 4);
      qh[l] = (uint8_t)((u[0] >> 4) | (u[32] >> 4) << 2 | (u[64] >> 4) << 4 | (u[96] >> 4) << 6);
    }
    ql += 64;
    qh += 32;
  }
}

/* Q8_K: the value of largest magnitude maps to -127; d = 1 / iscale; bsums[k] = sum of qs over
 * the k-th group of 16 (quantize_row_q8_K_ref). */
static void quantize_block_q8_k(const float *x /* [256] */, struct block_q8_k *b) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < QK_K; j++) {
    if (fabsf(x[j]) > amax) {
      amax = fabsf(x[j]);
      max = x[j];
    }
  }
  if (amax == 0.0f) {
    memset(b, 0, sizeof *b);
    return;
  }
  float iscale = -127.0f / max;
  for (int j = 0; j < QK_K; j++)
    b->qs[j] = (int8_t)clamp_int(quant_round(iscale * x[j]), -127, 127);
  for (int k = 0; k < QK_K / 16; k++) {
    int sum = 0;
    for (int l = 0; l < 16; l++)
      sum += b->qs[16 * k + l];
    b->bsums[k] = (int16_t)sum;
  }
  b->d = 1.0f / iscale;
}

void quant_quantize_q4_k(const float *src, void *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    quantize_block_q4_k(src + i * QK_K, (struct block_q4_k *)dst + i);
}

void quant_quantize_q5_k(const float *src, void *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    quantize_block_q5_k(src + i * QK_K, (struct block_q5_k *)dst + i);
}

void quant_quantize_q6_k(const float *src, void *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    quantize_block_q6_k(src + i * QK_K, (struct block_q6_k *)dst + i);
}

void quant_quantize_q8_k(const float *src, void *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    quantize_block_q8_k(src + i * QK_K, (struct block_q8_k *)dst + i);
}
