/* Candidate syntax check (see syntax.h). A document keeps its text, its tree and the list of its
 * error nodes; a check parses prefix + candidate + suffix from an edited copy of that tree (the
 * unchanged subtrees are reused), lists the result's error nodes, maps their positions back to
 * the document's coordinates and looks each up in the document's list: one not found is new.
 * Trimming tries the whole candidate, then each shorter run of whole lines, longest first. */
#include "grammars/syntax.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

/* An ERROR node (its contents are not listed) or a MISSING node, by byte range. */
struct syntax_error {
  uint32_t start;
  uint32_t end;
  TSSymbol symbol; /* the missing token's symbol; 0 for ERROR */
  bool missing;
};

struct error_list {
  struct syntax_error *items;
  size_t count;
  size_t capacity;
};

struct syntax_doc {
  const struct grammar *grammar;
  TSParser *parser;
  TSTree *tree;
  char *text;
  size_t length;
  size_t capacity;
  struct error_list errors;  /* of tree */
  struct error_list scratch; /* of the candidate's tree */
  bool *used;                /* errors.count flags for matching, sized with errors */
  size_t used_capacity;
};

/* The three pieces the candidate parse reads without copying them together. */
struct spliced_input {
  const char *pieces[3];
  uint32_t ends[3]; /* cumulative end offsets */
};

static const char *spliced_read(void *payload, uint32_t byte_index, TSPoint position,
                                uint32_t *bytes_read) {
  (void)position;
  const struct spliced_input *in = payload;
  uint32_t start = 0;
  for (int i = 0; i < 3; i++) {
    if (byte_index < in->ends[i]) {
      *bytes_read = in->ends[i] - byte_index;
      return in->pieces[i] + (byte_index - start);
    }
    start = in->ends[i];
  }
  *bytes_read = 0;
  return "";
}

/* Row and byte column of offset in text (tree-sitter points count bytes). */
static TSPoint point_at(const char *text, size_t offset) {
  TSPoint point = {0, 0};
  size_t line_start = 0;
  const char *p = text;
  const char *end = text + offset;
  while (p < end) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    if (!nl) break;
    point.row++;
    line_start = (size_t)(nl - text) + 1;
    p = nl + 1;
  }
  point.column = (uint32_t)(offset - line_start);
  return point;
}

/* The point reached from start after the bytes text[0..length). */
static TSPoint point_after(TSPoint start, const char *text, size_t length) {
  TSPoint inner = point_at(text, length);
  if (inner.row == 0) return (TSPoint){start.row, start.column + inner.column};
  return (TSPoint){start.row + inner.row, inner.column};
}

static int list_push(struct error_list *list, struct syntax_error e) {
  if (list->count == list->capacity) {
    size_t capacity = list->capacity ? list->capacity * 2 : 16;
    struct syntax_error *items = realloc(list->items, capacity * sizeof *items);
    if (!items) return AUG_ENOMEM;
    list->items = items;
    list->capacity = capacity;
  }
  list->items[list->count++] = e;
  return 0;
}

/* Lists the ERROR and MISSING nodes of tree in document order (pre-order, so starts never
 * decrease), descending only into nodes that contain an error. */
static int collect_errors(const TSTree *tree, struct error_list *list) {
  list->count = 0;
  TSNode root = ts_tree_root_node(tree);
  if (!ts_node_has_error(root)) return 0;
  TSTreeCursor cursor = ts_tree_cursor_new(root);
  int rc = 0;
  for (;;) {
    TSNode node = ts_tree_cursor_current_node(&cursor);
    bool descend = false;
    if (ts_node_is_error(node) || ts_node_is_missing(node)) {
      struct syntax_error e = {ts_node_start_byte(node), ts_node_end_byte(node), 0, false};
      if (ts_node_is_missing(node)) {
        e.missing = true;
        e.symbol = ts_node_symbol(node);
      }
      rc = list_push(list, e);
      if (rc) break;
    } else if (ts_node_has_error(node)) {
      descend = true;
    }
    if (descend && ts_tree_cursor_goto_first_child(&cursor)) continue;
    bool moved = false;
    while (!(moved = ts_tree_cursor_goto_next_sibling(&cursor))) {
      if (!ts_tree_cursor_goto_parent(&cursor)) break;
    }
    if (!moved) break;
  }
  ts_tree_cursor_delete(&cursor);
  return rc;
}

