#!/usr/bin/env python3
"""Completion quality on the cases of make_cases.py (issue 11), as an editor gets it.

Systems, each on every case, the same model and threads:
  augury          `augury lsp` with its defaults (context providers and the syntax check on)
  augury-nocontext  the same with contextTokens 0 (no context pieces in the prompt)
  augury-nosyntax   the same with syntaxCheck false (candidates not checked against the parse)
  llama-vim       llama.vim's prompt through llama-server's /infill (scripts/llama-server, the
                  pinned llama.cpp): 256 lines above the cursor line as input_prefix, the cursor
                  line up to the cursor as prompt, the rest of it and 64 lines below as
                  input_suffix, n_indent, greedy (top_k 1), n_predict 128
For augury the workspace root is the case's folder (its project), one server per folder, whose
index scan is waited for (--no-workspace: no root, no index); a case is then one session: the
case's `open` files are opened first (cross-file cases need them), then the file with the
expected text cut out (which replaces the file's text on disk in the index), and an invoked
inlineCompletion at the cursor; everything is closed after.

Figures per language and kind, and overall:
  exact   the suggestion's first line equals the expected text's first line (trailing blanks
          ignored)
  edit    edit similarity (difflib ratio) of the suggestion cut to the expected text's line count
  broke   of the cases whose document at the request parses (no ERROR or MISSING node), those the
          suggestion leaves not parsing (tree-sitter, build/quality_parse_check)

  cmake --build build --target quality_parse_check
  tests/bench/quality/run_quality.py --augury build/augury --model M [--threads 2] \
      [--systems augury,augury-nocontext,llama-vim] [--per-kind N] [--kinds K,..] \
      [--languages L,..] [--prompt-budget-ms MS] [--no-workspace] \
      [--out r.json]
"""
import argparse
import difflib
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "bench", "latency"))
import make_cases  # noqa: E402
from bench_latency import Client, LlamaServer, augury_options  # noqa: E402

LANGUAGE_IDS = {"tsx": "typescriptreact"}
AUGURY_SYSTEMS = {
    "augury": {},
    "augury-nocontext": {"contextTokens": 0},
    "augury-nosyntax": {"syntaxCheck": False},
}


def load_cases(path, roots, per_kind, kinds, languages=None):
    cases, skipped, taken = [], 0, {}
    for line in open(path):
        c = json.loads(line)
        key = (c["language"], c["kind"])
        if (kinds and c["kind"] not in kinds) or (languages and c["language"] not in languages) \
                or (per_kind and taken.get(key, 0) >= per_kind):
            continue
        files = [c] + c.get("open", [])
        texts = []
        for f in files:
            if f["root"] not in roots:
                break
            full = os.path.join(roots[f["root"]][0], f["path"])
            try:
                texts.append((full, open(full, "rb").read()))
            except OSError:
                break
        if len(texts) != len(files) or make_cases.hashlib.sha256(texts[0][1]).hexdigest() != c["sha256"]:
            skipped += 1
            continue
        data = texts[0][1]
        c["doc"] = data[:c["offset"]] + data[c["offset"] + c["remove"]:]
        c["abs"] = texts[0][0]
        c["opened"] = texts[1:]
        taken[key] = taken.get(key, 0) + 1
        cases.append(c)
    return cases, skipped


def position(doc, offset):
    """LSP position (utf-8 columns) of a byte offset."""
    line = doc.count(b"\n", 0, offset)
    start = doc.rfind(b"\n", 0, offset) + 1
    return {"line": line, "character": offset - start}


def offset_of(doc, pos):
    lines = doc.split(b"\n")
    return sum(len(l) + 1 for l in lines[:pos["line"]]) + pos["character"]


def language_id(path):
    lang = make_cases.language_of(path)
    return LANGUAGE_IDS.get(lang, lang)


# --- augury ------------------------------------------------------------------------------------


def status(client):
    rid = client.request("workspace/executeCommand", {"command": "augury.status"})
    _, st = client.wait(lambda m: m.get("id") == rid, 60)
    return st["result"]


