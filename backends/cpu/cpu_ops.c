/* The non-matmul ops of the CPU backend: the plain scalar references (cpu_ref.h) and the drivers
 * behind the backend table, which validate descriptors, then run the references row by row on
 * the pool (only when the op is big enough to pay for a dispatch). Attention is the one driver
 * with its own inner loop: it converts each K/V cache row once for all the query heads that share
 * it (GQA) and uses the kernel table's dot/axpy. */
#include <math.h>
#include <stdatomic.h>

#include "backends/cpu/cpu_internal.h"
#include "backends/cpu/cpu_ref.h"

/* ---- references ---------------------------------------------------------------------------- */

void cpu_ref_rms_norm(float *o, const float *x, const float *w, int64_t n, float eps) {
  double sum = 0.0; /* x[n], w[n], o[n] */
  for (int64_t i = 0; i < n; i++)
    sum += (double)(x[i] * x[i]);
  float scale = 1.0f / sqrtf((float)(sum / (double)n) + eps);
  for (int64_t i = 0; i < n; i++)
    o[i] = (x[i] * scale) * w[i];
}

void cpu_ref_rope_cache(float *cos_sin, int32_t pos, int n_rot, float freq_base, float freq_scale,
                        const float *freq_factors) {
  /* RoPE (Su et al. 2021, eq. 34): theta_i = pos * base^(-2i/d). The angle is built by repeated
   * multiplication, as ggml does, so that positions far out round the same way. */
  float theta_scale = powf(freq_base, -2.0f / (float)n_rot);
  float theta = (float)pos; /* cos_sin[n_rot] */
  for (int i = 0; i < n_rot / 2; i++) {
    float ff = freq_factors ? freq_factors[i] : 1.0f;
    float angle = freq_scale * (theta / ff);
    cos_sin[2 * i] = cosf(angle);
    cos_sin[2 * i + 1] = sinf(angle);
    theta *= theta_scale;
  }
}

void cpu_ref_rope_head(float *x, const float *cos_sin, int n_rot, int neox) {
  for (int i = 0; i < n_rot / 2; i++) { /* x[head_dim], cos_sin[n_rot] */
    float c = cos_sin[2 * i], s = cos_sin[2 * i + 1];
    int a = neox ? i : 2 * i;
    int b = neox ? i + n_rot / 2 : 2 * i + 1;
    float x0 = x[a], x1 = x[b];
    /* as GCC contracts llama.cpp's x0*cos - x1*sin and x0*sin + x1*cos */
    x[a] = fmaf(x0, c, -(x1 * s));
    x[b] = fmaf(x0, s, x1 * c);
  }
}

void cpu_ref_attention_head(float *out, const float *q, const float *k, const float *v, int64_t n,
                            int64_t hd, float scale, float *scores) {
  /* out[hd], q[hd], k[n][hd], v[n][hd], scores[n] */
  for (int64_t i = 0; i < hd; i++)
    out[i] = 0.0f;
  if (n <= 0) return;
  float max = -INFINITY;
  for (int64_t j = 0; j < n; j++) {
    float s = 0.0f;
    for (int64_t i = 0; i < hd; i++)
      s += q[i] * k[j * hd + i];
    scores[j] = s * scale;
    if (scores[j] > max) max = scores[j];
  }
  double sum = 0.0;
  for (int64_t j = 0; j < n; j++) {
    scores[j] = expf(scores[j] - max);
    sum += scores[j];
  }
  for (int64_t j = 0; j < n; j++) {
    float p = (float)(scores[j] / sum);
    for (int64_t i = 0; i < hd; i++)
      out[i] += p * v[j * hd + i];
  }
}

float cpu_ggml_expf(float x) {
  const float r = 0x1.8p23f;
  float z = fmaf(x, 0x1.715476p+0f, r);
  float n = z - r; /* round(x / ln 2), as a float */
  float b = fmaf(-n, 0x1.7f7d1cp-20f, fmaf(-n, 0x1.62e4p-1f, x));
  if (isnan(n)) return x;
  if (fabsf(n) > 192.0f) return n <= 0.0f ? 0.0f : INFINITY;
  float u = b * b;
  float j = fmaf(
      fmaf(fmaf(0x1.0e4020p-7f, b, 0x1.573e2ep-5f), u, fmaf(0x1.555e66p-3f, b, 0x1.fffdb6p-2f)), u,
      fmaf(0x1.ffffecp-1f, b, 1.0f));
  /* vscalefps: j * 2^n with one rounding, also into the subnormals; the product is exact in
   * double. */
  return (float)((double)j * ldexp(1.0, (int)n));
}

