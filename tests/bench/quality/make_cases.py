#!/usr/bin/env python3
"""Completion-quality cases (issue 11) cut from real code on this machine that this project did not
write: Python's standard library, Go's (the installed toolchain's GOROOT/src), Neovim's runtime
Lua, the C, C++, JavaScript and TypeScript sources of the npm packages that scripts/fetch-grammars
caches (the tree-sitter runtime and Node binding, the grammars' grammar.js), and the Rust crates
that fetch_rust_sources unpacks (memchr, regex-syntax, smallvec). --root NAME=DIR adds more.

Kinds, per language (a case is a file, a byte position and the text removed there, which is the
expected completion):
  line   the cursor after a line's indentation; expected: the rest of the line
  mid    the cursor inside a line, after the first identifier past a third of it; expected: the rest
  multi  the cursor on an empty line that opens a block (after `:`, `{`, `then`, `do`, a Lua
         function header), indentation typed; expected: the block's body, up to its closer or
         dedent, which stays in the suffix
  cross  the cursor at a call of a function defined in another file of the same project (same
         folder); expected: the rest of the line; `open` lists the defining file, which the session
         opens first
Every case records the sha256 of its file: a runner refuses a file that changed (another Python
release). Seeded: the same roots and seed give the same cases, and the languages are drawn (and
numbered) in the order they were added to the bench, so adding one leaves the others' cases as
they were.

  tests/bench/quality/fetch_rust_sources     (once: the pinned crates, checked by sha256)
  tests/bench/quality/make_cases.py [--seed 11] [--per-kind 8] [--out tests/bench/quality/cases.jsonl]
      [--root NAME=DIR ...]
  tests/bench/quality/make_cases.py --resolve cases.jsonl   the cases as TSV for C tools (absolute
      path, offset, removed bytes, expected bytes, kind, id), files whose sum differs left out
"""
import argparse
import glob
import hashlib
import json
import os
import random
import re
import subprocess
import sys

LANGUAGES = {
    ".py": "python", ".lua": "lua", ".c": "c", ".h": "c", ".cc": "cpp", ".cpp": "cpp",
    ".hpp": "cpp", ".js": "javascript", ".mjs": "javascript", ".ts": "typescript",
    ".tsx": "tsx", ".go": "go", ".rs": "rust",
}
COMMENT = {"python": ("#",), "lua": ("--",), "c": ("//", "/*", "*"), "cpp": ("//", "/*", "*"),
           "javascript": ("//", "/*", "*"), "typescript": ("//", "/*", "*"), "tsx": ("//", "/*", "*"),
           "go": ("//", "/*", "*"), "rust": ("//", "/*", "*")}
# The order languages were added to the bench in: pools are drawn and cases numbered in it.
LANGUAGE_ORDER = ["c", "cpp", "javascript", "lua", "python", "tsx", "typescript", "go", "rust"]
# Go's standard library: packages of everyday code (not runtime or assembly-heavy internals).
GO_PACKAGES = ["bufio", "bytes", "strings", "sort", "strconv", "path/filepath", "net/url",
               "encoding/csv", "encoding/json", "text/tabwriter", "text/template", "go/scanner",
               "go/token", "container/list", "container/heap", "flag", "html/template"]
RUST_CRATES = ["memchr-2.7.4", "regex-syntax-0.8.5", "smallvec-1.13.2"]
MAX_BODY_LINES = 12
MIN_FILE, MAX_FILE = 2000, 300000


def grammars_cache():
    cache = os.environ.get("AUGURY_GRAMMARS_CACHE")
    if cache:
        return cache
    base = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(base, "augury", "grammars")


def default_roots():
    """name -> (folder, glob patterns under it). Only roots that exist are returned."""
    roots = {}
    pythons = sorted(glob.glob("/usr/lib/python3.[0-9]*"))
    pythons = [p for p in pythons if os.path.isfile(os.path.join(p, "difflib.py"))]
    if pythons:
        roots["python-stdlib"] = (pythons[-1], ["*.py", "*/*.py", "*/*/*.py"])
    if os.path.isdir("/usr/share/nvim/runtime/lua"):
        roots["nvim-runtime"] = ("/usr/share/nvim/runtime/lua", ["vim/*.lua", "vim/*/*.lua"])
    cache = grammars_cache()
    for d in sorted(glob.glob(os.path.join(cache, "tree-sitter-0.*"))):
        roots["npm-tree-sitter"] = (d, ["vendor/tree-sitter/lib/src/*.[ch]", "src/*.cc",
                                        "index.js", "tree-sitter.d.ts"])
    goroot = go_root()
    if goroot:
        roots["go-stdlib"] = (os.path.join(goroot, "src"), [p + "/*.go" for p in GO_PACKAGES])
    cargo = os.environ.get("CARGO_HOME") or os.path.expanduser("~/.cargo")
    for crate in RUST_CRATES:
        found = sorted(glob.glob(os.path.join(cargo, "registry", "src", "*", crate)))
        if found:
            roots["crate-" + crate] = (found[0], ["src/*.rs", "src/*/*.rs"])
    grammar_js = [d for d in sorted(glob.glob(os.path.join(cache, "*")))
                  if os.path.isfile(os.path.join(d, "grammar.js"))]
    for d in grammar_js:
        name = "npm-" + os.path.basename(d)
        roots[name] = (d, ["grammar.js", "common/*.js"])
    return roots


