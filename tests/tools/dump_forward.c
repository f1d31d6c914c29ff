/* Dumps the forward pass tensor by tensor, for comparison with llama.cpp's graph
 * (tests/fixtures/forward/dump_peer_tensors.py writes the peer's side, compare_dumps.py compares):
 *
 *   dump_forward MODEL PROMPT_IDS [DECODE_IDS] OUT_DIR [LAYERS]
 *
 * PROMPT_IDS is evaluated as one batch, then each of DECODE_IDS (comma-separated, or "-") alone,
 * as llama.cpp does in the fixtures. Every call N writes OUT_DIR/callN/<name>-<layer>.npy
 * (float32, [tokens, features]) for the layers listed (default 0; "all" for every layer), plus
 * result_norm.npy and result_output.npy. Run by hand; not part of the test suite. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "backends/backend.h"
#include "engine/forward.h"
#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/quant.h"

struct dump {
  char dir[4096];
  int call;
  const char *layers; /* "all" or comma-separated indices */
};

static bool dump_wants(const struct dump *d, int layer) {
  if (layer < 0 || !strcmp(d->layers, "all")) return true;
  const char *p = d->layers;
  while (*p) {
    char *end;
    long v = strtol(p, &end, 10);
    if (end == p) break;
    if (v == layer) return true;
    p = *end ? end + 1 : end;
  }
  return false;
}

static void dump_npy(const char *path, const float *data, int64_t rows, int64_t cols) {
  FILE *fp = fopen(path, "wb");
  if (!fp) {
    fprintf(stderr, "dump_forward: %s: %s\n", path, strerror(errno));
    exit(1);
  }
  char header[128];
  int n = snprintf(header, sizeof header,
                   "{'descr': '<f4', 'fortran_order': False, 'shape': (%lld, %lld), }",
                   (long long)rows, (long long)cols);
  int total = 10 + n + 1;
  int pad = (64 - total % 64) % 64;
  unsigned short hlen = (unsigned short)(n + pad + 1);
  fwrite("\x93NUMPY\x01\x00", 1, 8, fp);
  fwrite(&hlen, 2, 1, fp);
  fwrite(header, 1, (size_t)n, fp);
  for (int i = 0; i < pad; i++)
    fputc(' ', fp);
  fputc('\n', fp);
  fwrite(data, sizeof(float), (size_t)(rows * cols), fp);
  fclose(fp);
}

static void observe(void *ctx, const char *name, int layer, const struct backend_tensor *t,
                    const struct forward_device *dev) {
  struct dump *d = ctx;
  if (!dump_wants(d, layer)) return;
  struct aug_err err;
  dev->ops->synchronize(dev->be, &err);
  int64_t cols = t->ne[0], rows = t->ne[1];
  float *buf = malloc((size_t)(rows * cols) * sizeof(float));
  for (int64_t r = 0; r < rows; r++)
    dev->ops->download(dev->be, t->buffer, t->offset + (size_t)r * t->row_stride, buf + r * cols,
                       (size_t)cols * sizeof(float));
  char path[4200];
  if (layer >= 0) {
    snprintf(path, sizeof path, "%s/call%d/%s-%d.npy", d->dir, d->call, name, layer);
  } else {
    snprintf(path, sizeof path, "%s/call%d/%s.npy", d->dir, d->call, name);
  }
  dump_npy(path, buf, rows, cols);
  free(buf);
}

static size_t parse_ids(const char *s, int32_t *ids, size_t cap) {
  size_t n = 0;
  if (!strcmp(s, "-")) return 0;
  while (*s && n < cap) {
    char *end;
    ids[n++] = (int32_t)strtol(s, &end, 10);
    s = *end ? end + 1 : end;
  }
  return n;
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: dump_forward MODEL PROMPT_IDS [DECODE_IDS] OUT_DIR [LAYERS]\n");
    return 2;
  }
  static int32_t prompt[4096], decode[4096];
  size_t n_prompt = parse_ids(argv[2], prompt, 4096);
  size_t n_decode = argc >= 5 ? parse_ids(argv[3], decode, 4096) : 0;
  struct dump d = {.layers = argc >= 6 ? argv[5] : "0"};
  snprintf(d.dir, sizeof d.dir, "%s", argc >= 5 ? argv[4] : argv[3]);
  struct aug_err err;
  struct model *model;
  const struct backend_ops *ops;
  struct backend *be;
  if (model_load(argv[1], &model, &err) || backend_find("cpu", &ops, &err) ||
      ops->create(getenv("DUMP_BACKEND_OPTIONS") ? getenv("DUMP_BACKEND_OPTIONS") : "threads=2",
                  &be, &err)) {
    fprintf(stderr, "dump_forward: %s\n", err.msg);
    return 1;
  }
  struct forward_device *layers = calloc(model->hp.n_layer, sizeof *layers);
  for (uint32_t i = 0; i < model->hp.n_layer; i++)
    layers[i] = (struct forward_device){ops, be};
  struct forward_placement pl = {
      .n_layer = model->hp.n_layer, .layers = layers, .output = {ops, be}};
  struct forward_params fp = forward_params_default();
  fp.n_ctx = 1024;
  fp.n_outputs = 512;
  fp.observe = observe;
  fp.observe_ctx = &d;
  struct forward *fwd;
  if (forward_create(model, &pl, &fp, &fwd, &err)) {
    fprintf(stderr, "dump_forward: %s\n", err.msg);
    return 1;
  }
  mkdir(d.dir, 0755);
  for (size_t c = 0; c <= n_decode; c++) {
    d.call = (int)c;
    char sub[4200];
    snprintf(sub, sizeof sub, "%s/call%d", d.dir, d.call);
    mkdir(sub, 0755);
    const int32_t *ids = c == 0 ? prompt : &decode[c - 1];
    size_t n = c == 0 ? n_prompt : 1;
    if (forward_eval(fwd, ids, n, true, NULL, &err)) {
      fprintf(stderr, "dump_forward: %s\n", err.msg);
      return 1;
    }
  }
  forward_destroy(fwd);
  free(layers);
  ops->destroy(be);
  model_destroy(model);
  return 0;
}
