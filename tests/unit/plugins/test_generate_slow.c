/* Tests for plugins/generate.c with the small real model: stats add up and a repeated prompt is
 * reused, single-line mode keeps one line, prompt-lookup decoding is exact, token healing completes
 * a word cut by the cursor, a prompt budget drops far context (pieces first) only when that is
 * cheaper, a raised cancel flag stops the work, the token budget holds, a deadline set during the
 * decode stops it at the end of a line, and explain streams exactly the text it returns. Slow
 * (real forward passes): label "slow". */
#include "../test_support.h"

#include "engine/clock.h"
#include "plugins/generate.h"

struct fixture {
  struct generator *g;
};

static int setup(void **state) {
  const char *path = getenv("AUGURY_TEST_MODEL_SMALL");
  *state = NULL;
  if (!path || !*path) return 0;
  struct fixture *f = calloc(1, sizeof *f);
  struct engine_params ep = engine_params_default();
  ep.model_path = path;
  ep.n_ctx = 1024;
  struct aug_err err = {0};
  if (generator_create(&ep, &f->g, &err)) {
    fprintf(stderr, "%s\n", err.msg);
    return -1;
  }
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  if (f) {
    generator_destroy(f->g);
    free(f);
  }
  return 0;
}

static struct generator *need(void **state) {
  if (!*state) test_model_path(TEST_MODEL_SMALL);
  return ((struct fixture *)*state)->g;
}

static struct completion_request request(const char *prefix, const char *suffix, int max_tokens) {
  struct completion_request r = {.prefix = prefix,
                                 .prefix_len = strlen(prefix),
                                 .suffix = suffix,
                                 .suffix_len = strlen(suffix),
                                 .prefix_tokens = 512,
                                 .suffix_tokens = 128,
                                 .snap_lines = 32,
                                 .max_tokens = max_tokens};
  return r;
}

/* The default layout: the cursor's line after <|fim_middle|>. */
static struct completion_request middle_request(const char *prefix, const char *suffix,
                                                int max_tokens) {
  struct completion_request r = request(prefix, suffix, max_tokens);
  r.cursor_line_in_middle = true;
  return r;
}

static void test_complete_stats_and_reuse(void **state) {
  struct generator *g = need(state);
  assert_true(generator_has_fim(g));
  assert_non_null(strstr(generator_description(g), "FIM qwen"));
  const char *pre = "def fibonacci(n):\n    if n < 2:\n        return n\n    return ";
  struct completion_request req = request(pre, "\n\n\nprint(fibonacci(10))\n", 16);
  char out[4096];
  size_t len = 0;
  struct generation_stats st;
  struct aug_err err = {0};
  assert_int_equal(generator_complete(g, &req, NULL, out, sizeof out, &len, &st, &err), 0);
  assert_int_equal(st.n_prompt, st.n_reused + st.n_evaluated);
  assert_true(st.n_generated >= 1 && st.n_generated <= 16);
  assert_int_equal(strlen(out), len);
  assert_true(len > 0);
  assert_non_null(strstr(out, "fibonacci"));
  /* Whitespace healing: the space before the cursor is not repeated. */
  assert_true(out[0] != ' ');
  char first[4096];
  memcpy(first, out, len + 1);
  /* Same prompt again: all but the last prompt token is resident, and greedy output repeats. */
  assert_int_equal(generator_complete(g, &req, NULL, out, sizeof out, &len, &st, &err), 0);
  assert_int_equal(st.n_evaluated, 1);
  assert_int_equal(st.n_reused, st.n_prompt - 1);
  assert_string_equal(out, first);
}

/* With the cursor's line after <|fim_middle|>, a keystroke on that line evaluates only the middle:
 * the prefix and the suffix stay resident. */
