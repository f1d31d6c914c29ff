/* Cost of the pipeline's syntax check (plugins/syntax_filter.h, its default budgets) on a real
 * file this project did not write (Python's difflib.py by default): at 200 evenly spaced lines the
 * rest of the line after its indentation is cut out and offered back (a good candidate), then the
 * same with a line ")) = (" appended (a broken one). Prints median / p90 / p99 of the calling
 * thread's CPU time (what the budgets count) for: the tree update after a one-byte edit (the first
 * byte of the cut typed back), the check of the good candidate, the check of the broken one.
 *   cmake --build build --target bench_syntax_filter && ./build/bench_syntax_filter [FILE.py]
 * Wall time and the load average are printed beside it: on a shared machine they differ. */
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grammars/syntax.h"
#include "plugins/syntax_filter.h"
#include "tests/bench/syntax/timing.h"

enum { CUTS = 200 };

struct outcomes {
  size_t by[4]; /* by enum syntax_filter_outcome */
};

static void count_outcome(struct outcomes *o, const struct syntax_filter_result *r) {
  o->by[r->outcome]++;
}

static void print_outcomes(const char *what, const struct outcomes *o) {
  printf("  %-6s kept %zu, trimmed %zu, dropped %zu, skipped %zu\n", what,
         o->by[SYNTAX_FILTER_KEPT], o->by[SYNTAX_FILTER_TRIMMED], o->by[SYNTAX_FILTER_DROPPED],
         o->by[SYNTAX_FILTER_SKIPPED]);
}

static int bench(const char *path) {
  size_t length;
  char *text = bench_read_file(path, &length);
  size_t lines = 0;
  size_t *starts = text ? bench_line_starts(text, length, &lines) : NULL;
  if (!starts || lines < 8) {
    fprintf(stderr, "bench_syntax_filter: cannot read %s (or it has under 8 lines)\n", path);
    free(text);
    return 1;
  }
  static const char broken_line[] = "\n)) = (";
  char *document = malloc(length + 2);
  char *candidate = malloc(length + sizeof broken_line);
  struct bench_timing update_t = bench_timing_new(CUTS), good_t = bench_timing_new(CUTS),
                      bad_t = bench_timing_new(CUTS);
  struct bench_timing *update = &update_t, *good = &good_t, *bad = &bad_t;
  struct syntax_filter_params params = syntax_filter_params_default();
  struct syntax_filter *filter = NULL;
  struct syntax_doc *doc = NULL;
  struct aug_err err = {0};
  struct outcomes good_outcomes = {{0}}, bad_outcomes = {{0}};
  size_t slow_updates = 0, slow_updates_broken = 0; /* over 5 ms; of them, on a broken document */
  int rc = 1;
  if (!document || !candidate || !update || !good || !bad) goto done;
  if (syntax_filter_create(&params, &filter, &err) ||
      syntax_doc_create(grammars_find_name("python"), &doc, &err)) {
    fprintf(stderr, "bench_syntax_filter: %s\n", err.msg);
    goto done;
  }
  for (size_t c = 0; c < CUTS; c++) {
    size_t line = 1 + c * (lines - 4) / CUTS;
    size_t cursor = starts[line];
    size_t line_end = starts[line + 1] - 1; /* its newline */
    while (cursor < line_end && (text[cursor] == ' ' || text[cursor] == '\t'))
      cursor++;
    if (line_end <= cursor) continue; /* a blank line: nothing to cut */
    size_t cut = line_end - cursor;
    memcpy(document, text, cursor);
    memcpy(document + cursor, text + line_end, length - line_end);
    size_t doc_length = length - cut;
    memcpy(candidate, text + cursor, cut);

    /* Brings the filter's tree to this document (a jump across the file: not what is measured). */
    struct syntax_filter_result r;
    if (syntax_filter_check(filter, "file:///bench.py", "python", path, document, doc_length,
                            cursor, candidate, cut, &r, &err)) {
      fprintf(stderr, "bench_syntax_filter: %s\n", err.msg);
      goto done;
    }
    /* The same text again: the filter does not reparse it, so this is the check alone. */
    bench_timing_start(good);
    int check_rc = syntax_filter_check(filter, "file:///bench.py", "python", path, document,
                                       doc_length, cursor, candidate, cut, &r, &err);
    bench_timing_stop(good);
    count_outcome(&good_outcomes, &r);
    memcpy(candidate + cut, broken_line, sizeof broken_line - 1);
    bench_timing_start(bad);
    check_rc |=
        syntax_filter_check(filter, "file:///bench.py", "python", path, document, doc_length,
                            cursor, candidate, cut + sizeof broken_line - 1, &r, &err);
    bench_timing_stop(bad);
    count_outcome(&bad_outcomes, &r);
    if (check_rc) {
      fprintf(stderr, "bench_syntax_filter: %s\n", err.msg);
      goto done;
    }

    /* The tree update the filter does after a keystroke: the first byte of the cut typed back. */
    if (syntax_doc_set_text(doc, document, doc_length, &err)) goto done;
    memmove(document + cursor + 1, document + cursor, doc_length - cursor);
    document[cursor] = text[cursor];
    bench_timing_start(update);
    int update_rc = syntax_doc_set_text(doc, document, doc_length + 1, &err);
    bench_timing_stop(update);
    if (update_rc) {
      fprintf(stderr, "bench_syntax_filter: %s\n", err.msg);
      goto done;
    }
    if (update->cpu[update->n - 1] > 5.0) {
      slow_updates++;
      slow_updates_broken += syntax_doc_error_count(doc) > 0;
    }
  }
  double load[3] = {0};
  if (getloadavg(load, 3) < 0) load[0] = -1;
  printf("%s: %zu lines, %zu bytes; %zu one-line cuts; budgets: a parse %u us, a check %u us of "
         "thread CPU time; load average %.2f\n",
         path, lines, length, good->n, params.parse_budget_us, params.time_budget_us, load[0]);
  bench_timing_report("tree update after a one-byte edit", update);
  bench_timing_report("check of a good candidate", good);
  bench_timing_report("check of a broken candidate", bad);
  printf("  updates over 5 ms cpu: %zu, of them on a document with an error node after the edit: "
         "%zu\n",
         slow_updates, slow_updates_broken);
  print_outcomes("good", &good_outcomes);
  print_outcomes("broken", &bad_outcomes);
  rc = 0;
done:
  syntax_doc_destroy(doc);
  syntax_filter_destroy(filter);
  bench_timing_free(update);
  bench_timing_free(good);
  bench_timing_free(bad);
  free(candidate);
  free(document);
  free(starts);
  free(text);
  return rc;
}

int main(int argc, char **argv) {
  if (argc > 2) {
    fprintf(stderr, "usage: bench_syntax_filter [FILE.py]\n");
    return 2;
  }
  if (argc == 2) return bench(argv[1]);
  /* Python's own difflib.py, whichever Python 3 the machine has. */
  glob_t found;
  if (glob("/usr/lib/python3*/difflib.py", 0, NULL, &found) != 0 || found.gl_pathc == 0) {
    fprintf(stderr, "bench_syntax_filter: no /usr/lib/python3*/difflib.py: name a file\n");
    return 1;
  }
  int rc = bench(found.gl_pathv[0]);
  globfree(&found);
  return rc;
}
