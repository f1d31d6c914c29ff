/* Tests for plugins/context_syntax.c: on constructed C, Python, Go, Lua, JavaScript and Rust
 * documents with the cursor deep in a function whose header lies before the window, the scope
 * headers and the imports come as pieces (exact bytes); nothing when the headers are inside the
 * window; the token budget holds; an unknown language gets nothing; small edits keep the bytes of
 * unchanged pieces; the parsed-document cache evicts the least recently used uri; a qualified or
 * a bare call brings another file's signatures; through the
 * plugin host the pieces arrive ordered by stability and the host frees the plugin. */
#include "../test_support.h"

#include <sys/stat.h>
#include <time.h>

#include "grammars/syntax.h"
#include "plugins/context_syntax.h"
#include "plugins/host.h"
#include "plugins/workspace_index.h"
#include "engine/clock.h"

#define MAX_PIECES 8

/* A sink like the host's: counts bytes / 3 (the host's estimate without a model) against a
 * budget and copies the pieces. */
struct collector {
  struct {
    char name[128];
    char text[8192];
    size_t len;
    uint32_t stability;
  } pieces[MAX_PIECES];
  size_t n, tokens, budget;
};

static int collect(void *data, const struct augury_context_piece *p) {
  struct collector *c = data;
  size_t tokens = (p->text_len + 2) / 3;
  if (c->tokens + tokens > c->budget) return AUGURY_PLUGIN_ERANGE;
  assert_true(c->n < MAX_PIECES);
  assert_true(p->text_len < sizeof c->pieces[0].text);
  snprintf(c->pieces[c->n].name, sizeof c->pieces[0].name, "%s", p->name ? p->name : "");
  memcpy(c->pieces[c->n].text, p->text, p->text_len);
  c->pieces[c->n].text[p->text_len] = '\0';
  c->pieces[c->n].len = p->text_len;
  c->pieces[c->n].stability = p->stability;
  c->n++;
  c->tokens += tokens;
  return 0;
}

struct call {
  const char *uri, *path, *language_id, *text;
  size_t offset, window_start, window_end, budget;
};

static void provide(struct context_syntax *cs, const struct call *call, struct collector *out) {
  memset(out, 0, sizeof *out);
  out->budget = call->budget;
  struct augury_cursor cursor = {
      call->uri, call->path, call->language_id, call->text, strlen(call->text), call->offset, 0};
  struct augury_context_request req = {sizeof req,       &cursor,      call->window_start,
                                       call->window_end, call->budget, 50};
  struct augury_context_sink sink = {out, collect};
  char error[256] = "";
  const struct augury_plugin *p = context_syntax_plugin(cs);
  assert_int_equal(p->context_provide(p->self, &req, &sink, error), 0);
  assert_string_equal(error, "");
}

static const char *piece(const struct collector *c, uint32_t stability) {
  for (size_t i = 0; i < c->n; i++)
    if (c->pieces[i].stability == stability) return c->pieces[i].text;
  return NULL;
}

/* Byte offset of the start of 0-based line n. */
static size_t line_offset(const char *text, unsigned n) {
  size_t at = 0;
  for (unsigned l = 0; l < n; l++) {
    const char *nl = strchr(text + at, '\n');
    assert_non_null(nl);
    at = (size_t)(nl - text) + 1;
  }
  return at;
}

/* head + body_line x 40 + cursor line + tail, the cursor at the end of the cursor line. */
static char *make_doc(const char *head, const char *body_line, const char *cursor_line,
                      const char *tail, size_t *cursor, unsigned *cursor_lineno) {
  size_t cap = strlen(head) + 40 * strlen(body_line) + strlen(cursor_line) + strlen(tail) + 1;
  char *doc = malloc(cap);
  assert_non_null(doc);
  strcpy(doc, head);
  for (int i = 0; i < 40; i++)
    strcat(doc, body_line);
  strcat(doc, cursor_line);
  *cursor = strlen(doc);
  strcat(doc, tail);
  unsigned lines = 0;
  for (size_t i = 0; i < *cursor; i++)
    lines += doc[i] == '\n';
  *cursor_lineno = lines;
  return doc;
}

struct language_case {
  const char *language_id, *path;
  const char *head, *body_line, *cursor_line, *tail;
  const char *want_scopes, *want_imports;
};

