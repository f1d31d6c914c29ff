/* Candidate syntax check tests, in every grammar: a candidate that closes correctly is kept whole;
 * one that adds a stray ')' or an unbalanced brace is cut to its good lines; one that breaks from
 * its first line is dropped; a document that already had an error elsewhere still accepts a good
 * candidate. Also the shape at the cursor (an empty block asks for the block, and the candidate is
 * cut where that block closes), incremental document updates against fresh parses, and the
 * refusals. Documents mark the cursor with "@@". */
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "grammars/syntax.h"
#include "tests/unit/test_support.h"

struct trim_case {
  const char *language;
  const char *what;
  const char *document; /* with "@@" at the cursor */
  const char *candidate;
  const char *kept; /* what must be kept; "" = dropped */
};

static const struct trim_case trim_cases[] = {
    /* C */
    {"c", "closes", "int add(int a, int b) {\n  return @@\n}\n\nint main(void) { return 0; }\n",
     "a + b;", "a + b;"},
    {"c", "stray paren", "int f(int x) {\n  int y = x * 2;\n  @@\n}\n", "y += 1;\n  return y);",
     "y += 1;"},
    {"c", "unbalanced brace", "int f(int x) {\n  int y = x * 2;\n  @@\n}\n",
     "y += 1;\n  return y;\n}\n}", "y += 1;\n  return y;"},
    {"c", "broken first line", "int f(int x) {\n  int y = x * 2;\n  @@\n}\n",
     "y += );\n  return y;", ""},
    {"c", "error elsewhere", "int f(int x) {\n  return @@\n}\n\nint g( {\n", "x * 2;", "x * 2;"},
    /* C++ */
    {"cpp", "closes", "class A {\n public:\n  int get() const { return @@ }\n};\n", "value_;",
     "value_;"},
    {"cpp", "stray paren", "int f(int x) {\n  auto y = x * 2;\n  @@\n}\n",
     "y += 1;\n  return std::max(y, 0));", "y += 1;"},
    {"cpp", "unbalanced brace", "namespace n {\nint f(int x) {\n  @@\n}\n}\n", "return x;\n}\n}\n}",
     "return x;"},
    {"cpp", "broken first line", "int f(int x) {\n  auto y = x;\n  @@\n}\n", "y += );\n  return y;",
     ""},
    {"cpp", "error elsewhere", "int f(int x) {\n  return @@\n}\nclass B { int x\n", "x * 2;",
     "x * 2;"},
    /* Python */
    {"python", "closes", "def add(a, b):\n    return @@\n\n\nprint(add(1, 2))\n", "a + b", "a + b"},
    {"python", "stray paren", "def f(x):\n    y = x * 2\n    @@\n\nprint(f(1))\n",
     "y += 1\n    return y)", "y += 1"},
    {"python", "unbalanced bracket", "def f(x):\n    y = [x]\n    @@\n\nprint(f(1))\n",
     "y.append(1)\n    return y]", "y.append(1)"},
    {"python", "broken first line", "def f(x):\n    y = x * 2\n    @@\n\nprint(f(1))\n",
     "y += )\n    return y", ""},
    {"python", "error elsewhere", "def f(x):\n    return @@\n\n\ndef g(:\n    pass\n", "x * 2",
     "x * 2"},
    /* JavaScript */
    {"javascript", "closes", "function add(a, b) {\n  return @@\n}\n", "a + b;", "a + b;"},
    {"javascript", "stray paren", "function f(x) {\n  let y = x * 2;\n  @@\n}\n",
     "y += 1;\n  return Math.max(y, 0));", "y += 1;"},
    {"javascript", "unbalanced brace", "function f(x) {\n  let y = x * 2;\n  @@\n}\n",
     "y += 1;\n  return y;\n}\n}", "y += 1;\n  return y;"},
    {"javascript", "broken first line", "function f(x) {\n  let y = x;\n  @@\n}\n",
     "y += );\n  return y;", ""},
    {"javascript", "error elsewhere", "function f(x) {\n  return @@\n}\nfunction g( {\n", "x * 2;",
     "x * 2;"},
    /* TypeScript */
    {"typescript", "closes", "function add(a: number, b: number): number {\n  return @@\n}\n",
     "a + b;", "a + b;"},
    {"typescript", "stray paren", "function f(x: number): number {\n  let y = x * 2;\n  @@\n}\n",
     "y += 1;\n  return Math.max(y, 0));", "y += 1;"},
    {"typescript", "unbalanced brace", "class C {\n  f(x: number): number {\n    @@\n  }\n}\n",
     "return x;\n  }\n}\n}", "return x;"},
    {"typescript", "broken first line", "function f(x: number) {\n  let y = x;\n  @@\n}\n",
     "y += );\n  return y;", ""},
    {"typescript", "error elsewhere",
     "function f(x: number): number {\n  return @@\n}\ninterface I { a: \n", "x * 2;", "x * 2;"},
    /* TSX */
    {"tsx", "closes", "export function Hello(p: { name: string }) {\n  return @@\n}\n",
     "<div>{p.name}</div>;", "<div>{p.name}</div>;"},
    {"tsx", "stray paren", "function f(x: number) {\n  const y = x * 2;\n  @@\n}\n",
     "const z = y + 1;\n  return <b>{z}</b>);", "const z = y + 1;"},
    {"tsx", "unbalanced brace", "function f(x: number) {\n  const y = x * 2;\n  @@\n}\n",
     "const z = y;\n  return z;\n}\n}", "const z = y;\n  return z;"},
    {"tsx", "broken first line", "function f(x: number) {\n  const y = x;\n  @@\n}\n",
     "y += );\n  return y;", ""},
    {"tsx", "error elsewhere", "function f(x: number) {\n  return @@\n}\nconst a = <div>;\n",
     "x * 2;", "x * 2;"},
    /* Go */
    {"go", "closes", "package p\n\nfunc add(a, b int) int {\n\treturn @@\n}\n", "a + b", "a + b"},
    {"go", "stray paren", "package p\n\nfunc f(x int) int {\n\ty := x * 2\n\t@@\n}\n",
     "y++\n\treturn max(y, 0))", "y++"},
    {"go", "unbalanced brace", "package p\n\nfunc f(x int) int {\n\ty := x * 2\n\t@@\n}\n",
     "y++\n\treturn y\n}\n}", "y++\n\treturn y"},
    {"go", "broken first line", "package p\n\nfunc f(x int) int {\n\ty := x\n\t@@\n}\n",
     "y += )\n\treturn y", ""},
    {"go", "error elsewhere", "package p\n\nfunc f(x int) int {\n\treturn @@\n}\n\nfunc g( {\n",
     "x * 2", "x * 2"},
    /* Rust */
    {"rust", "closes", "fn add(a: i32, b: i32) -> i32 {\n    @@\n}\n", "a + b", "a + b"},
    {"rust", "stray paren", "fn f(x: i32) -> i32 {\n    let y = x * 2;\n    @@\n}\n",
     "let z = y + 1;\n    z.max(0))", "let z = y + 1;"},
    {"rust", "unbalanced brace", "fn f(x: i32) -> i32 {\n    let y = x * 2;\n    @@\n}\n",
     "let z = y + 1;\n    z\n}\n}", "let z = y + 1;\n    z"},
    {"rust", "broken first line", "fn f(x: i32) -> i32 {\n    let y = x;\n    @@\n}\n",
     "let z = );\n    z", ""},
    {"rust", "error elsewhere", "fn f(x: i32) -> i32 {\n    @@\n}\n\nfn g( {\n", "x * 2", "x * 2"},
    /* Lua */
    {"lua", "closes", "local function add(a, b)\n  return @@\nend\n", "a + b", "a + b"},
    {"lua", "stray paren", "local function f(x)\n  local y = x * 2\n  @@\nend\n",
     "y = y + 1\n  return math.max(y, 0))", "y = y + 1"},
    {"lua", "unbalanced end", "local function f(x)\n  local y = x * 2\n  @@\nend\n",
     "y = y + 1\n  return y\nend\nend", "y = y + 1\n  return y"},
    {"lua", "broken first line", "local function f(x)\n  local y = x\n  @@\nend\n",
     "y = )\n  return y", ""},
    {"lua", "error elsewhere", "local function f(x)\n  return @@\nend\n\nlocal t = {\n", "x * 2",
     "x * 2"},
};

