/* The server's shared state and helpers, for the modules that handle its methods (server.c:
 * lifecycle, documents, settings, model load; completion.c; explain.c; progress.c). Everything
 * here belongs to the loop thread except where a field says "engine thread". */
#ifndef AUGURY_LSP_SERVER_INTERNAL_H
#define AUGURY_LSP_SERVER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>
#include <uv.h>

#include "engine/scheduler.h"
#include "plugins/completion_cache.h"
#include "lsp/config.h"
#include "lsp/documents.h"
#include "plugins/generate.h"
#include "plugins/host.h"
#include "plugins/pipeline.h"
#include "lsp/jsonrpc.h"
#include "lsp/server.h"

struct server;
struct progress;
struct context_ring;
struct context_syntax;

enum server_phase { PHASE_UNINITIALIZED, PHASE_RUNNING, PHASE_SHUTDOWN };
enum model_state { MODEL_NONE, MODEL_LOADING, MODEL_READY, MODEL_FAILED };

/* A server-to-client request waiting for its reply (matched by id). */
typedef void (*server_reply_fn)(struct server *s, json_t *result, json_t *error, void *user);
struct outgoing_request {
  struct outgoing_request *next;
  int64_t id;
  server_reply_fn on_reply;
  void (*drop)(void *user); /* (optional) frees user when the reply never comes */
  void *user;
};

/* REQUEST_SPECULATIVE: a completion the server starts on its own (after an edit, for the state
 * after accepting a suggestion); it gets no reply, its answer goes to the completion cache, and
 * client requests for a state it covers wait for it instead of starting their own. */
/* REQUEST_ALTERNATIVE: the same, for the state of an explicit invocation just answered: one more
 * suggestion whose first token differs from the answers so far (server.alternatives). */
enum request_kind {
  REQUEST_INLINE_COMPLETION,
  REQUEST_COMPLETION,
  REQUEST_EXPLAIN,
  REQUEST_SPECULATIVE,
  REQUEST_ALTERNATIVE
};

/* Alternatives tried for one state (one that comes out as the start of an earlier suggestion, or
 * empty, after clean-up takes a try without adding a suggestion). */
#define ALTERNATIVE_MAX_TRIES 4

/* The suggestions for the last explicitly invoked state: its window and up to
 * CONFIG_MAX_ALTERNATIVES texts, the first the answer it got. Loop thread. */
struct alternative_set {
  char *uri, *text; /* NULL: none */
  size_t prefix_len, suffix_len, cursor;
  char *items[CONFIG_MAX_ALTERNATIVES];
  size_t lens[CONFIG_MAX_ALTERNATIVES];
  size_t n;
  size_t tries; /* alternatives run so far */
};

/* A client request being served asynchronously: it stays on the server's list until it got its one
 * reply. The job runs on the engine thread; every other field is the loop thread's. */
