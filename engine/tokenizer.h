/* Tokenizer built from a GGUF's tokenizer.ggml.* metadata: byte-level BPE (gpt2-style: Qwen2/2.5,
 * Llama 3, DeepSeek-Coder; the pre-tokenizer regex is chosen by tokenizer.ggml.pre) and
 * SentencePiece-style BPE (tokenizer.ggml.model = "llama"). Output matches llama.cpp's
 * llama_tokenize / llama_token_to_piece on the same file.
 * Immutable after creation: encode/decode may be called from any thread at once. */
#ifndef AUGURY_ENGINE_TOKENIZER_H
#define AUGURY_ENGINE_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"
#include "engine/gguf.h"

#define TOKEN_NONE (-1)

struct tokenizer; /* opaque */

enum token_kind {
  TOKEN_KIND_NORMAL = 1,
  TOKEN_KIND_UNKNOWN = 2,
  TOKEN_KIND_CONTROL = 3,
  TOKEN_KIND_USER_DEFINED = 4,
  TOKEN_KIND_UNUSED = 5,
  TOKEN_KIND_BYTE = 6,
};

/* Special token ids; TOKEN_NONE where the vocabulary has none. FIM ids come from
 * tokenizer.ggml.fim_*_token_id metadata, else from well-known texts (<|fim_prefix|>, <PRE>,
 * <｜fim▁begin｜>, ...), as llama.cpp does. */
struct tokenizer_special {
  int32_t bos, eos, eot, eom, unk, pad, nl;
  int32_t fim_prefix, fim_suffix, fim_middle, fim_pad, fim_repo, fim_sep;
  bool add_bos; /* tokenizer.ggml.add_bos_token, or the model family's default */
  bool add_eos;
};

int tokenizer_create(const struct gguf_file *file, struct tokenizer **out, struct aug_err *err);
void tokenizer_destroy(struct tokenizer *tok); /* NULL is a no-op */

int32_t tokenizer_vocab_size(const struct tokenizer *tok);
const struct tokenizer_special *tokenizer_special(const struct tokenizer *tok);
const char *tokenizer_model_name(const struct tokenizer *tok); /* "gpt2", "llama" */
/* The pre-tokenizer in use: "qwen2", "llama-bpe", "gpt-2", "default", "deepseek-coder", ...; for a
 * tokenizer.ggml.pre we do not know, "gpt-2 (fallback for unknown 'NAME')" (llama.cpp refuses such
 * files; we split as GPT-2 does and say so). "none" for SentencePiece vocabularies. */
const char *tokenizer_pre_name(const struct tokenizer *tok);
/* The GGUF token type after llama.cpp's load-time adjustments (control-looking texts such as
 * <|fim_prefix|> or Qwen's "</s>" become CONTROL); 0 for an id out of range or an undefined
 * type. */
enum token_kind tokenizer_token_kind(const struct tokenizer *tok, int32_t id);
/* llama.cpp's llama_token_attr bits for id (1 unknown, 2 unused, 4 normal, 8 control, 16
 * user-defined, 32 byte), after the same load-time adjustments; 0 for an id out of range. */
uint32_t tokenizer_token_attr(const struct tokenizer *tok, int32_t id);
/* The vocabulary entry as stored (e.g. "Ġfoo"); NULL for an id out of range. */
const char *tokenizer_token_text(const struct tokenizer *tok, int32_t id);
/* End-of-generation: eos, eot, eom, and the FIM/end tokens llama.cpp treats as such. */
bool tokenizer_is_eog(const struct tokenizer *tok, int32_t id);
/* Id of a token whose stored text is exactly text, or TOKEN_NONE. */
int32_t tokenizer_find(const struct tokenizer *tok, const char *text);
/* Length of the longest token piece (tokenizer_token_bytes with special = true). */
size_t tokenizer_max_token_bytes(const struct tokenizer *tok);

struct tokenize_options {
  bool add_special;   /* prepend BOS (and append EOS) where the vocabulary asks for it */
  bool parse_special; /* recognise control token texts inside the text; user-defined ones (Qwen's
                       * <tool_call>) are recognised even without it, as llama.cpp does */
};

/* Encodes len bytes of text into ids[0..cap). *n_tokens receives the number of tokens the text
 * needs; when that exceeds cap the call returns AUG_ERANGE and fills nothing useful. Allocates
 * scratch for the call (AUG_ENOMEM when that fails); see tokenizer_encode_scratch to reuse it. */
int tokenizer_encode(const struct tokenizer *tok, const char *text, size_t len,
                     struct tokenize_options opts, int32_t *ids, size_t cap, size_t *n_tokens,
                     struct aug_err *err);

/* Reusable encode buffers for per-keystroke callers: they grow when a text needs more and are
 * kept, so encoding a text again, or one needing no larger buffers, allocates nothing. One
 * scratch per thread. */
struct tokenizer_scratch;                                          /* opaque */
int tokenizer_scratch_create(struct tokenizer_scratch **out);      /* 0 or AUG_ENOMEM */
void tokenizer_scratch_destroy(struct tokenizer_scratch *scratch); /* NULL is a no-op */
/* tokenizer_encode with caller-kept buffers. */
int tokenizer_encode_scratch(const struct tokenizer *tok, struct tokenizer_scratch *scratch,
                             const char *text, size_t len, struct tokenize_options opts,
                             int32_t *ids, size_t cap, size_t *n_tokens, struct aug_err *err);

/* The bytes of one token as llama_token_to_piece(special) gives them (byte-level tokens decoded to
 * raw bytes; control tokens rendered only when special is true). Returns the byte count needed;
 * writes min(count, cap) bytes. Returns a negative code for an id out of range. */
int tokenizer_token_bytes(const struct tokenizer *tok, int32_t id, bool special, char *buf,
                          size_t cap);

/* Streaming detokenizer: holds back an incomplete UTF-8 sequence at a token boundary so that every
 * piece written is valid UTF-8 (invalid bytes become U+FFFD). */
struct detokenizer {
  unsigned char pending[8];
  size_t n_pending;
};
void detokenizer_init(struct detokenizer *d);
/* Appends the text of id to out; returns bytes written (<= cap), or a negative code: AUG_ERANGE
 * for an id out of range or when out is too small (d is then unchanged). cap >=
 * detokenizer_max_output(tok) always suffices (144 for Qwen2.5's vocabulary, whose longest piece
 * is 128 bytes; tests/unit/engine/test_tokenizer.c checks it stays <= 256). */
int detokenizer_push(struct detokenizer *d, const struct tokenizer *tok, int32_t id, bool special,
                     char *out, size_t cap);
size_t detokenizer_max_output(const struct tokenizer *tok);
/* Flushes what is pending (as U+FFFD when incomplete); returns bytes written (cap >= 16 always
 * suffices). */
int detokenizer_flush(struct detokenizer *d, char *out, size_t cap);

#endif
