#version 450
// y[:, r] = x[:, r] / sqrt(mean(x[:, r]^2) + eps) * w, one workgroup per row. The CPU sums in
// double; here the 128 partial sums are floats folded as a tree.
#extension GL_GOOGLE_include_directive : require
#include "rows.glsl"

layout(local_size_x = 128) in;

layout(std430, binding = 0) readonly buffer XBuf { float xf[]; };
layout(std430, binding = 1) readonly buffer WBuf { float wf[]; };
layout(std430, binding = 2) buffer YBuf { float yf[]; }; // may alias x (in place)

layout(push_constant) uniform Push {
  uint ne0, ne1, ne2, n_rows;
  uint x_base, x1, x2, x3;
  uint y_base, y1, y2, y3;
  uint w_base;
  float eps;
} p;

shared float red[128];

void main() {
  uint r = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  if (r >= p.n_rows) return;
  uint tid = gl_LocalInvocationID.x;
  uint xb = p.x_base + row_offset(r, p.ne1, p.ne2, p.x1, p.x2, p.x3);
  uint yb = p.y_base + row_offset(r, p.ne1, p.ne2, p.y1, p.y2, p.y3);
  float s = 0.0;
  for (uint i = tid; i < p.ne0; i += 128u)
    s += xf[xb + i] * xf[xb + i];
  red[tid] = s;
  barrier();
  for (uint h = 64u; h > 0u; h >>= 1) {
    if (tid < h) red[tid] += red[tid + h];
    barrier();
  }
  float scale = 1.0 / sqrt(red[0] / float(p.ne0) + p.eps);
  for (uint i = tid; i < p.ne0; i += 128u)
    yf[yb + i] = (xf[xb + i] * scale) * wf[p.w_base + i];
}
