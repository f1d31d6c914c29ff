/* x86 SIMD kernel bodies shared by the AVX2 table (cpu_kernels_avx2.c) and the AVX512-VNNI
 * table (cpu_kernels_vnni_avx2.c): each including file defines two hooks and gets its own static
 * copies compiled for its instruction set:
 *   X86_MADD_ACC(acc, p16, s16)  acc + pairwise int16 products of p16 and s16, as 8 int32
 *   X86_DOT_U8_I8(u, s)          sums of 4 adjacent u8 * s8 products, as 8 int32
 * and sets X86_KQUANT_DPBUSD to 1 where the k-quant kernels may use vpdpbusd/vpdpwssd directly
 * (fewer multiplies per weight; the same integer results).
 * The integer dot products follow the scalar kernels block for block: unsigned weight quants
 * times signed Q8 activations (maddubs), widened with the sub-block scale, summed in int32 per
 * block, then one FMA per block in f32. Each kernel is written once for nr tokens and
 * instantiated for nr = 1..4 so that a decoded weight block is reused from registers across
 * the tokens of a tile. Include only from files compiled with AVX2/FMA/F16C. */
#ifndef AUGURY_BACKENDS_CPU_CPU_KERNELS_X86_H
#define AUGURY_BACKENDS_CPU_CPU_KERNELS_X86_H

#include <immintrin.h>
#include <math.h>

#include "backends/cpu/cpu_internal.h"

#define INLINE static inline __attribute__((always_inline))

