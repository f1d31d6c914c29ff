/* The server core: stdio through libuv, the JSON-RPC dispatch, the LSP 3.18 lifecycle
 * ("initialize" .. "exit"), document sync, settings, the background model load and augury.status.
 * Invariants: every request gets exactly one reply (answered here, or through an active_request
 * that is answered once and freed); nothing is sent after stopping began; the loop thread never
 * waits on the engine thread except in server_stop, when it joins it. */
#include "lsp/server.h"

#include <ctype.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/version.h" /* the one definition of the version, also `augury --version`'s */
#include "engine/alloc.h"
#include "lsp/server_internal.h"
#include "plugins/workspace_index.h"

struct server_options server_options_default(void) {
  struct server_options o = {0, 1, 0, 1000};
  return o;
}

double server_now_ms(struct server *s) {
  return (double)uv_now(&s->loop);
}

/* ---- output ------------------------------------------------------------------------------ */

struct write_req {
  uv_write_t req;
  struct server *server;
  char *data;
};

static void server_stop(struct server *s, int exit_code);

static int exit_code_now(const struct server *s) {
  return s->phase == PHASE_SHUTDOWN ? 0 : 1;
}

static void write_cb(uv_write_t *req, int status) {
  struct write_req *w = (struct write_req *)req;
  struct server *s = w->server;
  s->writes_pending--;
  aug_free(w->data);
  aug_free(w);
  /* EPIPE and friends: the client is gone, end cleanly. */
  if (status < 0 && status != UV_ECANCELED) server_stop(s, exit_code_now(s));
}

void server_send(struct server *s, json_t *msg) {
  if (!msg) return;
  if (s->stopping || !s->out_open) {
    json_decref(msg);
    return;
  }
  char *buf = NULL;
  size_t len = 0;
  struct aug_err err = {0};
  int rc = jsonrpc_encode(msg, &buf, &len, &err);
  json_decref(msg);
  if (rc) return; /* out of memory: nothing sensible can be said to the client */
  if (!s->out_is_stream) {
    size_t done = 0;
    while (done < len) {
      ssize_t n = write(s->options.out_fd, buf + done, len - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        aug_free(buf);
        server_stop(s, exit_code_now(s));
        return;
      }
      done += (size_t)n;
    }
    aug_free(buf);
    return;
  }
  struct write_req *w = aug_malloc(sizeof *w);
  if (!w) {
    aug_free(buf);
    return;
  }
  w->server = s;
  w->data = buf;
  uv_buf_t b = uv_buf_init(buf, (unsigned)len);
  rc = uv_write(&w->req, (uv_stream_t *)&s->out, &b, 1, write_cb);
  if (rc) {
    aug_free(buf);
    aug_free(w);
    server_stop(s, exit_code_now(s));
    return;
  }
  s->writes_pending++;
}

void server_reply(struct server *s, json_t *id, json_t *result) {
  server_send(s, jsonrpc_response(id, result));
}

void server_reply_error(struct server *s, json_t *id, int code, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  server_send(s, jsonrpc_error_response(id, code, msg, NULL));
}

void server_notify(struct server *s, const char *method, json_t *params) {
  server_send(s, jsonrpc_notification(method, params));
}

void server_request(struct server *s, const char *method, json_t *params, server_reply_fn on_reply,
                    void (*drop)(void *user), void *user) {
  struct outgoing_request *o = aug_calloc(1, sizeof *o);
  if (!o) {
    json_decref(params);
    if (drop) drop(user);
    return;
  }
  o->id = ++s->next_outgoing_id;
  o->on_reply = on_reply;
  o->drop = drop;
  o->user = user;
  o->next = s->outgoing;
  s->outgoing = o;
  json_t *id = json_integer(o->id);
  server_send(s, jsonrpc_request(id, method, params));
  json_decref(id);
}

static void message_v(struct server *s, const char *method, int type, const char *fmt, va_list ap) {
  char msg[2048];
  vsnprintf(msg, sizeof msg, fmt, ap);
  server_notify(s, method, json_pack("{s:i,s:s}", "type", type, "message", msg));
}

void server_log(struct server *s, int type, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  message_v(s, "window/logMessage", type, fmt, ap);
  va_end(ap);
}

void server_show(struct server *s, int type, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  message_v(s, "window/showMessage", type, fmt, ap);
  va_end(ap);
}

/* ---- active requests --------------------------------------------------------------------- */

struct active_request *server_request_new(struct server *s, enum request_kind kind, json_t *id) {
  struct active_request *r = aug_calloc(1, sizeof *r);
  if (!r) return NULL;
  r->server = s;
  r->kind = kind;
  r->id = json_copy(id);
  if (json_dumpb(r->id, r->id_text, sizeof r->id_text - 1, JSON_ENCODE_ANY) >=
      sizeof r->id_text - 1)
    snprintf(r->id_text, sizeof r->id_text, "null");
  pthread_mutex_init(&r->lock, NULL);
  atomic_init(&r->budget_until_ms, 0);
  atomic_init(&r->prompt_ready_at_ms, 0);
  atomic_init(&r->own_prompt_ms, 0);
  r->next = s->active;
  if (s->active) s->active->prev = r;
  s->active = r;
  return r;
}

