/* The cross-file definitions index (see workspace_index.h). Two hash tables under mu: files by
 * relative path, each holding its definitions; definitions by name, each bucket's chain kept
 * sorted by (name, path, line) so that a lookup walks one chain in the order it reports, without
 * sorting or allocating. A file is parsed and its definitions built outside mu (worker thread
 * only: the parser and the query cursor are the worker's), then swapped in under mu. The worker
 * runs the scan, applying queued updates between files, then waits for more. A file the scan finds
 * already indexed was put there by an update (the scan visits each file once), which is newer than
 * the disk: the scan leaves it. */
#include "plugins/workspace_index.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <tree_sitter/api.h>

#include "engine/alloc.h"
#include "engine/clock.h"
#include "grammars/grammars.h"
#include "plugins/context_queries.h"
#include "plugins/text_lines.h"

/* Definitions are looked for down to this tree depth (the root is 0): the top level and one
 * below (an #ifdef, a decorator, Python's module-level assignment), as context_syntax.c does. */
#define INDEX_OUTLINE_DEPTH 2
/* A definition this short (lines, bytes) is kept whole; a longer one by its header. */
#define INDEX_SMALL_LINES 6
#define INDEX_SMALL_BYTES 1024
#define INDEX_MAX_HEADER_LINES 6
/* A header longer than this (minified code) is left out. */
#define INDEX_MAX_TEXT 2048
#define INDEX_MAX_NAME 128
/* Folder depth the scan descends to. */
#define INDEX_MAX_DEPTH 64
#define INDEX_PATH_MAX 4096

struct file;

struct def {
  struct def *next_in_bucket, *next_in_file;
  struct file *file;
  uint32_t hash, line;
  uint32_t name_len, text_len;
  char data[]; /* name '\0' text '\0' */
};

struct file {
  struct file *next_in_bucket;
  struct def *defs;
  size_t n_defs, bytes; /* bytes: this struct, its path and its definitions */
  uint64_t sent;        /* wi->sends when the editor last sent it (didOpen, didSave, didClose); 0:
                           only the scan read it */
  uint32_t hash;
  char path[];
};

struct ignore_rule {
  char *pattern;
  bool dir_only, anchored;
};

enum job_kind { JOB_UPDATE, JOB_RELOAD, JOB_REMOVE };

struct job {
  struct job *next;
  enum job_kind kind;
  char *path; /* relative */
  char *text; /* JOB_UPDATE */
  size_t len;
};

struct workspace_index {
  struct workspace_index_params params;
  char *root;      /* as given, without trailing '/' */
  char *root_real; /* realpath(root), or a copy of root when that fails */
  struct ignore_rule *rules;
  size_t n_rules;

  /* worker-thread only */
  TSParser *parser;
  TSQueryCursor *qc;
  struct context_queries *queries;

  pthread_mutex_t mu;
  pthread_cond_t cv;      /* a job was queued, or quit */
  pthread_cond_t idle_cv; /* the scan ended or a job was applied */
  bool started, quit, scan_done, applying;
  atomic_bool stop; /* set with quit: read by a parse in progress (outside mu), which gives up */
  pthread_t thread;
  struct job *head, *tail;
  size_t n_pending;
  /* under mu */
  struct file **file_buckets;
  size_t n_file_buckets;
  struct def **name_buckets;
  size_t n_name_buckets;
  struct workspace_index_stats stats;
  uint64_t sends; /* files the editor sent so far: the clock of file.sent */
};

struct workspace_index_params workspace_index_params_default(void) {
  return (struct workspace_index_params){
      .max_file_bytes = 1u << 20, .max_files = 5000, .max_bytes = (size_t)64 << 20};
}

static uint32_t hash_bytes(const char *s, size_t n) {
  uint32_t h = 2166136261u; /* FNV-1a */
  for (size_t i = 0; i < n; i++)
    h = (h ^ (unsigned char)s[i]) * 16777619u;
  return h;
}

/* --- paths and ignore rules --- */

static char *trimmed_copy(const char *s) {
  size_t n = strlen(s);
  while (n > 1 && s[n - 1] == '/')
    n--;
  return aug_strndup(s, n);
}

/* The root's .gitignore as rules; unsupported lines are left out (see workspace_index.h). */
static int load_gitignore(struct workspace_index *wi) {
  char path[INDEX_PATH_MAX];
  snprintf(path, sizeof path, "%s/.gitignore", wi->root);
  FILE *f = fopen(path, "r");
  if (!f) return 0;
  char line[1024];
  int rc = 0;
  while (!rc && fgets(line, sizeof line, f)) {
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
      line[--n] = '\0';
    if (!n || line[0] == '#' || line[0] == '!' || strstr(line, "**")) continue;
    struct ignore_rule r = {0};
    char *p = line;
    if (p[n - 1] == '/') r.dir_only = true, p[--n] = '\0';
    if (p[0] == '/') r.anchored = true, p++, n--;
    if (!n) continue;
    if (strchr(p, '/')) r.anchored = true;
    struct ignore_rule *v = aug_realloc(wi->rules, (wi->n_rules + 1) * sizeof *v);
    if (!v || !(r.pattern = aug_strndup(p, n))) {
      if (v) wi->rules = v;
      rc = AUG_ENOMEM;
      break;
    }
    wi->rules = v;
    wi->rules[wi->n_rules++] = r;
  }
  fclose(f);
  return rc;
}

