/* The server's side of the plugin host: the host is made at initialize from the settings (the
 * built-in providers, the plugin folder, the "plugins" list, the remote provider when configured)
 * and made again when they change, its plugins appear in augury.status, their commands go through
 * workspace/executeCommand, and it is destroyed after the engine thread stopped. Loop thread. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/alloc.h"
#include "lsp/server_internal.h"
#include "plugins/context_ring.h"
#include "plugins/context_syntax.h"
#include "plugins/provider_remote.h"
#include "plugins/workspace_index.h"

/* Plugin messages: to the editor from the loop thread, to stderr (the editor's log of the
 * server's output) from any other thread, since only the loop thread may write to the client. */
static void plugin_log(void *user, int level, const char *message) {
  struct server *s = user;
  if (pthread_equal(pthread_self(), s->loop_thread))
    server_log(s, level, "%s", message);
  else
    fprintf(stderr, "%s\n", message);
}

/* The tree-sitter context (imports, enclosing scopes, definitions) is built in and on;
 * "syntaxContext": false, or "contextTokens": 0 (no tokens for any context), leaves it
 * unregistered, so that it takes no share of the budget and, when it is the only context
 * provider, a completion does not wait for the host to gather context at all. The host owns it
 * once registered (its destroy slot frees it). */
static struct context_syntax *register_syntax_context(struct server *s, struct plugin_host *host) {
  if (s->config.context_tokens <= 0 || !s->config.syntax_context) return NULL;
  struct context_syntax *cs = NULL;
  struct aug_err err = {0};
  struct context_syntax_params p = context_syntax_params_default();
  p.index = s->index;
  if (context_syntax_create(&p, &cs, &err) == 0 &&
      plugin_host_register(host, context_syntax_plugin(cs), "built-in", &err) == 0)
    return cs;
  context_syntax_destroy(cs);
  server_log(s, 1, "augury: syntax context: %s", err.msg);
  return NULL;
}

/* The ring of recently edited and viewed chunks is built in, off by default ("ringChunks" 0: its
 * latency cost, plugins/README.md); 0, or "contextTokens": 0, leaves it unregistered. The host owns
 * it once registered; s->ring borrows it for the loop thread's visits until server_plugins_stop. */
static struct context_ring *register_ring(struct server *s, struct plugin_host *host) {
  if (s->config.context_tokens <= 0 || s->config.ring_chunks <= 0) return NULL;
  struct context_ring *cr = NULL;
  struct aug_err err = {0};
  struct context_ring_params p = context_ring_params_default();
  p.max_chunks = (size_t)s->config.ring_chunks;
  p.chunk_lines = (uint32_t)s->config.ring_chunk_lines;
  if (context_ring_create(&p, &cr, &err) == 0 &&
      plugin_host_register(host, context_ring_plugin(cr), "built-in", &err) == 0)
    return cr;
  context_ring_destroy(cr);
  server_log(s, 1, "augury: recent context: %s", err.msg);
  return NULL;
}

/* The name a chunk of uri gets in the prompt, as the cursor's file gets it (completion.c): its
 * path inside the workspace root, or its file name outside one. */
static char *ring_path(const struct server *s, const char *uri) {
  char *path = server_uri_to_path(uri);
  if (!path) return aug_strndup(uri, strlen(uri)); /* another scheme: the uri names it */
  const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
  size_t root_len = s->root_path ? strlen(s->root_path) : 0;
  while (root_len > 1 && s->root_path[root_len - 1] == '/')
    root_len--;
  if (root_len && !strncmp(path, s->root_path, root_len) && path[root_len] == '/')
    name = path + root_len + 1;
  char *out = aug_strndup(name, strlen(name));
  aug_free(path);
  return out;
}

void server_plugins_document_opened(struct server *s, const char *uri, const char *language_id) {
  context_syntax_prepare(s->syntax_context, language_id, uri);
}

