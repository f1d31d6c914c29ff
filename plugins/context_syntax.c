/* The tree-sitter context providers (see context_syntax.h). One call: find the document's grammar
 * and its compiled queries (context_queries.h; none yet: nothing this call), bring the cached
 * syntax_doc up to the request's text (an incremental reparse), then
 *   scopes:      the scopes query over the bytes around the cursor gives the constructs that
 *                contain it; the header lines of those whose header ends before window_start,
 *                outer first, with "..." lines where text is left out;
 *   names:       the references query over the lines around the cursor, nearest first;
 *   imports and  one shallow walk of the outline query (plus one per class-like container for
 *   definitions: its members) gives the import statements and the definitions of those names,
 *                the ones wholly outside the window kept.
 * Scopes are fitted to the budget first (short, about the cursor), dropping the outermost;
 * imports take what is left, dropping the last; definitions what is left then, dropping the
 * farthest names'. Scratch buffers and the query cursor live in the plugin and are reused. */
#include "plugins/context_syntax.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "engine/alloc.h"
#include "grammars/grammars.h"
#include "grammars/syntax.h"
#include "plugins/context_queries.h"
#include "plugins/text_lines.h"

/* Header lines of one scope beyond this are left out (a parameter list one per line). */
#define CONTEXT_MAX_HEADER_LINES 6
/* Import statements looked at per document. */
#define CONTEXT_MAX_IMPORTS 256
/* Tree depth below which no import or definition is looked for (the root is depth 0): imports
 * and definitions sit at the top level or one down (#ifdef, a decorator); not descending further
 * keeps the walk off the inside of function bodies, most of a file's nodes (the locals there are
 * near the cursor, mostly in the window). Inside a container (class, impl, namespace, ...) its
 * members are looked for one level deeper, by a walk of that container's bytes only. On a
 * 2000-line C file the walk costs ~0.07 ms at depth 2 and ~2.3 ms at depth 3 over the whole
 * tree. */
#define CONTEXT_OUTLINE_DEPTH 2
#define CONTEXT_MEMBER_DEPTH 3
/* Containers whose members are looked for. */
#define CONTEXT_MAX_CONTAINERS 16
/* Lines around the cursor whose identifiers are looked up: this many above, one below. */
#define CONTEXT_NAME_LINES_ABOVE 4
/* Identifiers looked up, and definitions shown, at most. */
#define CONTEXT_MAX_NAMES 32
#define CONTEXT_MAX_DEFINITIONS 12
/* A definition this short is shown whole; a longer one by its header. */
#define CONTEXT_SMALL_DEFINITION_LINES 6
/* Definitions from other files (the workspace index): looked at per name, and in all. A name
 * defined in more files than this is looked at in the first ones by path (a common name such as
 * "main" or "run" says little about which one the cursor means). */
#define CONTEXT_FOREIGN_PER_NAME 2
#define CONTEXT_MAX_FOREIGN 12
/* Signatures of the module a qualifier before the cursor names ("util." -> util.lua), looked at
 * at most. */
#define CONTEXT_MAX_SIGNATURES 256

struct cached_doc {
  char *uri;
  const struct grammar *grammar;
  struct syntax_doc *doc;
  uint64_t used; /* the call count when it was last used: the smallest is evicted */
};

/* One match of a query, as byte ranges. */
struct span {
  size_t start, end;           /* the @scope or @import node */
  size_t body_start, body_end; /* @scope.body */
  bool closed;                 /* the scope ends with a closing token ('}', 'end') */
  size_t rank;                 /* a definition's: its name's rank among the names looked up */
};

struct strbuf {
  char *p;
  size_t n, cap;
};

struct span_list {
  struct span *v;
  size_t n, cap;
};

/* Identifiers used near the cursor: byte ranges into the text, nearest first. */
struct name_ref {
  size_t start, end;
  size_t distance; /* bytes from the cursor */
};
struct name_list {
  struct name_ref v[CONTEXT_MAX_NAMES];
  size_t n;
};

/* A definition from another file, copied out of the index: offsets into context_syntax.foreign_buf
 * (path and text, each NUL-terminated). */
struct foreign_def {
  size_t path, text, text_len;
  uint32_t line;
  size_t rank; /* its name's among cs->names */
  size_t tokens;
};

/* A signature of the qualified module: offsets into context_syntax.module_buf. */
struct signature {
  size_t path, line_at, line_len; /* path and line NUL-terminated */
  uint32_t line;
  bool related; /* its name shares a word with a name near the cursor */
};

struct context_syntax {
  struct augury_plugin table;
  struct context_syntax_params params;
  const struct augury_host *host; /* from init; NULL when called without a host */
  struct cached_doc *docs;        /* params.max_docs slots; uri NULL when free */
  uint64_t calls;
  struct context_queries *queries;
  TSQueryCursor *qc;
  struct span_list spans, definition_spans, containers;
  struct strbuf scopes, imports, definitions;
  struct name_list names;
  uint64_t defined; /* bit i: cs->names.v[i] has a definition in the document (anywhere) */
  struct foreign_def foreign[CONTEXT_MAX_FOREIGN];
  size_t n_foreign;
  struct strbuf foreign_buf;  /* the foreign definitions' paths and texts */
  struct strbuf foreign_text; /* the rendered pieces, one after another */
  struct signature signatures[CONTEXT_MAX_SIGNATURES];
  size_t n_signatures;
  struct strbuf module_buf;  /* the signatures' paths and lines */
  struct strbuf module_text; /* the rendered module piece */
};

struct context_syntax_params context_syntax_params_default(void) {
  return (struct context_syntax_params){.max_docs = 8, .max_bytes = 1u << 20, .max_scopes = 8};
}

/* --- small helpers --- */

static bool buf_put(struct strbuf *b, const char *s, size_t n) {
  if (b->n + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->n + n + 1)
      cap *= 2;
    char *p = aug_realloc(b->p, cap);
    if (!p) return false;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->n, s, n);
  b->n += n;
  b->p[b->n] = '\0';
  return true;
}

static bool spans_push(struct span_list *l, struct span s) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 16;
    struct span *v = aug_realloc(l->v, cap * sizeof *v);
    if (!v) return false;
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = s;
  return true;
}

static bool all_space(const char *text, size_t from, size_t to) {
  for (size_t i = from; i < to; i++)
    if (!text_is_space(text[i])) return false;
  return true;
}

/* Bytes of leading blanks of the line starting at start. */
static size_t indent_len(const char *text, size_t len, size_t start) {
  size_t i = start;
  while (i < len && (text[i] == ' ' || text[i] == '\t'))
    i++;
  return i - start;
}

/* The host's count, or its own estimate when there is no host (the same bytes / 3). */
static size_t count_tokens(const struct context_syntax *cs, const char *text, size_t len) {
  if (cs->host && cs->host->count_tokens)
    return cs->host->count_tokens(cs->host->host_data, text, len);
  return (len + 2) / 3;
}

