/* libFuzzer target for the tokenizer: the first input byte picks a vocabulary (small byte-level
 * BPE vocabularies under each pre-tokenizer, a SentencePiece one, and the real model when
 * AUGURY_TEST_MODEL names one), the rest is text. Every input must encode with parse_special off
 * and on, report AUG_ERANGE with the same count for a short buffer, yield ids in range, and for
 * valid UTF-8 decode back to the input (the small byte-level vocabularies), through pieces and
 * through the streaming detokenizer. Seeds: tests/fuzz/fuzz_tokenizer.seeds; dictionary:
 * fuzz_tokenizer.dict. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/gguf.h"
#include "engine/tokenizer.h"
#include "engine/unicode.h"

#define CHECK(cond)                                                                                \
  do {                                                                                             \
    if (!(cond)) __builtin_trap();                                                                 \
  } while (0)

static const char *const pres[] = {"qwen2",          "llama-bpe",    "gpt-2",    "default",
                                   "deepseek-coder", "deepseek-llm", "starcoder"};
#define N_PRES (sizeof pres / sizeof pres[0])
#define N_VOCABS (N_PRES + 2) /* + SentencePiece + the real model */

struct vocab {
  struct gguf_file *file;
  struct tokenizer *tok;
  bool byte_level;
};

/* Harness state, built on first use (libFuzzer has no other place for it). */
static struct vocab vocabs[N_VOCABS];

static struct tokenizer *open_path(const char *path, struct gguf_file **file) {
  struct aug_err err;
  struct gguf_open_params params = gguf_open_params_default();
  CHECK(gguf_open(path, &params, file, &err) == 0);
  struct tokenizer *tok;
  CHECK(tokenizer_create(*file, &tok, &err) == 0);
  return tok;
}

static void write_and_open(struct gguf_writer *w, struct vocab *v) {
  struct aug_err err;
  char path[64];
  snprintf(path, sizeof path, "/tmp/fuzz-tokenizer-%d-XXXXXX", (int)getpid());
  int fd = mkstemp(path);
  CHECK(fd >= 0);
  close(fd);
  CHECK(gguf_writer_write(w, path, &err) == 0);
  gguf_writer_destroy(w);
  v->tok = open_path(path, &v->file);
  unlink(path);
}

/* 256 byte-level characters, merges making a few words, a control and a user-defined token. */
static void build_bpe(struct vocab *v, const char *pre) {
  static char texts[256][3];
  const char *strs[256 + 8];
  size_t lens[256 + 8];
  int32_t types[256 + 8];
  int next = 0;
  for (int b = 0; b < 256; b++) {
    bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE;
    unsigned cp = printable ? (unsigned)b : 256u + (unsigned)next++;
    lens[b] = unicode_encode_utf8(cp, texts[b]);
    strs[b] = texts[b];
    types[b] = 1;
  }
  const char *extra[] = {
      "in", "\xC4\xA0t", "he", "\xC4\xA0the", "int", "\xC4\xA0\xC4\xA0", "<|endoftext|>", "<tool>"};
  const int32_t extra_types[] = {1, 1, 1, 1, 1, 1, 3, 4};
  for (int i = 0; i < 8; i++) {
    strs[256 + i] = extra[i];
    lens[256 + i] = strlen(extra[i]);
    types[256 + i] = extra_types[i];
  }
  const char *merges[] = {"i n", "\xC4\xA0 t", "h e", "\xC4\xA0t he", "in t", "\xC4\xA0 \xC4\xA0"};
  size_t merge_lens[6];
  for (int i = 0; i < 6; i++)
    merge_lens[i] = strlen(merges[i]);
  struct aug_err err;
  struct gguf_writer *w;
  CHECK(gguf_writer_create(&w, &err) == 0);
  CHECK(gguf_writer_add_string(w, "tokenizer.ggml.model", "gpt2", 4) == 0);
  CHECK(gguf_writer_add_string(w, "tokenizer.ggml.pre", pre, strlen(pre)) == 0);
  CHECK(gguf_writer_add_string_array(w, "tokenizer.ggml.tokens", strs, lens, 264) == 0);
  CHECK(gguf_writer_add_array(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, 264) == 0);
  CHECK(gguf_writer_add_string_array(w, "tokenizer.ggml.merges", merges, merge_lens, 6) == 0);
  CHECK(gguf_writer_add_uint32(w, "tokenizer.ggml.bos_token_id", 262) == 0);
  CHECK(gguf_writer_add_bool(w, "tokenizer.ggml.add_bos_token", false) == 0);
  write_and_open(w, v);
  v->byte_level = true;
}

