/* Recently edited and viewed chunks, a ring like llama.vim's ring_chunks, built in as one context
 * provider ("recent-context") on the plugin ABI. The server tells the ring where the user is
 * (context_ring_visit: a document opened, a line edited, a completion asked for); the place is
 * kept as a pending chunk of chunk_lines lines around that line, re-read at each visit there, and
 * it enters the ring when the user leaves it (another document, or more than chunk_lines / 2
 * lines away), so that the ring changes when the user moves, not at every keystroke. A chunk that
 * repeats one in the ring (same path and text) leaves the ring as it is; one that shares at least
 * `similar` of its lines with older ones replaces them. The ring keeps max_chunks chunks and
 * max_bytes of text, the oldest leaving first.
 * Each call gives the ring's chunks as pieces named by their path (AUGURY_STABLE_RECENT), oldest
 * first, so that a new chunk changes only the end of the context and the KV cache keeps the rest;
 * the chunks of the cursor's document that overlap the prompt window are left out (the prompt
 * holds them already), and when all do not fit the token budget the oldest are dropped (the
 * newest alone too large is cut to its lines nearest the place it was taken at). The same ring,
 * cursor, window and budget give the same bytes.
 * Threads: visit, edit and flush on one thread (the server's loop thread), the provide call on the
 * host's worker; the ring itself is under one mutex, the pending chunk belongs to the visiting
 * thread alone. create and destroy belong to the caller (the host once registered). */
#ifndef AUGURY_PLUGINS_CONTEXT_RING_H
#define AUGURY_PLUGINS_CONTEXT_RING_H

#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"
#include "plugins/augury_plugin.h"

#define CONTEXT_RING_NAME "recent-context"

struct context_ring; /* opaque */

struct context_ring_params {
  size_t max_chunks;      /* chunks kept (default 16, at most 1024) */
  uint32_t chunk_lines;   /* lines per chunk, around the visited line (default 64, 2..4096) */
  size_t max_chunk_bytes; /* a chunk's text at most: the lines farthest from the visited one are
                             left out past it (default 16 KiB) */
  size_t max_bytes;       /* all chunks together (default 256 KiB): the oldest leave first */
  /* A new chunk replaces older ones when 2 * shared lines / (lines of both) reaches this (blank
   * lines are not counted; llama.vim's chunk_sim and threshold, default 0.9) */
  double similar;
};

struct context_ring_params context_ring_params_default(void);

/* params NULL for the defaults. The caller owns *out until it is registered with a plugin host:
 * from then on the host's destroy of the plugin frees it (the table's destroy slot). */
int context_ring_create(const struct context_ring_params *params, struct context_ring **out,
                        struct aug_err *err);
void context_ring_destroy(struct context_ring *cr); /* NULL is a no-op */

/* The ABI table (self = cr); valid until cr is destroyed. */
const struct augury_plugin *context_ring_plugin(struct context_ring *cr);

/* Where the user is: line `line` of the document uri (a line past the end means its last line),
 * whose text is text[0..len), named path in pieces (relative to the workspace, or the file name).
 * line_starts (optional, NULL: found by scanning text) holds where each of the n_lines lines
 * starts. Everything is borrowed for the call: the pending chunk copies what it keeps (into
 * buffers it reuses, so a visit at the same place allocates nothing). */
struct context_ring_place {
  const char *uri;
  const char *path;
  const char *text;
  size_t len;
  const size_t *line_starts;
  size_t n_lines;
  uint32_t line;
};
int context_ring_visit(struct context_ring *cr, const struct context_ring_place *place,
                       struct aug_err *err);

/* An edit of uri replaced lines start_line..end_line with text holding new_lines line breaks:
 * the chunks of uri (and the pending one) that lie below it move by the difference, so that the
 * window test of later calls still finds them. */
void context_ring_edit(struct context_ring *cr, const char *uri, uint32_t start_line,
                       uint32_t end_line, uint32_t new_lines);

/* Puts the pending chunk into the ring now (tests, tools; the server lets the next move do it). */
int context_ring_flush(struct context_ring *cr, struct aug_err *err);

struct context_ring_stats {
  size_t chunks, bytes;              /* in the ring now (the pending chunk not counted) */
  uint64_t added, replaced, evicted; /* chunks put in; older ones replaced by similar; evicted */
  size_t max_chunks;                 /* the params' */
  uint32_t chunk_lines;
};
void context_ring_stats(struct context_ring *cr, struct context_ring_stats *out); /* any thread */

#endif
