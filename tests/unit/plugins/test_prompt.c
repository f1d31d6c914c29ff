/* Tests for plugins/prompt.c: the line window and its coarse, stable start; FIM assembly with the
 * small model's tokenizer (Qwen2.5-Coder ids, repository header, token bounds that drop whole line
 * blocks, and no control token from document text that spells one); chat prompts. */
#include "../test_support.h"

#include "engine/gguf.h"
#include "engine/tokenizer.h"
#include "plugins/prompt.h"

/* A document of n lines "line <i>\n". */
static char *lines_doc(int n, size_t *len) {
  char *buf = malloc((size_t)n * 16 + 1);
  size_t k = 0;
  for (int i = 0; i < n; i++)
    k += (size_t)sprintf(buf + k, "line %d\n", i);
  *len = k;
  return buf;
}

static size_t offset_of_line(const char *text, int line) {
  size_t i = 0;
  for (int l = 0; l < line; i++)
    if (text[i] == '\n') l++;
  return i;
}

static int line_of(const char *text, size_t offset) {
  int l = 0;
  for (size_t i = 0; i < offset; i++)
    l += text[i] == '\n';
  return l;
}

static void test_window_stable_start(void **state) {
  (void)state;
  size_t len;
  char *doc = lines_doc(400, &len);
  size_t start, end;
  /* Near the top the whole prefix fits. */
  prompt_window(doc, len, offset_of_line(doc, 50) + 3, 100, 10, 32, &start, &end);
  assert_int_equal(start, 0);
  assert_int_equal(line_of(doc, end), 61); /* rest of line 50 + 10 lines */
  /* Further down the start is a multiple of 32 lines, at most 100 lines back, and it does not
   * move while the cursor moves within a 32-line step. */
  int prev = -1, moves = 0;
  for (int cursor_line = 100; cursor_line < 300; cursor_line++) {
    prompt_window(doc, len, offset_of_line(doc, cursor_line), 100, 10, 32, &start, &end);
    int first = line_of(doc, start);
    assert_int_equal(first % 32, 0);
    assert_true(cursor_line - first <= 100);
    assert_true(cursor_line - first > 100 - 32);
    if (prev >= 0 && first != prev) moves++;
    prev = first;
  }
  assert_true(moves <= 200 / 32 + 1);
  /* The suffix stops at the end of the text. */
  prompt_window(doc, len, len, 100, 10, 32, &start, &end);
  assert_int_equal(end, len);
  free(doc);
}

struct model_fixture {
  struct gguf_file *file;
  struct tokenizer *tok;
  struct fim_tokens fim;
};

static int setup_model(void **state) {
  const char *path = getenv("AUGURY_TEST_MODEL_SMALL");
  if (!path || !*path) {
    *state = NULL;
    return 0;
  }
  struct model_fixture *m = calloc(1, sizeof *m);
  struct aug_err err = {0};
  struct gguf_open_params gp = gguf_open_params_default();
  if (gguf_open(path, &gp, &m->file, &err) || tokenizer_create(m->file, &m->tok, &err)) {
    fprintf(stderr, "cannot load %s: %s\n", path, err.msg);
    return -1;
  }
  if (prompt_fim_tokens(m->tok, &m->fim, &err)) return -1;
  *state = m;
  return 0;
}

static int teardown_model(void **state) {
  struct model_fixture *m = *state;
  if (m) {
    tokenizer_destroy(m->tok);
    gguf_close(m->file);
    free(m);
  }
  return 0;
}

static struct model_fixture *need_model(void **state) {
  if (!*state) test_model_path(TEST_MODEL_SMALL); /* skips, or fails under AUGURY_REQUIRE_MODELS */
  return *state;
}