static void test_middle_layout_survives_typing(void **state) {
  struct generator *g = need(state);
  const char *suffix = "\n\ndef main():\n    print(area(2.0))\n";
  struct completion_request req =
      middle_request("import math\n\ndef area(r):\n    return math", suffix, 4);
  char out[4096];
  size_t len = 0;
  struct generation_stats st;
  struct aug_err err = {0};
  assert_int_equal(generator_complete(g, &req, NULL, out, sizeof out, &len, &st, &err), 0);
  size_t n_first = st.n_prompt;
  /* One more character typed at the cursor. */
  req = middle_request("import math\n\ndef area(r):\n    return math.", suffix, 4);
  assert_int_equal(generator_complete(g, &req, NULL, out, sizeof out, &len, &st, &err), 0);
  assert_true(st.n_prompt >= n_first);
  /* "    return math." is a handful of tokens; everything before <|fim_middle|> was resident. */
  assert_true(st.n_evaluated <= 6);
  assert_true(st.n_reused >= st.n_prompt - 6);
  size_t n = 0;
  const int32_t *ids = generator_last_prompt(g, &n);
  size_t tail = 0;
  while (tail < n && ids[n - 1 - tail] !=
                         tokenizer_find(engine_tokenizer(generator_engine(g)), "<|fim_middle|>"))
    tail++;
  assert_true(tail > 0 && tail < n);
  assert_true(st.n_evaluated <= tail);
}

/* Prompt-lookup decoding writes exactly what plain greedy decode writes (the verify batch runs in
 * one-token order), and on code that repeats itself it drafts and accepts tokens. */
static void test_prompt_lookup_is_exact(void **state) {
  struct generator *g = need(state);
  static const char *const cases[][2] = {
      {"struct point { int x, y; };\n\nstatic int point_x(const struct point *p) { return p->x; "
       "}\nstatic int point_y(const struct point *p) { return ",
       "\n\nint main(void) { return 0; }\n"},
      {"COLORS = {\n    \"red\": (255, 0, 0),\n    \"green\": (0, 255, 0),\n    \"blue\": (",
       "\n}\n"},
      {"def area(w, h):\n    return w * h\n\n\ndef perimeter(w, h):\n    return ",
       "\n\n\nprint(area(2, 3), perimeter(2, 3))\n"},
  };
  size_t drafted = 0, accepted = 0;
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    char plain[4096], drafts[4096];
    size_t plain_len = 0, drafts_len = 0;
    struct generation_stats st0, st1;
    struct aug_err err = {0};
    struct completion_request req = middle_request(cases[c][0], cases[c][1], 48);
    assert_int_equal(generator_complete(g, &req, NULL, plain, sizeof plain, &plain_len, &st0, &err),
                     0);
    assert_int_equal(st0.n_drafted, 0);
    req.draft_max = 8;
    assert_int_equal(
        generator_complete(g, &req, NULL, drafts, sizeof drafts, &drafts_len, &st1, &err), 0);
    assert_string_equal(drafts, plain);
    assert_int_equal(st1.n_generated, st0.n_generated);
    assert_string_equal(st1.stop, st0.stop);
    assert_true(st1.n_accepted <= st1.n_drafted);
    drafted += st1.n_drafted;
    accepted += st1.n_accepted;
  }
  print_message("prompt lookup: %zu drafted, %zu accepted\n", drafted, accepted);
  assert_true(accepted > 0);
}

/* Token healing: with the cursor inside a word, the cut token is written again by the model (not
 * repeated in the output), so the word is completed as in training text. */
static void test_token_healing_mid_word(void **state) {
  struct generator *g = need(state);
  const char *suffix = "\n\n\nprint(area(2.0))\n";
  struct completion_request req =
      middle_request("import math\n\n\ndef area(r):\n    return math.p", suffix, 8);
  char out[4096];
  size_t len = 0;
  struct generation_stats st;
  struct aug_err err = {0};
  assert_int_equal(generator_complete(g, &req, NULL, out, sizeof out, &len, &st, &err), 0);
  print_message("healed completion after \"math.p\": \"%s\"\n", out);
  assert_true(!strncmp(out, "i", 1)); /* math.pi, the 'p' not written twice */
  /* A cursor after a blank: the blank is healed, never doubled. */
  req = middle_request("import math\n\n\ndef area(r):\n    return ", suffix, 8);
  assert_int_equal(generator_complete(g, &req, NULL, out, sizeof out, &len, &st, &err), 0);
  assert_true(len > 0 && out[0] != ' ');
}

