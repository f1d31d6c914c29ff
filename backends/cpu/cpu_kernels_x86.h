/* x86 SIMD kernel bodies shared by the AVX2 table (cpu_kernels_avx2.c) and the AVX512-VNNI
 * table (cpu_kernels_vnni_avx2.c): each including file defines two hooks and gets its own static
 * copies compiled for its instruction set:
 *   X86_MADD_ACC(acc, p16, s16)  acc + pairwise int16 products of p16 and s16, as 8 int32
 *   X86_DOT_U8_I8(u, s)          sums of 4 adjacent u8 * s8 products, as 8 int32
 * and sets X86_KQUANT_DPBUSD to 1 where the k-quant kernels may use vpdpbusd/vpdpwssd directly
 * (fewer multiplies per weight; the same integer results).
 * Integer sums are exact, so they may be formed in any grouping; every float operation follows
 * the order of the llama.cpp kernel the CPU backend stands in for (cpu_ref.h), and gives the same
 * bits as the scalar table (cpu_kernels_scalar.c). Each kernel is written once for nr tokens and
 * instantiated for nr = 1..4 so that a decoded weight block is reused from registers across
 * the tokens of a tile; Q4_K also has 8-row and repacked 8-row forms. Include only from files
 * compiled with AVX2/FMA/F16C. */
#ifndef AUGURY_BACKENDS_CPU_CPU_KERNELS_X86_H
#define AUGURY_BACKENDS_CPU_CPU_KERNELS_X86_H

#include <immintrin.h>
#include <math.h>

#include "backends/cpu/cpu_internal.h"
#include "backends/cpu/cpu_ref.h"

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

/* The same for kernels with two summation orders (llama.cpp's one-token and batched kernels):
 * order is passed through as a constant. */
#define DEFINE_DOT_ORDER(name, impl, order)                                                        \
  static void name(int64_t k, const void *w, const void *act, size_t st, int nr, float *out,       \
                   size_t os) {                                                                    \
    switch (nr) {                                                                                  \
    case 4: impl(k, w, act, st, 4, out, os, order); break;                                         \
    case 3: impl(k, w, act, st, 3, out, os, order); break;                                         \
    case 2: impl(k, w, act, st, 2, out, os, order); break;                                         \
    default: impl(k, w, act, st, 1, out, os, order); break;                                        \
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
    if ((ib & 1) == 0) _mm_prefetch((const char *)(w + ib) + 2048, _MM_HINT_T0); /* short rows */
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
    if ((ib & 1) == 0) _mm_prefetch((const char *)(w + ib) + 2048, _MM_HINT_T0); /* short rows */
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
    if ((ib & 1) == 0) _mm_prefetch((const char *)(w + ib) + 2048, _MM_HINT_T0); /* short rows */
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

/* The integer part of one Q4_K block b against nr tokens' Q8_K block ib: for each 64-group c
 * and token r, 8 int32 lanes whose sum is sc[2c] * (q.x over sub-block 2c) + sc[2c + 1] * (...
 * 2c + 1), written to parts[c * cs + r * rs] (per64), or the four groups added together into
 * parts[r * rs]. Returns the block's mins (int16 mn0..mn7). */
INLINE __m128i q4_k_block_parts(const struct block_q4_k *b, const void *act, size_t st, int64_t ib,
                                const int nr, const int per64, __m256i *parts, int cs, int rs) {
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  __m256i sm = q4_k_scales_mins(b->scales);
  __m256i sc = _mm256_permute2x128_si256(sm, sm, 0x00); /* scales in both lanes */
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
     * 64 weights instead of 4. packs interleaves per lane: [lo0..3 hi0..3 | lo4..7 hi4..7], so
     * int16 lanes 0-3 of each 128-bit lane take scale 2c and lanes 4-7 scale 2c + 1. */
    short pl = (short)(0x0100 * (4 * c + 1) + 4 * c),
          ph = (short)(0x0100 * (4 * c + 3) + 4 * c + 2);
    __m128i half = _mm_set_epi16(ph, ph, ph, ph, pl, pl, pl, pl);
    __m256i s_pair = _mm256_shuffle_epi8(sc, _mm256_set_m128i(half, half));
    for (int r = 0; r < nr; r++) {
      const int8_t *a = ACT_ROW(struct block_q8_k, act, st, r)[ib].qs + 64 * c;
      __m256i d_lo =
          _mm256_dpbusd_epi32(_mm256_setzero_si256(), lo, _mm256_loadu_si256((const __m256i *)a));
      __m256i d_hi = _mm256_dpbusd_epi32(_mm256_setzero_si256(), hi,
                                         _mm256_loadu_si256((const __m256i *)(a + 32)));
      isum[r] = _mm256_dpwssd_epi32(isum[r], _mm256_packs_epi32(d_lo, d_hi), s_pair);
    }
#else
    /* int16 lane j of the scales into every lane: bytes (2j, 2j + 1) repeated */
    __m256i s_lo =
        _mm256_shuffle_epi8(sc, _mm256_set1_epi16((short)(0x0100 * (4 * c + 1) + 4 * c)));
    __m256i s_hi =
        _mm256_shuffle_epi8(sc, _mm256_set1_epi16((short)(0x0100 * (4 * c + 3) + 4 * c + 2)));
    for (int r = 0; r < nr; r++) {
      const int8_t *a = ACT_ROW(struct block_q8_k, act, st, r)[ib].qs + 64 * c;
      __m256i p_lo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)a));
      __m256i p_hi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(a + 32)));
      isum[r] = X86_MADD_ACC(X86_MADD_ACC(isum[r], p_lo, s_lo), p_hi, s_hi);
    }
#endif
    if (per64) {
      for (int r = 0; r < nr; r++) {
        parts[c * cs + r * rs] = isum[r];
        isum[r] = _mm256_setzero_si256();
      }
    }
  }
  if (!per64) {
    for (int r = 0; r < nr; r++)
      parts[r * rs] = isum[r];
  }
  return _mm256_extracti128_si256(sm, 1);
}

/* per token: the bsums added pairwise, one int16 per 32 activations (what the mins pair with) */
INLINE __m128i q8_k_pair_sums(const struct block_q8_k *y) {
  return _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)y->bsums),
                        _mm_loadu_si128((const __m128i *)(y->bsums + 8)));
}

INLINE int hsum_epi32_256(__m256i v) {
  return hsum_epi32_128(_mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1)));
}

/* per64 = 0: llama.cpp's Q4_K gemv order (one token, or the last n % 4 of a batch): one scalar
 * FMA per 256-block for the scales and one for the mins. per64 = 1: its gemm order (whole groups
 * of 4 tokens): the same, per 64 elements. Both subtract the two sums at the end. */
