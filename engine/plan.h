/* The offload planner: how many layers of a model go to the GPU, what each device then holds
 * (weights, KV cache, compute scratch, a safety margin), and the decode speed to expect.
 * The core (plan_model_*, plan_choose, plan_evaluate, plan_calibrate) is pure arithmetic on
 * shapes and device figures, so it is deterministic and unit-tested on simulated devices; the
 * measurements that feed it (plan_measure_*) live apart, in plan_measure.c.
 *
 * Placement follows llama.cpp's -ngl convention: with N GPU layers the LAST N blocks run on the
 * GPU; N = n_layer + 1 also puts the output head there. The token embedding always stays on the
 * host: decode reads one row of it per token (get_rows), so the GPU would gain nothing from it.
 *
 * Speed model (decode, one token at a time, which is bandwidth-bound): every device reads each
 * weight it holds once per token plus its layers' KV cache up to the decode depth, so
 *   seconds per token = sum over devices of
 *       (sum over tensors of bytes / (bandwidth * type_speed[type]) + layers * layer_overhead_s).
 * type_speed says how fast a device's matvec streams a type relative to its bandwidth figure
 * (1 for Q4_K, the type bandwidth is measured with): i-quants decode through lookup grids and
 * stream more slowly per byte on most GPUs, which matters exactly when choosing between quants.
 * Devices run one after the other (the hidden state crosses between them), so the times add.
 *
 * Memory is not checked against the driver's real behaviour: a planned allocation may still fail
 * (fragmentation, other processes). The caller then retries with fewer layers: set
 * plan_options.max_gpu_layers to the failed result's n_gpu_layers - 1 and call plan_choose again
 * (the engine's --gpu-layers auto is meant to). */
#ifndef AUGURY_ENGINE_PLAN_H
#define AUGURY_ENGINE_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"

struct model;         /* engine/model.h */
struct model_hparams; /* engine/model.h */

#define PLAN_MAX_LAYERS 512 /* model_create's block_count limit */
#define PLAN_TYPE_SLOTS 40  /* QUANT_TYPE_COUNT (engine/quant.h), without including it */

/* The weight tensors of a block, by role. Norms and biases (F32, small) are counted together. */
enum plan_tensor {
  PLAN_TENSOR_ATTN_Q,
  PLAN_TENSOR_ATTN_K,
  PLAN_TENSOR_ATTN_V,
  PLAN_TENSOR_ATTN_OUTPUT,
  PLAN_TENSOR_FFN_GATE,
  PLAN_TENSOR_FFN_UP,
  PLAN_TENSOR_FFN_DOWN,
  PLAN_TENSOR_NORMS_BIASES,
  PLAN_TENSOR_COUNT
};

struct plan_layer {
  uint64_t bytes[PLAN_TENSOR_COUNT];
  uint32_t type[PLAN_TENSOR_COUNT]; /* enum quant_type of each (F32 for the norms and biases) */
};

/* A model's shapes, as the planner needs them. Plain data: fill it by hand for a simulated model
 * or with one of the constructors below. About 50 KiB (PLAN_MAX_LAYERS layers): keep it off
 * small stacks. */
struct plan_model {
  char arch[32];  /* general.architecture ("qwen2"), for messages and for matching quants */
  char quant[32]; /* the file's type mix ("Q4_K_M", from general.file_type), or "" */
  uint32_t n_layer, n_embd, n_head, n_head_kv, head_dim, n_ff, n_vocab;
  uint64_t token_embd_bytes; /* stays on the host */
  /* The head: output_norm + output.weight. When the output is tied to the token embedding, the
   * head's device holds its own copy of the embedding, so this is the embedding's size. */
  uint64_t output_bytes;
  uint32_t token_embd_type, output_type; /* enum quant_type */
  bool tied_output;
  struct plan_layer layers[PLAN_MAX_LAYERS]; /* [0, n_layer) */
};

/* From a loaded model: every tensor's size as stored in the file. */
int plan_model_from_model(const struct model *model, struct plan_model *out, struct aug_err *err);

