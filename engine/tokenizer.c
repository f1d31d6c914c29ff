/* Tokenizer from a GGUF's tokenizer.ggml.* metadata (see tokenizer.h). It reproduces llama.cpp's
 * llama-vocab.cpp: byte-level BPE ("gpt2": pre-tokenizer, GPT-2 byte-to-unicode mapping, merges by
 * rank), SentencePiece-style BPE ("llama": scores, U+2581 for spaces, <0xXX> byte fallback), the
 * special-token partition (longest text first), attribute overrides and end-of-generation set.
 * Everything is built once in tokenizer_create; encode allocates only its per-call scratch. */
#include "engine/tokenizer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/alloc.h"
#include "engine/tokenizer_pre.h"
#include "engine/unicode.h"

enum tokenizer_model { MODEL_BPE, MODEL_SPM };

/* llama.cpp's token attributes (llama_token_attr): the GGUF token type turned into bits, then
 * adjusted at load (control-looking texts gain CONTROL, and so on). */
enum {
  ATTR_UNKNOWN = 1 << 0,
  ATTR_UNUSED = 1 << 1,
  ATTR_NORMAL = 1 << 2,
  ATTR_CONTROL = 1 << 3,
  ATTR_USER_DEFINED = 1 << 4,
  ATTR_BYTE = 1 << 5,
};

/* text -> id: open addressing over ids (-1 = empty). */
struct text_map {
  int32_t *slots;
  size_t mask;
};

/* (left id, right id) -> (rank, merged id): open addressing, key UINT64_MAX = empty. */
struct merge_slot {
  uint64_t key;
  int32_t rank;
  int32_t result; /* id of the merged text, -1 when the vocabulary lacks it */
};

struct tokenizer {
  enum tokenizer_model model;
  enum tokenizer_pre_kind pre;
  char pre_name[128];
  int32_t n_vocab;

  char *text_pool; /* every token text, NUL-terminated */
  uint32_t *text_off;
  uint32_t *text_len;
  char *piece_pool; /* llama_token_to_piece(id, special = true) of every token */
  uint32_t *piece_off;
  uint32_t *piece_len;
  size_t max_piece;
  size_t max_output; /* detokenizer_max_output */
  uint8_t *attr;     /* ATTR_* bits after llama.cpp's overrides */
  float *scores;     /* SPM only */
  uint8_t *eog;      /* 1 for end-of-generation ids */
  int32_t *specials; /* control/user-defined/unknown ids, longest text first */
  size_t n_specials;

  struct text_map map;
  struct merge_slot *merges;
  size_t merge_mask;

  /* GPT-2 byte-level mapping (llama.cpp unicode.cpp unicode_byte_to_utf8_map). */
  char byte_text[256][2];
  uint8_t byte_text_len[256];
  int32_t byte_token[256];        /* BPE: id of byte_text[b]; SPM: id of "<0xXX>" (or the char) */
  int32_t single_byte_token[256]; /* id of the one-byte text b (BPE fallback) */

  bool ignore_merges;
  bool add_space_prefix;
  struct tokenizer_special special;
};

/* ---- hashing --------------------------------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t n) {
  uint64_t h = 1469598103934665603ull; /* FNV-1a */
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ull;
  }
  return h ^ (h >> 29);
}

static uint64_t hash_pair(uint64_t key) {
  key *= 0x9E3779B97F4A7C15ull;
  return key ^ (key >> 31);
}

static size_t pow2_at_least(size_t n) {
  size_t p = 16;
  while (p < n)
    p <<= 1;
  return p;
}

static int32_t map_find(const struct tokenizer *tok, const char *s, size_t n) {
  size_t i = hash_bytes(s, n) & tok->map.mask;
  for (;;) {
    int32_t id = tok->map.slots[i];
    if (id < 0) return TOKEN_NONE;
    if (tok->text_len[id] == n && memcmp(tok->text_pool + tok->text_off[id], s, n) == 0) return id;
    i = (i + 1) & tok->map.mask;
  }
}

/* Later duplicates replace earlier ones, as llama.cpp's token_to_id[text] = id does. */
static void map_insert(struct tokenizer *tok, int32_t id) {
  const char *s = tok->text_pool + tok->text_off[id];
  size_t n = tok->text_len[id];
  size_t i = hash_bytes(s, n) & tok->map.mask;
  for (;;) {
    int32_t other = tok->map.slots[i];
    if (other < 0 ||
        (tok->text_len[other] == n && memcmp(tok->text_pool + tok->text_off[other], s, n) == 0)) {
      tok->map.slots[i] = id;
      return;
    }
    i = (i + 1) & tok->map.mask;
  }
}

static const struct merge_slot *merge_find(const struct tokenizer *tok, int32_t left,
                                           int32_t right) {
  uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
  size_t i = hash_pair(key) & tok->merge_mask;
  for (;;) {
    const struct merge_slot *s = &tok->merges[i];
    if (s->key == key) return s;
    if (s->key == UINT64_MAX) return NULL;
    i = (i + 1) & tok->merge_mask;
  }
}

/* The first occurrence of a pair keeps its rank (llama.cpp: bpe_ranks.emplace). */
static void merge_insert(struct tokenizer *tok, int32_t left, int32_t right, int32_t rank,
                         int32_t result) {
  uint64_t key = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
  size_t i = hash_pair(key) & tok->merge_mask;
  for (;;) {
    struct merge_slot *s = &tok->merges[i];
    if (s->key == key) return;
    if (s->key == UINT64_MAX) {
      s->key = key;
      s->rank = rank;
      s->result = result;
      return;
    }
    i = (i + 1) & tok->merge_mask;
  }
}

/* ---- accessors ------------------------------------------------------------------------------- */

int32_t tokenizer_vocab_size(const struct tokenizer *tok) {
  return tok->n_vocab;
}

const struct tokenizer_special *tokenizer_special(const struct tokenizer *tok) {
  return &tok->special;
}

const char *tokenizer_model_name(const struct tokenizer *tok) {
  return tok->model == MODEL_BPE ? "gpt2" : "llama";
}

const char *tokenizer_pre_name(const struct tokenizer *tok) {
  return tok->pre_name;
}

enum token_kind tokenizer_token_kind(const struct tokenizer *tok, int32_t id) {
  if (id < 0 || id >= tok->n_vocab) return (enum token_kind)0;
  uint8_t a = tok->attr[id];
  if (a & ATTR_CONTROL) return TOKEN_KIND_CONTROL;
  if (a & ATTR_USER_DEFINED) return TOKEN_KIND_USER_DEFINED;
  if (a & ATTR_UNKNOWN) return TOKEN_KIND_UNKNOWN;
  if (a & ATTR_BYTE) return TOKEN_KIND_BYTE;
  if (a & ATTR_UNUSED) return TOKEN_KIND_UNUSED;
  if (a & ATTR_NORMAL) return TOKEN_KIND_NORMAL;
  return (enum token_kind)0;
}

uint32_t tokenizer_token_attr(const struct tokenizer *tok, int32_t id) {
  return id >= 0 && id < tok->n_vocab ? tok->attr[id] : 0;
}

const char *tokenizer_token_text(const struct tokenizer *tok, int32_t id) {
  if (id < 0 || id >= tok->n_vocab) return NULL;
  return tok->text_pool + tok->text_off[id];
}

bool tokenizer_is_eog(const struct tokenizer *tok, int32_t id) {
  return id >= 0 && id < tok->n_vocab && tok->eog[id];
}

int32_t tokenizer_find(const struct tokenizer *tok, const char *text) {
  return map_find(tok, text, strlen(text));
}

size_t tokenizer_max_token_bytes(const struct tokenizer *tok) {
  return tok->max_piece;
}

size_t detokenizer_max_output(const struct tokenizer *tok) {
  return tok->max_output;
}

static bool attr_is_special(uint8_t attr) {
  return (attr & (ATTR_CONTROL | ATTR_UNKNOWN)) != 0;
}

int tokenizer_token_bytes(const struct tokenizer *tok, int32_t id, bool special, char *buf,
                          size_t cap) {
  if (id < 0 || id >= tok->n_vocab) return AUG_ERANGE;
  if (!special && attr_is_special(tok->attr[id])) return 0;
  size_t n = tok->piece_len[id];
  memcpy(buf, tok->piece_pool + tok->piece_off[id], n < cap ? n : cap);
  return (int)n;
}

