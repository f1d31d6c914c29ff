/* Tests for engine/synth.c: presets reduced to 2 blocks and a small vocabulary are written, pass
 * the GGUF reader and model_create with the preset's hyper-parameters, hold the tensor types
 * llama.cpp would choose and dequantize to sane values (synth_check.h); the same seed gives the
 * same file; the built-in vocabulary; --vocab-from with padding; the Q4_K_M mix on full layer
 * counts; parameter errors. test_synth_slow.c runs every preset x type. */
#include "tests/unit/engine/synth_check.h"

#include <math.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/quant.h"
#include "engine/synth.h"
#include "engine/tokenizer.h"

static char tmpdir[] = "/tmp/augury-test-synth-XXXXXX";

static int setup(void **state) {
  (void)state;
  return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  return rmdir(tmpdir);
}

/* The full preset x type matrix is in test_synth_slow.c (about 2 GB written: the 7B's f16
 * blocks alone are 880 MB); here every preset in the mixed type and the small one in every type. */
static void test_presets_q4_k_m(void **state) {
  (void)state;
  for (size_t i = 0; i < synth_preset_count(); i++)
    synth_check_one(tmpdir, synth_preset_name(i), SYNTH_TYPE_Q4_K_M);
}

static void test_small_every_type(void **state) {
  (void)state;
  for (int t = 0; t < SYNTH_TYPE_COUNT; t++)
    synth_check_one(tmpdir, "qwen2.5-coder-0.5b", (enum synth_type)t);
}

/* The 0.5B's rows fall back from IQ3 and Q5_K; the 1.5B's (1536 = 6 * 256) keep them, so its
 * IQ3_XXS, IQ3_S and Q5_K blocks are written and dequantized here. */
static void test_iq3_xs_and_q5_k_m_blocks(void **state) {
  (void)state;
  synth_check_one(tmpdir, "qwen2.5-coder-1.5b", SYNTH_TYPE_IQ3_XS);
  synth_check_one(tmpdir, "qwen2.5-coder-1.5b", SYNTH_TYPE_Q5_K_M);
}

static void read_file(const char *path, char **data, size_t *size) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  *size = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  *data = malloc(*size);
  assert_int_equal(fread(*data, 1, *size, f), *size);
  fclose(f);
}

static void test_seed_reproducible(void **state) {
  (void)state;
  struct synth_params p = synth_params_default();
  p.like = "qwen2.5-coder-0.5b";
  p.type = SYNTH_TYPE_Q4_K_M;
  p.n_layers = 1;
  p.n_vocab = 300;
  char a[256], b[256], c[256];
  snprintf(a, sizeof a, "%s/a.gguf", tmpdir);
  snprintf(b, sizeof b, "%s/b.gguf", tmpdir);
  snprintf(c, sizeof c, "%s/c.gguf", tmpdir);
  assert_int_equal(synth_write(&p, a, NULL), 0);
  assert_int_equal(synth_write(&p, b, NULL), 0);
  p.seed = 2;
  assert_int_equal(synth_write(&p, c, NULL), 0);
  char *da, *db, *dc;
  size_t na, nb, nc;
  read_file(a, &da, &na);
  read_file(b, &db, &nb);
  read_file(c, &dc, &nc);
  assert_int_equal(na, nb);
  assert_int_equal(na, nc);
  assert_memory_equal(da, db, na);
  assert_memory_not_equal(da, dc, na);
  free(da);
  free(db);
  free(dc);
  unlink(a);
  unlink(b);
  unlink(c);
}