void server_plugins_ring_visit(struct server *s, const char *uri, int64_t line) {
  if (!s->ring || !uri || line < 0) return;
  struct document *doc = documents_find(s->docs, uri);
  if (!doc) return;
  char *path = ring_path(s, uri);
  if (!path) return;
  struct context_ring_place place = {uri,
                                     path,
                                     doc->text.data,
                                     doc->text.len,
                                     doc->text.line_starts,
                                     doc->text.n_lines,
                                     line > UINT32_MAX ? UINT32_MAX : (uint32_t)line};
  struct aug_err err = {0};
  if (context_ring_visit(s->ring, &place, &err)) server_log(s, 2, "augury: %s", err.msg);
  aug_free(path);
}

void server_plugins_ring_edit(struct server *s, const char *uri, int64_t start, int64_t end,
                              size_t new_lines) {
  if (!s->ring || start < 0 || end < start || end > UINT32_MAX) return;
  context_ring_edit(s->ring, uri, (uint32_t)start, (uint32_t)end,
                    new_lines > UINT32_MAX ? UINT32_MAX : (uint32_t)new_lines);
}

json_t *server_plugins_ring_status(struct server *s) {
  if (!s->ring) return json_pack("{s:b}", "enabled", 0);
  struct context_ring_stats st;
  context_ring_stats(s->ring, &st);
  return json_pack("{s:b,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "enabled", 1, "chunks",
                   (json_int_t)st.chunks, "bytes", (json_int_t)st.bytes, "maxChunks",
                   (json_int_t)st.max_chunks, "chunkLines", (json_int_t)st.chunk_lines, "added",
                   (json_int_t)st.added, "replaced", (json_int_t)st.replaced, "evicted",
                   (json_int_t)st.evicted);
}

/* Whether two paths name the same folder, trailing '/' aside. */
static bool same_dir(const char *a, const char *b) {
  size_t n = strlen(a), m = strlen(b);
  while (n > 1 && a[n - 1] == '/')
    n--;
  while (m > 1 && b[m - 1] == '/')
    m--;
  return n == m && !strncmp(a, b, n);
}

/* The workspace index feeds only the syntax context: it is made (and its scan started) when that
 * will be registered, there is a root and "workspaceIndex" is not false. A root of "/" or the home
 * folder (an editor started outside any project) gets none: its first 5000 files would be an
 * arbitrary sample, not a project. The settings are read once: a later change takes effect at
 * the next start. */
static void start_index(struct server *s) {
  if (!s->root_path || !s->config.workspace_index || s->config.context_tokens <= 0 ||
      !s->config.syntax_context)
    return;
  if (same_dir(s->root_path, "/") || (s->env.home && same_dir(s->root_path, s->env.home))) {
    server_log(s, 3, "augury: workspace index: not made for the root %s (/ or home)", s->root_path);
    return;
  }
  struct workspace_index_params p = workspace_index_params_default();
  p.max_bytes = (size_t)s->config.workspace_index_mib << 20;
  struct aug_err err = {0};
  if (workspace_index_create(s->root_path, &p, &s->index, &err) == 0 &&
      workspace_index_start(s->index, &err) == 0)
    return;
  workspace_index_destroy(s->index);
  s->index = NULL;
  server_log(s, 1, "augury: workspace index: %s", err.msg);
}

json_t *server_plugins_index_status(struct server *s) {
  if (!s->index) return json_pack("{s:b}", "enabled", 0);
  struct workspace_index_stats st;
  workspace_index_stats(s->index, &st);
  return json_pack(
      "{s:b,s:b,s:b,s:I,s:I,s:I,s:I,s:f,s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}}", "enabled", 1,
      "scanning", st.scanning, "truncated", st.truncated, "files", (json_int_t)st.files,
      "definitions", (json_int_t)st.definitions, "bytes", (json_int_t)st.bytes, "pending",
      (json_int_t)st.pending, "scanMs", st.scan_ms, "skipped", "hidden",
      (json_int_t)st.skipped_hidden, "ignored", (json_int_t)st.skipped_ignored, "symlink",
      (json_int_t)st.skipped_symlink, "outsideRoot", (json_int_t)st.skipped_outside_root,
      "tooLarge", (json_int_t)st.skipped_too_large, "tooMany", (json_int_t)st.skipped_too_many,
      "budget", (json_int_t)st.skipped_budget, "unreadable", (json_int_t)st.skipped_unreadable,
      "noGrammar", (json_int_t)st.skipped_no_grammar);
}

