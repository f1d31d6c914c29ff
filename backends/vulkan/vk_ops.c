/* The Vulkan backend's ops and its table: each op validates its descriptors as the CPU backend
 * does, turns them into bindings and push constants, and records dispatches (shaders/NAME.comp).
 * Weight tensors larger than one binding (maxStorageBufferRange: 128 MiB on lavapipe, less than
 * the 0.5B model's token_embd) are covered by windows of whole rows, one dispatch each;
 * activations and the KV cache must fit one binding. supports_op says exactly what is
 * implemented, per op and type, so that the caller can keep the rest on the CPU. */
#include <stdio.h>
#include <string.h>

#include "backends/cpu/cpu_ref.h"
#include "backends/vulkan/vk_internal.h"
#include "backends/vulkan/vulkan_backend.h"

/* ---- descriptors ----------------------------------------------------------------------------- */

static size_t tensor_plane(const struct backend_tensor *t) {
  return t->plane_stride ? t->plane_stride : (size_t)t->ne[1] * t->row_stride;
}

/* Known type, positive dims, rows that fit their stride, everything inside the buffer (the CPU
 * backend's rules), and strides that fit the shaders' 32-bit offsets. */
static int tensor_check(const struct backend_tensor *t) {
  const struct quant_type_traits *tr = quant_traits(t->type);
  if (!tr || !t->buffer) return AUG_EINVAL;
  for (int i = 0; i < 4; i++) {
    if (t->ne[i] < 1 || t->ne[i] > UINT32_MAX) return AUG_EINVAL;
  }
  size_t row = quant_row_size(t->type, (uint64_t)t->ne[0]);
  if (row == 0) return AUG_EINVAL;
  bool derived_planes = t->plane_stride == 0 && t->ne[2] * t->ne[3] > 1;
  if (t->row_stride < row && (t->ne[1] > 1 || derived_planes)) return AUG_EINVAL;
  size_t plane = tensor_plane(t);
  size_t last = t->offset + (size_t)(t->ne[1] - 1) * t->row_stride +
                ((size_t)(t->ne[2] * t->ne[3]) - 1) * plane + row;
  if (last > t->buffer->size) return AUG_EINVAL;
  if (t->row_stride > UINT32_MAX || plane * (size_t)t->ne[2] > UINT32_MAX) return AUG_ERANGE;
  return 0;
}

/* F32 tensors are read as float[]: offset and strides in whole floats. */
static int tensor_check_f32(const struct backend_tensor *t) {
  int rc = tensor_check(t);
  if (rc) return rc;
  if (t->type != QUANT_F32) return AUG_EINVAL;
  if (t->offset % 4 || t->row_stride % 4 || t->plane_stride % 4) return AUG_EINVAL;
  return 0;
}

/* Bytes [offset, end) a tensor touches. */
static size_t tensor_end(const struct backend_tensor *t) {
  size_t row = quant_row_size(t->type, (uint64_t)t->ne[0]);
  return t->offset + (size_t)(t->ne[1] - 1) * t->row_stride +
         ((size_t)(t->ne[2] * t->ne[3]) - 1) * tensor_plane(t) + row;
}

/* The whole tensor as one binding; AUG_EUNSUPPORTED when it is larger than a binding. */
static int tensor_bind(struct backend *be, const struct backend_tensor *t, struct vk_binding *b) {
  int rc = vk_bind_range(be, t->buffer, t->offset, tensor_end(t), b);
  return rc == AUG_ERANGE ? AUG_EUNSUPPORTED : rc;
}

/* Row strides of a tensor for the shaders' row_offset(): (ne1, ne2, ne3) strides in units. */
static void tensor_strides(const struct backend_tensor *t, size_t unit, uint32_t s[3]) {
  size_t plane = tensor_plane(t);
  s[0] = (uint32_t)(t->row_stride / unit);
  s[1] = (uint32_t)(plane / unit);
  s[2] = (uint32_t)(plane * (size_t)t->ne[2] / unit);
}