/* Whether the entry rel (relative path; name its last component) is ignored by .gitignore. */
static bool gitignored(const struct workspace_index *wi, const char *rel, const char *name,
                       bool is_dir) {
  for (size_t i = 0; i < wi->n_rules; i++) {
    const struct ignore_rule *r = &wi->rules[i];
    if (r->dir_only && !is_dir) continue;
    if (r->anchored ? !fnmatch(r->pattern, rel, FNM_PATHNAME) : !fnmatch(r->pattern, name, 0))
      return true;
  }
  return false;
}

/* The path relative to the root for an absolute path under it or a relative one; NULL otherwise
 * (or when it climbs out with ".."). */
static const char *relative_to_root(const struct workspace_index *wi, const char *path) {
  if (!path || !*path) return NULL;
  const char *rel = path;
  if (path[0] == '/') {
    rel = NULL;
    const char *roots[2] = {wi->root, wi->root_real};
    for (int i = 0; i < 2 && !rel; i++) {
      size_t n = strlen(roots[i]);
      if (!strncmp(path, roots[i], n) && path[n] == '/') rel = path + n + 1;
    }
    if (!rel) return NULL;
  }
  if (!*rel || !strncmp(rel, "../", 3) || strstr(rel, "/../")) return NULL;
  return rel;
}

/* Why the scan would not look at rel: a skip counter, or NULL when it would. */
static size_t *skip_reason(struct workspace_index *wi, const char *rel) {
  char prefix[INDEX_PATH_MAX];
  size_t n = strlen(rel);
  if (n >= sizeof prefix) return &wi->stats.skipped_unreadable;
  memcpy(prefix, rel, n + 1);
  const char *name = prefix;
  for (size_t i = 0; i <= n; i++) {
    if (prefix[i] != '/' && prefix[i] != '\0') continue;
    char saved = prefix[i];
    prefix[i] = '\0';
    if (name[0] == '.') return &wi->stats.skipped_hidden;
    if (gitignored(wi, prefix, name, saved == '/')) return &wi->stats.skipped_ignored;
    prefix[i] = saved;
    name = prefix + i + 1;
  }
  if (!grammars_find_path(rel)) return &wi->stats.skipped_no_grammar;
  return NULL;
}

/* --- the tables (under mu) --- */

static size_t table_bytes(const struct workspace_index *wi) {
  return (wi->n_file_buckets + wi->n_name_buckets) * sizeof(void *);
}

static struct file *file_find(struct workspace_index *wi, const char *path, uint32_t hash) {
  for (struct file *f = wi->file_buckets[hash & (wi->n_file_buckets - 1)]; f; f = f->next_in_bucket)
    if (f->hash == hash && !strcmp(f->path, path)) return f;
  return NULL;
}

/* (name, path, line) order. */
static int def_cmp(const struct def *a, const struct def *b) {
  size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
  int c = memcmp(a->data, b->data, n);
  if (c || a->name_len != b->name_len) return c ? c : (a->name_len < b->name_len ? -1 : 1);
  c = strcmp(a->file->path, b->file->path);
  if (c) return c;
  return a->line < b->line ? -1 : a->line > b->line;
}

static void name_insert(struct workspace_index *wi, struct def *d) {
  struct def **pp = &wi->name_buckets[d->hash & (wi->n_name_buckets - 1)];
  while (*pp && def_cmp(*pp, d) < 0)
    pp = &(*pp)->next_in_bucket;
  d->next_in_bucket = *pp;
  *pp = d;
}

static void name_unlink(struct workspace_index *wi, struct def *d) {
  struct def **pp = &wi->name_buckets[d->hash & (wi->n_name_buckets - 1)];
  while (*pp && *pp != d)
    pp = &(*pp)->next_in_bucket;
  if (*pp) *pp = d->next_in_bucket;
}

/* Doubles the name table when it holds more definitions than buckets. Splitting a sorted chain
 * in order keeps both halves sorted. False (the table unchanged) without memory or budget. */
