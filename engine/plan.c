/* The offload planner's pure core (engine/plan.h): shapes in, placement, memory per device and a
 * bandwidth model of decode speed out. No I/O, no clocks, no allocation: the same inputs always
 * give the same plan, which is what lets tests pin it to published figures. Every size is summed
 * with overflow checks, because shapes may come from a hostile file or a caller's arithmetic. */
#include "engine/plan.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/model.h"
#include "engine/quant.h"

_Static_assert(PLAN_TYPE_SLOTS == QUANT_TYPE_COUNT, "plan.h's type slots follow quant.h");

/* engine/forward.c rounds every weight tensor and scratch buffer to this (FORWARD_ALIGN). */
#define PLAN_ALIGN 256u

struct plan_options plan_options_default(void) {
  return (struct plan_options){.n_ctx = 4096,
                               .kv_type = QUANT_F16,
                               .n_batch = 512,
                               .n_outputs = 1,
                               .decode_depth = 1024,
                               .margin_bytes = (uint64_t)256 << 20,
                               .max_gpu_layers = PLAN_GPU_LAYERS_ALL};
}

/* ---- checked arithmetic --------------------------------------------------------------------- */

static bool add_ok(uint64_t *acc, uint64_t v) {
  return !__builtin_add_overflow(*acc, v, acc);
}

static bool mul_ok(uint64_t a, uint64_t b, uint64_t *out) {
  return !__builtin_mul_overflow(a, b, out);
}

static uint64_t align_up(uint64_t v) {
  return (v + PLAN_ALIGN - 1) / PLAN_ALIGN * PLAN_ALIGN;
}

/* Bytes of an F32 [rows, cols] buffer as forward.c allocates it (rounded to PLAN_ALIGN); the
 * planner's inputs are bounded by plan_check_model, so this cannot overflow. */
static uint64_t f32_buffer(uint64_t rows, uint64_t cols) {
  return align_up(rows * cols * sizeof(float));
}

/* ---- model shapes -----------------------------------------------------------------------------
 */

uint64_t plan_layer_bytes(const struct plan_layer *layer) {
  uint64_t sum = 0;
  for (int t = 0; t < PLAN_TENSOR_COUNT; t++)
    if (!add_ok(&sum, layer->bytes[t])) return UINT64_MAX;
  return sum;
}

uint64_t plan_model_bytes(const struct plan_model *model) {
  uint64_t sum = model->token_embd_bytes;
  if (!model->tied_output && !add_ok(&sum, model->output_bytes)) return UINT64_MAX;
  uint32_t n = model->n_layer < PLAN_MAX_LAYERS ? model->n_layer : PLAN_MAX_LAYERS;
  for (uint32_t il = 0; il < n; il++)
    if (!add_ok(&sum, plan_layer_bytes(&model->layers[il]))) return UINT64_MAX;
  return sum;
}

uint64_t plan_kv_bytes_per_token_layer(const struct plan_model *model, uint32_t kv_type) {
  uint64_t values = (uint64_t)model->n_head_kv * model->head_dim; /* per K, per V */
  switch (kv_type) {
  case QUANT_F16: return 2 * values * 2;
  case QUANT_Q8_0: return values % QK8_0 ? 0 : 2 * values / QK8_0 * sizeof(struct block_q8_0);
  case QUANT_Q4_0: return values % QK4_0 ? 0 : 2 * values / QK4_0 * sizeof(struct block_q4_0);
  default: return 0;
  }
}

/* Shapes every later sum depends on: bounded so that no product below can overflow 64 bits
 * (n_vocab, n_ff and n_embd under 2^24, batches under 2^16). Layer sizes are summed checked. */