static bool same_shape(const struct backend_tensor *a, const struct backend_tensor *b) {
  return a->ne[0] == b->ne[0] && a->ne[1] == b->ne[1] && a->ne[2] == b->ne[2] &&
         a->ne[3] == b->ne[3];
}

static uint32_t f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

static bool vk_weight_type(uint32_t type) {
  switch (type) {
  case QUANT_F32:
  case QUANT_F16:
  case QUANT_Q4_0:
  case QUANT_Q5_0:
  case QUANT_Q8_0:
  case QUANT_Q4_K:
  case QUANT_Q5_K:
  case QUANT_Q6_K:
  case QUANT_IQ3_XXS:
  case QUANT_IQ3_S:
  case QUANT_IQ4_NL:
  case QUANT_IQ4_XS: return true;
  default: return false;
  }
}

/* The IQ grid table (binding VK_GRID_BINDING of the weight shaders, shaders/dequant.glsl). */
static int grid_bind(struct backend *be, struct vk_binding *b) {
  return vk_bind_range(be, be->iq_grids, 0, be->iq_grids->size, b);
}

/* KV cache types: attention.comp reads them, copy.comp writes (quantizes) and reads them. */
static bool vk_kv_type(uint32_t type) {
  return type == QUANT_F32 || type == QUANT_F16 || type == QUANT_Q8_0 || type == QUANT_Q4_0;
}

/* ---- weight windows ---------------------------------------------------------------------------
 */

/* Rows [r0, r0 + *n) of w as one binding, *n as large as a binding allows (at most n_left). */
static int weight_window(struct backend *be, const struct backend_tensor *w, int64_t r0,
                         int64_t n_left, struct vk_binding *b, int64_t *n) {
  size_t row = quant_row_size(w->type, (uint64_t)w->ne[0]);
  size_t slack = (size_t)be->binding_align + row + 4;
  if (be->max_binding < slack) return AUG_EUNSUPPORTED;
  int64_t fit = (int64_t)((be->max_binding - slack) / (w->row_stride ? w->row_stride : row)) + 1;
  *n = n_left < fit ? n_left : fit;
  size_t first = w->offset + (size_t)r0 * w->row_stride;
  size_t end = first + (size_t)(*n - 1) * w->row_stride + row;
  int rc = vk_bind_range(be, w->buffer, first, end, b);
  return rc == AUG_ERANGE ? AUG_EUNSUPPORTED : rc;
}

static int64_t weight_windows(struct backend *be, const struct backend_tensor *w) {
  size_t row = quant_row_size(w->type, (uint64_t)w->ne[0]);
  size_t slack = (size_t)be->binding_align + row + 4;
  if (be->max_binding < slack) return -1;
  int64_t fit = (int64_t)((be->max_binding - slack) / (w->row_stride ? w->row_stride : row)) + 1;
  return (w->ne[1] + fit - 1) / fit;
}

/* ---- matmul -----------------------------------------------------------------------------------
 */

/* Batches below this many tokens take the matrix-vector shader (weights re-read per token); from
 * here the tiled one (each weight slice dequantized once per 32 tokens). */
#define VK_MATMUL_TILE_MIN_TOKENS 8

