#!/usr/bin/env python3
"""Prompt-lookup decoding on real code: the same completions with and without drafts.

For cursors spread over source files this project did not write (tests/bench/latency/sources:
CPython's textwrap.py, MarkupSafe's _speedups.c), runs `augury complete` once with --draft 0 and
once with --draft N (no time budget, so both stop by the same rules), and prints per cursor and in
all: whether the text is identical (it must be: verification is exact), tokens drafted and
accepted (the acceptance rate), and the generation time of each, whose ratio is the speed-up.
Each run completes twice on the resident model (--repeat 2) and the second one is timed, so the
prompt is resident and only generation differs.

  python3 tests/bench/latency/bench_lookup.py --augury build/augury \
      --model $(scripts/get-model default --print-path) --threads 2 --draft 8
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
STATS = re.compile(r"generated: (\d+) tokens ([\d.]+) ms \((\d+) drafted, (\d+) accepted\)")


def cursors(path, count):
    """(line, col) 1-based: the start of code lines (after the indentation), spread over the file."""
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    code = [i for i, l in enumerate(lines) if len(l.strip()) >= 12 and not l.strip().startswith(("#", "/*", "*", '"'))]
    step = max(1, len(code) // count)
    out = []
    for i in code[step // 2::step][:count]:
        text = lines[i]
        indent = len(text) - len(text.lstrip())
        out.append((i + 1, indent + 1))  # the line's code is what the model writes
    return out


def complete(args, target, draft):
    """The document as the user sees it there: the cursor line cut at the cursor (the model then
    writes the rest of the line and what follows, as at a pause)."""
    path, line, col = target.rsplit(":", 2)
    with open(path, encoding="utf-8") as f:
        lines = f.read().split("\n")
    lines[int(line) - 1] = lines[int(line) - 1][:int(col) - 1]
    with tempfile.NamedTemporaryFile("w", suffix=os.path.splitext(path)[1], delete=False) as f:
        f.write("\n".join(lines))
        tmp = f.name
    cmd = [args.augury, "complete", "-m", args.model, "-t", str(args.threads), "-n",
           str(args.max_tokens), "--time-budget", "0", "--draft", str(draft), "-r", "2",
           f"{tmp}:{line}:{col}"]
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=True)
    finally:
        os.unlink(tmp)
    timed = [m for m in STATS.finditer(p.stderr)][-1]
    return {"text": p.stdout, "generated": int(timed[1]), "ms": float(timed[2]),
            "drafted": int(timed[3]), "accepted": int(timed[4])}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--augury", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--draft", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--per-file", type=int, default=8, help="cursors per source file")
    ap.add_argument("--out", help="write the figures here as JSON")
    args = ap.parse_args()
    sources = [os.path.join(HERE, "sources", n) for n in ("textwrap.py", "_speedups.c")]
    rows = []
    for src in sources:
        for line, col in cursors(src, args.per_file):
            target = f"{src}:{line}:{col}"
            plain = complete(args, target, 0)
            drafts = complete(args, target, args.draft)
            row = {"target": f"{os.path.basename(src)}:{line}:{col}", "identical": plain["text"] == drafts["text"],
                   "generated": plain["generated"], "drafted": drafts["drafted"],
                   "accepted": drafts["accepted"], "plain_ms": plain["ms"], "draft_ms": drafts["ms"]}
            rows.append(row)
            print(f"{row['target']:24s} {'same' if row['identical'] else 'DIFFERENT'} "
                  f"{row['generated']:3d} tokens, {row['accepted']:3d}/{row['drafted']:3d} accepted, "
                  f"{row['plain_ms']:7.0f} -> {row['draft_ms']:7.0f} ms", flush=True)
    gen = sum(r["generated"] for r in rows)
    drafted = sum(r["drafted"] for r in rows)
    accepted = sum(r["accepted"] for r in rows)
    plain_ms = sum(r["plain_ms"] for r in rows)
    draft_ms = sum(r["draft_ms"] for r in rows)
    summary = {"cursors": len(rows), "identical": sum(r["identical"] for r in rows), "generated": gen,
               "drafted": drafted, "accepted": accepted,
               "acceptance": round(accepted / drafted, 3) if drafted else None,
               "plain_ms_per_token": round(plain_ms / gen, 1) if gen else None,
               "draft_ms_per_token": round(draft_ms / gen, 1) if gen else None,
               "speedup": round(plain_ms / draft_ms, 3) if draft_ms else None,
               "median_speedup": round(statistics.median(r["plain_ms"] / r["draft_ms"] for r in rows if r["draft_ms"]), 3)}
    print(f"{summary['identical']}/{summary['cursors']} identical; {accepted}/{drafted} drafts accepted "
          f"({summary['acceptance']}); generation {summary['plain_ms_per_token']} -> "
          f"{summary['draft_ms_per_token']} ms/token: {summary['speedup']}x in all, median "
          f"{summary['median_speedup']}x per cursor (draft {args.draft}, {args.threads} threads)")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"draft": args.draft, "threads": args.threads, "model": os.path.basename(args.model),
                       "summary": summary, "rows": rows}, f, indent=1)
            f.write("\n")
    return 0 if summary["identical"] == summary["cursors"] else 1


if __name__ == "__main__":
    sys.exit(main())
