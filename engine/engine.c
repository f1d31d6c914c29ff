/* The engine: a loaded model, its tokenizer, a backend instance, the placement of every layer
 * (today all on the CPU backend), the forward pass with its KV cache, and the resident token
 * sequence. Invariant: resident[0..n_resident) are exactly the tokens whose K/V the cache holds
 * (n_resident == kvcache_n_used), and logits_valid says the forward pass's logits belong to the
 * last of them. */
#include "engine/engine.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "backends/backend.h"
#include "engine/alloc.h"
#include "engine/forward.h"
#include "engine/kvcache.h"
#include "engine/quant.h"

struct engine {
  struct engine_params params;
  struct gguf_file *file;
  struct model *model;
  struct tokenizer *tok;
  const struct backend_ops *ops;
  struct backend *be;
  struct forward_device *placement_layers; /* n_layer */
  struct forward *fwd;
  char device_name[128];
  int n_threads;
  int32_t *resident; /* [n_ctx] */
  size_t n_resident;
  bool logits_valid;
};

struct engine_params engine_params_default(void) {
  return (struct engine_params){.model_path = NULL,
                                .n_threads = 0,
                                .n_ctx = 0,
                                .n_batch = 0,
                                .kv_type = ENGINE_KV_F16,
                                .use_mmap = true};
}

static double engine_now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int engine_create(const struct engine_params *params, struct engine **out, struct aug_err *err) {
  *out = NULL;
  if (!params->model_path) return aug_err_set(err, AUG_EINVAL, "engine: no model path");
  if (params->n_threads < 0 || params->n_threads > 1024)
    return aug_err_set(err, AUG_EINVAL, "engine: n_threads %d outside [0, 1024]",
                       params->n_threads);
  if (params->kv_type != ENGINE_KV_F16 && params->kv_type != ENGINE_KV_Q8_0)
    return aug_err_set(err, AUG_EINVAL, "engine: kv_type %d is not f16 or q8_0",
                       (int)params->kv_type);
  struct engine *e = aug_calloc(1, sizeof *e);
  if (!e) return aug_err_set(err, AUG_ENOMEM, "engine: out of memory");
  e->params = *params;
  struct gguf_open_params gp = gguf_open_params_default();
  gp.use_mmap = params->use_mmap;
  int rc = gguf_open(params->model_path, &gp, &e->file, err);
  if (rc == 0) rc = model_create(e->file, &e->model, err);
  if (rc == 0) rc = tokenizer_create(e->file, &e->tok, err);
  if (rc == 0) rc = backend_find("cpu", &e->ops, err);
  char options[64];
  snprintf(options, sizeof options, "threads=%d", params->n_threads);
  if (rc == 0) rc = e->ops->create(options, &e->be, err);
  if (rc < 0) goto fail;

  struct backend_device_info info;
  memset(&info, 0, sizeof info);
  if (e->ops->device_info(e->be, &info) == 0) {
    snprintf(e->device_name, sizeof e->device_name, "%s", info.name);
    /* The CPU backend names its thread count: "CPU (AVX2, 2 threads)". */
    const char *comma = strrchr(info.name, ',');
    if (comma) sscanf(comma + 1, "%d thread", &e->n_threads);
  }
  if (params->n_threads > 0) e->n_threads = params->n_threads;

  const struct model_hparams *hp = &e->model->hp;
  uint32_t n_ctx = params->n_ctx;
  if (n_ctx == 0) n_ctx = hp->n_ctx_train < 4096 && hp->n_ctx_train > 0 ? hp->n_ctx_train : 4096;
  uint32_t n_batch = params->n_batch ? params->n_batch : 512;
  if (n_batch > n_ctx) n_batch = n_ctx;
  e->params.n_ctx = n_ctx;
  e->params.n_batch = n_batch;

  /* Placement: every layer and the head on the one backend (the planner fills this later). */
  e->placement_layers = aug_calloc(hp->n_layer, sizeof *e->placement_layers);
  e->resident = aug_calloc(n_ctx, sizeof *e->resident);
  if (!e->placement_layers || !e->resident) {
    rc = aug_err_set(err, AUG_ENOMEM, "engine: out of memory for %u tokens", n_ctx);
    goto fail;
  }
  for (uint32_t il = 0; il < hp->n_layer; il++)
    e->placement_layers[il] = (struct forward_device){e->ops, e->be};
  struct forward_placement placement = {
      .n_layer = hp->n_layer, .layers = e->placement_layers, .output = {e->ops, e->be}};
  struct forward_params fp = forward_params_default();
  fp.n_ctx = n_ctx;
  fp.n_batch = n_batch;
  fp.n_outputs = 1;
  fp.kv_type = params->kv_type == ENGINE_KV_Q8_0 ? QUANT_Q8_0 : QUANT_F16;
  rc = forward_create(e->model, &placement, &fp, &e->fwd, err);
  if (rc < 0) goto fail;
  *out = e;
  return 0;
fail:
  engine_destroy(e);
  return rc;
}

