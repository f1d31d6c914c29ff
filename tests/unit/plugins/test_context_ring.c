/* Tests for plugins/context_ring.c: a place enters the ring when the user leaves it (another
 * document, or far away in the same one), not while they stay; pieces come oldest first, named by
 * path, as AUGURY_STABLE_RECENT; a chunk seen again unchanged keeps its place, a similar one
 * replaces the older; the count and byte bounds evict the oldest; chunks of the cursor's document
 * that overlap the prompt window are left out; over the token budget the oldest are dropped and
 * the newest alone is cut around its line; edits above a chunk move it; the same state gives the
 * same bytes; destroy(NULL) is a no-op. */
#include "../test_support.h"

#include <stdbool.h>

#include "plugins/context_ring.h"

#define MAX_PIECES 16

/* A sink like the host's: counts bytes / 3 (the host's estimate without a model) against a
 * budget and copies the pieces. */
struct collector {
  struct {
    char name[128];
    char text[16384];
    size_t len;
    uint32_t stability;
  } pieces[MAX_PIECES];
  size_t n, tokens, budget;
};

static int collect(void *data, const struct augury_context_piece *p) {
  struct collector *c = data;
  size_t tokens = (p->text_len + 2) / 3;
  if (c->tokens + tokens > c->budget) return AUGURY_PLUGIN_ERANGE;
  assert_true(c->n < MAX_PIECES);
  assert_true(p->text_len < sizeof c->pieces[0].text);
  snprintf(c->pieces[c->n].name, sizeof c->pieces[0].name, "%s", p->name ? p->name : "");
  memcpy(c->pieces[c->n].text, p->text, p->text_len);
  c->pieces[c->n].text[p->text_len] = '\0';
  c->pieces[c->n].len = p->text_len;
  c->pieces[c->n].stability = p->stability;
  c->n++;
  c->tokens += tokens;
  return 0;
}

/* A document of n lines, each naming its file and number ("a.c 12: ..."), so that no two files
 * share a line. Caller frees. */
static char *make_doc(const char *name, int n) {
  size_t cap = (size_t)n * 64 + 1;
  char *s = malloc(cap);
  assert_non_null(s);
  size_t k = 0;
  for (int i = 0; i < n; i++)
    k += (size_t)snprintf(s + k, cap - k, "%s %d: int v%d = %d;\n", name, i, i, i * 7);
  return s;
}

static size_t offset_of_line(const char *text, uint32_t line) {
  size_t at = 0;
  for (uint32_t l = 0; l < line; l++)
    at = (size_t)(strchr(text + at, '\n') - text) + 1;
  return at;
}

static void visit(struct context_ring *cr, const char *name, const char *text, uint32_t line) {
  char uri[256];
  snprintf(uri, sizeof uri, "file:///w/%s", name);
  struct context_ring_place pl = {uri, name, text, strlen(text), NULL, 0, line};
  struct aug_err err = {0};
  assert_int_equal(context_ring_visit(cr, &pl, &err), 0);
}

static void flush(struct context_ring *cr) {
  struct aug_err err = {0};
  assert_int_equal(context_ring_flush(cr, &err), 0);
}

/* The cursor at `line` of name's text with a window of lines [win_first, win_last]. */
static void provide(struct context_ring *cr, const char *name, const char *text, uint32_t line,
                    uint32_t win_first, uint32_t win_last, size_t budget, struct collector *out) {
  memset(out, 0, sizeof *out);
  out->budget = budget;
  char uri[256];
  snprintf(uri, sizeof uri, "file:///w/%s", name);
  size_t offset = offset_of_line(text, line);
  struct augury_cursor cursor = {uri, name, "c", text, strlen(text), offset, line};
  struct augury_context_request req = {
      sizeof req, &cursor, offset_of_line(text, win_first), offset_of_line(text, win_last + 1),
      budget,     50};
  struct augury_context_sink sink = {out, collect};
  char error[256] = "";
  const struct augury_plugin *p = context_ring_plugin(cr);
  assert_int_equal(p->context_provide(p->self, &req, &sink, error), 0);
  assert_string_equal(error, "");
  for (size_t i = 0; i < out->n; i++)
    assert_int_equal(out->pieces[i].stability, AUGURY_STABLE_RECENT);
}

