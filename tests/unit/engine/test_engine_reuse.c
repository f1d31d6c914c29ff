/* Shifted-chunk reuse in engine_set_prompt (engine_params.reuse_min_chunk), on a 2-layer synthetic
 * Qwen2.5-Coder-0.5B-shaped model: lines deleted above (chunk moved left) and inserted above
 * (moved right) keep the chunk's cells, the stats add up, layer 0's moved K equals K evaluated at
 * the new position within F16 rounding (layer 0's K depends on the token alone, so this isolates
 * the re-rotation), logits stay close to a full evaluation, a FIM suffix moved by a line typed
 * before it is evaluated again (reuse_fresh_suffix), and cancellation leaves a valid
 * prefix with consistent cells. On the small real model (when present): the logit difference and
 * top-1 agreement against a full evaluation of an edited source file, and the time saved.
 * The host-RAM prompt cache (engine_params.prompt_cache_bytes): an earlier prompt comes back
 * from RAM with logits bit-identical to evaluating it with the same batches, a partial prefix is
 * restored, eviction keeps the byte bound, a cancel after a restore leaves a valid prefix, and a
 * move cancelled before it is placed loses nothing that a prompt with the old start needs, and a
 * snapshot's tokens after the common prefix are moved like the resident sequence's. */
#include <math.h>
#include <stdatomic.h>
#include <time.h>
#include <unistd.h>

#include "backends/backend.h"
#include "engine/engine.h"
#include "engine/kvcache.h"
#include "engine/quant.h"
#include "engine/synth.h"
#include "engine/tokenizer.h"
#include "tests/unit/test_support.h"
#include "engine/clock.h"

enum { CTX = 256, CHUNK = 8, VOCAB = 1024 };

struct fixture {
  char path[64];
  struct engine *reuse; /* reuse_min_chunk = CHUNK */
  struct engine *plain; /* reuse off: the full evaluation to compare with */
};

static struct engine *open_engine_fresh(const char *path, uint32_t min_chunk, uint32_t fresh) {
  struct engine_params ep = engine_params_default();
  ep.reuse_fresh_suffix = fresh;
  ep.model_path = path;
  ep.n_threads = 2;
  ep.n_ctx = CTX;
  ep.n_batch = 32;
  ep.reuse_min_chunk = min_chunk;
  ep.reuse_max_tokens = 100;
  struct engine *e = NULL;
  struct aug_err err = {0};
  if (engine_create(&ep, &e, &err)) fail_msg("engine_create: %s", err.msg);
  return e;
}

static struct engine *open_engine(const char *path, uint32_t min_chunk) {
  return open_engine_fresh(path, min_chunk, ENGINE_FRESH_SUFFIX_ALL);
}

static int setup(void **state) {
  struct fixture *f = calloc(1, sizeof *f);
  assert_non_null(f);
  snprintf(f->path, sizeof f->path, "/tmp/augury-reuse-XXXXXX");
  int fd = mkstemp(f->path);
  assert_true(fd >= 0);
  close(fd);
  struct synth_params sp = synth_params_default();
  sp.like = "qwen2.5-coder-0.5b";
  sp.type = SYNTH_TYPE_Q8_0;
  sp.n_layers = 2;
  sp.n_vocab = VOCAB;
  sp.seed = 5;
  struct aug_err err = {0};
  if (synth_write(&sp, f->path, &err)) fail_msg("synth_write: %s", err.msg);
  f->reuse = open_engine(f->path, CHUNK);
  f->plain = open_engine(f->path, 0);
  *state = f;
  return 0;
}

static int teardown(void **state) {
  struct fixture *f = *state;
  engine_destroy(f->reuse);
  engine_destroy(f->plain);
  unlink(f->path);
  free(f);
  return 0;
}

static void tokens_for(int32_t *t, size_t n, uint32_t seed) {
  for (size_t i = 0; i < n; i++) {
    seed = seed * 1664525u + 1013904223u;
    t[i] = (int32_t)((seed >> 8) % VOCAB);
  }
}

/* out = the concatenation of the pieces (pointer, length pairs); returns the length. */
static size_t join(int32_t *out, const int32_t *a, size_t na, const int32_t *b, size_t nb,
                   const int32_t *c, size_t nc, const int32_t *d, size_t nd) {
  memcpy(out, a, na * sizeof *a);
  memcpy(out + na, b, nb * sizeof *b);
  if (nc) memcpy(out + na + nb, c, nc * sizeof *c);
  if (nd) memcpy(out + na + nb + nc, d, nd * sizeof *d);
  return na + nb + nc + nd;
}

static double max_diff(const float *a, const float *b, size_t n) {
  double m = 0.0;
  for (size_t i = 0; i < n; i++)
    if (fabs((double)a[i] - b[i]) > m) m = fabs((double)a[i] - b[i]);
  return m;
}

