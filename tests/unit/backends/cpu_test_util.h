/* Helpers shared by the CPU backend's unit tests: a deterministic RNG, random weights of any
 * quant type (random bits with every f16 scale field set to a small finite value, so each
 * nibble/bit pattern gets exercised), and tensors over host buffers. */
#ifndef AUGURY_TESTS_UNIT_BACKENDS_CPU_TEST_UTIL_H
#define AUGURY_TESTS_UNIT_BACKENDS_CPU_TEST_UTIL_H

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "engine/quant.h"

static inline uint64_t test_rng_next(uint64_t *s) {
  /* xorshift64* */
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return *s * 0x2545F4914F6CDD1DULL;
}

/* Uniform in [-1, 1). */
static inline float test_rng_float(uint64_t *s) {
  return (float)((double)(test_rng_next(s) >> 11) / 9007199254740992.0 * 2.0 - 1.0);
}

/* Offsets of the f16 scale fields in a block of type, -1 terminated; false when unknown. */
static inline bool test_scale_offsets(uint32_t type, int offs[3]) {
  offs[0] = offs[1] = offs[2] = -1;
  switch (type) {
  case QUANT_Q4_0:
  case QUANT_Q5_0:
  case QUANT_Q8_0:
  case QUANT_IQ4_NL:
  case QUANT_IQ4_XS:
  case QUANT_IQ2_XXS:
  case QUANT_IQ2_XS:
  case QUANT_IQ2_S:
  case QUANT_IQ3_XXS:
  case QUANT_IQ3_S:
  case QUANT_IQ1_S: offs[0] = 0; return true;
  case QUANT_Q4_1:
  case QUANT_Q5_1:
  case QUANT_Q8_1:
  case QUANT_Q4_K:
  case QUANT_Q5_K: offs[0] = 0, offs[1] = 2; return true;
  case QUANT_Q6_K: offs[0] = (int)offsetof(struct block_q6_k, d); return true;
  case QUANT_Q2_K: offs[0] = 80, offs[1] = 82; return true; /* scales[16] qs[64] d dmin */
  case QUANT_Q3_K: offs[0] = 108; return true;              /* hmask[32] qs[64] scales[12] d */
  case QUANT_TQ1_0: offs[0] = 52; return true;              /* qs[48] qh[4] d */
  case QUANT_TQ2_0: offs[0] = 64; return true;              /* qs[64] d */
  case QUANT_IQ1_M:
  case QUANT_Q8_K:
  case QUANT_MXFP4: return true; /* scale not a plain f16 field: fixed up below */
  default: return false;
  }
}

/* rows x k random weights of type into dst (quant_row_size(type, k) * rows bytes). Returns false
 * for types this helper cannot make valid data for. */
static inline bool test_fill_weights(uint32_t type, void *dst, int64_t k, int64_t rows,
                                     uint64_t *seed) {
  const struct quant_type_traits *tr = quant_traits(type);
  size_t row = quant_row_size(type, (uint64_t)k);
  unsigned char *p = dst;
  if (type == QUANT_F32 || type == QUANT_F16 || type == QUANT_BF16) {
    for (int64_t i = 0; i < k * rows; i++) {
      float v = test_rng_float(seed);
      if (type == QUANT_F32) memcpy(p + 4 * i, &v, 4);
      if (type == QUANT_F16) ((quant_f16 *)p)[i] = quant_f32_to_f16(v);
      if (type == QUANT_BF16) ((uint16_t *)p)[i] = quant_f32_to_bf16(v);
    }
    return true;
  }
  int offs[3];
  if (!test_scale_offsets(type, offs)) return false;
  for (size_t i = 0; i < row * (size_t)rows; i++)
    p[i] = (unsigned char)test_rng_next(seed);
  size_t n_blocks = row * (size_t)rows / tr->type_size;
  for (size_t b = 0; b < n_blocks; b++) {
    for (int j = 0; j < 3 && offs[j] >= 0; j++) {
      /* d in [0.002, 0.02) with a random sign on d only (mins stay positive, as quantizers write)
       */
      float v = 0.002f + 0.018f * (test_rng_float(seed) * 0.5f + 0.5f);
      if (j == 0 && (test_rng_next(seed) & 1)) v = -v;
      quant_f16 h = quant_f32_to_f16(v);
      memcpy(p + b * tr->type_size + (size_t)offs[j], &h, sizeof h);
    }
    unsigned char *blk = p + b * tr->type_size;
    if (type == QUANT_Q8_K) {
      float d = 0.002f + 0.01f * (test_rng_float(seed) * 0.5f + 0.5f);
      memcpy(blk, &d, sizeof d); /* f32 d */
    }
    if (type == QUANT_MXFP4) blk[0] = (unsigned char)(120 + test_rng_next(seed) % 4); /* E8M0 */
    if (type == QUANT_IQ1_M) {
      /* the f16 scale is the top nibbles of the four uint16 scales at offset 48 */
      quant_f16 h = quant_f32_to_f16(0.002f + 0.01f * (test_rng_float(seed) * 0.5f + 0.5f));
      for (int j = 0; j < 4; j++) {
        uint16_t sc;
        memcpy(&sc, blk + 48 + 2 * j, 2);
        sc = (uint16_t)((sc & 0x0fff) | (((h >> (4 * j)) & 0xf) << 12));
        memcpy(blk + 48 + 2 * j, &sc, 2);
      }
    }
  }
  return true;
}

/* A host buffer wrapped as a backend buffer; caller frees both with test_buffer_free. */
struct test_buffer {
  struct backend_buffer *buf;
  void *data;
};

static inline struct test_buffer test_buffer_make(const struct backend_ops *ops, struct backend *be,
                                                  size_t size) {
  struct test_buffer tb = {0};
  struct aug_err err;
  if (ops->buffer_alloc(be, BACKEND_BUFFER_COMPUTE, size, &tb.buf, &err) == 0) {
    tb.data = ops->buffer_host_ptr(be, tb.buf);
    memset(tb.data, 0, size);
  }
  return tb;
}

static inline struct backend_tensor test_tensor(struct test_buffer *tb, uint32_t type, int64_t ne0,
                                                int64_t ne1, int64_t ne2, size_t offset) {
  struct backend_tensor t = {0};
  t.type = type;
  t.ne[0] = ne0;
  t.ne[1] = ne1;
  t.ne[2] = ne2;
  t.ne[3] = 1;
  t.row_stride = quant_row_size(type, (uint64_t)ne0);
  t.plane_stride = 0;
  t.buffer = tb->buf;
  t.offset = offset;
  return t;
}

#endif