INLINE float hsum_ps(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

INLINE int hsum_epi32_128(__m128i v) {
  v = _mm_add_epi32(v, _mm_shuffle_epi32(v, _MM_SHUFFLE(1, 0, 3, 2)));
  v = _mm_add_epi32(v, _mm_shuffle_epi32(v, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm_cvtsi128_si32(v);
}

INLINE float hmax_ps(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

INLINE float f16(quant_f16 h) {
  return _cvtsh_ss(h);
}

/* 32 signed bytes . 32 signed bytes as 8 int32 partial sums (the sign trick: |w| * (x * sgn w)
 * so the unsigned operand of maddubs/dpbusd is the weight). */
INLINE __m256 dot_i8_ps(__m256i w_abs, __m256i w, __m256i x) {
  return _mm256_cvtepi32_ps(X86_DOT_U8_I8(w_abs, _mm256_sign_epi8(x, w)));
}

/* Instantiate impl for nr = 1..4 (nr a constant inside each copy, so the per-token arrays live in
 * registers). */
#define DEFINE_DOT(name, impl)                                                                     \
  static void name(int64_t k, const void *w, const void *act, size_t st, int nr, float *out,       \
                   size_t os) {                                                                    \
    switch (nr) {                                                                                  \
    case 4: impl(k, w, act, st, 4, out, os); break;                                                \
    case 3: impl(k, w, act, st, 3, out, os); break;                                                \
    case 2: impl(k, w, act, st, 2, out, os); break;                                                \
    default: impl(k, w, act, st, 1, out, os); break;                                               \
    }                                                                                              \
  }

#define ACT_ROW(type, act, st, r) ((const type *)((const char *)(act) + (size_t)(r) * (st)))

/* ---- Q8_0 / Q4_0 / Q5_0 weights x Q8_0 activations ------------------------------------------ */

INLINE void q8_0_impl(int64_t k, const void *vw, const void *act, size_t st, const int nr,
                      float *out, size_t os) {
  const struct block_q8_0 *w = vw; /* [k / 32] */
  __m256 acc[4];
  for (int r = 0; r < nr; r++)
    acc[r] = _mm256_setzero_ps();
  for (int64_t ib = 0; ib < k / QK8_0; ib++) {
    __m256i q = _mm256_loadu_si256((const __m256i *)w[ib].qs);
    __m256i qa = _mm256_abs_epi8(q);
    __m256 dw = _mm256_set1_ps(f16(w[ib].d));
    for (int r = 0; r < nr; r++) {
      const struct cpu_block_q8_0x *y = ACT_ROW(struct cpu_block_q8_0x, act, st, r) + ib;
      __m256 p = dot_i8_ps(qa, q, _mm256_loadu_si256((const __m256i *)y->qs));
      acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(y->d)), p, acc[r]);
    }
  }
  for (int r = 0; r < nr; r++)
    out[(size_t)r * os] = hsum_ps(acc[r]);
}
DEFINE_DOT(avx2_dot_q8_0, q8_0_impl)

/* 16 bytes of nibbles -> 32 bytes: low nibbles are elements 0..15, high nibbles 16..31. */
INLINE __m256i unpack_nibbles(const uint8_t *qs) {
  __m128i x = _mm_loadu_si128((const __m128i *)qs);
  __m256i both = _mm256_set_m128i(_mm_srli_epi16(x, 4), x);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

INLINE void q4_0_impl(int64_t k, const void *vw, const void *act, size_t st, const int nr,
                      float *out, size_t os) {
  const struct block_q4_0 *w = vw; /* [k / 32] */
  __m256 acc[4];
  for (int r = 0; r < nr; r++)
    acc[r] = _mm256_setzero_ps();
  for (int64_t ib = 0; ib < k / QK4_0; ib++) {
    __m256i q = _mm256_sub_epi8(unpack_nibbles(w[ib].qs), _mm256_set1_epi8(8));
    __m256i qa = _mm256_abs_epi8(q);
    __m256 dw = _mm256_set1_ps(f16(w[ib].d));
    for (int r = 0; r < nr; r++) {
      const struct cpu_block_q8_0x *y = ACT_ROW(struct cpu_block_q8_0x, act, st, r) + ib;
      __m256 p = dot_i8_ps(qa, q, _mm256_loadu_si256((const __m256i *)y->qs));
      acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(y->d)), p, acc[r]);
    }
  }
  for (int r = 0; r < nr; r++)
    out[(size_t)r * os] = hsum_ps(acc[r]);
}
DEFINE_DOT(avx2_dot_q4_0, q4_0_impl)

/* The 32 bits of qh -> 32 bytes holding 0x10 where the bit is set (bit i -> byte i). */
INLINE __m256i expand_bits_0x10(const uint8_t *qh_bytes) {
  uint32_t qh;
  memcpy(&qh, qh_bytes, sizeof qh);
  const __m256i pick = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2,
                                        2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
  const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ULL);
  __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32((int)qh), pick);
  __m256i set = _mm256_cmpeq_epi8(_mm256_and_si256(bytes, bit), bit);
  return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

INLINE void q5_0_impl(int64_t k, const void *vw, const void *act, size_t st, const int nr,
                      float *out, size_t os) {
  const struct block_q5_0 *w = vw; /* [k / 32] */
  __m256 acc[4];
  for (int r = 0; r < nr; r++)
    acc[r] = _mm256_setzero_ps();
  for (int64_t ib = 0; ib < k / QK5_0; ib++) {
    __m256i q = _mm256_or_si256(unpack_nibbles(w[ib].qs), expand_bits_0x10(w[ib].qh));
    q = _mm256_sub_epi8(q, _mm256_set1_epi8(16));
    __m256i qa = _mm256_abs_epi8(q);
    __m256 dw = _mm256_set1_ps(f16(w[ib].d));
    for (int r = 0; r < nr; r++) {
      const struct cpu_block_q8_0x *y = ACT_ROW(struct cpu_block_q8_0x, act, st, r) + ib;
      __m256 p = dot_i8_ps(qa, q, _mm256_loadu_si256((const __m256i *)y->qs));
      acc[r] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(y->d)), p, acc[r]);
    }
  }
  for (int r = 0; r < nr; r++)
    out[(size_t)r * os] = hsum_ps(acc[r]);
}
DEFINE_DOT(avx2_dot_q5_0, q5_0_impl)

