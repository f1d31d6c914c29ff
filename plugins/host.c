/* The plugin host (see host.h). In-process context calls run on one worker thread per plugin, so
 * that the engine thread can stop waiting at the budget: a call that overruns keeps its thread
 * busy and the plugin is skipped until it returns (its late pieces are dropped). Children get one
 * JSON line per request and answer with one line carrying the same id; a late answer is read and
 * dropped by id at the next request. A child that exits is counted as a failure and started again
 * at the next request, until the failure limit disables it; its hello is read at the requests
 * after that (up to start_timeout_ms), never waited for inside one, so a restart costs no
 * completion its budget. A child that is the completion provider (or runs a command) is the
 * answer itself, so a call to it does wait for a restarted child's hello, within its own budget.
 * One exchange at a time per child (io_mu): the engine thread's and the loop thread's. */
#include "plugins/host.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

extern char **environ;

#include "engine/alloc.h"
#include "engine/clock.h"

#define HOST_MAX_PLUGINS 32
#define HOST_MAX_ARGS 16
/* A child's reply line may not be longer (bigger context is over any token budget anyway). */
#define HOST_MAX_LINE (4u << 20)
/* Granularity of the wait for in-process workers while children are polled too (a poll cannot
 * wait on the workers' condition variable). */
#define HOST_POLL_SLICE_MS 2

enum plugin_mode { MODE_BUILTIN, MODE_IN_PROCESS, MODE_CHILD };

/* Pieces one call collected (the worker's, until the engine thread takes them). */
struct piece_list {
  struct plugin_piece *pieces;
  size_t n, cap;
  size_t tokens, budget;
};

struct plugin_entry {
  struct plugin_host *host;
  enum plugin_mode mode;
  const struct augury_plugin *table; /* NULL for a child */
  void *library;                     /* dlopen handle, or NULL */
  /* name, origin and caps are set at registration and never change after it (a restarted child
   * must say hello with the same name). */
  char name[64];
  char origin[512];
  bool caps[4]; /* by enum augury_plugin_capability */
  /* Written by the engine thread, read by the loop thread too (has_context, commands): atomic,
   * so that a loop-thread reader never races the engine thread disabling the plugin. */
  atomic_bool disabled;
  int failures_in_row; /* the engine thread's alone */
  /* What plugin_host_info reports: written by the engine thread (a restarted child's version,
   * the counters, the last error) under host->state_mu, and copied out under it. */
  char version[32];
  uint64_t calls, failures, overruns;
  char last_error[256];
  struct augury_host api; /* lent to the plugin; host_data = this entry */

  /* In-process worker (MODE_IN_PROCESS and MODE_BUILTIN context providers). Under mu. */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool thread_started, quit;
  pthread_t thread;
  bool has_job;   /* a request waits for the worker */
  bool busy;      /* the worker is inside context_provide */
  bool done;      /* the call returned; rc, error, list are the result */
  bool abandoned; /* the engine thread stopped waiting: drop the result */
  struct augury_cursor cursor;
  struct augury_context_request req;
  /* The cursor's text, uri, path and language id in one block owned by the job: an abandoned
   * call may outlive the request that lent them. */
  char *text_copy;
  int rc;
  char error[256];
  struct piece_list list;
  plugin_host_count_fn count;
  void *count_user;
  /* The first failure of count in the current call (0: none), for its note. Under mu for a
   * worker; the engine thread's for a child. */
  int count_rc;

  /* Child (MODE_CHILD). The pipe, the read buffer, the ids, a restart and failures_in_row are
   * under io_mu: context and completion calls come from the engine thread, commands from the
   * loop thread, and one exchange (request line, reply line) must not interleave with another. */
  pthread_mutex_t io_mu;
  /* The table the host lends the rest of the server for a child: its slots speak the protocol
   * (self is this entry), so the pipeline and the commands call a child as they call a library. */
  struct augury_plugin child_table;
  char **command_names; /* NULL-terminated, from the first hello (owned); NULL for none */
  char *argv[HOST_MAX_ARGS + 1];
  pid_t pid;
  int to_child, from_child;
  char *rbuf;
  size_t rlen, rcap;
  uint64_t next_id, waiting_id;
  bool child_done;
  /* Started again after an exit, its hello not read yet: it is looked for at each request until
   * child_start_deadline (aug_now_ms time), never waited for inside one. */
  bool child_starting;
  double child_start_deadline;
  struct piece_list child_list;
};

struct plugin_host {
  struct plugin_host_params params;
  struct plugin_entry *entries[HOST_MAX_PLUGINS];
  size_t n_entries;
  /* Workers count their finished calls here and signal finished_cv (on CLOCK_MONOTONIC, the
   * clock of the budgets), so that the engine thread waiting for in-process providers wakes as
   * soon as one is done. Lock order: an entry's mu, then finished_mu. */
  pthread_mutex_t finished_mu;
  pthread_cond_t finished_cv;
  uint64_t n_finished; /* under finished_mu */
  /* Guards the entries' version, counters and last error (see struct plugin_entry); never held
   * while taking another lock. Mutable through a const host: plugin_host_info only reads. */
  pthread_mutex_t state_mu;
};

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

