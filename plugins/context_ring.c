/* The ring of recently edited and viewed chunks (see context_ring.h). The visiting thread keeps
 * one pending chunk, anchored at the line where the user arrived and re-read from the document at
 * each visit inside it; leaving it (another document, or farther than chunk_lines / 2 from the
 * anchor) puts it into the ring. The ring is an array of chunks, oldest first, under cr->mu; a
 * chunk's text never changes once in the ring (only its line numbers move with edits above it),
 * so that a call gives the same bytes until the ring itself changes. Similarity is measured on
 * sorted 64-bit hashes of the non-blank lines, merged: O(lines) a pair. */
#include "plugins/context_ring.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/alloc.h"
#include "plugins/text_lines.h"

#define RING_MAX_CHUNKS 1024
#define RING_MAX_CHUNK_LINES 4096

/* A chunk in the ring: one allocation holding the struct, its line hashes and its strings.
 * Owned by the ring (cr->mu). */
struct chunk {
  const char *uri, *path, *text;
  size_t len;
  int64_t first_line; /* in the document, moved by edits above it */
  uint32_t n_lines;
  uint32_t anchor;  /* the line the user was at, relative to first_line: a cut keeps it */
  uint64_t *hashes; /* the non-blank lines', sorted */
  size_t n_hashes;
};

struct strbuf {
  char *p;
  size_t n, cap;
};

/* The place the user is at, not yet in the ring. Visiting thread only. */
struct pending {
  bool valid;  /* holds a chunk (a blank place holds none) */
  bool placed; /* uri and anchor are set */
  struct strbuf uri, path, text;
  int64_t anchor; /* the line where the user arrived, in the document */
  int64_t first_line;
  uint32_t n_lines;
};

struct context_ring {
  struct context_ring_params params;
  struct augury_plugin table;
  const struct augury_host *host; /* from init; NULL when called without a host */

  pthread_mutex_t mu;    /* guards the fields down to `evicted` */
  struct chunk **chunks; /* oldest first; params.max_chunks + 1 slots */
  size_t n_chunks, bytes;
  uint64_t added, replaced, evicted;

  /* Visiting thread only. */
  struct pending pending;
  size_t *scan_starts; /* line starts of a document visited without its own */
  size_t scan_cap;
  uint64_t *hash_scratch; /* chunk_lines slots */

  /* Provide call only (the host's worker). */
  size_t *selected;     /* indexes into chunks, newest first: max_chunks slots */
  size_t *line_scratch; /* line starts in one chunk: chunk_lines + 1 slots */
};

struct context_ring_params context_ring_params_default(void) {
  return (struct context_ring_params){
      .max_chunks = 16,
      .chunk_lines = 64,
      .max_chunk_bytes = 16 << 10,
      .max_bytes = 256 << 10,
      .similar = 0.9,
  };
}

static bool buf_set(struct strbuf *b, const char *s, size_t n) {
  if (n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    while (cap < n + 1)
      cap *= 2;
    char *p = aug_realloc(b->p, cap);
    if (!p) return false;
    b->p = p;
    b->cap = cap;
  }
  if (n) memcpy(b->p, s, n);
  b->p[n] = '\0';
  b->n = n;
  return true;
}

static bool buf_add_newline(struct strbuf *b) {
  if (b->n + 2 > b->cap) {
    char *p = aug_realloc(b->p, b->cap * 2);
    if (!p) return false;
    b->p = p;
    b->cap *= 2;
  }
  b->p[b->n++] = '\n';
  b->p[b->n] = '\0';
  return true;
}

static size_t count_newlines(const char *s, size_t n) {
  size_t k = 0;
  for (const char *p = s, *end = s + n; p < end; p++) {
    p = memchr(p, '\n', (size_t)(end - p));
    if (!p) break;
    k++;
  }
  return k;
}

/* FNV-1a over the line without its trailing white space (a "\r\n" file and a re-indented tail
 * are the same line). */
static uint64_t line_hash(const char *s, size_t n) {
  while (n > 0 && text_is_space(s[n - 1]))
    n--;
  uint64_t h = 1469598103934665603ULL;
  for (size_t i = 0; i < n; i++) {
    h ^= (unsigned char)s[i];
    h *= 1099511628211ULL;
  }
  return h;
}

static bool line_is_blank(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (!text_is_space(s[i])) return false;
  return true;
}

static int compare_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Hashes of text's non-blank lines into out (cap slots), sorted; how many. */
static size_t hash_lines(const char *text, size_t len, uint64_t *out, size_t cap) {
  size_t n = 0;
  for (size_t at = 0; at < len && n < cap;) {
    size_t end = text_line_end(text, len, at);
    if (!line_is_blank(text + at, end - at)) out[n++] = line_hash(text + at, end - at);
    at = end;
  }
  qsort(out, n, sizeof *out, compare_u64);
  return n;
}