void server_request_free(struct active_request *r) {
  if (!r) return;
  struct server *s = r->server;
  if (r->prev)
    r->prev->next = r->next;
  else if (s->active == r)
    s->active = r->next;
  if (r->next) r->next->prev = r->prev;
  if (r->progress) progress_end(r->progress, NULL);
  json_decref(r->id);
  aug_free(r->uri);
  aug_free(r->text);
  aug_free(r->repo_name);
  aug_free(r->path);
  aug_free(r->language);
  aug_free(r->out);
  aug_free(r->partial);
  aug_free(r->answer);
  aug_free(r->doc_text);
  for (size_t i = 0; i < r->n_avoid; i++)
    aug_free(r->avoid[i]);
  pipeline_result_free(&r->result);
  pthread_mutex_destroy(&r->lock);
  aug_free(r);
}

/* The error reply of an aborted request (reply_code set). */
static void server_reply_aborted(struct active_request *r) {
  struct server *s = r->server;
  if (r->reply_code == JSONRPC_CONTENT_MODIFIED) {
    s->n_superseded++;
    server_reply_error(s, r->id, r->reply_code,
                       "superseded: the document changed or a newer request arrived");
  } else {
    s->n_cancelled++;
    server_reply_error(s, r->id, r->reply_code, "request cancelled");
  }
}

void server_request_finish(struct active_request *r, json_t *result) {
  struct server *s = r->server;
  if (r->kind == REQUEST_SPECULATIVE || r->kind == REQUEST_ALTERNATIVE || r->answered) {
    json_decref(result); /* nobody asked, or answered already: nothing to send */
  } else if (r->reply_code) {
    json_decref(result);
    server_reply_aborted(r);
  } else {
    server_reply(s, r->id, result);
  }
  server_request_free(r);
}

void server_request_abort(struct active_request *r, int code) {
  if (r->reply_code) return; /* the first reason wins; the reply is still pending */
  r->reply_code = code;
  if (r->submitted) {
    atomic_store(&r->job.cancel, true); /* the done callback frees it */
    if (r->kind == REQUEST_INLINE_COMPLETION || r->kind == REQUEST_COMPLETION) {
      server_reply_aborted(r);
      r->answered = true;
    }
    return;
  }
  server_request_finish(r, NULL);
}

static void debounce_cb(uv_timer_t *t) {
  completion_submit_due(t->data);
}

void server_arm_debounce(struct server *s) {
  if (s->stopping) return;
  double next = 0;
  for (struct active_request *r = s->active; r; r = r->next) {
    if (r->submitted) continue;
    if (r->due_ms > 0 && (next == 0 || r->due_ms < next)) next = r->due_ms;
    if (r->load_wait_until_ms > 0 && (next == 0 || r->load_wait_until_ms < next))
      next = r->load_wait_until_ms;
  }
  if (next == 0) {
    uv_timer_stop(&s->debounce_timer);
    return;
  }
  double now = server_now_ms(s);
  uv_timer_start(&s->debounce_timer, debounce_cb, next > now ? (uint64_t)(next - now) : 0, 0);
}

/* ---- parameters -------------------------------------------------------------------------- */

bool server_parse_position(const json_t *v, struct lsp_position *out) {
  json_t *line = json_object_get(v, "line"), *ch = json_object_get(v, "character");
  if (!json_is_integer(line) || !json_is_integer(ch)) return false;
  out->line = json_integer_value(line);
  out->character = json_integer_value(ch);
  return true;
}

bool server_parse_range(const json_t *v, struct lsp_position *start, struct lsp_position *end) {
  return json_is_object(v) && server_parse_position(json_object_get(v, "start"), start) &&
         server_parse_position(json_object_get(v, "end"), end);
}

static const char *doc_uri(const json_t *params) {
  json_t *td = json_object_get(params, "textDocument");
  json_t *uri = json_object_get(td, "uri");
  return json_is_string(uri) ? json_string_value(uri) : NULL;
}

/* Only the file scheme has a path. */
char *server_uri_to_path(const char *uri) {
  if (strncmp(uri, "file://", 7)) return NULL;
  const char *p = uri + 7;
  size_t n = strlen(p);
  char *out = aug_malloc(n + 1);
  if (!out) return NULL;
  size_t k = 0;
  for (size_t i = 0; i < n; i++) {
    if (p[i] == '%' && i + 2 < n && isxdigit((unsigned char)p[i + 1]) &&
        isxdigit((unsigned char)p[i + 2])) {
      char hex[3] = {p[i + 1], p[i + 2], 0};
      out[k++] = (char)strtol(hex, NULL, 16);
      i += 2;
    } else {
      out[k++] = p[i];
    }
  }
  out[k] = '\0';
  return out;
}

/* ---- settings and the model -------------------------------------------------------------- */

static void warn_cb(void *user, const char *message) {
  server_log(user, 2, "%s", message);
}

static void start_load(struct server *s);

static void load_run(struct scheduler_job *job) {
  struct server *s = job->data;
  /* The previous model goes first: two resident models may not fit in memory. */
  generator_destroy(s->generator);
  s->generator = NULL;
  s->load_err.code = 0;
  s->load_err.msg[0] = '\0';
  s->load_rc = generator_create(&s->load_params, &s->generator, &s->load_err);
}

