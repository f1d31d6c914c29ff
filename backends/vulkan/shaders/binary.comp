#version 450
// Elementwise over rows of F32 tensors: OP 0 out = a + b (b broadcast over rows where its ne1,
// ne2 or ne3 is 1: a bias), OP 1 out = silu(a) * b. Strides in floats.
#extension GL_GOOGLE_include_directive : require
#include "rows.glsl"

layout(local_size_x = 64) in;
layout(constant_id = 0) const uint OP = 0u;

layout(std430, binding = 0) readonly buffer ABuf { float af[]; };
layout(std430, binding = 1) readonly buffer BBuf { float bf[]; };
layout(std430, binding = 2) writeonly buffer OBuf { float of[]; };

layout(push_constant) uniform Push {
  uint ne0, ne1, ne2, n_rows;
  uint a_base, a1, a2, a3;
  uint b_base, b1, b2, b3; // 0 stride where b broadcasts
  uint o_base, o1, o2, o3;
} p;

void main() {
  uint g = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  uint idx = g * 64u + gl_LocalInvocationID.x;
  if (idx >= p.n_rows * p.ne0) return;
  uint r = idx / p.ne0, e = idx % p.ne0;
  float a = af[p.a_base + row_offset(r, p.ne1, p.ne2, p.a1, p.a2, p.a3) + e];
  float b = bf[p.b_base + row_offset(r, p.ne1, p.ne2, p.b1, p.b2, p.b3) + e];
  float o;
  if (OP == 0u) {
    o = a + b;
  } else {
    o = a / (1.0 + exp(-a)) * b;
  }
  of[p.o_base + row_offset(r, p.ne1, p.ne2, p.o1, p.o2, p.o3) + e] = o;
}