INLINE void q4_k_impl_order(int64_t k, const void *vw, const void *act, size_t st, const int nr,
                            float *out, size_t os, const int per64) {
  const struct block_q4_k *w = vw; /* [k / 256] */
  float acc[4], acc_min[4];
  for (int r = 0; r < nr; r++)
    acc[r] = acc_min[r] = 0.0f;
  for (int64_t ib = 0; ib < k / QK_K; ib++) {
    __m256i parts[4][4]; /* [c][token] */
    __m128i mins = q4_k_block_parts(w + ib, act, st, ib, nr, per64, &parts[0][0], 4, 1);
    float d = f16(w[ib].d), dmin = f16(w[ib].dmin);
    for (int r = 0; r < nr; r++) {
      const struct block_q8_k *y = ACT_ROW(struct block_q8_k, act, st, r) + ib;
      int mins_c[4]; /* mn[2c] * pair[2c] + mn[2c + 1] * pair[2c + 1] */
      _mm_storeu_si128((__m128i *)mins_c, _mm_madd_epi16(mins, q8_k_pair_sums(y)));
      if (per64) {
        for (int c = 0; c < 4; c++) {
          acc[r] = fmaf((float)hsum_epi32_256(parts[c][r]), d * y->d, acc[r]);
          acc_min[r] = fmaf((float)mins_c[c], dmin * y->d, acc_min[r]);
        }
      } else {
        int m = mins_c[0] + mins_c[1] + mins_c[2] + mins_c[3];
        acc[r] = fmaf((float)hsum_epi32_256(parts[0][r]), d * y->d, acc[r]);
        acc_min[r] = fmaf((float)m, dmin * y->d, acc_min[r]);
      }
    }
  }
  for (int r = 0; r < nr; r++)
    out[(size_t)r * os] = acc[r] - acc_min[r];
}

/* Lane i of the result = the sum of the 8 int32 lanes of a[i] (exact). */
INLINE __m256i reduce8_epi32(const __m256i a[8]) {
  __m256i t0 = _mm256_hadd_epi32(a[0], a[1]), t1 = _mm256_hadd_epi32(a[2], a[3]);
  __m256i t2 = _mm256_hadd_epi32(a[4], a[5]), t3 = _mm256_hadd_epi32(a[6], a[7]);
  __m256i u0 = _mm256_hadd_epi32(t0, t1), u1 = _mm256_hadd_epi32(t2, t3);
  return _mm256_add_epi32(_mm256_permute2x128_si256(u0, u1, 0x20),
                          _mm256_permute2x128_si256(u0, u1, 0x31));
}

/* q4_k_impl_order for 8 weight rows at once: the integer sums of each row are reduced 8 rows at
 * a time into one vector (lane = row), so the per-block (or per-64) scalar FMAs of llama.cpp's
 * order become one vector FMA per block (or per 64) for 8 rows. Same bits as q4_k_impl_order. */
INLINE void q4_k8_impl_order(int64_t k, const void *vw, size_t ws, const void *act, size_t st,
                             const int nr, float *out, size_t os, const int per64) {
  __m256 acc[4], acc_min[4];
  for (int r = 0; r < nr; r++)
    acc[r] = acc_min[r] = _mm256_setzero_ps();
  __m256i part[4][4][8]; /* [c][token][row] (per64) or [0][token][row] */
  __m128i mrow[4][8];    /* [token][row]: the 4 per-64 min sums */
  for (int64_t ib = 0; ib < k / QK_K; ib++) {
    uint16_t dh[8], mh[8];
    __m128i pair[4];
    for (int r = 0; r < nr; r++)
      pair[r] = q8_k_pair_sums(ACT_ROW(struct block_q8_k, act, st, r) + ib);
    /* The 8 rows are one contiguous region read 8 blocks apart, which the hardware prefetcher
     * follows poorly: prefetch the next 8 rows (the next region), a share per block. */
    {
      size_t region = 8 * ws, share = (region / (size_t)(k / QK_K) + 63) & ~(size_t)63;
      const char *next = (const char *)vw + region + (size_t)ib * share;
      for (size_t off = 0; off < share; off += 64)
        _mm_prefetch(next + off, _MM_HINT_T0);
    }
    for (int i = 0; i < 8; i++) {
      const struct block_q4_k *b = (const struct block_q4_k *)((const char *)vw + i * ws) + ib;
      dh[i] = b->d;
      mh[i] = b->dmin;
      __m128i mins = q4_k_block_parts(b, act, st, ib, nr, per64, &part[0][0][i], 32, 8);
      for (int r = 0; r < nr; r++)
        mrow[r][i] = _mm_madd_epi16(mins, pair[r]);
    }
    __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)dh));
    __m256 dm = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)mh));
    for (int r = 0; r < nr; r++) {
      const struct block_q8_k *y = ACT_ROW(struct block_q8_k, act, st, r) + ib;
      __m256 da = _mm256_set1_ps(y->d);
      __m256 dd = _mm256_mul_ps(dw, da), ddm = _mm256_mul_ps(dm, da);
      /* the per-64 min sums of the 8 rows, transposed to one vector per 64-group */
      __m256i q0 = _mm256_set_m128i(mrow[r][4], mrow[r][0]);
      __m256i q1 = _mm256_set_m128i(mrow[r][5], mrow[r][1]);
      __m256i q2 = _mm256_set_m128i(mrow[r][6], mrow[r][2]);
      __m256i q3 = _mm256_set_m128i(mrow[r][7], mrow[r][3]);
      __m256i a01 = _mm256_unpacklo_epi32(q0, q1), b01 = _mm256_unpackhi_epi32(q0, q1);
      __m256i a23 = _mm256_unpacklo_epi32(q2, q3), b23 = _mm256_unpackhi_epi32(q2, q3);
      __m256i mc[4] = {_mm256_unpacklo_epi64(a01, a23), _mm256_unpackhi_epi64(a01, a23),
                       _mm256_unpacklo_epi64(b01, b23), _mm256_unpackhi_epi64(b01, b23)};
      if (per64) {
        for (int c = 0; c < 4; c++) {
          acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(reduce8_epi32(part[c][r])), dd, acc[r]);
          acc_min[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mc[c]), ddm, acc_min[r]);
        }
      } else {
        __m256i m =
            _mm256_add_epi32(_mm256_add_epi32(mc[0], mc[1]), _mm256_add_epi32(mc[2], mc[3]));
        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(reduce8_epi32(part[0][r])), dd, acc[r]);
        acc_min[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(m), ddm, acc_min[r]);
      }
    }
  }
  for (int r = 0; r < nr; r++)
    _mm256_storeu_ps(out + (size_t)r * os, _mm256_sub_ps(acc[r], acc_min[r]));
}

