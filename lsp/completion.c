/* textDocument/inlineCompletion (LSP 3.18) and textDocument/completion: validation, the debounce
 * for typing-triggered requests, superseding (a newer request or an edit on the same document
 * answers the older one with ContentModified), the completion cache (repeated and typed-through
 * states are answered on the loop thread), speculation, and the engine-thread job that runs the
 * FIM decode. Replies carry per-item stats in `data`.
 * Speculation: after every edit the server starts completing the new state on its own, and after
 * every answer the state after accepting it. A speculation stays alive while the user types what
 * it has written so far (its partial text is published by the engine thread), so a suggestion
 * that keeps up with typing is ready at the pause; a client request for a state it covers waits
 * for it rather than starting over. At most one speculation runs; client requests and explain
 * cancel it when they need the engine for another state. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/alloc.h"
#include "engine/clock.h"
#include "plugins/prompt.h"
#include "lsp/server_internal.h"

/* The prefix window's first line moves in steps of this many lines (see prompt_window). */
#define COMPLETION_SNAP_LINES 32
#define COMPLETION_OUT_CAP 16384

/* Bytes a user may type into a running speculation and still be served by it. */
#define SPECULATION_MAX_TYPED 256

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
    if ((r->kind == REQUEST_INLINE_COMPLETION || r->kind == REQUEST_COMPLETION) && r->uri &&
        !strcmp(r->uri, uri))
      server_request_abort(r, code);
    r = next;
  }
  server_arm_debounce(s);
}

/* Engine thread: one JSON line per served completion for benchmarks (the promptLog setting): the
 * request id, the prompt's token ids and what was generated, so a peer can time the same work. */
static void log_prompt(struct server *s, const struct active_request *r) {
  size_t n = 0;
  const int32_t *ids = NULL;
  bool local = !strcmp(r->provider, PIPELINE_LOCAL_PROVIDER);
  if (local && s->generator) ids = generator_last_prompt(s->generator, &n);
  flockfile(s->prompt_log); /* the loop thread writes the lines of answers it served itself */
  /* The context pieces the plugins gave (JSON-escaped by jansson), then the token ids. */
  json_t *context = json_array();
  for (size_t i = 0; context && i < r->result.context.n_pieces; i++) {
    const struct plugin_piece *p = &r->result.context.pieces[i];
    json_array_append_new(context,
                          json_pack("{s:s,s:s?,s:I,s:s%}", "plugin", p->plugin, "name", p->name,
                                    "tokens", (json_int_t)p->tokens, "text", p->text, p->text_len));
  }
  char *context_text = context ? json_dumps(context, JSON_COMPACT) : NULL;
  json_decref(context);
  /* Who served it: "local", or the remote's description (never with credentials). */
  json_t *who = json_string(r->result.served_by ? r->result.served_by : r->provider);
  char *who_text = who ? json_dumps(who, JSON_ENCODE_ANY) : NULL;
  json_decref(who);
  fprintf(s->prompt_log, "{\"id\":%s,\"provider\":%s,\"context\":%s,", r->id_text,
          who_text ? who_text : "null", context_text ? context_text : "[]");
  free(who_text);
  free(context_text);
  fprintf(s->prompt_log,
          "\"generated\":%zu,\"drafted\":%zu,\"accepted\":%zu,\"shrunk\":%zu,"
          "\"reused\":%zu,"
          "\"shifted\":%zu,\"restored\":%zu,\"evaluated\":%zu,\"ms\":%.3f,\"prompt\":[",
          r->stats.n_generated, r->stats.n_drafted, r->stats.n_accepted, r->stats.n_shrunk,
          r->stats.n_reused, r->stats.n_shifted, r->stats.n_restored, r->stats.n_evaluated,
          r->stats.total_ms);
  for (size_t i = 0; i < n; i++)
    fprintf(s->prompt_log, i ? ",%d" : "%d", ids[i]);
  fprintf(s->prompt_log, "]}\n");
  fflush(s->prompt_log);
  funlockfile(s->prompt_log);
}

/* Loop thread: a prompt-log line for an answer that took no prompt of its own: from the cache, or
 * from the speculation named by served_by (whose own line has its prompt). */
static void log_served(struct server *s, const char *id_text, const char *served_by) {
  if (!s->prompt_log) return;
  flockfile(s->prompt_log);
  fprintf(s->prompt_log, "{\"id\":%s,\"servedBy\":%s}\n", id_text, served_by);
  fflush(s->prompt_log);
  funlockfile(s->prompt_log);
}

/* Engine thread: a speculation publishes what it has written so far. */
static void publish_partial(void *user, const char *text, size_t len) {
  struct active_request *r = user;
  if (len > r->out_cap) len = r->out_cap;
  pthread_mutex_lock(&r->lock);
  memcpy(r->partial, text, len);
  r->partial_len = len;
  r->writing = true;
  pthread_mutex_unlock(&r->lock);
}

/* Engine thread: a speculation's answer by the budget of the request that adopted it; it goes on
 * writing. The loop thread takes it in speculation_progress. */
static void publish_answer(void *user, const char *text, size_t len,
                           const struct generation_stats *so_far) {
  struct active_request *r = user;
  if (len > r->out_cap) len = r->out_cap;
  pthread_mutex_lock(&r->lock);
  memcpy(r->answer, text, len);
  r->answer_len = len;
  r->answer_stats = *so_far;
  r->answer_ready = true;
  pthread_mutex_unlock(&r->lock);
  scheduler_job_progress(&r->job);
}

/* Engine thread: a speculation's prompt plan (completion_request.on_prompt_plan), for the requests
 * that wait for it (speculation_progress). */