static int vk_matmul(struct backend *be, const struct backend_tensor *w,
                     const struct backend_tensor *x, struct backend_tensor *y) {
  if (be->lost) return be->lost;
  if (tensor_check(w) || tensor_check_f32(x) || tensor_check_f32(y)) return AUG_EINVAL;
  int64_t k = w->ne[0], n = w->ne[1], m = x->ne[1];
  if (x->ne[0] != k || y->ne[0] != n || y->ne[1] != m) return AUG_EINVAL;
  if (w->ne[2] * w->ne[3] != 1 || x->ne[2] * x->ne[3] != 1 || y->ne[2] * y->ne[3] != 1)
    return AUG_EINVAL;
  if (!vk_weight_type(w->type)) return AUG_EUNSUPPORTED;
  struct vk_binding bx, by, bg;
  int rc = tensor_bind(be, x, &bx);
  if (rc == 0) rc = tensor_bind(be, y, &by);
  if (rc == 0) rc = grid_bind(be, &bg);
  if (rc) return rc;
  int64_t n_windows = weight_windows(be, w);
  if (n_windows < 1) return AUG_EUNSUPPORTED;
  rc = vk_reserve(be, (uint32_t)n_windows, 0);
  if (rc) return rc;
  bool tiled = m >= VK_MATMUL_TILE_MIN_TOKENS && !be->decode_order;
  uint32_t rows_per_group = tiled ? 1 : (be->subgroup_rows ? be->subgroup_rows : 1);
  const char *shader = tiled ? "matmul_tile" : be->subgroup_rows ? "matmul_vec_sg" : "matmul_vec";
  const uint32_t spec[VK_MAX_SPEC] = {w->type, rows_per_group};
  for (int64_t r0 = 0; r0 < n;) {
    struct vk_binding bw;
    int64_t rows;
    rc = weight_window(be, w, r0, n - r0, &bw, &rows);
    if (rc) return rc;
    uint32_t groups[3];
    uint32_t n_row_tiles = (uint32_t)((rows + 31) / 32);
    if (tiled) {
      vk_groups_2d(be, (uint64_t)n_row_tiles * (uint64_t)((m + 31) / 32), groups);
    } else {
      vk_groups_2d(be, ((uint64_t)rows + rows_per_group - 1) / rows_per_group, groups);
      groups[2] = (uint32_t)m;
    }
    uint32_t push[] = {
        (uint32_t)k,
        (uint32_t)rows,
        (uint32_t)m,
        bw.base,
        (uint32_t)w->row_stride,
        bx.base / 4,
        (uint32_t)(x->row_stride / 4),
        by.base / 4,
        (uint32_t)(y->row_stride / 4),
        (uint32_t)r0,
        n_row_tiles,
    };
    const struct vk_binding *binds[VK_BINDINGS] = {
        [0] = &bw, [1] = &bx, [2] = &by, [VK_GRID_BINDING] = &bg};
    rc = vk_dispatch(be, shader, spec, binds, push, sizeof push / sizeof push[0], groups);
    if (rc) return rc;
    r0 += rows;
  }
  return 0;
}

/* ---- get_rows -----------------------------------------------------------------------------------
 */

