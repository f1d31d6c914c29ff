/* A resident model ready to generate: the model, its placement on backends, the KV cache and the
 * resident token sequence. engine_set_prompt reuses the longest common prefix of the new prompt
 * with what is resident, then (when enabled) chunks of the old sequence found again at another
 * position, with K re-rotated for it, and evaluates only the rest.
 * Owned by one thread at a time (the engine thread in the server); not thread-safe. */
#ifndef AUGURY_ENGINE_ENGINE_H
#define AUGURY_ENGINE_ENGINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"
#include "engine/model.h"
#include "engine/plan.h"
#include "engine/tokenizer.h"

struct engine; /* opaque */
struct kvcache;

/* KV cache element types (engine/kvcache.h): bytes per value 2, 34/32 and 18/32. */
enum engine_kv_type { ENGINE_KV_F16 = 0, ENGINE_KV_Q8_0 = 1, ENGINE_KV_Q4_0 = 2 };

/* "f16", "q8_0" or "q4_0" (the CLI's --kv-type, the LSP's kvCacheType); AUG_EINVAL otherwise. */
int engine_parse_kv_type(const char *text, enum engine_kv_type *out);
/* The enum quant_type of a KV cache type (QUANT_F16, QUANT_Q8_0, QUANT_Q4_0). */
uint32_t engine_kv_quant_type(enum engine_kv_type kv_type);

/* Bandwidths measured for auto placement (engine_params.measurements); zero-initialise. */
struct engine_measurements {
  bool valid;
  char device[128];
  int threads;
  struct plan_device host, gpu;
};

struct engine_params {
  const char *model_path;
  int n_threads;    /* 0 = physical cores */
  uint32_t n_ctx;   /* KV cache length in tokens; 0 = min(4096, n_ctx_train) */
  uint32_t n_batch; /* tokens per forward call during prompt processing; 0 = 512 */
  enum engine_kv_type kv_type;
  bool use_mmap;
  /* Pin the model file's bytes in RAM (mlock) so that the OS cannot page the weights out. Not
   * fatal when refused (RLIMIT_MEMLOCK): the engine runs unlocked and engine_mlock_note says why
   * and how to raise the limit. */
  bool mlock;
  /* Shifted-chunk reuse (llama.cpp's --cache-reuse, generalised as in PIE, arXiv 2407.03157):
   * after the common prefix, runs of at least reuse_min_chunk tokens of the old resident
   * sequence that reappear in the new prompt at another position keep their K/V, K re-rotated
   * to the new position. 0 = off. Approximate: a moved chunk keeps the K/V it had in its old
   * context (what preceded it changed), so logits differ slightly from a full evaluation. */
  uint32_t reuse_min_chunk;
  /* How many tokens from the model's FIM suffix marker on are evaluated again rather than moved
   * when the marker moved (ENGINE_FRESH_SUFFIX_ALL: the whole suffix; 0: moved like the rest).
   * The suffix was encoded seeing the text before the cursor: moved past a newly typed line, its
   * K/V still describes the gap as it was, and the model writes a line the user has already
   * typed (latency bench: 1 hit in the 17 pauses answered from a moved suffix). Whatever moved
   * the marker (a typed line, a changed context piece before the file), the runs before it and
   * after those tokens still move. */
  uint32_t reuse_fresh_suffix;
  /* Most tokens moved per engine_set_prompt: their cells are set aside in host memory sized at
   * create (reuse_max_tokens * bytes per token, e.g. 28 KB/token for the 1.5B model with an f16
   * cache). 0 = 1024. Only allocated when reuse_min_chunk > 0. */
  uint32_t reuse_max_tokens;
  /* Host-RAM prompt cache (engine/promptcache.h): snapshots of earlier resident sequences, at
   * most this many bytes in all (least recently used evicted). 0 = off. The resident sequence
   * is saved when a new prompt is about to discard most of it (keeping < half), and a snapshot
   * is restored when it shares at least prompt_cache_min_tokens more prefix tokens with the new
   * prompt than the resident sequence does. Restored cells sit at their old positions: exact. */
  uint64_t prompt_cache_bytes;
  uint32_t prompt_cache_min_tokens; /* also the shortest sequence saved; 0 = 32 */
  /* Hybrid offload, llama.cpp's -ngl convention: the last gpu_layers blocks run on the GPU
   * backend, with their KV cache there; a count above the block count also puts the output head
   * there. 0 = CPU only, ENGINE_GPU_LAYERS_ALL = every block and the head, ENGINE_GPU_LAYERS_AUTO
   * = as many as fit (retrying with fewer when an allocation fails; CPU only when no GPU backend
   * or device exists). A block whose weight types the GPU backend refuses stays on the CPU, and
   * engine_placement_note says so. An explicit count without a usable GPU backend is an error. */
  int32_t gpu_layers;
  const char *gpu_backend; /* NULL = "vulkan" */
  const char *gpu_options; /* that backend's create options ("device=1"), or NULL */
  /* (optional, caller-owned) auto placement's bandwidth figures, kept across engines: filled by
   * the first engine that measures a device, reused by later ones on the same device and thread
   * count. Written by engine_create: one engine at a time. */
  struct engine_measurements *measurements;
};

