/* workspace/executeCommand "augury.explain": explains a selection with the model's chat format.
 * Arguments: [{uri, range}] or [{textDocument: {uri}, range}] (also [uri, range]). The text streams
 * to the client as $/progress reports on the request's workDoneToken (or a server-created token),
 * each report's message holding the whole text so far; the reply is {text, data}. */
#include <pthread.h>
#include <string.h>

#include "engine/alloc.h"
#include "lsp/server_internal.h"

#define EXPLAIN_OUT_CAP 65536
#define EXPLAIN_MAX_SELECTION (256 * 1024)

/* Engine thread: the piece was written at out[published..]; publish it and ask for a report. */
static void explain_text(void *user, const char *text, size_t len) {
  struct active_request *r = user;
  pthread_mutex_lock(&r->lock);
  r->published = (size_t)(text - r->out) + len;
  pthread_mutex_unlock(&r->lock);
  scheduler_job_progress(&r->job);
}

static void explain_run(struct scheduler_job *job) {
  struct active_request *r = job->data;
  struct server *s = r->server;
  if (atomic_load(&job->cancel)) {
    r->rc = AUG_ECANCELED;
    return;
  }
  if (!s->generator) {
    r->rc = aug_err_set(&r->err, AUG_ENOTFOUND, "no model is loaded");
    return;
  }
  struct explain_request req = {r->text,
                                r->prefix_len,
                                r->language,
                                (int)r->settings.explain_max_tokens,
                                (float)r->settings.explain_temperature,
                                0};
  r->rc = generator_explain(s->generator, &req, &job->cancel, explain_text, r, r->out, r->out_cap,
                            &r->out_len, &r->stats, &r->err);
}

static void explain_progress(struct scheduler_job *job) {
  struct active_request *r = job->data;
  if (r->server->stopping) return;
  pthread_mutex_lock(&r->lock);
  size_t n = r->published;
  pthread_mutex_unlock(&r->lock);
  progress_report(r->progress, r->out, n, -1);
}

static void explain_done(struct scheduler_job *job) {
  struct active_request *r = job->data;
  struct server *s = r->server;
  if (s->stopping) {
    server_request_free(r);
    return;
  }
  r->submitted = false;
  progress_end(r->progress, r->rc ? "failed" : "done");
  r->progress = NULL;
  if (r->rc == AUG_ECANCELED && !r->reply_code) r->reply_code = JSONRPC_REQUEST_CANCELLED;
  if (r->reply_code) {
    server_request_finish(r, NULL);
    return;
  }
  if (r->rc) {
    server_reply_error(s, r->id, JSONRPC_REQUEST_FAILED, "explain failed: %s",
                       r->err.msg[0] ? r->err.msg : aug_strerror(r->rc));
    server_request_free(r);
    return;
  }
  json_t *result =
      json_pack("{s:s%,s:{s:I,s:I,s:I,s:f}}", "text", r->out, r->out_len, "data", "prompt_tokens",
                (json_int_t)r->stats.n_prompt, "reused", (json_int_t)r->stats.n_reused, "generated",
                (json_int_t)r->stats.n_generated, "ms", r->stats.total_ms);
  server_request_finish(r, result);
}

void explain_handle(struct server *s, json_t *id, json_t *arguments, json_t *work_done_token) {
  json_t *arg = json_array_get(arguments, 0);
  json_t *uri = NULL, *range = NULL;
  if (json_is_object(arg)) {
    uri = json_object_get(arg, "uri");
    if (!uri) uri = json_object_get(json_object_get(arg, "textDocument"), "uri");
    range = json_object_get(arg, "range");
  } else if (json_is_string(arg)) {
    uri = arg;
    range = json_array_get(arguments, 1);
  }
  struct lsp_position start, end;
  if (!json_is_string(uri) || !server_parse_range(range, &start, &end)) {
    server_reply_error(s, id, JSONRPC_INVALID_PARAMS,
                       "augury.explain needs arguments [{uri, range}] or "
                       "[{textDocument: {uri}, range}]");
    return;
  }
  struct document *doc = documents_find(s->docs, json_string_value(uri));
  if (!doc) {
    server_reply_error(s, id, JSONRPC_INVALID_PARAMS, "document %s is not open",
                       json_string_value(uri));
    return;
  }
  size_t from, to;
  struct aug_err err = {0};
  if (document_text_offset(&doc->text, start, s->encoding, &from, &err) ||
      document_text_offset(&doc->text, end, s->encoding, &to, &err)) {
    server_reply_error(s, id, JSONRPC_INVALID_PARAMS, "%s: %s", json_string_value(uri), err.msg);
    return;
  }
  if (to <= from || to - from > EXPLAIN_MAX_SELECTION) {
    server_reply_error(s, id, JSONRPC_INVALID_PARAMS,
                       "augury.explain: the range must select 1..%d bytes (it selects %lld)",
                       EXPLAIN_MAX_SELECTION, (long long)to - (long long)from);
    return;
  }
  if (s->model_state != MODEL_READY) {
    static const char *const states[] = {"none", "loading", "ready", "failed"};
    /* Not ready: an empty answer at once, with the reason, rather than a wait. */
    server_reply(s, id, json_pack("{s:s,s:s}", "text", "", "state", states[s->model_state]));
    return;
  }
  struct active_request *r = server_request_new(s, REQUEST_EXPLAIN, id);
  if (r) {
    r->uri = aug_strndup(json_string_value(uri), json_string_length(uri));
    r->text = aug_strndup(doc->text.data + from, to - from);
    r->prefix_len = to - from;
    r->language = aug_strndup(doc->language_id, strlen(doc->language_id));
    r->out_cap = EXPLAIN_OUT_CAP;
    r->out = aug_malloc(r->out_cap);
  }
  if (!r || !r->uri || !r->text || !r->language || !r->out) {
    if (r) server_request_free(r);
    server_reply_error(s, id, JSONRPC_INTERNAL_ERROR, "out of memory for an explain request");
    return;
  }
  r->settings = s->config;
  r->settings.model_path = r->settings.file_model_path = NULL;
  r->settings.languages = NULL;
  r->progress = progress_begin(s, work_done_token, "augury: explain", NULL);
  scheduler_job_init(&r->job, explain_run, explain_done, r);
  r->job.progress = explain_progress;
  r->submitted = true;
  completion_cancel_speculation(s, NULL); /* the user asked for this: it goes first */
  scheduler_submit(s->scheduler, &r->job);
}
