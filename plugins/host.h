/* The plugin host: a registry of plugins (plugins/augury_plugin.h tables), loaded three ways:
 * built in (the local engine, the remote provider: tables compiled into libaugury), in-process
 * (a shared library opened with dlopen) and out-of-process (a child process speaking the
 * line-delimited JSON protocol of plugins/README.md over a pipe, so that its crash cannot take the
 * server down). Every table goes through the same ABI check: another abi_version is refused with
 * both versions in the message.
 * Context gathering runs every enabled context provider at once under one time budget: an
 * in-process provider runs on its own worker thread, a child is written to and polled, and the
 * engine thread waits until all answered or the budget ran out. A provider that fails or overruns
 * is skipped for that request and reported; after failure_limit failures in a row it is disabled
 * with a message. Loading and destroy belong to the loop thread (before and after the engine
 * thread uses the host); gathering and provider calls belong to the engine thread. */
#ifndef AUGURY_PLUGINS_HOST_H
#define AUGURY_PLUGINS_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/error.h"
#include "plugins/augury_plugin.h"

struct plugin_host; /* opaque */

/* Called with messages for the editor's log (level 1 error .. 4 debug); any thread. */
typedef void (*plugin_host_log_fn)(void *user, int level, const char *message);
/* Token count of text with the loaded model: 0 with *n_tokens set, or a negative AUG_E* code
 * (AUG_ENOMEM) when it could not be counted; the host then counts one token per byte, an upper
 * bound, and notes it. Called during plugin_host_gather_context, on the engine thread or on an
 * in-process provider's worker thread. */
typedef int (*plugin_host_count_fn)(void *user, const char *text, size_t len, size_t *n_tokens);

struct plugin_host_params {
  double context_budget_ms; /* all context providers of one request together; > 0 */
  size_t context_tokens;    /* all their pieces together */
  int failure_limit;        /* failures in a row that disable a plugin; > 0 */
  double start_timeout_ms;  /* how long a child may take to say hello */
  /* How long a child may take to answer a command, and a completion whose request has no time
   * budget of its own (a completion's budget is its time_budget_ms); > 0. */
  double call_budget_ms;
  plugin_host_log_fn log; /* (optional) */
  void *log_user;
};

/* 50 ms, 512 tokens, 3 failures, a 2000 ms start timeout, a 1000 ms call budget. */
struct plugin_host_params plugin_host_params_default(void);

int plugin_host_create(const struct plugin_host_params *params, struct plugin_host **out,
                       struct aug_err *err);
/* Calls every plugin's destroy, closes the libraries and ends the children. NULL is a no-op. */
void plugin_host_destroy(struct plugin_host *host);

/* Registers a table (built in, or returned by a library's entry point); origin names where it came
 * from in messages ("built-in", a path). The table must outlive the host. AUG_EUNSUPPORTED for
 * another ABI version or a struct_size too small for the required slots; AUG_EINVAL for a name
 * already registered; a failing init is returned with its message. */
int plugin_host_register(struct plugin_host *host, const struct augury_plugin *table,
                         const char *origin, struct aug_err *err);

/* dlopen's path and registers the table its augury_plugin_entry returns. */
int plugin_host_load_library(struct plugin_host *host, const char *path, struct aug_err *err);

/* Starts argv[0] with argv (NULL-terminated) as an out-of-process plugin and waits for its hello
 * line (start_timeout_ms); refuses another ABI version. A child that offers completion or commands
 * gets a table (plugin_host_completion, plugin_host_command) whose slots speak the protocol, with
 * the failure counting, restarts and disabling of its context calls: complete runs on the engine
 * thread under the request's time budget (call_budget_ms when it has none) and polls cancelled,
 * command_execute under call_budget_ms. */
int plugin_host_spawn(struct plugin_host *host, const char *const *argv, struct aug_err *err);

/* Loads every *.so in dir (in name order) with plugin_host_load_library; a library that fails is
 * reported through the log and skipped. A missing dir is not an error. Returns how many loaded. */
