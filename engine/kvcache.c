/* KV cache storage: one K and one V buffer per layer on the layer's backend, cell i = position i.
 * Invariant: cells [0, n_used) of every layer hold the K/V of the resident sequence; cells beyond
 * n_used are scratch that the next store overwrites. */
#include "engine/kvcache.h"

#include <string.h>

#include "engine/alloc.h"
#include "engine/quant.h"

struct kvcache_layer {
  const struct backend_ops *ops;
  struct backend *be;
  struct backend_buffer *k_buf, *v_buf;
  struct backend_tensor k, v; /* [head_dim, n_head_kv, n_ctx] */
  struct backend_buffer *shift_buf;
  struct backend_tensor shift; /* F32 [head_dim, n_head_kv, shift_chunk] K-shift scratch */
};

struct kvcache {
  struct kvcache_params params;
  uint32_t n_used;
  uint64_t bytes;
  struct kvcache_layer *layers; /* n_layer */
  uint32_t shift_chunk;         /* cells per K-shift step; 0 until kvcache_reserve_shift */
  int32_t *shift_pos;           /* [shift_chunk] host: every entry the current delta */
};

static size_t kvcache_row_size(const struct kvcache_params *p) {
  return quant_row_size(p->type, p->head_dim);
}

uint64_t kvcache_bytes_per_token(const struct kvcache_params *params) {
  return 2ull * params->n_layer * params->n_head_kv * kvcache_row_size(params);
}

bool kvcache_backend_accepts(const struct backend_ops *ops, struct backend *be, uint32_t type) {
  if (!ops->supports_op) return true;
  return ops->supports_op(be, BACKEND_OP_ATTENTION, type) &&
         ops->supports_op(be, BACKEND_OP_COPY, type);
}

int kvcache_create(const struct kvcache_params *params, const struct backend_ops *const *ops,
                   struct backend *const *bes, struct kvcache **out, struct aug_err *err) {
  *out = NULL;
  if (params->type != QUANT_F16 && params->type != QUANT_Q8_0 && params->type != QUANT_Q4_0)
    return aug_err_set(err, AUG_EUNSUPPORTED, "kvcache: type %s is not supported (f16, q8_0, q4_0)",
                       quant_type_name(params->type));
  if (params->n_layer == 0 || params->n_ctx == 0 || params->n_head_kv == 0 || params->head_dim == 0)
    return aug_err_set(err, AUG_EINVAL,
                       "kvcache: n_layer %u, n_ctx %u, n_head_kv %u, head_dim %u must be > 0",
                       params->n_layer, params->n_ctx, params->n_head_kv, params->head_dim);
  size_t row = kvcache_row_size(params);
  if (row == 0)
    return aug_err_set(err, AUG_EUNSUPPORTED,
                       "kvcache: head_dim %u is not a multiple of the %s block size",
                       params->head_dim, quant_type_name(params->type));
  struct kvcache *c = aug_calloc(1, sizeof *c);
  if (!c) return aug_err_set(err, AUG_ENOMEM, "kvcache: out of memory");
  c->params = *params;
  c->layers = aug_calloc(params->n_layer, sizeof *c->layers);
  if (!c->layers) {
    kvcache_destroy(c);
    return aug_err_set(err, AUG_ENOMEM, "kvcache: out of memory for %u layers", params->n_layer);
  }
  size_t plane = row * params->n_head_kv;
  size_t size = plane * params->n_ctx;
  for (uint32_t il = 0; il < params->n_layer; il++) {
    struct kvcache_layer *l = &c->layers[il];
    l->ops = ops[il];
    l->be = bes[il];
    if (!kvcache_backend_accepts(l->ops, l->be, params->type)) {
      /* the message first: l lives in c */
      aug_err_set(err, AUG_EUNSUPPORTED,
                  "kvcache: layer %u: backend %s refuses a %s KV cache (attention or copy)", il,
                  l->ops->name, quant_type_name(params->type));
      kvcache_destroy(c);
      return AUG_EUNSUPPORTED;
    }
    int rc = l->ops->buffer_alloc(l->be, BACKEND_BUFFER_KV, size, &l->k_buf, err);
    if (rc == 0) rc = l->ops->buffer_alloc(l->be, BACKEND_BUFFER_KV, size, &l->v_buf, err);
    if (rc < 0) {
      aug_err_prefix(err, "kvcache: layer %u (%zu bytes on %s)", il, size, l->ops->name);
      kvcache_destroy(c);
      return rc;
    }
    struct backend_tensor t = {
        .type = params->type,
        .ne = {params->head_dim, params->n_head_kv, params->n_ctx, 1},
        .row_stride = row,
        .plane_stride = plane,
        .offset = 0,
    };
    l->k = t;
    l->k.buffer = l->k_buf;
    l->v = t;
    l->v.buffer = l->v_buf;
    c->bytes += 2ull * size;
  }
  *out = c;
  return 0;
}

