/* The tree-sitter queries the syntax context runs (context_syntax.c), per grammar, compiled on a
 * background thread the first time a grammar is asked for: ts_query_new takes from under 1 ms
 * to ~80 ms per query (tree-sitter's analysis of C++'s definitions query), more than a context
 * call's whole budget, so a call never compiles; it finds the grammar not ready yet and gives
 * nothing. The imports and definitions queries are compiled as one "outline" query, so that one
 * walk of the tree finds both.
 * Thread: any thread may ask; a compiled query is immutable and shared (each walk needs its own
 * TSQueryCursor). */
#ifndef AUGURY_PLUGINS_CONTEXT_QUERIES_H
#define AUGURY_PLUGINS_CONTEXT_QUERIES_H

#include <stdbool.h>

#include <tree_sitter/api.h>

#include "engine/error.h"
#include "grammars/grammars.h"

enum context_query {
  CONTEXT_QUERY_SCOPES,     /* grammars/queries/<lang>/scopes.scm */
  CONTEXT_QUERY_OUTLINE,    /* imports.scm and definitions.scm as one query */
  CONTEXT_QUERY_REFERENCES, /* references.scm */
  CONTEXT_QUERY_COUNT,
};

struct context_queries; /* opaque */

int context_queries_create(struct context_queries **out, struct aug_err *err);
/* Waits for a compile in progress, stops the thread, frees the queries. NULL is a no-op. */
void context_queries_destroy(struct context_queries *queries);

/* The grammar's queries (borrowed until destroy; an entry is NULL where the grammar has no such
 * query). Returns 0 with *ready true when they are compiled. Otherwise: with wait, compiles them
 * now on the caller's thread (or waits for the background thread doing it); without, schedules
 * them on the background thread and returns 0 with *ready false. A query that does not compile
 * is a negative return with err (every time it is asked for). */
int context_queries_get(struct context_queries *queries, const struct grammar *grammar, bool wait,
                        const TSQuery *out[CONTEXT_QUERY_COUNT], bool *ready, struct aug_err *err);

/* The index of the capture called name in query, or UINT32_MAX when it has none. */
uint32_t context_queries_capture_id(const TSQuery *query, const char *name);

#endif