static int utf8_emit(const unsigned char *s, size_t n, bool hold, char *out, size_t cap,
                     size_t *written, size_t *held);

/* ---- loading --------------------------------------------------------------------------------- */

static void byte_mapping_init(struct tokenizer *tok) {
  /* GPT-2's bytes_to_unicode: printable Latin-1 bytes map to themselves, the other 68 bytes to
   * U+0100.. in byte order. */
  int next = 0;
  for (int b = 0; b < 256; b++) {
    bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    uint32_t cp = printable ? (uint32_t)b : (uint32_t)(256 + next++);
    char utf8[4];
    size_t n = unicode_encode_utf8(cp, utf8);
    memcpy(tok->byte_text[b], utf8, n);
    tok->byte_text_len[b] = (uint8_t)n;
  }
}

/* Byte for a codepoint of a byte-level token text, or -1. */
static int byte_of_codepoint(uint32_t cp) {
  if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF)) {
    return (int)cp;
  }
  if (cp < 256 || cp >= 256 + 68) return -1;
  int n = (int)(cp - 256);
  for (int b = 0; b < 256; b++) {
    bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
    if (!printable && n-- == 0) return b;
  }
  return -1;
}

/* Growable byte buffer used while building the piece pool. */
struct bytes {
  char *data;
  size_t len, cap;
};

static int bytes_append(struct bytes *b, const void *src, size_t n) {
  if (b->len + n > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n)
      cap *= 2;
    char *data = aug_realloc(b->data, cap);
    if (!data) return AUG_ENOMEM;
    b->data = data;
    b->cap = cap;
  }
  memcpy(b->data + b->len, src, n);
  b->len += n;
  return 0;
}

/* llama_token_to_piece(id, special = true) for one token (llama-vocab.cpp token_to_piece). */
static int build_piece(const struct tokenizer *tok, int32_t id, struct bytes *out) {
  const char *text = tok->text_pool + tok->text_off[id];
  size_t len = tok->text_len[id];
  uint8_t attr = tok->attr[id];
  if (attr & (ATTR_CONTROL | ATTR_UNKNOWN | ATTR_USER_DEFINED)) return bytes_append(out, text, len);
  if (tok->model == MODEL_SPM) {
    if (attr & ATTR_NORMAL) {
      /* U+2581 back to a space */
      for (size_t i = 0; i < len;) {
        if (i + 3 <= len && memcmp(text + i, "\xE2\x96\x81", 3) == 0) {
          if (bytes_append(out, " ", 1) < 0) return AUG_ENOMEM;
          i += 3;
        } else {
          if (bytes_append(out, text + i, 1) < 0) return AUG_ENOMEM;
          i++;
        }
      }
      return 0;
    }
    if (attr & ATTR_BYTE) {
      /* "<0xXX>": llama.cpp's token_to_byte parses the hex digits after "<0x" */
      unsigned char byte = (unsigned char)strtol(text + (len > 3 ? 3 : len), NULL, 16);
      return bytes_append(out, &byte, 1);
    }
    return 0;
  }
  if (!(attr & ATTR_NORMAL)) return 0;
  /* Byte-level: each codepoint is one byte; unknown ones are spelled out as llama_decode_text
   * does ("[UNK_BYTE_0x" hex-of-codepoint text "]"). */
  for (size_t pos = 0; pos < len;) {
    uint32_t cp = unicode_decode_utf8(text, len, &pos);
    int byte = byte_of_codepoint(cp);
    if (byte >= 0) {
      unsigned char b = (unsigned char)byte;
      if (bytes_append(out, &b, 1) < 0) return AUG_ENOMEM;
      continue;
    }
    char utf8[4], hex[16];
    size_t n = unicode_encode_utf8(cp, utf8);
    if (bytes_append(out, "[UNK_BYTE_0x", 12) < 0) return AUG_ENOMEM;
    for (size_t i = 0; i < n; i++) {
      snprintf(hex, sizeof hex, "%02x", (unsigned char)utf8[i]);
      if (bytes_append(out, hex, 2) < 0) return AUG_ENOMEM;
    }
    if (bytes_append(out, text, len) < 0 || bytes_append(out, "]", 1) < 0) return AUG_ENOMEM;
  }
  return 0;
}

/* Reads an optional token-id key; keeps *id when absent or out of range (llama.cpp warns and
 * keeps its default then). */
static int read_id(const struct gguf_file *file, const char *key, int32_t n_vocab, int32_t *id,
                   struct aug_err *err) {
  uint64_t v;
  int rc = gguf_get_uint(file, key, &v, err);
  if (rc == AUG_ENOTFOUND) return 0;
  if (rc < 0) return rc;
  if (v < (uint64_t)n_vocab) *id = (int32_t)v;
  return 0;
}

static int read_bool(const struct gguf_file *file, const char *key, bool *value,
                     struct aug_err *err) {
  int rc = gguf_get_bool(file, key, value, err);
  return rc == AUG_ENOTFOUND ? 0 : rc;
}

static int load_special_ids(struct tokenizer *tok, const struct gguf_file *file,
                            struct aug_err *err) {
  struct tokenizer_special *sp = &tok->special;
  int32_t nv = tok->n_vocab;
  /* llama.cpp's defaults before the metadata is read */
  *sp = (struct tokenizer_special){.bos = TOKEN_NONE,
                                   .eos = TOKEN_NONE,
                                   .eot = TOKEN_NONE,
                                   .eom = TOKEN_NONE,
                                   .unk = TOKEN_NONE,
                                   .pad = TOKEN_NONE,
                                   .nl = TOKEN_NONE,
                                   .fim_prefix = TOKEN_NONE,
                                   .fim_suffix = TOKEN_NONE,
                                   .fim_middle = TOKEN_NONE,
                                   .fim_pad = TOKEN_NONE,
                                   .fim_repo = TOKEN_NONE,
                                   .fim_sep = TOKEN_NONE};
  if (tok->model == MODEL_SPM) {
    sp->bos = 1 < nv ? 1 : TOKEN_NONE;
    sp->eos = 2 < nv ? 2 : TOKEN_NONE;
    sp->unk = 0;
    sp->add_bos = true;
    tok->add_space_prefix = true;
  } else {
    sp->bos = 11 < nv ? 11 : TOKEN_NONE;
    sp->eos = 11 < nv ? 11 : TOKEN_NONE;
    sp->add_bos = tok->pre == TOKENIZER_PRE_LLAMA3;
  }
  static const struct {
    const char *key;
    size_t offset;
  } ids[] = {
      {"tokenizer.ggml.bos_token_id", offsetof(struct tokenizer_special, bos)},
      {"tokenizer.ggml.eos_token_id", offsetof(struct tokenizer_special, eos)},
      {"tokenizer.ggml.eot_token_id", offsetof(struct tokenizer_special, eot)},
      {"tokenizer.ggml.eom_token_id", offsetof(struct tokenizer_special, eom)},
      {"tokenizer.ggml.unknown_token_id", offsetof(struct tokenizer_special, unk)},
      {"tokenizer.ggml.padding_token_id", offsetof(struct tokenizer_special, pad)},
      {"tokenizer.ggml.fim_pre_token_id", offsetof(struct tokenizer_special, fim_prefix)},
      {"tokenizer.ggml.fim_suf_token_id", offsetof(struct tokenizer_special, fim_suffix)},
      {"tokenizer.ggml.fim_mid_token_id", offsetof(struct tokenizer_special, fim_middle)},
      {"tokenizer.ggml.fim_pad_token_id", offsetof(struct tokenizer_special, fim_pad)},
      {"tokenizer.ggml.fim_rep_token_id", offsetof(struct tokenizer_special, fim_repo)},
      {"tokenizer.ggml.fim_sep_token_id", offsetof(struct tokenizer_special, fim_sep)},
      /* older spellings of the FIM keys */
      {"tokenizer.ggml.prefix_token_id", offsetof(struct tokenizer_special, fim_prefix)},
      {"tokenizer.ggml.suffix_token_id", offsetof(struct tokenizer_special, fim_suffix)},
      {"tokenizer.ggml.middle_token_id", offsetof(struct tokenizer_special, fim_middle)},
  };
  for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
    int32_t *slot = (int32_t *)((char *)sp + ids[i].offset);
    if (i >= 12 && *slot != TOKEN_NONE) continue; /* the new key wins */
    int rc = read_id(file, ids[i].key, nv, slot, err);
    if (rc < 0) return rc;
  }
  int rc = read_bool(file, "tokenizer.ggml.add_bos_token", &sp->add_bos, err);
  if (rc == 0) rc = read_bool(file, "tokenizer.ggml.add_eos_token", &sp->add_eos, err);
  if (rc == 0) rc = read_bool(file, "tokenizer.ggml.add_space_prefix", &tok->add_space_prefix, err);
  if (rc < 0) return rc;
  if (sp->add_bos && sp->bos == TOKEN_NONE) {
    return aug_err_set(
        err, AUG_EFORMAT,
        "tokenizer: %s: tokenizer.ggml.add_bos_token is true but there is no BOS token",
        gguf_path(file));
  }
  if (sp->add_eos && sp->eos == TOKEN_NONE) {
    return aug_err_set(
        err, AUG_EFORMAT,
        "tokenizer: %s: tokenizer.ggml.add_eos_token is true but there is no EOS token",
        gguf_path(file));
  }
  return 0;
}

