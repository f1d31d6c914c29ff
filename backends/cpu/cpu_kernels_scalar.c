/* Portable scalar kernels: the path used on CPUs without AVX2/FMA/F16C or with "scalar=1", and
 * the reference the AVX2 kernels are tested against. Written plainly, one function per weight
 * type: each dot product does the same integer arithmetic per block as its AVX2 twin
 * (activations quantized to Q8_0 or Q8_K), so the two differ only in float summation order.
 * Block layouts: ggml-common.h (see engine/quant.h). */
#include <math.h>

#include "backends/cpu/cpu_internal.h"
#include "backends/cpu/cpu_ref.h"

/* Activations: Q8_0, 32 per block, d = amax / 127 (stored f16), q = round-half-even(x * 127 /
 * amax). The multiplier is 127 / amax, not 1 / d, as llama.cpp computes it, so that the quants
 * match. */
static void scalar_quantize_q8_0(const float *x, struct block_q8_0 *y, int64_t k) {
  for (int64_t ib = 0; ib < k / QK8_0; ib++) {
    const float *xb = x + ib * QK8_0; /* [32] */
    float amax = 0.0f;
    for (int i = 0; i < QK8_0; i++)
      amax = fmaxf(amax, fabsf(xb[i]));
    float d = amax / 127.0f;
    float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    y[ib].d = quant_f32_to_f16(d);
    for (int i = 0; i < QK8_0; i++) {
      float v = fminf(fmaxf(nearbyintf(xb[i] * id), -127.0f), 127.0f);
      y[ib].qs[i] = (int8_t)v;
    }
  }
}

/* The same quants as scalar_quantize_q8_0, with the f16-rounded d stored as f32. */
static void scalar_quantize_q8_0x(const float *x, struct cpu_block_q8_0x *y, int64_t k) {
  for (int64_t ib = 0; ib < k / QK8_0; ib++) {
    struct block_q8_0 b;
    scalar_quantize_q8_0(x + ib * QK8_0, &b, QK8_0);
    y[ib].d = cpu_f16_to_f32(b.d);
    memcpy(y[ib].qs, b.qs, sizeof b.qs);
  }
}

/* Activations: Q8_K, 256 per block, q = round-half-even(x * 127 / amax), d = amax / 127 computed
 * as 1 / (127 / amax) (llama.cpp's order), kept in f32; bsums = sums of each 16 quants. */
static void scalar_quantize_q8_k(const float *x, struct block_q8_k *y, int64_t k) {
  for (int64_t ib = 0; ib < k / QK_K; ib++) {
    const float *xb = x + ib * QK_K; /* [256] */
    float amax = 0.0f;
    for (int i = 0; i < QK_K; i++)
      amax = fmaxf(amax, fabsf(xb[i]));
    float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    y[ib].d = amax != 0.0f ? 1.0f / id : 0.0f;
    for (int i = 0; i < QK_K; i++) {
      float v = fminf(fmaxf(nearbyintf(xb[i] * id), -127.0f), 127.0f);
      y[ib].qs[i] = (int8_t)v;
    }
    for (int g = 0; g < QK_K / 16; g++) {
      int sum = 0;
      for (int i = 0; i < 16; i++)
        sum += y[ib].qs[g * 16 + i];
      y[ib].bsums[g] = (int16_t)sum;
    }
  }
}

/* w[k] f32 . x[k] f32, nr activation rows. */
static void scalar_dot_f32(int64_t k, const void *w, const void *act, size_t act_stride, int nr,
                           float *out, size_t out_stride) {
  const float *wr = w;
  for (int r = 0; r < nr; r++) {
    const float *x = (const float *)((const char *)act + (size_t)r * act_stride);
    float sum = 0.0f;
    for (int64_t i = 0; i < k; i++)
      sum += wr[i] * x[i];
    out[(size_t)r * out_stride] = sum;
  }
}

/* w[k] f16 . x[k] f32. */
static void scalar_dot_f16(int64_t k, const void *w, const void *act, size_t act_stride, int nr,
                           float *out, size_t out_stride) {
  const quant_f16 *wr = w;
  for (int r = 0; r < nr; r++) {
    const float *x = (const float *)((const char *)act + (size_t)r * act_stride);
    float sum = 0.0f;
    for (int64_t i = 0; i < k; i++)
      sum += cpu_f16_to_f32(wr[i]) * x[i];
    out[(size_t)r * out_stride] = sum;
  }
}

