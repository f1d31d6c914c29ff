/* Cost of the candidate syntax check (grammars/syntax.h) on real files this project did not
 * write: at evenly spaced lines, the rest of the line after its indentation and the next two lines
 * are cut out of the file and offered back as the candidate (real code: it should be kept whole),
 * then the same candidate with a line that breaks the parse appended (it must be trimmed back).
 * Prints per-candidate times (median, p90, max) and the document reparse cost.
 *   cmake --build build --target bench_syntax && ./build/bench_syntax [FILE...]
 * Without arguments: Python's difflib.py, tree-sitter's own lib/src/parser.c, Neovim's
 * lsp/util.lua (each about 2000 lines). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grammars/syntax.h"

enum { CASES = 200 };

/* Thread CPU time: the machines this runs on are shared, and wall time there measures the
 * neighbours as much as the check (wall time is printed beside it). */
static double cpu_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static double wall_us(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

struct timing {
  double *cpu, *wall;
  size_t n;
  double cpu0, wall0;
};

static void timing_start(struct timing *t) {
  t->wall0 = wall_us();
  t->cpu0 = cpu_us();
}

static void timing_stop(struct timing *t) {
  t->cpu[t->n] = cpu_us() - t->cpu0;
  t->wall[t->n] = wall_us() - t->wall0;
  t->n++;
}

static int compare_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static void report(const char *what, struct timing *t) {
  size_t n = t->n;
  if (n == 0) return;
  qsort(t->cpu, n, sizeof *t->cpu, compare_double);
  qsort(t->wall, n, sizeof *t->wall, compare_double);
  printf("  %-27s n=%-3zu cpu: median %6.0f us  p90 %6.0f  p99 %6.0f  max %6.0f | wall: median "
         "%6.0f  p90 %6.0f\n",
         what, n, t->cpu[n / 2], t->cpu[n * 9 / 10], t->cpu[n * 99 / 100], t->cpu[n - 1],
         t->wall[n / 2], t->wall[n * 9 / 10]);
}

static struct timing timing_new(void) {
  struct timing t = {malloc(CASES * sizeof(double)), malloc(CASES * sizeof(double)), 0, 0, 0};
  return t;
}

static void timing_free(struct timing *t) {
  free(t->cpu);
  free(t->wall);
}

static char *read_file(const char *path, size_t *length) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  fseek(f, 0, SEEK_SET);
  char *text = malloc((size_t)n + 1);
  if (!text || fread(text, 1, (size_t)n, f) != (size_t)n) {
    free(text);
    fclose(f);
    return NULL;
  }
  text[n] = '\0';
  fclose(f);
  *length = (size_t)n;
  return text;
}

/* Offsets of the starts of the lines of text; *count lines. */
static size_t *line_starts(const char *text, size_t length, size_t *count) {
  size_t n = 1;
  for (size_t i = 0; i < length; i++)
    n += text[i] == '\n';
  size_t *starts = malloc((n + 1) * sizeof *starts);
  size_t k = 0;
  starts[k++] = 0;
  for (size_t i = 0; i < length; i++) {
    if (text[i] == '\n') starts[k++] = i + 1;
  }
  starts[k] = length;
  *count = k;
  return starts;
}

