// Shared helpers for the compute shaders. Quantized data is bound as uint[] and read at byte
// offsets (blocks of 18, 22 or 34 bytes are not word-aligned), so no 8/16-bit storage feature is
// needed. Layouts: ggml-common.h, as engine/quant.h describes them.

// Quant type ids (enum quant_type, engine/quant.h).
#define T_F32 0u
#define T_F16 1u
#define T_Q4_0 2u
#define T_Q5_0 6u
#define T_Q8_0 8u
#define T_Q4_K 12u
#define T_Q5_K 13u
#define T_Q6_K 14u
#define T_IQ3_XXS 18u
#define T_IQ4_NL 20u
#define T_IQ3_S 21u
#define T_IQ4_XS 23u

// The 16 non-linear levels of IQ4_NL / IQ4_XS (quant_iq4nl_values, engine/quant_iq.c).
const float IQ4NL_LEVELS[16] = float[](-127.0, -104.0, -83.0, -65.0, -49.0, -35.0, -22.0, -10.0,
                                       1.0, 13.0, 25.0, 38.0, 53.0, 69.0, 89.0, 113.0);

// Byte readers over a uint[] named BUF: u8 at any offset, u16 at even offsets, u32 at even
// offsets (two words when it straddles), f16 at even offsets.
#define DEFINE_READERS(P, BUF)                                                                 \
  uint P##_u8(uint b) { return (BUF[b >> 2] >> ((b & 3u) * 8u)) & 0xffu; }                     \
  uint P##_u16(uint b) { return (BUF[b >> 2] >> ((b & 2u) * 8u)) & 0xffffu; }                  \
  uint P##_u32(uint b) {                                                                       \
    uint s = (b & 3u) * 8u;                                                                    \
    uint lo = BUF[b >> 2];                                                                     \
    return s == 0u ? lo : (lo >> s) | (BUF[(b >> 2) + 1u] << (32u - s));                       \
  }                                                                                            \
  float P##_f16(uint b) { return unpackHalf2x16(P##_u16(b)).x; }                               \
  float P##_f32(uint b) { return uintBitsToFloat(P##_u32(b)); }

int sext8(uint v) { return int(v << 24) >> 24; }

// f32 -> f16 bits, round to nearest even (packHalf2x16's rounding is implementation-defined, and
// the KV cache must match the CPU's quant_f32_to_f16).
uint f32_to_f16(float f) {
  uint x = floatBitsToUint(f);
  uint sign = (x >> 16) & 0x8000u;
  uint e = (x >> 23) & 0xffu;
  uint m = x & 0x7fffffu;
  if (e == 0xffu) return sign | 0x7c00u | (m != 0u ? 0x200u : 0u);
  int ex = int(e) - 127 + 15;
  if (ex >= 31) return sign | 0x7c00u;
  if (ex <= 0) {
    if (ex < -10) return sign;
    m |= 0x800000u;
    uint shift = uint(14 - ex);
    uint h = m >> shift;
    uint rem = m & ((1u << shift) - 1u);
    uint half_ = 1u << (shift - 1u);
    if (rem > half_ || (rem == half_ && (h & 1u) != 0u)) h++;
    return sign | h;
  }
  uint h = (uint(ex) << 10) | (m >> 13);
  uint rem = m & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u) != 0u)) h++;
  return sign | h; // a carry into the exponent is the right rounding (up to infinity)
}

// a / b rounded to nearest (GLSL division may be 2.5 ulp off; one FMA correction step makes the
// Q8_0 scales of the KV cache match the CPU's).
float div_rn(float a, float b) {
  precise float q = a / b;
  precise float r = fma(-q, b, a);
  return fma(r, 1.0 / b, q);
}
