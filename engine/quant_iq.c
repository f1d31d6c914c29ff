/* The non-linear "IQ" types. IQ4_NL: blocks of 32 4-bit indices into a fixed table of 16 levels
 * (denser near zero, matching the bell-shaped weight distribution) times one f16 scale. IQ4_XS:
 * the same levels in 256-element super-blocks with 6-bit sub-block scales. Layouts: ggml-common.h
 * (block_iq4_nl, block_iq4_xs; ggml-org/llama.cpp#5590 and #5747). */
#include "engine/quant_internal.h"

const int8_t quant_iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                       1,    13,   25,  38,  53,  69,  89,  113};

/* IQ4_NL: x = d * level[q]; byte j holds element j (low nibble) and element j+16 (high). */
static void dequantize_block_iq4_nl(const struct block_iq4_nl *b, float *y /* [32] */) {
  float d = quant_f16_to_f32(b->d);
  for (int j = 0; j < QK4_NL / 2; j++) {
    y[j] = d * (float)quant_iq4nl_values[b->qs[j] & 0x0f];
    y[j + QK4_NL / 2] = d * (float)quant_iq4nl_values[b->qs[j] >> 4];
  }
}

/* IQ4_XS: 8 sub-blocks of 32, each with a 6-bit scale biased by 32: low 4 bits in the nibble
 * ib % 2 of scales_l[ib / 2], high 2 bits at bit 2 * ib of scales_h. Values as in IQ4_NL. */
static void dequantize_block_iq4_xs(const struct block_iq4_xs *b, float *y /* [256] */) {
  float d = quant_f16_to_f32(b->d);
  uint16_t scales_h = quant_load_u16_le((const uint8_t *)&b->scales_h);
  for (int ib = 0; ib < QK_K / 32; ib++) {
    int ls = ((b->scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0f) | (((scales_h >> (2 * ib)) & 3) << 4);
    float dl = d * (float)(ls - 32);
    const uint8_t *qs = b->qs + 16 * ib;
    for (int j = 0; j < 16; j++) {
      y[j] = dl * (float)quant_iq4nl_values[qs[j] & 0x0f];
      y[j + 16] = dl * (float)quant_iq4nl_values[qs[j] >> 4];
    }
    y += 32;
  }
}

void quant_dequantize_iq4_nl(const void *src, float *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    dequantize_block_iq4_nl((const struct block_iq4_nl *)src + i, dst + i * QK4_NL);
}

void quant_dequantize_iq4_xs(const void *src, float *dst, int64_t nb) {
  for (int64_t i = 0; i < nb; i++)
    dequantize_block_iq4_xs((const struct block_iq4_xs *)src + i, dst + i * QK_K);
}