static int32_t argmax(const float *v, size_t n) {
  size_t best = 0;
  for (size_t i = 1; i < n; i++)
    if (v[i] > v[best]) best = i;
  return (int32_t)best;
}

/* Max |difference| of layer il's K (or V) cells [pos, pos + n) between two engines' caches. */
static double cells_diff(struct engine *a, struct engine *b, uint32_t il, bool value, uint32_t pos,
                         uint32_t n) {
  const struct kvcache *ca = engine_kvcache(a), *cb = engine_kvcache(b);
  const struct backend_tensor *ta = value ? kvcache_v(ca, il) : kvcache_k(ca, il);
  const struct backend_tensor *tb = value ? kvcache_v(cb, il) : kvcache_k(cb, il);
  const struct backend_ops *ops = backend_cpu_ops();
  const unsigned char *da = (const unsigned char *)ops->buffer_host_ptr(NULL, ta->buffer);
  const unsigned char *db = (const unsigned char *)ops->buffer_host_ptr(NULL, tb->buffer);
  size_t row = (size_t)ta->ne[0] * (size_t)ta->ne[1];
  float *fa = malloc(row * sizeof *fa), *fb = malloc(row * sizeof *fb);
  double worst = 0.0;
  for (uint32_t p = pos; p < pos + n; p++) {
    assert_int_equal(
        quant_dequantize_row(ta->type, da + ta->offset + p * ta->plane_stride, fa, (int64_t)row),
        0);
    assert_int_equal(
        quant_dequantize_row(tb->type, db + tb->offset + p * tb->plane_stride, fb, (int64_t)row),
        0);
    double d = max_diff(fa, fb, row);
    if (d > worst) worst = d;
  }
  free(fa);
  free(fb);
  return worst;
}

/* Evaluates `prompt` on the reuse engine after `before`, and fully on the plain engine; checks
 * the stats and compares the moved cells and logits. */
static void check_move(struct fixture *f, const int32_t *before, size_t n_before,
                       const int32_t *prompt, size_t n, size_t want_reused, size_t want_shifted,
                       uint32_t moved_at, const char *what) {
  struct aug_err err = {0};
  struct engine_eval_stats st;
  assert_int_equal(engine_set_prompt(f->reuse, before, n_before, NULL, &st, &err), 0);
  assert_int_equal(engine_set_prompt(f->reuse, prompt, n, NULL, &st, &err), 0);
  assert_int_equal(st.n_reused, want_reused);
  assert_int_equal(st.n_shifted, want_shifted);
  assert_int_equal(st.n_restored, 0);
  assert_int_equal(st.n_reused + st.n_shifted + st.n_evaluated, n);
  assert_int_equal(engine_n_resident(f->reuse), n);
  assert_memory_equal(engine_resident_tokens(f->reuse), prompt, n * sizeof *prompt);
  engine_truncate(f->plain, 0);
  assert_int_equal(engine_set_prompt(f->plain, prompt, n, NULL, &st, &err), 0);
  assert_int_equal(st.n_evaluated, n);
  /* Layer 0: K and V of a token do not depend on its context, only (K) on its position. */
  double k0 = cells_diff(f->reuse, f->plain, 0, false, moved_at, (uint32_t)want_shifted);
  double v0 = cells_diff(f->reuse, f->plain, 0, true, moved_at, (uint32_t)want_shifted);
  size_t nv = engine_model(f->reuse)->hp.n_vocab;
  double dl = max_diff(engine_logits(f->reuse), engine_logits(f->plain), nv);
  print_message("%s: layer-0 K max |diff| %.2e, V %.2e; logits max |diff| %.3f, argmax %d vs %d\n",
                what, k0, v0, dl, argmax(engine_logits(f->reuse), nv),
                argmax(engine_logits(f->plain), nv));
  assert_true(k0 < 4e-3 * 8); /* F16 rounding of values up to ~8 */
  assert_true(v0 < 4e-3 * 8);
  assert_true(isfinite(dl));
}