struct active_request {
  struct active_request *prev, *next;
  struct server *server;
  enum request_kind kind;
  json_t *id;
  char id_text[64]; /* the id as JSON, for the engine thread's prompt log */
  char *uri;
  struct lsp_position position;   /* completion: the cursor as the client sent it */
  size_t cursor;                  /* completion: the cursor's byte offset in the document */
  struct active_request *adopted; /* the speculative request this one waits for, or NULL */
  int reply_code;                 /* non-zero: answer with this error (-32800, -32801) */
  bool answered;                  /* the error reply went out while the job was still running */
  bool submitted;                 /* the job is on the engine thread's queue */
  double due_ms;                  /* debounce: submit at this loop time; 0 = submitted */
  double load_wait_until_ms;      /* > 0: waiting for the model to load until this loop time */
  struct scheduler_job job;
  /* Inputs (owned, read by the engine thread while the job runs). */
  char *text; /* prefix window + suffix window, or the explain selection */
  size_t prefix_len, suffix_len;
  char *repo_name, *path, *language;
  struct config settings; /* values copied at request time (strings not used) */
  char *doc_text;         /* the whole document, for context providers (NULL without any) */
  size_t doc_len;
  const char *provider;          /* the completion provider's name (static or the host's) */
  struct pipeline_result result; /* engine thread: context pieces, notes, who served it */
  /* Outputs (written by the engine thread, read after done). */
  int rc;
  struct aug_err err;
  struct generation_stats stats;
  size_t out_len;
  size_t out_cap;
  char *out;
  /* Explain streaming: the engine thread publishes out[0..published) under this lock. A
   * speculative completion publishes the text generated so far in partial[0..partial_len). */
  pthread_mutex_t lock;
  size_t published;
  char *partial;
  size_t partial_len;
  bool writing; /* speculative: its prompt is evaluated and it is decoding (under lock) */
  /* Speculative: the time budget of the request that adopted it last, as a time on aug_now_ms's
   * clock (0 = none yet); written by the loop thread, read per token by the engine thread. */
  _Atomic double budget_until_ms;
  /* Speculative: when its prompt is expected to be resident (0 = not known yet), on aug_now_ms's
   * clock, and how long a waiting request's own job would take instead (completion_request
   * .on_prompt_plan); written by the engine thread. */
  _Atomic double prompt_ready_at_ms, own_prompt_ms;
  /* Speculative: its answer at that budget (completion_request.on_answer), from the engine thread
   * to the loop thread's speculation_answered under lock, while it goes on writing; answered_early
   * (loop thread) once one reached the cache. */
  char *answer;
  size_t answer_len;
  bool answer_ready;
  struct generation_stats answer_stats;
  bool answered_early;
  bool edit_started; /* speculative: started by an edit, not after an answer (speculate) */
  bool invoked;      /* completion: an explicit invocation (triggerKind 1 or none), not typing */
  /* Alternative: the suggestions it must differ from (owned copies, completion_request.avoid). */
  char *avoid[CONFIG_MAX_ALTERNATIVES];
  size_t avoid_len[CONFIG_MAX_ALTERNATIVES];
  size_t n_avoid;
  bool gpu_fault; /* the job met a GPU fault the engine rebuilt itself after (err says it) */
  struct progress *progress;
};

struct server {
  uv_loop_t loop;
  struct server_options options;
  /* stdin: a pipe/tty stream, or a file read with uv_fs_read */
  union {
    uv_pipe_t pipe;
    uv_tty_t tty;
  } in;
  bool in_is_stream, in_open, in_file;
  uv_fs_t in_read;
  char in_buf[65536];
  /* stdout */
  union {
    uv_pipe_t pipe;
    uv_tty_t tty;
  } out;
  bool out_is_stream, out_open;
  uv_shutdown_t out_shutdown;
  size_t writes_pending;
  uv_timer_t parent_timer, debounce_timer;
  bool timers_open;

  struct jsonrpc_framer *framer;
  enum server_phase phase;
  bool stopping;
  int exit_code;
  enum position_encoding encoding;
  bool client_work_done_progress; /* capabilities.window.workDoneProgress */
  bool client_show_message_request;
  char *root_path; /* workspace root (a path, not a URI), or NULL */
  int64_t parent_pid;

  FILE *prompt_log; /* written by the engine thread only (opened at initialize) */
  struct documents *docs;
  struct completion_cache *completions; /* answered states, for repeated and typed-through asks */
  struct config config;
  struct config_env env;

  struct scheduler *scheduler;
  struct generator *generator; /* engine thread: created and used only inside jobs */
  enum model_state model_state;
  char model_path[4096];
  const char *model_found_by;
  char model_description[256];
  char model_error[AUG_ERR_MSG_SIZE];
  double load_ms;
  bool load_in_flight;
  bool reload_wanted; /* settings changed the model while a load was running */
  struct scheduler_job load_job;
  struct aug_err load_err;
  int load_rc;
  struct progress *load_progress;
  struct engine_params load_params; /* read by the load job; model_path points at model_path */
  char load_gpu_options[256];       /* load_params.gpu_options: the server's copy, as model_path */
  struct engine_measurements measured; /* load_params.measurements: written by the load job */
  double load_started_ms;
  bool model_has_fim;