void engine_destroy(struct engine *e) {
  if (!e) return;
  forward_destroy(e->fwd);
  if (e->be) e->ops->destroy(e->be);
  tokenizer_destroy(e->tok);
  model_destroy(e->model);
  gguf_close(e->file);
  aug_free(e->placement_layers);
  aug_free(e->resident);
  aug_free(e);
}

const struct model *engine_model(const struct engine *e) {
  return e->model;
}
const struct tokenizer *engine_tokenizer(const struct engine *e) {
  return e->tok;
}
uint32_t engine_n_ctx(const struct engine *e) {
  return e->params.n_ctx;
}
size_t engine_n_resident(const struct engine *e) {
  return e->n_resident;
}
const int32_t *engine_resident_tokens(const struct engine *e) {
  return e->resident;
}
const char *engine_device_name(const struct engine *e) {
  return e->device_name;
}
int engine_n_threads(const struct engine *e) {
  return e->n_threads;
}
uint64_t engine_kv_bytes(const struct engine *e) {
  return kvcache_bytes(forward_kvcache(e->fwd));
}
uint64_t engine_scratch_bytes(const struct engine *e) {
  return forward_scratch_bytes(e->fwd);
}

const float *engine_logits(const struct engine *e) {
  return e->logits_valid ? forward_logits(e->fwd, 0) : NULL;
}

/* Evaluates tokens appended after the resident ones and keeps the two in step, also when the
 * forward pass stops early (cancellation, error): only completed batches become resident. */
static int engine_append(struct engine *e, const int32_t *tokens, size_t n,
                         const atomic_bool *cancel, struct aug_err *err) {
  memcpy(e->resident + e->n_resident, tokens, n * sizeof *tokens);
  int rc = forward_eval(e->fwd, tokens, n, false, cancel, err);
  e->n_resident = kvcache_n_used(forward_kvcache(e->fwd));
  e->logits_valid = rc == 0;
  return rc;
}

int engine_set_prompt(struct engine *e, const int32_t *tokens, size_t n, const atomic_bool *cancel,
                      struct engine_eval_stats *stats, struct aug_err *err) {
  double t0 = engine_now_ms();
  if (stats) memset(stats, 0, sizeof *stats);
  if (n == 0 || n > e->params.n_ctx)
    return aug_err_set(err, AUG_ERANGE, "engine: prompt of %zu tokens (context holds %u)", n,
                       e->params.n_ctx);
  size_t lcp = 0;
  while (lcp < n && lcp < e->n_resident && e->resident[lcp] == tokens[lcp])
    lcp++;
  if (lcp == n && n == e->n_resident && e->logits_valid) {
    if (stats) stats->n_reused = n;
    return 0;
  }
  /* The last prompt token is always evaluated when its logits are not at hand. */
  if (lcp == n) lcp = n - 1;
  engine_truncate(e, lcp);
  int rc = engine_append(e, tokens + lcp, n - lcp, cancel, err);
  if (stats) {
    stats->n_reused = lcp;
    stats->n_evaluated = e->n_resident - lcp;
    stats->eval_ms = engine_now_ms() - t0;
  }
  return rc;
}

int engine_push(struct engine *e, int32_t token, const atomic_bool *cancel, struct aug_err *err) {
  if (e->n_resident >= e->params.n_ctx)
    return aug_err_set(err, AUG_ERANGE, "engine: context of %u tokens is full", e->params.n_ctx);
  return engine_append(e, &token, 1, cancel, err);
}

int engine_truncate(struct engine *e, size_t n) {
  if (n >= e->n_resident) return 0;
  kvcache_truncate(forward_kvcache(e->fwd), (uint32_t)n);
  e->n_resident = n;
  e->logits_valid = false;
  return 0;
}