static void test_moved_chunks(void **state) {
  struct fixture *f = *state;
  int32_t a[20], x[10], y[12], c[40], d[5], e[6];
  tokens_for(a, 20, 1);
  tokens_for(x, 10, 2);
  tokens_for(y, 12, 3);
  tokens_for(c, 40, 4);
  tokens_for(d, 5, 5);
  tokens_for(e, 6, 6);
  int32_t before[CTX], prompt[CTX];
  size_t nb = join(before, a, 20, x, 10, c, 40, d, 5);
  /* Lines deleted above: C moves 10 positions left. */
  size_t n = join(prompt, a, 20, c, 40, e, 6, NULL, 0);
  check_move(f, before, nb, prompt, n, 20, 40, 20, "deleted above (delta -10)");
  /* Lines inserted above: C moves 12 positions right. */
  n = join(prompt, a, 20, x, 10, y, 12, c, 40);
  prompt[n++] = e[0];
  check_move(f, before, nb, prompt, n, 30, 40, 42, "inserted above (delta +12)");
  /* A chunk shorter than reuse_min_chunk is evaluated: X minus its last 3 tokens, then C. */
  n = join(prompt, a, 20, c, 5, d, 5, NULL, 0);
  struct aug_err err = {0};
  struct engine_eval_stats st;
  assert_int_equal(engine_set_prompt(f->reuse, before, nb, NULL, &st, &err), 0);
  assert_int_equal(engine_set_prompt(f->reuse, prompt, n, NULL, &st, &err), 0);
  assert_int_equal(st.n_shifted, 0);
  assert_int_equal(st.n_evaluated, 10);
  /* Two chunks swapped (a moved block), each found at its new place; the last token is always
   * evaluated, even when the old sequence has it. */
  nb = join(before, a, 20, c, 40, x, 10, y, 12);
  n = join(prompt, a, 20, x, 10, c, 40, y, 12);
  assert_int_equal(engine_set_prompt(f->reuse, before, nb, NULL, &st, &err), 0);
  assert_int_equal(engine_set_prompt(f->reuse, prompt, n, NULL, &st, &err), 0);
  assert_int_equal(st.n_reused, 20);
  assert_int_equal(st.n_shifted, 10 + 40 + 11);
  assert_int_equal(st.n_evaluated, 1);
  assert_memory_equal(engine_resident_tokens(f->reuse), prompt, n * sizeof *prompt);
  assert_non_null(engine_logits(f->reuse));
}

/* More to move than reuse_max_tokens (100): the rest is evaluated. */
/* tokens_for without the FIM suffix marker, so that only the marker a test places is one. */
static void tokens_without(int32_t *t, size_t n, uint32_t seed, int32_t marker) {
  tokens_for(t, n, seed);
  for (size_t i = 0; i < n; i++)
    if (t[i] == marker) t[i] = (marker + 1) % VOCAB;
}

static size_t put(int32_t *out, size_t at, const int32_t *a, size_t n) {
  memcpy(out + at, a, n * sizeof *a);
  return at + n;
}

/* engine_params.reuse_fresh_suffix: after a line typed before the cursor, the FIM suffix marker
 * and the suffix behind it moved, and they are evaluated again (all of them by default, or the
 * first N tokens from the marker on), even where the typed line ends with the token the prefix
 * ended with; after a changed context piece before the file, the file up to the marker is still
 * moved. engine_prompt_cost agrees. */
