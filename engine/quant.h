/* Tensor element types as GGUF stores them (ids match ggml's enum ggml_type), their block layouts,
 * scalar dequantization to f32 and quantization from f32. These scalar routines are the reference
 * every fast kernel is tested against; the CPU backend has its own vectorized dot products.
 * Block layouts follow ggml-common.h (k-quants: QK_K = 256 elements per super-block). */
#ifndef AUGURY_ENGINE_QUANT_H
#define AUGURY_ENGINE_QUANT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum quant_type {
  QUANT_F32 = 0,
  QUANT_F16 = 1,
  QUANT_Q4_0 = 2,
  QUANT_Q4_1 = 3,
  QUANT_Q5_0 = 6,
  QUANT_Q5_1 = 7,
  QUANT_Q8_0 = 8,
  QUANT_Q8_1 = 9,
  QUANT_Q2_K = 10,
  QUANT_Q3_K = 11,
  QUANT_Q4_K = 12,
  QUANT_Q5_K = 13,
  QUANT_Q6_K = 14,
  QUANT_Q8_K = 15,
  QUANT_IQ2_XXS = 16,
  QUANT_IQ2_XS = 17,
  QUANT_IQ3_XXS = 18,
  QUANT_IQ1_S = 19,
  QUANT_IQ4_NL = 20,
  QUANT_IQ3_S = 21,
  QUANT_IQ2_S = 22,
  QUANT_IQ4_XS = 23,
  QUANT_I8 = 24,
  QUANT_I16 = 25,
  QUANT_I32 = 26,
  QUANT_I64 = 27,
  QUANT_F64 = 28,
  QUANT_IQ1_M = 29,
  QUANT_BF16 = 30,
  QUANT_TQ1_0 = 34,
  QUANT_TQ2_0 = 35,
  QUANT_MXFP4 = 39,
  QUANT_TYPE_COUNT = 40
};

#define QK4_0 32
#define QK4_1 32
#define QK5_0 32
#define QK5_1 32
#define QK8_0 32
#define QK8_1 32
#define QK_K 256
#define K_SCALE_SIZE 12
#define QK4_NL 32

typedef uint16_t quant_f16; /* IEEE half, stored little-endian */

/* Block layouts (sizes asserted in quant.c). d = scale, m = min, qs = low bits, qh = high bits. */
struct block_q4_0 {
  quant_f16 d;
  uint8_t qs[QK4_0 / 2];
};
struct block_q4_1 {
  quant_f16 d;
  quant_f16 m;
  uint8_t qs[QK4_1 / 2];
};
struct block_q5_0 {
  quant_f16 d;
  uint8_t qh[4];
  uint8_t qs[QK5_0 / 2];
};
struct block_q5_1 {
  quant_f16 d;
  quant_f16 m;
  uint8_t qh[4];
  uint8_t qs[QK5_1 / 2];
};
struct block_q8_0 {
  quant_f16 d;
  int8_t qs[QK8_0];
};
struct block_q8_1 {
  quant_f16 d;
  quant_f16 s;
  int8_t qs[QK8_1];
}; /* s = d * sum(qs) */
struct block_q2_k {
  uint8_t scales[QK_K / 16];
  uint8_t qs[QK_K / 4];
  quant_f16 d;
  quant_f16 dmin;
};
struct block_q3_k {
  uint8_t hmask[QK_K / 8];
  uint8_t qs[QK_K / 4];
  uint8_t scales[12];
  quant_f16 d;
};
struct block_q4_k {
  quant_f16 d;
  quant_f16 dmin;
  uint8_t scales[K_SCALE_SIZE];
  uint8_t qs[QK_K / 2];
};
struct block_q5_k {
  quant_f16 d;
  quant_f16 dmin;
  uint8_t scales[K_SCALE_SIZE];
  uint8_t qh[QK_K / 8];
  uint8_t qs[QK_K / 2];
};
struct block_q6_k {
  uint8_t ql[QK_K / 2];
  uint8_t qh[QK_K / 4];
  int8_t scales[QK_K / 16];
  quant_f16 d;
};
struct block_q8_k {
  float d;
  int8_t qs[QK_K];
  int16_t bsums[QK_K / 16];
}; /* activations only */
struct block_iq4_nl {
  quant_f16 d;
  uint8_t qs[QK4_NL / 2];
};
struct block_iq4_xs {
  quant_f16 d;
  uint16_t scales_h;
  uint8_t scales_l[QK_K / 64];
  uint8_t qs[QK_K / 2];
};

struct quant_type_traits {
  const char *name;    /* "Q4_K", as gguf-py and llama.cpp print it */
  uint32_t block_size; /* elements per block (1 for plain types) */
  uint32_t type_size;  /* bytes per block */
  bool can_dequantize; /* quant_dequantize_row supports it */
  bool can_quantize;   /* quant_quantize_row supports it */
};

/* Traits of a type id; NULL for ids that are unknown or removed from the format
 * (4, 5, 31..33, 36..38). */
const struct quant_type_traits *quant_traits(uint32_t type);
const char *quant_type_name(uint32_t type); /* "unknown" when not a type */

/* Bytes of a row of n elements; 0 when n is not a multiple of the block size or type unknown. */
size_t quant_row_size(uint32_t type, uint64_t n);

/* Dequantize n elements (a multiple of the block size): 0, AUG_EUNSUPPORTED or AUG_EINVAL.
 * src must be aligned like its block struct (2 bytes; 4 for Q8_K), as GGUF tensor data is. Scalar
 * reference code: allocates nothing, never fails for a supported type and valid n. */
int quant_dequantize_row(uint32_t type, const void *src, float *dst, int64_t n);
/* Quantize n f32 values to type (Q8_0, Q4_0, Q4_K, Q6_K, Q8_K, F16, BF16, F32; see can_quantize).
 * Q8_0 and Q4_0 match ggml's reference quantizers bit for bit; Q4_K and Q6_K search their scales
 * (within 1% of llama.cpp's RMS error, tests/unit/engine/test_quant.c); Q8_K fills bsums. */
int quant_quantize_row(uint32_t type, const float *src, void *dst, int64_t n);

float quant_f16_to_f32(quant_f16 h);
quant_f16 quant_f32_to_f16(float f); /* round to nearest even */
float quant_bf16_to_f32(uint16_t h);
uint16_t quant_f32_to_bf16(float f); /* round to nearest even, NaN kept quiet */

/* The 16 non-linear levels of IQ4_NL / IQ4_XS. */
extern const int8_t quant_iq4nl_values[16];

#endif
