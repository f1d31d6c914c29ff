/* Tokenizer benchmark: tokenizer_create time on a model and encode throughput on a large source
 * file (whole file, and in 10 KB slices as an editor would send), parse_special off, in process
 * CPU time (best of the repeats). The peer's
 * figure on the same file comes from tests/bench/bench_tokenizer_peer.py.
 * Build: cmake --build build --target augury_lib &&
 *   cc -O2 -I. tests/bench/bench_tokenizer.c build/libaugury.a -ljansson -luv -lm -lpthread \
 *      -o /tmp/bench_tokenizer
 * Run:   /tmp/bench_tokenizer MODEL.gguf FILE [repeats=5] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "engine/gguf.h"
#include "engine/tokenizer.h"

/* Process CPU time: the build machines are shared, and wall time there mostly measures the
 * neighbours. */
static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: bench_tokenizer MODEL.gguf FILE [repeats]\n");
    return 2;
  }
  int repeats = argc > 3 ? atoi(argv[3]) : 5;
  FILE *f = fopen(argv[2], "rb");
  if (!f) {
    perror(argv[2]);
    return 1;
  }
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *text = malloc((size_t)size);
  if (!text || fread(text, 1, (size_t)size, f) != (size_t)size) return 1;
  fclose(f);

  struct aug_err err = {0};
  struct gguf_open_params params = gguf_open_params_default();
  struct gguf_file *file;
  if (gguf_open(argv[1], &params, &file, &err) != 0) {
    fprintf(stderr, "%s\n", err.msg);
    return 1;
  }
  struct tokenizer *tok = NULL;
  double best_create = 1e9;
  for (int r = 0; r < repeats; r++) {
    double t0 = now_s();
    if (tokenizer_create(file, &tok, &err) != 0) {
      fprintf(stderr, "%s\n", err.msg);
      return 1;
    }
    double dt = now_s() - t0;
    if (dt < best_create) best_create = dt;
    if (r + 1 < repeats) tokenizer_destroy(tok);
  }
  size_t cap = (size_t)size + 16, n = 0;
  int32_t *ids = malloc(cap * sizeof *ids);
  struct tokenize_options o = {false, false};
  double best_whole = 1e9;
  for (int r = 0; r < repeats; r++) {
    double t0 = now_s();
    if (tokenizer_encode(tok, text, (size_t)size, o, ids, cap, &n, &err) != 0) {
      fprintf(stderr, "%s\n", err.msg);
      return 1;
    }
    double dt = now_s() - t0;
    if (dt < best_whole) best_whole = dt;
  }
  size_t whole_tokens = n;
  const size_t slice = 10 * 1024;
  double best_slices = 1e9;
  size_t n_slices = 0;
  for (int r = 0; r < repeats; r++) {
    double t0 = now_s();
    n_slices = 0;
    for (size_t off = 0; off + slice <= (size_t)size; off += slice, n_slices++) {
      if (tokenizer_encode(tok, text + off, slice, o, ids, cap, &n, &err) != 0) return 1;
    }
    double dt = now_s() - t0;
    if (dt < best_slices) best_slices = dt;
  }
  printf("{\"file_bytes\": %ld, \"tokens\": %zu, \"create_ms\": %.1f, \"encode_mb_s\": %.2f, "
         "\"encode_ms_per_10kb\": %.3f}\n",
         size, whole_tokens, best_create * 1e3, (double)size / best_whole / 1e6,
         n_slices ? best_slices * 1e3 / (double)n_slices : 0.0);
  free(ids);
  free(text);
  tokenizer_destroy(tok);
  gguf_close(file);
  return 0;
}