static void test_fresh_suffix(void **state) {
  struct fixture *f = *state;
  int32_t fs = tokenizer_special(engine_tokenizer(f->reuse))->fim_suffix;
  assert_true(fs >= 0);
  int32_t piece1[12], piece2[16], pre[40], line[6], suf[40], mid[4];
  tokens_without(piece1, 12, 11, fs);
  tokens_without(piece2, 16, 12, fs);
  piece2[0] = (piece1[0] + 1) % VOCAB == fs ? (piece1[0] + 2) % VOCAB : (piece1[0] + 1) % VOCAB;
  tokens_without(pre, 40, 13, fs);
  tokens_without(line, 6, 14, fs);
  line[5] = pre[39]; /* the typed line ends as the prefix did (with a newline) */
  tokens_without(suf, 40, 15, fs);
  tokens_without(mid, 4, 16, fs);
  int32_t before[CTX], prompt[CTX];
  size_t nb = put(before, 0, pre, 40);
  nb = put(before, nb, &fs, 1);
  nb = put(before, nb, suf, 40);
  nb = put(before, nb, mid, 4);
  size_t n = put(prompt, 0, pre, 40);
  n = put(prompt, n, line, 6);
  n = put(prompt, n, &fs, 1);
  n = put(prompt, n, suf, 40);
  n = put(prompt, n, mid, 4);
  struct aug_err err = {0};
  struct engine_eval_stats st;
  /* Default: the whole suffix is evaluated after the typed line. */
  assert_int_equal(engine_set_prompt(f->reuse, before, nb, NULL, &st, &err), 0);
  assert_int_equal(engine_prompt_cost(f->reuse, prompt, n), 6 + 1 + 40 + 4);
  assert_int_equal(engine_set_prompt(f->reuse, prompt, n, NULL, &st, &err), 0);
  assert_int_equal(st.n_reused, 40);
  assert_int_equal(st.n_shifted, 0);
  assert_int_equal(st.n_evaluated, 6 + 1 + 40 + 4);
  /* 0: moved like any run (the last token is always evaluated); 16: from the 16th token on. */
  const uint32_t fresh[] = {0, 16};
  const size_t shifted[] = {1 + 40 + 3, 1 + 40 + 3 - 16};
  for (int i = 0; i < 2; i++) {
    struct engine *e = open_engine_fresh(f->path, CHUNK, fresh[i]);
    assert_int_equal(engine_set_prompt(e, before, nb, NULL, &st, &err), 0);
    assert_int_equal(engine_prompt_cost(e, prompt, n), n - 40 - shifted[i]);
    assert_int_equal(engine_set_prompt(e, prompt, n, NULL, &st, &err), 0);
    assert_int_equal(st.n_shifted, shifted[i]);
    assert_int_equal(st.n_reused + st.n_shifted + st.n_evaluated, n);
    engine_destroy(e);
  }
  /* A context piece before the file changed: the text before the cursor moves, the suffix is
   * evaluated again (all of it by default; after its first 16 tokens it moves too). */
  nb = put(before, 0, piece1, 12);
  nb = put(before, nb, pre, 40);
  nb = put(before, nb, &fs, 1);
  nb = put(before, nb, suf, 40);
  nb = put(before, nb, mid, 4);
  n = put(prompt, 0, piece2, 16);
  n = put(prompt, n, pre, 40);
  n = put(prompt, n, &fs, 1);
  n = put(prompt, n, suf, 40);
  n = put(prompt, n, mid, 4);
  assert_int_equal(engine_set_prompt(f->reuse, before, nb, NULL, &st, &err), 0);
  assert_int_equal(engine_set_prompt(f->reuse, prompt, n, NULL, &st, &err), 0);
  assert_int_equal(st.n_reused, 0);
  assert_int_equal(st.n_shifted, 40);
  assert_int_equal(st.n_evaluated, 16 + 1 + 40 + 4);
  struct engine *e = open_engine_fresh(f->path, CHUNK, 16);
  assert_int_equal(engine_set_prompt(e, before, nb, NULL, &st, &err), 0);
  assert_int_equal(engine_set_prompt(e, prompt, n, NULL, &st, &err), 0);
  assert_int_equal(st.n_shifted, 40 + (1 + 40 + 4 - 16 - 1));
  assert_int_equal(st.n_evaluated, 16 + 16 + 1);
  engine_destroy(e);
}

static void test_stash_bound(void **state) {
  struct fixture *f = *state;
  int32_t a[4], big[150], z[3];
  tokens_for(a, 4, 7);
  tokens_for(big, 150, 8);
  tokens_for(z, 3, 9);
  int32_t before[CTX], prompt[CTX];
  size_t nb = join(before, z, 3, big, 150, a, 4, NULL, 0);
  size_t n = join(prompt, big, 150, a, 4, NULL, 0, NULL, 0);
  struct aug_err err = {0};
  struct engine_eval_stats st;
  assert_int_equal(engine_set_prompt(f->reuse, before, nb, NULL, &st, &err), 0);
  assert_int_equal(engine_set_prompt(f->reuse, prompt, n, NULL, &st, &err), 0);
  assert_int_equal(st.n_shifted, 100);
  assert_int_equal(st.n_evaluated, n - 100);
  assert_memory_equal(engine_resident_tokens(f->reuse), prompt, n * sizeof *prompt);
}

/* Cancelled before a chunk is moved, and while evaluating the span before it: the resident
 * sequence is a prefix of the prompt and the next call (not cancelled) equals a fresh evaluation.
 */
static void test_cancel(void **state) {
  struct fixture *f = *state;
  int32_t a[20], x[10], y[12], c[40], d[5];
  tokens_for(a, 20, 11);
  tokens_for(x, 10, 12);
  tokens_for(y, 12, 13);
  tokens_for(c, 40, 14);
  tokens_for(d, 5, 15);
  int32_t before[CTX], moved_left[CTX], moved_right[CTX];
  size_t nb = join(before, a, 20, x, 10, c, 40, d, 5);
  size_t nl = join(moved_left, a, 20, c, 40, y, 2, NULL, 0);
  size_t nr = join(moved_right, a, 20, y, 12, c, 40, d, 1);
  const int32_t *prompts[2] = {moved_left, moved_right};
  size_t lens[2] = {nl, nr};
  size_t nv = engine_model(f->reuse)->hp.n_vocab;
  for (int i = 0; i < 2; i++) {
    struct aug_err err = {0};
    struct engine_eval_stats st;
    assert_int_equal(engine_set_prompt(f->reuse, before, nb, NULL, &st, &err), 0);
    atomic_bool cancel;
    atomic_init(&cancel, true);
    assert_int_equal(engine_set_prompt(f->reuse, prompts[i], lens[i], &cancel, &st, &err),
                     AUG_ECANCELED);
    size_t kept = engine_n_resident(f->reuse);
    assert_int_equal(kept, 20);
    assert_int_equal(kvcache_n_used(engine_kvcache(f->reuse)), kept);
    assert_memory_equal(engine_resident_tokens(f->reuse), prompts[i], kept * sizeof(int32_t));
    assert_null(engine_logits(f->reuse));
    assert_int_equal(engine_set_prompt(f->reuse, prompts[i], lens[i], NULL, &st, &err), 0);
    assert_int_equal(st.n_reused, 20);
    assert_int_equal(st.n_shifted, 0); /* the old chunk is gone */
    engine_truncate(f->plain, 0);
    assert_int_equal(engine_set_prompt(f->plain, prompts[i], lens[i], NULL, &st, &err), 0);
    assert_true(max_diff(engine_logits(f->reuse), engine_logits(f->plain), nv) < 1e-4);
  }
}