static const struct language_case cases[] = {
    {"c", "src/area.c",
     "#include <stdio.h>\n#include \"point.h\"\n\nstruct point {\n  int x, y;\n};\n\n"
     "static int area(struct point *p,\n                int scale) {\n  int a = 0;\n",
     "  a += p->x * scale;\n", "  a += ", ";\n  return a;\n}\n",
     "static int area(struct point *p,\n                int scale) {\n  ...\n",
     "#include <stdio.h>\n#include \"point.h\"\n"},
    {"python", "pkg/shape.py",
     "import os\nfrom typing import List\n\n\nclass Shape:\n    \"\"\"A shape.\"\"\"\n\n"
     "    def area(self, scale: int) -> float:\n        total = 0\n",
     "        total += scale\n", "        ", "",
     "class Shape:\n    ...\n    def area(self, scale: int) -> float:\n        ...\n",
     "import os\nfrom typing import List\n"},
    {"go", "geo/point.go",
     "package geo\n\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n\ntype Point struct{ X int }\n\n"
     "func (p *Point) Scale(k int) int {\n\tx := 0\n",
     "\tx += p.X * k\n", "\tx += ", "\n\treturn x\n}\n",
     "func (p *Point) Scale(k int) int {\n\t...\n",
     "package geo\nimport (\n\t\"fmt\"\n\t\"os\"\n)\n"},
    {"lua", "lua/m.lua",
     "local util = require(\"util\")\nlocal M = {}\n\nfunction M.setup(opts)\n  local x = 0\n",
     "  x = x + util.step(opts)\n", "  x = ", "\nend\n\nreturn M\n",
     "function M.setup(opts)\n  ...\n", "local util = require(\"util\")\n"},
    {"javascript", "web/box.js",
     "import fs from 'fs';\nconst path = require('path');\n\nclass Box {\n  constructor(w) {\n"
     "    this.w = w;\n  }\n\n  area(scale) {\n    let a = 0;\n",
     "    a += this.w * scale;\n", "    a += ", ";\n  }\n}\n",
     "class Box {\n  ...\n  area(scale) {\n    ...\n",
     "import fs from 'fs';\nconst path = require('path');\n"},
    {"rust", "src/point.rs",
     "use std::fmt;\nuse std::collections::HashMap;\n\nimpl Point {\n"
     "    pub fn norm(&self) -> f64 {\n        let mut a = 0.0;\n",
     "        a += self.x * self.x;\n", "        a += ", ";\n        a\n    }\n}\n",
     "impl Point {\n    pub fn norm(&self) -> f64 {\n        ...\n",
     "use std::fmt;\nuse std::collections::HashMap;\n"},
};

static struct context_syntax *new_cs(size_t max_docs) {
  struct context_syntax_params p = context_syntax_params_default();
  p.max_docs = max_docs;
  p.compile_in_call = true;
  struct context_syntax *cs = NULL;
  struct aug_err err = {0};
  assert_int_equal(context_syntax_create(&p, &cs, &err), 0);
  return cs;
}

static void test_scopes_and_imports_outside_the_window(void **state) {
  (void)state;
  struct context_syntax *cs = new_cs(8);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const struct language_case *lc = &cases[i];
    size_t cursor;
    unsigned line;
    char *doc = make_doc(lc->head, lc->body_line, lc->cursor_line, lc->tail, &cursor, &line);
    char uri[256];
    snprintf(uri, sizeof uri, "file:///w/%s", lc->path);
    /* The window: the ten lines above the cursor and what follows it. */
    struct call call = {
        uri, lc->path, lc->language_id, doc, cursor, line_offset(doc, line - 10), strlen(doc), 512};
    struct collector got;
    provide(cs, &call, &got);
    const char *scopes = piece(&got, AUGURY_STABLE_FILE);
    const char *imports = piece(&got, AUGURY_STABLE_PROJECT);
    if (!scopes || strcmp(scopes, lc->want_scopes))
      fail_msg("%s: scopes piece\n%s\nwanted\n%s", lc->language_id, scopes ? scopes : "(none)",
               lc->want_scopes);
    if (!imports || strcmp(imports, lc->want_imports))
      fail_msg("%s: imports piece\n%s\nwanted\n%s", lc->language_id, imports ? imports : "(none)",
               lc->want_imports);
    assert_int_equal(got.n, 2);
    assert_string_equal(got.pieces[0].name, lc->path);
    /* Nothing from inside the window: every line of the pieces is an elision or lies before it. */
    for (size_t p = 0; p < got.n; p++) {
      char *copy = strdup(got.pieces[p].text);
      for (char *l = strtok(copy, "\n"); l; l = strtok(NULL, "\n")) {
        if (strstr(l, "...")) continue;
        const char *at = strstr(doc, l);
        assert_non_null(at);
        assert_true((size_t)(at - doc) + strlen(l) <= call.window_start);
      }
      free(copy);
    }

    /* The function's header inside the window: no scope piece for it. */
    call.window_start = 0;
    provide(cs, &call, &got);
    assert_int_equal(got.n, 0);
    free(doc);
  }
  context_syntax_destroy(cs);
}

/* The window starts at the method's header: the class header (outside) stays, the method's goes. */
static void test_header_inside_the_window(void **state) {
  (void)state;
  struct context_syntax *cs = new_cs(8);
  const struct language_case *py = &cases[1];
  size_t cursor;
  unsigned line;
  char *doc = make_doc(py->head, py->body_line, py->cursor_line, py->tail, &cursor, &line);
  size_t def = (size_t)(strstr(doc, "    def area") - doc);
  struct call call = {"file:///w/s.py", "s.py", "python", doc, cursor, def, strlen(doc), 512};
  struct collector got;
  provide(cs, &call, &got);
  assert_string_equal(piece(&got, AUGURY_STABLE_FILE), "class Shape:\n    ...\n");
  /* C: the window starts in the middle of the two-line header: its first line is not shown alone
   * when its last is inside. */
  const struct language_case *c = &cases[0];
  char *cdoc = make_doc(c->head, c->body_line, c->cursor_line, c->tail, &cursor, &line);
  size_t second = (size_t)(strstr(cdoc, "                int scale") - cdoc);
  struct call ccall = {"file:///w/a.c", "a.c", "c", cdoc, cursor, second, strlen(cdoc), 512};
  provide(cs, &ccall, &got);
  assert_null(piece(&got, AUGURY_STABLE_FILE));
  assert_non_null(piece(&got, AUGURY_STABLE_PROJECT));
  /* The cursor after the function (at the top level): no enclosing scope. */
  size_t end = strlen(cdoc);
  struct call after = {"file:///w/a.c", "a.c", "c", cdoc, end, line_offset(cdoc, line), end, 512};
  provide(cs, &after, &got);
  assert_null(piece(&got, AUGURY_STABLE_FILE));
  free(cdoc);
  free(doc);
  context_syntax_destroy(cs);
}