float cpu_ref_dot_ordered(const float *a, const float *b, int64_t n, enum cpu_attn_order order) {
  if (order == CPU_ATTN_LANES16) {
    float lane[16] = {0}; /* n % 16 == 0 */
    for (int64_t i = 0; i < n; i++)
      lane[i % 16] = fmaf(a[i], b[i], lane[i % 16]);
    return cpu_reduce16(lane);
  }
  float acc[4][16] = {{0}};
  int64_t np = n & ~(int64_t)63;
  for (int64_t i = 0; i < np; i++)
    acc[(i / 16) % 4][i % 16] = fmaf(a[i], b[i], acc[(i / 16) % 4][i % 16]);
  float x[16];
  for (int l = 0; l < 16; l++)
    x[l] = (acc[0][l] + acc[2][l]) + (acc[1][l] + acc[3][l]);
  double sum = (double)cpu_reduce16(x);
  for (int64_t i = np; i < n; i++)
    sum += (double)(a[i] * b[i]);
  return (float)sum;
}

void cpu_ref_silu_mul(float *o, const float *g, const float *u, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    o[i] = g[i] / (1.0f + cpu_ggml_expf(0.0f - g[i])) * u[i];
}

void cpu_ref_add(float *o, const float *a, const float *b, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    o[i] = a[i] + b[i];
}

void cpu_ref_softmax(float *x, int64_t n) {
  float max = -INFINITY;
  for (int64_t i = 0; i < n; i++)
    max = x[i] > max ? x[i] : max;
  double sum = 0.0;
  for (int64_t i = 0; i < n; i++) {
    x[i] = expf(x[i] - max);
    sum += x[i];
  }
  float inv = (float)(1.0 / sum);
  for (int64_t i = 0; i < n; i++)
    x[i] *= inv;
}

/* ---- row drivers ----------------------------------------------------------------------------- */

/* Below this many elements an op runs on the calling thread: a dispatch costs about as much as
 * touching ~16K floats. */
#define OPS_PARALLEL_MIN_ELEMENTS 16384

enum row_op { ROW_RMS_NORM, ROW_ROPE, ROW_SILU_MUL, ROW_ADD, ROW_SOFTMAX, ROW_GET_ROWS, ROW_COPY };

struct row_task {
  struct backend *be;
  enum row_op op;
  int64_t n_rows;
  const struct backend_tensor *a, *b;
  struct backend_tensor *out;
  float eps;
  const int32_t *pos;
  const int32_t *ids;
  const struct backend_rope_params *rope;
  atomic_int failed;
};

static void row_index(const struct backend_tensor *t, int64_t r, int64_t *i1, int64_t *i2,
                      int64_t *i3) {
  *i1 = r % t->ne[1];
  *i2 = (r / t->ne[1]) % t->ne[2];
  *i3 = r / (t->ne[1] * t->ne[2]);
}

static void row_copy(struct row_task *t, const void *src, void *dst, int64_t n) {
  uint32_t st = t->a->type, dt = t->out->type;
  if (st == dt && (st == QUANT_F32 || st == QUANT_F16)) {
    memcpy(dst, src, quant_row_size(st, (uint64_t)n));
  } else if (st == QUANT_F32 && dt == QUANT_Q8_0) {
    t->be->kernels->quantize_q8_0(src, dst, n);
  } else if (st == QUANT_F32) {
    if (quant_quantize_row(dt, src, dst, n)) atomic_store(&t->failed, 1);
  } else if (dt == QUANT_F32) {
    if (quant_dequantize_row(st, src, dst, n)) atomic_store(&t->failed, 1);
  } else {
    atomic_store(&t->failed, 1);
  }
}

/* One thread's cos/sin of the last position it rotated. */
struct rope_cache {
  bool valid;
  int32_t pos;
  float cos_sin[1024]; /* [n_rot] */
};