/* ---- Q4_K / Q6_K weights x Q8_K activations -------------------------------------------------- */

/* Q4_K scales and mins as int16 [sc0..sc7 | mn0..mn7], unpacked four at a time from the 12
 * packed bytes (same formula as cpu_q4_k_scales, per byte lane). */
INLINE __m256i q4_k_scales_mins(const uint8_t *packed) {
  /* With s0, s1, s2 the three packed dwords, per byte lane:
   *   sc_lo = s0 & 63         sc_hi = (s2 & 15) | ((s0 >> 2) & 0x30)
   *   mn_lo = s1 & 63         mn_hi = ((s2 >> 4) & 15) | ((s1 >> 2) & 0x30)
   * x holds [s0 s2 s1 s2] and y [- s0 - s1], so three masked terms give [sc_lo sc_hi mn_lo mn_hi].
   * The 16-byte load reads 4 bytes past the scales, into qs of the same block. */
  __m128i v = _mm_loadu_si128((const __m128i *)packed);
  __m128i x =
      _mm_shuffle_epi8(v, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
  __m128i y =
      _mm_shuffle_epi8(v, _mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7));
  __m128i low = _mm_and_si128(x, _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0));
  __m128i nib = _mm_and_si128(_mm_srli_epi32(x, 4), _mm_setr_epi32(0, 0, 0, 0x0f0f0f0f));
  __m128i top = _mm_and_si128(_mm_srli_epi32(y, 2), _mm_setr_epi32(0, 0x30303030, 0, 0x30303030));
  return _mm256_cvtepu8_epi16(_mm_or_si128(_mm_or_si128(low, nib), top));
}

INLINE void q4_k_impl(int64_t k, const void *vw, const void *act, size_t st, const int nr,
                      float *out, size_t os) {
  const struct block_q4_k *w = vw; /* [k / 256] */
  const __m256i m4 = _mm256_set1_epi8(0x0f);
#if X86_KQUANT_DPBUSD
  /* per 128-bit lane: int16 lanes 0-3 take scale 2c, lanes 4-7 scale 2c + 1 */
  const __m256i zero = _mm256_setzero_si256();
  __m256i pick[4];
  for (int c = 0; c < 4; c++) {
    short lo = (short)(0x0100 * (4 * c + 1) + 4 * c);
    short hi = (short)(0x0100 * (4 * c + 3) + 4 * c + 2);
    __m128i half = _mm_set_epi16(hi, hi, hi, hi, lo, lo, lo, lo);
    pick[c] = _mm256_set_m128i(half, half);
  }
#else
  /* pick int16 lane j of the scales into every lane: bytes (2j, 2j + 1) repeated */
  __m256i pick[8];
  for (int j = 0; j < 8; j++)
    pick[j] = _mm256_set1_epi16((short)(0x0100 * (2 * j + 1) + 2 * j));
#endif
  __m256 acc[4];
  __m128 acc_min[4];
  for (int r = 0; r < nr; r++) {
    acc[r] = _mm256_setzero_ps();
    acc_min[r] = _mm_setzero_ps();
  }
  for (int64_t ib = 0; ib < k / QK_K; ib++) {
    const struct block_q4_k *b = w + ib;
    __m256i sm = q4_k_scales_mins(b->scales);
    __m256i sc = _mm256_permute2x128_si256(sm, sm, 0x00); /* scales in both lanes */
    __m128i mins = _mm256_extracti128_si256(sm, 1);
    __m256i isum[4];
    for (int r = 0; r < nr; r++)
      isum[r] = _mm256_setzero_si256();
    for (int c = 0; c < 4; c++) {
      __m256i q = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * c));
      __m256i lo = _mm256_and_si256(q, m4);
      __m256i hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
#if X86_KQUANT_DPBUSD
      /* 4-product sums per sub-block with dpbusd (<= 4 * 15 * 127, fits int16), both sub-blocks
       * packed into one int16 vector, then one dpwssd with their scales: 3 multiplies per
       * 64 weights instead of 4. packs interleaves per lane: [lo0..3 hi0..3 | lo4..7 hi4..7]. */
      __m256i s_pair = _mm256_shuffle_epi8(sc, pick[c]);
      for (int r = 0; r < nr; r++) {
        const int8_t *a = ACT_ROW(struct block_q8_k, act, st, r)[ib].qs + 64 * c;
        __m256i d_lo = _mm256_dpbusd_epi32(zero, lo, _mm256_loadu_si256((const __m256i *)a));
        __m256i d_hi = _mm256_dpbusd_epi32(zero, hi, _mm256_loadu_si256((const __m256i *)(a + 32)));
        isum[r] = _mm256_dpwssd_epi32(isum[r], _mm256_packs_epi32(d_lo, d_hi), s_pair);
      }
#else
      __m256i s_lo = _mm256_shuffle_epi8(sc, pick[2 * c]);
      __m256i s_hi = _mm256_shuffle_epi8(sc, pick[2 * c + 1]);
      for (int r = 0; r < nr; r++) {
        const int8_t *a = ACT_ROW(struct block_q8_k, act, st, r)[ib].qs + 64 * c;
        __m256i p_lo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)a));
        __m256i p_hi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(a + 32)));
        isum[r] = X86_MADD_ACC(X86_MADD_ACC(isum[r], p_lo, s_lo), p_hi, s_hi);
      }
