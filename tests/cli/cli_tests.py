#!/usr/bin/env python3
"""Script-driven checks of the augury command line (registered by tests/cli/tests.cmake).

usage: cli_tests.py AUGURY_BIN FIXTURES_DIR CASE

Cases: usage (usage errors exit 2 with usage, bad files exit 1 with a message), model_check
(an unsupported architecture is described, a known one failing its check exits 1), bad_gguf (`augury
info` refuses every file of the hostile corpus with the substring expected.tsv gives), info_json
(`augury info --json` agrees with the gguf package's listing of the real models on every tensor's
name, type, shape, offset and size, and with their hyper-parameter keys), tokenize (ids identical
to llama.cpp's for a spread of the tokenizer fixture corpus, parse_special off and on, argv, stdin
and --file), synth (a synthetic model through synth, info and tokenize, incl. --vocab-from), version
(`--version` and `version --json`: the version of cli/version.h, the plugin ABI, the backends;
the LSP initialize reply's serverInfo.version).

Cases that need a real model read AUGURY_TEST_MODEL / AUGURY_TEST_MODEL_SMALL and exit 77 (skip)
when unset, unless AUGURY_REQUIRE_MODELS=1. Python standard library only.
"""
import json
import re
import os
import struct
import subprocess
import sys
import tempfile

SKIP = 77


class Failure(Exception):
    pass


def run(args, stdin=None, expect=None):
    """Runs augury with args; returns (rc, stdout, stderr). expect: the exit status required."""
    p = subprocess.run([AUGURY] + args, input=stdin, capture_output=True, timeout=600)
    out, err = p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
    if expect is not None and p.returncode != expect:
        raise Failure(f"augury {' '.join(args)[:200]}: exit {p.returncode}, expected {expect}\n"
                      f"stdout: {out[:2000]}\nstderr: {err[:2000]}")
    return p.returncode, out, err


def check(cond, message):
    if not cond:
        raise Failure(message)


def model_path(var):
    path = os.environ.get(var)
    if path:
        return path
    if os.environ.get("AUGURY_REQUIRE_MODELS") == "1":
        raise Failure(f"{var} is not set but AUGURY_REQUIRE_MODELS=1 (run scripts/get-model)")
    print(f"skip: {var} is not set")
    sys.exit(SKIP)


# ---- usage ------------------------------------------------------------------------------------

def case_usage():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "x.gguf")
        usage_errors = [
            [],
            ["no-such-command"],
            ["info"],
            ["info", "a.gguf", "b.gguf"],
            ["info", "--bogus", "a.gguf"],
            ["tokenize", "hello"],
            ["tokenize", "-m"],
            ["tokenize", "-m", "a.gguf"],
            ["tokenize", "-m", "a.gguf", "--file", "t.txt", "text"],
            ["synth", "--like", "qwen2.5-coder-0.5b", "-o", out],
            ["synth", "--like", "qwen2.5-coder-0.5b", "--type", "q5_k", "-o", out],
            ["synth", "--like", "gpt-5", "--type", "f16", "-o", out],
            ["synth", "--like", "qwen2.5-coder-0.5b", "--type", "f16", "-o", out, "--layers", "0"],
            ["synth", "--like", "qwen2.5-coder-0.5b", "--type", "f16", "-o", out, "--seed", "x"],
            ["synth", "--like", "llama-3.2-1b", "--type", "f16", "-o", out, "--layers", "17"],
            ["complete", "-m", "a.gguf", "--kv-type", "q4_1", "a.py:1:1"],
            ["explain", "-m", "a.gguf", "--kv-type", "f32", "a.py:1-2"],
        ]
        _, stdout, stderr = run([], expect=2)  # no command: main prints the command list
        check("usage: augury" in stdout + stderr, "augury without a command: no usage")
        for args in usage_errors[1:]:
            _, stdout, stderr = run(args, expect=2)
            check("usage: augury" in stderr, f"augury {args}: no usage on stderr: {stderr!r}")
            check(stdout == "", f"augury {args}: usage error wrote to stdout: {stdout!r}")
        check(not os.path.exists(out), "a failed synth left a file behind")
        for args in (["--help"], ["info", "--help"], ["tokenize", "-h"], ["synth", "--help"]):
            _, stdout, _ = run(args, expect=0)
            check("usage: augury" in stdout, f"augury {args}: no usage on stdout")
        missing = os.path.join(tmp, "missing.gguf")
        for args in (["info", missing], ["info", "--json", missing],
                     ["tokenize", "-m", missing, "hi"]):
            _, stdout, stderr = run(args, expect=1)
            check(stderr.startswith("augury: gguf: ") and missing in stderr
                  and "cannot open" in stderr, f"augury {args}: message {stderr!r}")
            check(stdout == "", f"augury {args}: wrote to stdout: {stdout!r}")
        _, _, stderr = run(["tokenize", "-m", missing, "--file", missing], expect=1)
        check(missing in stderr, f"tokenize --file of a missing file: {stderr!r}")
        # A directory in place of the output: synth reports it and exits 1.
        _, _, stderr = run(["synth", "--like", "qwen2.5-coder-0.5b", "--type", "q8_0",
                            "--layers", "1", "--n-vocab", "300", "-o", tmp], expect=1)
        check("synth" in stderr and tmp in stderr, f"synth into a directory: {stderr!r}")