static void load_listed(struct server *s, struct plugin_host *host, const json_t *list) {
  size_t i;
  json_t *v;
  json_array_foreach(list, i, v) {
    struct aug_err err = {0};
    int rc = 0;
    if (json_is_string(v)) {
      rc = plugin_host_load_library(host, json_string_value(v), &err);
    } else if (json_is_array(json_object_get(v, "command"))) {
      json_t *cmd = json_object_get(v, "command");
      const char *argv[17] = {NULL};
      size_t n = json_array_size(cmd) < 16 ? json_array_size(cmd) : 16;
      for (size_t j = 0; j < n; j++)
        argv[j] = json_string_value(json_array_get(cmd, j));
      bool ok = n > 0;
      for (size_t j = 0; j < n; j++)
        ok = ok && argv[j];
      rc = ok ? plugin_host_spawn(host, argv, &err)
              : aug_err_set(&err, AUG_EINVAL, "plugins[%zu]: command must be strings", i);
    } else {
      rc = aug_err_set(&err, AUG_EINVAL,
                       "plugins[%zu]: a library path or {\"command\": [...]} expected", i);
    }
    if (rc) server_log(s, 1, "augury: %s (not loaded)", err.msg);
  }
}

/* What the settings make: the host and the two built-ins the server also talks to. */
struct plugins_made {
  struct plugin_host *host;
  struct provider_remote *remote;
  struct context_ring *ring;             /* owned by host */
  struct context_syntax *syntax_context; /* owned by host */
};

/* Makes the host from the settings; the workspace index (s->index) is lent to the syntax context.
 * A part that fails is logged and left out; no host at all when the host itself fails. */
static struct plugins_made plugins_make(struct server *s) {
  struct plugins_made m = {0};
  struct plugin_host_params p = plugin_host_params_default();
  p.context_budget_ms = s->config.plugin_budget_ms;
  p.context_tokens = (size_t)s->config.context_tokens;
  p.failure_limit = (int)s->config.plugin_failure_limit;
  p.log = plugin_log;
  p.log_user = s;
  struct aug_err err = {0};
  if (plugin_host_create(&p, &m.host, &err) ||
      plugin_host_register(m.host, provider_local_plugin(), "built-in", &err)) {
    server_log(s, 1, "augury: plugins: %s", err.msg);
    plugin_host_destroy(m.host);
    m.host = NULL;
    return m;
  }
  m.syntax_context = register_syntax_context(s, m.host);
  m.ring = register_ring(s, m.host);
  if (s->config.remote) {
    if (provider_remote_create(s->config.remote, getenv, &m.remote, &err) ||
        plugin_host_register(m.host, provider_remote_plugin(m.remote), "built-in", &err))
      server_log(s, 1, "augury: remote provider: %s", err.msg);
  }
  char dir[4096];
  if (plugin_host_default_dir(getenv("XDG_DATA_HOME"), s->env.home, dir, sizeof dir))
    plugin_host_load_dir(m.host, dir);
  if (s->config.plugins) load_listed(s, m.host, s->config.plugins);
  const char *provider = s->config.provider ? s->config.provider : PIPELINE_LOCAL_PROVIDER;
  if (!plugin_host_completion(m.host, provider))
    server_log(s, 1, "augury: provider '%s' is not available: completions use the local model",
               provider);
  return m;
}

void server_plugins_start(struct server *s) {
  start_index(s);
  struct plugins_made m = plugins_make(s);
  s->plugins = m.host;
  s->remote = m.remote;
  s->ring = m.ring;
  s->syntax_context = m.syntax_context;
}

