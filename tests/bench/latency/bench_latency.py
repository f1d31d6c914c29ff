#!/usr/bin/env python3
"""Pause-to-suggestion latency and hits of `augury lsp` on recorded editing sessions, with the anchor
users actually pick, llama-server driven as llama.vim drives it, in the same run.

For each session (--session, repeatable; default: session.json and session-stdlib.json):

1. augury: starts `augury lsp`, waits for the model, opens the session's files and replays its
   events in real time: every keystroke is a didChange plus a typing-triggered (Automatic)
   inlineCompletion, as an editor that asks on every key does; at each pause the latency is the
   time from the last keystroke's request to its reply (server debounce included). The server logs
   every prompt it served (promptLog setting).
2. llama.vim: starts llama-server as llama.vim's README recommends (-ub 1024 -b 1024
   --cache-reuse 256, the same -t and -c as augury, 127.0.0.1 only) and replays the same events
   through a client that behaves as llama.vim's autoload/llama.vim (auto_fim, no extra-context ring):
   on every cursor move it first tries its cache (the exact context, or a context up to 128
   characters back whose cached completion starts with what was typed since), then asks /infill,
   one request in flight at a time, a newer state retrying on a 100 ms timer; a shown suggestion
   starts a speculative request for the context as if it were accepted. The latency at a pause is
   from its last keystroke to when the client has a suggestion to show (or knows it has none).
3. same prompts: times the prompts of augury's pause requests through llama.cpp (llama-cpp-python,
   which also reuses the longest common prefix with what it evaluated before), greedy, generating
   as many tokens as augury did, on the same thread count. Needs the peer venv; a reference for the
   engine alone (same prompt, same length), not a client anyone runs.

A pause is a hit for a system when the suggestion it shows is what the user typed next (the rule is
in `is_hit`). Prints p50/p95 latency, hits and tokens reused vs evaluated per session and overall,
and the ratios augury/llama.vim; --out writes every figure as JSON.

  $(scripts/peer-venv)/bin/python tests/bench/latency/bench_latency.py --augury build/augury \\
      --model ~/.cache/augury/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf --threads 2
"""
import argparse
import collections
import http.client
import json
import os
import queue
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", "..", ".."))
SYSTEMS = ("augury", "llama-vim", "same-prompts")