static int plan_check_model(const struct plan_model *m, struct aug_err *err) {
  if (m->n_layer == 0) return aug_err_set(err, AUG_EINVAL, "plan: the model has 0 layers");
  if (m->n_layer > PLAN_MAX_LAYERS)
    return aug_err_set(err, AUG_ERANGE, "plan: %u layers (at most %u)", m->n_layer,
                       PLAN_MAX_LAYERS);
  const struct {
    const char *name;
    uint32_t value;
  } dims[] = {{"n_embd", m->n_embd},     {"n_head", m->n_head}, {"n_head_kv", m->n_head_kv},
              {"head_dim", m->head_dim}, {"n_ff", m->n_ff},     {"n_vocab", m->n_vocab}};
  for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
    if (dims[i].value == 0) return aug_err_set(err, AUG_EINVAL, "plan: %s is 0", dims[i].name);
    if (dims[i].value >= (1u << 24))
      return aug_err_set(err, AUG_ERANGE, "plan: %s %u is out of range (at most %u)", dims[i].name,
                         dims[i].value, (1u << 24) - 1);
  }
  if ((uint64_t)m->n_head * m->head_dim >= (1u << 24))
    return aug_err_set(err, AUG_ERANGE, "plan: n_head %u x head_dim %u is out of range", m->n_head,
                       m->head_dim);
  if (plan_model_bytes(m) == UINT64_MAX)
    return aug_err_set(err, AUG_ERANGE, "plan: the weights' sizes overflow 64 bits");
  return 0;
}

static int plan_check_options(const struct plan_model *m, const struct plan_options *o,
                              struct aug_err *err) {
  if (o->kv_type != QUANT_F16 && o->kv_type != QUANT_Q8_0 && o->kv_type != QUANT_Q4_0)
    return aug_err_set(err, AUG_EINVAL, "plan: KV type %s is not f16, q8_0 or q4_0",
                       quant_type_name(o->kv_type));
  if (plan_kv_bytes_per_token_layer(m, o->kv_type) == 0)
    return aug_err_set(err, AUG_EINVAL,
                       "plan: KV type %s needs n_head_kv x head_dim (%u x %u) "
                       "to be a multiple of 32",
                       quant_type_name(o->kv_type), m->n_head_kv, m->head_dim);
  if (o->n_ctx == 0 || o->n_batch == 0 || o->n_outputs == 0)
    return aug_err_set(err, AUG_EINVAL, "plan: n_ctx %u, n_batch %u, n_outputs %u must be > 0",
                       o->n_ctx, o->n_batch, o->n_outputs);
  if (o->n_batch > 65536 || o->n_outputs > 65536)
    return aug_err_set(err, AUG_ERANGE, "plan: n_batch %u or n_outputs %u over 65536", o->n_batch,
                       o->n_outputs);
  return 0;
}

static int plan_check_device(const struct plan_device *d, const char *which, struct aug_err *err) {
  if (!(d->bandwidth > 0) || !isfinite(d->bandwidth))
    return aug_err_set(err, AUG_EINVAL, "plan: %s device '%s': bandwidth %g bytes/s", which,
                       d->name, d->bandwidth);
  for (int t = 0; t < PLAN_TYPE_SLOTS; t++)
    if (!(d->type_speed[t] >= 0) || !isfinite(d->type_speed[t]))
      return aug_err_set(err, AUG_EINVAL, "plan: %s device '%s': speed %g for type %s", which,
                         d->name, d->type_speed[t], quant_type_name((uint32_t)t));
  if (!(d->layer_overhead_s >= 0) || !isfinite(d->layer_overhead_s))
    return aug_err_set(err, AUG_EINVAL, "plan: %s device '%s': layer overhead %g s", which, d->name,
                       d->layer_overhead_s);
  return 0;
}

static enum plan_tensor plan_role(enum model_tensor_role role) {
  switch (role) {
  case MODEL_TENSOR_ATTN_Q: return PLAN_TENSOR_ATTN_Q;
  case MODEL_TENSOR_ATTN_K: return PLAN_TENSOR_ATTN_K;
  case MODEL_TENSOR_ATTN_V: return PLAN_TENSOR_ATTN_V;
  case MODEL_TENSOR_ATTN_OUTPUT: return PLAN_TENSOR_ATTN_OUTPUT;
  case MODEL_TENSOR_FFN_GATE: return PLAN_TENSOR_FFN_GATE;
  case MODEL_TENSOR_FFN_UP: return PLAN_TENSOR_FFN_UP;
  case MODEL_TENSOR_FFN_DOWN: return PLAN_TENSOR_FFN_DOWN;
  default: return PLAN_TENSOR_NORMS_BIASES;
  }
}

