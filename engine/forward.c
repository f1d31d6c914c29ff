/* The forward pass, top to bottom as the math goes (llama2.c's forward, over backend ops):
 * embedding rows; per layer: rms_norm, q/k/v projections (+ bias for qwen2), RoPE, K/V into the
 * layer's cache, causal GQA attention, output projection, residual; rms_norm, SwiGLU feed-forward
 * (silu(gate) * up, down), residual; then the final norm and the output head for the rows whose
 * logits are wanted. References: "Attention Is All You Need" (2017), RMSNorm (Zhang & Sennrich
 * 2019), RoPE (Su et al. 2021), GQA (Ainslie et al. 2023), SwiGLU (Shazeer 2020).
 * Invariants: all scratch is allocated in forward_create; each layer runs on its placement's
 * backend, with its own weights and KV cache; the hidden state is copied between backends only
 * where consecutive layers (or the head) sit on different ones. */
#include "engine/forward.h"

#include <math.h>
#include <string.h>

#include "engine/alloc.h"
#include "engine/quant.h"

#define FORWARD_ALIGN 256

struct forward_layer_weights {
  uint32_t dev;                    /* index into forward.devs */
  struct backend_tensor attn_norm; /* [n_embd] F32 */
  struct backend_tensor wq, wk, wv,
      wo; /* [n_embd, n_head*hd], [n_embd, n_head_kv*hd] x2, [n_head*hd, n_embd] */
  struct backend_tensor bq, bk, bv;                 /* [n_head*hd], [n_head_kv*hd] x2; qwen2 only */
  struct backend_tensor ffn_norm;                   /* [n_embd] F32 */
  struct backend_tensor ffn_gate, ffn_up, ffn_down; /* [n_embd, n_ff] x2, [n_ff, n_embd] */
};

/* One distinct backend instance of the placement, with the weights and scratch it holds. */
struct forward_dev {
  struct forward_device d;
  bool hosts_layers;
  bool hosts_output;
  /* Weights: either the mmapped GGUF data section wrapped in place (host-visible backends), or
   * buffers of at most max_chunk bytes into which this device's tensors were uploaded in order
   * (drivers refuse single allocations over 1-4 GiB; a 7B model's weights are larger). */
  struct backend_buffer *mapped;
  const char *mapped_base; /* non-NULL when mapped wraps the file's data section */
  struct backend_buffer **chunks;
  size_t *chunk_size;
  uint32_t n_chunks, cap_chunks;
  uint32_t chunk_at; /* pass 1: the chunk being filled, and how far */
  size_t chunk_used;
  uint64_t max_chunk;
  uint64_t weights_bytes;
  /* Activations for n_batch tokens (hosts_layers). Each is [rows, n_batch] F32. */
  struct backend_buffer *scratch;
  struct backend_tensor x;    /* [n_embd, B] the residual stream */
  struct backend_tensor xb;   /* [n_embd, B] normed input / projection output */
  struct backend_tensor q;    /* [n_head*hd, B] */
  struct backend_tensor k, v; /* [n_head_kv*hd, B] */
  struct backend_tensor att;  /* [n_head*hd, B] attention output */
  struct backend_tensor gate; /* [n_ff, B] */
  struct backend_tensor up;   /* [n_ff, B] */
  /* Output head (hosts_output). */
  struct backend_buffer *out_buf;
  struct backend_tensor xo;     /* [n_embd, n_outputs] */
  struct backend_tensor xo_in;  /* [n_embd, n_outputs] hidden rows copied from another device */
  struct backend_tensor logits; /* [n_vocab, n_outputs] */
};

struct forward {
  const struct model *model;
  struct forward_params params;
  uint32_t n_devs;
  struct forward_dev *devs;
  uint32_t output_dev;
  struct forward_layer_weights *layers;      /* n_layer */
  struct backend_tensor tok_embd;            /* on layers[0].dev */
  struct backend_tensor output_norm, output; /* on output_dev */
  struct backend_rope_params rope;
  struct kvcache *kv;
  int32_t *pos;             /* [n_batch] positions of the batch, host */
  float *staging;           /* [n_embd * n_batch] host copy of the hidden state between devices */
  float *logits_host;       /* [n_vocab * n_outputs] when the output buffer is not host-visible */
  const float *logits_rows; /* where row 0 of the logits is readable on the host */
  size_t n_logits;
  uint64_t scratch_bytes;
};

struct forward_params forward_params_default(void) {
  return (struct forward_params){
      .n_ctx = 4096, .n_batch = 512, .n_outputs = 1, .kv_type = QUANT_F16};
}

/* ---- descriptors ---------------------------------------------------------------------------- */

