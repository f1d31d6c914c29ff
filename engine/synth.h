/* Synthetic models: GGUF files with the exact shapes and hyper-parameters of real models
 * (Qwen2.5-Coder 0.5B/1.5B/7B, Llama 3.2 1B) and random weights, in f16, q8_0, q4_0 or the
 * llama.cpp mixes Q4_K_M, Q5_K_M and IQ3_XS. Quantized tensors are random *valid blocks* (bounded
 * f16 scales, random nibbles/bytes) written straight to disk in chunks, so a 4.7 GB 7B file needs
 * only a few MiB of memory. Weights have sane magnitudes (~0.02 spread, norms ~1, small biases) so
 * a forward pass stays finite. The tokenizer section is copied from another GGUF or is a small
 * built-in byte-level BPE vocabulary, padded to the model's vocabulary size. */
#ifndef AUGURY_ENGINE_SYNTH_H
#define AUGURY_ENGINE_SYNTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"
#include "engine/model.h"

enum synth_type {
  SYNTH_TYPE_F16,
  SYNTH_TYPE_Q8_0,
  SYNTH_TYPE_Q4_0,
  SYNTH_TYPE_Q4_K_M,
  SYNTH_TYPE_Q5_K_M,
  SYNTH_TYPE_IQ3_XS,
  SYNTH_TYPE_COUNT
};

struct synth_params {
  const char *like; /* preset name, e.g. "qwen2.5-coder-1.5b" (see synth_preset_name) */
  enum synth_type type;
  const char *vocab_from; /* GGUF whose tokenizer.* keys are copied; NULL: built-in vocabulary */
  uint64_t seed;          /* same seed, same file */
  uint32_t n_layers;      /* 0: as the preset; else this many blocks (tests, quick checks) */
  uint32_t n_vocab;       /* 0: as the preset; else this many tokens (tests): smaller files */
};

struct synth_params synth_params_default(void);

/* Preset names, for usage messages: index 0..synth_preset_count()-1. */
size_t synth_preset_count(void);
const char *synth_preset_name(size_t index);
/* "f16", "q8_0", "q4_0", "q4_k_m", "q5_k_m", "iq3_xs" <-> enum; parse returns AUG_EINVAL for an
 * unknown name. */
const char *synth_type_name(enum synth_type type);
int synth_type_from_name(const char *name, enum synth_type *out);

/* The hyper-parameters of a preset after the params' reductions (n_layers, n_vocab), as
 * model_create would read them back from the written file. AUG_EINVAL names an unknown preset. */
int synth_hparams(const struct synth_params *params, struct model_hparams *hp, struct aug_err *err);

/* The tensor type synth writes for spec under type: llama.cpp's choice for that file type
 * (llama-quant.cpp llama_tensor_get_type), including its fallbacks for rows that are not a
 * multiple of 256 (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0, IQ3_XXS/IQ3_S -> IQ4_NL). */
uint32_t synth_tensor_type(enum synth_type type, const struct model_hparams *hp,
                           const struct model_tensor_spec *spec);

/* Writes the model to path (through path.tmp, renamed when complete) and reopens it with
 * model_load to check it. Errors name the preset, the source GGUF or the output path. */
int synth_write(const struct synth_params *params, const char *path, struct aug_err *err);

#endif
