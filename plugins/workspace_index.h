/* A cross-file definitions index: name -> the definitions of that name in the workspace's files
 * (relative path, line, the definition's text: whole when short, else its header lines and a
 * "..." line), found with the grammars' definitions queries (the outline query of
 * context_queries.h) at the top level of each file (tree depth 2: what another file can name).
 * One worker thread scans the root, then applies per-file updates in the order they were asked
 * for; lookups may run on any thread meanwhile (one mutex). Bounded: a per-file size cap, a file
 * count cap and a byte budget for the index's own memory; whatever is left out is counted by why.
 * The scan skips hidden files and folders (.git among them), what the root's .gitignore ignores,
 * symbolic links (a link's target inside the root is indexed under its own path; one outside the
 * root is never read) and files whose name no grammar claims. Nothing is written anywhere.
 * .gitignore support: one pattern a line, '#' comments, "name", "*.ext" and other fnmatch(3)
 * globs matched against each path component, "dir/" (folders only), "/x" and "a/b" anchored at the
 * root. Not supported (such lines are ignored): "!" negation, "**", .gitignore files below the
 * root, .git/info/exclude and the global excludes file. */
#ifndef AUGURY_PLUGINS_WORKSPACE_INDEX_H
#define AUGURY_PLUGINS_WORKSPACE_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"

struct workspace_index; /* opaque */

struct workspace_index_params {
  size_t max_file_bytes; /* a larger file is skipped (default 1 MiB) */
  size_t max_files;      /* files indexed at most (default 5000) */
  size_t max_bytes;      /* the index's own memory: a file that would pass it is skipped (64 MiB) */
};

struct workspace_index_params workspace_index_params_default(void);

struct workspace_index_stats {
  size_t files, definitions, bytes;
  /* skipped files (or folders, for hidden and ignored), by why */
  size_t skipped_hidden, skipped_ignored, skipped_symlink, skipped_outside_root, skipped_too_large,
      skipped_too_many, skipped_budget, skipped_unreadable, skipped_no_grammar;
  /* the scan stopped at the first file past max_files (skipped_too_many counts that one): the
   * rest of the tree was not walked */
  bool truncated;
  double scan_ms; /* the scan's wall time; 0 until it finished */
  bool scanning;  /* the scan has not finished yet */
  size_t pending; /* updates not applied yet */
};

/* root: the workspace folder (a path). params NULL for the defaults. Nothing is read until
 * workspace_index_start. The caller owns *out (workspace_index_destroy). */
int workspace_index_create(const char *root, const struct workspace_index_params *params,
                           struct workspace_index **out, struct aug_err *err);
/* Stops the worker (a scan in progress ends at its next file) and frees everything. NULL: no-op. */
void workspace_index_destroy(struct workspace_index *wi);

/* Starts the worker thread, which scans the root. Once only. */
int workspace_index_start(struct workspace_index *wi, struct aug_err *err);
/* Waits until the scan finished and no update is pending (tests, tools). */
void workspace_index_wait_idle(struct workspace_index *wi);

/* Queued for the worker (the caller never parses): re-index path from text (copied), re-read it
 * from disk (gone from disk: removed), or remove it. path: absolute under the root, or relative to
 * it; others are ignored (0). A file the scan would skip (hidden, ignored, no grammar, too large)
 * is skipped here too. Before workspace_index_start they wait for the worker. */
int workspace_index_update(struct workspace_index *wi, const char *path, const char *text,
                           size_t len, struct aug_err *err);
int workspace_index_reload(struct workspace_index *wi, const char *path, struct aug_err *err);
int workspace_index_remove(struct workspace_index *wi, const char *path, struct aug_err *err);

struct workspace_index_definition {
  const char *name; /* the defined name, NUL-terminated */
  const char *path; /* relative to the root */
  uint32_t line;    /* 0-based line where the definition's text starts */
  const char *text; /* ends with '\n' */
  size_t text_len;
};

/* Calls cb for each definition of name (name_len bytes) in files other than exclude_path (relative
 * to the root; NULL: none), ordered by path then line, until cb returns non-zero (returned).
 * cb runs with the index locked: it copies what it keeps and does not call the index. */
typedef int (*workspace_index_definition_cb)(void *data,
                                             const struct workspace_index_definition *d);
int workspace_index_lookup(struct workspace_index *wi, const char *name, size_t name_len,
                           const char *exclude_path, workspace_index_definition_cb cb, void *data);

/* Calls cb for each definition in the files whose name without its extension is stem (the
 * module a qualifier names: util for util.lua or util.py, visitor for visitor.rs), other than
 * exclude_path, files in path order (at most WORKSPACE_INDEX_MODULE_FILES of them), each file's
 * definitions in line order, until cb returns non-zero (returned). Locked as in lookup. */
#define WORKSPACE_INDEX_MODULE_FILES 8
int workspace_index_module(struct workspace_index *wi, const char *stem, size_t stem_len,
                           const char *exclude_path, workspace_index_definition_cb cb, void *data);

/* Calls cb for each definition, in line order, of the file the editor sent last (didOpen,
 * didSave or didClose: an update or a reload; a file only the scan read is never chosen) among
 * those other than exclude_path that accept takes (NULL: all), until cb returns non-zero
 * (returned). Nothing when the editor sent none. This is the "neighbouring tab" of an unqualified
 * name: the file a user looked at last is the likeliest home of what they are about to call.
 * Locked as in lookup; accept runs locked too. */
typedef bool (*workspace_index_path_filter)(void *data, const char *path);
int workspace_index_recent(struct workspace_index *wi, const char *exclude_path,
                           workspace_index_path_filter accept, void *accept_data,
                           workspace_index_definition_cb cb, void *data);

void workspace_index_stats(struct workspace_index *wi, struct workspace_index_stats *out);

#endif