/* v[i] = 8 dwords of row i  ->  v[g] = dword g of rows 0..7 */
INLINE void transpose8_epi32(__m256i v[8]) {
  __m256i t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    t[i] = _mm256_unpacklo_epi32(v[i], v[i + 1]);
    t[i + 1] = _mm256_unpackhi_epi32(v[i], v[i + 1]);
  }
  for (int h = 0; h < 8; h += 4) {
    u[h] = _mm256_unpacklo_epi64(t[h], t[h + 2]);
    u[h + 1] = _mm256_unpackhi_epi64(t[h], t[h + 2]);
    u[h + 2] = _mm256_unpacklo_epi64(t[h + 1], t[h + 3]);
    u[h + 3] = _mm256_unpackhi_epi64(t[h + 1], t[h + 3]);
  }
  for (int g = 0; g < 4; g++) {
    v[g] = _mm256_permute2x128_si256(u[g], u[g + 4], 0x20);
    v[g + 4] = _mm256_permute2x128_si256(u[g], u[g + 4], 0x31);
  }
}

static void avx2_pack8_q4_k(const void *w, size_t ws, int64_t k, void *dst) {
  const __m256i m4 = _mm256_set1_epi8(0x0f);
  struct cpu_q4_k_pack8 *p = dst;
  for (int64_t ib = 0; ib < k / QK_K; ib++, p++) {
    for (int c = 0; c < 4; c++) {
      __m256i lo[8], hi[8];
      for (int i = 0; i < 8; i++) {
        const struct block_q4_k *b = (const struct block_q4_k *)((const char *)w + i * ws) + ib;
        __m256i q = _mm256_loadu_si256((const __m256i *)(b->qs + 32 * c));
        lo[i] = _mm256_and_si256(q, m4);                       /* elements 64c + 0..31 */
        hi[i] = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4); /* 64c + 32..63 */
      }
      transpose8_epi32(lo);
      transpose8_epi32(hi);
      for (int g = 0; g < 8; g++) {
        _mm256_storeu_si256((__m256i *)p->q[16 * c + g], lo[g]);
        _mm256_storeu_si256((__m256i *)p->q[16 * c + 8 + g], hi[g]);
      }
    }
    for (int i = 0; i < 8; i++) {
      const struct block_q4_k *b = (const struct block_q4_k *)((const char *)w + i * ws) + ib;
      int16_t sm[16]; /* sc0..7, mn0..7 */
      _mm256_storeu_si256((__m256i *)sm, q4_k_scales_mins(b->scales));
      for (int j = 0; j < 8; j++)
        p->sc[j][i] = sm[j];
      for (int c = 0; c < 4; c++) {
        p->mn[c][2 * i] = sm[8 + 2 * c];
        p->mn[c][2 * i + 1] = sm[8 + 2 * c + 1];
      }
      p->d[i] = f16(b->d);
      p->dmin[i] = f16(b->dmin);
    }
  }
}

/* dot8 on packed rows: per 4 elements one u8 x s8 dot for all 8 rows (the activation's 4 bytes
 * broadcast), the sub-block scale applied per lane, and llama.cpp's per-block or per-64 FMAs
 * lane-wise. Same bits as q4_k8_impl_order. */
INLINE void q4_k_packed_impl(int64_t k, const void *packed, const void *act, size_t st,
                             const int nr, float *out, size_t os, const int per64) {
  const struct cpu_q4_k_pack8 *p = packed;
  __m256 acc[4], acc_min[4];
  for (int r = 0; r < nr; r++)
    acc[r] = acc_min[r] = _mm256_setzero_ps();
  for (int64_t ib = 0; ib < k / QK_K; ib++, p++) {
    __m256 dw = _mm256_loadu_ps(p->d), dm = _mm256_loadu_ps(p->dmin);
    __m256 dd[4], ddm[4];
    int16_t pair[4][8];
    __m256i total[4], mtotal[4];
    for (int r = 0; r < nr; r++) {
      const struct block_q8_k *y = ACT_ROW(struct block_q8_k, act, st, r) + ib;
      __m256 da = _mm256_set1_ps(y->d);
      dd[r] = _mm256_mul_ps(dw, da);
      ddm[r] = _mm256_mul_ps(dm, da);
      _mm_storeu_si128((__m128i *)pair[r], q8_k_pair_sums(y));
      total[r] = mtotal[r] = _mm256_setzero_si256();
    }
    for (int c = 0; c < 4; c++) {
      __m256i isum[4];
      for (int r = 0; r < nr; r++)
        isum[r] = _mm256_setzero_si256();
      for (int h = 0; h < 2; h++) {
        __m256i sub[4];
        for (int r = 0; r < nr; r++)
          sub[r] = _mm256_setzero_si256();
        for (int g = 0; g < 8; g++) {
          __m256i wq = _mm256_loadu_si256((const __m256i *)p->q[16 * c + 8 * h + g]);
          for (int r = 0; r < nr; r++) {
            int32_t a4;
            memcpy(&a4, ACT_ROW(struct block_q8_k, act, st, r)[ib].qs + 64 * c + 32 * h + 4 * g,
                   sizeof a4);
#if X86_KQUANT_DPBUSD
            sub[r] = _mm256_dpbusd_epi32(sub[r], wq, _mm256_set1_epi32(a4));
#else
            sub[r] = _mm256_add_epi32(sub[r], X86_DOT_U8_I8(wq, _mm256_set1_epi32(a4)));
#endif
          }
        }
        __m256i sc = _mm256_loadu_si256((const __m256i *)p->sc[2 * c + h]);
        for (int r = 0; r < nr; r++)
          isum[r] = _mm256_add_epi32(isum[r], _mm256_mullo_epi32(sub[r], sc));
      }
      __m256i mn = _mm256_loadu_si256((const __m256i *)p->mn[c]);
      for (int r = 0; r < nr; r++) {
        /* int16 lanes [pair 2c, pair 2c + 1] repeated, for madd with the mins */
        uint32_t lo16 = (uint16_t)pair[r][2 * c], hi16 = (uint16_t)pair[r][2 * c + 1];
        uint32_t pp = lo16 | hi16 << 16;
        __m256i m = _mm256_madd_epi16(mn, _mm256_set1_epi32((int)pp));
        if (per64) {
          acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r]), dd[r], acc[r]);
          acc_min[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(m), ddm[r], acc_min[r]);
        } else {
          total[r] = _mm256_add_epi32(total[r], isum[r]);
          mtotal[r] = _mm256_add_epi32(mtotal[r], m);
        }
      }
    }
    if (!per64) {
      for (int r = 0; r < nr; r++) {
        acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(total[r]), dd[r], acc[r]);
        acc_min[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(mtotal[r]), ddm[r], acc_min[r]);
      }
    }
  }
  for (int r = 0; r < nr; r++)
    _mm256_storeu_ps(out + (size_t)r * os, _mm256_sub_ps(acc[r], acc_min[r]));
}