static int32_t find_text(const struct tokenizer *tok, const char *text) {
  return map_find(tok, text, strlen(text));
}

/* Finds a token by well-known texts (in list order; llama.cpp takes the first one its hash map
 * yields) when the metadata named none, and gives it the CONTROL attribute as llama.cpp does
 * ("control-looking token ... will be overridden"). */
static void detect_by_text(struct tokenizer *tok, int32_t *slot, const char *const *texts) {
  if (*slot != TOKEN_NONE) return;
  for (size_t i = 0; texts[i]; i++) {
    int32_t id = find_text(tok, texts[i]);
    if (id != TOKEN_NONE) {
      *slot = id;
      tok->attr[id] |= ATTR_CONTROL;
      return;
    }
  }
}

/* The load-time adjustments of llama_vocab::impl::load, in its order: special ids by text, unused
 * control tokens, the end-of-generation set and its workarounds. The FIM lists are llama.cpp's
 * plus the DeepSeek and CodeLlama spellings older versions had. */
static void detect_special_tokens(struct tokenizer *tok) {
#define FW_BAR "\xEF\xBD\x9C"      /* U+FF5C FULLWIDTH VERTICAL LINE */
#define LOWER_BLOCK "\xE2\x96\x81" /* U+2581 */
  static const char *const eot[] = {
      "<|eot_id|>",    "<|im_end|>",         "<|end|>", "<end_of_turn>",
      "<|endoftext|>", "<|end_of_text|>",    "<EOT>",   "_<EOT>",
      "[EOT]",         "<end_of_utterance>", NULL};
  static const char *const eom[] = {"<|eom_id|>", NULL};
  static const char *const fim_pre[] = {"<|fim_prefix|>",
                                        "<fim-prefix>",
                                        "<fim_prefix>",
                                        "<PRE>",
                                        "<|code_prefix|>",
                                        "<|prefix|>",
                                        "<" FW_BAR "fim" LOWER_BLOCK "begin" FW_BAR ">",
                                        LOWER_BLOCK "<PRE>",
                                        NULL};
  static const char *const fim_suf[] = {"<|fim_suffix|>",
                                        "<fim-suffix>",
                                        "<fim_suffix>",
                                        "<SUF>",
                                        "<|code_suffix|>",
                                        "<|suffix|>",
                                        "<" FW_BAR "fim" LOWER_BLOCK "hole" FW_BAR ">",
                                        LOWER_BLOCK "<SUF>",
                                        NULL};
  static const char *const fim_mid[] = {"<|fim_middle|>",
                                        "<fim-middle>",
                                        "<fim_middle>",
                                        "<MID>",
                                        "<|code_middle|>",
                                        "<|middle|>",
                                        "<" FW_BAR "fim" LOWER_BLOCK "end" FW_BAR ">",
                                        LOWER_BLOCK "<MID>",
                                        NULL};
  static const char *const fim_pad[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>",
                                        "<PAD>",       "[PAD]",     NULL};
  static const char *const fim_rep[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>",
                                        "<REPO>",       "<reponame>",    NULL};
  static const char *const fim_sep[] = {"<|file_sep|>", NULL};
#undef FW_BAR
#undef LOWER_BLOCK
  struct tokenizer_special *sp = &tok->special;
  detect_by_text(tok, &sp->eot, eot);
  detect_by_text(tok, &sp->eom, eom);
  detect_by_text(tok, &sp->fim_prefix, fim_pre);
  detect_by_text(tok, &sp->fim_suffix, fim_suf);
  detect_by_text(tok, &sp->fim_middle, fim_mid);
  detect_by_text(tok, &sp->fim_pad, fim_pad);
  detect_by_text(tok, &sp->fim_repo, fim_rep);
  detect_by_text(tok, &sp->fim_sep, fim_sep);

  /* Control tokens whose text says "unused" are unused. */
  for (int32_t i = 0; i < tok->n_vocab; i++) {
    if ((tok->attr[i] & ATTR_CONTROL) && strstr(tok->text_pool + tok->text_off[i], "unused")) {
      tok->attr[i] |= ATTR_UNUSED;
    }
  }

  /* End of generation: the FIM pad/repo/sep tokens, these texts (made control), eos, eot, eom. */
  static const char *const eog_texts[] = {"<|eot_id|>",
                                          "<|im_end|>",
                                          "<|end|>",
                                          "<|return|>",
                                          "<|call|>",
                                          "<|flush|>",
                                          "<|calls|>",
                                          "<end_of_turn>",
                                          "<|endoftext|>",
                                          "</s>",
                                          "<|eom_id|>",
                                          "<EOT>",
                                          "_<EOT>",
                                          "[EOT]",
                                          "[EOS]",
                                          "<|end_of_text|>",
                                          "<end_of_utterance>",
                                          "<eos>",
                                          "<turn|>",
                                          "<|tool_response>",
                                          NULL};
  const int32_t fim_eog[] = {sp->fim_pad, sp->fim_repo, sp->fim_sep};
  for (size_t i = 0; i < 3; i++) {
    if (fim_eog[i] != TOKEN_NONE) tok->eog[fim_eog[i]] = 1;
  }
  for (size_t i = 0; eog_texts[i]; i++) {
    int32_t id = find_text(tok, eog_texts[i]);
    if (id != TOKEN_NONE) {
      tok->eog[id] = 1;
      tok->attr[id] |= ATTR_CONTROL;
    }
  }
  /* gpt-oss: these are always rendered */
  static const char *const rendered[] = {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>",
                                         NULL};
  for (size_t i = 0; rendered[i]; i++) {
    int32_t id = find_text(tok, rendered[i]);
    if (id != TOKEN_NONE) tok->attr[id] = ATTR_USER_DEFINED;
  }
  const int32_t eog_ids[] = {sp->eos, sp->eot, sp->eom};
  for (size_t i = 0; i < 3; i++) {
    if (eog_ids[i] != TOKEN_NONE) tok->eog[eog_ids[i]] = 1;
  }
  /* o200k_harmony / solar-open: <|end|> is not the end when <|return|>/<|call|> (or
   * <|calls|>/<|flush|>) exist; gemma4: </s> is text when <|tool_response> exists. */
  int32_t ret = find_text(tok, "<|return|>"), call = find_text(tok, "<|call|>");
  int32_t calls = find_text(tok, "<|calls|>"), flush = find_text(tok, "<|flush|>");
  int32_t end = find_text(tok, "<|end|>");
  bool has_call = call != TOKEN_NONE || calls != TOKEN_NONE;
  if (end != TOKEN_NONE && tok->eog[end] && has_call &&
      (ret != TOKEN_NONE || flush != TOKEN_NONE)) {
    tok->eog[end] = 0;
    tok->attr[end] = ATTR_USER_DEFINED;
  }
  int32_t eos_text = find_text(tok, "</s>");
  if (find_text(tok, "<|tool_response>") != TOKEN_NONE && eos_text != TOKEN_NONE &&
      tok->eog[eos_text]) {
    tok->eog[eos_text] = 0;
    tok->attr[eos_text] = ATTR_NORMAL;
  }
}