static struct engine *open_cached(const char *path, uint64_t bytes) {
  struct engine_params ep = engine_params_default();
  ep.model_path = path;
  ep.n_threads = 2;
  ep.n_ctx = CTX;
  ep.n_batch = 32;
  ep.prompt_cache_bytes = bytes;
  ep.prompt_cache_min_tokens = 16;
  struct engine *e = NULL;
  struct aug_err err = {0};
  if (engine_create(&ep, &e, &err)) fail_msg("engine_create: %s", err.msg);
  return e;
}

/* Logits of prompt[0..n) evaluated as a restore leaves it: n - 1 tokens, then the last alone. */
static void reference_split(struct engine *plain, const int32_t *prompt, size_t n) {
  struct aug_err err = {0};
  engine_truncate(plain, 0);
  assert_int_equal(engine_set_prompt(plain, prompt, n - 1, NULL, NULL, &err), 0);
  assert_int_equal(engine_push(plain, prompt[n - 1], NULL, &err), 0);
}

static void test_prompt_cache_hits(void **state) {
  struct fixture *f = *state;
  struct engine *e = open_cached(f->path, 1 << 20);
  size_t nv = engine_model(e)->hp.n_vocab;
  int32_t p1[60], p2[50], p3[60];
  tokens_for(p1, 60, 31);
  tokens_for(p2, 50, 32);
  memcpy(p3, p1, 40 * sizeof *p1);
  tokens_for(p3 + 40, 20, 33);
  struct aug_err err = {0};
  struct engine_eval_stats st;
  assert_int_equal(engine_set_prompt(e, p1, 60, NULL, &st, &err), 0);
  assert_int_equal(engine_prompt_cache_count(e), 0);
  /* An unrelated prompt discards p1: saved first. */
  assert_int_equal(engine_set_prompt(e, p2, 50, NULL, &st, &err), 0);
  assert_int_equal(st.n_restored, 0);
  assert_int_equal(engine_prompt_cache_count(e), 1);
  /* p1 again: 59 tokens from RAM, the last evaluated (and p2 saved). */
  assert_int_equal(engine_set_prompt(e, p1, 60, NULL, &st, &err), 0);
  assert_int_equal(st.n_reused, 0);
  assert_int_equal(st.n_restored, 59);
  assert_int_equal(st.n_evaluated, 1);
  assert_int_equal(engine_prompt_cache_count(e), 2);
  assert_memory_equal(engine_resident_tokens(e), p1, sizeof p1);
  reference_split(f->plain, p1, 60);
  double d = max_diff(engine_logits(e), engine_logits(f->plain), nv);
  print_message("restored from RAM vs evaluated with the same batches: max |diff| %.2e\n", d);
  assert_true(d == 0.0);
  /* p2 then p3 (shares 40 with the p1 snapshot): 40 restored, 20 evaluated. */
  assert_int_equal(engine_set_prompt(e, p2, 50, NULL, &st, &err), 0);
  assert_int_equal(st.n_restored, 49);
  assert_int_equal(engine_set_prompt(e, p3, 60, NULL, &st, &err), 0);
  assert_int_equal(st.n_restored, 40);
  assert_int_equal(st.n_evaluated, 20);
  assert_int_equal(st.n_reused + st.n_restored + st.n_evaluated, 60);
  engine_truncate(f->plain, 0);
  assert_int_equal(engine_set_prompt(f->plain, p3, 60, NULL, &st, &err), 0);
  assert_true(max_diff(engine_logits(e), engine_logits(f->plain), nv) < 1e-4);
  /* p4 shares 50 tokens with the p1 snapshot and 40 with the resident p3: a margin of 10, under
   * prompt_cache_min_tokens (16), is not worth a restore. */
  int32_t p4[60];
  memcpy(p4, p1, 50 * sizeof *p1);
  tokens_for(p4 + 50, 10, 34);
  assert_int_equal(engine_set_prompt(e, p4, 60, NULL, &st, &err), 0);
  assert_int_equal(st.n_reused, 40);
  assert_int_equal(st.n_restored, 0);
  /* Cancelled after a restore: the restored prefix stays, consistent; then completes. */
  assert_int_equal(engine_set_prompt(e, p2, 50, NULL, &st, &err), 0);
  atomic_bool cancel;
  atomic_init(&cancel, true);
  assert_int_equal(engine_set_prompt(e, p1, 60, &cancel, &st, &err), AUG_ECANCELED);
  assert_int_equal(engine_n_resident(e), 59);
  assert_int_equal(kvcache_n_used(engine_kvcache(e)), 59);
  assert_memory_equal(engine_resident_tokens(e), p1, 59 * sizeof *p1);
  assert_null(engine_logits(e));
  assert_int_equal(engine_set_prompt(e, p1, 60, NULL, &st, &err), 0);
  assert_int_equal(st.n_reused, 59);
  assert_int_equal(st.n_evaluated, 1);
  reference_split(f->plain, p1, 60);
  assert_true(max_diff(engine_logits(e), engine_logits(f->plain), nv) == 0.0);
  engine_destroy(e);
}

