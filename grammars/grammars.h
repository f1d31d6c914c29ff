/* The languages compiled into libaugury (tree-sitter grammars from pinned npm packages, see
 * grammars/README.md) and our queries for them: find a language by LSP languageId or by file
 * name, check its ABI against the runtime's, compile its queries.
 * The table is constant and the functions keep no state: callable from any thread. A TSQuery is
 * immutable once created and may be shared between threads (each run needs its own
 * TSQueryCursor). */
#ifndef AUGURY_GRAMMARS_GRAMMARS_H
#define AUGURY_GRAMMARS_GRAMMARS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <tree_sitter/api.h>

#include "engine/error.h"

/* Kinds of queries under grammars/queries/<language>/<kind>.scm. Captures are named
 * @scope (a construct whose header the context providers may show: function, class, impl) with
 * @scope.body (its header is the text of @scope before @scope.body), @import (a whole import
 * statement), @definition.<kind> (function, class, struct, type, variable, ...) with @name, and
 * @reference.<kind> (call, type, field, identifier: an identifier node). Captures whose name
 * starts with '_' only serve predicates. The predicates #eq?, #not-eq? and #any-of? are the only
 * ones allowed: grammars_query_create refuses others, and grammars_match_passes applies them. */
enum grammar_query_kind {
  GRAMMAR_QUERY_SCOPES,
  GRAMMAR_QUERY_IMPORTS,
  GRAMMAR_QUERY_DEFINITIONS,
  GRAMMAR_QUERY_REFERENCES,
  GRAMMAR_QUERY_COUNT,
};

struct grammar {
  const char *name;         /* "python", "tsx" */
  const char *language_ids; /* LSP languageIds, space-separated: "typescriptreact" */
  const char *suffixes;     /* file-name endings, space-separated: ".py .pyi" (or whole names) */
  const char *package;      /* npm package and version it was built from: "tree-sitter-python" */
  const char *version;
  const TSLanguage *(*language)(void); /* the grammar's tree_sitter_<name>() */
  const char *queries;                 /* folder under grammars/queries: "typescript" for tsx */
};

/* All compiled-in grammars: count, and the i-th (NULL when i >= count). */
size_t grammars_count(void);
const struct grammar *grammars_at(size_t i);

/* The grammar for an LSP languageId ("c", "cpp", "python", "javascript", "javascriptreact",
 * "typescript", "typescriptreact", "go", "rust", "lua") or for a path by its file name's ending
 * ("src/x.hpp"); NULL when none. Matching is exact for languageIds and case-sensitive for names. */
const struct grammar *grammars_find_language_id(const char *language_id);
const struct grammar *grammars_find_path(const char *path);
const struct grammar *grammars_find_name(const char *name);

/* 0 when a grammar of ABI version abi can be loaded by this runtime (versions
 * TREE_SITTER_MIN_COMPATIBLE_LANGUAGE_VERSION to TREE_SITTER_LANGUAGE_VERSION), else
 * AUG_EUNSUPPORTED with a message naming the grammar, its version and the runtime's range. */
int grammars_check_abi(const char *name, uint32_t abi, struct aug_err *err);

/* The grammar's TSLanguage after grammars_check_abi. The language is static: never deleted. */
int grammars_language(const struct grammar *grammar, const TSLanguage **out, struct aug_err *err);

/* The source of our query of that kind for the grammar (NUL-terminated, static), or NULL when we
 * ship none; length in *length when length is not NULL. */
const char *grammars_query_source(const struct grammar *grammar, enum grammar_query_kind kind,
                                  size_t *length);
const char *grammars_query_kind_name(enum grammar_query_kind kind); /* "scopes", ... */

/* Compiles the query of that kind with ts_query_new. *out is NULL and 0 is returned when the
 * grammar has no such query; AUG_EFORMAT with the error's offset, line and kind when it does not
 * compile. The caller owns *out and frees it with ts_query_delete. */
int grammars_query_create(const struct grammar *grammar, enum grammar_query_kind kind,
                          TSQuery **out, struct aug_err *err);

/* Compiles a query from source (length bytes; label names it in messages, e.g. a file name),
 * with the same checks as grammars_query_create. The caller owns *out (ts_query_delete). */
int grammars_query_compile(const struct grammar *grammar, const char *label, const char *source,
                           size_t length, TSQuery **out, struct aug_err *err);

/* Whether a match of a query made by grammars_query_create satisfies its pattern's predicates,
 * read against text (the text the tree was parsed from, length bytes). ts_query_cursor_next_match
 * does not check text predicates: callers filter with this. */
bool grammars_match_passes(const TSQuery *query, const TSQueryMatch *match, const char *text,
                           size_t length);

#endif