static void plan_model_init(const struct model_hparams *hp, const char *quant,
                            struct plan_model *out) {
  memset(out, 0, sizeof *out);
  snprintf(out->arch, sizeof out->arch, "%s", hp->arch_name ? hp->arch_name : "");
  snprintf(out->quant, sizeof out->quant, "%s", quant ? quant : "");
  out->n_layer = hp->n_layer;
  out->n_embd = hp->n_embd;
  out->n_head = hp->n_head;
  out->n_head_kv = hp->n_head_kv;
  out->head_dim = hp->head_dim;
  out->n_ff = hp->n_ff;
  out->n_vocab = hp->n_vocab;
  out->tied_output = hp->tied_output;
  for (uint32_t il = 0; il < PLAN_MAX_LAYERS; il++)
    for (int t = 0; t < PLAN_TENSOR_COUNT; t++)
      out->layers[il].type[t] = QUANT_F32;
}

int plan_model_from_model(const struct model *model, struct plan_model *out, struct aug_err *err) {
  const struct model_hparams *hp = &model->hp;
  if (hp->n_layer == 0 || hp->n_layer > PLAN_MAX_LAYERS)
    return aug_err_set(err, AUG_ERANGE, "plan: %u layers (1..%u)", hp->n_layer, PLAN_MAX_LAYERS);
  uint64_t ftype = 0;
  const char *quant = NULL;
  if (model->file && gguf_get_uint(model->file, "general.file_type", &ftype, NULL) == 0)
    quant = model_file_type_name(ftype);
  plan_model_init(hp, quant, out);
  out->token_embd_bytes = align_up(model->tok_embd->size);
  out->token_embd_type = model->tok_embd->type;
  out->output_bytes = align_up(model->output->size);
  out->output_type = model->output->type;
  if (model->output_norm && !add_ok(&out->output_bytes, align_up(model->output_norm->size)))
    return aug_err_set(err, AUG_ERANGE, "plan: output sizes overflow");
  for (uint32_t il = 0; il < hp->n_layer; il++) {
    const struct model_layer *l = &model->layers[il];
    const struct {
      const struct gguf_tensor *t;
      enum plan_tensor role;
    } tensors[] = {{l->wq, PLAN_TENSOR_ATTN_Q},
                   {l->wk, PLAN_TENSOR_ATTN_K},
                   {l->wv, PLAN_TENSOR_ATTN_V},
                   {l->wo, PLAN_TENSOR_ATTN_OUTPUT},
                   {l->ffn_gate, PLAN_TENSOR_FFN_GATE},
                   {l->ffn_up, PLAN_TENSOR_FFN_UP},
                   {l->ffn_down, PLAN_TENSOR_FFN_DOWN},
                   {l->attn_norm, PLAN_TENSOR_NORMS_BIASES},
                   {l->ffn_norm, PLAN_TENSOR_NORMS_BIASES},
                   {l->bq, PLAN_TENSOR_NORMS_BIASES},
                   {l->bk, PLAN_TENSOR_NORMS_BIASES},
                   {l->bv, PLAN_TENSOR_NORMS_BIASES}};
    for (size_t i = 0; i < sizeof tensors / sizeof tensors[0]; i++) {
      if (!tensors[i].t) continue;
      if (!add_ok(&out->layers[il].bytes[tensors[i].role], align_up(tensors[i].t->size)))
        return aug_err_set(err, AUG_ERANGE, "plan: layer %u sizes overflow", il);
      out->layers[il].type[tensors[i].role] = tensors[i].t->type;
    }
  }
  return plan_check_model(out, err);
}

struct plan_from_hparams {
  plan_type_fn type_of;
  void *user;
  const char *quant;
  struct plan_model *out;
  struct aug_err *err;
};