/* Chunk reuse and a prompt cache together: a move out of a snapshot, a move cancelled. */
static struct engine *open_reuse_cached(const char *path) {
  struct engine_params ep = engine_params_default();
  ep.model_path = path;
  ep.n_threads = 2;
  ep.n_ctx = CTX;
  ep.n_batch = 32;
  ep.reuse_min_chunk = CHUNK;
  ep.reuse_max_tokens = 100;
  ep.prompt_cache_bytes = 1 << 20;
  ep.prompt_cache_min_tokens = 16;
  struct engine *e = NULL;
  struct aug_err err = {0};
  if (engine_create(&ep, &e, &err)) fail_msg("engine_create: %s", err.msg);
  return e;
}

/* A cut window grown back to the whole one (the near part moved right behind new far text) and
 * cancelled before the move: the cut window was saved first, so the next keystroke's prompt,
 * which starts as the cut one did, is restored instead of evaluated again. */
static void test_cancelled_growth_keeps_cut(void **state) {
  struct fixture *f = *state;
  struct engine *e = open_reuse_cached(f->path);
  struct aug_err err = {0};
  int32_t head[8], far[80], near[60], typed[2];
  tokens_for(head, 8, 41);
  tokens_for(far, 80, 42);
  tokens_for(near, 60, 43);
  tokens_for(typed, 2, 44);
  int32_t cut[CTX], whole[CTX], next[CTX];
  size_t n_cut = join(cut, head, 8, near, 60, NULL, 0, NULL, 0);
  size_t n_whole = join(whole, head, 8, far, 80, near, 60, NULL, 0);
  size_t n_next = join(next, head, 8, near, 60, typed, 2, NULL, 0);
  struct engine_eval_stats st;
  assert_int_equal(engine_set_prompt(e, cut, n_cut, NULL, &st, &err), 0);
  atomic_bool cancel;
  atomic_init(&cancel, true);
  assert_int_equal(engine_set_prompt(e, whole, n_whole, &cancel, &st, &err), AUG_ECANCELED);
  assert_int_equal(engine_n_resident(e), 8);
  assert_int_equal(engine_prompt_cache_count(e), 1);
  atomic_store(&cancel, false);
  assert_int_equal(engine_set_prompt(e, next, n_next, &cancel, &st, &err), 0);
  assert_int_equal(st.n_reused, 8);
  assert_int_equal(st.n_restored, 60);
  assert_int_equal(st.n_evaluated, 2);
  assert_memory_equal(engine_resident_tokens(e), next, n_next * sizeof *next);
  /* Not cancelled, the growth moves the near part and evaluates only the far text. */
  assert_int_equal(engine_set_prompt(e, whole, n_whole, &cancel, &st, &err), 0);
  assert_int_equal(st.n_shifted, 60 - 1);
  assert_int_equal(st.n_evaluated, 80 + 1);
  engine_destroy(e);
}

/* A context piece before the file changed, and the resident sequence is elsewhere: the snapshot
 * matches up to the piece, and the file after it is moved out of the snapshot instead of
 * evaluated again; engine_prompt_cost says so beforehand. */
