/* textDocument/inlineCompletion (LSP 3.18) and textDocument/completion: validation, the debounce
 * for typing-triggered requests, superseding (a newer request or an edit on the same document
 * answers the older one with ContentModified), and the engine-thread job that runs the FIM decode.
 * Replies carry per-item stats in `data`. */
#include <stdio.h>
#include <string.h>

#include "engine/alloc.h"
#include "lsp/prompt.h"
#include "lsp/server_internal.h"

/* The prefix window's first line moves in steps of this many lines (see prompt_window). */
#define COMPLETION_SNAP_LINES 32
#define COMPLETION_OUT_CAP 16384

/* LSP 3.18 InlineCompletionTriggerKind: 1 Invoked, 2 Automatic. */
#define TRIGGER_AUTOMATIC 2

static json_t *empty_result(bool inline_format) {
  return inline_format ? json_pack("{s:[]}", "items")
                       : json_pack("{s:b,s:[]}", "isIncomplete", 0, "items");
}

void completion_abort_for_uri(struct server *s, const char *uri, int code) {
  struct active_request *r = s->active;
  while (r) {
    struct active_request *next = r->next;
    if (r->kind != REQUEST_EXPLAIN && r->uri && !strcmp(r->uri, uri)) server_request_abort(r, code);
    r = next;
  }
  server_arm_debounce(s);
}

/* Engine thread: one JSON line per served completion for benchmarks (the promptLog setting): the
 * request id, the prompt's token ids and what was generated, so a peer can time the same work. */
static void log_prompt(struct server *s, const struct active_request *r) {
  size_t n = 0;
  const int32_t *ids = generator_last_prompt(s->generator, &n);
  fprintf(s->prompt_log,
          "{\"id\":%s,\"generated\":%zu,\"reused\":%zu,\"evaluated\":%zu,"
          "\"ms\":%.3f,\"prompt\":[",
          r->id_text, r->stats.n_generated, r->stats.n_reused, r->stats.n_evaluated,
          r->stats.total_ms);
  for (size_t i = 0; i < n; i++)
    fprintf(s->prompt_log, i ? ",%d" : "%d", ids[i]);
  fprintf(s->prompt_log, "]}\n");
  fflush(s->prompt_log);
}

static void completion_run(struct scheduler_job *job) {
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
  struct completion_request req = {
      r->text,
      r->prefix_len,
      r->text + r->prefix_len,
      r->suffix_len,
      r->repo_name,
      r->path,
      (size_t)r->settings.prefix_tokens,
      (size_t)r->settings.suffix_tokens,
      COMPLETION_SNAP_LINES,
      (int)r->settings.max_tokens,
      r->settings.time_budget_ms,
      r->settings.cursor_line_in_middle,
  };
  r->rc = generator_complete(s->generator, &req, &job->cancel, r->out, r->out_cap, &r->out_len,
                             &r->stats, &r->err);
  if (r->rc == 0 && s->prompt_log) log_prompt(s, r);
}

static json_t *stats_json(const struct generation_stats *st) {
  return json_pack("{s:{s:I,s:I,s:I,s:I,s:f,s:f,s:f},s:s}", "stats", "reused",
                   (json_int_t)st->n_reused, "evaluated", (json_int_t)st->n_evaluated, "generated",
                   (json_int_t)st->n_generated, "prompt_tokens", (json_int_t)st->n_prompt,
                   "prompt_ms", st->prompt_ms, "generate_ms", st->generate_ms, "ms", st->total_ms,
                   "stop", st->stop ? st->stop : "none");
}

static json_t *position_json(struct lsp_position p) {
  return json_pack("{s:I,s:I}", "line", (json_int_t)p.line, "character", (json_int_t)p.character);
}

static json_t *result_json(bool inline_format, struct lsp_position position, const char *out,
                           size_t out_len, json_t *data);

/* Remembers an answer for repeated and typed-through requests (completion_cache.h). */
static void remember(struct server *s, const struct active_request *r) {
  struct aug_err err = {0};
  if (completion_cache_put(s->completions, r->uri, r->text, r->prefix_len, r->text + r->prefix_len,
                           r->suffix_len, r->out, r->out_len, &err))
    server_log(s, 2, "augury: %s", err.msg);
}