/* A request at the end of a long file, pre[0..*k): 150 small functions named name_0.. (about
 * 4000 tokens), then tail at the cursor; the prefix is bounded at 900 tokens, cut 3 lines at a
 * time. pre holds 64 KiB. */
static struct completion_request long_file_request(char *pre, size_t *k, const char *name,
                                                   const char *tail, const char *suffix) {
  for (int i = 0; i < 150; i++)
    *k += (size_t)sprintf(pre + *k, "def %s_%d(value):\n    return value * %d + %d\n\n", name, i, i,
                          i * 7 % 13);
  *k += (size_t)sprintf(pre + *k, "%s", tail);
  struct completion_request req = middle_request(pre, suffix, 4);
  req.prefix_tokens = 900;
  req.snap_lines = 3;
  return req;
}

/* A prompt budget the evaluation cannot meet drops far prefix lines (reported in n_shrunk), never
 * below 256 prefix tokens; with what is then resident, the same request fits the budget again. */
static void test_prompt_budget_shrinks_far_context(void **state) {
  struct generator *g = need(state);
  char *pre = malloc(64 * 1024);
  size_t k = 0;
  struct completion_request req = long_file_request(
      pre, &k, "helper", "def main():\n    total = helper_3(", ")\n    print(total)\n");
  char out[4096];
  size_t len = 0;
  struct generation_stats st;
  struct aug_err err = {0};
  req.prompt_budget_ms = 1; /* nothing fits in 1 ms */
  assert_int_equal(generator_complete(g, &req, NULL, out, sizeof out, &len, &st, &err), 0);
  assert_true(st.n_shrunk > 0);
  size_t shrunk_prompt = st.n_prompt;
  assert_true(shrunk_prompt >= 256);
  /* Without a budget the whole window is used. */
  req.prompt_budget_ms = 0;
  assert_int_equal(generator_complete(g, &req, NULL, out, sizeof out, &len, &st, &err), 0);
  assert_int_equal(st.n_shrunk, 0);
  assert_true(st.n_prompt > shrunk_prompt + 200);
  /* Resident now: a generous budget leaves it whole. */
  req.prompt_budget_ms = 60000;
  assert_int_equal(generator_complete(g, &req, NULL, out, sizeof out, &len, &st, &err), 0);
  assert_int_equal(st.n_shrunk, 0);
  /* A keystroke at the cursor with the window resident: the few new tokens are over a 1 ms
   * budget too, but every cut moves the resident tokens after it and costs more, so the window
   * stays whole instead of being thrown away. */
  sprintf(pre + k, "1");
  req.prefix_len = k + 1;
  req.prompt_budget_ms = 1;
  assert_int_equal(generator_complete(g, &req, NULL, out, sizeof out, &len, &st, &err), 0);
  print_message("keystroke over budget: %zu prompt tokens, %zu evaluated, %zu shrunk\n",
                st.n_prompt, st.n_evaluated, st.n_shrunk);
  assert_int_equal(st.n_shrunk, 0);
  assert_true(st.n_evaluated < 32);
  free(pre);
}

/* Whether the last prompt holds token id (a context piece comes as <|file_sep|>name). */
static bool last_prompt_has(const struct generator *g, int32_t id) {
  size_t n = 0;
  const int32_t *ids = generator_last_prompt(g, &n);
  for (size_t i = 0; i < n; i++)
    if (ids[i] == id) return true;
  return false;
}

/* Over its budget, a cold prompt drops its context pieces before its prefix is cut; once they are
 * resident they stay for a keystroke over the budget (dropping them would move the whole window).
 */
