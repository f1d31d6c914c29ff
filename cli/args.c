/* The shared option parser (see args.h). It only reads argv and writes the variables the option
 * table points at; it never prints except in the two usage helpers, which are for commands. */
#include "cli/args.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

static bool option_takes_value(const struct cli_option *opt) {
  return opt->kind != CLI_ARG_FLAG && opt->kind != CLI_ARG_SET;
}

static const struct cli_option *find_long(const struct cli_args *args, const char *name,
                                          size_t len) {
  for (size_t i = 0; i < args->n_options; i++) {
    const char *ln = args->options[i].long_name;
    if (ln && strlen(ln) == len && !memcmp(ln, name, len)) return &args->options[i];
  }
  return NULL;
}

static const struct cli_option *find_short(const struct cli_args *args, char c) {
  for (size_t i = 0; i < args->n_options; i++)
    if (args->options[i].short_name && args->options[i].short_name == c) return &args->options[i];
  return NULL;
}

/* "--model" or "-m" for messages. */
static void option_label(const struct cli_option *opt, char *buf, size_t size) {
  if (opt->long_name)
    snprintf(buf, size, "--%s", opt->long_name);
  else
    snprintf(buf, size, "-%c", opt->short_name);
}

int cli_args_parse_bytes(const char *text, uint64_t *out) {
  if (!text || !*text) return AUG_EINVAL;
  errno = 0;
  char *end = NULL;
  double v = strtod(text, &end);
  if (end == text || errno || !isfinite(v) || v < 0) return AUG_EINVAL;
  double mult = 1;
  /* Suffixes K, M, G, T with optional "B" or "iB"; all binary (1K = 1024): sizes here are memory.
   */
  switch (*end) {
  case 'k':
  case 'K':
    mult = 1024.0;
    end++;
    break;
  case 'm':
  case 'M':
    mult = 1024.0 * 1024;
    end++;
    break;
  case 'g':
  case 'G':
    mult = 1024.0 * 1024 * 1024;
    end++;
    break;
  case 't':
  case 'T':
    mult = 1024.0 * 1024 * 1024 * 1024;
    end++;
    break;
  default: break;
  }
  if (mult > 1 && *end == 'i') end++;
  if (*end == 'b' || *end == 'B') end++;
  if (*end) return AUG_EINVAL;
  double bytes = v * mult;
  if (bytes >= 18446744073709551615.0) return AUG_EINVAL;
  *out = (uint64_t)bytes;
  return 0;
}

static int set_value(const struct cli_option *opt, const char *text, struct aug_err *err) {
  char label[64];
  option_label(opt, label, sizeof label);
  switch (opt->kind) {
  case CLI_ARG_STRING: *(const char **)opt->value = text; return 0;
  case CLI_ARG_INT: {
    errno = 0;
    char *end = NULL;
    long long v = strtoll(text, &end, 0);
    if (end == text || *end || errno)
      return aug_err_set(err, AUG_EINVAL, "%s: '%s' is not an integer", label, text);
    if (opt->min < opt->max && (v < opt->min || v > opt->max))
      return aug_err_set(err, AUG_EINVAL, "%s: %lld is out of range %" PRId64 "..%" PRId64, label,
                         v, opt->min, opt->max);
    *(int64_t *)opt->value = v;
    return 0;
  }
  case CLI_ARG_FLOAT: {
    errno = 0;
    char *end = NULL;
    double v = strtod(text, &end);
    if (end == text || *end || errno || !isfinite(v))
      return aug_err_set(err, AUG_EINVAL, "%s: '%s' is not a number", label, text);
    if (opt->fmin < opt->fmax && (v < opt->fmin || v > opt->fmax))
      return aug_err_set(err, AUG_EINVAL, "%s: %g is out of range %g..%g", label, v, opt->fmin,
                         opt->fmax);
    *(double *)opt->value = v;
    return 0;
  }
  case CLI_ARG_BYTES:
    if (cli_args_parse_bytes(text, (uint64_t *)opt->value))
      return aug_err_set(err, AUG_EINVAL, "%s: '%s' is not a size (e.g. 4096, 512M, 8G)", label,
                         text);
    return 0;
  case CLI_ARG_FLAG: *(bool *)opt->value = true; return 0;
  case CLI_ARG_SET: *(int *)opt->value = opt->set_to; return 0;
  }
  return aug_err_set(err, AUG_EINVAL, "%s: unknown option kind %d", label, (int)opt->kind);
}

