#version 450
// out = softmax(q k^T * scale + causal mask) v for one (query head, token) per workgroup, over
// the KV cache [head_dim, n_head_kv, n_ctx] of type K_T / V_T (F32, F16, Q8_0 or Q4_0), query head h
// reading KV head h / (n_head / n_head_kv) (GQA). Cache rows are visited in chunks of 256 with
// an online softmax (running max and sum, Milakov & Gimelshein 2018), so any context length
// fits in 3.3 KiB of shared memory. head_dim <= 512: each invocation owns 8 output columns.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x = 64) in;
layout(constant_id = 0) const uint K_T = 1u;
layout(constant_id = 1) const uint V_T = 1u;

layout(std430, binding = 0) readonly buffer QBuf { float qf[]; };
layout(std430, binding = 1) readonly buffer KBuf { uint kq[]; };
layout(std430, binding = 2) readonly buffer VBuf { uint vq[]; };
layout(std430, binding = 3) writeonly buffer OBuf { float of[]; };
layout(std430, binding = 4) readonly buffer PBuf { int q_pos[]; };

layout(push_constant) uniform Push {
  uint hd, n_head, n_head_kv, n_tokens;
  uint n_kv;
  float scale;
  uint q_base, q_head, q_token; // floats
  uint o_base, o_head, o_token; // floats
  uint k_base, k_head, k_pos;   // bytes
  uint v_base, v_head, v_pos;   // bytes
} p;

DEFINE_READERS(k, kq)
DEFINE_READERS(v, vq)

#define CHUNK 256u

// Q4_0 (ggml-common.h block_q4_0, 18 bytes): f16 d, qs[16]; element i < 16 of a block is the low
// nibble of qs[i], element i >= 16 the high nibble of qs[i - 16]; value d (q - 8).
float q4_0_k(uint rb, uint d) {
  uint blk = rb + 18u * (d >> 5), i = d & 31u;
  uint b = k_u8(blk + 2u + (i & 15u));
  return k_f16(blk) * (float(i < 16u ? b & 15u : b >> 4) - 8.0);
}

float q4_0_v(uint rb, uint d) {
  uint blk = rb + 18u * (d >> 5), i = d & 31u;
  uint b = v_u8(blk + 2u + (i & 15u));
  return v_f16(blk) * (float(i < 16u ? b & 15u : b >> 4) - 8.0);
}

shared float qs[512];
shared float sc[CHUNK];
shared float red[64];

float k_elem(uint rb, uint d) {
  if (K_T == T_F32) return k_f32(rb + 4u * d);
  if (K_T == T_F16) return k_f16(rb + 2u * d);
  if (K_T == T_Q4_0) return q4_0_k(rb, d);
  uint blk = rb + 34u * (d >> 5);
  return k_f16(blk) * float(sext8(k_u8(blk + 2u + (d & 31u))));
}

float v_elem(uint rb, uint d) {
  if (V_T == T_F32) return v_f32(rb + 4u * d);
  if (V_T == T_F16) return v_f16(rb + 2u * d);
  if (V_T == T_Q4_0) return q4_0_v(rb, d);
  uint blk = rb + 34u * (d >> 5);
  return v_f16(blk) * float(sext8(v_u8(blk + 2u + (d & 31u))));
}

float reduce_max(float x) {
  uint tid = gl_LocalInvocationID.x;
  red[tid] = x;
  barrier();
  for (uint s = 32u; s > 0u; s >>= 1) {
    if (tid < s) red[tid] = max(red[tid], red[tid + s]);
    barrier();
  }
  float r = red[0];
  barrier();
  return r;
}

float reduce_sum(float x) {
  uint tid = gl_LocalInvocationID.x;
  red[tid] = x;
  barrier();
  for (uint s = 32u; s > 0u; s >>= 1) {
    if (tid < s) red[tid] += red[tid + s];
    barrier();
  }
  float r = red[0];
  barrier();
  return r;
}

void main() {
  uint h = gl_WorkGroupID.x, t = gl_WorkGroupID.y;
  uint tid = gl_LocalInvocationID.x;
  uint g = h / (p.n_head / p.n_head_kv);
  int vis = min(q_pos[t] + 1, int(p.n_kv));
  uint n_vis = vis > 0 ? uint(vis) : 0u;
  uint qb = p.q_base + h * p.q_head + t * p.q_token;
  for (uint d = tid; d < p.hd; d += 64u)
    qs[d] = qf[qb + d];
  barrier();
  const float NEG_INF = uintBitsToFloat(0xff800000u);
  float m = NEG_INF, l = 0.0;
  float acc[8];
  for (uint i = 0u; i < 8u; i++)
    acc[i] = 0.0;
  uint kb0 = p.k_base + g * p.k_head, vb0 = p.v_base + g * p.v_head;
  for (uint j0 = 0u; j0 < n_vis; j0 += CHUNK) {
    uint nj = min(CHUNK, n_vis - j0);
    float cmax = NEG_INF;
    for (uint jj = tid; jj < nj; jj += 64u) {
      uint kb = kb0 + (j0 + jj) * p.k_pos;
      float s = 0.0;
      for (uint d = 0u; d < p.hd; d++)
        s += qs[d] * k_elem(kb, d);
      s *= p.scale;
      sc[jj] = s;
      cmax = max(cmax, s);
    }
    float new_m = max(m, reduce_max(cmax)); // reduce_max's barriers also publish sc
    float corr = exp(m - new_m);
    float psum = 0.0;
    for (uint jj = tid; jj < nj; jj += 64u) {
      float e = exp(sc[jj] - new_m);
      sc[jj] = e;
      psum += e;
    }
    l = l * corr + reduce_sum(psum);
    for (uint i = 0u; i < 8u; i++)
      acc[i] *= corr;
    for (uint jj = 0u; jj < nj; jj++) {
      uint vb = vb0 + (j0 + jj) * p.v_pos;
      float pj = sc[jj];
      for (uint i = 0u; i < 8u; i++) {
        uint d = tid + 64u * i;
        if (d < p.hd) acc[i] += pj * v_elem(vb, d);
      }
    }
    m = new_m;
    barrier(); // sc is rewritten by the next chunk
  }
  uint ob = p.o_base + h * p.o_head + t * p.o_token;
  for (uint i = 0u; i < 8u; i++) {
    uint d = tid + 64u * i;
    if (d < p.hd) of[ob + d] = n_vis > 0u ? acc[i] / l : 0.0;
  }
}