int syntax_doc_create(const struct grammar *grammar, struct syntax_doc **out, struct aug_err *err) {
  *out = NULL;
  const TSLanguage *language;
  int rc = grammars_language(grammar, &language, err);
  if (rc) return rc;
  struct syntax_doc *doc = calloc(1, sizeof *doc);
  if (!doc) return aug_err_set(err, AUG_ENOMEM, "syntax: out of memory");
  doc->grammar = grammar;
  doc->parser = ts_parser_new();
  if (!doc->parser || !ts_parser_set_language(doc->parser, language)) {
    syntax_doc_destroy(doc);
    return aug_err_set(err, AUG_EUNSUPPORTED, "syntax: the parser refused grammar '%s'",
                       grammar->name);
  }
  rc = syntax_doc_set_text(doc, "", 0, err);
  if (rc) {
    syntax_doc_destroy(doc);
    return rc;
  }
  *out = doc;
  return 0;
}

void syntax_doc_destroy(struct syntax_doc *doc) {
  if (!doc) return;
  if (doc->tree) ts_tree_delete(doc->tree);
  if (doc->parser) ts_parser_delete(doc->parser);
  free(doc->text);
  free(doc->errors.items);
  free(doc->scratch.items);
  free(doc->used);
  free(doc);
}

int syntax_doc_set_text(struct syntax_doc *doc, const char *text, size_t length,
                        struct aug_err *err) {
  if (length >= UINT32_MAX) {
    return aug_err_set(err, AUG_ERANGE, "syntax: a text of %zu bytes is over the parser's limit",
                       length);
  }
  /* The edit that turns the old text into the new one: what lies between their common prefix
   * and common suffix. */
  size_t old_length = doc->length;
  size_t prefix = 0;
  size_t limit = old_length < length ? old_length : length;
  while (prefix < limit && doc->text[prefix] == text[prefix])
    prefix++;
  size_t suffix = 0;
  while (suffix < limit - prefix &&
         doc->text[old_length - 1 - suffix] == text[length - 1 - suffix]) {
    suffix++;
  }
  TSInputEdit edit = {0};
  if (doc->tree) {
    edit.start_byte = (uint32_t)prefix;
    edit.old_end_byte = (uint32_t)(old_length - suffix);
    edit.new_end_byte = (uint32_t)(length - suffix);
    edit.start_point = point_at(text, prefix);
    edit.old_end_point = point_at(doc->text, old_length - suffix);
    edit.new_end_point = point_at(text, length - suffix);
  }

  if (length + 1 > doc->capacity) {
    size_t capacity = length + 1 + length / 4;
    char *copy = malloc(capacity);
    if (!copy) return aug_err_set(err, AUG_ENOMEM, "syntax: out of memory for %zu bytes", length);
    free(doc->text);
    doc->text = copy;
    doc->capacity = capacity;
  }
  if (length) memmove(doc->text, text, length); /* text may be our own copy */
  doc->text[length] = '\0';
  doc->length = length;

  TSTree *old = doc->tree;
  if (old) ts_tree_edit(old, &edit);
  TSTree *tree = ts_parser_parse_string(doc->parser, old, doc->text, (uint32_t)length);
  if (old) ts_tree_delete(old);
  doc->tree = tree;
  if (!tree) {
    doc->errors.count = 0;
    return aug_err_set(err, AUG_EUNSUPPORTED, "syntax: the %s parser gave no tree",
                       doc->grammar->name);
  }
  int rc = collect_errors(tree, &doc->errors);
  if (!rc && doc->errors.count > doc->used_capacity) {
    bool *used = realloc(doc->used, doc->errors.capacity * sizeof *used);
    if (!used) {
      rc = AUG_ENOMEM;
    } else {
      doc->used = used;
      doc->used_capacity = doc->errors.capacity;
    }
  }
  if (rc) {
    doc->errors.count = 0;
    return aug_err_set(err, rc, "syntax: out of memory listing error nodes");
  }
  return 0;
}