#endif
    }
    float d = f16(b->d), dmin = f16(b->dmin);
    for (int r = 0; r < nr; r++) {
      const struct block_q8_k *y = ACT_ROW(struct block_q8_k, act, st, r) + ib;
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * y->d), _mm256_cvtepi32_ps(isum[r]), acc[r]);
      /* mins pair with the sums of each 32 activations: bsums added pairwise */
      __m128i pair = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)y->bsums),
                                    _mm_loadu_si128((const __m128i *)(y->bsums + 8)));
      acc_min[r] = _mm_fmadd_ps(_mm_set1_ps(dmin * y->d),
                                _mm_cvtepi32_ps(_mm_madd_epi16(mins, pair)), acc_min[r]);
    }
  }
  for (int r = 0; r < nr; r++) {
    __m128 m = acc_min[r];
    m = _mm_add_ps(m, _mm_movehl_ps(m, m));
    m = _mm_add_ss(m, _mm_movehdup_ps(m));
    out[(size_t)r * os] = hsum_ps(acc[r]) - _mm_cvtss_f32(m);
  }
}
DEFINE_DOT(avx2_dot_q4_k, q4_k_impl)

INLINE void q6_k_impl(int64_t k, const void *vw, const void *act, size_t st, const int nr,
                      float *out, size_t os) {
  const struct block_q6_k *w = vw; /* [k / 256] */
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  const __m256i m3 = _mm256_set1_epi8(0x03);
  __m256 acc[4];
  for (int r = 0; r < nr; r++)
    acc[r] = _mm256_setzero_ps();
#if X86_KQUANT_DPBUSD
  /* for the pair (q[i], q[i + 1]), i = 0, 2: low lane int16 0-3 scale 2i, 4-7 scale 2i + 2;
   * high lane 0-3 scale 2i + 1, 4-7 scale 2i + 3 (scale j = bytes 2j, 2j + 1 of sc_n) */
  const __m256i zero = _mm256_setzero_si256();
  __m256i pick[2];
  for (int p = 0; p < 2; p++) {
    int i = 2 * p;
    short g0 = (short)(0x0100 * (4 * i + 1) + 4 * i);
    short g1 = (short)(0x0100 * (4 * i + 3) + 4 * i + 2);
    short g2 = (short)(0x0100 * (4 * i + 5) + 4 * i + 4);
    short g3 = (short)(0x0100 * (4 * i + 7) + 4 * i + 6);
    pick[p] = _mm256_set_m128i(_mm_set_epi16(g3, g3, g3, g3, g1, g1, g1, g1),
                               _mm_set_epi16(g2, g2, g2, g2, g0, g0, g0, g0));
  }
#else
  /* per-lane byte picks: the low lane takes int16 lane 2i, the high lane int16 lane 2i + 1 */
  __m256i pick[4];
  for (int i = 0; i < 4; i++) {
    short lo = (short)(0x0100 * (4 * i + 1) + 4 * i),
          hi = (short)(0x0100 * (4 * i + 3) + 4 * i + 2);
    pick[i] = _mm256_set_m128i(_mm_set1_epi16(hi), _mm_set1_epi16(lo));
  }
#endif
  for (int64_t ib = 0; ib < k / QK_K; ib++) {
    const struct block_q6_k *b = w + ib;
    __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
    __m256i isum[4];
    for (int r = 0; r < nr; r++)
      isum[r] = _mm256_setzero_si256();
    /* scales of groups 8n .. 8n + 7 in both lanes, for n = 0, 1 */
    const __m256i sc_half[2] = {_mm256_permute2x128_si256(sc16, sc16, 0x00),
                                _mm256_permute2x128_si256(sc16, sc16, 0x11)};
    for (int n = 0; n < 2; n++) {
      __m256i sc_n = sc_half[n];
      __m256i qh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * n));
      __m256i ql0 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * n));
      __m256i ql1 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * n + 32));
      __m256i q[4];
      q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4),
                             _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4));
      q[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4));
      q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4));
      q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                             _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4));
