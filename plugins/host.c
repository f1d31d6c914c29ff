/* The plugin host (see host.h): registration, in-process workers, context gathering, provider
 * calls and lookups; plugins run as child processes are in host_child.c. In-process context calls
 * run on one worker thread per plugin, so that the engine thread can stop waiting at the budget: a
 * call that overruns keeps its thread busy and the plugin is skipped until it returns (its late
 * pieces are dropped). */
#include "plugins/host.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/alloc.h"
#include "engine/clock.h"
#include "plugins/host_internal.h"

/* Granularity of the wait for in-process workers while children are polled too (a poll cannot
 * wait on the workers' condition variable). */
#define HOST_POLL_SLICE_MS 2

static void host_log(struct plugin_host *host, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void host_log(struct plugin_host *host, int level, const char *fmt, ...) {
  if (!host->params.log) return;
  char msg[768];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  host->params.log(host->params.log_user, level, msg);
}

struct plugin_host_params plugin_host_params_default(void) {
  struct plugin_host_params p = {
      .context_budget_ms = 50,
      .context_tokens = 512,
      .failure_limit = 3,
      .start_timeout_ms = 2000,
      .call_budget_ms = 1000,
  };
  return p;
}

int plugin_host_create(const struct plugin_host_params *params, struct plugin_host **out,
                       struct aug_err *err) {
  *out = NULL;
  if (params->context_budget_ms <= 0 || params->failure_limit <= 0 || params->call_budget_ms <= 0)
    return aug_err_set(err, AUG_EINVAL,
                       "plugins: context budget %g ms, call budget %g ms and failure limit %d "
                       "must be positive",
                       params->context_budget_ms, params->call_budget_ms, params->failure_limit);
  struct plugin_host *host = aug_calloc(1, sizeof *host);
  if (!host) return aug_err_set(err, AUG_ENOMEM, "plugins: out of memory");
  host->params = *params;
  pthread_condattr_t attr;
  int rc = pthread_condattr_init(&attr);
  if (rc == 0) {
    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (rc == 0) rc = pthread_cond_init(&host->finished_cv, &attr);
    pthread_condattr_destroy(&attr);
  }
  if (rc) {
    aug_free(host);
    return aug_err_set(err, AUG_EIO, "plugins: condition variable on the monotonic clock: %s",
                       strerror(rc));
  }
  pthread_mutex_init(&host->finished_mu, NULL);
  pthread_mutex_init(&host->state_mu, NULL);
  *out = host;
  return 0;
}

void host_list_free(struct piece_list *l) {
  for (size_t i = 0; i < l->n; i++) {
    aug_free(l->pieces[i].plugin);
    aug_free(l->pieces[i].name);
    aug_free(l->pieces[i].text);
  }
  aug_free(l->pieces);
  memset(l, 0, sizeof *l);
}

void plugin_context_free(struct plugin_context *ctx) {
  struct piece_list l = {ctx->pieces, ctx->n_pieces, ctx->cap_pieces, 0, 0};
  host_list_free(&l);
  ctx->pieces = NULL;
  ctx->n_pieces = ctx->cap_pieces = 0;
}

/* Appends a copy of piece; false when out of memory. */
bool host_list_add(struct piece_list *l, const char *plugin, const char *name, const char *text,
                   size_t len, size_t tokens, uint32_t stability) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 8;
    struct plugin_piece *p = aug_realloc(l->pieces, cap * sizeof *p);
    if (!p) return false;
    l->pieces = p;
    l->cap = cap;
  }
  struct plugin_piece *p = &l->pieces[l->n];
  memset(p, 0, sizeof *p);
  p->plugin = aug_strndup(plugin, strlen(plugin));
  p->name = name ? aug_strndup(name, strlen(name)) : NULL;
  p->text = aug_strndup(text, len);
  if (!p->plugin || !p->text || (name && !p->name)) {
    aug_free(p->plugin);
    aug_free(p->name);
    aug_free(p->text);
    return false;
  }
  p->text_len = len;
  p->tokens = tokens;
  p->stability = stability > AUGURY_STABLE_RECENT ? AUGURY_STABLE_RECENT : stability;
  l->n++;
  l->tokens += tokens;
  return true;
}

/* --- The API lent to plugins --- */

static void api_log(void *host_data, int level, const char *message) {
  struct plugin_entry *e = host_data;
  host_log(e->host, level, "%s: %s", e->name, message ? message : "");
}

size_t host_estimate_tokens(size_t len) {
  return (len + 2) / 3;
}