static void test_builtin_vocab(void **state) {
  (void)state;
  struct synth_params p = synth_params_default();
  p.like = "llama-3.2-1b";
  p.type = SYNTH_TYPE_Q8_0;
  p.n_layers = 1;
  p.n_vocab = 400;
  char path[256];
  snprintf(path, sizeof path, "%s/vocab.gguf", tmpdir);
  struct aug_err err = {0};
  assert_int_equal(synth_write(&p, path, &err), 0);
  struct gguf_file *f = NULL;
  assert_int_equal(gguf_open(path, NULL, &f, &err), 0);
  const char *s;
  size_t len;
  assert_int_equal(gguf_get_string(f, "tokenizer.ggml.model", &s, &len, NULL), 0);
  assert_memory_equal(s, "gpt2", 4);
  assert_int_equal(gguf_get_string(f, "tokenizer.ggml.pre", &s, &len, NULL), 0);
  assert_memory_equal(s, "llama-bpe", 9);
  int64_t idx = gguf_find_key(f, "tokenizer.ggml.tokens");
  assert_true(idx >= 0);
  assert_int_equal(gguf_kv_array_count(f, (size_t)idx), 400);
  /* Byte 0x20 is 'Ġ' (U+0120) in GPT-2's byte-to-unicode map; byte 'A' is itself. */
  assert_int_equal(gguf_get_array_string(f, (size_t)idx, ' ', &s, &len), 0);
  assert_int_equal(len, 2);
  assert_memory_equal(s, "\xc4\xa0", 2);
  assert_int_equal(gguf_get_array_string(f, (size_t)idx, 'A', &s, &len), 0);
  assert_int_equal(len, 1);
  assert_memory_equal(s, "A", 1);
  assert_int_equal(gguf_get_array_string(f, (size_t)idx, 399, &s, &len), 0);
  assert_memory_equal(s, "[PAD399]", len);
  uint64_t fim = 0;
  assert_int_equal(gguf_get_uint(f, "tokenizer.ggml.fim_pre_token_id", &fim, NULL), 0);
  assert_int_equal(gguf_get_array_string(f, (size_t)idx, fim, &s, &len), 0);
  assert_memory_equal(s, "<|fim_prefix|>", len);
  gguf_close(f);
  unlink(path);
}

static void test_vocab_from_real_model(void **state) {
  (void)state;
  const char *src = test_model_path(TEST_MODEL_DEFAULT);
  struct synth_params p = synth_params_default();
  p.like = "qwen2.5-coder-7b"; /* 152064 tokens: the 151936 of the source are padded */
  p.type = SYNTH_TYPE_Q4_0;
  p.n_layers = 1;
  p.vocab_from = src;
  char path[256];
  snprintf(path, sizeof path, "%s/vocab-from.gguf", tmpdir);
  struct aug_err err = {0};
  if (synth_write(&p, path, &err) != 0) fail_msg("%s", err.msg);
  struct gguf_file *f = NULL, *s = NULL;
  assert_int_equal(gguf_open(path, NULL, &f, &err), 0);
  assert_int_equal(gguf_open(src, NULL, &s, &err), 0);
  int64_t idx = gguf_find_key(f, "tokenizer.ggml.tokens");
  assert_int_equal(gguf_kv_array_count(f, (size_t)idx), 152064);
  int64_t sidx = gguf_find_key(s, "tokenizer.ggml.tokens");
  const char *a, *b;
  size_t la, lb;
  assert_int_equal(gguf_get_array_string(f, (size_t)idx, 151643, &a, &la), 0);
  assert_int_equal(gguf_get_array_string(s, (size_t)sidx, 151643, &b, &lb), 0);
  assert_int_equal(la, lb);
  assert_memory_equal(a, b, la);
  assert_int_equal(gguf_get_array_string(f, (size_t)idx, 152063, &a, &la), 0);
  assert_memory_equal(a, "[PAD152063]", la);
  /* Every tokenizer.* key of the source is present; the merges are copied unchanged. */
  for (size_t i = 0; i < gguf_kv_count(s); i++) {
    const char *key = gguf_kv_key(s, i);
    if (strncmp(key, "tokenizer.", 10) == 0 && gguf_find_key(f, key) < 0)
      fail_msg("key %s was not copied", key);
  }
  int64_t mf = gguf_find_key(f, "tokenizer.ggml.merges"),
          ms = gguf_find_key(s, "tokenizer.ggml.merges");
  assert_int_equal(gguf_kv_array_count(f, (size_t)mf), gguf_kv_array_count(s, (size_t)ms));
  /* The tokenizer accepts the copy and encodes as it does for the source. */
  struct tokenizer *tf = NULL, *ts = NULL;
  if (tokenizer_create(f, &tf, &err) != 0) fail_msg("%s", err.msg);
  assert_int_equal(tokenizer_create(s, &ts, &err), 0);
  assert_int_equal(tokenizer_vocab_size(tf), 152064);
  const char *text = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n";
  int32_t ia[64], ib[64];
  size_t na = 0, nb = 0;
  struct tokenize_options o = {.add_special = true, .parse_special = false};
  assert_int_equal(tokenizer_encode(tf, text, strlen(text), o, ia, 64, &na, &err), 0);
  assert_int_equal(tokenizer_encode(ts, text, strlen(text), o, ib, 64, &nb, &err), 0);
  assert_int_equal(na, nb);
  assert_memory_equal(ia, ib, na * sizeof ia[0]);
  tokenizer_destroy(tf);
  tokenizer_destroy(ts);
  gguf_close(f);
  gguf_close(s);
  unlink(path);

  /* A vocabulary larger than the model's is refused. */
  p.like = "llama-3.2-1b";
  assert_int_equal(synth_write(&p, path, &err), AUG_EINVAL);
  assert_non_null(strstr(err.msg, "more than the model's 128256"));
}