static struct context_ring *make_ring(size_t max_chunks, uint32_t chunk_lines) {
  struct context_ring_params p = context_ring_params_default();
  p.max_chunks = max_chunks;
  p.chunk_lines = chunk_lines;
  struct context_ring *cr = NULL;
  struct aug_err err = {0};
  assert_int_equal(context_ring_create(&p, &cr, &err), 0);
  return cr;
}

/* Whether line `line` of name ("name line:") starts the piece's text. */
static bool piece_starts_at(const struct collector *c, size_t i, const char *name, int line) {
  char head[64];
  snprintf(head, sizeof head, "%s %d:", name, line);
  return !strncmp(c->pieces[i].text, head, strlen(head));
}

static void test_defaults_and_destroy_null(void **state) {
  (void)state;
  context_ring_destroy(NULL);
  struct context_ring_params p = context_ring_params_default();
  assert_int_equal(p.max_chunks, 16);
  assert_int_equal(p.chunk_lines, 64);
  struct context_ring *cr = NULL;
  struct aug_err err = {0};
  p.max_chunks = 0;
  assert_int_equal(context_ring_create(&p, &cr, &err), AUG_EINVAL);
  assert_null(cr);
  assert_non_null(strstr(err.msg, "max_chunks 0"));
  p = context_ring_params_default();
  p.chunk_lines = 1;
  assert_int_equal(context_ring_create(&p, &cr, &err), AUG_EINVAL);
  assert_int_equal(context_ring_create(NULL, &cr, &err), 0);
  assert_string_equal(context_ring_plugin(cr)->name, CONTEXT_RING_NAME);
  assert_true(context_ring_plugin(cr)->supports(cr, AUGURY_CAP_CONTEXT));
  assert_false(context_ring_plugin(cr)->supports(cr, AUGURY_CAP_COMPLETION));
  context_ring_destroy(cr);
}

/* Places enter the ring when left; pieces come oldest first, named by path, each chunk_lines
 * lines around the visited line. */
static void test_order_and_pending(void **state) {
  (void)state;
  struct context_ring *cr = make_ring(16, 8);
  char *a = make_doc("a.c", 40), *b = make_doc("b.c", 40), *c = make_doc("c.c", 40);
  visit(cr, "a.c", a, 20);
  visit(cr, "a.c", a, 22); /* still there: nothing enters the ring */
  struct context_ring_stats st;
  context_ring_stats(cr, &st);
  assert_int_equal(st.chunks, 0);
  visit(cr, "b.c", b, 0);  /* a.c left */
  visit(cr, "c.c", c, 39); /* b.c left */
  context_ring_stats(cr, &st);
  assert_int_equal(st.chunks, 2);
  assert_int_equal(st.added, 2);
  struct collector got;
  provide(cr, "c.c", c, 39, 30, 39, 10000, &got);
  assert_int_equal(got.n, 2);
  assert_string_equal(got.pieces[0].name, "a.c");
  assert_string_equal(got.pieces[1].name, "b.c");
  /* 8 lines around line 20 (the anchor, where a.c was entered): 16..23 */
  assert_true(piece_starts_at(&got, 0, "a.c", 16));
  assert_int_equal(strchr(got.pieces[0].text, '\0') - got.pieces[0].text, got.pieces[0].len);
  assert_non_null(strstr(got.pieces[0].text, "a.c 23:"));
  assert_null(strstr(got.pieces[0].text, "a.c 24:"));
  /* at the top of b.c: its first 8 lines */
  assert_true(piece_starts_at(&got, 1, "b.c", 0));
  assert_non_null(strstr(got.pieces[1].text, "b.c 7:"));
  assert_null(strstr(got.pieces[1].text, "b.c 8:"));
  /* Far away in the same document (more than chunk_lines / 2): c.c's place enters the ring. */
  visit(cr, "c.c", c, 10);
  context_ring_stats(cr, &st);
  assert_int_equal(st.chunks, 3);
  provide(cr, "c.c", c, 10, 5, 15, 10000, &got);
  assert_int_equal(got.n, 3);
  assert_string_equal(got.pieces[2].name, "c.c");
  /* the last 8 lines: 33..39 and the empty line 40 after the last line break */
  assert_true(piece_starts_at(&got, 2, "c.c", 33));
  free(a);
  free(b);
  free(c);
  context_ring_destroy(cr);
}