/* Counts with count; when that fails (out of memory), one token per byte, so that a piece that
 * could not be measured still cannot pass the token budget: byte-level BPE and SentencePiece's
 * byte fallback never give more, plus 3 for the dummy prefix space (U+2581, as bytes at worst).
 * The first failure is kept in *first_rc for the request's note. */
size_t host_count_or_bound(plugin_host_count_fn count, void *user, const char *text, size_t len,
                           int *first_rc) {
  size_t n = 0;
  int rc = count(user, text, len, &n);
  if (rc == 0) return n;
  if (*first_rc == 0) *first_rc = rc;
  return len + 3;
}

/* Counts with the model while the call is current; an abandoned call gets the estimate (the
 * tokenizer may be gone by then, and its pieces are dropped). Holding mu makes the engine
 * thread's abandon wait for us. */
static size_t api_count_tokens(void *host_data, const char *text, size_t len) {
  struct plugin_entry *e = host_data;
  size_t n = host_estimate_tokens(len);
  pthread_mutex_lock(&e->mu);
  if (e->busy && !e->abandoned && e->count)
    n = host_count_or_bound(e->count, e->count_user, text, len, &e->count_rc);
  pthread_mutex_unlock(&e->mu);
  return n;
}

/* The sink of an in-process call: counts the piece against the budget and copies it. */
static int sink_add(void *sink_data, const struct augury_context_piece *piece) {
  struct plugin_entry *e = sink_data;
  if (!piece || (!piece->text && piece->text_len)) return AUGURY_PLUGIN_EINVAL;
  size_t tokens = api_count_tokens(e, piece->text ? piece->text : "", piece->text_len);
  if (e->list.tokens + tokens > e->list.budget) return AUGURY_PLUGIN_ERANGE;
  return host_list_add(&e->list, e->name, piece->name, piece->text ? piece->text : "",
                       piece->text_len, tokens, piece->stability)
             ? 0
             : AUGURY_PLUGIN_ENOMEM;
}

/* --- Registration --- */

/* The table must reach at least context_provide .. free_json as this host knows them. */
#define HOST_MIN_TABLE_SIZE                                                                        \
  (offsetof(struct augury_plugin, free_json) + sizeof(((struct augury_plugin *)0)->free_json))

struct plugin_entry *host_entry_new(struct plugin_host *host, enum plugin_mode mode,
                                    const char *origin, struct aug_err *err) {
  if (host->n_entries == HOST_MAX_PLUGINS) {
    aug_err_set(err, AUG_ERANGE, "plugins: more than %d plugins", HOST_MAX_PLUGINS);
    return NULL;
  }
  struct plugin_entry *e = aug_calloc(1, sizeof *e);
  if (!e) {
    aug_err_set(err, AUG_ENOMEM, "plugins: out of memory");
    return NULL;
  }
  e->host = host;
  e->mode = mode;
  e->pid = -1;
  e->to_child = e->from_child = -1;
  snprintf(e->origin, sizeof e->origin, "%s", origin);
  pthread_mutex_init(&e->mu, NULL);
  pthread_cond_init(&e->cv, NULL);
  pthread_mutex_init(&e->io_mu, NULL);
  e->api.abi_version = AUGURY_PLUGIN_ABI_VERSION;
  e->api.struct_size = sizeof e->api;
  e->api.host_data = e;
  e->api.log = api_log;
  e->api.count_tokens = api_count_tokens;
  return e;
}

bool host_name_taken(const struct plugin_host *host, const char *name) {
  for (size_t i = 0; i < host->n_entries; i++)
    if (!strcmp(host->entries[i]->name, name)) return true;
  return false;
}

void host_entry_free(struct plugin_entry *e) {
  pthread_mutex_destroy(&e->mu);
  pthread_cond_destroy(&e->cv);
  pthread_mutex_destroy(&e->io_mu);
  for (int i = 0; i < HOST_MAX_ARGS && e->argv[i]; i++)
    aug_free(e->argv[i]);
  for (size_t i = 0; e->command_names && e->command_names[i]; i++)
    aug_free(e->command_names[i]);
  aug_free(e->command_names);
  aug_free(e->rbuf);
  aug_free(e);
}

/* A table's command names, copied: the host keeps the ones it accepted
 * (host_refuse_duplicate_commands) and answers lookups from its copy, as it does for a child's
 * hello. */
static int copy_command_names(struct plugin_entry *e, const char *const *names,
                              struct aug_err *err) {
  size_t n = 0;
  while (names && names[n])
    n++;
  e->command_names = aug_calloc(n + 1, sizeof *e->command_names);
  if (!e->command_names) return aug_err_set(err, AUG_ENOMEM, "plugins: out of memory");
  for (size_t i = 0; i < n; i++)
    if (!(e->command_names[i] = aug_strndup(names[i], strlen(names[i]))))
      return aug_err_set(err, AUG_ENOMEM, "plugins: out of memory");
  return 0;
}