#if X86_KQUANT_DPBUSD
      /* dpbusd sums of 4 products (<= 4 * 63 * 127, fits int16) for q[i] and q[i + 1], packed
       * to int16 ([q[i] groups 2i | q[i+1] groups 2i+2] in the low lane, 2i+1 | 2i+3 in the
       * high lane), then one dpwssd with the matching scales. */
      for (int i = 0; i < 4; i += 2) {
        __m256i sc = _mm256_shuffle_epi8(sc_n, pick[i / 2]);
        for (int r = 0; r < nr; r++) {
          const int8_t *a = ACT_ROW(struct block_q8_k, act, st, r)[ib].qs + 128 * n + 32 * i;
          __m256i d0 = _mm256_dpbusd_epi32(zero, q[i], _mm256_loadu_si256((const __m256i *)a));
          __m256i d1 =
              _mm256_dpbusd_epi32(zero, q[i + 1], _mm256_loadu_si256((const __m256i *)(a + 32)));
          isum[r] = _mm256_dpwssd_epi32(isum[r], _mm256_packs_epi32(d0, d1), sc);
        }
      }
#else
      for (int i = 0; i < 4; i++) {
        /* q[i] covers groups 8n + 2i (low 16 bytes) and 8n + 2i + 1 (high 16 bytes). */
        __m256i sc = _mm256_shuffle_epi8(sc_n, pick[i]);
        for (int r = 0; r < nr; r++) {
          const int8_t *a = ACT_ROW(struct block_q8_k, act, st, r)[ib].qs + 128 * n + 32 * i;
          __m256i p = _mm256_maddubs_epi16(q[i], _mm256_loadu_si256((const __m256i *)a));
          isum[r] = X86_MADD_ACC(isum[r], p, sc);
        }
      }
#endif
    }
    /* sum(scale * (q - 32) * x) = sum(scale * q * x) - 32 * sum(scale * bsum) */
    float d = f16(b->d);
    for (int r = 0; r < nr; r++) {
      const struct block_q8_k *y = ACT_ROW(struct block_q8_k, act, st, r) + ib;
      __m256i corr = _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)y->bsums));
      __m256i total = _mm256_sub_epi32(isum[r], _mm256_slli_epi32(corr, 5));
      acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * y->d), _mm256_cvtepi32_ps(total), acc[r]);
    }
  }
  for (int r = 0; r < nr; r++)
    out[(size_t)r * os] = hsum_ps(acc[r]);
}
DEFINE_DOT(avx2_dot_q6_k, q6_k_impl)