/* Sorts ids by text length, longest first, ties by id (llama.cpp sorts by length only; a stable
 * order keeps results reproducible). A merge sort, since qsort has no context argument. */
static void sort_specials(const struct tokenizer *tok, int32_t *ids, int32_t *tmp, size_t n) {
  if (n < 2) return;
  size_t half = n / 2;
  sort_specials(tok, ids, tmp, half);
  sort_specials(tok, ids + half, tmp, n - half);
  size_t i = 0, j = half, k = 0;
  while (i < half && j < n) {
    uint32_t li = tok->text_len[ids[i]], lj = tok->text_len[ids[j]];
    if (li > lj || (li == lj && ids[i] < ids[j]))
      tmp[k++] = ids[i++];
    else
      tmp[k++] = ids[j++];
  }
  while (i < half)
    tmp[k++] = ids[i++];
  while (j < n)
    tmp[k++] = ids[j++];
  memcpy(ids, tmp, n * sizeof *ids);
}

static int load_vocab(struct tokenizer *tok, const struct gguf_file *file, struct aug_err *err) {
  const char *path = gguf_path(file);
  int64_t key = gguf_find_key(file, "tokenizer.ggml.tokens");
  if (key < 0) {
    return aug_err_set(err, AUG_EFORMAT, "tokenizer: %s: tokenizer.ggml.tokens is missing", path);
  }
  if (gguf_kv_type(file, (size_t)key) != GGUF_TYPE_ARRAY ||
      gguf_kv_array_type(file, (size_t)key) != GGUF_TYPE_STRING) {
    return aug_err_set(err, AUG_EFORMAT,
                       "tokenizer: %s: tokenizer.ggml.tokens is a %s, expected an array of strings",
                       path, gguf_type_name(gguf_kv_type(file, (size_t)key)));
  }
  uint64_t count = gguf_kv_array_count(file, (size_t)key);
  if (count == 0 || count > INT32_MAX / 2) {
    return aug_err_set(err, AUG_EFORMAT,
                       "tokenizer: %s: tokenizer.ggml.tokens has %" PRIu64
                       " entries (expected 1..%d)",
                       path, count, INT32_MAX / 2);
  }
  int32_t n = (int32_t)count;
  tok->n_vocab = n;

  size_t total = 0;
  for (int32_t i = 0; i < n; i++) {
    const char *s;
    size_t len;
    if (gguf_get_array_string(file, (size_t)key, (uint64_t)i, &s, &len) < 0) {
      return aug_err_set(err, AUG_EFORMAT,
                         "tokenizer: %s: tokenizer.ggml.tokens[%" PRId32 "] cannot be read", path,
                         i);
    }
    total += len + 1;
  }
  if (total > UINT32_MAX) {
    return aug_err_set(err, AUG_EFORMAT, "tokenizer: %s: token texts total %zu bytes (max 4 GiB)",
                       path, total);
  }
  tok->text_pool = aug_malloc(total);
  tok->text_off = aug_malloc((size_t)n * sizeof *tok->text_off);
  tok->text_len = aug_malloc((size_t)n * sizeof *tok->text_len);
  tok->attr = aug_malloc((size_t)n);
  tok->eog = aug_calloc((size_t)n, 1);
  tok->map.mask = pow2_at_least((size_t)n * 2) - 1;
  tok->map.slots = aug_malloc((tok->map.mask + 1) * sizeof *tok->map.slots);
  if (!tok->text_pool || !tok->text_off || !tok->text_len || !tok->attr || !tok->eog ||
      !tok->map.slots) {
    return aug_err_set(err, AUG_ENOMEM, "tokenizer: out of memory for %" PRId32 " tokens", n);
  }
  memset(tok->map.slots, 0xFF, (tok->map.mask + 1) * sizeof *tok->map.slots);
  size_t off = 0;
  for (int32_t i = 0; i < n; i++) {
    const char *s;
    size_t len;
    gguf_get_array_string(file, (size_t)key, (uint64_t)i, &s, &len);
    memcpy(tok->text_pool + off, s, len);
    tok->text_pool[off + len] = '\0';
    tok->text_off[i] = (uint32_t)off;
    tok->text_len[i] = (uint32_t)len;
    off += len + 1;
    map_insert(tok, i);
  }

  /* Token types (GGUF token_type: 1 normal .. 6 byte); absent means all normal. */
  enum gguf_value_type type;
  const void *data;
  int rc = gguf_get_array(file, "tokenizer.ggml.token_type", &type, &count, &data, err);
  if (rc == AUG_ENOTFOUND) {
    memset(tok->attr, ATTR_NORMAL, (size_t)n);
  } else if (rc < 0) {
    return rc;
  } else {
    if ((type != GGUF_TYPE_INT32 && type != GGUF_TYPE_UINT32) || count != (uint64_t)n) {
      return aug_err_set(err, AUG_EFORMAT,
                         "tokenizer: %s: tokenizer.ggml.token_type is %" PRIu64
                         " x %s, expected %" PRId32 " x int32",
                         path, count, gguf_type_name(type), n);
    }
    for (int32_t i = 0; i < n; i++) {
      int32_t t;
      memcpy(&t, (const char *)data + 4 * (size_t)i, 4);
      static const uint8_t attr_of_type[] = {
          0, ATTR_NORMAL, ATTR_UNKNOWN, ATTR_CONTROL, ATTR_USER_DEFINED, ATTR_UNUSED, ATTR_BYTE};
      tok->attr[i] = t >= 0 && t <= TOKEN_KIND_BYTE ? attr_of_type[t] : 0;
    }
  }

  if (tok->model == MODEL_SPM) {
    tok->scores = aug_calloc((size_t)n, sizeof *tok->scores);
    if (!tok->scores) return aug_err_set(err, AUG_ENOMEM, "tokenizer: out of memory for scores");
    rc = gguf_get_array(file, "tokenizer.ggml.scores", &type, &count, &data, err);
    if (rc < 0 && rc != AUG_ENOTFOUND) return rc;
    if (rc == 0) {
      if (type != GGUF_TYPE_FLOAT32 || count != (uint64_t)n) {
        return aug_err_set(err, AUG_EFORMAT,
                           "tokenizer: %s: tokenizer.ggml.scores is %" PRIu64
                           " x %s, expected %" PRId32 " x float32",
                           path, count, gguf_type_name(type), n);
      }
      memcpy(tok->scores, data, (size_t)n * sizeof *tok->scores);
    }
  }
  return 0;
}