static int spans_by_start(const void *a, const void *b) {
  const struct span *x = a, *y = b;
  if (x->start != y->start) return x->start < y->start ? -1 : 1;
  if (x->end != y->end) return x->end > y->end ? -1 : 1; /* outer first */
  return 0;
}

/* qsort, which may not be given the NULL of an empty list. */
static void spans_sort(struct span_list *l, int (*cmp)(const void *, const void *)) {
  if (l->n > 1) qsort(l->v, l->n, sizeof *l->v, cmp);
}

/* --- the document cache --- */

/* The cached document for uri brought to text, or NULL (with *rc) on failure. */
static struct syntax_doc *doc_for(struct context_syntax *cs, const char *uri,
                                  const struct grammar *grammar, const char *text, size_t len,
                                  int *rc, char *error) {
  struct cached_doc *slot = NULL, *oldest = &cs->docs[0];
  for (size_t i = 0; i < cs->params.max_docs; i++) {
    struct cached_doc *d = &cs->docs[i];
    if (d->uri && !strcmp(d->uri, uri)) {
      slot = d;
      break;
    }
    if (!d->uri) {
      if (oldest->uri) oldest = d;
    } else if (oldest->uri && d->used < oldest->used) {
      oldest = d;
    }
  }
  struct aug_err err = {0};
  if (slot && slot->grammar != grammar) { /* the editor changed the language: start over */
    syntax_doc_destroy(slot->doc);
    slot->doc = NULL;
  }
  if (!slot) {
    slot = oldest;
    aug_free(slot->uri);
    syntax_doc_destroy(slot->doc);
    slot->doc = NULL;
    slot->uri = aug_strndup(uri, strlen(uri));
    if (!slot->uri) {
      *rc = AUGURY_PLUGIN_ENOMEM;
      snprintf(error, 256, "out of memory");
      return NULL;
    }
  }
  slot->grammar = grammar;
  slot->used = cs->calls;
  if (!slot->doc && syntax_doc_create(grammar, &slot->doc, &err)) goto fail;
  size_t old_len;
  const char *old = syntax_doc_text(slot->doc, &old_len);
  bool same = syntax_doc_tree(slot->doc) && old_len == len && (!len || !memcmp(old, text, len));
  if (!same && syntax_doc_set_text(slot->doc, text, len, &err)) goto fail;
  return slot->doc;
fail:
  syntax_doc_destroy(slot->doc);
  slot->doc = NULL;
  aug_free(slot->uri);
  slot->uri = NULL;
  *rc = err.code == AUG_ENOMEM ? AUGURY_PLUGIN_ENOMEM : AUGURY_PLUGIN_EIO;
  snprintf(error, 256, "%.255s", err.msg);
  return NULL;
}

bool context_syntax_cached(const struct context_syntax *cs, const char *uri) {
  for (size_t i = 0; i < cs->params.max_docs; i++)
    if (cs->docs[i].uri && !strcmp(cs->docs[i].uri, uri)) return true;
  return false;
}

/* --- scopes --- */

/* Whether a scope's node or its body ends with an unnamed token: a closer such as '}' or 'end'
 * (Python's blocks end with their last statement). */
static bool ends_with_closer(TSNode scope, TSNode body) {
  uint32_t n = ts_node_child_count(scope);
  if (n && !ts_node_is_named(ts_node_child(scope, n - 1))) return true;
  n = ts_node_child_count(body);
  return n && !ts_node_is_named(ts_node_child(body, n - 1));
}

/* Whether the cursor at offset is inside scope s. A block without a closer (Python) goes on past
 * its last statement while the cursor sits on a blank stretch after it indented deeper than the
 * scope's header. */
static bool cursor_inside(const struct span *s, const char *text, size_t len, size_t offset) {
  if (offset <= s->start) return false;
  if (s->closed) return offset < s->end;
  if (offset <= s->end) return true;
  if (!all_space(text, s->end, offset)) return false;
  size_t cursor_line = text_line_start(text, offset);
  size_t cursor_indent = indent_len(text, len, cursor_line);
  if (offset < cursor_line + cursor_indent) cursor_indent = offset - cursor_line;
  return cursor_indent > indent_len(text, len, text_line_start(text, s->start));
}

/* Fills cs->spans with the scopes containing the cursor, outer first. */
static int find_scopes(struct context_syntax *cs, const TSQuery *query, const TSTree *tree,
                       const char *text, size_t len, size_t offset) {
  cs->spans.n = 0;
  uint32_t scope_id = context_queries_capture_id(query, "scope"),
           body_id = context_queries_capture_id(query, "scope.body");
  if (scope_id == UINT32_MAX || body_id == UINT32_MAX) return 0;
  /* Only the nodes around the cursor: the last non-blank byte before it (where a Python block
   * that the cursor continues ends) up to the cursor. */
  size_t from = offset;
  while (from > 0 && text_is_space(text[from - 1]))
    from--;
  if (from > 0) from--;
  size_t to = offset < len ? offset + 1 : len;
  ts_query_cursor_set_byte_range(cs->qc, (uint32_t)from, (uint32_t)(to > from ? to : from + 1));
  ts_query_cursor_set_max_start_depth(cs->qc, UINT32_MAX);
  ts_query_cursor_exec(cs->qc, query, ts_tree_root_node(tree));
  TSQueryMatch m;
  while (ts_query_cursor_next_match(cs->qc, &m)) {
    if (!grammars_match_passes(query, &m, text, len)) continue;
    TSNode scope = {0}, body = {0};
    bool has_scope = false, has_body = false;
    for (uint16_t i = 0; i < m.capture_count; i++) {
      if (m.captures[i].index == scope_id) scope = m.captures[i].node, has_scope = true;
      if (m.captures[i].index == body_id) body = m.captures[i].node, has_body = true;
    }
    if (!has_scope || !has_body) continue;
    struct span s = {ts_node_start_byte(scope),     ts_node_end_byte(scope),
                     ts_node_start_byte(body),      ts_node_end_byte(body),
                     ends_with_closer(scope, body), 0};
    if (s.end > len || s.body_start < s.start || !cursor_inside(&s, text, len, offset)) continue;
    bool seen = false;
    for (size_t i = 0; i < cs->spans.n && !seen; i++)
      seen = cs->spans.v[i].start == s.start && cs->spans.v[i].end == s.end;
    if (!seen && !spans_push(&cs->spans, s)) return AUGURY_PLUGIN_ENOMEM;
  }
  spans_sort(&cs->spans, spans_by_start);
  return 0;
}

/* The whole lines of scope s's header: [*from, *to), *to at or before limit; false when it has
 * none there. */