const char *syntax_doc_text(const struct syntax_doc *doc, size_t *length) {
  if (length) *length = doc->length;
  return doc->text;
}

const TSTree *syntax_doc_tree(const struct syntax_doc *doc) {
  return doc->tree;
}

size_t syntax_doc_error_count(const struct syntax_doc *doc) {
  return doc->errors.count;
}

/* ---- shape ------------------------------------------------------------------------------- */

static bool is_blank(char c) {
  return c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

static size_t line_start_of(const char *text, size_t offset) {
  while (offset > 0 && text[offset - 1] != '\n')
    offset--;
  return offset;
}

/* Columns of leading blanks of the line starting at line_start (a tab counts as one). */
static size_t indent_of(const char *text, size_t length, size_t line_start) {
  size_t i = line_start;
  while (i < length && is_blank(text[i]))
    i++;
  return i - line_start;
}

static bool is_comment(TSNode node) {
  return strstr(ts_node_type(node), "comment") != NULL;
}

/* The token types that open a block at the end of a line, in any of our grammars. */
static bool is_opener(TSNode leaf) {
  const char *type = ts_node_type(leaf);
  if (!strcmp(type, "{") || !strcmp(type, ":") || !strcmp(type, "then") || !strcmp(type, "do") ||
      !strcmp(type, "else") || !strcmp(type, "repeat")) {
    return true;
  }
  /* Lua: `function f(a, b)` opens the function's body. */
  if (!strcmp(type, ")")) {
    TSNode parent = ts_node_parent(leaf);
    return !ts_node_is_null(parent) && !strcmp(ts_node_type(parent), "parameters");
  }
  return false;
}

/* The smallest ancestor of leaf that extends past limit: the construct the opener opens. */
static TSNode opened_construct(TSNode leaf, uint32_t limit) {
  TSNode node = ts_node_parent(leaf);
  while (!ts_node_is_null(node) && ts_node_end_byte(node) <= limit) {
    TSNode parent = ts_node_parent(node);
    if (ts_node_is_null(parent)) break;
    node = parent;
  }
  return node;
}

/* The last non-comment leaf ending at or before offset whose text is not blank; null if none. */
static TSNode leaf_before(const struct syntax_doc *doc, size_t offset) {
  TSNode root = ts_tree_root_node(doc->tree);
  size_t b = offset;
  for (;;) {
    while (b > 0 && (is_blank(doc->text[b - 1]) || doc->text[b - 1] == '\n'))
      b--;
    if (b == 0) return (TSNode){0};
    TSNode leaf = ts_node_descendant_for_byte_range(root, (uint32_t)(b - 1), (uint32_t)b);
    if (ts_node_is_null(leaf)) return leaf;
    if (!is_comment(leaf)) return leaf;
    b = ts_node_start_byte(leaf);
  }
}

int syntax_shape_at(const struct syntax_doc *doc, size_t cursor, struct syntax_shape *out,
                    struct aug_err *err) {
  *out = (struct syntax_shape){SYNTAX_SINGLE_LINE, SIZE_MAX, SIZE_MAX};
  if (!doc->tree) return aug_err_set(err, AUG_EINVAL, "syntax: the document has no tree");
  if (cursor > doc->length) {
    return aug_err_set(err, AUG_ERANGE, "syntax: cursor %zu is past the end of the text (%zu)",
                       cursor, doc->length);
  }
  const char *text = doc->text;
  /* The cursor's line must be blank: at the start of an empty block the user has typed only the
   * indentation. */
  size_t line_start = line_start_of(text, cursor);
  for (size_t i = line_start; i < doc->length && text[i] != '\n'; i++) {
    if (!is_blank(text[i])) return 0;
  }
  if (line_start == 0) return 0;
  TSNode leaf = leaf_before(doc, line_start);
  if (ts_node_is_null(leaf) || !is_opener(leaf)) return 0;
  uint32_t opener_end = ts_node_end_byte(leaf);
  TSNode construct = opened_construct(leaf, opener_end);

  /* Empty: what follows the cursor's line is the construct's closer, the end of the text, or a
   * line indented no deeper than the opener's (code after an unclosed block). */
  size_t next = cursor;
  while (next < doc->length && (is_blank(text[next]) || text[next] == '\n'))
    next++;
  size_t opener_line = line_start_of(text, ts_node_start_byte(leaf));
  size_t header_indent = indent_of(text, doc->length, opener_line);
  bool empty = next == doc->length;
  size_t block_end = SIZE_MAX;
  if (!empty && !ts_node_is_null(construct)) {
    uint32_t count = ts_node_child_count(construct);
    TSNode last = count ? ts_node_child(construct, count - 1) : (TSNode){0};
    if (!ts_node_is_null(last) && !ts_node_is_named(last) && !ts_node_is_missing(last) &&
        ts_node_start_byte(last) == next && ts_node_end_byte(last) > ts_node_start_byte(last)) {
      empty = true;
      block_end = next;
    }
  }
  if (!empty && indent_of(text, doc->length, line_start_of(text, next)) <= header_indent) {
    empty = true;
  }
  if (!empty) return 0;
  out->kind = SYNTAX_MULTI_LINE;
  out->opener = ts_node_start_byte(leaf);
  out->block_end = block_end;
  return 0;
}

/* ---- check ------------------------------------------------------------------------------- */

struct syntax_check_params syntax_check_params_default(void) {
  return (struct syntax_check_params){.replaced = 0,
                                      .max_parses = 32,
                                      .time_budget_us = 0,
                                      .parse_budget_us = 0,
                                      .cut_at_block_end = true};
}

/* A time budget of the calling thread's CPU time, with a wall-clock backstop. CPU time because
 * the machines this runs on are shared (CI runs at a load average of 5-9 on 2 cores): wall time
 * there counts the time the thread waited for a core, and good candidates were dropped for it.
 * The backstop, SYNTAX_WALL_BACKSTOP times the budget in wall time, still ends a check that
 * stalls (a thread starved for that long would miss the user anyway). */
struct budget {
  uint64_t budget_ns;  /* 0: none */
  uint64_t cpu_start;  /* thread CPU time when it started */
  uint64_t wall_start; /* monotonic time when it started */
};

static uint64_t monotonic_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t thread_cpu_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static struct budget budget_start(uint64_t budget_ns) {
  struct budget b = {budget_ns, 0, 0};
  if (budget_ns) {
    b.wall_start = monotonic_ns();
    b.cpu_start = thread_cpu_ns();
  }
  return b;
}

/* wall_now: monotonic_ns(); *cpu_now: thread_cpu_ns(), read here when needed (0: not yet). A
 * thread's CPU time cannot grow faster than the wall clock, so while the wall time spent is within
 * the budget the CPU clock (a system call, where the monotonic clock is not) is not read at all:
 * the common fast parse pays nothing for it. */
static bool budget_spent(const struct budget *b, uint64_t wall_now, uint64_t *cpu_now) {
  if (!b->budget_ns) return false;
  uint64_t wall = wall_now - b->wall_start;
  if (wall <= b->budget_ns) return false;
  if (wall > b->budget_ns * SYNTAX_WALL_BACKSTOP) return true;
  if (!*cpu_now) *cpu_now = thread_cpu_ns();
  return *cpu_now - b->cpu_start > b->budget_ns;
}

/* One candidate check: the document, where the candidate goes, and the time limits. */
struct attempt {
  struct syntax_doc *doc;
  size_t cursor;
  size_t replaced;
  const char *candidate;
  TSPoint cursor_point;       /* of cursor */
  TSPoint replaced_end_point; /* of cursor + replaced, in the document */
  struct budget check;        /* time_budget_us, of the whole check */
  bool timed_out;
  uint64_t parse_budget_ns; /* per parse; 0: none */
  struct budget parse;      /* of the parse running */
  bool parse_slow;          /* the parse running went past parse_budget_ns */
  unsigned slow_parses;
  void (*progress_hook_cb)(void *data);
  void *progress_hook_data;
};

/* tree-sitter calls this every 100 parse operations; true stops the parse. */
static bool progress_cb(TSParseState *state) {
  struct attempt *a = state->payload;
  if (a->progress_hook_cb) a->progress_hook_cb(a->progress_hook_data);
  if (!a->check.budget_ns && !a->parse.budget_ns) return false;
  uint64_t wall_now = monotonic_ns();
  uint64_t cpu_now = 0;
  if (budget_spent(&a->check, wall_now, &cpu_now)) {
    a->timed_out = true;
    return true;
  }
  if (budget_spent(&a->parse, wall_now, &cpu_now)) {
    a->parse_slow = true;
    return true;
  }
  return false;
}

/* The tree of prefix + candidate[0..keep) + suffix (caller deletes it), or NULL when the deadline
 * stopped the parse. */
static TSTree *attempt_parse(struct attempt *a, size_t keep) {
  struct syntax_doc *doc = a->doc;
  TSTree *edited = ts_tree_copy(doc->tree);
  TSPoint new_end_point = point_after(a->cursor_point, a->candidate, keep);
  TSInputEdit edit = {
      .start_byte = (uint32_t)a->cursor,
      .old_end_byte = (uint32_t)(a->cursor + a->replaced),
      .new_end_byte = (uint32_t)(a->cursor + keep),
      .start_point = a->cursor_point,
      .old_end_point = a->replaced_end_point,
      .new_end_point = new_end_point,
  };
  ts_tree_edit(edited, &edit);
  struct spliced_input in = {{doc->text, a->candidate, doc->text + a->cursor + a->replaced}, {0}};
  in.ends[0] = (uint32_t)a->cursor;
  in.ends[1] = (uint32_t)(a->cursor + keep);
  in.ends[2] = (uint32_t)(doc->length - a->replaced + keep);
  TSInput input = {.payload = &in, .read = spliced_read, .encoding = TSInputEncodingUTF8};
  TSParseOptions options = {.payload = a, .progress_callback = progress_cb};
  a->parse_slow = false;
  a->parse = budget_start(a->parse_budget_ns);
  TSTree *tree = ts_parser_parse_with_options(doc->parser, edited, input, options);
  ts_tree_delete(edited);
  /* A stopped parse would otherwise be resumed by the next call. */
  if (!tree) ts_parser_reset(doc->parser);
  return tree;
}

/* Maps a byte of the candidate's text to the document's; SIZE_MAX for a byte inside the
 * inserted text. */
static size_t map_back(size_t b, size_t cursor, size_t replaced, size_t keep) {
  if (b <= cursor) return b;
  if (b >= cursor + keep) return b - keep + replaced;
  return SIZE_MAX;
}

/* How many error nodes of the candidate's tree (in doc->scratch) the document does not have. */
static size_t count_new_errors(struct syntax_doc *doc, size_t cursor, size_t replaced,
                               size_t keep) {
  const struct error_list *old = &doc->errors;
  if (old->count) memset(doc->used, 0, old->count * sizeof *doc->used);
  size_t fresh = 0;
  size_t from = 0;
  for (size_t i = 0; i < doc->scratch.count; i++) {
    const struct syntax_error *e = &doc->scratch.items[i];
    size_t start = map_back(e->start, cursor, replaced, keep);
    size_t end = map_back(e->end, cursor, replaced, keep);
    bool found = false;
    if (start != SIZE_MAX && end != SIZE_MAX) {
      /* Both lists are in start order: skip the document's errors that start earlier. */
      while (from < old->count && old->items[from].start < start)
        from++;
      for (size_t j = from; j < old->count && old->items[j].start == start; j++) {
        const struct syntax_error *o = &old->items[j];
        if (!doc->used[j] && o->end == end && o->missing == e->missing && o->symbol == e->symbol) {
          doc->used[j] = true;
          found = true;
          break;
        }
      }
    }
    if (!found) fresh++;
  }
  return fresh;
}

/* Parses with keep bytes of the candidate; *fresh = new error nodes. *tree_out (optional) gets
 * the tree, else it is deleted. AUG_ETIMEOUT past the deadline. */
static int attempt_check(struct attempt *a, size_t keep, size_t *fresh, TSTree **tree_out) {
  if (tree_out) *tree_out = NULL;
  TSTree *tree = attempt_parse(a, keep);
  if (!tree && a->parse_slow && !a->timed_out) {
    /* Taken as failing: slow parses are error recovery running on (see parse_budget_us). */
    a->slow_parses++;
    *fresh = 1;
    return 0;
  }
  if (!tree) return a->timed_out ? AUG_ETIMEOUT : AUG_EUNSUPPORTED;
  int rc = collect_errors(tree, &a->doc->scratch);
  if (!rc) *fresh = count_new_errors(a->doc, a->cursor, a->replaced, keep);
  if (tree_out && !rc) {
    *tree_out = tree;
  } else {
    ts_tree_delete(tree);
  }
  return rc;
}

/* In the candidate's tree, where the block the cursor opens ends, as a length of the candidate;
 * 0 when it does not end inside the candidate. */
static size_t block_cut(const TSTree *tree, const struct syntax_shape *shape, size_t cursor,
                        size_t keep) {
  TSNode root = ts_tree_root_node(tree);
  TSNode leaf =
      ts_node_descendant_for_byte_range(root, (uint32_t)shape->opener, (uint32_t)shape->opener + 1);
  if (ts_node_is_null(leaf) || ts_node_start_byte(leaf) != shape->opener) return 0;
  TSNode construct = opened_construct(leaf, (uint32_t)cursor);
  if (ts_node_is_null(construct)) return 0;
  size_t end = ts_node_end_byte(construct);
  /* A construct without a closing token (Python's if, def, class) may go on after the block
   * with clauses of its own (elif, else, except): the block is then the body that follows the
   * opener, and it ends where that body does. */
  uint32_t count = ts_node_child_count(construct);
  TSNode last = count ? ts_node_child(construct, count - 1) : (TSNode){0};
  TSNode body = ts_node_next_sibling(leaf);
  while (!ts_node_is_null(body) && ts_node_is_extra(body))
    body = ts_node_next_sibling(body);
  if (!ts_node_is_null(last) && ts_node_is_named(last) && !ts_node_is_null(body) &&
      ts_node_is_named(body) && ts_node_end_byte(body) > cursor) {
    end = ts_node_end_byte(body);
  }
  if (end <= cursor || end >= cursor + keep) return 0;
  return end - cursor;
}

static bool all_blank(const char *s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (!is_blank(s[i]) && s[i] != '\n') return false;
  }
  return true;
}

