/* Plugins as child processes: a request is one JSON line, its answer one line with the same id
 * (a late one is dropped by id at the next request). A child that exits is a failure, restarted
 * at the next request until the failure limit; its hello is read at later requests (up to
 * start_timeout_ms) so a restart costs no completion its budget; a completion or a command the
 * child answers itself waits for it within its own. One exchange at a time per child (io_mu). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
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
#include "plugins/host_internal.h"

/* A child's reply line may not be longer (bigger context is over any token budget anyway). */
#define HOST_MAX_LINE (4u << 20)

void host_child_stop(struct plugin_entry *e) {
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
  else if (first && host_name_taken(e->host, name))
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
  struct plugin_entry *e = host_entry_new(host, MODE_CHILD, argv[0], err);
  if (!e) return err ? err->code : AUG_ENOMEM;
  for (int i = 0; argv[i]; i++) {
    if (i == HOST_MAX_ARGS) {
      host_entry_free(e);
      return aug_err_set(err, AUG_ERANGE, "plugin %s: more than %d arguments", argv[0],
                         HOST_MAX_ARGS);
    }
    if (!(e->argv[i] = aug_strndup(argv[i], strlen(argv[i])))) {
      host_entry_free(e);
      return aug_err_set(err, AUG_ENOMEM, "plugins: out of memory");
    }
  }
  int rc = child_start(e, err);
  if (rc == 0) rc = child_hello(e, err);
  if (rc) {
    host_child_stop(e);
    host_entry_free(e);
    return rc;
  }
  host_refuse_duplicate_commands(host, e);
  child_table_init(e);
  host->entries[host->n_entries++] = e;
  return 0;
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
      host_child_stop(e);
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
      host_child_stop(e);
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
    host_child_stop(e);
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
int host_child_dispatch(struct plugin_entry *e, const struct augury_cursor *cursor,
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
      host_child_stop(e);
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
    size_t tokens = count ? host_count_or_bound(count, count_user, t, len, &e->count_rc)
                          : host_estimate_tokens(len);
    if (e->child_list.tokens + tokens > budget) break; /* over its budget: the rest is dropped */
    const char *name = json_string_value(json_object_get(p, "name"));
    json_int_t st = json_integer_value(json_object_get(p, "stability"));
    if (!host_list_add(&e->child_list, e->name, name, t, len, tokens,
                       (uint32_t)(st < 0 ? 0 : st))) {
      snprintf(why, why_cap, "out of memory for its pieces");
      return AUG_ENOMEM;
    }
  }
  return 0;
}

/* Reads what a child sent for the current request: stale lines are dropped, the current one (or
 * an exit) ends the wait. Returns whether the child is still to be waited for. */
bool host_child_collect(struct plugin_entry *e, struct plugin_context *ctx, size_t tokens,
                        plugin_host_count_fn count, void *count_user) {
  json_t *reply = NULL;
  char why[256] = "";
  int rc = child_next_reply(e, &reply, why, sizeof why);
  if (rc == 0) return true;
  if (rc > 0) {
    rc = child_pieces(e, reply, tokens, count, count_user, why, sizeof why);
    json_decref(reply);
    host_note_count_failure(e, ctx);
  }
  if (rc < 0) {
    host_list_free(&e->child_list);
    host_entry_failed(e, ctx, false, why);
  } else {
    e->failures_in_row = 0;
    host_take_pieces(ctx, &e->child_list);
  }
  return false;
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
  if (host_entry_failed(e, NULL, overrun, why))
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

/* The start both child calls share: refused while the plugin is disabled or busy (another call
 * holds it past the deadline; busy says with what, after "busy "), else counted in its calls and
 * holding it. 0 or the refusal's AUGURY_PLUGIN_ code, with error[0..cap) saying why. */
static int child_call_begin(struct plugin_entry *e, double deadline, const char *busy, char *error,
                            size_t cap) {
  if (atomic_load(&e->disabled)) {
    snprintf(error, cap, "disabled after %d failures in a row", e->host->params.failure_limit);
    return AUGURY_PLUGIN_EUNSUPPORTED;
  }
  if (!child_lock(e, deadline)) {
    snprintf(error, cap, "busy %s", busy);
    return AUGURY_PLUGIN_ETIMEOUT;
  }
  pthread_mutex_lock(&e->host->state_mu);
  e->calls++;
  pthread_mutex_unlock(&e->host->state_mu);
  return 0;
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
  int begun = child_call_begin(e, deadline, "with a command past the budget", result->error,
                               sizeof result->error);
  if (begun) return begun;
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
  char busy[64];
  snprintf(busy, sizeof busy, "past the %.0f ms budget", budget);
  int begun = child_call_begin(e, deadline, busy, result->error, sizeof result->error);
  if (begun) return begun;
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