/* Splits a document at "@@": *text (caller frees) without the marker, *cursor its offset. */
static char *split_cursor(const char *document, size_t *cursor, size_t *length) {
  const char *mark = strstr(document, "@@");
  assert_non_null(mark);
  size_t n = strlen(document);
  char *text = malloc(n - 1);
  *cursor = (size_t)(mark - document);
  memcpy(text, document, *cursor);
  memcpy(text + *cursor, mark + 2, n - *cursor - 2);
  *length = n - 2;
  text[*length] = '\0';
  return text;
}

static struct syntax_doc *open_doc(const char *language, const char *document, size_t *cursor) {
  const struct grammar *g = grammars_find_name(language);
  assert_non_null(g);
  struct syntax_doc *doc = NULL;
  struct aug_err err = {0};
  assert_int_equal(syntax_doc_create(g, &doc, &err), 0);
  size_t length;
  char *text = split_cursor(document, cursor, &length);
  assert_int_equal(syntax_doc_set_text(doc, text, length, &err), 0);
  free(text);
  return doc;
}

static void test_trim_cases(void **state) {
  (void)state;
  bool seen[16] = {0};
  for (size_t i = 0; i < sizeof trim_cases / sizeof trim_cases[0]; i++) {
    const struct trim_case *tc = &trim_cases[i];
    size_t cursor;
    struct syntax_doc *doc = open_doc(tc->language, tc->document, &cursor);
    if (!strcmp(tc->what, "error elsewhere")) {
      assert_true(syntax_doc_error_count(doc) > 0);
    } else if (syntax_doc_error_count(doc) > 0 && strcmp(tc->what, "closes")) {
      fail_msg("%s/%s: the document should parse", tc->language, tc->what);
    }
    struct syntax_verdict v;
    struct aug_err err = {0};
    assert_int_equal(
        syntax_check(doc, cursor, tc->candidate, strlen(tc->candidate), NULL, &v, &err), 0);
    if (v.keep != strlen(tc->kept) || memcmp(tc->candidate, tc->kept, v.keep)) {
      fail_msg("%s/%s: kept \"%.*s\" (%zu bytes, %u parses, %zu new errors in full), want \"%s\"",
               tc->language, tc->what, (int)v.keep, tc->candidate, v.keep, v.parses,
               v.new_errors_full, tc->kept);
    }
    if (!strcmp(tc->what, "closes") || !strcmp(tc->what, "error elsewhere")) {
      assert_int_equal(v.parses, 1);
      assert_int_equal(v.new_errors_full, 0);
    } else {
      assert_true(v.new_errors_full > 0);
    }
    assert_false(v.budget_exhausted);
    syntax_doc_destroy(doc);
    for (size_t k = 0; k < grammars_count(); k++) {
      if (!strcmp(grammars_at(k)->name, tc->language)) seen[k] = true;
    }
  }
  for (size_t k = 0; k < grammars_count(); k++) {
    if (!seen[k]) fail_msg("no trim case for %s", grammars_at(k)->name);
  }
}