static int vk_get_rows(struct backend *be, const struct backend_tensor *table, const int32_t *ids,
                       int64_t n_ids, struct backend_tensor *out) {
  if (be->lost) return be->lost;
  if (tensor_check(table) || tensor_check_f32(out) || !ids || n_ids < 1) return AUG_EINVAL;
  if (out->ne[0] != table->ne[0] || out->ne[1] != n_ids || out->ne[2] * out->ne[3] != 1 ||
      table->ne[2] * table->ne[3] != 1) {
    return AUG_EINVAL;
  }
  for (int64_t i = 0; i < n_ids; i++) {
    if (ids[i] < 0 || ids[i] >= table->ne[1]) return AUG_ERANGE;
  }
  if (!vk_weight_type(table->type)) return AUG_EUNSUPPORTED;
  struct vk_binding bo, bi, bg;
  int rc = tensor_bind(be, out, &bo);
  if (rc == 0) rc = grid_bind(be, &bg);
  if (rc) return rc;
  int64_t n_windows = weight_windows(be, table);
  if (n_windows < 1) return AUG_EUNSUPPORTED;
  rc = vk_reserve(be, (uint32_t)n_windows, (size_t)n_ids * sizeof(int32_t));
  if (rc == 0) rc = vk_host_param(be, ids, (size_t)n_ids * sizeof(int32_t), &bi, NULL);
  if (rc) return rc;
  const uint32_t spec[VK_MAX_SPEC] = {table->type};
  for (int64_t r0 = 0; r0 < table->ne[1];) {
    struct vk_binding bw;
    int64_t rows;
    rc = weight_window(be, table, r0, table->ne[1] - r0, &bw, &rows);
    if (rc) return rc;
    bool used = false; /* a window no id falls in costs no dispatch */
    for (int64_t i = 0; i < n_ids && !used; i++)
      used = ids[i] >= r0 && ids[i] < r0 + rows;
    if (used) {
      uint32_t push[] = {
          (uint32_t)table->ne[0],
          (uint32_t)n_ids,
          bw.base,
          (uint32_t)table->row_stride,
          bo.base / 4,
          (uint32_t)(out->row_stride / 4),
          (uint32_t)r0,
          (uint32_t)(r0 + rows),
      };
      uint32_t groups[3];
      vk_groups_2d(be, (uint64_t)n_ids, groups);
      const struct vk_binding *binds[VK_BINDINGS] = {
          [0] = &bw, [1] = &bi, [2] = &bo, [VK_GRID_BINDING] = &bg};
      rc = vk_dispatch(be, "get_rows", spec, binds, push, sizeof push / sizeof push[0], groups);
      if (rc) return rc;
    }
    r0 += rows;
  }
  return 0;
}

/* ---- row ops -----------------------------------------------------------------------------------
 */

static int64_t tensor_rows(const struct backend_tensor *t) {
  return t->ne[1] * t->ne[2] * t->ne[3];
}

static int vk_rms_norm(struct backend *be, const struct backend_tensor *x,
                       const struct backend_tensor *w, float eps, struct backend_tensor *y) {
  if (be->lost) return be->lost;
  if (tensor_check_f32(x) || tensor_check_f32(w) || tensor_check_f32(y)) return AUG_EINVAL;
  if (!same_shape(x, y) || w->ne[0] != x->ne[0]) return AUG_EINVAL;
  struct vk_binding bx, bw, by;
  int rc = tensor_bind(be, x, &bx);
  if (rc == 0) rc = tensor_bind(be, w, &bw);
  if (rc == 0) rc = tensor_bind(be, y, &by);
  if (rc == 0) rc = vk_reserve(be, 1, 0);
  if (rc) return rc;
  uint32_t xs[3], ys[3];
  tensor_strides(x, 4, xs);
  tensor_strides(y, 4, ys);
  int64_t rows = tensor_rows(x);
  uint32_t push[] = {(uint32_t)x->ne[0],
                     (uint32_t)x->ne[1],
                     (uint32_t)x->ne[2],
                     (uint32_t)rows,
                     bx.base / 4,
                     xs[0],
                     xs[1],
                     xs[2],
                     by.base / 4,
                     ys[0],
                     ys[1],
                     ys[2],
                     bw.base / 4,
                     f32_bits(eps)};
  uint32_t groups[3];
  vk_groups_2d(be, (uint64_t)rows, groups);
  const struct vk_binding *binds[VK_BINDINGS] = {&bx, &bw, &by};
  const uint32_t spec[VK_MAX_SPEC] = {0};
  return vk_dispatch(be, "rms_norm", spec, binds, push, sizeof push / sizeof push[0], groups);
}