/* A chunk seen again unchanged keeps its place (the KV cache holds it there); an edited one
 * (more than 90% of its lines the same) replaces the older and moves to the end. */
static void test_similar_replaces(void **state) {
  (void)state;
  struct context_ring *cr = make_ring(16, 32);
  char *a = make_doc("a.c", 100), *b = make_doc("b.c", 100);
  visit(cr, "a.c", a, 50);
  visit(cr, "b.c", b, 50);
  visit(cr, "a.c", a, 50); /* a.c's chunk again, unchanged; b.c's enters */
  flush(cr);
  struct context_ring_stats st;
  context_ring_stats(cr, &st);
  assert_int_equal(st.chunks, 2);
  assert_int_equal(st.added, 2);
  struct collector got;
  char *z = make_doc("z.c", 10);
  provide(cr, "z.c", z, 0, 0, 9, 10000, &got);
  assert_int_equal(got.n, 2);
  assert_string_equal(got.pieces[0].name, "a.c");
  assert_string_equal(got.pieces[1].name, "b.c");
  /* One line of a.c's 32 changed: 31 of 32 shared (0.97), so it replaces the old one. */
  char *edited = strdup(a);
  char *at = strstr(edited, "a.c 45: int v45");
  assert_non_null(at);
  at[12] = 'w';
  visit(cr, "a.c", edited, 50);
  flush(cr);
  context_ring_stats(cr, &st);
  assert_int_equal(st.chunks, 2);
  assert_int_equal(st.replaced, 1);
  provide(cr, "z.c", z, 0, 0, 9, 10000, &got);
  assert_int_equal(got.n, 2);
  assert_string_equal(got.pieces[0].name, "b.c");
  assert_string_equal(got.pieces[1].name, "a.c");
  assert_non_null(strstr(got.pieces[1].text, "a.c 45: int w45"));
  /* Under half the lines shared (a place 17 lines on, past chunk_lines / 2): both kept. */
  visit(cr, "a.c", edited, 67);
  flush(cr);
  context_ring_stats(cr, &st);
  assert_int_equal(st.chunks, 3);
  assert_int_equal(st.replaced, 1);
  free(a);
  free(b);
  free(z);
  free(edited);
  context_ring_destroy(cr);
}

/* Count and byte bounds: the oldest leave first. */
static void test_bounds(void **state) {
  (void)state;
  struct context_ring *cr = make_ring(3, 4);
  char *docs[5];
  char name[16];
  for (int i = 0; i < 5; i++) {
    snprintf(name, sizeof name, "f%d.c", i);
    docs[i] = make_doc(name, 10);
    visit(cr, name, docs[i], 0);
  }
  flush(cr);
  struct context_ring_stats st;
  context_ring_stats(cr, &st);
  assert_int_equal(st.chunks, 3);
  assert_int_equal(st.evicted, 2);
  struct collector got;
  provide(cr, "f0.c", docs[0], 9, 9, 9, 10000, &got);
  assert_int_equal(got.n, 3);
  assert_string_equal(got.pieces[0].name, "f2.c");
  assert_string_equal(got.pieces[2].name, "f4.c");
  size_t bytes = got.pieces[0].len + got.pieces[1].len + got.pieces[2].len;
  assert_int_equal(st.bytes, bytes);
  context_ring_destroy(cr);

  /* Room for two chunks' bytes: the third pushes the first out. */
  struct context_ring_params p = context_ring_params_default();
  p.chunk_lines = 4;
  p.max_bytes = bytes * 2 / 3 + 1;
  struct aug_err err = {0};
  assert_int_equal(context_ring_create(&p, &cr, &err), 0);
  for (int i = 0; i < 3; i++) {
    snprintf(name, sizeof name, "f%d.c", i);
    visit(cr, name, docs[i], 0);
  }
  flush(cr);
  context_ring_stats(cr, &st);
  assert_int_equal(st.chunks, 2);
  assert_true(st.bytes <= p.max_bytes);
  provide(cr, "f4.c", docs[4], 0, 0, 0, 10000, &got);
  assert_string_equal(got.pieces[0].name, "f1.c");
  /* A chunk over max_chunk_bytes keeps the lines nearest its place. */
  context_ring_destroy(cr);
  p = context_ring_params_default();
  p.chunk_lines = 16;
  p.max_chunk_bytes = 100;
  assert_int_equal(context_ring_create(&p, &cr, &err), 0);
  char *big = make_doc("big.c", 40);
  visit(cr, "big.c", big, 20);
  flush(cr);
  provide(cr, "f4.c", docs[4], 0, 0, 0, 10000, &got);
  assert_int_equal(got.n, 1);
  assert_true(got.pieces[0].len <= 100);
  assert_non_null(strstr(got.pieces[0].text, "big.c 20:"));
  free(big);
  for (int i = 0; i < 5; i++)
    free(docs[i]);
  context_ring_destroy(cr);
}