struct shape_case {
  const char *language;
  const char *document;
  enum syntax_shape_kind kind;
  const char *closer; /* text at block_end, or NULL for SIZE_MAX */
  const char *candidate;
  const char *kept;
};

static const struct shape_case shape_cases[] = {
    /* The editor auto-closed the brace: the block ends at it, so the candidate's own '}' and what
     * follows go. */
    {"c", "int f(int x) {\n  @@\n}\n", SYNTAX_MULTI_LINE, "}",
     "int y = x;\n  return y;\n}\n\nint g(void) {\n  return 0;\n}", "int y = x;\n  return y;"},
    /* Unclosed block before more code: the candidate closes it and is cut there. */
    {"c", "int f(int x) {\n  @@\n\nint g(void) { return 0; }\n", SYNTAX_MULTI_LINE, NULL,
     "return x;\n}\n\nint h(void) {", "return x;\n}"},
    {"c", "int f(int x) {\n  return @@\n}\n", SYNTAX_SINGLE_LINE, NULL, "x;", "x;"},
    {"c", "int f(int x) {\n  int y = x;\n  @@\n}\n", SYNTAX_SINGLE_LINE, NULL, "return y;",
     "return y;"},
    {"python", "def f(x):\n    @@\n", SYNTAX_MULTI_LINE, NULL,
     "y = x * 2\n    return y\n\ndef g():\n    pass", "y = x * 2\n    return y"},
    {"python", "class A:\n    def f(self):\n        @@\n\n    def g(self):\n        pass\n",
     SYNTAX_MULTI_LINE, NULL, "return 1\n\n    def h(self):\n        pass", "return 1"},
    {"python", "if x:\n    @@\nelse:\n    pass\n", SYNTAX_MULTI_LINE, NULL, "y = 1", "y = 1"},
    {"python", "d = {\n    'a': 1,\n    @@\n}\n", SYNTAX_SINGLE_LINE, NULL, "'b': 2,", "'b': 2,"},
    /* Python's if goes on with elif: the block ends with its body, not with the statement, and a
     * comment first in the body is part of it. */
    {"python", "for x in y:\n    if x:\n        @@\n    elif z:\n        pass\n", SYNTAX_MULTI_LINE,
     NULL, "a = 1\n    elif w:\n        b = 2", "a = 1"},
    {"python", "for x in y:\n    if x:\n        @@\n    elif z:\n        pass\n", SYNTAX_MULTI_LINE,
     NULL, "# note\n        a = 1\n    elif w:\n        b = 2", "# note\n        a = 1"},
    {"lua", "local function f(x)\n  @@\nend\n", SYNTAX_MULTI_LINE, "end",
     "return x\nend\n\nprint(1)", "return x"},
    {"lua", "if x then\n  @@\nend\n", SYNTAX_MULTI_LINE, "end", "print(x)", "print(x)"},
    {"go", "package p\n\nfunc f(x int) int {\n\t@@\n}\n", SYNTAX_MULTI_LINE, "}",
     "return x\n}\n\nfunc g() {}", "return x"},
    {"rust", "fn f(x: i32) -> i32 {\n    // body\n    @@\n}\n", SYNTAX_MULTI_LINE, "}",
     "x + 1\n}\nfn g() {}", "x + 1"},
    {"javascript", "const f = (x) => {\n  @@\n};\n", SYNTAX_MULTI_LINE, "}",
     "return x;\n};\nconst g = 1;", "return x;"},
    {"typescript", "class A {\n  @@\n}\n", SYNTAX_MULTI_LINE, "}", "x = 1;\n}\nclass B {}",
     "x = 1;"},
    {"cpp", "namespace n {\n@@\n}\n", SYNTAX_MULTI_LINE, "}", "int x = 1;\n}\nint y;",
     "int x = 1;"},
};

