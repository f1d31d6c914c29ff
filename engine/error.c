/* Error codes and messages (see error.h). */
#include "engine/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *aug_strerror(int code) {
  switch (code) {
  case AUG_OK: return "success";
  case AUG_EINVAL: return "invalid argument";
  case AUG_ENOMEM: return "out of memory";
  case AUG_EIO: return "input/output error";
  case AUG_EFORMAT: return "invalid format";
  case AUG_ERANGE: return "value out of range";
  case AUG_EUNSUPPORTED: return "not supported";
  case AUG_ENOTFOUND: return "not found";
  case AUG_ECANCELED: return "canceled";
  case AUG_ETIMEOUT: return "timed out";
  case AUG_EDEVICE: return "device error";
  default: return "unknown error";
  }
}

int aug_err_set(struct aug_err *err, int code, const char *fmt, ...) {
  if (err) {
    va_list ap;
    va_start(ap, fmt);
    err->code = code;
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
  }
  return code;
}

void aug_err_prefix(struct aug_err *err, const char *fmt, ...) {
  if (!err) return;
  char prefix[AUG_ERR_MSG_SIZE];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(prefix, sizeof prefix - 2, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  size_t plen = strlen(prefix);
  err->msg[sizeof err->msg - 1] = '\0';
  size_t mlen = strlen(err->msg);
  /* The prefix wins when both do not fit: it names the outer context the reader needs first. */
  if (plen + 2 + mlen >= sizeof err->msg) mlen = sizeof err->msg - 1 - plen - 2;
  memmove(err->msg + plen + 2, err->msg, mlen);
  memcpy(err->msg, prefix, plen);
  err->msg[plen] = ':';
  err->msg[plen + 1] = ' ';
  err->msg[plen + 2 + mlen] = '\0';
}

void aug_err_clear(struct aug_err *err) {
  if (err) {
    err->code = AUG_OK;
    err->msg[0] = '\0';
  }
}