static bool header_lines(const struct span *s, const char *text, size_t len, size_t limit,
                         size_t *from, size_t *to) {
  size_t end = s->body_start;
  while (end > s->start && text_is_space(text[end - 1]))
    end--;
  if (end == s->start) end = s->body_start + 1 <= len ? s->body_start + 1 : len;
  size_t first = text_line_start(text, s->start);
  size_t last = text_line_end(text, len, end - 1);
  /* A long header keeps its first lines. */
  size_t at = first;
  for (int lines = 0; at < last && lines < CONTEXT_MAX_HEADER_LINES; lines++)
    at = text_line_end(text, len, at);
  if (at < last) last = at;
  if (last > limit) return false;
  *from = first;
  *to = last;
  return true;
}

/* An elision line: the indentation of the line at line_at, then "...". */
static bool put_elision(struct strbuf *b, const char *text, size_t len, size_t line_at) {
  size_t start = text_line_start(text, line_at);
  return buf_put(b, text + start, indent_len(text, len, start)) && buf_put(b, "...\n", 4);
}

/* Renders scopes [first, n) of cs->spans into cs->scopes. */
static bool render_scopes(struct context_syntax *cs, size_t first, const char *text, size_t len,
                          size_t window_start) {
  struct strbuf *b = &cs->scopes;
  b->n = 0;
  size_t done = 0; /* text before this is rendered or elided */
  bool any = false;
  for (size_t i = first; i < cs->spans.n; i++) {
    size_t from, to;
    if (!header_lines(&cs->spans.v[i], text, len, window_start, &from, &to)) continue;
    if (from < done) from = done;
    if (from >= to) continue;
    if (any && !all_space(text, done, from) && !put_elision(b, text, len, from)) return false;
    if (!buf_put(b, text + from, to - from)) return false;
    if (text[to - 1] != '\n' && !buf_put(b, "\n", 1)) return false;
    done = to;
    any = true;
  }
  if (any && !all_space(text, done, window_start)) {
    size_t next = done;
    while (next < window_start && text_is_space(text[next]))
      next++;
    if (!put_elision(b, text, len, next)) return false;
  }
  return true;
}

/* --- definitions --- */

static int names_by_distance(const void *a, const void *b) {
  const struct name_ref *x = a, *y = b;
  if (x->distance != y->distance) return x->distance < y->distance ? -1 : 1;
  return x->start < y->start ? -1 : x->start > y->start;
}

/* Fills cs->names with the distinct identifiers the references query finds on the lines around
 * the cursor, nearest first. */
static void find_names(struct context_syntax *cs, const TSQuery *query, const TSTree *tree,
                       const char *text, size_t len, size_t offset) {
  cs->names.n = 0;
  size_t from = text_line_start(text, offset);
  for (int i = 0; i < CONTEXT_NAME_LINES_ABOVE && from > 0; i++)
    from = text_line_start(text, from - 1);
  size_t to = text_line_end(text, len, text_line_end(text, len, offset));
  ts_query_cursor_set_byte_range(cs->qc, (uint32_t)from, (uint32_t)(to > from ? to : from + 1));
  ts_query_cursor_set_max_start_depth(cs->qc, UINT32_MAX);
  ts_query_cursor_exec(cs->qc, query, ts_tree_root_node(tree));
  struct name_ref found[CONTEXT_MAX_NAMES * 2];
  size_t n = 0;
  TSQueryMatch m;
  while (n < sizeof found / sizeof found[0] && ts_query_cursor_next_match(cs->qc, &m)) {
    if (!grammars_match_passes(query, &m, text, len)) continue;
    for (uint16_t i = 0; i < m.capture_count && n < sizeof found / sizeof found[0]; i++) {
      uint32_t name_len;
      const char *name = ts_query_capture_name_for_id(query, m.captures[i].index, &name_len);
      if (name_len < 10 || memcmp(name, "reference.", 10)) continue;
      size_t a = ts_node_start_byte(m.captures[i].node), b = ts_node_end_byte(m.captures[i].node);
      if (b <= a || b > len || b - a > 128) continue;
      bool seen = false;
      for (size_t j = 0; j < n && !seen; j++)
        seen = found[j].end - found[j].start == b - a &&
               !memcmp(text + found[j].start, text + a, b - a);
      if (!seen) found[n++] = (struct name_ref){a, b, a > offset ? a - offset : offset - a};
    }
  }
  if (n > 1) qsort(found, n, sizeof *found, names_by_distance);
  cs->names.n = n < CONTEXT_MAX_NAMES ? n : CONTEXT_MAX_NAMES;
  memcpy(cs->names.v, found, cs->names.n * sizeof *found);
}

/* The rank (0 nearest) of the identifier text[a..b) among cs->names, or SIZE_MAX. */
static size_t name_rank(const struct context_syntax *cs, const char *text, size_t a, size_t b) {
  for (size_t i = 0; i < cs->names.n; i++) {
    const struct name_ref *r = &cs->names.v[i];
    if (r->end - r->start == b - a && !memcmp(text + r->start, text + a, b - a)) return i;
  }
  return SIZE_MAX;
}

static int spans_by_rank(const void *a, const void *b) {
  const struct span *x = a, *y = b;
  if (x->rank != y->rank) return x->rank < y->rank ? -1 : 1;
  return x->start < y->start ? -1 : x->start > y->start;
}

/* --- imports and definitions --- */

/* Whether a definition kind (the capture's name after "definition.") holds members. */
static bool is_container(const char *kind, size_t len) {
  static const char *const kinds[] = {"class",  "struct",    "impl",     "trait",
                                      "module", "namespace", "interface"};
  for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
    if (strlen(kinds[i]) == len && !memcmp(kinds[i], kind, len)) return true;
  return false;
}

/* One walk of the outline query over bytes [from, to) down to depth: imports wholly outside the
 * window go to cs->spans, definitions of cs->names wholly outside it to cs->definition_spans
 * (rank: of their name; fields are left out: without their struct they say little), and, when
 * containers is not NULL, the containers' byte ranges to it (at most CONTEXT_MAX_CONTAINERS). */