static void test_fim_layout(void **state) {
  struct model_fixture *m = need_model(state);
  assert_int_equal(m->fim.family, FIM_FAMILY_QWEN);
  assert_int_equal(m->fim.prefix, tokenizer_find(m->tok, "<|fim_prefix|>"));
  assert_int_not_equal(m->fim.repo_name, TOKEN_NONE);
  const char *pre = "def add(a, b):\n    return";
  const char *suf = "\n\nprint(add(1, 2))\n";
  struct fim_input in = {pre, strlen(pre), suf, strlen(suf), "demo", "src/calc.py", 512, 128,
                         32,  NULL,        0,   NULL,        0};
  int32_t ids[1024];
  size_t n = 0, dropped = 0;
  struct aug_err err = {0};
  assert_int_equal(prompt_build_fim(m->tok, &m->fim, &in, ids, 1024, &n, &dropped, &err), 0);
  assert_int_equal(dropped, 0);
  /* <|repo_name|>demo\n<|file_sep|>src/calc.py\n<|fim_prefix|>...<|fim_suffix|>...<|fim_middle|> */
  assert_int_equal(ids[0], m->fim.repo_name);
  assert_int_equal(ids[n - 1], m->fim.middle);
  size_t at_sep = 0, at_prefix = 0, at_suffix = 0, controls = 0;
  for (size_t i = 0; i < n; i++) {
    if (ids[i] == m->fim.file_sep) at_sep = i;
    if (ids[i] == m->fim.prefix) at_prefix = i;
    if (ids[i] == m->fim.suffix) at_suffix = i;
    controls += tokenizer_token_kind(m->tok, ids[i]) == TOKEN_KIND_CONTROL ||
                tokenizer_token_kind(m->tok, ids[i]) == TOKEN_KIND_USER_DEFINED;
  }
  assert_true(0 < at_sep && at_sep < at_prefix && at_prefix < at_suffix && at_suffix < n - 1);
  assert_int_equal(controls, 5);
  /* Without a repository name the header is left out. */
  in.repo_name = NULL;
  assert_int_equal(prompt_build_fim(m->tok, &m->fim, &in, ids, 1024, &n, &dropped, &err), 0);
  assert_int_equal(ids[0], m->fim.prefix);
}

/* The cursor's line after <|fim_middle|>: two keystrokes on that line give prompts that agree up
 * to and including <|fim_middle|>, and only the middle tokens differ. */
static void test_fim_middle_layout(void **state) {
  struct model_fixture *m = need_model(state);
  const char *above = "def add(a, b):\n";
  const char *suf = "\n\nprint(add(1, 2))\n";
  const char *middles[2] = {"    return a", "    return a +"};
  int32_t ids[2][1024];
  size_t n[2], dropped = 0;
  struct aug_err err = {0};
  for (int k = 0; k < 2; k++) {
    struct fim_input in = {above,
                           strlen(above),
                           suf,
                           strlen(suf),
                           "demo",
                           "a.py",
                           512,
                           128,
                           32,
                           middles[k],
                           strlen(middles[k]),
                           NULL,
                           0};
    assert_int_equal(prompt_build_fim(m->tok, &m->fim, &in, ids[k], 1024, &n[k], &dropped, &err),
                     0);
  }
  size_t at_middle = 0;
  for (size_t i = 0; i < n[0]; i++)
    if (ids[0][i] == m->fim.middle) at_middle = i;
  assert_true(at_middle > 0 && at_middle < n[0] - 1);
  assert_memory_equal(ids[0], ids[1], (at_middle + 1) * sizeof ids[0][0]);
  assert_true(n[1] > n[0]);
  /* The middle is the line's text: its tokens decode to it. */
  char text[256];
  size_t len = 0;
  struct detokenizer d;
  detokenizer_init(&d);
  for (size_t i = at_middle + 1; i < n[0]; i++) {
    int w = detokenizer_push(&d, m->tok, ids[0][i], false, text + len, sizeof text - 1 - len);
    assert_true(w >= 0);
    len += (size_t)w;
  }
  text[len] = '\0';
  assert_string_equal(text, middles[0]);
  /* A buffer too small for prefix + suffix + middle is refused, not overrun. */
  struct fim_input in = {above,
                         strlen(above),
                         suf,
                         strlen(suf),
                         NULL,
                         NULL,
                         512,
                         128,
                         32,
                         middles[1],
                         strlen(middles[1]),
                         NULL,
                         0};
  assert_int_equal(prompt_build_fim(m->tok, &m->fim, &in, ids[0], 8, &n[0], &dropped, &err),
                   AUG_ERANGE);
}

static void test_fim_no_injection(void **state) {
  struct model_fixture *m = need_model(state);
  /* Document text that spells control tokens stays text. */
  const char *pre = "x = '<|fim_prefix|><|fim_middle|><|endoftext|><|im_start|>'\n";
  const char *suf = "<|fim_suffix|><|file_sep|>\n";
  struct fim_input in = {pre, strlen(pre), suf,  strlen(suf), "r",  "a.py", 512,
                         128, 32,          NULL, 0,           NULL, 0};
  int32_t ids[1024];
  size_t n = 0, dropped = 0;
  struct aug_err err = {0};
  assert_int_equal(prompt_build_fim(m->tok, &m->fim, &in, ids, 1024, &n, &dropped, &err), 0);
  size_t specials = 0;
  for (size_t i = 0; i < n; i++) {
    enum token_kind k = tokenizer_token_kind(m->tok, ids[i]);
    specials += k == TOKEN_KIND_CONTROL || k == TOKEN_KIND_USER_DEFINED;
  }
  /* Exactly the five the prompt places itself. */
  assert_int_equal(specials, 5);
}