static int bench_file(const char *path) {
  const struct grammar *g = grammars_find_path(path);
  if (!g) {
    fprintf(stderr, "bench_syntax: no grammar for %s\n", path);
    return 1;
  }
  size_t length;
  char *text = read_file(path, &length);
  if (!text) {
    fprintf(stderr, "bench_syntax: cannot read %s\n", path);
    return 1;
  }
  size_t lines;
  size_t *starts = line_starts(text, length, &lines);
  struct aug_err err = {0};
  struct syntax_doc *doc;
  if (syntax_doc_create(g, &doc, &err)) {
    fprintf(stderr, "bench_syntax: %s\n", err.msg);
    return 1;
  }
  double t0 = cpu_us();
  syntax_doc_set_text(doc, text, length, &err);
  double full_parse = cpu_us() - t0;
  printf("%s (%s, %zu lines, %zu bytes): full parse %.0f us cpu, %zu error nodes\n", path, g->name,
         lines, length, full_parse, syntax_doc_error_count(doc));

  char *document = malloc(length + 1);
  char *candidate = malloc(length + 64);
  struct timing update = timing_new(), good = timing_new(), bad = timing_new();
  size_t kept_whole = 0, bad_breaking = 0, bad_trimmed = 0, errors_before = 0;
  unsigned parses_bad = 0;
  for (size_t c = 0; c < CASES; c++) {
    size_t line = 1 + c * (lines - 4) / CASES;
    size_t cursor = starts[line];
    while (cursor < starts[line + 1] && (text[cursor] == ' ' || text[cursor] == '\t'))
      cursor++;
    size_t middle_end = starts[line + 3] - 1; /* before the third line's newline */
    if (middle_end <= cursor) continue;
    size_t middle = middle_end - cursor;
    memcpy(document, text, cursor);
    memcpy(document + cursor, text + middle_end, length - middle_end);
    size_t doc_length = length - middle;
    memcpy(candidate, text + cursor, middle);

    /* The document as the editor has it without the middle: an incremental reparse. */
    timing_start(&update);
    syntax_doc_set_text(doc, document, doc_length, &err);
    timing_stop(&update);
    errors_before += syntax_doc_error_count(doc) > 0;

    struct syntax_check_params p = syntax_check_params_default();
    p.cut_at_block_end = false; /* measure the parse check itself on every case */
    struct syntax_verdict v;
    timing_start(&good);
    if (syntax_check(doc, cursor, candidate, middle, &p, &v, &err)) {
      fprintf(stderr, "bench_syntax: %s\n", err.msg);
      return 1;
    }
    timing_stop(&good);
    kept_whole += v.keep == middle;

    /* A line no grammar accepts (unless it lands inside a string or comment). */
    static const char broken[] = "\n)) = (\n";
    memcpy(candidate + middle, broken, sizeof broken - 1);
    timing_start(&bad);
    if (syntax_check(doc, cursor, candidate, middle + sizeof broken - 1, &p, &v, &err)) {
      fprintf(stderr, "bench_syntax: %s\n", err.msg);
      return 1;
    }
    timing_stop(&bad);
    if (v.new_errors_full > 0) {
      bad_breaking++;
      bad_trimmed += v.keep <= middle;
    }
    parses_bad += v.parses;
  }
  report("document reparse (edit)", &update);
  report("good candidate (3 lines)", &good);
  report("broken candidate (+1 line)", &bad);
  printf("  good kept whole %zu/%zu; broken line breaking the parse %zu/%zu, cut back to the good "
         "part %zu/%zu (%.1f parses per broken candidate); documents with an error before the "
         "check %zu/%zu\n",
         kept_whole, good.n, bad_breaking, bad.n, bad_trimmed, bad_breaking,
         bad.n ? (double)parses_bad / (double)bad.n : 0.0, errors_before, update.n);
  free(document);
  free(candidate);
  timing_free(&update);
  timing_free(&good);
  timing_free(&bad);
  free(starts);
  free(text);
  syntax_doc_destroy(doc);
  return 0;
}

int main(int argc, char **argv) {
  char c_path[4096];
  const char *home = getenv("HOME");
  const char *cache = getenv("XDG_CACHE_HOME");
  if (cache && *cache) {
    snprintf(c_path, sizeof c_path,
             "%s/augury/grammars/tree-sitter-0.25.1/vendor/tree-sitter/lib/src/parser.c", cache);
  } else {
    snprintf(c_path, sizeof c_path,
             "%s/.cache/augury/grammars/tree-sitter-0.25.1/vendor/tree-sitter/lib/src/parser.c",
             home ? home : "");
  }
  const char *defaults[] = {"/usr/lib/python3.11/difflib.py", c_path,
                            "/usr/share/nvim/runtime/lua/vim/lsp/util.lua"};
  int rc = 0;
  if (argc > 1) {
    for (int i = 1; i < argc; i++)
      rc |= bench_file(argv[i]);
  } else {
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
      rc |= bench_file(defaults[i]);
  }
  return rc;
}