static unsigned count_lines(const char *s, size_t n) {
  if (n == 0) return 0;
  unsigned lines = 1;
  for (size_t i = 0; i < n; i++)
    lines += s[i] == '\n';
  return lines;
}

int syntax_check(struct syntax_doc *doc, size_t cursor, const char *candidate, size_t length,
                 const struct syntax_check_params *params, struct syntax_verdict *out,
                 struct aug_err *err) {
  struct syntax_check_params p = params ? *params : syntax_check_params_default();
  memset(out, 0, sizeof *out);
  out->errors_before = doc->errors.count;
  out->lines_total = count_lines(candidate, length);
  if (cursor > doc->length || p.replaced > doc->length - cursor) {
    return aug_err_set(err, AUG_ERANGE,
                       "syntax: cursor %zu + replaced %zu is outside the text (%zu bytes)", cursor,
                       p.replaced, doc->length);
  }
  if (length >= UINT32_MAX - doc->length) {
    return aug_err_set(err, AUG_ERANGE, "syntax: a candidate of %zu bytes is too long", length);
  }
  int rc = syntax_shape_at(doc, cursor, &out->shape, err);
  if (rc) return rc;
  /* An ERROR that ends at the cursor is the construct being typed (the word "ret" of a function
   * whose closing brace is not there yet): a candidate that continues it may be told apart from
   * the error only by a parse that comes out clean. */
  bool error_ends_at_cursor = false;
  for (size_t i = 0; i < doc->errors.count; i++) {
    const struct syntax_error *e = &doc->errors.items[i];
    if (e->missing || e->start >= cursor) continue;
    if (e->end > cursor + p.replaced) out->inside_error = true;
    if (e->end == cursor + p.replaced) error_ends_at_cursor = true;
  }
  if (length == 0 || all_blank(candidate, length)) return 0;

  struct attempt a = {.doc = doc,
                      .cursor = cursor,
                      .replaced = p.replaced,
                      .candidate = candidate,
                      .cursor_point = point_at(doc->text, cursor)};
  a.replaced_end_point = point_after(a.cursor_point, doc->text + cursor, p.replaced);
  a.check = budget_start((uint64_t)p.time_budget_us * 1000u);
  a.parse_budget_ns = (uint64_t)p.parse_budget_us * 1000u;
  a.progress_hook_cb = p.progress_hook_cb;
  a.progress_hook_data = p.progress_hook_data;

  size_t keep = length;
  size_t fresh = 0;
  TSTree *tree = NULL;
  bool want_cut = p.cut_at_block_end && out->shape.kind == SYNTAX_MULTI_LINE;
  rc = attempt_check(&a, keep, &fresh, want_cut ? &tree : NULL);
  out->parses++;
  if (rc) goto failed;
  out->new_errors_full = fresh;
  if (tree) {
    size_t cut = block_cut(tree, &out->shape, cursor, keep);
    ts_tree_delete(tree);
    if (cut) {
      keep = cut;
      out->block_cut = true;
      if (out->parses >= p.max_parses) goto exhausted;
      rc = attempt_check(&a, keep, &fresh, NULL);
      out->parses++;
      if (rc) goto failed;
    }
  }
  /* Drop trailing lines until nothing new is broken: each try ends before the last newline of
   * the previous one. The empty candidate is the document itself, which always passes, so
   * reaching it means the candidate is dropped. */
  while (fresh > 0) {
    const char *nl = NULL;
    for (size_t i = keep; i > 0; i--) {
      if (candidate[i - 1] == '\n') {
        nl = candidate + i - 1;
        break;
      }
    }
    if (!nl) {
      keep = 0;
      break;
    }
    size_t previous = keep;
    keep = (size_t)(nl - candidate);
    if (all_blank(candidate, keep)) {
      keep = 0;
      break;
    }
    /* Dropping only blank text cannot remove an error: cut further before parsing again. */
    if (all_blank(candidate + keep, previous - keep)) continue;
    if (out->parses >= p.max_parses) goto exhausted;
    rc = attempt_check(&a, keep, &fresh, NULL);
    out->parses++;
    if (rc) goto failed;
  }
  /* Nothing survived, but the document's own error ends where the candidate starts: the new
   * errors may be the old one seen anew (an unclosed function's ERROR becomes a MISSING '}'), so
   * the check cannot judge the candidate. */
  if (keep == 0 && error_ends_at_cursor) out->inside_error = true;
  out->keep = keep;
  out->lines_kept = count_lines(candidate, keep);
  out->slow_parses = a.slow_parses;
  return 0;

exhausted:
  out->slow_parses = a.slow_parses;
  out->budget_exhausted = true;
  out->keep = 0;
  return 0;
failed:
  out->slow_parses = a.slow_parses;
  if (rc == AUG_ETIMEOUT) {
    out->timed_out = true;
    out->keep = 0;
    return 0;
  }
  if (rc == AUG_ENOMEM) return aug_err_set(err, rc, "syntax: out of memory");
  return aug_err_set(err, rc, "syntax: the %s parser gave no tree for the candidate",
                     doc->grammar->name);
}