/* Chunks of the cursor's document that overlap the window are left out; the others, and other
 * documents' chunks at the same lines, are given. */
static void test_window_excluded(void **state) {
  (void)state;
  struct context_ring *cr = make_ring(16, 10);
  char *a = make_doc("a.c", 200), *b = make_doc("b.c", 200);
  visit(cr, "a.c", a, 20);  /* lines 15..24 */
  visit(cr, "a.c", a, 100); /* far: 15..24 enters; 95..104 pending */
  visit(cr, "b.c", b, 20);  /* 95..104 enters */
  flush(cr);                /* b.c 15..24 */
  struct collector got;
  provide(cr, "a.c", a, 30, 24, 40, 10000, &got); /* overlaps 15..24 by its last line */
  assert_int_equal(got.n, 2);
  assert_true(piece_starts_at(&got, 0, "a.c", 95));
  assert_true(piece_starts_at(&got, 1, "b.c", 15));
  provide(cr, "a.c", a, 30, 25, 40, 10000, &got); /* just past it */
  assert_int_equal(got.n, 3);
  assert_true(piece_starts_at(&got, 0, "a.c", 15));
  provide(cr, "a.c", a, 100, 0, 199, 10000, &got); /* the whole document in the window */
  assert_int_equal(got.n, 1);
  assert_string_equal(got.pieces[0].name, "b.c");
  /* Ten lines inserted at the top move a.c's chunks down with the text: 25..34 overlaps now. */
  context_ring_edit(cr, "file:///w/a.c", 0, 0, 10);
  provide(cr, "a.c", a, 30, 25, 40, 10000, &got);
  assert_int_equal(got.n, 2);
  assert_true(piece_starts_at(&got, 0, "a.c", 95));
  free(a);
  free(b);
  context_ring_destroy(cr);
}

/* Over the budget the oldest are dropped; when the newest alone does not fit, it is cut to the
 * lines around its place. */
static void test_budget(void **state) {
  (void)state;
  struct context_ring *cr = make_ring(16, 8);
  char *docs[3];
  char name[16];
  for (int i = 0; i < 3; i++) {
    snprintf(name, sizeof name, "f%d.c", i);
    docs[i] = make_doc(name, 40);
    visit(cr, name, docs[i], 20);
  }
  flush(cr);
  char *z = make_doc("z.c", 10);
  struct collector all;
  provide(cr, "z.c", z, 0, 0, 9, 10000, &all);
  assert_int_equal(all.n, 3);
  size_t t1 = (all.pieces[1].len + 2) / 3, t2 = (all.pieces[2].len + 2) / 3;
  struct collector got;
  provide(cr, "z.c", z, 0, 0, 9, t1 + t2, &got);
  assert_int_equal(got.n, 2);
  assert_string_equal(got.pieces[0].name, "f1.c");
  assert_string_equal(got.pieces[1].name, "f2.c");
  provide(cr, "z.c", z, 0, 0, 9, t1 + t2 - 1, &got);
  assert_int_equal(got.n, 1);
  assert_string_equal(got.pieces[0].name, "f2.c");
  assert_string_equal(got.pieces[0].text, all.pieces[2].text);
  /* Three lines' worth: the newest cut to the lines around line 20, whole lines. */
  size_t line_tokens = (strlen("f2.c 20: int v20 = 140;\n") + 2) / 3;
  provide(cr, "z.c", z, 0, 0, 9, line_tokens * 3, &got);
  assert_int_equal(got.n, 1);
  assert_string_equal(got.pieces[0].name, "f2.c");
  assert_true(piece_starts_at(&got, 0, "f2.c", 19));
  assert_string_equal(
      got.pieces[0].text,
      "f2.c 19: int v19 = 133;\nf2.c 20: int v20 = 140;\nf2.c 21: int v21 = 147;\n");
  provide(cr, "z.c", z, 0, 0, 9, 2, &got); /* not even a line */
  assert_int_equal(got.n, 0);
  provide(cr, "z.c", z, 0, 0, 9, 0, &got);
  assert_int_equal(got.n, 0);
  for (int i = 0; i < 3; i++)
    free(docs[i]);
  free(z);
  context_ring_destroy(cr);
}