/* llama.vim's chunk_sim: 2 * lines in common / (lines of a + lines of b), lines as a multiset. */
static double similarity(const uint64_t *a, size_t na, const uint64_t *b, size_t nb) {
  if (na + nb == 0) return 1.0;
  size_t i = 0, j = 0, common = 0;
  while (i < na && j < nb) {
    if (a[i] == b[j]) {
      common++;
      i++;
      j++;
    } else if (a[i] < b[j]) {
      i++;
    } else {
      j++;
    }
  }
  return 2.0 * (double)common / (double)(na + nb);
}

/* Removes chunks[i] (cr->mu held), keeping the order of the rest. */
static void ring_remove(struct context_ring *cr, size_t i) {
  cr->bytes -= cr->chunks[i]->len;
  aug_free(cr->chunks[i]);
  memmove(cr->chunks + i, cr->chunks + i + 1, (cr->n_chunks - i - 1) * sizeof *cr->chunks);
  cr->n_chunks--;
}

/* Puts the pending chunk into the ring (visiting thread). */
static int commit_pending(struct context_ring *cr, struct aug_err *err) {
  struct pending *pd = &cr->pending;
  if (!pd->valid) return 0;
  pd->valid = false;
  size_t n_hashes = hash_lines(pd->text.p, pd->text.n, cr->hash_scratch, cr->params.chunk_lines);
  size_t size = sizeof(struct chunk) + n_hashes * sizeof(uint64_t) + pd->uri.n + 1 + pd->path.n +
                1 + pd->text.n + 1;
  struct chunk *ch = aug_malloc(size);
  if (!ch) return aug_err_set(err, AUG_ENOMEM, "recent context: out of memory");
  ch->hashes = (uint64_t *)(ch + 1);
  memcpy(ch->hashes, cr->hash_scratch, n_hashes * sizeof(uint64_t));
  ch->n_hashes = n_hashes;
  char *s = (char *)(ch->hashes + n_hashes);
  memcpy(s, pd->uri.p, pd->uri.n + 1);
  ch->uri = s;
  s += pd->uri.n + 1;
  memcpy(s, pd->path.p, pd->path.n + 1);
  ch->path = s;
  s += pd->path.n + 1;
  memcpy(s, pd->text.p, pd->text.n + 1);
  ch->text = s;
  ch->len = pd->text.n;
  ch->first_line = pd->first_line;
  ch->n_lines = pd->n_lines;
  ch->anchor = (uint32_t)(pd->anchor - pd->first_line);

  pthread_mutex_lock(&cr->mu);
  for (size_t i = 0; i < cr->n_chunks; i++) {
    const struct chunk *old = cr->chunks[i];
    if (old->len == ch->len && !strcmp(old->path, ch->path) &&
        !memcmp(old->text, ch->text, ch->len)) {
      /* Seen again unchanged: where it is, the KV cache already holds it. */
      pthread_mutex_unlock(&cr->mu);
      aug_free(ch);
      return 0;
    }
  }
  for (size_t i = cr->n_chunks; i-- > 0;) {
    const struct chunk *old = cr->chunks[i];
    if (similarity(old->hashes, old->n_hashes, ch->hashes, ch->n_hashes) >= cr->params.similar) {
      ring_remove(cr, i);
      cr->replaced++;
    }
  }
  cr->chunks[cr->n_chunks++] = ch;
  cr->bytes += ch->len;
  cr->added++;
  while (cr->n_chunks > 1 &&
         (cr->n_chunks > cr->params.max_chunks || cr->bytes > cr->params.max_bytes)) {
    ring_remove(cr, 0);
    cr->evicted++;
  }
  pthread_mutex_unlock(&cr->mu);
  return 0;
}

int context_ring_flush(struct context_ring *cr, struct aug_err *err) {
  return commit_pending(cr, err);
}