static void load_done(struct scheduler_job *job) {
  struct server *s = job->data;
  s->load_in_flight = false;
  if (s->stopping || !job->ran) return;
  s->load_ms = server_now_ms(s) - s->load_started_ms;
  if (s->load_rc == 0) {
    s->model_state = MODEL_READY;
    snprintf(s->model_description, sizeof s->model_description, "%s",
             generator_description(s->generator));
    s->model_has_fim = generator_has_fim(s->generator);
    s->model_error[0] = '\0';
    progress_end(s->load_progress, "ready");
    s->load_progress = NULL;
    server_log(s, 3, "augury: loaded %s (%s) in %.0f ms", s->model_path, s->model_description,
               s->load_ms);
    /* mlock refused (RLIMIT_MEMLOCK): the model runs, unlocked; the note says how to fix it */
    const char *mlock_note = engine_mlock_note(generator_engine(s->generator));
    if (mlock_note[0]) server_show(s, 2, "augury: %s", mlock_note);
    if (!s->model_has_fim)
      server_show(s, 2,
                  "augury: %s has no fill-in-the-middle tokens: completions are off, "
                  "explain works",
                  s->model_description);
  } else {
    s->model_state = MODEL_FAILED;
    snprintf(s->model_error, sizeof s->model_error, "%s",
             s->load_err.msg[0] ? s->load_err.msg : aug_strerror(s->load_rc));
    progress_end(s->load_progress, "failed");
    s->load_progress = NULL;
    server_show(s, 1, "augury: cannot load model %s: %s", s->model_path, s->model_error);
  }
  if (s->reload_wanted) {
    s->reload_wanted = false;
    start_load(s);
    return;
  }
  completion_model_settled(s);
}

static void retry_reply(struct server *s, json_t *result, json_t *error, void *user) {
  json_t *title = json_object_get(result, "title");
  if (json_is_string(title) && !strcmp(json_string_value(title), "Retry")) start_load(s);
}

static void start_load(struct server *s) {
  if (s->stopping) return;
  if (s->load_in_flight) {
    s->reload_wanted = true;
    return;
  }
  struct aug_err err = {0};
  const char *found_by = NULL;
  s->env = config_env_from_process();
  if (config_find_model(&s->config, &s->env, s->model_path, sizeof s->model_path, &found_by,
                        &err)) {
    s->model_state = MODEL_FAILED;
    s->model_path[0] = '\0';
    snprintf(s->model_error, sizeof s->model_error, "%s", err.msg);
    /* A question rather than a notice: the user can fix the setting and retry from the editor. */
    server_request(s, "window/showMessageRequest",
                   json_pack("{s:i,s:s+,s:[{s:s}]}", "type", 1, "message", "augury: ", err.msg,
                             "actions", "title", "Retry"),
                   retry_reply, NULL, NULL);
    return;
  }
  s->model_found_by = found_by;
  s->model_state = MODEL_LOADING;
  s->load_params = engine_params_default();
  s->load_params.model_path = s->model_path;
  s->load_params.n_threads = (int)s->config.n_threads;
  s->load_params.n_ctx = (uint32_t)s->config.n_ctx;
  s->load_params.reuse_min_chunk = (uint32_t)s->config.chunk_reuse;
  s->load_params.reuse_fresh_suffix = (uint32_t)s->config.fresh_suffix_tokens;
  s->load_params.prompt_cache_bytes = (uint64_t)s->config.prompt_cache_mib << 20;
  s->load_params.gpu_layers = s->config.gpu_layers;
  s->load_params.kv_type = (enum engine_kv_type)s->config.kv_type;
  s->load_params.mlock = s->config.mlock;
  /* A settings change may free the config's string while the load job still reads it. */
  snprintf(s->load_gpu_options, sizeof s->load_gpu_options, "%s",
           s->config.gpu_options ? s->config.gpu_options : "");
  s->load_params.gpu_options = s->load_gpu_options[0] ? s->load_gpu_options : NULL;
  s->load_params.measurements = &s->measured;
  s->load_started_ms = server_now_ms(s);
  char *name = s->model_path + strlen(s->model_path);
  while (name > s->model_path && name[-1] != '/')
    name--;
  char title[512];
  snprintf(title, sizeof title, "loading %s", name);
  if (s->load_progress) progress_end(s->load_progress, NULL);
  s->load_progress = progress_begin(s, NULL, "augury", title);
  s->load_in_flight = true;
  scheduler_job_init(&s->load_job, load_run, load_done, s);
  scheduler_submit(s->scheduler, &s->load_job);
}

/* The settings the engine is created with: a change reloads the model. */
struct engine_settings {
  char model[4096];
  int64_t threads, ctx, chunk_reuse, fresh_suffix_tokens, prompt_cache_mib;
  int32_t gpu_layers;
  char gpu_options[256];
  int32_t kv_type;
  bool mlock;
};

static void engine_settings_of(const struct config *c, struct engine_settings *out) {
  snprintf(out->model, sizeof out->model, "%s", c->model_path ? c->model_path : "");
  out->threads = c->n_threads;
  out->ctx = c->n_ctx;
  out->chunk_reuse = c->chunk_reuse;
  out->fresh_suffix_tokens = c->fresh_suffix_tokens;
  out->prompt_cache_mib = c->prompt_cache_mib;
  out->gpu_layers = c->gpu_layers;
  out->kv_type = c->kv_type;
  out->mlock = c->mlock;
  snprintf(out->gpu_options, sizeof out->gpu_options, "%s", c->gpu_options ? c->gpu_options : "");
}

static bool engine_settings_differ(const struct engine_settings *a,
                                   const struct engine_settings *b) {
  return strcmp(a->model, b->model) || a->threads != b->threads || a->ctx != b->ctx ||
         a->chunk_reuse != b->chunk_reuse || a->fresh_suffix_tokens != b->fresh_suffix_tokens ||
         a->prompt_cache_mib != b->prompt_cache_mib || a->gpu_layers != b->gpu_layers ||
         strcmp(a->gpu_options, b->gpu_options) || a->kv_type != b->kv_type || a->mlock != b->mlock;
}

/* ---- lifecycle --------------------------------------------------------------------------- */

