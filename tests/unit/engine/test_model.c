/* Tests for engine/model.c: tiny qwen2/llama files written with the GGUF writer are accepted, and
 * each way a file can disagree with its architecture (missing tensor, wrong shape, block_count out
 * of range, head counts that do not divide, types, vocabulary size, stray tensors, missing keys)
 * is rejected with a message naming the field. Also the real models and the bad-GGUF corpus. */
#include "tests/unit/test_support.h"

#include <inttypes.h>
#include <unistd.h>

#include "engine/alloc.h"
#include "engine/model.h"
#include "engine/quant.h"

/* What a tiny test file looks like; every field can be bent to make it wrong. */
struct tiny {
  const char *arch;
  uint32_t n_layer, n_embd, n_head, n_head_kv, n_ff, n_vocab;
  uint32_t key_length; /* 0: not written */
  bool tied, rope_freqs;
  int64_t n_tokens; /* tokenizer.ggml.tokens count; -1: not written */
  bool omit_context_length;
  const char *rope_scaling_type; /* NULL: not written */
  const char *skip_tensor;       /* not written */
  const char *grow_tensor;       /* written with ne[ne_last] + 1 */
  const char *extra_tensor;      /* written in addition (1-D, F32, 16) */
  const char *retype_tensor;     /* written with retype_to */
  uint32_t retype_to;
};

static struct tiny tiny_qwen2(void) {
  return (struct tiny){.arch = "qwen2",
                       .n_layer = 2,
                       .n_embd = 64,
                       .n_head = 4,
                       .n_head_kv = 2,
                       .n_ff = 96,
                       .n_vocab = 40,
                       .tied = true,
                       .n_tokens = 40};
}

static struct tiny tiny_llama(void) {
  return (struct tiny){.arch = "llama",
                       .n_layer = 3,
                       .n_embd = 64,
                       .n_head = 8,
                       .n_head_kv = 2,
                       .n_ff = 128,
                       .n_vocab = 48,
                       .tied = false,
                       .rope_freqs = true,
                       .n_tokens = 48,
                       .key_length = 8};
}

struct writer_ctx {
  struct gguf_writer *w;
  const struct tiny *t;
};

static void add_tensor(struct gguf_writer *w, const char *name, uint32_t type, uint32_t n_dims,
                       const uint64_t *ne) {
  uint64_t rows = 1;
  for (uint32_t d = 1; d < n_dims; d++)
    rows *= ne[d];
  size_t size = quant_row_size(type, ne[0]) * rows;
  assert_true(size > 0);
  void *data = calloc(1, size);
  assert_non_null(data);
  assert_int_equal(gguf_writer_add_tensor(w, name, type, n_dims, ne, data, size), 0);
  free(data);
}

static int write_spec(const struct model_tensor_spec *spec, void *user) {
  struct writer_ctx *c = user;
  const struct tiny *t = c->t;
  if (t->skip_tensor && !strcmp(spec->name, t->skip_tensor)) return 0;
  uint64_t ne[4];
  memcpy(ne, spec->ne, sizeof ne);
  if (t->grow_tensor && !strcmp(spec->name, t->grow_tensor)) ne[spec->n_dims - 1] += 1;
  uint32_t type = QUANT_F32;
  if (t->retype_tensor && !strcmp(spec->name, t->retype_tensor)) type = t->retype_to;
  add_tensor(c->w, spec->name, type, spec->n_dims, ne);
  return 0;
}

static void key(char *buf, size_t size, const char *arch, const char *suffix) {
  snprintf(buf, size, "%s.%s", arch, suffix);
}

