/* Tests for engine/quant.c (+ quant_k.c, quant_iq.c): the trait table against gguf-py's, f16 and
 * bf16 conversions (exhaustive over all 65536 halves, numpy's results for the rounding cases, and
 * an independent double-precision reference on a sweep of binary32), dequantization of random and
 * real-model blocks against gguf-py (tests/fixtures/quant, made by make_fixtures.py), quantization
 * bit-exact against gguf-py for Q8_0/Q4_0, and RMS-error bounds of quantize -> dequantize. */
#include "tests/unit/test_support.h"

#include <math.h>

#include "engine/error.h"
#include "engine/quant.h"
#include "engine/quant_internal.h"

/* ---- helpers ---- */

static uint32_t f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, 4);
  return u;
}

static float f32_from_bits(uint32_t u) {
  float f;
  memcpy(&f, &u, 4);
  return f;
}

static uint16_t load_u16(const char *p) {
  const uint8_t *b = (const uint8_t *)p;
  return (uint16_t)(b[0] | b[1] << 8);
}

static uint32_t load_u32(const char *p) {
  const uint8_t *b = (const uint8_t *)p;
  return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

/* splitmix64: a deterministic generator, so failures reproduce. */
static uint64_t rng_next(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static double rng_uniform(uint64_t *s) {
  return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

static float rng_normal(uint64_t *s) {
  double u1 = rng_uniform(s), u2 = rng_uniform(s);
  if (u1 < 1e-300) u1 = 1e-300;
  return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

/* Splits a tab-separated line in place; returns the number of fields. */
static int split_tabs(char *line, char **fields, int max) {
  int n = 0;
  fields[n++] = line;
  for (char *p = line; *p && n < max; p++) {
    if (*p == '\t') {
      *p = '\0';
      fields[n++] = p + 1;
    }
  }
  return n;
}

static uint32_t type_by_name(const char *name) {
  for (uint32_t t = 0; t < QUANT_TYPE_COUNT; t++) {
    if (quant_traits(t) && !strcmp(quant_type_name(t), name)) return t;
  }
  fail_msg("fixture names a type engine/quant.h does not know: %s", name);
  return 0;
}

/* ---- traits ---- */

static void test_traits_match_gguf_py(void **state) {
  (void)state;
  char *text = test_read_fixture("quant/types.tsv", NULL);
  bool listed[QUANT_TYPE_COUNT] = {false};
  int n_checked = 0;
  for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
    if (line[0] == '#') continue;
    char *f[4];
    assert_int_equal(split_tabs(line, f, 4), 4);
    uint32_t id = (uint32_t)strtoul(f[0], NULL, 10);
    if (id >= QUANT_TYPE_COUNT) continue; /* types newer than engine/quant.h */
    const struct quant_type_traits *t = quant_traits(id);
    if (!t) fail_msg("type %u (%s) has no traits", id, f[1]);
    assert_string_equal(t->name, f[1]);
    assert_string_equal(quant_type_name(id), f[1]);
    /* sizes as ggml's type_traits (make_fixtures.py reads them from libggml) */
    assert_int_equal(t->block_size, strtoul(f[2], NULL, 10));
    assert_int_equal(t->type_size, strtoul(f[3], NULL, 10));
    listed[id] = true;
    n_checked++;
  }
  free(text);
  assert_true(n_checked >= 30);
  for (uint32_t id = 0; id < QUANT_TYPE_COUNT; id++) {
    if (!listed[id]) {
      if (quant_traits(id)) fail_msg("id %u is not a gguf-py type but has traits", id);
      assert_string_equal(quant_type_name(id), "unknown");
    }
  }
  /* the removed ids of the format */
  const uint32_t removed[] = {4, 5, 31, 32, 33, 36, 37, 38};
  for (size_t i = 0; i < sizeof removed / sizeof removed[0]; i++)
    assert_null(quant_traits(removed[i]));
  assert_null(quant_traits(QUANT_TYPE_COUNT));
  assert_null(quant_traits(UINT32_MAX));
  assert_string_equal(quant_type_name(UINT32_MAX), "unknown");
}

static void test_required_types_supported(void **state) {
  (void)state;
  /* The list; the IQ2/IQ3/IQ1, TQ and MXFP4 types are dequantized too. */
  const uint32_t deq[] = {QUANT_F32,    QUANT_F16,   QUANT_BF16,    QUANT_Q8_0,   QUANT_Q4_0,
                          QUANT_Q4_1,   QUANT_Q5_0,  QUANT_Q5_1,    QUANT_Q4_K,   QUANT_Q5_K,
                          QUANT_Q6_K,   QUANT_Q8_K,  QUANT_IQ4_NL,  QUANT_IQ4_XS, QUANT_Q2_K,
                          QUANT_Q3_K,   QUANT_Q8_1,  QUANT_IQ3_XXS, QUANT_IQ3_S,  QUANT_IQ2_XXS,
                          QUANT_IQ2_XS, QUANT_IQ2_S, QUANT_IQ1_S,   QUANT_IQ1_M,  QUANT_TQ1_0,
                          QUANT_TQ2_0,  QUANT_MXFP4};
  for (size_t i = 0; i < sizeof deq / sizeof deq[0]; i++) {
    if (!quant_traits(deq[i])->can_dequantize)
      fail_msg("%s: cannot dequantize", quant_type_name(deq[i]));
  }
  const uint32_t q[] = {QUANT_F32,  QUANT_F16,  QUANT_BF16, QUANT_Q8_0, QUANT_Q4_0, QUANT_Q4_1,
                        QUANT_Q5_0, QUANT_Q5_1, QUANT_Q4_K, QUANT_Q5_K, QUANT_Q6_K, QUANT_Q8_K};
  for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
    if (!quant_traits(q[i])->can_quantize) fail_msg("%s: cannot quantize", quant_type_name(q[i]));
  }
}

/* can_dequantize / can_quantize say exactly which types the row functions accept. */
static void test_flags_match_functions(void **state) {
  (void)state;
  static float x[QK_K], y[QK_K];
  static uint8_t q[QK_K * 8];
  for (uint32_t t = 0; t < QUANT_TYPE_COUNT; t++) {
    const struct quant_type_traits *tr = quant_traits(t);
    if (!tr) {
      assert_int_equal(quant_dequantize_row(t, q, y, QK_K), AUG_EUNSUPPORTED);
      assert_int_equal(quant_quantize_row(t, x, q, QK_K), AUG_EUNSUPPORTED);
      continue;
    }
    assert_true(tr->type_size * (QK_K / tr->block_size) <= sizeof q);
    int rq = quant_quantize_row(t, x, q, QK_K);
    if (rq != (tr->can_quantize ? 0 : AUG_EUNSUPPORTED))
      fail_msg("%s: quantize returns %d, can_quantize %d", tr->name, rq, tr->can_quantize);
    memset(q, 0, sizeof q);
    int rd = quant_dequantize_row(t, q, y, QK_K);
    if (rd != (tr->can_dequantize ? 0 : AUG_EUNSUPPORTED))
      fail_msg("%s: dequantize returns %d, can_dequantize %d", tr->name, rd, tr->can_dequantize);
  }
}

static void test_row_size(void **state) {
  (void)state;
  assert_int_equal(quant_row_size(QUANT_F32, 7), 28);
  assert_int_equal(quant_row_size(QUANT_BF16, 3), 6);
  assert_int_equal(quant_row_size(QUANT_Q4_0, 64), 36);
  assert_int_equal(quant_row_size(QUANT_Q5_0, 896), 28 * 22);
  assert_int_equal(quant_row_size(QUANT_Q4_K, 1536), 6 * 144);
  assert_int_equal(quant_row_size(QUANT_Q6_K, 4864), 19 * 210);
  assert_int_equal(quant_row_size(QUANT_Q4_K, 896), 0); /* not a multiple of 256 */
  assert_int_equal(quant_row_size(QUANT_Q8_0, 33), 0);  /* not a multiple of 32 */
  assert_int_equal(quant_row_size(4, 32), 0);           /* removed type */
  assert_int_equal(quant_row_size(QUANT_TYPE_COUNT, 1), 0);
  assert_int_equal(quant_row_size(QUANT_Q8_0, 0), 0);
  assert_int_equal(quant_row_size(QUANT_I64, UINT64_MAX / 4), 0); /* bytes overflow */
}

static void test_row_errors(void **state) {
  (void)state;
  float x[256] = {0};
  uint8_t buf[512] = {0};
  assert_int_equal(quant_dequantize_row(QUANT_Q4_K, buf, x, 255), AUG_EINVAL);
  assert_int_equal(quant_dequantize_row(QUANT_Q4_K, buf, x, -256), AUG_EINVAL);
  assert_int_equal(quant_dequantize_row(QUANT_Q4_K, NULL, x, 256), AUG_EINVAL);
  assert_int_equal(quant_dequantize_row(QUANT_Q4_K, buf, x, 0), 0);
  assert_int_equal(quant_dequantize_row(5, buf, x, 32), AUG_EUNSUPPORTED);
  assert_int_equal(quant_dequantize_row(QUANT_I32, buf, x, 1), AUG_EUNSUPPORTED);
  assert_int_equal(quant_quantize_row(QUANT_Q8_0, x, buf, 31), AUG_EINVAL);
  assert_int_equal(quant_quantize_row(QUANT_Q8_0, x, NULL, 32), AUG_EINVAL);
  assert_int_equal(quant_quantize_row(QUANT_Q2_K, x, buf, 256), AUG_EUNSUPPORTED);
  assert_int_equal(quant_quantize_row(99, x, buf, 32), AUG_EUNSUPPORTED);
}

/* quant_round is the rounding of the bit-exact quantizers (Q8_0, Q8_K): it must be roundf. */
static void test_round_matches_roundf(void **state) {
  (void)state;
  for (uint64_t b = 0; b <= UINT32_MAX; b += 4099) {
    float x = f32_from_bits((uint32_t)b);
    if (!(fabsf(x) < 8388608.0f)) continue; /* saturates by contract */
    if (quant_round(x) != (int)roundf(x))
      fail_msg("quant_round(%.9g) = %d", (double)x, quant_round(x));
  }
  for (int k = -300; k <= 300; k++) {
    float half = (float)k + 0.5f;
    const float xs[] = {half,     nextafterf(half, -INFINITY),     nextafterf(half, INFINITY),
                        (float)k, nextafterf((float)k, -INFINITY), nextafterf((float)k, INFINITY)};
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
      if (quant_round(xs[i]) != (int)roundf(xs[i]))
        fail_msg("quant_round(%.9g) = %d", (double)xs[i], quant_round(xs[i]));
    }
  }
  assert_int_equal(quant_round(0.49999997f), 0);
  assert_int_equal(quant_round(-2.5f), -3);
  assert_int_equal(quant_round(NAN), 0);
  assert_int_equal(quant_round(INFINITY), 8388608);
  assert_int_equal(quant_round(-1e30f), -8388608);
}

/* ---- f16 / bf16 ---- */

static void test_f16_to_f32_exhaustive(void **state) {
  (void)state;
  size_t size;
  char *ref = test_read_fixture("quant/f16_to_f32.bin", &size);
  assert_int_equal(size, 65536 * 4);
  for (uint32_t h = 0; h < 65536; h++) {
    uint32_t want = load_u32(ref + 4 * h), got = f32_bits(quant_f16_to_f32((quant_f16)h));
    if (got != want) fail_msg("f16 0x%04x -> f32 0x%08x, numpy 0x%08x", h, got, want);
  }
  free(ref);
}

/* Independent reference: for finite x, scale so that one f16 ulp is 1, round in double (exact:
 * a binary32 scaled by a power of two fits a double), and rebuild the f16 from the integer. */
static uint16_t reference_f32_to_f16(float x) {
  uint16_t sign = signbit(x) ? 0x8000 : 0;
  double a = fabs((double)x);
  if (isnan(x)) return 0; /* NaN handled by the caller */
  if (a >= 65520.0) return sign | 0x7c00;
  int e;
  frexp(a, &e);                 /* a = m * 2^e, m in [0.5, 1) */
  int exp16 = e - 1;            /* a in [2^exp16, 2^(exp16+1)) */
  if (exp16 < -14) exp16 = -14; /* subnormal: ulp is 2^-24 */
  double ulp = ldexp(1.0, exp16 - 10);
  double q = nearbyint(a / ulp); /* current rounding mode: to nearest even */
  double v = q * ulp;            /* the rounded value, exactly */
  if (v == 0.0) return sign;
  if (v < ldexp(1.0, -14)) return (uint16_t)(sign | (uint16_t)q);
  int ve;
  double vm = frexp(v, &ve); /* v = vm * 2^ve, vm in [0.5, 1) */
  uint16_t mant = (uint16_t)((vm * 2.0 - 1.0) * 1024.0);
  return (uint16_t)(sign | (uint16_t)((ve - 1 + 15) << 10) | mant);
}

static void check_f32_to_f16(uint32_t bits) {
  float x = f32_from_bits(bits);
  uint16_t got = quant_f32_to_f16(x);
  if (isnan(x)) {
    uint16_t payload = (uint16_t)((bits & 0x7fffff) >> 13);
    uint16_t want = (uint16_t)(((bits >> 16) & 0x8000) | 0x7c00 | (payload ? payload : 1));
    if (got != want) fail_msg("f32 0x%08x (NaN) -> f16 0x%04x, want 0x%04x", bits, got, want);
    return;
  }
  uint16_t want = reference_f32_to_f16(x);
  if (got != want) fail_msg("f32 0x%08x -> f16 0x%04x, reference 0x%04x", bits, got, want);
}

static void test_f32_to_f16_numpy(void **state) {
  (void)state;
  const uint32_t lows[] = {0x0000, 0x1000, 0x3000, 0x1001}; /* as F16_LOWS in make_fixtures.py */
  size_t size;
  char *ref = test_read_fixture("quant/f32_to_f16.bin", &size);
  assert_int_equal(size, 4 * 65536 * 2);
  for (int k = 0; k < 4; k++) {
    for (uint32_t h = 0; h < 65536; h++) {
      uint32_t bits = h << 16 | lows[k];
      uint16_t want = load_u16(ref + 2 * (k * 65536 + h));
      uint16_t got = quant_f32_to_f16(f32_from_bits(bits));
      if (got != want) fail_msg("f32 0x%08x -> f16 0x%04x, numpy 0x%04x", bits, got, want);
    }
  }
  free(ref);
}

static void test_f32_to_f16_reference_sweep(void **state) {
  (void)state;
  /* Every 65521st (prime) binary32 pattern: ~65.5k inputs spread over all exponents and
   * low bits; then the exact f16 values, the ties between neighbours, and one ulp either side. */
  for (uint64_t bits = 0; bits <= UINT32_MAX; bits += 65521)
    check_f32_to_f16((uint32_t)bits);
  for (uint32_t h = 0; h < 0x7c00; h++) {
    for (int s = 0; s < 2; s++) {
      uint16_t hs = (uint16_t)(h | (s ? 0x8000 : 0));
      float v = quant_f16_to_f32(hs);
      assert_int_equal(quant_f32_to_f16(v), hs); /* exact values come back */
      double next = fabs((double)quant_f16_to_f32((uint16_t)(h + 1)));
      double mid = (fabs((double)v) + next) / 2.0; /* exact in binary32 for f16 neighbours */
      uint32_t mb = f32_bits((float)(s ? -mid : mid));
      check_f32_to_f16(mb);
      check_f32_to_f16(mb - 1);
      check_f32_to_f16(mb + 1);
    }
  }
  check_f32_to_f16(0x7f800000); /* inf */
  check_f32_to_f16(0xff800000);
  check_f32_to_f16(0x7f7fffff); /* FLT_MAX */
  check_f32_to_f16(0x7fc00000); /* quiet NaN */
  check_f32_to_f16(0x7f800001); /* NaN whose payload does not survive the shift */
  check_f32_to_f16(0xffffe000);
}

static void test_bf16(void **state) {
  (void)state;
  /* bf16 -> f32 is the top half of a binary32, for all 65536 inputs. */
  for (uint32_t h = 0; h < 65536; h++)
    assert_int_equal(f32_bits(quant_bf16_to_f32((uint16_t)h)), h << 16);
  /* f32 -> bf16 on the exact ties, against gguf-py (same rule as ggml_compute_fp32_to_bf16). */
  size_t size;
  char *ref = test_read_fixture("quant/f32_to_bf16.bin", &size);
  assert_int_equal(size, 65536 * 2);
  for (uint32_t h = 0; h < 65536; h++) {
    uint32_t bits = h << 16 | 0x8000;
    uint16_t want = load_u16(ref + 2 * h), got = quant_f32_to_bf16(f32_from_bits(bits));
    if (got != want) fail_msg("f32 0x%08x -> bf16 0x%04x, gguf-py 0x%04x", bits, got, want);
  }
  free(ref);
  /* Elsewhere: round to nearest in double decides (no ties off 0x8000); NaN stays NaN, quiet. */
  for (uint64_t b = 0; b <= UINT32_MAX; b += 65519) {
    uint32_t bits = (uint32_t)b;
    float x = f32_from_bits(bits);
    uint16_t got = quant_f32_to_bf16(x);
    if (isnan(x)) {
      assert_int_equal(got, (bits >> 16) | 0x40);
      continue;
    }
    if ((bits & 0xffff) == 0x8000) continue;
    /* lo and hi: the bf16 values either side of x (hi may be past FLT_MAX: 2^128 rounds to inf) */
    double lo = fabs((double)f32_from_bits(bits & 0xffff0000));
    int biased = (int)((bits >> 23) & 0xff);
    double hi = lo + ldexp(1.0, (biased ? biased : 1) - 127 - 7);
    double a = fabs((double)x);
    uint16_t want = (uint16_t)(bits >> 16);
    if (a - lo > hi - a) want++;
    if (got != want) fail_msg("f32 0x%08x -> bf16 0x%04x, want 0x%04x", bits, got, want);
  }
}

/* ---- dequantization against gguf-py ---- */

struct type_report {
  int cases;
  bool exact;
  double max_rel;
};

static void test_dequantize_fixtures(void **state) {
  (void)state;
  char *index = test_read_fixture("quant/index.tsv", NULL);
  struct type_report report[QUANT_TYPE_COUNT];
  memset(report, 0, sizeof report);
  for (int t = 0; t < QUANT_TYPE_COUNT; t++)
    report[t].exact = true;
  int n_cases = 0, n_unsupported = 0;
  char *save = NULL;
  for (char *line = strtok_r(index, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char *f[6];
    if (line[0] == '#' || split_tabs(line, f, 6) != 6 || strcmp(f[0], "dequantize")) continue;
    uint32_t type = type_by_name(f[1]);
    int64_t n = strtoll(f[2], NULL, 10);
    size_t raw_size, ref_size;
    char path[512];
    snprintf(path, sizeof path, "quant/%s", f[3]);
    char *raw = test_read_fixture(path, &raw_size);
    snprintf(path, sizeof path, "quant/%s", f[4]);
    char *ref = test_read_fixture(path, &ref_size);
    assert_int_equal(raw_size, quant_row_size(type, (uint64_t)n));
    assert_int_equal(ref_size, (size_t)n * 4);
    float *out = malloc((size_t)n * sizeof *out);
    assert_non_null(out);
    /* Copy the raw row to 8-aligned memory, as a mapped tensor would be. */
    void *src = malloc(raw_size);
    assert_non_null(src);
    memcpy(src, raw, raw_size);
    int rc = quant_dequantize_row(type, src, out, n);
    if (!quant_traits(type)->can_dequantize) {
      assert_int_equal(rc, AUG_EUNSUPPORTED);
      n_unsupported++;
    } else {
      assert_int_equal(rc, 0);
      struct type_report *r = &report[type];
      r->cases++;
      for (int64_t i = 0; i < n; i++) {
        float want = f32_from_bits(load_u32(ref + 4 * i));
        if (f32_bits(out[i]) == f32_bits(want)) continue;
        r->exact = false;
        double rel = want != 0.0f ? fabs((double)out[i] - want) / fabs((double)want) : INFINITY;
        if (rel > r->max_rel) r->max_rel = rel;
        if (!(rel <= 1e-6))
          fail_msg("%s (%s) element %lld: %.9g, gguf-py %.9g", f[1], f[5], (long long)i,
                   (double)out[i], (double)want);
      }
      n_cases++;
    }
    free(src);
    free(out);
    free(raw);
    free(ref);
  }
  free(index);
  /* The summary the acceptance asks for. */
  for (int t = 0; t < QUANT_TYPE_COUNT; t++) {
    if (!report[t].cases) continue;
    if (report[t].exact)
      printf("dequantize %-7s %2d cases: exact\n", quant_type_name((uint32_t)t), report[t].cases);
    else
      printf("dequantize %-7s %2d cases: max relative error %.3g\n", quant_type_name((uint32_t)t),
             report[t].cases, report[t].max_rel);
  }
  printf("dequantize: %d cases compared, %d cases of types not implemented here\n", n_cases,
         n_unsupported);
  /* Every type we dequantize has fixtures, except the two activation formats gguf-py lacks (Q8_K
   * is checked by its round trip, Q8_1 by test_dequantize_q8_1). */
  for (uint32_t t = 0; t < QUANT_TYPE_COUNT; t++) {
    const struct quant_type_traits *tr = quant_traits(t);
    if (!tr || !tr->can_dequantize || t == QUANT_Q8_K || t == QUANT_Q8_1) continue;
    if (!report[t].cases) fail_msg("no fixture for %s", tr->name);
  }
}

/* Q8_1 (activations of the 32-element dot products): x = d * q; s = d * sum(q) is not used. */
static void test_dequantize_q8_1(void **state) {
  (void)state;
  struct block_q8_1 b[2];
  float y[64];
  for (int i = 0; i < 2; i++) {
    b[i].d = quant_f32_to_f16(i ? -0.25f : 0.5f);
    b[i].s = quant_f32_to_f16(1000.0f);
    for (int j = 0; j < 32; j++)
      b[i].qs[j] = (int8_t)(j * 8 - 128 + i);
  }
  assert_int_equal(quant_dequantize_row(QUANT_Q8_1, b, y, 64), 0);
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 32; j++)
      assert_true(y[32 * i + j] == (i ? -0.25f : 0.5f) * (float)(j * 8 - 128 + i));
}

/* ---- quantization ---- */

static void test_quantize_matches_gguf_py(void **state) {
  (void)state;
  char *index = test_read_fixture("quant/index.tsv", NULL);
  int n_cases = 0;
  char *save = NULL;
  for (char *line = strtok_r(index, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char *f[6];
    if (line[0] == '#' || split_tabs(line, f, 6) != 6 || strcmp(f[0], "quantize")) continue;
    uint32_t type = type_by_name(f[1]);
    int64_t n = strtoll(f[2], NULL, 10);
    size_t in_size, ref_size;
    char path[512];
    snprintf(path, sizeof path, "quant/%s", f[3]);
    char *in = test_read_fixture(path, &in_size);
    snprintf(path, sizeof path, "quant/%s", f[4]);
    char *ref = test_read_fixture(path, &ref_size);
    assert_int_equal(in_size, (size_t)n * 4);
    assert_int_equal(ref_size, quant_row_size(type, (uint64_t)n));
    float *x = malloc(in_size);
    uint8_t *q = malloc(ref_size);
    assert_non_null(x);
    assert_non_null(q);
    memcpy(x, in, in_size);
    assert_int_equal(quant_quantize_row(type, x, q, n), 0);
    for (size_t i = 0; i < ref_size; i++) {
      if (q[i] != (uint8_t)ref[i])
        fail_msg("%s quantize: byte %zu is 0x%02x, gguf-py 0x%02x", f[1], i, q[i], (uint8_t)ref[i]);
    }
    n_cases++;
    free(x);
    free(q);
    free(in);
    free(ref);
  }
  free(index);
  assert_int_equal(n_cases, 5);
}

/* Q8_0 follows the reference formula: d = amax / 127 stored as f16, q = round(x / d) with halves
 * away from zero, computed with the unrounded d. */
static void test_quantize_q8_0_formula(void **state) {
  (void)state;
  uint64_t s = 7;
  float x[32 * 64];
  for (int i = 0; i < 32 * 64; i++)
    x[i] = rng_normal(&s) * (i < 32 ? 1e-6f : 1.0f);
  for (int i = 32; i < 64; i++)
    x[i] = (float)(i - 48) * 0.5f; /* many exact halves */
  struct block_q8_0 q[64];
  assert_int_equal(quant_quantize_row(QUANT_Q8_0, x, q, 32 * 64), 0);
  for (int b = 0; b < 64; b++) {
    float amax = 0.0f;
    for (int j = 0; j < 32; j++)
      amax = fmaxf(amax, fabsf(x[32 * b + j]));
    float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    assert_int_equal(q[b].d, quant_f32_to_f16(d));
    for (int j = 0; j < 32; j++)
      assert_int_equal(q[b].qs[j], (int)roundf(x[32 * b + j] * id));
  }
}

/* Q8_K: q = round(-127 x / max) (max the value of largest magnitude), d = max / -127, and bsums
 * the sums of q over each 16. */
static void test_quantize_q8_k(void **state) {
  (void)state;
  uint64_t s = 11;
  float x[QK_K * 4], y[QK_K * 4];
  for (int i = 0; i < QK_K * 4; i++)
    x[i] = rng_normal(&s);
  for (int i = QK_K; i < 2 * QK_K; i++)
    x[i] = 0.0f;           /* an all-zero block */
  x[3 * QK_K + 5] = -9.0f; /* a negative extreme */
  struct block_q8_k q[4];
  assert_int_equal(quant_quantize_row(QUANT_Q8_K, x, q, QK_K * 4), 0);
  assert_int_equal(quant_dequantize_row(QUANT_Q8_K, q, y, QK_K * 4), 0);
  for (int b = 0; b < 4; b++) {
    for (int k = 0; k < QK_K / 16; k++) {
      int sum = 0;
      for (int l = 0; l < 16; l++)
        sum += q[b].qs[16 * k + l];
      assert_int_equal(q[b].bsums[k], sum);
    }
    float amax = 0.0f;
    for (int j = 0; j < QK_K; j++)
      amax = fmaxf(amax, fabsf(x[b * QK_K + j]));
    assert_true(fabsf(fabsf(q[b].d) * 127.0f - amax) <= 1e-6f * amax);
    for (int j = 0; j < QK_K; j++) {
      assert_true(q[b].qs[j] >= -127 && q[b].qs[j] <= 127);
      assert_true(fabsf(y[b * QK_K + j] - x[b * QK_K + j]) <= fabsf(q[b].d) * 0.5001f + 1e-30f);
    }
  }
  assert_true(q[1].d == 0.0f);
  assert_int_equal(q[3].qs[5], -127);
}

/* Relative RMS error of quantize -> dequantize on n normal values, with outliers mixed in the
 * way real weight rows have them (1 in 64 values is 4x larger). */
static double round_trip_rms(uint32_t type, int64_t n, uint64_t seed, float *x, float *y, void *q) {
  uint64_t s = seed;
  for (int64_t i = 0; i < n; i++)
    x[i] = rng_normal(&s) * ((rng_next(&s) & 63) == 0 ? 4.0f : 1.0f);
  assert_int_equal(quant_quantize_row(type, x, q, n), 0);
  assert_int_equal(quant_dequantize_row(type, q, y, n), 0);
  double err = 0.0, ref = 0.0;
  for (int64_t i = 0; i < n; i++) {
    err += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
    ref += (double)x[i] * x[i];
  }
  return sqrt(err / ref);
}

static void test_round_trip_error_bounds(void **state) {
  (void)state;
  /* Bounds: about 1.2x what these implementations measure (printed below), so that a change
   * that makes a quantizer measurably worse fails here. */
  const struct {
    uint32_t type;
    double bound;
  } cases[] = {
      {QUANT_F32, 0.0},      {QUANT_F16, 2.5e-4},  {QUANT_BF16, 2.0e-3}, {QUANT_Q8_0, 8.0e-3},
      {QUANT_Q8_K, 1.65e-2}, {QUANT_Q6_K, 2.6e-2}, {QUANT_Q4_K, 0.097},  {QUANT_Q4_0, 0.13},
      {QUANT_Q4_1, 0.104},   {QUANT_Q5_0, 0.063},  {QUANT_Q5_1, 0.051},  {QUANT_Q5_K, 0.048},
  };
  enum { N = QK_K * 64 };
  float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
  void *q = malloc(N * sizeof(float));
  assert_non_null(x);
  assert_non_null(y);
  assert_non_null(q);
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    double rms = round_trip_rms(cases[i].type, N, 1234 + i, x, y, q);
    printf("round trip %-5s relative RMS error %.4g (bound %.3g)\n", quant_type_name(cases[i].type),
           rms, cases[i].bound);
    if (rms > cases[i].bound)
      fail_msg("%s: relative RMS error %.4g over %.3g", quant_type_name(cases[i].type), rms,
               cases[i].bound);
  }
  free(x);
  free(y);
  free(q);
}

/* Degenerate blocks: all zero, constant, a lone spike, tiny and mixed-sign values. Every
 * quantizer must give finite values, zeros for zeros, and an error within half a step of its
 * grid: a spike must come back within 1/(2 * levels) of its size. */
static void test_quantize_degenerate_blocks(void **state) {
  (void)state;
  const uint32_t types[] = {QUANT_Q8_0, QUANT_Q4_0, QUANT_Q4_K, QUANT_Q6_K, QUANT_Q8_K, QUANT_F16,
                            QUANT_BF16, QUANT_Q4_1, QUANT_Q5_0, QUANT_Q5_1, QUANT_Q5_K};
  /* Steps across [0, max|x|]. Q4_0 (-8..7), Q5_0 (-16..15) and Q6_K (-32..31) map the largest
   * value to the negative end, so its opposite clamps one level short: a whole step of error,
   * written as half a step of half the levels. Q4_1/Q4_K (15 steps) and Q5_1/Q5_K (31) span
   * [min, max], up to 2 max|x| wide. */
  const float levels[] = {127, 4, 7.5f, 16, 127, 1024, 128, 7.5f, 8, 15.5f, 15.5f};
  enum { N = QK_K * 5 };
  static float x[N], y[N];
  static uint8_t q[N * 4];
  for (int i = 0; i < QK_K; i++) {
    x[i] = 0.0f;                                    /* block 0: zeros */
    x[QK_K + i] = 0.75f;                            /* block 1: constant */
    x[2 * QK_K + i] = i == 77 ? -3.0f : 0.0f;       /* block 2: one spike */
    x[3 * QK_K + i] = 1e-2f * (float)((i % 7) - 3); /* block 3: small, f16 scales stay normal */
    x[4 * QK_K + i] = (i % 2 ? 1.0f : -1.0f) * (float)(i % 5); /* block 4: mixed signs */
  }
  for (size_t t = 0; t < sizeof types / sizeof types[0]; t++) {
    const char *name = quant_type_name(types[t]);
    assert_int_equal(quant_quantize_row(types[t], x, q, N), 0);
    assert_int_equal(quant_dequantize_row(types[t], q, y, N), 0);
    for (int blk = 0; blk < 5; blk++) {
      float amax = 0.0f;
      for (int i = 0; i < QK_K; i++)
        amax = fmaxf(amax, fabsf(x[blk * QK_K + i]));
      for (int i = 0; i < QK_K; i++) {
        float xi = x[blk * QK_K + i], yi = y[blk * QK_K + i];
        if (!isfinite(yi)) fail_msg("%s block %d [%d]: %g", name, blk, i, (double)yi);
        if (blk == 0 && yi != 0.0f) fail_msg("%s: zero became %g", name, (double)yi);
        /* A block's grid covers its max|x| with `levels` steps; rounding the scale to f16
         * costs a little more. */
        float tol = amax / levels[t] * 0.5f * 1.01f + amax * 1e-3f;
        if (fabsf(yi - xi) > tol)
          fail_msg("%s block %d [%d]: %g came back as %g (tolerance %g)", name, blk, i, (double)xi,
                   (double)yi, (double)tol);
      }
    }
  }
}

/* Our quantizers against llama.cpp's own (ggml_quantize_chunk, recorded by make_fixtures.py) on
 * the same data: both dequantized here, relative RMS errors compared. The 32-element types follow
 * the same formulas and must be identical; Q4_K, Q5_K and Q6_K search differently and must do at
 * least as well as llama.cpp (the data is fixed, so this cannot flake). */
static void test_quantize_error_vs_llama_cpp(void **state) {
  (void)state;
  char *index = test_read_fixture("quant/index.tsv", NULL);
  int n_cases = 0;
  char *save = NULL;
  for (char *line = strtok_r(index, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
    char *f[6];
    if (line[0] == '#' || split_tabs(line, f, 6) != 6 || strcmp(f[0], "quantize_ggml")) continue;
    uint32_t type = type_by_name(f[1]);
    int64_t n = strtoll(f[2], NULL, 10);
    size_t in_size, ref_size;
    char path[512];
    snprintf(path, sizeof path, "quant/%s", f[3]);
    char *in = test_read_fixture(path, &in_size);
    snprintf(path, sizeof path, "quant/%s", f[4]);
    char *ref = test_read_fixture(path, &ref_size);
    assert_int_equal(in_size, (size_t)n * 4);
    assert_int_equal(ref_size, quant_row_size(type, (uint64_t)n));
    float *x = malloc(in_size), *y_ours = malloc(in_size), *y_ref = malloc(in_size);
    void *q = malloc(ref_size), *q_ref = malloc(ref_size);
    assert_true(x && y_ours && y_ref && q && q_ref);
    memcpy(x, in, in_size);
    memcpy(q_ref, ref, ref_size);
    assert_int_equal(quant_quantize_row(type, x, q, n), 0);
    assert_int_equal(quant_dequantize_row(type, q, y_ours, n), 0);
    assert_int_equal(quant_dequantize_row(type, q_ref, y_ref, n), 0);
    double e_ours = 0.0, e_ref = 0.0, norm = 0.0;
    for (int64_t i = 0; i < n; i++) {
      e_ours += ((double)y_ours[i] - x[i]) * ((double)y_ours[i] - x[i]);
      e_ref += ((double)y_ref[i] - x[i]) * ((double)y_ref[i] - x[i]);
      norm += (double)x[i] * x[i];
    }
    double rms_ours = sqrt(e_ours / norm), rms_ref = sqrt(e_ref / norm);
    printf("quantize %-4s relative RMS error %.5g, llama.cpp %.5g (ratio %.4f)\n", f[1], rms_ours,
           rms_ref, rms_ours / rms_ref);
    if (quant_traits(type)->block_size == 32) {
      assert_memory_equal(q, q_ref, ref_size);
    } else if (rms_ours > rms_ref) {
      fail_msg("%s: relative RMS error %.5g, llama.cpp's %.5g", f[1], rms_ours, rms_ref);
    }
    n_cases++;
    free(x);
    free(y_ours);
    free(y_ref);
    free(q);
    free(q_ref);
    free(in);
    free(ref);
  }
  free(index);
  assert_int_equal(n_cases, 8);
}

/* Quantizing values that are already on a type's grid (the dequantized real rows) must come
 * close to reproducing them: the search finds the scales the file used, or better. */
static void test_requantize_real_rows(void **state) {
  (void)state;
  const char *files[] = {"quant/model/1.5b.blk.0.ffn_gate.weight.0.f32",
                         "quant/model/0.5b.blk.0.ffn_down.weight.0.f32"};
  const uint32_t types[] = {QUANT_Q4_K, QUANT_Q6_K};
  for (int k = 0; k < 2; k++) {
    size_t size;
    char *ref = test_read_fixture(files[k], &size);
    int64_t n = (int64_t)(size / 4);
    float *x = malloc(size), *y = malloc(size);
    void *q = malloc(size);
    assert_non_null(x);
    assert_non_null(y);
    assert_non_null(q);
    memcpy(x, ref, size);
    assert_int_equal(quant_quantize_row(types[k], x, q, n), 0);
    assert_int_equal(quant_dequantize_row(types[k], q, y, n), 0);
    double err = 0.0, norm = 0.0;
    for (int64_t i = 0; i < n; i++) {
      err += ((double)y[i] - x[i]) * ((double)y[i] - x[i]);
      norm += (double)x[i] * x[i];
    }
    printf("requantize %s row: relative RMS error %.4g\n", quant_type_name(types[k]),
           sqrt(err / norm));
    /* Measured 0: the scale search lands on the file's own scales. */
    assert_true(sqrt(err / norm) < 1e-3);
    free(x);
    free(y);
    free(q);
    free(ref);
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_traits_match_gguf_py),
      cmocka_unit_test(test_required_types_supported),
      cmocka_unit_test(test_flags_match_functions),
      cmocka_unit_test(test_row_size),
      cmocka_unit_test(test_row_errors),
      cmocka_unit_test(test_round_matches_roundf),
      cmocka_unit_test(test_f16_to_f32_exhaustive),
      cmocka_unit_test(test_f32_to_f16_numpy),
      cmocka_unit_test(test_f32_to_f16_reference_sweep),
      cmocka_unit_test(test_bf16),
      cmocka_unit_test(test_dequantize_fixtures),
      cmocka_unit_test(test_dequantize_q8_1),
      cmocka_unit_test(test_quantize_matches_gguf_py),
      cmocka_unit_test(test_quantize_q8_0_formula),
      cmocka_unit_test(test_quantize_q8_k),
      cmocka_unit_test(test_round_trip_error_bounds),
      cmocka_unit_test(test_quantize_degenerate_blocks),
      cmocka_unit_test(test_quantize_error_vs_llama_cpp),
      cmocka_unit_test(test_requantize_real_rows),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