static void test_shape_and_block_cut(void **state) {
  (void)state;
  for (size_t i = 0; i < sizeof shape_cases / sizeof shape_cases[0]; i++) {
    const struct shape_case *sc = &shape_cases[i];
    size_t cursor;
    struct syntax_doc *doc = open_doc(sc->language, sc->document, &cursor);
    struct syntax_shape shape;
    struct aug_err err = {0};
    assert_int_equal(syntax_shape_at(doc, cursor, &shape, &err), 0);
    if (shape.kind != sc->kind) {
      fail_msg("case %zu (%s): shape %d, want %d", i, sc->language, shape.kind, sc->kind);
    }
    size_t length;
    const char *text = syntax_doc_text(doc, &length);
    if (sc->closer) {
      if (shape.block_end == SIZE_MAX) fail_msg("case %zu (%s): no block end", i, sc->language);
      assert_true(shape.block_end > cursor && shape.block_end < length);
      assert_memory_equal(text + shape.block_end, sc->closer, strlen(sc->closer));
    } else {
      assert_true(shape.block_end == SIZE_MAX);
    }
    if (shape.kind == SYNTAX_MULTI_LINE) assert_true(shape.opener < cursor);
    struct syntax_verdict v;
    assert_int_equal(
        syntax_check(doc, cursor, sc->candidate, strlen(sc->candidate), NULL, &v, &err), 0);
    if (v.keep != strlen(sc->kept) || memcmp(sc->candidate, sc->kept, v.keep)) {
      fail_msg("case %zu (%s): kept \"%.*s\" (block cut %d, %u parses), want \"%s\"", i,
               sc->language, (int)v.keep, sc->candidate, v.block_cut, v.parses, sc->kept);
    }
    assert_int_equal(v.shape.kind, sc->kind);
    syntax_doc_destroy(doc);
  }
}

/* With cut_at_block_end off the block is not cut, only trimmed where the parse breaks. */
static void test_block_cut_off(void **state) {
  (void)state;
  size_t cursor;
  struct syntax_doc *doc = open_doc("python", "def f(x):\n    @@\n", &cursor);
  struct syntax_check_params p = syntax_check_params_default();
  p.cut_at_block_end = false;
  const char *candidate = "return x\n\ndef g():\n    pass";
  struct syntax_verdict v;
  struct aug_err err = {0};
  assert_int_equal(syntax_check(doc, cursor, candidate, strlen(candidate), &p, &v, &err), 0);
  assert_int_equal(v.keep, strlen(candidate));
  assert_false(v.block_cut);
  syntax_doc_destroy(doc);
}

/* A candidate that replaces text after the cursor (params.replaced). */
static void test_replaced_range(void **state) {
  (void)state;
  size_t cursor;
  struct syntax_doc *doc = open_doc("c", "int f(int x) {\n  return @@x);\n}\n", &cursor);
  assert_true(syntax_doc_error_count(doc) > 0);
  struct syntax_check_params p = syntax_check_params_default();
  p.replaced = 3; /* "x);" */
  struct syntax_verdict v;
  struct aug_err err = {0};
  assert_int_equal(syntax_check(doc, cursor, "x + 1;", 6, &p, &v, &err), 0);
  assert_int_equal(v.keep, 6);
  assert_int_equal(v.new_errors_full, 0);
  p.replaced = 7; /* past the end of the text */
  assert_int_equal(syntax_check(doc, cursor, "x", 1, &p, &v, &err), AUG_ERANGE);
  syntax_doc_destroy(doc);
}