/* One tensor of model_for_each_tensor_spec: its size at the type the caller chose. */
static int plan_spec_cb(const struct model_tensor_spec *spec, void *user) {
  struct plan_from_hparams *c = user;
  enum plan_tensor role = plan_role(spec->role);
  uint32_t type;
  if (spec->role == MODEL_TENSOR_TOKEN_EMBD)
    type = c->type_of(PLAN_TYPE_TOKEN_EMBD, PLAN_TENSOR_ATTN_Q, c->user);
  else if (spec->role == MODEL_TENSOR_OUTPUT)
    type = c->type_of(PLAN_TYPE_OUTPUT, PLAN_TENSOR_ATTN_Q, c->user);
  else if (spec->role == MODEL_TENSOR_ROPE_FREQS)
    return 0; /* n_rot / 2 floats, shared by every layer: too small to plan for */
  else if (spec->is_norm_or_bias)
    type = QUANT_F32;
  else
    type = c->type_of(spec->layer, role, c->user);
  const struct quant_type_traits *traits = quant_traits(type);
  if (!traits)
    return aug_err_set(c->err, AUG_EINVAL, "plan: tensor '%s': type %u is not a tensor type",
                       spec->name, type);
  if (spec->ne[0] % traits->block_size)
    return aug_err_set(c->err, AUG_EINVAL,
                       "plan: tensor '%s': a row of %llu is not a multiple of %s's block of %u",
                       spec->name, (unsigned long long)spec->ne[0], traits->name,
                       traits->block_size);
  uint64_t rows = 1, bytes;
  for (uint32_t d = 1; d < spec->n_dims; d++)
    if (!mul_ok(rows, spec->ne[d], &rows))
      return aug_err_set(c->err, AUG_ERANGE, "plan: tensor '%s': element count overflows",
                         spec->name);
  if (!mul_ok(spec->ne[0] / traits->block_size, traits->type_size, &bytes) ||
      !mul_ok(bytes, rows, &bytes) || bytes > UINT64_MAX - PLAN_ALIGN)
    return aug_err_set(c->err, AUG_ERANGE, "plan: tensor '%s': size overflows", spec->name);
  bytes = align_up(bytes);
  uint64_t *slot;
  switch (spec->role) {
  case MODEL_TENSOR_TOKEN_EMBD:
    slot = &c->out->token_embd_bytes;
    c->out->token_embd_type = type;
    if (c->out->tied_output) c->out->output_type = type;
    break;
  case MODEL_TENSOR_OUTPUT:
    slot = &c->out->output_bytes;
    c->out->output_type = type;
    break;
  case MODEL_TENSOR_OUTPUT_NORM: slot = &c->out->output_bytes; break;
  default:
    slot = &c->out->layers[spec->layer].bytes[role];
    c->out->layers[spec->layer].type[role] = type;
    break;
  }
  if (!add_ok(slot, bytes))
    return aug_err_set(c->err, AUG_ERANGE, "plan: tensor '%s': sizes overflow", spec->name);
  /* A tied head runs from its own copy of the embedding, on whichever device holds the head. */
  if (spec->role == MODEL_TENSOR_TOKEN_EMBD && c->out->tied_output &&
      !add_ok(&c->out->output_bytes, bytes))
    return aug_err_set(c->err, AUG_ERANGE, "plan: tensor '%s': sizes overflow", spec->name);
  return 0;
}

int plan_model_from_hparams(const struct model_hparams *hp, plan_type_fn type_of, void *user,
                            const char *quant, struct plan_model *out, struct aug_err *err) {
  if (hp->n_layer == 0) return aug_err_set(err, AUG_EINVAL, "plan: the model has 0 layers");
  if (hp->n_layer > PLAN_MAX_LAYERS)
    return aug_err_set(err, AUG_ERANGE, "plan: %u layers (at most %u)", hp->n_layer,
                       PLAN_MAX_LAYERS);
  if (!type_of) return aug_err_set(err, AUG_EINVAL, "plan: no tensor type function");
  plan_model_init(hp, quant, out);
  struct plan_from_hparams c = {type_of, user, quant, out, err};
  int rc = model_for_each_tensor_spec(hp, plan_spec_cb, &c);
  if (rc < 0) return rc;
  return plan_check_model(out, err);
}

/* ---- placement ------------------------------------------------------------------------------ */

uint64_t plan_memory_total(const struct plan_memory *mem) {
  uint64_t sum = mem->weights;
  if (!add_ok(&sum, mem->kv) || !add_ok(&sum, mem->scratch) || !add_ok(&sum, mem->margin))
    return UINT64_MAX;
  return sum;
}

/* Activations forward.c allocates on a device that runs blocks: the residual stream, the normed
 * input, q, k, v, the attention output, gate and up, each F32 for n_batch tokens. */
static uint64_t plan_layer_scratch(const struct plan_model *m, const struct plan_options *o) {
  uint64_t nq = (uint64_t)m->n_head * m->head_dim, nkv = (uint64_t)m->n_head_kv * m->head_dim;
  return 2 * f32_buffer(m->n_embd, o->n_batch) + 2 * f32_buffer(nq, o->n_batch) +
         2 * f32_buffer(nkv, o->n_batch) + 2 * f32_buffer(m->n_ff, o->n_batch);
}