static bool list_has(const json_t *list, const char *value) {
  size_t i;
  json_t *v;
  json_array_foreach(list, i,
                     v) if (json_is_string(v) && !strcmp(json_string_value(v), value)) return true;
  return false;
}

static void handle_initialize(struct server *s, json_t *id, json_t *params) {
  json_t *caps = json_object_get(params, "capabilities");
  json_t *pid = json_object_get(params, "processId");
  if (json_is_integer(pid) && json_integer_value(pid) > 0 && s->parent_pid == 0)
    s->parent_pid = json_integer_value(pid); /* watched from now on (watch_parent) */
  /* positionEncoding (LSP 3.17+): utf-8 when offered; clangd's offsetEncoding extension too (what
   * Neovim 0.7 sends). UTF-16 otherwise, as the spec requires. */
  json_t *encodings = json_object_get(json_object_get(caps, "general"), "positionEncodings");
  json_t *offset_enc = json_object_get(caps, "offsetEncoding");
  s->encoding = POSITION_ENCODING_UTF16;
  if (list_has(encodings, "utf-8") || (!json_is_array(encodings) && list_has(offset_enc, "utf-8")))
    s->encoding = POSITION_ENCODING_UTF8;
  json_t *window = json_object_get(caps, "window");
  s->client_work_done_progress = json_is_true(json_object_get(window, "workDoneProgress"));
  s->client_show_message_request = json_is_object(json_object_get(window, "showMessage"));

  json_t *root = json_object_get(params, "rootUri");
  json_t *folders = json_object_get(params, "workspaceFolders");
  if (!json_is_string(root) && json_is_array(folders))
    root = json_object_get(json_array_get(folders, 0), "uri");
  if (json_is_string(root)) s->root_path = server_uri_to_path(json_string_value(root));
  json_t *root_path = json_object_get(params, "rootPath");
  if (!s->root_path && json_is_string(root_path))
    s->root_path = aug_strndup(json_string_value(root_path), json_string_length(root_path));

  s->env = config_env_from_process();
  config_load_file(&s->config, &s->env, warn_cb, s);
  config_apply_json(&s->config, json_object_get(params, "initializationOptions"),
                    "initializationOptions", false, warn_cb, s);

  if (s->config.prompt_log && !s->prompt_log) {
    s->prompt_log = fopen(s->config.prompt_log, "a");
    if (!s->prompt_log)
      server_log(s, 2, "augury: promptLog: cannot open %s: %s", s->config.prompt_log,
                 strerror(errno));
  }
  server_plugins_start(s);
  json_t *caps_out = json_pack(
      "{s:s,s:{s:b,s:i,s:{s:b}},s:b,s:{s:b,s:[]},s:{s:[s,s]}}", "positionEncoding",
      position_encoding_name(s->encoding), "textDocumentSync", "openClose", 1, "change", 2, "save",
      "includeText", 0, "inlineCompletionProvider", 1, "completionProvider", "resolveProvider", 0,
      "triggerCharacters", "executeCommandProvider", "commands", "augury.explain", "augury.status");
  if (s->plugins)
    server_plugins_add_commands(
        s, json_object_get(json_object_get(caps_out, "executeCommandProvider"), "commands"));
  json_t *result = json_pack("{s:o,s:{s:s,s:s}}", "capabilities", caps_out, "serverInfo", "name",
                             "augury", "version", AUGURY_VERSION);
  if (result && json_is_array(offset_enc))
    json_object_set_new(result, "offsetEncoding", json_string(position_encoding_name(s->encoding)));
  s->phase = PHASE_RUNNING;
  server_reply(s, id, result);
  /* The model loads in the background; requests before it is ready get empty results. */
  start_load(s);
}

static void parent_cb(uv_timer_t *t) {
  struct server *s = t->data;
  if (s->parent_pid > 0 && kill((pid_t)s->parent_pid, 0) == -1 && errno == ESRCH)
    server_stop(s, exit_code_now(s));
}

static void watch_parent(struct server *s) {
  if (s->parent_pid <= 0) return;
  uint64_t every = s->options.parent_check_ms > 0 ? (uint64_t)s->options.parent_check_ms : 1000;
  uv_timer_start(&s->parent_timer, parent_cb, every, every);
}

static void abort_all(struct server *s, int code) {
  struct active_request *r = s->active;
  while (r) {
    struct active_request *next = r->next;
    server_request_abort(r, code);
    r = next;
  }
  server_arm_debounce(s);
}