static void publish_prompt_plan(void *user, double ready_at_ms, double own_ms) {
  struct active_request *r = user;
  atomic_store(&r->own_prompt_ms, own_ms);
  atomic_store(&r->prompt_ready_at_ms, ready_at_ms);
  scheduler_job_progress(&r->job);
}

/* The prompt budget of r's job. An editor's request has its own. A speculation works in idle time:
 * on the whole window, except one an edit started (speculationPromptBudget), which the pause is
 * likely to wait for. After a jump its whole window costs seconds (~1000 tokens at ~130/s on 2
 * cores) and is evaluated from its far end, so when the user pauses the near part is not resident
 * and the request's own job evaluates its cut window from nothing (~170 tokens, 1.3 s on the
 * latency bench). Cut to the request's budget, the speculation evaluates what the request would,
 * near the cursor, first; once that is resident, the next keystrokes' speculations grow the whole
 * window back (grow_when_cut_resident; the engine keeps the cut in its prompt cache meanwhile),
 * since a cut window for good costs hits (14 against 20 of 74 pauses on the latency bench). Off by
 * default: growing back costs hits too (config.h). */
static double speculation_budget(const struct active_request *r) {
  if (r->kind == REQUEST_ALTERNATIVE) return 0;
  if (r->kind == REQUEST_SPECULATIVE && !(r->edit_started && r->settings.speculation_prompt_budget))
    return 0;
  return r->settings.prompt_budget_ms;
}

static void completion_run(struct scheduler_job *job) {
  struct active_request *r = job->data;
  struct server *s = r->server;
  if (atomic_load(&job->cancel)) {
    r->rc = AUG_ECANCELED;
    return;
  }
  bool local = !strcmp(r->provider, PIPELINE_LOCAL_PROVIDER);
  if (local && !s->generator) {
    r->rc = aug_err_set(&r->err, AUG_ENOTFOUND, "no model is loaded");
    return;
  }
  struct completion_request req = {
      .prefix = r->text,
      .prefix_len = r->prefix_len,
      .suffix = r->text + r->prefix_len,
      .suffix_len = r->suffix_len,
      .repo_name = r->repo_name,
      .path = r->path,
      .prefix_tokens = (size_t)r->settings.prefix_tokens,
      .suffix_tokens = (size_t)r->settings.suffix_tokens,
      .snap_lines = COMPLETION_SNAP_LINES,
      .max_tokens = (int)r->settings.max_tokens,
      .time_budget_ms = r->settings.time_budget_ms,
      .time_budget_until_ms = r->kind == REQUEST_SPECULATIVE ? &r->budget_until_ms : NULL,
      .on_prompt_plan = r->kind == REQUEST_SPECULATIVE ? publish_prompt_plan : NULL,
      .request_prompt_budget_ms = r->settings.prompt_budget_ms,
      .cursor_line_in_middle = r->settings.cursor_line_in_middle,
      .draft_max = (size_t)r->settings.prompt_lookup,
      .prompt_budget_ms = speculation_budget(r),
      .grow_when_cut_resident = r->kind == REQUEST_SPECULATIVE,
      .on_partial = r->kind == REQUEST_SPECULATIVE ? publish_partial : NULL,
      .partial_user = r,
      .on_answer = r->kind == REQUEST_SPECULATIVE ? publish_answer : NULL,
      .answer_user = r,
      .avoid = (const char *const *)r->avoid,
      .avoid_len = r->avoid_len,
      .n_avoid = r->n_avoid,
  };
  struct pipeline_request preq = {
      .completion = req,
      .uri = r->uri,
      .language_id = r->language,
      .doc_text = r->doc_text,
      .doc_len = r->doc_len,
      .cursor = r->cursor,
      .provider = r->provider,
      .syntax = r->settings.syntax_check ? s->syntax : NULL,
  };
  pipeline_result_free(&r->result);
  memset(&r->result, 0, sizeof r->result);
  struct engine *engine = s->generator ? generator_engine(s->generator) : NULL;
  uint32_t faults = engine ? engine_gpu_faults(engine) : 0;
  r->rc = pipeline_complete(s->plugins, s->generator, &preq, &job->cancel, r->out, r->out_cap,
                            &r->out_len, &r->result, &r->err);
  r->gpu_fault = engine && engine_gpu_faults(engine) > faults;
  r->stats = r->result.stats;
  if (r->rc == 0 && s->prompt_log) log_prompt(s, r);
}

static json_t *stats_json(const struct generation_stats *st, const char *provider) {
  return json_pack("{s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:f,s:f},s:s,s:s}", "stats",
                   "reused", (json_int_t)st->n_reused, "shifted", (json_int_t)st->n_shifted,
                   "restored", (json_int_t)st->n_restored, "evaluated", (json_int_t)st->n_evaluated,
                   "drafted", (json_int_t)st->n_drafted, "accepted", (json_int_t)st->n_accepted,
                   "shrunk", (json_int_t)st->n_shrunk, "generated", (json_int_t)st->n_generated,
                   "prompt_tokens", (json_int_t)st->n_prompt, "prompt_ms", st->prompt_ms,
                   "generate_ms", st->generate_ms, "ms", st->total_ms, "stop",
                   st->stop ? st->stop : "none", "provider", provider);
}

/* Counts an answer for the provider that served it (augury.status servedBy). */
static void count_served(struct server *s, const char *provider) {
  if (!s->served_by && !(s->served_by = json_object())) return;
  json_t *n = json_object_get(s->served_by, provider);
  json_object_set_new(s->served_by, provider, json_integer(n ? json_integer_value(n) + 1 : 1));
}

