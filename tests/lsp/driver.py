#!/usr/bin/env python3
"""LSP transcript driver: runs `augury lsp`, sends the client messages of a transcript with
Content-Length framing, and checks the server's messages against the expected ones.

A transcript is a JSON object:
  name, description      text
  model                  "small" to need AUGURY_TEST_MODEL_SMALL (skips with 77 when unset,
                         unless AUGURY_REQUIRE_MODELS=1); "$MODEL" in messages is replaced by it
  plugins                true to need the example plugins (AUGURY_TEST_PLUGINS, the folder
                         tests/plugins/tests.cmake builds them into): "$PLUGINS" is that folder;
                         "$FIXTURES" is tests/fixtures in any transcript
  args                   extra arguments after `augury lsp`
  env                    extra environment variables for the server
  replay_server          true: start tests/plugins/replay_server.py; "$REPLAY" is its base URL
  secret                 a string that must appear in no server message, nothing on its stderr
                         and no file under $HOME (an auth token)
  parent                 true: start a helper process and pass --clientProcessId
  ignore                 server methods skipped by "expect" (e.g. "window/logMessage")
  exit_code              expected exit status (checked at the end)
  raw_ids                ids of requests sent inside send_raw (for the one-reply check)
  steps                  list of:
    {"send": MSG | [MSG...]}          framed client message(s)
    {"send_batch": [MSG...]}          framed client messages, written in one write
    {"send_raw": "text"}              bytes as given (JSON escapes allowed)
    {"send_chunks": [MSG, n]}         MSG framed and written in n pieces with pauses
    {"expect": PATTERN}               the next server message not ignored must match
    {"expect_reply": {"id": ID, "match": PATTERN}}  waits for the reply to ID
    {"expect_request": {"method": M, "result": R}}  waits for a server request and answers it
    {"wait_replies": true}            waits until every request sent got its reply
    {"expect_file": {"path": P, "match": "re:REGEX"}}  waits until file P's text matches
    {"sleep": seconds}
    {"poll": {"request": MSG, "match": PATTERN, "every": s}}  sends MSG (id made "ID-k") until its
                                      reply matches (each reply must come; up to "timeout" s)
    {"close_stdin": true}
    {"close_stdout": true}            stops reading the server's output (EPIPE on its next write)
    {"kill_parent": true}
Patterns: objects match key by key (extra keys are an error unless the pattern has "...": true),
arrays element by element; "<any>", "<string>", "<number>", "<integer>", "<absent>" (key must be
missing) are wildcards, "re:REGEX" matches strings, "<lt:N>" numbers below N, "<gt:N>" numbers
above N, "<ms:N>" a time in ms
below N times --timeout-scale (timing bounds relax under valgrind as the timeouts do).
At the end the driver checks that every request got exactly one reply and no reply came for an id
never sent, then the exit status. Exit status: 0 pass, 1 fail, 77 skipped.
"""
import json
import os
import queue
import re
import select
import shlex
import subprocess
import sys
import tempfile
import threading
import time


class Failure(Exception):
    pass


def frame(msg):
    body = json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def substitute(value, subst):
    if isinstance(value, str):
        for k, v in subst.items():
            value = value.replace(k, v)
        return value
    if isinstance(value, list):
        return [substitute(v, subst) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, subst) for k, v in value.items()}
    return value


