#!/usr/bin/env python3
"""Pause-to-suggestion latency of `augury lsp` on a recorded editing session, with llama.cpp as the
baseline in the same run.

1. Starts `augury lsp`, waits for the model, opens the session's files and replays its events in
   real time: every keystroke is a didChange plus a typing-triggered (Automatic) inlineCompletion,
   as an editor that asks on every key does; at each pause the latency is the time from the last
   keystroke's request to its reply (server debounce included). The server logs every prompt it
   served (promptLog setting).
2. Shuts it down and times the prompts of the pause requests through llama.cpp (llama-cpp-python,
   which also reuses the longest common prefix with what it evaluated before), greedy, generating
   as many tokens as augury did, on the same thread count.
3. Prints p50/p95 latency and tokens reused vs evaluated per request for both; --out writes every
   figure as JSON.

Run with the peer venv (it has llama_cpp):
  $(scripts/peer-venv)/bin/python tests/bench/latency/bench_latency.py \
      --augury build/augury --model ~/.cache/augury/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
"""
import argparse
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def percentile(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    k = (len(v) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


class Client:
    """A minimal LSP client over the server's stdio."""

    def __init__(self, cmd, env):
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=env)
        self.inbox = queue.Queue()
        self.next_id = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        out = self.proc.stdout
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    self.inbox.put(None)
                    return
                if not line.strip():
                    break
                name, _, value = line.decode().partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            msg = json.loads(out.read(length))
            self.inbox.put((time.monotonic(), msg))

    def send(self, msg):
        body = json.dumps(msg).encode()
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def request(self, method, params):
        self.next_id += 1
        self.send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        return self.next_id

    def notify(self, method, params):
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def wait(self, pred, timeout):
        """Returns (time, msg) of the first message with pred(msg); answers server requests."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no matching message from the server")
            try:
                item = self.inbox.get(timeout=left)
            except queue.Empty:
                continue
            if item is None:
                raise RuntimeError("the server exited")
            t, msg = item
            if "method" in msg and "id" in msg:  # a server request (progress creation, ...)
                self.send({"jsonrpc": "2.0", "id": msg["id"], "result": None})
            if pred(msg):
                return t, msg


def run_augury(args, session, log_path):
    env = dict(os.environ)
    env.pop("AUGURY_MODEL", None)
    client = Client([args.augury, "lsp"], env)
    root = "file:///bench"
    client.request("initialize", {
        "processId": os.getpid(), "rootUri": root,
        "capabilities": {"general": {"positionEncodings": ["utf-8"]},
                         "window": {"workDoneProgress": True}},
        "initializationOptions": {"model": args.model, "threads": args.threads,
                                  "contextSize": args.ctx, "maxTokens": args.max_tokens,
                                  "debounceMs": args.debounce, "promptLog": log_path}})
    client.wait(lambda m: m.get("id") == 1, 30)
    client.notify("initialized", {})
    t0 = time.monotonic()
    while True:  # wait for the model
        rid = client.request("workspace/executeCommand", {"command": "augury.status"})
        _, st = client.wait(lambda m: m.get("id") == rid, 30)
        state = st["result"]["state"]
        if state == "ready":
            break
        if state == "failed":
            raise RuntimeError("model load failed: " + st["result"]["error"])
        time.sleep(0.2)
    load_s = time.monotonic() - t0
    uris = []
    for f in session["files"]:
        uri = f"{root}/{f['name']}"
        uris.append(uri)
        client.notify("textDocument/didOpen", {"textDocument": {
            "uri": uri, "languageId": f["language"], "version": 1, "text": f["text"]}})
    version = 1
    last = None  # (id, sent_at) of the latest completion request
    pauses = []
    replies = {"items": 0, "empty": 0, "superseded": 0, "cancelled": 0}
    for ev in session["events"]:
        if "delay_ms" in ev:
            time.sleep(ev["delay_ms"] / 1000.0)
        if ev["kind"] == "type":
            version += 1
            pos = {"line": ev["line"], "character": ev["character"]}
            client.notify("textDocument/didChange", {
                "textDocument": {"uri": uris[ev["file"]], "version": version},
                "contentChanges": [{"range": {"start": pos, "end": pos}, "text": ev["text"]}]})
            lines = ev["text"].split("\n")
            cur = {"line": ev["line"] + len(lines) - 1,
                   "character": (ev["character"] if len(lines) == 1 else 0) + len(lines[-1])}
            rid = client.request("textDocument/inlineCompletion", {
                "textDocument": {"uri": uris[ev["file"]]}, "position": cur,
                "context": {"triggerKind": 2}})
            last = (rid, time.monotonic())
        elif ev["kind"] == "pause" and last:
            rid, sent = last
            t, msg = client.wait(lambda m: m.get("id") == rid, args.reply_timeout)
            latency = (t - sent) * 1000.0
            rec = {"id": rid, "latency_ms": latency}
            items = msg.get("result", {}).get("items") if "result" in msg else None
            if items:
                d = items[0].get("data", {}).get("stats", {})
                rec.update(text=items[0]["insertText"], reused=d.get("reused"),
                           evaluated=d.get("evaluated"), generated=d.get("generated"),
                           server_ms=d.get("ms"), prompt_tokens=d.get("prompt_tokens"))
            else:
                rec.update(text="", error=msg.get("error"))
            pauses.append(rec)
            print(f"pause {len(pauses)}: request {rid}: {latency:.0f} ms "
                  f"{rec.get('reused', '-')}/{rec.get('evaluated', '-')} {rec.get('text', '')!r:.60}",
                  file=sys.stderr, flush=True)
            left = ev["ms"] / 1000.0 - (time.monotonic() - sent)
            if left > 0:
                time.sleep(left)
            last = None  # answered: a pause right after this one measures nothing new
        elif ev["kind"] == "pause":
            time.sleep(ev["ms"] / 1000.0)
    # Tally every reply the session produced.
    rid = client.request("workspace/executeCommand", {"command": "augury.status"})
    _, st = client.wait(lambda m: m.get("id") == rid, 60)
    client.request("shutdown", None)
    client.notify("exit", None)
    client.proc.wait(timeout=60)
    return {"load_s": load_s, "pauses": pauses, "status": st["result"],
            "requests": client.next_id}


def run_llama(args, pauses, log_path):
    from llama_cpp import Llama
    prompts = {}
    with open(log_path) as f:
        for line in f:
            rec = json.loads(line)
            prompts[rec["id"]] = rec
    llm = Llama(model_path=args.model, n_ctx=args.ctx, n_threads=args.threads,
                n_threads_batch=args.threads, n_batch=512, verbose=False)
    out = []
    for p in pauses:
        rec = prompts.get(p["id"])
        if rec is None:
            continue
        tokens = rec["prompt"]
        n_gen = max(1, rec["generated"])
        resident = list(llm._input_ids)
        common = 0
        for a, b in zip(resident, tokens[:-1]):
            if a != b:
                break
            common += 1
        t0 = time.monotonic()
        got = 0
        for _ in llm.generate(tokens, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, reset=True):
            got += 1
            if got >= n_gen:
                break
        ms = (time.monotonic() - t0) * 1000.0
        out.append({"id": p["id"], "ms": ms, "reused": common, "evaluated": len(tokens) - common,
                    "generated": got})
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--augury", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--session", default=os.path.join(HERE, "session.json"))
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--max-tokens", type=int, default=64)
    ap.add_argument("--debounce", type=int, default=40)
    ap.add_argument("--out", help="write all figures here as JSON")
    ap.add_argument("--limit", type=int, default=0, help="replay only the first N events")
    ap.add_argument("--reply-timeout", type=float, default=600, help="seconds to wait at a pause")
    args = ap.parse_args()
    with open(args.session) as f:
        session = json.load(f)
    if args.limit:
        session["events"] = session["events"][:args.limit]
    log_path = tempfile.mktemp(prefix="augury-prompts-", suffix=".jsonl")
    try:
        aug = run_augury(args, session, log_path)
        base = run_llama(args, aug["pauses"], log_path)
    finally:
        if os.path.exists(log_path):
            os.unlink(log_path)
    served = [p for p in aug["pauses"] if p.get("reused") is not None]
    lat = [p["latency_ms"] for p in aug["pauses"]]
    srv = [p["server_ms"] for p in served]
    bms = [b["ms"] for b in base]
    summary = {
        "model": os.path.basename(args.model), "threads": args.threads, "ctx": args.ctx,
        "max_tokens": args.max_tokens, "debounce_ms": args.debounce,
        "keystrokes": sum(e["kind"] == "type" for e in session["events"]),
        "pauses": len(aug["pauses"]), "pauses_with_suggestion": len(served),
        "requests": aug["requests"], "load_s": round(aug["load_s"], 2),
        "augury": {
            "latency_p50_ms": round(percentile(lat, 50), 1),
            "latency_p95_ms": round(percentile(lat, 95), 1),
            "server_p50_ms": round(percentile(srv, 50), 1),
            "mean_reused": round(statistics.mean(p["reused"] for p in served), 1) if served else 0,
            "mean_evaluated": round(statistics.mean(p["evaluated"] for p in served), 1) if served else 0,
            "mean_generated": round(statistics.mean(p["generated"] for p in served), 1) if served else 0,
        },
        "llama_cpp": {
            "latency_p50_ms": round(percentile(bms, 50), 1),
            "latency_p95_ms": round(percentile(bms, 95), 1),
            "mean_reused": round(statistics.mean(b["reused"] for b in base), 1) if base else 0,
            "mean_evaluated": round(statistics.mean(b["evaluated"] for b in base), 1) if base else 0,
        },
        "server_status": aug["status"],
    }
    print(f"session: {summary['keystrokes']} keystrokes, {summary['pauses']} pauses "
          f"({summary['pauses_with_suggestion']} with a suggestion), model {summary['model']}, "
          f"{args.threads} threads")
    a, b = summary["augury"], summary["llama_cpp"]
    print(f"augury    pause->suggestion p50 {a['latency_p50_ms']:.0f} ms  p95 {a['latency_p95_ms']:.0f} ms"
          f"  | per request: {a['mean_reused']:.0f} reused, {a['mean_evaluated']:.0f} evaluated,"
          f" {a['mean_generated']:.1f} generated")
    print(f"llama.cpp same prompts        p50 {b['latency_p50_ms']:.0f} ms  p95 {b['latency_p95_ms']:.0f} ms"
          f"  | per request: {b['mean_reused']:.0f} reused, {b['mean_evaluated']:.0f} evaluated")
    print("per pause (id: latency ms, reused/evaluated; llama.cpp ms, reused/evaluated):")
    by_id = {b["id"]: b for b in base}
    for p in aug["pauses"]:
        q = by_id.get(p["id"], {})
        print(f"  {p['id']:5d}: {p['latency_ms']:7.0f}  {p.get('reused', '-')}/{p.get('evaluated', '-')}"
              f"   {q.get('ms', float('nan')):7.0f}  {q.get('reused', '-')}/{q.get('evaluated', '-')}"
              f"   {json.dumps(p.get('text', ''))[:60]}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"summary": summary, "pauses": aug["pauses"], "llama_cpp": base}, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