static int vk_softmax(struct backend *be, struct backend_tensor *x) {
  if (be->lost) return be->lost;
  if (tensor_check_f32(x)) return AUG_EINVAL;
  struct vk_binding bx;
  int rc = tensor_bind(be, x, &bx);
  if (rc == 0) rc = vk_reserve(be, 1, 0);
  if (rc) return rc;
  uint32_t xs[3];
  tensor_strides(x, 4, xs);
  int64_t rows = tensor_rows(x);
  uint32_t push[] = {(uint32_t)x->ne[0],
                     (uint32_t)x->ne[1],
                     (uint32_t)x->ne[2],
                     (uint32_t)rows,
                     bx.base / 4,
                     xs[0],
                     xs[1],
                     xs[2]};
  uint32_t groups[3];
  vk_groups_2d(be, (uint64_t)rows, groups);
  const struct vk_binding *binds[VK_BINDINGS] = {&bx};
  const uint32_t spec[VK_MAX_SPEC] = {0};
  return vk_dispatch(be, "softmax", spec, binds, push, sizeof push / sizeof push[0], groups);
}

/* out = a op b elementwise; b broadcast where its ne1/ne2/ne3 is 1 (op 0 only). */
static int vk_binary(struct backend *be, uint32_t op, const struct backend_tensor *a,
                     const struct backend_tensor *b, struct backend_tensor *out) {
  if (be->lost) return be->lost;
  if (tensor_check_f32(a) || tensor_check_f32(b) || tensor_check_f32(out)) return AUG_EINVAL;
  if (!same_shape(a, out) || b->ne[0] != a->ne[0]) return AUG_EINVAL;
  for (int d = 1; d < 4; d++) {
    if (b->ne[d] != a->ne[d] && (op != 0 || b->ne[d] != 1)) return AUG_EINVAL;
  }
  struct vk_binding ba, bb, bo;
  int rc = tensor_bind(be, a, &ba);
  if (rc == 0) rc = tensor_bind(be, b, &bb);
  if (rc == 0) rc = tensor_bind(be, out, &bo);
  if (rc == 0) rc = vk_reserve(be, 1, 0);
  if (rc) return rc;
  uint32_t as[3], bs[3], os[3];
  tensor_strides(a, 4, as);
  tensor_strides(b, 4, bs);
  tensor_strides(out, 4, os);
  for (int d = 1; d < 4; d++) {
    if (b->ne[d] == 1) bs[d - 1] = 0;
  }
  int64_t rows = tensor_rows(a);
  uint32_t push[] = {(uint32_t)a->ne[0],
                     (uint32_t)a->ne[1],
                     (uint32_t)a->ne[2],
                     (uint32_t)rows,
                     ba.base / 4,
                     as[0],
                     as[1],
                     as[2],
                     bb.base / 4,
                     bs[0],
                     bs[1],
                     bs[2],
                     bo.base / 4,
                     os[0],
                     os[1],
                     os[2]};
  uint32_t groups[3];
  vk_groups_2d(be, ((uint64_t)rows * (uint64_t)a->ne[0] + 63) / 64, groups);
  const struct vk_binding *binds[VK_BINDINGS] = {&ba, &bb, &bo};
  const uint32_t spec[VK_MAX_SPEC] = {op};
  return vk_dispatch(be, "binary", spec, binds, push, sizeof push / sizeof push[0], groups);
}

static int vk_add(struct backend *be, const struct backend_tensor *a,
                  const struct backend_tensor *b, struct backend_tensor *out) {
  return vk_binary(be, 0, a, b, out);
}

static int vk_silu_mul(struct backend *be, const struct backend_tensor *gate,
                       const struct backend_tensor *up, struct backend_tensor *out) {
  return vk_binary(be, 1, gate, up, out);
}