/* The same visits give the same bytes, call after call and ring after ring; a document's last
 * line without a line break still ends its piece with one. */
static void test_deterministic(void **state) {
  (void)state;
  struct collector *first = malloc(sizeof *first), *again = malloc(sizeof *again);
  assert_non_null(first);
  assert_non_null(again);
  char *a = make_doc("a.c", 50), *b = make_doc("b.c", 50);
  for (int round = 0; round < 2; round++) {
    struct context_ring *cr = make_ring(16, 16);
    visit(cr, "a.c", a, 10);
    visit(cr, "b.c", b, 40);
    visit(cr, "tail.py", "x = 1\ny = 2", 1);
    visit(cr, "a.c", a, 45);
    flush(cr);
    struct collector *out = round == 0 ? first : again;
    provide(cr, "a.c", a, 10, 5, 15, 10000, out);
    if (round == 0) {
      struct collector *twice = malloc(sizeof *twice);
      assert_non_null(twice);
      provide(cr, "a.c", a, 10, 5, 15, 10000, twice);
      assert_int_equal(twice->n, out->n);
      for (size_t i = 0; i < out->n; i++)
        assert_memory_equal(twice->pieces[i].text, out->pieces[i].text, out->pieces[i].len + 1);
      free(twice);
    }
    context_ring_destroy(cr);
  }
  assert_int_equal(first->n, 3); /* a.c 2..17 overlaps the window: left out */
  assert_int_equal(again->n, first->n);
  for (size_t i = 0; i < first->n; i++) {
    assert_string_equal(again->pieces[i].name, first->pieces[i].name);
    assert_int_equal(again->pieces[i].len, first->pieces[i].len);
    assert_memory_equal(again->pieces[i].text, first->pieces[i].text, first->pieces[i].len);
  }
  assert_string_equal(first->pieces[1].name, "tail.py");
  assert_string_equal(first->pieces[1].text, "x = 1\ny = 2\n");
  free(a);
  free(b);
  free(first);
  free(again);
}

/* A blank place gives no chunk; a visit past the last line is at the last line; the caller's
 * line starts are used as given. */
static void test_edges(void **state) {
  (void)state;
  struct context_ring *cr = make_ring(16, 4);
  visit(cr, "blank.c", "\n\n   \n\n", 2);
  visit(cr, "empty.c", "", 0);
  char *a = make_doc("a.c", 10);
  size_t starts[10];
  for (uint32_t i = 0; i < 10; i++)
    starts[i] = offset_of_line(a, i);
  struct context_ring_place pl = {"file:///w/a.c", "a.c", a, strlen(a), starts, 10, 1000};
  struct aug_err err = {0};
  assert_int_equal(context_ring_visit(cr, &pl, &err), 0);
  flush(cr);
  struct context_ring_stats st;
  context_ring_stats(cr, &st);
  assert_int_equal(st.chunks, 1);
  struct collector got;
  char *z = make_doc("z.c", 3);
  provide(cr, "z.c", z, 0, 0, 2, 10000, &got);
  assert_int_equal(got.n, 1);
  assert_true(piece_starts_at(&got, 0, "a.c", 6));
  struct context_ring_place bad = {NULL, "x", "x", 1, NULL, 0, 0};
  assert_int_equal(context_ring_visit(cr, &bad, &err), AUG_EINVAL);
  free(a);
  free(z);
  context_ring_destroy(cr);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_defaults_and_destroy_null),
      cmocka_unit_test(test_order_and_pending),
      cmocka_unit_test(test_similar_replaces),
      cmocka_unit_test(test_bounds),
      cmocka_unit_test(test_window_excluded),
      cmocka_unit_test(test_budget),
      cmocka_unit_test(test_deterministic),
      cmocka_unit_test(test_edges),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