static void test_snapshot_runs(void **state) {
  struct fixture *f = *state;
  struct engine *e = open_reuse_cached(f->path);
  struct aug_err err = {0};
  int32_t head[24], piece_a[20], piece_b[20], file[60], other[50];
  tokens_for(head, 24, 51);
  tokens_for(piece_a, 20, 52);
  tokens_for(piece_b, 20, 53);
  tokens_for(file, 60, 54);
  tokens_for(other, 50, 55);
  int32_t p1[CTX], p2[CTX];
  size_t n1 = join(p1, head, 24, piece_a, 20, file, 60, NULL, 0);
  size_t n2 = join(p2, head, 24, piece_b, 20, file, 60, NULL, 0);
  struct engine_eval_stats st;
  assert_int_equal(engine_set_prompt(e, p1, n1, NULL, &st, &err), 0);
  assert_int_equal(engine_set_prompt(e, other, 50, NULL, &st, &err), 0); /* p1 saved */
  assert_int_equal(engine_prompt_cost(e, p2, n2), 20 + 1);
  assert_int_equal(engine_set_prompt(e, p2, n2, NULL, &st, &err), 0);
  assert_int_equal(st.n_reused, 0);
  assert_int_equal(st.n_restored, 24);
  assert_int_equal(st.n_shifted, 60 - 1);
  assert_int_equal(st.n_evaluated, 20 + 1);
  assert_memory_equal(engine_resident_tokens(e), p2, n2 * sizeof *p2);
  engine_truncate(f->plain, 0);
  assert_int_equal(engine_set_prompt(f->plain, p2, n2, NULL, &st, &err), 0);
  size_t nv = engine_model(e)->hp.n_vocab;
  double d = max_diff(engine_logits(e), engine_logits(f->plain), nv);
  print_message("file moved out of a snapshot: logits max |diff| %.3f against a full evaluation\n",
                d);
  assert_true(isfinite(d));
  engine_destroy(e);
}

/* Snapshots of 60 tokens (~60 KB each on this model): a bound of 2.5 holds two. */
static void test_prompt_cache_eviction(void **state) {
  struct fixture *f = *state;
  uint64_t one = (60 * 4 + 63) / 64 * 64 + kvcache_host_bytes(engine_kvcache(f->plain), 60);
  uint64_t bound = 2 * one + one / 2;
  struct engine *e = open_cached(f->path, bound);
  int32_t p[4][60];
  for (int i = 0; i < 4; i++)
    tokens_for(p[i], 60, 40 + (uint32_t)i);
  struct aug_err err = {0};
  struct engine_eval_stats st;
  for (int i = 0; i < 4; i++) { /* saves p0, p1, p2: p0 evicted */
    assert_int_equal(engine_set_prompt(e, p[i], 60, NULL, &st, &err), 0);
    assert_int_equal(st.n_restored, 0);
    assert_true(engine_prompt_cache_bytes(e) <= bound);
  }
  assert_int_equal(engine_prompt_cache_count(e), 2);
  assert_int_equal(engine_set_prompt(e, p[0], 60, NULL, &st, &err), 0); /* miss; saves p3 */
  assert_int_equal(st.n_restored, 0);
  assert_int_equal(st.n_evaluated, 60);
  assert_int_equal(engine_set_prompt(e, p[2], 60, NULL, &st, &err), 0); /* p1 was evicted */
  assert_int_equal(st.n_restored, 59);
  assert_int_equal(engine_set_prompt(e, p[1], 60, NULL, &st, &err), 0);
  assert_int_equal(st.n_restored, 0);
  assert_int_equal(engine_prompt_cache_count(e), 2);
  assert_true(engine_prompt_cache_bytes(e) <= bound);
  engine_destroy(e);
}

/* The small real model on an edited source file: a block of lines deleted near the top, then
 * lines inserted there. Reports the logit difference against a full evaluation and the time. */
