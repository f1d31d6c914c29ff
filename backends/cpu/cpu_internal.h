/* Private to backends/cpu/: the backend instance, buffers, and the kernel table that the
 * dispatcher fills at create time (portable scalar kernels, or AVX2/FMA/F16C ones when the CPU
 * has them and "scalar=1" was not given). Ops in cpu_ops.c and cpu_matmul.c only ever call
 * kernels through this table, so the scalar path is exercised by the same drivers as the fast
 * one. Thread ownership: a struct backend belongs to the engine thread that created it; the
 * compute pool's workers only touch the per-op contexts handed to them. */
#ifndef AUGURY_BACKENDS_CPU_CPU_INTERNAL_H
#define AUGURY_BACKENDS_CPU_CPU_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "backends/backend.h"
#include "backends/cpu/cpu_threadpool.h"
#include "engine/quant.h"

/* Most tokens one matmul kernel call handles for one weight row (the batched tile height). */
#define CPU_MATMUL_TILE_TOKENS 4

/* Activation block for Q4_0/Q5_0/Q8_0 weights: the numbers of a block_q8_0 (d rounded to f16,
 * as llama.cpp rounds it), with d kept as f32 so the kernels need no conversion per block. */
struct cpu_block_q8_0x {
  float d;
  int8_t qs[QK8_0];
};

/* out[r * out_stride] = dot(weight row w (k elements), activation row r) for r < nr
 * (1 <= nr <= CPU_MATMUL_TILE_TOKENS). Activation rows sit act_stride bytes apart, in the
 * activation type the weight type asks for (cpu_matmul_act_type). */
typedef void (*cpu_dot_fn)(int64_t k, const void *w, const void *act, size_t act_stride, int nr,
                           float *out, size_t out_stride);

/* The same for 8 consecutive weight rows (row i at w + i * w_stride): out[r * out_stride + i]. */
typedef void (*cpu_dot8_fn)(int64_t k, const void *w, size_t w_stride, const void *act,
                            size_t act_stride, int nr, float *out, size_t out_stride);

/* 8 Q4_K rows of one 256-block, interleaved for batched matmuls (cpu_kernels.pack8): lanes are
 * rows, so the kernel's integer sums come out per row without horizontal sums. */
struct cpu_q4_k_pack8 {
  uint8_t q[64][32]; /* [g][4 * row + t]: the quant (0..15) of element 4g + t */
  int32_t sc[8][8];  /* [sub-block][row] scales */
  int16_t mn[4][16]; /* [64-group c][2 * row + h]: min of sub-block 2c + h */
  float d[8], dmin[8];
};

/* 8 Q6_K rows of one 256-block, interleaved likewise (only llama.cpp's tiled order: 8+ tokens). */
struct cpu_q6_k_pack8 {
  uint8_t q[64][32];  /* [g][4 * row + t]: the 6-bit quant (0..63) of element 4g + t */
  int32_t sc[16][8];  /* [sub-block][row] scales */
  int16_t scp[8][16]; /* [m][2 * row + h]: scale of sub-block 2m + h, for the bsums correction */
  float d[8];
};

/* Packs 8 weight rows (row i at w + i * w_stride, k elements) into k / 256 pack blocks. */
typedef void (*cpu_pack8_fn)(const void *w, size_t w_stride, int64_t k, void *dst);
/* dot8 over packed rows: out[r * out_stride + i] for 8 rows, nr tokens; per64 picks llama.cpp's
 * gemm order over its gemv order (cpu_matmul.c). */
typedef void (*cpu_dot8_packed_fn)(int64_t k, const void *packed, const void *act,
                                   size_t act_stride, int nr, float *out, size_t out_stride,
                                   int per64);