/* The registered plugin whose accepted commands include name, or NULL. */
static const struct plugin_entry *command_owner(const struct plugin_host *host, const char *name) {
  for (size_t i = 0; i < host->n_entries; i++) {
    const struct plugin_entry *e = host->entries[i];
    for (size_t j = 0; e->command_names && e->command_names[j]; j++)
      if (!strcmp(e->command_names[j], name)) return e;
  }
  return NULL;
}

/* Drops from e's commands (e not registered yet) the names another plugin already offers: the
 * first plugin keeps a name, so that what the editor is told and what runs stay the same plugin.
 * e still loads for the rest; each refusal is logged with both plugins. No command left: e offers
 * none. */
void host_refuse_duplicate_commands(struct plugin_host *host, struct plugin_entry *e) {
  size_t kept = 0;
  for (size_t i = 0; e->command_names && e->command_names[i]; i++) {
    char *name = e->command_names[i];
    const struct plugin_entry *owner = command_owner(host, name);
    bool repeated = false;
    for (size_t j = 0; j < kept; j++)
      repeated = repeated || !strcmp(e->command_names[j], name);
    if (owner)
      host_log(host, 2,
               "augury: plugin %s (%s): command '%s' is already offered by plugin %s: refused "
               "(the plugin loads without it)",
               e->name, e->origin, name, owner->name);
    if (owner || repeated)
      aug_free(name);
    else
      e->command_names[kept++] = name;
  }
  if (e->command_names) e->command_names[kept] = NULL;
  if (kept == 0) e->caps[AUGURY_CAP_COMMAND] = false;
}

static int register_table(struct plugin_host *host, const struct augury_plugin *t,
                          enum plugin_mode mode, const char *origin, void *library,
                          struct aug_err *err) {
  if (!t)
    return aug_err_set(err, AUG_EINVAL, "plugin %s: its entry point returned no table", origin);
  if (t->abi_version != AUGURY_PLUGIN_ABI_VERSION)
    return aug_err_set(err, AUG_EUNSUPPORTED,
                       "plugin %s: built for plugin ABI version %u, this host speaks version %u "
                       "(rebuild it against this augury_plugin.h)",
                       origin, (unsigned)t->abi_version, (unsigned)AUGURY_PLUGIN_ABI_VERSION);
  if (t->struct_size < HOST_MIN_TABLE_SIZE)
    return aug_err_set(err, AUG_EUNSUPPORTED,
                       "plugin %s: table of %u bytes, ABI version %u needs at least %zu", origin,
                       (unsigned)t->struct_size, (unsigned)AUGURY_PLUGIN_ABI_VERSION,
                       (size_t)HOST_MIN_TABLE_SIZE);
  if (!t->name || !*t->name || !t->supports)
    return aug_err_set(err, AUG_EINVAL, "plugin %s: no name or no supports slot", origin);
  if (host_name_taken(host, t->name))
    return aug_err_set(err, AUG_EINVAL, "plugin %s: the name '%s' is taken by another plugin",
                       origin, t->name);
  bool caps[4] = {false, t->supports(t->self, AUGURY_CAP_CONTEXT) == 1 && t->context_provide,
                  t->supports(t->self, AUGURY_CAP_COMPLETION) == 1 && t->complete,
                  t->supports(t->self, AUGURY_CAP_COMMAND) == 1 && t->command_names &&
                      t->command_execute};
  struct plugin_entry *e = host_entry_new(host, mode, origin, err);
  if (!e) return err ? err->code : AUG_ENOMEM;
  e->table = t;
  e->library = library;
  memcpy(e->caps, caps, sizeof caps);
  snprintf(e->name, sizeof e->name, "%s", t->name);
  snprintf(e->version, sizeof e->version, "%s", t->version ? t->version : "");
  if (e->caps[AUGURY_CAP_COMMAND]) {
    int rc = copy_command_names(e, t->command_names(t->self), err);
    if (rc) {
      host_entry_free(e);
      return rc;
    }
  }
  if (t->init) {
    char msg[256] = "";
    int rc = t->init(t->self, &e->api, msg);
    if (rc) {
      msg[sizeof msg - 1] = '\0';
      host_entry_free(e);
      return aug_err_set(err, AUG_EINVAL, "plugin %s (%s): init failed: %s", t->name, origin,
                         msg[0] ? msg : "no reason given");
    }
  }
  host_refuse_duplicate_commands(host, e);
  host->entries[host->n_entries++] = e;
  return 0;
}