/* The 32-element block families (Q8_0, Q4_0, Q5_0) against Q8_0 activations, in llama.cpp's
 * vec_dot order (which its tinyBLAS batches share): 8 lanes of 4 consecutive products, one FMA per
 * lane and block with d_w * d_x, then the 8-lane horizontal sum. q holds the block's 32 signed
 * weight values in element order. */
static void q8_block_lanes(const int q[QK8_0], const struct cpu_block_q8_0x *x, float d,
                           float acc[8]) {
  for (int l = 0; l < 8; l++) {
    int s = 0;
    for (int t = 0; t < 4; t++)
      s += q[4 * l + t] * x->qs[4 * l + t];
    acc[l] = fmaf(d, (float)s, acc[l]);
  }
}

static float hsum8(const float a[8]) {
  return ((a[0] + a[4]) + (a[2] + a[6])) + ((a[1] + a[5]) + (a[3] + a[7]));
}

/* Q8_0 weights: value = qs[i] * d. */
static void scalar_dot_q8_0(int64_t k, const void *w, const void *act, size_t act_stride, int nr,
                            float *out, size_t out_stride) {
  const struct block_q8_0 *wb = w; /* [k / 32] */
  for (int r = 0; r < nr; r++) {
    const struct cpu_block_q8_0x *xb =
        (const struct cpu_block_q8_0x *)((const char *)act + r * act_stride);
    float acc[8] = {0};
    for (int64_t ib = 0; ib < k / QK8_0; ib++) {
      int q[QK8_0];
      for (int i = 0; i < QK8_0; i++)
        q[i] = wb[ib].qs[i];
      q8_block_lanes(q, &xb[ib], cpu_f16_to_f32(wb[ib].d) * xb[ib].d, acc);
    }
    out[(size_t)r * out_stride] = hsum8(acc);
  }
}

/* Q4_0: element i < 16 is the low nibble of qs[i], element i >= 16 the high nibble of qs[i-16],
 * value (nibble - 8) * d. */
static void scalar_dot_q4_0(int64_t k, const void *w, const void *act, size_t act_stride, int nr,
                            float *out, size_t out_stride) {
  const struct block_q4_0 *wb = w; /* [k / 32] */
  for (int r = 0; r < nr; r++) {
    const struct cpu_block_q8_0x *xb =
        (const struct cpu_block_q8_0x *)((const char *)act + r * act_stride);
    float acc[8] = {0};
    for (int64_t ib = 0; ib < k / QK4_0; ib++) {
      int q[QK4_0];
      for (int i = 0; i < QK4_0 / 2; i++) {
        q[i] = (wb[ib].qs[i] & 0x0f) - 8;
        q[i + QK4_0 / 2] = (wb[ib].qs[i] >> 4) - 8;
      }
      q8_block_lanes(q, &xb[ib], cpu_f16_to_f32(wb[ib].d) * xb[ib].d, acc);
    }
    out[(size_t)r * out_stride] = hsum8(acc);
  }
}

/* Q5_0: as Q4_0 with a fifth bit per element in qh (bit i for element i), value
 * ((nibble | bit << 4) - 16) * d. */
static void scalar_dot_q5_0(int64_t k, const void *w, const void *act, size_t act_stride, int nr,
                            float *out, size_t out_stride) {
  const struct block_q5_0 *wb = w; /* [k / 32] */
  for (int r = 0; r < nr; r++) {
    const struct cpu_block_q8_0x *xb =
        (const struct cpu_block_q8_0x *)((const char *)act + r * act_stride);
    float acc[8] = {0};
    for (int64_t ib = 0; ib < k / QK5_0; ib++) {
      uint32_t qh;
      memcpy(&qh, wb[ib].qh, sizeof qh);
      int q[QK5_0];
      for (int i = 0; i < QK5_0 / 2; i++) {
        q[i] = ((wb[ib].qs[i] & 0x0f) | (int)(((qh >> i) & 1) << 4)) - 16;
        q[i + QK5_0 / 2] = ((wb[ib].qs[i] >> 4) | (int)(((qh >> (i + 16)) & 1) << 4)) - 16;
      }
      q8_block_lanes(q, &xb[ib], cpu_f16_to_f32(wb[ib].d) * xb[ib].d, acc);
    }
    out[(size_t)r * out_stride] = hsum8(acc);
  }
}