struct cpu_kernels {
  const char *isa;                  /* "AVX512-VNNI", "AVX2" or "scalar" */
  cpu_dot_fn dot[QUANT_TYPE_COUNT]; /* NULL: no direct kernel (generic dequantize path) */
  /* For the tokens of a batch of 4+ that fill whole groups of 4 (all but the last n % 4), where
   * llama.cpp's repacked gemm kernels sum in another order than its gemv; NULL: dot. */
  cpu_dot_fn dot_gemm[QUANT_TYPE_COUNT];
  /* Optional 8-row versions of dot and dot_gemm (same bits), which share the horizontal sums
   * the per-block scalar orders need across 8 rows; NULL: one row at a time. */
  cpu_dot8_fn dot8[QUANT_TYPE_COUNT];
  cpu_dot8_fn dot8_gemm[QUANT_TYPE_COUNT];
  /* Batched matmuls (2+ tokens) of these types repack each 8-row group once per chunk of tokens
   * and run dot8_packed on it (same bits as dot8); pack_size is the bytes per 256 elements. */
  cpu_pack8_fn pack8[QUANT_TYPE_COUNT];
  cpu_dot8_packed_fn dot8_packed[QUANT_TYPE_COUNT];
  size_t pack_size[QUANT_TYPE_COUNT];
  bool pack_gemm_only[QUANT_TYPE_COUNT]; /* dot8_packed has only the batched (per64) order */
  /* Activation quantization, k a multiple of the block size. Both paths round half to even,
   * so they produce identical blocks. */
  void (*quantize_q8_0)(const float *x, struct block_q8_0 *y, int64_t k); /* KV cache stores */
  void (*quantize_q8_0x)(const float *x, struct cpu_block_q8_0x *y, int64_t k);
  void (*quantize_q8_k)(const float *x, struct block_q8_k *y, int64_t k);
  float (*dot_f32)(const float *a, const float *b, int64_t n);
  void (*f16_to_f32)(const quant_f16 *x, float *y, int64_t n);
  /* x[i] rounded to the nearest f16 (ties to even) and back, in place. */
  void (*round_f16)(float *x, int64_t n);
  /* o[n] = silu(g) * u (o may alias g), silu(x) = x / (1 + e^-x) with cpu_ggml_expf: every table
   * gives the same bits. */
  void (*silu_mul)(float *o, const float *g, const float *u, int64_t n);
  /* Softmax numerators: x[i] = cpu_ggml_expf(x[i] - max) in place; returns their sum in
   * llama.cpp's order (cpu_reduce16 of each 16, the last 16 padded with zeros, added in
   * double). */
  double (*softmax_exp)(float *x, int64_t n, float max);
  /* Attention blocks, summed in llama.cpp's orders (enum cpu_attn_order, cpu_ref.h):
   * q [nr][hd] (rows q_stride floats apart), k and v [nj][hd] (kv_stride elements apart), f32,
   * or f16 (kv_f16) read in place.
   *   scores[r * s_stride + j] = dot(q_r, k_j) * scale
   *   for cache row jj = j0 + j: banks[r * bank_stride + (jj % nbanks) * hd + :] += p[r *
   *   p_stride + j] * v_j, a bank starting from +0 at its first row (jj < nbanks), as llama.cpp's
   *   zeroed accumulators. */
  void (*attn_scores)(const float *q, size_t q_stride, int64_t nr, const void *k, int kv_f16,
                      size_t kv_stride, int64_t nj, int64_t hd, int order, float scale,
                      float *scores, size_t s_stride);
  void (*attn_accumulate)(const float *p, size_t p_stride, int64_t nr, const void *v, int kv_f16,
                          size_t kv_stride, int64_t j0, int64_t nj, int64_t hd, int nbanks,
                          float *banks, size_t bank_stride);
};

const struct cpu_kernels *cpu_kernels_scalar(void);
/* The AVX2/FMA/F16C table and the AVX512-VNNI one (AVX2 + 256-bit vpdpwssd/vpdpbusd); only call
 * their kernels after checking the CPU (cpu_backend.c). */
const struct cpu_kernels *cpu_kernels_avx2(void);
const struct cpu_kernels *cpu_kernels_vnni(void);

/* Per-thread scratch for one op (scores, a dequantized row), grown outside the kernels. */
struct cpu_scratch {
  void *data;
  size_t size;
};

struct backend {
  struct cpu_threadpool *pool; /* n_threads - 1 workers; the calling thread is thread 0 */
  int n_threads;
  const struct cpu_kernels *kernels;
  struct cpu_scratch act;             /* quantized activations of the current matmul */
  struct cpu_scratch *thread_scratch; /* [n_threads] */
  bool decode_order;                  /* backend_ops.set_decode_order: batches in one-token order */
};

struct backend_buffer {
  unsigned char *data;
  size_t size;
  enum backend_buffer_kind kind;
  bool owned; /* false for buffer_from_host: the caller keeps the memory alive */
};