/* And on the device that runs the head: its input twice (own and copied in) and the logits. */
static uint64_t plan_output_scratch(const struct plan_model *m, const struct plan_options *o) {
  return 2 * f32_buffer(m->n_embd, o->n_outputs) + f32_buffer(m->n_vocab, o->n_outputs);
}

/* Seconds to stream bytes of type on dev. */
static double plan_seconds(const struct plan_device *dev, uint32_t type, uint64_t bytes) {
  if (bytes == 0) return 0;
  double speed = type < PLAN_TYPE_SLOTS && dev->type_speed[type] > 0 ? dev->type_speed[type] : 1.0;
  return (double)bytes / (dev->bandwidth * speed);
}

int plan_evaluate(const struct plan_model *model, const struct plan_options *options,
                  const struct plan_device *gpu, const struct plan_device *host,
                  uint32_t n_gpu_layers, struct plan_result *out, struct aug_err *err) {
  memset(out, 0, sizeof *out);
  int rc = plan_check_model(model, err);
  if (rc == 0) rc = plan_check_options(model, options, err);
  if (rc == 0 && !host) rc = aug_err_set(err, AUG_EINVAL, "plan: no host device");
  if (rc == 0) rc = plan_check_device(host, "host", err);
  if (rc == 0 && gpu) rc = plan_check_device(gpu, "GPU", err);
  if (rc < 0) return rc;
  const uint32_t n_layer = model->n_layer;
  if (n_gpu_layers > n_layer + 1)
    return aug_err_set(err, AUG_EINVAL, "plan: %u GPU layers asked, the model has %u (+1 head)",
                       n_gpu_layers, n_layer);
  if (n_gpu_layers > 0 && !gpu)
    return aug_err_set(err, AUG_EINVAL, "plan: %u GPU layers asked without a GPU", n_gpu_layers);

  out->n_layer = n_layer;
  out->n_gpu_layers = n_gpu_layers;
  out->gpu_blocks = n_gpu_layers > n_layer ? n_layer : n_gpu_layers;
  out->output_on_gpu = n_gpu_layers > n_layer;
  const uint32_t first_gpu = n_layer - out->gpu_blocks; /* blocks [first_gpu, n_layer) */

  /* KV: every cell of a layer lives with that layer. */
  const uint64_t kv_token = plan_kv_bytes_per_token_layer(model, options->kv_type);
  uint64_t kv_layer;
  if (!mul_ok(kv_token, options->n_ctx, &kv_layer))
    return aug_err_set(err, AUG_ERANGE, "plan: KV of %u cells overflows", options->n_ctx);
  const uint32_t depth =
      options->decode_depth < options->n_ctx ? options->decode_depth : options->n_ctx;
  const uint64_t kv_read_layer = kv_token * depth; /* < kv_layer: no overflow */

  /* Weights and what decode reads, in bytes and in seconds at each device's rate for the type.
   * The token embedding stays on the host; decode reads one of its rows per token. */
  struct plan_memory *g = &out->gpu, *h = &out->host;
  h->weights = model->token_embd_bytes;
  out->host_read_bytes = model->token_embd_bytes / model->n_vocab;
  double host_s = plan_seconds(host, model->token_embd_type, out->host_read_bytes), gpu_s = 0;
  bool ok = true;
  for (uint32_t il = 0; il < n_layer; il++) {
    const struct plan_layer *l = &model->layers[il];
    bool on_gpu = il >= first_gpu;
    const struct plan_device *dev = on_gpu ? gpu : host;
    struct plan_memory *mem = on_gpu ? g : h;
    uint64_t *read = on_gpu ? &out->gpu_read_bytes : &out->host_read_bytes;
    double *secs = on_gpu ? &gpu_s : &host_s;
    ok = ok && add_ok(&mem->weights, plan_layer_bytes(l)) && add_ok(&mem->kv, kv_layer) &&
         add_ok(read, plan_layer_bytes(l)) && add_ok(read, kv_read_layer);
    for (int t = 0; t < PLAN_TENSOR_COUNT; t++)
      *secs += plan_seconds(dev, l->type[t], l->bytes[t]);
    *secs += plan_seconds(dev, options->kv_type, kv_read_layer);
  }
  if (out->output_on_gpu) {
    ok = ok && add_ok(&g->weights, model->output_bytes) &&
         add_ok(&out->gpu_read_bytes, model->output_bytes);
    gpu_s += plan_seconds(gpu, model->output_type, model->output_bytes);
  } else {
    ok = ok && add_ok(&h->weights, model->output_bytes) &&
         add_ok(&out->host_read_bytes, model->output_bytes);
    host_s += plan_seconds(host, model->output_type, model->output_bytes);
  }
  /* Tied heads: the host's copy is the embedding itself, counted once. */
  if (!out->output_on_gpu && model->tied_output) h->weights -= model->output_bytes;
  if (!ok) return aug_err_set(err, AUG_ERANGE, "plan: memory sums overflow 64 bits");

  /* Scratch, as forward.c allocates it per device. */
  const uint64_t layer_scratch = plan_layer_scratch(model, options);
  const uint64_t output_scratch = plan_output_scratch(model, options);
  if (out->gpu_blocks > 0) g->scratch += layer_scratch;
  if (out->gpu_blocks < n_layer) h->scratch += layer_scratch;
  if (out->output_on_gpu) {
    g->scratch += output_scratch;
    h->scratch += (uint64_t)model->n_vocab * options->n_outputs * sizeof(float); /* logits copy */
  } else {
    h->scratch += output_scratch;
  }
  /* The hidden state crosses through a host staging buffer when devices change. */
  if (out->gpu_blocks > 0 || out->output_on_gpu)
    h->scratch += f32_buffer(model->n_embd, options->n_batch);
  if (n_gpu_layers > 0) g->margin = options->margin_bytes;

  uint64_t host_need = h->weights;
  out->host_fits = add_ok(&host_need, h->kv) && add_ok(&host_need, h->scratch) &&
                   host_need <= host->memory_bytes;

  /* Time per token: each device streams what it holds; they run one after the other. */
  uint32_t gpu_units = out->gpu_blocks + (out->output_on_gpu ? 1 : 0);
  uint32_t host_units = (n_layer - out->gpu_blocks) + (out->output_on_gpu ? 0 : 1);
  out->host_seconds = host_s + host_units * host->layer_overhead_s;
  out->gpu_seconds = gpu_units ? gpu_s + gpu_units * gpu->layer_overhead_s : 0.0;
  out->tokens_per_s = 1.0 / (out->host_seconds + out->gpu_seconds);
  return 0;
}