def write_gguf(path, kvs):
    """A minimal version-3 GGUF with string/u32 key-values and no tensors (ggml docs/gguf.md)."""
    def string(s):
        b = s.encode("utf-8")
        return struct.pack("<Q", len(b)) + b
    out = struct.pack("<IIQQ", 0x46554747, 3, 0, len(kvs))
    for key, value in kvs:
        if isinstance(value, str):
            out += string(key) + struct.pack("<I", 8) + string(value)
        else:
            out += string(key) + struct.pack("<II", 4, value)
    with open(path, "wb") as f:
        f.write(out)


def case_model_check():
    """A valid GGUF of an architecture augury does not run is still described (exit 0); a file
    of a known architecture that fails the architecture check exits 1 naming the field."""
    with tempfile.TemporaryDirectory() as tmp:
        other = os.path.join(tmp, "gemma.gguf")
        write_gguf(other, [("general.architecture", "gemma3"), ("general.name", "tiny")])
        _, stdout, _ = run(["info", other], expect=0)
        check("architecture:   gemma3 (not supported)" in stdout, f"info: {stdout!r}")
        check("tensors:        0," in stdout, f"info: {stdout!r}")
        _, stdout, _ = run(["info", "--json", other], expect=0)
        info = json.loads(stdout)
        check(info["architecture"] == "gemma3" and info["supported"] is False
              and "gemma3" in info["model_error"] and info["tensors"] == [], f"json: {info}")
        check("error" in info["tokenizer"], f"tokenizer: {info['tokenizer']}")
        broken = os.path.join(tmp, "broken.gguf")
        write_gguf(broken, [("general.architecture", "qwen2"), ("qwen2.block_count", 0)])
        for args in (["info", broken], ["info", "--json", broken]):
            _, stdout, stderr = run(args, expect=1)
            check("augury: model: " in stderr and "'qwen2.block_count' is 0" in stderr,
                  f"{args}: {stderr!r}")
            check(stdout == "", f"{args}: wrote {stdout!r}")
        write_gguf(broken, [("general.name", "no architecture")])
        _, _, stderr = run(["info", broken], expect=1)
        check("'general.architecture' is missing" in stderr, f"no architecture: {stderr!r}")


# ---- bad-gguf ---------------------------------------------------------------------------------