/* Writes t to a fresh temporary file; returns its path (caller unlinks and frees). */
static char *write_tiny(const struct tiny *t) {
  struct gguf_writer *w = NULL;
  assert_int_equal(gguf_writer_create(&w, NULL), 0);
  char k[128];
  const char *a = t->arch;
  assert_int_equal(gguf_writer_add_string(w, "general.architecture", a, strlen(a)), 0);
  key(k, sizeof k, a, "block_count");
  gguf_writer_add_uint32(w, k, t->n_layer);
  if (!t->omit_context_length) {
    key(k, sizeof k, a, "context_length");
    gguf_writer_add_uint32(w, k, 4096);
  }
  key(k, sizeof k, a, "embedding_length");
  gguf_writer_add_uint32(w, k, t->n_embd);
  key(k, sizeof k, a, "feed_forward_length");
  gguf_writer_add_uint32(w, k, t->n_ff);
  key(k, sizeof k, a, "attention.head_count");
  gguf_writer_add_uint32(w, k, t->n_head);
  key(k, sizeof k, a, "attention.head_count_kv");
  gguf_writer_add_uint32(w, k, t->n_head_kv);
  if (t->key_length) {
    key(k, sizeof k, a, "attention.key_length");
    gguf_writer_add_uint32(w, k, t->key_length);
  }
  key(k, sizeof k, a, "attention.layer_norm_rms_epsilon");
  gguf_writer_add_float32(w, k, 1e-6f);
  key(k, sizeof k, a, "rope.freq_base");
  gguf_writer_add_float32(w, k, 1e6f);
  if (t->rope_scaling_type) {
    key(k, sizeof k, a, "rope.scaling.type");
    gguf_writer_add_string(w, k, t->rope_scaling_type, strlen(t->rope_scaling_type));
    key(k, sizeof k, a, "rope.scaling.factor");
    gguf_writer_add_float32(w, k, 4.0f);
  }
  if (t->n_tokens >= 0) {
    const char **strs = calloc((size_t)t->n_tokens + 1, sizeof *strs);
    size_t *lens = calloc((size_t)t->n_tokens + 1, sizeof *lens);
    char(*texts)[24] = calloc((size_t)t->n_tokens + 1, sizeof *texts);
    for (int64_t i = 0; i < t->n_tokens; i++) {
      snprintf(texts[i], sizeof texts[i], "t%" PRId64, i);
      strs[i] = texts[i];
      lens[i] = strlen(texts[i]);
    }
    assert_int_equal(
        gguf_writer_add_string_array(w, "tokenizer.ggml.tokens", strs, lens, (uint64_t)t->n_tokens),
        0);
    free(strs);
    free(lens);
    free(texts);
  }

  struct model_hparams hp = {0};
  if (model_arch_from_name(a, strlen(a), &hp.arch) != 0) hp.arch = MODEL_ARCH_LLAMA;
  hp.n_vocab = t->n_vocab;
  hp.n_embd = t->n_embd;
  /* Out-of-range block counts are refused before any tensor is looked at: a few layers do. */
  hp.n_layer = t->n_layer < 4 ? t->n_layer : 4;
  hp.n_head = t->n_head ? t->n_head : 1;
  hp.n_head_kv = t->n_head_kv;
  hp.n_ff = t->n_ff;
  hp.head_dim = t->key_length ? t->key_length : t->n_embd / (t->n_head ? t->n_head : 1);
  hp.n_rot = hp.head_dim;
  hp.tied_output = t->tied;
  hp.has_rope_freqs = t->rope_freqs;
  hp.has_qkv_bias = hp.arch == MODEL_ARCH_QWEN2;
  struct writer_ctx ctx = {w, t};
  assert_int_equal(model_for_each_tensor_spec(&hp, write_spec, &ctx), 0);
  if (t->extra_tensor) add_tensor(w, t->extra_tensor, QUANT_F32, 1, (uint64_t[]){16, 1, 1, 1});

  char *path = strdup("/tmp/augury-test-model-XXXXXX");
  int fd = mkstemp(path);
  assert_true(fd >= 0);
  close(fd);
  struct aug_err err = {0};
  if (gguf_writer_write(w, path, &err) != 0) fail_msg("write %s: %s", path, err.msg);
  gguf_writer_destroy(w);
  return path;
}

