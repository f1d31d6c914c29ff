/* Tests for plugins/workspace_index.c on a workspace the test writes under /tmp: C and Python
 * definitions are found with their path, line and text (a long one by its header and "..."); the
 * .gitignore'd, hidden, no-grammar, oversize and symlinked files are skipped and counted (a link
 * out of the root is never read); an update re-indexes a file from the given text and a reload
 * from disk, a remove forgets it; lookups come in path order and leave out the excluded file;
 * the file the editor sent last is found (never one only the scan read); the file count cap and
 * the byte budget skip files and count them. */
#include "../test_support.h"

#include <stdbool.h>
#include <sys/stat.h>
#include <unistd.h>

#include "plugins/workspace_index.h"

struct tmp_tree {
  char root[256], outside[256];
};

static void write_file(const char *dir, const char *rel, const char *text) {
  char path[512];
  snprintf(path, sizeof path, "%s/%s", dir, rel);
  for (char *p = path + strlen(dir) + 1; *p; p++)
    if (*p == '/') {
      *p = '\0';
      mkdir(path, 0700);
      *p = '/';
    }
  FILE *f = fopen(path, "w");
  assert_non_null(f);
  fputs(text, f);
  fclose(f);
}

static const char big_class[] = "class Big:\n"
                                "    \"\"\"A class too long to show whole.\"\"\"\n"
                                "\n"
                                "    def one(self):\n"
                                "        return 1\n"
                                "\n"
                                "    def two(self):\n"
                                "        return 2\n";

static void make_tree(struct tmp_tree *t) {
  snprintf(t->root, sizeof t->root, "/tmp/augury-wi-XXXXXX");
  snprintf(t->outside, sizeof t->outside, "/tmp/augury-wo-XXXXXX");
  assert_non_null(mkdtemp(t->root));
  assert_non_null(mkdtemp(t->outside));
  write_file(t->root, ".gitignore", "# generated\nignored.c\nbuild/\n/top_only.py\n!kept.c\n");
  write_file(
      t->root, "src/math.c",
      "#include <stdio.h>\n\n#define LIMIT 8\n\nint add(int a, int b) {\n  return a + b;\n}\n");
  write_file(t->root, "src/shape.h", "struct point {\n  int x, y;\n};\n\nint add(int a, int b);\n");
  write_file(t->root, "lib/util.py", "import os\n\n\ndef helper(x):\n    return x + 1\n\n\n");
  write_file(t->root, "lib/big.py", big_class);
  write_file(t->root, "ignored.c", "int ignored_fn(void) { return 0; }\n");
  write_file(t->root, "build/out.c", "int built_fn(void) { return 0; }\n");
  write_file(t->root, "top_only.py", "def anchored_fn():\n    pass\n");
  write_file(t->root, "sub/top_only.py", "def unanchored_fn():\n    pass\n");
  write_file(t->root, ".hidden/secret.c", "int hidden_fn(void) { return 0; }\n");
  write_file(t->root, "notes.txt", "int not_code(void);\n");
  /* oversize for the 4 KiB cap the tests use */
  char big[6000];
  memset(big, ' ', sizeof big - 1);
  big[sizeof big - 1] = '\0';
  memcpy(big, "int huge_fn(void);", 18);
  write_file(t->root, "huge.c", big);
  write_file(t->outside, "outside.c", "int outside_fn(void) { return 0; }\n");
  char target[512], link[512];
  snprintf(target, sizeof target, "%s/outside.c", t->outside);
  snprintf(link, sizeof link, "%s/link_out.c", t->root);
  assert_int_equal(symlink(target, link), 0);
  snprintf(link, sizeof link, "%s/link_dir", t->root);
  assert_int_equal(symlink(t->outside, link), 0);
  snprintf(link, sizeof link, "%s/link_in.c", t->root);
  assert_int_equal(symlink("src/math.c", link), 0);
}

static void remove_tree(struct tmp_tree *t) {
  char cmd[600];
  snprintf(cmd, sizeof cmd, "rm -rf '%s' '%s'", t->root, t->outside);
  assert_int_equal(system(cmd), 0);
}