def case_bad_gguf():
    corpus = os.path.join(FIXTURES, "bad-gguf")
    n = 0
    with open(os.path.join(corpus, "expected.tsv"), encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            name, expected = line.split("\t", 1)
            path = os.path.join(corpus, name)
            for args in (["info", path], ["info", "--json", path]):
                _, stdout, stderr = run(args, expect=1)
                check(stderr.startswith("augury: "), f"{name}: message {stderr!r}")
                check(expected in stderr, f"{name}: message {stderr!r} lacks {expected!r}")
                check(stdout == "", f"{name}: wrote to stdout: {stdout[:200]!r}")
            n += 1
    check(n >= 30, f"only {n} files in the corpus")
    print(f"{n} malformed files rejected")


# ---- info --json ------------------------------------------------------------------------------

def listing_for(path):
    base = os.path.basename(path)
    stem = base[:-5] if base.endswith(".gguf") else base
    tsv = os.path.join(FIXTURES, "gguf", stem + ".tensors.tsv")
    if not os.path.exists(tsv):
        raise Failure(f"no tensor listing {tsv} for {path}")
    return tsv, os.path.join(FIXTURES, "gguf", stem + ".kvs.tsv")


def check_info_json(path):
    tensors_tsv, kvs_tsv = listing_for(path)
    _, stdout, _ = run(["info", "--json", path], expect=0)
    info = json.loads(stdout)
    expected = []
    with open(tensors_tsv, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#") or not line.strip():
                continue
            name, typ, n_dims, ne0, ne1, ne2, ne3, offset, n_bytes = line.rstrip("\n").split("\t")
            shape = [int(x) for x in (ne0, ne1, ne2, ne3)][: int(n_dims)]
            expected.append((name, int(typ), shape, int(offset), int(n_bytes)))
    got = [(t["name"], t["type_id"], t["shape"], t["offset"], t["size"]) for t in info["tensors"]]
    check(len(got) == len(expected), f"{len(got)} tensors, the listing has {len(expected)}")
    for g, e in zip(got, expected):
        check(g == e, f"tensor differs: augury {g}, gguf package {e}")
    check(info["tensor_count"] == len(expected), "tensor_count")
    check(sum(t["count"] for t in info["types"]) == len(expected), "types: counts")
    check(sum(t["bytes"] for t in info["types"]) == sum(e[4] for e in expected), "types: bytes")
    check(info["file_size"] == os.path.getsize(path), "file_size")
    kvs = {}
    with open(kvs_tsv, encoding="utf-8") as f:
        for line in f:
            if line.startswith("#"):
                continue
            cols = line.rstrip("\n").split("\t")
            kvs[cols[0]] = cols
    arch = kvs["general.architecture"][2]
    check(info["architecture"] == arch, f"architecture {info['architecture']} != {arch}")
    check(info["file_type"] == int(kvs["general.file_type"][2])
          and info["file_type_name"] == "Q4_K_M", f"file type {info.get('file_type_name')}")
    hp = info["hparams"]
    for key, field in (("block_count", "n_layer"), ("embedding_length", "n_embd"),
                       ("feed_forward_length", "n_ff"), ("attention.head_count", "n_head"),
                       ("attention.head_count_kv", "n_head_kv"),
                       ("context_length", "n_ctx_train")):
        want = int(kvs[f"{arch}.{key}"][2])
        check(hp[field] == want, f"{field} {hp[field]} != {arch}.{key} {want}")
    check(hp["n_vocab"] == int(kvs["tokenizer.ggml.tokens"][3]), "n_vocab")
    tok = info["tokenizer"]
    check(tok.get("model") == kvs["tokenizer.ggml.model"][2], f"tokenizer {tok}")
    check(tok["special"]["eos"]["id"] == int(kvs["tokenizer.ggml.eos_token_id"][2]), "eos id")
    check(tok["fim"]["prefix"]["text"] == "<|fim_prefix|>", f"fim prefix {tok['fim']}")
    print(f"{path}: {len(expected)} tensors agree")
    # The text form carries the same facts.
    _, text, _ = run(["info", path], expect=0)
    check(f"tensors:        {len(expected)}," in text, "text: tensor count")
    check(f"n_layer        {hp['n_layer']}" in text, "text: n_layer")
    check("fim_prefix" in text, "text: FIM tokens")


def case_info_json():
    paths = [model_path("AUGURY_TEST_MODEL")]
    small = os.environ.get("AUGURY_TEST_MODEL_SMALL")
    if small:
        paths.append(small)
    for p in paths:
        check_info_json(p)


# ---- tokenize ---------------------------------------------------------------------------------

def corpus_sample():
    """A spread of the fixture corpus, half of it texts that contain control-token text."""
    texts, ids = [], []
    tdir = os.path.join(FIXTURES, "tokenizer")
    with open(os.path.join(tdir, "corpus.jsonl"), encoding="utf-8") as f:
        for line in f:
            e = json.loads(line)
            texts.append(e["text"].encode("utf-8") if "text" in e else bytes.fromhex(e["hex"]))
    with open(os.path.join(tdir, "ids-default.jsonl"), encoding="utf-8") as f:
        ids = [json.loads(line) for line in f]
    check(len(texts) == len(ids), "corpus and ids differ in length")
    # Each run loads the model: 20 texts with control-token text, 20 spread over the rest.
    special = [i for i in range(len(texts)) if b"<|" in texts[i]]
    special = special[:: max(1, len(special) // 20)][:20]
    rest = [i for i in range(len(texts)) if i not in special]
    rest = rest[:: max(1, len(rest) // 20)][:20]
    return [(texts[i], ids[i]) for i in sorted(special + rest)]


def case_tokenize():
    path = model_path("AUGURY_TEST_MODEL")
    base = os.path.basename(path)
    check(base == "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
          f"the fixtures were made with the default model, not {base}")
    sample = corpus_sample()
    with tempfile.TemporaryDirectory() as tmp:
        text_file = os.path.join(tmp, "text")
        for n, (text, want) in enumerate(sample):
            with open(text_file, "wb") as f:
                f.write(text)
            for mode in ("plain", "special"):
                args = ["tokenize", "-m", path, "--no-bos", "--json", "--file", text_file]
                if mode == "special":
                    args.insert(3, "--special")
                _, stdout, _ = run(args, expect=0)
                got = json.loads(stdout)
                check(got == want[mode], f"text {n} ({mode}) {text[:60]!r}: augury {got[:20]}, "
                      f"llama.cpp {want[mode][:20]}")
        # argv and stdin give the same as --file; one id per line without --json.
        text, want = sample[1]
        if not text.startswith(b"-") and b"\0" not in text:
            _, stdout, _ = run(["tokenize", "-m", path, "--no-bos", os.fsdecode(text)], expect=0)
            check([int(x) for x in stdout.split()] == want["plain"], "argv text")
        _, stdout, _ = run(["tokenize", "-m", path, "--no-bos", "-"], stdin=text, expect=0)
        check([int(x) for x in stdout.split()] == want["plain"], "stdin text")
    # --bos prepends BOS (151643) although Qwen's vocabulary does not ask for it.
    _, stdout, _ = run(["tokenize", "-m", path, "--bos", "--json", "hi"], expect=0)
    ids = json.loads(stdout)
    check(ids[0] == 151643 and len(ids) >= 2, f"--bos: {ids}")
    print(f"{len(sample)} texts x 2 modes agree with llama.cpp")


# ---- synth ------------------------------------------------------------------------------------

def case_synth():
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "synth.gguf")
        # The full 151936-token vocabulary of the 0.5B, one block: types fall back as llama.cpp's.
        run(["synth", "--like", "qwen2.5-coder-0.5b", "--type", "q4_k_m", "--layers", "1",
             "--seed", "7", "-o", out], expect=0)
        check(not os.path.exists(out + ".tmp"), "synth left its temporary file")
        _, stdout, _ = run(["info", "--json", out], expect=0)
        info = json.loads(stdout)
        hp = info["hparams"]
        check(info["file_type_name"] == "Q4_K_M", f"file type {info.get('file_type_name')}")
        check(hp["n_embd"] == 896 and hp["n_layer"] == 1 and hp["n_head"] == 14
              and hp["n_head_kv"] == 2 and hp["n_ff"] == 4864 and hp["n_vocab"] == 151936
              and hp["tied_output"], f"hparams {hp}")
        types = {t["name"]: t["type"] for t in info["tensors"]}
        want = {"token_embd.weight": "Q8_0", "blk.0.attn_q.weight": "Q5_0",
                "blk.0.attn_v.weight": "Q8_0", "blk.0.ffn_down.weight": "Q6_K",
                "blk.0.attn_norm.weight": "F32", "blk.0.attn_q.bias": "F32"}
        for name, t in want.items():
            check(types.get(name) == t, f"{name}: {types.get(name)}, expected {t}")
        check("output.weight" not in types, "tied model has output.weight")
        tok = info["tokenizer"]
        check(tok.get("model") == "gpt2" and tok["vocab_size"] == 151936, f"tokenizer {tok}")
        check(tok["fim"]["middle"]["text"] == "<|fim_middle|>", f"fim {tok['fim']}")
        # The built-in vocabulary: 'A' is byte token 65, ' the' is one merged token.
        _, stdout, _ = run(["tokenize", "-m", out, "--json", "A the"], expect=0)
        ids = json.loads(stdout)
        check(ids[0] == 65 and len(ids) == 2, f"built-in vocabulary: 'A the' -> {ids}")
        _, stdout, _ = run(["tokenize", "-m", out, "--special", "--json", "<|fim_prefix|>x"],
                           expect=0)
        check(json.loads(stdout)[0] == tok["fim"]["prefix"]["id"], "built-in FIM token")
        # Same seed, same bytes.
        again = os.path.join(tmp, "again.gguf")
        run(["synth", "--like", "qwen2.5-coder-0.5b", "--type", "q4_k_m", "--layers", "1",
             "--seed", "7", "-o", again], expect=0)
        with open(out, "rb") as a, open(again, "rb") as b:
            check(a.read() == b.read(), "same seed gave different files")
        os.unlink(again)

        src = os.environ.get("AUGURY_TEST_MODEL")
        if src:
            # --vocab-from: the copied tokenizer encodes exactly as the source model's.
            run(["synth", "--like", "qwen2.5-coder-1.5b", "--type", "q8_0", "--layers", "1",
                 "--vocab-from", src, "-o", out], expect=0)
            text = "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n"
            _, a, _ = run(["tokenize", "-m", out, "--json", text], expect=0)
            _, b, _ = run(["tokenize", "-m", src, "--json", text], expect=0)
            check(a == b, f"--vocab-from tokenizes differently: {a} vs {b}")
        print("synth, info and tokenize agree")

# ---- generate and bench ------------------------------------------------------------------------

def case_generate_bench():
    small = model_path("AUGURY_TEST_MODEL_SMALL")
    # Usage errors exit 2 with usage; a missing model exits 1 naming the file.
    _, _, err = run(["generate", "-p", "x"], expect=2)
    check("usage: augury generate" in err, f"generate usage: {err[:300]}")
    _, _, err = run(["bench", "-m", "/nonexistent/model.gguf"], expect=1)
    check("/nonexistent/model.gguf" in err, f"bench on a missing file: {err[:300]}")

    # Greedy generation is deterministic, continues the prompt, and ends with the timings line.
    args = ["generate", "-m", small, "-p", "def add(a, b):", "-n", "12", "-t", "2", "--temp", "0"]
    _, out1, err1 = run(args, expect=0)
    _, out2, _ = run(args, expect=0)
    check(out1 == out2, f"greedy generation differs between runs: {out1!r} vs {out2!r}")
    check(out1.startswith("def add(a, b):") and len(out1) > len("def add(a, b):"),
          f"generate output {out1!r}")
    m = re.search(r"prompt: (\d+) tokens, [\d.]+ ms, [\d.]+ t/s \| generated: (\d+) tokens", err1)
    check(m is not None, f"timings line missing: {err1[-300:]!r}")
    check(int(m.group(1)) > 0 and 0 < int(m.group(2)) <= 12, f"timings {m.group(0)!r}")

    # bench --json prints exactly one object with the documented keys and sane figures.
    _, out, _ = run(["bench", "-m", small, "-p", "16", "-n", "4", "-r", "2", "-t", "2", "--json"],
                    expect=0)
    report = json.loads(out)
    keys = {"model", "threads", "pp_tokens", "pp_tps", "pp_tps_sd", "tg_tokens", "tg_tps", "tg_tps_sd"}
    check(set(report) == keys, f"bench --json keys {sorted(report)}")
    check(report["model"] == small and report["threads"] == 2 and report["pp_tokens"] == 16
          and report["tg_tokens"] == 4, f"bench --json {report}")
    check(report["pp_tps"] > 0 and report["tg_tps"] > 0 and report["pp_tps_sd"] >= 0
          and report["tg_tps_sd"] >= 0, f"bench figures {report}")
    print(f"generate and bench ok: {report['pp_tps']:.1f} pp t/s, {report['tg_tps']:.1f} tg t/s")


# ---- version ----------------------------------------------------------------------------------

def case_version():
    """--version is one line naming the version of cli/version.h; version --json is the object the
    editors read (extension and :checkhealth refuse an older server with it); `augury lsp` reports
    the same version as serverInfo.version."""
    source = os.path.dirname(os.path.dirname(os.path.abspath(FIXTURES)))
    with open(os.path.join(source, "cli", "version.h")) as f:
        m = re.search(r'#define AUGURY_VERSION "([^"]+)"', f.read())
    check(m is not None, "cli/version.h defines no AUGURY_VERSION")
    version = m.group(1)
    check(re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", version), f"not semver: {version!r}")
    for flag in ("--version", "-V"):
        _, out, err = run([flag], expect=0)
        check(out.splitlines() == [f"augury {version}"] or
              re.fullmatch(rf"augury {re.escape(version)} \(.+\)\n", out),
              f"augury {flag} printed {out!r}")
        check(err == "", f"augury {flag} wrote to stderr: {err!r}")
    _, out, _ = run(["version"], expect=0)
    check(out.startswith(f"augury {version}\n") and "backends: cpu" in out, f"augury version: {out!r}")
    _, out, _ = run(["version", "--json"], expect=0)
    check(out.count("\n") == 1, f"version --json is not one line: {out!r}")
    v = json.loads(out)
    check(set(v) == {"version", "plugin_abi", "backends", "lsp"}, f"version --json keys {sorted(v)}")
    check(v["version"] == version and v["lsp"] == "3.18", f"version --json {v}")
    check(isinstance(v["backends"], list) and v["backends"][0] == "cpu"
          and all(isinstance(b, str) and b for b in v["backends"])
          and len(set(v["backends"])) == len(v["backends"]), f"backends {v['backends']}")
    header = os.path.join(source, "plugins", "augury_plugin.h")
    if os.path.exists(header):
        with open(header) as f:
            abi = re.search(r"#define AUGURY_PLUGIN_ABI_VERSION (\d+)", f.read())
        check(abi is not None and v["plugin_abi"] == int(abi.group(1)),
              f"plugin_abi {v['plugin_abi']!r}, header says {abi and abi.group(1)}")
    else:
        check(v["plugin_abi"] is None, f"plugin_abi {v['plugin_abi']!r} without the ABI header")
    rc, out, err = run(["version", "--bogus"], expect=2)
    check("unknown option" in err and "usage: augury version" in err, f"bad option: {err!r}")
    # The LSP server reports the same version in its initialize reply (serverInfo.version).
    def frame(msg):
        body = json.dumps(msg).encode()
        return b"Content-Length: %d\r\n\r\n" % len(body) + body
    lsp_in = (frame({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                     "params": {"processId": None, "rootUri": None, "capabilities": {}}})
              + frame({"jsonrpc": "2.0", "id": 2, "method": "shutdown"})
              + frame({"jsonrpc": "2.0", "method": "exit"}))
    _, lsp_out, _ = run(["lsp"], stdin=lsp_in, expect=0)
    replies, rest = [], lsp_out.encode()
    while (m := re.match(rb"Content-Length: (\d+)\r\n(?:[^\r\n]+\r\n)*\r\n", rest)):
        start = m.end()
        replies.append(json.loads(rest[start:start + int(m.group(1))]))
        rest = rest[start + int(m.group(1)):]
    init = [r for r in replies if r.get("id") == 1]
    check(len(init) == 1, f"no initialize reply in {lsp_out[:400]!r}")
    info = init[0].get("result", {}).get("serverInfo", {})
    check(info == {"name": "augury", "version": version}, f"serverInfo {info}, cli/version.h {version}")
    print(f"version ok: {out.strip() or version}, {v}")


CASES = {"usage": case_usage, "model_check": case_model_check, "bad_gguf": case_bad_gguf, "info_json": case_info_json,
         "tokenize": case_tokenize, "synth": case_synth,
         "generate_bench": case_generate_bench, "version": case_version}

if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[3] not in CASES:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    AUGURY, FIXTURES = sys.argv[1], sys.argv[2]
    try:
        CASES[sys.argv[3]]()
    except Failure as e:
        print(f"FAIL: {e}", file=sys.stderr)
        sys.exit(1)