/* Grow s to at least size bytes (64-byte aligned, by at least 1.5x so that a slowly growing need
 * reallocates O(log n) times); 0 or AUG_ENOMEM. Contents are not kept. */
int cpu_scratch_reserve(struct cpu_scratch *s, size_t size);
/* Make every thread's scratch at least size bytes. */
int cpu_thread_scratch_reserve(struct backend *be, size_t size);

/* Address of row (i1, i2, i3) of a tensor. */
static inline unsigned char *cpu_tensor_row(const struct backend_tensor *t, int64_t i1, int64_t i2,
                                            int64_t i3) {
  size_t plane = t->plane_stride ? t->plane_stride : (size_t)t->ne[1] * t->row_stride;
  return t->buffer->data + t->offset + (size_t)i1 * t->row_stride + (size_t)i2 * plane +
         (size_t)i3 * plane * (size_t)t->ne[2];
}

/* Validates a descriptor: known type, positive dims, rows of ne[0] elements fit row_stride,
 * everything inside its buffer. 0 or AUG_EINVAL. */
int cpu_tensor_check(const struct backend_tensor *t);

/* IEEE half -> float without tables, inlined into the scalar kernels (same result as
 * quant_f16_to_f32, which the tests check). */
static inline float cpu_f16_to_f32(quant_f16 h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {
    /* subnormal: normalize */
    int e = -1;
    do {
      e++;
      mant <<= 1;
    } while ((mant & 0x400) == 0);
    bits = sign | ((uint32_t)(112 - e) << 23) | ((mant & 0x3ff) << 13);
  }
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

/* Q4_K's 8 six-bit scales and mins packed in 12 bytes (ggml-common.h, get_scale_min_k4). */
static inline void cpu_q4_k_scales(const uint8_t *s, uint8_t sc[8], uint8_t mn[8]) {
  for (int j = 0; j < 4; j++) {
    sc[j] = s[j] & 63;
    mn[j] = s[j + 4] & 63;
  }
  for (int j = 4; j < 8; j++) {
    sc[j] = (uint8_t)((s[j + 4] & 0x0f) | ((s[j - 4] >> 6) << 4));
    mn[j] = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
  }
}

/* The weight types with a direct kernel take activations in this type (Q8_0, Q8_K or F32);
 * others are dequantized row by row and dotted in F32. */
uint32_t cpu_matmul_act_type(uint32_t weight_type);
/* Bytes of one quantized activation row of k elements for act_type (Q8_0 rows are
 * cpu_block_q8_0x); 0 when k is not a multiple of the block. */
size_t cpu_matmul_act_row_size(uint32_t act_type, int64_t k);

/* The KV cache types attention reads and copy writes: F32, F16, Q8_0 and Q4_0 (quantized rows
 * are dequantized a tile at a time, so any block type with a quantizer would do; these are the
 * ones llama.cpp users pick). */
static inline bool cpu_kv_type(uint32_t type) {
  return type == QUANT_F32 || type == QUANT_F16 || type == QUANT_Q8_0 || type == QUANT_Q4_0;
}

/* Ops (cpu_matmul.c, cpu_ops.c); the vtable in cpu_backend.c forwards to them. */
int cpu_matmul(struct backend *be, const struct backend_tensor *w, const struct backend_tensor *x,
               struct backend_tensor *y);
int cpu_rms_norm(struct backend *be, const struct backend_tensor *x, const struct backend_tensor *w,
                 float eps, struct backend_tensor *y);
int cpu_rope(struct backend *be, struct backend_tensor *x, const int32_t *pos,
             const struct backend_rope_params *params);
int cpu_attention(struct backend *be, const struct backend_tensor *q,
                  const struct backend_tensor *k, const struct backend_tensor *v,
                  const struct backend_attention_params *params, struct backend_tensor *out);
int cpu_silu_mul(struct backend *be, const struct backend_tensor *gate,
                 const struct backend_tensor *up, struct backend_tensor *out);
int cpu_add(struct backend *be, const struct backend_tensor *a, const struct backend_tensor *b,
            struct backend_tensor *out);
int cpu_get_rows(struct backend *be, const struct backend_tensor *table, const int32_t *ids,
                 int64_t n_ids, struct backend_tensor *out);
int cpu_softmax(struct backend *be, struct backend_tensor *x);
int cpu_copy(struct backend *be, const struct backend_tensor *src, struct backend_tensor *dst);

#endif