int plan_choose(const struct plan_model *model, const struct plan_options *options,
                const struct plan_device *gpu, const struct plan_device *host,
                struct plan_result *out, struct aug_err *err) {
  struct plan_result best, cur;
  int rc = plan_evaluate(model, options, gpu, host, 0, &best, err);
  if (rc < 0) {
    memset(out, 0, sizeof *out);
    return rc;
  }
  uint32_t max_fit = 0;
  uint32_t limit = model->n_layer + 1;
  if (options->max_gpu_layers < limit) limit = options->max_gpu_layers;
  for (uint32_t n = 1; gpu && n <= limit; n++) {
    rc = plan_evaluate(model, options, gpu, host, n, &cur, err);
    if (rc < 0) {
      memset(out, 0, sizeof *out);
      return rc;
    }
    if (plan_memory_total(&cur.gpu) > gpu->memory_bytes) continue;
    max_fit = n;
    /* Strictly better only: equal speed keeps the placement with less on the GPU. */
    if (cur.tokens_per_s > best.tokens_per_s * (1.0 + 1e-9)) best = cur;
  }
  best.max_fit = max_fit;
  *out = best;
  return 0;
}

/* ---- calibration ------------------------------------------------------------------------------
 */

int plan_calibrate(const struct plan_model *model, const struct plan_options *options,
                   const struct plan_sample *samples, size_t n_samples, struct plan_device *gpu,
                   struct plan_device *host, struct aug_err *err) {
  if (!gpu || !host) return aug_err_set(err, AUG_EINVAL, "plan: calibration needs both devices");
  if (n_samples < 2)
    return aug_err_set(err, AUG_EINVAL, "plan: calibration needs 2 samples, got %zu", n_samples);
  /* Any positive bandwidth lets plan_evaluate count the bytes; the times are ours to fit. */
  /* At bandwidth 1 and no overhead, plan_evaluate's seconds are the bytes each device reads,
   * weighted by its type speeds: the times our unknowns scale. */
  struct plan_device g = *gpu, h = *host;
  g.bandwidth = h.bandwidth = 1.0;
  g.layer_overhead_s = h.layer_overhead_s = 0.0;
  double a11 = 0, a12 = 0, a22 = 0, b1 = 0, b2 = 0;
  for (size_t i = 0; i < n_samples; i++) {
    if (!(samples[i].tokens_per_s > 0) || !isfinite(samples[i].tokens_per_s))
      return aug_err_set(err, AUG_EINVAL, "plan: sample %zu: %g tokens/s", i,
                         samples[i].tokens_per_s);
    struct plan_result r;
    int rc = plan_evaluate(model, options, &g, &h, samples[i].n_gpu_layers, &r, err);
    if (rc < 0) return rc;
    double t = 1.0 / samples[i].tokens_per_s;
    uint32_t gpu_units = r.gpu_blocks + (r.output_on_gpu ? 1 : 0);
    uint32_t host_units = r.n_layer - r.gpu_blocks + (r.output_on_gpu ? 0 : 1);
    double o = gpu_units * gpu->layer_overhead_s + host_units * host->layer_overhead_s;
    double x1 = r.host_seconds / t, x2 = r.gpu_seconds / t, y = 1.0 - o / t;
    a11 += x1 * x1;
    a12 += x1 * x2;
    a22 += x2 * x2;
    b1 += x1 * y;
    b2 += x2 * y;
  }
  double det = a11 * a22 - a12 * a12;
  if (!(fabs(det) > 1e-9 * a11 * a22))
    return aug_err_set(err, AUG_EINVAL,
                       "plan: the samples do not tell the devices apart (every sample needs the "
                       "same split, or one device reads nothing): give two different placements");
  double u = (b1 * a22 - b2 * a12) / det, v = (a11 * b2 - a12 * b1) / det;
  if (!(u > 0) || !(v > 0))
    return aug_err_set(err, AUG_EINVAL,
                       "plan: the samples fit no positive bandwidths (host %g, GPU %g bytes/s): "
                       "are they of this model, decode speeds, in tokens/s?",
                       u > 0 ? 1.0 / u : 0.0, v > 0 ? 1.0 / v : 0.0);
  host->bandwidth = 1.0 / u;
  gpu->bandwidth = 1.0 / v;
  host->bandwidth_measured = gpu->bandwidth_measured = true;
  return 0;
}

