/* The compiled-in grammar table and the checks done before a grammar is used: its ABI against the
 * runtime's range, and its queries through ts_query_new. The table is constant (no state). */
#include "grammars/grammars.h"

#include <stdio.h>
#include <string.h>

#include "grammars/grammars_queries.h"

const TSLanguage *tree_sitter_c(void);
const TSLanguage *tree_sitter_cpp(void);
const TSLanguage *tree_sitter_python(void);
const TSLanguage *tree_sitter_javascript(void);
const TSLanguage *tree_sitter_typescript(void);
const TSLanguage *tree_sitter_tsx(void);
const TSLanguage *tree_sitter_go(void);
const TSLanguage *tree_sitter_rust(void);
const TSLanguage *tree_sitter_lua(void);

/* Versions must match grammars/grammars.tsv (test_grammars checks it). A ".h" file is C: the
 * editor's languageId says "cpp" for C++ headers, and the path is only the fallback. */
static const struct grammar grammar_table[] = {
    {"c", "c", ".c .h", "tree-sitter-c", "0.24.1", tree_sitter_c, "c"},
    {"cpp", "cpp", ".cc .cpp .cxx .c++ .hh .hpp .hxx .h++ .ipp .inl .tpp", "tree-sitter-cpp",
     "0.23.4", tree_sitter_cpp, "cpp"},
    {"python", "python", ".py .pyi .pyw", "tree-sitter-python", "0.25.0", tree_sitter_python,
     "python"},
    {"javascript", "javascript javascriptreact", ".js .mjs .cjs .jsx", "tree-sitter-javascript",
     "0.25.0", tree_sitter_javascript, "javascript"},
    {"typescript", "typescript", ".ts .mts .cts", "tree-sitter-typescript", "0.23.2",
     tree_sitter_typescript, "typescript"},
    {"tsx", "typescriptreact", ".tsx", "tree-sitter-typescript", "0.23.2", tree_sitter_tsx,
     "typescript"},
    {"go", "go", ".go", "tree-sitter-go", "0.25.0", tree_sitter_go, "go"},
    {"rust", "rust", ".rs", "tree-sitter-rust", "0.24.0", tree_sitter_rust, "rust"},
    {"lua", "lua", ".lua", "@tree-sitter-grammars/tree-sitter-lua", "0.4.1", tree_sitter_lua,
     "lua"},
};

#define GRAMMAR_COUNT (sizeof grammar_table / sizeof grammar_table[0])

static const char *const query_kind_names[GRAMMAR_QUERY_COUNT] = {
    [GRAMMAR_QUERY_SCOPES] = "scopes",
    [GRAMMAR_QUERY_IMPORTS] = "imports",
    [GRAMMAR_QUERY_DEFINITIONS] = "definitions",
    [GRAMMAR_QUERY_REFERENCES] = "references",
};

size_t grammars_count(void) {
  return GRAMMAR_COUNT;
}

const struct grammar *grammars_at(size_t i) {
  return i < GRAMMAR_COUNT ? &grammar_table[i] : NULL;
}

/* Whether word appears in the space-separated list. */
static int list_has(const char *list, const char *word, size_t word_length) {
  for (const char *p = list; *p;) {
    while (*p == ' ')
      p++;
    const char *end = p;
    while (*end && *end != ' ')
      end++;
    if ((size_t)(end - p) == word_length && word_length > 0 && !memcmp(p, word, word_length))
      return 1;
    p = end;
  }
  return 0;
}

const struct grammar *grammars_find_language_id(const char *language_id) {
  if (!language_id) return NULL;
  for (size_t i = 0; i < GRAMMAR_COUNT; i++) {
    if (list_has(grammar_table[i].language_ids, language_id, strlen(language_id))) {
      return &grammar_table[i];
    }
  }
  return NULL;
}

const struct grammar *grammars_find_name(const char *name) {
  if (!name) return NULL;
  for (size_t i = 0; i < GRAMMAR_COUNT; i++) {
    if (!strcmp(grammar_table[i].name, name)) return &grammar_table[i];
  }
  return NULL;
}