/* ---- F16 / F32 weights x F32 activations ----------------------------------------------------- */

INLINE void f16_impl(int64_t k, const void *vw, const void *act, size_t st, const int nr,
                     float *out, size_t os) {
  const quant_f16 *w = vw; /* [k] */
  __m256 acc[4][2];
  for (int r = 0; r < nr; r++)
    acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    __m256 w0 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i)));
    __m256 w1 = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(w + i + 8)));
    for (int r = 0; r < nr; r++) {
      const float *x = ACT_ROW(float, act, st, r) + i;
      acc[r][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x), acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + 8), acc[r][1]);
    }
  }
  for (int r = 0; r < nr; r++) {
    const float *x = ACT_ROW(float, act, st, r);
    float sum = hsum_ps(_mm256_add_ps(acc[r][0], acc[r][1]));
    for (int64_t j = i; j < k; j++)
      sum += f16(w[j]) * x[j];
    out[(size_t)r * os] = sum;
  }
}
DEFINE_DOT(avx2_dot_f16, f16_impl)

INLINE void f32_impl(int64_t k, const void *vw, const void *act, size_t st, const int nr,
                     float *out, size_t os) {
  const float *w = vw; /* [k] */
  __m256 acc[4][2];
  for (int r = 0; r < nr; r++)
    acc[r][0] = acc[r][1] = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= k; i += 16) {
    __m256 w0 = _mm256_loadu_ps(w + i);
    __m256 w1 = _mm256_loadu_ps(w + i + 8);
    for (int r = 0; r < nr; r++) {
      const float *x = ACT_ROW(float, act, st, r) + i;
      acc[r][0] = _mm256_fmadd_ps(w0, _mm256_loadu_ps(x), acc[r][0]);
      acc[r][1] = _mm256_fmadd_ps(w1, _mm256_loadu_ps(x + 8), acc[r][1]);
    }
  }
  for (int r = 0; r < nr; r++) {
    const float *x = ACT_ROW(float, act, st, r);
    float sum = hsum_ps(_mm256_add_ps(acc[r][0], acc[r][1]));
    for (int64_t j = i; j < k; j++)
      sum += w[j] * x[j];
    out[(size_t)r * os] = sum;
  }
}
DEFINE_DOT(avx2_dot_f32, f32_impl)

/* ---- activation quantization ------------------------------------------------------------------
 */

/* 32 floats -> 32 int8 (x * id rounded half to even, clamped to +-127), in element order. */
INLINE __m256i quantize_32(const float *x, float id) {
  const __m256 mul = _mm256_set1_ps(id);
  const __m256 hi = _mm256_set1_ps(127.0f), lo = _mm256_set1_ps(-127.0f);
  __m256i v[4];
  for (int i = 0; i < 4; i++) {
    __m256 s = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * i), mul),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    v[i] = _mm256_cvtps_epi32(_mm256_min_ps(_mm256_max_ps(s, lo), hi));
  }
  /* packs work per 128-bit lane; the permute puts the 4-byte groups back in order. */
  __m256i p16a = _mm256_packs_epi32(v[0], v[1]);
  __m256i p16b = _mm256_packs_epi32(v[2], v[3]);
  __m256i p8 = _mm256_packs_epi16(p16a, p16b);
  return _mm256_permutevar8x32_epi32(p8, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

INLINE float amax_n(const float *x, int n) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  __m256 m = _mm256_setzero_ps();
  for (int i = 0; i < n; i += 8)
    m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
  return hmax_ps(m);
}

static void avx2_quantize_q8_0(const float *x, struct block_q8_0 *y, int64_t k) {
  for (int64_t ib = 0; ib < k / QK8_0; ib++) {
    const float *xb = x + ib * QK8_0; /* [32] */
    float amax = amax_n(xb, QK8_0);
    float d = amax / 127.0f;
    float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    y[ib].d = _cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT);
    _mm256_storeu_si256((__m256i *)y[ib].qs, quantize_32(xb, id));
  }
}

