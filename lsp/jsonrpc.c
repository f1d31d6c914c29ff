/* JSON-RPC framing and message classification (see jsonrpc.h). The framer keeps one growing byte
 * buffer; [start, len) is unread. Invariant: in STATE_SKIP nothing is buffered for the skipped
 * body, so an oversized Content-Length costs no memory. All allocations go through engine/alloc.h
 * so the allocation-failure test can reach every path. */
#include "lsp/jsonrpc.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "engine/alloc.h"

/* A header part longer than this without its terminating empty line is garbage, not a header. */
#define JSONRPC_MAX_HEADER 8192

enum framer_state { STATE_HEADER, STATE_BODY, STATE_SKIP };

struct jsonrpc_framer {
  char *buf;
  size_t start, len, cap;
  size_t max_body;
  enum framer_state state;
  size_t body_len;       /* STATE_BODY: length of the body that starts at start */
  size_t skip_remaining; /* STATE_SKIP: bytes still to drop */
};

int jsonrpc_framer_create(size_t max_body, struct jsonrpc_framer **out, struct aug_err *err) {
  *out = NULL;
  struct jsonrpc_framer *f = aug_calloc(1, sizeof *f);
  if (!f) return aug_err_set(err, AUG_ENOMEM, "jsonrpc: out of memory creating the framer");
  f->max_body = max_body ? max_body : JSONRPC_MAX_BODY_DEFAULT;
  f->state = STATE_HEADER;
  *out = f;
  return 0;
}

void jsonrpc_framer_destroy(struct jsonrpc_framer *f) {
  if (!f) return;
  aug_free(f->buf);
  aug_free(f);
}

size_t jsonrpc_framer_pending(const struct jsonrpc_framer *f) {
  return f->len - f->start;
}

int jsonrpc_framer_feed(struct jsonrpc_framer *f, const char *data, size_t len,
                        struct aug_err *err) {
  if (f->state == STATE_SKIP) {
    size_t n = len < f->skip_remaining ? len : f->skip_remaining;
    f->skip_remaining -= n;
    data += n;
    len -= n;
    if (f->skip_remaining == 0) f->state = STATE_HEADER;
    if (len == 0) return 0;
  }
  /* Compact first: the unread part moves to the front so the buffer only grows with what is
   * actually pending. */
  if (f->start > 0) {
    memmove(f->buf, f->buf + f->start, f->len - f->start);
    f->len -= f->start;
    f->start = 0;
  }
  if (f->len + len > f->cap) {
    size_t cap = f->cap ? f->cap : 4096;
    while (cap < f->len + len)
      cap *= 2;
    char *buf = aug_realloc(f->buf, cap);
    if (!buf)
      return aug_err_set(err, AUG_ENOMEM, "jsonrpc: out of memory buffering %zu bytes",
                         f->len + len);
    f->buf = buf;
    f->cap = cap;
  }
  memcpy(f->buf + f->len, data, len);
  f->len += len;
  return 0;
}

static const char *find_bytes(const char *hay, size_t n, const char *needle, size_t m) {
  if (m == 0 || n < m) return NULL;
  for (size_t i = 0; i + m <= n; i++)
    if (hay[i] == needle[0] && !memcmp(hay + i, needle, m)) return hay + i;
  return NULL;
}

static const char *find_ci(const char *hay, size_t n, const char *needle) {
  size_t m = strlen(needle);
  if (n < m) return NULL;
  for (size_t i = 0; i + m <= n; i++) {
    size_t k = 0;
    while (k < m && tolower((unsigned char)hay[i + k]) == needle[k])
      k++;
    if (k == m) return hay + i;
  }
  return NULL;
}