static void execute_command(struct server *s, json_t *id, json_t *params) {
  json_t *command = json_object_get(params, "command");
  json_t *args = json_object_get(params, "arguments");
  if (!json_is_string(command) || (args && !json_is_array(args))) {
    server_reply_error(s, id, JSONRPC_INVALID_PARAMS,
                       "executeCommand needs a string 'command' and an array 'arguments'");
    return;
  }
  const char *name = json_string_value(command);
  if (!strcmp(name, "augury.explain")) {
    explain_handle(s, id, args, json_object_get(params, "workDoneToken"));
    return;
  }
  if (!strcmp(name, "augury.status")) {
    static const char *const states[] = {"none", "loading", "ready", "failed"};
    size_t n_active = 0;
    for (struct active_request *r = s->active; r; r = r->next)
      n_active++;
    json_t *st = json_pack(
        "{s:s,s:s,s:s?,s:s,s:s,s:f,s:s,s:b,s:I,s:I,s:I,s:I,s:I,s:{s:I,s:I,s:I,s:f},s:I,s:I,s:I,s:I,"
        "s:I}",
        "state", states[s->model_state], "model", s->model_path, "foundBy", s->model_found_by,
        "description", s->model_description, "error", s->model_error, "loadMs", s->load_ms,
        "positionEncoding", position_encoding_name(s->encoding), "fim", s->model_has_fim,
        "documents", (json_int_t)documents_count(s->docs), "completions",
        (json_int_t)s->n_completions, "cancelled", (json_int_t)s->n_cancelled, "superseded",
        (json_int_t)s->n_superseded, "empty", (json_int_t)s->n_empty, "tokens", "reused",
        (json_int_t)s->tokens_reused, "evaluated", (json_int_t)s->tokens_evaluated, "generated",
        (json_int_t)s->tokens_generated, "lastMs", s->last_total_ms, "pending",
        (json_int_t)n_active, "cacheHits", (json_int_t)s->n_cache_hits, "loadWaits",
        (json_int_t)s->n_load_waits, "speculative", (json_int_t)s->n_speculative,
        "servedBySpeculation", (json_int_t)s->n_adopted);
    if (st) {
      json_object_set_new(st, "speculationsAbandoned", json_integer((json_int_t)s->n_abandoned));
      json_object_set_new(st, "alternatives",
                          json_pack("{s:I,s:I}", "computed", (json_int_t)s->n_alternatives,
                                    "answers", (json_int_t)s->n_alternative_answers));
      json_object_set_new(st, "gpuFaults", json_integer((json_int_t)s->n_gpu_faults));
      json_object_set_new(st, "lastGpuFault", json_string(s->gpu_fault));
      json_object_set_new(st, "provider", json_string(server_plugins_provider(s)));
      json_object_set_new(st, "servedBy", s->served_by ? json_copy(s->served_by) : json_object());
      json_object_set_new(st, "plugins", server_plugins_status(s));
      json_object_set_new(st, "index", server_plugins_index_status(s));
      json_object_set_new(st, "ring", server_plugins_ring_status(s));
      uint64_t checked =
          s->n_syntax_kept + s->n_syntax_trimmed + s->n_syntax_dropped + s->n_syntax_skipped;
      json_object_set_new(
          st, "syntax",
          json_pack("{s:b,s:I,s:I,s:I,s:I,s:I,s:f,s:s?}", "enabled", s->config.syntax_check,
                    "checked", (json_int_t)checked, "kept", (json_int_t)s->n_syntax_kept, "trimmed",
                    (json_int_t)s->n_syntax_trimmed, "dropped", (json_int_t)s->n_syntax_dropped,
                    "skipped", (json_int_t)s->n_syntax_skipped, "ms", s->syntax_ms, "lastSkipped",
                    s->syntax_last_skip));
    }
    server_reply(s, id, st);
    return;
  }
  if (server_plugins_command(s, id, name, args)) return;
  server_reply_error(s, id, JSONRPC_INVALID_PARAMS,
                     "unknown command '%s' (augury.explain and augury.status exist)", name);
}

static void handle_request(struct server *s, json_t *id, const char *method, json_t *params) {
  if (s->phase == PHASE_UNINITIALIZED && strcmp(method, "initialize")) {
    server_reply_error(s, id, JSONRPC_SERVER_NOT_INITIALIZED,
                       "'%s' before initialize: the server is not initialized", method);
    return;
  }
  if (s->phase == PHASE_SHUTDOWN) {
    server_reply_error(s, id, JSONRPC_INVALID_REQUEST, "'%s' after shutdown", method);
    return;
  }
  if (!strcmp(method, "initialize")) {
    if (s->phase != PHASE_UNINITIALIZED) {
      server_reply_error(s, id, JSONRPC_INVALID_REQUEST, "initialize was already received");
      return;
    }
    if (!json_is_object(params)) {
      server_reply_error(s, id, JSONRPC_INVALID_PARAMS, "initialize needs InitializeParams");
      return;
    }
    handle_initialize(s, id, params);
    watch_parent(s);
    return;
  }
  if (!strcmp(method, "shutdown")) {
    s->phase = PHASE_SHUTDOWN;
    abort_all(s, JSONRPC_REQUEST_CANCELLED);
    server_reply(s, id, json_null());
    return;
  }
  bool inline_completion = !strcmp(method, "textDocument/inlineCompletion");
  bool completion = !strcmp(method, "textDocument/completion");
  bool command = !strcmp(method, "workspace/executeCommand");
  if (!inline_completion && !completion && !command) {
    server_reply_error(s, id, JSONRPC_METHOD_NOT_FOUND, "method '%s' is not supported", method);
    return;
  }
  if (!json_is_object(params)) {
    server_reply_error(s, id, JSONRPC_INVALID_PARAMS, "'%s' needs an object as params", method);
    return;
  }
  if (command)
    execute_command(s, id, params);
  else {
    /* Where the user asks is where they are: a place left for it goes into the ring. */
    json_t *line = json_object_get(json_object_get(params, "position"), "line");
    if (json_is_integer(line))
      server_plugins_ring_visit(s, doc_uri(params), json_integer_value(line));
    completion_handle(s, id, params, inline_completion);
  }
}

enum index_action { INDEX_TEXT, INDEX_FROM_DISK };

/* Tells the workspace index about a document: its text at didOpen and didSave (didChange is left
 * out: the syntax context finds the document's own definitions, and other documents need only
 * what was saved or opened), the disk's at didClose (unsaved edits are gone with it). The index
 * queues the work for its own thread. */
