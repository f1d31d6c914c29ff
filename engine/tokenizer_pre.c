/* Pre-tokenizers for byte-level BPE (see tokenizer_pre.h). Each tokenizer.ggml.pre value maps to
 * the list of patterns llama.cpp applies in order (llama-vocab.cpp, llm_tokenizer_bpe); each
 * pattern is a matcher that returns the length of the match starting at a position, or 0. A pass
 * splits every current segment into its matches and the gaps between them, as llama.cpp's
 * unicode_regex_split does with std::regex_iterator; the gpt2 and llama3 patterns follow
 * llama.cpp's hand-written versions (unicode_regex_split_custom_*), which return 1 where nothing
 * matches. */
#include "engine/tokenizer_pre.h"

#include <string.h>

#include "engine/unicode.h"

struct pre_run {
  const uint32_t *cps;
  const uint8_t *flags;
};

typedef size_t (*pre_match_fn)(const struct pre_run *r, size_t pos, size_t end);

#define F_L UNICODE_LETTER
#define F_N UNICODE_NUMBER
#define F_P UNICODE_PUNCTUATION
#define F_WS UNICODE_WHITESPACE

static uint32_t ascii_lower(uint32_t c) {
  return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static bool is_crlf(uint32_t c) {
  return c == '\r' || c == '\n';
}

/* (?i:'s|'t|'re|'ve|'m|'ll|'d) or, with case_sensitive, 's|'t|'re|'ve|'m|'ll|'d. llama.cpp
 * rewrites the (?i:...) form to '[sS]|..., so only ASCII case folds. */
static size_t match_contraction(const struct pre_run *r, size_t pos, size_t end,
                                bool case_sensitive) {
  if (r->cps[pos] != '\'' || pos + 1 >= end) return 0;
  uint32_t c1 = case_sensitive ? r->cps[pos + 1] : ascii_lower(r->cps[pos + 1]);
  if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
  if (pos + 2 >= end) return 0;
  uint32_t c2 = case_sensitive ? r->cps[pos + 2] : ascii_lower(r->cps[pos + 2]);
  if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
  return 0;
}

static size_t run_of(const struct pre_run *r, size_t pos, size_t end, unsigned mask) {
  size_t p = pos;
  while (p < end && (r->flags[p] & mask))
    p++;
  return p - pos;
}

/* The qwen2 / llama3 pattern:
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,D}| ?[^\s\p{L}\p{N}]+[\r\n]*|
 *   \s*[\r\n]+|\s+(?!\S)|\s+
 * with D = max_digits. Alternatives are tried in order at pos (leftmost-first). Unassigned
 * codepoints count as "[^\s\p{L}\p{N}]", both in llama.cpp's custom llama3 splitter (their flag
 * is UNDEFINED, which is not zero) and in its std::regex path used for qwen2. */
static size_t match_llama3_like(const struct pre_run *r, size_t pos, size_t end,
                                size_t max_digits) {
  const uint32_t *cps = r->cps;
  const uint8_t *fl = r->flags;
  size_t len = match_contraction(r, pos, end, false);
  if (len) return len;
  unsigned f = fl[pos];
  /* [^\r\n\p{L}\p{N}]?\p{L}+ */
  if (f & F_L) return 1 + run_of(r, pos + 1, end, F_L);
  if (!is_crlf(cps[pos]) && !(f & F_N) && pos + 1 < end && (fl[pos + 1] & F_L)) {
    return 2 + run_of(r, pos + 2, end, F_L);
  }
  /* \p{N}{1,D} */
  if (f & F_N) {
    size_t p = pos + 1;
    while (p < end && p - pos < max_digits && (fl[p] & F_N))
      p++;
    return p - pos;
  }
  /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
  size_t q = pos + (cps[pos] == ' ');
#define IS_OTHER(x) (!((x) & (F_WS | F_L | F_N)))
  if (q < end && IS_OTHER(fl[q])) {
    size_t p = q + 1;
    while (p < end && IS_OTHER(fl[p]))
      p++;
    while (p < end && is_crlf(cps[p]))
      p++;
    return p - pos;
  }
#undef IS_OTHER
  /* \s*[\r\n]+ matches up to the last CR/LF of the whitespace run; \s+(?!\S) leaves the last
   * space of a run followed by a non-space to the next word; \s+ takes the rest. */
  size_t p = pos, after_last_newline = 0;
  while (p < end && (fl[p] & F_WS)) {
    if (is_crlf(cps[p])) after_last_newline = p + 1;
    p++;
  }
  if (after_last_newline) return after_last_newline - pos;
  size_t n_ws = p - pos;
  if (n_ws > 1 && p < end) return n_ws - 1;
  if (n_ws > 0) return n_ws;
  return 1; /* nothing matched: the custom splitter emits the codepoint alone */
}

static size_t match_qwen2(const struct pre_run *r, size_t pos, size_t end) {
  return match_llama3_like(r, pos, end, 1);
}

static size_t match_llama3(const struct pre_run *r, size_t pos, size_t end) {
  return match_llama3_like(r, pos, end, 3);
}

/* GPT-2: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S), as llama.cpp's
 * custom splitter does it. */
static size_t match_gpt2(const struct pre_run *r, size_t pos, size_t end) {
  const uint8_t *fl = r->flags;
  size_t len = match_contraction(r, pos, end, true);
  if (len) return len;
  size_t q = pos + (r->cps[pos] == ' ');
  if (q < end) {
    unsigned f2 = fl[q];
    if (f2 & F_L) return q - pos + run_of(r, q, end, F_L);
    if (f2 & F_N) return q - pos + run_of(r, q, end, F_N);
    if (!(f2 & F_WS)) {
      size_t p = q + 1;
      while (p < end && !(fl[p] & (F_WS | F_L | F_N)))
        p++;
      return p - pos;
    }
  }
  size_t n_ws = run_of(r, pos, end, F_WS);
  if (n_ws > 1 && pos + n_ws < end) return n_ws - 1;
  if (n_ws > 0) return n_ws;
  return 1;
}

/* [\p{P}\$\+<=>\^~\|]+ */
static size_t match_punct_symbols(const struct pre_run *r, size_t pos, size_t end) {
  size_t p = pos;
  while (p < end) {
    uint32_t c = r->cps[p];
    if (!(r->flags[p] & F_P) && !(c == '$' || c == '+' || c == '<' || c == '=' || c == '>' ||
                                  c == '^' || c == '~' || c == '|')) {
      break;
    }
    p++;
  }
  return p - pos;
}

/* \p{N}+ */
static size_t match_number_run(const struct pre_run *r, size_t pos, size_t end) {
  return run_of(r, pos, end, F_N);
}

/* \p{N} */
static size_t match_number_one(const struct pre_run *r, size_t pos, size_t end) {
  (void)end;
  return (r->flags[pos] & F_N) ? 1 : 0;
}

/* [0-9][0-9][0-9] */
static size_t match_three_digits(const struct pre_run *r, size_t pos, size_t end) {
  if (end - pos < 3) return 0;
  for (size_t i = 0; i < 3; i++) {
    if (r->cps[pos + i] < '0' || r->cps[pos + i] > '9') return 0;
  }
  return 3;
}

/* [\r\n] */
static size_t match_crlf(const struct pre_run *r, size_t pos, size_t end) {
  (void)end;
  return is_crlf(r->cps[pos]) ? 1 : 0;
}

/* \s?X+ for a class X given by mask. */
static size_t match_space_then(const struct pre_run *r, size_t pos, size_t end, unsigned mask) {
  if (r->flags[pos] & mask) return run_of(r, pos, end, mask);
  if ((r->flags[pos] & F_WS) && pos + 1 < end && (r->flags[pos + 1] & mask)) {
    return 1 + run_of(r, pos + 1, end, mask);
  }
  return 0;
}

static size_t match_space_letters(const struct pre_run *r, size_t pos, size_t end) {
  return match_space_then(r, pos, end, F_L);
}

static size_t match_space_punct(const struct pre_run *r, size_t pos, size_t end) {
  return match_space_then(r, pos, end, F_P);
}

/* Explicit character classes of the deepseek patterns. llama.cpp matches them with std::wregex
 * after replacing non-ASCII whitespace by U+000B, so such whitespace is never in a class. */
struct cp_range {
  uint32_t first, last;
};

static bool in_ranges(uint32_t c, const struct cp_range *ranges, size_t n) {
  for (size_t i = 0; i < n; i++) {
    if (c >= ranges[i].first && c <= ranges[i].last) return true;
  }
  return false;
}

static bool in_wregex_class(const struct pre_run *r, size_t p, const struct cp_range *ranges,
                            size_t n) {
  uint32_t c = r->cps[p];
  if (c > 0x7F && (r->flags[p] & F_WS)) return false;
  return in_ranges(c, ranges, n);
}

static size_t match_wregex_space_then_class(const struct pre_run *r, size_t pos, size_t end,
                                            const struct cp_range *ranges, size_t n) {
  size_t p = pos;
  if (!in_wregex_class(r, p, ranges, n)) {
    if (!(r->flags[p] & F_WS) || p + 1 >= end || !in_wregex_class(r, p + 1, ranges, n)) return 0;
    p++;
  }
  while (p < end && in_wregex_class(r, p, ranges, n))
    p++;
  return p - pos;
}

/* [一-龥ࠀ-一가-퟿]+ (deepseek's CJK/Hangul runs) */
static const struct cp_range cjk_ranges[] = {{0x4E00, 0x9FA5}, {0x0800, 0x4E00}, {0xAC00, 0xD7FF}};

static size_t match_cjk(const struct pre_run *r, size_t pos, size_t end) {
  size_t p = pos;
  while (p < end && in_wregex_class(r, p, cjk_ranges, sizeof cjk_ranges / sizeof cjk_ranges[0])) {
    p++;
  }
  return p - pos;
}

/* deepseek-llm's letter class \s?[A-Za-zµÀ-ÖØ-öø-ƺ...𞤀-𞥃]+ (cased letters of many
 * scripts), transcribed range by range from the pattern in llama-vocab.cpp. */
static const struct cp_range deepseek_letters[] = {
    {0x41, 0x5A},       {0x61, 0x7A},       {0xB5, 0xB5},       {0xC0, 0xD6},
    {0xD8, 0xF6},       {0xF8, 0x1BA},      {0x1BC, 0x1BF},     {0x1C4, 0x293},
    {0x295, 0x2AF},     {0x370, 0x373},     {0x376, 0x377},     {0x37B, 0x37D},
    {0x37F, 0x37F},     {0x386, 0x386},     {0x388, 0x38A},     {0x38C, 0x38C},
    {0x38E, 0x3A1},     {0x3A3, 0x3F5},     {0x3F7, 0x481},     {0x48A, 0x52F},
    {0x531, 0x556},     {0x10A0, 0x10C5},   {0x13A0, 0x13F5},   {0x13F8, 0x13FD},
    {0x1C90, 0x1CBA},   {0x1CBD, 0x1CBF},   {0x1D00, 0x1D2B},   {0x1D6B, 0x1D77},
    {0x1D79, 0x1D9A},   {0x1E00, 0x1F15},   {0x1F18, 0x1F1D},   {0x1F20, 0x1F45},
    {0x1F48, 0x1F4D},   {0x1F50, 0x1F57},   {0x1F59, 0x1F59},   {0x1F5B, 0x1F5B},
    {0x1F5D, 0x1F5D},   {0x1F5F, 0x1F7D},   {0x1F80, 0x1FB4},   {0x1FB6, 0x1FBC},
    {0x1FBE, 0x1FBE},   {0x1FC2, 0x1FC4},   {0x1FC6, 0x1FCC},   {0x1FD0, 0x1FD3},
    {0x1FD6, 0x1FDB},   {0x1FE0, 0x1FEC},   {0x1FF2, 0x1FF4},   {0x1FF6, 0x1FFC},
    {0x2102, 0x2102},   {0x2107, 0x2107},   {0x210A, 0x2113},   {0x2115, 0x2115},
    {0x2119, 0x211D},   {0x2124, 0x2124},   {0x2126, 0x2126},   {0x2128, 0x2128},
    {0x212A, 0x212D},   {0x212F, 0x2134},   {0x2139, 0x2139},   {0x213C, 0x213F},
    {0x2145, 0x2149},   {0x214E, 0x214E},   {0x2183, 0x2184},   {0x2C00, 0x2C7B},
    {0x2C7E, 0x2CE4},   {0x2CEB, 0x2CEE},   {0x2CF2, 0x2CF3},   {0xA640, 0xA66D},
    {0xA680, 0xA69B},   {0xA722, 0xA76F},   {0xA771, 0xA787},   {0xA78B, 0xA78E},
    {0xAB70, 0xABBF},   {0xFB00, 0xFB06},   {0xFB13, 0xFB17},   {0xFF21, 0xFF3A},
    {0xFF41, 0xFF5A},   {0x10400, 0x1044F}, {0x104B0, 0x104D3}, {0x104D8, 0x104FB},
    {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF}, {0x1E900, 0x1E943},
};

static size_t match_deepseek_letters(const struct pre_run *r, size_t pos, size_t end) {
  return match_wregex_space_then_class(r, pos, end, deepseek_letters,
                                       sizeof deepseek_letters / sizeof deepseek_letters[0]);
}

/* \s?[!-/:-~！-／：-～‘-‟　-。]+ */
static const struct cp_range deepseek_punct[] = {{0x21, 0x2F},     {0x3A, 0x7E},
                                                 {0xFF01, 0xFF0F}, {0xFF1A, 0xFF5E},
                                                 {0x2018, 0x201F}, {0x3000, 0x3002}};

static size_t match_deepseek_punct(const struct pre_run *r, size_t pos, size_t end) {
  return match_wregex_space_then_class(r, pos, end, deepseek_punct,
                                       sizeof deepseek_punct / sizeof deepseek_punct[0]);
}

/* \s+$ : the whitespace run that ends the segment. */
static size_t match_trailing_space(const struct pre_run *r, size_t pos, size_t end) {
  size_t n = run_of(r, pos, end, F_WS);
  return pos + n == end ? n : 0;
}

struct pre_def {
  enum tokenizer_pre_kind kind;
  const char *name;
  pre_match_fn passes[6];
};

static const struct pre_def pre_defs[] = {
    {TOKENIZER_PRE_DEFAULT,
     "default",
     {match_punct_symbols, match_gpt2, match_number_run, match_three_digits}},
    {TOKENIZER_PRE_GPT2, "gpt-2", {match_gpt2}},
    {TOKENIZER_PRE_LLAMA3, "llama-bpe", {match_llama3}},
    {TOKENIZER_PRE_QWEN2, "qwen2", {match_qwen2}},
    {TOKENIZER_PRE_DEEPSEEK_LLM,
     "deepseek-llm",
     {match_crlf, match_deepseek_letters, match_deepseek_punct, match_trailing_space, match_cjk,
      match_number_run}},
    {TOKENIZER_PRE_DEEPSEEK_CODER,
     "deepseek-coder",
     {match_crlf, match_space_letters, match_space_punct, match_cjk, match_number_one}},
    {TOKENIZER_PRE_STARCODER, "starcoder", {match_number_one, match_gpt2}},
};

/* tokenizer.ggml.pre values (llama-vocab.cpp, llama_vocab::impl::load) for each kind. */
static const struct {
  const char *name;
  enum tokenizer_pre_kind kind;
} pre_names[] = {
    {"default", TOKENIZER_PRE_DEFAULT},
    {"gpt-2", TOKENIZER_PRE_GPT2},
    {"phi-2", TOKENIZER_PRE_GPT2},
    {"mpt", TOKENIZER_PRE_GPT2},
    {"olmo", TOKENIZER_PRE_GPT2},
    {"jais", TOKENIZER_PRE_GPT2},
    {"trillion", TOKENIZER_PRE_GPT2},
    {"gigachat", TOKENIZER_PRE_GPT2},
    {"llama3", TOKENIZER_PRE_LLAMA3},
    {"llama-v3", TOKENIZER_PRE_LLAMA3},
    {"llama-bpe", TOKENIZER_PRE_LLAMA3},
    {"falcon3", TOKENIZER_PRE_LLAMA3},
    {"pixtral", TOKENIZER_PRE_LLAMA3},
    {"qwen2", TOKENIZER_PRE_QWEN2},
    {"deepseek-r1-qwen", TOKENIZER_PRE_QWEN2},
    {"stablelm2", TOKENIZER_PRE_QWEN2},
    {"deepseek-llm", TOKENIZER_PRE_DEEPSEEK_LLM},
    {"deepseek-coder", TOKENIZER_PRE_DEEPSEEK_CODER},
    {"starcoder", TOKENIZER_PRE_STARCODER},
    {"refact", TOKENIZER_PRE_STARCODER},
    {"command-r", TOKENIZER_PRE_STARCODER},
    {"smollm", TOKENIZER_PRE_STARCODER},
    {"codeshell", TOKENIZER_PRE_STARCODER},
    {"exaone", TOKENIZER_PRE_STARCODER},
    {"minerva-7b", TOKENIZER_PRE_STARCODER},
};

bool tokenizer_pre_from_name(const char *name, size_t len, enum tokenizer_pre_kind *out) {
  for (size_t i = 0; i < sizeof pre_names / sizeof pre_names[0]; i++) {
    if (strlen(pre_names[i].name) == len && memcmp(pre_names[i].name, name, len) == 0) {
      *out = pre_names[i].kind;
      return true;
    }
  }
  return false;
}

static const struct pre_def *pre_def_of(enum tokenizer_pre_kind kind) {
  for (size_t i = 0; i < sizeof pre_defs / sizeof pre_defs[0]; i++) {
    if (pre_defs[i].kind == kind) return &pre_defs[i];
  }
  return &pre_defs[0];
}

const char *tokenizer_pre_kind_name(enum tokenizer_pre_kind kind) {
  return pre_def_of(kind)->name;
}

/* One pass: every segment of in[] (end offsets) is split into matches and the gaps between them. */
static size_t apply_pass(pre_match_fn match, const struct pre_run *r, const uint32_t *in,
                         size_t n_in, uint32_t *out) {
  size_t n_out = 0, start = 0;
  for (size_t s = 0; s < n_in; s++) {
    size_t end = in[s];
    size_t pos = start, gap = start;
    while (pos < end) {
      size_t len = match(r, pos, end);
      if (len == 0) {
        pos++;
        continue;
      }
      if (pos > gap) out[n_out++] = (uint32_t)pos;
      pos += len;
      out[n_out++] = (uint32_t)pos;
      gap = pos;
    }
    if (gap < end) out[n_out++] = (uint32_t)end;
    start = end;
  }
  return n_out;
}

size_t tokenizer_pre_split(enum tokenizer_pre_kind kind, const uint32_t *cps, const uint8_t *flags,
                           size_t n, uint32_t *ends, uint32_t *scratch) {
  if (n == 0) return 0;
  const struct pre_def *def = pre_def_of(kind);
  struct pre_run run = {cps, flags};
  uint32_t *in = scratch, *out = ends;
  in[0] = (uint32_t)n;
  size_t count = 1;
  for (size_t i = 0; i < sizeof def->passes / sizeof def->passes[0] && def->passes[i]; i++) {
    count = apply_pass(def->passes[i], &run, in, count, out);
    uint32_t *t = in;
    in = out;
    out = t;
  }
  if (in != ends) memcpy(ends, in, count * sizeof *ends);
  return count;
}
