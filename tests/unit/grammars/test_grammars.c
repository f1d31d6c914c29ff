/* Grammar table tests: every compiled-in grammar loads through the ABI check and matches its pin
 * in grammars/grammars.tsv; lookups by languageId and file name; the refusal of a grammar whose
 * ABI is outside the runtime's range (by the check function and by a constructed TSLanguage);
 * every query compiles for every grammar and finds the expected captures on a snippet. */
#include <stdbool.h>

#include "grammars/grammars.h"
#include "grammars/syntax.h"
#include "tests/unit/test_support.h"

static void test_every_grammar_loads(void **state) {
  (void)state;
  assert_int_equal(grammars_count(), 9);
  assert_null(grammars_at(grammars_count()));
  for (size_t i = 0; i < grammars_count(); i++) {
    const struct grammar *g = grammars_at(i);
    const TSLanguage *language = NULL;
    struct aug_err err = {0};
    assert_int_equal(grammars_language(g, &language, &err), 0);
    assert_non_null(language);
    uint32_t abi = ts_language_abi_version(language);
    assert_true(abi >= TREE_SITTER_MIN_COMPATIBLE_LANGUAGE_VERSION);
    assert_true(abi <= TREE_SITTER_LANGUAGE_VERSION);
    TSParser *parser = ts_parser_new();
    assert_true(ts_parser_set_language(parser, language));
    ts_parser_delete(parser);
    assert_ptr_equal(grammars_find_name(g->name), g);
  }
}

/* The versions in the table are the ones grammars.cmake built from. */
static void test_versions_match_the_pins(void **state) {
  (void)state;
  char path[4096];
  snprintf(path, sizeof path, "%s/grammars/grammars.tsv", AUGURY_SOURCE_DIR);
  FILE *f = fopen(path, "r");
  assert_non_null(f);
  char pins[8192] = "";
  char line[512];
  while (fgets(line, sizeof line, f)) {
    if (line[0] == '#') continue;
    char package[200], version[64];
    if (sscanf(line, "%199s %63s", package, version) == 2) {
      size_t n = strlen(pins);
      snprintf(pins + n, sizeof pins - n, "|%s@%s|", package, version);
    }
  }
  fclose(f);
  assert_non_null(strstr(pins, "|tree-sitter@"));
  for (size_t i = 0; i < grammars_count(); i++) {
    const struct grammar *g = grammars_at(i);
    char want[300];
    snprintf(want, sizeof want, "|%s@%s|", g->package, g->version);
    if (!strstr(pins, want)) fail_msg("%s: %s is not pinned in grammars.tsv", g->name, want);
  }
}

static void test_find(void **state) {
  (void)state;
  static const struct {
    const char *language_id, *name;
  } ids[] = {
      {"c", "c"},
      {"cpp", "cpp"},
      {"python", "python"},
      {"javascript", "javascript"},
      {"javascriptreact", "javascript"},
      {"typescript", "typescript"},
      {"typescriptreact", "tsx"},
      {"go", "go"},
      {"rust", "rust"},
      {"lua", "lua"},
  };
  for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
    const struct grammar *g = grammars_find_language_id(ids[i].language_id);
    assert_non_null(g);
    assert_string_equal(g->name, ids[i].name);
  }
  assert_null(grammars_find_language_id("cobol"));
  assert_null(grammars_find_language_id(""));
  assert_null(grammars_find_language_id("typescriptreact2"));
  assert_null(grammars_find_language_id(NULL));

  static const struct {
    const char *path, *name;
  } paths[] = {
      {"/src/engine/gguf.c", "c"}, {"x.h", "c"},
      {"a/b.hpp", "cpp"},          {"lib.cc", "cpp"},
      {"os.py", "python"},         {"stubs/os.pyi", "python"},
      {"index.mjs", "javascript"}, {"app.jsx", "javascript"},
      {"main.ts", "typescript"},   {"view.tsx", "tsx"},
      {"main.go", "go"},           {"lib.rs", "rust"},
      {"init.lua", "lua"},
  };
  for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
    const struct grammar *g = grammars_find_path(paths[i].path);
    if (!g) fail_msg("no grammar for %s", paths[i].path);
    assert_string_equal(g->name, paths[i].name);
  }
  assert_null(grammars_find_path("Makefile"));
  assert_null(grammars_find_path("notes.txt"));
  assert_null(grammars_find_path("dir.py/file"));
  assert_null(grammars_find_path(".c.orig"));
}