static void index_document(struct server *s, const char *uri, enum index_action action) {
  if (!s->index) return;
  char *path = server_uri_to_path(uri);
  struct document *doc = action == INDEX_TEXT ? documents_find(s->docs, uri) : NULL;
  struct aug_err err = {0};
  int rc = 0;
  if (path && (action == INDEX_FROM_DISK || !doc)) /* a didSave of a file not open: the disk's */
    rc = workspace_index_reload(s->index, path, &err);
  else if (path && doc)
    rc = workspace_index_update(s->index, path, doc->text.data, doc->text.len, &err);
  if (rc) server_log(s, 2, "augury: %s", err.msg);
  aug_free(path);
}

static void did_open(struct server *s, json_t *params) {
  json_t *td = json_object_get(params, "textDocument");
  json_t *uri = json_object_get(td, "uri"), *lang = json_object_get(td, "languageId");
  json_t *text = json_object_get(td, "text"), *version = json_object_get(td, "version");
  if (!json_is_string(uri) || !json_is_string(text)) {
    server_log(s, 1, "augury: didOpen without textDocument.uri and text (ignored)");
    return;
  }
  struct aug_err err = {0};
  if (documents_open(s->docs, json_string_value(uri),
                     json_is_string(lang) ? json_string_value(lang) : "",
                     json_is_integer(version) ? json_integer_value(version) : 0,
                     json_string_value(text), json_string_length(text), &err))
    server_log(s, 1, "augury: %s", err.msg);
  else {
    index_document(s, json_string_value(uri), INDEX_TEXT);
    server_plugins_document_opened(s, json_string_value(uri),
                                   json_is_string(lang) ? json_string_value(lang) : NULL);
    /* Where the editor shows it is not said: its top (imports, declarations) is the guess. */
    server_plugins_ring_visit(s, json_string_value(uri), 0);
  }
}

static size_t count_line_breaks(const char *text, size_t len) {
  size_t n = 0;
  for (size_t i = 0; i < len; i++)
    n += text[i] == '\n';
  return n;
}

static void did_change(struct server *s, json_t *params) {
  const char *uri = doc_uri(params);
  json_t *changes = json_object_get(params, "contentChanges");
  json_t *version = json_object_get(json_object_get(params, "textDocument"), "version");
  if (!uri || !json_is_array(changes)) {
    server_log(s, 1, "augury: didChange without textDocument.uri and contentChanges (ignored)");
    return;
  }
  size_t n = json_array_size(changes);
  struct document_change stack_changes[8];
  struct document_change *list = n <= 8 ? stack_changes : aug_calloc(n, sizeof *list);
  if (!list) return;
  const char *bad = NULL;
  for (size_t i = 0; i < n && !bad; i++) {
    json_t *c = json_array_get(changes, i);
    json_t *text = json_object_get(c, "text"), *range = json_object_get(c, "range");
    if (!json_is_string(text)) bad = "a change without 'text'";
    list[i].has_range = range != NULL;
    if (range && !server_parse_range(range, &list[i].start, &list[i].end))
      bad = "a malformed range";
    list[i].text = json_string_value(text);
    list[i].len = json_string_length(text);
  }
  struct aug_err err = {0};
  if (bad) {
    server_log(s, 1, "augury: didChange for %s rejected: %s; the document is unchanged", uri, bad);
  } else if (documents_apply_changes(s->docs, uri,
                                     json_is_integer(version) ? json_integer_value(version) : 0,
                                     list, n, s->encoding, &err)) {
    server_log(s, 1, "augury: %s; the document is unchanged", err.msg);
  } else {
    /* Completions computed for the old text are outdated; the user's cursor is most likely at
     * the end of the last edit, where a speculation starts (or one they typed along survives). */
    size_t cursor = SIZE_MAX;
    struct document *doc = documents_find(s->docs, uri);
    const struct document_change *last = n > 0 ? &list[n - 1] : NULL;
    size_t at = 0;
    if (doc && last && last->has_range &&
        document_text_offset(&doc->text, last->start, s->encoding, &at, &err) == 0 &&
        at + last->len <= doc->text.len)
      cursor = at + last->len;
    completion_document_changed(s, uri, cursor);
    /* The ring follows the text (its chunks below an edit move with it) and the user (the place
     * of the last edit). A full-text change says neither. */
    for (size_t i = 0; i < n; i++)
      if (list[i].has_range)
        server_plugins_ring_edit(s, uri, list[i].start.line, list[i].end.line,
                                 count_line_breaks(list[i].text, list[i].len));
    if (last && last->has_range)
      server_plugins_ring_visit(
          s, uri, last->start.line + (int64_t)count_line_breaks(last->text, last->len));
  }
  if (list != stack_changes) aug_free(list);
}

static void did_change_configuration(struct server *s, json_t *params) {
  struct engine_settings before, after;
  engine_settings_of(&s->config, &before);
  /* The plugin settings as they were (a shallow copy: config_apply_json replaces the "plugins"
   * and "remote" values, so the old ones are held for the comparison). */
  struct config plugins_before = s->config;
  json_incref(plugins_before.plugins);
  json_incref(plugins_before.remote);
  config_apply_json(&s->config, json_object_get(params, "settings"), "didChangeConfiguration",
                    false, warn_cb, s);
  engine_settings_of(&s->config, &after);
  if (engine_settings_differ(&before, &after)) start_load(s);
  if (server_plugins_settings_differ(&plugins_before, &s->config)) server_plugins_reload(s);
  json_decref(plugins_before.plugins);
  json_decref(plugins_before.remote);
}

