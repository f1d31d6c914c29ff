/* libFuzzer target for the JSON-RPC layer (lsp/jsonrpc.c): the input is split into chunks (sizes
 * taken from its first bytes) and fed to the framer as partial reads would arrive; every frame is
 * classified by jsonrpc_parse and answered through the builders and the encoder, as the server
 * does. Invariants checked: a message body lies inside what was fed, and nothing leaks. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/alloc.h"
#include "lsp/jsonrpc.h"

static void answer(const struct jsonrpc_frame *frame) {
  struct jsonrpc_message m;
  int code = 0;
  json_t *id = NULL;
  struct aug_err err = {0};
  json_t *reply;
  if (jsonrpc_parse(frame->body, frame->len, &m, &code, &id, &err) == 0) {
    reply = m.kind == JSONRPC_REQUEST ? jsonrpc_response(m.id, json_string(m.method)) : NULL;
    json_decref(m.root);
  } else {
    reply = jsonrpc_error_response(id, code, err.msg, NULL);
  }
  json_decref(id);
  if (!reply) return;
  char *buf = NULL;
  size_t len = 0;
  if (jsonrpc_encode(reply, &buf, &len, &err) == 0 && len < 16) abort(); /* header alone is 16+ */
  aug_free(buf);
  json_decref(reply);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  struct jsonrpc_framer *f = NULL;
  struct aug_err err = {0};
  /* A small cap so that the oversized-body path is reachable. */
  if (jsonrpc_framer_create(4096, &f, &err)) return 0;
  size_t chunk = size > 0 ? (size_t)data[0] % 64 + 1 : 1;
  size_t pos = size > 0 ? 1 : 0;
  while (pos < size) {
    size_t n = size - pos < chunk ? size - pos : chunk;
    if (jsonrpc_framer_feed(f, (const char *)data + pos, n, &err)) break;
    pos += n;
    for (;;) {
      struct jsonrpc_frame frame;
      jsonrpc_framer_next(f, &frame);
      if (frame.kind == JSONRPC_FRAME_NONE) break;
      if (frame.kind == JSONRPC_FRAME_MESSAGE) {
        if (frame.len > 4096) abort();
        answer(&frame);
      } else if (frame.message[0] == '\0') {
        abort(); /* an error frame always says why */
      }
    }
  }
  jsonrpc_framer_destroy(f);
  return 0;
}
