/* Cost of the candidate syntax check (grammars/syntax.h) on real files this project did not
 * write: at evenly spaced lines, the rest of the line after its indentation and the next two lines
 * are cut out of the file and offered back as the candidate (real code: it should be kept whole),
 * then the same candidate with a line that breaks the parse appended (it must be trimmed back).
 * Prints per-candidate times (median, p90, max) and the document reparse cost.
 *   cmake --build build --target bench_syntax && ./build/bench_syntax [--parse-budget-us N]
 * [FILE...] Without arguments: Python's difflib.py, tree-sitter's own lib/src/parser.c, Neovim's
 * lsp/util.lua (each about 2000 lines).
 *   ./build/bench_syntax --cases FILE.tsv
 * checks the quality bench's cases instead (tests/bench/quality/make_cases.py --resolve): the
 * real text removed at each cursor must be kept whole, the shape must be multi-line exactly at the
 * "multi" cases, and a multi-line candidate that runs on past its block (the real body followed by
 * the next lines of the file again) must be cut back to the body. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "grammars/syntax.h"
#include "tests/bench/syntax/timing.h"

enum { CASES = 200 };

static unsigned parse_budget_us; /* --parse-budget-us N */

static int bench_file(const char *path) {
  const struct grammar *g = grammars_find_path(path);
  if (!g) {
    fprintf(stderr, "bench_syntax: no grammar for %s\n", path);
    return 1;
  }
  size_t length;
  char *text = bench_read_file(path, &length);
  if (!text) {
    fprintf(stderr, "bench_syntax: cannot read %s\n", path);
    return 1;
  }
  size_t lines = 0;
  size_t *starts = bench_line_starts(text, length, &lines);
  if (!starts) {
    fprintf(stderr, "bench_syntax: out of memory for the lines of %s\n", path);
    free(text);
    return 1;
  }
  struct aug_err err = {0};
  struct syntax_doc *doc;
  if (syntax_doc_create(g, &doc, &err)) {
    fprintf(stderr, "bench_syntax: %s\n", err.msg);
    return 1;
  }
  double t0 = bench_cpu_ms();
  syntax_doc_set_text(doc, text, length, &err);
  double full_parse = bench_cpu_ms() - t0;
  printf("%s (%s, %zu lines, %zu bytes): full parse %.1f ms cpu, %zu error nodes\n", path, g->name,
         lines, length, full_parse, syntax_doc_error_count(doc));

  char *document = malloc(length + 1);
  char *candidate = malloc(length + 64);
  struct bench_timing update = bench_timing_new(CASES), good = bench_timing_new(CASES),
                      bad = bench_timing_new(CASES);
  /* the same, on documents that parse without error once the middle is cut out */
  struct bench_timing good_clean = bench_timing_new(CASES), bad_clean = bench_timing_new(CASES);
  size_t kept_whole = 0, bad_breaking = 0, bad_trimmed = 0, bad_exact = 0, errors_before = 0;
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
    bench_timing_start(&update);
    syntax_doc_set_text(doc, document, doc_length, &err);
    bench_timing_stop(&update);
    bool clean = syntax_doc_error_count(doc) == 0;
    errors_before += !clean;

    struct syntax_check_params p = syntax_check_params_default();
    p.cut_at_block_end = false; /* measure the parse check itself on every case */
    p.parse_budget_us = parse_budget_us;
    struct syntax_verdict v;
    bench_timing_start(&good);
    if (syntax_check(doc, cursor, candidate, middle, &p, &v, &err)) {
      fprintf(stderr, "bench_syntax: %s\n", err.msg);
      return 1;
    }
    bench_timing_stop(&good);
    if (clean) {
      bench_timing_copy_last(&good_clean, &good);
    }
    kept_whole += v.keep == middle;

    /* A line no grammar accepts (unless it lands inside a string or comment). */
    static const char broken[] = "\n)) = (\n";
    memcpy(candidate + middle, broken, sizeof broken - 1);
    bench_timing_start(&bad);
    if (syntax_check(doc, cursor, candidate, middle + sizeof broken - 1, &p, &v, &err)) {
      fprintf(stderr, "bench_syntax: %s\n", err.msg);
      return 1;
    }
    bench_timing_stop(&bad);
    if (clean) {
      bench_timing_copy_last(&bad_clean, &bad);
    }
    if (v.new_errors_full > 0) {
      bad_breaking++;
      bad_trimmed += v.keep <= middle;
      bad_exact += v.keep == middle;
    }
    parses_bad += v.parses;
  }
  bench_timing_report("document reparse (edit)", &update);
  bench_timing_report("good candidate (3 lines)", &good);
  bench_timing_report("broken candidate (+1 line)", &bad);
  bench_timing_report("good, document clean", &good_clean);
  bench_timing_report("broken, document clean", &bad_clean);
  printf("  good kept whole %zu/%zu; broken line breaking the parse %zu/%zu, cut back to at most "
         "the good part %zu/%zu, exactly to it %zu (%.1f parses per broken candidate); documents "
         "with an error before the check %zu/%zu\n",
         kept_whole, good.n, bad_breaking, bad.n, bad_trimmed, bad_breaking, bad_exact,
         bad.n ? (double)parses_bad / (double)bad.n : 0.0, errors_before, update.n);
  free(document);
  free(candidate);
  bench_timing_free(&update);
  bench_timing_free(&good);
  bench_timing_free(&good_clean);
  bench_timing_free(&bad_clean);
  bench_timing_free(&bad);
  free(starts);
  free(text);
  syntax_doc_destroy(doc);
  return 0;
}