static int outline_walk(struct context_syntax *cs, const TSQuery *query, const TSTree *tree,
                        const char *text, size_t len, size_t window_start, size_t window_end,
                        size_t from, size_t to, uint32_t depth, struct span_list *containers) {
  uint32_t import_id = context_queries_capture_id(query, "import"),
           name_id = context_queries_capture_id(query, "name");
  ts_query_cursor_set_byte_range(cs->qc, (uint32_t)from, (uint32_t)to);
  ts_query_cursor_set_max_start_depth(cs->qc, depth);
  ts_query_cursor_exec(cs->qc, query, ts_tree_root_node(tree));
  TSQueryMatch m;
  while (ts_query_cursor_next_match(cs->qc, &m)) {
    if (!grammars_match_passes(query, &m, text, len)) continue;
    TSNode def = {0}, name = {0};
    bool has_def = false, has_name = false, container = false;
    for (uint16_t i = 0; i < m.capture_count; i++) {
      TSNode node = m.captures[i].node;
      if (m.captures[i].index == import_id) {
        struct span s = {ts_node_start_byte(node), ts_node_end_byte(node), 0, 0, false, 0};
        if (cs->spans.n >= CONTEXT_MAX_IMPORTS || s.end > len ||
            !(s.end <= window_start || s.start >= window_end))
          continue;
        bool seen = false;
        for (size_t j = 0; j < cs->spans.n && !seen; j++)
          seen = cs->spans.v[j].start == s.start;
        if (!seen && !spans_push(&cs->spans, s)) return AUGURY_PLUGIN_ENOMEM;
        continue;
      }
      uint32_t cap_len;
      const char *cap = ts_query_capture_name_for_id(query, m.captures[i].index, &cap_len);
      if (m.captures[i].index == name_id) {
        name = node;
        has_name = true;
      } else if (cap_len > 11 && !memcmp(cap, "definition.", 11) &&
                 !(cap_len == 16 && !memcmp(cap + 11, "field", 5))) {
        def = node;
        has_def = true;
        container = is_container(cap + 11, cap_len - 11);
      }
    }
    if (!has_def) continue;
    struct span s = {ts_node_start_byte(def), ts_node_end_byte(def), 0, 0, false, 0};
    if (s.end > len || s.end <= s.start) continue;
    if (container && containers && containers->n < CONTEXT_MAX_CONTAINERS &&
        !spans_push(containers, s))
      return AUGURY_PLUGIN_ENOMEM;
    if (!has_name || !cs->names.n) continue;
    size_t rank = name_rank(cs, text, ts_node_start_byte(name), ts_node_end_byte(name));
    if (rank == SIZE_MAX) continue;
    cs->defined |= (uint64_t)1 << rank; /* inside the window too: not looked up elsewhere */
    if (!(s.end <= window_start || s.start >= window_end)) continue;
    TSNode body = ts_node_child_by_field_name(def, "body", 4);
    s.body_start = ts_node_is_null(body) ? s.end : ts_node_start_byte(body);
    s.rank = rank;
    bool seen = false;
    for (size_t j = 0; j < cs->definition_spans.n && !seen; j++)
      seen = cs->definition_spans.v[j].start == s.start;
    if (!seen && !spans_push(&cs->definition_spans, s)) return AUGURY_PLUGIN_ENOMEM;
  }
  return 0;
}

/* cs->spans: the import statements wholly outside the window (document order);
 * cs->definition_spans: the definitions of cs->names wholly outside it, nearest name first. */
static int find_outline(struct context_syntax *cs, const TSQuery *query, const TSTree *tree,
                        const char *text, size_t len, size_t window_start, size_t window_end) {
  cs->spans.n = 0;
  cs->definition_spans.n = 0;
  cs->containers.n = 0;
  cs->defined = 0;
  int rc = outline_walk(cs, query, tree, text, len, window_start, window_end, 0, UINT32_MAX,
                        CONTEXT_OUTLINE_DEPTH, &cs->containers);
  /* Members: a walk of each container's bytes one level deeper (one that holds the window
   * included: its other members are what the cursor's code calls). */
  for (size_t i = 0; !rc && cs->names.n && i < cs->containers.n; i++)
    rc = outline_walk(cs, query, tree, text, len, window_start, window_end,
                      cs->containers.v[i].start, cs->containers.v[i].end, CONTEXT_MEMBER_DEPTH,
                      NULL);
  if (rc) return rc;
  spans_sort(&cs->spans, spans_by_start);
  spans_sort(&cs->definition_spans, spans_by_rank);
  /* A definition that is an import (Lua's local x = require "x", JS's const x = require()) is
   * shown with the imports already. */
  size_t kept = 0;
  for (size_t i = 0; i < cs->definition_spans.n; i++) {
    const struct span *d = &cs->definition_spans.v[i];
    bool overlaps = false;
    for (size_t j = 0; j < cs->spans.n && !overlaps; j++)
      overlaps = d->start < cs->spans.v[j].end && cs->spans.v[j].start < d->end;
    if (!overlaps) cs->definition_spans.v[kept++] = *d;
  }
  cs->definition_spans.n = kept;
  return 0;
}

/* Renders the first n imports of cs->spans into cs->imports, one statement a line. */
static bool render_imports(struct context_syntax *cs, size_t n, const char *text) {
  struct strbuf *b = &cs->imports;
  b->n = 0;
  for (size_t i = 0; i < n; i++) {
    const struct span *s = &cs->spans.v[i];
    size_t end = s->end;
    while (end > s->start && text_is_space(text[end - 1]))
      end--;
    if (end > s->start && (!buf_put(b, text + s->start, end - s->start) || !buf_put(b, "\n", 1)))
      return false;
  }
  return true;
}

/* The lines of one definition: whole when short, else its header (the lines up to its body, or
 * its first line). Returns where the rendered lines end; *cut when the rest was left out. */
static size_t definition_lines(const struct span *s, const char *text, size_t len, size_t *from,
                               bool *cut) {
  size_t first = text_line_start(text, s->start);
  size_t last = text_line_end(text, len, s->end - 1);
  size_t lines = 0;
  for (size_t at = first; at < last; at = text_line_end(text, len, at))
    lines++;
  *from = first;
  *cut = lines > CONTEXT_SMALL_DEFINITION_LINES;
  if (!*cut) return last;
  size_t end = s->body_start < s->end ? s->body_start : s->start + 1;
  while (end > s->start + 1 && text_is_space(text[end - 1]))
    end--;
  last = text_line_end(text, len, end - 1);
  size_t at = first;
  for (int n = 0; at < last && n < CONTEXT_MAX_HEADER_LINES; n++)
    at = text_line_end(text, len, at);
  return at;
}

/* An elision for the body of a definition shown by its header: indented as the first line after
 * done. */
static bool put_body_elision(struct strbuf *b, const char *text, size_t len, size_t done,
                             size_t end) {
  size_t next = done;
  while (next < end && text_is_space(text[next]))
    next++;
  return put_elision(b, text, len, next);
}

/* Renders the n nearest definitions (cs->definition_spans, sorted by rank) in document order,
 * with "..." lines where text between or inside them is left out. order: scratch for n spans. */