static void completion_done(struct scheduler_job *job) {
  struct active_request *r = job->data;
  struct server *s = r->server;
  if (s->stopping) {
    server_request_free(r);
    return;
  }
  r->submitted = false;
  if (r->rc == AUG_ECANCELED && !r->reply_code) r->reply_code = JSONRPC_REQUEST_CANCELLED;
  if (r->reply_code) {
    server_request_finish(r, NULL);
    return;
  }
  bool inline_format = r->kind == REQUEST_INLINE_COMPLETION;
  if (r->rc) {
    server_log(s, 2, "augury: completion failed: %s",
               r->err.msg[0] ? r->err.msg : aug_strerror(r->rc));
    s->n_empty++;
    server_request_finish(r, empty_result(inline_format));
    return;
  }
  s->n_completions++;
  s->tokens_reused += r->stats.n_reused;
  s->tokens_evaluated += r->stats.n_evaluated;
  s->tokens_generated += r->stats.n_generated;
  s->last_total_ms = r->stats.total_ms;
  if (r->out_len == 0) {
    /* Nothing worth showing; the stats still say what was done. */
    json_t *res = empty_result(inline_format);
    server_request_finish(r, res);
    return;
  }
  remember(s, r);
  server_request_finish(
      r, result_json(inline_format, r->position, r->out, r->out_len, stats_json(&r->stats)));
}

static json_t *result_json(bool inline_format, struct lsp_position position, const char *out,
                           size_t out_len, json_t *data) {
  json_t *range =
      json_pack("{s:o,s:o}", "start", position_json(position), "end", position_json(position));
  json_t *text = json_stringn(out, out_len);
  json_t *item;
  if (inline_format) {
    item = json_pack("{s:O,s:O,s:o}", "insertText", text, "range", range, "data", data);
  } else {
    /* The label is the first line (clients show it in a menu); the edit inserts everything. */
    size_t first = 0;
    while (first < out_len && out[first] != '\n')
      first++;
    item = json_pack("{s:s%,s:i,s:O,s:i,s:{s:O,s:O},s:o}", "label", out, first, "kind", 1,
                     "insertText", text, "insertTextFormat", 1, "textEdit", "range", range,
                     "newText", text, "data", data);
  }
  json_decref(text);
  json_decref(range);
  return inline_format ? json_pack("{s:[o]}", "items", item)
                       : json_pack("{s:b,s:[o]}", "isIncomplete", 0, "items", item);
}

/* Repository name and file path for the repository-format header: the workspace folder's name and
 * the file's path inside it, or just the file name outside a workspace. */
static void repo_and_path(struct server *s, const char *uri, struct active_request *r) {
  if (strncmp(uri, "file://", 7)) return;
  const char *path = uri + 7;
  const char *root = s->root_path;
  size_t root_len = root ? strlen(root) : 0;
  while (root_len > 1 && root[root_len - 1] == '/')
    root_len--;
  const char *rel;
  if (root && !strncmp(path, root, root_len) && path[root_len] == '/') {
    rel = path + root_len + 1;
    const char *name = root + root_len;
    while (name > root && name[-1] != '/')
      name--;
    r->repo_name = aug_strndup(name, (size_t)(root + root_len - name));
  } else {
    rel = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
  }
  r->path = aug_strndup(rel, strlen(rel));
}

void completion_submit_due(struct server *s) {
  double now = server_now_ms(s);
  struct active_request *r = s->active;
  while (r) {
    struct active_request *next = r->next;
    if (!r->submitted && r->load_wait_until_ms > 0 && r->load_wait_until_ms <= now + 0.5) {
      /* Bounded wait (loadWaitMs): say why the answer is empty instead of staying silent. */
      server_log(s, 2, "augury: the model is still loading after %lld ms: completion skipped",
                 (long long)r->settings.load_wait_ms);
      s->n_empty++;
      server_request_finish(r, empty_result(r->kind == REQUEST_INLINE_COMPLETION));
    } else if (!r->submitted && r->due_ms > 0 && r->due_ms <= now + 0.5) {
      r->due_ms = 0;
      r->submitted = true;
      scheduler_submit(s->scheduler, &r->job);
    }
    r = next;
  }
  server_arm_debounce(s);
}

void completion_model_settled(struct server *s) {
  struct active_request *r = s->active;
  while (r) {
    struct active_request *next = r->next;
    if (r->kind != REQUEST_EXPLAIN && !r->submitted && r->load_wait_until_ms > 0) {
      r->load_wait_until_ms = 0;
      if (s->model_state == MODEL_READY && s->model_has_fim) {
        r->submitted = true;
        scheduler_submit(s->scheduler, &r->job);
      } else {
        s->n_empty++;
        server_request_finish(r, empty_result(r->kind == REQUEST_INLINE_COMPLETION));
      }
    }
    r = next;
  }
  server_arm_debounce(s);
}

/* Answers from the completion cache when the document is a state already answered or one the user
 * reached by typing into that answer. */