static bool names_grow(struct workspace_index *wi) {
  size_t n = wi->n_name_buckets * 2;
  if (wi->stats.bytes + wi->n_name_buckets * sizeof(void *) > wi->params.max_bytes) return false;
  struct def **b = aug_calloc(n, sizeof *b);
  if (!b) return false;
  for (size_t i = 0; i < wi->n_name_buckets; i++) {
    struct def **tails[2] = {&b[i], &b[i + wi->n_name_buckets]};
    for (struct def *d = wi->name_buckets[i], *next; d; d = next) {
      next = d->next_in_bucket;
      struct def ***t = &tails[(d->hash & (n - 1)) != i];
      d->next_in_bucket = NULL;
      **t = d;
      *t = &d->next_in_bucket;
    }
  }
  aug_free(wi->name_buckets);
  wi->stats.bytes += wi->n_name_buckets * sizeof(void *);
  wi->name_buckets = b;
  wi->n_name_buckets = n;
  return true;
}

static void file_free(struct file *f) {
  if (!f) return;
  for (struct def *d = f->defs, *next; d; d = next) {
    next = d->next_in_file;
    aug_free(d);
  }
  aug_free(f);
}

/* Takes f out of the tables and frees it. */
static void file_remove(struct workspace_index *wi, struct file *f) {
  struct file **pp = &wi->file_buckets[f->hash & (wi->n_file_buckets - 1)];
  while (*pp && *pp != f)
    pp = &(*pp)->next_in_bucket;
  if (*pp) *pp = f->next_in_bucket;
  for (struct def *d = f->defs; d; d = d->next_in_file)
    name_unlink(wi, d);
  wi->stats.files--;
  wi->stats.definitions -= f->n_defs;
  wi->stats.bytes -= f->bytes;
  file_free(f);
}

/* Puts the built file f in (replacing the old entry unless from_scan, when an existing entry
 * wins), or frees it and counts why not. */
static void file_insert(struct workspace_index *wi, struct file *f, bool from_scan) {
  pthread_mutex_lock(&wi->mu);
  struct file *old = file_find(wi, f->path, f->hash);
  if (old && from_scan) {
    file_free(f);
  } else {
    if (old) file_remove(wi, old);
    if (!from_scan) f->sent = ++wi->sends;
    if (wi->stats.files >= wi->params.max_files) {
      wi->stats.skipped_too_many++;
      file_free(f);
    } else if (wi->stats.bytes + f->bytes > wi->params.max_bytes) {
      wi->stats.skipped_budget++;
      file_free(f);
    } else {
      while (wi->stats.definitions + f->n_defs > wi->n_name_buckets && names_grow(wi))
        ;
      size_t at = f->hash & (wi->n_file_buckets - 1);
      f->next_in_bucket = wi->file_buckets[at];
      wi->file_buckets[at] = f;
      for (struct def *d = f->defs; d; d = d->next_in_file)
        name_insert(wi, d);
      wi->stats.files++;
      wi->stats.definitions += f->n_defs;
      wi->stats.bytes += f->bytes;
    }
  }
  pthread_mutex_unlock(&wi->mu);
}

static void file_forget(struct workspace_index *wi, const char *path) {
  pthread_mutex_lock(&wi->mu);
  struct file *f = file_find(wi, path, hash_bytes(path, strlen(path)));
  if (f) file_remove(wi, f);
  pthread_mutex_unlock(&wi->mu);
}

/* --- building one file's entry (worker thread) --- */

/* A definition's text into out (at most INDEX_MAX_TEXT + 1 bytes): its lines when short, else its
 * header lines (up to its body) and a "..." line indented as the body. 0 when it has none. */
static size_t render(TSNode def, const char *text, size_t len, char *out) {
  size_t start = ts_node_start_byte(def), end = ts_node_end_byte(def);
  size_t first = text_line_start(text, start), last = text_line_end(text, len, end - 1);
  size_t lines = 0;
  for (size_t at = first; at < last && lines <= INDEX_SMALL_LINES;
       at = text_line_end(text, len, at))
    lines++;
  size_t n = 0;
  if (lines <= INDEX_SMALL_LINES && last - first <= INDEX_SMALL_BYTES) {
    memcpy(out, text + first, last - first);
    n = last - first;
  } else {
    TSNode body = ts_node_child_by_field_name(def, "body", 4);
    size_t head_end = ts_node_is_null(body) ? start + 1 : ts_node_start_byte(body);
    if (head_end > end) head_end = end;
    while (head_end > start + 1 && text_is_space(text[head_end - 1]))
      head_end--;
    size_t to = text_line_end(text, len, head_end - 1), at = first;
    for (int k = 0; at < to && k < INDEX_MAX_HEADER_LINES; k++)
      at = text_line_end(text, len, at);
    if (at - first > INDEX_MAX_TEXT - 64) return 0;
    memcpy(out, text + first, at - first);
    n = at - first;
    if (n && out[n - 1] != '\n') out[n++] = '\n';
    size_t next = at, indent = 0;
    while (next < end && text_is_space(text[next]))
      next++;
    for (size_t b = text_line_start(text, next);
         b < next && (text[b] == ' ' || text[b] == '\t') && indent < 32; b++)
      out[n++] = text[b], indent++;
    memcpy(out + n, "...", 3);
    n += 3;
  }
  if (n > INDEX_MAX_TEXT) return 0;
  if (n && out[n - 1] != '\n') out[n++] = '\n';
  return n;
}