static void row_task_one(struct row_task *t, struct rope_cache *rope, int64_t r) {
  int64_t i1, i2, i3;
  const struct backend_tensor *out = t->out;
  row_index(out, r, &i1, &i2, &i3);
  int64_t n = out->ne[0];
  float *o = (float *)cpu_tensor_row(out, i1, i2, i3); /* [ne0] */
  switch (t->op) {
  case ROW_RMS_NORM:
    cpu_ref_rms_norm(o, (const float *)cpu_tensor_row(t->a, i1, i2, i3),
                     (const float *)cpu_tensor_row(t->b, 0, 0, 0), n, t->eps);
    break;
  case ROW_ROPE: {
    /* out is x [head_dim, n_head, n_tokens]: one row per (head, token). The heads of a token
     * are consecutive rows, so the cos/sin of its position are computed once for all of them. */
    int n_rot = t->rope->n_rot;
    if (!rope->valid || rope->pos != t->pos[i2]) {
      cpu_ref_rope_cache(rope->cos_sin, t->pos[i2], n_rot, t->rope->freq_base, t->rope->freq_scale,
                         t->rope->freq_factors);
      rope->pos = t->pos[i2];
      rope->valid = true;
    }
    cpu_ref_rope_head(o, rope->cos_sin, n_rot, t->rope->layout == BACKEND_ROPE_NEOX);
    break;
  }
  case ROW_SILU_MUL:
    t->be->kernels->silu_mul(o, (const float *)cpu_tensor_row(t->a, i1, i2, i3),
                             (const float *)cpu_tensor_row(t->b, i1, i2, i3), n);
    break;
  case ROW_ADD: {
    const struct backend_tensor *b = t->b;
    cpu_ref_add(o, (const float *)cpu_tensor_row(t->a, i1, i2, i3),
                (const float *)cpu_tensor_row(b, i1 % b->ne[1], i2 % b->ne[2], i3 % b->ne[3]), n);
    break;
  }
  case ROW_SOFTMAX: cpu_ref_softmax(o, n); break;
  case ROW_GET_ROWS: {
    const struct backend_tensor *table = t->a;
    const void *src = cpu_tensor_row(table, t->ids[r], 0, 0);
    if (table->type == QUANT_F32) {
      memcpy(o, src, (size_t)n * sizeof(float));
    } else if (quant_dequantize_row(table->type, src, o, n)) {
      atomic_store(&t->failed, 1);
    }
    break;
  }
  case ROW_COPY: row_copy(t, cpu_tensor_row(t->a, i1, i2, i3), o, n); break;
  }
}

static void row_task_run(void *arg, int ith, int nth) {
  struct row_task *t = arg;
  /* Contiguous ranges keep each thread's rows together in cache. */
  int64_t per = (t->n_rows + nth - 1) / nth;
  int64_t r0 = per * ith, r1 = r0 + per < t->n_rows ? r0 + per : t->n_rows;
  struct rope_cache rope; /* filled on first use: no 4 KB clear per op */
  rope.valid = false;
  for (int64_t r = r0; r < r1; r++)
    row_task_one(t, &rope, r);
}

static int row_task_dispatch(struct row_task *t) {
  t->n_rows = t->out->ne[1] * t->out->ne[2] * t->out->ne[3];
  atomic_init(&t->failed, 0);
  if (t->n_rows * t->out->ne[0] < OPS_PARALLEL_MIN_ELEMENTS || t->be->n_threads == 1) {
    row_task_run(t, 0, 1);
  } else {
    cpu_threadpool_run(t->be->pool, row_task_run, t);
  }
  return atomic_load(&t->failed) ? AUG_EUNSUPPORTED : 0;
}

static bool same_shape(const struct backend_tensor *a, const struct backend_tensor *b) {
  return a->ne[0] == b->ne[0] && a->ne[1] == b->ne[1] && a->ne[2] == b->ne[2] &&
         a->ne[3] == b->ne[3];
}

int cpu_rms_norm(struct backend *be, const struct backend_tensor *x, const struct backend_tensor *w,
                 float eps, struct backend_tensor *y) {
  if (cpu_tensor_check(x) || cpu_tensor_check(w) || cpu_tensor_check(y)) return AUG_EINVAL;
  if (x->type != QUANT_F32 || w->type != QUANT_F32 || y->type != QUANT_F32) return AUG_EINVAL;
  if (!same_shape(x, y) || w->ne[0] != x->ne[0]) return AUG_EINVAL;
  struct row_task t = {.be = be, .op = ROW_RMS_NORM, .a = x, .b = w, .out = y, .eps = eps};
  return row_task_dispatch(&t);
}

