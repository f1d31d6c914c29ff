/* The plugin host's private state (see host.h), shared by host.c (registration, in-process
 * workers, gathering, provider calls, lookups) and host_child.c (plugins run as child processes).
 * Which thread owns a field is written next to it. Lock order: an entry's mu, then
 * host->finished_mu; state_mu is never held while taking another lock. */
#ifndef AUGURY_PLUGINS_HOST_INTERNAL_H
#define AUGURY_PLUGINS_HOST_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "plugins/host.h"

#define HOST_MAX_PLUGINS 32
#define HOST_MAX_ARGS 16

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

/* host.c: the helpers both halves use (their comments are on the definitions). */
void host_list_free(struct piece_list *l);
bool host_list_add(struct piece_list *l, const char *plugin, const char *name, const char *text,
                   size_t len, size_t tokens, uint32_t stability);
size_t host_estimate_tokens(size_t len);
size_t host_count_or_bound(plugin_host_count_fn count, void *user, const char *text, size_t len,
                           int *first_rc);
struct plugin_entry *host_entry_new(struct plugin_host *host, enum plugin_mode mode,
                                    const char *origin, struct aug_err *err);
void host_entry_free(struct plugin_entry *e);
bool host_name_taken(const struct plugin_host *host, const char *name);
void host_refuse_duplicate_commands(struct plugin_host *host, struct plugin_entry *e);
void host_note_count_failure(const struct plugin_entry *e, struct plugin_context *ctx);
bool host_entry_failed(struct plugin_entry *e, struct plugin_context *ctx, bool overrun,
                       const char *why);
void host_take_pieces(struct plugin_context *ctx, struct piece_list *l);

/* host_child.c: what registration, gathering and destroy do to a child. */
void host_child_stop(struct plugin_entry *e);
int host_child_dispatch(struct plugin_entry *e, const struct augury_cursor *cursor,
                        size_t window_start, size_t window_end, size_t budget,
                        double time_budget_ms, struct aug_err *err);
bool host_child_collect(struct plugin_entry *e, struct plugin_context *ctx, size_t tokens,
                        plugin_host_count_fn count, void *count_user);

#endif
