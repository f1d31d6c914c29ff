/* The workspace index (plugins/workspace_index.h) on a real tree: scans ROOT (default
 * /usr/lib/python3.11, the Python standard library: ~2000 files this project did not write) with
 * the default bounds, then prints files, definitions, the index's bytes, what it skipped and why,
 * the scan's wall time, the cost of a lookup (median over names found in the tree) and of the
 * walk that finds the file the editor sent last.
 *   cmake --build build --target bench_index && ./build/bench_index [ROOT] [--mib N] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/clock.h"
#include "plugins/workspace_index.h"

static int count_cb(void *data, const struct workspace_index_definition *d) {
  (void)d;
  (*(size_t *)data)++;
  return 0;
}

static int by_value(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
  const char *root = "/usr/lib/python3.11";
  struct workspace_index_params p = workspace_index_params_default();
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--mib") && i + 1 < argc)
      p.max_bytes = (size_t)strtoull(argv[++i], NULL, 10) << 20;
    else
      root = argv[i];
  }
  struct workspace_index *wi = NULL;
  struct aug_err err = {0};
  double t0 = aug_now_ms();
  if (workspace_index_create(root, &p, &wi, &err) || workspace_index_start(wi, &err)) {
    fprintf(stderr, "bench_index: %s\n", err.msg);
    workspace_index_destroy(wi);
    return 1;
  }
  workspace_index_wait_idle(wi);
  double wall = aug_now_ms() - t0;
  struct workspace_index_stats st;
  workspace_index_stats(wi, &st);
  printf("root %s\n", root);
  printf("files %zu, definitions %zu, bytes %zu (%.1f MiB of a %.0f MiB budget)\n", st.files,
         st.definitions, st.bytes, st.bytes / 1048576.0, p.max_bytes / 1048576.0);
  printf("scan %.0f ms (wall from create: %.0f ms)\n", st.scan_ms, wall);
  printf("skipped: hidden %zu, ignored %zu, symlink %zu, outside root %zu, too large %zu, "
         "too many %zu, budget %zu, unreadable %zu, no grammar %zu\n",
         st.skipped_hidden, st.skipped_ignored, st.skipped_symlink, st.skipped_outside_root,
         st.skipped_too_large, st.skipped_too_many, st.skipped_budget, st.skipped_unreadable,
         st.skipped_no_grammar);
  static const char *const names[] = {
      "OrderedDict", "namedtuple",      "main", "urlparse", "Path",
      "dataclass",   "SequenceMatcher", "run",  "__all__",  "nonexistent_name_xyz"};
  enum { N = sizeof names / sizeof names[0], ROUNDS = 2000 };
  double us[N];
  for (size_t i = 0; i < N; i++) {
    size_t found = 0;
    double a = aug_now_ms();
    for (int r = 0; r < ROUNDS; r++)
      workspace_index_lookup(wi, names[i], strlen(names[i]), NULL, count_cb, &found);
    us[i] = (aug_now_ms() - a) * 1000.0 / ROUNDS;
    printf("lookup %-22s %4zu definitions, %.2f us\n", names[i], found / ROUNDS, us[i]);
  }
  qsort(us, N, sizeof us[0], by_value);
  printf("lookup median %.2f us\n", us[N / 2]);
  /* The neighbour of a bare call walks every file's entry (none sent here: the whole walk). */
  size_t found = 0;
  double a = aug_now_ms();
  for (int r = 0; r < ROUNDS / 10; r++)
    workspace_index_recent(wi, NULL, NULL, NULL, count_cb, &found);
  printf("recent (the file the editor sent last) %.2f us over %zu files\n",
         (aug_now_ms() - a) * 1000.0 / (ROUNDS / 10), st.files);
  workspace_index_destroy(wi);
  return 0;
}