void kvcache_destroy(struct kvcache *cache) {
  if (!cache) return;
  if (cache->layers) {
    for (uint32_t il = 0; il < cache->params.n_layer; il++) {
      struct kvcache_layer *l = &cache->layers[il];
      if (l->k_buf) l->ops->buffer_free(l->be, l->k_buf);
      if (l->v_buf) l->ops->buffer_free(l->be, l->v_buf);
      if (l->shift_buf) l->ops->buffer_free(l->be, l->shift_buf);
    }
    aug_free(cache->layers);
  }
  aug_free(cache->shift_pos);
  aug_free(cache);
}

uint32_t kvcache_n_ctx(const struct kvcache *cache) {
  return cache->params.n_ctx;
}
uint32_t kvcache_type(const struct kvcache *cache) {
  return cache->params.type;
}
uint32_t kvcache_n_used(const struct kvcache *cache) {
  return cache->n_used;
}
uint64_t kvcache_bytes(const struct kvcache *cache) {
  return cache->bytes;
}

const struct backend_tensor *kvcache_k(const struct kvcache *cache, uint32_t il) {
  return &cache->layers[il].k;
}
const struct backend_tensor *kvcache_v(const struct kvcache *cache, uint32_t il) {
  return &cache->layers[il].v;
}

/* A view of cells [pos, pos + n) of a cache tensor. */
static struct backend_tensor kvcache_view(const struct backend_tensor *full, uint32_t pos,
                                          int64_t n) {
  struct backend_tensor t = *full;
  t.ne[2] = n;
  t.offset = full->offset + (size_t)pos * full->plane_stride;
  return t;
}

int kvcache_store(struct kvcache *cache, uint32_t il, const struct backend_tensor *k,
                  const struct backend_tensor *v, uint32_t pos, struct aug_err *err) {
  const struct kvcache_params *p = &cache->params;
  if (il >= p->n_layer)
    return aug_err_set(err, AUG_EINVAL, "kvcache: layer %u out of range (%u layers)", il,
                       p->n_layer);
  int64_t n = k->ne[2];
  if (k->ne[0] != p->head_dim || k->ne[1] != p->n_head_kv || v->ne[0] != k->ne[0] ||
      v->ne[1] != k->ne[1] || v->ne[2] != n)
    return aug_err_set(err, AUG_EINVAL,
                       "kvcache: layer %u: K [%lld, %lld, %lld] / V [%lld, %lld, %lld] do not "
                       "match head_dim %u, n_head_kv %u",
                       il, (long long)k->ne[0], (long long)k->ne[1], (long long)k->ne[2],
                       (long long)v->ne[0], (long long)v->ne[1], (long long)v->ne[2], p->head_dim,
                       p->n_head_kv);
  if (pos > cache->n_used || (uint64_t)pos + (uint64_t)n > p->n_ctx)
    return aug_err_set(err, AUG_ERANGE,
                       "kvcache: layer %u: cells [%u, %llu) outside [0, %u] with %u used", il, pos,
                       (unsigned long long)pos + (unsigned long long)n, p->n_ctx, cache->n_used);
  struct kvcache_layer *l = &cache->layers[il];
  struct backend_tensor kd = kvcache_view(&l->k, pos, n);
  struct backend_tensor vd = kvcache_view(&l->v, pos, n);
  int rc = l->ops->copy(l->be, k, &kd);
  if (rc == 0) rc = l->ops->copy(l->be, v, &vd);
  if (rc < 0)
    return aug_err_set(err, rc, "kvcache: layer %u: storing %lld cells at %u on %s failed: %s", il,
                       (long long)n, pos, l->ops->name, aug_strerror(rc));
  return 0;
}