def match(pattern, actual, path="$"):
    """Returns None when actual matches pattern, else a message naming the first difference."""
    if isinstance(pattern, str):
        if pattern == "<any>":
            return None
        if pattern == "<string>":
            return None if isinstance(actual, str) else f"{path}: expected a string, got {actual!r}"
        if pattern == "<number>":
            ok = isinstance(actual, (int, float)) and not isinstance(actual, bool)
            return None if ok else f"{path}: expected a number, got {actual!r}"
        if pattern == "<integer>":
            ok = isinstance(actual, int) and not isinstance(actual, bool)
            return None if ok else f"{path}: expected an integer, got {actual!r}"
        if pattern.startswith("<ms:") and pattern.endswith(">"):
            bound = float(pattern[4:-1]) * TIME_SCALE
            ok = isinstance(actual, (int, float)) and not isinstance(actual, bool) and actual < bound
            return None if ok else f"{path}: expected a time below {bound:g} ms, got {actual!r}"
        if pattern.startswith("<lt:") and pattern.endswith(">"):
            bound = float(pattern[4:-1])
            ok = isinstance(actual, (int, float)) and not isinstance(actual, bool) and actual < bound
            return None if ok else f"{path}: expected a number below {bound:g}, got {actual!r}"
        if pattern.startswith("<gt:") and pattern.endswith(">"):
            bound = float(pattern[4:-1])
            ok = isinstance(actual, (int, float)) and not isinstance(actual, bool) and actual > bound
            return None if ok else f"{path}: expected a number above {bound:g}, got {actual!r}"
        if pattern.startswith("re:"):
            if isinstance(actual, str) and re.search(pattern[3:], actual, re.S):
                return None
            return f"{path}: {actual!r} does not match /{pattern[3:]}/"
    if isinstance(pattern, dict):
        if not isinstance(actual, dict):
            return f"{path}: expected an object, got {actual!r}"
        for k, p in pattern.items():
            if k == "...":
                continue
            if p == "<absent>":
                if k in actual:
                    return f"{path}.{k}: expected no such key, got {actual[k]!r}"
                continue
            if k not in actual:
                return f"{path}.{k}: missing"
            why = match(p, actual[k], f"{path}.{k}")
            if why:
                return why
        if not pattern.get("..."):
            extra = [k for k in actual if k not in pattern]
            if extra:
                return f"{path}: unexpected keys {extra}"
        return None
    if isinstance(pattern, list):
        if not isinstance(actual, list) or len(actual) != len(pattern):
            return f"{path}: expected a list of {len(pattern)}, got {actual!r}"
        for i, (p, a) in enumerate(zip(pattern, actual)):
            why = match(p, a, f"{path}[{i}]")
            if why:
                return why
        return None
    if isinstance(pattern, bool) or isinstance(actual, bool):
        return None if pattern is actual else f"{path}: expected {pattern!r}, got {actual!r}"
    return None if pattern == actual else f"{path}: expected {pattern!r}, got {actual!r}"