/* The document's line starts: the caller's, or found here into a buffer the ring reuses. */
static int line_starts_of(struct context_ring *cr, const struct context_ring_place *pl,
                          const size_t **starts, size_t *n, struct aug_err *err) {
  if (pl->line_starts && pl->n_lines > 0) {
    *starts = pl->line_starts;
    *n = pl->n_lines;
    return 0;
  }
  size_t lines = count_newlines(pl->text, pl->len) + 1;
  if (lines > cr->scan_cap) {
    size_t *p = aug_realloc(cr->scan_starts, lines * sizeof *p);
    if (!p) return aug_err_set(err, AUG_ENOMEM, "recent context: out of memory");
    cr->scan_starts = p;
    cr->scan_cap = lines;
  }
  size_t k = 0;
  cr->scan_starts[k++] = 0;
  for (size_t at = 0; at < pl->len && k < lines;) {
    const char *nl = memchr(pl->text + at, '\n', pl->len - at);
    if (!nl) break;
    at = (size_t)(nl - pl->text) + 1;
    cr->scan_starts[k++] = at;
  }
  *starts = cr->scan_starts;
  *n = k;
  return 0;
}

/* Re-reads the pending chunk from the document: chunk_lines lines around the anchor, the lines
 * farthest from it left out past max_chunk_bytes; none when that leaves nothing or only blanks. */
static int capture(struct context_ring *cr, const struct context_ring_place *pl,
                   const size_t *starts, size_t n_doc, struct aug_err *err) {
  struct pending *pd = &cr->pending;
  pd->valid = false;
  int64_t anchor = pd->anchor < (int64_t)n_doc ? pd->anchor : (int64_t)n_doc - 1;
  if (anchor < 0) anchor = 0;
  int64_t want = cr->params.chunk_lines;
  int64_t first = anchor - want / 2;
  if (first < 0) first = 0;
  int64_t last = first + want; /* exclusive */
  if (last > (int64_t)n_doc) last = (int64_t)n_doc;
  if (last - first < want) first = last - want > 0 ? last - want : 0;
#define LINE_AT(l) ((l) < (int64_t)n_doc ? starts[(l)] : pl->len)
  while (LINE_AT(last) - LINE_AT(first) > cr->params.max_chunk_bytes && last - first > 1) {
    if (anchor - first >= last - 1 - anchor)
      first++;
    else
      last--;
  }
  size_t from = LINE_AT(first), to = LINE_AT(last);
#undef LINE_AT
  if (to > pl->len || from >= to || to - from > cr->params.max_chunk_bytes) return 0;
  if (line_is_blank(pl->text + from, to - from)) return 0;
  /* The document's last line without its line break: the piece still ends with one. */
  bool newline = pl->text[to - 1] == '\n';
  if (!buf_set(&pd->text, pl->text + from, to - from) ||
      (!newline && !buf_add_newline(&pd->text)) ||
      !buf_set(&pd->path, pl->path ? pl->path : "", pl->path ? strlen(pl->path) : 0))
    return aug_err_set(err, AUG_ENOMEM, "recent context: out of memory");
  pd->first_line = first;
  pd->n_lines = (uint32_t)(last - first);
  pd->valid = true;
  return 0;
}

int context_ring_visit(struct context_ring *cr, const struct context_ring_place *pl,
                       struct aug_err *err) {
  if (!cr || !pl || !pl->uri || (!pl->text && pl->len))
    return aug_err_set(err, AUG_EINVAL, "recent context: a visit needs a uri and a text");
  const size_t *starts = NULL;
  size_t n_doc = 0;
  int rc = line_starts_of(cr, pl, &starts, &n_doc, err);
  if (rc) return rc;
  int64_t line = pl->line < n_doc ? (int64_t)pl->line : (int64_t)n_doc - 1;
  struct pending *pd = &cr->pending;
  int64_t far = cr->params.chunk_lines / 2;
  bool same_doc = pd->placed && !strcmp(pd->uri.p, pl->uri);
  if (!same_doc || line - pd->anchor > far || pd->anchor - line > far) {
    rc = commit_pending(cr, err); /* left it: the place it was goes into the ring */
    if (!same_doc && !buf_set(&pd->uri, pl->uri, strlen(pl->uri))) {
      pd->placed = false;
      return rc ? rc : aug_err_set(err, AUG_ENOMEM, "recent context: out of memory");
    }
    pd->placed = true;
    pd->anchor = line;
    if (rc) return rc;
  }
  return pl->text ? capture(cr, pl, starts, n_doc, err) : 0;
}

void context_ring_edit(struct context_ring *cr, const char *uri, uint32_t start_line,
                       uint32_t end_line, uint32_t new_lines) {
  if (!cr || !uri || end_line < start_line) return;
  int64_t delta = (int64_t)new_lines - (int64_t)(end_line - start_line);
  if (delta == 0) return;
  struct pending *pd = &cr->pending;
  if (pd->placed && !strcmp(pd->uri.p, uri)) {
    if (pd->anchor > (int64_t)end_line) pd->anchor += delta;
    if (pd->first_line > (int64_t)end_line) pd->first_line += delta;
    if (pd->anchor < 0) pd->anchor = 0;
    if (pd->first_line < 0) pd->first_line = 0;
  }
  pthread_mutex_lock(&cr->mu);
  for (size_t i = 0; i < cr->n_chunks; i++) {
    struct chunk *ch = cr->chunks[i];
    if (ch->first_line > (int64_t)end_line && !strcmp(ch->uri, uri)) {
      ch->first_line += delta;
      if (ch->first_line < 0) ch->first_line = 0;
    }
  }
  pthread_mutex_unlock(&cr->mu);
}