/* Which type (enum quant_type) tensor `tensor` of block il has; il = -1 asks for the token
 * embedding (tensor = PLAN_TENSOR_ATTN_Q) and il = -2 for output.weight (ignored when tied).
 * Never asked for PLAN_TENSOR_NORMS_BIASES, which are F32. */
typedef uint32_t (*plan_type_fn)(int32_t il, enum plan_tensor tensor, void *user);
#define PLAN_TYPE_TOKEN_EMBD (-1)
#define PLAN_TYPE_OUTPUT (-2)

/* From hyper-parameters and a type per tensor (simulated models: the shapes of a real model at
 * any quant mix). hp needs arch_name, n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff, head_dim,
 * tied_output and has_qkv_bias. AUG_EINVAL for a row size a type cannot block (n_embd 100 at
 * Q4_K), AUG_ERANGE for 0 or too many layers and sizes that overflow. quant may be NULL. */
int plan_model_from_hparams(const struct model_hparams *hp, plan_type_fn type_of, void *user,
                            const char *quant, struct plan_model *out, struct aug_err *err);

/* Sums. */
uint64_t plan_layer_bytes(const struct plan_layer *layer);
uint64_t plan_model_bytes(const struct plan_model *model); /* every weight, embedding included */
/* Bytes one token takes in one layer's KV cache (K and V) at kv_type (QUANT_F16: 2 per value,
 * QUANT_Q8_0: 34 per 32, QUANT_Q4_0: 18 per 32); 0 for another type or a head_dim the type's
 * block does not divide. */
uint64_t plan_kv_bytes_per_token_layer(const struct plan_model *model, uint32_t kv_type);

/* A device. For the host, memory_bytes is the RAM the plan may use (MemAvailable). */
struct plan_device {
  char name[128];
  uint64_t memory_bytes;   /* what the plan may fill (the free memory, not the total) */
  double bandwidth;        /* bytes/s a decode matvec streams weights at */
  double layer_overhead_s; /* fixed seconds per layer per token (dispatches, syncs); often 0 */
  /* Streaming rate of each weight type relative to bandwidth; 0 means 1 (unknown: as Q4_K). */
  float type_speed[PLAN_TYPE_SLOTS];
  bool is_host;            /* the CPU: holds whatever the GPU does not */
  bool bandwidth_measured; /* false: bandwidth is an assumed figure (say so when printing) */
};

#define PLAN_GPU_LAYERS_ALL UINT32_MAX /* max_gpu_layers: no cap (n_layer + 1) */

struct plan_options {
  uint32_t n_ctx;          /* KV cells per layer (default 4096) */
  uint32_t kv_type;        /* QUANT_F16 (default), QUANT_Q8_0 or QUANT_Q4_0 */
  uint32_t n_batch;        /* prompt tokens per batch: sizes the activations (default 512) */
  uint32_t n_outputs;      /* rows of logits kept (default 1) */
  uint32_t decode_depth;   /* tokens already in the cache when tokens/s is predicted (default
                              1024; clamped to n_ctx): the KV read per token grows with it */
  uint64_t margin_bytes;   /* left free on the GPU for the driver and fragmentation (256 MiB) */
  uint32_t max_gpu_layers; /* cap on n_gpu_layers (llama.cpp's count, head included): for the
                              retry after a failed allocation; PLAN_GPU_LAYERS_ALL = none */
};

struct plan_options plan_options_default(void);

struct plan_memory {
  uint64_t weights, kv, scratch, margin;
};
uint64_t plan_memory_total(const struct plan_memory *mem);

struct plan_result {
  uint32_t n_layer;       /* the model's blocks */
  uint32_t n_gpu_layers;  /* llama.cpp's -ngl: blocks on the GPU, plus 1 when the head is */
  uint32_t gpu_blocks;    /* blocks on the GPU: the last gpu_blocks of them */
  bool output_on_gpu;     /* the head (n_gpu_layers == n_layer + 1) */
  struct plan_memory gpu; /* all zero when no block and no head is on the GPU */
  struct plan_memory host;
  bool host_fits;   /* host.weights + kv + scratch <= the host's memory_bytes (weights are
                       mmapped, so not fitting pages instead of failing: a warning) */
  uint32_t max_fit; /* the most GPU layers that fit (plan_choose) */
  uint64_t gpu_read_bytes, host_read_bytes; /* per decoded token */
  double gpu_seconds, host_seconds;         /* per decoded token */
  double tokens_per_s;
};