static int load_merges(struct tokenizer *tok, const struct gguf_file *file, struct aug_err *err) {
  const char *path = gguf_path(file);
  int64_t key = gguf_find_key(file, "tokenizer.ggml.merges");
  if (key < 0) {
    return aug_err_set(err, AUG_EFORMAT,
                       "tokenizer: %s: tokenizer.ggml.merges is missing (needed "
                       "by the gpt2 tokenizer model)",
                       path);
  }
  if (gguf_kv_type(file, (size_t)key) != GGUF_TYPE_ARRAY ||
      gguf_kv_array_type(file, (size_t)key) != GGUF_TYPE_STRING) {
    return aug_err_set(err, AUG_EFORMAT,
                       "tokenizer: %s: tokenizer.ggml.merges is not an array "
                       "of strings",
                       path);
  }
  uint64_t count = gguf_kv_array_count(file, (size_t)key);
  if (count > INT32_MAX / 4) {
    return aug_err_set(err, AUG_EFORMAT,
                       "tokenizer: %s: tokenizer.ggml.merges has %" PRIu64 " entries", path, count);
  }
  tok->merge_mask = pow2_at_least((size_t)count * 3 / 2 + 1) - 1;
  tok->merges = aug_malloc((tok->merge_mask + 1) * sizeof *tok->merges);
  if (!tok->merges) return aug_err_set(err, AUG_ENOMEM, "tokenizer: out of memory for merges");
  for (size_t i = 0; i <= tok->merge_mask; i++)
    tok->merges[i].key = UINT64_MAX;
  char *joined = NULL;
  size_t joined_cap = 0;
  for (uint64_t i = 0; i < count; i++) {
    const char *s;
    size_t len;
    if (gguf_get_array_string(file, (size_t)key, i, &s, &len) < 0) {
      aug_free(joined);
      return aug_err_set(err, AUG_EFORMAT,
                         "tokenizer: %s: tokenizer.ggml.merges[%" PRIu64 "] cannot be read", path,
                         i);
    }
    /* "left right", split at the first space after the first byte (llama.cpp: find(' ', 1)). */
    const char *space = len > 1 ? memchr(s + 1, ' ', len - 1) : NULL;
    if (!space) continue;
    size_t ll = (size_t)(space - s), rl = len - ll - 1;
    int32_t left = map_find(tok, s, ll), right = map_find(tok, space + 1, rl);
    /* Merges run on token ids. A side that is not a token could only be the product of another
     * such merge; consistent vocabularies (every merge result is a token) have none. */
    if (left == TOKEN_NONE || right == TOKEN_NONE) continue;
    if (ll + rl > joined_cap) {
      size_t cap = (ll + rl) * 2;
      char *p = aug_realloc(joined, cap);
      if (!p) {
        aug_free(joined);
        return aug_err_set(err, AUG_ENOMEM, "tokenizer: out of memory for merges");
      }
      joined = p;
      joined_cap = cap;
    }
    memcpy(joined, s, ll);
    memcpy(joined + ll, space + 1, rl);
    merge_insert(tok, left, right, (int32_t)i, map_find(tok, joined, ll + rl));
  }
  aug_free(joined);
  return 0;
}

static int32_t spm_byte_token(const struct tokenizer *tok, unsigned char b) {
  char hex[8];
  snprintf(hex, sizeof hex, "<0x%02X>", b);
  int32_t id = map_find(tok, hex, 6);
  if (id == TOKEN_NONE) id = map_find(tok, (const char *)&b, 1);
  return id;
}

static int build_tables(struct tokenizer *tok, struct aug_err *err) {
  byte_mapping_init(tok);
  for (int b = 0; b < 256; b++) {
    char c = (char)b;
    tok->single_byte_token[b] = map_find(tok, &c, 1);
    tok->byte_token[b] = tok->model == MODEL_BPE
                             ? map_find(tok, tok->byte_text[b], tok->byte_text_len[b])
                             : spm_byte_token(tok, (unsigned char)b);
  }
  detect_special_tokens(tok);

  const uint8_t special_attrs = ATTR_CONTROL | ATTR_USER_DEFINED | ATTR_UNKNOWN;
  size_t n_special = 0;
  for (int32_t i = 0; i < tok->n_vocab; i++) {
    if ((tok->attr[i] & special_attrs) && tok->text_len[i] > 0) n_special++;
  }
  tok->specials = aug_malloc((n_special ? n_special : 1) * sizeof *tok->specials);
  int32_t *tmp = aug_malloc((n_special ? n_special : 1) * sizeof *tmp);
  if (!tok->specials || !tmp) {
    aug_free(tmp);
    return aug_err_set(err, AUG_ENOMEM, "tokenizer: out of memory for special tokens");
  }
  for (int32_t i = 0; i < tok->n_vocab; i++) {
    if ((tok->attr[i] & special_attrs) && tok->text_len[i] > 0)
      tok->specials[tok->n_specials++] = i;
  }
  sort_specials(tok, tok->specials, tmp, tok->n_specials);
  aug_free(tmp);

  struct bytes pool = {0};
  tok->piece_off = aug_malloc((size_t)tok->n_vocab * sizeof *tok->piece_off);
  tok->piece_len = aug_malloc((size_t)tok->n_vocab * sizeof *tok->piece_len);
  if (!tok->piece_off || !tok->piece_len) {
    return aug_err_set(err, AUG_ENOMEM, "tokenizer: out of memory for token pieces");
  }
  for (int32_t i = 0; i < tok->n_vocab; i++) {
    size_t start = pool.len;
    if (build_piece(tok, i, &pool) < 0 || pool.len > UINT32_MAX) {
      aug_free(pool.data);
      return aug_err_set(err, AUG_ENOMEM, "tokenizer: out of memory for token pieces");
    }
    tok->piece_off[i] = (uint32_t)start;
    tok->piece_len[i] = (uint32_t)(pool.len - start);
    if (pool.len - start > tok->max_piece) tok->max_piece = pool.len - start;
  }
  /* What one push can write: the piece with invalid parts as U+FFFD, plus a completed or
   * replaced held sequence (at most 3 bytes, each a U+FFFD) and the slack of a shifted start. */
  for (int32_t i = 0; i < tok->n_vocab; i++) {
    size_t written = 0, held = 0;
    utf8_emit((const unsigned char *)pool.data + tok->piece_off[i], tok->piece_len[i], false, NULL,
              SIZE_MAX, &written, &held);
    if (written + 16 > tok->max_output) tok->max_output = written + 16;
  }
  tok->piece_pool = pool.data;
  return 0;
}

void tokenizer_destroy(struct tokenizer *tok) {
  if (!tok) return;
  aug_free(tok->text_pool);
  aug_free(tok->text_off);
  aug_free(tok->text_len);
  aug_free(tok->piece_pool);
  aug_free(tok->piece_off);
  aug_free(tok->piece_len);
  aug_free(tok->attr);
  aug_free(tok->scores);
  aug_free(tok->eog);
  aug_free(tok->specials);
  aug_free(tok->map.slots);
  aug_free(tok->merges);
  aug_free(tok);
}

int tokenizer_create(const struct gguf_file *file, struct tokenizer **out, struct aug_err *err) {
  *out = NULL;
  const char *path = gguf_path(file);
  const char *model;
  size_t model_len;
  int rc = gguf_get_string(file, "tokenizer.ggml.model", &model, &model_len, err);
  if (rc == AUG_ENOTFOUND) {
    return aug_err_set(err, AUG_EFORMAT, "tokenizer: %s: tokenizer.ggml.model is missing", path);
  }
  if (rc < 0) return rc;
  struct tokenizer *tok = aug_calloc(1, sizeof *tok);
  if (!tok) return aug_err_set(err, AUG_ENOMEM, "tokenizer: out of memory");
  if (model_len == 4 && memcmp(model, "gpt2", 4) == 0) {
    tok->model = MODEL_BPE;
  } else if (model_len == 5 && memcmp(model, "llama", 5) == 0) {
    tok->model = MODEL_SPM;
  } else {
    rc = aug_err_set(err, AUG_EUNSUPPORTED,
                     "tokenizer: %s: tokenizer.ggml.model '%.*s' is not "
                     "supported (gpt2, llama)",
                     path, (int)(model_len > 64 ? 64 : model_len), model);
    goto fail;
  }

  if (tok->model == MODEL_BPE) {
    const char *pre;
    size_t pre_len;
    rc = gguf_get_string(file, "tokenizer.ggml.pre", &pre, &pre_len, err);
    if (rc == AUG_ENOTFOUND) {
      /* llama.cpp: "missing pre-tokenizer type, using: 'default'" */
      pre = "default";
      pre_len = 7;
    } else if (rc < 0) {
      goto fail;
    }
    if (tokenizer_pre_from_name(pre, pre_len, &tok->pre)) {
      snprintf(tok->pre_name, sizeof tok->pre_name, "%s", tokenizer_pre_kind_name(tok->pre));
    } else {
      /* llama.cpp refuses unknown names; we fall back to the GPT-2 split, and say so. */
      tok->pre = TOKENIZER_PRE_GPT2;
      snprintf(tok->pre_name, sizeof tok->pre_name, "gpt-2 (fallback for unknown '%.*s')",
               (int)(pre_len > 64 ? 64 : pre_len), pre);
    }
    tok->ignore_merges = tok->pre == TOKENIZER_PRE_LLAMA3;
  } else {
    snprintf(tok->pre_name, sizeof tok->pre_name, "none");
  }

  rc = load_vocab(tok, file, err);
  if (rc == 0 && tok->model == MODEL_BPE) rc = load_merges(tok, file, err);
  if (rc == 0) rc = load_special_ids(tok, file, err);
  if (rc == 0) rc = build_tables(tok, err);
  if (rc < 0) goto fail;

  /* The newline token: the first id of "\n" (BPE) or its byte token (SPM), else padding. */
  if (tok->model == MODEL_SPM) {
    tok->special.nl =
        tok->byte_token['\n'] != TOKEN_NONE ? tok->byte_token['\n'] : tok->special.pad;
  } else {
    int32_t ids[4];
    size_t n = 0;
    struct tokenize_options o = {false, false};
    rc = tokenizer_encode(tok, "\n", 1, o, ids, 4, &n, err);
    if (rc < 0) goto fail;
    tok->special.nl = n > 0 ? ids[0] : tok->special.pad;
  }
  *out = tok;
  return 0;
fail:
  tokenizer_destroy(tok);
  return rc;
}