int plugin_host_load_dir(struct plugin_host *host, const char *dir);

/* The default plugin folder: $XDG_DATA_HOME/augury/plugins, else $HOME/.local/share/augury/plugins.
 * Either may be NULL (from getenv). false when neither is set. */
bool plugin_host_default_dir(const char *xdg_data_home, const char *home, char *out, size_t cap);

/* One piece of gathered context (owned by the plugin_context it is in). */
struct plugin_piece {
  char *plugin; /* the provider's name */
  char *name;   /* file path shown before the text, or NULL */
  char *text;
  size_t text_len;
  size_t tokens; /* as counted by the host */
  uint32_t stability;
};

/* The pieces of one request, most stable first, and what went wrong (one line per problem). */
struct plugin_context {
  struct plugin_piece *pieces;
  size_t n_pieces, cap_pieces;
  char notes[1024]; /* "example-slow: over its 50 ms budget (skipped)", ... */
  double ms;        /* time spent gathering */
};

void plugin_context_free(struct plugin_context *ctx); /* frees the pieces; leaves ctx empty */

/* Whether any enabled plugin offers context. */
bool plugin_host_has_context(const struct plugin_host *host);

/* Runs every enabled context provider on req (token_budget and time_budget_ms are set by the host
 * from its params) and fills ctx (empty on entry). count (optional) counts tokens. Never fails:
 * problems go to ctx->notes and to the log. Engine thread. */
void plugin_host_gather_context(struct plugin_host *host, const struct augury_cursor *cursor,
                                size_t window_start, size_t window_end, plugin_host_count_fn count,
                                void *count_user, struct plugin_context *ctx);

/* The registered completion provider called name, or NULL (disabled ones included). */
const struct augury_plugin *plugin_host_completion(const struct plugin_host *host,
                                                   const char *name);

/* Calls provider's complete slot (a table from plugin_host_completion, or one host does not
 * hold, such as the local engine's when host is NULL). For an in-process library the host times
 * the call under the request's time budget (call_budget_ms when it has none): an error return or
 * an overrun is counted as a failure (last_error, overruns) and, after failure_limit in a row,
 * disables the plugin with a log line; a disabled one is not called and its request gets an
 * error ("disabled after N failures in a row", served_by its name). The call cannot be stopped,
 * so an overrun's answer is kept and the overrun logged. A cancelled call is not a failure. The
 * built-in providers are called as they are (their errors are the request's), a child's table
 * counts its own. Returns the slot's code with result->error filled. Engine thread. */
int plugin_host_complete(struct plugin_host *host, const struct augury_plugin *provider,
                         const struct augury_completion_request *req,
                         struct augury_completion_result *result);

/* The plugin that offers command name, or NULL. A command name belongs to the first plugin
 * registered with it: a later plugin listing it loads without it (logged, naming both). */
const struct augury_plugin *plugin_host_command(const struct plugin_host *host, const char *name);

/* The i-th plugin's table when it offers commands and is enabled, else NULL. */
const struct augury_plugin *plugin_host_command_table(const struct plugin_host *host, size_t i);
/* The command names the host accepted from the i-th plugin (NULL-terminated, owned by the host,
 * fixed once registered) when it offers commands and is enabled, else NULL. */
const char *const *plugin_host_command_names(const struct plugin_host *host, size_t i);

struct plugin_info {
  const char *name, *origin; /* borrowed from the host: fixed once registered */
  const char *mode;          /* "built-in", "in-process", "out-of-process" */
  bool context, completion, command;
  bool disabled;
  /* Copies: a child started again may say another version, and the engine thread writes the
   * counters and the last error while the loop thread asks. */
  char version[32];
  uint64_t calls, failures, overruns;
  char last_error[256]; /* "" when none */
};

size_t plugin_host_count(const struct plugin_host *host);
/* Fills info for the i-th plugin (registration order). Any thread, also while the engine thread
 * gathers: a consistent snapshot, good for a status report. */
void plugin_host_info(const struct plugin_host *host, size_t i, struct plugin_info *info);

#endif