#define MAX_FOUND 8
struct found {
  struct {
    char path[128];
    uint32_t line;
    char text[512];
  } v[MAX_FOUND];
  size_t n;
};

static int collect(void *data, const struct workspace_index_definition *d) {
  struct found *f = data;
  if (f->n == MAX_FOUND) return 1;
  snprintf(f->v[f->n].path, sizeof f->v[0].path, "%s", d->path);
  f->v[f->n].line = d->line;
  snprintf(f->v[f->n].text, sizeof f->v[0].text, "%.*s", (int)d->text_len, d->text);
  f->n++;
  return 0;
}

static struct found lookup(struct workspace_index *wi, const char *name, const char *exclude) {
  struct found f;
  memset(&f, 0, sizeof f);
  assert_int_equal(workspace_index_lookup(wi, name, strlen(name), exclude, collect, &f), 0);
  return f;
}

static struct workspace_index *scanned(const struct tmp_tree *t,
                                       const struct workspace_index_params *p) {
  struct workspace_index *wi = NULL;
  struct aug_err err = {0};
  assert_int_equal(workspace_index_create(t->root, p, &wi, &err), 0);
  assert_int_equal(workspace_index_start(wi, &err), 0);
  workspace_index_wait_idle(wi);
  return wi;
}

static struct workspace_index_params small_files(void) {
  struct workspace_index_params p = workspace_index_params_default();
  p.max_file_bytes = 4096;
  return p;
}

/* The test tree, scanned with a 4 KiB file cap. */
static struct workspace_index *small_tree(struct tmp_tree *t) {
  make_tree(t);
  struct workspace_index_params p = small_files();
  return scanned(t, &p);
}

static void test_scan_finds_definitions_and_counts_skips(void **state) {
  (void)state;
  struct tmp_tree t;
  struct workspace_index *wi = small_tree(&t);
  struct workspace_index_stats st;
  workspace_index_stats(wi, &st);
  /* src/math.c, src/shape.h, lib/util.py, lib/big.py, sub/top_only.py */
  assert_int_equal(st.files, 5);
  assert_false(st.scanning);
  assert_false(st.truncated);
  assert_true(st.scan_ms >= 0);
  assert_int_equal(st.skipped_hidden, 2);       /* .gitignore, .hidden/ */
  assert_int_equal(st.skipped_ignored, 3);      /* ignored.c, build/, /top_only.py */
  assert_int_equal(st.skipped_outside_root, 2); /* link_out.c, link_dir */
  assert_int_equal(st.skipped_symlink, 1);      /* link_in.c: its target is indexed itself */
  assert_int_equal(st.skipped_too_large, 1);
  assert_int_equal(st.skipped_no_grammar, 1);
  assert_int_equal(st.pending, 0);
  assert_true(st.bytes > 0 && st.bytes < small_files().max_bytes);
  assert_true(st.definitions >= 7);

  struct found f = lookup(wi, "add", NULL);
  assert_int_equal(f.n, 2);
  assert_string_equal(f.v[0].path, "src/math.c"); /* path order */
  assert_int_equal(f.v[0].line, 4);
  assert_string_equal(f.v[0].text, "int add(int a, int b) {\n  return a + b;\n}\n");
  assert_string_equal(f.v[1].path, "src/shape.h");
  assert_string_equal(f.v[1].text, "int add(int a, int b);\n");
  f = lookup(wi, "add", "src/math.c");
  assert_int_equal(f.n, 1);
  assert_string_equal(f.v[0].path, "src/shape.h");

  f = lookup(wi, "LIMIT", NULL);
  assert_int_equal(f.n, 1);
  assert_string_equal(f.v[0].text, "#define LIMIT 8\n");
  f = lookup(wi, "point", NULL);
  assert_int_equal(f.n, 1);
  assert_string_equal(f.v[0].text, "struct point {\n  int x, y;\n};\n");
  f = lookup(wi, "helper", NULL);
  assert_int_equal(f.n, 1);
  assert_string_equal(f.v[0].path, "lib/util.py");
  assert_int_equal(f.v[0].line, 3);
  assert_string_equal(f.v[0].text, "def helper(x):\n    return x + 1\n");
  f = lookup(wi, "Big", NULL);
  assert_int_equal(f.n, 1);
  assert_string_equal(f.v[0].text, "class Big:\n    ...\n");
  assert_int_equal(lookup(wi, "unanchored_fn", NULL).n, 1); /* /top_only.py is anchored */
  const char *absent[] = {"ignored_fn", "built_fn", "anchored_fn", "hidden_fn", "outside_fn",
                          "huge_fn",    "not_code", "one",         "os"};
  for (size_t i = 0; i < sizeof absent / sizeof absent[0]; i++)
    assert_int_equal(lookup(wi, absent[i], NULL).n, 0);
  workspace_index_destroy(wi);
  remove_tree(&t);
}