static void test_budget(void **state) {
  (void)state;
  struct context_syntax *cs = new_cs(8);
  char head[8192] = "";
  for (int i = 0; i < 60; i++) {
    char line[64];
    snprintf(line, sizeof line, "import module_number_%02d\n", i);
    strcat(head, line);
  }
  strcat(head, "\n\ndef work(a, b):\n    x = 0\n");
  size_t cursor;
  unsigned line;
  char *doc = make_doc(head, "    x += a * b\n", "    x", "\n", &cursor, &line);
  size_t budgets[] = {1, 5, 12, 40, 100, 300, 5000};
  for (size_t i = 0; i < sizeof budgets / sizeof budgets[0]; i++) {
    struct call call = {"file:///w/b.py",           "b.py",      "python",  doc, cursor,
                        line_offset(doc, line - 5), strlen(doc), budgets[i]};
    struct collector got;
    provide(cs, &call, &got);
    assert_true(got.tokens <= budgets[i]);
    const char *scopes = piece(&got, AUGURY_STABLE_FILE);
    const char *imports = piece(&got, AUGURY_STABLE_PROJECT);
    /* The scope (short, about the cursor) is served first; imports get what is left, in order. */
    if (budgets[i] >= 12) assert_string_equal(scopes, "def work(a, b):\n    ...\n");
    if (budgets[i] <= 5) assert_int_equal(got.n, 0);
    if (imports) {
      assert_int_equal(strncmp(imports, head, strlen(imports)), 0);
      assert_true(imports[strlen(imports) - 1] == '\n');
    }
    if (budgets[i] == 40) assert_non_null(imports);
    if (budgets[i] == 5000)
      assert_int_equal(strlen(imports), (size_t)(strstr(head, "\n\n") - head) + 1);
    /* Within the budget: nothing was refused by the sink either (the provider counted first). */
  }
  free(doc);
  context_syntax_destroy(cs);
}

static void test_unknown_language_gives_nothing(void **state) {
  (void)state;
  struct context_syntax *cs = new_cs(8);
  const char *text = "IDENTIFICATION DIVISION.\nPROGRAM-ID. HELLO.\n";
  struct call call = {"file:///w/x.cob", "x.cob", "cobol",      text,
                      strlen(text),      10,      strlen(text), 512};
  struct collector got;
  provide(cs, &call, &got);
  assert_int_equal(got.n, 0);
  assert_false(context_syntax_cached(cs, "file:///w/x.cob"));
  /* No languageId: the file name decides (here: none either). */
  call.language_id = "";
  provide(cs, &call, &got);
  assert_int_equal(got.n, 0);
  /* No languageId but a known file name: found by the path. */
  const struct language_case *rs = &cases[5];
  size_t cursor;
  unsigned line;
  char *doc = make_doc(rs->head, rs->body_line, rs->cursor_line, rs->tail, &cursor, &line);
  struct call byname = {"file:///w/p.rs",           "p.rs",      "", doc, cursor,
                        line_offset(doc, line - 3), strlen(doc), 512};
  provide(cs, &byname, &got);
  assert_string_equal(piece(&got, AUGURY_STABLE_FILE), rs->want_scopes);
  free(doc);
  context_syntax_destroy(cs);
}

/* Typing at the cursor, and an edit above the window inside the body: the pieces keep their bytes
 * (what the KV cache needs). An edit to the header changes them. */
static void test_small_edits_keep_the_bytes(void **state) {
  (void)state;
  struct context_syntax *cs = new_cs(8);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    const struct language_case *lc = &cases[i];
    size_t cursor;
    unsigned line;
    char *doc = make_doc(lc->head, lc->body_line, lc->cursor_line, lc->tail, &cursor, &line);
    size_t len = strlen(doc);
    char *edited = malloc(len + 64);
    size_t window_start = line_offset(doc, line - 10);
    struct call call = {"file:///w/e", lc->path, lc->language_id, doc, cursor, window_start,
                        len,           512};
    struct collector first, again;
    provide(cs, &call, &first);
    const char *typed = "abc(";
    for (size_t k = 1; k <= strlen(typed); k++) {
      memcpy(edited, doc, cursor);
      memcpy(edited + cursor, typed, k);
      memcpy(edited + cursor + k, doc + cursor, len - cursor + 1);
      call.text = edited;
      call.offset = cursor + k;
      call.window_end = len + k;
      provide(cs, &call, &again);
      assert_int_equal(again.n, first.n);
      for (size_t p = 0; p < first.n; p++)
        assert_string_equal(again.pieces[p].text, first.pieces[p].text);
    }
    /* An edit in the elided body above the window: a body line gets longer. */
    size_t body = line_offset(doc, line - 20);
    memcpy(edited, doc, body);
    memcpy(edited + body, "  ", 2);
    memcpy(edited + body + 2, doc + body, len - body + 1);
    call.text = edited;
    call.offset = cursor + 2;
    call.window_start = window_start + 2;
    call.window_end = len + 2;
    provide(cs, &call, &again);
    for (size_t p = 0; p < first.n; p++)
      assert_string_equal(again.pieces[p].text, first.pieces[p].text);
    /* The same request again is the same bytes too (the unchanged text is not reparsed). */
    provide(cs, &call, &again);
    for (size_t p = 0; p < first.n; p++)
      assert_string_equal(again.pieces[p].text, first.pieces[p].text);
    free(edited);
    free(doc);
  }
  context_syntax_destroy(cs);
}