/* The parse budget: a candidate whose every line breaks, with fewer parses allowed than lines. */
static void test_budget(void **state) {
  (void)state;
  size_t cursor;
  struct syntax_doc *doc = open_doc("c", "int f(int x) {\n  @@\n}\n", &cursor);
  struct syntax_check_params p = syntax_check_params_default();
  p.max_parses = 3;
  p.cut_at_block_end = false;
  const char *candidate = "x = (;\nx = (;\nx = (;\nx = (;\nx = (;\nx = (;";
  struct syntax_verdict v;
  struct aug_err err = {0};
  assert_int_equal(syntax_check(doc, cursor, candidate, strlen(candidate), &p, &v, &err), 0);
  assert_int_equal(v.keep, 0);
  assert_true(v.budget_exhausted);
  assert_int_equal(v.parses, 3);
  assert_int_equal(v.lines_total, 6);
  syntax_doc_destroy(doc);
}

/* The time budget stops a parse that runs past it; the parser is then reset, so the next check is
 * unaffected. */
static void test_time_budget(void **state) {
  (void)state;
  size_t n = 0, capacity = 1 << 20;
  char *text = malloc(capacity);
  n += (size_t)snprintf(text + n, capacity - n, "int f0(int x) {\n  return x;\n}\n");
  size_t cursor = n - 3; /* after "return x;" of f0 */
  for (int i = 1; i < 3000; i++) {
    n += (size_t)snprintf(text + n, capacity - n, "int f%d(int x) {\n  return x + %d;\n}\n", i, i);
  }
  const struct grammar *g = grammars_find_name("c");
  struct syntax_doc *doc;
  struct aug_err err = {0};
  assert_int_equal(syntax_doc_create(g, &doc, &err), 0);
  assert_int_equal(syntax_doc_set_text(doc, text, n, &err), 0);
  assert_int_equal(syntax_doc_error_count(doc), 0);
  struct syntax_check_params p = syntax_check_params_default();
  p.time_budget_us = 1;
  /* A candidate that opens a block: the reparse has to run through the rest of the file. */
  const char *candidate = "\n  if (x) {";
  struct syntax_verdict v;
  assert_int_equal(syntax_check(doc, cursor, candidate, strlen(candidate), &p, &v, &err), 0);
  assert_true(v.timed_out);
  assert_int_equal(v.keep, 0);
  p.time_budget_us = 0;
  assert_int_equal(syntax_check(doc, cursor, candidate, strlen(candidate), &p, &v, &err), 0);
  assert_false(v.timed_out);
  assert_int_equal(v.keep, 0); /* unclosed: dropped for its error, not for time */
  assert_true(v.new_errors_full > 0);
  const char *good = "\n  x++;";
  assert_int_equal(syntax_check(doc, cursor, good, strlen(good), &p, &v, &err), 0);
  assert_int_equal(v.keep, strlen(good));

  /* A per-parse budget: the slow parse of the unclosed block counts as failing, and what is kept
   * is at most the good first line, never the block. */
  p.parse_budget_us = 1;
  const char *mixed = "\n  x++;\n  if (x) {";
  assert_int_equal(syntax_check(doc, cursor, mixed, strlen(mixed), &p, &v, &err), 0);
  assert_true(v.slow_parses >= 1);
  assert_false(v.timed_out);
  assert_true(v.keep == 0 || v.keep == strlen("\n  x++;"));
  syntax_doc_destroy(doc);
  free(text);
}

/* What the progress hook does on its first `stalls` calls (later calls only count): sleep (the
 * thread off the CPU, as a descheduled one is on a loaded machine) or spin (CPU time spent). */
struct stall {
  unsigned stalls;
  unsigned calls;
  unsigned sleep_ms;
  unsigned spin_ms; /* of this thread's CPU time */
};