static struct found module(struct workspace_index *wi, const char *stem, const char *exclude) {
  struct found f;
  memset(&f, 0, sizeof f);
  assert_int_equal(workspace_index_module(wi, stem, strlen(stem), exclude, collect, &f), 0);
  return f;
}

/* A module's definitions: the files named stem.* (any extension, any folder), in path order, each
 * file's in line order; the excluded file left out; no file of that name, nothing. */
static void test_module_definitions(void **state) {
  (void)state;
  struct tmp_tree t;
  struct workspace_index *wi = small_tree(&t);
  struct found f = module(wi, "util", NULL);
  assert_int_equal(f.n, 1);
  assert_string_equal(f.v[0].path, "lib/util.py");
  assert_string_equal(f.v[0].text, "def helper(x):\n    return x + 1\n");
  f = module(wi, "math", NULL);
  assert_true(f.n >= 2);
  for (size_t i = 0; i < f.n; i++) {
    assert_string_equal(f.v[i].path, "src/math.c");
    if (i) assert_true(f.v[i].line > f.v[i - 1].line);
  }
  assert_int_equal(module(wi, "math", "src/math.c").n, 0);
  assert_int_equal(module(wi, "util.py", NULL).n, 0); /* a stem, not a file name */
  assert_int_equal(module(wi, "nothing", NULL).n, 0);
  workspace_index_destroy(wi);
  remove_tree(&t);
}

static bool only_c(void *data, const char *path) {
  (void)data;
  size_t n = strlen(path);
  return n > 2 && (!strcmp(path + n - 2, ".c") || !strcmp(path + n - 2, ".h"));
}

static struct found recent(struct workspace_index *wi, const char *exclude,
                           workspace_index_path_filter accept) {
  struct found f;
  memset(&f, 0, sizeof f);
  assert_int_equal(workspace_index_recent(wi, exclude, accept, NULL, collect, &f), 0);
  return f;
}

/* The file the editor sent last: never one only the scan read; the newest send wins (an update
 * or a reload, whether the text changed or not); the excluded file and those the filter refuses
 * are passed over for the one sent before them; each file's definitions in line order. */
