/* JSON-RPC 2.0 over the LSP base protocol (LSP 3.18 "Base Protocol": a header part of
 * `Name: value\r\n` lines ended by an empty line, Content-Length mandatory, then a UTF-8 JSON
 * body). The framer is a pure byte-stream parser (no I/O): feed it whatever read() returned, then
 * pull whole messages or framing errors out of it. Bodies are capped (64 MiB by default); an
 * oversized body is skipped without being buffered. Owned by one thread (the loop thread in the
 * server). */
#ifndef AUGURY_LSP_JSONRPC_H
#define AUGURY_LSP_JSONRPC_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "engine/error.h"

/* JSON-RPC 2.0 and LSP error codes (LSP 3.18 "ErrorCodes", "LSPErrorCodes"). */
enum jsonrpc_code {
  JSONRPC_PARSE_ERROR = -32700,
  JSONRPC_INVALID_REQUEST = -32600,
  JSONRPC_METHOD_NOT_FOUND = -32601,
  JSONRPC_INVALID_PARAMS = -32602,
  JSONRPC_INTERNAL_ERROR = -32603,
  JSONRPC_SERVER_NOT_INITIALIZED = -32002,
  JSONRPC_REQUEST_FAILED = -32803,
  JSONRPC_CONTENT_MODIFIED = -32801,
  JSONRPC_REQUEST_CANCELLED = -32800,
};

#define JSONRPC_MAX_BODY_DEFAULT ((size_t)64 << 20)

struct jsonrpc_framer; /* opaque */

enum jsonrpc_frame_kind {
  JSONRPC_FRAME_NONE = 0,    /* need more bytes */
  JSONRPC_FRAME_MESSAGE = 1, /* body/len hold one message body */
  JSONRPC_FRAME_ERROR = 2,   /* a malformed or oversized frame was dropped; message says why */
};

struct jsonrpc_frame {
  enum jsonrpc_frame_kind kind;
  const char *body; /* MESSAGE: valid until the next framer call */
  size_t len;
  char
      message[160]; /* ERROR: "jsonrpc: Content-Length 99999999999 exceeds the 67108864-byte cap" */
};

int jsonrpc_framer_create(size_t max_body, struct jsonrpc_framer **out, struct aug_err *err);
void jsonrpc_framer_destroy(struct jsonrpc_framer *framer); /* NULL is a no-op */

/* Appends len bytes read from the stream. AUG_ENOMEM leaves the framer as it was. */
int jsonrpc_framer_feed(struct jsonrpc_framer *framer, const char *data, size_t len,
                        struct aug_err *err);
/* Extracts the next frame (call until it returns JSONRPC_FRAME_NONE). */
void jsonrpc_framer_next(struct jsonrpc_framer *framer, struct jsonrpc_frame *frame);
/* Bytes buffered but not yet returned (a partial header or body). */
size_t jsonrpc_framer_pending(const struct jsonrpc_framer *framer);

enum jsonrpc_kind {
  JSONRPC_REQUEST = 1,      /* method + id */
  JSONRPC_NOTIFICATION = 2, /* method, no id */
  JSONRPC_RESPONSE = 3,     /* id + result or error */
};

/* One parsed message. Fields borrow from root (the parsed body), which the caller owns. */
struct jsonrpc_message {
  enum jsonrpc_kind kind;
  json_t *root;
  const char *method; /* requests and notifications */
  json_t *id;         /* requests and responses: integer or string (or null for error responses) */
  json_t *params;     /* may be NULL */
  json_t *result;     /* responses */
  json_t *error;      /* responses */
};

/* Parses and classifies a body. On failure returns a negative code and sets *rpc_code to
 * JSONRPC_PARSE_ERROR (not JSON) or JSONRPC_INVALID_REQUEST (JSON but not a JSON-RPC 2.0 message),
 * and *id_out to a new reference to the id when one could be read (else NULL); message->root is
 * then NULL. On success the caller owns message->root (json_decref). */
int jsonrpc_parse(const char *body, size_t len, struct jsonrpc_message *message, int *rpc_code,
                  json_t **id_out, struct aug_err *err);

/* Builders: each returns a new object (NULL on allocation failure). id is borrowed (copied in);
 * NULL id means JSON null. result/params/data are stolen (may be NULL). */
json_t *jsonrpc_response(json_t *id, json_t *result);
json_t *jsonrpc_error_response(json_t *id, int code, const char *message, json_t *data);
json_t *jsonrpc_request(json_t *id, const char *method, json_t *params);
json_t *jsonrpc_notification(const char *method, json_t *params);

/* Serializes msg as one frame ("Content-Length: N\r\n\r\n" + compact JSON) into a buffer from
 * aug_malloc; the caller frees it with aug_free. */
int jsonrpc_encode(const json_t *msg, char **out, size_t *out_len, struct aug_err *err);

#endif
