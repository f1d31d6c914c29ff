#version 450
// matmul_vec.comp without barriers: each subgroup owns whole rows, its lanes take 32-element
// chunks of the row in turn, and subgroupAdd sums the lanes. A shared-memory tree costs six
// barriers per row, which a CPU implementation (lavapipe) pays as six coroutine switches per
// workgroup; here a workgroup of 64 invocations covers ROWS rows with none. Taken only when the
// device reports subgroup arithmetic in compute shaders (vk_device.c); the host sets ROWS to 64 /
// its subgroup size, and the loop below stays correct if the driver picks another size.
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#include "common.glsl"

layout(local_size_x = 64) in;
layout(constant_id = 0) const uint TYPE = 0u;
layout(constant_id = 1) const uint ROWS = 1u; // rows per workgroup

layout(std430, binding = 0) readonly buffer WBuf { uint wq[]; };
layout(std430, binding = 1) readonly buffer XBuf { float xf[]; };
layout(std430, binding = 2) writeonly buffer YBuf { float yf[]; };

layout(push_constant) uniform Push {
  uint K, N, M;
  uint w_base, w_stride; // bytes
  uint x_base, x_stride; // floats
  uint y_base, y_stride; // floats
  uint row0;             // first output row of this window
} p;

DEFINE_READERS(w, wq)
#include "dequant.glsl"

void main() {
  uint first = (gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x) * ROWS;
  uint tok = gl_WorkGroupID.z;
  uint lane = gl_SubgroupInvocationID, width = gl_SubgroupSize;
  uint xb = p.x_base + tok * p.x_stride;
  uint n_chunks = (p.K + 31u) / 32u;
  for (uint r = gl_SubgroupID; r < ROWS; r += gl_NumSubgroups) {
    uint row = first + r;
    if (row >= p.N) break; // uniform per subgroup
    uint rb = p.w_base + row * p.w_stride;
    float acc = 0.0;
    for (uint c = lane; c < n_chunks; c += width) {
      float v[32];
      dequant32(rb, c, p.K, v);
      uint e0 = 32u * c;
      uint n = min(32u, p.K - e0);
      for (uint i = 0u; i < n; i++)
        acc += v[i] * xf[xb + e0 + i];
    }
    acc = subgroupAdd(acc);
    if (lane == 0u) yf[p.y_base + tok * p.y_stride + p.row0 + row] = acc;
  }
}