/* RFC 7230 token characters: what a header field name may contain. */
static bool is_token_char(unsigned char c) {
  return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* fmt takes the quoted excerpt (%s) and a number (%zu); the excerpt is copied with its length
 * because header bytes are not NUL-terminated. */
static void frame_error(struct jsonrpc_frame *frame, const char *fmt, const char *text,
                        size_t text_len, size_t value) {
  char excerpt[41];
  size_t n = text_len < sizeof excerpt - 1 ? text_len : sizeof excerpt - 1;
  for (size_t i = 0; i < n; i++)
    excerpt[i] = (text[i] >= 0x20 && text[i] < 0x7f) ? text[i] : '?';
  excerpt[n] = '\0';
  frame->kind = JSONRPC_FRAME_ERROR;
  frame->body = NULL;
  frame->len = 0;
  snprintf(frame->message, sizeof frame->message, fmt, excerpt, value);
}

/* Parses the header part [h, h+n) (without the final empty line). Returns 0 and the content
 * length, or -1 with frame filled; *resync is the offset within the block where a salvaged header
 * starts (a Content-Length line after garbage), or n when the whole block is dropped. */
static int parse_header_block(struct jsonrpc_framer *f, const char *h, size_t n,
                              size_t *content_length, size_t *resync, struct jsonrpc_frame *frame) {
  bool have_length = false;
  size_t length = 0;
  size_t pos = 0;
  *resync = n;
  while (pos < n) {
    const char *line = h + pos;
    const char *eol = find_bytes(line, n - pos, "\r\n", 2);
    size_t line_len = eol ? (size_t)(eol - line) : n - pos;
    size_t name_len = 0;
    while (name_len < line_len && is_token_char((unsigned char)line[name_len]))
      name_len++;
    if (name_len == 0 || name_len == line_len || line[name_len] != ':') {
      /* Not a header line: drop everything up to a later Content-Length, if any (the body of a
       * message whose header was unusable ends up in front of the next header). */
      const char *again = find_ci(h + pos + 1, n - pos - 1, "content-length:");
      *resync = again ? (size_t)(again - h) : n;
      frame_error(frame, "jsonrpc: malformed header line '%s' (%zu bytes)", line, line_len,
                  line_len);
      return -1;
    }
    if (name_len == 14 && !strncasecmp(line, "content-length", 14)) {
      const char *v = line + 15;
      const char *end = line + line_len;
      while (v < end && (*v == ' ' || *v == '\t'))
        v++;
      const char *digits = v;
      uint64_t value = 0;
      bool overflow = false;
      while (v < end && isdigit((unsigned char)*v)) {
        if (value > (UINT64_MAX - 9) / 10) overflow = true;
        value = value * 10 + (uint64_t)(*v - '0');
        v++;
      }
      const char *digits_end = v;
      while (v < end && (*v == ' ' || *v == '\t'))
        v++;
      if (digits_end == digits || v != end) {
        frame_error(frame, "jsonrpc: Content-Length '%s' is not a number (%zu bytes)", digits,
                    (size_t)(end - digits), (size_t)(end - digits));
        return -1;
      }
      if (have_length && value != length) {
        frame_error(frame, "jsonrpc: conflicting Content-Length headers%s (%zu)", "", 0,
                    (size_t)value);
        return -1;
      }
      if (overflow || value > f->max_body) {
        /* The caller skips the body if it can trust the number; an overflowing one cannot be. */
        length = overflow ? SIZE_MAX : (size_t)value;
        frame_error(frame, "jsonrpc: Content-Length %s%zu exceeds the cap", overflow ? ">" : "",
                    overflow ? 1 : 0, overflow ? SIZE_MAX : (size_t)value);
        *content_length = length;
        return -2;
      }
      length = (size_t)value;
      have_length = true;
    }
    /* Content-Type and unknown headers are accepted and ignored (the body is always UTF-8 JSON). */
    pos += line_len + 2;
  }
  if (!have_length) {
    frame_error(frame, "jsonrpc: header without Content-Length%s (%zu header bytes)", "", 0, n);
    return -1;
  }
  *content_length = length;
  return 0;
}

void jsonrpc_framer_next(struct jsonrpc_framer *f, struct jsonrpc_frame *frame) {
  frame->kind = JSONRPC_FRAME_NONE;
  frame->body = NULL;
  frame->len = 0;
  frame->message[0] = '\0';
  for (;;) {
    size_t avail = f->len - f->start;
    const char *p = f->buf + f->start;
    if (f->state == STATE_BODY) {
      if (avail < f->body_len) return;
      frame->kind = JSONRPC_FRAME_MESSAGE;
      frame->body = p;
      frame->len = f->body_len;
      f->start += f->body_len;
      f->state = STATE_HEADER;
      return;
    }
    if (f->state == STATE_SKIP) {
      size_t n = avail < f->skip_remaining ? avail : f->skip_remaining;
      f->start += n;
      f->skip_remaining -= n;
      if (f->skip_remaining > 0) return;
      f->state = STATE_HEADER;
      continue;
    }
    /* Blank lines between messages are tolerated (some clients send a trailing CRLF). */
    while (avail >= 2 && p[0] == '\r' && p[1] == '\n') {
      f->start += 2;
      p += 2;
      avail -= 2;
    }
    if (avail == 0) return;
    const char *end = find_bytes(p, avail, "\r\n\r\n", 4);
    if (!end) {
      if (avail > JSONRPC_MAX_HEADER) {
        f->start = f->len;
        frame_error(frame, "jsonrpc: no end of header within %s%zu bytes", "", 0,
                    (size_t)JSONRPC_MAX_HEADER);
      }
      return;
    }
    size_t header_len = (size_t)(end - p);
    size_t content_length = 0, resync = 0;
    int rc = parse_header_block(f, p, header_len, &content_length, &resync, frame);
    if (rc == -1) {
      f->start += resync == header_len ? header_len + 4 : resync;
      return;
    }
    f->start += header_len + 4;
    if (rc == -2) {
      if (content_length == SIZE_MAX) return; /* untrustworthy length: resync on the next header */
      f->state = STATE_SKIP;
      f->skip_remaining = content_length;
      size_t n = f->len - f->start < content_length ? f->len - f->start : content_length;
      f->start += n;
      f->skip_remaining -= n;
      if (f->skip_remaining == 0) f->state = STATE_HEADER;
      return;
    }
    f->state = STATE_BODY;
    f->body_len = content_length;
  }
}

/* ---- messages ---------------------------------------------------------------------------- */

static bool valid_id(const json_t *id) {
  return json_is_integer(id) || json_is_string(id);
}

int jsonrpc_parse(const char *body, size_t len, struct jsonrpc_message *m, int *rpc_code,
                  json_t **id_out, struct aug_err *err) {
  memset(m, 0, sizeof *m);
  *id_out = NULL;
  json_error_t jerr;
  json_t *root = json_loadb(body, len, 0, &jerr);
  if (!root) {
    *rpc_code = JSONRPC_PARSE_ERROR;
    return aug_err_set(err, AUG_EFORMAT, "jsonrpc: body is not JSON: %s at byte %d", jerr.text,
                       jerr.position);
  }
  const char *why = NULL;
  if (!json_is_object(root)) {
    why = json_is_array(root) ? "batches are not used by LSP" : "message is not an object";
    goto invalid;
  }
  json_t *version = json_object_get(root, "jsonrpc");
  json_t *id = json_object_get(root, "id");
  json_t *method = json_object_get(root, "method");
  json_t *params = json_object_get(root, "params");
  if (json_is_null(params)) params = NULL; /* some clients send null for "no params" */
  if (id && valid_id(id)) *id_out = json_incref(id);
  if (!json_is_string(version) || strcmp(json_string_value(version), "2.0")) {
    why = "\"jsonrpc\" is not \"2.0\"";
    goto invalid;
  }
  if (method) {
    if (!json_is_string(method)) {
      why = "\"method\" is not a string";
      goto invalid;
    }
    if (id && !valid_id(id)) {
      why = "\"id\" is neither an integer nor a string";
      goto invalid;
    }
    if (params && !json_is_object(params) && !json_is_array(params)) {
      why = "\"params\" is neither an object nor an array";
      goto invalid;
    }
    m->kind = id ? JSONRPC_REQUEST : JSONRPC_NOTIFICATION;
    m->method = json_string_value(method);
    m->id = id;
    m->params = params;
  } else {
    json_t *result = json_object_get(root, "result");
    json_t *error = json_object_get(root, "error");
    if (!id || !(valid_id(id) || json_is_null(id)) || (!result == !error)) {
      why = "neither a request, a notification nor a response";
      goto invalid;
    }
    m->kind = JSONRPC_RESPONSE;
    m->id = id;
    m->result = result;
    m->error = error;
  }
  m->root = root;
  return 0;
invalid:
  *rpc_code = JSONRPC_INVALID_REQUEST;
  json_decref(root);
  return aug_err_set(err, AUG_EFORMAT, "jsonrpc: invalid message: %s", why);
}

static json_t *id_copy(json_t *id) {
  return id ? json_copy(id) : json_null();
}

json_t *jsonrpc_response(json_t *id, json_t *result) {
  json_t *msg = json_object();
  if (!msg) {
    json_decref(result);
    return NULL;
  }
  /* json_object_set_new steals the value even when it fails, so nothing else needs freeing. */
  int bad = json_object_set_new(msg, "jsonrpc", json_string("2.0"));
  bad |= json_object_set_new(msg, "id", id_copy(id));
  bad |= json_object_set_new(msg, "result", result ? result : json_null());
  if (bad) {
    json_decref(msg);
    return NULL;
  }
  return msg;
}

json_t *jsonrpc_error_response(json_t *id, int code, const char *message, json_t *data) {
  json_t *msg = json_object();
  json_t *error = json_object();
  if (!msg || !error) {
    json_decref(msg);
    json_decref(error);
    json_decref(data);
    return NULL;
  }
  int bad = json_object_set_new(error, "code", json_integer(code));
  bad |= json_object_set_new(error, "message", json_string(message ? message : ""));
  if (data) bad |= json_object_set_new(error, "data", data);
  bad |= json_object_set_new(msg, "jsonrpc", json_string("2.0"));
  bad |= json_object_set_new(msg, "id", id_copy(id));
  bad |= json_object_set_new(msg, "error", error);
  if (bad) {
    json_decref(msg);
    return NULL;
  }
  return msg;
}

json_t *jsonrpc_request(json_t *id, const char *method, json_t *params) {
  json_t *msg = json_object();
  if (!msg) {
    json_decref(params);
    return NULL;
  }
  int bad = json_object_set_new(msg, "jsonrpc", json_string("2.0"));
  bad |= json_object_set_new(msg, "id", id_copy(id));
  bad |= json_object_set_new(msg, "method", json_string(method));
  if (params) bad |= json_object_set_new(msg, "params", params);
  if (bad) {
    json_decref(msg);
    return NULL;
  }
  return msg;
}

json_t *jsonrpc_notification(const char *method, json_t *params) {
  json_t *msg = json_object();
  if (!msg) {
    json_decref(params);
    return NULL;
  }
  int bad = json_object_set_new(msg, "jsonrpc", json_string("2.0"));
  bad |= json_object_set_new(msg, "method", json_string(method));
  if (params) bad |= json_object_set_new(msg, "params", params);
  if (bad) {
    json_decref(msg);
    return NULL;
  }
  return msg;
}

int jsonrpc_encode(const json_t *msg, char **out, size_t *out_len, struct aug_err *err) {
  *out = NULL;
  *out_len = 0;
  const size_t flags = JSON_COMPACT;
  size_t body = json_dumpb(msg, NULL, 0, flags);
  if (body == 0) return aug_err_set(err, AUG_EINVAL, "jsonrpc: message cannot be serialized");
  char header[64];
  int header_len = snprintf(header, sizeof header, "Content-Length: %zu\r\n\r\n", body);
  char *buf = aug_malloc((size_t)header_len + body);
  if (!buf)
    return aug_err_set(err, AUG_ENOMEM, "jsonrpc: out of memory for a %zu-byte message", body);
  memcpy(buf, header, (size_t)header_len);
  if (json_dumpb(msg, buf + header_len, body, flags) != body) {
    aug_free(buf);
    return aug_err_set(err, AUG_ENOMEM, "jsonrpc: message of %zu bytes could not be serialized",
                       body);
  }
  *out = buf;
  *out_len = (size_t)header_len + body;
  return 0;
}