static void avx2_dot8_packed_q4_k(int64_t k, const void *packed, const void *act, size_t st, int nr,
                                  float *out, size_t os, int per64) {
  switch (nr * 2 + (per64 != 0)) {
  case 8: q4_k_packed_impl(k, packed, act, st, 4, out, os, 0); break;
  case 9: q4_k_packed_impl(k, packed, act, st, 4, out, os, 1); break;
  case 6: q4_k_packed_impl(k, packed, act, st, 3, out, os, 0); break;
  case 7: q4_k_packed_impl(k, packed, act, st, 3, out, os, 1); break;
  case 4: q4_k_packed_impl(k, packed, act, st, 2, out, os, 0); break;
  case 5: q4_k_packed_impl(k, packed, act, st, 2, out, os, 1); break;
  case 3: q4_k_packed_impl(k, packed, act, st, 1, out, os, 1); break;
  default: q4_k_packed_impl(k, packed, act, st, 1, out, os, 0); break;
  }
}

#define DEFINE_DOT8(name, impl, per64)                                                             \
  static void name(int64_t k, const void *w, size_t ws, const void *act, size_t st, int nr,        \
                   float *out, size_t os) {                                                        \
    switch (nr) {                                                                                  \
    case 4: impl(k, w, ws, act, st, 4, out, os, per64); break;                                     \
    case 3: impl(k, w, ws, act, st, 3, out, os, per64); break;                                     \
    case 2: impl(k, w, ws, act, st, 2, out, os, per64); break;                                     \
    default: impl(k, w, ws, act, st, 1, out, os, per64); break;                                    \
    }                                                                                              \
  }
DEFINE_DOT8(avx2_dot8_q4_k, q4_k8_impl_order, 0)
DEFINE_DOT8(avx2_dot8_q4_k_gemm, q4_k8_impl_order, 1)

DEFINE_DOT_ORDER(avx2_dot_q4_k, q4_k_impl_order, 0)
DEFINE_DOT_ORDER(avx2_dot_q4_k_gemm, q4_k_impl_order, 1)

/* The 6-bit quants of half n (elements 128n .. 128n + 127) of a Q6_K block, in element order:
 * q[i] holds elements 128n + 32i .. + 31. */
INLINE void q6_k_unpack_half(const struct block_q6_k *b, int n, __m256i q[4]) {
  const __m256i m4 = _mm256_set1_epi8(0x0f), m3 = _mm256_set1_epi8(0x03);
  __m256i qh = _mm256_loadu_si256((const __m256i *)(b->qh + 32 * n));
  __m256i ql0 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * n));
  __m256i ql1 = _mm256_loadu_si256((const __m256i *)(b->ql + 64 * n + 32));
  q[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, m3), 4));
  q[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4),
                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2), m3), 4));
  q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4),
                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 4), m3), 4));
  q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                         _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 6), m3), 4));
}

/* tiled = 0: llama.cpp's vec_dot order (8 lanes, one FMA each per block, then the horizontal
 * sum). tiled = 1: its tiled matmul (batches of 8+ tokens): the block's whole integer sum times
 * the weight scale, then one FMA with the activation scale per block. */
INLINE void q6_k_impl_order(int64_t k, const void *vw, const void *act, size_t st, const int nr,
                            float *out, size_t os, const int tiled) {
  const struct block_q6_k *w = vw; /* [k / 256] */
  __m256 acc[4];
  float sums[4];
  for (int r = 0; r < nr; r++) {
    acc[r] = _mm256_setzero_ps();
    sums[r] = 0.0f;
  }
  /* per-lane byte picks: the low lane takes int16 lane 2i, the high lane int16 lane 2i + 1.
   * The int32 lanes of isum hold the same partial sums as llama.cpp's AVX2 Q6_K kernel (lane L:
   * bytes 4L..4L+3 of each 32-byte chunk), and each lane gets its own FMA per block, so the
   * float result is bit-identical to it. (A dpbusd variant would regroup the lanes.) */
  __m256i pick[4];
  for (int i = 0; i < 4; i++) {
    short lo = (short)(0x0100 * (4 * i + 1) + 4 * i),
          hi = (short)(0x0100 * (4 * i + 3) + 4 * i + 2);
    pick[i] = _mm256_set_m128i(_mm_set1_epi16(hi), _mm_set1_epi16(lo));
  }
  for (int64_t ib = 0; ib < k / QK_K; ib++) {
    const struct block_q6_k *b = w + ib;
    /* rows are short (6 blocks in the output head): keep ~2 KB of the stream in flight */
    _mm_prefetch((const char *)b + 2048, _MM_HINT_T0);
    _mm_prefetch((const char *)b + 2048 + 64, _MM_HINT_T0);
    _mm_prefetch((const char *)b + 2048 + 128, _MM_HINT_T0);
    _mm_prefetch((const char *)b + 2048 + 192, _MM_HINT_T0);
    __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)b->scales));
    __m256i isum[4];
    for (int r = 0; r < nr; r++)
      isum[r] = _mm256_setzero_si256();
    /* scales of groups 8n .. 8n + 7 in both lanes, for n = 0, 1 */
    const __m256i sc_half[2] = {_mm256_permute2x128_si256(sc16, sc16, 0x00),
                                _mm256_permute2x128_si256(sc16, sc16, 0x11)};
    for (int n = 0; n < 2; n++) {
      __m256i sc_n = sc_half[n];
      __m256i q[4];
      q6_k_unpack_half(b, n, q);
      for (int i = 0; i < 4; i++) {
        /* q[i] covers groups 8n + 2i (low 16 bytes) and 8n + 2i + 1 (high 16 bytes). */
        __m256i sc = _mm256_shuffle_epi8(sc_n, pick[i]);
        for (int r = 0; r < nr; r++) {
          const int8_t *a = ACT_ROW(struct block_q8_k, act, st, r)[ib].qs + 128 * n + 32 * i;
          __m256i p = _mm256_maddubs_epi16(q[i], _mm256_loadu_si256((const __m256i *)a));
          isum[r] = X86_MADD_ACC(isum[r], p, sc);
        }
      }
    }
    /* sum(scale * (q - 32) * x) = sum(scale * q * x) - 32 * sum(scale * bsum) */
    float d = f16(b->d);
    for (int r = 0; r < nr; r++) {
      const struct block_q8_k *y = ACT_ROW(struct block_q8_k, act, st, r) + ib;
      __m256i corr = _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)y->bsums));
      __m256i total = _mm256_sub_epi32(isum[r], _mm256_slli_epi32(corr, 5));
      if (tiled) {
        __m128i t4 =
            _mm_add_epi32(_mm256_castsi256_si128(total), _mm256_extracti128_si256(total, 1));
        sums[r] = fmaf((float)hsum_epi32_128(t4) * d, y->d, sums[r]); /* GCC contracts ggml's add */
      } else {
        acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d * y->d), _mm256_cvtepi32_ps(total), acc[r]);
      }
    }
  }
  for (int r = 0; r < nr; r++)
    out[(size_t)r * os] = tiled ? sums[r] : hsum_ps(acc[r]);
}

DEFINE_DOT_ORDER(avx2_dot_q6_k, q6_k_impl_order, 0)
DEFINE_DOT_ORDER(avx2_dot_q6_k_tiled, q6_k_impl_order, 1)

/* ---- IQ3_XXS / IQ3_S weights x Q8_K activations ---------------------------------------------- */

