/* Pre-tokenizers of byte-level BPE vocabularies (internal to engine/tokenizer.c): split a run of
 * codepoints into the words that BPE then merges, as llama.cpp does for each tokenizer.ggml.pre.
 * Every pattern is a hand-written matcher (no regex engine); see tokenizer_pre.c for how each one
 * reproduces the leftmost-first semantics of the regex llama.cpp uses. */
#ifndef AUGURY_ENGINE_TOKENIZER_PRE_H
#define AUGURY_ENGINE_TOKENIZER_PRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum tokenizer_pre_kind {
  TOKENIZER_PRE_DEFAULT,        /* llama.cpp's default chain (tokenizer.ggml.pre "default") */
  TOKENIZER_PRE_GPT2,           /* "gpt-2" and the families sharing its regex */
  TOKENIZER_PRE_LLAMA3,         /* "llama-bpe", "llama3", ... (digits in groups of up to 3) */
  TOKENIZER_PRE_QWEN2,          /* "qwen2", "deepseek-r1-qwen", "stablelm2" (single digits) */
  TOKENIZER_PRE_DEEPSEEK_LLM,   /* "deepseek-llm" */
  TOKENIZER_PRE_DEEPSEEK_CODER, /* "deepseek-coder" */
  TOKENIZER_PRE_STARCODER,      /* "starcoder", "refact", "command-r", "smollm", ... */
};

/* The kind for a tokenizer.ggml.pre value; false when llama.cpp knows no such name here. */
bool tokenizer_pre_from_name(const char *name, size_t len, enum tokenizer_pre_kind *out);
/* Canonical name of a kind ("qwen2", "llama-bpe", ...). */
const char *tokenizer_pre_kind_name(enum tokenizer_pre_kind kind);

/* Splits cps[0..n) (with flags[i] = unicode_flags(cps[i])) into words and writes the exclusive end
 * offset of each word to ends[]; returns the word count. ends and scratch hold n entries each. */
size_t tokenizer_pre_split(enum tokenizer_pre_kind kind, const uint32_t *cps, const uint8_t *flags,
                           size_t n, uint32_t *ends, uint32_t *scratch);

#endif