static void test_small_model_edit(void **state) {
  (void)state;
#if defined(__SANITIZE_ADDRESS__)
  skip(); /* thousands of token evaluations of a real model at -O0; the synth tests run */
#endif
  const char *model = test_model_path(TEST_MODEL_SMALL);
  struct engine_params ep = engine_params_default();
  ep.model_path = model;
  ep.n_threads = 2;
  ep.n_ctx = 1024;
  ep.reuse_min_chunk = 32;
  ep.prompt_cache_bytes = 64u << 20;
  struct engine *e = NULL, *plain = NULL;
  struct aug_err err = {0};
  if (engine_create(&ep, &e, &err)) fail_msg("%s", err.msg);
  ep.reuse_min_chunk = 0;
  if (engine_create(&ep, &plain, &err)) fail_msg("%s", err.msg);
  /* A real C file: the first 2500 bytes of engine/sampler.c (~700 tokens). */
  char path[4096];
  snprintf(path, sizeof path, "%s/engine/sampler.c", AUGURY_SOURCE_DIR);
  FILE *fp = fopen(path, "rb");
  assert_non_null(fp);
  static char text[2501];
  size_t len = fread(text, 1, 2500, fp);
  fclose(fp);
  text[len] = '\0';
  /* Three versions: the file, the file without lines 4-6, and with two lines inserted there. */
  const char *l4 = text;
  for (int line = 0; line < 3 && l4; line++)
    l4 = strchr(l4, '\n') + 1;
  const char *l7 = l4;
  for (int line = 0; line < 3 && l7; line++)
    l7 = strchr(l7, '\n') + 1;
  static char deleted[2600], inserted[2700];
  size_t head = (size_t)(l4 - text);
  static const char added[] = "/* an inserted comment line */\n#include <assert.h>\n";
  memcpy(deleted, text, head);
  strcpy(deleted + head, l7);
  memcpy(inserted, text, head);
  memcpy(inserted + head, added, sizeof added - 1);
  strcpy(inserted + head + sizeof added - 1, l4);
  const char *texts[3] = {text, deleted, inserted};
  const char *names[3] = {"original", "3 lines deleted", "2 lines inserted"};
  static int32_t toks[3][1024];
  size_t nt[3];
  struct tokenize_options opts = {0};
  for (int i = 0; i < 3; i++) {
    assert_int_equal(tokenizer_encode(engine_tokenizer(e), texts[i], strlen(texts[i]), opts,
                                      toks[i], 1024, &nt[i], &err),
                     0);
  }
  size_t nv = engine_model(e)->hp.n_vocab;
  struct engine_eval_stats st;
  for (int i = 1; i < 3; i++) {
    assert_int_equal(engine_set_prompt(e, toks[0], nt[0] - 40, NULL, &st, &err), 0);
    double t0 = aug_now_ms();
    assert_int_equal(engine_set_prompt(e, toks[i], nt[i] - 40, NULL, &st, &err), 0);
    double t_reuse = aug_now_ms() - t0;
    size_t shifted = st.n_shifted, evaluated = st.n_evaluated, reused = st.n_reused;
    engine_truncate(plain, 0);
    t0 = aug_now_ms();
    assert_int_equal(engine_set_prompt(plain, toks[i], nt[i] - 40, NULL, &st, &err), 0);
    double t_full = aug_now_ms() - t0;
    const float *lr = engine_logits(e), *lp = engine_logits(plain);
    double dl = max_diff(lr, lp, nv), range = 0.0;
    for (size_t j = 0; j < nv; j++)
      if (fabs(lp[j]) > range) range = fabs(lp[j]);
    /* Greedy continuation of 16 tokens from both. */
    int same = 0;
    for (int s = 0; s < 16; s++) {
      int32_t a = argmax(engine_logits(e), nv), b = argmax(engine_logits(plain), nv);
      if (a != b) break;
      same++;
      assert_int_equal(engine_push(e, a, NULL, &err), 0);
      assert_int_equal(engine_push(plain, b, NULL, &err), 0);
    }
    print_message("small model, %s: %zu tokens: %zu prefix, %zu moved, %zu evaluated in %.0f ms "
                  "vs %.0f ms full; logits max |diff| %.3f (max |logit| %.1f); greedy agrees "
                  "for %d/16 tokens\n",
                  names[i], nt[i] - 40, reused, shifted, evaluated, t_reuse, t_full, dl, range,
                  same);
    assert_true(shifted > 0);
    assert_true(dl < 0.25 * range);
  }
  /* The RAM cache: the original, an unrelated prompt (the original is saved), the original. */
  int32_t other[64];
  for (int i = 0; i < 64; i++)
    other[i] = toks[0][nt[0] - 1 - (size_t)i];
  assert_int_equal(engine_set_prompt(e, toks[0], nt[0], NULL, &st, &err), 0);
  assert_int_equal(engine_set_prompt(e, other, 64, NULL, &st, &err), 0);
  double t0 = aug_now_ms();
  assert_int_equal(engine_set_prompt(e, toks[0], nt[0], NULL, &st, &err), 0);
  print_message("small model, prompt cache: %zu tokens restored, %zu evaluated in %.0f ms "
                "(%.1f MB of snapshots)\n",
                st.n_restored, st.n_evaluated, aug_now_ms() - t0,
                (double)engine_prompt_cache_bytes(e) / 1e6);
  assert_int_equal(st.n_restored, nt[0] - 1);
  engine_destroy(e);
  engine_destroy(plain);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_moved_chunks, setup, teardown),
      cmocka_unit_test_setup_teardown(test_fresh_suffix, setup, teardown),
      cmocka_unit_test_setup_teardown(test_stash_bound, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancel, setup, teardown),
      cmocka_unit_test_setup_teardown(test_prompt_cache_hits, setup, teardown),
      cmocka_unit_test_setup_teardown(test_prompt_cache_eviction, setup, teardown),
      cmocka_unit_test_setup_teardown(test_cancelled_growth_keeps_cut, setup, teardown),
      cmocka_unit_test_setup_teardown(test_snapshot_runs, setup, teardown),
      cmocka_unit_test(test_small_model_edit),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
