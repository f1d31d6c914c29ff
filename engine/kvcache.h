/* The KV cache: for every layer a K and a V tensor [head_dim, n_head_kv, n_ctx] in a buffer on
 * that layer's backend (hybrid placement keeps each layer's cache next to its weights). Cell i
 * holds sequence position i, so the cache is always a prefix [0, n_used) of the sequence:
 * truncating to a prefix or removing positions from the end only moves n_used (the prompt cache
 * builds on this). Element type F16 (default, as llama.cpp), Q8_0 (34 bytes per 32 values, 53% of
 * F16) or Q4_0 (18 bytes per 32 values, 28% of F16; ggml's block_q4_0, lossy: ~1/16 of a block's
 * largest magnitude).
 * Owned by the engine thread; not thread-safe. */
#ifndef AUGURY_ENGINE_KVCACHE_H
#define AUGURY_ENGINE_KVCACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backends/backend.h"
#include "engine/error.h"

struct kvcache; /* opaque */

struct kvcache_params {
  uint32_t n_layer;
  uint32_t n_ctx; /* cells (tokens) per layer */
  uint32_t n_head_kv;
  uint32_t head_dim; /* a multiple of 32 for Q8_0 and Q4_0 */
  uint32_t type;     /* QUANT_F16, QUANT_Q8_0 or QUANT_Q4_0 (enum quant_type) */
};

/* Allocates the cache of layer il on the backend (ops[il], bes[il]) (borrowed: they must outlive
 * the cache). AUG_EUNSUPPORTED for another type, a head_dim the type cannot block, or a
 * backend whose supports_op refuses attention over or copies into the type. */
int kvcache_create(const struct kvcache_params *params, const struct backend_ops *const *ops,
                   struct backend *const *bes, struct kvcache **out, struct aug_err *err);
void kvcache_destroy(struct kvcache *cache); /* NULL is a no-op */
/* Whether a backend can hold a cache of type: it must read it in attention and write it with
 * copy (supports_op for both; a backend without supports_op is taken at its word). Placement
 * keeps a layer on the CPU when its GPU backend refuses the cache type. */
bool kvcache_backend_accepts(const struct backend_ops *ops, struct backend *be, uint32_t type);

uint32_t kvcache_n_ctx(const struct kvcache *cache);
uint32_t kvcache_type(const struct kvcache *cache);
/* Positions [0, n_used) hold valid K and V in every layer. */
uint32_t kvcache_n_used(const struct kvcache *cache);
/* Bytes of all layers' K and V. */
uint64_t kvcache_bytes(const struct kvcache *cache);
/* Bytes one token takes across all layers (K and V), for sizing and the planner. */
uint64_t kvcache_bytes_per_token(const struct kvcache_params *params);

/* The full-length K and V tensors of layer il, as the attention op reads them. */
const struct backend_tensor *kvcache_k(const struct kvcache *cache, uint32_t il);
const struct backend_tensor *kvcache_v(const struct kvcache *cache, uint32_t il);

/* Converts k and v (F32 [head_dim, n_head_kv, n_tokens]) into cells [pos, pos + n_tokens) of
 * layer il with the backend's copy op. pos must be <= n_used (no holes); the cells count as used
 * only after kvcache_commit, so a pass cancelled between layers leaves the cache consistent. */
int kvcache_store(struct kvcache *cache, uint32_t il, const struct backend_tensor *k,
                  const struct backend_tensor *v, uint32_t pos, struct aug_err *err);
/* Marks [0, n_used) valid after every layer stored its cells; n_used <= n_ctx. */
int kvcache_commit(struct kvcache *cache, uint32_t n_used);

/* Keeps positions [0, n) and drops the rest (n >= n_used is a no-op). */
void kvcache_truncate(struct kvcache *cache, uint32_t n);
/* Removes the last n positions (all of them when n >= n_used). */
void kvcache_remove_tail(struct kvcache *cache, uint32_t n);

/* ---- moving cells (shifted-chunk reuse and the host-RAM prompt cache) ---- */

/* Bytes of one cell (one token) of one layer's K, or V: n_head_kv rows of the cache type. */
size_t kvcache_cell_bytes(const struct kvcache *cache);

/* A host copy of cells uses the layout [layer][K, V][capacity cells]: cell c of layer il's K is at
 * byte ((2 * il) * capacity + c) * kvcache_cell_bytes, its V at ((2 * il + 1) * capacity + c) *
 * kvcache_cell_bytes, so a range of cells is one transfer per layer and tensor (a GPU backend
 * wants few large copies). A copy of capacity cells takes capacity * kvcache_bytes_per_token. */

/* Bytes of a host copy of n cells (n * kvcache_bytes_per_token of the cache's parameters). */
uint64_t kvcache_host_bytes(const struct kvcache *cache, uint32_t n);

/* Copies cells [pos, pos + n) of every layer into host cells [at, at + n) of dst (capacity cells
 * per plane). pos + n <= n_used; at + n <= capacity. */
int kvcache_download_cells(struct kvcache *cache, uint32_t pos, uint32_t n, void *dst,
                           uint32_t capacity, uint32_t at, struct aug_err *err);
/* Writes host cells [at, at + n) of src into cells [pos, pos + n) of every layer. As with
 * kvcache_store, pos <= n_used and the cells count as used only after kvcache_commit. */
int kvcache_upload_cells(struct kvcache *cache, uint32_t pos, uint32_t n, const void *src,
                         uint32_t capacity, uint32_t at, struct aug_err *err);

/* Allocates, on every layer's backend, the F32 scratch kvcache_shift_k converts K through
 * (chunk cells at a time; 0 = 64). Called once at set-up, so that shifting allocates nothing. */
int kvcache_reserve_shift(struct kvcache *cache, uint32_t chunk, struct aug_err *err);
/* Re-rotates K of cells [pos, pos + n) of every layer as if their tokens stood delta positions
 * further (delta may be negative). RoPE (Su et al. 2021) rotates each pair of K by pos * theta_i,
 * and rotations compose: R(delta) R(old) = R(old + delta), so K computed at position old becomes
 * K at old + delta without the token's hidden state (llama.cpp's K-shift does the same). The
 * cells go through F32 (copy, rope with delta, copy back), so an F16 cache is rounded once more
 * and a Q8_0 or Q4_0 one re-quantized. V carries no position and stays. rope must be the model's
 * parameters (n_rot, layout, freq_base, freq_scale, freq_factors). Needs kvcache_reserve_shift. */
int kvcache_shift_k(struct kvcache *cache, uint32_t pos, uint32_t n, int32_t delta,
                    const struct backend_rope_params *rope, struct aug_err *err);

#endif