static struct backend_tensor forward_f32(struct backend_buffer *buf, size_t *offset, int64_t rows,
                                         int64_t cols) {
  struct backend_tensor t = {.type = QUANT_F32,
                             .ne = {rows, cols, 1, 1},
                             .row_stride = (size_t)rows * sizeof(float),
                             .buffer = buf,
                             .offset = *offset};
  size_t bytes = (size_t)rows * (size_t)cols * sizeof(float);
  *offset += (bytes + FORWARD_ALIGN - 1) / FORWARD_ALIGN * FORWARD_ALIGN;
  return t;
}

static size_t forward_f32_size(int64_t rows, int64_t cols) {
  size_t bytes = (size_t)rows * (size_t)cols * sizeof(float);
  return (bytes + FORWARD_ALIGN - 1) / FORWARD_ALIGN * FORWARD_ALIGN;
}

/* Columns [col0, col0 + n) of a [rows, cols] tensor. */
static struct backend_tensor forward_cols(const struct backend_tensor *t, int64_t col0, int64_t n) {
  struct backend_tensor v = *t;
  v.ne[1] = n;
  v.offset = t->offset + (size_t)col0 * t->row_stride;
  return v;
}

/* The first n columns of a [n_heads*head_dim, B] tensor seen as [head_dim, n_heads, n]. */
static struct backend_tensor forward_heads(const struct backend_tensor *t, int64_t head_dim,
                                           int64_t n_heads, int64_t n) {
  struct backend_tensor v = *t;
  v.ne[0] = head_dim;
  v.ne[1] = n_heads;
  v.ne[2] = n;
  v.row_stride = (size_t)head_dim * sizeof(float);
  v.plane_stride = t->row_stride;
  return v;
}

/* ---- weights -------------------------------------------------------------------------------- */

/* Pass 0 counts the bytes a device must upload, cut into chunks no larger than its buffer
 * limit; pass 1 fills the descriptor (a view into the mapped file, or an upload into the chunk
 * pass 0 chose: both passes see the tensors in the same order). */
static int forward_bind(struct forward *f, uint32_t dev, const struct gguf_tensor *t, int pass,
                        struct backend_tensor *out, struct aug_err *err) {
  struct forward_dev *d = &f->devs[dev];
  size_t aligned = ((size_t)t->size + FORWARD_ALIGN - 1) / FORWARD_ALIGN * FORWARD_ALIGN;
  if (pass == 0) {
    if (d->mapped_base) return 0;
    if (aligned > d->max_chunk)
      return aug_err_set(err, AUG_ERANGE,
                         "forward: tensor '%s' (%zu bytes) exceeds the largest buffer %s allows "
                         "(%llu bytes)",
                         t->name, aligned, d->d.ops->name, (unsigned long long)d->max_chunk);
    if (d->n_chunks == 0 || d->chunk_size[d->n_chunks - 1] + aligned > d->max_chunk) {
      if (d->n_chunks == d->cap_chunks) {
        uint32_t cap = d->cap_chunks ? 2 * d->cap_chunks : 4;
        size_t *sizes = aug_realloc(d->chunk_size, cap * sizeof *sizes);
        if (!sizes) return aug_err_set(err, AUG_ENOMEM, "forward: out of memory (chunks)");
        d->chunk_size = sizes;
        d->cap_chunks = cap;
      }
      d->chunk_size[d->n_chunks++] = 0;
    }
    d->chunk_size[d->n_chunks - 1] += aligned;
    d->weights_bytes += aligned;
    return 0;
  }
  *out = (struct backend_tensor){
      .type = t->type,
      .ne = {(int64_t)t->ne[0], (int64_t)t->ne[1], (int64_t)t->ne[2], (int64_t)t->ne[3]},
      .row_stride = quant_row_size(t->type, t->ne[0])};
  if (out->row_stride == 0)
    return aug_err_set(err, AUG_EUNSUPPORTED, "forward: tensor '%s': type %s, row of %llu", t->name,
                       quant_type_name(t->type), (unsigned long long)t->ne[0]);
  if (d->mapped_base) {
    out->buffer = d->mapped;
    out->offset = (size_t)((const char *)t->data - d->mapped_base);
    return 0;
  }
  if (d->chunk_used + aligned > d->chunk_size[d->chunk_at]) {
    d->chunk_at++;
    d->chunk_used = 0;
  }
  out->buffer = d->chunks[d->chunk_at];
  int rc = d->d.ops->upload(d->d.be, out->buffer, d->chunk_used, t->data, (size_t)t->size);
  if (rc < 0)
    return aug_err_set(err, rc, "forward: uploading '%s' (%llu bytes) to %s failed: %s", t->name,
                       (unsigned long long)t->size, d->d.ops->name, aug_strerror(rc));
  out->offset = d->chunk_used;
  d->chunk_used += aligned;
  return 0;
}

#define FORWARD_BLOCK_MATRICES 7

static void block_matrices(const struct model_layer *ml,
                           const struct gguf_tensor *mats[FORWARD_BLOCK_MATRICES]) {
  mats[0] = ml->wq, mats[1] = ml->wk, mats[2] = ml->wv, mats[3] = ml->wo;
  mats[4] = ml->ffn_gate, mats[5] = ml->ffn_up, mats[6] = ml->ffn_down;
}

