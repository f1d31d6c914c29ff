/* Plain scalar reference ops, written like llama2.c: one function per op over plain float arrays,
 * no intrinsics, no threads. The CPU backend's op drivers call them row by row; every backend's
 * tests compare against them. Semantics follow llama.cpp's ggml CPU ops (rms_norm sums in double,
 * rope's angle recurrence theta *= theta_scale, softmax subtracts the row max) so that greedy
 * output can match llama.cpp. */
#ifndef AUGURY_BACKENDS_CPU_CPU_REF_H
#define AUGURY_BACKENDS_CPU_CPU_REF_H

#include <stdint.h>

/* o[n] = x[n] / sqrt(mean(x^2) + eps) * w[n]. o may alias x. */
void cpu_ref_rms_norm(float *o, const float *x, const float *w, int64_t n, float eps);

/* cos_sin[n_rot] = (cos, sin) pairs for one position: angle of pair i is
 * freq_scale * pos * base^(-2i / n_rot) / freq_factors[i] (freq_factors may be NULL). */
void cpu_ref_rope_cache(float *cos_sin, int32_t pos, int n_rot, float freq_base, float freq_scale,
                        const float *freq_factors);
/* Rotates one head x[head_dim] in place with cos_sin[n_rot]: normal layout pairs (2i, 2i + 1),
 * NeoX layout pairs (i, i + n_rot / 2); dims >= n_rot are left alone. */
void cpu_ref_rope_head(float *x, const float *cos_sin, int n_rot, int neox);

/* One query head over n visible cache rows (already unmasked, GQA already resolved):
 * out[hd] = sum_j softmax_j(q . k_j * scale) v_j; k, v [n][hd] f32; scores[n] scratch. */
void cpu_ref_attention_head(float *out, const float *q, const float *k, const float *v, int64_t n,
                            int64_t hd, float scale, float *scores);

/* ---- llama.cpp's arithmetic, reproduced bit for bit ----------------------------------------
 * Greedy decoding amplifies any rounding difference (an 8-bit activation rounds the other way,
 * and the next layer sees a different input), so the CPU backend sums in the same order as the
 * kernels llama.cpp's CPU backend runs on an AVX-512 machine, whatever this CPU has. */

/* ggml_v_expf, llama.cpp's vector e^x (AVX-512 variant, from ARM's optimized routines): a
 * degree-5 polynomial on x - n ln2, then scaled by 2^n; |n| > 192 gives 0 or infinity. */
float cpu_ggml_expf(float x);

/* The sum of 16 lanes in the order of GCC's _mm512_reduce_add_ps (halves, then quarters, then
 * (0 + 2) + (1 + 3)). */
static inline float cpu_reduce16(const float v[16]) {
  float s[8], t[4];
  for (int i = 0; i < 8; i++)
    s[i] = v[i + 8] + v[i];
  for (int i = 0; i < 4; i++)
    t[i] = s[i + 4] + s[i];
  return (t[0] + t[2]) + (t[1] + t[3]);
}

/* How llama.cpp sums the attention dot products (q . k over head_dim, p . v over the cache):
 * - CPU_ATTN_LANES16, batches of 2+ tokens (its tinyBLAS f16 GEMM): lane l of 16 accumulates
 *   elements l, l + 16, ... with FMAs, then cpu_reduce16;
 * - CPU_ATTN_BANKS64, one token (ggml_vec_dot_f16): element i goes to lane i % 16 of
 *   accumulator (i / 16) % 4, the accumulators fold as (0 + 2) + (1 + 3), then cpu_reduce16,
 *   and elements past the last full 64 are added in double.
 * The inputs are f16 values (q and the softmax rounded to f16, as ggml converts them), so every
 * product is exact and only the order of the additions matters. */
enum cpu_attn_order { CPU_ATTN_LANES16, CPU_ATTN_BANKS64 };
float cpu_ref_dot_ordered(const float *a, const float *b, int64_t n, enum cpu_attn_order order);

/* o[n] = silu(g[n]) * u[n], silu(x) = x / (1 + exp(-x)). */
void cpu_ref_silu_mul(float *o, const float *g, const float *u, int64_t n);
/* o[n] = a[n] + b[n]. */
void cpu_ref_add(float *o, const float *a, const float *b, int64_t n);
/* In place softmax of x[n]. */
void cpu_ref_softmax(float *x, int64_t n);

#endif
