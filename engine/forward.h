/* The transformer forward pass (qwen2, llama), written once against backends/backend.h and driven
 * by a placement: each layer and the output head is assigned a backend instance; a layer's weights
 * and its KV cache live on that backend and only the hidden state crosses between backends.
 * Scratch is sized at creation (n_batch tokens, n_outputs rows of logits): evaluating allocates
 * nothing. Owned by the engine thread; not thread-safe. */
#ifndef AUGURY_ENGINE_FORWARD_H
#define AUGURY_ENGINE_FORWARD_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backends/backend.h"
#include "engine/error.h"
#include "engine/kvcache.h"
#include "engine/model.h"

struct forward; /* opaque */

/* A backend instance: its table and the instance created from it (borrowed). */
struct forward_device {
  const struct backend_ops *ops;
  struct backend *be;
};

/* Where each part of the model runs. The token embedding lives with layer 0; the output norm and
 * head with `output`. Today every entry is the CPU backend; the planner fills it for offload. */
struct forward_placement {
  uint32_t n_layer;                    /* must equal the model's block count */
  const struct forward_device *layers; /* n_layer entries (copied by forward_create) */
  struct forward_device output;
};

/* Debugging aid: called after each step of the pass with its result, for comparing the pass
 * tensor by tensor with llama.cpp (tests/tools/dump_forward.c). Names follow llama.cpp's graph:
 * attn_norm, Qcur, Kcur, Vcur (projections with bias), Qrope, Krope, kqv_out, attn_out, ffn_inp,
 * ffn_norm, ffn_gate, ffn_up, ffn_swiglu, ffn_out, l_out (layer >= 0), then result_norm and
 * result_output (layer -1). t is [features, tokens] F32 on dev's backend, readable after
 * dev->ops->synchronize. */
typedef void (*forward_observe_fn)(void *ctx, const char *name, int layer,
                                   const struct backend_tensor *t,
                                   const struct forward_device *dev);

struct forward_params {
  uint32_t n_ctx;             /* KV cells; > 0 */
  uint32_t n_batch;           /* tokens per backend pass during prompt processing; > 0 */
  uint32_t n_outputs;         /* rows of logits one forward_eval can return (1 = last token only) */
  uint32_t kv_type;           /* QUANT_F16, QUANT_Q8_0 or QUANT_Q4_0 */
  forward_observe_fn observe; /* NULL in normal use */
  void *observe_ctx;
};

struct forward_params forward_params_default(void); /* 4096 ctx, 512 batch, 1 output, F16 */

/* The first tensor of block il that dev's backend refuses (supports_op), or NULL when dev can run
 * the block: its seven matrices, and for block 0 the token embedding, which lives with it. What the
 * engine checks before placing a block, and forward_create before binding it. */
const struct gguf_tensor *forward_block_refused(const struct model *model, uint32_t il,
                                                const struct forward_device *dev);

/* model and the placement's backends are borrowed and must outlive the forward pass. */
int forward_create(const struct model *model, const struct forward_placement *placement,
                   const struct forward_params *params, struct forward **out, struct aug_err *err);
void forward_destroy(struct forward *fwd); /* NULL is a no-op */

/* Evaluates tokens[0..n) at positions n_past .. n_past + n - 1, where n_past = the KV cache's
 * n_used, in batches of n_batch. Logits are computed (output norm and head) only for the last
 * token, or for every token when all_logits (then n <= n_outputs). cancel (may be NULL) is checked
 * between batches and between layers: on AUG_ECANCELED the cache holds the batches that completed
 * and no logits are valid. AUG_ERANGE when the tokens do not fit in the cache. */
int forward_eval(struct forward *fwd, const int32_t *tokens, size_t n, bool all_logits,
                 const atomic_bool *cancel, struct aug_err *err);

/* Logits (n_vocab floats) of output row i of the last forward_eval: row 0 is the last token
 * unless all_logits, where row i is token i. NULL when i is not a valid row. */
const float *forward_logits(const struct forward *fwd, size_t i);
size_t forward_n_logits(const struct forward *fwd); /* rows valid now */

struct kvcache *forward_kvcache(struct forward *fwd);
/* Bytes of scratch (activations and logits) the forward pass allocated, for memory reports. */
uint64_t forward_scratch_bytes(const struct forward *fwd);

#endif
