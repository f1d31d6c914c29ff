/* The remote completion provider (see provider_remote.h). One request at a time on one easy
 * handle (its connection is kept for the next request), driven by a multi handle so that the
 * engine thread can look at the cancel flag every REMOTE_POLL_MS while the transfer runs.
 * Response shapes (llama.cpp tools/server): /infill answers {"content", "tokens_predicted",
 * "tokens_evaluated", "timings": {"prompt_n", "prompt_ms", "predicted_n", "cache_n"}};
 * /v1/completions answers {"choices": [{"text", "finish_reason"}], "usage": {"prompt_tokens",
 * "completion_tokens"}}; errors are {"error": {"code", "message", "type"}} with an HTTP status. */
#include "plugins/provider_remote.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "engine/alloc.h"
#include "plugins/pipeline.h"
#include "plugins/prompt.h"
#include "engine/clock.h"

#define REMOTE_POLL_MS 10
#define REMOTE_MAX_RESPONSE (4u << 20)
#define REMOTE_MAX_PROMPT (1u << 20)
/* The longest timeoutMs / connectTimeoutMs (10 minutes, as the server's own time settings). */
#define REMOTE_MAX_MS 600000

struct provider_remote {
  struct augury_plugin table;
  char base[1024];
  char endpoint[1100];
  bool infill;
  char model[256];
  char *auth_header; /* "Authorization: Bearer ..." (owned, wiped at destroy), or NULL */
  char *token;       /* the token alone, to redact it from anything shown (owned) */
  long timeout_ms, connect_timeout_ms;
  bool tls_verify;
  enum fim_family fim;
  double temperature;
  char description[1200];
  CURL *easy;
  CURLM *multi;
  /* The response of the request in flight. */
  char *body;
  size_t body_len, body_cap;
  bool body_too_big;
};

/* Replaces every occurrence of the token in msg by "***": a server may echo a header back. */
static void redact(const struct provider_remote *r, char *msg) {
  if (!r->token || !*r->token) return;
  size_t tl = strlen(r->token);
  char *at;
  while ((at = strstr(msg, r->token)) != NULL) {
    memmove(at + 3, at + tl, strlen(at + tl) + 1);
    memcpy(at, "***", 3);
  }
}

static int remote_supports(void *self, uint32_t capability) {
  return capability == AUGURY_CAP_COMPLETION;
}

static size_t on_body(char *data, size_t size, size_t n, void *user) {
  struct provider_remote *r = user;
  size_t len = size * n;
  if (r->body_len + len + 1 > REMOTE_MAX_RESPONSE) {
    r->body_too_big = true;
    return 0; /* aborts the transfer */
  }
  if (r->body_len + len + 1 > r->body_cap) {
    size_t cap = r->body_cap ? r->body_cap : 16384;
    while (cap < r->body_len + len + 1)
      cap *= 2;
    char *b = aug_realloc(r->body, cap);
    if (!b) return 0;
    r->body = b;
    r->body_cap = cap;
  }
  memcpy(r->body + r->body_len, data, len);
  r->body_len += len;
  r->body[r->body_len] = '\0';
  return len;
}

/* The request body; NULL when out of memory or the prompt does not fit. */
static char *request_body(struct provider_remote *r, const struct augury_completion_request *req,
                          const struct pipeline_call *call, char *error, size_t error_cap) {
  const struct completion_request *cr = &call->req->completion;
  /* The cursor's line up to the cursor goes after the FIM middle marker (prompt.h): /infill's
   * "prompt" field is placed there by llama.cpp, and our text prompt does the same. */
  size_t line_start = cr->prefix_len;
  while (line_start > 0 && cr->prefix[line_start - 1] != '\n')
    line_start--;
  if (!cr->cursor_line_in_middle) line_start = cr->prefix_len;
  json_t *body = NULL;
  if (r->infill) {
    json_t *extra = json_array();
    for (size_t i = 0; extra && i < req->n_context; i++)
      json_array_append_new(extra,
                            json_pack("{s:s,s:s%}", "filename",
                                      req->context[i].name ? req->context[i].name : "context",
                                      "text", req->context[i].text, req->context[i].text_len));
    body =
        json_pack("{s:s%,s:s%,s:s%,s:o,s:i,s:f,s:b,s:b}", "input_prefix", cr->prefix, line_start,
                  "input_suffix", cr->suffix, cr->suffix_len, "prompt", cr->prefix + line_start,
                  cr->prefix_len - line_start, "input_extra", extra, "n_predict", req->max_tokens,
                  "temperature", r->temperature, "stream", 0, "cache_prompt", 1);
  } else {
    struct fim_input in = {cr->prefix,
                           line_start,
                           cr->suffix,
                           cr->suffix_len,
                           cr->repo_name,
                           cr->path,
                           cr->prefix_tokens,
                           cr->suffix_tokens,
                           cr->snap_lines,
                           cr->prefix + line_start,
                           cr->prefix_len - line_start,
                           req->context,
                           req->n_context};
    size_t cap = cr->prefix_len + cr->suffix_len + 4096;
    for (size_t i = 0; i < req->n_context; i++)
      cap += req->context[i].text_len * 2 + 256;
    if (cap > REMOTE_MAX_PROMPT) cap = REMOTE_MAX_PROMPT;
    char *prompt = aug_malloc(cap * 2);
    size_t len = 0;
    struct aug_err err = {0};
    if (!prompt || prompt_format_fim_text(r->fim, &in, prompt, cap * 2, &len, &err)) {
      snprintf(error, error_cap, "%.200s", prompt ? err.msg : "out of memory for the prompt");
      aug_free(prompt);
      return NULL;
    }
    body = json_pack("{s:s%,s:i,s:f,s:b}", "prompt", prompt, len, "max_tokens", req->max_tokens,
                     "temperature", r->temperature, "stream", 0);
    if (body && r->model[0]) json_object_set_new(body, "model", json_string(r->model));
    aug_free(prompt);
  }
  char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
  json_decref(body);
  if (!text) snprintf(error, error_cap, "out of memory for the request body");
  return text;
}