/* Both types hold, per 32 elements, eight indices into a grid of 4 unsigned values (engine/
 * quant_grids.c), 32 sign bits and a 4-bit scale s (ggml-common.h). Each 32 is decoded to one
 * register of grid bytes and one of +-1 signs; the signs move onto the activations, so that
 * maddubs sees the unsigned grid bytes (at most 62 * 127 * 2 per int16: no saturation) and
 * X86_MADD_ACC multiplies by the odd scale 2s + 1 into int32 lane l (elements 4l..4l+3 of each
 * 32), as llama.cpp's AVX2 kernels do; one FMA per lane and block, then the horizontal sum, so
 * the float result is the scalar table's (cpu_kernels_scalar.c) bit for bit. */

/* 32 sign bits (bit j set: element j negative) -> 32 bytes of -1 / +1 for _mm256_sign_epi8:
 * byte j takes byte j / 8 of the bits, then tests bit j % 8. */
INLINE __m256i iq3_signs(uint32_t bits) {
  const __m256i spread = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                           0x0101010101010101, 0x0000000000000000);
  const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
  __m256i b = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits), spread);
  __m256i neg = _mm256_cmpeq_epi8(_mm256_and_si256(b, bit), bit);
  return _mm256_or_si256(neg, _mm256_set1_epi8(1));
}

/* IQ3_XXS's four 7-bit sign groups (bits 7l..7l+6 of aux) as 4 sign bytes: bit 7 of each makes
 * its number of set bits even (ksigns_iq2xs), the parity folded in all 4 bytes at once. */
INLINE uint32_t iq3_xxs_sign_bits(uint32_t aux) {
  uint32_t x = (aux & 0x7f) | ((aux >> 7) & 0x7f) << 8 | ((aux >> 14) & 0x7f) << 16 |
               ((aux >> 21) & 0x7f) << 24;
  uint32_t p = x ^ (x >> 4);
  p ^= p >> 2;
  p ^= p >> 1;
  return x | (p & 0x01010101u) << 7;
}

/* The grid values of 8 indices, entry t in int32 lane t (elements 4t..4t+3). */
INLINE __m256i iq3_grid8(const uint32_t *grid, const int idx[8]) {
  return _mm256_set_epi32((int)grid[idx[7]], (int)grid[idx[6]], (int)grid[idx[5]],
                          (int)grid[idx[4]], (int)grid[idx[3]], (int)grid[idx[2]],
                          (int)grid[idx[1]], (int)grid[idx[0]]);
}

/* One 32 of grid bytes g with signs s and scale ls (int16 lanes) into the tokens' int32 sums. */
INLINE void iq3_group_acc(__m256i g, __m256i s, __m256i ls, const void *act, size_t st,
                          const int nr, int64_t ib, int j, __m256i isum[4]) {
  for (int r = 0; r < nr; r++) {
    const int8_t *a = ACT_ROW(struct block_q8_k, act, st, r)[ib].qs + 32 * j; /* [32] */
    __m256i xs = _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)a), s);
    isum[r] = X86_MADD_ACC(isum[r], _mm256_maddubs_epi16(g, xs), ls);
  }
}

/* acc[r] += d_w * d_x * isum[r] per lane (llama.cpp's float order). */
INLINE void iq3_block_fma(float dw, const __m256i isum[4], const void *act, size_t st, const int nr,
                          int64_t ib, __m256 acc[4]) {
  for (int r = 0; r < nr; r++) {
    const struct block_q8_k *y = ACT_ROW(struct block_q8_k, act, st, r) + ib;
    acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(dw * y->d), _mm256_cvtepi32_ps(isum[r]), acc[r]);
  }
}

/* IQ3_XXS: per 32, 8 grid bytes in qs, then (after all QK_K / 4 of them) a u32 of four 7-bit sign
 * groups and the scale in bits 28..31; value d * (2s + 1) / 4 * grid * sign, the 1/4 applied
 * once at the end. */
INLINE void iq3_xxs_impl(int64_t k, const void *vw, const void *act, size_t st, const int nr,
                         float *out, size_t os) {
  const struct block_iq3_xxs *w = vw; /* [k / 256] */
  __m256 acc[4];
  for (int r = 0; r < nr; r++)
    acc[r] = _mm256_setzero_ps();
  for (int64_t ib = 0; ib < k / QK_K; ib++) {
    const uint8_t *q = w[ib].qs, *scales_signs = w[ib].qs + QK_K / 4;
    __m256i isum[4];
    for (int r = 0; r < nr; r++)
      isum[r] = _mm256_setzero_si256();
    for (int j = 0; j < QK_K / 32; j++, q += 8) {
      uint32_t aux;
      memcpy(&aux, scales_signs + 4 * j, sizeof aux);
      const int idx[8] = {q[0], q[1], q[2], q[3], q[4], q[5], q[6], q[7]};
      __m256i g = iq3_grid8(quant_iq3xxs_grid, idx);
      __m256i s = iq3_signs(iq3_xxs_sign_bits(aux));
      __m256i ls = _mm256_set1_epi16((short)(2 * (aux >> 28) + 1));
      iq3_group_acc(g, s, ls, act, st, nr, ib, j, isum);
    }
    iq3_block_fma(f16(w[ib].d), isum, act, st, nr, ib, acc);
  }
  for (int r = 0; r < nr; r++)
    out[(size_t)r * os] = 0.25f * hsum_ps(acc[r]);
}
DEFINE_DOT(avx2_dot_iq3_xxs, iq3_xxs_impl)

/* IQ3_S: per 32, 8 grid bytes in qs with a ninth index bit each in qh[j] (bit t for index t),
 * 4 explicit sign bytes, and a 4-bit scale (low nibble of scales[j / 2] for even j); value
 * d * (2s + 1) * grid * sign. */
INLINE void iq3_s_impl(int64_t k, const void *vw, const void *act, size_t st, const int nr,
                       float *out, size_t os) {
  const struct block_iq3_s *w = vw; /* [k / 256] */
  __m256 acc[4];
  for (int r = 0; r < nr; r++)
    acc[r] = _mm256_setzero_ps();
  for (int64_t ib = 0; ib < k / QK_K; ib++) {
    const struct block_iq3_s *b = w + ib;
    __m256i isum[4];
    for (int r = 0; r < nr; r++)
      isum[r] = _mm256_setzero_si256();
    for (int j = 0; j < QK_K / 32; j++) {
      const uint8_t *q = b->qs + 8 * j; /* [8] */
      int h = b->qh[j];
      int idx[8];
      for (int t = 0; t < 8; t++)
        idx[t] = q[t] | ((h >> t) & 1) << 8;
      uint32_t sign_bits;
      memcpy(&sign_bits, b->signs + 4 * j, sizeof sign_bits);
      __m256i g = iq3_grid8(quant_iq3s_grid, idx);
      __m256i s = iq3_signs(sign_bits);
      __m256i ls = _mm256_set1_epi16((short)(2 * ((b->scales[j / 2] >> (4 * (j % 2))) & 0x0f) + 1));
      iq3_group_acc(g, s, ls, act, st, nr, ib, j, isum);
    }
    iq3_block_fma(f16(b->d), isum, act, st, nr, ib, acc);
  }
  for (int r = 0; r < nr; r++)
    out[(size_t)r * os] = hsum_ps(acc[r]);
}
DEFINE_DOT(avx2_dot_iq3_s, iq3_s_impl)

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

