/* Prompts: fill-in-the-middle for completions and chat for explain, assembled as token ids.
 * FIM tokens come from the tokenizer's special ids, else from a table of known families
 * (Qwen2.5-Coder <|fim_prefix|>/<|fim_suffix|>/<|fim_middle|> with the <|repo_name|>/<|file_sep|>
 * repository format; CodeLlama <PRE>/<SUF>/<MID>; DeepSeek-Coder <｜fim▁begin｜>/<｜fim▁hole｜>/
 * <｜fim▁end｜>). Document text is always encoded with parse_special off, so text that spells a
 * control token cannot inject one. The prefix window starts on a line that moves only in coarse
 * steps, so consecutive prompts share a long token prefix and the engine reuses its KV cache. */
#ifndef AUGURY_PLUGINS_PROMPT_H
#define AUGURY_PLUGINS_PROMPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"
#include "engine/tokenizer.h"
#include "plugins/augury_plugin.h"

enum fim_family { FIM_FAMILY_QWEN, FIM_FAMILY_CODELLAMA, FIM_FAMILY_DEEPSEEK };

struct fim_tokens {
  enum fim_family family;
  int32_t prefix, suffix, middle;
  int32_t repo_name, file_sep; /* TOKEN_NONE when the repository format is unavailable */
};

/* Finds the FIM tokens of a vocabulary; AUG_EUNSUPPORTED when it has none (not a FIM model). */
int prompt_fim_tokens(const struct tokenizer *tok, struct fim_tokens *out, struct aug_err *err);

/* Whether generating id ends a FIM completion: end-of-generation ids, any FIM/repository token,
 * and any other control token (a FIM model that emits one has left the middle). */
bool prompt_fim_is_stop(const struct tokenizer *tok, const struct fim_tokens *fim, int32_t id);

/* Line window around a cursor at byte offset cursor of text[0..len). The prefix starts at line
 * max(0, ceil((cursor_line - prefix_lines) / snap) * snap), so it holds at most prefix_lines lines
 * and its start moves only every snap lines; the suffix ends after suffix_lines lines past the
 * cursor's line. Outputs byte offsets. */
void prompt_window(const char *text, size_t len, size_t cursor, size_t prefix_lines,
                   size_t suffix_lines, size_t snap, size_t *prefix_start, size_t *suffix_end);

/* What a FIM prompt is built from (all borrowed). The prompt is
 *   <|fim_prefix|>prefix<|fim_suffix|>suffix<|fim_middle|>middle
 * and the model continues after middle. Putting the cursor's line (up to the cursor) in middle
 * keeps everything before <|fim_middle|> unchanged while the user types inside a line, so only
 * the middle tokens are evaluated per keystroke (llama.vim's intended layout; llama.cpp's /infill
 * puts that text before the suffix instead, issue 22678). middle_len 0 gives the classic layout. */
struct fim_input {
  const char *prefix; /* text before the middle (or the cursor), from the window start */
  size_t prefix_len;
  const char *suffix; /* text after the cursor, to the window end */
  size_t suffix_len;
  const char *repo_name; /* NULL or "" to leave out the repository header */
  const char *path;      /* file path relative to the repository, or NULL */
  size_t prefix_tokens;  /* token bounds of the two windows */
  size_t suffix_tokens;
  size_t snap_lines;  /* when the prefix is over its token bound, drop lines in these steps */
  const char *middle; /* text after <|fim_middle|>: the cursor's line up to the cursor, or NULL */
  size_t middle_len;
  /* Context pieces from the context providers, most stable first: each goes in as a repository
   * file (<|file_sep|>name\ntext\n) before the current file, so the KV cache keeps them across
   * keystrokes. Left out by families without <|file_sep|> (CodeLlama, DeepSeek). */
  const struct augury_context_piece *context;
  size_t n_context;
};

/* Builds the FIM prompt into ids[0..cap). When the prefix is over its token bound whole snap_lines
 * blocks are dropped from its start (stable for the next keystrokes); the suffix is cut at its end.
 * The middle is kept whole. *n_prefix_dropped receives the bytes dropped from the prefix.
 * AUG_ERANGE when even the bounded prompt does not fit cap. */
int prompt_build_fim(const struct tokenizer *tok, const struct fim_tokens *fim,
                     const struct fim_input *in, int32_t *ids, size_t cap, size_t *n_ids,
                     size_t *n_prefix_dropped, struct aug_err *err);

/* The same FIM prompt as text, for a remote server that tokenizes it itself (OpenAI-compatible
 * /v1/completions with a raw prompt): the family's control-token spellings around the document
 * text, whose own spellings of them are broken with a zero-width space so they cannot become
 * control tokens there. Token bounds are applied as byte bounds (4 bytes a token), dropping whole
 * lines from the prefix's start and cutting the suffix's end. out[0..*len) is NUL-terminated;
 * AUG_ERANGE when cap is too small. */
int prompt_format_fim_text(enum fim_family family, const struct fim_input *in, char *out,
                           size_t cap, size_t *len, struct aug_err *err);

/* The family called name ("qwen", "codellama", "deepseek"); false when unknown. */
bool prompt_fim_family_from_name(const char *name, enum fim_family *out);

enum chat_format { CHAT_FORMAT_CHATML, CHAT_FORMAT_LLAMA3, CHAT_FORMAT_PLAIN };

/* Picks the chat format from tokenizer.chat_template text (may be NULL) and the vocabulary:
 * ChatML (<|im_start|>, Qwen), Llama 3 (<|start_header_id|>), else plain instruction text. */
enum chat_format prompt_chat_format(const char *chat_template, const struct tokenizer *tok);
const char *prompt_chat_format_name(enum chat_format format);

/* Builds a chat prompt: a system message, then one user message made of our instruction, the user's
 * code and our closing text (e.g. a code fence), then the assistant header. All message text is
 * encoded with parse_special off; only the template's own markers are control tokens. */
int prompt_build_chat(const struct tokenizer *tok, enum chat_format format, const char *system,
                      const char *instruction, const char *code, size_t code_len,
                      const char *after_code, int32_t *ids, size_t cap, size_t *n_ids,
                      struct aug_err *err);

/* Whether a generated id ends a chat answer (end-of-generation or any control token). */
bool prompt_chat_is_stop(const struct tokenizer *tok, int32_t id);

#endif