static void test_abi_check(void **state) {
  (void)state;
  struct aug_err err = {0};
  assert_int_equal(grammars_check_abi("ok", TREE_SITTER_LANGUAGE_VERSION, &err), 0);
  assert_int_equal(grammars_check_abi("ok", TREE_SITTER_MIN_COMPATIBLE_LANGUAGE_VERSION, &err), 0);

  uint32_t too_new = TREE_SITTER_LANGUAGE_VERSION + 1;
  assert_int_equal(grammars_check_abi("future", too_new, &err), AUG_EUNSUPPORTED);
  char want[200];
  snprintf(want, sizeof want, "grammar 'future' has ABI version %u", too_new);
  assert_non_null(strstr(err.msg, want));
  snprintf(want, sizeof want, "loads ABI versions %u to %u",
           (unsigned)TREE_SITTER_MIN_COMPATIBLE_LANGUAGE_VERSION,
           (unsigned)TREE_SITTER_LANGUAGE_VERSION);
  assert_non_null(strstr(err.msg, want));

  uint32_t too_old = TREE_SITTER_MIN_COMPATIBLE_LANGUAGE_VERSION - 1;
  assert_int_equal(grammars_check_abi("ancient", too_old, &err), AUG_EUNSUPPORTED);
  snprintf(want, sizeof want, "grammar 'ancient' has ABI version %u", too_old);
  assert_non_null(strstr(err.msg, want));
}

/* A TSLanguage whose first field (abi_version, tree_sitter/parser.h) is out of range: the rest
 * is zero and must never be read. */
static uint32_t fake_language_words[64];
static const TSLanguage *fake_language(void) {
  return (const TSLanguage *)fake_language_words;
}

static void test_abi_refusal_of_a_constructed_language(void **state) {
  (void)state;
  struct grammar fake = {"fake",  "fake",        ".fake", "tree-sitter-fake",
                         "9.9.9", fake_language, "fake"};
  uint32_t versions[] = {TREE_SITTER_LANGUAGE_VERSION + 1, 99,
                         TREE_SITTER_MIN_COMPATIBLE_LANGUAGE_VERSION - 1, 0};
  for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
    fake_language_words[0] = versions[i];
    assert_int_equal(ts_language_abi_version(fake_language()), versions[i]);
    const TSLanguage *language = (const TSLanguage *)1;
    struct aug_err err = {0};
    assert_int_equal(grammars_language(&fake, &language, &err), AUG_EUNSUPPORTED);
    assert_null(language);
    char want[100];
    snprintf(want, sizeof want, "'fake' has ABI version %u", versions[i]);
    assert_non_null(strstr(err.msg, want));

    struct syntax_doc *doc = (struct syntax_doc *)1;
    assert_int_equal(syntax_doc_create(&fake, &doc, &err), AUG_EUNSUPPORTED);
    assert_null(doc);
    TSQuery *query = (TSQuery *)1;
    assert_int_equal(grammars_query_create(&fake, GRAMMAR_QUERY_SCOPES, &query, &err),
                     AUG_EUNSUPPORTED);
    assert_null(query);
    /* The runtime refuses it as well, which is what the check spares us from finding out later. */
    TSParser *parser = ts_parser_new();
    assert_false(ts_parser_set_language(parser, fake_language()));
    ts_parser_delete(parser);
  }
}

static void test_every_query_compiles(void **state) {
  (void)state;
  for (size_t i = 0; i < grammars_count(); i++) {
    const struct grammar *g = grammars_at(i);
    for (int kind = 0; kind < GRAMMAR_QUERY_COUNT; kind++) {
      assert_non_null(grammars_query_source(g, kind, NULL));
      TSQuery *query = NULL;
      struct aug_err err = {0};
      int rc = grammars_query_create(g, kind, &query, &err);
      if (rc) fail_msg("%s/%s: %s", g->name, grammars_query_kind_name(kind), err.msg);
      assert_non_null(query);
      assert_true(ts_query_pattern_count(query) > 0);
      ts_query_delete(query);
    }
  }
}

/* Whether pattern uses a capture whose name is name (or, with prefix, starts with name). */
static bool pattern_has_capture(const TSQuery *query, uint32_t pattern, const char *name,
                                bool prefix) {
  for (uint32_t id = 0; id < ts_query_capture_count(query); id++) {
    uint32_t length;
    const char *capture = ts_query_capture_name_for_id(query, id, &length);
    bool match = prefix ? length >= strlen(name) && !strncmp(capture, name, strlen(name))
                        : length == strlen(name) && !strncmp(capture, name, length);
    if (match && ts_query_capture_quantifier_for_id(query, pattern, id) != TSQuantifierZero) {
      return true;
    }
  }
  return false;
}