def start_augury(args, name, root):
    """A server for one workspace root (None: no root, so no workspace index), its model loaded
    and its index scanned, as an editor finds it once it has been open a while."""
    env = dict(os.environ)
    env.pop("AUGURY_MODEL", None)
    client = Client([args.augury, "lsp"], env)
    try:
        client.request("initialize", {
            "processId": os.getpid(), "rootUri": "file://" + root if root else None,
            "capabilities": {"general": {"positionEncodings": ["utf-8"]}},
            "initializationOptions": {"model": args.model, "threads": args.threads,
                                      "contextSize": args.ctx, "maxTokens": args.max_tokens,
                                      "timeBudgetMs": args.time_budget_ms,
                                      "promptBudgetMs": args.prompt_budget_ms,
                                      **augury_options(args), **AUGURY_SYSTEMS[name]}})
        client.wait(lambda m: m.get("id") == 1, 30)
        client.notify("initialized", {})
        deadline = time.monotonic() + args.index_timeout
        while True:
            st = status(client)
            if st["state"] == "failed":
                raise RuntimeError("model load failed: " + st["error"])
            index = st.get("index") or {}
            scanned = not index.get("enabled") or (not index.get("scanning")
                                                   and not index.get("pending"))
            if st["state"] == "ready" and (scanned or time.monotonic() > deadline):
                return client, index
            time.sleep(0.2)
    except BaseException:
        stop_augury(client)
        raise


def stop_augury(client):
    try:
        if client.proc.poll() is None:
            client.request("shutdown", None)
            client.notify("exit", None)
            client.proc.wait(timeout=60)
    finally:
        if client.proc.poll() is None:
            client.proc.kill()
            client.proc.wait()


def run_augury(args, name, cases):
    """Each case in a server whose workspace root is the case's folder (its project: where the
    cross-file cases' definitions are), one server per folder; --no-workspace: one server with
    no root for all."""
    groups = {}
    for c in cases:
        root = None if args.no_workspace else os.path.dirname(c["abs"])
        groups.setdefault(root, []).append(c)
    out, st, n = [], {}, 0
    for root, group in groups.items():
        client, index = start_augury(args, name, root)
        if index.get("enabled"):
            print(f"  {name}: workspace {root}: {index.get('files')} files, "
                  f"{index.get('definitions')} definitions, {index.get('scanMs', 0):.0f} ms",
                  file=sys.stderr, flush=True)
        try:
            for c in group:
                n += 1
                out.append(run_case(args, client, c))
                r = out[-1]
                print(f"  {name} {n}/{len(cases)} {c['id']}: {r['ms']:.0f} ms {r['text']!r:.60}",
                      file=sys.stderr, flush=True)
            st = status(client)
        finally:
            stop_augury(client)
    return out, st


def run_case(args, client, c):
    uris = []
    for path, text in c["opened"] + [(c["abs"], c["doc"])]:
        uri = "file://" + path
        uris.append(uri)
        client.notify("textDocument/didOpen", {"textDocument": {
            "uri": uri, "languageId": language_id(path), "version": 1,
            "text": text.decode("utf-8", "replace")}})
    # A user looks at a file before asking in it: the server compiles the language's queries
    # meanwhile (from didOpen), which a request at once would not find ready.
    time.sleep(args.open_delay)
    pos = position(c["doc"], c["offset"])
    t0 = time.monotonic()
    rid = client.request("textDocument/inlineCompletion", {
        "textDocument": {"uri": uris[-1]}, "position": pos,
        "context": {"triggerKind": 1}})
    _, msg = client.wait(lambda m: m.get("id") == rid, args.reply_timeout)
    ms = (time.monotonic() - t0) * 1000.0
    items = (msg.get("result") or {}).get("items") or []
    text, start, end = "", c["offset"], c["offset"]
    data = {}
    if items:
        text = items[0]["insertText"]
        data = items[0].get("data", {})
        rng = items[0].get("range")
        if rng:
            start, end = offset_of(c["doc"], rng["start"]), offset_of(c["doc"], rng["end"])
        # The text is what goes at the range; the part before the cursor is typed already.
        typed = c["doc"][start:c["offset"]].decode("utf-8", "replace")
        if text.startswith(typed):
            text = text[len(typed):]
    for uri in uris:
        client.notify("textDocument/didClose", {"textDocument": {"uri": uri}})
    return {"id": c["id"], "text": text, "ms": ms, "replace_end": end,
            "syntax": data.get("syntax"), "stats": data.get("stats", {})}


# --- llama.vim's prompt through llama-server ---------------------------------------------------