static void test_cache_evicts_the_least_recently_used(void **state) {
  (void)state;
  struct context_syntax *cs = new_cs(2);
  const struct language_case *lc = &cases[3];
  size_t cursor;
  unsigned line;
  char *doc = make_doc(lc->head, lc->body_line, lc->cursor_line, lc->tail, &cursor, &line);
  const char *uris[] = {"file:///a.lua", "file:///b.lua", "file:///a.lua", "file:///c.lua"};
  struct collector got;
  for (int i = 0; i < 4; i++) {
    struct call call = {uris[i],     "m.lua", "lua", doc, cursor, line_offset(doc, line - 10),
                        strlen(doc), 512};
    provide(cs, &call, &got);
    assert_string_equal(piece(&got, AUGURY_STABLE_FILE), lc->want_scopes);
  }
  /* a was used after b: b went when c came. */
  assert_true(context_syntax_cached(cs, "file:///a.lua"));
  assert_false(context_syntax_cached(cs, "file:///b.lua"));
  assert_true(context_syntax_cached(cs, "file:///c.lua"));
  /* Another language for a uri the cache holds: parsed afresh with the new grammar. */
  const char *js = "function f(a) {\n  return a;\n}\n";
  struct call call = {"file:///a.lua", "a.js", "javascript", js, 20, 16, strlen(js), 512};
  provide(cs, &call, &got);
  assert_string_equal(piece(&got, AUGURY_STABLE_FILE), "function f(a) {\n");
  free(doc);
  context_syntax_destroy(cs);
}

/* Definitions of the names used around the cursor, from outside the window: whole when short, a
 * header and "..." when long, in document order; nothing for a name defined nowhere else. */
static void test_definitions_of_names_near_the_cursor(void **state) {
  (void)state;
  struct context_syntax *cs = new_cs(8);
  const char *c_head = "#include <stdlib.h>\n\n#define MAX_ITEMS 64\n\nstruct item {\n  int id;\n"
                       "  int weight;\n};\n\nstatic int weigh(const struct item *it, int scale) {\n"
                       "  return it->weight * scale;\n}\n\nstatic int unrelated(void) {\n"
                       "  return 0;\n}\n\nint total(struct item *items, int n) {\n  int sum = 0;\n";
  size_t cursor;
  unsigned line;
  char *doc = make_doc(c_head, "  sum += 1;\n",
                       "  for (int i = 0; i < MAX_ITEMS && i < n; i++)\n    sum += weigh(",
                       ");\n"
                       "  return sum;\n}\n",
                       &cursor, &line);
  struct call call = {"file:///w/t.c", "t.c", "c", doc, cursor, line_offset(doc, line - 10),
                      strlen(doc),     512};
  struct collector got;
  provide(cs, &call, &got);
  assert_int_equal(got.n, 3);
  assert_string_equal(got.pieces[0].text, "#include <stdlib.h>\n");
  assert_string_equal(got.pieces[1].text, "int total(struct item *items, int n) {\n  ...\n");
  assert_int_equal(got.pieces[2].stability, AUGURY_STABLE_FILE);
  assert_string_equal(got.pieces[2].text, "#define MAX_ITEMS 64\n...\n"
                                          "static int weigh(const struct item *it, int scale) {\n"
                                          "  return it->weight * scale;\n}\n");
  /* A budget that holds the scope and the imports but not every definition: the nearest name's
   * (weigh, on the cursor's line) is kept. */
  call.budget = (strlen(got.pieces[0].text) + 2) / 3 + (strlen(got.pieces[1].text) + 2) / 3 + 30;
  provide(cs, &call, &got);
  assert_true(got.tokens <= call.budget);
  assert_int_equal(got.n, 3);
  assert_string_equal(got.pieces[2].text, "static int weigh(const struct item *it, int scale) {\n"
                                          "  return it->weight * scale;\n}\n");
  free(doc);

  const char *py_head = "import os\n\n\nclass Config:\n    \"\"\"Settings.\"\"\"\n\n"
                        "    def __init__(self):\n        self.a = 1\n        self.b = 2\n"
                        "        self.c = 3\n\n\ndef helper(x):\n    return x * 2\n\n\n"
                        "def main():\n    total = 0\n";
  doc = make_doc(py_head, "    total += 1\n", "    cfg = Config()\n    total += helper(cfg.a",
                 ")\n", &cursor, &line);
  struct call py = {"file:///w/m.py", "m.py", "python", doc, cursor, line_offset(doc, line - 10),
                    strlen(doc),      512};
  provide(cs, &py, &got);
  assert_int_equal(got.n, 3);
  assert_string_equal(got.pieces[2].text, "class Config:\n    ...\ndef helper(x):\n"
                                          "    return x * 2\n");
  /* A method of the class that holds the cursor, defined above the window (found by the walk
   * of the class's members). */
  const char *method_head =
      "class Stack:\n    def push(self, item):\n        self.items.append(item)\n"
      "\n    def size(self):\n        return len(self.items)\n\n"
      "    def drain(self):\n        out = []\n";
  char *mdoc = make_doc(method_head, "        out.append(1)\n", "        while self.size(", "):\n",
                        &cursor, &line);
  struct call method = {
      "file:///w/s.py", "s.py", "python", mdoc, cursor, line_offset(mdoc, line - 10),
      strlen(mdoc),     512};
  provide(cs, &method, &got);
  assert_int_equal(got.n, 2);
  assert_string_equal(got.pieces[0].text,
                      "class Stack:\n    ...\n    def drain(self):\n        ...\n");
  assert_string_equal(got.pieces[1].text, "    def size(self):\n        return len(self.items)\n");
  free(mdoc);
  /* The names' definitions inside the window are not repeated. */
  py.window_start = 0;
  provide(cs, &py, &got);
  assert_int_equal(got.n, 0);
  free(doc);
  context_syntax_destroy(cs);
}