/* The capture conventions of grammars.h hold in every pattern of every query: the context
 * providers rely on them. */
static void test_query_conventions(void **state) {
  (void)state;
  for (size_t i = 0; i < grammars_count(); i++) {
    const struct grammar *g = grammars_at(i);
    for (int kind = 0; kind < GRAMMAR_QUERY_COUNT; kind++) {
      TSQuery *query;
      struct aug_err err = {0};
      assert_int_equal(grammars_query_create(g, kind, &query, &err), 0);
      for (uint32_t p = 0; p < ts_query_pattern_count(query); p++) {
        bool ok;
        switch (kind) {
        case GRAMMAR_QUERY_SCOPES:
          ok = pattern_has_capture(query, p, "scope", false) &&
               pattern_has_capture(query, p, "scope.body", false);
          break;
        case GRAMMAR_QUERY_IMPORTS: ok = pattern_has_capture(query, p, "import", false); break;
        case GRAMMAR_QUERY_DEFINITIONS:
          ok = pattern_has_capture(query, p, "name", false) &&
               pattern_has_capture(query, p, "definition.", true);
          break;
        default: ok = pattern_has_capture(query, p, "reference.", true); break;
        }
        if (!ok) {
          fail_msg("%s/%s: pattern %u lacks the captures grammars.h promises", g->name,
                   grammars_query_kind_name(kind), p);
        }
      }
      ts_query_delete(query);
    }
  }
}

/* Captures of one query on a snippet, as "capture=text" lines (text cut at the first newline). */
static char *run_query(const struct grammar *g, enum grammar_query_kind kind, const char *text) {
  const TSLanguage *language;
  struct aug_err err = {0};
  assert_int_equal(grammars_language(g, &language, &err), 0);
  TSQuery *query;
  assert_int_equal(grammars_query_create(g, kind, &query, &err), 0);
  TSParser *parser = ts_parser_new();
  assert_true(ts_parser_set_language(parser, language));
  TSTree *tree = ts_parser_parse_string(parser, NULL, text, (uint32_t)strlen(text));
  assert_false(ts_node_has_error(ts_tree_root_node(tree)));
  TSQueryCursor *cursor = ts_query_cursor_new();
  ts_query_cursor_exec(cursor, query, ts_tree_root_node(tree));
  size_t capacity = 1 << 16, used = 0;
  char *out = calloc(1, capacity);
  TSQueryMatch match;
  while (ts_query_cursor_next_match(cursor, &match)) {
    if (!grammars_match_passes(query, &match, text, strlen(text))) continue;
    for (uint16_t c = 0; c < match.capture_count; c++) {
      uint32_t name_length;
      const char *name = ts_query_capture_name_for_id(query, match.captures[c].index, &name_length);
      uint32_t start = ts_node_start_byte(match.captures[c].node);
      uint32_t end = ts_node_end_byte(match.captures[c].node);
      const char *nl = memchr(text + start, '\n', end - start);
      if (nl) end = (uint32_t)(nl - text);
      int n = snprintf(out + used, capacity - used, "%.*s=%.*s\n", (int)name_length, name,
                       (int)(end - start), text + start);
      if (n > 0 && (size_t)n < capacity - used) used += (size_t)n;
    }
  }
  ts_query_cursor_delete(cursor);
  ts_tree_delete(tree);
  ts_parser_delete(parser);
  ts_query_delete(query);
  return out;
}

struct query_case {
  const char *language;
  const char *snippet;
  /* per kind: "capture=text" lines that must all be among the captures; "!" + line: must not */
  const char *expect[GRAMMAR_QUERY_COUNT];
};