int cpu_rope(struct backend *be, struct backend_tensor *x, const int32_t *pos,
             const struct backend_rope_params *params) {
  if (cpu_tensor_check(x) || x->type != QUANT_F32 || !pos || !params) return AUG_EINVAL;
  if (params->n_rot <= 0 || params->n_rot % 2 || params->n_rot > x->ne[0] || params->n_rot > 1024 ||
      x->ne[3] != 1) {
    return AUG_EINVAL;
  }
  struct row_task t = {.be = be, .op = ROW_ROPE, .a = x, .out = x, .pos = pos, .rope = params};
  return row_task_dispatch(&t);
}

int cpu_silu_mul(struct backend *be, const struct backend_tensor *gate,
                 const struct backend_tensor *up, struct backend_tensor *out) {
  if (cpu_tensor_check(gate) || cpu_tensor_check(up) || cpu_tensor_check(out)) return AUG_EINVAL;
  if (gate->type != QUANT_F32 || up->type != QUANT_F32 || out->type != QUANT_F32) return AUG_EINVAL;
  if (!same_shape(gate, out) || !same_shape(up, out)) return AUG_EINVAL;
  struct row_task t = {.be = be, .op = ROW_SILU_MUL, .a = gate, .b = up, .out = out};
  return row_task_dispatch(&t);
}

int cpu_add(struct backend *be, const struct backend_tensor *a, const struct backend_tensor *b,
            struct backend_tensor *out) {
  if (cpu_tensor_check(a) || cpu_tensor_check(b) || cpu_tensor_check(out)) return AUG_EINVAL;
  if (a->type != QUANT_F32 || b->type != QUANT_F32 || out->type != QUANT_F32) return AUG_EINVAL;
  if (!same_shape(a, out) || b->ne[0] != a->ne[0]) return AUG_EINVAL;
  for (int d = 1; d < 4; d++) {
    if (b->ne[d] != 1 && b->ne[d] != a->ne[d]) return AUG_EINVAL;
  }
  struct row_task t = {.be = be, .op = ROW_ADD, .a = a, .b = b, .out = out};
  return row_task_dispatch(&t);
}

int cpu_softmax(struct backend *be, struct backend_tensor *x) {
  if (cpu_tensor_check(x) || x->type != QUANT_F32) return AUG_EINVAL;
  struct row_task t = {.be = be, .op = ROW_SOFTMAX, .out = x};
  return row_task_dispatch(&t);
}

int cpu_get_rows(struct backend *be, const struct backend_tensor *table, const int32_t *ids,
                 int64_t n_ids, struct backend_tensor *out) {
  if (cpu_tensor_check(table) || cpu_tensor_check(out) || !ids || n_ids < 1) return AUG_EINVAL;
  if (out->type != QUANT_F32 || out->ne[0] != table->ne[0] || out->ne[1] != n_ids ||
      out->ne[2] * out->ne[3] != 1 || table->ne[2] * table->ne[3] != 1) {
    return AUG_EINVAL;
  }
  for (int64_t i = 0; i < n_ids; i++) {
    if (ids[i] < 0 || ids[i] >= table->ne[1]) return AUG_ERANGE;
  }
  const struct quant_type_traits *tr = quant_traits(table->type);
  if (table->type != QUANT_F32 && !tr->can_dequantize) return AUG_EUNSUPPORTED;
  struct row_task t = {.be = be, .op = ROW_GET_ROWS, .a = table, .out = out, .ids = ids};
  return row_task_dispatch(&t);
}