/* Reads the server's answer into result; negative with error filled when it is not one. */
static int parse_answer(struct provider_remote *r, long status,
                        struct augury_completion_result *result) {
  json_error_t jerr;
  json_t *root = r->body_len ? json_loadb(r->body, r->body_len, 0, &jerr) : NULL;
  int rc = 0;
  if (status >= 400) {
    const char *msg = json_string_value(json_object_get(json_object_get(root, "error"), "message"));
    if (!msg) msg = json_string_value(json_object_get(root, "error"));
    snprintf(result->error, sizeof result->error, "HTTP %ld%s%.200s", status, msg ? ": " : "",
             msg ? msg : "");
    rc = AUGURY_PLUGIN_EIO;
  } else if (!root) {
    snprintf(result->error, sizeof result->error, "HTTP %ld with a body that is not JSON%s%s",
             status, r->body_len ? ": " : " (empty)", r->body_len ? jerr.text : "");
    rc = AUGURY_PLUGIN_EIO;
  } else {
    json_t *text;
    if (r->infill) {
      text = json_object_get(root, "content");
      json_t *timings = json_object_get(root, "timings");
      result->tokens_generated =
          (uint64_t)json_integer_value(json_object_get(root, "tokens_predicted"));
      uint64_t evaluated = (uint64_t)json_integer_value(json_object_get(root, "tokens_evaluated"));
      /* cache_n in timings (newer servers), else tokens_cached. */
      json_t *cache_n = json_object_get(timings, "cache_n");
      uint64_t cached =
          (uint64_t)json_integer_value(cache_n ? cache_n : json_object_get(root, "tokens_cached"));
      uint64_t prompt_n = (uint64_t)json_integer_value(json_object_get(timings, "prompt_n"));
      result->tokens_prompt = evaluated;
      result->tokens_reused = cached;
      result->tokens_evaluated = prompt_n;
      result->prompt_ms = json_number_value(json_object_get(timings, "prompt_ms"));
    } else {
      text = json_object_get(json_array_get(json_object_get(root, "choices"), 0), "text");
      json_t *usage = json_object_get(root, "usage");
      result->tokens_prompt = (uint64_t)json_integer_value(json_object_get(usage, "prompt_tokens"));
      result->tokens_generated =
          (uint64_t)json_integer_value(json_object_get(usage, "completion_tokens"));
      result->tokens_evaluated = result->tokens_prompt;
    }
    if (!json_is_string(text)) {
      snprintf(result->error, sizeof result->error, "the answer has no %s",
               r->infill ? "\"content\"" : "\"choices\"[0].\"text\"");
      rc = AUGURY_PLUGIN_EIO;
    } else {
      size_t n = json_string_length(text);
      if (n >= result->cap) n = result->cap - 1;
      memcpy(result->text, json_string_value(text), n);
      result->text[n] = '\0';
      result->len = n;
    }
  }
  json_decref(root);
  return rc;
}