def go_root():
    """The installed Go toolchain's GOROOT, or None."""
    try:
        out = subprocess.run(["go", "env", "GOROOT"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    root = out.stdout.strip()
    return root if out.returncode == 0 and os.path.isdir(os.path.join(root, "src")) else None


def language_of(path):
    return LANGUAGES.get(os.path.splitext(path)[1])


def source_files(roots):
    out = []
    for name, (folder, patterns) in sorted(roots.items()):
        seen = set()
        for pattern in patterns:
            for path in sorted(glob.glob(os.path.join(folder, pattern))):
                rel = os.path.relpath(path, folder)
                if (rel in seen or "/test" in "/" + rel or "/tests/" in rel
                        or rel.endswith("_test.go")):
                    continue
                if not language_of(path) or not MIN_FILE < os.path.getsize(path) < MAX_FILE:
                    continue
                seen.add(rel)
                out.append((name, folder, rel))
    return out


class Source:
    def __init__(self, root, folder, rel):
        self.root, self.folder, self.rel = root, folder, rel
        self.path = os.path.join(folder, rel)
        self.language = language_of(rel)
        data = open(self.path, "rb").read()
        self.sha256 = hashlib.sha256(data).hexdigest()
        self.text = data.decode("utf-8", errors="replace")
        self.lines = self.text.split("\n")
        self.starts = [0]
        for line in self.lines[:-1]:
            self.starts.append(self.starts[-1] + len(line.encode("utf-8")) + 1)
        self.code = self._code_mask()

    def _code_mask(self):
        """Lines that are code: not blank, not a comment, not inside a Python triple-quoted string
        or a C block comment (a rough scan: good enough to choose cursors)."""
        mask, inside = [], None
        for line in self.lines:
            s = line.strip()
            was_inside = inside is not None
            if self.language == "python":
                for quote in ('"""', "'''"):
                    if (inside in (None, quote)) and line.count(quote) % 2 == 1:
                        inside = None if inside == quote else quote
            elif self.language != "lua":
                if inside is None and "/*" in s and "*/" not in s[s.index("/*"):]:
                    inside = "*/"
                elif inside == "*/" and "*/" in s:
                    inside = None
                    was_inside = True
            comment = s.startswith(COMMENT.get(self.language, ()))
            mask.append(bool(s) and not comment and not was_inside and inside is None)
        return mask

    def indent(self, i):
        line = self.lines[i]
        return len(line) - len(line.lstrip(" \t"))

    def byte_col(self, i, col):
        return len(self.lines[i][:col].encode("utf-8"))

    def case(self, kind, i, col, expected, removed=None, **extra):
        """removed: the text taken out of the document at the cursor (default: expected; it may
        also hold trailing blanks that expected leaves out)."""
        removed = expected if removed is None else removed
        return dict(kind=kind, language=self.language, root=self.root, path=self.rel,
                    sha256=self.sha256, line=i, col=self.byte_col(i, col),
                    offset=self.starts[i] + self.byte_col(i, col),
                    remove=len(removed.encode("utf-8")), expected=expected, **extra)


def line_cases(src):
    out = []
    for i, line in enumerate(src.lines):
        s = line.strip()
        if src.code[i] and len(s) >= 10:
            col = src.indent(i)
            out.append(src.case("line", i, col, line[col:].rstrip(), line[col:]))
    return out


def mid_cases(src):
    out = []
    for i, line in enumerate(src.lines):
        s = line.rstrip()
        if not src.code[i] or len(s.strip()) < 20:
            continue
        start = max(src.indent(i) + 1, len(s) // 3)
        m = re.compile(r"\w+").search(s, start)
        if not m or m.end() >= len(s) - 2:
            continue
        out.append(src.case("mid", i, m.end(), s[m.end():], line[m.end():]))
    return out


def opens_block(src, i):
    s = src.lines[i].rstrip()
    if src.language == "python":
        s = re.sub(r"\s+#.*$", "", s)
        return s.endswith(":") and re.match(r"\s*(def|class|if|elif|else|for|while|with|try|except|finally|async)\b", s)
    if src.language == "lua":
        return bool(re.search(r"(\bthen|\bdo|\bfunction\b[^()]*\([^()]*\)|\belse|\brepeat)$", s))
    return s.endswith("{")


def block_body(src, i):
    """(first, last) body lines of the block opened at line i, or None."""
    head = src.indent(i)
    j = i + 1
    if j >= len(src.lines) or src.indent(j) <= head or not src.lines[j].strip():
        return None
    last = None
    k = j
    while k < len(src.lines):
        line = src.lines[k]
        if line.strip() and src.indent(k) <= head:
            break
        if line.strip():
            last = k
        k += 1
    if last is None or k >= len(src.lines):
        return None
    closer = src.lines[k].strip()
    if src.language != "python":
        expected_closer = "end" if src.language == "lua" else "}"
        if not closer.startswith(expected_closer) or src.indent(k) != head:
            return None
    if last - j + 1 > MAX_BODY_LINES:
        return None
    return j, last


def multi_cases(src):
    out = []
    for i in range(len(src.lines) - 2):
        if not src.code[i] or not opens_block(src, i):
            continue
        body = block_body(src, i)
        if not body:
            continue
        first, last = body
        col = src.indent(first)
        expected = "\n".join([src.lines[first][col:]] + src.lines[first + 1:last + 1])
        if len(expected.strip()) < 10:
            continue
        out.append(src.case("multi", first, col, expected))
    return out


DEFINITION = {
    "python": re.compile(r"^(?:async\s+)?def\s+([A-Za-z_]\w{4,})\s*\(|^class\s+([A-Za-z_]\w{4,})"),
    "lua": re.compile(r"^function\s+[\w.]+[.:]([A-Za-z_]\w{4,})\s*\("),
    "c": re.compile(r"^(?!static\b)[A-Za-z_][\w\s\*]*?\b([a-z_]\w{4,})\s*\([^;]*$"),
    "cpp": re.compile(r"^[A-Za-z_][\w\s\*:<>&]*?\b([A-Za-z_]\w{4,})\s*\([^;]*$"),
    "javascript": re.compile(r"^(?:export\s+)?function\s+([A-Za-z_]\w{4,})\s*\("),
    "typescript": re.compile(r"^(?:export\s+)?(?:declare\s+)?function\s+([A-Za-z_]\w{4,})\s*\("),
    # Package-level functions (a method is reached through its receiver, not by name).
    "go": re.compile(r"^func\s+([A-Za-z_]\w{4,})\s*[\[(]"),
    # Module-level functions.
    "rust": re.compile(r"^(?:pub(?:\([^)]*\))?\s+)?(?:(?:const|unsafe|async)\s+)*fn\s+([A-Za-z_]\w{4,})\s*[<(]"),
}


def definitions(sources):
    """(project folder, language) -> name -> set of defining files."""
    index = {}
    for src in sources:
        pattern = DEFINITION.get(src.language)
        if not pattern:
            continue
        project = (src.root, os.path.dirname(src.rel), "c" if src.language == "c" else src.language)
        names = index.setdefault(project, {})
        for i, line in enumerate(src.lines):
            m = pattern.match(line)
            if m and src.code[i]:
                name = next(g for g in m.groups() if g)
                names.setdefault(name, set()).add(src.rel)
    return index


def cross_cases(src, index):
    project = (src.root, os.path.dirname(src.rel), src.language)
    names = index.get(project, {})
    imported = {}  # Python: name -> the module it is imported from (`from .mod import name`)
    for line in src.lines:
        m = re.match(r"\s*from\s+(\S+)\s+import\s+\(?([^#]*)", line)
        if m:
            for name in re.findall(r"\w+", m.group(2)):
                imported[name] = m.group(1).split(".")[-1]
    out = []
    for i, line in enumerate(src.lines):
        if not src.code[i] or DEFINITION.get(src.language, re.compile("$^")).match(line):
            continue
        # In C and C++ a top-level line is a declaration or a definition, not a call.
        if src.indent(i) == 0 and src.language in ("c", "cpp"):
            continue
        for m in re.finditer(r"\b([A-Za-z_]\w{4,})\s*\(", line):
            defined_in = names.get(m.group(1), set())
            if len(defined_in) != 1 or src.rel in defined_in:
                continue
            # A module's function is reached through the module (Lua `util.name(`, Python
            # `mod.name(`) or, in Python, imported by name; a bare name elsewhere is another one.
            qualified = line[:m.start()].endswith((".", ":"))
            if src.language == "lua" and not qualified:
                continue
            # Go: a function of the same package is called by its bare name (pkg.Name is another
            # package's). Rust: a sibling module's function as module::name.
            if src.language == "go" and qualified:
                continue
            other = next(iter(defined_in))
            module = os.path.splitext(os.path.basename(other))[0]
            if src.language == "rust" and not line[:m.start()].endswith(module + "::"):
                continue
            if src.language == "python":
                qualifier = re.search(r"(\w+)\.$", line[:m.start()])
                if qualified and not (qualifier and qualifier.group(1) == module):
                    continue
                if not qualified and imported.get(m.group(1)) != module:
                    continue
            col = m.start()
            rest = line[col:].rstrip()
            if len(rest) < 8:
                continue
            out.append(src.case("cross", i, col, rest, line[col:],
                                open=[{"root": src.root, "path": other}], symbol=m.group(1)))
            break
    return out


def resolve(cases_path, roots):
    skipped = 0
    for line in open(cases_path):
        c = json.loads(line)
        if c["root"] not in roots:
            skipped += 1
            continue
        path = os.path.join(roots[c["root"]][0], c["path"])
        try:
            data = open(path, "rb").read()
        except OSError:
            data = b""
        if hashlib.sha256(data).hexdigest() != c["sha256"]:
            skipped += 1
            continue
        print("\t".join(str(v) for v in (path, c["offset"], c["remove"],
                                          len(c["expected"].encode("utf-8")), c["kind"], c["id"])))
    if skipped:
        print("make_cases: %d cases left out (root missing or file changed)" % skipped, file=sys.stderr)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--per-kind", type=int, default=8, help="cases per language and kind")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                  "cases.jsonl"))
    ap.add_argument("--root", action="append", default=[],
                    help="NAME=DIR: more sources (every file with a known extension under DIR)")
    ap.add_argument("--resolve", metavar="CASES", help="print CASES as TSV with absolute paths")
    args = ap.parse_args()

    roots = default_roots()
    for spec in args.root:
        name, _, folder = spec.partition("=")
        roots[name] = (folder, ["**/*" + ext for ext in LANGUAGES])
    if args.resolve:
        return resolve(args.resolve, roots)
    sources = [Source(*f) for f in source_files(roots)]
    index = definitions(sources)

    rng = random.Random(args.seed)
    pools = {}
    for src in sources:
        for kind, cases in (("line", line_cases(src)), ("mid", mid_cases(src)),
                            ("multi", multi_cases(src)), ("cross", cross_cases(src, index))):
            pools.setdefault((src.language, kind), []).extend(cases)
    chosen = []
    order = {lang: n for n, lang in enumerate(LANGUAGE_ORDER)}
    for key in sorted(pools, key=lambda k: (order.get(k[0], len(order)), k)):
        pool = pools[key]
        # One case per file first, so that a few big files do not take all the cases.
        rng.shuffle(pool)
        by_file, rest = {}, []
        for c in pool:
            (rest if (c["root"], c["path"]) in by_file else by_file.setdefault((c["root"], c["path"]), [])).append(c)
        firsts = [v[0] for v in by_file.values()]
        rng.shuffle(firsts)
        chosen.extend((firsts + rest)[:args.per_kind])
    chosen.sort(key=lambda c: (order.get(c["language"], len(order)), c["language"], c["kind"],
                               c["root"], c["path"], c["line"]))
    with open(args.out, "w") as f:
        for n, c in enumerate(chosen):
            c = dict(id="%s-%s-%03d" % (c["language"], c["kind"], n), **c)
            f.write(json.dumps(c, ensure_ascii=False, sort_keys=True) + "\n")

    counts = {}
    for c in chosen:
        counts[(c["language"], c["kind"])] = counts.get((c["language"], c["kind"]), 0) + 1
    languages = sorted({k[0] for k in counts})
    kinds = ["line", "mid", "multi", "cross"]
    print("%-12s" % "language" + "".join("%7s" % k for k in kinds))
    for lang in languages:
        print("%-12s" % lang + "".join("%7d" % counts.get((lang, k), 0) for k in kinds))
    print("%d cases from %d files in %d roots (seed %d) -> %s" % (
        len(chosen), len({(c["root"], c["path"]) for c in chosen}), len(roots), args.seed, args.out))
    missing = [lang for lang in ("c", "cpp", "python", "javascript", "typescript", "go", "rust", "lua")
               if lang not in languages]
    if missing:
        print("no sources for: %s (add --root NAME=DIR)" % ", ".join(missing))
    return 0


if __name__ == "__main__":
    sys.exit(main())