struct mix_count {
  const struct model_hparams *hp;
  int q6_attn_v, q6_ffn_down, q4_other, total_2d;
};

static int count_mix(const struct model_tensor_spec *spec, void *user) {
  struct mix_count *c = user;
  uint32_t t = synth_tensor_type(SYNTH_TYPE_Q4_K_M, c->hp, spec);
  if (spec->n_dims < 2) {
    assert_int_equal(t, QUANT_F32);
    return 0;
  }
  c->total_2d++;
  if (spec->role == MODEL_TENSOR_ATTN_V && t == QUANT_Q6_K)
    c->q6_attn_v++;
  else if (spec->role == MODEL_TENSOR_FFN_DOWN && t == QUANT_Q6_K)
    c->q6_ffn_down++;
  else if (t == QUANT_Q4_K)
    c->q4_other++;
  return 0;
}

/* The Q4_K_M mix over the full 28 blocks of the 1.5B: use_more_bits picks blocks 0-2, 24-27 and
 * every third in between (5, 8, ..., 23): 14 of 28 attn_v and ffn_down get Q6_K, as in the real
 * qwen2.5-coder-1.5b-instruct-q4_k_m.gguf. */
static void test_q4_k_m_mix(void **state) {
  (void)state;
  struct synth_params p = synth_params_default();
  p.like = "qwen2.5-coder-1.5b";
  struct model_hparams hp;
  assert_int_equal(synth_hparams(&p, &hp, NULL), 0);
  assert_int_equal(hp.n_layer, 28);
  assert_int_equal(hp.n_vocab, 151936);
  struct mix_count c = {.hp = &hp};
  assert_int_equal(model_for_each_tensor_spec(&hp, count_mix, &c), 0);
  assert_int_equal(c.q6_attn_v, 14);
  assert_int_equal(c.q6_ffn_down, 14);
  /* token_embd (tied: Q6_K) + 28 * 7 matrices; all but the Q6_K ones are Q4_K */
  assert_int_equal(c.total_2d, 1 + 28 * 7);
  assert_int_equal(c.q4_other, 28 * 7 - 28);
}

struct type_count {
  enum synth_type type;
  const struct model_hparams *hp;
  int by_type[QUANT_TYPE_COUNT];
  int ffn_gate_xxs, ffn_up_xxs, total_2d;
  uint64_t bytes;
};

static int count_types(const struct model_tensor_spec *spec, void *user) {
  struct type_count *c = user;
  uint32_t t = synth_tensor_type(c->type, c->hp, spec);
  assert_true(t < QUANT_TYPE_COUNT);
  if (spec->n_dims < 2) {
    assert_int_equal(t, QUANT_F32);
    return 0;
  }
  c->total_2d++;
  c->by_type[t]++;
  c->bytes += quant_row_size(t, spec->ne[0]) * spec->ne[1] * spec->ne[2] * spec->ne[3];
  if (spec->role == MODEL_TENSOR_FFN_GATE && t == QUANT_IQ3_XXS) {
    c->ffn_gate_xxs++;
    /* the middle blocks [28/8, 7*28/8) = 3..23 */
    assert_true(spec->layer >= 3 && spec->layer < 24);
  }
  if (spec->role == MODEL_TENSOR_FFN_UP && t == QUANT_IQ3_XXS) c->ffn_up_xxs++;
  return 0;
}

/* Q5_K_M over the full 1.5B: the same 14 + 14 Q6_K tensors as Q4_K_M, the head Q6_K, the
 * rest Q5_K. */
static void test_q5_k_m_mix(void **state) {
  (void)state;
  struct synth_params p = synth_params_default();
  p.like = "qwen2.5-coder-1.5b";
  struct model_hparams hp;
  assert_int_equal(synth_hparams(&p, &hp, NULL), 0);
  struct type_count c = {.type = SYNTH_TYPE_Q5_K_M, .hp = &hp};
  assert_int_equal(model_for_each_tensor_spec(&hp, count_types, &c), 0);
  assert_int_equal(c.total_2d, 1 + 28 * 7);
  assert_int_equal(c.by_type[QUANT_Q6_K], 1 + 14 + 14);
  assert_int_equal(c.by_type[QUANT_Q5_K], 28 * 7 - 28);
}