/* ---- words ------------------------------------------------------------------------------------
 */

static const char *plan_quant_label(const struct plan_model *m, const char *fallback) {
  return m->quant[0] ? m->quant : fallback;
}

/* "all 29 layers", "20 layers", "no layer" (of a result, for the comparison sentence). */
static void plan_layers_text(const struct plan_result *r, char *buf, size_t size) {
  if (r->n_gpu_layers == r->n_layer + 1)
    snprintf(buf, size, "all %u layers", r->n_layer + 1);
  else if (r->n_gpu_layers == 0)
    snprintf(buf, size, "no layer");
  else
    snprintf(buf, size, "%u of %u layers", r->n_gpu_layers, r->n_layer + 1);
}

int plan_compare_text(const struct plan_model *model, const struct plan_result *plan,
                      const struct plan_model *other, const struct plan_result *other_plan,
                      char *buf, size_t size) {
  const char *this_q = plan_quant_label(model, "this file");
  const char *other_q = plan_quant_label(other, "the other file");
  char other_layers[64], this_layers[80];
  plan_layers_text(other_plan, other_layers, sizeof other_layers);
  if (plan->n_gpu_layers == 0)
    snprintf(this_layers, sizeof this_layers, "on the CPU alone");
  else if (plan->n_gpu_layers == plan->n_layer + 1)
    snprintf(this_layers, sizeof this_layers, "with all %u layers", plan->n_layer + 1);
  else
    snprintf(this_layers, sizeof this_layers, "with %u layers", plan->n_gpu_layers);
  double ratio = other_plan->tokens_per_s / plan->tokens_per_s;
  char tail[80] = "";
  if (ratio < 0.95)
    snprintf(tail, sizeof tail, ", so %s stays the faster choice", this_q);
  else if (ratio <= 1.05)
    snprintf(tail, sizeof tail, " (about the same)");
  return snprintf(buf, size, "%s fit%s at %s: expect ~%.1fx the tokens/s of %s %s%s", other_layers,
                  other_plan->n_gpu_layers <= 1 ? "s" : "", other_q, ratio, this_q, this_layers,
                  tail);
}
