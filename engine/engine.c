/* The engine: a loaded model, its tokenizer, a backend instance, the placement of every layer
 * (today all on the CPU backend), the forward pass with its KV cache, and the resident token
 * sequence. Invariants: resident[0..n_resident) are exactly the tokens whose K/V the cache holds
 * (n_resident == kvcache_n_used); when logits_valid, forward_logits row i belongs to position
 * logits_pos0 + i for i < logits_rows (rows past n_resident are stale). */
#include "engine/engine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backends/backend.h"
#include "engine/alloc.h"
#include "engine/forward.h"
#include "engine/kvcache.h"
#include "engine/plan.h"
#include "engine/promptcache.h"
#include "engine/quant.h"
#include "engine/clock.h"

struct engine {
  struct engine_params params;
  struct gguf_file *file;
  struct model *model;
  struct tokenizer *tok;
  const struct backend_ops *ops;
  struct backend *be;
  /* The GPU backend of hybrid offload, or NULL (CPU only). */
  const struct backend_ops *gpu_ops;
  struct backend *gpu_be;
  uint32_t n_gpu_layers;
  bool output_on_gpu;
  char placement_note[320];
  char mlock_note[AUG_ERR_MSG_SIZE]; /* params.mlock refused: why, for the caller to show */
  char gpu_name[128];
  struct forward_device *placement_layers; /* n_layer */
  struct forward *fwd;
  struct forward_params fwd_params; /* what fwd was created with (a recovery creates it again) */
  uint32_t n_faults;                /* GPU faults recovered from */
  char device_name[128];
  char cpu_name[128];
  char *gpu_backend, *gpu_options; /* copies of the params' (a recovery places again) */
  int n_threads;
  int32_t *resident; /* [n_ctx] */
  size_t n_resident;
  bool logits_valid;
  size_t logits_pos0, logits_rows;
  struct backend_rope_params rope; /* the model's, for re-rotating moved K */
  /* Shifted-chunk reuse (reuse_min_chunk > 0): the m-gram index of the old sequence and the host
   * copy of the moved cells, all sized at create. */
  int32_t *gram_head;          /* [gram_buckets] first old position of each hash bucket, -1 */
  int32_t *gram_next;          /* [n_ctx] next old position in the same bucket, -1 */
  uint32_t gram_buckets;       /* a power of two >= n_ctx */
  struct engine_run *runs;     /* [n_ctx / reuse_min_chunk + 1] */
  unsigned char *stash;        /* reuse_max_tokens cells, kvcache's host layout */
  struct promptcache *prompts; /* host-RAM snapshots, or NULL (prompt_cache_bytes == 0) */
};

/* A run of the old resident sequence found again in the new prompt. */
struct engine_run {
  uint32_t new_pos, old_pos, n;
  uint32_t at; /* first stash cell */
};

uint32_t engine_kv_quant_type(enum engine_kv_type kv_type) {
  switch (kv_type) {
  case ENGINE_KV_Q8_0: return QUANT_Q8_0;
  case ENGINE_KV_Q4_0: return QUANT_Q4_0;
  case ENGINE_KV_F16: break;
  }
  return QUANT_F16;
}

int engine_parse_kv_type(const char *text, enum engine_kv_type *out) {
  if (!strcmp(text, "f16")) {
    *out = ENGINE_KV_F16;
  } else if (!strcmp(text, "q8_0")) {
    *out = ENGINE_KV_Q8_0;
  } else if (!strcmp(text, "q4_0")) {
    *out = ENGINE_KV_Q4_0;
  } else {
    return AUG_EINVAL;
  }
  return 0;
}

struct engine_params engine_params_default(void) {
  return (struct engine_params){.model_path = NULL,
                                .n_threads = 0,
                                .n_ctx = 0,
                                .n_batch = 0,
                                .kv_type = ENGINE_KV_F16,
                                .use_mmap = true,
                                .mlock = false,
                                .reuse_min_chunk = 0,
                                .reuse_max_tokens = 0,
                                .reuse_fresh_suffix = ENGINE_FRESH_SUFFIX_ALL,
                                .prompt_cache_bytes = 0,
                                .prompt_cache_min_tokens = 0};
}

/* Scratch of shifted-chunk reuse, so that engine_set_prompt allocates nothing. */
static int engine_reuse_alloc(struct engine *e, struct aug_err *err) {
  uint32_t n_ctx = e->params.n_ctx;
  if (e->params.reuse_max_tokens == 0) e->params.reuse_max_tokens = 1024;
  if (e->params.reuse_max_tokens > n_ctx) e->params.reuse_max_tokens = n_ctx;
  struct kvcache *kv = forward_kvcache(e->fwd);
  size_t per_token = (size_t)kvcache_host_bytes(kv, 1);
  e->gram_buckets = 1;
  while (e->gram_buckets < n_ctx)
    e->gram_buckets *= 2;
  e->gram_head = aug_malloc(e->gram_buckets * sizeof *e->gram_head);
  e->gram_next = aug_malloc(n_ctx * sizeof *e->gram_next);
  e->runs = aug_malloc((n_ctx / e->params.reuse_min_chunk + 1) * sizeof *e->runs);
  e->stash = aug_malloc((size_t)e->params.reuse_max_tokens * per_token);
  if (!e->gram_head || !e->gram_next || !e->runs || !e->stash)
    return aug_err_set(err, AUG_ENOMEM,
                       "engine: out of memory for chunk reuse (%u tokens, %zu bytes)",
                       e->params.reuse_max_tokens, (size_t)e->params.reuse_max_tokens * per_token);
  return kvcache_reserve_shift(kv, 64, err);
}