/* IQ3_XS over the full 1.5B (llama_tensor_get_type): attn_q and attn_k IQ3_XXS (28 + 28),
 * ffn_gate and ffn_up IQ3_XXS in blocks 3..23 (21 + 21) and IQ3_S in the 7 others; attn_v Q4_K
 * (12 query heads on 2 KV heads: n_gqa 6 >= 4); attn_output and ffn_down IQ3_S; the tied head
 * Q6_K. */
static void test_iq3_xs_mix(void **state) {
  (void)state;
  struct synth_params p = synth_params_default();
  p.like = "qwen2.5-coder-1.5b";
  struct model_hparams hp;
  assert_int_equal(synth_hparams(&p, &hp, NULL), 0);
  struct type_count c = {.type = SYNTH_TYPE_IQ3_XS, .hp = &hp};
  assert_int_equal(model_for_each_tensor_spec(&hp, count_types, &c), 0);
  assert_int_equal(c.total_2d, 1 + 28 * 7);
  assert_int_equal(c.ffn_gate_xxs, 21);
  assert_int_equal(c.ffn_up_xxs, 21);
  assert_int_equal(c.by_type[QUANT_IQ3_XXS], 28 + 28 + 21 + 21);
  assert_int_equal(c.by_type[QUANT_IQ3_S], 28 + 28 + 7 + 7);
  assert_int_equal(c.by_type[QUANT_Q4_K], 28);
  assert_int_equal(c.by_type[QUANT_Q6_K], 1);

  /* The 0.5B's 896-wide rows fall back: IQ3_* to IQ4_NL, Q4_K to Q5_0, Q6_K to Q8_0; the
   * 4864-wide ffn_down rows keep IQ3_S. */
  p.like = "qwen2.5-coder-0.5b";
  assert_int_equal(synth_hparams(&p, &hp, NULL), 0);
  struct type_count s = {.type = SYNTH_TYPE_IQ3_XS, .hp = &hp};
  assert_int_equal(model_for_each_tensor_spec(&hp, count_types, &s), 0);
  assert_int_equal(s.total_2d, 1 + 24 * 7);
  assert_int_equal(s.by_type[QUANT_IQ3_S], 24);
  assert_int_equal(s.by_type[QUANT_IQ3_XXS], 0);
  assert_int_equal(s.by_type[QUANT_IQ4_NL], 24 * 5);
  assert_int_equal(s.by_type[QUANT_Q5_0], 24);
  assert_int_equal(s.by_type[QUANT_Q8_0], 1);

  /* The 7B (untied: token_embd IQ3_S, output Q6_K) comes to about 3.34 GB of tensor data, 0.71x
   * its Q4_K_M (4.68 GB, the size of the published Q4_K_M file). */
  p.like = "qwen2.5-coder-7b";
  assert_int_equal(synth_hparams(&p, &hp, NULL), 0);
  struct type_count b = {.type = SYNTH_TYPE_IQ3_XS, .hp = &hp};
  struct type_count q4 = {.type = SYNTH_TYPE_Q4_K_M, .hp = &hp};
  assert_int_equal(model_for_each_tensor_spec(&hp, count_types, &b), 0);
  assert_int_equal(model_for_each_tensor_spec(&hp, count_types, &q4), 0);
  print_message("7B: IQ3_XS %.3f GB, Q4_K_M %.3f GB\n", (double)b.bytes / 1e9,
                (double)q4.bytes / 1e9);
  assert_int_equal(b.by_type[QUANT_IQ3_S], 1 + 28 + 28 + 7 + 7);
  assert_true(q4.bytes > 4.6e9 && q4.bytes < 4.7e9);
  assert_true(b.bytes > 3.2e9 && b.bytes < 3.45e9);
  assert_int_equal(b.by_type[QUANT_Q6_K], 1);
}

struct spec_copy {
  char name[64];
  struct model_tensor_spec spec;
};

struct spec_list {
  struct spec_copy *items;
  size_t n;
};

static int collect_spec(const struct model_tensor_spec *spec, void *user) {
  struct spec_list *l = user;
  struct spec_copy *c = &l->items[l->n++];
  snprintf(c->name, sizeof c->name, "%s", spec->name);
  c->spec = *spec;
  c->spec.name = c->name;
  return 0;
}

/* synth's Q4_K_M rules reproduce the type of every tensor of the real Q4_K_M files llama.cpp
 * made. llama.cpp counts attn_v and ffn_down in file order (blk.0, blk.1, blk.10, ...), so the
 * "layer" handed to the rule is that rank, as it is the block index in synth's own files. */
