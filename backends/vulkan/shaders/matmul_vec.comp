#version 450
// y[n, m] = dot(W row n, x[:, m]) for a few tokens (decode): one workgroup per (row, token), its
// invocations take 32-element chunks of the row in turn, and the partial sums meet in a shared
// tree (no subgroup-size assumption). W is bound as a window of rows [row0, row0 + N).
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x = 64) in;
layout(constant_id = 0) const uint TYPE = 0u;

layout(std430, binding = 0) readonly buffer WBuf { uint wq[]; };
layout(std430, binding = 1) readonly buffer XBuf { float xf[]; };
layout(std430, binding = 2) writeonly buffer YBuf { float yf[]; };

layout(push_constant) uniform Push {
  uint K, N, M;
  uint w_base, w_stride; // bytes
  uint x_base, x_stride; // floats
  uint y_base, y_stride; // floats
  uint row0;             // first output row of this window
  uint n_rows_total;     // rows per dispatch index fold (unused past N)
} p;

DEFINE_READERS(w, wq)
#include "dequant.glsl"

shared float red[64];

void main() {
  uint row = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  uint tok = gl_WorkGroupID.z;
  if (row >= p.N) return; // uniform per workgroup
  uint tid = gl_LocalInvocationID.x;
  uint rb = p.w_base + row * p.w_stride;
  uint xb = p.x_base + tok * p.x_stride;
  uint n_chunks = (p.K + 31u) / 32u;
  float acc = 0.0;
  for (uint c = tid; c < n_chunks; c += 64u) {
    float v[32];
    dequant32(rb, c, p.K, v);
    uint e0 = 32u * c;
    uint n = min(32u, p.K - e0);
    for (uint i = 0u; i < n; i++)
      acc += v[i] * xf[xb + e0 + i];
  }
  red[tid] = acc;
  barrier();
  for (uint s = 32u; s > 0u; s >>= 1) {
    if (tid < s) red[tid] += red[tid + s];
    barrier();
  }
  if (tid == 0u) yf[p.y_base + tok * p.y_stride + p.row0 + row] = red[0];
}
