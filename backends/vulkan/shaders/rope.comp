#version 450
// RoPE in place on x[head_dim, n_head, n_tokens] (Su et al. 2021): pair i of every head of token
// t rotates by the angle whose cos/sin the host computed into cs[t][n_rot] (GLSL's sin/cos are
// only specified to 2^-11 on [-pi, pi], and far positions need full precision). Normal layout
// pairs (2i, 2i + 1), NeoX pairs (i, i + n_rot / 2).
layout(local_size_x = 64) in;

layout(std430, binding = 0) buffer XBuf { float xf[]; };
layout(std430, binding = 1) readonly buffer CsBuf { float cs[]; };

layout(push_constant) uniform Push {
  uint n_pairs, n_head, n_tokens, neox;
  uint x_base, x_head, x_token; // floats
  uint n_rot;
} p;

void main() {
  uint g = gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
  uint idx = g * 64u + gl_LocalInvocationID.x;
  if (idx >= p.n_pairs * p.n_head * p.n_tokens) return;
  uint i = idx % p.n_pairs, h = (idx / p.n_pairs) % p.n_head, t = idx / (p.n_pairs * p.n_head);
  uint xb = p.x_base + h * p.x_head + t * p.x_token;
  uint a = p.neox != 0u ? i : 2u * i;
  uint b = p.neox != 0u ? i + p.n_rot / 2u : 2u * i + 1u;
  float c = cs[t * p.n_rot + 2u * i], s = cs[t * p.n_rot + 2u * i + 1u];
  float x0 = xf[xb + a], x1 = xf[xb + b];
  xf[xb + a] = fma(x0, c, -(x1 * s));
  xf[xb + b] = fma(x0, s, x1 * c);
}
