/* Private to the quant module (quant.c, quant_k.c, quant_iq.c): the per-type row routines the
 * trait table points at, and little-endian loads. Each routine handles nb whole blocks; the
 * public entry points in quant.c check types and sizes first. */
#ifndef AUGURY_ENGINE_QUANT_INTERNAL_H
#define AUGURY_ENGINE_QUANT_INTERNAL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "engine/quant.h"

/* dst[nb * block_size] <- nb blocks at src */
typedef void (*quant_dequantize_fn)(const void *src, float *dst, int64_t nb);
/* nb blocks at dst <- src[nb * block_size] */
typedef void (*quant_quantize_fn)(const float *src, void *dst, int64_t nb);

static inline uint16_t quant_load_u16_le(const uint8_t *p) {
  return (uint16_t)(p[0] | p[1] << 8);
}

static inline uint32_t quant_load_u32_le(const uint8_t *p) {
  return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Nearest integer, halves away from zero (C's roundf, as ggml's reference quantizers use). */
static inline int quant_round(float x) {
  return (int)lroundf(x);
}

/* quant_k.c */
void quant_dequantize_q2_k(const void *src, float *dst, int64_t nb);
void quant_dequantize_q3_k(const void *src, float *dst, int64_t nb);
void quant_dequantize_q4_k(const void *src, float *dst, int64_t nb);
void quant_dequantize_q5_k(const void *src, float *dst, int64_t nb);
void quant_dequantize_q6_k(const void *src, float *dst, int64_t nb);
void quant_dequantize_q8_k(const void *src, float *dst, int64_t nb);
void quant_quantize_q4_k(const float *src, void *dst, int64_t nb);
void quant_quantize_q6_k(const float *src, void *dst, int64_t nb);
void quant_quantize_q8_k(const float *src, void *dst, int64_t nb);

/* quant_iq.c */
void quant_dequantize_iq4_nl(const void *src, float *dst, int64_t nb);
void quant_dequantize_iq4_xs(const void *src, float *dst, int64_t nb);

#endif