static bool render_definitions(struct context_syntax *cs, size_t n, const char *text, size_t len,
                               struct span *order) {
  struct strbuf *b = &cs->definitions;
  b->n = 0;
  memcpy(order, cs->definition_spans.v, n * sizeof *order);
  qsort(order, n, sizeof *order, spans_by_start);
  size_t done = 0;    /* rendered up to here */
  size_t covered = 0; /* the end of the last definition shown by its header only */
  bool open_cut = false;
  for (size_t i = 0; i < n; i++) {
    size_t from;
    bool cut;
    size_t to = definition_lines(&order[i], text, len, &from, &cut);
    if (from < done) continue; /* its lines are already there (one line, two definitions) */
    if (b->n) {
      size_t gap = done;
      if (open_cut && from >= covered) { /* past the cut body: say so, then the gap after it */
        if (!put_body_elision(b, text, len, done, covered)) return false;
        open_cut = false;
        gap = covered;
      }
      if (!all_space(text, gap, from) && !put_elision(b, text, len, from)) return false;
    }
    if (!buf_put(b, text + from, to - from)) return false;
    if (text[to - 1] != '\n' && !buf_put(b, "\n", 1)) return false;
    done = to;
    if (cut && (!open_cut || order[i].end > covered)) covered = order[i].end;
    open_cut = open_cut || cut;
  }
  return !open_cut || put_body_elision(b, text, len, done, covered);
}

/* --- definitions from other files --- */

struct foreign_lookup {
  struct context_syntax *cs;
  size_t rank, taken;
  bool nomem;
};

/* Copies one definition out of the index (called with the index locked). */
static int take_foreign(void *data, const struct workspace_index_definition *d) {
  struct foreign_lookup *l = data;
  struct context_syntax *cs = l->cs;
  if (l->taken == CONTEXT_FOREIGN_PER_NAME || cs->n_foreign == CONTEXT_MAX_FOREIGN) return 1;
  struct foreign_def *f = &cs->foreign[cs->n_foreign];
  f->path = cs->foreign_buf.n;
  if (!buf_put(&cs->foreign_buf, d->path, strlen(d->path) + 1)) goto nomem;
  f->text = cs->foreign_buf.n;
  if (!buf_put(&cs->foreign_buf, d->text, d->text_len) || !buf_put(&cs->foreign_buf, "", 1))
    goto nomem;
  f->text_len = d->text_len;
  f->line = d->line;
  f->rank = l->rank;
  cs->n_foreign++;
  l->taken++;
  return 0;
nomem:
  l->nomem = true;
  return 1;
}

/* cs->foreign: the definitions, in files other than the cursor's, of the names near the cursor
 * that the document does not define, nearest name first (each name's by path, then line). */
static bool find_foreign(struct context_syntax *cs, const char *text, const char *own_path) {
  cs->n_foreign = 0;
  cs->foreign_buf.n = 0;
  for (size_t i = 0; i < cs->names.n && cs->n_foreign < CONTEXT_MAX_FOREIGN; i++) {
    if (cs->defined & ((uint64_t)1 << i)) continue;
    const struct name_ref *r = &cs->names.v[i];
    struct foreign_lookup l = {cs, i, 0, false};
    workspace_index_lookup(cs->params.index, text + r->start, r->end - r->start, own_path,
                           take_foreign, &l);
    if (l.nomem) return false;
  }
  return true;
}

static int foreign_by_place(const struct foreign_def *x, const struct foreign_def *y,
                            const char *buf) {
  int c = strcmp(buf + x->path, buf + y->path);
  if (c) return c;
  return x->line < y->line ? -1 : x->line > y->line;
}

static size_t count_lines(const char *s, size_t n) {
  size_t lines = 0;
  for (size_t i = 0; i < n; i++)
    lines += s[i] == '\n';
  return lines;
}

/* One piece per file. */
struct foreign_piece {
  size_t path, start, len; /* path: into foreign_buf; start, len: into foreign_text */
};

/* Renders the chosen definitions (n, in rank order) sorted by path then line into
 * cs->foreign_text, one piece per file into out, with a "..." line between two definitions of a
 * file that are not next to each other. Returns the number of pieces, or SIZE_MAX without memory.
 */
static size_t render_foreign(struct context_syntax *cs, const struct foreign_def **chosen, size_t n,
                             struct foreign_piece *out) {
  const char *buf = cs->foreign_buf.p;
  for (size_t i = 1; i < n; i++) /* insertion sort: a dozen at most */
    for (size_t j = i; j > 0 && foreign_by_place(chosen[j - 1], chosen[j], buf) > 0; j--) {
      const struct foreign_def *t = chosen[j];
      chosen[j] = chosen[j - 1];
      chosen[j - 1] = t;
    }
  struct strbuf *b = &cs->foreign_text;
  b->n = 0;
  size_t pieces = 0;
  const struct foreign_def *prev = NULL;
  for (size_t i = 0; i < n; i++) {
    const struct foreign_def *d = chosen[i];
    bool same_file = prev && !strcmp(buf + prev->path, buf + d->path);
    if (same_file && prev->line == d->line) continue; /* one definition, two names */
    if (!same_file) {
      if (pieces) out[pieces - 1].len = b->n - out[pieces - 1].start;
      out[pieces++] = (struct foreign_piece){d->path, b->n, 0};
    } else {
      const char *pt = buf + prev->text;
      bool cut = prev->text_len >= 4 && !memcmp(pt + prev->text_len - 4, "...\n", 4);
      if (!cut && d->line != prev->line + count_lines(pt, prev->text_len) &&
          !buf_put(b, "...\n", 4))
        return SIZE_MAX;
    }
    if (!buf_put(b, buf + d->text, d->text_len)) return SIZE_MAX;
    prev = d;
  }
  if (pieces) out[pieces - 1].len = b->n - out[pieces - 1].start;
  return pieces;
}

/* --- the module a qualifier names --- */

/* The qualifier before the cursor: text[*q..*q_end) is "util" in "util.", "util:" or "util::",
 * followed by the start of a name being typed, text[*partial..offset) (maybe empty). */
static bool find_qualifier(const char *text, size_t offset, size_t *q, size_t *q_end,
                           size_t *partial) {
  size_t p = offset;
  while (p > 0 && text_is_word(text[p - 1]))
    p--;
  size_t sep = p;
  if (sep >= 2 && text[sep - 1] == ':' && text[sep - 2] == ':')
    sep -= 2;
  else if (sep >= 1 && (text[sep - 1] == '.' || text[sep - 1] == ':'))
    sep -= 1;
  else
    return false;
  size_t start = sep;
  while (start > 0 && text_is_word(text[start - 1]))
    start--;
  if (start == sep || (text[start] >= '0' && text[start] <= '9')) return false;
  *q = start;
  *q_end = sep;
  *partial = p;
  return true;
}

/* The next word of an identifier from *at: a run of letters and digits ended by '_', a case
 * change to upper (fooBar) or the end; [*from, *to), false when none is left. */
static bool next_subword(const char *s, size_t n, size_t *at, size_t *from, size_t *to) {
  size_t i = *at;
  while (i < n && s[i] == '_')
    i++;
  if (i >= n) return false;
  size_t j = i + 1;
  while (j < n && s[j] != '_' &&
         !(s[j] >= 'A' && s[j] <= 'Z' && s[j - 1] >= 'a' && s[j - 1] <= 'z'))
    j++;
  *from = i;
  *to = j;
  *at = j;
  return true;
}