int cpu_copy(struct backend *be, const struct backend_tensor *src, struct backend_tensor *dst) {
  if (cpu_tensor_check(src) || cpu_tensor_check(dst) || !same_shape(src, dst)) return AUG_EINVAL;
  bool ok = src->type == QUANT_F32 || dst->type == QUANT_F32;
  const struct quant_type_traits *dtr = quant_traits(dst->type);
  const struct quant_type_traits *str = quant_traits(src->type);
  if (src->type == QUANT_F32 && dst->type != QUANT_F32 && !dtr->can_quantize) ok = false;
  if (dst->type == QUANT_F32 && src->type != QUANT_F32 && !str->can_dequantize) ok = false;
  if (!ok) return AUG_EUNSUPPORTED;
  struct row_task t = {.be = be, .op = ROW_COPY, .a = src, .out = dst};
  return row_task_dispatch(&t);
}

/* ---- attention ------------------------------------------------------------------------------- */

/* Cache rows converted to f32 at a time: 64 x head_dim 128 = 32 KB, an L1's worth. */
#define ATTENTION_ROWS 64

struct attention_task {
  struct backend *be;
  const struct backend_tensor *q, *k, *v;
  struct backend_tensor *out;
  const struct backend_attention_params *params;
  int64_t hd, n_head, n_head_kv, n_rep, n_tokens;
  enum cpu_attn_order order;
  int64_t n_banks; /* 16 or 64, per order */
  bool round_f16;  /* f16 cache: q and p rounded as ggml's f16 matmuls do */
  atomic_llong next;
};

/* Cache rows [j0, j0 + nj) of KV head g for the attention kernels: F32 and F16 rows in place
 * (*f16 set for F16; *stride in elements), Q8_0 and Q4_0 rows converted into buf [nj][hd]
 * (stride hd). Block layouts (ggml-common.h): Q8_0 = f16 d + int8 qs[32], x = d q; Q4_0 = f16 d
 * + qs[16], element i < 16 the low nibble of qs[i], element i >= 16 the high nibble of
 * qs[i - 16], x = d (q - 8). */
static const void *attention_rows(const struct backend_tensor *t, int64_t g, int64_t j0, int64_t nj,
                                  int64_t hd, float *buf, size_t *stride, int *f16) {
  *f16 = t->type == QUANT_F16;
  if (t->type == QUANT_F32 || t->type == QUANT_F16) {
    size_t plane = t->plane_stride ? t->plane_stride : (size_t)t->ne[1] * t->row_stride;
    *stride = plane / (t->type == QUANT_F16 ? sizeof(quant_f16) : sizeof(float));
    return cpu_tensor_row(t, g, j0, 0);
  }
  for (int64_t j = 0; j < nj; j++) {
    float *dst = buf + j * hd; /* [hd] */
    if (t->type == QUANT_Q4_0) {
      const struct block_q4_0 *b = (const void *)cpu_tensor_row(t, g, j0 + j, 0); /* [hd / 32] */
      for (int64_t ib = 0; ib < hd / QK4_0; ib++) {
        float d = cpu_f16_to_f32(b[ib].d);
        for (int i = 0; i < QK4_0 / 2; i++) {
          dst[ib * QK4_0 + i] = d * (float)((b[ib].qs[i] & 15) - 8);
          dst[ib * QK4_0 + QK4_0 / 2 + i] = d * (float)((b[ib].qs[i] >> 4) - 8);
        }
      }
      continue;
    }
    const struct block_q8_0 *b = (const void *)cpu_tensor_row(t, g, j0 + j, 0); /* [hd / 32] */
    for (int64_t ib = 0; ib < hd / QK8_0; ib++) {
      float d = cpu_f16_to_f32(b[ib].d);
      for (int i = 0; i < QK8_0; i++)
        dst[ib * QK8_0 + i] = d * (float)b[ib].qs[i];
    }
  }
  *stride = (size_t)hd;
  return buf;
}

/* out[hd] = the banks folded in the order of t->order (cpu_ref.h), for one head; banks past
 * n_used were never written and count as zeros. Written column-parallel so it vectorizes. */