static int remote_complete(void *self, const struct augury_completion_request *req,
                           struct augury_completion_result *result) {
  struct provider_remote *r = self;
  const struct pipeline_call *call = req->host_internal;
  result->served_by = r->description;
  if (!call) {
    snprintf(result->error, sizeof result->error, "the remote provider is the host's own");
    return AUGURY_PLUGIN_EINVAL;
  }
  char *body = request_body(r, req, call, result->error, sizeof result->error);
  if (!body) return AUGURY_PLUGIN_ENOMEM;
  r->body_len = 0;
  r->body_too_big = false;
  struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
  if (headers && r->auth_header) {
    struct curl_slist *h = curl_slist_append(headers, r->auth_header);
    if (h) headers = h;
  }
  CURL *e = r->easy;
  curl_easy_setopt(e, CURLOPT_URL, r->endpoint);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, r->timeout_ms);
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, r->connect_timeout_ms);
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L); /* the engine thread: no SIGALRM for timeouts */
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, r->tls_verify ? 1L : 0L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, r->tls_verify ? 2L : 0L);
  /* Never follow a redirect: it would carry the Authorization header to another host. */
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  char curl_error[CURL_ERROR_SIZE] = "";
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, curl_error);
  curl_multi_add_handle(r->multi, e);
  double t0 = aug_now_ms();
  int running = 1, rc = 0;
  CURLcode done = CURLE_OK;
  while (running) {
    if (req->cancelled && req->cancelled(req->cancel_data)) {
      rc = AUGURY_PLUGIN_ECANCELED;
      snprintf(result->error, sizeof result->error, "cancelled after %.0f ms", aug_now_ms() - t0);
      break;
    }
    CURLMcode mc = curl_multi_perform(r->multi, &running);
    if (mc == CURLM_OK && running) mc = curl_multi_poll(r->multi, NULL, 0, REMOTE_POLL_MS, NULL);
    if (mc != CURLM_OK) {
      rc = AUGURY_PLUGIN_EIO;
      snprintf(result->error, sizeof result->error, "curl: %s", curl_multi_strerror(mc));
      break;
    }
  }
  if (!running && rc == 0) {
    int left = 0;
    CURLMsg *m;
    while ((m = curl_multi_info_read(r->multi, &left)) != NULL)
      if (m->msg == CURLMSG_DONE) done = m->data.result;
  }
  /* Removing the handle aborts a transfer still running (the cancelled case). */
  curl_multi_remove_handle(r->multi, e);
  curl_slist_free_all(headers);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, NULL);
  curl_easy_setopt(e, CURLOPT_POSTFIELDS, NULL);
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, NULL);
  free(body);
  result->total_ms = aug_now_ms() - t0;
  if (rc == 0 && done != CURLE_OK) {
    rc = done == CURLE_OPERATION_TIMEDOUT ? AUGURY_PLUGIN_ETIMEOUT : AUGURY_PLUGIN_EIO;
    snprintf(result->error, sizeof result->error, "%s",
             r->body_too_big ? "the answer is over 4 MiB"
             : curl_error[0] ? curl_error
                             : curl_easy_strerror(done));
  }
  if (rc == 0) {
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    rc = parse_answer(r, status, result);
  }
  redact(r, result->error);
  return rc;
}

/* An optional time setting in ms: an integer in 1..REMOTE_MAX_MS, else AUG_EINVAL naming it. */
static int remote_setting_ms(const json_t *settings, const char *key, long *out,
                             struct aug_err *err) {
  json_t *v = json_object_get(settings, key);
  if (!v) return 0;
  if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > REMOTE_MAX_MS) {
    char shown[64];
    size_t n = json_dumpb(v, shown, sizeof shown - 1, JSON_COMPACT | JSON_ENCODE_ANY);
    shown[n < sizeof shown ? n : sizeof shown - 1] = '\0';
    return aug_err_set(err, AUG_EINVAL, "remote: %s must be an integer in 1..%d ms, got %s", key,
                       REMOTE_MAX_MS, n < sizeof shown - 1 ? shown : "a long value");
  }
  *out = (long)json_integer_value(v);
  return 0;
}

