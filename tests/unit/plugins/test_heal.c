/* Tests for plugins/heal.c with the small model's tokenizer (Qwen2.5-Coder): the vocabulary's bytes
 * match tokenizer_token_bytes and control tokens have none; the constrained argmax picks the best
 * token that starts with the text to heal or is a proper prefix of it, never a control token, and
 * heal_advance walks a heal spread over two tokens. */
#include "../test_support.h"

#include <math.h>

#include "engine/gguf.h"
#include "plugins/heal.h"

struct fixture {
  struct gguf_file *file;
  struct tokenizer *tok;
  struct heal_vocab *vocab;
  float *logits;
  int32_t n_vocab;
};

static int setup(void **state) {
  const char *path = getenv("AUGURY_TEST_MODEL_SMALL");
  *state = NULL;
  if (!path || !*path) return 0;
  struct fixture *f = calloc(1, sizeof *f);
  struct aug_err err = {0};
  struct gguf_open_params gp = gguf_open_params_default();
  if (gguf_open(path, &gp, &f->file, &err) || tokenizer_create(f->file, &f->tok, &err) ||
      heal_vocab_create(f->tok, &f->vocab, &err)) {
    fprintf(stderr, "cannot load %s: %s\n", path, err.msg);
    return -1;
  }
  f->n_vocab = tokenizer_vocab_size(f->tok);
  f->logits = calloc((size_t)f->n_vocab, sizeof *f->logits);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  if (f) {
    heal_vocab_destroy(f->vocab);
    tokenizer_destroy(f->tok);
    gguf_close(f->file);
    free(f->logits);
    free(f);
  }
  return 0;
}

static struct fixture *need(void **state) {
  if (!*state) test_model_path(TEST_MODEL_SMALL);
  return *state;
}

static int32_t id_of(struct fixture *f, const char *text) {
  int32_t ids[8];
  size_t n = 0;
  struct aug_err err = {0};
  struct tokenize_options o = {0};
  assert_int_equal(tokenizer_encode(f->tok, text, strlen(text), o, ids, 8, &n, &err), 0);
  assert_int_equal(n, 1); /* the test texts are single tokens */
  return ids[0];
}

static void test_vocab_bytes(void **state) {
  struct fixture *f = need(state);
  for (int32_t id = 0; id < f->n_vocab; id += 97) {
    size_t n = 0;
    const char *b = heal_token_bytes(f->vocab, id, &n);
    char want[256];
    int w = tokenizer_token_bytes(f->tok, id, false, want, sizeof want);
    if (tokenizer_token_kind(f->tok, id) == TOKEN_KIND_CONTROL) {
      assert_int_equal(n, 0);
    } else {
      assert_int_equal(n, (size_t)w);
      assert_memory_equal(b, want, n);
    }
  }
  size_t n = 1;
  heal_token_bytes(f->vocab, f->n_vocab, &n);
  assert_int_equal(n, 0);
  heal_token_bytes(f->vocab, -1, &n);
  assert_int_equal(n, 0);
  assert_int_equal(heal_token_bytes(f->vocab, tokenizer_find(f->tok, "<|fim_middle|>"), &n)[0],
                   '\0');
  assert_int_equal(n, 0);
}

static void test_constrained_argmax(void **state) {
  struct fixture *f = need(state);
  for (int32_t i = 0; i < f->n_vocab; i++)
    f->logits[i] = -10.0f;
  int32_t ret = id_of(f, " return"), re = id_of(f, " re"), print = id_of(f, " print");
  int32_t eos = tokenizer_find(f->tok, "<|endoftext|>");
  f->logits[print] = 9.0f; /* the unconstrained favourite does not fit " ret" */
  f->logits[eos] = 8.0f;   /* nor does a control token */
  f->logits[re] = 2.0f;    /* a proper prefix of " ret" fits */
  f->logits[ret] = 1.0f;   /* starts with " ret": fits */
  assert_int_equal(heal_argmax(f->vocab, f->logits, " ret", 4), re);
  f->logits[ret] = 3.0f;
  assert_int_equal(heal_argmax(f->vocab, f->logits, " ret", 4), ret);
  /* " re" then "t...": the heal is spread over two tokens. */
  assert_int_equal(heal_advance(f->vocab, re, 4), 1);
  assert_int_equal(heal_advance(f->vocab, ret, 4), 0);
  int32_t t = heal_argmax(f->vocab, f->logits, "t", 1);
  size_t n = 0;
  assert_true(t >= 0);
  assert_int_equal(heal_token_bytes(f->vocab, t, &n)[0], 't');
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_vocab_bytes),
      cmocka_unit_test(test_constrained_argmax),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
