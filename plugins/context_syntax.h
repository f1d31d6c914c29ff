/* The tree-sitter context providers, built in as one plugin ("syntax-context") on the plugin ABI.
 * For the cursor's document they give, as pieces named by the file's path:
 *   - the imports outside the prompt window (AUGURY_STABLE_PROJECT);
 *   - the header lines of the enclosing scopes (function, class, impl, ...) that start before the
 *     window, with "..." lines for what is left out (AUGURY_STABLE_FILE);
 *   - the definitions, found in this document outside the window, of the identifiers used on the
 *     lines around the cursor: whole when short, else their header (AUGURY_STABLE_FILE, after
 *     the scopes);
 *   - with a workspace index (params.index), when a qualifier before the cursor names a module
 *     of the workspace ("util." -> a file util.*, "visitor::" -> visitor.*), that module's
 *     signatures (its definitions' first lines) whose names start with what is typed after the
 *     qualifier, those sharing a word with the names near the cursor first, in line order: one
 *     piece named by the module's path (AUGURY_STABLE_FILE, within two thirds of the budget the
 *     document's pieces left);
 *   - else, in Go and C/C++ (where a bare name reaches other files with no import naming it),
 *     the same signatures, related ones first, of the file the editor sent last (didOpen, didSave,
 *     didClose) among the cursor's neighbours: its package's files in Go (its folder; tests only
 *     for a test), C and C++ files in C/C++ (within half of what the document's pieces left);
 *   - with a workspace index, the definitions of those identifiers that the
 *     document does not define, from the other files of the workspace: one piece per file, named
 *     by its path, files in path order, definitions in line order (AUGURY_STABLE_FILE, after the
 *     document's own definitions, from what of the budget they left).
 * Pieces are deterministic (the same document, cursor and window give the same bytes, so the KV
 * cache keeps them across keystrokes), never repeat text inside the window, and together fit the
 * request's token budget (scopes first, then imports, then definitions). A language without a
 * grammar gets nothing, and no error.
 * The plugin keeps a small cache of parsed documents by uri (least recently used evicted), each
 * reparsed incrementally from its previous tree at the next call for it. Thread: the host calls
 * one context_provide at a time (its worker thread); create and destroy belong to the caller. */
#ifndef AUGURY_PLUGINS_CONTEXT_SYNTAX_H
#define AUGURY_PLUGINS_CONTEXT_SYNTAX_H

#include <stdbool.h>
#include <stddef.h>

#include "engine/error.h"
#include "plugins/augury_plugin.h"
#include "plugins/workspace_index.h"

#define CONTEXT_SYNTAX_NAME "syntax-context"

struct context_syntax; /* opaque */

struct context_syntax_params {
  size_t max_docs;     /* parsed documents kept, one per uri (default 8) */
  size_t max_bytes;    /* a larger document gets no context: its first parse could overrun the
                          host's time budget (default 1 MiB) */
  unsigned max_scopes; /* enclosing scopes shown, innermost kept (default 8) */
  /* A language's queries are compiled on a background thread when it is first seen, and it gets
   * no context until they are (a compile can take longer than a call's budget: see
   * context_queries.h). true: compile inside the call instead (tests, tools without a budget).
   * Default false. */
  bool compile_in_call;
  /* The workspace's definitions index (borrowed: it must outlive the plugin), or NULL (the
   * default): the definitions of the names near the cursor that the document does not define are
   * looked up there, in the other files. */
  struct workspace_index *index;
};

struct context_syntax_params context_syntax_params_default(void);

/* params NULL for the defaults. The caller owns *out until it is registered with a plugin host:
 * from then on the host's destroy of the plugin frees it (the table's destroy slot). */
int context_syntax_create(const struct context_syntax_params *params, struct context_syntax **out,
                          struct aug_err *err);
void context_syntax_destroy(struct context_syntax *cs); /* NULL is a no-op */

/* A document of this language was opened (language_id, else the path's extension): starts
 * compiling the language's queries on the background thread now, so that the first completion in
 * it gets context (a call finds them not ready and gives nothing). Any thread; the queries are
 * shared (context_queries.h). A language without a grammar: nothing. */
void context_syntax_prepare(struct context_syntax *cs, const char *language_id, const char *path);

/* The ABI table (self = cs); valid until cs is destroyed. */
const struct augury_plugin *context_syntax_plugin(struct context_syntax *cs);

/* Whether a parsed document for uri is in the cache (for tests and status). */
bool context_syntax_cached(const struct context_syntax *cs, const char *uri);

#endif
