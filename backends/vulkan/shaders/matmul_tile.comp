#version 450
// y[n, m] = dot(W row n, x[:, m]) for prompt batches: a workgroup computes a 32-row x 32-token
// tile, staging one 32-element slice of W (dequantized once for all 32 tokens) and of x in
// shared memory per step (8.4 KiB); each of the 64 invocations owns 4 rows x 4 tokens.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x = 64) in;
layout(constant_id = 0) const uint TYPE = 0u;

layout(std430, binding = 0) readonly buffer WBuf { uint wq[]; };
layout(std430, binding = 1) readonly buffer XBuf { float xf[]; };
layout(std430, binding = 2) writeonly buffer YBuf { float yf[]; };

layout(push_constant) uniform Push {
  uint K, N, M;
  uint w_base, w_stride;
  uint x_base, x_stride;
  uint y_base, y_stride;
  uint row0;
  uint n_row_tiles; // workgroups along the rows (the rest of the index is the token tile)
} p;

DEFINE_READERS(w, wq)
#include "dequant.glsl"

shared float ws[32][33];
shared float xs[32][33];

void main() {
  uint g = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  uint rt = g % p.n_row_tiles, tt = g / p.n_row_tiles;
  if (tt * 32u >= p.M) return; // uniform per workgroup
  uint n0 = rt * 32u, m0 = tt * 32u;
  uint tid = gl_LocalInvocationID.x;
  uint ri = (tid & 7u) * 4u, ti = (tid >> 3) * 4u;
  float acc[4][4];
  for (uint a = 0u; a < 4u; a++)
    for (uint b = 0u; b < 4u; b++)
      acc[a][b] = 0.0;
  uint n_chunks = (p.K + 31u) / 32u;
  for (uint c = 0u; c < n_chunks; c++) {
    if (tid < 32u) {
      float v[32];
      if (n0 + tid < p.N) {
        dequant32(p.w_base + (n0 + tid) * p.w_stride, c, p.K, v);
      } else {
        for (uint i = 0u; i < 32u; i++)
          v[i] = 0.0;
      }
      for (uint i = 0u; i < 32u; i++)
        ws[tid][i] = v[i];
    }
    for (uint q = 0u; q < 16u; q++) {
      uint idx = tid + 64u * q;
      uint t = idx >> 5, kk = idx & 31u;
      uint e = 32u * c + kk;
      xs[t][kk] = (m0 + t < p.M && e < p.K) ? xf[p.x_base + (m0 + t) * p.x_stride + e] : 0.0;
    }
    barrier();
    for (uint kk = 0u; kk < 32u; kk++) {
      float a[4], b[4];
      for (uint i = 0u; i < 4u; i++) {
        a[i] = ws[ri + i][kk];
        b[i] = xs[ti + i][kk];
      }
      for (uint i = 0u; i < 4u; i++)
        for (uint j = 0u; j < 4u; j++)
          acc[i][j] += a[i] * b[j];
    }
    barrier();
  }
  for (uint i = 0u; i < 4u; i++) {
    for (uint j = 0u; j < 4u; j++) {
      uint n = n0 + ri + i, m = m0 + ti + j;
      if (n < p.N && m < p.M) yf[p.y_base + m * p.y_stride + p.row0 + n] = acc[i][j];
    }
  }
}