static bool same_json(const json_t *a, const json_t *b) {
  return (!a && !b) || (a && b && json_equal((json_t *)a, (json_t *)b));
}

bool server_plugins_settings_differ(const struct config *a, const struct config *b) {
  return !same_json(a->plugins, b->plugins) || !same_json(a->remote, b->remote) ||
         a->plugin_budget_ms != b->plugin_budget_ms || a->context_tokens != b->context_tokens ||
         a->plugin_failure_limit != b->plugin_failure_limit ||
         a->syntax_context != b->syntax_context || a->ring_chunks != b->ring_chunks ||
         a->ring_chunk_lines != b->ring_chunk_lines;
}

/* A reload waits for the engine thread between jobs: a job parks it (run), and the loop thread
 * swaps the host while it is parked, so no job sees the host change. It takes two progress
 * notes: the scheduler delivers a batch's progress before its finished jobs, and the jobs that
 * ran before the reload may still hold strings of the old host (the name of who served them)
 * for their done callbacks; the second note comes in a later batch, after those. */
struct plugins_reload {
  struct scheduler_job job;
  struct server *server;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int stage; /* 0: parked, first note sent; 1: second note sent; 2: swapped (or given up) */
};

/* Engine thread: waits for stage to pass `from`, or for the job's cancel (the server stops). */
static bool reload_wait(struct plugins_reload *r, int from) {
  while (r->stage == from) {
    if (atomic_load(&r->job.cancel)) return false;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 10 * 1000000L;
    if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&r->cv, &r->mu, &until);
  }
  return true;
}

static void reload_run(struct scheduler_job *job) {
  struct plugins_reload *r = job->data;
  pthread_mutex_lock(&r->mu);
  scheduler_job_progress(job);
  if (reload_wait(r, 0)) {
    scheduler_job_progress(job);
    reload_wait(r, 1);
  }
  pthread_mutex_unlock(&r->mu);
}

/* Loop thread: the old host goes first (a library in both lists is one table: its init may not
 * run twice), then the new one is made from the current settings. */
static void reload_swap(struct server *s) {
  plugin_host_destroy(s->plugins);
  s->plugins = NULL;
  s->ring = NULL; /* the host freed it */
  s->syntax_context = NULL;
  provider_remote_destroy(s->remote);
  s->remote = NULL;
  struct plugins_made m = plugins_make(s);
  s->plugins = m.host;
  s->remote = m.remote;
  s->ring = m.ring;
  s->syntax_context = m.syntax_context;
  /* Answers of the old provider, or made with the old context, are not what the new settings
   * would answer: a cache hit would show them and name the new provider as their author. */
  if (s->completions) completion_cache_forget(s->completions, NULL);
  completion_forget_alternatives(s, NULL);
  server_log(s, 3, "augury: plugins reloaded for the new settings (%zu registered)",
             plugin_host_count(s->plugins));
}

static void reload_progress(struct scheduler_job *job) {
  struct plugins_reload *r = job->data;
  pthread_mutex_lock(&r->mu);
  int stage = r->stage;
  pthread_mutex_unlock(&r->mu);
  if (stage == 1 && !r->server->stopping) reload_swap(r->server);
  pthread_mutex_lock(&r->mu);
  r->stage = stage + 1;
  pthread_cond_broadcast(&r->cv);
  pthread_mutex_unlock(&r->mu);
}

static void reload_done(struct scheduler_job *job) {
  struct plugins_reload *r = job->data;
  r->server->plugin_reloads--;
  pthread_mutex_destroy(&r->mu);
  pthread_cond_destroy(&r->cv);
  aug_free(r);
}

void server_plugins_reload(struct server *s) {
  struct plugins_reload *r = aug_calloc(1, sizeof *r);
  if (!r) {
    server_log(s, 1, "augury: plugins: out of memory: the new plugin settings are not applied");
    return;
  }
  r->server = s;
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
  scheduler_job_init(&r->job, reload_run, reload_done, r);
  r->job.progress = reload_progress;
  s->plugin_reloads++;
  scheduler_submit(s->scheduler, &r->job);
}