/* Loads t; expects code (0 for success) and, on failure, substring in the message. */
static struct model *load_tiny(const struct tiny *t, int code, const char *substring) {
  char *path = write_tiny(t);
  struct model *m = NULL;
  struct aug_err err = {0};
  int rc = model_load(path, &m, &err);
  unlink(path);
  free(path);
  if (rc != code) fail_msg("model_load returned %d, expected %d (%s)", rc, code, err.msg);
  if (code == 0) {
    assert_non_null(m);
    return m;
  }
  assert_null(m);
  if (!strstr(err.msg, substring)) fail_msg("message '%s' lacks '%s'", err.msg, substring);
  return NULL;
}

static void test_qwen2_accepted(void **state) {
  (void)state;
  struct tiny t = tiny_qwen2();
  struct model *m = load_tiny(&t, 0, NULL);
  const struct model_hparams *hp = &m->hp;
  assert_int_equal(hp->arch, MODEL_ARCH_QWEN2);
  assert_string_equal(hp->arch_name, "qwen2");
  assert_int_equal(hp->n_layer, 2);
  assert_int_equal(hp->n_embd, 64);
  assert_int_equal(hp->n_head, 4);
  assert_int_equal(hp->n_head_kv, 2);
  assert_int_equal(hp->head_dim, 16);
  assert_int_equal(hp->n_rot, 16);
  assert_int_equal(hp->n_ff, 96);
  assert_int_equal(hp->n_vocab, 40);
  assert_int_equal(hp->n_ctx_train, 4096);
  assert_true(hp->rms_eps == 1e-6f);
  assert_true(hp->rope_freq_base == 1e6f);
  assert_true(hp->rope_freq_scale == 1.0f);
  assert_int_equal(hp->rope_layout, ROPE_LAYOUT_NEOX);
  assert_true(hp->tied_output);
  assert_true(hp->has_qkv_bias);
  assert_false(hp->has_rope_freqs);
  assert_ptr_equal(m->output, m->tok_embd);
  assert_null(m->rope_freqs);
  for (uint32_t i = 0; i < hp->n_layer; i++) {
    char name[64];
    snprintf(name, sizeof name, "blk.%u.attn_v.bias", i);
    assert_string_equal(m->layers[i].bv->name, name);
    snprintf(name, sizeof name, "blk.%u.ffn_down.weight", i);
    assert_string_equal(m->layers[i].ffn_down->name, name);
    assert_int_equal(m->layers[i].ffn_down->ne[0], 96);
    assert_int_equal(m->layers[i].wk->ne[1], 32);
  }
  uint64_t bytes = 0, params = 0;
  for (size_t i = 0; i < gguf_tensor_count(m->file); i++) {
    bytes += gguf_tensor_at(m->file, i)->size;
    params += gguf_tensor_at(m->file, i)->n_elements;
  }
  assert_int_equal(m->weight_bytes, bytes);
  assert_int_equal(model_param_count(m), params);
  /* 40*64 embd + 64 norm + per layer: 64 + 64*64 + 2*64*32 + 64*64 + 64 + 2*32 + 64 + 3*64*96 */
  assert_int_equal(params,
                   40 * 64 + 64 +
                       2 * (64 + 64 * 64 + 2 * 64 * 32 + 64 * 64 + 64 + 2 * 32 + 64 + 3 * 64 * 96));
  model_destroy(m);
}

static void test_llama_accepted(void **state) {
  (void)state;
  struct tiny t = tiny_llama();
  struct model *m = load_tiny(&t, 0, NULL);
  assert_int_equal(m->hp.arch, MODEL_ARCH_LLAMA);
  assert_int_equal(m->hp.rope_layout, ROPE_LAYOUT_NORMAL);
  assert_int_equal(m->hp.head_dim, 8);
  assert_false(m->hp.tied_output);
  assert_false(m->hp.has_qkv_bias);
  assert_true(m->hp.has_rope_freqs);
  assert_non_null(m->rope_freqs);
  assert_int_equal(m->rope_freqs->ne[0], 4);
  assert_string_equal(m->output->name, "output.weight");
  assert_true(m->output != m->tok_embd);
  assert_null(m->layers[0].bq);
  assert_int_equal(m->layers[2].wq->ne[1], 64);
  assert_int_equal(m->layers[2].wk->ne[1], 16);
  model_destroy(m);
}