static void avx2_round_f16(float *x, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT);
    _mm256_storeu_ps(x + i, _mm256_cvtph_ps(h));
  }
  for (; i < n; i++)
    x[i] = f16(_cvtss_sh(x[i], _MM_FROUND_TO_NEAREST_INT));
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

/* cpu_ggml_expf (cpu_ref.h) 8 lanes at a time, bit for bit: the same FMAs, and 2^n applied by
 * building the float 2^n when every n is a normal exponent (scalef's single rounding is then an
 * exact multiply); any other lane takes the scalar path. */
INLINE __m256 ggml_expf_ps(__m256 x) {
  const __m256 r = _mm256_set1_ps(0x1.8p23f);
  __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), r);
  __m256 n = _mm256_sub_ps(z, r);
  __m256 b = _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.7f7d1cp-20f),
                              _mm256_fnmadd_ps(n, _mm256_set1_ps(0x1.62e4p-1f), x));
  __m256 u = _mm256_mul_ps(b, b);
  __m256 j = _mm256_fmadd_ps(
      _mm256_fmadd_ps(
          _mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
          _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
      u, _mm256_fmadd_ps(_mm256_set1_ps(0x1.ffffecp-1f), b, _mm256_set1_ps(1.0f)));
  __m256 normal = _mm256_and_ps(_mm256_cmp_ps(n, _mm256_set1_ps(-126.0f), _CMP_GE_OQ),
                                _mm256_cmp_ps(n, _mm256_set1_ps(127.0f), _CMP_LE_OQ));
  if (_mm256_movemask_ps(normal) == 0xff) {
    __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(j, _mm256_castsi256_ps(e));
  }
  float xs[8], out[8];
  _mm256_storeu_ps(xs, x);
  for (int i = 0; i < 8; i++)
    out[i] = cpu_ggml_expf(xs[i]);
  return _mm256_loadu_ps(out);
}

static void avx2_silu_mul(float *o, const float *g, const float *u, int64_t n) {
  int64_t i = 0;
  const __m256 one = _mm256_set1_ps(1.0f);
  for (; i + 8 <= n; i += 8) {
    __m256 x = _mm256_loadu_ps(g + i);
    __m256 e = ggml_expf_ps(_mm256_sub_ps(_mm256_setzero_ps(), x));
    __m256 s = _mm256_div_ps(x, _mm256_add_ps(one, e));
    _mm256_storeu_ps(o + i, _mm256_mul_ps(s, _mm256_loadu_ps(u + i)));
  }
  for (; i < n; i++)
    o[i] = g[i] / (1.0f + cpu_ggml_expf(0.0f - g[i])) * u[i];
}

static double avx2_softmax_exp(float *x, int64_t n, float max) {
  __m256 vmax = _mm256_set1_ps(max);
  double sum = 0.0;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 lo = ggml_expf_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vmax));
    __m256 hi = ggml_expf_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i + 8), vmax));
    _mm256_storeu_ps(x + i, lo);
    _mm256_storeu_ps(x + i + 8, hi);
    sum += (double)hsum_ps(_mm256_add_ps(lo, hi)); /* = cpu_reduce16 of the 16 lanes */
  }
  if (i < n) { /* the last chunk, padded with masked (zero) entries */
    float tail[16];
    for (int l = 0; l < 16; l++)
      tail[l] = i + l < n ? cpu_ggml_expf(x[i + l] - max) : 0.0f;
    for (int64_t l = 0; i + l < n; l++)
      x[i + l] = tail[l];
    sum += (double)cpu_reduce16(tail);
  }
  return sum;
}

/* ---- attention blocks ----------------------------------------------------------------------- */

/* Cache rows are read where they are, f16 (converted in the load, exactly) or f32; half is a
 * constant in every caller's instantiation. */
INLINE __m256 kv_load8(const void *base, const int half, int64_t i) {
  return half ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const quant_f16 *)base + i)))
              : _mm256_loadu_ps((const float *)base + i);
}

INLINE float kv_load1(const void *base, const int half, int64_t i) {
  return half ? f16(((const quant_f16 *)base)[i]) : ((const float *)base)[i];
}

/* Four scores at once in the batched order (dot_lanes16 for keys k0..k3): independent FMA
 * chains, so the 8-step chains of one key do not wait on each other's latency. */
INLINE void dot_lanes16_x4(const float *q, const void *k, const int half, size_t kv_stride,
                           int64_t hd, float *s) {
  __m256 lo[4], hi[4];
  for (int c = 0; c < 4; c++)
    lo[c] = hi[c] = _mm256_setzero_ps();
  for (int64_t i = 0; i < hd; i += 16) {
    __m256 q0 = _mm256_loadu_ps(q + i), q1 = _mm256_loadu_ps(q + i + 8);
    for (int c = 0; c < 4; c++) {
      lo[c] = _mm256_fmadd_ps(kv_load8(k, half, c * kv_stride + i), q0, lo[c]);
      hi[c] = _mm256_fmadd_ps(kv_load8(k, half, c * kv_stride + i + 8), q1, hi[c]);
    }
  }
  for (int c = 0; c < 4; c++)
    s[c] = hsum_ps(_mm256_add_ps(lo[c], hi[c]));
}

/* One score in llama.cpp's batched order (cpu_ref.h, CPU_ATTN_LANES16): lane l of 16 sums
 * elements l, l + 16, ... with FMAs; hd is a multiple of 16. */
INLINE float dot_lanes16(const float *q, const void *k, const int half, int64_t hd) {
  __m256 lo = _mm256_setzero_ps(), hi = _mm256_setzero_ps();
  for (int64_t i = 0; i < hd; i += 16) {
    lo = _mm256_fmadd_ps(kv_load8(k, half, i), _mm256_loadu_ps(q + i), lo);
    hi = _mm256_fmadd_ps(kv_load8(k, half, i + 8), _mm256_loadu_ps(q + i + 8), hi);
  }
  return hsum_ps(_mm256_add_ps(lo, hi));
}

/* One score in llama.cpp's single-token order (CPU_ATTN_BANKS64): 4 accumulators of 16 lanes
 * over each 64 elements, folded (0 + 2) + (1 + 3), then the rest in double. */