/* Whether identifiers a and b share a word of 3 or more letters, ignoring case
 * (make_position_params and params do; fooBar and bar_baz do). */
static bool share_subword(const char *a, size_t an, const char *b, size_t bn) {
  size_t ia = 0, fa, ta;
  while (next_subword(a, an, &ia, &fa, &ta)) {
    if (ta - fa < 3) continue;
    size_t ib = 0, fb, tb;
    while (next_subword(b, bn, &ib, &fb, &tb))
      if (tb - fb == ta - fa && !strncasecmp(a + fa, b + fb, ta - fa)) return true;
  }
  return false;
}

struct module_lookup {
  struct context_syntax *cs;
  const char *text;    /* the document, for the names near the cursor */
  const char *partial; /* the start of the name being typed */
  size_t partial_len;
  bool nomem;
};

/* Copies one definition's first line out of the index (called with it locked) when its name
 * starts with what is typed. */
static int take_signature(void *data, const struct workspace_index_definition *d) {
  struct module_lookup *l = data;
  struct context_syntax *cs = l->cs;
  if (cs->n_signatures == CONTEXT_MAX_SIGNATURES) return 1;
  size_t name_len = strlen(d->name);
  if (name_len < l->partial_len || memcmp(d->name, l->partial, l->partial_len)) return 0;
  const char *nl = memchr(d->text, '\n', d->text_len);
  size_t line_len = nl ? (size_t)(nl - d->text) + 1 : d->text_len;
  struct signature *sig = &cs->signatures[cs->n_signatures];
  const struct signature *prev = cs->n_signatures ? sig - 1 : NULL;
  if (prev && !strcmp(cs->module_buf.p + prev->path, d->path)) {
    sig->path = prev->path;
  } else {
    sig->path = cs->module_buf.n;
    if (!buf_put(&cs->module_buf, d->path, strlen(d->path) + 1)) goto nomem;
  }
  sig->line_at = cs->module_buf.n;
  if (!buf_put(&cs->module_buf, d->text, line_len) || !buf_put(&cs->module_buf, "", 1)) goto nomem;
  sig->line_len = line_len;
  sig->line = d->line;
  sig->related = false;
  for (size_t i = 0; i < cs->names.n && !sig->related; i++) {
    const struct name_ref *r = &cs->names.v[i];
    sig->related = share_subword(d->name, name_len, l->text + r->start, r->end - r->start);
  }
  cs->n_signatures++;
  return 0;
nomem:
  l->nomem = true;
  return 1;
}

static void signatures_clear(struct context_syntax *cs) {
  cs->module_text.n = 0;
  cs->module_buf.n = 0;
  cs->n_signatures = 0;
}

/* cs->module_text: the signatures of file chosen (an offset into module_buf) that fit in budget
 * tokens, those sharing a word with a name near the cursor first, then the others by line; shown
 * in line order. */
static bool render_signatures(struct context_syntax *cs, size_t chosen, size_t budget) {
  bool take[CONTEXT_MAX_SIGNATURES] = {false};
  size_t used = 0;
  for (int pass = 0; pass < 2; pass++)
    for (size_t i = 0; i < cs->n_signatures; i++) {
      const struct signature *sig = &cs->signatures[i];
      if (sig->path != chosen || sig->related != (pass == 0)) continue;
      size_t t = count_tokens(cs, cs->module_buf.p + sig->line_at, sig->line_len);
      if (used + t > budget) continue;
      used += t;
      take[i] = true;
    }
  for (size_t i = 0; i < cs->n_signatures; i++) {
    const struct signature *sig = &cs->signatures[i];
    if (take[i] && !buf_put(&cs->module_text, cs->module_buf.p + sig->line_at, sig->line_len))
      return false;
  }
  if (cs->module_text.n && cs->module_text.p[cs->module_text.n - 1] != '\n' &&
      !buf_put(&cs->module_text, "\n", 1))
    return false;
  return true;
}

/* cs->module_text: when a qualifier before the cursor names a module of the workspace (a file
 * "util.lua" for "util."), the signatures (first lines) of its definitions whose names start with
 * what is typed after it, in line order, as many as fit in budget tokens: first those sharing a
 * word with a name near the cursor, then the others by line. The file in the cursor's folder is
 * preferred, else the first by path. *path receives the module's path (in module_buf). */
static bool render_module(struct context_syntax *cs, const char *text, size_t offset,
                          const char *own_path, size_t budget, const char **path) {
  signatures_clear(cs);
  *path = NULL;
  size_t q, q_end, partial;
  if (!find_qualifier(text, offset, &q, &q_end, &partial)) return true;
  struct module_lookup l = {cs, text, text + partial, offset - partial, false};
  workspace_index_module(cs->params.index, text + q, q_end - q, own_path, take_signature, &l);
  if (l.nomem) return false;
  if (!cs->n_signatures) return true;
  /* One file: the one in the cursor's folder, else the first. */
  size_t own_dir =
      own_path && strrchr(own_path, '/') ? (size_t)(strrchr(own_path, '/') - own_path) : 0;
  size_t chosen = cs->signatures[0].path;
  for (size_t i = 0; i < cs->n_signatures; i++) {
    const char *p = cs->module_buf.p + cs->signatures[i].path;
    const char *slash = strrchr(p, '/');
    size_t dir = slash ? (size_t)(slash - p) : 0;
    if (dir == own_dir && (!dir || !strncmp(p, own_path, dir))) {
      chosen = cs->signatures[i].path;
      break;
    }
  }
  if (!render_signatures(cs, chosen, budget)) return false;
  *path = cs->module_buf.p + chosen;
  return true;
}

/* --- the file an unqualified call likely reaches --- */

/* Languages where a bare name reaches other files with no import naming it: Go (any file of the
 * package, that is, of the folder) and C/C++ (whatever the includes declare). Elsewhere a name
 * from another file is imported by name or qualified, and the lookups above find it. */
enum neighbour_rule { NEIGHBOURS_NONE, NEIGHBOURS_PACKAGE, NEIGHBOURS_C_FAMILY };

static enum neighbour_rule neighbour_rule_of(const struct grammar *g) {
  if (!strcmp(g->name, "go")) return NEIGHBOURS_PACKAGE;
  if (!strcmp(g->name, "c") || !strcmp(g->name, "cpp")) return NEIGHBOURS_C_FAMILY;
  return NEIGHBOURS_NONE;
}

static bool ends_with(const char *s, const char *suffix) {
  size_t n = strlen(s), m = strlen(suffix);
  return n >= m && !memcmp(s + n - m, suffix, m);
}

struct neighbour_filter {
  enum neighbour_rule rule;
  const char *own_path;
  size_t own_dir; /* own_path[0..own_dir) is its folder ("" at the root) */
};