/* A syntax context with the workspace index of tests/fixtures/workspace, scanned. */
static struct context_syntax *with_fixture_workspace(struct workspace_index **wi) {
  struct aug_err err = {0};
  assert_int_equal(workspace_index_create(AUGURY_FIXTURES_DIR "/workspace", NULL, wi, &err), 0);
  assert_int_equal(workspace_index_start(*wi, &err), 0);
  workspace_index_wait_idle(*wi);
  struct context_syntax_params p = context_syntax_params_default();
  p.compile_in_call = true;
  p.index = *wi;
  struct context_syntax *cs = NULL;
  assert_int_equal(context_syntax_create(&p, &cs, &err), 0);
  return cs;
}

/* With a workspace index (of tests/fixtures/workspace), a name the document uses but does not
 * define brings its definitions from the other files: one piece per file, named by its path, in
 * path order, after the document's own; the same call gives the same bytes; the cursor's own file
 * is left out of the lookup; a budget spent by the document's pieces leaves them out. */
static void test_definitions_from_other_files(void **state) {
  (void)state;
  struct workspace_index *wi = NULL;
  struct context_syntax *cs = with_fixture_workspace(&wi);
  const char *doc = "#include \"lib/geometry.h\"\n\nstatic int unit = 1;\n\n"
                    "int twice(const struct rect *r) {\n  return 2 * unit * rect_area(r);\n}\n";
  size_t cursor = (size_t)(strstr(doc, "(r);") - doc);
  struct call call = {"file:///w/app.c", "app.c", "c", doc, cursor, 0, strlen(doc), 512};
  call.window_start = (size_t)(strstr(doc, "int twice") - doc);
  struct collector got;
  provide(cs, &call, &got);
  assert_int_equal(got.n, 4);
  assert_string_equal(got.pieces[0].text, "#include \"lib/geometry.h\"\n");
  assert_string_equal(got.pieces[1].name, "app.c");
  assert_string_equal(got.pieces[1].text, "static int unit = 1;\n"); /* the document's own */
  assert_string_equal(got.pieces[2].name, "lib/geometry.c");
  assert_int_equal(got.pieces[2].stability, AUGURY_STABLE_FILE);
  assert_string_equal(got.pieces[2].text,
                      "int rect_area(const struct rect *r) {\n  return r->w * r->h;\n}\n");
  assert_string_equal(got.pieces[3].name, "lib/geometry.h");
  assert_string_equal(
      got.pieces[3].text,
      "struct rect {\n  int w, h;\n};\n...\nint rect_area(const struct rect *r);\n");
  struct collector again;
  provide(cs, &call, &again);
  assert_int_equal(again.n, got.n);
  for (size_t i = 0; i < got.n; i++) {
    assert_string_equal(again.pieces[i].name, got.pieces[i].name);
    assert_string_equal(again.pieces[i].text, got.pieces[i].text);
  }
  /* The cursor in lib/geometry.c itself: only the header's definitions come. */
  call.path = "lib/geometry.c";
  call.uri = "file:///w/lib/geometry.c";
  provide(cs, &call, &got);
  assert_int_equal(got.n, 3);
  assert_string_equal(got.pieces[2].name, "lib/geometry.h");
  /* A budget the document's pieces spend: nothing from other files. */
  call.budget = (strlen("#include \"lib/geometry.h\"\n") + 2) / 3 +
                (strlen("static int unit = 1;\n") + 2) / 3 + 5;
  provide(cs, &call, &got);
  assert_int_equal(got.n, 2);
  assert_true(got.tokens <= call.budget);
  context_syntax_destroy(cs);
  workspace_index_destroy(wi);
}