void context_ring_stats(struct context_ring *cr, struct context_ring_stats *out) {
  memset(out, 0, sizeof *out);
  if (!cr) return;
  pthread_mutex_lock(&cr->mu);
  out->chunks = cr->n_chunks;
  out->bytes = cr->bytes;
  out->added = cr->added;
  out->replaced = cr->replaced;
  out->evicted = cr->evicted;
  pthread_mutex_unlock(&cr->mu);
  out->max_chunks = cr->params.max_chunks;
  out->chunk_lines = cr->params.chunk_lines;
}

/* --- the plugin --- */

static int ring_supports(void *self, uint32_t capability) {
  (void)self;
  return capability == AUGURY_CAP_CONTEXT;
}

static int ring_init(void *self, const struct augury_host *host, char *error) {
  (void)error;
  struct context_ring *cr = self;
  cr->host = host;
  return 0;
}

static void ring_destroy(void *self) {
  context_ring_destroy(self);
}

/* The host's count, or its own estimate when there is no host (the same bytes / 3). */
static size_t count_tokens(const struct context_ring *cr, const char *text, size_t len) {
  if (cr->host && cr->host->count_tokens)
    return cr->host->count_tokens(cr->host->host_data, text, len);
  return (len + 2) / 3;
}

/* The lines of the window: those that [window_start, window_end) touches. */
static void window_lines(const struct augury_context_request *req, int64_t *first, int64_t *last) {
  const struct augury_cursor *c = req->cursor;
  size_t ws = req->window_start < c->offset ? req->window_start : c->offset;
  size_t we = req->window_end > c->offset ? req->window_end : c->offset;
  if (we > c->text_len) we = c->text_len;
  *first = (int64_t)c->line - (int64_t)count_newlines(c->text + ws, c->offset - ws);
  *last = (int64_t)c->line +
          (we > c->offset ? (int64_t)count_newlines(c->text + c->offset, we - 1 - c->offset) : 0);
}

/* Cuts ch to the most lines around its anchor that fit budget tokens: [*start, *start + *len)
 * of its text, or *len 0 when not even its anchor line does. */
static void cut_to_fit(struct context_ring *cr, const struct chunk *ch, size_t budget,
                       size_t *start, size_t *len) {
  size_t n = 0;
  /* A chunk has at most chunk_lines lines; were there more, the last would hold the rest. */
  for (size_t at = 0; at < ch->len && n < cr->params.chunk_lines;) {
    cr->line_scratch[n++] = at;
    at = text_line_end(ch->text, ch->len, at);
  }
  cr->line_scratch[n] = ch->len;
  size_t anchor = ch->anchor < n ? ch->anchor : n - 1;
  size_t lo = 1, hi = n, best = 0, best_start = 0, best_len = 0;
  while (lo <= hi) {
    size_t k = lo + (hi - lo) / 2;
    size_t first = anchor > (k - 1) / 2 ? anchor - (k - 1) / 2 : 0;
    if (first + k > n) first = n - k;
    size_t from = cr->line_scratch[first], to = cr->line_scratch[first + k];
    if (count_tokens(cr, ch->text + from, to - from) <= budget) {
      best = k;
      best_start = from;
      best_len = to - from;
      lo = k + 1;
    } else {
      hi = k - 1;
    }
  }
  *start = best ? best_start : 0;
  *len = best ? best_len : 0;
}