static int vk_rope(struct backend *be, struct backend_tensor *x, const int32_t *pos,
                   const struct backend_rope_params *params) {
  if (be->lost) return be->lost;
  if (tensor_check_f32(x) || !pos || !params) return AUG_EINVAL;
  if (params->n_rot <= 0 || params->n_rot % 2 || params->n_rot > x->ne[0] || params->n_rot > 1024 ||
      x->ne[3] != 1) {
    return AUG_EINVAL;
  }
  struct vk_binding bx, bc;
  int rc = tensor_bind(be, x, &bx);
  if (rc) return rc;
  int64_t n_tokens = x->ne[2], n_rot = params->n_rot;
  size_t table = (size_t)n_tokens * (size_t)n_rot * sizeof(float);
  float *cs;
  rc = vk_reserve(be, 1, table);
  if (rc == 0) rc = vk_host_param(be, NULL, table, &bc, (void **)&cs);
  if (rc) return rc;
  /* The angles come from the CPU reference's recurrence (theta *= theta_scale in float), so both
   * backends rotate by the same angles, far positions included. */
  for (int64_t t = 0; t < n_tokens; t++) {
    cpu_ref_rope_cache(cs + t * n_rot, pos[t], params->n_rot, params->freq_base, params->freq_scale,
                       params->freq_factors);
  }
  uint32_t xs[3];
  tensor_strides(x, 4, xs);
  uint32_t n_pairs = (uint32_t)(n_rot / 2);
  uint32_t push[] = {n_pairs,
                     (uint32_t)x->ne[1],
                     (uint32_t)n_tokens,
                     params->layout == BACKEND_ROPE_NEOX,
                     bx.base / 4,
                     xs[0],
                     xs[1],
                     (uint32_t)n_rot};
  uint32_t groups[3];
  vk_groups_2d(be, ((uint64_t)n_pairs * (uint64_t)x->ne[1] * (uint64_t)n_tokens + 63) / 64, groups);
  const struct vk_binding *binds[VK_BINDINGS] = {&bx, &bc};
  const uint32_t spec[VK_MAX_SPEC] = {0};
  return vk_dispatch(be, "rope", spec, binds, push, sizeof push / sizeof push[0], groups);
}

/* KV cache rows [0, n_kv) of t as one binding. */
static int kv_bind(struct backend *be, const struct backend_tensor *t, int32_t n_kv,
                   struct vk_binding *b) {
  size_t row = quant_row_size(t->type, (uint64_t)t->ne[0]);
  int64_t n = n_kv > 0 ? n_kv : 1;
  size_t end =
      t->offset + (size_t)(n - 1) * tensor_plane(t) + (size_t)(t->ne[1] - 1) * t->row_stride + row;
  int rc = vk_bind_range(be, t->buffer, t->offset, end, b);
  return rc == AUG_ERANGE ? AUG_EUNSUPPORTED : rc;
}

/* Largest head_dim the attention shader takes (8 output columns per invocation, 64 of them). */
#define VK_ATTENTION_MAX_HEAD_DIM 512