static void avx2_quantize_q8_0x(const float *x, struct cpu_block_q8_0x *y, int64_t k) {
  for (int64_t ib = 0; ib < k / QK8_0; ib++) {
    const float *xb = x + ib * QK8_0; /* [32] */
    float amax = amax_n(xb, QK8_0);
    float d = amax / 127.0f;
    float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    y[ib].d = _cvtsh_ss(_cvtss_sh(d, _MM_FROUND_TO_NEAREST_INT));
    _mm256_storeu_si256((__m256i *)y[ib].qs, quantize_32(xb, id));
  }
}

static void avx2_quantize_q8_k(const float *x, struct block_q8_k *y, int64_t k) {
  for (int64_t ib = 0; ib < k / QK_K; ib++) {
    const float *xb = x + ib * QK_K; /* [256] */
    float amax = amax_n(xb, QK_K);
    float id = amax != 0.0f ? 127.0f / amax : 0.0f;
    y[ib].d = amax != 0.0f ? 1.0f / id : 0.0f;
    for (int i = 0; i < QK_K / 32; i++) {
      __m256i q = quantize_32(xb + 32 * i, id);
      _mm256_storeu_si256((__m256i *)(y[ib].qs + 32 * i), q);
      /* bsums of the two 16-groups: widen to int16 and sum pairs, then across. */
      __m256i w16 = _mm256_cvtepi8_epi16(_mm256_castsi256_si128(q));
      __m256i w16b = _mm256_cvtepi8_epi16(_mm256_extracti128_si256(q, 1));
      __m256i s32a = _mm256_madd_epi16(w16, _mm256_set1_epi16(1));
      __m256i s32b = _mm256_madd_epi16(w16b, _mm256_set1_epi16(1));
      __m128i a = _mm_add_epi32(_mm256_castsi256_si128(s32a), _mm256_extracti128_si256(s32a, 1));
      __m128i b = _mm_add_epi32(_mm256_castsi256_si128(s32b), _mm256_extracti128_si256(s32b, 1));
      y[ib].bsums[2 * i] = (int16_t)hsum_epi32_128(a);
      y[ib].bsums[2 * i + 1] = (int16_t)hsum_epi32_128(b);
    }
  }
}

/* ---- attention helpers ------------------------------------------------------------------------
 */

static float avx2_vec_dot_f32(const float *a, const float *b, int64_t n) {
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
  }
  float sum = hsum_ps(_mm256_add_ps(acc0, acc1));
  for (; i < n; i++)
    sum += a[i] * b[i];
  return sum;
}

static void avx2_axpy_f32(float a, const float *x, float *y, int64_t n) {
  __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  }
  for (; i < n; i++)
    y[i] += a * x[i];
}

static void avx2_f16_to_f32(const quant_f16 *x, float *y, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(x + i))));
  }
  for (; i < n; i++)
    y[i] = f16(x[i]);
}

/* ---- exp, silu ------------------------------------------------------------------------------ */

/* e^x for x in [-87, 88] (clamped outside: e^-87 ~ 1.6e-38 stands in for anything smaller, which
 * a softmax or a sigmoid cannot tell from 0). e^x = 2^n e^r with n = round(x / ln 2),
 * r = x - n ln 2 (ln 2 split in a part exact in float and a remainder, Cody-Waite), |r| <= 0.35,
 * and e^r by its Taylor series to r^6: truncation error r^7 / 7! < 1.3e-7, about 1 ulp. */
INLINE __m256 exp_ps(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
  __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504089f)),
                             _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.0f / 720.0f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
  __m256i e =
      _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