static bool device_supports(const struct forward_device *d, enum backend_op op,
                            const struct gguf_tensor *t) {
  return !d->ops->supports_op || d->ops->supports_op(d->be, op, t->type);
}

const struct gguf_tensor *forward_block_refused(const struct model *model, uint32_t il,
                                                const struct forward_device *dev) {
  const struct gguf_tensor *mats[FORWARD_BLOCK_MATRICES];
  block_matrices(&model->layers[il], mats);
  for (int i = 0; i < FORWARD_BLOCK_MATRICES; i++)
    if (!device_supports(dev, BACKEND_OP_MATMUL, mats[i])) return mats[i];
  if (il == 0 && !device_supports(dev, BACKEND_OP_GET_ROWS, model->tok_embd))
    return model->tok_embd;
  return NULL;
}

static int refused_error(const struct forward_device *d, const struct gguf_tensor *t,
                         struct aug_err *err) {
  return aug_err_set(err, AUG_EUNSUPPORTED, "forward: backend %s cannot use tensor '%s' of type %s",
                     d->ops->name, t->name, quant_type_name(t->type));
}

static int forward_bind_all(struct forward *f, int pass, struct aug_err *err) {
  const struct model *m = f->model;
  int rc = 0;
  for (uint32_t il = 0; il < m->hp.n_layer && pass == 0; il++) {
    const struct forward_device *d = &f->devs[f->layers[il].dev].d;
    const struct gguf_tensor *refused = forward_block_refused(m, il, d);
    if (refused) return refused_error(d, refused, err);
  }
  rc = forward_bind(f, f->layers[0].dev, m->tok_embd, pass, &f->tok_embd, err);
  for (uint32_t il = 0; il < m->hp.n_layer && rc == 0; il++) {
    const struct model_layer *ml = &m->layers[il];
    struct forward_layer_weights *lw = &f->layers[il];
    const struct gguf_tensor *mats[FORWARD_BLOCK_MATRICES];
    block_matrices(ml, mats);
    struct backend_tensor *dsts[FORWARD_BLOCK_MATRICES] = {
        &lw->wq, &lw->wk, &lw->wv, &lw->wo, &lw->ffn_gate, &lw->ffn_up, &lw->ffn_down};
    for (int i = 0; i < FORWARD_BLOCK_MATRICES && rc == 0; i++)
      rc = forward_bind(f, lw->dev, mats[i], pass, dsts[i], err);
    if (rc == 0) rc = forward_bind(f, lw->dev, ml->attn_norm, pass, &lw->attn_norm, err);
    if (rc == 0) rc = forward_bind(f, lw->dev, ml->ffn_norm, pass, &lw->ffn_norm, err);
    if (m->hp.has_qkv_bias) {
      if (rc == 0) rc = forward_bind(f, lw->dev, ml->bq, pass, &lw->bq, err);
      if (rc == 0) rc = forward_bind(f, lw->dev, ml->bk, pass, &lw->bk, err);
      if (rc == 0) rc = forward_bind(f, lw->dev, ml->bv, pass, &lw->bv, err);
    }
  }
  if (rc == 0) rc = forward_bind(f, f->output_dev, m->output_norm, pass, &f->output_norm, err);
  const struct forward_device *out_dev = &f->devs[f->output_dev].d;
  if (rc == 0 && pass == 0 && !device_supports(out_dev, BACKEND_OP_MATMUL, m->output))
    rc = refused_error(out_dev, m->output, err);
  if (rc == 0) rc = forward_bind(f, f->output_dev, m->output, pass, &f->output, err);
  return rc;
}

/* Wraps the mapped data section on host-visible backends that can; otherwise uploads. */
static int forward_load_weights(struct forward *f, struct aug_err *err) {
  const struct model *m = f->model;
  const struct gguf_tensor *t0 = m->tok_embd;
  /* data - offset = start of the data section in the mapping (gguf.h: offset is from there). */
  const char *base = (const char *)t0->data - t0->offset;
  size_t size = (size_t)(gguf_file_size(m->file) - gguf_data_offset(m->file));
  for (uint32_t i = 0; i < f->n_devs; i++) {
    struct forward_dev *d = &f->devs[i];
    struct backend_device_info info;
    memset(&info, 0, sizeof info);
    if (d->d.ops->device_info && d->d.ops->device_info(d->d.be, &info) < 0)
      info.host_visible = false;
    d->max_chunk =
        info.max_buffer_size ? info.max_buffer_size / FORWARD_ALIGN * FORWARD_ALIGN : UINT64_MAX;
    if (d->d.ops->buffer_from_host && info.host_visible) {
      struct aug_err wrap_err = {0};
      if (d->d.ops->buffer_from_host(d->d.be, base, size, &d->mapped, &wrap_err) == 0)
        d->mapped_base = base;
    }
  }
  int rc = forward_bind_all(f, 0, err);
  for (uint32_t i = 0; i < f->n_devs && rc == 0; i++) {
    struct forward_dev *d = &f->devs[i];
    if (d->n_chunks == 0) continue;
    d->chunks = aug_calloc(d->n_chunks, sizeof *d->chunks);
    if (!d->chunks) return aug_err_set(err, AUG_ENOMEM, "forward: out of memory (chunks)");
    for (uint32_t c = 0; c < d->n_chunks && rc == 0; c++) {
      rc = d->d.ops->buffer_alloc(d->d.be, BACKEND_BUFFER_WEIGHTS, d->chunk_size[c], &d->chunks[c],
                                  err);
      if (rc < 0)
        aug_err_prefix(err, "forward: weights (%llu bytes in %u buffers) on %s",
                       (unsigned long long)d->weights_bytes, d->n_chunks, d->d.ops->name);
    }
  }
  if (rc == 0) rc = forward_bind_all(f, 1, err);
  return rc;
}