/* ---- encoding -------------------------------------------------------------------------------- */

/* Per-call scratch, sized by the text: no allocation per token or word beyond growth. */
struct fragment {
  size_t start, len;
  int32_t token; /* TOKEN_NONE for raw text */
};

struct symbol {
  int32_t prev, next;
  int32_t id;     /* BPE: current token id or TOKEN_NONE */
  uint32_t start; /* byte offset in the word */
  uint32_t len;   /* bytes; 0 once merged into the left neighbour */
};

struct bigram {
  float score;  /* SPM */
  int32_t rank; /* BPE */
  int32_t left, right;
  int32_t left_id, right_id; /* BPE: ids when pushed, to recognise stale entries */
  uint32_t size;             /* SPM: bytes when pushed */
};

/* Buffers that grow to the largest text seen; kept between calls in a struct tokenizer_scratch. */
struct tokenizer_scratch {
  struct fragment *frags, *frags2;
  size_t n_frags, frags_cap, frags2_cap;
  uint32_t *cps, *ends, *tmp;
  uint8_t *flags;
  size_t cps_cap;
  char *word; /* raw bytes of the current word (SPM: the escaped fragment) */
  size_t word_cap;
  char *mapped; /* byte-level text of the current word (llama3 whole-word lookup) */
  size_t mapped_cap;
  struct symbol *syms;
  struct bigram *heap;
  size_t syms_cap, heap_cap;
};

struct encode_state {
  const struct tokenizer *tok;
  int32_t *ids;
  size_t cap, n;
  struct tokenizer_scratch *b;
};

static void emit(struct encode_state *st, int32_t id) {
  if (st->n < st->cap) st->ids[st->n] = id;
  st->n++;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t n = *cap ? *cap : 64;
  while (n < need)
    n *= 2;
  void *q = aug_realloc(*p, n * elem);
  if (!q) return AUG_ENOMEM;
  *p = q;
  *cap = n;
  return 0;
}

static int reserve_symbols(struct encode_state *st, size_t n) {
  size_t cap = st->b->syms_cap;
  if (grow((void **)&st->b->syms, &cap, n, sizeof *st->b->syms) < 0) return AUG_ENOMEM;
  st->b->syms_cap = cap;
  /* each merge pushes at most two bigrams: n - 1 initial + 2 (n - 1) */
  cap = st->b->heap_cap;
  if (grow((void **)&st->b->heap, &cap, 3 * n + 1, sizeof *st->b->heap) < 0) return AUG_ENOMEM;
  st->b->heap_cap = cap;
  return 0;
}

/* Min-heap on (rank, left) for BPE; for SPM on (-score, left). */
static bool bigram_before(const struct bigram *a, const struct bigram *b, bool spm) {
  if (spm) {
    if (a->score != b->score) return a->score > b->score;
  } else if (a->rank != b->rank) {
    return a->rank < b->rank;
  }
  return a->left < b->left;
}

static void heap_push(struct bigram *heap, size_t *n, struct bigram b, bool spm) {
  size_t i = (*n)++;
  while (i > 0) {
    size_t parent = (i - 1) / 2;
    if (!bigram_before(&b, &heap[parent], spm)) break;
    heap[i] = heap[parent];
    i = parent;
  }
  heap[i] = b;
}

static struct bigram heap_pop(struct bigram *heap, size_t *n, bool spm) {
  struct bigram top = heap[0];
  struct bigram last = heap[--(*n)];
  size_t i = 0;
  for (;;) {
    size_t child = 2 * i + 1;
    if (child >= *n) break;
    if (child + 1 < *n && bigram_before(&heap[child + 1], &heap[child], spm)) child++;
    if (!bigram_before(&heap[child], &last, spm)) break;
    heap[i] = heap[child];
    i = child;
  }
  if (*n > 0) heap[i] = last;
  return top;
}

static void bpe_push_pair(const struct tokenizer *tok, struct symbol *syms, struct bigram *heap,
                          size_t *n_heap, int32_t left, int32_t right) {
  if (left < 0 || right < 0) return;
  int32_t lid = syms[left].id, rid = syms[right].id;
  if (lid < 0 || rid < 0) return;
  const struct merge_slot *m = merge_find(tok, lid, rid);
  if (!m) return;
  struct bigram b = {
      .rank = m->rank, .left = left, .right = right, .left_id = lid, .right_id = rid};
  heap_push(heap, n_heap, b, false);
}

/* Emits a symbol whose text is not in the vocabulary: each byte of its byte-level text that is
 * itself a one-byte token (llama.cpp's fallback in llm_tokenizer_bpe_session::tokenize). */
static void bpe_emit_fallback(struct encode_state *st, const unsigned char *bytes, size_t n) {
  const struct tokenizer *tok = st->tok;
  for (size_t i = 0; i < n; i++) {
    for (size_t j = 0; j < tok->byte_text_len[bytes[i]]; j++) {
      int32_t id = tok->single_byte_token[(unsigned char)tok->byte_text[bytes[i]][j]];
      if (id != TOKEN_NONE) emit(st, id);
    }
  }
}

/* BPE over one pre-tokenized word (raw bytes). Merges the adjacent pair of lowest rank, leftmost
 * first, until none is left (llm_tokenizer_bpe_session). */
static int bpe_word(struct encode_state *st, const unsigned char *bytes, size_t n) {
  const struct tokenizer *tok = st->tok;
  if (n == 1) {
    int32_t id = tok->byte_token[bytes[0]];
    if (id != TOKEN_NONE)
      emit(st, id);
    else
      bpe_emit_fallback(st, bytes, 1);
    return 0;
  }
  if (tok->ignore_merges) {
    /* llama3: a word that is a token as a whole is not merged piecewise */
    if (grow((void **)&st->b->mapped, &st->b->mapped_cap, 2 * n, 1) < 0) return AUG_ENOMEM;
    size_t len = 0;
    for (size_t i = 0; i < n; i++) {
      memcpy(st->b->mapped + len, tok->byte_text[bytes[i]], tok->byte_text_len[bytes[i]]);
      len += tok->byte_text_len[bytes[i]];
    }
    int32_t id = map_find(tok, st->b->mapped, len);
    if (id != TOKEN_NONE) {
      emit(st, id);
      return 0;
    }
  }
  if (reserve_symbols(st, n) < 0) return AUG_ENOMEM;
  struct symbol *syms = st->b->syms;
  struct bigram *heap = st->b->heap;
  size_t n_heap = 0;
  for (size_t i = 0; i < n; i++) {
    syms[i] = (struct symbol){.prev = (int32_t)i - 1,
                              .next = i + 1 < n ? (int32_t)i + 1 : -1,
                              .id = tok->byte_token[bytes[i]],
                              .start = (uint32_t)i,
                              .len = 1};
  }
  for (size_t i = 1; i < n; i++)
    bpe_push_pair(tok, syms, heap, &n_heap, (int32_t)i - 1, (int32_t)i);
  while (n_heap > 0) {
    struct bigram b = heap_pop(heap, &n_heap, false);
    struct symbol *l = &syms[b.left], *r = &syms[b.right];
    if (l->len == 0 || r->len == 0 || l->next != b.right || l->id != b.left_id ||
        r->id != b.right_id) {
      continue; /* stale: one side has changed since the pair was queued */
    }
    const struct merge_slot *m = merge_find(tok, b.left_id, b.right_id);
    l->id = m->result;
    l->len += r->len;
    r->len = 0;
    l->next = r->next;
    if (r->next >= 0) syms[r->next].prev = b.left;
    bpe_push_pair(tok, syms, heap, &n_heap, l->prev, b.left);
    bpe_push_pair(tok, syms, heap, &n_heap, b.left, l->next);
  }
  for (int32_t i = 0; i >= 0; i = syms[i].next) {
    if (syms[i].id != TOKEN_NONE)
      emit(st, syms[i].id);
    else
      bpe_emit_fallback(st, bytes + syms[i].start, syms[i].len);
  }
  return 0;
}