  pthread_t loop_thread;
  /* Made at initialize; used by the engine thread in jobs. A settings change makes it again
   * (server_plugins_reload) while the engine thread is parked in a job, so a job never sees it
   * change under it. */
  struct plugin_host *plugins;
  /* The syntax check's document trees (plugins/syntax_filter.h): made with the server, used only
   * by the engine thread inside completion jobs, destroyed after that thread stopped. */
  struct syntax_filter *syntax;
  struct provider_remote *remote; /* when the "remote" setting is given */
  /* The workspace's definitions (plugins/workspace_index.h): made at initialize when there is a
   * root, lent to the syntax context, destroyed after the plugin host. Its own worker thread scans
   * and re-indexes; the loop thread queues didOpen/didSave/didClose and reads its stats. */
  struct workspace_index *index;
  /* The ring of recently edited and viewed chunks (plugins/context_ring.h): made at initialize
   * unless ringChunks is 0, owned by the plugin host once registered (freed with it). The loop
   * thread tells it where the user is (didOpen, didChange, completion requests); the host's
   * worker reads it. */
  struct context_ring *ring;
  /* The built-in syntax context, borrowed like the ring (owned by the plugin host): the loop
   * thread has it compile a language's queries when a document of it is opened. */
  struct context_syntax *syntax_context;
  json_t *served_by; /* provider name -> completions it served */
  /* The provider names server_plugins_provider has returned (keys; values null): a request keeps
   * its provider's name past a reload that frees the plugin that named it. */
  json_t *provider_names;
  int plugin_reloads; /* server_plugins_reload jobs not done yet */

  struct active_request *active; /* doubly linked */
  struct outgoing_request *outgoing;
  int64_t next_outgoing_id;
  int64_t next_progress_token;

  /* Totals for augury.status. */
  uint64_t n_completions, n_cancelled, n_superseded, n_empty, n_cache_hits, n_load_waits;
  uint64_t n_speculative, n_adopted; /* speculations started; requests served by one */
  uint64_t n_abandoned; /* requests that stopped waiting for one still evaluating its prompt */
  struct alternative_set alternatives;
  uint64_t n_alternatives, n_alternative_answers; /* computed; answers that carried them */
  uint64_t n_gpu_faults; /* jobs failed by a GPU fault, the engine placed again after it */
  char gpu_fault[512];   /* the last one's message: the fault and the placement since */
  uint64_t tokens_reused, tokens_evaluated, tokens_generated;
  double last_total_ms;
  /* Syntax checks of answers (speculations included), counted on the loop thread when a job is
   * done: by outcome, their cost, and why the last skipped one was not judged. */
  uint64_t n_syntax_kept, n_syntax_trimmed, n_syntax_dropped, n_syntax_skipped;
  double syntax_ms; /* wall-clock ms, update and check together: the latency the checks added */
  const char *syntax_last_skip; /* a static string, or NULL */
};