#define ENGINE_FRESH_SUFFIX_ALL UINT32_MAX

#define ENGINE_GPU_LAYERS_ALL (-1)
#define ENGINE_GPU_LAYERS_AUTO (-2)

/* "N", "all" or "auto" (the CLI's --gpu-layers, the LSP's gpuLayers) in gpu_layers' encoding;
 * AUG_EINVAL for anything else. */
int engine_parse_gpu_layers(const char *text, int32_t *out);

struct engine_params engine_params_default(void);

struct engine_eval_stats {
  size_t n_reused;    /* prompt tokens whose KV was already resident */
  size_t n_evaluated; /* prompt tokens evaluated now */
  double eval_ms;
  /* Additions. On success n_reused + n_shifted + n_restored + n_evaluated == n. */
  size_t n_shifted;  /* tokens whose K/V moved from another position (K re-rotated) */
  size_t n_restored; /* tokens whose K/V came back from the host-RAM prompt cache */
};

int engine_create(const struct engine_params *params, struct engine **out, struct aug_err *err);
void engine_destroy(struct engine *engine); /* NULL is a no-op */

const struct model *engine_model(const struct engine *engine);
const struct tokenizer *engine_tokenizer(const struct engine *engine);
uint32_t engine_n_ctx(const struct engine *engine);

/* Makes the resident sequence equal to tokens[0..n): keeps the common prefix, moves reusable
 * chunks (reuse_min_chunk), evaluates the rest and leaves the logits of the last token in
 * engine_logits (the last token is always evaluated unless its logits are at hand). cancel (may
 * be NULL) is checked between batches, layers and moved chunks: on cancellation returns
 * AUG_ECANCELED and the resident sequence is a valid prefix of tokens whose cells are all
 * consistent (a chunk counts only once all its layers are written). AUG_ERANGE when n > n_ctx or
 * n == 0. */
int engine_set_prompt(struct engine *engine, const int32_t *tokens, size_t n,
                      const atomic_bool *cancel, struct engine_eval_stats *stats,
                      struct aug_err *err);
/* Tokens evaluated per uninterruptible batch inside the stable part (engine_set_prompt_stable). */
#define ENGINE_STABLE_CHUNK 64
/* engine_set_prompt, where tokens[0..n_stable) are known to be wanted by the next prompts too
 * (the document text before the cursor): they are evaluated in ENGINE_STABLE_CHUNK-token batches
 * that a cancellation does not interrupt (checked between them), so a superseded request leaves
 * its progress resident; moved chunks are placed as usual. */
int engine_set_prompt_stable(struct engine *engine, const int32_t *tokens, size_t n,
                             size_t n_stable, const atomic_bool *cancel,
                             struct engine_eval_stats *stats, struct aug_err *err);
/* How many of tokens[0..n) engine_set_prompt would evaluate now (the rest is resident, restored
 * or moved); changes nothing. For time budgets: the caller shrinks a prompt that would cost too
 * much before evaluating it. */