static int bpe_fragment(struct encode_state *st, const char *text, size_t len) {
  const struct tokenizer *tok = st->tok;
  size_t cap = st->b->cps_cap;
  if (len > cap) {
    size_t n = cap ? cap : 256;
    while (n < len)
      n *= 2;
    uint32_t *cps = aug_realloc(st->b->cps, n * sizeof *cps);
    if (!cps) return AUG_ENOMEM;
    st->b->cps = cps;
    uint32_t *ends = aug_realloc(st->b->ends, n * sizeof *ends);
    if (!ends) return AUG_ENOMEM;
    st->b->ends = ends;
    uint32_t *tmp = aug_realloc(st->b->tmp, n * sizeof *tmp);
    if (!tmp) return AUG_ENOMEM;
    st->b->tmp = tmp;
    uint8_t *flags = aug_realloc(st->b->flags, n);
    if (!flags) return AUG_ENOMEM;
    st->b->flags = flags;
    st->b->cps_cap = n;
  }
  /* Codepoints as llama.cpp sees them: malformed bytes become U+FFFD. */
  size_t n_cps = 0;
  for (size_t pos = 0; pos < len;) {
    uint32_t cp = unicode_decode_utf8(text, len, &pos);
    st->b->cps[n_cps] = cp;
    st->b->flags[n_cps] = (uint8_t)unicode_flags(cp);
    n_cps++;
  }
  size_t n_words =
      tokenizer_pre_split(tok->pre, st->b->cps, st->b->flags, n_cps, st->b->ends, st->b->tmp);
  size_t start = 0;
  for (size_t w = 0; w < n_words; w++) {
    size_t end = st->b->ends[w];
    /* The word's bytes are its codepoints re-encoded (so U+FFFD stands for a malformed byte). */
    if (grow((void **)&st->b->word, &st->b->word_cap, 4 * (end - start), 1) < 0) return AUG_ENOMEM;
    unsigned char *bytes = (unsigned char *)st->b->word;
    size_t nb = 0;
    for (size_t i = start; i < end; i++) {
      nb += unicode_encode_utf8(st->b->cps[i], (char *)bytes + nb);
    }
    int rc = bpe_word(st, bytes, nb);
    if (rc < 0) return rc;
    start = end;
  }
  return 0;
}

/* SentencePiece BPE over one fragment (llm_tokenizer_spm_session): spaces become U+2581, symbols
 * start as UTF-8 characters and the pair whose merged text has the highest score is merged first.
 */
static int spm_fragment(struct encode_state *st, const char *text, size_t len, bool prefix_space) {
  const struct tokenizer *tok = st->tok;
  size_t need = 3 * (len + 1);
  if (grow((void **)&st->b->word, &st->b->word_cap, need, 1) < 0) return AUG_ENOMEM;
  char *buf = st->b->word;
  size_t n = 0;
  if (prefix_space) {
    memcpy(buf, "\xE2\x96\x81", 3);
    n = 3;
  }
  for (size_t i = 0; i < len; i++) {
    if (text[i] == ' ') {
      memcpy(buf + n, "\xE2\x96\x81", 3);
      n += 3;
    } else {
      buf[n++] = text[i];
    }
  }
  if (n == 0) return 0;
  if (reserve_symbols(st, n) < 0) return AUG_ENOMEM;
  struct symbol *syms = st->b->syms;
  struct bigram *heap = st->b->heap;
  size_t n_heap = 0, n_syms = 0;
  for (size_t off = 0; off < n;) {
    size_t l = unicode_utf8_len((unsigned char)buf[off]);
    if (l > n - off) l = n - off;
    syms[n_syms] = (struct symbol){.prev = (int32_t)n_syms - 1,
                                   .next = -1,
                                   .id = TOKEN_NONE,
                                   .start = (uint32_t)off,
                                   .len = (uint32_t)l};
    if (n_syms > 0) syms[n_syms - 1].next = (int32_t)n_syms;
    n_syms++;
    off += l;
  }
#define SPM_PUSH(L, R)                                                                             \
  do {                                                                                             \
    int32_t l_ = (L), r_ = (R);                                                                    \
    if (l_ >= 0 && r_ >= 0) {                                                                      \
      uint32_t size_ = syms[l_].len + syms[r_].len;                                                \
      int32_t id_ = map_find(tok, buf + syms[l_].start, size_);                                    \
      if (id_ != TOKEN_NONE) {                                                                     \
        struct bigram b_ = {.score = tok->scores[id_], .left = l_, .right = r_, .size = size_};    \
        heap_push(heap, &n_heap, b_, true);                                                        \
      }                                                                                            \
    }                                                                                              \
  } while (0)
  for (size_t i = 1; i < n_syms; i++)
    SPM_PUSH((int32_t)i - 1, (int32_t)i);
  while (n_heap > 0) {
    struct bigram b = heap_pop(heap, &n_heap, true);
    struct symbol *l = &syms[b.left], *r = &syms[b.right];
    if (l->len == 0 || r->len == 0 || l->len + r->len != b.size) continue;
    l->len += r->len;
    r->len = 0;
    l->next = r->next;
    if (r->next >= 0) syms[r->next].prev = b.left;
    SPM_PUSH(l->prev, b.left);
    SPM_PUSH(b.left, l->next);
  }
#undef SPM_PUSH
  /* Every merged symbol is a vocabulary entry; what is left unmerged and unknown goes out as
   * byte tokens (llama.cpp's resegment). */
  for (int32_t i = 0; i >= 0; i = syms[i].next) {
    int32_t id = map_find(tok, buf + syms[i].start, syms[i].len);
    if (id != TOKEN_NONE) {
      emit(st, id);
      continue;
    }
    for (uint32_t j = 0; j < syms[i].len; j++) {
      int32_t b = tok->byte_token[(unsigned char)buf[syms[i].start + j]];
      if (b == TOKEN_NONE) b = tok->special.unk;
      if (b != TOKEN_NONE) emit(st, b);
    }
  }
  return 0;
}

/* Splits the text at occurrences of special-token texts, longest first, the way llama.cpp's
 * tokenizer_st_partition does: one token at a time over every remaining raw fragment. Without
 * parse_special only user-defined tokens are split out. */