static void test_rope_scaling(void **state) {
  (void)state;
  struct tiny t = tiny_qwen2();
  t.rope_scaling_type = "linear";
  struct model *m = load_tiny(&t, 0, NULL);
  assert_true(m->hp.rope_freq_scale == 0.25f);
  model_destroy(m);
  t.rope_scaling_type = "yarn";
  load_tiny(&t, AUG_EUNSUPPORTED, "qwen2.rope.scaling.type' is 'yarn'");
}

static void test_missing_tensor(void **state) {
  (void)state;
  struct tiny t = tiny_qwen2();
  t.skip_tensor = "blk.1.ffn_up.weight";
  load_tiny(&t, AUG_EFORMAT, "tensor 'blk.1.ffn_up.weight' is missing");
  t = tiny_qwen2();
  t.skip_tensor = "blk.0.attn_q.bias";
  load_tiny(&t, AUG_EFORMAT, "tensor 'blk.0.attn_q.bias' is missing");
}

static void test_wrong_shape(void **state) {
  (void)state;
  struct tiny t = tiny_qwen2();
  t.grow_tensor = "blk.1.attn_k.weight";
  load_tiny(&t, AUG_EFORMAT, "tensor 'blk.1.attn_k.weight' has shape [64, 33], expected [64, 32]");
  t = tiny_llama();
  t.grow_tensor = "rope_freqs.weight";
  load_tiny(&t, AUG_EFORMAT, "tensor 'rope_freqs.weight' has shape [5], expected [4]");
}

static void test_block_count(void **state) {
  (void)state;
  struct tiny t = tiny_qwen2();
  t.n_layer = 0;
  load_tiny(&t, AUG_ERANGE, "key 'qwen2.block_count' is 0, expected 1..512");
  t.n_layer = 513;
  load_tiny(&t, AUG_ERANGE, "key 'qwen2.block_count' is 513, expected 1..512");
}

static void test_head_counts(void **state) {
  (void)state;
  struct tiny t = tiny_qwen2();
  t.n_head_kv = 3;
  load_tiny(&t, AUG_EFORMAT,
            "qwen2.attention.head_count 4 is not a multiple of qwen2.attention.head_count_kv 3");
  t = tiny_qwen2();
  t.n_head = 6;
  load_tiny(&t, AUG_EFORMAT,
            "qwen2.embedding_length 64 is not a multiple of qwen2.attention.head_count 6");
  t = tiny_qwen2();
  t.n_head = 0;
  load_tiny(&t, AUG_ERANGE, "key 'qwen2.attention.head_count' is 0");
}

static void test_types(void **state) {
  (void)state;
  struct tiny t = tiny_qwen2();
  t.retype_tensor = "blk.0.attn_q.weight";
  t.retype_to = QUANT_I32;
  load_tiny(&t, AUG_EUNSUPPORTED,
            "tensor 'blk.0.attn_q.weight' has type I32 (26), which cannot be dequantized");
  t.retype_tensor = "output_norm.weight";
  t.retype_to = QUANT_F16;
  load_tiny(&t, AUG_EUNSUPPORTED, "tensor 'output_norm.weight' has type F16, expected F32");
  t.retype_tensor = "blk.1.ffn_gate.weight";
  t.retype_to = QUANT_Q8_0;
  struct model *m = load_tiny(&t, 0, NULL);
  assert_int_equal(m->layers[1].ffn_gate->type, QUANT_Q8_0);
  model_destroy(m);
}

static void test_vocab(void **state) {
  (void)state;
  struct tiny t = tiny_qwen2();
  t.n_tokens = 39;
  load_tiny(&t, AUG_EFORMAT,
            "vocabulary has 39 tokens (tokenizer.ggml.tokens) but tensor 'token_embd.weight' has "
            "40 rows");
  t.n_tokens = -1; /* no tokenizer: the vocabulary size comes from token_embd */
  struct model *m = load_tiny(&t, 0, NULL);
  assert_int_equal(m->hp.n_vocab, 40);
  model_destroy(m);
}