/* Loop thread: what the plugins did wrong during the request (host.h notes), to the log. */
static void report_notes(struct server *s, const struct active_request *r) {
  const char *line = r->result.context.notes;
  while (*line) {
    const char *end = strchr(line, '\n');
    size_t len = end ? (size_t)(end - line) : strlen(line);
    bool disabled = len >= 8 && memmem(line, len, "disabled", 8);
    server_log(s, disabled ? 1 : 2, "augury: plugin %.*s", (int)len, line);
    line += len + (end ? 1 : 0);
  }
}

static json_t *position_json(struct lsp_position p) {
  return json_pack("{s:I,s:I}", "line", (json_int_t)p.line, "character", (json_int_t)p.character);
}

static json_t *result_json(bool inline_format, struct lsp_position position, const char *out,
                           size_t out_len, json_t *data);

/* Remembers an answer for repeated and typed-through requests (completion_cache.h). */
static void remember(struct server *s, const struct active_request *r) {
  struct aug_err err = {0};
  if (!s->config.completion_cache) return;
  if (completion_cache_put(s->completions, r->uri, r->text, r->prefix_len, r->text + r->prefix_len,
                           r->suffix_len, r->out, r->out_len, &err))
    server_log(s, 2, "augury: %s", err.msg);
}

/* Loop thread: counts the syntax check of a job that answered (augury.status syntax). */
static void count_syntax(struct server *s, const struct active_request *r) {
  if (!r->result.syntax_checked) return;
  const struct syntax_filter_result *sr = &r->result.syntax;
  s->syntax_ms += sr->update_ms + sr->check_ms;
  switch (sr->outcome) {
  case SYNTAX_FILTER_KEPT: s->n_syntax_kept++; break;
  case SYNTAX_FILTER_TRIMMED: s->n_syntax_trimmed++; break;
  case SYNTAX_FILTER_DROPPED: s->n_syntax_dropped++; break;
  case SYNTAX_FILTER_SKIPPED:
    s->n_syntax_skipped++;
    s->syntax_last_skip = sr->reason;
    break;
  }
}

static void speculate(struct server *s, const char *uri, const struct document *doc, size_t cursor,
                      const char *insert, size_t insert_len);
static void speculation_done(struct server *s, struct active_request *spec);
static void speculation_progress(struct scheduler_job *job);
static bool alternatives_start(struct server *s, const struct active_request *r);
static void alternative_done(struct server *s, struct active_request *a);

static void completion_done(struct scheduler_job *job) {
  struct active_request *r = job->data;
  struct server *s = r->server;
  if (s->stopping) {
    server_request_free(r);
    return;
  }
  r->submitted = false;
  report_notes(s, r);
  if (r->gpu_fault) {
    /* The engine rebuilt itself on fewer GPU layers (or the CPU): the user should know why
     * suggestions may come slower from now on, whether an editor's request or a speculation met
     * the fault. */
    s->n_gpu_faults++;
    snprintf(s->gpu_fault, sizeof s->gpu_fault, "%s", r->err.msg);
    server_show(s, 2, "augury: %s", r->err.msg);
  }
  if (r->kind == REQUEST_SPECULATIVE) {
    speculation_done(s, r);
    return;
  }
  if (r->kind == REQUEST_ALTERNATIVE) {
    alternative_done(s, r);
    return;
  }
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
  count_syntax(s, r);
  s->tokens_reused += r->stats.n_reused;
  s->tokens_evaluated += r->stats.n_evaluated;
  s->tokens_generated += r->stats.n_generated;
  s->last_total_ms = r->stats.total_ms;
  const char *served_by = r->result.served_by ? r->result.served_by : r->provider;
  count_served(s, served_by);
  if (r->out_len == 0) {
    /* Nothing worth showing (or nothing that kept the file parsing: syntax "dropped" in
     * augury.status); the stats still say what was done. */
    json_t *res = empty_result(inline_format);
    server_request_finish(r, res);
    return;
  }
  remember(s, r);
  /* Any edit since the request would have superseded it: the document is still in r's state, so
   * the state after accepting the answer is r's text with the answer at the cursor. */
  struct document *doc = documents_find(s->docs, r->uri);
  if (doc && !alternatives_start(s, r)) speculate(s, r->uri, doc, r->cursor, r->out, r->out_len);
  json_t *data = stats_json(&r->stats, served_by);
  if (data && r->result.syntax_checked) {
    /* What the syntax check did to the provider's text, and what it cost (a first check of a
     * document parses it whole). */
    json_object_set_new(data, "syntax",
                        json_string(syntax_filter_outcome_name(r->result.syntax.outcome)));
    json_object_set_new(data, "syntaxMs",
                        json_real(r->result.syntax.update_ms + r->result.syntax.check_ms));
  }
  /* With context providers: what they gave and how long gathering took (its budget bounds it). */
  if (data && s->plugins && plugin_host_has_context(s->plugins)) {
    const struct plugin_context *c = &r->result.context;
    json_object_set_new(data, "context",
                        json_pack("{s:I,s:f,s:s}", "pieces", (json_int_t)c->n_pieces, "ms", c->ms,
                                  "notes", c->notes));
  }
  server_request_finish(r, result_json(inline_format, r->position, r->out, r->out_len, data));
}

static json_t *item_json(bool inline_format, struct lsp_position position, const char *out,
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
  return item;
}