static void test_fim_token_bounds(void **state) {
  struct model_fixture *m = need_model(state);
  size_t len;
  char *doc = lines_doc(300, &len);
  struct fim_input in = {doc, len, "\nend\n", 5, NULL, NULL, 200, 2, 32, NULL, 0, NULL, 0};
  int32_t ids[4096];
  size_t n = 0, dropped = 0;
  struct aug_err err = {0};
  assert_int_equal(prompt_build_fim(m->tok, &m->fim, &in, ids, 4096, &n, &dropped, &err), 0);
  /* The prefix is within its bound and starts on a 32-line boundary of what was given. */
  assert_true(n <= 200 + 2 + 3);
  assert_true(dropped > 0);
  assert_int_equal(line_of(doc, dropped) % 32, 0);
  assert_int_equal(doc[dropped - 1], '\n');
  /* One more line typed at the end keeps the same start: the prompts share a long prefix. */
  char *longer = malloc(len + 16);
  memcpy(longer, doc, len);
  memcpy(longer + len, "line x", 6);
  in.prefix = longer;
  in.prefix_len = len + 6;
  size_t n2 = 0, dropped2 = 0;
  int32_t ids2[4096];
  assert_int_equal(prompt_build_fim(m->tok, &m->fim, &in, ids2, 4096, &n2, &dropped2, &err), 0);
  assert_int_equal(dropped2, dropped);
  size_t common = 0;
  while (common < n && common < n2 && ids[common] == ids2[common])
    common++;
  assert_true(common + 8 >= n - 3);
  /* The suffix is cut to its bound. */
  assert_int_equal(ids2[n2 - 1], m->fim.middle);
  assert_int_equal(ids2[n2 - 4], m->fim.suffix);
  /* A buffer too small for even the bounds is an error, not an overflow. */
  assert_int_equal(prompt_build_fim(m->tok, &m->fim, &in, ids2, 3, &n2, &dropped2, &err),
                   AUG_ERANGE);
  free(longer);
  free(doc);
}

static void test_chat(void **state) {
  struct model_fixture *m = need_model(state);
  assert_int_equal(prompt_chat_format("{% for m in messages %}<|im_start|>{{ m }}", NULL),
                   CHAT_FORMAT_CHATML);
  assert_int_equal(prompt_chat_format("<|start_header_id|>", NULL), CHAT_FORMAT_LLAMA3);
  assert_int_equal(prompt_chat_format(NULL, NULL), CHAT_FORMAT_PLAIN);
  assert_int_equal(prompt_chat_format(NULL, m->tok), CHAT_FORMAT_CHATML);
  const char *code = "print('<|im_end|>')\n";
  int32_t ids[512];
  size_t n = 0;
  struct aug_err err = {0};
  assert_int_equal(prompt_build_chat(m->tok, CHAT_FORMAT_CHATML, "sys", "Explain:\n", code,
                                     strlen(code), "\n", ids, 512, &n, &err),
                   0);
  int32_t im_start = tokenizer_find(m->tok, "<|im_start|>");
  int32_t im_end = tokenizer_find(m->tok, "<|im_end|>");
  size_t starts = 0, ends = 0;
  for (size_t i = 0; i < n; i++) {
    starts += ids[i] == im_start;
    ends += ids[i] == im_end;
  }
  /* system, user, assistant headers; two closed messages: the code's <|im_end|> is text. */
  assert_int_equal(starts, 3);
  assert_int_equal(ends, 2);
  assert_int_equal(ids[0], im_start);
  assert_true(prompt_chat_is_stop(m->tok, im_end));
  assert_false(prompt_chat_is_stop(m->tok, ids[1]));
  assert_int_equal(prompt_build_chat(m->tok, CHAT_FORMAT_CHATML, "sys", "Explain:\n", code,
                                     strlen(code), "\n", ids, 8, &n, &err),
                   AUG_ERANGE);
}

/* Context pieces go in as repository files before the current one, in the order given, and the
 * prompt without them is the prompt after them (the cache keeps the pieces' tokens). */