static void test_stray_tensor_and_keys(void **state) {
  (void)state;
  struct tiny t = tiny_qwen2();
  t.extra_tensor = "blk.2.attn_norm.weight";
  load_tiny(&t, AUG_EFORMAT, "unexpected tensor 'blk.2.attn_norm.weight'");
  t = tiny_qwen2();
  t.omit_context_length = true;
  load_tiny(&t, AUG_EFORMAT, "key 'qwen2.context_length' is missing");
  t = tiny_qwen2();
  t.arch = "gemma3";
  load_tiny(&t, AUG_EUNSUPPORTED, "general.architecture 'gemma3' is not supported");
}

static void test_arch_names(void **state) {
  (void)state;
  enum model_arch a;
  assert_int_equal(model_arch_from_name("llama", 5, &a), 0);
  assert_int_equal(a, MODEL_ARCH_LLAMA);
  assert_int_equal(model_arch_from_name("qwen2xyz", 5, &a), 0);
  assert_int_equal(a, MODEL_ARCH_QWEN2);
  assert_int_equal(model_arch_from_name("qwen", 4, &a), AUG_EUNSUPPORTED);
  assert_string_equal(model_arch_name(MODEL_ARCH_QWEN2), "qwen2");
  assert_string_equal(model_arch_name((enum model_arch)7), "unknown");
  model_destroy(NULL);
}

static void test_allocation_failures(void **state) {
  (void)state;
  struct tiny t = tiny_qwen2();
  char *path = write_tiny(&t);
  struct gguf_file *file = NULL;
  struct aug_err err = {0};
  assert_int_equal(gguf_open(path, NULL, &file, &err), 0);
  unlink(path);
  free(path);
  int failures = 0;
  for (long n = 1;; n++) {
    struct model *m = NULL;
    aug_alloc_fail_after(n);
    int rc = model_create(file, &m, &err);
    aug_alloc_fail_reset();
    if (rc == 0) {
      model_destroy(m);
      break;
    }
    assert_int_equal(rc, AUG_ENOMEM);
    assert_null(m);
    failures++;
  }
  assert_int_equal(failures, 2);
  gguf_close(file);
}

/* Every byte of a tiny model's header (key/values and tensor infos) changed two ways: the model
 * is either accepted or refused with a message, never read out of bounds (the sanitizer build
 * checks), and an accepted model's hyper-parameters still fit its tensors. */
static void test_every_header_byte_changed(void **state) {
  (void)state;
  struct tiny t = tiny_qwen2();
  char *path = write_tiny(&t);
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  fseek(f, 0, SEEK_END);
  size_t size = (size_t)ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *orig = malloc(size), *buf = malloc(size);
  assert_int_equal(fread(orig, 1, size, f), size);
  fclose(f);
  unlink(path);
  free(path);
  struct gguf_file *file = NULL;
  struct aug_err err = {0};
  assert_int_equal(gguf_open_memory(orig, size, "tiny", &file, &err), 0);
  size_t header = (size_t)gguf_data_offset(file);
  gguf_close(file);
  int accepted = 0, refused = 0;
  for (size_t i = 0; i < header; i++) {
    for (int variant = 0; variant < 2; variant++) {
      memcpy(buf, orig, size);
      buf[i] = variant ? (unsigned char)(buf[i] + 1) : (unsigned char)~buf[i];
      file = NULL;
      if (gguf_open_memory(buf, size, "tiny", &file, &err) != 0) continue;
      struct model *m = NULL;
      int rc = model_create(file, &m, &err);
      if (rc == 0) {
        accepted++;
        assert_true(m->hp.n_layer >= 1 && m->hp.n_layer <= 512);
        assert_int_equal(m->hp.n_head % m->hp.n_head_kv, 0);
        assert_int_equal(m->layers[0].wq->ne[1], (uint64_t)m->hp.n_head * m->hp.head_dim);
        model_destroy(m);
      } else {
        refused++;
        assert_null(m);
        if (!strstr(err.msg, "model: tiny: "))
          fail_msg("byte %zu: message '%s' does not name the file", i, err.msg);
      }
      gguf_close(file);
    }
  }
  /* Changed names and values are mostly refused; changed padding and unused keys pass. */
  assert_true(refused > 100);
  assert_true(accepted > 0);
  free(orig);
  free(buf);
}