static json_t *result_json(bool inline_format, struct lsp_position position, const char *out,
                           size_t out_len, json_t *data) {
  json_t *item = item_json(inline_format, position, out, out_len, data);
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

/* Whether a request waiting for spec, still evaluating its prompt, gets its answer sooner from its
 * own job: the speculation's prompt is expected to be resident later than the request's own would
 * be, cut to its prompt budget, after the speculation stops at its next chunk. -1: not known yet
 * (no cost per token measured, or the speculation has not built its prompt). */
static int own_job_sooner(struct active_request *spec) {
  double ready_at = atomic_load(&spec->prompt_ready_at_ms);
  if (ready_at <= 0) return -1;
  return ready_at - aug_now_ms() > atomic_load(&spec->own_prompt_ms);
}

/* A request waiting for a speculation that is still evaluating its prompt (it has none to spare:
 * it works in idle time, and after a jump its prompt is the whole window, 24 s on 2 cores) stops
 * waiting when its own job is expected to answer sooner (own_job_sooner), or, when that is not
 * known, after speculationWaitMs (waited): the speculation is cancelled, keeping what it evaluated
 * (engine_set_prompt_stable), and the request's own job does the rest under the budget. One that
 * is writing goes on: its time budget bounds it. Leaving one that evaluates the very prompt the
 * request would cost the chunk it is in and gains nothing: on the latency bench that was ~850 ms
 * at the pause after Enter. speculationWaitMs 0 waits however long it takes. */
static void leave_speculation_if_sooner(struct server *s, struct active_request *r, bool waited) {
  struct active_request *spec = r->adopted;
  if (s->config.speculation_wait_ms <= 0) return;
  pthread_mutex_lock(&spec->lock);
  bool writing = spec->writing;
  pthread_mutex_unlock(&spec->lock);
  if (writing) return;
  int sooner = own_job_sooner(spec);
  if (sooner == 0 || (sooner < 0 && !waited)) return;
  r->adopted = NULL;
  r->due_ms = 0;
  s->n_abandoned++;
  server_request_abort(spec, JSONRPC_CONTENT_MODIFIED);
  r->submitted = true;
  scheduler_submit(s->scheduler, &r->job);
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
      if (r->adopted) {
        leave_speculation_if_sooner(s, r, true);
      } else {
        r->submitted = true;
        scheduler_submit(s->scheduler, &r->job);
      }
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

/* The reply data of an answer from the cache; spec when a speculation the request waited for put
 * it there, with st its stats (at its end, or at its early answer). */
static json_t *cached_data(const struct completion_cache_hit *hit, double lookup_ms,
                           const struct active_request *spec, const struct generation_stats *st,
                           const char *provider) {
  if (spec && spec->result.served_by) provider = spec->result.served_by;
  return json_pack(
      "{s:{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f,s:b,s:b,s:I},s:s,s:s}", "stats", "reused",
      (json_int_t)(st ? st->n_reused : 0), "shifted", (json_int_t)(st ? st->n_shifted : 0),
      "shrunk", (json_int_t)(st ? st->n_shrunk : 0), "restored",
      (json_int_t)(st ? st->n_restored : 0), "evaluated", (json_int_t)(st ? st->n_evaluated : 0),
      "generated", (json_int_t)(st ? st->n_generated : 0), "prompt_tokens",
      (json_int_t)(st ? st->n_prompt : 0), "ms", st ? st->total_ms : lookup_ms, "cached", !spec,
      "speculative", spec != NULL, "typed", (json_int_t)hit->typed, "stop",
      spec ? (st->stop ? st->stop : "none") : "cache", "provider", provider);
}

/* Looks the state (uri, doc, cursor) up in the completion cache; on a hit returns the reply's
 * result (NULL on a miss). */
static json_t *lookup_cached(struct server *s, const char *uri, const struct document *doc,
                             size_t cursor, struct lsp_position pos, bool inline_format,
                             const struct active_request *spec,
                             const struct generation_stats *spec_stats,
                             struct completion_cache_hit *hit) {
  /* uv_hrtime, not the loop's cached time: this measures the lookup itself. */
  uint64_t t0 = uv_hrtime();
  if (!completion_cache_lookup(s->completions, uri, doc->text.data, doc->text.len, cursor, hit))
    return NULL;
  double ms = (double)(uv_hrtime() - t0) / 1e6;
  return result_json(inline_format, pos, hit->rest, hit->rest_len,
                     cached_data(hit, ms, spec, spec_stats, server_plugins_provider(s)));
}

/* The running speculation on uri whose state the user has typed along from, if any; every other
 * speculation is cancelled, since the engine is about to be wanted for this state. */
static struct active_request *covering_speculation(struct server *s, const char *uri,
                                                   const struct document *doc, size_t cursor) {
  struct active_request *found = NULL;
  struct active_request *r = s->active;
  while (r) {
    struct active_request *next = r->next;
    if (r->kind == REQUEST_SPECULATIVE && !r->reply_code) {
      long k = -1;
      if (!found && doc && cursor != SIZE_MAX && !strcmp(r->uri, uri)) {
        pthread_mutex_lock(&r->lock);
        /* Typing ahead of one that has written nothing yet would bet its whole prompt on a
         * guess: only the very state it started from is covered then. */
        size_t max_typed =
            r->writing || s->config.speculation_wait_ms <= 0 ? SPECULATION_MAX_TYPED : 0;
        k = completion_state_typed(r->text, r->prefix_len, r->text + r->prefix_len, r->suffix_len,
                                   r->partial, r->partial_len, true, max_typed, doc->text.data,
                                   doc->text.len, cursor);
        pthread_mutex_unlock(&r->lock);
      }
      if (k >= 0)
        found = r;
      else
        server_request_abort(r, JSONRPC_CONTENT_MODIFIED);
    } else if (r->kind == REQUEST_ALTERNATIVE) {
      server_request_abort(r, JSONRPC_CONTENT_MODIFIED);
    }
    r = next;
  }
  return found;
}

void completion_cancel_speculation(struct server *s, const char *uri) {
  struct active_request *r = s->active;
  while (r) {
    struct active_request *next = r->next;
    if ((r->kind == REQUEST_SPECULATIVE || r->kind == REQUEST_ALTERNATIVE) &&
        (!uri || !strcmp(r->uri, uri)))
      server_request_abort(r, JSONRPC_CONTENT_MODIFIED);
    r = next;
  }
}

/* Fills a completion request for the cursor at byte offset cursor of text[0..len): the prompt
 * window's text, the output buffers, the settings and the job. false when out of memory. */
static bool fill_request(struct server *s, struct active_request *r, const char *uri,
                         const char *text, size_t len, size_t cursor) {
  size_t prefix_start, suffix_end;
  prompt_window(text, len, cursor, (size_t)s->config.prefix_lines, (size_t)s->config.suffix_lines,
                COMPLETION_SNAP_LINES, &prefix_start, &suffix_end);
  r->uri = aug_strndup(uri, strlen(uri));
  r->cursor = cursor;
  r->prefix_len = cursor - prefix_start;
  r->suffix_len = suffix_end - cursor;
  r->text = aug_malloc(suffix_end - prefix_start + 1);
  r->out_cap = COMPLETION_OUT_CAP;
  r->out = aug_malloc(r->out_cap);
  if (!r->uri || !r->text || !r->out) return false;
  repo_and_path(s, r->uri, r);
  memcpy(r->text, text + prefix_start, suffix_end - prefix_start);
  r->text[suffix_end - prefix_start] = '\0';
  /* Numbers only: the strings in the copy are not owned by the request. */
  r->settings = s->config;
  r->settings.model_path = r->settings.file_model_path = NULL;
  r->settings.languages = NULL;
  r->settings.prompt_log = NULL;
  r->settings.plugins = r->settings.remote = NULL;
  r->settings.provider = NULL;
  r->settings.gpu_options = NULL;
  r->provider = server_plugins_provider(s);
  struct document *doc = documents_find(s->docs, uri);
  if (doc && doc->language_id &&
      !(r->language = aug_strndup(doc->language_id, strlen(doc->language_id))))
    return false;
  /* Context providers may look beyond the window (scopes, imports), and the syntax check parses
   * the whole file (a window cut mid-block has errors of its own at its edges): they get the
   * document. */
  if ((s->plugins && plugin_host_has_context(s->plugins)) || r->settings.syntax_check) {
    r->doc_text = aug_strndup(text, len);
    if (!r->doc_text) return false;
    r->doc_len = len;
  }
  scheduler_job_init(&r->job, completion_run, completion_done, r);
  return true;
}

/* Whether completions need the local model (the local provider serves them). */
static bool needs_model(struct server *s) {
  return !strcmp(server_plugins_provider(s), PIPELINE_LOCAL_PROVIDER);
}

static bool can_complete(struct server *s, const struct document *doc) {
  return s->config.enable &&
         (!needs_model(s) || (s->model_state == MODEL_READY && s->model_has_fim)) &&
         config_language_enabled(&s->config, doc->language_id);
}

/* Starts completing the state "doc with insert at cursor" ahead of any request (insert_len 0:
 * the document as it is). Replaces every other speculation. Failure to start one costs nothing
 * but the head start, so it is silent. */
static void speculate(struct server *s, const char *uri, const struct document *doc, size_t cursor,
                      const char *insert, size_t insert_len) {
  completion_cancel_speculation(s, NULL);
  /* Only the local engine speculates: a remote server is asked when the editor asks. */
  if (!s->config.speculate || !s->config.completion_cache || !can_complete(s, doc) || s->stopping ||
      !needs_model(s))
    return;
  char *joined = NULL;
  const char *text = doc->text.data;
  size_t len = doc->text.len;
  if (insert_len > 0) {
    joined = aug_malloc(len + insert_len + 1);
    if (!joined) return;
    memcpy(joined, text, cursor);
    memcpy(joined + cursor, insert, insert_len);
    memcpy(joined + cursor + insert_len, text + cursor, len - cursor);
    joined[len + insert_len] = '\0';
    text = joined;
    len += insert_len;
    cursor += insert_len;
  }
  struct active_request *r = server_request_new(s, REQUEST_SPECULATIVE, NULL);
  bool ok = r && fill_request(s, r, uri, text, len, cursor) &&
            (r->partial = aug_malloc(r->out_cap)) != NULL &&
            (r->answer = aug_malloc(r->out_cap)) != NULL;
  aug_free(joined);
  if (!ok) {
    server_request_free(r);
    return;
  }
  r->edit_started = insert_len == 0;
  s->n_speculative++;
  snprintf(r->id_text, sizeof r->id_text, "\"spec-%llu\"", (unsigned long long)s->n_speculative);
  r->job.progress = speculation_progress;
  r->submitted = true;
  scheduler_submit(s->scheduler, &r->job);
}

/* Answers the requests waiting for spec from the cache, where spec's answer (answer_len bytes, st
 * its stats) has just gone. A request for spec's very state gets an empty answer when that is
 * empty. At spec's end (final) a request the answer does not cover starts its own job; before it,
 * it goes on waiting. The first answer given, as the state after accepting it, goes to *next
 * (owned by the caller) unless one is there already. */
struct next_state {
  char *accepted; /* the suggestion; NULL: none */
  size_t accepted_len, cursor;
};

static void serve_adopters(struct server *s, struct active_request *spec,
                           const struct generation_stats *st, bool ok, size_t answer_len,
                           bool final, struct next_state *next) {
  struct active_request *r = s->active;
  while (r) {
    struct active_request *following = r->next;
    if (r->adopted == spec) {
      struct document *doc = documents_find(s->docs, r->uri);
      struct completion_cache_hit hit;
      json_t *result = ok && doc
                           ? lookup_cached(s, r->uri, doc, r->cursor, r->position,
                                           r->kind == REQUEST_INLINE_COMPLETION, spec, st, &hit)
                           : NULL;
      if (result) {
        r->adopted = NULL;
        s->n_adopted++;
        s->n_completions++;
        s->last_total_ms = st->total_ms;
        log_served(s, r->id_text, spec->id_text);
        if (!next->accepted && (next->accepted = aug_strndup(hit.rest, hit.rest_len)) != NULL) {
          next->accepted_len = hit.rest_len;
          next->cursor = r->cursor;
        }
        server_request_finish(r, result);
      } else if (ok && doc && answer_len == 0 && r->cursor == spec->cursor) {
        /* The speculation ran for exactly this state and had nothing to suggest. */
        r->adopted = NULL;
        s->n_adopted++;
        s->n_completions++;
        server_request_finish(r, empty_result(r->kind == REQUEST_INLINE_COMPLETION));
      } else if (final) {
        r->adopted = NULL;
        r->submitted = true;
        scheduler_submit(s->scheduler, &r->job);
      }
    }
    r = following;
  }
}

/* Loop thread: a speculation planned its prompt (completion_request.on_prompt_plan), or answered by
 * the budget of the request that adopted it and goes on writing (completion_request.on_answer).
 * The requests waiting for it leave it if their own jobs are now expected to be sooner. The answer
 * goes to the cache, for the waiting requests now; the speculation's final text replaces it there
 * when it ends. */
static void speculation_progress(struct scheduler_job *job) {
  struct active_request *spec = job->data;
  struct server *s = spec->server;
  if (spec->reply_code || s->stopping) return;
  for (struct active_request *r = s->active, *next; r; r = next) {
    next = r->next;
    if (r->adopted == spec) leave_speculation_if_sooner(s, r, false);
  }
  pthread_mutex_lock(&spec->lock);
  bool ready = spec->answer_ready && !spec->reply_code && !s->stopping;
  spec->answer_ready = false;
  struct generation_stats st = spec->answer_stats;
  size_t len = spec->answer_len;
  struct aug_err err = {0};
  int rc = 0;
  if (ready && len > 0)
    rc = completion_cache_put(s->completions, spec->uri, spec->text, spec->prefix_len,
                              spec->text + spec->prefix_len, spec->suffix_len, spec->answer, len,
                              &err);
  pthread_mutex_unlock(&spec->lock);
  if (rc) server_log(s, 2, "augury: %s", err.msg);
  if (!ready || rc) return;
  spec->answered_early = len > 0;
  struct next_state next = {0};
  serve_adopters(s, spec, &st, true, len, false, &next);
  aug_free(next.accepted); /* the speculation itself is writing what comes after it */
}

/* How many bytes of spec's answer were typed into the document since spec's state; -1 when the
 * document is elsewhere. */
static long typed_into_answer(const struct active_request *spec, const struct document *doc) {
  size_t most = spec->out_len < SPECULATION_MAX_TYPED ? spec->out_len : SPECULATION_MAX_TYPED;
  for (size_t k = 0; k < most; k++)
    if (completion_state_typed(spec->text, spec->prefix_len, spec->text + spec->prefix_len,
                               spec->suffix_len, spec->out, spec->out_len, false, k, doc->text.data,
                               doc->text.len, spec->cursor + k) == (long)k)
      return (long)k;
  return -1;
}

/* A speculation ended: its answer goes to the cache, and the requests that waited for it are
 * answered from there (typed-through included) or, when it has nothing for them, start their own
 * job now. Then the state after accepting what was shown is speculated on. */
static void speculation_done(struct server *s, struct active_request *spec) {
  bool ok = spec->rc == 0 && !spec->reply_code;
  if (ok) {
    count_syntax(s, spec);
    s->tokens_reused += spec->stats.n_reused;
    s->tokens_evaluated += spec->stats.n_evaluated;
    s->tokens_generated += spec->stats.n_generated;
    if (spec->out_len > 0) remember(s, spec);
  }
  struct next_state next = {0};
  serve_adopters(s, spec, &spec->stats, ok, spec->out_len, true, &next);
  struct document *doc = documents_find(s->docs, spec->uri);
  if (!next.accepted && ok && spec->answered_early && spec->out_len > 0 && doc) {
    /* Its adopters were answered early: what follows is the state after accepting all of it,
     * from where the user is in it. */
    long k = typed_into_answer(spec, doc);
    if (k >= 0 && (next.accepted = aug_strndup(spec->out + k, spec->out_len - (size_t)k))) {
      next.accepted_len = spec->out_len - (size_t)k;
      next.cursor = spec->cursor + (size_t)k;
    }
  }
  spec->reply_code = JSONRPC_CONTENT_MODIFIED; /* ended: the next speculation must not abort it */
  if (doc && next.accepted)
    speculate(s, spec->uri, doc, next.cursor, next.accepted, next.accepted_len);
  aug_free(next.accepted);
  server_request_free(spec);
}

/* ---- alternatives (the alternatives setting) ----------------------------------------------- */

void completion_forget_alternatives(struct server *s, const char *uri) {
  struct alternative_set *a = &s->alternatives;
  if (!a->uri || (uri && strcmp(a->uri, uri))) return;
  aug_free(a->uri);
  aug_free(a->text);
  for (size_t i = 0; i < a->n; i++)
    aug_free(a->items[i]);
  memset(a, 0, sizeof *a);
}

/* Whether the document is exactly the state the alternatives are for. */
static bool alternatives_match(const struct server *s, const char *uri, const struct document *doc,
                               size_t cursor) {
  const struct alternative_set *a = &s->alternatives;
  return a->uri && !strcmp(a->uri, uri) && cursor == a->cursor &&
         completion_state_typed(a->text, a->prefix_len, a->text + a->prefix_len, a->suffix_len, "",
                                0, false, 0, doc->text.data, doc->text.len, cursor) == 0;
}

/* An explicit invocation answered from the cache: the alternatives found so far for its state go
 * with the answer (an editor cycling through suggestions asks again). Takes cached. */
static json_t *with_alternatives(struct server *s, const char *uri, const struct document *doc,
                                 size_t cursor, struct lsp_position pos, bool inline_format,
                                 json_t *cached) {
  const struct alternative_set *a = &s->alternatives;
  if (a->n < 2 || !alternatives_match(s, uri, doc, cursor)) return cached;
  json_t *items = json_array();
  for (size_t i = 0; items && i < a->n; i++) {
    json_t *data = json_pack("{s:{s:b,s:I},s:s}", "stats", "cached", 1, "alternative",
                             (json_int_t)i, "provider", PIPELINE_LOCAL_PROVIDER);
    if (json_array_append_new(items,
                              item_json(inline_format, pos, a->items[i], a->lens[i], data))) {
      json_decref(items);
      items = NULL;
    }
  }
  json_t *result = !items          ? NULL
                   : inline_format ? json_pack("{s:o}", "items", items)
                                   : json_pack("{s:b,s:o}", "isIncomplete", 0, "items", items);
  if (!result) return cached; /* out of memory: the one suggestion is still an answer */
  json_decref(cached);
  s->n_alternative_answers++;
  return result;
}

/* Queues one more alternative for the state kept in s->alternatives, in idle time; false when
 * none could start. */
static bool submit_alternative(struct server *s) {
  struct alternative_set *a = &s->alternatives;
  struct document *doc = documents_find(s->docs, a->uri);
  if (!doc || !alternatives_match(s, a->uri, doc, a->cursor)) return false;
  struct active_request *r = server_request_new(s, REQUEST_ALTERNATIVE, NULL);
  if (!r || !fill_request(s, r, a->uri, doc->text.data, doc->text.len, a->cursor)) {
    server_request_free(r);
    return false;
  }
  for (size_t i = 0; i < a->n; i++) {
    if (!(r->avoid[i] = aug_strndup(a->items[i], a->lens[i]))) {
      server_request_free(r);
      return false;
    }
    r->avoid_len[i] = a->lens[i];
    r->n_avoid++;
  }
  a->tries++;
  snprintf(r->id_text, sizeof r->id_text, "\"alt-%zu\"", a->tries);
  r->submitted = true;
  scheduler_submit(s->scheduler, &r->job);
  return true;
}

/* Starts the alternatives of the state (uri, text[0..prefix_len + suffix_len) the prompt window
 * with the cursor at prefix_len, byte offset cursor in the document) whose first suggestion is
 * first[0..first_len), in idle time; false when none started. */
static bool alternatives_begin(struct server *s, const char *uri, const char *text,
                               size_t prefix_len, size_t suffix_len, size_t cursor,
                               const char *first, size_t first_len) {
  if (s->config.alternatives < 2 || !s->config.completion_cache || first_len == 0 ||
      !needs_model(s))
    return false;
  completion_forget_alternatives(s, NULL);
  struct alternative_set *a = &s->alternatives;
  a->uri = aug_strndup(uri, strlen(uri));
  a->text = aug_strndup(text, prefix_len + suffix_len);
  a->items[0] = aug_strndup(first, first_len);
  a->n = a->items[0] ? 1 : 0;
  if (!a->uri || !a->text || !a->n) {
    completion_forget_alternatives(s, NULL);
    return false;
  }
  a->lens[0] = first_len;
  a->prefix_len = prefix_len;
  a->suffix_len = suffix_len;
  a->cursor = cursor;
  if (submit_alternative(s)) return true;
  completion_forget_alternatives(s, NULL);
  return false;
}

/* An explicit invocation was answered by the local engine: its alternatives start (the state
 * after accepting it is speculated once they are done). */
static bool alternatives_start(struct server *s, const struct active_request *r) {
  return r->invoked && !strcmp(r->provider, PIPELINE_LOCAL_PROVIDER) &&
         alternatives_begin(s, r->uri, r->text, r->prefix_len, r->suffix_len, r->cursor, r->out,
                            r->out_len);
}

/* An explicit invocation answered from the cache (the editor asks again to cycle through
 * suggestions): the alternatives of that state start unless they exist or are on their way. */
static void alternatives_start_for_hit(struct server *s, const char *uri,
                                       const struct document *doc, size_t cursor,
                                       const struct completion_cache_hit *hit) {
  if (alternatives_match(s, uri, doc, cursor)) return;
  size_t start, end;
  prompt_window(doc->text.data, doc->text.len, cursor, (size_t)s->config.prefix_lines,
                (size_t)s->config.suffix_lines, COMPLETION_SNAP_LINES, &start, &end);
  alternatives_begin(s, uri, doc->text.data + start, cursor - start, end - cursor, cursor,
                     hit->rest, hit->rest_len);
}

/* One alternative ended: kept when it says something new; the next one starts until there are
 * enough or the tries are spent, then the state after accepting the first answer is speculated,
 * as after any answer. */
static void alternative_done(struct server *s, struct active_request *r) {
  struct alternative_set *a = &s->alternatives;
  bool ok =
      r->rc == 0 && !r->reply_code && a->uri && !strcmp(a->uri, r->uri) && r->cursor == a->cursor;
  if (ok) {
    s->tokens_reused += r->stats.n_reused;
    s->tokens_evaluated += r->stats.n_evaluated;
    s->tokens_generated += r->stats.n_generated;
    /* One that is the start of another (the same text cut sooner, from a first token that is a
     * piece of the other's) shows the user nothing new. */
    bool fresh = r->out_len > 0;
    for (size_t i = 0; fresh && i < a->n; i++) {
      size_t common = a->lens[i] < r->out_len ? a->lens[i] : r->out_len;
      fresh = memcmp(a->items[i], r->out, common) != 0;
    }
    if (fresh && (a->items[a->n] = aug_strndup(r->out, r->out_len)) != NULL) {
      a->lens[a->n++] = r->out_len;
      s->n_alternatives++;
    }
  }
  server_request_free(r);
  if (!ok) return; /* an edit or another request stopped it: the state is gone or moved on */
  if ((int64_t)a->n < s->config.alternatives && a->tries < ALTERNATIVE_MAX_TRIES &&
      submit_alternative(s))
    return;
  struct document *doc = documents_find(s->docs, a->uri);
  if (doc && alternatives_match(s, a->uri, doc, a->cursor))
    speculate(s, a->uri, doc, a->cursor, a->items[0], a->lens[0]);
}

void completion_document_changed(struct server *s, const char *uri, size_t cursor) {
  completion_abort_for_uri(s, uri, JSONRPC_CONTENT_MODIFIED);
  struct document *doc = documents_find(s->docs, uri);
  if (covering_speculation(s, uri, doc, cursor) || !doc || cursor == SIZE_MAX) return;
  speculate(s, uri, doc, cursor, NULL, 0);
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
  const char *uri_text = json_string_value(uri);
  /* Only the newest request per document is worth answering. */
  completion_abort_for_uri(s, uri_text, JSONRPC_CONTENT_MODIFIED);
  bool enabled = s->config.enable && config_language_enabled(&s->config, doc->language_id);
  struct completion_cache_hit hit;
  json_t *cached =
      enabled && s->config.completion_cache
          ? lookup_cached(s, uri_text, doc, cursor, pos, inline_format, NULL, NULL, &hit)
          : NULL;
  if (cached && !automatic && hit.typed == 0) {
    cached = with_alternatives(s, uri_text, doc, cursor, pos, inline_format, cached);
    alternatives_start_for_hit(s, uri_text, doc, cursor, &hit);
  }
  if (cached) {
    s->n_cache_hits++;
    if (s->prompt_log) {
      char id_text[64];
      size_t n = json_dumpb(id, id_text, sizeof id_text - 1, JSON_ENCODE_ANY);
      id_text[n < sizeof id_text ? n : 0] = '\0';
      log_served(s, id_text, "\"cache\"");
    }
    server_reply(s, id, cached);
    return;
  }
  /* During a load the request waits for the model (bounded by loadWaitMs) rather than getting an
   * empty answer the user cannot tell from "nothing to suggest". */
  bool model_needed = needs_model(s);
  bool wait_for_load =
      model_needed && s->model_state == MODEL_LOADING && s->config.load_wait_ms > 0;
  if (!enabled ||
      (model_needed && !wait_for_load && (s->model_state != MODEL_READY || !s->model_has_fim))) {
    s->n_empty++;
    server_reply(s, id, empty_result(inline_format));
    return;
  }
  struct active_request *spec = covering_speculation(s, uri_text, doc, cursor);
  struct active_request *r =
      server_request_new(s, inline_format ? REQUEST_INLINE_COMPLETION : REQUEST_COMPLETION, id);
  if (r) {
    r->position = pos;
    r->invoked = !automatic;
  }
  if (!r || !fill_request(s, r, uri_text, doc->text.data, doc->text.len, cursor)) {
    if (r) server_request_free(r);
    server_reply_error(s, id, JSONRPC_INTERNAL_ERROR, "out of memory for a completion request");
    return;
  }
  if (automatic) r->settings.time_budget_ms = s->config.typing_time_budget_ms;
  if (spec) {
    /* Started at the edit (or after the last answer) and still writing what the user typed. It
     * answers this request by the request's budget, counted from now, and goes on writing on its
     * own long budget (on_answer): a typing-triggered request waiting for all of it waited ~1.5
     * s. That request takes the first complete line at once: it loses nothing, since the lines
     * after it still reach the cache for typed-through requests (latency bench, 74 pauses: p50
     * 178 against 265 ms at the request's 250 ms, same hits). The newest adopter sets it. */
    r->adopted = spec;
    if (automatic)
      atomic_store(&spec->budget_until_ms, aug_now_ms());
    else if (r->settings.time_budget_ms > 0)
      atomic_store(&spec->budget_until_ms, aug_now_ms() + r->settings.time_budget_ms);
    leave_speculation_if_sooner(s, r, false);
    if (r->adopted && s->config.speculation_wait_ms > 0) {
      /* The fallback while the speculation's costs are not known. */
      r->due_ms = server_now_ms(s) + s->config.speculation_wait_ms;
      server_arm_debounce(s);
    }
    return;
  }
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