static bool accept_neighbour(void *data, const char *path) {
  const struct neighbour_filter *f = data;
  if (f->rule == NEIGHBOURS_C_FAMILY) {
    const struct grammar *g = grammars_find_path(path);
    return g && neighbour_rule_of(g) == NEIGHBOURS_C_FAMILY;
  }
  const char *slash = strrchr(path, '/');
  size_t dir = slash ? (size_t)(slash - path) : 0;
  if (dir != f->own_dir || strncmp(path, f->own_path, dir) || !ends_with(path, ".go")) return false;
  /* A test file may call the package's code; the package never calls its tests. */
  return !ends_with(path, "_test.go") || ends_with(f->own_path, "_test.go");
}

/* cs->module_text, when no qualifier named a module: in Go and C/C++, the signatures of the
 * file the editor sent last among the cursor's neighbours (its package's files; C and C++
 * files), related ones first, as in render_module. */
static bool render_neighbour(struct context_syntax *cs, const struct grammar *grammar,
                             const char *text, const char *own_path, size_t budget,
                             const char **path) {
  enum neighbour_rule rule = neighbour_rule_of(grammar);
  if (rule == NEIGHBOURS_NONE || !own_path) return true;
  const char *slash = strrchr(own_path, '/');
  struct neighbour_filter filter = {rule, own_path, slash ? (size_t)(slash - own_path) : 0};
  signatures_clear(cs);
  struct module_lookup l = {cs, text, "", 0, false};
  workspace_index_recent(cs->params.index, own_path, accept_neighbour, &filter, take_signature, &l);
  if (l.nomem) return false;
  if (!cs->n_signatures) return true;
  size_t chosen = cs->signatures[0].path; /* one file */
  if (!render_signatures(cs, chosen, budget)) return false;
  if (cs->module_text.n) *path = cs->module_buf.p + chosen;
  return true;
}

/* --- the plugin --- */

static int syntax_supports(void *self, uint32_t capability) {
  (void)self;
  return capability == AUGURY_CAP_CONTEXT;
}

static int syntax_init(void *self, const struct augury_host *host, char *error) {
  (void)error;
  struct context_syntax *cs = self;
  cs->host = host;
  return 0;
}

static void syntax_destroy(void *self) {
  context_syntax_destroy(self);
}

static const struct grammar *grammar_of(const struct augury_cursor *c) {
  const struct grammar *g = c->language_id ? grammars_find_language_id(c->language_id) : NULL;
  if (!g && c->path && *c->path) g = grammars_find_path(c->path);
  if (!g && c->uri && *c->uri) g = grammars_find_path(c->uri);
  return g;
}

void context_syntax_prepare(struct context_syntax *cs, const char *language_id, const char *path) {
  if (!cs) return;
  struct augury_cursor c = {.language_id = language_id, .path = path};
  const struct grammar *g = grammar_of(&c);
  if (!g) return;
  const TSQuery *q[CONTEXT_QUERY_COUNT] = {NULL};
  bool ready = false;
  struct aug_err err = {0};
  /* A query that does not compile says so at the completion that asks for it. */
  (void)context_queries_get(cs->queries, g, false, q, &ready, &err);
}

static int nomem(char *error) {
  snprintf(error, 256, "out of memory");
  return AUGURY_PLUGIN_ENOMEM;
}