/* ---- creation ------------------------------------------------------------------------------- */

static uint32_t forward_dev_index(struct forward *f, const struct forward_device *d) {
  for (uint32_t i = 0; i < f->n_devs; i++)
    if (f->devs[i].d.ops == d->ops && f->devs[i].d.be == d->be) return i;
  f->devs[f->n_devs].d = *d;
  return f->n_devs++;
}

static int forward_alloc_scratch(struct forward *f, struct aug_err *err) {
  const struct model_hparams *hp = &f->model->hp;
  int64_t B = f->params.n_batch, O = f->params.n_outputs;
  int64_t nq = (int64_t)hp->n_head * hp->head_dim, nkv = (int64_t)hp->n_head_kv * hp->head_dim;
  for (uint32_t i = 0; i < f->n_devs; i++) {
    struct forward_dev *d = &f->devs[i];
    if (d->hosts_layers) {
      size_t size = 2 * forward_f32_size(hp->n_embd, B) + 2 * forward_f32_size(nq, B) +
                    2 * forward_f32_size(nkv, B) + 2 * forward_f32_size(hp->n_ff, B);
      int rc = d->d.ops->buffer_alloc(d->d.be, BACKEND_BUFFER_COMPUTE, size, &d->scratch, err);
      if (rc < 0) {
        aug_err_prefix(err, "forward: activations for %lld tokens (%zu bytes) on %s", (long long)B,
                       size, d->d.ops->name);
        return rc;
      }
      f->scratch_bytes += size;
      size_t off = 0;
      d->x = forward_f32(d->scratch, &off, hp->n_embd, B);
      d->xb = forward_f32(d->scratch, &off, hp->n_embd, B);
      d->q = forward_f32(d->scratch, &off, nq, B);
      d->k = forward_f32(d->scratch, &off, nkv, B);
      d->v = forward_f32(d->scratch, &off, nkv, B);
      d->att = forward_f32(d->scratch, &off, nq, B);
      d->gate = forward_f32(d->scratch, &off, hp->n_ff, B);
      d->up = forward_f32(d->scratch, &off, hp->n_ff, B);
    }
    if (d->hosts_output) {
      size_t size = 2 * forward_f32_size(hp->n_embd, O) + forward_f32_size(hp->n_vocab, O);
      int rc = d->d.ops->buffer_alloc(d->d.be, BACKEND_BUFFER_COMPUTE, size, &d->out_buf, err);
      if (rc < 0) {
        aug_err_prefix(err, "forward: logits for %lld rows (%zu bytes) on %s", (long long)O, size,
                       d->d.ops->name);
        return rc;
      }
      f->scratch_bytes += size;
      size_t off = 0;
      d->xo = forward_f32(d->out_buf, &off, hp->n_embd, O);
      d->xo_in = forward_f32(d->out_buf, &off, hp->n_embd, O);
      d->logits = forward_f32(d->out_buf, &off, hp->n_vocab, O);
      void *host =
          d->d.ops->buffer_host_ptr ? d->d.ops->buffer_host_ptr(d->d.be, d->out_buf) : NULL;
      if (host) {
        f->logits_rows = (const float *)((const char *)host + d->logits.offset);
      } else {
        f->logits_host = aug_malloc((size_t)hp->n_vocab * (size_t)O * sizeof(float));
        if (!f->logits_host) return aug_err_set(err, AUG_ENOMEM, "forward: out of memory (logits)");
        f->logits_rows = f->logits_host;
        f->scratch_bytes += (uint64_t)hp->n_vocab * (uint64_t)O * sizeof(float);
      }
    }
  }
  bool crosses = f->devs[f->output_dev].hosts_layers == false;
  for (uint32_t il = 1; il < hp->n_layer; il++)
    if (f->layers[il].dev != f->layers[il - 1].dev) crosses = true;
  if (f->output_dev != f->layers[hp->n_layer - 1].dev) crosses = true;
  f->pos = aug_calloc((size_t)B, sizeof *f->pos);
  if (crosses) f->staging = aug_malloc(forward_f32_size(hp->n_embd, B));
  if (!f->pos || (crosses && !f->staging))
    return aug_err_set(err, AUG_ENOMEM, "forward: out of memory (positions, staging)");
  return 0;
}

