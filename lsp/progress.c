/* Work-done progress (LSP 3.18 "Work Done Progress"): with the client's workDoneToken, begin is
 * sent at once; otherwise the server creates a token with window/workDoneProgress/create and starts
 * reporting only after the client answered (the spec forbids using the token before). Reports made
 * meanwhile are folded into begin; an end before the answer is sent right after begin. */
#include <stdlib.h>
#include <string.h>

#include "engine/alloc.h"
#include "lsp/server_internal.h"

enum progress_state { PROGRESS_CREATING, PROGRESS_ACTIVE, PROGRESS_FAILED };

struct progress {
  struct server *server;
  json_t *token;
  enum progress_state state;
  char *title;
  json_t *message; /* latest message (string) or NULL */
  int percentage;
  bool ended;
  char *end_message;
};

static void progress_free(struct progress *p) {
  json_decref(p->token);
  json_decref(p->message);
  aug_free(p->title);
  aug_free(p->end_message);
  aug_free(p);
}

static void send_value(struct progress *p, json_t *value) {
  if (!value) return;
  server_notify(p->server, "$/progress", json_pack("{s:O,s:o}", "token", p->token, "value", value));
}

static void send_begin(struct progress *p) {
  json_t *v = json_pack("{s:s,s:s,s:b}", "kind", "begin", "title", p->title, "cancellable", 0);
  if (v && p->message) json_object_set(v, "message", p->message);
  if (v && p->percentage >= 0) json_object_set_new(v, "percentage", json_integer(p->percentage));
  send_value(p, v);
}

static void send_end(struct progress *p) {
  json_t *v = json_pack("{s:s}", "kind", "end");
  if (v && p->end_message) json_object_set_new(v, "message", json_string(p->end_message));
  send_value(p, v);
}

static void created(struct server *s, json_t *result, json_t *error, void *user) {
  struct progress *p = user;
  if (error) {
    p->state = PROGRESS_FAILED;
  } else {
    p->state = PROGRESS_ACTIVE;
    send_begin(p);
  }
  if (p->ended) {
    if (p->state == PROGRESS_ACTIVE) send_end(p);
    progress_free(p);
  }
}

static void dropped(void *user) {
  progress_free(user);
}

struct progress *progress_begin(struct server *s, const json_t *token, const char *title,
                                const char *message) {
  if (!token && !s->client_work_done_progress) return NULL;
  if (token && !json_is_string(token) && !json_is_integer(token)) return NULL;
  struct progress *p = aug_calloc(1, sizeof *p);
  if (!p) return NULL;
  p->server = s;
  p->percentage = -1;
  p->title = aug_strndup(title, strlen(title));
  p->message = message ? json_string(message) : NULL;
  p->token = token ? json_copy((json_t *)token)
                   : json_sprintf("augury-%lld", (long long)++s->next_progress_token);
  if (!p->title || !p->token) {
    progress_free(p);
    return NULL;
  }
  if (token) {
    p->state = PROGRESS_ACTIVE;
    send_begin(p);
    return p;
  }
  p->state = PROGRESS_CREATING;
  server_request(s, "window/workDoneProgress/create", json_pack("{s:O}", "token", p->token),
                 created, dropped, p);
  return p;
}

void progress_report(struct progress *p, const char *message, size_t message_len, int percentage) {
  if (!p || p->ended) return;
  json_t *m = message ? json_stringn(message, message_len) : NULL;
  json_decref(p->message);
  p->message = m;
  if (percentage >= 0) p->percentage = percentage;
  if (p->state != PROGRESS_ACTIVE) return;
  json_t *v = json_pack("{s:s}", "kind", "report");
  if (v && m) json_object_set(v, "message", m);
  if (v && percentage >= 0) json_object_set_new(v, "percentage", json_integer(percentage));
  send_value(p, v);
}

void progress_end(struct progress *p, const char *message) {
  if (!p) return;
  if (message) p->end_message = aug_strndup(message, strlen(message));
  if (p->state == PROGRESS_CREATING) {
    p->ended = true; /* freed when the create request is answered or dropped */
    return;
  }
  if (p->state == PROGRESS_ACTIVE) send_end(p);
  progress_free(p);
}