static int syntax_provide(void *self, const struct augury_context_request *req,
                          const struct augury_context_sink *sink, char *error) {
  struct context_syntax *cs = self;
  const struct augury_cursor *c = req->cursor;
  cs->calls++;
  if (!c || !c->text || req->token_budget == 0 || c->text_len > cs->params.max_bytes ||
      c->offset > c->text_len)
    return 0;
  const struct grammar *grammar = grammar_of(c);
  if (!grammar) return 0;
  const TSQuery *q[CONTEXT_QUERY_COUNT] = {NULL};
  bool ready = false;
  struct aug_err err = {0};
  if (context_queries_get(cs->queries, grammar, cs->params.compile_in_call, q, &ready, &err)) {
    snprintf(error, 256, "%.255s", err.msg);
    return AUGURY_PLUGIN_EIO;
  }
  if (!ready) return 0; /* compiling on the background thread: nothing this time */
  int rc = 0;
  struct syntax_doc *doc =
      doc_for(cs, c->uri ? c->uri : "", grammar, c->text, c->text_len, &rc, error);
  if (!doc) return rc;
  const TSTree *tree = syntax_doc_tree(doc);
  size_t len = c->text_len;
  const char *text = syntax_doc_text(doc, NULL);
  size_t window_start = req->window_start < len ? req->window_start : len;
  size_t window_end = req->window_end < len ? req->window_end : len;
  if (window_end < window_start) window_end = window_start;
  size_t budget = req->token_budget;

  /* Scopes: drop the outermost until the piece fits. */
  cs->scopes.n = 0;
  size_t scope_tokens = 0;
  if (q[CONTEXT_QUERY_SCOPES] && window_start > 0) {
    if (find_scopes(cs, q[CONTEXT_QUERY_SCOPES], tree, text, len, c->offset)) return nomem(error);
    size_t first = cs->spans.n > cs->params.max_scopes ? cs->spans.n - cs->params.max_scopes : 0;
    for (; first < cs->spans.n; first++) {
      if (!render_scopes(cs, first, text, len, window_start)) return nomem(error);
      scope_tokens = cs->scopes.n ? count_tokens(cs, cs->scopes.p, cs->scopes.n) : 0;
      if (scope_tokens <= budget) break;
      cs->scopes.n = 0;
      scope_tokens = 0;
    }
  }
  /* The names used around the cursor, then one walk for the imports and their definitions. */
  cs->names.n = 0;
  cs->defined = 0;
  if (q[CONTEXT_QUERY_REFERENCES])
    find_names(cs, q[CONTEXT_QUERY_REFERENCES], tree, text, len, c->offset);
  cs->spans.n = cs->definition_spans.n = 0;
  if (q[CONTEXT_QUERY_OUTLINE] &&
      find_outline(cs, q[CONTEXT_QUERY_OUTLINE], tree, text, len, window_start, window_end))
    return nomem(error);
  /* Imports: the first ones that fit in what is left. Counted a statement at a time to find how
   * many fit, then checked as one text (a tokenizer may merge across the newlines), dropping the
   * last while it is over. */
  cs->imports.n = 0;
  size_t import_tokens = 0;
  {
    size_t left = budget - scope_tokens, sum = 0, n = 0;
    for (; n < cs->spans.n; n++) {
      const struct span *s = &cs->spans.v[n];
      sum += count_tokens(cs, text + s->start, s->end - s->start) + 1;
      if (sum > left) break;
    }
    for (; n > 0; n--) {
      if (!render_imports(cs, n, text)) return nomem(error);
      import_tokens = count_tokens(cs, cs->imports.p, cs->imports.n);
      if (import_tokens <= left) break;
      cs->imports.n = 0;
      import_tokens = 0;
    }
  }
  /* Definitions: the nearest names' that fit in what is left. */
  cs->definitions.n = 0;
  size_t definition_tokens = 0;
  if (scope_tokens + import_tokens < budget) {
    size_t left = budget - scope_tokens - import_tokens;
    struct span order[CONTEXT_MAX_DEFINITIONS];
    size_t n = cs->definition_spans.n < CONTEXT_MAX_DEFINITIONS ? cs->definition_spans.n
                                                                : CONTEXT_MAX_DEFINITIONS;
    for (; n > 0; n--) {
      if (!render_definitions(cs, n, text, len, order)) return nomem(error);
      definition_tokens = count_tokens(cs, cs->definitions.p, cs->definitions.n);
      if (definition_tokens <= left) break;
      cs->definitions.n = 0;
      definition_tokens = 0;
    }
  }
  /* Definitions from other files: the nearest names' that fit in what is left after the
   * document's own, one piece per file named by its path, files in path order. They follow the
   * names near the cursor as the document's definitions do, so they come after those (stability
   * FILE): among the PROJECT pieces at the prompt's start they would move its first bytes at
   * every such change and cost the KV cache all that follows. */
  const char *own_path = c->path && *c->path ? c->path : NULL;
  struct foreign_piece foreign_pieces[CONTEXT_MAX_FOREIGN];
  size_t n_foreign_pieces = 0;
  size_t used = scope_tokens + import_tokens + definition_tokens;
  /* The module a qualifier at the cursor names: what can follow "util." comes first among the
   * other files (the name about to be written is not near the cursor yet). */
  const char *module_path = NULL;
  if (cs->params.index && used < budget) {
    /* Two thirds of what is left: the definitions of the names near the cursor get the rest. */
    if (!render_module(cs, text, c->offset, own_path, (budget - used) * 2 / 3, &module_path))
      return nomem(error);
    /* Half of what is left: a file the user looked at is a weaker hint than a qualifier. */
    if (!cs->module_text.n &&
        !render_neighbour(cs, grammar, text, own_path, (budget - used) / 2, &module_path))
      return nomem(error);
    if (cs->module_text.n) used += count_tokens(cs, cs->module_text.p, cs->module_text.n);
  }
  if (cs->params.index && cs->names.n && used < budget) {
    if (!find_foreign(cs, text, own_path)) return nomem(error);
    const struct foreign_def *chosen[CONTEXT_MAX_FOREIGN];
    size_t n_chosen = 0, sum = 0;
    for (size_t i = 0; i < cs->n_foreign; i++) {
      struct foreign_def *d = &cs->foreign[i];
      d->tokens = count_tokens(cs, cs->foreign_buf.p + d->text, d->text_len);
      if (sum + d->tokens > budget - used) continue;
      sum += d->tokens;
      chosen[n_chosen++] = d;
    }
    n_foreign_pieces = render_foreign(cs, chosen, n_chosen, foreign_pieces);
    if (n_foreign_pieces == SIZE_MAX) return nomem(error);
  }
  /* Most stable first (the host orders by stability anyway; this is the order within one). */
  struct augury_context_piece pieces[4 + CONTEXT_MAX_FOREIGN] = {
      {own_path, cs->imports.p, cs->imports.n, AUGURY_STABLE_PROJECT},
      {own_path, cs->scopes.p, cs->scopes.n, AUGURY_STABLE_FILE},
      /* after the scopes: the names near the cursor change more often than where it is */
      {own_path, cs->definitions.p, cs->definitions.n, AUGURY_STABLE_FILE},
      {module_path, cs->module_text.p, cs->module_text.n, AUGURY_STABLE_FILE},
  };
  for (size_t i = 0; i < n_foreign_pieces; i++) {
    const struct foreign_piece *f = &foreign_pieces[i];
    pieces[4 + i] = (struct augury_context_piece){
        cs->foreign_buf.p + f->path, cs->foreign_text.p + f->start, f->len, AUGURY_STABLE_FILE};
  }
  for (size_t i = 0; i < 4 + n_foreign_pieces; i++) {
    if (!pieces[i].text_len) continue;
    rc = sink->add(sink->sink_data, &pieces[i]);
    if (rc == AUGURY_PLUGIN_ERANGE) continue; /* the host counted more than we did: left out */
    if (rc) {
      snprintf(error, 256, "the host refused a piece (%d)", rc);
      return rc;
    }
  }
  return 0;
}

int context_syntax_create(const struct context_syntax_params *params, struct context_syntax **out,
                          struct aug_err *err) {
  *out = NULL;
  struct context_syntax_params p = params ? *params : context_syntax_params_default();
  if (p.max_docs == 0 || p.max_scopes == 0)
    return aug_err_set(err, AUG_EINVAL,
                       "syntax context: max_docs %zu and max_scopes %u must be "
                       "positive",
                       p.max_docs, p.max_scopes);
  struct context_syntax *cs = aug_calloc(1, sizeof *cs);
  if (!cs) return aug_err_set(err, AUG_ENOMEM, "syntax context: out of memory");
  cs->params = p;
  cs->docs = aug_calloc(p.max_docs, sizeof *cs->docs);
  cs->qc = ts_query_cursor_new();
  if (!cs->docs || !cs->qc) {
    context_syntax_destroy(cs);
    return aug_err_set(err, AUG_ENOMEM, "syntax context: out of memory");
  }
  int rc = context_queries_create(&cs->queries, err);
  if (rc) {
    context_syntax_destroy(cs);
    return rc;
  }
  cs->table = (struct augury_plugin){
      .abi_version = AUGURY_PLUGIN_ABI_VERSION,
      .struct_size = sizeof(struct augury_plugin),
      .name = CONTEXT_SYNTAX_NAME,
      .version = "1",
      .self = cs,
      .supports = syntax_supports,
      .init = syntax_init,
      .destroy = syntax_destroy,
      .context_provide = syntax_provide,
  };
  *out = cs;
  return 0;
}

void context_syntax_destroy(struct context_syntax *cs) {
  if (!cs) return;
  for (size_t i = 0; cs->docs && i < cs->params.max_docs; i++) {
    aug_free(cs->docs[i].uri);
    syntax_doc_destroy(cs->docs[i].doc);
  }
  context_queries_destroy(cs->queries);
  if (cs->qc) ts_query_cursor_delete(cs->qc);
  aug_free(cs->docs);
  aug_free(cs->spans.v);
  aug_free(cs->definition_spans.v);
  aug_free(cs->containers.v);
  aug_free(cs->scopes.p);
  aug_free(cs->imports.p);
  aug_free(cs->definitions.p);
  aug_free(cs->foreign_buf.p);
  aug_free(cs->foreign_text.p);
  aug_free(cs->module_buf.p);
  aug_free(cs->module_text.p);
  aug_free(cs);
}

const struct augury_plugin *context_syntax_plugin(struct context_syntax *cs) {
  return &cs->table;
}