static int partition(struct encode_state *st, const char *text, size_t len, bool parse_special) {
  const struct tokenizer *tok = st->tok;
  if (grow((void **)&st->b->frags, &st->b->frags_cap, 1, sizeof *st->b->frags) < 0)
    return AUG_ENOMEM;
  st->b->frags[0] = (struct fragment){0, len, TOKEN_NONE};
  st->b->n_frags = 1;
  for (size_t s = 0; s < tok->n_specials; s++) {
    int32_t id = tok->specials[s];
    /* without parse_special, user-defined tokens are still split out (llama.cpp follows the
     * Hugging Face tokenizers here) */
    if (!parse_special && attr_is_special(tok->attr[id])) continue;
    const char *needle = tok->text_pool + tok->text_off[id];
    size_t nlen = tok->text_len[id];
    /* Most texts are absent: look before copying the fragment list. */
    bool found = false;
    for (size_t f = 0; f < st->b->n_frags && !found; f++) {
      const struct fragment *fr = &st->b->frags[f];
      found = fr->token == TOKEN_NONE && fr->len >= nlen &&
              memmem(text + fr->start, fr->len, needle, nlen) != NULL;
    }
    if (!found) continue;
    size_t n2 = 0;
    for (size_t f = 0; f < st->b->n_frags; f++) {
      struct fragment fr = st->b->frags[f];
      /* at most 2 * matches + 1 pieces; matches <= len / nlen */
      size_t most = fr.token == TOKEN_NONE ? 2 * (fr.len / nlen) + 1 : 1;
      if (grow((void **)&st->b->frags2, &st->b->frags2_cap, n2 + most, sizeof *st->b->frags2) < 0) {
        return AUG_ENOMEM;
      }
      if (fr.token != TOKEN_NONE) {
        st->b->frags2[n2++] = fr;
        continue;
      }
      size_t pos = fr.start, end = fr.start + fr.len;
      for (;;) {
        const char *m = end - pos >= nlen ? memmem(text + pos, end - pos, needle, nlen) : NULL;
        if (!m) break;
        size_t at = (size_t)(m - text);
        if (at > pos) st->b->frags2[n2++] = (struct fragment){pos, at - pos, TOKEN_NONE};
        st->b->frags2[n2++] = (struct fragment){at, nlen, id};
        pos = at + nlen;
      }
      if (pos < end) st->b->frags2[n2++] = (struct fragment){pos, end - pos, TOKEN_NONE};
    }
    struct fragment *t = st->b->frags;
    st->b->frags = st->b->frags2;
    st->b->frags2 = t;
    size_t c = st->b->frags_cap;
    st->b->frags_cap = st->b->frags2_cap;
    st->b->frags2_cap = c;
    st->b->n_frags = n2;
  }
  return 0;
}

static void scratch_release(struct tokenizer_scratch *b) {
  aug_free(b->frags);
  aug_free(b->frags2);
  aug_free(b->cps);
  aug_free(b->ends);
  aug_free(b->tmp);
  aug_free(b->flags);
  aug_free(b->word);
  aug_free(b->mapped);
  aug_free(b->syms);
  aug_free(b->heap);
}

int tokenizer_scratch_create(struct tokenizer_scratch **out) {
  *out = aug_calloc(1, sizeof **out);
  return *out ? 0 : AUG_ENOMEM;
}

void tokenizer_scratch_destroy(struct tokenizer_scratch *scratch) {
  if (!scratch) return;
  scratch_release(scratch);
  aug_free(scratch);
}

int tokenizer_encode(const struct tokenizer *tok, const char *text, size_t len,
                     struct tokenize_options opts, int32_t *ids, size_t cap, size_t *n_tokens,
                     struct aug_err *err) {
  struct tokenizer_scratch scratch = {0};
  int rc = tokenizer_encode_scratch(tok, &scratch, text, len, opts, ids, cap, n_tokens, err);
  scratch_release(&scratch);
  return rc;
}

int tokenizer_encode_scratch(const struct tokenizer *tok, struct tokenizer_scratch *scratch,
                             const char *text, size_t len, struct tokenize_options opts,
                             int32_t *ids, size_t cap, size_t *n_tokens, struct aug_err *err) {
  *n_tokens = 0;
  if (!text && len > 0) return aug_err_set(err, AUG_EINVAL, "tokenizer: text is NULL");
  if (len > UINT32_MAX / 4) {
    return aug_err_set(err, AUG_ERANGE, "tokenizer: text of %zu bytes is too long (max %u)", len,
                       UINT32_MAX / 4);
  }
  struct encode_state st = {.tok = tok, .ids = ids, .cap = cap, .b = scratch};
  const struct tokenizer_special *sp = &tok->special;
  int rc = 0;
  if (opts.add_special && sp->add_bos) emit(&st, sp->bos);
  if (len > 0) rc = partition(&st, text, len, opts.parse_special);
  bool prev_special = true; /* SPM: the first fragment gets the dummy prefix space */
  for (size_t f = 0; rc == 0 && f < scratch->n_frags && len > 0; f++) {
    struct fragment fr = scratch->frags[f];
    if (fr.token != TOKEN_NONE) {
      emit(&st, fr.token);
      prev_special = true;
    } else if (tok->model == MODEL_BPE) {
      rc = bpe_fragment(&st, text + fr.start, fr.len);
    } else {
      rc = spm_fragment(&st, text + fr.start, fr.len, tok->add_space_prefix && prev_special);
      prev_special = false;
    }
  }
  if (rc == 0 && opts.add_special && sp->add_eos) emit(&st, sp->eos);
  if (rc < 0) {
    return aug_err_set(err, rc, "tokenizer: out of memory encoding %zu bytes", len);
  }
  *n_tokens = st.n;
  if (st.n > cap) {
    return aug_err_set(err, AUG_ERANGE,
                       "tokenizer: the text needs %zu tokens, the buffer holds %zu", st.n, cap);
  }
  return 0;
}

/* ---- streaming detokenizer ------------------------------------------------------------------- */

void detokenizer_init(struct detokenizer *d) {
  d->n_pending = 0;
}

/* Writes the valid UTF-8 of s[0..n) to out (only counts when out is NULL), U+FFFD for invalid
 * parts; with hold, an incomplete sequence at the end is not written and its length goes to
 * *held. Returns 0, or AUG_ERANGE when cap is too small (nothing is then meaningful). */
static int utf8_emit(const unsigned char *s, size_t n, bool hold, char *out, size_t cap,
                     size_t *written, size_t *held) {
  size_t i = 0, w = *written;
  *held = 0;
  while (i < n) {
    int k = unicode_utf8_check(s + i, n - i);
    if (k == 0) {
      if (hold) {
        *held = n - i;
        break;
      }
      k = -(int)(n - i); /* incomplete at the end of the stream */
    }
    if (k > 0) {
      if (w + (size_t)k > cap) return AUG_ERANGE;
      if (out) memcpy(out + w, s + i, (size_t)k);
      w += (size_t)k;
      i += (size_t)k;
    } else {
      if (w + 3 > cap) return AUG_ERANGE;
      if (out) memcpy(out + w, "\xEF\xBF\xBD", 3);
      w += 3;
      i += (size_t)-k;
    }
  }
  *written = w;
  return 0;
}

int detokenizer_push(struct detokenizer *d, const struct tokenizer *tok, int32_t id, bool special,
                     char *out, size_t cap) {
  if (id < 0 || id >= tok->n_vocab) return AUG_ERANGE;
  const unsigned char *piece = (const unsigned char *)tok->piece_pool + tok->piece_off[id];
  size_t n = tok->piece_len[id];
  if (!special && attr_is_special(tok->attr[id])) n = 0;
  size_t written = 0, held = 0, used = 0;
  unsigned char joined[sizeof d->pending + 4];
  size_t n_pending = d->n_pending;
  if (n_pending > 0) {
    /* Finish the held sequence with the first bytes of this piece. */
    size_t take = n < 4 ? n : 4;
    memcpy(joined, d->pending, n_pending);
    memcpy(joined + n_pending, piece, take);
    size_t total = n_pending + take, i = 0;
    while (i < n_pending) {
      int k = unicode_utf8_check(joined + i, total - i);
      if (k == 0) {
        if (total - i > sizeof d->pending) return AUG_ERANGE; /* cannot happen: < 4 bytes */
        /* still incomplete: the whole piece joins the pending bytes */
        unsigned char keep[sizeof d->pending];
        memcpy(keep, joined + i, total - i);
        if (i > 0) {
          int rc = utf8_emit(joined, i, false, out, cap, &written, &held);
          if (rc < 0) return rc;
        }
        memcpy(d->pending, keep, total - i);
        d->n_pending = total - i;
        return (int)written;
      }
      size_t step = k > 0 ? (size_t)k : (size_t)-k;
      i += step;
    }
    int rc = utf8_emit(joined, i, false, out, cap, &written, &held);
    if (rc < 0) return rc;
    used = i - n_pending;
  }
  int rc = utf8_emit(piece + used, n - used, true, out, cap, &written, &held);
  if (rc < 0) return rc;
  memcpy(d->pending, piece + n - held, held);
  d->n_pending = held;
  return (int)written;
}

int detokenizer_flush(struct detokenizer *d, char *out, size_t cap) {
  size_t written = 0, held = 0;
  int rc = utf8_emit(d->pending, d->n_pending, false, out, cap, &written, &held);
  if (rc < 0) return rc;
  d->n_pending = 0;
  return (int)written;
}