class Session:
    def __init__(self, cmd, env, timeout_scale):
        self.scale = timeout_scale
        self.stderr = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.stderr, env=env)
        self.messages = queue.Queue()
        self.stash = []  # messages read while waiting for something else
        self.log = []
        self.sent_ids = []
        self.reply_counts = {}
        self.unexpected_replies = []
        self.stop_reading = False
        self.reader = threading.Thread(target=self._reader, daemon=True)
        self.reader.start()

    def _reader(self):
        """Splits the server's output into messages. select() with a short timeout lets
        close_stdout stop this thread before the pipe is closed: a read blocked in another thread
        would keep the pipe open and the server would never see EPIPE."""
        fd = self.proc.stdout.fileno()
        buf = b""
        while not self.stop_reading:
            ready, _, _ = select.select([fd], [], [], 0.05)
            if not ready:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            buf += chunk
            while True:
                end = buf.find(b"\r\n\r\n")
                if end < 0:
                    break
                headers = {}
                for line in buf[:end].decode().split("\r\n"):
                    name, _, value = line.partition(":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers["content-length"])
                if len(buf) < end + 4 + length:
                    break
                self.messages.put(json.loads(buf[end + 4:end + 4 + length]))
                buf = buf[end + 4 + length:]
        self.messages.put(None)

    def take(self, timeout):
        """The next message from the server (None at its EOF); replies are counted here."""
        msg = self.messages.get(timeout=timeout)
        if msg is None:
            self.messages.put(None)  # keep reporting EOF
            return None
        if "id" in msg and "method" not in msg:
            key = json.dumps(msg["id"])
            self.reply_counts[key] = self.reply_counts.get(key, 0) + 1
        self.log.append(msg)
        return msg

    def write(self, data):
        try:
            self.proc.stdin.write(data)
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass

    def send(self, msg):
        if "id" in msg and "method" in msg:
            self.sent_ids.append(json.dumps(msg["id"]))
        self.write(frame(msg))

    def next_message(self, timeout):
        if self.stash:
            return self.stash.pop(0)
        try:
            msg = self.take(timeout * self.scale)
        except queue.Empty:
            raise Failure(f"no server message within {timeout * self.scale:.0f} s")
        if msg is None:
            raise Failure("the server closed its output")
        return msg

    def wait_for(self, pred, timeout, what):
        """Reads until pred(msg); messages read before it are stashed for later steps."""
        deadline = time.time() + timeout * self.scale
        skipped = []
        for i, m in enumerate(self.stash):
            if pred(m):
                self.stash.pop(i)
                return m
        while True:
            left = deadline - time.time()
            if left <= 0:
                raise Failure(f"timed out waiting for {what}; saw {skipped[-5:]}")
            try:
                msg = self.take(left)
            except queue.Empty:
                continue
            if msg is None:
                raise Failure(f"the server closed its output while waiting for {what}")
            if pred(msg):
                return msg
            self.stash.append(msg)
            skipped.append(msg)


TIME_SCALE = 1.0  # --timeout-scale, for "<ms:N>" patterns


def run(transcript_path, augury, wrapper, timeout_scale):
    global TIME_SCALE
    TIME_SCALE = timeout_scale
    with open(transcript_path) as f:
        t = json.load(f)
    subst = {}
    if t.get("model") == "small":
        model = os.environ.get("AUGURY_TEST_MODEL_SMALL", "")
        if not model:
            if os.environ.get("AUGURY_REQUIRE_MODELS") == "1":
                print("FAIL: AUGURY_TEST_MODEL_SMALL is not set but AUGURY_REQUIRE_MODELS=1")
                return 1
            print("SKIP: AUGURY_TEST_MODEL_SMALL is not set")
            return 77
        subst["$MODEL"] = model
    subst["$FIXTURES"] = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")
    if t.get("plugins"):
        plugins = os.environ.get("AUGURY_TEST_PLUGINS", "")
        if not plugins or not os.path.isdir(plugins):
            print("SKIP: AUGURY_TEST_PLUGINS (the example plugins' folder) is not set")
            return 77
        subst["$PLUGINS"] = plugins
    home = tempfile.mkdtemp(prefix="augury-lsp-test-")
    env = {k: v for k, v in os.environ.items()
           if k not in ("AUGURY_MODEL", "LLAMA_CACHE", "HF_HUB_CACHE", "HF_HOME")}
    # A clean home: no config file and no model in any cache, so lookups are what the test says.
    env["HOME"] = home
    env["XDG_CONFIG_HOME"] = os.path.join(home, "config")
    env["XDG_DATA_HOME"] = os.path.join(home, "data")  # no plugins but the transcript's
    subst["$HOME"] = home
    with open(os.path.join(home, "not-a-model.gguf"), "w") as f:
        f.write("this is not a GGUF file\n")  # for transcripts about load failures
    env.update(t.get("env", {}))
    replay = None
    if t.get("replay_server"):
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "plugins",
                              "replay_server.py")
        replay = subprocess.Popen([sys.executable, script, "0"], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        port = int(replay.stdout.readline().split()[1])
        subst["$REPLAY"] = "http://127.0.0.1:%d" % port
    parent = None
    args = list(t.get("args", []))
    if t.get("parent"):
        parent = subprocess.Popen(["sleep", "300"])
        args += ["--clientProcessId", str(parent.pid)]
    cmd = shlex.split(wrapper) + [augury, "lsp"] + args
    s = Session(cmd, env, timeout_scale)
    ignore = set(t.get("ignore", []))
    # Requests written with send_raw are listed in raw_ids so the one-reply check covers them.
    s.sent_ids += [json.dumps(i) for i in t.get("raw_ids", [])]
    try:
        for n, step in enumerate(t["steps"]):
            step = substitute(step, subst)
            where = f"step {n + 1} {json.dumps(step)[:160]}"
            try:
                if "send" in step:
                    for m in step["send"] if isinstance(step["send"], list) else [step["send"]]:
                        s.send(m)
                elif "send_batch" in step:
                    # One write: the server reads the messages in one go, so nothing it starts
                    # (a model load) can finish between them.
                    for m in step["send_batch"]:
                        if "id" in m and "method" in m:
                            s.sent_ids.append(json.dumps(m["id"]))
                    s.write(b"".join(frame(m) for m in step["send_batch"]))
                elif "send_raw" in step:
                    s.write(step["send_raw"].encode())
                elif "send_bytes" in step:
                    spec = step["send_bytes"]  # {"header": "...", "fill": "x", "count": N}
                    s.write(spec["header"].encode())
                    chunk = spec["fill"].encode() * 65536
                    left = spec["count"]
                    while left > 0:
                        s.write(chunk[:left])
                        left -= min(left, len(chunk))
                elif "send_chunks" in step:
                    msg, pieces = step["send_chunks"]
                    if "id" in msg and "method" in msg:
                        s.sent_ids.append(json.dumps(msg["id"]))
                    data = frame(msg)
                    size = max(1, len(data) // pieces)
                    for i in range(0, len(data), size):
                        s.write(data[i:i + size])
                        time.sleep(0.05)
                elif "expect" in step:
                    while True:
                        msg = s.next_message(step.get("timeout", 10))
                        if msg.get("method") in ignore and "id" not in msg:
                            continue
                        if msg.get("method") in ignore and step["expect"].get("method") != msg["method"]:
                            continue
                        break
                    why = match(step["expect"], msg)
                    if why:
                        raise Failure(f"{why}\n  got: {json.dumps(msg)}")
                elif "expect_reply" in step:
                    want = step["expect_reply"]
                    msg = s.wait_for(lambda m: "method" not in m and m.get("id") == want["id"],
                                     step.get("timeout", 30), f"the reply to id {want['id']}")
                    why = match(want["match"], msg)
                    if why:
                        raise Failure(f"{why}\n  got: {json.dumps(msg)}")
                elif "expect_request" in step:
                    want = step["expect_request"]
                    msg = s.wait_for(lambda m: m.get("method") == want["method"] and "id" in m,
                                     step.get("timeout", 30), f"a {want['method']} request")
                    if "match" in want:
                        why = match(want["match"], msg)
                        if why:
                            raise Failure(f"{why}\n  got: {json.dumps(msg)}")
                    reply = {"jsonrpc": "2.0", "id": msg["id"]}
                    if "error" in want:
                        reply["error"] = want["error"]
                    else:
                        reply["result"] = want.get("result")
                    s.write(frame(reply))
                elif "expect_notification" in step:
                    want = step["expect_notification"]
                    msg = s.wait_for(lambda m: "id" not in m and match(want, m) is None,
                                     step.get("timeout", 30), f"a notification like {want}")
                elif "wait_replies" in step:
                    # Consumes every message up to the point where all requests have replies.
                    deadline = time.time() + step.get("timeout", 30) * s.scale
                    while not all(k in s.reply_counts for k in s.sent_ids):
                        left = deadline - time.time()
                        if left <= 0:
                            missing = [k for k in s.sent_ids if k not in s.reply_counts]
                            raise Failure(f"no reply to ids {missing}")
                        try:
                            msg = s.take(min(left, 0.2))
                        except queue.Empty:
                            continue
                        if msg is None:
                            raise Failure("the server closed its output")
                    s.stash.clear()
                elif "expect_file" in step:
                    want = step["expect_file"]
                    deadline = time.time() + step.get("timeout", 10) * s.scale
                    text = ""
                    while True:
                        try:
                            with open(want["path"]) as f:
                                text = f.read()
                        except OSError:
                            text = ""
                        if match(want["match"], text) is None:
                            break
                        if time.time() > deadline:
                            raise Failure(f"{want['path']} does not match {want['match']}: "
                                          f"{text[-400:]!r}")
                        time.sleep(0.1)
                elif "poll" in step:
                    want = step["poll"]
                    deadline = time.time() + step.get("timeout", 30) * s.scale
                    last = None
                    for k in range(1, 10000):
                        msg_out = dict(want["request"], id=f"{want['request']['id']}-{k}")
                        s.send(msg_out)
                        last = s.wait_for(lambda m, i=msg_out["id"]: "method" not in m and
                                          m.get("id") == i, step.get("timeout", 30),
                                          f"the reply to id {msg_out['id']}")
                        if match(want["match"], last) is None:
                            break
                        if time.time() > deadline:
                            raise Failure(f"no reply matched {json.dumps(want['match'])[:200]}"
                                          f"\n  last: {json.dumps(last)[:400]}")
                        time.sleep(want.get("every", 0.25))
                elif "sleep" in step:
                    time.sleep(step["sleep"])
                elif "close_stdin" in step:
                    s.proc.stdin.close()
                elif "close_stdout" in step:
                    # The client stops reading: the server's next write fails with EPIPE.
                    s.stop_reading = True
                    s.reader.join()
                    s.proc.stdout.close()
                elif "kill_parent" in step:
                    parent.kill()
                    parent.wait()
                else:
                    raise Failure("unknown step")
            except Failure as e:
                raise Failure(f"{where}: {e}")
        try:
            code = s.proc.wait(timeout=t.get("exit_timeout", 20) * s.scale)
        except subprocess.TimeoutExpired:
            s.proc.kill()
            raise Failure("the server did not exit")
        # Drain what is left (up to the server's EOF) for the one-reply-per-request check.
        try:
            while s.take(5 * s.scale) is not None:
                pass
        except queue.Empty:
            raise Failure("the server's output did not end after it exited")
        counts = dict(s.reply_counts)
        twice = {k: v for k, v in counts.items() if v != 1 and k != "null"}
        if twice:
            raise Failure(f"requests answered more than once: {twice}")
        sent = set(s.sent_ids)
        if len(sent) != len(s.sent_ids):
            raise Failure("the transcript reuses request ids")
        strays = [k for k in counts if k not in sent and k != "null"]
        if strays:
            raise Failure(f"replies to ids never sent: {strays}")
        missing = [k for k in s.sent_ids if k not in counts]
        if missing and t.get("all_replied", True):
            raise Failure(f"requests never answered: {missing}")
        if code != t.get("exit_code", 0):
            raise Failure(f"exit status {code}, expected {t.get('exit_code', 0)}")
        secret = t.get("secret")
        if secret:
            for msg in s.log:
                if secret in json.dumps(msg):
                    raise Failure(f"the secret appears in a server message: {json.dumps(msg)[:300]}")
            s.stderr.seek(0)
            if secret.encode() in s.stderr.read():
                raise Failure("the secret appears on the server's stderr")
            for root, _, files in os.walk(home):
                for name in files:
                    with open(os.path.join(root, name), "rb") as f:
                        if secret.encode() in f.read():
                            raise Failure(f"the secret appears in {os.path.join(root, name)}")
        print(f"PASS {t.get('name', transcript_path)} ({len(s.sent_ids)} requests)")
        return 0
    except Failure as e:
        print(f"FAIL {t.get('name', transcript_path)}: {e}")
        s.stderr.seek(0)
        err = s.stderr.read().decode(errors="replace")
        if err:
            print("--- server stderr ---\n" + err[-6000:])
        return 1
    finally:
        if s.proc.poll() is None:
            s.proc.kill()
            s.proc.wait()
        if parent and parent.poll() is None:
            parent.kill()
            parent.wait()
        if replay:
            replay.stdin.close()
            replay.kill()
            replay.wait()
        subprocess.run(["rm", "-rf", home])


def main():
    import argparse
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--augury", required=True)
    ap.add_argument("--wrapper", default="", help="command prefix, e.g. valgrind options")
    ap.add_argument("--timeout-scale", type=float, default=1.0)
    ap.add_argument("transcripts", nargs="+")
    a = ap.parse_args()
    status = 0
    for path in a.transcripts:
        rc = run(path, a.augury, a.wrapper, a.timeout_scale)
        if rc == 77 and len(a.transcripts) == 1:
            return 77
        if rc == 1:
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
