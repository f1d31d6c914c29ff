#!/usr/bin/env python3
"""A small, predictable stand-in for `augury lsp`, used by the headless Neovim plugin tests.

It speaks LSP over stdio (Content-Length framing, LSP 3.18 base protocol), follows documents with
incremental sync in the negotiated position encoding, and answers textDocument/inlineCompletion from
rules given in initializationOptions.fake, so every test knows exactly what the editor should show.
Like the real server it supersedes an older pending request on the same document (-32801), honours
$/cancelRequest (-32800), and streams augury.explain text as $/progress reports.

initializationOptions.fake (all optional):
  rules: [{match, line_above, insertText, range: "word"|"line"|"eol"|null, delay_ms, data, bare_array,
          crash (exit with status 3 instead of answering)}]
         the first rule whose `match` ends the line text before the cursor (and `line_above` the
         line above, when given) wins; range "word"
         ("line") starts the item's range at the identifier (the first non-blank) before the
         cursor, so insertText includes it; "eol" ends the range at the end of the line.
  encoding: force "utf-8" or "utf-16" (default: utf-8 when the client offers it, like augury).
  loading_ms: answer empty results for this long after initialize (a model still loading), with
              work-done progress begin/end on a server-created token, as augury reports the load.
  explain_chunks: list of strings streamed as $/progress reports (cumulative text in `message`).
  explain_crash: exit (status 4) when asked to explain.
Every request is recorded; the command "fake.log" returns the record.
"""
import json
import os
import select
import sys
import time

SUPERSEDED = -32801  # LSP ContentModified
CANCELLED = -32800   # LSP RequestCancelled


def utf16_len(s):
    return len(s.encode("utf-16-le")) // 2


def char_to_index(line, character, encoding):
    """Converts an LSP column in `encoding` to a Python string index (clamped to the line)."""
    if encoding == "utf-8":
        data = line.encode("utf-8")[:character]
        return len(data.decode("utf-8", errors="ignore"))
    units = 0
    for i, ch in enumerate(line):
        if units >= character:
            return i
        units += 2 if ord(ch) > 0xFFFF else 1
    return len(line)


def index_to_char(line, index, encoding):
    head = line[:index]
    return len(head.encode("utf-8")) if encoding == "utf-8" else utf16_len(head)