static void attention_fold(const struct attention_task *t, float *banks, int64_t n_used,
                           float *out) {
  int64_t hd = t->hd, nb = t->n_banks;
  if (n_used < nb) memset(banks + n_used * hd, 0, (size_t)((nb - n_used) * hd) * sizeof(float));
  float *b = banks; /* [nb][hd] */
  if (t->order == CPU_ATTN_BANKS64) {
    /* lane l = (bank l + bank 32 + l) + (bank 16 + l + bank 48 + l), into banks 0..15 */
    for (int l = 0; l < 16; l++) {
      float *x = b + l * hd;
      const float *b16 = b + (16 + l) * hd, *b32 = b + (32 + l) * hd, *b48 = b + (48 + l) * hd;
      for (int64_t i = 0; i < hd; i++)
        x[i] = (x[i] + b32[i]) + (b16[i] + b48[i]);
    }
  }
  /* cpu_reduce16 per column */
  for (int64_t i = 0; i < hd; i++) {
    float s0 = b[8 * hd + i] + b[0 * hd + i], s1 = b[9 * hd + i] + b[1 * hd + i];
    float s2 = b[10 * hd + i] + b[2 * hd + i], s3 = b[11 * hd + i] + b[3 * hd + i];
    float s4 = b[12 * hd + i] + b[4 * hd + i], s5 = b[13 * hd + i] + b[5 * hd + i];
    float s6 = b[14 * hd + i] + b[6 * hd + i], s7 = b[15 * hd + i] + b[7 * hd + i];
    out[i] = ((s4 + s0) + (s6 + s2)) + ((s5 + s1) + (s7 + s3));
  }
}

/* Work item (kv head g, token t): the n_rep query heads of group g for token t, computed as
 * llama.cpp's non-flash attention does: q rounded to f16 (f16 cache), scores = (q . k) * scale,
 * softmax with its exp and summation order, probabilities rounded to f16, then p . v per output
 * column. Both dot products follow t->order; the p . v sums go into one bank per lane (16 or 64
 * banks of head_dim floats) so that all columns are summed at once. Cache rows are converted
 * ATTENTION_ROWS at a time, once for all n_rep heads. */
static void attention_item(struct attention_task *t, float *scratch, int64_t g, int64_t tok) {
  const struct cpu_kernels *kernels = t->be->kernels;
  int64_t hd = t->hd, n_rep = t->n_rep, nb = t->n_banks;
  int64_t n_vis = (int64_t)t->params->q_pos[tok] + 1;
  if (n_vis > t->params->n_kv) n_vis = t->params->n_kv;
  if (n_vis < 0) n_vis = 0;
  float *rows = scratch;                   /* [ATTENTION_ROWS][hd] */
  float *qr = rows + ATTENTION_ROWS * hd;  /* [n_rep][hd] */
  float *banks = qr + n_rep * hd;          /* [n_rep][nb][hd] */
  float *scores = banks + n_rep * nb * hd; /* [n_rep][n_vis] */
  const float *q = (const float *)cpu_tensor_row(t->q, g * n_rep, tok, 0); /* [n_rep][hd] */
  float *o = (float *)cpu_tensor_row(t->out, g * n_rep, tok, 0);           /* [n_rep][hd] */
  size_t q_stride = t->q->row_stride / sizeof(float);
  size_t o_stride = t->out->row_stride / sizeof(float);
  if (n_vis == 0) {
    for (int64_t r = 0; r < n_rep; r++)
      memset(o + r * o_stride, 0, (size_t)hd * sizeof(float));
    return;
  }
  for (int64_t r = 0; r < n_rep; r++) {
    memcpy(qr + r * hd, q + r * q_stride, (size_t)hd * sizeof(float));
    if (t->round_f16) kernels->round_f16(qr + r * hd, hd);
  }
  for (int64_t j0 = 0; j0 < n_vis; j0 += ATTENTION_ROWS) {
    int64_t nj = n_vis - j0 < ATTENTION_ROWS ? n_vis - j0 : ATTENTION_ROWS;
    size_t stride;
    int f16;
    const void *k = attention_rows(t->k, g, j0, nj, hd, rows, &stride, &f16);
    kernels->attn_scores(qr, (size_t)hd, n_rep, k, f16, stride, nj, hd, t->order, t->params->scale,
                         scores + j0, (size_t)n_vis);
  }
  for (int64_t r = 0; r < n_rep; r++) {
    float *sr = scores + r * n_vis;
    float max = -INFINITY;
    for (int64_t j = 0; j < n_vis; j++)
      max = sr[j] > max ? sr[j] : max;
    float inv = (float)(1.0 / kernels->softmax_exp(sr, n_vis, max));
    for (int64_t j = 0; j < n_vis; j++)
      sr[j] *= inv;
    if (t->round_f16) kernels->round_f16(sr, n_vis);
  }
  for (int64_t j0 = 0; j0 < n_vis; j0 += ATTENTION_ROWS) {
    int64_t nj = n_vis - j0 < ATTENTION_ROWS ? n_vis - j0 : ATTENTION_ROWS;
    size_t stride;
    int f16;
    const void *v = attention_rows(t->v, g, j0, nj, hd, rows, &stride, &f16);
    kernels->attn_accumulate(scores + j0, (size_t)n_vis, n_rep, v, f16, stride, j0, nj, hd, (int)nb,
                             banks, (size_t)(nb * hd));
  }
  for (int64_t r = 0; r < n_rep; r++)
    attention_fold(t, banks + r * nb * hd, n_vis, o + r * o_stride);
}