size_t engine_prompt_cost(struct engine *engine, const int32_t *tokens, size_t n);
/* Appends one token and evaluates it (a decode step); logits refreshed. */
int engine_push(struct engine *engine, int32_t token, const atomic_bool *cancel,
                struct aug_err *err);
/* Drops resident tokens beyond n (KV entries included). */
int engine_truncate(struct engine *engine, size_t n);

/* n_vocab logits of the last resident token (what predicts the next one), or NULL when they are
 * not at hand; valid until the next call that evaluates. */
const float *engine_logits(const struct engine *engine);
size_t engine_n_resident(const struct engine *engine);
const int32_t *engine_resident_tokens(const struct engine *engine);

/* Additions (additive to the first contract). */
/* The compute device the layers run on, as its backend describes it ("CPU (AVX2, 2 threads)"),
 * and the thread count the CPU backend resolved (0 = unknown). */
const char *engine_device_name(const struct engine *engine);
int engine_n_threads(const struct engine *engine);
/* Where the model runs: blocks on the GPU backend (0 when CPU only), whether the output head is
 * there, and one line for logs and status ("14 of 28 layers on llvmpipe (Vulkan, subgroup 8),
 * the head on the CPU"; it also names blocks kept on the CPU and why). */
uint32_t engine_gpu_layers(const struct engine *engine, bool *output_on_gpu);
const char *engine_placement_note(const struct engine *engine);
/* "" unless params.mlock was asked and refused: then the warning (the limit, its value, the size
 * needed and how to raise it) for the caller to show; the engine runs with the weights unlocked. */
const char *engine_mlock_note(const struct engine *engine);
/* Whether the model's bytes are locked in RAM (params.mlock granted). */
bool engine_memory_locked(const struct engine *engine);
/* GPU faults (a lost device, device memory gone) the engine recovered from. The call that met one
 * fails with its error (AUG_EDEVICE or AUG_ENOMEM, the message naming the fault and the new
 * placement); the engine then runs on half the GPU layers, a fresh backend instance, down to the
 * CPU alone, with an empty KV cache. */
uint32_t engine_gpu_faults(const struct engine *engine);
/* Bytes of the KV cache (all layers, K and V) and of the forward pass's scratch. */
uint64_t engine_kv_bytes(const struct engine *engine);
uint64_t engine_scratch_bytes(const struct engine *engine);

/* Multi-token evaluation, for verifying drafts (prompt-lookup / speculative decoding). */
#define ENGINE_MAX_VERIFY 16
/* Appends tokens[0..n) (1 <= n <= ENGINE_MAX_VERIFY) in one forward pass and keeps the logits of
 * every one: engine_logits_at(i) predicts the token after tokens[i]. To verify drafts d1..dk
 * after sampling x from engine_logits: push [x, d1..dk]; accept d(j+1) while argmax(logits_at(j))
 * == d(j+1); with a drafts accepted, engine_truncate(e, n_before + 1 + a) drops the rest, and
 * engine_logits then returns row a (rows of positions still resident stay valid), so decoding
 * continues without evaluating again. Note the CPU kernels choose their summation order by
 * batch size, so rows can differ in low bits from one-token decode (engine tests measure the
 * argmax agreement on the llama.cpp fixtures). cancel as in engine_set_prompt; AUG_ERANGE when n
 * is 0, above ENGINE_MAX_VERIFY or past the context. */
int engine_push_tokens(struct engine *engine, const int32_t *tokens, size_t n,
                       const atomic_bool *cancel, struct aug_err *err);
/* Row i of the last evaluation: after engine_push_tokens the logits after its tokens[i]; after
 * any other evaluating call only row 0 exists (the last token). NULL when i is out of range or
 * its position was truncated away. */
const float *engine_logits_at(const struct engine *engine, size_t i);

/* Snapshots held by the host-RAM prompt cache and their bytes (0 when it is off). */
size_t engine_prompt_cache_count(const struct engine *engine);
uint64_t engine_prompt_cache_bytes(const struct engine *engine);

/* The KV cache, for tests and memory reports (borrowed; the engine owns it). */
struct kvcache *engine_kvcache(struct engine *engine);

#endif