int kvcache_commit(struct kvcache *cache, uint32_t n_used) {
  if (n_used > cache->params.n_ctx) return AUG_ERANGE;
  cache->n_used = n_used;
  return 0;
}

void kvcache_truncate(struct kvcache *cache, uint32_t n) {
  if (n < cache->n_used) cache->n_used = n;
}

void kvcache_remove_tail(struct kvcache *cache, uint32_t n) {
  cache->n_used = n >= cache->n_used ? 0 : cache->n_used - n;
}

/* ---- moving cells -----------------------------------------------------------------------------
 */

size_t kvcache_cell_bytes(const struct kvcache *cache) {
  return kvcache_row_size(&cache->params) * cache->params.n_head_kv;
}

uint64_t kvcache_host_bytes(const struct kvcache *cache, uint32_t n) {
  return (uint64_t)n * kvcache_bytes_per_token(&cache->params);
}

/* Range checks shared by download and upload: the host side and the cache side. */
static int kvcache_check_cells(const struct kvcache *cache, const char *what, uint32_t pos,
                               uint32_t n, uint32_t limit, uint32_t capacity, uint32_t at,
                               struct aug_err *err) {
  if ((uint64_t)pos + n > limit || (uint64_t)at + n > capacity)
    return aug_err_set(err, AUG_ERANGE,
                       "kvcache: %s of cells [%u, %llu) (host cells at %u of %u) outside the %u "
                       "allowed (%u used)",
                       what, pos, (unsigned long long)pos + n, at, capacity, limit, cache->n_used);
  return 0;
}

int kvcache_download_cells(struct kvcache *cache, uint32_t pos, uint32_t n, void *dst,
                           uint32_t capacity, uint32_t at, struct aug_err *err) {
  int rc = kvcache_check_cells(cache, "download", pos, n, cache->n_used, capacity, at, err);
  if (rc < 0 || n == 0) return rc;
  size_t cell = kvcache_cell_bytes(cache);
  for (uint32_t il = 0; il < cache->params.n_layer; il++) {
    struct kvcache_layer *l = &cache->layers[il];
    const struct backend_tensor *ts[2] = {&l->k, &l->v};
    for (int kv = 0; kv < 2; kv++) {
      unsigned char *to = (unsigned char *)dst + ((2 * (size_t)il + kv) * capacity + at) * cell;
      rc = l->ops->download(l->be, ts[kv]->buffer, ts[kv]->offset + (size_t)pos * cell, to,
                            (size_t)n * cell);
      if (rc < 0)
        return aug_err_set(err, rc, "kvcache: layer %u: download of %u cells from %s failed: %s",
                           il, n, l->ops->name, aug_strerror(rc));
    }
  }
  return 0;
}

int kvcache_upload_cells(struct kvcache *cache, uint32_t pos, uint32_t n, const void *src,
                         uint32_t capacity, uint32_t at, struct aug_err *err) {
  if (pos > cache->n_used)
    return aug_err_set(err, AUG_ERANGE, "kvcache: upload at cell %u leaves a hole (%u used)", pos,
                       cache->n_used);
  int rc = kvcache_check_cells(cache, "upload", pos, n, cache->params.n_ctx, capacity, at, err);
  if (rc < 0 || n == 0) return rc;
  size_t cell = kvcache_cell_bytes(cache);
  for (uint32_t il = 0; il < cache->params.n_layer; il++) {
    struct kvcache_layer *l = &cache->layers[il];
    const struct backend_tensor *ts[2] = {&l->k, &l->v};
    for (int kv = 0; kv < 2; kv++) {
      const unsigned char *from =
          (const unsigned char *)src + ((2 * (size_t)il + kv) * capacity + at) * cell;
      rc = l->ops->upload(l->be, ts[kv]->buffer, ts[kv]->offset + (size_t)pos * cell, from,
                          (size_t)n * cell);
      if (rc < 0)
        return aug_err_set(err, rc, "kvcache: layer %u: upload of %u cells to %s failed: %s", il, n,
                           l->ops->name, aug_strerror(rc));
    }
  }
  return 0;
}