static uint64_t thread_cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void stall_cb(void *data) {
  struct stall *s = data;
  if (s->calls++ >= s->stalls) return;
  if (s->sleep_ms) {
    struct timespec ts = {s->sleep_ms / 1000, (long)(s->sleep_ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
  }
  if (s->spin_ms) {
    uint64_t end = thread_cpu_ns() + (uint64_t)s->spin_ms * 1000000u;
    while (thread_cpu_ns() < end) {
    }
  }
}

/* A Python function of 20 statements and a cursor at the start of its body's last line: the
 * candidate, 12 more statements, takes a parse of several hundred operations, so the progress
 * callback (and the hook) runs during it, yet costs little CPU (0.3 ms; about 10 ms under
 * valgrind, still well within the budgets below). */
static struct syntax_doc *stall_doc(char *candidate, size_t capacity, size_t *cursor) {
  char document[8192];
  size_t n = (size_t)snprintf(document, sizeof document, "def f(a, b):\n");
  for (int i = 0; i < 20; i++)
    n += (size_t)snprintf(document + n, sizeof document - n, "    x%d = g(a, b + %d)\n", i, i);
  n += (size_t)snprintf(document + n, sizeof document - n, "    @@\n    return a\n");
  size_t c = 0;
  for (int i = 0; i < 12; i++)
    c += (size_t)snprintf(candidate + c, capacity - c, "%sy%d = h(a, [b, %d])", i ? "\n    " : "",
                          i, i);
  struct syntax_doc *doc = open_doc("python", document, cursor);
  assert_int_equal(syntax_doc_error_count(doc), 0);
  return doc;
}

/* The budgets count the thread's CPU time: a sleep longer than both budgets (but within their
 * wall-clock backstops) in the middle of the parse of a good candidate leaves it kept whole. With
 * wall-clock budgets the check was given up (timed_out) and the candidate dropped. */
static void test_budget_ignores_time_off_cpu(void **state) {
  (void)state;
  char candidate[8192];
  size_t cursor;
  struct syntax_doc *doc = stall_doc(candidate, sizeof candidate, &cursor);
  struct stall stall = {.stalls = 1, .sleep_ms = 150};
  struct syntax_check_params p = syntax_check_params_default();
  p.parse_budget_us = 50000; /* backstop 500 ms of wall time */
  p.time_budget_us = 100000; /* backstop 1 s */
  p.progress_hook_cb = stall_cb;
  p.progress_hook_data = &stall;
  struct syntax_verdict v;
  struct aug_err err = {0};
  assert_int_equal(syntax_check(doc, cursor, candidate, strlen(candidate), &p, &v, &err), 0);
  assert_true(stall.calls >= 1); /* the sleep happened inside the parse */
  assert_false(v.timed_out);
  assert_int_equal(v.slow_parses, 0);
  assert_int_equal(v.parses, 1);
  assert_int_equal(v.keep, strlen(candidate));
  syntax_doc_destroy(doc);
}

/* The wall-clock backstop: a thread kept off the CPU for longer than SYNTAX_WALL_BACKSTOP times
 * the budget still gives up, though it has spent almost no CPU time. */
static void test_budget_wall_backstop(void **state) {
  (void)state;
  char candidate[8192];
  size_t cursor;
  struct syntax_doc *doc = stall_doc(candidate, sizeof candidate, &cursor);
  struct stall stall = {.stalls = 1, .sleep_ms = 30};
  struct syntax_check_params p = syntax_check_params_default();
  p.time_budget_us = 1000; /* backstop 10 ms */
  p.progress_hook_cb = stall_cb;
  p.progress_hook_data = &stall;
  struct syntax_verdict v;
  struct aug_err err = {0};
  assert_int_equal(syntax_check(doc, cursor, candidate, strlen(candidate), &p, &v, &err), 0);
  assert_true(stall.calls >= 1);
  assert_true(v.timed_out);
  assert_int_equal(v.keep, 0);

  /* The same for one parse: taken as failing, and the lines before are parsed again (the hook
   * sleeps only once) and kept. */
  stall = (struct stall){.stalls = 1, .sleep_ms = 30};
  p.time_budget_us = 0;
  p.parse_budget_us = 1000;
  assert_int_equal(syntax_check(doc, cursor, candidate, strlen(candidate), &p, &v, &err), 0);
  assert_true(stall.calls >= 1);
  assert_false(v.timed_out);
  assert_true(v.slow_parses >= 1);
  assert_true(v.keep < strlen(candidate));
  syntax_doc_destroy(doc);
}

/* CPU time spent in the parse still counts: a parse that burns more CPU than its budget is taken
 * as failing, however long or short the wall time it took. */
static void test_budget_counts_cpu_time(void **state) {
  (void)state;
  char candidate[8192];
  size_t cursor;
  struct syntax_doc *doc = stall_doc(candidate, sizeof candidate, &cursor);
  struct stall stall = {.stalls = 1, .spin_ms = 3};
  struct syntax_check_params p = syntax_check_params_default();
  p.parse_budget_us = 1000;
  p.progress_hook_cb = stall_cb;
  p.progress_hook_data = &stall;
  struct syntax_verdict v;
  struct aug_err err = {0};
  assert_int_equal(syntax_check(doc, cursor, candidate, strlen(candidate), &p, &v, &err), 0);
  assert_true(stall.calls >= 1);
  assert_true(v.slow_parses >= 1);
  assert_true(v.keep < strlen(candidate));

  stall = (struct stall){.stalls = 1, .spin_ms = 3};
  p.parse_budget_us = 0;
  p.time_budget_us = 1000;
  assert_int_equal(syntax_check(doc, cursor, candidate, strlen(candidate), &p, &v, &err), 0);
  assert_true(v.timed_out);
  assert_int_equal(v.keep, 0);

  /* A slow parse, then the check's budget spent in the next one: both are reported (the slow
   * parse was not counted in a verdict that timed out). Each parse stops at the first callback
   * that sees its budget spent, so the second spin falls in the second parse. */
  stall = (struct stall){.stalls = 2, .spin_ms = 5};
  p.parse_budget_us = 1000;
  p.time_budget_us = 8000; /* past after two spins, not after one */
  assert_int_equal(syntax_check(doc, cursor, candidate, strlen(candidate), &p, &v, &err), 0);
  assert_true(stall.calls >= 2);
  assert_true(v.timed_out);
  assert_true(v.slow_parses >= 1);
  assert_int_equal(v.parses, 2);
  assert_int_equal(v.keep, 0);
  syntax_doc_destroy(doc);
}

/* Incremental updates give the tree a fresh parse gives, after each of a series of edits. */
static void test_incremental_matches_fresh(void **state) {
  (void)state;
  static const char *const versions[] = {
      "def f(x):\n    return x\n",
      "def f(x):\n    return x + 1\n",
      "import os\n\ndef f(x):\n    return x + 1\n",
      "import os\n\ndef f(x):\n    return (x + 1\n",
      "import os\n\ndef f(x, y):\n    return (x + y)\n\nclass A:\n    pass\n",
      "",
      "x = 1\n",
  };
  const struct grammar *g = grammars_find_name("python");
  struct aug_err err = {0};
  struct syntax_doc *doc, *fresh;
  assert_int_equal(syntax_doc_create(g, &doc, &err), 0);
  for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
    size_t n = strlen(versions[i]);
    assert_int_equal(syntax_doc_set_text(doc, versions[i], n, &err), 0);
    assert_int_equal(syntax_doc_create(g, &fresh, &err), 0);
    assert_int_equal(syntax_doc_set_text(fresh, versions[i], n, &err), 0);
    char *a = ts_node_string(ts_tree_root_node(syntax_doc_tree(doc)));
    char *b = ts_node_string(ts_tree_root_node(syntax_doc_tree(fresh)));
    assert_string_equal(a, b);
    free(a);
    free(b);
    assert_int_equal(syntax_doc_error_count(doc), syntax_doc_error_count(fresh));
    size_t length;
    assert_string_equal(syntax_doc_text(doc, &length), versions[i]);
    assert_int_equal(length, n);
    syntax_doc_destroy(fresh);
  }
  syntax_doc_destroy(doc);
}

/* Random edits (deterministic): after each, the incremental tree equals a fresh parse, in every
 * grammar (a wrong point or byte in the computed edit shows up as a different tree). */
static void test_random_edits(void **state) {
  (void)state;
  static const char *const pieces[] = {"(", ")", "{",   "}",  "\n", "  ",   "x", "= 1",
                                       ";", ":", "end", "\"", "if", "\n\t", "é"};
  uint32_t seed = 12345;
  for (size_t k = 0; k < grammars_count(); k++) {
    const struct grammar *g = grammars_at(k);
    struct aug_err err = {0};
    struct syntax_doc *doc, *fresh = NULL;
    assert_int_equal(syntax_doc_create(g, &doc, &err), 0);
    char text[4096] = "a = f(b)\nif x then y end\n{ z; }\n";
    size_t n = strlen(text);
    assert_int_equal(syntax_doc_set_text(doc, text, n, &err), 0);
    for (int step = 0; step < 40; step++) {
      seed = seed * 1103515245u + 12345u;
      size_t at = (seed >> 8) % (n + 1);
      seed = seed * 1103515245u + 12345u;
      size_t removed = (seed >> 8) % 4;
      if (removed > n - at) removed = n - at;
      seed = seed * 1103515245u + 12345u;
      const char *piece = pieces[(seed >> 8) % (sizeof pieces / sizeof pieces[0])];
      size_t added = strlen(piece);
      if (n - removed + added >= sizeof text) break;
      memmove(text + at + added, text + at + removed, n - at - removed);
      memcpy(text + at, piece, added);
      n = n - removed + added;
      text[n] = '\0';
      assert_int_equal(syntax_doc_set_text(doc, text, n, &err), 0);
      char *a = ts_node_string(ts_tree_root_node(syntax_doc_tree(doc)));
      /* fresh: parsed from nothing each time */
      syntax_doc_destroy(fresh);
      assert_int_equal(syntax_doc_create(g, &fresh, &err), 0);
      assert_int_equal(syntax_doc_set_text(fresh, text, n, &err), 0);
      char *b = ts_node_string(ts_tree_root_node(syntax_doc_tree(fresh)));
      if (strcmp(a, b)) fail_msg("%s, step %d: incremental %s\nfresh %s", g->name, step, a, b);
      free(a);
      free(b);
    }
    syntax_doc_destroy(fresh);
    syntax_doc_destroy(doc);
  }
}

/* A document whose ERROR node spans the edit: the verdict says the check could not judge it. */
static void test_inside_error(void **state) {
  (void)state;
  size_t cursor;
  struct syntax_doc *doc = open_doc("c", "int f( {\n  int x = @@;\n  return x;\n", &cursor);
  struct syntax_verdict v;
  struct aug_err err = {0};
  assert_int_equal(syntax_check(doc, cursor, "1", 1, NULL, &v, &err), 0);
  assert_true(v.inside_error);
  syntax_doc_destroy(doc);
  doc = open_doc("c", "int f(void) {\n  int x = @@;\n  return x;\n}\nint g( {\n", &cursor);
  assert_int_equal(syntax_check(doc, cursor, "1", 1, NULL, &v, &err), 0);
  assert_false(v.inside_error);
  assert_int_equal(v.keep, 1);
  syntax_doc_destroy(doc);
  /* The function being typed, its closing brace not there yet: the document's ERROR ends at the
   * cursor, and the right candidate leaves a MISSING '}' in its place, which cannot be told from
   * it. Unjudged, not dropped; a candidate that closes the function too parses clean: kept. */
  doc = open_doc("c", "long sum(const int *v, int n) {\n  long t = 0;\n  ret@@\n", &cursor);
  assert_int_equal(syntax_check(doc, cursor, "urn t;", 6, NULL, &v, &err), 0);
  assert_true(v.inside_error);
  assert_int_equal(v.keep, 0);
  assert_int_equal(syntax_check(doc, cursor, "urn t;\n}", 8, NULL, &v, &err), 0);
  assert_false(v.inside_error);
  assert_int_equal(v.keep, 8);
  syntax_doc_destroy(doc);
  /* An error ending at the cursor inside a closed function: a clean candidate is kept, a broken
   * one that cannot be cut is unjudged. */
  doc = open_doc("c", "int f(void) {\n  int x = g(@@\n  return x;\n}\n", &cursor);
  assert_int_equal(syntax_check(doc, cursor, "1);", 3, NULL, &v, &err), 0);
  assert_int_equal(v.keep, 3);
  syntax_doc_destroy(doc);
}

static void test_refusals(void **state) {
  (void)state;
  syntax_doc_destroy(NULL);
  size_t cursor;
  struct syntax_doc *doc = open_doc("go", "package p\n@@", &cursor);
  struct syntax_verdict v;
  struct syntax_shape shape;
  struct aug_err err = {0};
  assert_int_equal(syntax_check(doc, cursor + 1, "x", 1, NULL, &v, &err), AUG_ERANGE);
  assert_non_null(strstr(err.msg, "outside the text"));
  assert_int_equal(syntax_shape_at(doc, cursor + 1, &shape, &err), AUG_ERANGE);
  /* An empty or blank candidate is dropped without a parse. */
  assert_int_equal(syntax_check(doc, cursor, "", 0, NULL, &v, &err), 0);
  assert_int_equal(v.keep, 0);
  assert_int_equal(v.parses, 0);
  assert_int_equal(syntax_check(doc, cursor, " \n\t", 3, NULL, &v, &err), 0);
  assert_int_equal(v.keep, 0);
  /* A line that only opens a block: kept only if the rest closes it. */
  assert_int_equal(syntax_check(doc, cursor, "func f() {\n}", 12, NULL, &v, &err), 0);
  assert_int_equal(v.keep, 12);
  assert_int_equal(syntax_check(doc, cursor, "func f() {", 10, NULL, &v, &err), 0);
  assert_int_equal(v.keep, 0);
  syntax_doc_destroy(doc);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_trim_cases),
      cmocka_unit_test(test_shape_and_block_cut),
      cmocka_unit_test(test_block_cut_off),
      cmocka_unit_test(test_replaced_range),
      cmocka_unit_test(test_budget),
      cmocka_unit_test(test_time_budget),
      cmocka_unit_test(test_budget_ignores_time_off_cpu),
      cmocka_unit_test(test_budget_wall_backstop),
      cmocka_unit_test(test_budget_counts_cpu_time),
      cmocka_unit_test(test_incremental_matches_fresh),
      cmocka_unit_test(test_random_edits),
      cmocka_unit_test(test_inside_error),
      cmocka_unit_test(test_refusals),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