int plugin_host_register(struct plugin_host *host, const struct augury_plugin *table,
                         const char *origin, struct aug_err *err) {
  return register_table(host, table, MODE_BUILTIN, origin, NULL, err);
}

int plugin_host_load_library(struct plugin_host *host, const char *path, struct aug_err *err) {
  void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  if (!lib) {
    const char *why = dlerror();
    return aug_err_set(err, AUG_EIO, "plugin %s: cannot load: %s", path, why ? why : "dlopen");
  }
  augury_plugin_entry_fn entry;
  /* POSIX: a function pointer through void * (dlsym's documented use). */
  *(void **)&entry = dlsym(lib, AUGURY_PLUGIN_ENTRY);
  if (!entry) {
    dlclose(lib);
    return aug_err_set(err, AUG_ENOTFOUND, "plugin %s: no %s symbol", path, AUGURY_PLUGIN_ENTRY);
  }
  int rc = register_table(host, entry(AUGURY_PLUGIN_ABI_VERSION), MODE_IN_PROCESS, path, lib, err);
  if (rc) dlclose(lib);
  return rc;
}

static int by_name(const struct dirent **a, const struct dirent **b) {
  return strcmp((*a)->d_name, (*b)->d_name);
}

int plugin_host_load_dir(struct plugin_host *host, const char *dir) {
  struct dirent **names = NULL;
  int n = scandir(dir, &names, NULL, by_name);
  int loaded = 0;
  for (int i = 0; i < n; i++) {
    size_t len = strlen(names[i]->d_name);
    if (len > 3 && !strcmp(names[i]->d_name + len - 3, ".so")) {
      char path[4096];
      snprintf(path, sizeof path, "%s/%s", dir, names[i]->d_name);
      struct aug_err err = {0};
      if (plugin_host_load_library(host, path, &err))
        host_log(host, 1, "augury: %s (skipped)", err.msg);
      else
        loaded++;
    }
    free(names[i]);
  }
  free(names);
  return loaded;
}

bool plugin_host_default_dir(const char *xdg_data_home, const char *home, char *out, size_t cap) {
  if (xdg_data_home && *xdg_data_home)
    snprintf(out, cap, "%s/augury/plugins", xdg_data_home);
  else if (home && *home)
    snprintf(out, cap, "%s/.local/share/augury/plugins", home);
  else
    return false;
  return true;
}

/* --- Workers --- */

static void *worker_main(void *arg) {
  struct plugin_entry *e = arg;
  pthread_mutex_lock(&e->mu);
  for (;;) {
    while (!e->has_job && !e->quit)
      pthread_cond_wait(&e->cv, &e->mu);
    if (e->quit) break;
    e->has_job = false;
    e->busy = true;
    pthread_mutex_unlock(&e->mu);
    struct augury_context_sink sink = {e, sink_add};
    char error[256] = "";
    int rc = e->table->context_provide(e->table->self, &e->req, &sink, error);
    pthread_mutex_lock(&e->mu);
    e->busy = false;
    e->rc = rc;
    memcpy(e->error, error, sizeof error);
    e->error[sizeof e->error - 1] = '\0';
    if (e->abandoned) {
      /* Nobody waits: drop what it made. */
      host_list_free(&e->list);
      aug_free(e->text_copy);
      e->text_copy = NULL;
      e->abandoned = false;
    } else {
      e->done = true;
    }
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_lock(&e->host->finished_mu);
    e->host->n_finished++;
    pthread_cond_broadcast(&e->host->finished_cv);
    pthread_mutex_unlock(&e->host->finished_mu);
  }
  pthread_mutex_unlock(&e->mu);
  return NULL;
}

static void worker_stop(struct plugin_entry *e) {
  if (!e->thread_started) return;
  pthread_mutex_lock(&e->mu);
  e->quit = true;
  pthread_cond_broadcast(&e->cv);
  pthread_mutex_unlock(&e->mu);
  pthread_join(e->thread, NULL);
  e->thread_started = false;
  host_list_free(&e->list);
  aug_free(e->text_copy);
  e->text_copy = NULL;
}

void plugin_host_destroy(struct plugin_host *host) {
  if (!host) return;
  for (size_t i = host->n_entries; i-- > 0;) {
    struct plugin_entry *e = host->entries[i];
    /* A worker stuck in a plugin call is waited for: unloading code that runs would crash. */
    worker_stop(e);
    if (e->mode == MODE_CHILD) host_child_stop(e);
    host_list_free(&e->child_list);
    if (e->table && e->table->destroy) e->table->destroy(e->table->self);
    if (e->library) dlclose(e->library);
    host_entry_free(e);
  }
  pthread_mutex_destroy(&host->finished_mu);
  pthread_cond_destroy(&host->finished_cv);
  pthread_mutex_destroy(&host->state_mu);
  aug_free(host);
}