/* One case of the quality bench: the document is the file without text[offset, offset+removed);
 * the candidate is the removed text up to expected bytes. */
static int check_cases(const char *tsv_path) {
  FILE *tsv = fopen(tsv_path, "r");
  if (!tsv) {
    fprintf(stderr, "bench_syntax: cannot read %s\n", tsv_path);
    return 1;
  }
  enum { KINDS = 4 };
  static const char *const kinds[KINDS] = {"line", "mid", "multi", "cross"};
  size_t total[KINDS] = {0}, whole[KINDS] = {0}, multi_shape[KINDS] = {0}, runon[KINDS] = {0};
  size_t runon_total = 0;
  char row[8192], path[4096] = "", id[256], kind[32];
  char *text = NULL;
  size_t length = 0;
  struct bench_timing timing = bench_timing_new(4096);
  while (fgets(row, sizeof row, tsv)) {
    char file[4096];
    size_t offset, removed, expected;
    if (sscanf(row, "%4095[^\t]\t%zu\t%zu\t%zu\t%31[^\t]\t%255s", file, &offset, &removed,
               &expected, kind, id) != 6) {
      continue;
    }
    int k = 0;
    while (k < KINDS && strcmp(kinds[k], kind))
      k++;
    if (k == KINDS) continue;
    if (strcmp(file, path)) {
      free(text);
      text = bench_read_file(file, &length);
      if (!text) {
        fprintf(stderr, "bench_syntax: cannot read %s\n", file);
        return 1;
      }
      snprintf(path, sizeof path, "%s", file);
    }
    const struct grammar *g = grammars_find_path(file);
    if (!g || offset + removed > length || expected > removed) continue;
    struct aug_err err = {0};
    struct syntax_doc *doc;
    if (syntax_doc_create(g, &doc, &err)) return 1;
    char *document = malloc(length + 1);
    memcpy(document, text, offset);
    memcpy(document + offset, text + offset + removed, length - offset - removed);
    syntax_doc_set_text(doc, document, length - removed, &err);
    struct syntax_verdict v;
    bench_timing_start(&timing);
    if (syntax_check(doc, offset, text + offset, expected, NULL, &v, &err)) {
      fprintf(stderr, "bench_syntax: %s: %s\n", id, err.msg);
      return 1;
    }
    bench_timing_stop(&timing);
    total[k]++;
    whole[k] += v.keep == expected;
    multi_shape[k] += v.shape.kind == SYNTAX_MULTI_LINE;
    if (getenv("BENCH_SYNTAX_VERBOSE") &&
        (v.keep != expected || (v.shape.kind == SYNTAX_MULTI_LINE) != (k == 2))) {
      printf("  %s: kept %zu of %zu, shape %s\n", id, v.keep, expected,
             v.shape.kind == SYNTAX_MULTI_LINE ? "multi" : "single");
    }
    if (v.shape.kind == SYNTAX_MULTI_LINE) {
      /* The body, a line break, then the text that follows it in the file (the closer and what
       * comes after, up to 3 lines), as a model that does not stop would write it. */
      size_t after = offset + removed, end = after;
      for (int lines = 0; end < length && lines < 3; end++)
        lines += text[end] == '\n';
      size_t n = expected + 1 + (end - after);
      char *candidate = malloc(n + 1);
      memcpy(candidate, text + offset, expected);
      candidate[expected] = '\n';
      memcpy(candidate + expected + 1, text + after, end - after);
      /* what follows the body in the file starts with its line break: skip it */
      size_t skip = (end > after && text[after] == '\n') ? 1 : 0;
      memmove(candidate + expected + 1, candidate + expected + 1 + skip, end - after - skip);
      n -= skip;
      syntax_check(doc, offset, candidate, n, NULL, &v, &err);
      runon_total++;
      runon[k] += v.keep == expected;
      if (getenv("BENCH_SYNTAX_VERBOSE") && v.keep != expected) {
        printf("  %s run-on: kept %zu, want %zu (block cut %d): [%.*s]\n", id, v.keep, expected,
               v.block_cut, (int)v.keep, candidate);
      }
      free(candidate);
    }
    free(document);
    syntax_doc_destroy(doc);
  }
  fclose(tsv);
  free(text);
  printf("%s\n  %-6s %6s %12s %12s %14s\n", tsv_path, "kind", "cases", "kept whole", "multi shape",
         "run-on cut");
  for (int k = 0; k < KINDS; k++) {
    printf("  %-6s %6zu %12zu %12zu %14zu\n", kinds[k], total[k], whole[k], multi_shape[k],
           runon[k]);
  }
  printf("  run-on candidates (at a multi-line shape): %zu, cut back to the real body: %zu\n",
         runon_total, runon[0] + runon[1] + runon[2] + runon[3]);
  bench_timing_report("check of the real text", &timing);
  bench_timing_free(&timing);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "--cases")) return check_cases(argv[2]);
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
  int first = 1;
  if (argc > 2 && !strcmp(argv[1], "--parse-budget-us")) {
    parse_budget_us = (unsigned)strtoul(argv[2], NULL, 10);
    printf("parse_budget_us %u\n", parse_budget_us);
    first = 3;
  }
  if (argc > first) {
    for (int i = first; i < argc; i++)
      rc |= bench_file(argv[i]);
  } else {
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++)
      rc |= bench_file(defaults[i]);
  }
  return rc;
}