int forward_create(const struct model *model, const struct forward_placement *placement,
                   const struct forward_params *params, struct forward **out, struct aug_err *err) {
  *out = NULL;
  const struct model_hparams *hp = &model->hp;
  if (placement->n_layer != hp->n_layer || !placement->layers || !placement->output.ops)
    return aug_err_set(err, AUG_EINVAL, "forward: placement covers %u layers, model has %u",
                       placement->n_layer, hp->n_layer);
  if (params->n_ctx == 0 || params->n_batch == 0 || params->n_outputs == 0)
    return aug_err_set(err, AUG_EINVAL, "forward: n_ctx %u, n_batch %u, n_outputs %u must be > 0",
                       params->n_ctx, params->n_batch, params->n_outputs);
  if (model->rope_freqs &&
      (model->rope_freqs->type != QUANT_F32 || model->rope_freqs->n_elements * 2 < hp->n_rot))
    return aug_err_set(err, AUG_EFORMAT, "forward: rope_freqs must be F32 with n_rot/2 = %u values",
                       hp->n_rot / 2);
  struct forward *f = aug_calloc(1, sizeof *f);
  if (!f) return aug_err_set(err, AUG_ENOMEM, "forward: out of memory");
  f->model = model;
  f->params = *params;
  f->devs = aug_calloc((size_t)hp->n_layer + 1, sizeof *f->devs);
  f->layers = aug_calloc(hp->n_layer, sizeof *f->layers);
  const struct backend_ops **kv_ops = aug_calloc(hp->n_layer, sizeof *kv_ops);
  struct backend **kv_bes = aug_calloc(hp->n_layer, sizeof *kv_bes);
  int rc = 0;
  if (!f->devs || !f->layers || !kv_ops || !kv_bes) {
    rc = aug_err_set(err, AUG_ENOMEM, "forward: out of memory for %u layers", hp->n_layer);
    goto done;
  }
  for (uint32_t il = 0; il < hp->n_layer; il++) {
    const struct forward_device *d = &placement->layers[il];
    if (!d->ops || !d->be) {
      rc = aug_err_set(err, AUG_EINVAL, "forward: placement of layer %u has no backend", il);
      goto done;
    }
    f->layers[il].dev = forward_dev_index(f, d);
    f->devs[f->layers[il].dev].hosts_layers = true;
    kv_ops[il] = d->ops;
    kv_bes[il] = d->be;
  }
  f->output_dev = forward_dev_index(f, &placement->output);
  f->devs[f->output_dev].hosts_output = true;

  f->rope = (struct backend_rope_params){
      .n_rot = (int)hp->n_rot,
      .layout = hp->rope_layout == ROPE_LAYOUT_NEOX ? BACKEND_ROPE_NEOX : BACKEND_ROPE_NORMAL,
      .freq_base = hp->rope_freq_base,
      .freq_scale = hp->rope_freq_scale,
      .freq_factors = model->rope_freqs ? (const float *)model->rope_freqs->data : NULL,
  };

  struct kvcache_params kvp = {.n_layer = hp->n_layer,
                               .n_ctx = params->n_ctx,
                               .n_head_kv = hp->n_head_kv,
                               .head_dim = hp->head_dim,
                               .type = params->kv_type};
  rc = kvcache_create(&kvp, kv_ops, kv_bes, &f->kv, err);
  if (rc == 0) rc = forward_load_weights(f, err);
  if (rc == 0) rc = forward_alloc_scratch(f, err);
done:
  aug_free(kv_ops);
  aug_free(kv_bes);
  if (rc < 0) {
    forward_destroy(f);
    return rc;
  }
  *out = f;
  return 0;
}

void forward_destroy(struct forward *f) {
  if (!f) return;
  kvcache_destroy(f->kv);
  if (f->devs) {
    for (uint32_t i = 0; i < f->n_devs; i++) {
      struct forward_dev *d = &f->devs[i];
      if (d->mapped) d->d.ops->buffer_free(d->d.be, d->mapped);
      for (uint32_t c = 0; d->chunks && c < d->n_chunks; c++)
        if (d->chunks[c]) d->d.ops->buffer_free(d->d.be, d->chunks[c]);
      aug_free(d->chunks);
      aug_free(d->chunk_size);
      if (d->scratch) d->d.ops->buffer_free(d->d.be, d->scratch);
      if (d->out_buf) d->d.ops->buffer_free(d->d.be, d->out_buf);
    }
  }
  aug_free(f->devs);
  aug_free(f->layers);
  aug_free(f->pos);
  aug_free(f->staging);
  aug_free(f->logits_host);
  aug_free(f);
}