static void test_prompt_budget_drops_pieces_first(void **state) {
  struct generator *g = need(state);
  int32_t file_sep = tokenizer_find(engine_tokenizer(generator_engine(g)), "<|file_sep|>");
  assert_true(file_sep >= 0);
  char *pre = malloc(64 * 1024);
  size_t k = 0;
  struct completion_request req = long_file_request(
      pre, &k, "measure", "def report(sample):\n    area = scaled_area(", ")\n    print(area)\n");
  const char *lib = "class Sample:\n    def __init__(self, width, height):\n"
                    "        self.width = width\n        self.height = height\n\n\n"
                    "def scaled_area(sample, factor):\n"
                    "    \"\"\"The sample's area times factor, rounded to 2 places.\"\"\"\n"
                    "    return round(sample.width * sample.height * factor, 2)\n";
  struct augury_context_piece piece = {"geometry/sample.py", lib, strlen(lib),
                                       AUGURY_STABLE_PROJECT};
  req.context = &piece;
  req.n_context = 1;
  char out[4096];
  size_t len = 0;
  struct generation_stats st;
  struct aug_err err = {0};
  req.prompt_budget_ms = 1; /* nothing fits in 1 ms */
  assert_int_equal(generator_complete(g, &req, NULL, out, sizeof out, &len, &st, &err), 0);
  assert_true(st.n_shrunk > 0);
  assert_false(last_prompt_has(g, file_sep));
  size_t cold_prompt = st.n_prompt;
  /* Without a budget the piece is in. */
  req.prompt_budget_ms = 0;
  assert_int_equal(generator_complete(g, &req, NULL, out, sizeof out, &len, &st, &err), 0);
  assert_int_equal(st.n_shrunk, 0);
  assert_true(last_prompt_has(g, file_sep));
  assert_true(st.n_prompt > cold_prompt + 200);
  /* Resident now: a keystroke over the budget keeps the piece and the window. */
  sprintf(pre + k, "s");
  req.prefix_len = k + 1;
  req.prompt_budget_ms = 1;
  assert_int_equal(generator_complete(g, &req, NULL, out, sizeof out, &len, &st, &err), 0);
  print_message("keystroke over budget with a resident piece: %zu prompt tokens, %zu evaluated, "
                "%zu shrunk\n",
                st.n_prompt, st.n_evaluated, st.n_shrunk);
  assert_int_equal(st.n_shrunk, 0);
  assert_true(last_prompt_has(g, file_sep));
  assert_true(st.n_evaluated < 32);
  free(pre);
}

/* grow_when_cut_resident (a speculation started by an edit): a cold window over the budget is cut;
 * the same state again, with the cut resident, evaluates the whole window; a keystroke then keeps
 * it whole. */
static void test_prompt_budget_grows_resident_cut(void **state) {
  struct generator *g = need(state);
  char *pre = malloc(64 * 1024);
  size_t k = 0;
  struct completion_request req =
      long_file_request(pre, &k, "grow", "def total(values):\n    return sum(", ")\n");
  req.prompt_budget_ms = 1;
  req.grow_when_cut_resident = true;
  char out[4096];
  size_t len = 0;
  struct generation_stats st;
  struct aug_err err = {0};
  assert_int_equal(generator_complete(g, &req, NULL, out, sizeof out, &len, &st, &err), 0);
  assert_true(st.n_shrunk > 0);
  size_t cut = st.n_prompt;
  assert_int_equal(generator_complete(g, &req, NULL, out, sizeof out, &len, &st, &err), 0);
  print_message("cut window %zu tokens; grown back: %zu tokens, %zu evaluated\n", cut, st.n_prompt,
                st.n_evaluated);
  assert_int_equal(st.n_shrunk, 0);
  assert_true(st.n_prompt > cut + 200);
  sprintf(pre + k, "v");
  req.prefix_len = k + 1;
  assert_int_equal(generator_complete(g, &req, NULL, out, sizeof out, &len, &st, &err), 0);
  assert_int_equal(st.n_shrunk, 0);
  assert_true(st.n_evaluated < 32);
  /* Without the flag the same cold state stays cut, resident or not. */
  k = 0;
  req = long_file_request(pre, &k, "kept", "def total(values):\n    return sum(", ")\n");
  req.prompt_budget_ms = 1;
  assert_int_equal(generator_complete(g, &req, NULL, out, sizeof out, &len, &st, &err), 0);
  assert_true(st.n_shrunk > 0);
  assert_int_equal(generator_complete(g, &req, NULL, out, sizeof out, &len, &st, &err), 0);
  assert_true(st.n_shrunk > 0);
  free(pre);
}