/* --- Gathering --- */

bool plugin_host_has_context(const struct plugin_host *host) {
  for (size_t i = 0; i < host->n_entries; i++)
    if (host->entries[i]->caps[AUGURY_CAP_CONTEXT] && !atomic_load(&host->entries[i]->disabled))
      return true;
  return false;
}

static void note(struct plugin_context *ctx, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void note(struct plugin_context *ctx, const char *fmt, ...) {
  size_t at = strlen(ctx->notes);
  if (at + 2 >= sizeof ctx->notes) return;
  if (at) ctx->notes[at++] = '\n';
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx->notes + at, sizeof ctx->notes - at, fmt, ap);
  va_end(ap);
}

/* The tokenizer failed on some of e's pieces in this call: they were counted at the upper
 * bound (host_count_or_bound), which may have dropped context the budget had room for. Not the
 * plugin's failure, so not counted against it. */
void host_note_count_failure(const struct plugin_entry *e, struct plugin_context *ctx) {
  if (e->count_rc)
    note(ctx, "%s: tokens not counted with the model (%s): counted one per byte", e->name,
         aug_strerror(e->count_rc));
}

/* A call failed or overran: counted, reported (in ctx's notes for context; the caller's error
 * for a completion or a command, ctx NULL), and the plugin disabled at the limit. Returns whether
 * this failure disabled it. For a child, under io_mu. */
bool host_entry_failed(struct plugin_entry *e, struct plugin_context *ctx, bool overrun,
                       const char *why) {
  pthread_mutex_lock(&e->host->state_mu);
  e->failures++;
  if (overrun) e->overruns++;
  snprintf(e->last_error, sizeof e->last_error, "%.255s", why);
  pthread_mutex_unlock(&e->host->state_mu);
  e->failures_in_row++;
  /* The caller reports the notes (the engine thread cannot write to the editor itself). */
  if (ctx) note(ctx, "%s: %s (skipped)", e->name, why);
  if (e->failures_in_row < e->host->params.failure_limit) return false;
  atomic_store(&e->disabled, true);
  if (ctx)
    note(ctx, "%s: disabled after %d failures in a row", e->name, e->failures_in_row);
  else
    host_log(e->host, 1, "augury: plugin %s: disabled after %d failures in a row (%s)", e->name,
             e->failures_in_row, why);
  if (e->mode == MODE_CHILD) host_child_stop(e);
  return true;
}

static bool worker_dispatch(struct plugin_entry *e, const struct augury_cursor *cursor,
                            size_t window_start, size_t window_end, size_t budget,
                            double time_budget_ms, plugin_host_count_fn count, void *count_user) {
  if (!e->thread_started) {
    if (pthread_create(&e->thread, NULL, worker_main, e)) return false;
    e->thread_started = true;
  }
  pthread_mutex_lock(&e->mu);
  if (e->busy || e->has_job) {
    pthread_mutex_unlock(&e->mu);
    return false; /* still inside an earlier call that overran */
  }
  const char *strs[3] = {cursor->uri, cursor->path, cursor->language_id};
  size_t lens[3], total = cursor->text_len + 1;
  for (int i = 0; i < 3; i++)
    total += (lens[i] = strs[i] ? strlen(strs[i]) : 0) + 1;
  e->text_copy = aug_malloc(total);
  if (!e->text_copy) {
    pthread_mutex_unlock(&e->mu);
    return false;
  }
  e->cursor = *cursor;
  char *at = e->text_copy;
  memcpy(at, cursor->text, cursor->text_len);
  at[cursor->text_len] = '\0';
  e->cursor.text = at;
  at += cursor->text_len + 1;
  const char **dst[3] = {&e->cursor.uri, &e->cursor.path, &e->cursor.language_id};
  for (int i = 0; i < 3; i++) {
    if (!strs[i]) continue;
    memcpy(at, strs[i], lens[i] + 1);
    *dst[i] = at;
    at += lens[i] + 1;
  }
  e->req = (struct augury_context_request){sizeof e->req, &e->cursor, window_start,
                                           window_end,    budget,     time_budget_ms};
  e->list.budget = budget;
  e->count = count;
  e->count_user = count_user;
  e->count_rc = 0;
  e->done = e->abandoned = false;
  e->has_job = true;
  pthread_cond_broadcast(&e->cv);
  pthread_mutex_unlock(&e->mu);
  return true;
}