def llama_vim_body(c):
    doc = c["doc"].decode("utf-8", "replace")
    cur = c["doc"][:c["offset"]].decode("utf-8", "replace")
    lines = doc.split("\n")
    y = cur.count("\n")
    x = len(cur) - (cur.rfind("\n") + 1)
    line = lines[y]
    prefix = "".join(l + "\n" for l in lines[max(0, y - 256):y])
    suffix = line[x:] + "\n" + "".join(l + "\n" for l in lines[y + 1:y + 1 + 64])
    indent = len(line) - len(line.lstrip(" \t"))
    return {"id_slot": 0, "input_prefix": prefix, "prompt": line[:x], "input_suffix": suffix,
            "input_extra": [], "n_predict": 128, "n_indent": indent, "top_k": 1,
            "samplers": ["top_k"], "stream": False, "cache_prompt": True,
            "response_fields": ["content"]}


def run_llama_vim(args, cases):
    binary = args.llama_server or subprocess.run(
        [os.path.join(ROOT, "scripts", "llama-server")], check=True, capture_output=True,
        text=True).stdout.strip().split("\n")[-1]
    server = LlamaServer(binary, args.model, args.threads, args.ctx)
    out = []
    try:
        server.wait_healthy(300)
        for n, c in enumerate(cases):
            t0 = time.monotonic()
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=args.reply_timeout)
            conn.request("POST", "/infill", body=json.dumps(llama_vim_body(c)),
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            reply = json.loads(resp.read())
            conn.close()
            text = reply.get("content", "") if resp.status == 200 else ""
            out.append({"id": c["id"], "text": text, "ms": (time.monotonic() - t0) * 1000.0,
                        "replace_end": c["offset"]})
            print(f"  llama-vim {n + 1}/{len(cases)} {c['id']}: {text!r:.60}", file=sys.stderr,
                  flush=True)
    finally:
        server.stop()
    return out, {}


# --- figures -----------------------------------------------------------------------------------


class ParseCheck:
    def __init__(self, binary):
        self.proc = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True)
        self.dir = tempfile.TemporaryDirectory(prefix="augury-quality-")

    def errors(self, path_like, data):
        path = os.path.join(self.dir.name, "doc" + os.path.splitext(path_like)[1])
        with open(path, "wb") as f:
            f.write(data)
        self.proc.stdin.write(path + "\n")
        self.proc.stdin.flush()
        answer = self.proc.stdout.readline().strip()
        return None if answer in ("", "-") else int(answer)

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()
        self.dir.cleanup()


def first_line(s):
    return s.split("\n", 1)[0].rstrip()


def score(c, r, parse):
    exp = c["expected"]
    sug = r["text"]
    cut = "\n".join(sug.split("\n")[:exp.count("\n") + 1])
    rec = {"exact": bool(sug.strip()) and first_line(sug) == first_line(exp),
           "edit": difflib.SequenceMatcher(None, cut, exp).ratio()}
    if parse:
        if "before" not in c:
            c["before"] = parse.errors(c["path"], c["doc"])
        after = parse.errors(c["path"], c["doc"][:c["offset"]] + sug.encode("utf-8") +
                             c["doc"][r["replace_end"]:])
        rec["parsed"] = c["before"] == 0
        rec["broke"] = c["before"] == 0 and after is not None and after > 0
    return rec