/* An alternative: told to avoid the first answer, the first token writes something else (not a
 * start of it, though a token that is a piece of it would write it again under greedy decoding)
 * and the prompt is all resident; avoiding nothing gives the first answer again. */
static void test_avoid_earlier_suggestion(void **state) {
  struct generator *g = need(state);
  struct completion_request req = middle_request(
      "import os\n\n\ndef python_files(root):\n    return [n for n in os.listdir(root) if n.",
      "]\n", 6);
  char first[4096], out[4096];
  size_t first_len = 0, len = 0;
  struct generation_stats st;
  struct aug_err err = {0};
  assert_int_equal(generator_complete(g, &req, NULL, first, sizeof first, &first_len, &st, &err),
                   0);
  assert_true(first_len > 0);
  int32_t t0 = st.first_token;
  const char *avoid[] = {first};
  size_t avoid_len[] = {first_len};
  req.avoid = avoid;
  req.avoid_len = avoid_len;
  req.n_avoid = 1;
  assert_int_equal(generator_complete(g, &req, NULL, out, sizeof out, &len, &st, &err), 0);
  print_message("first \"%s\", alternative \"%s\"\n", first, out);
  assert_true(st.first_token >= 0 && st.first_token != t0);
  assert_true(st.n_evaluated <= 1);
  size_t common = len < first_len ? len : first_len;
  assert_true(len == 0 || memcmp(out, first, common) != 0);
  req.n_avoid = 0;
  assert_int_equal(generator_complete(g, &req, NULL, out, sizeof out, &len, &st, &err), 0);
  assert_int_equal(st.first_token, t0);
  assert_int_equal(len, first_len);
  assert_memory_equal(out, first, len);
}

static void test_single_line_and_budget(void **state) {
  struct generator *g = need(state);
  struct completion_request req =
      request("values = [1, 2, 3]\ntotal = sum(", ")\nprint(total)\n", 24);
  char out[4096];
  size_t len = 0;
  struct generation_stats st;
  struct aug_err err = {0};
  assert_int_equal(generator_complete(g, &req, NULL, out, sizeof out, &len, &st, &err), 0);
  assert_null(strchr(out, '\n'));
  /* A one-token budget generates at most one token. */
  req = request("import os\n\ndef main():\n    ", "\n", 1);
  assert_int_equal(generator_complete(g, &req, NULL, out, sizeof out, &len, &st, &err), 0);
  assert_true(st.n_generated <= 1);
}

/* Sets the deadline of the decode it watches to now, at the first text written: another thread
 * (the server's loop, when a typing-triggered request adopts a speculation) does that mid-decode.
 */
struct deadline_setter {
  _Atomic double until;
  bool set;
};

static void set_deadline_at_first_text(void *user, const char *text, size_t len) {
  struct deadline_setter *d = user;
  (void)text;
  if (len > 0 && !d->set) {
    atomic_store(&d->until, aug_now_ms());
    d->set = true;
  }
}

/* A deadline set while decoding cuts the budget short: the decode stops at the end of the first
 * line written (stop "time"), with the same greedy text as without it, cut there. */