/* per64: llama.cpp's gemm order (see cpu_kernels_x86.h), else its gemv order. */
static void scalar_q4_k_order(int64_t k, const void *w, const void *act, size_t act_stride, int nr,
                              float *out, size_t out_stride, bool per64) {
  const struct block_q4_k *wb = w; /* [k / 256] */
  for (int r = 0; r < nr; r++) {
    const struct block_q8_k *xb = (const struct block_q8_k *)((const char *)act + r * act_stride);
    float sum = 0.0f, sum_min = 0.0f;
    for (int64_t ib = 0; ib < k / QK_K; ib++) {
      uint8_t sc[8], mn[8];
      cpu_q4_k_scales(wb[ib].scales, sc, mn);
      float d = cpu_f16_to_f32(wb[ib].d) * xb[ib].d;
      float dmin = cpu_f16_to_f32(wb[ib].dmin) * xb[ib].d;
      int isum = 0, msum = 0;
      for (int c = 0; c < 4; c++) {
        const uint8_t *q = wb[ib].qs + 32 * c; /* [32] */
        const int8_t *a = xb[ib].qs + 64 * c;  /* [64] */
        int lo = 0, hi = 0;
        for (int l = 0; l < 32; l++) {
          lo += (q[l] & 0x0f) * a[l];
          hi += (q[l] >> 4) * a[l + 32];
        }
        int part = sc[2 * c] * lo + sc[2 * c + 1] * hi;
        int mpart = mn[2 * c] * (xb[ib].bsums[4 * c] + xb[ib].bsums[4 * c + 1]) +
                    mn[2 * c + 1] * (xb[ib].bsums[4 * c + 2] + xb[ib].bsums[4 * c + 3]);
        if (per64) {
          sum = fmaf((float)part, d, sum);
          sum_min = fmaf((float)mpart, dmin, sum_min);
        } else {
          isum += part;
          msum += mpart;
        }
      }
      if (!per64) {
        sum = fmaf((float)isum, d, sum);
        sum_min = fmaf((float)msum, dmin, sum_min);
      }
    }
    out[(size_t)r * out_stride] = sum - sum_min;
  }
}

/* Q4_K: 8 sub-blocks of 32; value = d * sc[j] * q - dmin * mn[j]. qs[32 * c .. 32 * c + 31] hold
 * sub-block 2c in the low nibbles and 2c + 1 in the high nibbles. The min term uses the
 * activation block sums (bsums), so it costs 8 multiplies per block. Summed as llama.cpp's
 * repacked Q4_K kernels do: two scalar FMA chains (scales, mins) per 256 (gemv) or per 64
 * (gemm) elements, subtracted at the end. */
static void scalar_dot_q4_k(int64_t k, const void *w, const void *act, size_t act_stride, int nr,
                            float *out, size_t out_stride) {
  scalar_q4_k_order(k, w, act, act_stride, nr, out, out_stride, false);
}

static void scalar_dot_q4_k_gemm(int64_t k, const void *w, const void *act, size_t act_stride,
                                 int nr, float *out, size_t out_stride) {
  scalar_q4_k_order(k, w, act, act_stride, nr, out, out_stride, true);
}

/* Q6_K: 16 groups of 16 with int8 scales; value = d * scales[g] * (q6 - 32), where q6 is 4 low
 * bits from ql and 2 high bits from qh. Per 128-half n (l < 32): ql[l] low/high nibbles are
 * elements l and l + 64, ql[l + 32] elements l + 32 and l + 96, qh[l] bits 0-1, 2-3, 4-5, 6-7
 * the high bits of elements l, l + 32, l + 64, l + 96. Group of element e is e / 16. The -32 is
 * applied through bsums.
 * The sum is split into 8 lanes exactly as llama.cpp's AVX2 kernel splits it (lane L holds
 * elements 4L..4L+3 of every 32, and the -32 correction of groups 2L and 2L + 1), each lane
 * gets one FMA per block, and the lanes are added in its horizontal-sum order. */