/* ---- placement ------------------------------------------------------------------------------ */

int engine_parse_gpu_layers(const char *text, int32_t *out) {
  if (!strcmp(text, "all")) {
    *out = ENGINE_GPU_LAYERS_ALL;
    return 0;
  }
  if (!strcmp(text, "auto")) {
    *out = ENGINE_GPU_LAYERS_AUTO;
    return 0;
  }
  char *end = NULL;
  errno = 0;
  long v = strtol(text, &end, 10);
  if (errno || end == text || *end || v < 0 || v > 100000) return AUG_EINVAL;
  *out = (int32_t)v;
  return 0;
}

static bool engine_gpu_can_run(const struct engine *e, enum backend_op op,
                               const struct gguf_tensor *t, const char **refused) {
  if (!e->gpu_ops->supports_op || e->gpu_ops->supports_op(e->gpu_be, op, t->type)) return true;
  *refused = t->name;
  return false;
}

/* What the placement note names when the GPU refuses the KV cache type (a layer's cache lives on
 * its device, so such a layer stays on the CPU). */
static const char *engine_kv_refusal(uint32_t kv_type) {
  switch (kv_type) {
  case QUANT_F16: return "the f16 KV cache";
  case QUANT_Q8_0: return "the q8_0 KV cache";
  case QUANT_Q4_0: return "the q4_0 KV cache";
  default: return "the KV cache type";
  }
}

/* Whether the GPU can run block il; *refused names the first tensor it cannot use, or the KV
 * cache type when it cannot hold that layer's cache. */
static bool engine_gpu_can_run_layer(const struct engine *e, uint32_t il, const char **refused) {
  if (!kvcache_backend_accepts(e->gpu_ops, e->gpu_be, e->fwd_params.kv_type)) {
    *refused = engine_kv_refusal(e->fwd_params.kv_type);
    return false;
  }
  struct forward_device gpu = {e->gpu_ops, e->gpu_be};
  const struct gguf_tensor *t = forward_block_refused(e->model, il, &gpu);
  if (t) *refused = t->name;
  return t == NULL;
}

/* Fills placement_layers for n offloaded units: the last min(n, n_layer) blocks, and the head
 * when n > n_layer, except blocks the GPU refuses (named in the note). */
static void engine_fill_placement(struct engine *e, uint32_t n, struct forward_device *output) {
  uint32_t n_layer = e->model->hp.n_layer;
  struct forward_device cpu = {e->ops, e->be}, gpu = {e->gpu_ops, e->gpu_be};
  size_t len = 0;
  uint32_t kept = 0;
  const char *first_refused = NULL;
  e->n_gpu_layers = 0;
  for (uint32_t il = 0; il < n_layer; il++) {
    const char *refused = NULL;
    bool on_gpu = e->gpu_ops && il + n >= n_layer && engine_gpu_can_run_layer(e, il, &refused);
    if (refused) {
      kept++;
      if (!first_refused) first_refused = refused;
    }
    e->placement_layers[il] = on_gpu ? gpu : cpu;
    e->n_gpu_layers += on_gpu;
  }
  const char *refused = NULL;
  e->output_on_gpu = e->gpu_ops && n > n_layer &&
                     engine_gpu_can_run(e, BACKEND_OP_MATMUL, e->model->output, &refused);
  *output = e->output_on_gpu ? gpu : cpu;
  if (!e->gpu_ops) return;
  len = (size_t)snprintf(e->placement_note, sizeof e->placement_note,
                         "%u of %u layers on %s, the output head on the %s", e->n_gpu_layers,
                         n_layer, e->gpu_name, e->output_on_gpu ? "GPU" : "CPU");
  if (kept && len < sizeof e->placement_note)
    len += (size_t)snprintf(e->placement_note + len, sizeof e->placement_note - len,
                            "; %u kept on the CPU: %s refuses %s", kept, e->gpu_ops->name,
                            first_refused);
  if (refused && len < sizeof e->placement_note)
    snprintf(e->placement_note + len, sizeof e->placement_note - len,
             "; head kept on the CPU: %s refuses %s", e->gpu_ops->name, refused);
}

/* An allocation that a smaller placement may avoid (out of device memory, a buffer over the
 * device's limit, a driver refusing the allocation). */
static bool engine_alloc_failure(int rc) {
  return rc == AUG_ENOMEM || rc == AUG_ERANGE || rc == AUG_EDEVICE;
}

/* The bandwidths of auto placement: from params.measurements when it holds this device's (a
 * settings change reloads the engine, and measuring again would add ~1.5 s to that wait for the
 * same figures), else measured now and kept there. Free memory is read at every load. */