/* ---- evaluation ----------------------------------------------------------------------------- */

static int forward_op_failed(struct aug_err *err, int rc, const struct forward_dev *d,
                             const char *op, long layer) {
  if (layer >= 0)
    return aug_err_set(err, rc, "forward: %s on %s failed in layer %ld: %s", op, d->d.ops->name,
                       layer, aug_strerror(rc));
  return aug_err_set(err, rc, "forward: %s on %s failed: %s", op, d->d.ops->name, aug_strerror(rc));
}

#define FORWARD_OP(dev, layer, name, call)                                                         \
  do {                                                                                             \
    int rc_ = (call);                                                                              \
    if (rc_ < 0) return forward_op_failed(err, rc_, (dev), (name), (layer));                       \
  } while (0)

static bool forward_cancelled(const atomic_bool *cancel) {
  return cancel && atomic_load_explicit(cancel, memory_order_relaxed);
}

/* Copies columns [0, n) of src.x (on device a) into dst (on device b) through host memory. */
static int forward_transfer(struct forward *f, const struct forward_dev *a,
                            const struct backend_tensor *src, const struct forward_dev *b,
                            const struct backend_tensor *dst, int64_t n, struct aug_err *err) {
  size_t bytes = (size_t)n * src->row_stride;
  FORWARD_OP(a, -1, "download of the hidden state",
             a->d.ops->download(a->d.be, src->buffer, src->offset, f->staging, bytes));
  FORWARD_OP(b, -1, "upload of the hidden state",
             b->d.ops->upload(b->d.be, dst->buffer, dst->offset, f->staging, bytes));
  return 0;
}

#define FORWARD_OBSERVE(name, layer, tensor)                                                       \
  do {                                                                                             \
    if (f->params.observe)                                                                         \
      f->params.observe(f->params.observe_ctx, (name), (layer), (tensor), &d->d);                  \
  } while (0)

/* One transformer block over the batch's n tokens at positions f->pos[0..n), in place on d->x.
 * The feed-forward half runs on columns [ffn_col0, ffn_col0 + ffn_n) only: all of them except in
 * the last layer, where only the rows whose logits are wanted matter (none, the last, or all).
 * Besides saving work, this keeps the batch sizes of the last layer's matmuls the same as
 * llama.cpp's, which picks its kernels (and so its summation order) by batch size. */