static void scalar_q6_k_order(int64_t k, const void *w, const void *act, size_t act_stride, int nr,
                              float *out, size_t out_stride, bool tiled) {
  const struct block_q6_k *wb = w; /* [k / 256] */
  for (int r = 0; r < nr; r++) {
    const struct block_q8_k *xb = (const struct block_q8_k *)((const char *)act + r * act_stride);
    float acc[8] = {0}, sum = 0.0f;
    for (int64_t ib = 0; ib < k / QK_K; ib++) {
      int q[QK_K]; /* the 6-bit quants in element order */
      for (int n = 0; n < 2; n++) {
        const uint8_t *ql = wb[ib].ql + 64 * n; /* [64] */
        const uint8_t *qh = wb[ib].qh + 32 * n; /* [32] */
        for (int l = 0; l < 32; l++) {
          q[128 * n + l] = (ql[l] & 0x0f) | ((qh[l] & 3) << 4);
          q[128 * n + l + 32] = (ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4);
          q[128 * n + l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
          q[128 * n + l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
        }
      }
      int lane[8] = {0};
      for (int e = 0; e < QK_K; e++)
        lane[(e % 32) / 4] += wb[ib].scales[e / 16] * q[e] * xb[ib].qs[e];
      float d = xb[ib].d * cpu_f16_to_f32(wb[ib].d);
      int total = 0;
      for (int l = 0; l < 8; l++) {
        int corr = wb[ib].scales[2 * l] * xb[ib].bsums[2 * l] +
                   wb[ib].scales[2 * l + 1] * xb[ib].bsums[2 * l + 1];
        acc[l] = fmaf(d, (float)(lane[l] - 32 * corr), acc[l]);
        total += lane[l] - 32 * corr;
      }
      sum = fmaf((float)total * cpu_f16_to_f32(wb[ib].d), xb[ib].d, sum);
    }
    out[(size_t)r * out_stride] = tiled ? sum : hsum8(acc);
  }
}

static void scalar_dot_q6_k(int64_t k, const void *w, const void *act, size_t act_stride, int nr,
                            float *out, size_t out_stride) {
  scalar_q6_k_order(k, w, act, act_stride, nr, out, out_stride, false);
}

/* llama.cpp's tiled matmul order (batches of 8+ tokens): per block, the whole integer sum times
 * the weight scale, then an FMA with the activation scale (GCC contracts ggml's mul + add). */
static void scalar_dot_q6_k_tiled(int64_t k, const void *w, const void *act, size_t act_stride,
                                  int nr, float *out, size_t out_stride) {
  scalar_q6_k_order(k, w, act, act_stride, nr, out, out_stride, true);
}

/* IQ3_XXS and IQ3_S against Q8_K, in llama.cpp's AVX2 vec_dot order: per 256-block, lane l of 8
 * sums elements 4l..4l+3 of every 32 times that 32's odd scale 2s + 1, each lane gets one FMA
 * per block with d_w * d_x, then hsum8. g holds the block's signed grid values in element order,
 * ls the scale of each 32. */
static void iq3_block_lanes(const int g[QK_K], const int ls[QK_K / 32], const int8_t *a /* [256] */,
                            float d, float acc[8]) {
  int lane[8] = {0};
  for (int e = 0; e < QK_K; e++)
    lane[(e % 32) / 4] += ls[e / 32] * g[e] * a[e];
  for (int l = 0; l < 8; l++)
    acc[l] = fmaf(d, (float)lane[l], acc[l]);
}

/* Grid entry i packs its 4 values, value j in byte j (engine/quant_grids.c). */
static int iq3_grid_value(uint32_t entry, int j) {
  return (int)((entry >> (8 * j)) & 0xff);
}

/* IQ3_XXS: per 32, 8 grid indices in qs, then (after all QK_K / 4 of them) a little-endian u32
 * of four 7-bit sign groups (group l: elements 8l..8l+7, the eighth sign making the count of
 * negatives even) and the scale s in bits 28..31. value = d * (2s + 1) / 4 * grid * sign; the
 * 1/4 is applied to the final sum, as llama.cpp does. */
static void scalar_dot_iq3_xxs(int64_t k, const void *w, const void *act, size_t act_stride, int nr,
                               float *out, size_t out_stride) {
  const struct block_iq3_xxs *wb = w; /* [k / 256] */
  for (int r = 0; r < nr; r++) {
    const struct block_q8_k *xb = (const struct block_q8_k *)((const char *)act + r * act_stride);
    float acc[8] = {0};
    for (int64_t ib = 0; ib < k / QK_K; ib++) {
      const uint8_t *q = wb[ib].qs, *scales_signs = wb[ib].qs + QK_K / 4;
      int g[QK_K], ls[QK_K / 32];
      for (int j = 0; j < QK_K / 32; j++) {
        const uint8_t *ss = scales_signs + 4 * j;
        uint32_t aux = ss[0] | (uint32_t)ss[1] << 8 | (uint32_t)ss[2] << 16 | (uint32_t)ss[3] << 24;
        ls[j] = 2 * (int)(aux >> 28) + 1;
        for (int l = 0; l < 4; l++) {
          uint32_t signs = (aux >> (7 * l)) & 127;
          int parity = 0;
          for (int t = 0; t < 7; t++)
            parity ^= (signs >> t) & 1;
          signs |= (uint32_t)parity << 7;
          for (int e = 0; e < 8; e++) {
            uint32_t entry = quant_iq3xxs_grid[q[8 * j + 2 * l + e / 4]];
            int v = iq3_grid_value(entry, e % 4);
            g[32 * j + 8 * l + e] = (signs >> e) & 1 ? -v : v;
          }
        }
      }
      iq3_block_lanes(g, ls, xb[ib].qs, cpu_f16_to_f32(wb[ib].d) * xb[ib].d, acc);
    }
    out[(size_t)r * out_stride] = 0.25f * hsum8(acc);
  }
}

/* IQ3_S: per 32 (j), 8 grid indices of 9 bits (low 8 in qs, bit t of qh[j] the ninth of index
 * t), 4 sign bytes (bit e of signs[4j + l]: element 32j + 8l + e negative) and a 4-bit scale s
 * (nibble j % 2 of scales[j / 2]). value = d * (2s + 1) * grid * sign. */
static void scalar_dot_iq3_s(int64_t k, const void *w, const void *act, size_t act_stride, int nr,
                             float *out, size_t out_stride) {
  const struct block_iq3_s *wb = w; /* [k / 256] */
  for (int r = 0; r < nr; r++) {
    const struct block_q8_k *xb = (const struct block_q8_k *)((const char *)act + r * act_stride);
    float acc[8] = {0};
    for (int64_t ib = 0; ib < k / QK_K; ib++) {
      const struct block_iq3_s *b = &wb[ib];
      int g[QK_K], ls[QK_K / 32];
      for (int j = 0; j < QK_K / 32; j++) {
        ls[j] = 2 * ((b->scales[j / 2] >> (4 * (j % 2))) & 0x0f) + 1;
        for (int t = 0; t < 8; t++) {
          int index = b->qs[8 * j + t] | ((b->qh[j] >> t) & 1) << 8;
          for (int v = 0; v < 4; v++) {
            int e = 32 * j + 4 * t + v; /* element */
            int value = iq3_grid_value(quant_iq3s_grid[index], v);
            g[e] = (b->signs[e / 8] >> (e % 8)) & 1 ? -value : value;
          }
        }
      }
      iq3_block_lanes(g, ls, xb[ib].qs, cpu_f16_to_f32(b->d) * xb[ib].d, acc);
    }
    out[(size_t)r * out_stride] = hsum8(acc);
  }
}

static float scalar_vec_dot_f32(const float *a, const float *b, int64_t n) {
  float sum = 0.0f;
  for (int64_t i = 0; i < n; i++)
    sum += a[i] * b[i];
  return sum;
}

static void scalar_f16_to_f32(const quant_f16 *x, float *y, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    y[i] = cpu_f16_to_f32(x[i]);
}

static void scalar_round_f16(float *x, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    x[i] = cpu_f16_to_f32(quant_f32_to_f16(x[i]));
}

static double scalar_softmax_exp(float *x, int64_t n, float max) {
  double sum = 0.0;
  for (int64_t i = 0; i < n; i += 16) {
    float chunk[16];
    for (int l = 0; l < 16; l++)
      chunk[l] = i + l < n ? cpu_ggml_expf(x[i + l] - max) : 0.0f;
    for (int64_t l = 0; l < 16 && i + l < n; l++)
      x[i + l] = chunk[l];
    sum += (double)cpu_reduce16(chunk);
  }
  return sum;
}

/* Cache rows [n][hd] as f32: converted from f16 into buf, or read in place. */
/* Cache row j of kv (rows stride elements apart) as f32: in place, or converted from f16 into
 * buf [hd]. */
static const float *scalar_kv_row(const void *kv, int kv_f16, size_t stride, int64_t j, int64_t hd,
                                  float *buf) {
  if (!kv_f16) return (const float *)kv + (size_t)j * stride;
  const quant_f16 *h = (const quant_f16 *)kv + (size_t)j * stride;
  for (int64_t i = 0; i < hd; i++)
    buf[i] = cpu_f16_to_f32(h[i]);
  return buf;
}

static void scalar_attn_scores(const float *q, size_t q_stride, int64_t nr, const void *kv,
                               int kv_f16, size_t kv_stride, int64_t nj, int64_t hd, int order,
                               float scale, float *scores, size_t s_stride) {
  float row[1024]; /* hd <= 1024: one row at a time */
  for (int64_t j = 0; j < nj; j++) {
    const float *k = scalar_kv_row(kv, kv_f16, kv_stride, j, hd, row);
    for (int64_t r = 0; r < nr; r++)
      scores[r * s_stride + j] = cpu_ref_dot_ordered(k, q + r * q_stride, hd, order) * scale;
  }
}

static void scalar_attn_accumulate(const float *p, size_t p_stride, int64_t nr, const void *vv,
                                   int kv_f16, size_t kv_stride, int64_t j0, int64_t nj, int64_t hd,
                                   int nbanks, float *banks, size_t bank_stride) {
  float row[1024];
  for (int64_t j = 0; j < nj; j++) {
    const float *v = scalar_kv_row(vv, kv_f16, kv_stride, j, hd, row);
    for (int64_t r = 0; r < nr; r++) {
      float *bank = banks + r * bank_stride + ((j0 + j) % nbanks) * hd; /* [hd] */
      float pj = p[r * p_stride + j];
      for (int64_t i = 0; i < hd; i++)
        bank[i] = fmaf(pj, v[i], j0 + j < nbanks ? 0.0f : bank[i]);
    }
  }
}

static const struct cpu_kernels scalar_kernels = {
    .isa = "scalar",
    .dot =
        {
            [QUANT_F32] = scalar_dot_f32,
            [QUANT_F16] = scalar_dot_f16,
            [QUANT_Q4_0] = scalar_dot_q4_0,
            [QUANT_Q5_0] = scalar_dot_q5_0,
            [QUANT_Q8_0] = scalar_dot_q8_0,
            [QUANT_Q4_K] = scalar_dot_q4_k,
            [QUANT_Q6_K] = scalar_dot_q6_k,
            [QUANT_IQ3_XXS] = scalar_dot_iq3_xxs,
            [QUANT_IQ3_S] = scalar_dot_iq3_s,
        },
    .dot_gemm = {[QUANT_Q4_K] = scalar_dot_q4_k_gemm, [QUANT_Q6_K] = scalar_dot_q6_k_tiled},
    .quantize_q8_0 = scalar_quantize_q8_0,
    .quantize_q8_0x = scalar_quantize_q8_0x,
    .quantize_q8_k = scalar_quantize_q8_k,
    .dot_f32 = scalar_vec_dot_f32,
    .f16_to_f32 = scalar_f16_to_f32,
    .round_f16 = scalar_round_f16,
    .silu_mul = cpu_ref_silu_mul,
    .softmax_exp = scalar_softmax_exp,
    .attn_scores = scalar_attn_scores,
    .attn_accumulate = scalar_attn_accumulate,
};

const struct cpu_kernels *cpu_kernels_scalar(void) {
  return &scalar_kernels;
}