static int engine_measure(struct engine *e, struct plan_device *host, struct plan_device *gpu,
                          struct aug_err *err) {
  struct backend_device_info info;
  memset(&info, 0, sizeof info);
  if (e->gpu_ops->device_info) e->gpu_ops->device_info(e->gpu_be, &info);
  struct engine_measurements *m = e->params.measurements;
  if (m && m->valid && m->threads == e->n_threads && !strcmp(m->device, info.name)) {
    *host = m->host;
    *gpu = m->gpu;
    uint64_t avail = plan_host_available_bytes();
    if (avail) host->memory_bytes = avail;
    gpu->memory_bytes = info.free_memory;
    return 0;
  }
  uint32_t types[] = {QUANT_Q8_0, QUANT_Q6_K, QUANT_Q4_K};
  int rc = plan_measure_host(e->n_threads, host, err);
  if (rc == 0)
    rc = plan_measure_backend(e->gpu_ops, e->gpu_be, types, sizeof types / sizeof types[0], gpu,
                              err);
  if (rc < 0 || !m) return rc;
  m->valid = true;
  m->threads = e->n_threads;
  snprintf(m->device, sizeof m->device, "%s", info.name);
  m->host = *host;
  m->gpu = *gpu;
  return 0;
}

/* auto: the planner's choice from measured bandwidths and the device's free memory (the
 * fastest placement that fits); fallback (all) when planning fails, the retries then bound it. */
static uint32_t engine_plan_layers(struct engine *e, const struct forward_params *fp,
                                   uint32_t fallback) {
  struct plan_model *pm = aug_malloc(sizeof *pm); /* ~50 KiB: not on the stack */
  struct plan_device host, gpu;
  struct plan_result r;
  struct aug_err perr = {0};
  struct plan_options po = plan_options_default();
  po.n_ctx = fp->n_ctx;
  po.n_batch = fp->n_batch;
  po.n_outputs = fp->n_outputs;
  po.kv_type = fp->kv_type;
  int rc = pm ? plan_model_from_model(e->model, pm, &perr) : AUG_ENOMEM;
  if (rc == 0) rc = engine_measure(e, &host, &gpu, &perr);
  if (rc == 0) rc = plan_choose(pm, &po, &gpu, &host, &r, &perr);
  aug_free(pm);
  if (rc < 0) {
    fprintf(stderr, "engine: planning the offload failed (%s); trying every layer\n", perr.msg);
    return fallback;
  }
  return r.n_gpu_layers;
}

/* Opens the GPU backend when asked, chooses the placement and creates the forward pass on it.
 * AUTO starts from every block and the head and retries with about a tenth fewer each time an
 * allocation fails. */
static int engine_place(struct engine *e, const struct forward_params *fp, struct aug_err *err) {
  uint32_t n_layer = e->model->hp.n_layer;
  int32_t want = e->params.gpu_layers;
  bool automatic = want == ENGINE_GPU_LAYERS_AUTO;
  if (want < ENGINE_GPU_LAYERS_AUTO)
    return aug_err_set(err, AUG_EINVAL, "engine: gpu_layers %d is not a count, all or auto",
                       (int)want);
  uint32_t n = want == 0 ? 0 : want < 0 ? n_layer + 1 : (uint32_t)want;
  if (n > n_layer + 1) n = n_layer + 1;
  if (n > 0) {
    const char *name = e->params.gpu_backend ? e->params.gpu_backend : "vulkan";
    struct aug_err gerr = {0};
    int rc = backend_find(name, &e->gpu_ops, &gerr);
    if (rc == 0) rc = e->gpu_ops->create(e->params.gpu_options, &e->gpu_be, &gerr);
    struct backend_device_info info;
    memset(&info, 0, sizeof info);
    if (rc == 0 && e->gpu_ops->device_info) e->gpu_ops->device_info(e->gpu_be, &info);
    if (rc < 0) {
      e->gpu_ops = NULL;
      if (!automatic)
        return aug_err_set(err, rc, "engine: %u GPU layers asked for, but %s", n, gerr.msg);
      snprintf(e->placement_note, sizeof e->placement_note, "CPU only: no GPU (%.200s)", gerr.msg);
      n = 0;
    } else if (automatic && info.cpu_device) {
      snprintf(e->placement_note, sizeof e->placement_note,
               "CPU only: %s is a CPU implementation, slower than the CPU backend", info.name);
      e->gpu_ops->destroy(e->gpu_be);
      e->gpu_be = NULL;
      e->gpu_ops = NULL;
      n = 0;
    }
    snprintf(e->gpu_name, sizeof e->gpu_name, "%s", info.name);
    if (automatic && e->gpu_ops) n = engine_plan_layers(e, fp, n);
  }
  struct forward_placement placement = {.n_layer = n_layer, .layers = e->placement_layers};
  for (;;) {
    engine_fill_placement(e, n, &placement.output);
    int rc = forward_create(e->model, &placement, fp, &e->fwd, err);
    if (rc == 0) break;
    if (!automatic || n == 0 || !engine_alloc_failure(rc)) return rc;
    fprintf(stderr, "engine: %u GPU layers do not fit (%s); trying fewer\n", n, err->msg);
    n -= n > 10 ? (n + 9) / 10 : 1;
    aug_err_clear(err);
  }
  if (e->gpu_ops && e->n_gpu_layers + e->output_on_gpu == 0) {
    /* nothing landed on the GPU: release it rather than hold an idle device */
    snprintf(e->placement_note, sizeof e->placement_note,
             "CPU only: %s, planned or refused, holds no layer", e->gpu_name);
    e->gpu_ops->destroy(e->gpu_be);
    e->gpu_be = NULL;
    e->gpu_ops = NULL;
  }
  if (e->gpu_ops) {
    size_t len = strlen(e->device_name);
    snprintf(e->device_name + len, sizeof e->device_name - len, " + %s", e->gpu_name);
  } else if (!e->placement_note[0]) {
    snprintf(e->placement_note, sizeof e->placement_note, "all %u layers on the CPU", n_layer);
  }
  return 0;
}