static void test_recent_file(void **state) {
  (void)state;
  struct tmp_tree t;
  struct workspace_index *wi = small_tree(&t);
  struct aug_err err = {0};
  assert_int_equal(recent(wi, NULL, NULL).n, 0);
  assert_int_equal(workspace_index_reload(wi, "src/shape.h", &err), 0);
  const char *util = "def helper(x):\n    return x + 1\n";
  assert_int_equal(workspace_index_update(wi, "lib/util.py", util, strlen(util), &err), 0);
  workspace_index_wait_idle(wi);
  struct found f = recent(wi, NULL, NULL);
  assert_int_equal(f.n, 1);
  assert_string_equal(f.v[0].path, "lib/util.py");
  f = recent(wi, "lib/util.py", NULL);
  assert_true(f.n >= 2);
  for (size_t i = 0; i < f.n; i++) {
    assert_string_equal(f.v[i].path, "src/shape.h");
    if (i) assert_true(f.v[i].line > f.v[i - 1].line);
  }
  assert_string_equal(recent(wi, NULL, only_c).v[0].path, "src/shape.h");
  assert_int_equal(recent(wi, "src/shape.h", only_c).n, 0); /* math.c: only the scan read it */
  /* Sent again: newest once more. */
  assert_int_equal(workspace_index_reload(wi, "src/math.c", &err), 0);
  workspace_index_wait_idle(wi);
  assert_string_equal(recent(wi, NULL, only_c).v[0].path, "src/math.c");
  assert_int_equal(workspace_index_reload(wi, "src/shape.h", &err), 0);
  workspace_index_wait_idle(wi);
  assert_string_equal(recent(wi, NULL, NULL).v[0].path, "src/shape.h");
  /* A removed file is gone from the choice. */
  assert_int_equal(workspace_index_remove(wi, "src/shape.h", &err), 0);
  workspace_index_wait_idle(wi);
  assert_string_equal(recent(wi, NULL, only_c).v[0].path, "src/math.c");
  workspace_index_destroy(wi);
  remove_tree(&t);
}

static void test_update_reload_remove(void **state) {
  (void)state;
  struct tmp_tree t;
  struct workspace_index *wi = small_tree(&t);
  struct aug_err err = {0};
  char abs_path[512];
  snprintf(abs_path, sizeof abs_path, "%s/lib/util.py", t.root);
  /* The editor's text, not the disk's. */
  const char *edited = "def renamed(x):\n    return x\n";
  assert_int_equal(workspace_index_update(wi, abs_path, edited, strlen(edited), &err), 0);
  workspace_index_wait_idle(wi);
  assert_int_equal(lookup(wi, "helper", NULL).n, 0);
  struct found f = lookup(wi, "renamed", NULL);
  assert_int_equal(f.n, 1);
  assert_string_equal(f.v[0].path, "lib/util.py");
  /* Back to the disk (didClose without saving). */
  assert_int_equal(workspace_index_reload(wi, "lib/util.py", &err), 0);
  workspace_index_wait_idle(wi);
  assert_int_equal(lookup(wi, "renamed", NULL).n, 0);
  assert_int_equal(lookup(wi, "helper", NULL).n, 1);
  /* A file changed on disk, then reloaded. */
  write_file(t.root, "lib/util.py", "def helper2(y):\n    return y\n");
  assert_int_equal(workspace_index_reload(wi, abs_path, &err), 0);
  workspace_index_wait_idle(wi);
  assert_int_equal(lookup(wi, "helper", NULL).n, 0);
  assert_int_equal(lookup(wi, "helper2", NULL).n, 1);
  /* A new file, then removed. */
  const char *fresh = "int fresh_fn(void);\n";
  assert_int_equal(workspace_index_update(wi, "src/new.h", fresh, strlen(fresh), &err), 0);
  workspace_index_wait_idle(wi);
  struct workspace_index_stats st;
  workspace_index_stats(wi, &st);
  assert_int_equal(st.files, 6);
  assert_int_equal(lookup(wi, "fresh_fn", NULL).n, 1);
  assert_int_equal(workspace_index_remove(wi, "src/new.h", &err), 0);
  workspace_index_wait_idle(wi);
  workspace_index_stats(wi, &st);
  assert_int_equal(st.files, 5);
  assert_int_equal(lookup(wi, "fresh_fn", NULL).n, 0);
  /* Outside the root, ignored or without a grammar: not indexed. */
  const char *text = "int nowhere_fn(void);\n";
  assert_int_equal(workspace_index_update(wi, "/elsewhere/x.c", text, strlen(text), &err), 0);
  assert_int_equal(workspace_index_update(wi, "build/y.c", text, strlen(text), &err), 0);
  assert_int_equal(workspace_index_update(wi, "../z.c", text, strlen(text), &err), 0);
  assert_int_equal(workspace_index_update(wi, "readme.md", text, strlen(text), &err), 0);
  workspace_index_wait_idle(wi);
  assert_int_equal(lookup(wi, "nowhere_fn", NULL).n, 0);
  workspace_index_stats(wi, &st);
  assert_int_equal(st.files, 5);
  assert_int_equal(st.skipped_ignored, 3 + 1); /* build/y.c */
  assert_int_equal(st.skipped_no_grammar, 1);  /* notes.txt, from the scan only */
  /* A removed file leaves no bytes behind: the same text in and out again. */
  size_t before = st.bytes;
  assert_int_equal(workspace_index_update(wi, "src/new.h", fresh, strlen(fresh), &err), 0);
  assert_int_equal(workspace_index_remove(wi, "src/new.h", &err), 0);
  workspace_index_wait_idle(wi);
  workspace_index_stats(wi, &st);
  assert_int_equal(st.bytes, before);
  workspace_index_destroy(wi);
  remove_tree(&t);
}

