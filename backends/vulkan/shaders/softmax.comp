#version 450
// In place softmax over ne0 of each row (row max subtracted first), one workgroup per row.
#extension GL_GOOGLE_include_directive : require
#include "rows.glsl"

layout(local_size_x = 128) in;

layout(std430, binding = 0) buffer XBuf { float xf[]; };

layout(push_constant) uniform Push {
  uint ne0, ne1, ne2, n_rows;
  uint x_base, x1, x2, x3;
} p;

shared float red[128];

void main() {
  uint r = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  if (r >= p.n_rows) return;
  uint tid = gl_LocalInvocationID.x;
  uint xb = p.x_base + row_offset(r, p.ne1, p.ne2, p.x1, p.x2, p.x3);
  float m = uintBitsToFloat(0xff800000u); // -inf
  for (uint i = tid; i < p.ne0; i += 128u)
    m = max(m, xf[xb + i]);
  red[tid] = m;
  barrier();
  for (uint h = 64u; h > 0u; h >>= 1) {
    if (tid < h) red[tid] = max(red[tid], red[tid + h]);
    barrier();
  }
  m = red[0];
  barrier();
  float s = 0.0;
  for (uint i = tid; i < p.ne0; i += 128u) {
    float e = exp(xf[xb + i] - m);
    xf[xb + i] = e;
    s += e;
  }
  red[tid] = s;
  barrier();
  for (uint h = 64u; h > 0u; h >>= 1) {
    if (tid < h) red[tid] += red[tid + h];
    barrier();
  }
  float inv = 1.0 / red[0];
  for (uint i = tid; i < p.ne0; i += 128u)
    xf[xb + i] *= inv;
}