struct text_input {
  const char *text;
  uint32_t len;
};

static const char *text_read(void *payload, uint32_t byte, TSPoint position, uint32_t *read) {
  (void)position;
  const struct text_input *in = payload;
  *read = byte < in->len ? in->len - byte : 0;
  return in->text + (byte < in->len ? byte : in->len);
}

/* A parse stops when the index is destroyed: a 1 MiB file can take a large part of a second. */
static bool parse_progress_cb(TSParseState *state) {
  const struct workspace_index *wi = state->payload;
  return atomic_load_explicit(&wi->stop, memory_order_relaxed);
}

/* A file entry for rel with the definitions found in text; NULL on failure or without memory. */
static struct file *file_build(struct workspace_index *wi, const char *rel, const char *text,
                               size_t len) {
  const struct grammar *grammar = grammars_find_path(rel);
  const TSLanguage *language = NULL;
  const TSQuery *q[CONTEXT_QUERY_COUNT] = {NULL};
  bool ready = false;
  struct aug_err err = {0};
  if (!grammar || grammars_language(grammar, &language, &err) ||
      context_queries_get(wi->queries, grammar, true, q, &ready, &err) || !ready ||
      len >= UINT32_MAX)
    return NULL;
  size_t path_len = strlen(rel);
  struct file *f = aug_calloc(1, sizeof *f + path_len + 1);
  if (!f) return NULL;
  memcpy(f->path, rel, path_len + 1);
  f->hash = hash_bytes(rel, path_len);
  f->bytes = sizeof *f + path_len + 1;
  const TSQuery *query = q[CONTEXT_QUERY_OUTLINE];
  if (!query || !ts_parser_set_language(wi->parser, language)) return f;
  struct text_input in = {text, (uint32_t)len};
  TSInput input = {.payload = &in, .read = text_read, .encoding = TSInputEncodingUTF8};
  TSParseOptions options = {.payload = wi, .progress_callback = parse_progress_cb};
  TSTree *tree = ts_parser_parse_with_options(wi->parser, NULL, input, options);
  if (!tree) {
    ts_parser_reset(wi->parser);
    return f;
  }
  uint32_t name_id = context_queries_capture_id(query, "name");
  ts_query_cursor_set_byte_range(wi->qc, 0, UINT32_MAX);
  ts_query_cursor_set_max_start_depth(wi->qc, INDEX_OUTLINE_DEPTH);
  ts_query_cursor_exec(wi->qc, query, ts_tree_root_node(tree));
  struct def **tail = &f->defs;
  struct def *recent[8] = {NULL}; /* the query can match one node by several patterns */
  size_t n_recent = 0;            /* definitions made; the last 8 are in recent */
  char buf[INDEX_MAX_TEXT + 1];
  TSQueryMatch m;
  while (ts_query_cursor_next_match(wi->qc, &m)) {
    if (!grammars_match_passes(query, &m, text, len)) continue;
    TSNode def = {0}, name = {0};
    bool has_def = false, has_name = false;
    for (uint16_t i = 0; i < m.capture_count; i++) {
      uint32_t cap_len;
      const char *cap = ts_query_capture_name_for_id(query, m.captures[i].index, &cap_len);
      if (m.captures[i].index == name_id) {
        name = m.captures[i].node, has_name = true;
      } else if (cap_len > 11 && !memcmp(cap, "definition.", 11) &&
                 !(cap_len == 16 && !memcmp(cap + 11, "field", 5))) {
        def = m.captures[i].node, has_def = true;
      }
    }
    /* A pattern whose definition capture is the root would stand for the whole file. */
    if (!has_def || !has_name || ts_node_is_null(ts_node_parent(def))) continue;
    size_t a = ts_node_start_byte(name), b = ts_node_end_byte(name);
    if (b <= a || b > len || b - a > INDEX_MAX_NAME || ts_node_end_byte(def) > len ||
        ts_node_end_byte(def) <= ts_node_start_byte(def))
      continue;
    uint32_t line = ts_node_start_point(def).row;
    bool seen = false;
    for (size_t i = 0; i < n_recent && i < 8 && !seen; i++)
      seen = recent[i]->line == line && recent[i]->name_len == b - a &&
             !memcmp(recent[i]->data, text + a, b - a);
    if (seen) continue;
    size_t text_len = render(def, text, len, buf);
    if (!text_len) continue;
    struct def *d = aug_malloc(sizeof *d + (b - a) + 1 + text_len + 1);
    if (!d) {
      ts_tree_delete(tree);
      file_free(f);
      return NULL;
    }
    *d = (struct def){.file = f,
                      .hash = hash_bytes(text + a, b - a),
                      .line = line,
                      .name_len = (uint32_t)(b - a),
                      .text_len = (uint32_t)text_len};
    memcpy(d->data, text + a, b - a);
    d->data[b - a] = '\0';
    memcpy(d->data + (b - a) + 1, buf, text_len);
    d->data[(b - a) + 1 + text_len] = '\0';
    *tail = d;
    tail = &d->next_in_file;
    f->n_defs++;
    f->bytes += sizeof *d + (b - a) + text_len + 2;
    recent[n_recent++ % 8] = d;
  }
  ts_tree_delete(tree);
  return f;
}