/* Moves l's pieces into ctx, keeping ctx ordered by stability (stable insertion). */
void host_take_pieces(struct plugin_context *ctx, struct piece_list *l) {
  for (size_t i = 0; i < l->n; i++) {
    if (ctx->n_pieces == ctx->cap_pieces) {
      size_t cap = ctx->cap_pieces ? ctx->cap_pieces * 2 : 8;
      struct plugin_piece *p = aug_realloc(ctx->pieces, cap * sizeof *p);
      if (!p) {
        struct piece_list rest = {l->pieces + i, l->n - i, 0, 0, 0};
        for (size_t j = 0; j < rest.n; j++)
          aug_free(rest.pieces[j].plugin), aug_free(rest.pieces[j].name),
              aug_free(rest.pieces[j].text);
        break;
      }
      ctx->pieces = p;
      ctx->cap_pieces = cap;
    }
    size_t at = ctx->n_pieces;
    while (at > 0 && ctx->pieces[at - 1].stability > l->pieces[i].stability)
      at--;
    memmove(ctx->pieces + at + 1, ctx->pieces + at, (ctx->n_pieces - at) * sizeof *ctx->pieces);
    ctx->pieces[at] = l->pieces[i];
    ctx->n_pieces++;
  }
  aug_free(l->pieces);
  memset(l, 0, sizeof *l);
}

/* Takes an in-process worker's pieces once it is done. Returns whether it is still working. */
static bool collect_worker(struct plugin_entry *e, struct plugin_context *ctx) {
  pthread_mutex_lock(&e->mu);
  if (!e->done) {
    pthread_mutex_unlock(&e->mu);
    return true;
  }
  e->done = false;
  host_note_count_failure(e, ctx);
  if (e->rc) {
    char why[300];
    snprintf(why, sizeof why, "failed: %s", e->error[0] ? e->error : aug_strerror(e->rc));
    host_list_free(&e->list);
    pthread_mutex_unlock(&e->mu);
    host_entry_failed(e, ctx, false, why);
    pthread_mutex_lock(&e->mu);
  } else {
    e->failures_in_row = 0;
    host_take_pieces(ctx, &e->list);
  }
  aug_free(e->text_copy);
  e->text_copy = NULL;
  pthread_mutex_unlock(&e->mu);
  return false;
}

/* An in-process worker past the deadline: its late answer is to be dropped (abandoned), or, when
 * it finished between the last look and now, dropped here. */
static void abandon_worker(struct plugin_entry *e) {
  pthread_mutex_lock(&e->mu);
  if (e->done) {
    host_list_free(&e->list);
    aug_free(e->text_copy);
    e->text_copy = NULL;
    e->done = false;
  } else {
    e->abandoned = true;
    if (e->has_job) { /* never started (cannot happen unless starved): cancel it */
      e->has_job = false;
      e->abandoned = false;
      aug_free(e->text_copy);
      e->text_copy = NULL;
    }
  }
  pthread_mutex_unlock(&e->mu);
}

/* Waits until a worker finished a call after host->n_finished was `finished`, or until deadline
 * (aug_now_ms time). */
static void wait_finished(struct plugin_host *host, uint64_t finished, double deadline) {
  struct timespec until;
  clock_gettime(CLOCK_MONOTONIC, &until);
  double left_ms = deadline - aug_now_ms();
  if (left_ms < 0) left_ms = 0;
  long long ns = (long long)until.tv_nsec + (long long)(left_ms * 1e6);
  until.tv_sec += (time_t)(ns / 1000000000LL);
  until.tv_nsec = (long)(ns % 1000000000LL);
  pthread_mutex_lock(&host->finished_mu);
  while (host->n_finished == finished) {
    if (pthread_cond_timedwait(&host->finished_cv, &host->finished_mu, &until) == ETIMEDOUT) break;
  }
  pthread_mutex_unlock(&host->finished_mu);
}