static void build_spm(struct vocab *v) {
  static char bytes[256][8];
  const char *strs[3 + 256 + 6];
  size_t lens[3 + 256 + 6];
  int32_t types[3 + 256 + 6];
  float scores[3 + 256 + 6];
  const char *head[] = {"<unk>", "<s>", "</s>"};
  for (int i = 0; i < 3; i++) {
    strs[i] = head[i];
    types[i] = i == 0 ? 2 : 3;
    scores[i] = 0;
  }
  for (int b = 0; b < 256; b++) {
    snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
    strs[3 + b] = bytes[b];
    types[3 + b] = 6;
    scores[3 + b] = 0;
  }
  const char *pieces[] = {"\xE2\x96\x81",
                          "a",
                          "b",
                          "ab",
                          "\xE2\x96\x81"
                          "a",
                          "\xE2\x96\x81"
                          "ab"};
  for (int i = 0; i < 6; i++) {
    strs[259 + i] = pieces[i];
    types[259 + i] = 1;
    scores[259 + i] = -(float)i;
  }
  for (int i = 0; i < 265; i++)
    lens[i] = strlen(strs[i]);
  struct aug_err err;
  struct gguf_writer *w;
  CHECK(gguf_writer_create(&w, &err) == 0);
  CHECK(gguf_writer_add_string(w, "tokenizer.ggml.model", "llama", 5) == 0);
  CHECK(gguf_writer_add_string_array(w, "tokenizer.ggml.tokens", strs, lens, 265) == 0);
  CHECK(gguf_writer_add_array(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, 265) == 0);
  CHECK(gguf_writer_add_array(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, 265) == 0);
  write_and_open(w, v);
  v->byte_level = false;
}

static void init(void) {
  static bool done;
  if (done) return;
  done = true;
  for (size_t i = 0; i < N_PRES; i++)
    build_bpe(&vocabs[i], pres[i]);
  build_spm(&vocabs[N_PRES]);
  const char *model = getenv("AUGURY_TEST_MODEL");
  if (model && *model) {
    /* no round-trip check here: llama.cpp's vocabulary rules can make a normal token control
     * (e.g. Qwen's "</s>"), whose text then renders empty */
    vocabs[N_PRES + 1].tok = open_path(model, &vocabs[N_PRES + 1].file);
  }
}

static bool valid_utf8(const unsigned char *s, size_t n) {
  for (size_t i = 0; i < n;) {
    int k = unicode_utf8_check(s + i, n - i);
    if (k <= 0) return false;
    i += (size_t)k;
  }
  return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  init();
  if (size < 1) return 0;
  const struct vocab *v = &vocabs[data[0] % N_VOCABS];
  if (!v->tok) v = &vocabs[0];
  const char *text = (const char *)data + 1;
  size_t len = size - 1;
  size_t cap = len + 4;
  int32_t *ids = malloc(cap * sizeof *ids);
  CHECK(ids);
  struct aug_err err;
  size_t n = 0, n_plain = 0;
  int32_t n_vocab = tokenizer_vocab_size(v->tok);
  for (int special = 1; special >= 0; special--) {
    struct tokenize_options o = {.add_special = special, .parse_special = special};
    int rc = tokenizer_encode(v->tok, text, len, o, ids, cap, &n, &err);
    if (rc == AUG_ERANGE) {
      cap = n;
      ids = realloc(ids, (cap ? cap : 1) * sizeof *ids);
      CHECK(ids);
      rc = tokenizer_encode(v->tok, text, len, o, ids, cap, &n, &err);
    }
    CHECK(rc == 0);
    for (size_t i = 0; i < n; i++)
      CHECK(ids[i] >= 0 && ids[i] < n_vocab);
    if (n > 0) {
      size_t n_short;
      int32_t one;
      CHECK(tokenizer_encode(v->tok, text, len, o, &one, 0, &n_short, &err) == AUG_ERANGE);
      CHECK(n_short == n);
    }
    n_plain = n;
  }
  /* ids now hold the parse_special-off encoding */
  if (v->byte_level && valid_utf8((const unsigned char *)text, len)) {
    size_t out_cap = len + detokenizer_max_output(v->tok);
    char *out = malloc(out_cap), *streamed = malloc(out_cap);
    CHECK(out && streamed);
    size_t o_len = 0, s_len = 0;
    struct detokenizer d;
    detokenizer_init(&d);
    for (size_t i = 0; i < n_plain; i++) {
      int k = tokenizer_token_bytes(v->tok, ids[i], false, out + o_len, out_cap - o_len);
      CHECK(k >= 0 && o_len + (size_t)k <= len);
      o_len += (size_t)k;
      int w = detokenizer_push(&d, v->tok, ids[i], false, streamed + s_len,
                               detokenizer_max_output(v->tok));
      CHECK(w >= 0);
      s_len += (size_t)w;
    }
    int w = detokenizer_flush(&d, streamed + s_len, 16);
    CHECK(w >= 0);
    s_len += (size_t)w;
    CHECK(o_len == len && memcmp(out, text, len) == 0);
    CHECK(s_len == len && memcmp(streamed, text, len) == 0);
    free(out);
    free(streamed);
  }
  free(ids);
  return 0;
}