static const struct query_case query_cases[] = {
    {"c",
     "#include <stdio.h>\n#define MAX 4\nstruct point { int x; };\ntypedef struct point point_t;\n"
     "static int count;\nint *area(struct point *p) {\n  return helper(p->x);\n}\n",
     {"scope=struct point { int x; }\nscope=int *area(struct point *p) {\nscope.body={\n",
      "import=#include <stdio.h>\n",
      "name=MAX\nname=point\nname=point_t\nname=count\nname=area\ndefinition.function=int "
      "*area(struct point *p) {\n",
      "reference.call=helper\nreference.field=x\nreference.type=point\n"}},
    {"cpp",
     "#include <vector>\nusing std::vector;\nnamespace geo {\nclass Shape {\n public:\n  double "
     "area() const;\n};\ndouble Shape::area() const { return compute(1); }\n}\n",
     {"scope=namespace geo {\nscope=class Shape {\n",
      "import=#include <vector>\nimport=using "
      "std::vector;\n",
      "name=geo\nname=Shape\nname=area\nname=Shape::area\ndefinition.class=class Shape {\n",
      "reference.call=compute\nreference.namespace=std\nreference.type=Shape\n"}},
    {"python",
     "import os\nfrom sys import path as p\n\nLIMIT = 3\n\nclass Point:\n    x = 0\n\n    def "
     "norm(self) -> float:\n        return math.sqrt(self.x)\n",
     {"scope=class Point:\nscope=def norm(self) -> float:\n",
      "import=import os\nimport=from sys import path as p\n",
      "name=LIMIT\nname=Point\nname=x\nname=norm\ndefinition.class=class "
      "Point:\ndefinition.function=def norm(self) -> float:\n",
      "reference.call=sqrt\nreference.type=float\nreference.identifier=math\n"}},
    {"javascript",
     "import fs from 'fs';\nconst path = require('path');\nconst other = compute(1);\nclass Box "
     "{\n  open() { return fs.readFileSync(this.name); }\n}\nfunction make(x) { return new "
     "Box(x); }\nconst twice = (x) => { return x * 2; };\n",
     {"scope=class Box {\nscope=function make(x) { return new Box(x); }\nscope=(x) => { return x "
      "* 2; }\n",
      "import=import fs from 'fs';\nimport=const path = require('path');\n!import=const other = "
      "compute(1);\n",
      "name=Box\nname=open\nname=make\nname=twice\nname=path\n",
      "reference.call=readFileSync\nreference.call=compute\nreference.type=Box\n"}},
    {"typescript",
     "import { readFileSync } from 'fs';\ninterface Shape { area(): number; }\ntype Id = "
     "string;\nenum Color { Red }\nexport class Square implements Shape {\n  side = 1;\n  area(): "
     "number { return square(this.side); }\n}\n",
     {"scope=interface Shape { area(): number; }\nscope=class Square implements Shape {\n",
      "import=import { readFileSync } from 'fs';\n",
      "name=Shape\nname=Id\nname=Color\nname=Square\nname=area\nname=side\n",
      "reference.call=square\nreference.type=Shape\n"}},
    {"tsx",
     "import React from 'react';\ninterface Props { name: string }\nexport function Hello(p: "
     "Props) {\n  return <div>{greet(p.name)}</div>;\n}\n",
     {"scope=function Hello(p: Props) {\n", "import=import React from 'react';\n",
      "name=Props\nname=Hello\nname=name\n", "reference.call=greet\nreference.type=Props\n"}},
    {"go",
     "package geo\n\nimport \"math\"\n\nconst Limit = 3\n\ntype Point struct {\n\tX "
     "float64\n}\n\nfunc "
     "(p Point) Norm() float64 {\n\treturn math.Sqrt(p.X)\n}\n",
     {"scope=Point struct {\nscope=func (p Point) Norm() float64 {\n",
      "import=package geo\nimport=import \"math\"\n",
      "name=Limit\nname=Point\nname=X\nname=Norm\ndefinition.method=func (p Point) Norm() "
      "float64 {\n",
      "reference.call=Sqrt\nreference.identifier=math\nreference.type=Point\n"}},
    {"rust",
     "use std::fmt;\n\npub struct Point {\n    x: f64,\n}\n\nimpl Point {\n    pub fn norm(&self) "
     "-> f64 {\n        helper(self.x)\n    }\n}\n\nconst LIMIT: u32 = 3;\n",
     {"scope=pub struct Point {\nscope=impl Point {\nscope=pub fn norm(&self) -> f64 {\n",
      "import=use std::fmt;\n",
      "name=Point\nname=x\nname=norm\nname=LIMIT\ndefinition.impl=impl Point {\n",
      "reference.call=helper\nreference.type=Point\nreference.field=x\n"}},
    {"lua",
     "local util = require(\"util\")\nlocal M = {}\n\nfunction M.setup(opts)\n  return "
     "util.merge(opts)\nend\n\nlocal function helper(x)\n  return x\nend\n\nreturn M\n",
     {"scope=function M.setup(opts)\nscope=local function helper(x)\n",
      "import=local util = require(\"util\")\n!import=local M = {}\n",
      "name=util\nname=M\nname=setup\nname=helper\n",
      "reference.call=merge\nreference.field=merge\nreference.identifier=opts\n"}},
};