void plugin_host_gather_context(struct plugin_host *host, const struct augury_cursor *cursor,
                                size_t window_start, size_t window_end, plugin_host_count_fn count,
                                void *count_user, struct plugin_context *ctx) {
  double t0 = aug_now_ms();
  double budget_ms = host->params.context_budget_ms;
  double deadline = t0 + budget_ms;
  size_t n_providers = 0;
  for (size_t i = 0; i < host->n_entries; i++)
    if (host->entries[i]->caps[AUGURY_CAP_CONTEXT] && !atomic_load(&host->entries[i]->disabled))
      n_providers++;
  if (n_providers == 0) return;
  size_t tokens = host->params.context_tokens / n_providers;
  /* Dispatch to all, then wait for all until the deadline. A child's pipe is held (io_mu) from
   * its request to the end of the gathering. */
  bool waiting[HOST_MAX_PLUGINS] = {false}, locked[HOST_MAX_PLUGINS] = {false};
  for (size_t i = 0; i < host->n_entries; i++) {
    struct plugin_entry *e = host->entries[i];
    if (!e->caps[AUGURY_CAP_CONTEXT] || atomic_load(&e->disabled)) continue;
    if (e->mode == MODE_CHILD) {
      /* A command (loop thread) is talking to it: this request goes on without it, as it would
       * past its budget, but the plugin did nothing wrong. */
      if (pthread_mutex_trylock(&e->io_mu)) {
        note(ctx, "%s: busy with a command (skipped)", e->name);
        continue;
      }
      locked[i] = true;
    }
    pthread_mutex_lock(&host->state_mu);
    e->calls++;
    pthread_mutex_unlock(&host->state_mu);
    if (e->mode == MODE_CHILD) {
      struct aug_err err = {0};
      int sent = host_child_dispatch(e, cursor, window_start, window_end, tokens, budget_ms, &err);
      if (sent > 0)
        waiting[i] = true;
      else if (sent == 0)
        note(ctx, "%s: starting again after it exited, no hello yet (skipped)", e->name);
      else
        host_entry_failed(e, ctx, false, err.msg[0] ? err.msg : "could not be started");
    } else if (worker_dispatch(e, cursor, window_start, window_end, tokens, budget_ms, count,
                               count_user)) {
      waiting[i] = true;
    } else {
      host_entry_failed(e, ctx, true, "still busy with an earlier request that overran its budget");
    }
  }
  for (;;) {
    /* Read before looking at the workers: one that finishes after the look changes it, so the
     * wait below cannot miss its signal. */
    pthread_mutex_lock(&host->finished_mu);
    uint64_t finished = host->n_finished;
    pthread_mutex_unlock(&host->finished_mu);
    size_t left_to_wait = 0;
    struct pollfd pfds[HOST_MAX_PLUGINS];
    size_t n_pfds = 0;
    for (size_t i = 0; i < host->n_entries; i++) {
      if (!waiting[i]) continue;
      struct plugin_entry *e = host->entries[i];
      if (e->mode == MODE_CHILD) {
        waiting[i] = host_child_collect(e, ctx, tokens, count, count_user);
        if (waiting[i]) pfds[n_pfds++] = (struct pollfd){e->from_child, POLLIN, 0};
      } else {
        waiting[i] = collect_worker(e, ctx);
      }
      if (waiting[i]) left_to_wait++;
    }
    double left = deadline - aug_now_ms();
    if (left_to_wait == 0 || left <= 0) break;
    if (n_pfds == 0) {
      /* Only workers: sleep until one finishes or the budget is spent. */
      wait_finished(host, finished, deadline);
      continue;
    }
    /* Children wake the poll; in-process workers, if any, are looked at every slice. */
    bool any_worker = left_to_wait > n_pfds;
    int wait = any_worker ? HOST_POLL_SLICE_MS : (int)left + 1;
    if (wait > (int)left + 1) wait = (int)left + 1;
    poll(pfds, n_pfds, wait);
  }
  /* Whoever still has not answered overran. */
  for (size_t i = 0; i < host->n_entries; i++) {
    if (!waiting[i]) continue;
    struct plugin_entry *e = host->entries[i];
    if (e->mode != MODE_CHILD) abandon_worker(e);
    char why[128];
    snprintf(why, sizeof why, "no answer within its %.0f ms budget", budget_ms);
    host_entry_failed(e, ctx, true, why);
  }
  for (size_t i = 0; i < host->n_entries; i++)
    if (locked[i]) pthread_mutex_unlock(&host->entries[i]->io_mu);
  ctx->ms = aug_now_ms() - t0;
}

/* --- Calling a completion provider --- */

static struct plugin_entry *entry_of_table(const struct plugin_host *host,
                                           const struct augury_plugin *table) {
  for (size_t i = 0; host && i < host->n_entries; i++)
    if (host->entries[i]->table == table) return host->entries[i];
  return NULL;
}

/* A library's completion runs on the engine thread and cannot be stopped at its budget: the host
 * measures it afterwards. A failure or an overrun is counted by host_entry_failed, as a context
 * call's or a child's; an overrun's answer came late but is complete, so it is kept (and
 * reported). */
