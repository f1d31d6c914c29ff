#version 450
// out[:, i] = dequantized row ids[i] of the table, for the ids inside this dispatch's window of
// table rows [row0, row1): a table larger than one binding is covered by several dispatches.
#extension GL_GOOGLE_include_directive : require
#include "common.glsl"

layout(local_size_x = 64) in;
layout(constant_id = 0) const uint TYPE = 0u;

layout(std430, binding = 0) readonly buffer WBuf { uint wq[]; };
layout(std430, binding = 1) readonly buffer IdBuf { int ids[]; };
layout(std430, binding = 2) writeonly buffer OBuf { float of[]; };

layout(push_constant) uniform Push {
  uint K, n_ids;
  uint w_base, w_stride; // bytes, w_base is row row0
  uint o_base, o_stride; // floats
  uint row0, row1;
} p;

DEFINE_READERS(w, wq)
#include "dequant.glsl"

void main() {
  uint i = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  if (i >= p.n_ids) return;
  uint id = uint(ids[i]);
  if (id < p.row0 || id >= p.row1) return;
  uint rb = p.w_base + (id - p.row0) * p.w_stride;
  uint n_chunks = (p.K + 31u) / 32u;
  for (uint c = gl_LocalInvocationID.x; c < n_chunks; c += 64u) {
    float v[32];
    dequant32(rb, c, p.K, v);
    uint n = min(32u, p.K - 32u * c);
    for (uint t = 0u; t < n; t++)
      of[p.o_base + i * p.o_stride + 32u * c + t] = v[t];
  }
}
