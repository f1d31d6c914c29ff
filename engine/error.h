/* Error values shared by every module: library functions return 0 or a negative AUG_E* code and
 * fill a caller-provided struct aug_err with a message that names the thing and the value.
 * Library code never prints and never exits; main and the LSP layer decide what the user sees. */
#ifndef AUGURY_ENGINE_ERROR_H
#define AUGURY_ENGINE_ERROR_H

#include <stddef.h>

enum aug_error_code {
  AUG_OK = 0,
  AUG_EINVAL = -1,       /* bad argument from the caller */
  AUG_ENOMEM = -2,       /* allocation failed */
  AUG_EIO = -3,          /* open/read/mmap/write failed */
  AUG_EFORMAT = -4,      /* malformed input file or message */
  AUG_ERANGE = -5,       /* value out of its allowed range */
  AUG_EUNSUPPORTED = -6, /* valid, but not something we implement */
  AUG_ENOTFOUND = -7,    /* key, tensor, token, file not present */
  AUG_ECANCELED = -8,    /* a cancellation flag was raised */
  AUG_ETIMEOUT = -9,     /* a time budget ran out */
  AUG_EDEVICE = -10,     /* a compute device failed */
};

#define AUG_ERR_MSG_SIZE 512

struct aug_err {
  int code;
  char msg[AUG_ERR_MSG_SIZE];
};

/* Name of a code, e.g. "invalid format". Never NULL. */
const char *aug_strerror(int code);

/* Record code and a printf-style message in err (err may be NULL); returns code so callers can
 * write `return aug_err_set(err, AUG_EFORMAT, "gguf: ...")`. */
int aug_err_set(struct aug_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix the message already in err with "prefix: ". */
void aug_err_prefix(struct aug_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void aug_err_clear(struct aug_err *err);

#endif