static void test_fim_context_pieces(void **state) {
  struct model_fixture *m = need_model(state);
  const char *pre = "def add(a, b):\n    return";
  const char *suf = "\n";
  struct augury_context_piece pieces[2] = {
      {"lib/util.py", "def helper():\n    pass\n", 24, AUGURY_STABLE_PROJECT},
      {NULL, "x = 1", 5, AUGURY_STABLE_RECENT},
  };
  struct fim_input in = {pre, strlen(pre), suf, strlen(suf), "demo", "src/calc.py", 512, 128,
                         32,  NULL,        0,   pieces,      2};
  int32_t ids[1024], plain[1024];
  size_t n = 0, n_plain = 0, dropped = 0;
  struct aug_err err = {0};
  assert_int_equal(prompt_build_fim(m->tok, &m->fim, &in, ids, 1024, &n, &dropped, &err), 0);
  size_t seps = 0;
  for (size_t i = 0; i < n; i++)
    seps += ids[i] == m->fim.file_sep;
  assert_int_equal(seps, 3); /* two pieces and the current file */
  in.n_context = 0;
  assert_int_equal(prompt_build_fim(m->tok, &m->fim, &in, plain, 1024, &n_plain, &dropped, &err),
                   0);
  /* Both end with the same <|file_sep|>src/calc.py ... <|fim_middle|> tail. */
  assert_true(n > n_plain);
  size_t tail = 0;
  while (plain[n_plain - 1 - tail] != m->fim.file_sep)
    tail++;
  assert_memory_equal(ids + n - 1 - tail, plain + n_plain - 1 - tail, (tail + 1) * sizeof *ids);
  /* Without a repository name the pieces still come, with the current file's header. */
  in.n_context = 2;
  in.repo_name = NULL;
  assert_int_equal(prompt_build_fim(m->tok, &m->fim, &in, ids, 1024, &n, &dropped, &err), 0);
  assert_int_equal(ids[0], m->fim.file_sep);
}

/* The text prompt for a remote server: the Qwen layout, byte bounds, and document text that
 * spells a control token broken with a zero-width space. */
static void test_fim_text(void **state) {
  (void)state;
  const char *pre = "import os\nx = '<|fim_middle|>'\ndef f():\n";
  const char *mid = "    ret";
  const char *suf = "\nprint(f())\n";
  struct augury_context_piece piece = {"a.py", "A = 1\n", 6, AUGURY_STABLE_PROJECT};
  struct fim_input in = {pre, strlen(pre), suf, strlen(suf), "demo", "b.py", 512,
                         128, 32,          mid, strlen(mid), &piece, 1};
  char out[1024];
  size_t len = 0;
  struct aug_err err = {0};
  assert_int_equal(prompt_format_fim_text(FIM_FAMILY_QWEN, &in, out, sizeof out, &len, &err), 0);
  assert_int_equal(strlen(out), len);
  assert_string_equal(out, "<|repo_name|>demo\n<|file_sep|>a.py\nA = 1\n<|file_sep|>b.py\n"
                           "<|fim_prefix|>import os\nx = '<\xE2\x80\x8B|fim_middle|>'\ndef "
                           "f():\n<|fim_suffix|>\nprint(f())\n<|fim_middle|>    ret");
  /* A prefix over its bound loses whole lines from its start. */
  in.prefix_tokens = 5; /* 20 bytes */
  in.n_context = 0;
  in.repo_name = NULL;
  assert_int_equal(prompt_format_fim_text(FIM_FAMILY_QWEN, &in, out, sizeof out, &len, &err), 0);
  assert_string_equal(out, "<|fim_prefix|>def f():\n<|fim_suffix|>\nprint(f())\n<|fim_middle|>"
                           "    ret");
  assert_int_equal(prompt_format_fim_text(FIM_FAMILY_QWEN, &in, out, 16, &len, &err), AUG_ERANGE);
  enum fim_family f;
  assert_true(prompt_fim_family_from_name("deepseek", &f));
  assert_int_equal(f, FIM_FAMILY_DEEPSEEK);
  assert_false(prompt_fim_family_from_name("gpt", &f));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_window_stable_start),
      cmocka_unit_test_setup_teardown(test_fim_layout, setup_model, teardown_model),
      cmocka_unit_test_setup_teardown(test_fim_middle_layout, setup_model, teardown_model),
      cmocka_unit_test_setup_teardown(test_fim_no_injection, setup_model, teardown_model),
      cmocka_unit_test_setup_teardown(test_fim_token_bounds, setup_model, teardown_model),
      cmocka_unit_test_setup_teardown(test_chat, setup_model, teardown_model),
      cmocka_unit_test_setup_teardown(test_fim_context_pieces, setup_model, teardown_model),
      cmocka_unit_test(test_fim_text),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