static void handle_notification(struct server *s, const char *method, json_t *params) {
  if (!strcmp(method, "exit")) {
    server_stop(s, exit_code_now(s));
    return;
  }
  /* Before initialize, notifications are dropped (LSP 3.18 "initialize"); after shutdown too. */
  if (s->phase != PHASE_RUNNING) return;
  if (!strcmp(method, "initialized")) return;
  if (!strcmp(method, "textDocument/didOpen")) {
    did_open(s, params);
  } else if (!strcmp(method, "textDocument/didChange")) {
    did_change(s, params);
  } else if (!strcmp(method, "textDocument/didClose")) {
    const char *uri = doc_uri(params);
    struct aug_err err = {0};
    if (uri) {
      completion_abort_for_uri(s, uri, JSONRPC_CONTENT_MODIFIED);
      completion_cancel_speculation(s, uri);
      completion_cache_forget(s->completions, uri);
      completion_forget_alternatives(s, uri);
      if (documents_close(s->docs, uri, &err)) server_log(s, 2, "augury: %s", err.msg);
      index_document(s, uri, INDEX_FROM_DISK);
    }
  } else if (!strcmp(method, "textDocument/didSave")) {
    /* The text is already current through didChange; what was saved is what other files see. */
    const char *uri = doc_uri(params);
    if (uri) index_document(s, uri, INDEX_TEXT);
  } else if (!strcmp(method, "workspace/didChangeConfiguration")) {
    did_change_configuration(s, params);
  } else if (!strcmp(method, "$/cancelRequest")) {
    json_t *id = json_object_get(params, "id");
    for (struct active_request *r = s->active; r; r = r->next)
      if (json_equal(r->id, id)) {
        server_request_abort(r, JSONRPC_REQUEST_CANCELLED);
        server_arm_debounce(s);
        break;
      }
  } else if (strncmp(method, "$/", 2)) {
    server_log(s, 4, "augury: ignoring notification '%s'", method);
  }
}

static void handle_response(struct server *s, struct jsonrpc_message *m) {
  struct outgoing_request **pp = &s->outgoing;
  while (*pp) {
    struct outgoing_request *o = *pp;
    if (json_is_integer(m->id) && json_integer_value(m->id) == o->id) {
      *pp = o->next;
      if (o->on_reply) o->on_reply(s, m->result, m->error, o->user);
      aug_free(o);
      return;
    }
    pp = &o->next;
  }
  server_log(s, 4, "augury: a response to an unknown request id");
}

static void handle_body(struct server *s, const char *body, size_t len) {
  struct jsonrpc_message m;
  int code = 0;
  json_t *id = NULL;
  struct aug_err err = {0};
  if (jsonrpc_parse(body, len, &m, &code, &id, &err)) {
    server_reply_error(s, id, code, "%s", err.msg);
    json_decref(id);
    return;
  }
  json_decref(id); /* m.id is the same value, owned by m.root */
  switch (m.kind) {
  case JSONRPC_REQUEST: handle_request(s, m.id, m.method, m.params); break;
  case JSONRPC_NOTIFICATION: handle_notification(s, m.method, m.params); break;
  case JSONRPC_RESPONSE: handle_response(s, &m); break;
  }
  json_decref(m.root);
}

static void feed(struct server *s, const char *data, size_t len) {
  struct aug_err err = {0};
  if (jsonrpc_framer_feed(s->framer, data, len, &err)) {
    server_reply_error(s, NULL, JSONRPC_INTERNAL_ERROR, "%s", err.msg);
    return;
  }
  while (!s->stopping) {
    struct jsonrpc_frame f;
    jsonrpc_framer_next(s->framer, &f);
    if (f.kind == JSONRPC_FRAME_NONE) break;
    if (f.kind == JSONRPC_FRAME_ERROR)
      server_reply_error(s, NULL, JSONRPC_PARSE_ERROR, "%s", f.message);
    else
      handle_body(s, f.body, f.len);
  }
}

/* ---- input ------------------------------------------------------------------------------- */

static void in_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  struct server *s = h->data;
  buf->base = s->in_buf;
  buf->len = sizeof s->in_buf;
}

static void in_read_cb(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf) {
  struct server *s = stream->data;
  if (n > 0)
    feed(s, buf->base, (size_t)n);
  else if (n < 0)
    server_stop(s, exit_code_now(s)); /* EOF or a read error: the client is gone */
}

static void file_read_cb(uv_fs_t *req);

static void file_read_next(struct server *s) {
  uv_buf_t b = uv_buf_init(s->in_buf, sizeof s->in_buf);
  if (uv_fs_read(&s->loop, &s->in_read, s->options.in_fd, &b, 1, -1, file_read_cb))
    server_stop(s, exit_code_now(s));
}

static void file_read_cb(uv_fs_t *req) {
  struct server *s = req->data;
  ssize_t n = req->result;
  uv_fs_req_cleanup(req);
  s->in_file = false;
  if (n > 0) {
    feed(s, s->in_buf, (size_t)n);
    if (!s->stopping) {
      s->in_file = true;
      file_read_next(s);
    }
  } else if (!s->stopping) {
    server_stop(s, exit_code_now(s));
  }
}

static void closed_cb(uv_handle_t *h) {}

static void out_shutdown_cb(uv_shutdown_t *req, int status) {
  struct server *s = req->data;
  uv_close((uv_handle_t *)&s->out, closed_cb);
}