static void test_queries_find_expected_captures(void **state) {
  (void)state;
  size_t languages_seen = 0;
  for (size_t i = 0; i < sizeof query_cases / sizeof query_cases[0]; i++) {
    const struct query_case *qc = &query_cases[i];
    const struct grammar *g = grammars_find_name(qc->language);
    assert_non_null(g);
    languages_seen++;
    for (int kind = 0; kind < GRAMMAR_QUERY_COUNT; kind++) {
      char *got = run_query(g, kind, qc->snippet);
      const char *line = qc->expect[kind];
      while (*line) {
        const char *end = strchr(line, '\n');
        bool negate = *line == '!';
        char want[300];
        snprintf(want, sizeof want, "%.*s\n", (int)(end - line - negate), line + negate);
        /* Look for the whole line: preceded by the start or a newline. */
        bool found = !strncmp(got, want, strlen(want));
        char key[302];
        snprintf(key, sizeof key, "\n%s", want);
        found = found || strstr(got, key) != NULL;
        if (found == negate) {
          fail_msg("%s/%s: %s \"%.*s\"; got:\n%s", g->name, grammars_query_kind_name(kind),
                   negate ? "unexpected" : "missing", (int)strlen(want) - 1, want, got);
        }
        line = end + 1;
      }
      free(got);
    }
  }
  assert_int_equal(languages_seen, grammars_count());
}

static void test_query_refusals(void **state) {
  (void)state;
  const struct grammar *g = grammars_find_name("lua");
  TSQuery *query = (TSQuery *)1;
  struct aug_err err = {0};
  const char *unknown = "((identifier) @x (#match? @x \"^a\"))";
  assert_int_equal(grammars_query_compile(g, "mine.scm", unknown, strlen(unknown), &query, &err),
                   AUG_EFORMAT);
  assert_null(query);
  assert_non_null(strstr(err.msg, "mine.scm: pattern 0: predicate #match?"));

  const char *bad_node = "(identifier) @x\n(no_such_node) @y";
  assert_int_equal(grammars_query_compile(g, "mine.scm", bad_node, strlen(bad_node), &query, &err),
                   AUG_EFORMAT);
  assert_non_null(strstr(err.msg, "mine.scm:2: unknown node type"));

  const char *good = "((identifier) @x (#any-of? @x \"a\" \"b\"))";
  assert_int_equal(grammars_query_compile(g, "mine.scm", good, strlen(good), &query, &err), 0);
  assert_non_null(query);

  /* #any-of? and #not-eq? applied to text. */
  const TSLanguage *language;
  assert_int_equal(grammars_language(g, &language, &err), 0);
  TSParser *parser = ts_parser_new();
  assert_true(ts_parser_set_language(parser, language));
  const char *text = "local a, b, c = 1, 2, 3";
  TSTree *tree = ts_parser_parse_string(parser, NULL, text, (uint32_t)strlen(text));
  TSQueryCursor *cursor = ts_query_cursor_new();
  ts_query_cursor_exec(cursor, query, ts_tree_root_node(tree));
  TSQueryMatch match;
  char seen[16] = "";
  while (ts_query_cursor_next_match(cursor, &match)) {
    if (!grammars_match_passes(query, &match, text, strlen(text))) continue;
    size_t n = strlen(seen);
    seen[n] = text[ts_node_start_byte(match.captures[0].node)];
    seen[n + 1] = 0;
  }
  assert_string_equal(seen, "ab");
  ts_query_delete(query);

  const char * not_eq = "((identifier) @x (#not-eq? @x \"b\"))";
  assert_int_equal(grammars_query_compile(g, "mine.scm", not_eq, strlen(not_eq), &query, &err), 0);
  ts_query_cursor_exec(cursor, query, ts_tree_root_node(tree));
  seen[0] = 0;
  while (ts_query_cursor_next_match(cursor, &match)) {
    if (!grammars_match_passes(query, &match, text, strlen(text))) continue;
    size_t n = strlen(seen);
    seen[n] = text[ts_node_start_byte(match.captures[0].node)];
    seen[n + 1] = 0;
  }
  assert_string_equal(seen, "ac");
  ts_query_delete(query);
  ts_query_cursor_delete(cursor);
  ts_tree_delete(tree);
  ts_parser_delete(parser);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_every_grammar_loads),
      cmocka_unit_test(test_versions_match_the_pins),
      cmocka_unit_test(test_find),
      cmocka_unit_test(test_abi_check),
      cmocka_unit_test(test_abi_refusal_of_a_constructed_language),
      cmocka_unit_test(test_every_query_compiles),
      cmocka_unit_test(test_query_conventions),
      cmocka_unit_test(test_queries_find_expected_captures),
      cmocka_unit_test(test_query_refusals),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