int cli_args_parse(const struct cli_args *args, int argc, char **argv, const char **positional,
                   size_t max_positional, size_t *n_positional, struct aug_err *err) {
  size_t n_pos = 0;
  bool options_done = false;
  if (n_positional) *n_positional = 0;
  for (int i = 1; i < argc; i++) {
    const char *a = argv[i];
    bool is_option = !options_done && a[0] == '-' && a[1] != '\0';
    if (is_option && !strcmp(a, "--")) {
      options_done = true;
      continue;
    }
    if (!is_option) {
      if (n_pos >= max_positional)
        return aug_err_set(err, AUG_EINVAL, "unexpected argument '%s'", a);
      positional[n_pos++] = a;
      if (n_positional) *n_positional = n_pos;
      continue;
    }
    if (!strcmp(a, "-h") || !strcmp(a, "--help")) return CLI_ARGS_HELP;

    const struct cli_option *opt;
    const char *inline_value = NULL;
    if (a[1] == '-') {
      const char *name = a + 2;
      const char *eq = strchr(name, '=');
      size_t len = eq ? (size_t)(eq - name) : strlen(name);
      opt = find_long(args, name, len);
      if (!opt) return aug_err_set(err, AUG_EINVAL, "unknown option '--%.*s'", (int)len, name);
      if (eq) inline_value = eq + 1;
    } else {
      opt = find_short(args, a[1]);
      if (!opt) return aug_err_set(err, AUG_EINVAL, "unknown option '-%c'", a[1]);
      if (a[2] != '\0') {
        if (!option_takes_value(opt))
          return aug_err_set(err, AUG_EINVAL, "option '-%c' takes no value (got '%s')", a[1], a);
        inline_value = a + 2;
      }
    }

    char label[64];
    option_label(opt, label, sizeof label);
    if (!option_takes_value(opt)) {
      if (inline_value)
        return aug_err_set(err, AUG_EINVAL, "option '%s' takes no value (got '%s')", label,
                           inline_value);
      int rc = set_value(opt, NULL, err);
      if (rc) return rc;
      continue;
    }
    const char *value = inline_value;
    if (!value) {
      if (i + 1 >= argc) return aug_err_set(err, AUG_EINVAL, "option '%s' needs a value", label);
      value = argv[++i];
    }
    int rc = set_value(opt, value, err);
    if (rc) return rc;
  }
  return 0;
}

void cli_args_usage(const struct cli_args *args, FILE *out) {
  fprintf(out, "usage: augury %s\n", args->synopsis);
  if (args->n_options == 0) return;
  fprintf(out, "\noptions:\n");
  for (size_t i = 0; i < args->n_options; i++) {
    const struct cli_option *o = &args->options[i];
    char left[96];
    int n = 0;
    if (o->short_name && o->long_name)
      n = snprintf(left, sizeof left, "-%c, --%s", o->short_name, o->long_name);
    else if (o->long_name)
      n = snprintf(left, sizeof left, "    --%s", o->long_name);
    else
      n = snprintf(left, sizeof left, "-%c", o->short_name);
    if (o->metavar && n > 0 && (size_t)n < sizeof left)
      snprintf(left + n, sizeof left - (size_t)n, " %s", o->metavar);
    fprintf(out, "  %-26s %s\n", left, o->help ? o->help : "");
  }
  fprintf(out, "  %-26s %s\n", "-h, --help", "show this help");
}

int cli_args_fail(const struct cli_args *args, const struct aug_err *err) {
  if (err && err->msg[0]) fprintf(stderr, "augury: %s\n", err->msg);
  cli_args_usage(args, stderr);
  return 2;
}

int cli_args_parse_gpu_layers(const char *text, int32_t *out, struct aug_err *err) {
  if (engine_parse_gpu_layers(text, out))
    return aug_err_set(err, AUG_EINVAL, "--gpu-layers: '%s' is not a layer count, all or auto",
                       text);
  return 0;
}

struct cli_load_options cli_load_options_default(void) {
  return (struct cli_load_options){.kv_type = "f16", .mlock = false};
}

int cli_load_options_apply(const struct cli_load_options *lo, struct engine_params *params,
                           struct aug_err *err) {
  enum engine_kv_type kv;
  if (engine_parse_kv_type(lo->kv_type, &kv))
    return aug_err_set(err, AUG_EINVAL, "--kv-type: '%s' is not f16, q8_0 or q4_0", lo->kv_type);
  params->kv_type = kv;
  params->mlock = lo->mlock;
  return 0;
}

void cli_load_options_report(const char *command, const struct engine *engine, FILE *out) {
  const char *note = engine_mlock_note(engine);
  if (note[0]) fprintf(out, "augury %s: warning: %s\n", command, note);
}