static void test_deadline_set_during_decode(void **state) {
  struct generator *g = need(state);
  const char *pre = "def fibonacci(n):\n    ";
  const char *suf = "\n\n\nprint(fibonacci(10))\n";
  struct completion_request req = request(pre, suf, 48);
  char whole[4096], out[4096];
  size_t whole_len = 0, len = 0;
  struct generation_stats st;
  struct aug_err err = {0};
  assert_int_equal(generator_complete(g, &req, NULL, whole, sizeof whole, &whole_len, &st, &err),
                   0);
  assert_string_not_equal(st.stop, "time");
  assert_non_null(strchr(whole, '\n')); /* more than one line without a deadline */

  struct deadline_setter d = {.set = false};
  atomic_init(&d.until, 0);
  req.time_budget_until_ms = &d.until;
  req.on_partial = set_deadline_at_first_text;
  req.partial_user = &d;
  assert_int_equal(generator_complete(g, &req, NULL, out, sizeof out, &len, &st, &err), 0);
  assert_true(d.set);
  assert_string_equal(st.stop, "time");
  assert_true(len > 0 && len < whole_len);
  assert_null(strchr(out, '\n'));
  assert_memory_equal(out, whole, len);

  /* A deadline later than the request's own budget changes nothing. */
  atomic_store(&d.until, aug_now_ms() + 600000);
  d.set = true;
  assert_int_equal(generator_complete(g, &req, NULL, out, sizeof out, &len, &st, &err), 0);
  assert_int_equal(len, whole_len);
  assert_memory_equal(out, whole, len);
}

struct early_answers {
  char first[4096];
  size_t first_len;
  int calls;
  const char *stop;
};

static void keep_answer(void *user, const char *text, size_t len,
                        const struct generation_stats *so_far) {
  struct early_answers *a = user;
  if (a->calls++ == 0) {
    memcpy(a->first, text, len);
    a->first_len = len;
    a->stop = so_far->stop;
  }
}

/* With on_answer, the same deadline answers instead of stopping: on_answer gets, once, the text
 * the deadline would have stopped at, and the decode goes on to the text written without one. */
static void test_deadline_answers_early(void **state) {
  struct generator *g = need(state);
  const char *pre = "def fibonacci(n):\n    ";
  const char *suf = "\n\n\nprint(fibonacci(10))\n";
  struct completion_request req = request(pre, suf, 48);
  char whole[4096], cut[4096], out[4096];
  size_t whole_len = 0, cut_len = 0, len = 0;
  struct generation_stats st;
  struct aug_err err = {0};
  assert_int_equal(generator_complete(g, &req, NULL, whole, sizeof whole, &whole_len, &st, &err),
                   0);
  struct deadline_setter d = {.set = false};
  atomic_init(&d.until, 0);
  req.time_budget_until_ms = &d.until;
  req.on_partial = set_deadline_at_first_text;
  req.partial_user = &d;
  assert_int_equal(generator_complete(g, &req, NULL, cut, sizeof cut, &cut_len, &st, &err), 0);
  assert_string_equal(st.stop, "time");

  struct early_answers a = {.calls = 0};
  atomic_store(&d.until, 0);
  d.set = false;
  req.on_answer = keep_answer;
  req.answer_user = &a;
  assert_int_equal(generator_complete(g, &req, NULL, out, sizeof out, &len, &st, &err), 0);
  assert_true(d.set);
  assert_int_equal(a.calls, 1); /* once per deadline value */
  assert_string_equal(a.stop, "time");
  assert_int_equal(a.first_len, cut_len);
  assert_memory_equal(a.first, cut, cut_len);
  assert_string_not_equal(st.stop, "time");
  assert_int_equal(len, whole_len);
  assert_memory_equal(out, whole, len);
}

struct prompt_plan {
  int calls;
  double ready_at_ms, own_ms;
};

static void keep_plan(void *user, double ready_at_ms, double own_ms) {
  struct prompt_plan *p = user;
  p->calls++;
  p->ready_at_ms = ready_at_ms;
  p->own_ms = own_ms;
}

