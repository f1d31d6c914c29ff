#version 450
// dst = src converted, row by row (KV cache stores and reads): F32 -> F32/F16/Q8_0/Q4_0 and
// F16/Q8_0/Q4_0 -> F32. One invocation per unit of the destination row: an element (F32), a pair
// of elements (F16) or a 32-element block (Q8_0, quantized as the CPU does: d = amax / 127
// rounded to f16, q = round-half-even(x * 127 / amax); Q4_0 as ggml's quantize_row_q4_0_ref and
// engine/quant.c: d = (the value of largest magnitude) / -8, q = min(15, trunc(x / d + 8.5))).
// F16/Q8_0/Q4_0 rows need not start on a word, so the bytes of a unit are written as whole words
// where the unit covers them and with atomic and/or on the words it shares with a neighbour.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"
#include "rows.glsl"

layout(local_size_x = 64) in;
layout(constant_id = 0) const uint SRC_T = 0u;
layout(constant_id = 1) const uint DST_T = 0u;

layout(std430, binding = 0) readonly buffer SBuf { uint sq[]; };
layout(std430, binding = 1) buffer DBuf { uint dq[]; };

layout(push_constant) uniform Push {
  uint ne0, ne1, ne2, n_rows;
  uint s_base, s1, s2, s3; // bytes
  uint d_base, d1, d2, d3; // bytes
  uint n_units;            // per row
} p;

DEFINE_READERS(s, sq)

float src_elem(uint rb, uint e) {
  if (SRC_T == T_F32) return s_f32(rb + 4u * e);
  if (SRC_T == T_F16) return s_f16(rb + 2u * e);
  if (SRC_T == T_Q4_0) { // f16 d, qs[16]: element i < 16 low nibble of qs[i], else high of qs[i-16]
    uint blk = rb + 18u * (e >> 5), i = e & 31u;
    uint b = s_u8(blk + 2u + (i & 15u));
    return s_f16(blk) * (float(i < 16u ? b & 15u : b >> 4) - 8.0);
  }
  uint blk = rb + 34u * (e >> 5); // Q8_0
  return s_f16(blk) * float(sext8(s_u8(blk + 2u + (e & 31u))));
}

// Writes n (<= 36) bytes at byte offset o.
void put_bytes(uint o, uint by[36], uint n) {
  uint w0 = o >> 2, w1 = (o + n - 1u) >> 2;
  for (uint w = w0; w <= w1; w++) {
    uint val = 0u, mask = 0u;
    for (uint k = 0u; k < 4u; k++) {
      uint b = 4u * w + k;
      if (b >= o && b < o + n) {
        val |= by[b - o] << (8u * k);
        mask |= 0xffu << (8u * k);
      }
    }
    if (mask == 0xffffffffu) {
      dq[w] = val;
    } else {
      atomicAnd(dq[w], ~mask);
      atomicOr(dq[w], val);
    }
  }
}

void main() {
  uint g = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  uint idx = g * 64u + gl_LocalInvocationID.x;
  if (idx >= p.n_rows * p.n_units) return;
  uint r = idx / p.n_units, u = idx % p.n_units;
  uint sb = p.s_base + row_offset(r, p.ne1, p.ne2, p.s1, p.s2, p.s3);
  uint db = p.d_base + row_offset(r, p.ne1, p.ne2, p.d1, p.d2, p.d3);
  uint by[36];
  if (DST_T == T_F32) {
    dq[(db >> 2) + u] = floatBitsToUint(src_elem(sb, u));
  } else if (DST_T == T_F16) {
    uint e = 2u * u;
    uint h0 = f32_to_f16(src_elem(sb, e));
    by[0] = h0 & 0xffu;
    by[1] = h0 >> 8;
    uint n = 2u;
    if (e + 1u < p.ne0) {
      uint h1 = f32_to_f16(src_elem(sb, e + 1u));
      by[2] = h1 & 0xffu;
      by[3] = h1 >> 8;
      n = 4u;
    }
    put_bytes(db + 4u * u, by, n);
  } else if (DST_T == T_Q4_0) {
    float x[32];
    float amax = 0.0, vmax = 0.0;
    for (uint i = 0u; i < 32u; i++) {
      x[i] = src_elem(sb, 32u * u + i);
      if (amax < abs(x[i])) { // the first of equal magnitudes, as the CPU's index_of_amax
        amax = abs(x[i]);
        vmax = x[i];
      }
    }
    float d = vmax / -8.0; // exact: a power of two
    float id = d != 0.0 ? div_rn(1.0, d) : 0.0;
    uint h = f32_to_f16(d);
    by[0] = h & 0xffu;
    by[1] = h >> 8;
    for (uint i = 0u; i < 16u; i++) {
      precise float lo = x[i] * id + 8.5; // precise: no FMA, the CPU rounds the product first
      precise float hi = x[i + 16u] * id + 8.5;
      uint ql = lo >= 15.0 ? 15u : uint(int(lo));
      uint qh = hi >= 15.0 ? 15u : uint(int(hi));
      by[2u + i] = ql | (qh << 4);
    }
    put_bytes(db + 18u * u, by, 18u);
  } else { // Q8_0
    float x[32];
    float amax = 0.0;
    for (uint i = 0u; i < 32u; i++) {
      x[i] = src_elem(sb, 32u * u + i);
      amax = max(amax, abs(x[i]));
    }
    float d = div_rn(amax, 127.0);
    float id = amax != 0.0 ? div_rn(127.0, amax) : 0.0;
    uint h = f32_to_f16(d);
    by[0] = h & 0xffu;
    by[1] = h >> 8;
    for (uint i = 0u; i < 32u; i++) {
      precise float xs = x[i] * id;
      int q = int(clamp(roundEven(xs), -127.0, 127.0));
      by[2u + i] = uint(q) & 0xffu;
    }
    put_bytes(db + 34u * u, by, 34u);
  }
}