void server_plugins_add_commands(struct server *s, json_t *commands) {
  for (size_t i = 0; i < plugin_host_count(s->plugins); i++) {
    struct plugin_info in;
    plugin_host_info(s->plugins, i, &in);
    const char *const *names = in.command ? plugin_host_command_names(s->plugins, i) : NULL;
    for (size_t j = 0; names && names[j]; j++)
      json_array_append_new(commands, json_string(names[j]));
  }
}

const char *server_plugins_provider(struct server *s) {
  const char *want = s->config.provider ? s->config.provider : PIPELINE_LOCAL_PROVIDER;
  const struct augury_plugin *p = s->plugins ? plugin_host_completion(s->plugins, want) : NULL;
  /* While a reload is queued, the request runs after it (the engine's queue is in order): the
   * setting's name is looked up in the host made for it then. */
  const char *name = s->plugin_reloads > 0 ? want : p ? p->name : NULL;
  if (!name) return PIPELINE_LOCAL_PROVIDER;
  /* Not the setting's string, nor the table's (a reload may free either while a request keeps
   * it): the server's copy, one per name. */
  if (!s->provider_names && !(s->provider_names = json_object())) return PIPELINE_LOCAL_PROVIDER;
  if (!json_object_get(s->provider_names, name) &&
      json_object_set_new(s->provider_names, name, json_null()))
    return PIPELINE_LOCAL_PROVIDER;
  return json_object_iter_key(json_object_iter_at(s->provider_names, name));
}

void server_plugins_stop(struct server *s) {
  plugin_host_destroy(s->plugins);
  s->plugins = NULL;
  s->ring = NULL; /* the host freed it */
  s->syntax_context = NULL;
  provider_remote_destroy(s->remote);
  s->remote = NULL;
  workspace_index_destroy(s->index); /* after the host: the syntax context borrowed it */
  s->index = NULL;
}

json_t *server_plugins_status(struct server *s) {
  json_t *list = json_array();
  for (size_t i = 0; i < plugin_host_count(s->plugins); i++) {
    struct plugin_info in;
    plugin_host_info(s->plugins, i, &in);
    json_array_append_new(list, json_pack("{s:s,s:s,s:s,s:s,s:b,s:b,s:b,s:b,s:I,s:I,s:I,s:s}",
                                          "name", in.name, "version", in.version, "origin",
                                          in.origin, "mode", in.mode, "context", in.context,
                                          "completion", in.completion, "command", in.command,
                                          "disabled", in.disabled, "calls", (json_int_t)in.calls,
                                          "failures", (json_int_t)in.failures, "overruns",
                                          (json_int_t)in.overruns, "lastError", in.last_error));
  }
  return list;
}

bool server_plugins_command(struct server *s, json_t *id, const char *name, json_t *args) {
  const struct augury_plugin *p = s->plugins ? plugin_host_command(s->plugins, name) : NULL;
  if (!p) return false;
  char *args_text = args ? json_dumps(args, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
  struct augury_command_result res = {0};
  int rc = p->command_execute(p->self, name, args_text ? args_text : "[]", &res);
  free(args_text);
  res.error[sizeof res.error - 1] = '\0';
  if (rc) {
    server_reply_error(s, id, JSONRPC_INTERNAL_ERROR, "%s: %s", name,
                       res.error[0] ? res.error : aug_strerror(rc));
  } else {
    json_error_t jerr;
    json_t *result = res.json ? json_loads(res.json, JSON_DECODE_ANY, &jerr) : json_null();
    if (result)
      server_reply(s, id, result);
    else
      server_reply_error(s, id, JSONRPC_INTERNAL_ERROR, "%s: its result is not JSON: %s", name,
                         jerr.text);
  }
  if (res.json) {
    if (p->free_json)
      p->free_json(p->self, res.json);
    else
      free(res.json);
  }
  return true;
}