/* Chooses n_gpu_layers: of the placements whose GPU memory (weights + KV + scratch + margin)
 * fits gpu->memory_bytes (and at most options->max_gpu_layers), the one with the best predicted
 * tokens/s; ties go to fewer GPU layers. With a GPU faster than the host that is the most that
 * fit; a GPU slower than the host (lavapipe) gets none. gpu may be NULL (CPU only). Errors:
 * AUG_EINVAL for a bad model, options or device (0 layers, a KV type other than f16/q8_0/q4_0,
 * zero bandwidth), AUG_ERANGE when sizes overflow; err names the field and value. */
int plan_choose(const struct plan_model *model, const struct plan_options *options,
                const struct plan_device *gpu, const struct plan_device *host,
                struct plan_result *out, struct aug_err *err);

/* The same figures for a given n_gpu_layers (0..n_layer + 1), fitting or not (out->gpu says how
 * much it would need; compare with gpu->memory_bytes). */
int plan_evaluate(const struct plan_model *model, const struct plan_options *options,
                  const struct plan_device *gpu, const struct plan_device *host,
                  uint32_t n_gpu_layers, struct plan_result *out, struct aug_err *err);

/* A measured decode speed at one placement, for calibration. */
struct plan_sample {
  uint32_t n_gpu_layers; /* llama.cpp's -ngl */
  double tokens_per_s;
};

/* Fits gpu->bandwidth and host->bandwidth to measured speeds of this model at several
 * placements (least squares on the relative error of the time per token), holding both devices'
 * layer_overhead_s as given: within one file's sweep a per-layer cost cannot be told apart from
 * bandwidth, so it stays a prior. Needs two samples at different placements with some layers on
 * each device; AUG_EINVAL otherwise, or when the fit has no positive solution (a sample faster
 * than the part left on one device alone allows). Sets bandwidth_measured. */
int plan_calibrate(const struct plan_model *model, const struct plan_options *options,
                   const struct plan_sample *samples, size_t n_samples, struct plan_device *gpu,
                   struct plan_device *host, struct aug_err *err);

/* One sentence comparing two plans of the same model at different quants, for `augury plan`:
 * "all 29 layers fit at IQ3_XS: expect ~1.8x the tokens/s of Q4_K_M with 20 layers" (or "...
 * 0.9x ..., so Q4_K_M stays the faster choice"). Returns the length snprintf would write. */
int plan_compare_text(const struct plan_model *model, const struct plan_result *plan,
                      const struct plan_model *other, const struct plan_result *other_plan,
                      char *buf, size_t size);

/* ---- measurements (plan_measure.c; not pure: they time this machine) -------------------------
 */
struct backend_ops; /* backends/backend.h */
struct backend;

/* The host: MemAvailable from /proc/meminfo and a memory-read benchmark (a few hundred MiB
 * streamed by threads threads, best of a few runs, well under a second). */
int plan_measure_host(int threads, struct plan_device *out, struct aug_err *err);
/* The host's MemAvailable alone (bytes), without the benchmark; 0 when unknown. */
uint64_t plan_host_available_bytes(void);

/* A backend device: its free memory (backend device_info), a timed decode matmul (Q4_K
 * weights, a few hundred MiB in buffers of 96 MiB, times one column, best of a few runs;
 * bandwidth = weight bytes / time) and the fixed cost of a layer's small ops (20 dispatches of
 * a tiny matmul). types[0..n_types) (enum quant_type) also get type_speed measured the same way,
 * where the backend supports them; the others stay 0 (as Q4_K). */
int plan_measure_backend(const struct backend_ops *ops, struct backend *be, const uint32_t *types,
                         size_t n_types, struct plan_device *out, struct aug_err *err);

#endif
