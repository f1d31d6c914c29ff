#!/usr/bin/env python3
"""First-line exact match of `augury complete` on cursor positions cut from real code this project
did not write (the Python standard library, Neovim's runtime Lua when present), for the two FIM
layouts: the cursor's line after <|fim_middle|> (default) and at the end of the prefix
(--classic-layout), and token healing against whitespace-only healing (--no-token-healing).
Seeded; a case is a file, a line and a column (mid: after the first identifier-ish run past a
third of the line; word: inside that identifier, the cursor cutting a word; start: column 0 of a
non-blank line, indentation typed).

  tests/bench/quality/layout_cases.py --augury build/augury --model M [--cases 40] [--seed 1] \
      [--variants middle,classic,noheal]
"""
import argparse
import glob
import json
import os
import random
import subprocess
import sys
import tempfile


def pick_cases(rng, n):
    files = sorted(glob.glob("/usr/lib/python3*/[a-z]*.py"))
    files += sorted(glob.glob("/usr/share/nvim/runtime/lua/vim/*.lua"))
    files = [f for f in files if 2000 < os.path.getsize(f) < 200000]
    cases = []
    while len(cases) < n:
        path = rng.choice(files)
        lines = open(path, encoding="utf-8", errors="replace").read().split("\n")
        i = rng.randrange(20, max(21, len(lines) - 5))
        line = lines[i] if i < len(lines) else ""
        body = line.strip()
        if len(body) < 12 or body.startswith(("#", "--", '"""')):
            continue
        indent = len(line) - len(line.lstrip())
        kind = rng.choice(["mid", "word", "start"])
        if kind in ("mid", "word"):
            # After the first third of the line's text, at a token-ish boundary.
            col = indent + max(1, len(body) // 3)
            while col < len(line) and (line[col].isalnum() or line[col] == "_"):
                col += 1
            if kind == "word":
                # Back into the identifier that ends there: the cursor cuts a word of 4+ letters.
                start = col
                while start > indent and (line[start - 1].isalnum() or line[start - 1] == "_"):
                    start -= 1
                if col - start < 4:
                    continue
                col = start + (col - start) // 2
        else:
            col = indent
        expected = line[col:].rstrip()
        if not expected:
            continue
        cases.append({"path": path, "line": i, "col": col, "kind": kind, "expected": expected})
    return cases


VARIANTS = {"middle": [], "classic": ["--classic-layout"], "noheal": ["--no-token-healing"]}


def run(augury, model, case, flags, threads):
    lines = open(case["path"], encoding="utf-8", errors="replace").read().split("\n")
    # The document as the user sees it: the cursor line cut at the cursor.
    lines[case["line"]] = lines[case["line"]][:case["col"]]
    with tempfile.NamedTemporaryFile("w", suffix=os.path.splitext(case["path"])[1],
                                     delete=False) as f:
        f.write("\n".join(lines))
        tmp = f.name
    cmd = [augury, "complete", "-m", model, "-n", "32", "-t", str(threads),
           "%s:%d:%d" % (tmp, case["line"] + 1, case["col"] + 1)] + flags
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    finally:
        os.unlink(tmp)
    out = p.stdout[:-1] if p.stdout.endswith("\n") else p.stdout
    return out.split("\n")[0].rstrip()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--augury", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--cases", type=int, default=40)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--variants", default="middle,classic,noheal",
                    help="comma-separated: " + ", ".join(VARIANTS))
    ap.add_argument("--out")
    args = ap.parse_args()
    cases = pick_cases(random.Random(args.seed), args.cases)
    variants = [v for v in args.variants.split(",") if v]
    for v in variants:
        if v not in VARIANTS:
            ap.error("unknown variant " + v)
    results = {v: [] for v in variants}
    for c in cases:
        for name in variants:
            first = run(args.augury, args.model, c, VARIANTS[name], args.threads)
            results[name].append({"case": c, "first_line": first, "hit": first == c["expected"]})
    for name, rs in results.items():
        by_kind = {}
        for r in rs:
            k = r["case"]["kind"]
            by_kind.setdefault(k, [0, 0])
            by_kind[k][0] += r["hit"]
            by_kind[k][1] += 1
        total = sum(r["hit"] for r in rs)
        print("%-8s first-line exact %d/%d  %s" % (name, total, len(rs), "  ".join(
            "%s %d/%d" % (k, v[0], v[1]) for k, v in sorted(by_kind.items()))))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