const struct grammar *grammars_find_path(const char *path) {
  if (!path) return NULL;
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  size_t base_length = strlen(base);
  /* The longest matching ending wins, so that ".d.ts"-style endings could be added later. */
  const struct grammar *best = NULL;
  size_t best_length = 0;
  for (size_t i = 0; i < GRAMMAR_COUNT; i++) {
    for (const char *p = grammar_table[i].suffixes; *p;) {
      while (*p == ' ')
        p++;
      const char *end = p;
      while (*end && *end != ' ')
        end++;
      size_t n = (size_t)(end - p);
      if (n > best_length && n <= base_length && !memcmp(base + base_length - n, p, n)) {
        best = &grammar_table[i];
        best_length = n;
      }
      p = end;
    }
  }
  return best;
}

int grammars_check_abi(const char *name, uint32_t abi, struct aug_err *err) {
  if (abi < TREE_SITTER_MIN_COMPATIBLE_LANGUAGE_VERSION || abi > TREE_SITTER_LANGUAGE_VERSION) {
    return aug_err_set(err, AUG_EUNSUPPORTED,
                       "grammars: grammar '%s' has ABI version %u, but this tree-sitter runtime "
                       "loads ABI versions %u to %u (rebuild the grammar with a matching "
                       "tree-sitter CLI, or pin another version in grammars/grammars.tsv)",
                       name ? name : "?", abi,
                       (unsigned)TREE_SITTER_MIN_COMPATIBLE_LANGUAGE_VERSION,
                       (unsigned)TREE_SITTER_LANGUAGE_VERSION);
  }
  return 0;
}

int grammars_language(const struct grammar *grammar, const TSLanguage **out, struct aug_err *err) {
  *out = NULL;
  if (!grammar) return aug_err_set(err, AUG_EINVAL, "grammars: no grammar");
  const TSLanguage *language = grammar->language();
  int rc = grammars_check_abi(grammar->name, ts_language_abi_version(language), err);
  if (rc) return rc;
  *out = language;
  return 0;
}

const char *grammars_query_kind_name(enum grammar_query_kind kind) {
  return (unsigned)kind < GRAMMAR_QUERY_COUNT ? query_kind_names[kind] : "?";
}

const char *grammars_query_source(const struct grammar *grammar, enum grammar_query_kind kind,
                                  size_t *length) {
  if (!grammar || (unsigned)kind >= GRAMMAR_QUERY_COUNT) return NULL;
  for (const struct grammars_query_source *q = grammars_query_sources; q->language; q++) {
    if (!strcmp(q->language, grammar->queries) && !strcmp(q->kind, query_kind_names[kind])) {
      if (length) *length = q->length;
      return q->text;
    }
  }
  return NULL;
}

static int check_predicates(const char *label, const TSQuery *query, struct aug_err *err);

static const char *query_error_name(TSQueryError error) {
  switch (error) {
  case TSQueryErrorSyntax: return "syntax error";
  case TSQueryErrorNodeType: return "unknown node type";
  case TSQueryErrorField: return "unknown field";
  case TSQueryErrorCapture: return "unknown capture";
  case TSQueryErrorStructure: return "impossible pattern";
  case TSQueryErrorLanguage: return "language refused";
  default: return "error";
  }
}

int grammars_query_compile(const struct grammar *grammar, const char *label, const char *source,
                           size_t length, TSQuery **out, struct aug_err *err) {
  *out = NULL;
  const TSLanguage *language;
  int rc = grammars_language(grammar, &language, err);
  if (rc) return rc;
  if (length > UINT32_MAX) return aug_err_set(err, AUG_ERANGE, "grammars: %s is too long", label);
  uint32_t offset = 0;
  TSQueryError error = TSQueryErrorNone;
  TSQuery *query = ts_query_new(language, source, (uint32_t)length, &offset, &error);
  if (!query) {
    uint32_t line = 1;
    for (uint32_t i = 0; i < offset && i < length; i++)
      line += source[i] == '\n';
    return aug_err_set(err, AUG_EFORMAT, "grammars: %s:%u: %s at offset %u (grammar '%s')", label,
                       line, query_error_name(error), offset, grammar->name);
  }
  rc = check_predicates(label, query, err);
  if (rc) {
    ts_query_delete(query);
    return rc;
  }
  *out = query;
  return 0;
}

int grammars_query_create(const struct grammar *grammar, enum grammar_query_kind kind,
                          TSQuery **out, struct aug_err *err) {
  *out = NULL;
  const TSLanguage *language;
  int rc = grammars_language(grammar, &language, err);
  if (rc) return rc;
  size_t length = 0;
  const char *source = grammars_query_source(grammar, kind, &length);
  if (!source) return 0;
  char label[128];
  snprintf(label, sizeof label, "queries/%s/%s.scm", grammar->queries, query_kind_names[kind]);
  return grammars_query_compile(grammar, label, source, length, out, err);
}