static void check_real(const char *path, uint32_t n_layer, uint32_t n_embd, uint32_t n_head,
                       uint32_t n_ff) {
  struct model *m = NULL;
  struct aug_err err = {0};
  if (model_load(path, &m, &err) != 0) fail_msg("%s", err.msg);
  assert_int_equal(m->hp.arch, MODEL_ARCH_QWEN2);
  assert_int_equal(m->hp.n_layer, n_layer);
  assert_int_equal(m->hp.n_embd, n_embd);
  assert_int_equal(m->hp.n_head, n_head);
  assert_int_equal(m->hp.n_head_kv, 2);
  assert_int_equal(m->hp.n_ff, n_ff);
  assert_int_equal(m->hp.n_vocab, 151936);
  assert_int_equal(m->hp.n_ctx_train, 32768);
  assert_true(m->hp.rope_freq_base == 1e6f);
  assert_true(m->hp.has_qkv_bias);
  assert_non_null(m->output);
  assert_true(m->weight_bytes > 100u * 1000 * 1000);
  model_destroy(m);
}

static void test_real_default(void **state) {
  (void)state;
  const char *path = test_model_path(TEST_MODEL_DEFAULT);
  check_real(path, 28, 1536, 12, 8960);
}

static void test_real_small(void **state) {
  (void)state;
  const char *path = test_model_path(TEST_MODEL_SMALL);
  check_real(path, 24, 896, 14, 4864);
}

/* Every file of the hostile corpus is refused by model_load with the message expected.tsv gives
 * for it (the same substring `augury info` must print). */
static void test_bad_gguf_corpus(void **state) {
  (void)state;
  size_t size = 0;
  char *tsv = test_read_fixture("bad-gguf/expected.tsv", &size);
  int checked = 0;
  for (char *line = strtok(tsv, "\n"); line; line = strtok(NULL, "\n")) {
    if (line[0] == '#' || !strchr(line, '\t')) continue;
    char *tab = strchr(line, '\t');
    *tab = '\0';
    const char *file = line, *expected = tab + 1;
    char path[4096];
    snprintf(path, sizeof path, "%s/bad-gguf/%s", AUGURY_FIXTURES_DIR, file);
    struct model *m = NULL;
    struct aug_err err = {0};
    int rc = model_load(path, &m, &err);
    if (rc == 0) fail_msg("%s: model_load accepted it", file);
    assert_null(m);
    if (!strstr(err.msg, expected))
      fail_msg("%s: message '%s' lacks '%s'", file, err.msg, expected);
    checked++;
  }
  free(tsv);
  assert_true(checked >= 30);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_qwen2_accepted),
      cmocka_unit_test(test_llama_accepted),
      cmocka_unit_test(test_rope_scaling),
      cmocka_unit_test(test_missing_tensor),
      cmocka_unit_test(test_wrong_shape),
      cmocka_unit_test(test_block_count),
      cmocka_unit_test(test_head_counts),
      cmocka_unit_test(test_types),
      cmocka_unit_test(test_vocab),
      cmocka_unit_test(test_stray_tensor_and_keys),
      cmocka_unit_test(test_arch_names),
      cmocka_unit_test(test_allocation_failures),
      cmocka_unit_test(test_every_header_byte_changed),
      cmocka_unit_test(test_real_default),
      cmocka_unit_test(test_real_small),
      cmocka_unit_test(test_bad_gguf_corpus),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