static int ring_provide(void *self, const struct augury_context_request *req,
                        const struct augury_context_sink *sink, char *error) {
  struct context_ring *cr = self;
  const struct augury_cursor *c = req->cursor;
  if (!c || !c->text || req->token_budget == 0 || c->offset > c->text_len) return 0;
  int64_t win_first = 0, win_last = 0;
  window_lines(req, &win_first, &win_last);
  int rc = 0;
  pthread_mutex_lock(&cr->mu);
  /* Newest first while they fit: the oldest are the ones dropped. */
  size_t n_selected = 0, used = 0, cut_start = 0, cut_len = 0;
  bool cut = false;
  for (size_t i = cr->n_chunks; i-- > 0;) {
    const struct chunk *ch = cr->chunks[i];
    bool in_window = c->uri && !strcmp(ch->uri, c->uri) && ch->first_line <= win_last &&
                     ch->first_line + (int64_t)ch->n_lines - 1 >= win_first;
    if (in_window) continue;
    size_t tokens = count_tokens(cr, ch->text, ch->len);
    if (used + tokens <= req->token_budget) {
      cr->selected[n_selected++] = i;
      used += tokens;
      continue;
    }
    if (n_selected == 0) {
      cut_to_fit(cr, ch, req->token_budget, &cut_start, &cut_len);
      if (cut_len) {
        cr->selected[n_selected++] = i;
        cut = true;
      }
    }
    break;
  }
  /* Oldest first: a new chunk changes only the end of the context. */
  for (size_t k = n_selected; k-- > 0 && rc == 0;) {
    const struct chunk *ch = cr->chunks[cr->selected[k]];
    bool is_cut = cut && k == 0;
    struct augury_context_piece p = {ch->path, ch->text + (is_cut ? cut_start : 0),
                                     is_cut ? cut_len : ch->len, AUGURY_STABLE_RECENT};
    rc = sink->add(sink->sink_data, &p);
    if (rc == AUGURY_PLUGIN_ERANGE) rc = 0; /* the host counted more than we did: left out */
    if (rc) snprintf(error, 256, "the host refused a piece (%d)", rc);
  }
  pthread_mutex_unlock(&cr->mu);
  return rc;
}

int context_ring_create(const struct context_ring_params *params, struct context_ring **out,
                        struct aug_err *err) {
  *out = NULL;
  struct context_ring_params p = params ? *params : context_ring_params_default();
  if (p.max_chunks == 0 || p.max_chunks > RING_MAX_CHUNKS || p.chunk_lines < 2 ||
      p.chunk_lines > RING_MAX_CHUNK_LINES || p.max_chunk_bytes == 0 || p.max_bytes == 0 ||
      !(p.similar > 0 && p.similar <= 1))
    return aug_err_set(err, AUG_EINVAL,
                       "recent context: max_chunks %zu (1..%d), chunk_lines %u (2..%d), "
                       "max_chunk_bytes %zu, max_bytes %zu (positive) and similar %g (0..1]",
                       p.max_chunks, RING_MAX_CHUNKS, p.chunk_lines, RING_MAX_CHUNK_LINES,
                       p.max_chunk_bytes, p.max_bytes, p.similar);
  struct context_ring *cr = aug_calloc(1, sizeof *cr);
  if (!cr) return aug_err_set(err, AUG_ENOMEM, "recent context: out of memory");
  cr->params = p;
  if (pthread_mutex_init(&cr->mu, NULL)) {
    aug_free(cr);
    return aug_err_set(err, AUG_ENOMEM, "recent context: no mutex");
  }
  cr->chunks = aug_calloc(p.max_chunks + 1, sizeof *cr->chunks);
  cr->selected = aug_calloc(p.max_chunks, sizeof *cr->selected);
  cr->hash_scratch = aug_calloc(p.chunk_lines, sizeof *cr->hash_scratch);
  cr->line_scratch = aug_calloc((size_t)p.chunk_lines + 1, sizeof *cr->line_scratch);
  if (!cr->chunks || !cr->selected || !cr->hash_scratch || !cr->line_scratch) {
    context_ring_destroy(cr);
    return aug_err_set(err, AUG_ENOMEM, "recent context: out of memory");
  }
  cr->table = (struct augury_plugin){
      .abi_version = AUGURY_PLUGIN_ABI_VERSION,
      .struct_size = sizeof(struct augury_plugin),
      .name = CONTEXT_RING_NAME,
      .version = "1",
      .self = cr,
      .supports = ring_supports,
      .init = ring_init,
      .destroy = ring_destroy,
      .context_provide = ring_provide,
  };
  *out = cr;
  return 0;
}

void context_ring_destroy(struct context_ring *cr) {
  if (!cr) return;
  for (size_t i = 0; cr->chunks && i < cr->n_chunks; i++)
    aug_free(cr->chunks[i]);
  aug_free(cr->chunks);
  aug_free(cr->selected);
  aug_free(cr->hash_scratch);
  aug_free(cr->line_scratch);
  aug_free(cr->scan_starts);
  aug_free(cr->pending.uri.p);
  aug_free(cr->pending.path.p);
  aug_free(cr->pending.text.p);
  pthread_mutex_destroy(&cr->mu);
  aug_free(cr);
}

const struct augury_plugin *context_ring_plugin(struct context_ring *cr) {
  return &cr->table;
}