static void test_caps_count_what_they_skip(void **state) {
  (void)state;
  struct tmp_tree t;
  make_tree(&t);
  struct workspace_index_params p = small_files();
  p.max_files = 2;
  struct workspace_index *wi = scanned(&t, &p);
  struct workspace_index_stats st;
  workspace_index_stats(wi, &st);
  assert_int_equal(st.files, 2);
  assert_int_equal(st.skipped_too_many, 1); /* the walk stops there */
  assert_true(st.truncated);
  /* lib/ comes first in name order: the same files every time */
  assert_int_equal(lookup(wi, "Big", NULL).n, 1);
  assert_int_equal(lookup(wi, "helper", NULL).n, 1);
  assert_int_equal(lookup(wi, "add", NULL).n, 0);
  workspace_index_destroy(wi);

  /* A budget of the empty tables and a little more: some files fit, the rest are counted. */
  p = small_files();
  struct aug_err err = {0};
  assert_int_equal(workspace_index_create(t.root, &p, &wi, &err), 0);
  workspace_index_stats(wi, &st);
  size_t empty = st.bytes;
  workspace_index_destroy(wi);
  p.max_bytes = empty + 400;
  wi = scanned(&t, &p);
  workspace_index_stats(wi, &st);
  assert_true(st.files >= 1 && st.files < 5);
  assert_int_equal(st.files + st.skipped_budget, 5);
  assert_true(st.bytes <= p.max_bytes);
  workspace_index_destroy(wi);
  remove_tree(&t);
}

static void test_destroy_during_scan_and_bad_args(void **state) {
  (void)state;
  struct workspace_index *wi = NULL;
  struct aug_err err = {0};
  assert_int_equal(workspace_index_create("", NULL, &wi, &err), AUG_EINVAL);
  assert_null(wi);
  workspace_index_destroy(NULL);
  /* A missing root scans nothing and says so. */
  assert_int_equal(workspace_index_create("/nonexistent/augury-root", NULL, &wi, &err), 0);
  assert_int_equal(workspace_index_start(wi, &err), 0);
  assert_int_equal(workspace_index_start(wi, &err), AUG_EINVAL);
  workspace_index_wait_idle(wi);
  struct workspace_index_stats st;
  workspace_index_stats(wi, &st);
  assert_int_equal(st.files, 0);
  assert_int_equal(st.skipped_unreadable, 1);
  workspace_index_destroy(wi);
  /* Destroyed while scanning (the source tree): it stops at its next file. */
  assert_int_equal(workspace_index_create(AUGURY_SOURCE_DIR, NULL, &wi, &err), 0);
  assert_int_equal(workspace_index_start(wi, &err), 0);
  workspace_index_destroy(wi);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_scan_finds_definitions_and_counts_skips),
      cmocka_unit_test(test_module_definitions),
      cmocka_unit_test(test_recent_file),
      cmocka_unit_test(test_update_reload_remove),
      cmocka_unit_test(test_caps_count_what_they_skip),
      cmocka_unit_test(test_destroy_during_scan_and_bad_args),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