static void avx2_silu_mul(float *o, const float *g, const float *u, int64_t n) {
  int64_t i = 0;
  const __m256 one = _mm256_set1_ps(1.0f);
  for (; i + 8 <= n; i += 8) {
    __m256 x = _mm256_loadu_ps(g + i);
    __m256 e = exp_ps(_mm256_sub_ps(_mm256_setzero_ps(), x));
    __m256 s = _mm256_div_ps(x, _mm256_add_ps(one, e));
    _mm256_storeu_ps(o + i, _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
  }
  for (; i < n; i++)
    o[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static float avx2_exp_sub_sum(float *x, int64_t n, float max) {
  __m256 vmax = _mm256_set1_ps(max), sum = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 e = exp_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmax));
    _mm256_storeu_ps(x + i, e);
    sum = _mm256_add_ps(sum, e);
  }
  float total = hsum_ps(sum);
  for (; i < n; i++) {
    x[i] = expf(x[i] - max);
    total += x[i];
  }
  return total;
}

/* ---- attention blocks ----------------------------------------------------------------------- */

static void avx2_attn_scores(const float *q, size_t q_stride, int64_t nr, const float *k,
                             size_t kv_stride, int64_t nj, int64_t hd, float scale, float *scores,
                             size_t s_stride) {
  int64_t hd8 = hd & ~(int64_t)7;
  for (int64_t r = 0; r < nr; r++) {
    const float *qr = q + r * q_stride;
    int64_t j = 0;
    /* four keys at once: q is loaded once per 4 dot products, and the four sums are reduced
     * together (hadd tree: [s0 s1 s2 s3] in one vector) */
    for (; j + 4 <= nj; j += 4) {
      const float *k0 = k + j * kv_stride;
      __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
      for (int64_t i = 0; i < hd8; i += 8) {
        __m256 qv = _mm256_loadu_ps(qr + i);
        a0 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + i), a0);
        a1 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + kv_stride + i), a1);
        a2 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + 2 * kv_stride + i), a2);
        a3 = _mm256_fmadd_ps(qv, _mm256_loadu_ps(k0 + 3 * kv_stride + i), a3);
      }
      __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
      __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
      float sv[4];
      _mm_storeu_ps(sv, s4);
      for (int c = 0; c < 4; c++) {
        float s = sv[c];
        for (int64_t i = hd8; i < hd; i++)
          s += qr[i] * k0[c * kv_stride + i];
        scores[r * s_stride + j + c] = s * scale;
      }
    }
    for (; j < nj; j++) {
      scores[r * s_stride + j] = avx2_vec_dot_f32(qr, k + j * kv_stride, hd) * scale;
    }
  }
}

static void avx2_attn_accumulate(const float *p, size_t p_stride, int64_t nr, const float *v,
                                 size_t kv_stride, int64_t nj, int64_t hd, float *o,
                                 size_t o_stride) {
  for (int64_t r = 0; r < nr; r++) {
    const float *pr = p + r * p_stride;
    float *orow = o + r * o_stride;
    int64_t c = 0;
    /* 64 output columns stay in 8 registers while all nj values stream past */
    for (; c + 64 <= hd; c += 64) {
      __m256 acc[8];
      for (int i = 0; i < 8; i++)
        acc[i] = _mm256_loadu_ps(orow + c + 8 * i);
      for (int64_t j = 0; j < nj; j++) {
        __m256 pj = _mm256_set1_ps(pr[j]);
        const float *vj = v + j * kv_stride + c;
        for (int i = 0; i < 8; i++)
          acc[i] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(vj + 8 * i), acc[i]);
      }
      for (int i = 0; i < 8; i++)
        _mm256_storeu_ps(orow + c + 8 * i, acc[i]);
    }
    for (; c + 8 <= hd; c += 8) {
      __m256 acc = _mm256_loadu_ps(orow + c);
      for (int64_t j = 0; j < nj; j++)
        acc = _mm256_fmadd_ps(_mm256_set1_ps(pr[j]), _mm256_loadu_ps(v + j * kv_stride + c), acc);
      _mm256_storeu_ps(orow + c, acc);
    }
    for (; c < hd; c++) {
      float acc = orow[c];
      for (int64_t j = 0; j < nj; j++)
        acc += pr[j] * v[j * kv_stride + c];
      orow[c] = acc;
    }
  }
}

#endif