int provider_remote_create(const json_t *settings, char *(*getenv_fn)(const char *),
                           struct provider_remote **out, struct aug_err *err) {
  *out = NULL;
  const char *url = json_string_value(json_object_get(settings, "url"));
  if (!url || (strncmp(url, "http://", 7) && strncmp(url, "https://", 8)))
    return aug_err_set(err, AUG_EINVAL,
                       "remote: settings need \"url\": \"http://host:port\" or \"https://...\"");
  if (strlen(url) >= 1024) return aug_err_set(err, AUG_ERANGE, "remote: url is over 1023 bytes");
  const char *api = json_string_value(json_object_get(settings, "api"));
  if (api && strcmp(api, "openai") && strcmp(api, "infill"))
    return aug_err_set(err, AUG_EINVAL, "remote: api must be \"openai\" or \"infill\", got '%s'",
                       api);
  const char *fim = json_string_value(json_object_get(settings, "fim"));
  enum fim_family family = FIM_FAMILY_QWEN;
  if (fim && !prompt_fim_family_from_name(fim, &family))
    return aug_err_set(err, AUG_EINVAL,
                       "remote: fim must be \"qwen\", \"codellama\" or \"deepseek\", got '%s'",
                       fim);
  const char *auth_env = json_string_value(json_object_get(settings, "authEnv"));
  const char *token = auth_env && *auth_env ? getenv_fn(auth_env) : NULL;
  if (auth_env && *auth_env && (!token || !*token))
    return aug_err_set(err, AUG_ENOTFOUND,
                       "remote: the environment variable %s (authEnv) is not set or empty",
                       auth_env);
  /* Checked, not clamped or defaulted: curl refuses a negative timeout and keeps its own, none
   * at all, so a typo would let a request hang the engine thread. */
  long timeout_ms = 10000, connect_timeout_ms = 2000;
  double temperature = 0;
  int rc = remote_setting_ms(settings, "timeoutMs", &timeout_ms, err);
  if (rc == 0) rc = remote_setting_ms(settings, "connectTimeoutMs", &connect_timeout_ms, err);
  if (rc) return rc;
  json_t *t = json_object_get(settings, "temperature");
  if (t) {
    if (!json_is_number(t) || json_number_value(t) < 0 || json_number_value(t) > 2)
      return aug_err_set(err, AUG_EINVAL, "remote: temperature must be a number in 0..2");
    temperature = json_number_value(t);
  }
  struct provider_remote *r = aug_calloc(1, sizeof *r);
  if (!r) return aug_err_set(err, AUG_ENOMEM, "remote: out of memory");
  snprintf(r->base, sizeof r->base, "%s", url);
  size_t bl = strlen(r->base);
  while (bl > 0 && r->base[bl - 1] == '/')
    r->base[--bl] = '\0';
  r->infill = api && !strcmp(api, "infill");
  snprintf(r->endpoint, sizeof r->endpoint, "%s%s", r->base,
           r->infill ? "/infill" : "/v1/completions");
  snprintf(r->model, sizeof r->model, "%s",
           json_string_value(json_object_get(settings, "model"))
               ? json_string_value(json_object_get(settings, "model"))
               : "");
  r->timeout_ms = timeout_ms;
  r->connect_timeout_ms = connect_timeout_ms;
  r->tls_verify = !json_is_false(json_object_get(settings, "tlsVerify"));
  r->temperature = temperature;
  r->fim = family;
  /* The description never has credentials: a URL with user:password@ is shown without them. */
  const char *host = strstr(r->base, "://") + 3;
  const char *at = strchr(host, '@');
  const char *slash = strchr(host, '/');
  if (at && (!slash || at < slash)) host = at + 1;
  snprintf(r->description, sizeof r->description, "remote %s %.*s://%s",
           r->infill ? "/infill" : "/v1/completions", (int)(strstr(r->base, "://") - r->base),
           r->base, host);
  if (token) {
    size_t tl = strlen(token);
    r->token = aug_strndup(token, tl);
    r->auth_header = aug_malloc(tl + 32);
    if (r->auth_header) snprintf(r->auth_header, tl + 32, "Authorization: Bearer %s", token);
  }
  if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
      (token && (!r->token || !r->auth_header)) || !(r->easy = curl_easy_init()) ||
      !(r->multi = curl_multi_init())) {
    provider_remote_destroy(r);
    return aug_err_set(err, AUG_ENOMEM, "remote: cannot set up libcurl");
  }
  r->table = (struct augury_plugin){
      .abi_version = AUGURY_PLUGIN_ABI_VERSION,
      .struct_size = sizeof(struct augury_plugin),
      .name = PROVIDER_REMOTE_NAME,
      .version = "1",
      .self = r,
      .supports = remote_supports,
      .complete = remote_complete,
  };
  *out = r;
  return 0;
}

static void wipe_free(char *s) {
  if (!s) return;
  volatile char *p = s;
  while (*p)
    *p++ = 0;
  aug_free(s);
}

void provider_remote_destroy(struct provider_remote *r) {
  if (!r) return;
  if (r->multi) curl_multi_cleanup(r->multi);
  if (r->easy) curl_easy_cleanup(r->easy);
  curl_global_cleanup();
  wipe_free(r->auth_header);
  wipe_free(r->token);
  aug_free(r->body);
  aug_free(r);
}

const struct augury_plugin *provider_remote_plugin(struct provider_remote *remote) {
  return &remote->table;
}

const char *provider_remote_description(const struct provider_remote *remote) {
  return remote->description;
}