class Server:
    def __init__(self):
        self.out = sys.stdout.buffer
        self.inp = sys.stdin.buffer.raw if hasattr(sys.stdin.buffer, "raw") else sys.stdin.buffer
        self.buf = b""
        self.docs = {}
        self.encoding = "utf-16"
        self.options = {}
        self.started = time.monotonic()
        self.pending = []  # [due, id, uri, payload] completion replies waiting for their delay
        self.timed = []    # [due, message] notifications/replies scheduled (explain streaming)
        self.log = {"requests": [], "cancels": 0, "superseded": 0, "cancelled": 0,
                    "initializationOptions": None, "clientEncodings": None}
        self.shutdown = False
        self.next_id = 1

    # --- framing -------------------------------------------------------------------------------
    def send(self, msg):
        body = json.dumps(msg).encode("utf-8")
        self.out.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.out.flush()

    def reply(self, rid, result=None, error=None):
        msg = {"jsonrpc": "2.0", "id": rid}
        if error is not None:
            msg["error"] = error
        else:
            msg["result"] = result
        self.send(msg)

    def read_messages(self):
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            length = None
            for header in self.buf[:end].split(b"\r\n"):
                name, _, value = header.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value.strip())
            if length is None or len(self.buf) < end + 4 + length:
                return
            body = self.buf[end + 4:end + 4 + length]
            self.buf = self.buf[end + 4 + length:]
            self.handle(json.loads(body))

    # --- documents -----------------------------------------------------------------------------
    def apply_change(self, uri, change):
        text = self.docs.get(uri, "")
        if "range" not in change:
            self.docs[uri] = change["text"]
            return
        lines = text.split("\n")

        def offset(pos):
            line = min(pos["line"], len(lines))
            base = sum(len(l) + 1 for l in lines[:line])
            if line == len(lines):
                return base
            return base + char_to_index(lines[line], pos["character"], self.encoding)

        start, end = offset(change["range"]["start"]), offset(change["range"]["end"])
        self.docs[uri] = text[:start] + change["text"] + text[end:]

    # --- requests ------------------------------------------------------------------------------
    def handle(self, msg):
        method = msg.get("method")
        rid = msg.get("id")
        params = msg.get("params") or {}
        if method is None:
            return  # a reply to one of our requests (workDoneProgress/create)
        if method == "initialize":
            self.options = params.get("initializationOptions")
            self.log["initializationOptionsType"] = type(self.options).__name__
            if not isinstance(self.options, dict):
                self.options = {}
            fake = self.options.get("fake") or {}
            self.log["initializationOptions"] = self.options
            offered = (params.get("capabilities", {}).get("general", {}) or {}).get("positionEncodings")
            self.log["clientEncodings"] = offered
            self.encoding = fake.get("encoding") or ("utf-8" if offered and "utf-8" in offered else "utf-16")
            self.started = time.monotonic()
            self.reply(rid, {
                "capabilities": {
                    "positionEncoding": self.encoding,
                    "textDocumentSync": {"openClose": True, "change": 2},
                    "inlineCompletionProvider": True,
                    "executeCommandProvider": {"commands": ["augury.explain", "augury.status", "fake.log"]},
                },
                "serverInfo": {"name": "fake-augury", "version": "0"},
            })
        elif method == "initialized":
            loading = (self.options.get("fake") or {}).get("loading_ms", 0)
            if loading:
                # Like augury: the model loads in the background, reported as work-done progress.
                self.send({"jsonrpc": "2.0", "id": "load-1", "method": "window/workDoneProgress/create",
                           "params": {"token": "augury-load"}})
                self.send({"jsonrpc": "2.0", "method": "$/progress", "params": {"token": "augury-load",
                           "value": {"kind": "begin", "title": "augury: loading model", "percentage": 0}}})
                self.timed.append([self.started + loading / 1000.0, {
                    "jsonrpc": "2.0", "method": "$/progress", "params": {"token": "augury-load",
                                                                     "value": {"kind": "end", "message": "ready"}}}])
        elif method == "shutdown":
            self.shutdown = True
            self.reply(rid, None)
        elif method == "exit":
            sys.exit(0 if self.shutdown else 1)
        elif method == "workspace/didChangeConfiguration":
            self.log["configuration"] = params.get("settings")
        elif method == "textDocument/didOpen":
            doc = params["textDocument"]
            self.docs[doc["uri"]] = doc["text"]
        elif method == "textDocument/didChange":
            for change in params["contentChanges"]:
                self.apply_change(params["textDocument"]["uri"], change)
        elif method == "textDocument/didClose":
            self.docs.pop(params["textDocument"]["uri"], None)
        elif method == "$/cancelRequest":
            self.log["cancels"] += 1
            for p in list(self.pending):
                if p[1] == params.get("id"):
                    self.pending.remove(p)
                    self.log["cancelled"] += 1
                    self.reply(p[1], error={"code": CANCELLED, "message": "cancelled"})
        elif method == "textDocument/inlineCompletion":
            self.inline_completion(rid, params)
        elif method == "workspace/executeCommand":
            self.execute(rid, params)
        elif rid is not None:
            self.reply(rid, error={"code": -32601, "message": "method not found: " + method})

    def inline_completion(self, rid, params):
        uri = params["textDocument"]["uri"]
        pos = params["position"]
        lines = self.docs.get(uri, "").split("\n")
        line = lines[pos["line"]] if pos["line"] < len(lines) else ""
        index = char_to_index(line, pos["character"], self.encoding)
        before = line[:index]
        self.log["requests"].append({"position": pos, "triggerKind": params["context"]["triggerKind"],
                                     "before": before, "line": line})
        # A newer request on the same document supersedes the older ones, as augury does.
        for p in list(self.pending):
            if p[2] == uri:
                self.pending.remove(p)
                self.log["superseded"] += 1
                self.reply(p[1], error={"code": SUPERSEDED, "message": "superseded"})
        fake = self.options.get("fake") or {}
        if time.monotonic() - self.started < fake.get("loading_ms", 0) / 1000.0:
            self.reply(rid, {"items": []})
            return
        above = lines[pos["line"] - 1] if 0 < pos["line"] <= len(lines) else ""
        rule = next((r for r in fake.get("rules", []) if before.endswith(r["match"])
                     and above.endswith(r.get("line_above", ""))), None)
        if rule is None:
            self.reply(rid, {"items": []})
            return
        if rule.get("crash"):
            os._exit(3)  # a server that dies mid-session
        item = {"insertText": rule["insertText"], "data": rule.get("data", {})}
        if rule.get("range") in ("word", "line", "eol"):
            start, end = index, index
            if rule["range"] == "word":
                while start > 0 and (before[start - 1].isalnum() or before[start - 1] == "_"):
                    start -= 1
            elif rule["range"] == "line":
                start = len(before) - len(before.lstrip())
            else:
                end = len(line)
            item["range"] = {"start": {"line": pos["line"], "character": index_to_char(line, start, self.encoding)},
                             "end": {"line": pos["line"], "character": index_to_char(line, end, self.encoding)}}
        items = [item]
        # An explicit request gets the alternatives too, as augury answers one (its
        # "alternatives" setting).
        if params["context"]["triggerKind"] == 1:
            items += [{"insertText": t} for t in rule.get("alternatives", [])]
        result = {"items": items} if not rule.get("bare_array") else items
        due = time.monotonic() + rule.get("delay_ms", 0) / 1000.0
        self.pending.append([due, rid, uri, result])

    def execute(self, rid, params):
        command = params.get("command")
        if command == "fake.log":
            self.reply(rid, dict(self.log, encoding=self.encoding, documents=self.docs))
        elif command == "augury.status":
            self.reply(rid, {"model": "fake", "loaded": True})
        elif command == "augury.explain":
            args = (params.get("arguments") or [{}])[0]
            if (self.options.get("fake") or {}).get("explain_crash"):
                os._exit(4)
            self.log["requests"].append({"explain": args})
            chunks = (self.options.get("fake") or {}).get("explain_chunks", ["This code ", "does things."])
            token = params.get("workDoneToken")
            now = time.monotonic()
            text = ""
            if token is not None:
                self.timed.append([now, {"jsonrpc": "2.0", "method": "$/progress", "params": {
                    "token": token, "value": {"kind": "begin", "title": "augury: explaining"}}}])
            for i, chunk in enumerate(chunks):
                text += chunk
                if token is not None:
                    self.timed.append([now + 0.05 * (i + 1), {"jsonrpc": "2.0", "method": "$/progress", "params": {
                        "token": token, "value": {"kind": "report", "message": text}}}])
            end = now + 0.05 * (len(chunks) + 1)
            if token is not None:
                self.timed.append([end, {"jsonrpc": "2.0", "method": "$/progress", "params": {
                    "token": token, "value": {"kind": "end"}}}])
            self.timed.append([end + 0.3, {"jsonrpc": "2.0", "id": rid, "result": text}])
        else:
            self.reply(rid, error={"code": -32602, "message": "unknown command: %s" % command})

    # --- loop ----------------------------------------------------------------------------------
    def run(self):
        fd = self.inp.fileno()
        while True:
            now = time.monotonic()
            for p in sorted(self.pending, key=lambda p: p[0]):
                if p[0] <= now:
                    self.pending.remove(p)
                    self.reply(p[1], p[3])
            for t in sorted(self.timed, key=lambda t: t[0]):
                if t[0] <= now:
                    self.timed.remove(t)
                    self.send(t[1])
            dues = [p[0] for p in self.pending] + [t[0] for t in self.timed]
            timeout = max(0.0, min(dues) - now) if dues else None
            ready, _, _ = select.select([fd], [], [], timeout)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return
                self.buf += chunk
                self.read_messages()


if __name__ == "__main__":
    # `version --json` as the real server answers it (what :checkhealth augury asks).
    if sys.argv[1:] == ["version", "--json"]:
        print(json.dumps({"version": "0.1.0", "plugin_abi": None, "backends": ["fake"], "lsp": "3.18"}))
        sys.exit(0)
    Server().run()
