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

/* o[n] = silu(g[n]) * u[n], silu(x) = x / (1 + exp(-x)). */
void cpu_ref_silu_mul(float *o, const float *g, const float *u, int64_t n);
/* o[n] = a[n] + b[n]. */
void cpu_ref_add(float *o, const float *a, const float *b, int64_t n);
/* In place softmax of x[n]. */
void cpu_ref_softmax(float *x, int64_t n);

#endif