static void check_real_mix(const char *path) {
  struct model *m = NULL;
  struct aug_err err = {0};
  if (model_load(path, &m, &err) != 0) fail_msg("%s", err.msg);
  size_t n = gguf_tensor_count(m->file);
  struct spec_list specs = {calloc(n, sizeof(struct spec_copy)), 0};
  assert_non_null(specs.items);
  assert_int_equal(model_for_each_tensor_spec(&m->hp, collect_spec, &specs), 0);
  assert_int_equal(specs.n, n);
  int32_t attn_v_rank = 0, ffn_down_rank = 0;
  for (size_t i = 0; i < n; i++) {
    const struct gguf_tensor *t = gguf_tensor_at(m->file, i);
    const struct spec_copy *found = NULL;
    for (size_t j = 0; j < specs.n && !found; j++)
      if (!strcmp(specs.items[j].name, t->name)) found = &specs.items[j];
    assert_non_null(found);
    struct model_tensor_spec spec = found->spec;
    if (spec.role == MODEL_TENSOR_ATTN_V) spec.layer = attn_v_rank++;
    if (spec.role == MODEL_TENSOR_FFN_DOWN) spec.layer = ffn_down_rank++;
    uint32_t want = synth_tensor_type(SYNTH_TYPE_Q4_K_M, &m->hp, &spec);
    if (want != t->type)
      fail_msg("%s: %s is %s in the real file, synth picks %s", path, t->name,
               quant_type_name(t->type), quant_type_name(want));
  }
  free(specs.items);
  model_destroy(m);
}

static void test_q4_k_m_matches_real_default(void **state) {
  (void)state;
  check_real_mix(test_model_path(TEST_MODEL_DEFAULT));
}

static void test_q4_k_m_matches_real_small(void **state) {
  (void)state;
  check_real_mix(test_model_path(TEST_MODEL_SMALL));
}

static void test_bad_params(void **state) {
  (void)state;
  struct synth_params p = synth_params_default();
  struct aug_err err = {0};
  char path[256];
  snprintf(path, sizeof path, "%s/never.gguf", tmpdir);
  p.like = "gpt-5";
  assert_int_equal(synth_write(&p, path, &err), AUG_EINVAL);
  assert_non_null(strstr(err.msg, "unknown model 'gpt-5'"));
  p = synth_params_default();
  p.n_layers = 29;
  assert_int_equal(synth_write(&p, path, &err), AUG_EINVAL);
  assert_non_null(strstr(err.msg, "has 28 layers, not 29"));
  p = synth_params_default();
  p.n_vocab = 100;
  assert_int_equal(synth_write(&p, path, &err), AUG_EINVAL);
  assert_non_null(strstr(err.msg, "built-in vocabulary needs"));
  p = synth_params_default();
  p.n_layers = 1;
  p.n_vocab = 300;
  p.vocab_from = "/nonexistent/x.gguf";
  assert_true(synth_write(&p, path, &err) < 0);
  assert_non_null(strstr(err.msg, "/nonexistent/x.gguf"));
  struct stat st;
  assert_int_equal(stat(path, &st), -1);
  enum synth_type t;
  assert_int_equal(synth_type_from_name("q4_k_m", &t), 0);
  assert_int_equal(t, SYNTH_TYPE_Q4_K_M);
  assert_int_equal(synth_type_from_name("q5_k", &t), AUG_EINVAL);
  assert_int_equal(synth_type_from_name("iq3_xs", &t), 0);
  assert_int_equal(t, SYNTH_TYPE_IQ3_XS);
  assert_int_equal(synth_type_from_name("q5_k_m", &t), 0);
  assert_int_equal(t, SYNTH_TYPE_Q5_K_M);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_presets_q4_k_m),
      cmocka_unit_test(test_small_every_type),
      cmocka_unit_test(test_iq3_xs_and_q5_k_m_blocks),
      cmocka_unit_test(test_seed_reproducible),
      cmocka_unit_test(test_builtin_vocab),
      cmocka_unit_test(test_vocab_from_real_model),
      cmocka_unit_test(test_q4_k_m_mix),
      cmocka_unit_test(test_q5_k_m_mix),
      cmocka_unit_test(test_iq3_xs_mix),
      cmocka_unit_test(test_q4_k_m_matches_real_default),
      cmocka_unit_test(test_q4_k_m_matches_real_small),
      cmocka_unit_test(test_bad_params),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