int plugin_host_complete(struct plugin_host *host, const struct augury_plugin *provider,
                         const struct augury_completion_request *req,
                         struct augury_completion_result *result) {
  struct plugin_entry *e = entry_of_table(host, provider);
  /* Built in (local, remote): a remote server's error is that request's, never the provider's
   * fault to be disabled for. A child's table counts its own failures (child_complete). */
  if (!e || e->mode != MODE_IN_PROCESS) return provider->complete(provider->self, req, result);
  if (atomic_load(&e->disabled)) {
    result->served_by = e->name;
    snprintf(result->error, sizeof result->error, "disabled after %d failures in a row",
             host->params.failure_limit);
    return AUGURY_PLUGIN_EUNSUPPORTED;
  }
  pthread_mutex_lock(&host->state_mu);
  e->calls++;
  pthread_mutex_unlock(&host->state_mu);
  double budget = req->time_budget_ms > 0 ? req->time_budget_ms : host->params.call_budget_ms;
  double t0 = aug_now_ms();
  int rc = provider->complete(provider->self, req, result);
  double ms = aug_now_ms() - t0;
  result->error[sizeof result->error - 1] = '\0';
  if (rc == AUGURY_PLUGIN_ECANCELED || (rc && req->cancelled && req->cancelled(req->cancel_data)))
    return rc; /* cancelled: not a failure */
  bool overrun = ms > budget;
  if (rc == 0 && !overrun) {
    e->failures_in_row = 0;
    return 0;
  }
  char why[256];
  if (rc)
    snprintf(why, sizeof why, "failed: %.200s",
             result->error[0] ? result->error : aug_strerror(rc));
  else
    snprintf(why, sizeof why, "answered after %.0f ms, over its %.0f ms budget", ms, budget);
  bool disabled = host_entry_failed(e, NULL, overrun, why);
  if (rc && disabled)
    snprintf(result->error, sizeof result->error, "%.200s (disabled after %d failures in a row)",
             why, host->params.failure_limit);
  else if (rc)
    snprintf(result->error, sizeof result->error, "%s", why);
  else if (!disabled)
    host_log(host, 2, "augury: plugin %s: %s (counted as a failure)", e->name, why);
  return rc;
}

/* --- Lookups and status --- */

const struct augury_plugin *plugin_host_completion(const struct plugin_host *host,
                                                   const char *name) {
  for (size_t i = 0; i < host->n_entries; i++) {
    const struct plugin_entry *e = host->entries[i];
    if (e->table && e->caps[AUGURY_CAP_COMPLETION] && !strcmp(e->name, name)) return e->table;
  }
  return NULL;
}

const struct augury_plugin *plugin_host_command(const struct plugin_host *host, const char *name) {
  const struct plugin_entry *e = command_owner(host, name);
  return e && e->table && e->caps[AUGURY_CAP_COMMAND] && !atomic_load(&e->disabled) ? e->table
                                                                                    : NULL;
}

const char *const *plugin_host_command_names(const struct plugin_host *host, size_t i) {
  return plugin_host_command_table(host, i) ? (const char *const *)host->entries[i]->command_names
                                            : NULL;
}

const struct augury_plugin *plugin_host_command_table(const struct plugin_host *host, size_t i) {
  const struct plugin_entry *e = i < host->n_entries ? host->entries[i] : NULL;
  return e && e->table && e->caps[AUGURY_CAP_COMMAND] && !atomic_load(&e->disabled) ? e->table
                                                                                    : NULL;
}

size_t plugin_host_count(const struct plugin_host *host) {
  return host ? host->n_entries : 0;
}

void plugin_host_info(const struct plugin_host *host, size_t i, struct plugin_info *info) {
  static const char *const modes[] = {"built-in", "in-process", "out-of-process"};
  const struct plugin_entry *e = host->entries[i];
  *info = (struct plugin_info){
      .name = e->name,
      .origin = e->origin,
      .mode = modes[e->mode],
      .context = e->caps[AUGURY_CAP_CONTEXT],
      .completion = e->caps[AUGURY_CAP_COMPLETION],
      .command = e->caps[AUGURY_CAP_COMMAND],
      .disabled = atomic_load(&e->disabled),
  };
  /* The lock is state only: taking it does not change what the host holds. */
  pthread_mutex_t *mu = (pthread_mutex_t *)&host->state_mu;
  pthread_mutex_lock(mu);
  memcpy(info->version, e->version, sizeof info->version);
  info->calls = e->calls;
  info->failures = e->failures;
  info->overruns = e->overruns;
  memcpy(info->last_error, e->last_error, sizeof info->last_error);
  pthread_mutex_unlock(mu);
}
