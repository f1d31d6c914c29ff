/* Model metadata: the architecture table (general.architecture -> hyper-parameter keys and
 * per-layer tensor names and shapes) and a loaded model's view of its GGUF tensors, checked
 * against the architecture. A model whose tensors do not match is rejected with a message naming
 * the tensor, the expected and the found shape. Read-only after model_load: share freely. */
#ifndef AUGURY_ENGINE_MODEL_H
#define AUGURY_ENGINE_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/error.h"
#include "engine/gguf.h"

enum model_arch {
  MODEL_ARCH_LLAMA = 0, /* Llama 2/3.x, DeepSeek-Coder, CodeLlama: no qkv bias, normal rope */
  MODEL_ARCH_QWEN2 = 1, /* Qwen2/2.5(-Coder): qkv bias, NeoX rope */
  MODEL_ARCH_COUNT
};

enum rope_layout {
  ROPE_LAYOUT_NORMAL = 0, /* rotate pairs (2i, 2i+1) as in the original RoPE paper / llama */
  ROPE_LAYOUT_NEOX = 1,   /* rotate pairs (i, i + n_rot/2) as GPT-NeoX / Qwen2 */
};

struct model_hparams {
  enum model_arch arch;
  const char *arch_name; /* "qwen2", "llama" */
  uint32_t n_vocab;
  uint32_t n_ctx_train;  /* {arch}.context_length */
  uint32_t n_embd;       /* {arch}.embedding_length */
  uint32_t n_layer;      /* {arch}.block_count */
  uint32_t n_head;       /* {arch}.attention.head_count */
  uint32_t n_head_kv;    /* {arch}.attention.head_count_kv (defaults to n_head) */
  uint32_t n_ff;         /* {arch}.feed_forward_length */
  uint32_t head_dim;     /* {arch}.attention.key_length, else n_embd / n_head */
  uint32_t n_rot;        /* {arch}.rope.dimension_count, else head_dim */
  float rms_eps;         /* {arch}.attention.layer_norm_rms_epsilon */
  float rope_freq_base;  /* {arch}.rope.freq_base (default 10000) */
  float rope_freq_scale; /* 1 / {arch}.rope.scaling.factor for linear scaling, else 1 */
  enum rope_layout rope_layout;
  /* Llama 3.1 style frequency scaling (rope_freqs tensor) is applied when present. */
  bool has_rope_freqs;
  bool tied_output; /* no output.weight: the token embedding doubles as the output head */
  bool has_qkv_bias;
};

struct model_layer {
  const struct gguf_tensor *attn_norm;         /* [n_embd] f32 */
  const struct gguf_tensor *wq, *wk, *wv, *wo; /* wq [n_embd, n_head*head_dim] (ne0 = n_embd) */
  const struct gguf_tensor *bq, *bk, *bv;      /* NULL unless has_qkv_bias */
  const struct gguf_tensor *ffn_norm;          /* [n_embd] f32 */
  const struct gguf_tensor *ffn_gate, *ffn_up; /* [n_embd, n_ff] */
  const struct gguf_tensor *ffn_down;          /* [n_ff, n_embd] */
};

struct model {
  struct gguf_file *file; /* owned when loaded by model_load */
  bool owns_file;
  struct model_hparams hp;
  const struct gguf_tensor *tok_embd;    /* token_embd.weight [n_embd, n_vocab] */
  const struct gguf_tensor *output_norm; /* output_norm.weight [n_embd] */
  const struct gguf_tensor *output;      /* output.weight, or tok_embd when tied */
  const struct gguf_tensor *rope_freqs;  /* rope_freqs.weight or NULL */
  struct model_layer *layers;            /* n_layer entries */
  uint64_t weight_bytes;                 /* sum of tensor sizes */
};

/* Looks up the architecture of an open file; AUG_EUNSUPPORTED names the architecture. */
int model_arch_from_name(const char *name, size_t len, enum model_arch *out);
const char *model_arch_name(enum model_arch arch);
/* The name llama.cpp gives a general.file_type value (its enum llama_ftype, llama.h): "Q4_K_M",
 * "IQ3_XS"; NULL for a value it does not define. */
const char *model_file_type_name(uint64_t ftype);

/* Builds a model over file (borrowed: it must outlive the model), validating hyper-parameters
 * (block_count 1..512, head counts that divide, n_embd divisible by n_head unless key_length given)
 * and every tensor's presence, type and shape. */
int model_create(struct gguf_file *file, struct model **out, struct aug_err *err);
/* Opens path and builds the model; the model owns the file. */
int model_load(const char *path, struct model **out, struct aug_err *err);
void model_destroy(struct model *model); /* NULL is a no-op */

/* Expected tensor names and shapes for an architecture and hyper-parameters: used by model_create
 * and by synth to write files with real shapes. Calls fn for each tensor in llama.cpp's loader
 * order (token_embd, output_norm, output, rope_freqs, then per block attn_norm, attn_q/k/v,
 * attn_output, q/k/v biases, ffn_norm, ffn_gate, ffn_down, ffn_up). The set follows hp exactly:
 * output only when !tied_output, rope_freqs only when has_rope_freqs, biases only when
 * has_qkv_bias. A non-zero return from fn stops the walk and is returned. */
enum model_tensor_role {
  MODEL_TENSOR_TOKEN_EMBD,
  MODEL_TENSOR_OUTPUT_NORM,
  MODEL_TENSOR_OUTPUT,
  MODEL_TENSOR_ROPE_FREQS,
  MODEL_TENSOR_ATTN_NORM,
  MODEL_TENSOR_ATTN_Q,
  MODEL_TENSOR_ATTN_K,
  MODEL_TENSOR_ATTN_V,
  MODEL_TENSOR_ATTN_OUTPUT,
  MODEL_TENSOR_ATTN_Q_BIAS,
  MODEL_TENSOR_ATTN_K_BIAS,
  MODEL_TENSOR_ATTN_V_BIAS,
  MODEL_TENSOR_FFN_NORM,
  MODEL_TENSOR_FFN_GATE,
  MODEL_TENSOR_FFN_DOWN,
  MODEL_TENSOR_FFN_UP,
};

struct model_tensor_spec {
  const char *name; /* e.g. "blk.3.attn_q.weight"; valid only during the callback */
  uint32_t n_dims;
  uint64_t ne[4];
  bool optional;        /* rope_freqs, output.weight when tied */
  bool is_norm_or_bias; /* kept in F32 by quantizers (and required to be F32 by model_create) */
  /* Added with the implementation: */
  enum model_tensor_role role;
  int32_t layer; /* block index, -1 for the global tensors */
};
typedef int (*model_tensor_spec_fn)(const struct model_tensor_spec *spec, void *user);
int model_for_each_tensor_spec(const struct model_hparams *hp, model_tensor_spec_fn fn, void *user);

/* Sum of the element counts of all the model's tensors (the tied output counted once). */
uint64_t model_param_count(const struct model *model);

#endif
