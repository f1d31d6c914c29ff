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
};

struct kvcache {
  struct kvcache_params params;
  uint32_t n_used;
  uint64_t bytes;
  struct kvcache_layer *layers; /* n_layer */
};

static size_t kvcache_row_size(const struct kvcache_params *p) {
  return quant_row_size(p->type, p->head_dim);
}

uint64_t kvcache_bytes_per_token(const struct kvcache_params *params) {
  return 2ull * params->n_layer * params->n_head_kv * kvcache_row_size(params);
}

int kvcache_create(const struct kvcache_params *params, const struct backend_ops *const *ops,
                   struct backend *const *bes, struct kvcache **out, struct aug_err *err) {
  *out = NULL;
  if (params->type != QUANT_F16 && params->type != QUANT_Q8_0)
    return aug_err_set(err, AUG_EUNSUPPORTED, "kvcache: type %s is not supported (f16, q8_0)",
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
    }
    aug_free(cache->layers);
  }
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