/* A qualifier at the cursor that names a module of the workspace ("geometry." with
 * lib/geometry.c and .h there) brings that module's signatures, those whose names start with what
 * is typed after it, the one file chosen by path; a qualifier naming no file brings none. */
static void test_module_of_the_qualifier(void **state) {
  (void)state;
  struct workspace_index *wi = NULL;
  struct context_syntax *cs = with_fixture_workspace(&wi);
  const char *doc = "import geometry\n\n\ndef area(shape):\n    return geometry.\n";
  size_t cursor = (size_t)(strstr(doc, ".\n") - doc) + 1;
  struct call call = {"file:///w/app.py", "app.py", "python", doc, cursor, 0, strlen(doc), 512};
  struct collector got;
  provide(cs, &call, &got);
  size_t module = got.n;
  for (size_t i = 0; i < got.n; i++)
    if (!strcmp(got.pieces[i].name, "lib/geometry.c")) module = i;
  assert_true(module < got.n);
  assert_string_equal(got.pieces[module].text, "int rect_area(const struct rect *r) {\n");
  assert_int_equal(got.pieces[module].stability, AUGURY_STABLE_FILE);
  /* What is typed after the qualifier filters the names. */
  char typed[128];
  snprintf(typed, sizeof typed, "import geometry\n\n\ndef area(shape):\n    return geometry.rect");
  call.text = typed;
  call.offset = call.window_end = strlen(typed);
  provide(cs, &call, &got);
  bool found = false;
  for (size_t i = 0; i < got.n; i++)
    found = found || !strcmp(got.pieces[i].name, "lib/geometry.c");
  assert_true(found);
  snprintf(typed, sizeof typed, "import geometry\n\n\ndef area(shape):\n    return geometry.zz");
  call.offset = call.window_end = strlen(typed);
  provide(cs, &call, &got);
  for (size_t i = 0; i < got.n; i++)
    assert_null(strstr(got.pieces[i].name, "geometry."));
  /* A qualifier that names no file of the workspace. */
  snprintf(typed, sizeof typed, "import os\n\n\ndef area(shape):\n    return os.");
  call.offset = call.window_end = strlen(typed);
  provide(cs, &call, &got);
  for (size_t i = 0; i < got.n; i++)
    assert_null(strstr(got.pieces[i].name, "lib/"));
  context_syntax_destroy(cs);
  workspace_index_destroy(wi);
}

/* A workspace under /tmp for the neighbour tests: a Go package of three files and a test, a Go
 * file of another package, and C sources. */
static void put_file(const char *root, const char *rel, const char *text) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", root, rel);
  char *slash = strrchr(path, '/');
  *slash = '\0';
  mkdir(path, 0700);
  *slash = '/';
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static const char reader_go[] =
    "package csv\n\nfunc validDelim(r rune) bool {\n\treturn r != 0\n}\n"
    "\nfunc lengthNL(b []byte) int {\n\treturn 0\n}\n";
static const char stack_h[] =
    "#include <stdint.h>\n\ntypedef struct Stack Stack;\n\n"
    "Stack *ts_stack_new(void);\nuint32_t ts_stack_state(const Stack *);\n";

static void sent(struct workspace_index *wi, const char *rel, const char *text) {
  struct aug_err err = {0};
  assert_int_equal(workspace_index_update(wi, rel, text, strlen(text), &err), 0);
  workspace_index_wait_idle(wi);
}

static const char *piece_named(const struct collector *c, const char *name) {
  for (size_t i = 0; i < c->n; i++)
    if (!strcmp(c->pieces[i].name, name)) return c->pieces[i].text;
  return NULL;
}

/* A bare call in Go or C, where the callee's file is named nowhere: the signatures of the file
 * the editor sent last among the cursor's neighbours (in Go the package's files, tests only for a
 * test; in C the C and C++ files), those sharing a word with a name near the cursor first when the
 * budget is short; none before the editor sent one, and none in Python. */