INLINE float dot_banks64(const float *q, const void *k, const int half, int64_t hd) {
  __m256 a[4][2];
  for (int b = 0; b < 4; b++)
    a[b][0] = a[b][1] = _mm256_setzero_ps();
  int64_t np = hd & ~(int64_t)63;
  for (int64_t i = 0; i < np; i += 64) {
    for (int b = 0; b < 4; b++) {
      a[b][0] =
          _mm256_fmadd_ps(kv_load8(k, half, i + 16 * b), _mm256_loadu_ps(q + i + 16 * b), a[b][0]);
      a[b][1] = _mm256_fmadd_ps(kv_load8(k, half, i + 16 * b + 8),
                                _mm256_loadu_ps(q + i + 16 * b + 8), a[b][1]);
    }
  }
  __m256 lo = _mm256_add_ps(_mm256_add_ps(a[0][0], a[2][0]), _mm256_add_ps(a[1][0], a[3][0]));
  __m256 hi = _mm256_add_ps(_mm256_add_ps(a[0][1], a[2][1]), _mm256_add_ps(a[1][1], a[3][1]));
  double sum = (double)hsum_ps(_mm256_add_ps(lo, hi));
  for (int64_t i = np; i < hd; i++)
    sum += (double)(kv_load1(k, half, i) * q[i]);
  return (float)sum;
}

INLINE void attn_scores_impl(const float *q, size_t q_stride, int64_t nr, const void *k,
                             const int half, size_t kv_stride, int64_t nj, int64_t hd, int order,
                             float scale, float *scores, size_t s_stride) {
  for (int64_t r = 0; r < nr; r++) {
    const float *qr = q + r * q_stride;
    float *sr = scores + r * s_stride;
    if (order == CPU_ATTN_LANES16) {
      int64_t j = 0;
      for (; j + 4 <= nj; j += 4) {
        float s4[4];
        dot_lanes16_x4(qr, (const char *)k + j * kv_stride * (half ? 2 : 4), half, kv_stride, hd,
                       s4);
        for (int c = 0; c < 4; c++)
          sr[j + c] = s4[c] * scale;
      }
      for (; j < nj; j++)
        sr[j] = dot_lanes16(qr, (const char *)k + j * kv_stride * (half ? 2 : 4), half, hd) * scale;
    } else {
      for (int64_t j = 0; j < nj; j++)
        sr[j] = dot_banks64(qr, (const char *)k + j * kv_stride * (half ? 2 : 4), half, hd) * scale;
    }
  }
}

static void avx2_attn_scores(const float *q, size_t q_stride, int64_t nr, const void *k, int kv_f16,
                             size_t kv_stride, int64_t nj, int64_t hd, int order, float scale,
                             float *scores, size_t s_stride) {
  if (kv_f16) {
    attn_scores_impl(q, q_stride, nr, k, 1, kv_stride, nj, hd, order, scale, scores, s_stride);
  } else {
    attn_scores_impl(q, q_stride, nr, k, 0, kv_stride, nj, hd, order, scale, scores, s_stride);
  }
}

/* Rows [j, j1) of one head into its banks, one row at a time through memory. */
INLINE void attn_accumulate_rows(const float *pr, const void *v, const int half, size_t kv_stride,
                                 int64_t j0, int64_t j, int64_t j1, int64_t hd, int nbanks,
                                 float *banks) {
  int64_t hd8 = hd & ~(int64_t)7;
  for (; j < j1; j++) {
    int64_t jj = j0 + j;
    float *bank = banks + (jj % nbanks) * hd; /* [hd] */
    int64_t vj = j * (int64_t)kv_stride;
    __m256 pj = _mm256_set1_ps(pr[j]);
    /* the bank's first row: an FMA onto +0, as llama.cpp's zeroed accumulators */
    bool first = jj < nbanks;
    for (int64_t i = 0; i < hd8; i += 8) {
      __m256 b = first ? _mm256_setzero_ps() : _mm256_loadu_ps(bank + i);
      _mm256_storeu_ps(bank + i, _mm256_fmadd_ps(pj, kv_load8(v, half, vj + i), b));
    }
    for (int64_t i = hd8; i < hd; i++)
      bank[i] = fmaf(pr[j], kv_load1(v, half, vj + i), first ? 0.0f : bank[i]);
  }
}

INLINE void attn_accumulate_impl(const float *p, size_t p_stride, int64_t nr, const void *v,
                                 const int half, size_t kv_stride, int64_t j0, int64_t nj,
                                 int64_t hd, int nbanks, float *banks, size_t bank_stride) {
  for (int64_t r = 0; r < nr; r++) {
    const float *pr = p + r * p_stride;
    float *br = banks + r * bank_stride;
    int64_t j = 0;
    if (nbanks == 16 && hd % 8 == 0 && j0 % 16 == 0 && nj >= 16) {
      /* batched order: the 16 banks of 8 columns stay in registers while the rows stream past */
      int64_t full = nj & ~(int64_t)15;
      for (int64_t i = 0; i < hd; i += 8) {
        __m256 acc[16];
        for (int l = 0; l < 16; l++)
          acc[l] = j0 == 0 ? _mm256_setzero_ps() : _mm256_loadu_ps(br + l * hd + i);
        for (int64_t jb = 0; jb < full; jb += 16) {
          for (int l = 0; l < 16; l++) {
            acc[l] = _mm256_fmadd_ps(_mm256_set1_ps(pr[jb + l]),
                                     kv_load8(v, half, (jb + l) * (int64_t)kv_stride + i), acc[l]);
          }
        }
        for (int l = 0; l < 16; l++)
          _mm256_storeu_ps(br + l * hd + i, acc[l]);
      }
      j = full;
    }
    attn_accumulate_rows(pr, v, half, kv_stride, j0, j, nj, hd, nbanks, br);
  }
}

static void avx2_attn_accumulate(const float *p, size_t p_stride, int64_t nr, const void *v,
                                 int kv_f16, size_t kv_stride, int64_t j0, int64_t nj, int64_t hd,
                                 int nbanks, float *banks, size_t bank_stride) {
  if (kv_f16) {
    attn_accumulate_impl(p, p_stride, nr, v, 1, kv_stride, j0, nj, hd, nbanks, banks, bank_stride);
  } else {
    attn_accumulate_impl(p, p_stride, nr, v, 0, kv_stride, j0, nj, hd, nbanks, banks, bank_stride);
  }
}

static void avx2_pack8_q6_k(const void *w, size_t ws, int64_t k, void *dst) {
  struct cpu_q6_k_pack8 *p = dst;
  for (int64_t ib = 0; ib < k / QK_K; ib++, p++) {
    for (int n = 0; n < 2; n++) {
      __m256i rows[4][8]; /* [32-chunk][row] */
      for (int i = 0; i < 8; i++) {
        const struct block_q6_k *b = (const struct block_q6_k *)((const char *)w + i * ws) + ib;
        __m256i q[4];
        q6_k_unpack_half(b, n, q);
        for (int c = 0; c < 4; c++)
          rows[c][i] = q[c];
      }
      for (int c = 0; c < 4; c++) {
        transpose8_epi32(rows[c]);
        for (int g = 0; g < 8; g++)
          _mm256_storeu_si256((__m256i *)p->q[32 * n + 8 * c + g], rows[c][g]);
      }
    }
    for (int i = 0; i < 8; i++) {
      const struct block_q6_k *b = (const struct block_q6_k *)((const char *)w + i * ws) + ib;
      for (int s2 = 0; s2 < 16; s2++) {
        p->sc[s2][i] = b->scales[s2];
        p->scp[s2 / 2][2 * i + s2 % 2] = b->scales[s2];
      }
      p->d[i] = f16(b->d);
    }
  }
}