static void list_free(struct piece_list *l) {
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
  list_free(&l);
  ctx->pieces = NULL;
  ctx->n_pieces = ctx->cap_pieces = 0;
}

/* Appends a copy of piece; false when out of memory. */
static bool list_add(struct piece_list *l, const char *plugin, const char *name, const char *text,
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

static size_t estimate_tokens(size_t len) {
  return (len + 2) / 3;
}

/* Counts with count; when that fails (out of memory), one token per byte, so that a piece that
 * could not be measured still cannot pass the token budget: byte-level BPE and SentencePiece's
 * byte fallback never give more, plus 3 for the dummy prefix space (U+2581, as bytes at worst).
 * The first failure is kept in *first_rc for the request's note. */
static size_t count_or_bound(plugin_host_count_fn count, void *user, const char *text, size_t len,
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
  size_t n = estimate_tokens(len);
  pthread_mutex_lock(&e->mu);
  if (e->busy && !e->abandoned && e->count)
    n = count_or_bound(e->count, e->count_user, text, len, &e->count_rc);
  pthread_mutex_unlock(&e->mu);
  return n;
}

/* The sink of an in-process call: counts the piece against the budget and copies it. */
static int sink_add(void *sink_data, const struct augury_context_piece *piece) {
  struct plugin_entry *e = sink_data;
  if (!piece || (!piece->text && piece->text_len)) return AUGURY_PLUGIN_EINVAL;
  size_t tokens = api_count_tokens(e, piece->text ? piece->text : "", piece->text_len);
  if (e->list.tokens + tokens > e->list.budget) return AUGURY_PLUGIN_ERANGE;
  return list_add(&e->list, e->name, piece->name, piece->text ? piece->text : "", piece->text_len,
                  tokens, piece->stability)
             ? 0
             : AUGURY_PLUGIN_ENOMEM;
}

/* --- Registration --- */

/* The table must reach at least context_provide .. free_json as this host knows them. */
#define HOST_MIN_TABLE_SIZE                                                                        \
  (offsetof(struct augury_plugin, free_json) + sizeof(((struct augury_plugin *)0)->free_json))

static struct plugin_entry *entry_new(struct plugin_host *host, enum plugin_mode mode,
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

static bool name_taken(const struct plugin_host *host, const char *name) {
  for (size_t i = 0; i < host->n_entries; i++)
    if (!strcmp(host->entries[i]->name, name)) return true;
  return false;
}

static void entry_free(struct plugin_entry *e) {
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

/* A table's command names, copied: the host keeps the ones it accepted (refuse_duplicate_commands)
 * and answers lookups from its copy, as it does for a child's hello. */
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
static void refuse_duplicate_commands(struct plugin_host *host, struct plugin_entry *e) {
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
  if (name_taken(host, t->name))
    return aug_err_set(err, AUG_EINVAL, "plugin %s: the name '%s' is taken by another plugin",
                       origin, t->name);
  bool caps[4] = {false, t->supports(t->self, AUGURY_CAP_CONTEXT) == 1 && t->context_provide,
                  t->supports(t->self, AUGURY_CAP_COMPLETION) == 1 && t->complete,
                  t->supports(t->self, AUGURY_CAP_COMMAND) == 1 && t->command_names &&
                      t->command_execute};
  struct plugin_entry *e = entry_new(host, mode, origin, err);
  if (!e) return err ? err->code : AUG_ENOMEM;
  e->table = t;
  e->library = library;
  memcpy(e->caps, caps, sizeof caps);
  snprintf(e->name, sizeof e->name, "%s", t->name);
  snprintf(e->version, sizeof e->version, "%s", t->version ? t->version : "");
  if (e->caps[AUGURY_CAP_COMMAND]) {
    int rc = copy_command_names(e, t->command_names(t->self), err);
    if (rc) {
      entry_free(e);
      return rc;
    }
  }
  if (t->init) {
    char msg[256] = "";
    int rc = t->init(t->self, &e->api, msg);
    if (rc) {
      msg[sizeof msg - 1] = '\0';
      entry_free(e);
      return aug_err_set(err, AUG_EINVAL, "plugin %s (%s): init failed: %s", t->name, origin,
                         msg[0] ? msg : "no reason given");
    }
  }
  refuse_duplicate_commands(host, e);
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

/* --- Children --- */

static void child_stop(struct plugin_entry *e) {
  if (e->to_child >= 0) close(e->to_child);
  if (e->from_child >= 0) close(e->from_child);
  e->to_child = e->from_child = -1;
  if (e->pid > 0) {
    kill(e->pid, SIGKILL);
    waitpid(e->pid, NULL, 0);
  }
  e->pid = -1;
  e->rlen = 0;
  e->child_starting = false;
}

/* The child's stdin is a socket, so that writing to a child that died is an EPIPE error (send
 * with MSG_NOSIGNAL) and not a SIGPIPE that would end a process not ignoring it; its stdout is a
 * pipe read without blocking. posix_spawnp, not fork + exec: the engine thread may start a child
 * while other threads hold locks. */
static int child_start(struct plugin_entry *e, struct aug_err *err) {
  int in[2], out[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in))
    return aug_err_set(err, AUG_EIO, "plugin %s: socketpair: %s", e->origin, strerror(errno));
  if (pipe2(out, O_CLOEXEC)) {
    close(in[0]);
    close(in[1]);
    return aug_err_set(err, AUG_EIO, "plugin %s: pipe: %s", e->origin, strerror(errno));
  }
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  /* dup2 clears FD_CLOEXEC on the copies; stderr stays the server's. */
  posix_spawn_file_actions_adddup2(&fa, in[1], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, e->argv[0], &fa, NULL, e->argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  close(in[1]);
  close(out[1]);
  if (rc) {
    close(in[0]);
    close(out[0]);
    return aug_err_set(err, AUG_EIO, "plugin %s: cannot start: %s", e->origin, strerror(rc));
  }
  e->pid = pid;
  e->to_child = in[0];
  e->from_child = out[0];
  fcntl(e->from_child, F_SETFL, fcntl(e->from_child, F_GETFL) | O_NONBLOCK);
  e->rlen = 0;
  return 0;
}

/* Reads what is available; returns the next complete line (NUL-terminated in rbuf, consumed by
 * the next call) or NULL. *eof is set when the child closed its end. */
static char *child_line(struct plugin_entry *e, bool *eof, size_t *consumed) {
  *eof = false;
  for (;;) {
    char *nl = e->rlen ? memchr(e->rbuf, '\n', e->rlen) : NULL;
    if (nl) {
      *nl = '\0';
      *consumed = (size_t)(nl - e->rbuf) + 1;
      return e->rbuf;
    }
    if (e->rlen == e->rcap) {
      if (e->rcap >= HOST_MAX_LINE) {
        *eof = true; /* a line this long is a broken child */
        return NULL;
      }
      size_t cap = e->rcap ? e->rcap * 2 : 4096;
      char *b = aug_realloc(e->rbuf, cap);
      if (!b) {
        *eof = true;
        return NULL;
      }
      e->rbuf = b;
      e->rcap = cap;
    }
    ssize_t k = read(e->from_child, e->rbuf + e->rlen, e->rcap - e->rlen);
    if (k > 0) {
      e->rlen += (size_t)k;
      continue;
    }
    if (k == 0 || (errno != EAGAIN && errno != EINTR)) *eof = true;
    return NULL;
  }
}

static void child_consume(struct plugin_entry *e, size_t consumed) {
  memmove(e->rbuf, e->rbuf + consumed, e->rlen - consumed);
  e->rlen -= consumed;
}

/* The command names a child's hello lists (its "commands" capability): kept for its lifetime,
 * as a library's static list is; a restarted child keeps the first hello's. */
static int child_hello_commands(struct plugin_entry *e, const json_t *names, struct aug_err *err) {
  size_t n = json_array_size(names);
  if (n == 0 || n > 256)
    return aug_err_set(err, AUG_EFORMAT,
                       "plugin %s: a \"commands\" capability needs 1 to 256 names in \"commands\"",
                       e->origin);
  e->command_names = aug_calloc(n + 1, sizeof *e->command_names);
  if (!e->command_names) return aug_err_set(err, AUG_ENOMEM, "plugins: out of memory");
  for (size_t i = 0; i < n; i++) {
    const json_t *v = json_array_get(names, i);
    if (!json_is_string(v) || json_string_length(v) == 0)
      return aug_err_set(err, AUG_EFORMAT, "plugin %s: commands[%zu] is not a name", e->origin, i);
    if (!(e->command_names[i] = aug_strndup(json_string_value(v), json_string_length(v))))
      return aug_err_set(err, AUG_ENOMEM, "plugins: out of memory");
  }
  return 0;
}

/* Reads the child's hello when its line is there: 0 when it was and is valid, 1 when it has not
 * come yet, negative (err set) for a bad hello or a child that exited first. first: at
 * plugin_host_spawn, before the entry is registered (the hello names it); else a restart, whose
 * hello must give the name registered (others hold it). */
static int child_try_hello(struct plugin_entry *e, bool first, struct aug_err *err) {
  bool eof;
  size_t used = 0;
  char *line = child_line(e, &eof, &used);
  if (!line)
    return eof ? aug_err_set(err, AUG_EIO, "plugin %s: exited before its hello line", e->origin)
               : 1;
  json_error_t jerr;
  json_t *hello = json_loads(line, 0, &jerr);
  child_consume(e, used);
  json_int_t abi = json_integer_value(json_object_get(hello, "abi"));
  const char *name = json_string_value(json_object_get(hello, "name"));
  const char *version = json_string_value(json_object_get(hello, "version"));
  json_t *caps = json_object_get(hello, "capabilities");
  int rc = 0;
  if (!hello || !name || !*name)
    rc = aug_err_set(err, AUG_EFORMAT,
                     "plugin %s: its first line is not a hello "
                     "{\"name\", \"abi\", \"capabilities\"}",
                     e->origin);
  else if (abi != AUGURY_PLUGIN_ABI_VERSION)
    rc = aug_err_set(err, AUG_EUNSUPPORTED,
                     "plugin %s: built for plugin ABI version %lld, this host speaks version %u",
                     e->origin, (long long)abi, (unsigned)AUGURY_PLUGIN_ABI_VERSION);
  else if (first && name_taken(e->host, name))
    rc = aug_err_set(err, AUG_EINVAL, "plugin %s: the name '%s' is taken by another plugin",
                     e->origin, name);
  else if (!first && strcmp(e->name, name))
    rc = aug_err_set(err, AUG_EINVAL, "plugin %s: started again as '%s', registered as '%s'",
                     e->origin, name, e->name);
  if (rc == 0 && first) {
    snprintf(e->name, sizeof e->name, "%s", name);
    snprintf(e->version, sizeof e->version, "%s", version ? version : "");
    size_t i;
    json_t *c;
    json_array_foreach(caps, i, c) {
      const char *cap = json_is_string(c) ? json_string_value(c) : "";
      if (!strcmp(cap, "context")) e->caps[AUGURY_CAP_CONTEXT] = true;
      if (!strcmp(cap, "completion")) e->caps[AUGURY_CAP_COMPLETION] = true;
      if (!strcmp(cap, "commands")) e->caps[AUGURY_CAP_COMMAND] = true;
    }
    if (e->caps[AUGURY_CAP_COMMAND])
      rc = child_hello_commands(e, json_object_get(hello, "commands"), err);
  } else if (rc == 0) {
    pthread_mutex_lock(&e->host->state_mu);
    snprintf(e->version, sizeof e->version, "%s", version ? version : "");
    pthread_mutex_unlock(&e->host->state_mu);
  }
  json_decref(hello);
  return rc;
}

static void child_table_init(struct plugin_entry *e);

/* Waits up to start_timeout_ms for the first hello (plugin_host_spawn: the loop thread, while
 * the server starts, not inside a request). */
static int child_hello(struct plugin_entry *e, struct aug_err *err) {
  double deadline = aug_now_ms() + e->host->params.start_timeout_ms;
  for (;;) {
    int rc = child_try_hello(e, true, err);
    if (rc <= 0) return rc;
    double left = deadline - aug_now_ms();
    if (left <= 0)
      return aug_err_set(err, AUG_ETIMEOUT,
                         "plugin %s: no hello line within the start timeout of %.0f ms", e->origin,
                         e->host->params.start_timeout_ms);
    struct pollfd pfd = {e->from_child, POLLIN, 0};
    poll(&pfd, 1, (int)left + 1);
  }
}

int plugin_host_spawn(struct plugin_host *host, const char *const *argv, struct aug_err *err) {
  if (!argv || !argv[0]) return aug_err_set(err, AUG_EINVAL, "plugins: a command needs argv[0]");
  struct plugin_entry *e = entry_new(host, MODE_CHILD, argv[0], err);
  if (!e) return err ? err->code : AUG_ENOMEM;
  for (int i = 0; argv[i]; i++) {
    if (i == HOST_MAX_ARGS) {
      entry_free(e);
      return aug_err_set(err, AUG_ERANGE, "plugin %s: more than %d arguments", argv[0],
                         HOST_MAX_ARGS);
    }
    if (!(e->argv[i] = aug_strndup(argv[i], strlen(argv[i])))) {
      entry_free(e);
      return aug_err_set(err, AUG_ENOMEM, "plugins: out of memory");
    }
  }
  int rc = child_start(e, err);
  if (rc == 0) rc = child_hello(e, err);
  if (rc) {
    child_stop(e);
    entry_free(e);
    return rc;
  }
  refuse_duplicate_commands(host, e);
  child_table_init(e);
  host->entries[host->n_entries++] = e;
  return 0;
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
      list_free(&e->list);
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
  list_free(&e->list);
  aug_free(e->text_copy);
  e->text_copy = NULL;
}

void plugin_host_destroy(struct plugin_host *host) {
  if (!host) return;
  for (size_t i = host->n_entries; i-- > 0;) {
    struct plugin_entry *e = host->entries[i];
    /* A worker stuck in a plugin call is waited for: unloading code that runs would crash. */
    worker_stop(e);
    if (e->mode == MODE_CHILD) child_stop(e);
    list_free(&e->child_list);
    if (e->table && e->table->destroy) e->table->destroy(e->table->self);
    if (e->library) dlclose(e->library);
    entry_free(e);
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
 * bound (count_or_bound), which may have dropped context the budget had room for. Not the
 * plugin's failure, so not counted against it. */
static void note_count_failure(const struct plugin_entry *e, struct plugin_context *ctx) {
  if (e->count_rc)
    note(ctx, "%s: tokens not counted with the model (%s): counted one per byte", e->name,
         aug_strerror(e->count_rc));
}

/* A call failed or overran: counted, reported (in ctx's notes for context; the caller's error
 * for a completion or a command, ctx NULL), and the plugin disabled at the limit. Returns whether
 * this failure disabled it. For a child, under io_mu. */
static bool entry_failed(struct plugin_entry *e, struct plugin_context *ctx, bool overrun,
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
  if (e->mode == MODE_CHILD) child_stop(e);
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

/* Sends msg (stolen) to a child with the next id: 1 when sent, 0 when the child is starting again
 * and has not said hello yet (skipped, not a failure), negative (err set) when it failed. Under
 * io_mu. */
static int child_send(struct plugin_entry *e, json_t *msg, struct aug_err *err) {
  if (e->pid < 0) {
    /* It exited after an earlier request (counted as a failure then): start it again, but read
     * its hello at the next requests rather than wait for it here, inside a completion's budget
     * (start_timeout_ms is seconds, the budget tens of ms). */
    int rc = child_start(e, err);
    if (rc) {
      child_stop(e);
      json_decref(msg);
      return rc;
    }
    e->child_starting = true;
    e->child_start_deadline = aug_now_ms() + e->host->params.start_timeout_ms;
  }
  if (e->child_starting) {
    int rc = child_try_hello(e, false, err);
    if (rc == 1 && aug_now_ms() < e->child_start_deadline) {
      json_decref(msg);
      return 0;
    }
    if (rc == 1)
      rc = aug_err_set(err, AUG_ETIMEOUT,
                       "plugin %s: no hello line within the start timeout of %.0f ms after a "
                       "restart",
                       e->origin, e->host->params.start_timeout_ms);
    if (rc) {
      child_stop(e);
      json_decref(msg);
      return rc;
    }
    e->child_starting = false;
  }
  e->waiting_id = ++e->next_id;
  e->child_done = false;
  e->count_rc = 0;
  char *line = NULL;
  if (msg && json_object_set_new(msg, "id", json_integer((json_int_t)e->waiting_id)) == 0)
    line = json_dumps(msg, JSON_COMPACT);
  json_decref(msg);
  if (!line) return aug_err_set(err, AUG_ENOMEM, "out of memory for the request");
  size_t len = strlen(line), off = 0;
  line[len++] = '\n'; /* json_dumps leaves room: replace the NUL, write len bytes */
  bool ok = true;
  while (off < len) {
    ssize_t k = send(e->to_child, line + off, len - off, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) {
      aug_err_set(err, AUG_EIO, "the child closed its input (%s)", strerror(errno));
      ok = false;
      break;
    }
    off += (size_t)k;
  }
  free(line);
  if (!ok) {
    child_stop(e);
    return AUG_EIO;
  }
  return 1;
}

/* The fields every request about a cursor carries. NULL when out of memory. */
static json_t *cursor_message(const char *method, const struct augury_cursor *cursor,
                              size_t window_start, size_t window_end, double time_budget_ms) {
  return json_pack("{s:s,s:s,s:s,s:s,s:s%,s:I,s:I,s:I,s:I,s:f}", "method", method, "uri",
                   cursor->uri, "path", cursor->path, "languageId", cursor->language_id, "text",
                   cursor->text, cursor->text_len, "offset", (json_int_t)cursor->offset, "line",
                   (json_int_t)cursor->line, "windowStart", (json_int_t)window_start, "windowEnd",
                   (json_int_t)window_end, "timeBudgetMs", time_budget_ms);
}

/* Sends a context request to a child (child_send's returns). */
static int child_dispatch(struct plugin_entry *e, const struct augury_cursor *cursor,
                          size_t window_start, size_t window_end, size_t budget,
                          double time_budget_ms, struct aug_err *err) {
  json_t *msg = cursor_message("context", cursor, window_start, window_end, time_budget_ms);
  if (msg) json_object_set_new(msg, "tokenBudget", json_integer((json_int_t)budget));
  return child_send(e, msg, err);
}

/* The reply to the current request, when its line came: 1 with *reply (a new reference), 0 when
 * it has not come yet (stale lines, answers to requests given up on, are read and dropped),
 * negative with why when the child exited (it is stopped) or sent a line that is not JSON. Under
 * io_mu. */
static int child_next_reply(struct plugin_entry *e, json_t **reply, char *why, size_t why_cap) {
  *reply = NULL;
  for (;;) {
    bool eof;
    size_t used = 0;
    char *line = child_line(e, &eof, &used);
    if (!line) {
      if (!eof) return 0;
      child_stop(e);
      snprintf(why, why_cap, "exited (or closed its output) during the request");
      return AUG_EIO;
    }
    json_error_t jerr;
    json_t *msg = json_loads(line, 0, &jerr);
    child_consume(e, used);
    if (!msg) {
      snprintf(why, why_cap, "a reply that is not JSON: %s", jerr.text);
      return AUG_EFORMAT;
    }
    json_t *id = json_object_get(msg, "id");
    if (json_is_integer(id) && (uint64_t)json_integer_value(id) == e->waiting_id) {
      *reply = msg;
      return 1;
    }
    json_decref(msg);
  }
}

/* Waits for the reply to the current request until deadline (aug_now_ms time), polling cancelled
 * (optional) every 10 ms: child_next_reply's returns, or AUG_ETIMEOUT, AUG_ECANCELED (the late
 * answer is dropped by id at the next request). Under io_mu. */
static int child_await(struct plugin_entry *e, double deadline, int (*cancelled)(void *),
                       void *cancel_data, json_t **reply, char *why, size_t why_cap) {
  for (;;) {
    int rc = child_next_reply(e, reply, why, why_cap);
    if (rc) return rc;
    if (cancelled && cancelled(cancel_data)) {
      snprintf(why, why_cap, "cancelled");
      return AUG_ECANCELED;
    }
    double left = deadline - aug_now_ms();
    if (left <= 0) return AUG_ETIMEOUT;
    struct pollfd pfd = {e->from_child, POLLIN, 0};
    int wait = cancelled && left > 10 ? 10 : (int)left + 1;
    poll(&pfd, 1, wait);
  }
}

/* A context reply's pieces, counted against budget, into e->child_list: 0, or negative with why
 * for an error the plugin reported or a reply without pieces. */
static int child_pieces(struct plugin_entry *e, const json_t *msg, size_t budget,
                        plugin_host_count_fn count, void *count_user, char *why, size_t why_cap) {
  if (json_is_string(json_object_get(msg, "error"))) {
    snprintf(why, why_cap, "failed: %s", json_string_value(json_object_get(msg, "error")));
    return AUG_EIO;
  }
  json_t *pieces = json_object_get(msg, "pieces");
  if (!json_is_array(pieces)) {
    snprintf(why, why_cap, "a reply without \"pieces\"");
    return AUG_EFORMAT;
  }
  size_t i;
  json_t *p;
  e->child_list.budget = budget;
  json_array_foreach(pieces, i, p) {
    json_t *text = json_object_get(p, "text");
    if (!json_is_string(text)) continue;
    const char *t = json_string_value(text);
    size_t len = json_string_length(text);
    size_t tokens =
        count ? count_or_bound(count, count_user, t, len, &e->count_rc) : estimate_tokens(len);
    if (e->child_list.tokens + tokens > budget) break; /* over its budget: the rest is dropped */
    const char *name = json_string_value(json_object_get(p, "name"));
    json_int_t st = json_integer_value(json_object_get(p, "stability"));
    if (!list_add(&e->child_list, e->name, name, t, len, tokens, (uint32_t)(st < 0 ? 0 : st))) {
      snprintf(why, why_cap, "out of memory for its pieces");
      return AUG_ENOMEM;
    }
  }
  return 0;
}

/* Moves l's pieces into ctx, keeping ctx ordered by stability (stable insertion). */
static void take_pieces(struct plugin_context *ctx, struct piece_list *l) {
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

/* Reads what a child sent for the current request: stale lines are dropped, the current one (or
 * an exit) ends the wait. Returns whether the child is still to be waited for. */
static bool collect_child(struct plugin_entry *e, struct plugin_context *ctx, size_t tokens,
                          plugin_host_count_fn count, void *count_user) {
  json_t *reply = NULL;
  char why[256] = "";
  int rc = child_next_reply(e, &reply, why, sizeof why);
  if (rc == 0) return true;
  if (rc > 0) {
    rc = child_pieces(e, reply, tokens, count, count_user, why, sizeof why);
    json_decref(reply);
    note_count_failure(e, ctx);
  }
  if (rc < 0) {
    list_free(&e->child_list);
    entry_failed(e, ctx, false, why);
  } else {
    e->failures_in_row = 0;
    take_pieces(ctx, &e->child_list);
  }
  return false;
}

/* Takes an in-process worker's pieces once it is done. Returns whether it is still working. */
static bool collect_worker(struct plugin_entry *e, struct plugin_context *ctx) {
  pthread_mutex_lock(&e->mu);
  if (!e->done) {
    pthread_mutex_unlock(&e->mu);
    return true;
  }
  e->done = false;
  note_count_failure(e, ctx);
  if (e->rc) {
    char why[300];
    snprintf(why, sizeof why, "failed: %s", e->error[0] ? e->error : aug_strerror(e->rc));
    list_free(&e->list);
    pthread_mutex_unlock(&e->mu);
    entry_failed(e, ctx, false, why);
    pthread_mutex_lock(&e->mu);
  } else {
    e->failures_in_row = 0;
    take_pieces(ctx, &e->list);
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
    list_free(&e->list);
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
      int sent = child_dispatch(e, cursor, window_start, window_end, tokens, budget_ms, &err);
      if (sent > 0)
        waiting[i] = true;
      else if (sent == 0)
        note(ctx, "%s: starting again after it exited, no hello yet (skipped)", e->name);
      else
        entry_failed(e, ctx, false, err.msg[0] ? err.msg : "could not be started");
    } else if (worker_dispatch(e, cursor, window_start, window_end, tokens, budget_ms, count,
                               count_user)) {
      waiting[i] = true;
    } else {
      entry_failed(e, ctx, true, "still busy with an earlier request that overran its budget");
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
        waiting[i] = collect_child(e, ctx, tokens, count, count_user);
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
    entry_failed(e, ctx, true, why);
  }
  for (size_t i = 0; i < host->n_entries; i++)
    if (locked[i]) pthread_mutex_unlock(&host->entries[i]->io_mu);
  ctx->ms = aug_now_ms() - t0;
}

/* --- A child's table: completions and commands over the protocol --- */

static int child_supports(void *self, uint32_t capability) {
  const struct plugin_entry *e = self;
  return capability < 4 && e->caps[capability];
}

static const char *const *child_command_names(void *self) {
  const struct plugin_entry *e = self;
  return (const char *const *)e->command_names;
}

static void child_free_json(void *self, char *json) {
  (void)self;
  free(json); /* json_dumps' (jansson allocates with malloc) */
}

/* Takes a child's pipe for a completion or a command, waiting until deadline (aug_now_ms time)
 * while the other thread's exchange ends. */
static bool child_lock(struct plugin_entry *e, double deadline) {
  double left = deadline - aug_now_ms();
  if (left < 0) left = 0;
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until); /* pthread_mutex_timedlock's clock */
  long long ns = (long long)until.tv_nsec + (long long)(left * 1e6);
  until.tv_sec += (time_t)(ns / 1000000000LL);
  until.tv_nsec = (long)(ns % 1000000000LL);
  return pthread_mutex_timedlock(&e->io_mu, &until) == 0;
}

/* One request and its reply, for a completion or a command, under io_mu: a child starting again
 * after an exit is waited for (its hello) within the call's own deadline, since without it there
 * is no answer at all. msg is borrowed. Returns 1 with *reply, or negative with why; *overrun
 * tells a timeout. */
static int child_call(struct plugin_entry *e, json_t *msg, double deadline,
                      int (*cancelled)(void *), void *cancel_data, json_t **reply, bool *overrun,
                      char *why, size_t why_cap) {
  *reply = NULL;
  *overrun = false;
  int rc;
  for (;;) {
    struct aug_err err = {0};
    rc = child_send(e, json_incref(msg), &err); /* it takes a reference */
    if (rc < 0) {
      snprintf(why, why_cap, "%.255s", err.msg[0] ? err.msg : "could not be started");
      return rc;
    }
    if (rc > 0) break;
    if (cancelled && cancelled(cancel_data)) {
      snprintf(why, why_cap, "cancelled");
      return AUG_ECANCELED;
    }
    if (aug_now_ms() >= deadline) {
      snprintf(why, why_cap, "starting again after it exited: no hello within the budget");
      *overrun = true;
      return AUG_ETIMEOUT;
    }
    struct pollfd pfd = {e->from_child, POLLIN, 0};
    poll(&pfd, 1, 10);
  }
  rc = child_await(e, deadline, cancelled, cancel_data, reply, why, why_cap);
  if (rc == AUG_ETIMEOUT) *overrun = true;
  if (rc > 0 && json_is_string(json_object_get(*reply, "error"))) {
    snprintf(why, why_cap, "failed: %s", json_string_value(json_object_get(*reply, "error")));
    json_decref(*reply);
    *reply = NULL;
    rc = AUG_EIO;
  }
  return rc;
}

/* A failed call of a child's completion or command: counted like a context call's (cancelled
 * ones are not failures), and why written to error with the disabling when it caused it. */
static void child_call_failed(struct plugin_entry *e, int rc, bool overrun, const char *why,
                              char *error, size_t cap) {
  if (rc == AUG_ECANCELED) {
    snprintf(error, cap, "%s", why);
    return;
  }
  if (entry_failed(e, NULL, overrun, why))
    snprintf(error, cap, "%s (disabled after %d failures in a row)", why,
             e->host->params.failure_limit);
  else
    snprintf(error, cap, "%s", why);
}

/* The end of a child's completion or command call, io_mu held: a failure is counted and
 * explained in error (a timeout without a reason of its own is the budget's), a success resets
 * the failures in a row; then io_mu is released. Returns rc. */
static int child_call_finish(struct plugin_entry *e, int rc, bool overrun, double budget, char *why,
                             size_t why_cap, char *error, size_t cap) {
  if (rc) {
    if (rc == AUG_ETIMEOUT && !why[0])
      snprintf(why, why_cap, "no answer within its %.0f ms budget", budget);
    child_call_failed(e, rc, overrun, why, error, cap);
  } else {
    e->failures_in_row = 0;
  }
  pthread_mutex_unlock(&e->io_mu);
  return rc;
}

/* AUGURY_CAP_COMPLETION for a child: {"method": "complete", the cursor's fields, "context":
 * [pieces], "maxTokens", "timeBudgetMs"}, answered by {"text": "..."}. Its budget is the
 * request's time budget (else call_budget_ms); past it, or when the child exits, the request gets
 * an error and the server goes on. Engine thread. */
static int child_complete(void *self, const struct augury_completion_request *req,
                          struct augury_completion_result *result) {
  struct plugin_entry *e = self;
  result->served_by = e->name;
  double budget = req->time_budget_ms > 0 ? req->time_budget_ms : e->host->params.call_budget_ms;
  double deadline = aug_now_ms() + budget;
  if (atomic_load(&e->disabled)) {
    snprintf(result->error, sizeof result->error, "disabled after %d failures in a row",
             e->host->params.failure_limit);
    return AUGURY_PLUGIN_EUNSUPPORTED;
  }
  if (!child_lock(e, deadline)) {
    snprintf(result->error, sizeof result->error, "busy with a command past the budget");
    return AUGURY_PLUGIN_ETIMEOUT;
  }
  pthread_mutex_lock(&e->host->state_mu);
  e->calls++;
  pthread_mutex_unlock(&e->host->state_mu);
  json_t *msg = cursor_message("complete", req->cursor, req->window_start, req->window_end, budget);
  json_t *pieces = json_array();
  for (size_t i = 0; pieces && i < req->n_context; i++) {
    const struct augury_context_piece *p = &req->context[i];
    json_array_append_new(pieces, json_pack("{s:s?,s:s%,s:i}", "name", p->name, "text",
                                            p->text ? p->text : "", p->text_len, "stability",
                                            (int)p->stability));
  }
  json_object_set_new(msg, "context", pieces);
  json_object_set_new(msg, "maxTokens", json_integer(req->max_tokens));
  json_t *reply = NULL;
  bool overrun = false;
  char why[256] = "";
  int rc = msg ? child_call(e, msg, deadline, req->cancelled, req->cancel_data, &reply, &overrun,
                            why, sizeof why)
               : (snprintf(why, sizeof why, "out of memory for the request"), AUG_ENOMEM);
  json_decref(msg);
  if (rc > 0) {
    json_t *text = json_object_get(reply, "text");
    if (json_is_string(text)) {
      size_t n = json_string_length(text);
      if (n >= result->cap) {
        n = result->cap - 1;
        while (n > 0 && (json_string_value(text)[n] & 0xC0) == 0x80)
          n--; /* not inside a UTF-8 sequence */
      }
      memcpy(result->text, json_string_value(text), n);
      result->text[n] = '\0';
      result->len = n;
      json_int_t g = json_integer_value(json_object_get(reply, "tokensGenerated"));
      result->tokens_generated = g > 0 ? (uint64_t)g : 0;
      rc = 0;
    } else {
      snprintf(why, sizeof why, "a reply without \"text\"");
      rc = AUG_EFORMAT;
    }
    json_decref(reply);
  }
  return child_call_finish(e, rc, overrun, budget, why, sizeof why, result->error,
                           sizeof result->error);
}

/* AUGURY_CAP_COMMAND for a child: {"method": "command", "command": name, "arguments": [...]},
 * answered by {"result": any JSON}, within call_budget_ms. Loop thread (it waits for the child,
 * as it waits for a library's command). */
static int child_command(void *self, const char *name, const char *arguments_json,
                         struct augury_command_result *result) {
  struct plugin_entry *e = self;
  double budget = e->host->params.call_budget_ms;
  double deadline = aug_now_ms() + budget;
  if (atomic_load(&e->disabled)) {
    snprintf(result->error, sizeof result->error, "disabled after %d failures in a row",
             e->host->params.failure_limit);
    return AUGURY_PLUGIN_EUNSUPPORTED;
  }
  if (!child_lock(e, deadline)) {
    snprintf(result->error, sizeof result->error, "busy past the %.0f ms budget", budget);
    return AUGURY_PLUGIN_ETIMEOUT;
  }
  pthread_mutex_lock(&e->host->state_mu);
  e->calls++;
  pthread_mutex_unlock(&e->host->state_mu);
  json_error_t jerr;
  json_t *args = arguments_json ? json_loads(arguments_json, JSON_DECODE_ANY, &jerr) : NULL;
  json_t *msg = json_pack("{s:s,s:s,s:o}", "method", "command", "command", name, "arguments",
                          args ? args : json_array());
  json_t *reply = NULL;
  bool overrun = false;
  char why[256] = "";
  int rc = msg ? child_call(e, msg, deadline, NULL, NULL, &reply, &overrun, why, sizeof why)
               : (snprintf(why, sizeof why, "out of memory for the request"), AUG_ENOMEM);
  json_decref(msg);
  if (rc > 0) {
    json_t *res = json_object_get(reply, "result");
    rc = 0;
    if (res && !json_is_null(res) &&
        !(result->json = json_dumps(res, JSON_COMPACT | JSON_ENCODE_ANY))) {
      snprintf(why, sizeof why, "out of memory for its result");
      rc = AUG_ENOMEM;
    }
    json_decref(reply);
  }
  return child_call_finish(e, rc, overrun, budget, why, sizeof why, result->error,
                           sizeof result->error);
}

static void child_table_init(struct plugin_entry *e) {
  e->child_table = (struct augury_plugin){
      .abi_version = AUGURY_PLUGIN_ABI_VERSION,
      .struct_size = sizeof e->child_table,
      .name = e->name,
      .version = "", /* plugin_host_info reports the child's, which a restart may change */
      .self = e,
      .supports = child_supports,
      .complete = child_complete,
      .command_names = child_command_names,
      .command_execute = child_command,
      .free_json = child_free_json,
  };
  e->table = &e->child_table;
}

/* --- Calling a completion provider --- */

static struct plugin_entry *entry_of_table(const struct plugin_host *host,
                                           const struct augury_plugin *table) {
  for (size_t i = 0; host && i < host->n_entries; i++)
    if (host->entries[i]->table == table) return host->entries[i];
  return NULL;
}

/* A library's completion runs on the engine thread and cannot be stopped at its budget: the host
 * measures it afterwards. A failure or an overrun is counted by entry_failed, as a context call's
 * or a child's; an overrun's answer came late but is complete, so it is kept (and reported). */
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
  bool disabled = entry_failed(e, NULL, overrun, why);
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