static void test_neighbour_of_a_bare_call(void **state) {
  (void)state;
  char root[] = "/tmp/augury-cn-XXXXXX";
  assert_non_null(mkdtemp(root));
  put_file(root, "pkg/reader.go", reader_go);
  put_file(root, "pkg/other.go", "package csv\n\nfunc unrelated() {}\n");
  put_file(root, "pkg/reader_test.go", "package csv\n\nfunc TestRead(t *testing.T) {}\n");
  put_file(root, "cmd/main.go", "package main\n\nfunc mainHelper() {}\n");
  put_file(root, "src/stack.h", stack_h);
  put_file(root, "lib/util.py", "def helper(x):\n    return x\n");
  struct workspace_index *wi = NULL;
  struct aug_err err = {0};
  assert_int_equal(workspace_index_create(root, NULL, &wi, &err), 0);
  assert_int_equal(workspace_index_start(wi, &err), 0);
  workspace_index_wait_idle(wi);
  struct context_syntax_params p = context_syntax_params_default();
  p.compile_in_call = true;
  p.index = wi;
  struct context_syntax *cs = NULL;
  assert_int_equal(context_syntax_create(&p, &cs, &err), 0);

  const char *doc = "package csv\n\nfunc (w *Writer) Write(record []string) error {\n\tif !\n"
                    "\t\treturn errInvalidDelim\n\t}\n\treturn nil\n}\n";
  size_t cursor = (size_t)(strstr(doc, "!\n") - doc) + 1;
  struct call call = {
      "file:///w/writer.go", "pkg/writer.go", "go", doc, cursor, 0, strlen(doc), 512};
  struct collector got;
  provide(cs, &call, &got); /* the scan read them all; the editor sent none */
  assert_null(piece_named(&got, "pkg/reader.go"));
  sent(wi, "pkg/reader.go", reader_go);
  provide(cs, &call, &got);
  assert_string_equal(piece_named(&got, "pkg/reader.go"),
                      "func validDelim(r rune) bool {\nfunc lengthNL(b []byte) int {\n");
  call.budget = 30; /* half of it for the neighbour: the related signature alone fits */
  provide(cs, &call, &got);
  assert_string_equal(piece_named(&got, "pkg/reader.go"), "func validDelim(r rune) bool {\n");
  call.budget = 512;
  /* Another package's file and the package's test are not neighbours of writer.go. */
  sent(wi, "cmd/main.go", "package main\n\nfunc mainHelper() {}\n");
  sent(wi, "pkg/reader_test.go", "package csv\n\nfunc TestRead(t *testing.T) {}\n");
  provide(cs, &call, &got);
  assert_non_null(piece_named(&got, "pkg/reader.go"));
  sent(wi, "pkg/other.go", "package csv\n\nfunc unrelated() {}\n");
  provide(cs, &call, &got);
  assert_null(piece_named(&got, "pkg/reader.go"));
  assert_string_equal(piece_named(&got, "pkg/other.go"), "func unrelated() {}\n");
  /* A test file sees the package's tests. */
  call.path = "pkg/writer_test.go";
  sent(wi, "pkg/reader_test.go", "package csv\n\nfunc TestRead(t *testing.T) {}\n");
  provide(cs, &call, &got);
  assert_string_equal(piece_named(&got, "pkg/reader_test.go"), "func TestRead(t *testing.T) {}\n");

  /* C: a header the user looked at. */
  const char *c_doc = "static bool paused(Parser *self, unsigned version) {\n"
                      "  return self->stack && \n}\n";
  cursor = (size_t)(strstr(c_doc, "&& ") - c_doc) + 3;
  struct call c_call = {
      "file:///w/parser.c", "src/parser.c", "c", c_doc, cursor, 0, strlen(c_doc), 512};
  sent(wi, "src/stack.h", stack_h);
  provide(cs, &c_call, &got);
  assert_string_equal(piece_named(&got, "src/stack.h"),
                      "typedef struct Stack Stack;\nStack *ts_stack_new(void);\n"
                      "uint32_t ts_stack_state(const Stack *);\n");

  /* Python names other files' functions through imports: no neighbour there. */
  sent(wi, "lib/util.py", "def helper(x):\n    return x\n");
  const char *py_doc = "def run():\n    return \n";
  struct call py_call = {"file:///w/app.py", "app.py", "python",       py_doc,
                         strlen(py_doc) - 1, 0,        strlen(py_doc), 512};
  provide(cs, &py_call, &got);
  assert_null(piece_named(&got, "lib/util.py"));

  context_syntax_destroy(cs);
  workspace_index_destroy(wi);
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
  assert_int_equal(system(cmd), 0);
}

/* By default a language's queries compile on a background thread: the first calls give nothing,
 * then the pieces come, the same bytes as a compile inside the call gives. */
static void test_queries_compile_in_the_background(void **state) {
  (void)state;
  struct context_syntax *cs = NULL;
  struct aug_err err = {0};
  assert_int_equal(context_syntax_create(NULL, &cs, &err), 0);
  struct context_syntax *sync = new_cs(8);
  const struct language_case *lc = &cases[4];
  size_t cursor;
  unsigned line;
  char *doc = make_doc(lc->head, lc->body_line, lc->cursor_line, lc->tail, &cursor, &line);
  struct call call = {
      "file:///w/b.js", lc->path, lc->language_id, doc, cursor, line_offset(doc, line - 10),
      strlen(doc),      512};
  struct collector got, want;
  provide(sync, &call, &want);
  assert_int_equal(want.n, 2);
  double t0 = aug_now_ms();
  provide(cs, &call, &got);
  assert_int_equal(got.n, 0); /* not compiled yet */
  while (got.n == 0 && aug_now_ms() - t0 < 10000) {
    struct timespec ts = {0, 5 * 1000000L};
    nanosleep(&ts, NULL);
    provide(cs, &call, &got);
  }
  assert_int_equal(got.n, want.n);
  for (size_t i = 0; i < got.n; i++)
    assert_string_equal(got.pieces[i].text, want.pieces[i].text);
  /* Destroy while another language compiles: it waits for that compile and frees everything. */
  struct call rs = {"file:///w/x.rs", "x.rs", "rust", "fn main() {\n}\n", 11, 3, 14, 512};
  provide(cs, &rs, &got);
  free(doc);
  context_syntax_destroy(sync);
  context_syntax_destroy(cs);
}