def percentile(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    k = (len(v) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)


# --- The session: documents, cursor, what the user typed next --------------------------------


def apply_type(lines, ev):
    """Inserts a type event's text into lines (a list of str); returns the cursor after it."""
    line, col, text = ev["line"], ev["character"], ev["text"]
    cur = lines[line]
    parts = text.split("\n")
    if len(parts) == 1:
        lines[line] = cur[:col] + text + cur[col:]
        return line, col + len(text)
    rest = cur[col:]
    lines[line] = cur[:col] + parts[0]
    lines[line + 1:line + 1] = parts[1:-1] + [parts[-1] + rest]
    return line + len(parts) - 1, len(parts[-1])


def measured_pauses(events):
    """Indices of the pause events that follow a keystroke (a pause right after another pause, or
    after only a jump, measures nothing new); the same set for every system."""
    out, typed = [], False
    for i, ev in enumerate(events):
        if ev["kind"] == "type":
            typed = True
        elif ev["kind"] == "pause" and typed:
            out.append(i)
            typed = False
    return out


def pause_targets(session):
    """For every measured pause: the text the user typed next from the cursor to the end of that
    line, and the next non-blank line after it, both as they are in the final text (the session's
    typing rebuilds the files, so the final text is the replayed text at the end)."""
    events = session["events"]
    docs = [f["text"].split("\n") for f in session["files"]]
    anchors = {}  # pause event index -> [file, offset of the cursor in that file's text]
    cursor = None
    for i, ev in enumerate(events):
        if ev["kind"] == "type":
            lines = docs[ev["file"]]
            at = sum(len(l) + 1 for l in lines[:ev["line"]]) + ev["character"]
            for a in anchors.values():  # text inserted before a cursor moves it; at it, not
                if a[0] == ev["file"] and at < a[1]:
                    a[1] += len(ev["text"])
            line, col = apply_type(lines, ev)
            cursor = (ev["file"], line, col)
        elif ev["kind"] == "pause" and cursor:
            f, line, col = cursor
            anchors[i] = [f, sum(len(l) + 1 for l in docs[f][:line]) + col]
    out = {}
    final = ["\n".join(d) for d in docs]
    for i in measured_pauses(events):
        if i not in anchors:
            continue
        f, at = anchors[i]
        text = final[f]
        end = text.find("\n", at)
        end = len(text) if end < 0 else end
        rest = text[at:end]
        following = [l for l in text[end + 1:].split("\n") if l.strip()] if end < len(text) else []
        out[i] = {"file": f, "rest": rest, "next_line": following[0] if following else None}
    return out


def is_hit(suggestion, target):
    """The pause's hit rule, the same for every system. `suggestion` is the text the client shows
    at the cursor (what accepting it would insert). Trailing whitespace is ignored everywhere.
    - Text follows the cursor on its line in the final file: a hit when the suggestion's first line
      is exactly that text (so it is non-empty).
    - The cursor is at the end of its line in the final file (the user types a line break next): a
      hit when the suggestion's first line is blank and its first non-blank line is the file's next
      non-blank line, indentation included (blank lines in between are not counted)."""
    if not suggestion or target is None:
        return False
    lines = suggestion.split("\n")
    rest = target["rest"].rstrip()
    if rest:
        return lines[0].rstrip() == rest
    if lines[0].strip() or target["next_line"] is None:
        return False
    nonblank = [l for l in lines[1:] if l.strip()]
    return bool(nonblank) and nonblank[0].rstrip() == target["next_line"].rstrip()


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



# --- augury lsp -------------------------------------------------------------------------------


def augury_options(args):
    """--augury-option KEY=VALUE settings (JSON values: 0, false, "x"), for with/without runs."""
    out = {}
    for kv in args.augury_option or []:
        key, _, value = kv.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def run_augury(args, session, log_path):
    env = dict(os.environ)
    env.pop("AUGURY_MODEL", None)
    client = Client([args.augury, "lsp"], env)
    try:
        return drive_augury(args, session, log_path, client)
    finally:
        if client.proc.poll() is None:
            client.proc.kill()
            client.proc.wait()


def drive_augury(args, session, log_path, client):
    root = "file:///bench"
    client.request("initialize", {
        "processId": os.getpid(), "rootUri": root,
        "capabilities": {"general": {"positionEncodings": ["utf-8"]},
                         "window": {"workDoneProgress": True}},
        "initializationOptions": {"model": args.model, "threads": args.threads,
                                  "contextSize": args.ctx, "maxTokens": args.max_tokens,
                                  "debounceMs": args.debounce, "promptLog": log_path,
                                  **augury_options(args)}})
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
    for i, ev in enumerate(session["events"]):
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
            rec = {"event": i, "id": rid, "latency_ms": latency}
            items = msg.get("result", {}).get("items") if "result" in msg else None
            if items:
                d = items[0].get("data", {}).get("stats", {})
                rec.update(text=items[0]["insertText"], reused=d.get("reused"),
                           shifted=d.get("shifted"), restored=d.get("restored"),
                           evaluated=d.get("evaluated"), generated=d.get("generated"),
                           server_ms=d.get("ms"), prompt_tokens=d.get("prompt_tokens"),
                           cached=d.get("cached"), speculative=d.get("speculative"))
            else:
                rec.update(text="", error=msg.get("error"))
            pauses.append(rec)
            print(f"  augury pause {len(pauses)}: request {rid}: {latency:.0f} ms "
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


# --- llama-server driven as llama.vim drives it ---------------------------------------------


class LlamaServer:
    """llama-server on 127.0.0.1 with llama.vim's recommended batch and cache-reuse settings and
    augury's thread count and context; stopped (killed if it must be) by stop()."""

    def __init__(self, binary, model, threads, ctx):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.log = tempfile.NamedTemporaryFile(prefix="llama-server-", suffix=".log", delete=False)
        self.cmd = [binary, "-m", model, "--host", "127.0.0.1", "--port", str(self.port),
                    "-t", str(threads), "-c", str(ctx), "-ub", "1024", "-b", "1024",
                    "--cache-reuse", "256"]
        self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT)

    def wait_healthy(self, timeout):
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"llama-server exited ({self.proc.returncode}): {self.tail()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/health")
                status = conn.getresponse().status
                conn.close()
                if status == 200:
                    return time.monotonic() - t0
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"llama-server not healthy after {timeout} s: {self.tail()}")

    def tail(self):
        with open(self.log.name, errors="replace") as f:
            return f.read()[-2000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        os.unlink(self.log.name)


def is_blank(s):
    return s.strip(" \t") == ""  # Vim's '^\s*$'


class LlamaVimClient:
    """The parts of llama.vim's autoload/llama.vim that decide what is asked and what is shown,
    with auto_fim on and the extra-context ring off (input_extra stays []): fim_ctx_local, llama#fim
    (one job, the 100 ms retry timer, the 250 ms first / 1000 ms speculative predict budgets, the
    hashes of the context with 0-3 leading prefix lines dropped), s:fim_try_hint (exact hit, else
    the best cached context up to 128 characters back whose completion starts with what was typed
    since), s:fim_render (its rules for dropping suggestions that repeat the text around the
    cursor) and the 250-entry LRU cache. Single-threaded like Vim: requests run on a worker thread
    (curl's job) and their replies are handled by the replay loop (Vim's callbacks)."""

    N_PREFIX, N_SUFFIX, N_PREDICT = 256, 64, 128
    T_MAX_PROMPT_MS, T_MAX_PREDICT_MS, T_FIRST_PREDICT_MS = 500, 1000, 250
    MAX_LINE_SUFFIX, MAX_CACHE_KEYS, RETRY_MS, LOOK_BACK = 8, 250, 100, 128

    def __init__(self, port, files, timeout):
        self.port = port
        self.timeout = timeout
        self.docs = [f["text"].split("\n") for f in files]
        self.cur = (0, 0, 0)  # file, line (0-based), column
        self.cache = collections.OrderedDict()  # (prefix + middle, suffix) -> content
        self.job = None  # the request in flight: {"keys", "key", "sent", "speculative"}
        self.timer = None  # (due, pos_x, pos_y, prev) of the retry timer
        self.hint = None  # what s:fim_render last showed: {"text", "can_accept"}
        self.indent_last = -1
        self.replies = queue.Queue()
        self.requests = []  # every request sent, with its reply's figures
        self.answer = None  # (time, shown text, how) for the current cursor state

    # -- the cache (s:cache_insert / s:cache_get)
    def cache_insert(self, key, value):
        if key not in self.cache and len(self.cache) > self.MAX_CACHE_KEYS - 1:
            self.cache.popitem(last=False)
        self.cache[key] = value
        self.cache.move_to_end(key)

    def cache_get(self, key):
        if key not in self.cache:
            return None
        self.cache.move_to_end(key)
        return self.cache[key]

    # -- s:fim_ctx_local
    def ctx_local(self, pos_x, pos_y, prev):
        lines = self.docs[self.cur[0]]
        getline = lambda y: lines[y] if 0 <= y < len(lines) else ""  # Vim's getline()
        suffix_lines = lines[pos_y + 1:pos_y + 1 + self.N_SUFFIX]
        if not prev:
            line_cur = getline(pos_y)
            lcp, lcs = line_cur[:pos_x], line_cur[pos_x:]
            prefix_lines = lines[max(0, pos_y - self.N_PREFIX):pos_y]
            if is_blank(line_cur):  # start from the beginning of the line
                indent, lcp, lcs = 0, "", ""
            else:
                indent = len(line_cur) - len(line_cur.lstrip(" \t"))
        else:  # as if the previous suggestion had been accepted
            line_cur = getline(pos_y) + prev[0] if len(prev) == 1 else prev[-1]
            lcp, lcs = line_cur, ""
            prefix_lines = lines[max(0, pos_y - self.N_PREFIX + len(prev) - 1):pos_y]
            if len(prev) > 1:
                prefix_lines = prefix_lines + [getline(pos_y) + prev[0]] + prev[1:-1]
            indent = self.indent_last
        return {"prefix": "\n".join(prefix_lines) + "\n", "middle": lcp,
                "suffix": lcs + "\n" + "\n".join(suffix_lines) + "\n", "indent": indent,
                "line_cur_suffix": lcs}

    @staticmethod
    def key(ctx):
        return (ctx["prefix"] + ctx["middle"], ctx["suffix"])

    def current_key(self):
        _, y, x = self.cur
        return self.key(self.ctx_local(x, y, []))

    # -- the editor's events
    def on_cursor_moved(self):
        """CursorMovedI: s:on_move (hide, try the cache), then llama#fim(auto)."""
        self.answer = None
        self.hint = None
        _, y, x = self.cur
        self.try_hint(x, y)
        self.fim(-1, -1, [])

    def type(self, ev):
        self.cur = (ev["file"],) + apply_type(self.docs[ev["file"]], ev)
        self.on_cursor_moved()

    def jump(self, ev):
        self.cur = (ev["file"], ev["line"], ev["character"])
        self.on_cursor_moved()

    # -- llama#fim
    def fim(self, pos_x, pos_y, prev):
        if self.job is not None:  # avoid sending repeated requests too fast
            self.timer = (time.monotonic() + self.RETRY_MS / 1000.0, pos_x, pos_y, prev)
            return
        _, y, x = self.cur
        pos_x = x if pos_x < 0 else pos_x
        pos_y = y if pos_y < 0 else pos_y
        ctx = self.ctx_local(pos_x, pos_y, prev)
        if len(ctx["line_cur_suffix"]) > self.MAX_LINE_SUFFIX:  # auto: not mid-line
            return
        keys = [self.key(ctx)]
        prefix_trim = ctx["prefix"]
        for _ in range(3):
            nl = prefix_trim.find("\n")
            prefix_trim = "" if nl < 0 else prefix_trim[nl + 1:]
            if not prefix_trim:
                break
            keys.append((prefix_trim + ctx["middle"], ctx["suffix"]))
        for k in keys:
            if self.cache_get(k) is not None:
                return
        self.indent_last = ctx["indent"]
        body = {
            "id_slot": 0, "input_prefix": ctx["prefix"], "input_suffix": ctx["suffix"],
            "input_extra": [], "prompt": ctx["middle"], "n_predict": self.N_PREDICT, "stop": [],
            "n_indent": ctx["indent"], "top_k": 40, "top_p": 0.90,
            "samplers": ["top_k", "top_p", "infill"], "stream": False, "cache_prompt": True,
            "t_max_prompt_ms": self.T_MAX_PROMPT_MS,
            "t_max_predict_ms": self.T_MAX_PREDICT_MS if prev else self.T_FIRST_PREDICT_MS,
            "response_fields": ["content", "timings/prompt_n", "timings/prompt_ms",
                                "timings/predicted_n", "timings/predicted_ms", "truncated",
                                "tokens_cached"]}
        job = {"keys": keys, "key": keys[0], "sent": time.monotonic(), "speculative": bool(prev)}
        self.job = job
        threading.Thread(target=self._post, args=(job, body), daemon=True).start()

    def _post(self, job, body):
        try:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            conn.request("POST", "/infill", body=json.dumps(body),
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            conn.close()
            reply = json.loads(data) if resp.status == 200 else {"error": data.decode()[:500]}
        except (OSError, ValueError) as e:
            reply = {"error": str(e)}
        self.replies.put((time.monotonic(), job, reply))

    # -- s:fim_on_response, then s:fim_on_exit
    def on_reply(self, t, job, reply):
        rec = {"sent": job["sent"], "ms": (t - job["sent"]) * 1000.0,
               "speculative": job["speculative"], "prompt_n": reply.get("timings/prompt_n"),
               "predicted_n": reply.get("timings/predicted_n"),
               "tokens_cached": reply.get("tokens_cached"), "error": reply.get("error")}
        self.requests.append(rec)
        if "content" in reply:
            for k in job["keys"]:
                self.cache_insert(k, reply["content"])
            if self.hint is None or not self.hint["can_accept"]:
                _, y, x = self.cur
                self.try_hint(x, y, reply=rec)
        if self.answer is None and job["key"] == self.current_key() and not job["speculative"]:
            self.answer = (t, "", "reply (nothing to show)", rec)  # this state's own reply
        self.job = None

    # -- s:fim_try_hint
    def try_hint(self, pos_x, pos_y, reply=None):
        ctx = self.ctx_local(pos_x, pos_y, [])
        pm, suffix = ctx["prefix"] + ctx["middle"], ctx["suffix"]
        raw = self.cache_get((pm, suffix))
        how = "cache"
        if raw is None:
            best = 0
            for i in range(min(self.LOOK_BACK, len(pm))):
                cached = self.cache_get((pm[:-(1 + i)], suffix))
                if not cached or cached[:i + 1] != pm[-(1 + i):]:
                    continue
                content = cached[i + 1:]
                if content:
                    if raw is None:
                        raw = content
                    elif len(content) > best:  # (llama.vim leaves best at 0 for the first)
                        best, raw = len(content), content
            how = "cache (typed through)"
        if raw is not None:
            if reply is not None:
                how = "reply"
            self.render(pos_x, pos_y, raw, how, reply)
            if self.hint is not None:  # speculative FIM as if the suggestion were accepted
                self.fim(pos_x, pos_y, self.hint["content"])

    # -- s:fim_render
    def render(self, pos_x, pos_y, raw, how, reply):
        lines = self.docs[self.cur[0]]
        getline = lambda y: lines[y] if 0 <= y < len(lines) else ""  # Vim's getline()
        content = raw.split("\n")
        while content and content[-1] == "":
            content.pop()
        can_accept = True
        if not content:
            content, can_accept = [""], False
        line_cur = getline(pos_y)
        if is_blank(line_cur):  # trim as much leading whitespace as the line has
            lead = min(len(content[0]) - len(content[0].lstrip(" \t")), len(line_cur))
            line_cur, content[0] = content[0][:lead], content[0][lead:]
        lcp, lcs = line_cur[:pos_x], line_cur[pos_x:]
        # llama.vim's rules for dropping a suggestion that repeats the text already there
        if len(content) > 1 and content[0] == "" and \
                content[1:] == lines[pos_y + 1:pos_y + len(content)]:
            content = [""]
        if len(content) == 1 and content[0] == lcs:
            content = [""]
        cmp_y = pos_y + 1
        while cmp_y < len(lines) - 1 and is_blank(getline(cmp_y)):
            cmp_y += 1
        if lcp + content[0] == getline(cmp_y):
            if len(content) == 1:
                content = [""]
            if len(content) == 2 and content[-1] == getline(cmp_y + 1)[:len(content[-1])]:
                content = [""]
            if len(content) > 2 and content[1:] == [getline(y) for y in
                                                    range(cmp_y + 1, cmp_y + len(content))]:
                content = [""]
        text = "\n".join(content)  # what accepting it inserts at the cursor
        content[-1] += lcs
        joined = "\n".join(content)
        if "\n" not in joined and is_blank(joined):
            can_accept = False
        self.hint = {"text": text, "content": content, "can_accept": can_accept}
        if can_accept and self.answer is None:
            self.answer = (time.monotonic(), text, how, reply)

    # -- the replay loop's wait: Vim handling callbacks and timers until `until`
    def pump(self, until, stop=None):
        while True:
            now = time.monotonic()
            if stop is not None and stop():
                return True
            if now >= until:
                return False
            due = until if self.timer is None else min(until, self.timer[0])
            try:
                t, job, reply = self.replies.get(timeout=max(0.0, due - now))
                self.on_reply(t, job, reply)
                continue
            except queue.Empty:
                pass
            if self.timer is not None and time.monotonic() >= self.timer[0]:
                _, x, y, prev = self.timer
                self.timer = None
                self.fim(x, y, prev)

    def answered(self):
        if self.answer is None and self.job is None and self.timer is None:
            self.answer = (time.monotonic(), "", "nothing asked", None)  # it will ask nothing
        return self.answer is not None


def run_llama_vim(args, session, binary):
    server = LlamaServer(binary, args.model, args.threads, args.ctx)
    try:
        load_s = server.wait_healthy(args.reply_timeout)
        client = LlamaVimClient(server.port, session["files"], args.reply_timeout)
        pauses = []
        last_key = None
        for i, ev in enumerate(session["events"]):
            if "delay_ms" in ev:
                client.pump(time.monotonic() + ev["delay_ms"] / 1000.0)
            if ev["kind"] == "type":
                last_key = time.monotonic()
                client.type(ev)
            elif ev["kind"] == "jump":
                client.jump(ev)
            elif ev["kind"] == "pause" and last_key is not None:
                if not client.pump(last_key + args.reply_timeout, client.answered):
                    raise TimeoutError(f"llama.vim client: no answer at pause {i}")
                t, text, how, reply = client.answer
                rec = {"event": i, "latency_ms": (t - last_key) * 1000.0, "text": text,
                       "how": how}
                if reply:
                    rec.update(server_ms=reply["ms"], prompt_n=reply["prompt_n"],
                               tokens_cached=reply["tokens_cached"],
                               predicted_n=reply["predicted_n"])
                pauses.append(rec)
                print(f"  llama.vim pause {len(pauses)}: {rec['latency_ms']:.0f} ms ({how}) "
                      f"{text!r:.60}", file=sys.stderr, flush=True)
                client.pump(last_key + ev["ms"] / 1000.0)
                last_key = None
            elif ev["kind"] == "pause":
                client.pump(time.monotonic() + ev["ms"] / 1000.0)
        client.pump(time.monotonic() + args.reply_timeout, lambda: client.job is None)
        return {"load_s": load_s, "pauses": pauses, "requests": client.requests,
                "command": server.cmd}
    finally:
        server.stop()


# --- llama-cpp-python on augury's prompts -------------------------------------------------


def run_same_prompts(args, pauses, log_path):
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
        # An answer augury served without a prompt of its own names the speculation that made it
        # (servedBy: its request id; time that prompt) or none (its cache: nothing to time).
        seen = set()
        while rec is not None and "prompt" not in rec and rec.get("servedBy") is not None \
                and rec["servedBy"] not in seen:
            seen.add(rec["servedBy"])
            rec = prompts.get(rec["servedBy"])
        if rec is None or "prompt" not in rec:
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
        got = []
        for tok in llm.generate(tokens, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, reset=True):
            got.append(tok)
            if len(got) >= n_gen:
                break
        ms = (time.monotonic() - t0) * 1000.0
        text = llm.detokenize(got).decode("utf-8", "replace")
        out.append({"event": p["event"], "id": p["id"], "latency_ms": ms, "reused": common,
                    "evaluated": len(tokens) - common, "generated": len(got), "text": text})
    return out


# --- figures ------------------------------------------------------------------------------------


def summarize(recs, targets, extra=None):
    lat = [r["latency_ms"] for r in recs]
    hits = sum(is_hit(r.get("text", ""), targets.get(r["event"])) for r in recs)
    out = {"pauses": len(recs), "with_suggestion": sum(bool(r.get("text", "").strip()) for r in recs),
           "hits": hits, "latency_p50_ms": round(percentile(lat, 50), 1),
           "latency_p95_ms": round(percentile(lat, 95), 1)}
    if extra:
        out.update(extra(recs))
    return out


def mean_of(recs, field):
    vals = [r[field] for r in recs if r.get(field) is not None]
    return round(statistics.mean(vals), 1) if vals else None


def augury_extra(recs):
    return {"mean_reused": mean_of(recs, "reused"), "mean_evaluated": mean_of(recs, "evaluated"),
            "mean_shifted": mean_of(recs, "shifted"), "mean_restored": mean_of(recs, "restored"),
            "mean_generated": mean_of(recs, "generated"),
            "from_speculation": sum(1 for r in recs if r.get("speculative")),
            "from_cache": sum(1 for r in recs if r.get("cached")),
            "server_p50_ms": round(percentile([r["server_ms"] for r in recs
                                               if r.get("server_ms") is not None], 50), 1)}


def llama_vim_extra(recs):
    return {"from_cache": sum(r["how"].startswith("cache") for r in recs),
            "from_reply": sum(r["how"] == "reply" for r in recs)}


def request_stats(reqs):
    """llama-server's figures over every request the llama.vim client sent (speculative too)."""
    ok = [r for r in reqs if r.get("prompt_n") is not None]
    return {"requests": len(reqs), "speculative": sum(r["speculative"] for r in reqs),
            "errors": sum(bool(r.get("error")) for r in reqs),
            "mean_prompt_evaluated": mean_of(ok, "prompt_n"),
            "mean_tokens_cached": mean_of(ok, "tokens_cached"),
            "mean_predicted": mean_of(ok, "predicted_n"),
            "request_p50_ms": round(percentile([r["ms"] for r in reqs], 50), 1)}


def same_prompts_extra(recs):
    return {"mean_reused": mean_of(recs, "reused"), "mean_evaluated": mean_of(recs, "evaluated")}


EXTRA = {"augury": augury_extra, "llama-vim": llama_vim_extra, "same-prompts": same_prompts_extra}
LABEL = {"augury": "augury lsp", "llama-vim": "llama.vim + llama-server",
         "same-prompts": "llama.cpp, augury's prompts"}


def ratios(sums):
    a, b = sums.get("augury"), sums.get("llama-vim")
    if not a or not b:
        return {}
    div = lambda x, y: round(x / y, 2) if y else None
    return {"p50": div(a["latency_p50_ms"], b["latency_p50_ms"]),
            "p95": div(a["latency_p95_ms"], b["latency_p95_ms"])}


def print_summary(title, sums, rat):
    print(title)
    for sys_name in SYSTEMS:
        s = sums.get(sys_name)
        if not s:
            continue
        line = (f"  {LABEL[sys_name]:28s} p50 {s['latency_p50_ms']:6.0f} ms  p95 "
                f"{s['latency_p95_ms']:6.0f} ms  hits {s['hits']}/{s['pauses']}"
                f"  ({s['with_suggestion']} with a suggestion)")
        if sys_name == "augury":
            line += (f"  | {s.get('from_speculation')} served by a speculation,"
                     f" {s.get('from_cache')} from its cache; per request {s['mean_reused']} reused,"
                     f" {s.get('mean_shifted')} shifted, {s.get('mean_restored')} restored,"
                     f" {s['mean_evaluated']} evaluated, {s['mean_generated']} generated")
        elif sys_name == "llama-vim":
            line += f"  | {s['from_cache']} shown from its cache, {s['from_reply']} from a reply"
            q = s.get("requests")
            if q:
                line += (f"; {q['requests']} requests ({q['speculative']} speculative,"
                         f" {q['errors']} failed), per request {q['mean_tokens_cached']} cached"
                         f" after, {q['mean_prompt_evaluated']} evaluated,"
                         f" {q['mean_predicted']} generated")
        else:
            line += f"  | {s['mean_reused']} reused, {s['mean_evaluated']} evaluated"
        print(line)
    if rat:
        print(f"  augury / llama.vim: p50 {rat['p50']}x, p95 {rat['p95']}x")


def run_session(args, path, systems, server_bin):
    with open(path) as f:
        session = json.load(f)
    targets = pause_targets(session)  # from the whole session: the final text is its end
    if args.limit:
        session["events"] = session["events"][:args.limit]
        targets = {i: t for i, t in targets.items() if i < args.limit}
    name = os.path.basename(path)
    print(f"{name}: replaying {sum(e['kind'] == 'type' for e in session['events'])} keystrokes,"
          f" {len(targets)} pauses", file=sys.stderr, flush=True)
    result = {"session": name, "keystrokes": sum(e["kind"] == "type" for e in session["events"]),
              "pauses": len(targets), "systems": {}}
    log_path = tempfile.mktemp(prefix="augury-prompts-", suffix=".jsonl")
    try:
        if "augury" in systems or "same-prompts" in systems:
            aug = run_augury(args, session, log_path)
            result["augury_load_s"] = round(aug["load_s"], 2)
            result["augury_requests"] = aug["requests"]
            result["augury_status"] = aug["status"]
            if "augury" in systems:
                result["systems"]["augury"] = aug["pauses"]
            if "same-prompts" in systems:
                result["systems"]["same-prompts"] = run_same_prompts(args, aug["pauses"], log_path)
    finally:
        if os.path.exists(log_path):
            os.unlink(log_path)
    if "llama-vim" in systems:
        lv = run_llama_vim(args, session, server_bin)
        result["systems"]["llama-vim"] = lv["pauses"]
        result["llama_server_load_s"] = round(lv["load_s"], 2)
        result["llama_server_command"] = lv["command"]
        result["llama_vim_requests"] = lv["requests"]
    result["targets"] = {str(k): v for k, v in targets.items()}
    return result


def summaries(result_list):
    """Per system, over the pauses of all the given session results."""
    sums = {}
    for sys_name in SYSTEMS:
        recs, targets = [], {}
        for r in result_list:
            if sys_name not in r["systems"]:
                continue
            recs += [dict(p, event=(r["session"], p["event"])) for p in r["systems"][sys_name]]
            targets.update({(r["session"], int(k)): v for k, v in r["targets"].items()})
        if recs:
            sums[sys_name] = summarize(recs, targets, EXTRA[sys_name])
    if "llama-vim" in sums:
        sums["llama-vim"]["requests"] = request_stats(
            [q for r in result_list for q in r.get("llama_vim_requests", [])])
    return sums


def print_pauses(result):
    print(f"per pause in {result['session']} (ms, hit; the text typed next):")
    by = {s: {p["event"]: p for p in recs} for s, recs in result["systems"].items()}
    for key, target in result["targets"].items():
        i = int(key)
        cols = []
        for s in SYSTEMS:
            if s in by:
                p = by[s].get(i)
                if p is None:
                    cols.append(f"{'-':>7s}  ")
                else:
                    cols.append(f"{p['latency_ms']:7.0f} {'H' if is_hit(p.get('text', ''), target) else '.'}")
        typed = target["rest"] if target["rest"].strip() else "\\n" + (target["next_line"] or "")
        print(f"  {i:5d}: {'  '.join(cols)}   {json.dumps(typed)[:50]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--augury", help="augury binary (for the augury and same-prompts systems)")
    ap.add_argument("--model", required=True)
    ap.add_argument("--session", action="append",
                    help="a recorded session (repeatable; default: session.json and "
                         "session-stdlib.json)")
    ap.add_argument("--systems", default=",".join(SYSTEMS),
                    help=f"comma-separated subset of {','.join(SYSTEMS)}")
    ap.add_argument("--llama-server", help="llama-server binary (default: scripts/llama-server)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--ctx", type=int, default=4096)
    ap.add_argument("--max-tokens", type=int, default=64, help="augury's maxTokens")
    ap.add_argument("--debounce", type=int, default=40, help="augury's debounceMs")
    ap.add_argument("--augury-option", action="append", metavar="KEY=VALUE",
                    help="an extra augury setting, e.g. chunkReuse=0 (repeatable)")
    ap.add_argument("--out", help="write all figures here as JSON")
    ap.add_argument("--limit", type=int, default=0, help="replay only the first N events")
    ap.add_argument("--reply-timeout", type=float, default=600, help="seconds to wait at a pause")
    ap.add_argument("--per-pause", action="store_true", help="print every pause")
    args = ap.parse_args()
    systems = [s for s in args.systems.split(",") if s]
    for s in systems:
        if s not in SYSTEMS:
            ap.error(f"unknown system {s!r}")
    if ("augury" in systems or "same-prompts" in systems) and not args.augury:
        ap.error("--augury is needed for the augury and same-prompts systems")
    if "same-prompts" in systems:
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            ap.error("same-prompts needs llama_cpp: run with $(scripts/peer-venv)/bin/python, "
                     "or leave it out of --systems")
    server_bin = args.llama_server
    if "llama-vim" in systems and not server_bin:
        server_bin = subprocess.run([os.path.join(ROOT, "scripts", "llama-server")], check=True,
                                    stdout=subprocess.PIPE, text=True).stdout.strip()
    sessions = args.session or [os.path.join(HERE, "session.json"),
                                os.path.join(HERE, "session-stdlib.json")]
    results = [run_session(args, path, systems, server_bin) for path in sessions]
    report = {"model": os.path.basename(args.model), "threads": args.threads, "ctx": args.ctx,
              "augury_max_tokens": args.max_tokens, "augury_debounce_ms": args.debounce,
              "limit": args.limit, "augury_options": augury_options(args), "sessions": []}
    for r in results:
        sums = summaries([r])
        r["summary"] = sums
        r["ratios"] = ratios(sums)
        if args.per_pause:
            print_pauses(r)
        print_summary(f"{r['session']}: {r['keystrokes']} keystrokes, {r['pauses']} pauses, "
                      f"model {report['model']}, {args.threads} threads", sums, r["ratios"])
        report["sessions"].append(r)
    if len(results) > 1:
        sums = summaries(results)
        report["overall"] = {"summary": sums, "ratios": ratios(sums)}
        print_summary(f"overall: {sum(r['pauses'] for r in results)} pauses", sums,
                      report["overall"]["ratios"])
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=1)
            f.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