int engine_create(const struct engine_params *params, struct engine **out, struct aug_err *err) {
  *out = NULL;
  if (!params->model_path) return aug_err_set(err, AUG_EINVAL, "engine: no model path");
  if (params->n_threads < 0 || params->n_threads > 1024)
    return aug_err_set(err, AUG_EINVAL, "engine: n_threads %d outside [0, 1024]",
                       params->n_threads);
  if (params->kv_type != ENGINE_KV_F16 && params->kv_type != ENGINE_KV_Q8_0 &&
      params->kv_type != ENGINE_KV_Q4_0)
    return aug_err_set(err, AUG_EINVAL, "engine: kv_type %d is not f16, q8_0 or q4_0",
                       (int)params->kv_type);
  struct engine *e = aug_calloc(1, sizeof *e);
  if (!e) return aug_err_set(err, AUG_ENOMEM, "engine: out of memory");
  e->params = *params;
  if ((params->gpu_backend &&
       !(e->gpu_backend = aug_strndup(params->gpu_backend, strlen(params->gpu_backend)))) ||
      (params->gpu_options &&
       !(e->gpu_options = aug_strndup(params->gpu_options, strlen(params->gpu_options))))) {
    engine_destroy(e);
    return aug_err_set(err, AUG_ENOMEM, "engine: out of memory");
  }
  e->params.gpu_backend = e->gpu_backend;
  e->params.gpu_options = e->gpu_options;
  struct gguf_open_params gp = gguf_open_params_default();
  gp.use_mmap = params->use_mmap;
  int rc = gguf_open(params->model_path, &gp, &e->file, err);
  if (rc == 0 && params->mlock) {
    struct aug_err merr = {0};
    if (gguf_lock_memory(e->file, &merr) < 0)
      snprintf(e->mlock_note, sizeof e->mlock_note, "%s", merr.msg);
  }
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
    snprintf(e->cpu_name, sizeof e->cpu_name, "%s", info.name);
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

  e->placement_layers = aug_calloc(hp->n_layer, sizeof *e->placement_layers);
  e->resident = aug_calloc(n_ctx, sizeof *e->resident);
  if (!e->placement_layers || !e->resident) {
    rc = aug_err_set(err, AUG_ENOMEM, "engine: out of memory for %u tokens", n_ctx);
    goto fail;
  }
  struct forward_params fp = forward_params_default();
  fp.n_ctx = n_ctx;
  fp.n_batch = n_batch;
  fp.n_outputs = ENGINE_MAX_VERIFY; /* engine_push_tokens keeps every row */
  fp.kv_type = engine_kv_quant_type(params->kv_type);
  e->fwd_params = fp;
  rc = engine_place(e, &fp, err);
  if (rc < 0) goto fail;
  /* The rotation forward.c applies, for moving K (same fields, same source). */
  e->rope = (struct backend_rope_params){
      .n_rot = (int)hp->n_rot,
      .layout = hp->rope_layout == ROPE_LAYOUT_NEOX ? BACKEND_ROPE_NEOX : BACKEND_ROPE_NORMAL,
      .freq_base = hp->rope_freq_base,
      .freq_scale = hp->rope_freq_scale,
      .freq_factors = e->model->rope_freqs ? (const float *)e->model->rope_freqs->data : NULL,
  };
  if (params->reuse_min_chunk > 0) {
    rc = engine_reuse_alloc(e, err);
    if (rc < 0) goto fail;
  }
  if (e->params.prompt_cache_min_tokens == 0) e->params.prompt_cache_min_tokens = 32;
  if (params->prompt_cache_bytes > 0) {
    rc = promptcache_create(params->prompt_cache_bytes, &e->prompts, err);
    if (rc < 0) goto fail;
  }
  *out = e;
  return 0;
fail:
  engine_destroy(e);
  return rc;
}