/* ---- predicates -------------------------------------------------------------------------- */

enum predicate { PREDICATE_UNKNOWN, PREDICATE_EQ, PREDICATE_NOT_EQ, PREDICATE_ANY_OF };

static enum predicate predicate_of(const char *name) {
  if (!strcmp(name, "eq?")) return PREDICATE_EQ;
  if (!strcmp(name, "not-eq?")) return PREDICATE_NOT_EQ;
  if (!strcmp(name, "any-of?")) return PREDICATE_ANY_OF;
  return PREDICATE_UNKNOWN;
}

static int check_predicates(const char *label, const TSQuery *query, struct aug_err *err) {
  for (uint32_t pattern = 0; pattern < ts_query_pattern_count(query); pattern++) {
    uint32_t count = 0;
    const TSQueryPredicateStep *steps = ts_query_predicates_for_pattern(query, pattern, &count);
    for (uint32_t i = 0; i < count;) {
      uint32_t n = 0;
      while (i + n < count && steps[i + n].type != TSQueryPredicateStepTypeDone)
        n++;
      uint32_t length = 0;
      const char *name = steps[i].type == TSQueryPredicateStepTypeString
                             ? ts_query_string_value_for_id(query, steps[i].value_id, &length)
                             : "?";
      enum predicate predicate = predicate_of(name);
      bool shape_ok = n >= 3 && steps[i + 1].type == TSQueryPredicateStepTypeCapture &&
                      (predicate == PREDICATE_ANY_OF || n == 3);
      if (predicate == PREDICATE_UNKNOWN || !shape_ok) {
        return aug_err_set(err, AUG_EFORMAT,
                           "grammars: %s: pattern %u: predicate #%s with %u arguments is not one "
                           "we apply (#eq?, #not-eq?, #any-of? on a capture)",
                           label, pattern, name, n ? n - 1 : 0);
      }
      i += n + 1;
    }
  }
  return 0;
}

/* The text of the first node captured as capture_id in match; NULL when none. */
static const char *capture_text(const TSQueryMatch *match, uint32_t capture_id, const char *text,
                                size_t length, size_t *text_length) {
  for (uint16_t i = 0; i < match->capture_count; i++) {
    if (match->captures[i].index != capture_id) continue;
    uint32_t start = ts_node_start_byte(match->captures[i].node);
    uint32_t end = ts_node_end_byte(match->captures[i].node);
    if (end > length || start > end) return NULL;
    *text_length = end - start;
    return text + start;
  }
  return NULL;
}

static bool step_equals(const TSQuery *query, const TSQueryMatch *match,
                        const TSQueryPredicateStep *step, const char *value, size_t value_length,
                        const char *text, size_t length) {
  const char *other;
  size_t other_length = 0;
  uint32_t string_length = 0;
  if (step->type == TSQueryPredicateStepTypeCapture) {
    other = capture_text(match, step->value_id, text, length, &other_length);
    if (!other) return false;
  } else {
    other = ts_query_string_value_for_id(query, step->value_id, &string_length);
    other_length = string_length;
  }
  return other_length == value_length && !memcmp(other, value, value_length);
}

bool grammars_match_passes(const TSQuery *query, const TSQueryMatch *match, const char *text,
                           size_t length) {
  uint32_t count = 0;
  const TSQueryPredicateStep *steps =
      ts_query_predicates_for_pattern(query, match->pattern_index, &count);
  for (uint32_t i = 0; i < count;) {
    uint32_t n = 0;
    while (i + n < count && steps[i + n].type != TSQueryPredicateStepTypeDone)
      n++;
    if (n < 3) return false;
    uint32_t name_length = 0;
    enum predicate predicate =
        predicate_of(ts_query_string_value_for_id(query, steps[i].value_id, &name_length));
    size_t value_length = 0;
    const char *value = capture_text(match, steps[i + 1].value_id, text, length, &value_length);
    /* A capture the match did not make (an optional node): the predicate does not apply. */
    if (value) {
      bool any = false;
      for (uint32_t k = i + 2; k < i + n; k++) {
        any = any || step_equals(query, match, &steps[k], value, value_length, text, length);
      }
      if (predicate == PREDICATE_NOT_EQ ? any : !any) return false;
    }
    i += n + 1;
  }
  return true;
}