static int vk_attention(struct backend *be, const struct backend_tensor *q,
                        const struct backend_tensor *k, const struct backend_tensor *v,
                        const struct backend_attention_params *params, struct backend_tensor *out) {
  if (be->lost) return be->lost;
  if (tensor_check_f32(q) || tensor_check(k) || tensor_check(v) || tensor_check_f32(out) ||
      !params || !params->q_pos) {
    return AUG_EINVAL;
  }
  if (!same_shape(q, out)) return AUG_EINVAL;
  for (int i = 0; i < 2; i++) {
    const struct backend_tensor *c = i ? v : k;
    if (!vk_kv_type(c->type)) return AUG_EUNSUPPORTED;
    if (c->ne[0] != q->ne[0] || c->ne[1] != k->ne[1] || c->ne[2] < params->n_kv) return AUG_EINVAL;
  }
  int64_t n_head = q->ne[1], n_head_kv = k->ne[1], n_tokens = q->ne[2], hd = q->ne[0];
  if (n_head % n_head_kv || n_head / n_head_kv > 64 || params->n_kv < 0 || q->ne[3] != 1)
    return AUG_EINVAL;
  if (hd > VK_ATTENTION_MAX_HEAD_DIM) return AUG_EUNSUPPORTED;
  if (n_head > be->max_groups[0] || n_tokens > be->max_groups[1]) return AUG_EUNSUPPORTED;
  struct vk_binding bq, bk, bv, bo, bp;
  int rc = tensor_bind(be, q, &bq);
  if (rc == 0) rc = kv_bind(be, k, params->n_kv, &bk);
  if (rc == 0) rc = kv_bind(be, v, params->n_kv, &bv);
  if (rc == 0) rc = tensor_bind(be, out, &bo);
  size_t pos_bytes = (size_t)n_tokens * sizeof(int32_t);
  if (rc == 0) rc = vk_reserve(be, 1, pos_bytes);
  if (rc == 0) rc = vk_host_param(be, params->q_pos, pos_bytes, &bp, NULL);
  if (rc) return rc;
  uint32_t push[] = {
      (uint32_t)hd,
      (uint32_t)n_head,
      (uint32_t)n_head_kv,
      (uint32_t)n_tokens,
      (uint32_t)params->n_kv,
      f32_bits(params->scale),
      bq.base / 4,
      (uint32_t)(q->row_stride / 4),
      (uint32_t)(tensor_plane(q) / 4),
      bo.base / 4,
      (uint32_t)(out->row_stride / 4),
      (uint32_t)(tensor_plane(out) / 4),
      bk.base,
      (uint32_t)k->row_stride,
      (uint32_t)tensor_plane(k),
      bv.base,
      (uint32_t)v->row_stride,
      (uint32_t)tensor_plane(v),
  };
  uint32_t groups[3] = {(uint32_t)n_head, (uint32_t)n_tokens, 1};
  const struct vk_binding *binds[VK_BINDINGS] = {&bq, &bk, &bv, &bo, &bp};
  const uint32_t spec[VK_MAX_SPEC] = {k->type, v->type};
  return vk_dispatch(be, "attention", spec, binds, push, sizeof push / sizeof push[0], groups);
}

static int vk_copy(struct backend *be, const struct backend_tensor *src,
                   struct backend_tensor *dst) {
  if (be->lost) return be->lost;
  if (tensor_check(src) || tensor_check(dst) || !same_shape(src, dst)) return AUG_EINVAL;
  bool ok = (src->type == QUANT_F32 && vk_kv_type(dst->type)) ||
            (dst->type == QUANT_F32 && vk_kv_type(src->type));
  if (!ok) return AUG_EUNSUPPORTED;
  if (dst->type == QUANT_F32 && (dst->offset % 4 || dst->row_stride % 4 || dst->plane_stride % 4))
    return AUG_EINVAL;
  struct vk_binding bs, bd;
  int rc = tensor_bind(be, src, &bs);
  if (rc == 0) rc = tensor_bind(be, dst, &bd);
  if (rc == 0) rc = vk_reserve(be, 1, 0);
  if (rc) return rc;
  uint32_t ss[3], ds[3];
  tensor_strides(src, 1, ss);
  tensor_strides(dst, 1, ds);
  /* units of a destination row: elements, f16 pairs, or 32-value Q8_0 / Q4_0 blocks */
  int64_t units = dst->type == QUANT_F32   ? dst->ne[0]
                  : dst->type == QUANT_F16 ? (dst->ne[0] + 1) / 2
                                           : dst->ne[0] / QK8_0;
  int64_t rows = tensor_rows(src);
  uint32_t push[] = {(uint32_t)src->ne[0],
                     (uint32_t)src->ne[1],
                     (uint32_t)src->ne[2],
                     (uint32_t)rows,
                     bs.base,
                     ss[0],
                     ss[1],
                     ss[2],
                     bd.base,
                     ds[0],
                     ds[1],
                     ds[2],
                     (uint32_t)units};
  uint32_t groups[3];
  vk_groups_2d(be, ((uint64_t)rows * (uint64_t)units + 63) / 64, groups);
  const struct vk_binding *binds[VK_BINDINGS] = {&bs, &bd};
  const uint32_t spec[VK_MAX_SPEC] = {src->type, dst->type};
  return vk_dispatch(be, "copy", spec, binds, push, sizeof push / sizeof push[0], groups);
}