/* Through the host: registered as a built-in, its pieces come imports first; the host's destroy
 * frees the plugin (ASan's leak check sees it). Also the cost per call on a 2000-line file. */
static void test_through_the_host(void **state) {
  (void)state;
  struct plugin_host_params hp = plugin_host_params_default();
  hp.context_budget_ms = 2000;
  struct plugin_host *host = NULL;
  struct aug_err err = {0};
  assert_int_equal(plugin_host_create(&hp, &host, &err), 0);
  struct context_syntax *cs = new_cs(8);
  assert_int_equal(plugin_host_register(host, context_syntax_plugin(cs), "built-in", &err), 0);
  struct plugin_info info;
  plugin_host_info(host, 0, &info);
  assert_string_equal(info.name, CONTEXT_SYNTAX_NAME);
  assert_true(info.context && !info.completion && !info.command);
  /* A 2000-line C file: 40 functions of 50 lines, the cursor deep in the last one. */
  size_t cap = 1 << 20, n = 0;
  char *doc = malloc(cap);
  n += (size_t)snprintf(doc + n, cap - n, "#include <stdio.h>\n#include <stdlib.h>\n");
  for (int f = 0; f < 40; f++) {
    n += (size_t)snprintf(doc + n, cap - n, "int function_%d(int a, int b) {\n  int x = a;\n", f);
    for (int l = 0; l < 47; l++)
      n += (size_t)snprintf(doc + n, cap - n, "  x += b * %d;\n", l);
    n += (size_t)snprintf(doc + n, cap - n, "}\n");
  }
  size_t cursor = n - strlen("  x += b * 46;\n}\n");
  struct augury_cursor c = {"file:///w/big.c", "big.c", "c", doc, n, cursor, 0};
  size_t window_start = cursor - 20 * strlen("  x += b * 10;\n");
  double t0 = aug_now_ms();
  struct plugin_context ctx = {0};
  plugin_host_gather_context(host, &c, window_start, n, NULL, NULL, &ctx);
  double first = aug_now_ms() - t0;
  assert_int_equal(ctx.n_pieces, 2);
  assert_string_equal(ctx.pieces[0].plugin, CONTEXT_SYNTAX_NAME);
  assert_int_equal(ctx.pieces[0].stability, AUGURY_STABLE_PROJECT);
  assert_string_equal(ctx.pieces[0].text, "#include <stdio.h>\n#include <stdlib.h>\n");
  assert_string_equal(ctx.pieces[1].text, "int function_39(int a, int b) {\n  ...\n");
  assert_string_equal(ctx.pieces[1].name, "big.c");
  assert_string_equal(ctx.notes, "");
  plugin_context_free(&ctx);
  /* Typing: each call reparses incrementally; the provider's own cost, called directly. */
  const struct augury_plugin *p = context_syntax_plugin(cs);
  double worst = 0, total = 0;
  int rounds = 20;
  for (int r = 0; r < rounds; r++) {
    doc[cursor + 2] = (char)('a' + r % 26); /* an edit at the cursor */
    struct augury_context_request req = {sizeof req, &c, window_start, n, 512, 50};
    struct collector got = {.budget = 512};
    struct augury_context_sink sink = {&got, collect};
    char error[256] = "";
    double t = aug_now_ms();
    assert_int_equal(p->context_provide(p->self, &req, &sink, error), 0);
    double ms = aug_now_ms() - t;
    total += ms;
    if (ms > worst) worst = ms;
    assert_int_equal(got.n, 2);
  }
  /* What of it is the incremental reparse alone (syntax_doc_set_text on the same edits). */
  struct syntax_doc *alone = NULL;
  assert_int_equal(syntax_doc_create(grammars_find_language_id("c"), &alone, &err), 0);
  assert_int_equal(syntax_doc_set_text(alone, doc, n, &err), 0);
  double reparse = 0;
  for (int r = 0; r < rounds; r++) {
    doc[cursor + 2] = (char)('A' + r % 26);
    double t = aug_now_ms();
    assert_int_equal(syntax_doc_set_text(alone, doc, n, &err), 0);
    reparse += aug_now_ms() - t;
  }
  syntax_doc_destroy(alone);
  print_message("syntax context on a 2000-line C file: first call %.2f ms through the host "
                "(queries compiled in the call, full parse), then %.3f ms per call (worst %.3f) "
                "after a one-byte edit, of which the reparse %.3f ms\n",
                first, total / rounds, worst, reparse / rounds);
  free(doc);
  plugin_host_destroy(host); /* frees cs */
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_scopes_and_imports_outside_the_window),
      cmocka_unit_test(test_header_inside_the_window),
      cmocka_unit_test(test_budget),
      cmocka_unit_test(test_unknown_language_gives_nothing),
      cmocka_unit_test(test_small_edits_keep_the_bytes),
      cmocka_unit_test(test_cache_evicts_the_least_recently_used),
      cmocka_unit_test(test_definitions_of_names_near_the_cursor),
      cmocka_unit_test(test_definitions_from_other_files),
      cmocka_unit_test(test_module_of_the_qualifier),
      cmocka_unit_test(test_neighbour_of_a_bare_call),
      cmocka_unit_test(test_queries_compile_in_the_background),
      cmocka_unit_test(test_through_the_host),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