/* llama.cpp's tiled Q6_K order on packed rows (lane = row): the block's integer sum (scales
 * applied, less 32 x scale x bsum), times d_w, then an FMA with d_a; same bits as
 * q6_k_impl_tiled. */
INLINE void q6_k_packed_impl(int64_t k, const void *packed, const void *act, size_t st,
                             const int nr, float *out, size_t os) {
  const struct cpu_q6_k_pack8 *p = packed;
  __m256 acc[4];
  for (int r = 0; r < nr; r++)
    acc[r] = _mm256_setzero_ps();
  for (int64_t ib = 0; ib < k / QK_K; ib++, p++) {
    __m256i total[4];
    for (int r = 0; r < nr; r++)
      total[r] = _mm256_setzero_si256();
    for (int s2 = 0; s2 < 16; s2++) {
      __m256i sub[4];
      for (int r = 0; r < nr; r++)
        sub[r] = _mm256_setzero_si256();
      for (int g = 4 * s2; g < 4 * s2 + 4; g++) {
        __m256i wq = _mm256_loadu_si256((const __m256i *)p->q[g]);
        for (int r = 0; r < nr; r++) {
          int32_t a4;
          memcpy(&a4, ACT_ROW(struct block_q8_k, act, st, r)[ib].qs + 4 * g, sizeof a4);
#if X86_KQUANT_DPBUSD
          sub[r] = _mm256_dpbusd_epi32(sub[r], wq, _mm256_set1_epi32(a4));
#else
          sub[r] = _mm256_add_epi32(sub[r], X86_DOT_U8_I8(wq, _mm256_set1_epi32(a4)));
#endif
        }
      }
      __m256i sc = _mm256_loadu_si256((const __m256i *)p->sc[s2]);
      for (int r = 0; r < nr; r++)
        total[r] = _mm256_add_epi32(total[r], _mm256_mullo_epi32(sub[r], sc));
    }
    __m256 dw = _mm256_loadu_ps(p->d);
    for (int r = 0; r < nr; r++) {
      const struct block_q8_k *y = ACT_ROW(struct block_q8_k, act, st, r) + ib;
      __m256i corr = _mm256_setzero_si256();
      for (int m = 0; m < 8; m++) {
        uint32_t lo16 = (uint16_t)y->bsums[2 * m], hi16 = (uint16_t)y->bsums[2 * m + 1];
        corr =
            _mm256_add_epi32(corr, _mm256_madd_epi16(_mm256_loadu_si256((const __m256i *)p->scp[m]),
                                                     _mm256_set1_epi32((int)(lo16 | hi16 << 16))));
      }
      __m256i t = _mm256_sub_epi32(total[r], _mm256_slli_epi32(corr, 5));
      acc[r] =
          _mm256_fmadd_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(t), dw), _mm256_set1_ps(y->d), acc[r]);
    }
  }
  for (int r = 0; r < nr; r++)
    _mm256_storeu_ps(out + (size_t)r * os, acc[r]);
}

static void avx2_dot8_packed_q6_k(int64_t k, const void *packed, const void *act, size_t st, int nr,
                                  float *out, size_t os, int per64) {
  (void)per64; /* only the tiled order */
  switch (nr) {
  case 4: q6_k_packed_impl(k, packed, act, st, 4, out, os); break;
  case 3: q6_k_packed_impl(k, packed, act, st, 3, out, os); break;
  case 2: q6_k_packed_impl(k, packed, act, st, 2, out, os); break;
  default: q6_k_packed_impl(k, packed, act, st, 1, out, os); break;
  }
}

/* The kernel table, the same for both instruction sets (each file gets its own copies of the
 * kernels, compiled for its flags). */
#define X86_KERNEL_TABLE(name, isa_name)                                                           \
  static const struct cpu_kernels name = {                                                         \
      .isa = isa_name,                                                                             \
      .dot =                                                                                       \
          {                                                                                        \
              [QUANT_F32] = avx2_dot_f32,                                                          \
              [QUANT_F16] = avx2_dot_f16,                                                          \
              [QUANT_Q4_0] = avx2_dot_q4_0,                                                        \
              [QUANT_Q5_0] = avx2_dot_q5_0,                                                        \
              [QUANT_Q8_0] = avx2_dot_q8_0,                                                        \
              [QUANT_Q4_K] = avx2_dot_q4_k,                                                        \
              [QUANT_Q6_K] = avx2_dot_q6_k,                                                        \
              [QUANT_IQ3_XXS] = avx2_dot_iq3_xxs,                                                  \
              [QUANT_IQ3_S] = avx2_dot_iq3_s,                                                      \
          },                                                                                       \
      .dot_gemm = {[QUANT_Q4_K] = avx2_dot_q4_k_gemm, [QUANT_Q6_K] = avx2_dot_q6_k_tiled},         \
      .dot8 = {[QUANT_Q4_K] = avx2_dot8_q4_k},                                                     \
      .dot8_gemm = {[QUANT_Q4_K] = avx2_dot8_q4_k_gemm},                                           \
      .pack8 = {[QUANT_Q4_K] = avx2_pack8_q4_k, [QUANT_Q6_K] = avx2_pack8_q6_k},                   \
      .dot8_packed = {[QUANT_Q4_K] = avx2_dot8_packed_q4_k, [QUANT_Q6_K] = avx2_dot8_packed_q6_k}, \
      .pack_size = {[QUANT_Q4_K] = sizeof(struct cpu_q4_k_pack8),                                  \
                    [QUANT_Q6_K] = sizeof(struct cpu_q6_k_pack8)},                                 \
      .pack_gemm_only = {[QUANT_Q6_K] = true},                                                     \
      .quantize_q8_0 = avx2_quantize_q8_0,                                                         \
      .quantize_q8_0x = avx2_quantize_q8_0x,                                                       \
      .quantize_q8_k = avx2_quantize_q8_k,                                                         \
      .dot_f32 = avx2_vec_dot_f32,                                                                 \
      .f16_to_f32 = avx2_f16_to_f32,                                                               \
      .round_f16 = avx2_round_f16,                                                                 \
      .silu_mul = avx2_silu_mul,                                                                   \
      .softmax_exp = avx2_softmax_exp,                                                             \
      .attn_scores = avx2_attn_scores,                                                             \
      .attn_accumulate = avx2_attn_accumulate,                                                     \
  }

#endif