int kvcache_reserve_shift(struct kvcache *cache, uint32_t chunk, struct aug_err *err) {
  if (chunk == 0) chunk = 64;
  if (cache->shift_chunk >= chunk) return 0;
  const struct kvcache_params *p = &cache->params;
  int32_t *pos = aug_calloc(chunk, sizeof *pos);
  if (!pos)
    return aug_err_set(err, AUG_ENOMEM, "kvcache: out of memory (%u shift positions)", chunk);
  aug_free(cache->shift_pos);
  cache->shift_pos = pos;
  size_t row = (size_t)p->head_dim * sizeof(float);
  size_t size = row * p->n_head_kv * chunk;
  for (uint32_t il = 0; il < p->n_layer; il++) {
    struct kvcache_layer *l = &cache->layers[il];
    if (l->shift_buf) l->ops->buffer_free(l->be, l->shift_buf);
    l->shift_buf = NULL;
    int rc = l->ops->buffer_alloc(l->be, BACKEND_BUFFER_COMPUTE, size, &l->shift_buf, err);
    if (rc < 0) {
      cache->shift_chunk = 0;
      aug_err_prefix(err, "kvcache: layer %u: K-shift scratch (%zu bytes) on %s", il, size,
                     l->ops->name);
      return rc;
    }
    l->shift = (struct backend_tensor){.type = QUANT_F32,
                                       .ne = {p->head_dim, p->n_head_kv, chunk, 1},
                                       .row_stride = row,
                                       .plane_stride = row * p->n_head_kv,
                                       .buffer = l->shift_buf};
  }
  cache->shift_chunk = chunk;
  return 0;
}

int kvcache_shift_k(struct kvcache *cache, uint32_t pos, uint32_t n, int32_t delta,
                    const struct backend_rope_params *rope, struct aug_err *err) {
  if (cache->shift_chunk == 0)
    return aug_err_set(err, AUG_EINVAL, "kvcache: K shift without kvcache_reserve_shift");
  if ((uint64_t)pos + n > cache->params.n_ctx)
    return aug_err_set(err, AUG_ERANGE, "kvcache: K shift of cells [%u, %llu) beyond %u", pos,
                       (unsigned long long)pos + n, cache->params.n_ctx);
  if (delta == 0 || n == 0) return 0;
  for (uint32_t i = 0; i < cache->shift_chunk; i++)
    cache->shift_pos[i] = delta;
  for (uint32_t il = 0; il < cache->params.n_layer; il++) {
    struct kvcache_layer *l = &cache->layers[il];
    for (uint32_t c0 = 0; c0 < n; c0 += cache->shift_chunk) {
      uint32_t m = n - c0 < cache->shift_chunk ? n - c0 : cache->shift_chunk;
      struct backend_tensor cells = kvcache_view(&l->k, pos + c0, m); /* [hd, n_head_kv, m] */
      struct backend_tensor f32 = l->shift;                           /* [hd, n_head_kv, m] */
      f32.ne[2] = m;
      int rc = l->ops->copy(l->be, &cells, &f32);
      if (rc == 0) rc = l->ops->rope(l->be, &f32, cache->shift_pos, rope);
      if (rc == 0) rc = l->ops->copy(l->be, &f32, &cells);
      if (rc < 0)
        return aug_err_set(err, rc, "kvcache: layer %u: K shift of %u cells by %d on %s failed: %s",
                           il, m, delta, l->ops->name, aug_strerror(rc));
    }
  }
  return 0;
}