def table(cases, results, systems):
    groups = {}
    for c in cases:
        for key in ((c["language"], c["kind"]), ("all", c["kind"]), ("all", "all")):
            groups.setdefault(key, []).append(c["id"])
    lines = ["%-24s %5s  " % ("language/kind", "cases") +
             "  ".join("%-26s" % s for s in systems),
             "%-24s %5s  " % ("", "") + "  ".join("%-26s" % "exact  edit  broke/parsed" for _ in systems)]
    summary = {}
    for key in sorted(groups, key=lambda k: (k[0] == "all", k)):
        ids = groups[key]
        cells = []
        for s in systems:
            recs = [results[s][i] for i in ids if i in results[s]]
            exact = sum(r["exact"] for r in recs)
            edit = sum(r["edit"] for r in recs) / len(recs) if recs else 0
            parsed = sum(r.get("parsed", False) for r in recs)
            broke = sum(r.get("broke", False) for r in recs)
            summary.setdefault(s, {})["/".join(key)] = {
                "cases": len(recs), "exact": exact, "exact_pct": 100.0 * exact / max(1, len(recs)),
                "edit": edit, "parsed": parsed, "broke": broke}
            cells.append("%3d %5.1f%%  %.3f  %2d/%-3d" % (exact, 100.0 * exact / max(1, len(recs)),
                                                          edit, broke, parsed))
        lines.append("%-24s %5d  " % ("/".join(key), len(ids)) + "  ".join("%-26s" % x for x in cells))
    return "\n".join(lines), summary


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--augury", default=os.path.join(ROOT, "build", "augury"))
    ap.add_argument("--model", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--time-budget-ms", type=float, default=60000,
                    help="augury's timeBudgetMs: generous, quality is measured, not latency")
    ap.add_argument("--prompt-budget-ms", type=float, default=0,
                    help="augury's promptBudgetMs (default 0: the whole window is evaluated, as "
                    "once it is resident and as llama-vim's; the server's 750 ms cuts the far "
                    "prefix of a cold window, a latency choice: set it to measure that cut)")
    ap.add_argument("--cases", default=os.path.join(HERE, "cases.jsonl"))
    ap.add_argument("--per-kind", type=int, default=0, help="at most N cases per language and kind")
    ap.add_argument("--kinds", help="only these kinds (comma-separated: line,mid,multi,cross)")
    ap.add_argument("--languages", help="only these languages (comma-separated: go,rust)")
    ap.add_argument("--systems", default="augury,augury-nocontext,llama-vim")
    ap.add_argument("--llama-server", help="llama-server binary (default: scripts/llama-server)")
    ap.add_argument("--parse-check", default=os.path.join(ROOT, "build", "quality_parse_check"))
    ap.add_argument("--reply-timeout", type=float, default=300)
    ap.add_argument("--no-workspace", action="store_true",
                    help="no workspace root (so no workspace index): the open files only")
    ap.add_argument("--open-delay", type=float, default=0.5,
                    help="seconds between opening a case's files and the request")
    ap.add_argument("--index-timeout", type=float, default=120,
                    help="seconds to wait for a workspace's index scan before the cases")
    ap.add_argument("--augury-option", action="append", metavar="KEY=VALUE",
                    help="an extra setting for every augury system, e.g. suffixLines=64 (repeatable)")
    ap.add_argument("--out", help="write cases, suggestions and figures as JSON")
    args = ap.parse_args()

    systems = args.systems.split(",")
    for s in systems:
        if s not in AUGURY_SYSTEMS and s != "llama-vim":
            ap.error("unknown system " + s)
    cases, skipped = load_cases(args.cases, make_cases.default_roots(), args.per_kind,
                                 args.kinds.split(",") if args.kinds else None,
                                 args.languages.split(",") if args.languages else None)
    print(f"run_quality: {len(cases)} cases ({skipped} left out: root missing or file changed)",
          file=sys.stderr)
    parse = ParseCheck(args.parse_check) if os.path.exists(args.parse_check) else None
    if not parse:
        print(f"run_quality: no {args.parse_check}: parse figures left out", file=sys.stderr)
    results, statuses, raw = {}, {}, {}
    by_id = {c["id"]: c for c in cases}
    for s in systems:
        t0 = time.monotonic()
        recs, status = run_llama_vim(args, cases) if s == "llama-vim" else run_augury(args, s, cases)
        statuses[s] = status
        raw[s] = recs
        results[s] = {r["id"]: dict(r, **score(by_id[r["id"]], r, parse)) for r in recs}
        print(f"run_quality: {s}: {time.monotonic() - t0:.0f} s", file=sys.stderr)
    if parse:
        parse.close()
    text, summary = table(cases, results, systems)
    model = os.path.basename(args.model)
    options = augury_options(args)
    print(f"{len(cases)} cases, model {model}, {args.threads} threads, augury promptBudgetMs "
          f"{args.prompt_budget_ms:g}" + "".join(f", {k} {v}" for k, v in options.items()))
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"model": model, "threads": args.threads, "systems": systems,
                       "prompt_budget_ms": args.prompt_budget_ms, "augury_options": options,
                       "summary": summary, "status": statuses,
                       "results": {s: list(results[s].values()) for s in systems},
                       "cases": [{k: v for k, v in c.items() if k not in ("doc", "opened")}
                                 for c in cases]}, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