/* Reads root/rel (a regular file, no link followed at its last component) into *out (the caller
 * frees it). 0, or a skip counter's address for why not. */
static size_t *read_file(struct workspace_index *wi, const char *rel, char **out, size_t *len) {
  char full[INDEX_PATH_MAX];
  *out = NULL;
  if ((size_t)snprintf(full, sizeof full, "%s/%s", wi->root, rel) >= sizeof full)
    return &wi->stats.skipped_unreadable;
  int fd = open(full, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno == ELOOP ? &wi->stats.skipped_symlink : &wi->stats.skipped_unreadable;
  struct stat st;
  size_t *why = NULL;
  if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
    why = &wi->stats.skipped_unreadable;
  } else if ((size_t)st.st_size > wi->params.max_file_bytes) {
    why = &wi->stats.skipped_too_large;
  } else {
    char *buf = aug_malloc((size_t)st.st_size + 1);
    size_t n = 0;
    while (buf && n < (size_t)st.st_size) {
      ssize_t r = read(fd, buf + n, (size_t)st.st_size - n);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) break;
      n += (size_t)r;
    }
    if (!buf) {
      why = &wi->stats.skipped_unreadable;
    } else {
      buf[n] = '\0';
      *out = buf;
      *len = n;
    }
  }
  close(fd);
  return why;
}

static void count_skip(struct workspace_index *wi, size_t *counter) {
  pthread_mutex_lock(&wi->mu);
  (*counter)++;
  pthread_mutex_unlock(&wi->mu);
}

static void index_text(struct workspace_index *wi, const char *rel, const char *text, size_t len,
                       bool from_scan) {
  struct file *f = file_build(wi, rel, text, len);
  if (f)
    file_insert(wi, f, from_scan);
  else
    count_skip(wi, &wi->stats.skipped_unreadable);
}

static void index_from_disk(struct workspace_index *wi, const char *rel, bool from_scan) {
  char *text = NULL;
  size_t len = 0;
  size_t *why = read_file(wi, rel, &text, &len);
  if (why) {
    if (!from_scan) file_forget(wi, rel); /* a reload of a file gone from disk */
    if (from_scan || why != &wi->stats.skipped_unreadable) count_skip(wi, why);
    return;
  }
  index_text(wi, rel, text, len, from_scan);
  aug_free(text);
}

/* --- the worker --- */

static void job_free(struct job *j) {
  if (!j) return;
  aug_free(j->path);
  aug_free(j->text);
  aug_free(j);
}

static void apply(struct workspace_index *wi, struct job *j) {
  if (j->kind == JOB_REMOVE) {
    file_forget(wi, j->path);
    return;
  }
  pthread_mutex_lock(&wi->mu);
  size_t *why = skip_reason(wi, j->path);
  /* An editor opening a README is not a file the scan left out: not counted. */
  if (why && why != &wi->stats.skipped_no_grammar) (*why)++;
  pthread_mutex_unlock(&wi->mu);
  if (why) return;
  if (j->kind == JOB_UPDATE)
    index_text(wi, j->path, j->text, j->len, false);
  else
    index_from_disk(wi, j->path, false);
}

/* Applies the queued jobs; false when asked to quit. */
static bool drain(struct workspace_index *wi) {
  pthread_mutex_lock(&wi->mu);
  while (!wi->quit && wi->head) {
    struct job *j = wi->head;
    wi->head = j->next;
    if (!wi->head) wi->tail = NULL;
    wi->applying = true;
    pthread_mutex_unlock(&wi->mu);
    apply(wi, j);
    job_free(j);
    pthread_mutex_lock(&wi->mu);
    wi->n_pending--;
    wi->applying = false;
    pthread_cond_broadcast(&wi->idle_cv);
  }
  bool go_on = !wi->quit;
  pthread_mutex_unlock(&wi->mu);
  return go_on;
}