void engine_destroy(struct engine *e) {
  if (!e) return;
  forward_destroy(e->fwd);
  if (e->gpu_be) e->gpu_ops->destroy(e->gpu_be);
  if (e->be) e->ops->destroy(e->be);
  tokenizer_destroy(e->tok);
  model_destroy(e->model);
  gguf_close(e->file);
  aug_free(e->placement_layers);
  aug_free(e->resident);
  aug_free(e->gpu_backend);
  aug_free(e->gpu_options);
  aug_free(e->gram_head);
  aug_free(e->gram_next);
  aug_free(e->runs);
  aug_free(e->stash);
  promptcache_destroy(e->prompts);
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
uint32_t engine_gpu_layers(const struct engine *e, bool *output_on_gpu) {
  if (output_on_gpu) *output_on_gpu = e->output_on_gpu;
  return e->n_gpu_layers;
}
const char *engine_placement_note(const struct engine *e) {
  return e->placement_note;
}
const char *engine_mlock_note(const struct engine *e) {
  return e->mlock_note;
}
bool engine_memory_locked(const struct engine *e) {
  return gguf_memory_locked(e->file);
}
uint32_t engine_gpu_faults(const struct engine *e) {
  return e->n_faults;
}
/* e->fwd is NULL only after a GPU fault the CPU could not take over either (engine_recover). */
uint64_t engine_kv_bytes(const struct engine *e) {
  return e->fwd ? kvcache_bytes(forward_kvcache(e->fwd)) : 0;
}
uint64_t engine_scratch_bytes(const struct engine *e) {
  return e->fwd ? forward_scratch_bytes(e->fwd) : 0;
}
size_t engine_prompt_cache_count(const struct engine *e) {
  return e->prompts ? promptcache_count(e->prompts) : 0;
}
uint64_t engine_prompt_cache_bytes(const struct engine *e) {
  return e->prompts ? promptcache_bytes(e->prompts) : 0;
}
struct kvcache *engine_kvcache(struct engine *e) {
  return e->fwd ? forward_kvcache(e->fwd) : NULL;
}

const float *engine_logits(const struct engine *e) {
  if (!e->logits_valid || e->n_resident == 0) return NULL;
  size_t last = e->n_resident - 1;
  if (last < e->logits_pos0 || last >= e->logits_pos0 + e->logits_rows) return NULL;
  return forward_logits(e->fwd, last - e->logits_pos0);
}

/* Puts every device the layers run on in (or out of) one-token summation order (a flag store
 * per layer: idempotent, so shared devices need no de-duplication). */
static void engine_decode_order(struct engine *e, bool on) {
  for (uint32_t il = 0; il < e->model->hp.n_layer; il++) {
    const struct forward_device *d = &e->placement_layers[il];
    if (d->ops->set_decode_order) d->ops->set_decode_order(d->be, on);
  }
  if (e->ops->set_decode_order) e->ops->set_decode_order(e->be, on);
}

/* Evaluates tokens appended after the resident ones and keeps the two in step, also when the
 * forward pass stops early (cancellation, error): only completed batches become resident. A batch
 * that keeps every row (draft verification) runs in one-token order, so its rows are exactly the
 * logits one-token decode would give. */
/* A fault of the GPU backend during an evaluation (a lost device, device memory gone): the
 * request fails, but the engine must not. The forward pass is built again with half the GPU
 * units, on a fresh instance of the backend, down to the CPU alone; the KV cache starts empty
 * (the host-RAM prompt cache keeps its snapshots). err gets the fault and the new placement. */
static bool engine_gpu_fault(const struct engine *e, int rc) {
  return e->gpu_ops && (rc == AUG_EDEVICE || rc == AUG_ENOMEM);
}

static int engine_recover(struct engine *e, int fault, struct aug_err *err) {
  char what[AUG_ERR_MSG_SIZE];
  snprintf(what, sizeof what, "%s", err->msg[0] ? err->msg : aug_strerror(fault));
  uint32_t units = e->n_gpu_layers + (e->output_on_gpu ? 1 : 0);
  forward_destroy(e->fwd);
  e->fwd = NULL;
  e->gpu_ops->destroy(e->gpu_be);
  e->gpu_ops = NULL;
  e->gpu_be = NULL;
  e->n_gpu_layers = 0;
  e->output_on_gpu = false;
  e->n_resident = 0;
  e->logits_valid = false;
  e->n_faults++;
  e->params.gpu_layers = (int32_t)(units / 2);
  snprintf(e->device_name, sizeof e->device_name, "%s", e->cpu_name);
  e->placement_note[0] = '\0';
  struct aug_err perr = {0};
  int rc = engine_place(e, &e->fwd_params, &perr);
  if (rc < 0 && e->params.gpu_layers > 0) { /* the GPU will not come back: the CPU alone */
    forward_destroy(e->fwd);
    e->fwd = NULL;
    if (e->gpu_be) e->gpu_ops->destroy(e->gpu_be);
    e->gpu_ops = NULL;
    e->gpu_be = NULL;
    e->params.gpu_layers = 0;
    snprintf(e->device_name, sizeof e->device_name, "%s", e->cpu_name);
    e->placement_note[0] = '\0';
    aug_err_clear(&perr);
    rc = engine_place(e, &e->fwd_params, &perr);
  }
  if (rc == 0 && e->stash) rc = kvcache_reserve_shift(forward_kvcache(e->fwd), 64, &perr);
  if (rc < 0) {
    /* No forward pass at all: every later call fails with this (engine_usable). */
    return aug_err_set(err, rc, "engine: GPU fault (%s), and rebuilding on the CPU failed: %s",
                       what, perr.msg);
  }
  aug_err_set(err, fault, "engine: GPU fault (%s); now %s", what, e->placement_note);
  size_t len = strlen(e->placement_note);
  snprintf(e->placement_note + len, sizeof e->placement_note - len, " (after GPU fault %u: %.120s)",
           e->n_faults, what);
  return fault;
}

static int engine_append(struct engine *e, const int32_t *tokens, size_t n, bool all_logits,
                         const atomic_bool *cancel, struct aug_err *err) {
  if (!e->fwd) return aug_err_set(err, AUG_EDEVICE, "engine: no forward pass since a GPU fault");
  size_t pos0 = e->n_resident;
  memcpy(e->resident + e->n_resident, tokens, n * sizeof *tokens);
  if (all_logits) engine_decode_order(e, true);
  int rc = forward_eval(e->fwd, tokens, n, all_logits, cancel, err);
  if (all_logits) engine_decode_order(e, false);
  if (rc < 0 && engine_gpu_fault(e, rc)) return engine_recover(e, rc, err);
  e->n_resident = kvcache_n_used(forward_kvcache(e->fwd));
  e->logits_valid = rc == 0;
  e->logits_pos0 = all_logits ? pos0 : pos0 + n - 1;
  e->logits_rows = all_logits ? n : 1;
  return rc;
}

static bool engine_cancelled(const atomic_bool *cancel) {
  return cancel && atomic_load_explicit(cancel, memory_order_relaxed);
}

/* FNV-1a over an m-gram of token ids. */
static uint32_t engine_gram_hash(const int32_t *t, uint32_t m) {
  uint32_t h = 2166136261u;
  for (uint32_t i = 0; i < m; i++) {
    h ^= (uint32_t)t[i];
    h *= 16777619u;
  }
  return h;
}

/* Chains tried per position: enough for repeated lines, bounded for degenerate input (a file of
 * one repeated token), so the search stays O(n * m). */
#define ENGINE_GRAM_TRIES 8

/* Runs of resident[lcp..n_resident) that reappear in tokens[lcp..n - 1) (the last token is
 * always evaluated), each >= reuse_min_chunk tokens, greedily left to right in the new prompt,
 * taking the longest candidate at each position, within reuse_max_tokens in all. Any order of
 * old positions is allowed (a moved block); runs may not overlap in the new prompt. */
static size_t engine_find_runs_in(struct engine *e, const int32_t *old, size_t n_old,
                                  const int32_t *tokens, size_t n, size_t lcp) {
  uint32_t m = e->params.reuse_min_chunk;
  if (n_old < lcp + m || n < lcp + m + 1) return 0;
  uint32_t mask = e->gram_buckets - 1;
  memset(e->gram_head, 0xff, e->gram_buckets * sizeof *e->gram_head);
  /* Inserted from the end so that each chain lists old positions in increasing order. */
  for (size_t p = n_old - m + 1; p-- > lcp;) {
    uint32_t h = engine_gram_hash(old + p, m) & mask;
    e->gram_next[p] = e->gram_head[h];
    e->gram_head[h] = (int32_t)p;
  }
  size_t limit = n - 1, budget = e->params.reuse_max_tokens, nr = 0, i = lcp;
  /* No run covers [fence, fence_end), the suffix next to a moved FIM marker (engine.h): one
   * found before it stops there, even when the tokens just before the marker agree (a typed line
   * ends with the newline the prefix ended with). */
  size_t fence = SIZE_MAX, fence_end = SIZE_MAX;
  int32_t marker = tokenizer_special(e->tok)->fim_suffix;
  uint32_t fresh = e->params.reuse_fresh_suffix;
  for (size_t j = lcp; marker >= 0 && fresh > 0 && j < n; j++)
    if (tokens[j] == marker) {
      fence = j;
      fence_end = fresh >= n - j ? n : j + fresh;
      break;
    }
  uint32_t at = 0;
  while (i + m <= limit && budget >= m) {
    if (i >= fence && i < fence_end) {
      i = fence_end;
      continue;
    }
    uint32_t h = engine_gram_hash(tokens + i, m) & mask;
    size_t best = 0, best_p = 0;
    int tries = 0;
    size_t stop = i < fence && fence < limit ? fence : limit;
    for (int32_t p = e->gram_head[h]; p >= 0 && tries < ENGINE_GRAM_TRIES;
         p = e->gram_next[p], tries++) {
      size_t len = 0;
      while (i + len < stop && (size_t)p + len < n_old && len < budget &&
             tokens[i + len] == old[p + len])
        len++;
      if (len > best) {
        best = len;
        best_p = (size_t)p;
      }
    }
    if (best >= m) {
      e->runs[nr++] = (struct engine_run){
          .new_pos = (uint32_t)i, .old_pos = (uint32_t)best_p, .n = (uint32_t)best, .at = at};
      at += (uint32_t)best;
      budget -= best;
      i += best;
    } else {
      i++;
    }
  }
  return nr;
}

static size_t engine_find_runs(struct engine *e, const int32_t *tokens, size_t n, size_t lcp) {
  return engine_find_runs_in(e, e->resident, e->n_resident, tokens, n, lcp);
}

/* Writes a stashed run back at the end of the cache, K re-rotated by new - old positions; the
 * cells count (commit) only once every layer holds them. */
static int engine_place_run(struct engine *e, const struct engine_run *r, const int32_t *tokens,
                            struct aug_err *err) {
  struct kvcache *kv = forward_kvcache(e->fwd);
  uint32_t pos = (uint32_t)e->n_resident;
  int rc = kvcache_upload_cells(kv, pos, r->n, e->stash, e->params.reuse_max_tokens, r->at, err);
  if (rc == 0)
    rc = kvcache_shift_k(kv, pos, r->n, (int32_t)r->new_pos - (int32_t)r->old_pos, &e->rope, err);
  if (rc == 0) rc = kvcache_commit(kv, pos + r->n);
  if (rc < 0) return rc;
  memcpy(e->resident + pos, tokens + r->new_pos, r->n * sizeof *tokens);
  e->n_resident = pos + r->n;
  e->logits_valid = false;
  return 0;
}

/* Saves the resident sequence in the prompt cache when it is long enough to be worth it. A
 * failed save (no room, out of memory) only means a later miss, so it is not an error. */
static void engine_save_snapshot(struct engine *e, int keep) {
  if (!e->prompts || e->n_resident < e->params.prompt_cache_min_tokens) return;
  struct aug_err ignored = {0};
  promptcache_save(e->prompts, forward_kvcache(e->fwd), e->resident, e->n_resident, keep, &ignored);
}

/* When a snapshot shares prompt_cache_min_tokens more prefix tokens with the prompt than the
 * resident sequence (lcp), saves the resident sequence, then makes the whole snapshot the resident
 * sequence (only its common prefix with chunk reuse off): that prefix (at most n - 1 tokens: the
 * last one is evaluated) is kept as is, and what follows stays for shifted-chunk reuse. That is
 * what a changed context piece before the file needs: the snapshot matches up to the piece, and the
 * file after it is moved instead of evaluated again. Returns the prompt tokens now resident in
 * place (lcp when nothing was restored). */
static size_t engine_restore_snapshot(struct engine *e, const int32_t *tokens, size_t n, size_t lcp,
                                      struct engine_eval_stats *st) {
  if (!e->prompts) return lcp;
  size_t best = 0;
  int id = promptcache_find(e->prompts, tokens, n, &best);
  if (best > n - 1) best = n - 1;
  if (id < 0 || best < lcp + e->params.prompt_cache_min_tokens) return lcp;
  promptcache_touch(e->prompts, id);
  engine_save_snapshot(e, id);
  engine_truncate(e, lcp);
  /* Past the common prefix only chunk reuse has a use for the snapshot's cells. */
  size_t whole = e->params.reuse_min_chunk ? promptcache_n_tokens(e->prompts, id) : best;
  struct aug_err ignored = {0};
  if (promptcache_restore(e->prompts, id, forward_kvcache(e->fwd), lcp, whole, &ignored) < 0)
    return lcp; /* resident is the prefix [0, lcp): evaluated from there */
  memcpy(e->resident + lcp, promptcache_tokens(e->prompts, id) + lcp,
         (whole - lcp) * sizeof *tokens);
  e->n_resident = whole;
  e->logits_valid = false;
  st->n_restored = best - lcp;
  return best;
}

/* Evaluates tokens[n_resident..upto). Positions before n_stable go in ENGINE_STABLE_CHUNK-token
 * batches that cancellation does not interrupt (it is checked between them), so a superseded
 * request leaves that work resident; the rest is cancellable between layers. */
static int engine_append_upto(struct engine *e, const int32_t *tokens, size_t upto, size_t n_stable,
                              const atomic_bool *cancel, size_t *n_evaluated, struct aug_err *err) {
  int rc = 0;
  while (rc == 0 && e->n_resident + ENGINE_STABLE_CHUNK <= n_stable &&
         e->n_resident + ENGINE_STABLE_CHUNK < upto) {
    size_t before = e->n_resident;
    rc = engine_append(e, tokens + before, ENGINE_STABLE_CHUNK, false, NULL, err);
    *n_evaluated += e->n_resident - before;
    if (rc == 0 && engine_cancelled(cancel))
      rc = aug_err_set(err, AUG_ECANCELED, "engine: cancelled after %zu prompt tokens",
                       e->n_resident);
  }
  if (rc == 0 && upto > e->n_resident) {
    size_t before = e->n_resident;
    rc = engine_append(e, tokens + before, upto - before, false, cancel, err);
    *n_evaluated += e->n_resident - before;
  }
  return rc;
}

int engine_set_prompt(struct engine *e, const int32_t *tokens, size_t n, const atomic_bool *cancel,
                      struct engine_eval_stats *stats, struct aug_err *err) {
  return engine_set_prompt_stable(e, tokens, n, 0, cancel, stats, err);
}

int engine_set_prompt_stable(struct engine *e, const int32_t *tokens, size_t n, size_t n_stable,
                             const atomic_bool *cancel, struct engine_eval_stats *stats,
                             struct aug_err *err) {
  double t0 = aug_now_ms();
  struct engine_eval_stats st;
  memset(&st, 0, sizeof st);
  if (stats) *stats = st;
  if (n == 0 || n > e->params.n_ctx)
    return aug_err_set(err, AUG_ERANGE, "engine: prompt of %zu tokens (context holds %u)", n,
                       e->params.n_ctx);
  if (!e->fwd) return aug_err_set(err, AUG_EDEVICE, "engine: no forward pass since a GPU fault");
  size_t lcp = 0;
  while (lcp < n && lcp < e->n_resident && e->resident[lcp] == tokens[lcp])
    lcp++;
  if (lcp == n) {
    /* A prefix of the resident sequence: done if its last token's logits are at hand (a verify
     * batch of engine_push_tokens keeps every row), else that token is evaluated again. */
    engine_truncate(e, n);
    if (engine_logits(e)) {
      if (stats) stats->n_reused = n;
      return 0;
    }
    lcp = n - 1;
  }
  struct kvcache *kv = forward_kvcache(e->fwd);
  int rc = 0;
  /* A snapshot that matches more replaces the resident sequence (saved first). */
  size_t reused = lcp;
  lcp = engine_restore_snapshot(e, tokens, n, lcp, &st);
  size_t n_runs = e->params.reuse_min_chunk ? engine_find_runs(e, tokens, n, lcp) : 0;
  size_t kept = lcp, placed = lcp;
  bool runs_wait = false; /* a run is placed only after tokens before it are evaluated */
  for (size_t r = 0; r < n_runs; r++) {
    kept += e->runs[r].n;
    if (e->runs[r].new_pos > placed) runs_wait = true;
    placed = e->runs[r].new_pos + e->runs[r].n;
  }
  /* About to discard most of the resident sequence: keep a copy in host RAM first. So too when
   * the runs kept wait for an evaluation that a cancel can stop: the stash would be lost with
   * it, and the next keystroke's prompt usually starts as the old one did (a cut window grown
   * back to the whole one in idle time, then typing on in the cut one: plugins/generate.c). */
  if (kept < e->n_resident / 2 || (runs_wait && cancel)) engine_save_snapshot(e, -1);
  for (size_t r = 0; r < n_runs && rc == 0; r++)
    rc = kvcache_download_cells(kv, e->runs[r].old_pos, e->runs[r].n, e->stash,
                                e->params.reuse_max_tokens, e->runs[r].at, err);
  if (rc < 0) n_runs = 0; /* not moved: evaluated instead */
  rc = 0;
  engine_truncate(e, lcp);
  st.n_reused = reused;
  for (size_t r = 0; r < n_runs && rc == 0; r++) {
    const struct engine_run *run = &e->runs[r];
    if (run->new_pos > e->n_resident) {
      rc = engine_append_upto(e, tokens, run->new_pos, n_stable, cancel, &st.n_evaluated, err);
      if (rc < 0) break;
    }
    if (engine_cancelled(cancel)) {
      rc = aug_err_set(err, AUG_ECANCELED, "engine: cancelled before moving %u tokens", run->n);
      break;
    }
    rc = engine_place_run(e, run, tokens, err);
    if (rc == 0) st.n_shifted += run->n;
  }
  if (rc == 0) rc = engine_append_upto(e, tokens, n, n_stable, cancel, &st.n_evaluated, err);
  st.eval_ms = aug_now_ms() - t0;
  if (stats) *stats = st;
  return rc;
}

size_t engine_prompt_cost(struct engine *e, const int32_t *tokens, size_t n) {
  if (n == 0 || n > e->params.n_ctx) return n;
  size_t lcp = 0;
  while (lcp < n && lcp < e->n_resident && e->resident[lcp] == tokens[lcp])
    lcp++;
  if (lcp == n) return engine_logits(e) && n == e->n_resident ? 0 : 1;
  size_t kept = lcp;
  const int32_t *old = e->resident;
  size_t n_old = e->n_resident;
  if (e->prompts) { /* as engine_restore_snapshot would */
    size_t best = 0;
    int id = promptcache_find(e->prompts, tokens, n, &best);
    if (id >= 0) {
      if (best > n - 1) best = n - 1;
      if (best >= lcp + e->params.prompt_cache_min_tokens) {
        kept = lcp = best;
        old = promptcache_tokens(e->prompts, id);
        n_old = promptcache_n_tokens(e->prompts, id);
      }
    }
  }
  size_t n_runs =
      e->params.reuse_min_chunk ? engine_find_runs_in(e, old, n_old, tokens, n, lcp) : 0;
  for (size_t r = 0; r < n_runs; r++)
    kept += e->runs[r].n;
  return n - kept;
}

int engine_push(struct engine *e, int32_t token, const atomic_bool *cancel, struct aug_err *err) {
  if (e->n_resident >= e->params.n_ctx)
    return aug_err_set(err, AUG_ERANGE, "engine: context of %u tokens is full", e->params.n_ctx);
  return engine_append(e, &token, 1, false, cancel, err);
}

int engine_push_tokens(struct engine *e, const int32_t *tokens, size_t n, const atomic_bool *cancel,
                       struct aug_err *err) {
  if (n == 0 || n > ENGINE_MAX_VERIFY)
    return aug_err_set(err, AUG_ERANGE, "engine: %zu tokens in one push (1 to %d)", n,
                       ENGINE_MAX_VERIFY);
  if (n > e->params.n_ctx - e->n_resident)
    return aug_err_set(err, AUG_ERANGE, "engine: %zu tokens after %zu do not fit in %u", n,
                       e->n_resident, e->params.n_ctx);
  return engine_append(e, tokens, n, true, cancel, err);
}

const float *engine_logits_at(const struct engine *e, size_t i) {
  if (!e->logits_valid || i >= e->logits_rows || e->logits_pos0 + i >= e->n_resident) return NULL;
  return forward_logits(e->fwd, i);
}

int engine_truncate(struct engine *e, size_t n) {
  if (n >= e->n_resident) return 0;
  kvcache_truncate(forward_kvcache(e->fwd), (uint32_t)n);
  e->n_resident = n;
  /* Logits rows of positions < n stay valid (engine_logits checks the row range). */
  return 0;
}