static int forward_layer(struct forward *f, uint32_t il, int64_t n, uint32_t pos0, int64_t ffn_col0,
                         int64_t ffn_n, struct aug_err *err) {
  const struct model_hparams *hp = &f->model->hp;
  const struct forward_layer_weights *w = &f->layers[il];
  struct forward_dev *d = &f->devs[w->dev];
  const struct backend_ops *ops = d->d.ops;
  struct backend *be = d->d.be;
  long L = (long)il;
  struct backend_tensor x = forward_cols(&d->x, 0, n);           /* [n_embd, n] */
  struct backend_tensor xb = forward_cols(&d->xb, 0, n);         /* [n_embd, n] */
  struct backend_tensor q = forward_cols(&d->q, 0, n);           /* [n_head*hd, n] */
  struct backend_tensor k = forward_cols(&d->k, 0, n);           /* [n_head_kv*hd, n] */
  struct backend_tensor v = forward_cols(&d->v, 0, n);           /* [n_head_kv*hd, n] */
  struct backend_tensor att = forward_cols(&d->att, 0, n);       /* [n_head*hd, n] */
  struct backend_tensor gate = forward_cols(&d->gate, 0, ffn_n); /* [n_ff, ffn_n] */
  struct backend_tensor up = forward_cols(&d->up, 0, ffn_n);     /* [n_ff, ffn_n] */

  /* Attention: xb = rmsnorm(x) * attn_norm; q, k, v = W xb (+ b). */
  FORWARD_OP(d, L, "rms_norm", ops->rms_norm(be, &x, &w->attn_norm, hp->rms_eps, &xb));
  FORWARD_OBSERVE("attn_norm", (int)il, &xb);
  FORWARD_OP(d, L, "matmul wq", ops->matmul(be, &w->wq, &xb, &q));
  FORWARD_OP(d, L, "matmul wk", ops->matmul(be, &w->wk, &xb, &k));
  FORWARD_OP(d, L, "matmul wv", ops->matmul(be, &w->wv, &xb, &v));
  if (hp->has_qkv_bias) {
    FORWARD_OP(d, L, "add bq", ops->add(be, &q, &w->bq, &q));
    FORWARD_OP(d, L, "add bk", ops->add(be, &k, &w->bk, &k));
    FORWARD_OP(d, L, "add bv", ops->add(be, &v, &w->bv, &v));
  }
  FORWARD_OBSERVE("Qcur", (int)il, &q);
  FORWARD_OBSERVE("Kcur", (int)il, &k);
  FORWARD_OBSERVE("Vcur", (int)il, &v);
  /* RoPE rotates q and k by position; v is not rotated. */
  struct backend_tensor qh = forward_heads(&q, hp->head_dim, hp->n_head, n);
  struct backend_tensor kh = forward_heads(&k, hp->head_dim, hp->n_head_kv, n);
  struct backend_tensor vh = forward_heads(&v, hp->head_dim, hp->n_head_kv, n);
  struct backend_tensor ah = forward_heads(&att, hp->head_dim, hp->n_head, n);
  FORWARD_OP(d, L, "rope q", ops->rope(be, &qh, f->pos, &f->rope));
  FORWARD_OP(d, L, "rope k", ops->rope(be, &kh, f->pos, &f->rope));
  FORWARD_OBSERVE("Qrope", (int)il, &q);
  FORWARD_OBSERVE("Krope", (int)il, &k);
  int rc = kvcache_store(f->kv, il, &kh, &vh, pos0, err);
  if (rc < 0) return rc;
  /* att = softmax(q K^T / sqrt(hd) + causal mask) V over cells [0, pos0 + n). */
  struct backend_attention_params ap = {
      .scale = 1.0f / sqrtf((float)hp->head_dim), .n_kv = (int32_t)(pos0 + n), .q_pos = f->pos};
  FORWARD_OP(d, L, "attention",
             ops->attention(be, &qh, kvcache_k(f->kv, il), kvcache_v(f->kv, il), &ap, &ah));
  FORWARD_OBSERVE("kqv_out", (int)il, &att);
  /* x = x + Wo att. */
  FORWARD_OP(d, L, "matmul wo", ops->matmul(be, &w->wo, &att, &xb));
  FORWARD_OBSERVE("attn_out", (int)il, &xb);
  FORWARD_OP(d, L, "add residual", ops->add(be, &x, &xb, &x));
  FORWARD_OBSERVE("ffn_inp", (int)il, &x);
  if (ffn_n == 0) return 0;
  x = forward_cols(&d->x, ffn_col0, ffn_n);   /* [n_embd, ffn_n] */
  xb = forward_cols(&d->xb, ffn_col0, ffn_n); /* [n_embd, ffn_n] */

  /* Feed-forward: x = x + W_down (silu(W_gate xb) * W_up xb), xb = rmsnorm(x) * ffn_norm. */
  FORWARD_OP(d, L, "rms_norm", ops->rms_norm(be, &x, &w->ffn_norm, hp->rms_eps, &xb));
  FORWARD_OBSERVE("ffn_norm", (int)il, &xb);
  FORWARD_OP(d, L, "matmul ffn_gate", ops->matmul(be, &w->ffn_gate, &xb, &gate));
  FORWARD_OP(d, L, "matmul ffn_up", ops->matmul(be, &w->ffn_up, &xb, &up));
  FORWARD_OBSERVE("ffn_gate", (int)il, &gate);
  FORWARD_OBSERVE("ffn_up", (int)il, &up);
  FORWARD_OP(d, L, "silu_mul", ops->silu_mul(be, &gate, &up, &gate));
  FORWARD_OBSERVE("ffn_swiglu", (int)il, &gate);
  FORWARD_OP(d, L, "matmul ffn_down", ops->matmul(be, &w->ffn_down, &gate, &xb));
  FORWARD_OBSERVE("ffn_out", (int)il, &xb);
  FORWARD_OP(d, L, "add residual", ops->add(be, &x, &xb, &x));
  FORWARD_OBSERVE("l_out", (int)il, &x);
  return 0;
}

/* Final norm and output head for columns [col0, col0 + n) of the last layer's hidden state,
 * written to logits rows [row0, row0 + n). */
static int forward_output(struct forward *f, int64_t col0, int64_t n, int64_t row0,
                          struct aug_err *err) {
  const struct model_hparams *hp = &f->model->hp;
  struct forward_dev *last = &f->devs[f->layers[hp->n_layer - 1].dev];
  struct forward_dev *d = &f->devs[f->output_dev];
  struct backend_tensor h = forward_cols(&last->x, col0, n); /* [n_embd, n] */
  if (d != last) {
    struct backend_tensor in = forward_cols(&d->xo_in, 0, n);
    int rc = forward_transfer(f, last, &h, d, &in, n, err);
    if (rc < 0) return rc;
    h = in;
  }
  struct backend_tensor xo = forward_cols(&d->xo, 0, n);            /* [n_embd, n] */
  struct backend_tensor logits = forward_cols(&d->logits, row0, n); /* [n_vocab, n] */
  FORWARD_OP(d, -1, "output rms_norm",
             d->d.ops->rms_norm(d->d.be, &h, &f->output_norm, hp->rms_eps, &xo));
  FORWARD_OBSERVE("result_norm", -1, &xo);
  FORWARD_OP(d, -1, "output matmul", d->d.ops->matmul(d->d.be, &f->output, &xo, &logits));
  FORWARD_OBSERVE("result_output", -1, &logits);
  return 0;
}