static int names_cmp(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names in folder rel ("" for the root), sorted (so that which files a cap leaves out does
 * not depend on the file system's order); NULL when it cannot be read. */
static char **list_dir(const struct workspace_index *wi, const char *rel, size_t *n_out) {
  char full[INDEX_PATH_MAX];
  if ((size_t)snprintf(full, sizeof full, "%s%s%s", wi->root, *rel ? "/" : "", rel) >= sizeof full)
    return NULL;
  DIR *dir = opendir(full);
  if (!dir) return NULL;
  char **names = NULL;
  size_t n = 0, cap = 0;
  struct dirent *e;
  bool ok = true;
  while (ok && (e = readdir(dir))) {
    if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
    if (n == cap) {
      cap = cap ? cap * 2 : 32;
      char **v = aug_realloc(names, cap * sizeof *v);
      if (!v) break;
      names = v;
    }
    ok = (names[n] = aug_strndup(e->d_name, strlen(e->d_name))) != NULL;
    n += ok;
  }
  closedir(dir);
  if (n > 1) qsort(names, n, sizeof *names, names_cmp);
  *n_out = n;
  if (!names) names = aug_calloc(1, sizeof *names);
  return names;
}

static bool scan_dir(struct workspace_index *wi, const char *rel, int depth) {
  size_t n = 0;
  char **names = list_dir(wi, rel, &n);
  if (!names) {
    count_skip(wi, &wi->stats.skipped_unreadable);
    return true;
  }
  bool go_on = true;
  for (size_t i = 0; i < n && go_on; i++) {
    go_on = drain(wi);
    const char *name = names[i];
    char child[INDEX_PATH_MAX], full[INDEX_PATH_MAX];
    if ((size_t)snprintf(child, sizeof child, "%s%s%s", rel, *rel ? "/" : "", name) >=
            sizeof child ||
        (size_t)snprintf(full, sizeof full, "%s/%s", wi->root, child) >= sizeof full) {
      count_skip(wi, &wi->stats.skipped_unreadable);
      continue;
    }
    if (name[0] == '.') {
      count_skip(wi, &wi->stats.skipped_hidden);
      continue;
    }
    struct stat st;
    if (!go_on || lstat(full, &st)) continue;
    if (S_ISLNK(st.st_mode)) {
      /* Never followed: a target inside the root is scanned under its own path. */
      char *real = realpath(full, NULL);
      size_t root_len = strlen(wi->root_real);
      bool inside = real && !strncmp(real, wi->root_real, root_len) &&
                    (real[root_len] == '/' || !real[root_len]);
      free(real);
      count_skip(wi, inside ? &wi->stats.skipped_symlink : &wi->stats.skipped_outside_root);
    } else if (S_ISDIR(st.st_mode)) {
      if (gitignored(wi, child, name, true))
        count_skip(wi, &wi->stats.skipped_ignored);
      else if (depth < INDEX_MAX_DEPTH)
        go_on = scan_dir(wi, child, depth + 1);
    } else if (S_ISREG(st.st_mode)) {
      if (gitignored(wi, child, name, false)) {
        count_skip(wi, &wi->stats.skipped_ignored);
      } else if (!grammars_find_path(child)) {
        count_skip(wi, &wi->stats.skipped_no_grammar);
      } else if ((size_t)st.st_size > wi->params.max_file_bytes) {
        count_skip(wi, &wi->stats.skipped_too_large);
      } else {
        pthread_mutex_lock(&wi->mu);
        bool full_up = wi->stats.files >= wi->params.max_files;
        if (full_up) wi->stats.skipped_too_many++, wi->stats.truncated = true;
        pthread_mutex_unlock(&wi->mu);
        if (full_up) go_on = false; /* the rest of a huge tree is not even walked */
        if (!full_up) index_from_disk(wi, child, true);
      }
    }
  }
  for (size_t i = 0; i < n; i++)
    aug_free(names[i]);
  aug_free(names);
  return go_on;
}

static void *worker_main(void *arg) {
  struct workspace_index *wi = arg;
  double t0 = aug_now_ms();
  scan_dir(wi, "", 0);
  pthread_mutex_lock(&wi->mu);
  wi->scan_done = true;
  wi->stats.scanning = false;
  wi->stats.scan_ms = aug_now_ms() - t0;
  pthread_cond_broadcast(&wi->idle_cv);
  pthread_mutex_unlock(&wi->mu);
  for (;;) {
    if (!drain(wi)) break;
    pthread_mutex_lock(&wi->mu);
    while (!wi->quit && !wi->head)
      pthread_cond_wait(&wi->cv, &wi->mu);
    bool quit = wi->quit;
    pthread_mutex_unlock(&wi->mu);
    if (quit) break;
  }
  return NULL;
}

/* --- the API --- */

int workspace_index_create(const char *root, const struct workspace_index_params *params,
                           struct workspace_index **out, struct aug_err *err) {
  *out = NULL;
  struct workspace_index_params p = params ? *params : workspace_index_params_default();
  if (!root || !*root || !p.max_files || !p.max_file_bytes)
    return aug_err_set(err, AUG_EINVAL,
                       "workspace index: a root, max_files and max_file_bytes "
                       "are needed");
  struct workspace_index *wi = aug_calloc(1, sizeof *wi);
  if (!wi) return aug_err_set(err, AUG_ENOMEM, "workspace index: out of memory");
  wi->params = p;
  atomic_init(&wi->stop, false);
  pthread_mutex_init(&wi->mu, NULL);
  pthread_cond_init(&wi->cv, NULL);
  pthread_cond_init(&wi->idle_cv, NULL);
  wi->stats.scanning = true;
  wi->root = trimmed_copy(root);
  char *real = realpath(root, NULL);
  wi->root_real = real ? aug_strndup(real, strlen(real)) : trimmed_copy(root);
  free(real);
  wi->n_file_buckets = 64;
  while (wi->n_file_buckets < p.max_files && wi->n_file_buckets < (1u << 20))
    wi->n_file_buckets *= 2;
  wi->n_name_buckets = 1024;
  wi->file_buckets = aug_calloc(wi->n_file_buckets, sizeof *wi->file_buckets);
  wi->name_buckets = aug_calloc(wi->n_name_buckets, sizeof *wi->name_buckets);
  wi->parser = ts_parser_new();
  wi->qc = ts_query_cursor_new();
  int rc = wi->root && wi->root_real && wi->file_buckets && wi->name_buckets && wi->parser && wi->qc
               ? context_queries_create(&wi->queries, err)
               : aug_err_set(err, AUG_ENOMEM, "workspace index: out of memory");
  if (!rc && load_gitignore(wi))
    rc = aug_err_set(err, AUG_ENOMEM, "workspace index: out of memory");
  if (rc) {
    workspace_index_destroy(wi);
    return rc;
  }
  wi->stats.bytes = table_bytes(wi);
  *out = wi;
  return 0;
}

void workspace_index_destroy(struct workspace_index *wi) {
  if (!wi) return;
  if (wi->started) {
    pthread_mutex_lock(&wi->mu);
    wi->quit = true;
    atomic_store(&wi->stop, true);
    pthread_cond_broadcast(&wi->cv);
    pthread_mutex_unlock(&wi->mu);
    pthread_join(wi->thread, NULL);
  }
  for (struct job *j = wi->head, *next; j; j = next) {
    next = j->next;
    job_free(j);
  }
  for (size_t i = 0; wi->file_buckets && i < wi->n_file_buckets; i++)
    for (struct file *f = wi->file_buckets[i], *next; f; f = next) {
      next = f->next_in_bucket;
      file_free(f);
    }
  for (size_t i = 0; i < wi->n_rules; i++)
    aug_free(wi->rules[i].pattern);
  aug_free(wi->rules);
  context_queries_destroy(wi->queries);
  if (wi->qc) ts_query_cursor_delete(wi->qc);
  if (wi->parser) ts_parser_delete(wi->parser);
  aug_free(wi->file_buckets);
  aug_free(wi->name_buckets);
  aug_free(wi->root);
  aug_free(wi->root_real);
  pthread_mutex_destroy(&wi->mu);
  pthread_cond_destroy(&wi->cv);
  pthread_cond_destroy(&wi->idle_cv);
  aug_free(wi);
}

int workspace_index_start(struct workspace_index *wi, struct aug_err *err) {
  if (wi->started) return aug_err_set(err, AUG_EINVAL, "workspace index: already started");
  if (pthread_create(&wi->thread, NULL, worker_main, wi))
    return aug_err_set(err, AUG_ENOMEM, "workspace index: cannot start its thread");
  wi->started = true;
  return 0;
}

void workspace_index_wait_idle(struct workspace_index *wi) {
  pthread_mutex_lock(&wi->mu);
  while (wi->started && !wi->quit && (!wi->scan_done || wi->head || wi->applying))
    pthread_cond_wait(&wi->idle_cv, &wi->mu);
  pthread_mutex_unlock(&wi->mu);
}

static int enqueue(struct workspace_index *wi, enum job_kind kind, const char *path,
                   const char *text, size_t len, struct aug_err *err) {
  const char *rel = relative_to_root(wi, path);
  if (!rel) return 0;
  if (kind == JOB_UPDATE && len > wi->params.max_file_bytes) {
    /* Too large to index, and what was indexed from an older text is outdated. */
    count_skip(wi, &wi->stats.skipped_too_large);
    kind = JOB_REMOVE;
  }
  struct job *j = aug_calloc(1, sizeof *j);
  if (j) {
    j->kind = kind;
    j->path = aug_strndup(rel, strlen(rel));
    if (kind == JOB_UPDATE) j->text = aug_strndup(text ? text : "", len);
    j->len = len;
  }
  if (!j || !j->path || (kind == JOB_UPDATE && !j->text)) {
    job_free(j);
    return aug_err_set(err, AUG_ENOMEM, "workspace index: out of memory");
  }
  pthread_mutex_lock(&wi->mu);
  if (wi->tail)
    wi->tail->next = j;
  else
    wi->head = j;
  wi->tail = j;
  wi->n_pending++;
  pthread_cond_broadcast(&wi->cv);
  pthread_mutex_unlock(&wi->mu);
  return 0;
}

int workspace_index_update(struct workspace_index *wi, const char *path, const char *text,
                           size_t len, struct aug_err *err) {
  return enqueue(wi, JOB_UPDATE, path, text, len, err);
}

int workspace_index_reload(struct workspace_index *wi, const char *path, struct aug_err *err) {
  return enqueue(wi, JOB_RELOAD, path, NULL, 0, err);
}

int workspace_index_remove(struct workspace_index *wi, const char *path, struct aug_err *err) {
  return enqueue(wi, JOB_REMOVE, path, NULL, 0, err);
}

/* Hands one definition to a lookup's callback (with the index locked). */
static int emit(const struct def *d, workspace_index_definition_cb cb, void *data) {
  struct workspace_index_definition out = {d->data, d->file->path, d->line,
                                           d->data + d->name_len + 1, d->text_len};
  return cb(data, &out);
}

int workspace_index_lookup(struct workspace_index *wi, const char *name, size_t name_len,
                           const char *exclude_path, workspace_index_definition_cb cb, void *data) {
  if (!wi || !name || !name_len) return 0;
  uint32_t hash = hash_bytes(name, name_len);
  int rc = 0;
  pthread_mutex_lock(&wi->mu);
  for (struct def *d = wi->name_buckets[hash & (wi->n_name_buckets - 1)]; d && !rc;
       d = d->next_in_bucket) {
    if (d->hash != hash || d->name_len != name_len || memcmp(d->data, name, name_len)) continue;
    if (exclude_path && !strcmp(d->file->path, exclude_path)) continue;
    rc = emit(d, cb, data);
  }
  pthread_mutex_unlock(&wi->mu);
  return rc;
}

/* Whether path's last component, without its extension, is stem[0..n). */
static bool file_stem_is(const char *path, const char *stem, size_t n) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  const char *dot = strrchr(base, '.');
  size_t len = dot && dot > base ? (size_t)(dot - base) : strlen(base);
  return len == n && !memcmp(base, stem, n);
}

int workspace_index_module(struct workspace_index *wi, const char *stem, size_t stem_len,
                           const char *exclude_path, workspace_index_definition_cb cb, void *data) {
  if (!wi || !stem || !stem_len) return 0;
  struct file *found[WORKSPACE_INDEX_MODULE_FILES];
  size_t n = 0;
  int rc = 0;
  pthread_mutex_lock(&wi->mu);
  for (size_t b = 0; b < wi->n_file_buckets; b++)
    for (struct file *f = wi->file_buckets[b]; f; f = f->next_in_bucket) {
      if (!file_stem_is(f->path, stem, stem_len)) continue;
      if (exclude_path && !strcmp(f->path, exclude_path)) continue;
      /* Insertion into path order, keeping the first WORKSPACE_INDEX_MODULE_FILES paths. */
      size_t at = n;
      while (at > 0 && strcmp(found[at - 1]->path, f->path) > 0)
        at--;
      if (at == WORKSPACE_INDEX_MODULE_FILES) continue;
      if (n < WORKSPACE_INDEX_MODULE_FILES) n++;
      memmove(found + at + 1, found + at, (n - 1 - at) * sizeof *found);
      found[at] = f;
    }
  for (size_t i = 0; i < n && !rc; i++)
    for (struct def *d = found[i]->defs; d && !rc; d = d->next_in_file)
      rc = emit(d, cb, data);
  pthread_mutex_unlock(&wi->mu);
  return rc;
}

int workspace_index_recent(struct workspace_index *wi, const char *exclude_path,
                           workspace_index_path_filter accept, void *accept_data,
                           workspace_index_definition_cb cb, void *data) {
  if (!wi) return 0;
  int rc = 0;
  pthread_mutex_lock(&wi->mu);
  struct file *last = NULL;
  for (size_t b = 0; b < wi->n_file_buckets; b++)
    for (struct file *f = wi->file_buckets[b]; f; f = f->next_in_bucket) {
      if (!f->sent || (last && f->sent < last->sent)) continue;
      if (exclude_path && !strcmp(f->path, exclude_path)) continue;
      if (accept && !accept(accept_data, f->path)) continue;
      last = f;
    }
  for (struct def *d = last ? last->defs : NULL; d && !rc; d = d->next_in_file)
    rc = emit(d, cb, data);
  pthread_mutex_unlock(&wi->mu);
  return rc;
}

void workspace_index_stats(struct workspace_index *wi, struct workspace_index_stats *out) {
  pthread_mutex_lock(&wi->mu);
  *out = wi->stats;
  out->pending = wi->n_pending;
  pthread_mutex_unlock(&wi->mu);
}