/* Sending (all steal msg/result/params). A failed send is logged to nothing: the peer is gone. */
void server_send(struct server *s, json_t *msg);
void server_reply(struct server *s, json_t *id, json_t *result);
void server_reply_error(struct server *s, json_t *id, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void server_notify(struct server *s, const char *method, json_t *params);
/* Sends a request to the client; on_reply runs when its reply arrives. */
void server_request(struct server *s, const char *method, json_t *params, server_reply_fn on_reply,
                    void (*drop)(void *user), void *user);
/* window/logMessage (type 1 error .. 4 log) and window/showMessage. */
void server_log(struct server *s, int type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void server_show(struct server *s, int type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
double server_now_ms(struct server *s);

/* Active requests. */
struct active_request *server_request_new(struct server *s, enum request_kind kind, json_t *id);
void server_request_free(struct active_request *r); /* unlinks */
/* Answers r with reply_code (when set) or the given result, then frees r. result is stolen. */
void server_request_finish(struct active_request *r, json_t *result);
/* Marks r to be answered with code and cancels it. A completion is answered now even when its job
 * is running: the job stops at its next cancellation point (a prompt chunk kept for the next
 * request may take a while on a slow machine) and nobody need wait for that. An explain is
 * answered when its job returns, after its $/progress end. */
void server_request_abort(struct active_request *r, int code);
void server_arm_debounce(struct server *s);

/* Reads a Position object; false when it is not {line: int, character: int}. */
bool server_parse_position(const json_t *v, struct lsp_position *out);
bool server_parse_range(const json_t *v, struct lsp_position *start, struct lsp_position *end);

/* completion.c */
void completion_handle(struct server *s, json_t *id, json_t *params, bool inline_format);
void completion_submit_due(struct server *s);
/* The model finished loading (or failed): serves or answers the requests that waited for it. */
void completion_model_settled(struct server *s);
/* Cancels (with code) the client's completions on uri, e.g. when a newer one arrives. */
void completion_abort_for_uri(struct server *s, const char *uri, int code);
/* uri's text changed and the cursor is probably at byte offset cursor (SIZE_MAX: unknown):
 * outdated completions are answered ContentModified, a speculation the user is typing along
 * survives, and otherwise a new one starts for the new state. */
void completion_document_changed(struct server *s, const char *uri, size_t cursor);
/* Stops every speculation (uri NULL) or those on uri: the engine is wanted for something else.
 * Alternatives being computed stop too. */
void completion_cancel_speculation(struct server *s, const char *uri);
/* Forgets the alternatives kept for uri (NULL: whatever they are for). */
void completion_forget_alternatives(struct server *s, const char *uri);

/* server_plugins.c */
void server_plugins_start(struct server *s); /* at initialize, after the settings */
void server_plugins_stop(struct server *s);  /* after the engine thread stopped */
/* The plugin settings changed (workspace/didChangeConfiguration): the host, the remote provider
 * and the ring are made again from them once the engine thread is parked between jobs. */
void server_plugins_reload(struct server *s);
/* Whether the settings the host is made from differ between a and b. */
bool server_plugins_settings_differ(const struct config *a, const struct config *b);
/* The provider completions go to: the "provider" setting when it is registered, else "local"
 * (a string of the host's that lives as long as it does). */
const char *server_plugins_provider(struct server *s);
json_t *server_plugins_status(struct server *s); /* new reference: an array */
/* The workspace index's stats for augury.status ({"enabled": false} without one). New reference. */
json_t *server_plugins_index_status(struct server *s);
/* The ring's stats for augury.status ({"enabled": false} without one). New reference. */
json_t *server_plugins_ring_status(struct server *s);
/* Tells the ring the user is at line `line` of the open document uri (nothing when it is not
 * open or there is no ring). */
void server_plugins_ring_visit(struct server *s, const char *uri, int64_t line);
/* A document was opened: the syntax context compiles its language's queries now (off the loop
 * thread), so that its first completion has context. */
void server_plugins_document_opened(struct server *s, const char *uri, const char *language_id);
/* An edit of uri replaced lines start..end with text holding new_lines line breaks. */
void server_plugins_ring_edit(struct server *s, const char *uri, int64_t start, int64_t end,
                              size_t new_lines);
/* file:///a/b%20c -> /a/b c (NULL for other schemes or out of memory; aug_free it). */
char *server_uri_to_path(const char *uri);
/* Appends the plugins' command names (for executeCommandProvider.commands). */
void server_plugins_add_commands(struct server *s, json_t *commands);
/* Runs a plugin's command and replies; false when no plugin offers name. */
bool server_plugins_command(struct server *s, json_t *id, const char *name, json_t *args);

/* explain.c */
void explain_handle(struct server *s, json_t *id, json_t *arguments, json_t *work_done_token);

/* progress.c: one work-done progress (LSP 3.18 "Work Done Progress"). token: the client's
 * workDoneToken (borrowed) or NULL to create one with window/workDoneProgress/create when the
 * client supports it. Returns NULL (all calls accept NULL) when there is nowhere to report. */
struct progress *progress_begin(struct server *s, const json_t *token, const char *title,
                                const char *message);
/* message is copied; percentage < 0 leaves it out. */
void progress_report(struct progress *p, const char *message, size_t message_len, int percentage);
/* Sends end (after begin, once the token exists) and frees p. */
void progress_end(struct progress *p, const char *message);

#endif