/* One batch of n <= n_batch tokens appended at the cache's end. */
static int forward_batch(struct forward *f, const int32_t *tokens, int64_t n, bool all_logits,
                         bool last_batch, int64_t out_row0, const atomic_bool *cancel,
                         struct aug_err *err) {
  const struct model_hparams *hp = &f->model->hp;
  uint32_t pos0 = kvcache_n_used(f->kv);
  for (int64_t i = 0; i < n; i++)
    f->pos[i] = (int32_t)(pos0 + (uint32_t)i);
  for (int64_t i = 0; i < n; i++)
    if (tokens[i] < 0 || (uint32_t)tokens[i] >= hp->n_vocab)
      return aug_err_set(err, AUG_EINVAL, "forward: token id %d out of range (vocabulary %u)",
                         tokens[i], hp->n_vocab);

  /* x = token embeddings, on layer 0's device. */
  struct forward_dev *cur = &f->devs[f->layers[0].dev];
  struct backend_tensor x0 = forward_cols(&cur->x, 0, n);
  FORWARD_OP(cur, -1, "get_rows token_embd",
             cur->d.ops->get_rows(cur->d.be, &f->tok_embd, tokens, n, &x0));
  for (uint32_t il = 0; il < hp->n_layer; il++) {
    if (forward_cancelled(cancel))
      return aug_err_set(err, AUG_ECANCELED, "forward: cancelled before layer %u", il);
    struct forward_dev *d = &f->devs[f->layers[il].dev];
    if (d != cur) {
      struct backend_tensor src = forward_cols(&cur->x, 0, n), dst = forward_cols(&d->x, 0, n);
      int rc = forward_transfer(f, cur, &src, d, &dst, n, err);
      if (rc < 0) return rc;
      cur = d;
    }
    bool last = il == hp->n_layer - 1;
    int64_t ffn_col0 = last && !all_logits ? n - 1 : 0;
    int64_t ffn_n = !last || all_logits ? n : last_batch ? 1 : 0;
    int rc = forward_layer(f, il, n, pos0, ffn_col0, ffn_n, err);
    if (rc < 0) return rc;
  }
  if (all_logits) {
    int rc = forward_output(f, 0, n, out_row0, err);
    if (rc < 0) return rc;
  } else if (last_batch) {
    int rc = forward_output(f, n - 1, 1, 0, err);
    if (rc < 0) return rc;
  }
  /* Wait for every backend that ran part of this batch before the cells count as used. */
  for (uint32_t i = 0; i < f->n_devs; i++) {
    int rc = f->devs[i].d.ops->synchronize(f->devs[i].d.be, err);
    if (rc < 0) return rc;
  }
  return kvcache_commit(f->kv, pos0 + (uint32_t)n);
}

int forward_eval(struct forward *f, const int32_t *tokens, size_t n, bool all_logits,
                 const atomic_bool *cancel, struct aug_err *err) {
  f->n_logits = 0;
  uint32_t n_past = kvcache_n_used(f->kv);
  if (n == 0) return aug_err_set(err, AUG_EINVAL, "forward: no tokens to evaluate");
  if (n > f->params.n_ctx - n_past)
    return aug_err_set(err, AUG_ERANGE, "forward: %zu tokens after %u do not fit in %u cells", n,
                       n_past, f->params.n_ctx);
  if (all_logits && n > f->params.n_outputs)
    return aug_err_set(err, AUG_ERANGE,
                       "forward: logits for %zu tokens asked, room for %u rows (n_outputs)", n,
                       f->params.n_outputs);
  for (size_t i = 0; i < n; i += f->params.n_batch) {
    if (forward_cancelled(cancel))
      return aug_err_set(err, AUG_ECANCELED, "forward: cancelled after %zu of %zu tokens", i, n);
    size_t nb = n - i < f->params.n_batch ? n - i : f->params.n_batch;
    int rc =
        forward_batch(f, tokens + i, (int64_t)nb, all_logits, i + nb == n, (int64_t)i, cancel, err);
    if (rc < 0) return rc;
  }
  size_t rows = all_logits ? n : 1;
  if (f->logits_host) {
    struct forward_dev *d = &f->devs[f->output_dev];
    size_t bytes = rows * f->model->hp.n_vocab * sizeof(float);
    FORWARD_OP(
        d, -1, "download of the logits",
        d->d.ops->download(d->d.be, d->logits.buffer, d->logits.offset, f->logits_host, bytes));
  }
  f->n_logits = rows;
  return 0;
}

const float *forward_logits(const struct forward *f, size_t i) {
  if (i >= f->n_logits) return NULL;
  return f->logits_rows + i * f->model->hp.n_vocab;
}

size_t forward_n_logits(const struct forward *f) {
  return f->n_logits;
}
struct kvcache *forward_kvcache(struct forward *f) {
  return f->kv;
}
uint64_t forward_scratch_bytes(const struct forward *f) {
  return f->scratch_bytes;
}