/* ---- the table ------------------------------------------------------------------------------- */

static int vk_create(const char *options, struct backend **out, struct aug_err *err) {
  return vk_device_create(options, out, err);
}

static int vk_device_info(struct backend *be, struct backend_device_info *info) {
  memset(info, 0, sizeof *info);
  snprintf(info->name, sizeof info->name, "%.96s (Vulkan, subgroup %u)", be->props.deviceName,
           be->subgroup_size);
  for (uint32_t i = 0; i < be->mem_props.memoryHeapCount; i++) {
    if (be->mem_props.memoryHeaps[i].flags & VK_MEMORY_HEAP_DEVICE_LOCAL_BIT)
      info->total_memory += be->mem_props.memoryHeaps[i].size;
  }
  /* without VK_EXT_memory_budget the best estimate is what we have not taken ourselves */
  info->free_memory = info->total_memory > be->allocated ? info->total_memory - be->allocated : 0;
  info->host_visible = false; /* buffers are device memory: upload/download copy through staging */
  info->max_buffer_size = be->max_buffer;
  info->cpu_device = be->cpu_device;
  return 0;
}

static int vk_buffer_alloc(struct backend *be, enum backend_buffer_kind kind, size_t size,
                           struct backend_buffer **out, struct aug_err *err) {
  return vk_buffer_create(be, kind, size, out, err);
}

static void vk_buffer_free(struct backend *be, struct backend_buffer *buf) {
  vk_buffer_destroy(be, buf);
}

static int vk_upload(struct backend *be, struct backend_buffer *buf, size_t offset, const void *src,
                     size_t size) {
  return vk_buffer_upload(be, buf, offset, src, size);
}

static int vk_download(struct backend *be, struct backend_buffer *buf, size_t offset, void *dst,
                       size_t size) {
  return vk_buffer_download(be, buf, offset, dst, size);
}

static bool vk_supports_op(struct backend *be, enum backend_op op, uint32_t type) {
  switch (op) {
  case BACKEND_OP_MATMUL:
  case BACKEND_OP_GET_ROWS: return vk_weight_type(type);
  case BACKEND_OP_ATTENTION:
  case BACKEND_OP_COPY: return vk_kv_type(type);
  case BACKEND_OP_RMS_NORM:
  case BACKEND_OP_ROPE:
  case BACKEND_OP_SILU_MUL:
  case BACKEND_OP_ADD:
  case BACKEND_OP_SOFTMAX: return type == QUANT_F32;
  case BACKEND_OP_COUNT: break;
  }
  return false;
}

static int vk_synchronize(struct backend *be, struct aug_err *err) {
  return vk_flush(be, err);
}

static void vk_set_decode_order(struct backend *be, bool on) {
  be->decode_order = on;
}

static const struct backend_ops vk_ops_table = {
    .abi_version = BACKEND_ABI_VERSION,
    .struct_size = sizeof(struct backend_ops),
    .name = "vulkan",
    .create = vk_create,
    .destroy = vk_device_destroy,
    .device_info = vk_device_info,
    .buffer_alloc = vk_buffer_alloc,
    .buffer_from_host = NULL,
    .buffer_free = vk_buffer_free,
    .buffer_host_ptr = NULL,
    .upload = vk_upload,
    .download = vk_download,
    .supports_op = vk_supports_op,
    .matmul = vk_matmul,
    .rms_norm = vk_rms_norm,
    .rope = vk_rope,
    .attention = vk_attention,
    .silu_mul = vk_silu_mul,
    .add = vk_add,
    .get_rows = vk_get_rows,
    .softmax = vk_softmax,
    .copy = vk_copy,
    .synchronize = vk_synchronize,
    .set_decode_order = vk_set_decode_order,
};

const struct backend_ops *backend_vulkan_ops(void) {
  return &vk_ops_table;
}