static void attention_task_run(void *arg, int ith, int nth) {
  struct attention_task *t = arg;
  float *scratch = t->be->thread_scratch[ith].data;
  int64_t n_items = t->n_head_kv * t->n_tokens;
  for (;;) {
    int64_t i = atomic_fetch_add_explicit(&t->next, 1, memory_order_relaxed);
    if (i >= n_items) break;
    attention_item(t, scratch, i % t->n_head_kv, i / t->n_head_kv);
  }
}

int cpu_attention(struct backend *be, const struct backend_tensor *q,
                  const struct backend_tensor *k, const struct backend_tensor *v,
                  const struct backend_attention_params *params, struct backend_tensor *out) {
  if (cpu_tensor_check(q) || cpu_tensor_check(k) || cpu_tensor_check(v) || cpu_tensor_check(out) ||
      !params || !params->q_pos) {
    return AUG_EINVAL;
  }
  if (q->type != QUANT_F32 || out->type != QUANT_F32 || !same_shape(q, out)) return AUG_EINVAL;
  for (int i = 0; i < 2; i++) {
    const struct backend_tensor *c = i ? v : k;
    if (!cpu_kv_type(c->type)) return AUG_EUNSUPPORTED;
    if (c->ne[0] != q->ne[0] || c->ne[1] != k->ne[1] || c->ne[2] < params->n_kv) return AUG_EINVAL;
  }
  int64_t n_head = q->ne[1], n_head_kv = k->ne[1];
  if (n_head % n_head_kv || n_head / n_head_kv > 64 || params->n_kv < 0) return AUG_EINVAL;
  if (q->ne[0] > 1024) return AUG_EUNSUPPORTED; /* head_dim: the scalar kernels' row buffer */
  int64_t n_tokens = q->ne[2], hd = q->ne[0];
  /* llama.cpp multiplies a batch of 2+ tokens with tinyBLAS when head_dim allows it, and one
   * token with ggml_vec_dot_f16: each has its own summation order. */
  enum cpu_attn_order order =
      n_tokens >= 2 && hd % 16 == 0 && !be->decode_order ? CPU_ATTN_LANES16 : CPU_ATTN_BANKS64;
  struct attention_task t = {
      .be = be,
      .q = q,
      .k = k,
      .v = v,
      .out = out,
      .params = params,
      .hd = hd,
      .n_head = n_head,
      .n_head_kv = n_head_kv,
      .n_rep = n_head / n_head_kv,
      .n_tokens = n_tokens,
      .order = order,
      .n_banks = order == CPU_ATTN_LANES16 ? 16 : 64,
      .round_f16 = k->type == QUANT_F16 && v->type == QUANT_F16,
  };
  size_t need = ((size_t)ATTENTION_ROWS * (size_t)hd + (size_t)t.n_rep * (size_t)hd +
                 (size_t)t.n_rep * (size_t)t.n_banks * (size_t)hd +
                 (size_t)t.n_rep * (size_t)(params->n_kv > 0 ? params->n_kv : 1)) *
                sizeof(float);
  if (q->row_stride % sizeof(float) || out->row_stride % sizeof(float)) return AUG_EINVAL;
  if (cpu_thread_scratch_reserve(be, need)) return AUG_ENOMEM;
  atomic_init(&t.next, 0);
  if (n_head_kv * t.n_tokens == 1) {
    attention_task_run(&t, 0, 1);
  } else {
    cpu_threadpool_run(be->pool, attention_task_run, &t);
  }
  return 0;
}