/* The prompt plan is published before the prompt is evaluated (after a first completion measured
 * the cost per token): its expected end later than the call's start for a prompt with new tokens
 * and on the same clock, so not far past the call's end either; a request's own job for it costs
 * at least the chunk the decode must finish first, and no more than the whole prompt and that
 * chunk. */
static void test_prompt_plan(void **state) {
  struct generator *g = need(state);
  struct completion_request req = request("import sys\n\nfor line in sys.stdin:\n    ", "\n", 4);
  char out[4096];
  size_t len = 0;
  struct generation_stats st;
  struct aug_err err = {0};
  assert_int_equal(generator_complete(g, &req, NULL, out, sizeof out, &len, &st, &err), 0);
  struct prompt_plan plan = {0};
  req = request("class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push",
                "\n", 4);
  req.on_prompt_plan = keep_plan;
  req.partial_user = &plan;
  req.request_prompt_budget_ms = 750;
  double before = aug_now_ms();
  assert_int_equal(generator_complete(g, &req, NULL, out, sizeof out, &len, &st, &err), 0);
  double after = aug_now_ms();
  assert_int_equal(plan.calls, 1);
  assert_true(st.n_evaluated > 0);
  assert_true(plan.ready_at_ms > before);
  assert_true(plan.ready_at_ms < after + 10 * (after - before));
  double per_token = (plan.ready_at_ms - before) / (double)st.n_evaluated;
  assert_true(plan.own_ms > 0);
  assert_true(plan.own_ms <=
              (plan.ready_at_ms - before) + (ENGINE_STABLE_CHUNK + 1) * per_token * 2);
}

static void test_cancel(void **state) {
  struct generator *g = need(state);
  atomic_bool cancel;
  atomic_init(&cancel, true);
  struct completion_request req = request("int main(void) {\n  return ", ";\n}\n", 16);
  char out[4096];
  size_t len = 0;
  struct generation_stats st;
  struct aug_err err = {0};
  assert_int_equal(generator_complete(g, &req, &cancel, out, sizeof out, &len, &st, &err),
                   AUG_ECANCELED);
  assert_int_equal(len, 0);
  assert_int_equal(st.n_generated, 0);
}

struct collected {
  char text[65536];
  size_t len;
  int calls;
};

static void collect(void *user, const char *text, size_t len) {
  struct collected *c = user;
  memcpy(c->text + c->len, text, len);
  c->len += len;
  c->calls++;
}

static void test_explain_streams(void **state) {
  struct generator *g = need(state);
  const char *code = "def square(x):\n    return x * x\n";
  struct explain_request req = {code, strlen(code), "python", 24, 0.0f, 0};
  static struct collected c;
  memset(&c, 0, sizeof c);
  char out[65536];
  size_t len = 0;
  struct generation_stats st;
  struct aug_err err = {0};
  assert_int_equal(generator_explain(g, &req, NULL, collect, &c, out, sizeof out, &len, &st, &err),
                   0);
  assert_true(len > 0);
  assert_true(c.calls >= 2);
  /* The streamed pieces are the returned text (before its trailing whitespace was trimmed). */
  assert_true(c.len >= len);
  assert_memory_equal(c.text, out, len);
  assert_true(st.n_generated <= 24);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_complete_stats_and_reuse),
      cmocka_unit_test(test_middle_layout_survives_typing),
      cmocka_unit_test(test_prompt_lookup_is_exact),
      cmocka_unit_test(test_token_healing_mid_word),
      cmocka_unit_test(test_prompt_budget_shrinks_far_context),
      cmocka_unit_test(test_prompt_budget_drops_pieces_first),
      cmocka_unit_test(test_prompt_budget_grows_resident_cut),
      cmocka_unit_test(test_avoid_earlier_suggestion),
      cmocka_unit_test(test_single_line_and_budget),
      cmocka_unit_test(test_deadline_set_during_decode),
      cmocka_unit_test(test_deadline_answers_early),
      cmocka_unit_test(test_prompt_plan),
      cmocka_unit_test(test_cancel),
      cmocka_unit_test(test_explain_streams),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