static bool answer_from_cache(struct server *s, json_t *id, const char *uri,
                              const struct document *doc, size_t cursor, struct lsp_position pos,
                              bool inline_format) {
  /* uv_hrtime, not the loop's cached time: this measures the lookup itself. */
  uint64_t t0 = uv_hrtime();
  struct completion_cache_hit hit;
  if (!completion_cache_lookup(s->completions, uri, doc->text.data, doc->text.len, cursor, &hit))
    return false;
  double ms = (double)(uv_hrtime() - t0) / 1e6;
  s->n_cache_hits++;
  json_t *data = json_pack("{s:{s:I,s:I,s:I,s:I,s:f,s:b,s:I},s:s}", "stats", "reused",
                           (json_int_t)0, "evaluated", (json_int_t)0, "generated", (json_int_t)0,
                           "prompt_tokens", (json_int_t)0, "ms", ms, "cached", 1, "typed",
                           (json_int_t)hit.typed, "stop", "cache");
  server_reply(s, id, result_json(inline_format, pos, hit.rest, hit.rest_len, data));
  return true;
}

void completion_handle(struct server *s, json_t *id, json_t *params, bool inline_format) {
  json_t *td = json_object_get(params, "textDocument");
  json_t *uri = json_object_get(td, "uri");
  struct lsp_position pos;
  if (!json_is_string(uri) || !server_parse_position(json_object_get(params, "position"), &pos)) {
    server_reply_error(s, id, JSONRPC_INVALID_PARAMS,
                       "completion needs textDocument.uri and position {line, character}");
    return;
  }
  struct document *doc = documents_find(s->docs, json_string_value(uri));
  if (!doc) {
    server_reply_error(s, id, JSONRPC_INVALID_PARAMS, "document %s is not open",
                       json_string_value(uri));
    return;
  }
  size_t cursor;
  struct aug_err err = {0};
  if (document_text_offset(&doc->text, pos, s->encoding, &cursor, &err)) {
    server_reply_error(s, id, JSONRPC_INVALID_PARAMS, "%s: %s", json_string_value(uri), err.msg);
    return;
  }
  json_t *kind = json_object_get(json_object_get(params, "context"), "triggerKind");
  bool automatic = json_is_integer(kind) && json_integer_value(kind) == TRIGGER_AUTOMATIC;
  /* Only the newest request per document is worth answering. */
  completion_abort_for_uri(s, json_string_value(uri), JSONRPC_CONTENT_MODIFIED);
  bool enabled = config_language_enabled(&s->config, doc->language_id);
  if (enabled && answer_from_cache(s, id, json_string_value(uri), doc, cursor, pos, inline_format))
    return;
  /* During a load the request waits for the model (bounded by loadWaitMs) rather than getting an
   * empty answer the user cannot tell from "nothing to suggest". */
  bool wait_for_load = s->model_state == MODEL_LOADING && s->config.load_wait_ms > 0;
  if (!enabled || (!wait_for_load && (s->model_state != MODEL_READY || !s->model_has_fim))) {
    s->n_empty++;
    server_reply(s, id, empty_result(inline_format));
    return;
  }
  struct active_request *r =
      server_request_new(s, inline_format ? REQUEST_INLINE_COMPLETION : REQUEST_COMPLETION, id);
  size_t prefix_start, suffix_end;
  prompt_window(doc->text.data, doc->text.len, cursor, (size_t)s->config.prefix_lines,
                (size_t)s->config.suffix_lines, COMPLETION_SNAP_LINES, &prefix_start, &suffix_end);
  if (r) {
    r->uri = aug_strndup(json_string_value(uri), json_string_length(uri));
    r->position = pos;
    r->prefix_len = cursor - prefix_start;
    r->suffix_len = suffix_end - cursor;
    r->text = aug_malloc(suffix_end - prefix_start + 1);
    r->out_cap = COMPLETION_OUT_CAP;
    r->out = aug_malloc(r->out_cap);
    repo_and_path(s, r->uri, r);
  }
  if (!r || !r->uri || !r->text || !r->out) {
    if (r) server_request_free(r);
    server_reply_error(s, id, JSONRPC_INTERNAL_ERROR, "out of memory for a completion request");
    return;
  }
  memcpy(r->text, doc->text.data + prefix_start, suffix_end - prefix_start);
  r->text[suffix_end - prefix_start] = '\0';
  /* Numbers only: the strings in the copy are not owned by the request. */
  r->settings = s->config;
  r->settings.model_path = r->settings.file_model_path = NULL;
  r->settings.languages = NULL;
  scheduler_job_init(&r->job, completion_run, completion_done, r);
  if (wait_for_load) {
    s->n_load_waits++;
    r->load_wait_until_ms = server_now_ms(s) + (double)s->config.load_wait_ms;
    server_arm_debounce(s);
    return;
  }
  if (automatic && s->config.debounce_ms > 0) {
    r->due_ms = server_now_ms(s) + (double)s->config.debounce_ms;
    server_arm_debounce(s);
    return;
  }
  r->submitted = true;
  scheduler_submit(s->scheduler, &r->job);
}