static void server_stop(struct server *s, int exit_code) {
  if (s->stopping) return;
  s->stopping = true;
  s->exit_code = exit_code;
  if (s->in_is_stream && s->in_open) {
    uv_read_stop((uv_stream_t *)&s->in);
    uv_close((uv_handle_t *)&s->in, closed_cb);
    s->in_open = false;
  }
  if (s->timers_open) {
    uv_close((uv_handle_t *)&s->parent_timer, closed_cb);
    uv_close((uv_handle_t *)&s->debounce_timer, closed_cb);
    s->timers_open = false;
  }
  /* Raise every cancel flag, then join the engine thread: done callbacks free their requests
   * without answering (stopping is set). Requests still waiting for debounce are freed here. */
  for (struct active_request *r = s->active; r; r = r->next)
    atomic_store(&r->job.cancel, true);
  scheduler_destroy(s->scheduler);
  s->scheduler = NULL;
  server_plugins_stop(s);
  while (s->active)
    server_request_free(s->active);
  if (s->load_progress) progress_end(s->load_progress, NULL);
  s->load_progress = NULL;
  while (s->outgoing) {
    struct outgoing_request *o = s->outgoing;
    s->outgoing = o->next;
    if (o->drop) o->drop(o->user);
    aug_free(o);
  }
  generator_destroy(s->generator);
  s->generator = NULL;
  if (s->prompt_log) fclose(s->prompt_log);
  s->prompt_log = NULL;
  if (s->out_is_stream && s->out_open) {
    s->out_open = false;
    s->out_shutdown.data = s;
    /* uv_shutdown waits for the queued writes (the shutdown reply among them). */
    if (uv_shutdown(&s->out_shutdown, (uv_stream_t *)&s->out, out_shutdown_cb))
      uv_close((uv_handle_t *)&s->out, closed_cb);
  }
  s->out_open = false;
}

/* Opens fd as a libuv stream (pipe, socket or terminal); false for regular files. */
static int open_stream(struct server *s, int fd, void *handle, bool readable, bool *is_stream) {
  uv_handle_type type = uv_guess_handle(fd);
  *is_stream = false;
  if (type == UV_TTY) {
    int rc = uv_tty_init(&s->loop, handle, fd, readable);
    if (rc) return rc;
    *is_stream = true;
  } else if (type == UV_NAMED_PIPE || type == UV_TCP || type == UV_UNKNOWN_HANDLE) {
    int rc = uv_pipe_init(&s->loop, handle, 0);
    if (rc) return rc;
    rc = uv_pipe_open(handle, fd);
    if (rc) {
      uv_close(handle, closed_cb);
      return rc;
    }
    *is_stream = true;
  }
  ((uv_handle_t *)handle)->data = s;
  return 0;
}

int server_run(const struct server_options *options, struct aug_err *err) {
  struct server *s = aug_calloc(1, sizeof *s);
  if (!s) return aug_err_set(err, AUG_ENOMEM, "lsp: out of memory");
  s->options = *options;
  s->parent_pid = options->client_pid;
  s->loop_thread = pthread_self();
  int rc = uv_loop_init(&s->loop);
  if (rc) {
    aug_free(s);
    return aug_err_set(err, AUG_EIO, "lsp: uv_loop_init: %s", uv_strerror(rc));
  }
  struct completion_cache_params ccp = completion_cache_params_default();
  struct syntax_filter_params sfp = syntax_filter_params_default();
  if ((rc = config_init(&s->config, err)) || (rc = documents_create(&s->docs, err)) ||
      (rc = completion_cache_create(&ccp, &s->completions, err)) ||
      (rc = syntax_filter_create(&sfp, &s->syntax, err)) ||
      (rc = jsonrpc_framer_create(JSONRPC_MAX_BODY_DEFAULT, &s->framer, err)) ||
      (rc = scheduler_create(&s->loop, &s->scheduler, err)))
    goto fail;
  uv_timer_init(&s->loop, &s->parent_timer);
  uv_timer_init(&s->loop, &s->debounce_timer);
  s->parent_timer.data = s->debounce_timer.data = s;
  s->timers_open = true;
  int uvrc = open_stream(s, options->out_fd, &s->out, false, &s->out_is_stream);
  if (uvrc) {
    rc = aug_err_set(err, AUG_EIO, "lsp: cannot use fd %d for output: %s", options->out_fd,
                     uv_strerror(uvrc));
    goto fail_loop;
  }
  s->out_open = true;
  uvrc = open_stream(s, options->in_fd, &s->in, true, &s->in_is_stream);
  if (!uvrc && s->in_is_stream) {
    s->in_open = true;
    uvrc = uv_read_start((uv_stream_t *)&s->in, in_alloc_cb, in_read_cb);
  } else if (!uvrc) {
    s->in_read.data = s;
    s->in_file = true;
    file_read_next(s);
  }
  if (uvrc) {
    rc = aug_err_set(err, AUG_EIO, "lsp: cannot read fd %d: %s", options->in_fd, uv_strerror(uvrc));
    goto fail_loop;
  }
  watch_parent(s);
  uv_run(&s->loop, UV_RUN_DEFAULT);
  int exit_code = s->exit_code;
  if (!s->stopping) exit_code = exit_code_now(s);
  rc = exit_code;
  goto cleanup;
fail_loop:
  server_stop(s, 1);
  uv_run(&s->loop, UV_RUN_DEFAULT);
  goto cleanup;
fail:
  scheduler_destroy(s->scheduler);
  s->scheduler = NULL;
  server_plugins_stop(s);
  uv_run(&s->loop, UV_RUN_DEFAULT);
cleanup:
  uv_loop_close(&s->loop);
  jsonrpc_framer_destroy(s->framer);
  documents_destroy(s->docs);
  completion_cache_destroy(s->completions);
  completion_forget_alternatives(s, NULL);
  syntax_filter_destroy(s->syntax); /* the engine thread has stopped: nothing uses it now */
  json_decref(s->provider_names);
  json_decref(s->served_by);
  config_free(&s->config);
  aug_free(s->root_path);
  aug_free(s);
  return rc;
}
