#!/usr/bin/env python3
"""`augury plan` end to end. Usage: plan_cli_test.py AUGURY CASE.

The planner's arithmetic is unit-tested (tests/unit/engine/test_plan.c); this checks the command:
its usage errors, that the printed memory adds up and fits the simulated card, that --json has the
documented fields, and that another quant of the same model (same architecture, block count and
embedding length) beside the model or in a Hugging Face cache is planned and compared in words,
while a different model is not. Measured bandwidths vary from run to run, so the checks use
--gpu-bandwidth (a given figure) wherever a number is compared."""
import json
import os
import subprocess
import sys
import tempfile

AUGURY, CASE = sys.argv[1], sys.argv[2]


def run(*args, env=None, check=True):
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run([AUGURY, "plan", *args], capture_output=True, text=True, env=e, timeout=240)
    if check and p.returncode != 0:
        sys.exit(f"augury plan {' '.join(args)}: exit {p.returncode}\n{p.stderr}")
    return p


def synth(path, like, type_, layers, vocab=1024):
    subprocess.run([AUGURY, "synth", "--like", like, "--type", type_, "-o", path, "--layers",
                    str(layers), "--n-vocab", str(vocab)], check=True, capture_output=True)


def expect(cond, msg):
    if not cond:
        sys.exit("FAIL: " + msg)


def check_plan(out, n_layer, vram):
    plan = out["plan"]
    expect(0 <= plan["n_gpu_layers"] <= n_layer + 1, f"n_gpu_layers {plan['n_gpu_layers']}")
    expect(plan["output_on_gpu"] == (plan["n_gpu_layers"] == n_layer + 1), "output_on_gpu")
    g = plan["gpu"]
    expect(g["total"] == g["weights"] + g["kv"] + g["scratch"] + g["margin"], "GPU total")
    if plan["n_gpu_layers"] > 0:
        expect(g["total"] <= vram, f"GPU total {g['total']} over {vram}")
    expect(plan["tokens_per_s"] > 0, "tokens_per_s")
    expect(out["host"]["bandwidth"] > 0 and out["host"]["read_bandwidth"] > 0, "host bandwidth")


def case_usage():
    p = run(check=False)
    expect(p.returncode == 2 and "-m MODEL is required" in p.stderr, "no -m: " + p.stderr)
    p = run("-m", "x.gguf", "--kv", "q5_1", check=False)
    expect(p.returncode == 2 and "q5_1" in p.stderr, "bad --kv: " + p.stderr)
    p = run("-m", "x.gguf", "--vram", "lots", check=False)
    expect(p.returncode == 2, "bad --vram")
    p = run("-m", "/nonexistent/model.gguf", check=False)
    expect(p.returncode == 1 and "/nonexistent/model.gguf" in p.stderr, "missing file: " + p.stderr)
    p = run("--help")
    expect("--vram" in p.stdout and "--kv" in p.stdout, "help")


def case_siblings():
    with tempfile.TemporaryDirectory() as d, tempfile.TemporaryDirectory() as hub:
        env = {"HF_HUB_CACHE": hub}
        a, b = os.path.join(d, "m-q4_k_m.gguf"), os.path.join(d, "m-q8_0.gguf")
        synth(a, "qwen2.5-coder-0.5b", "q4_k_m", 4)
        synth(b, "qwen2.5-coder-0.5b", "q8_0", 4)
        synth(os.path.join(d, "other.gguf"), "qwen2.5-coder-0.5b", "q8_0", 3)  # other block count
        vram = 48 << 20
        out = json.loads(run("-m", a, "--vram", "48M", "--gpu-bandwidth", "300", "--json",
                             env=env).stdout)
        expect(out["quant"] == "Q4_K_M" and out["n_layer"] == 4, "model fields")
        expect(out["gpu"]["simulated"] and out["gpu"]["bandwidth_source"] == "given", "gpu source")
        check_plan(out, 4, vram)
        alts = out["alternatives"]
        expect(len(alts) == 1 and alts[0]["quant"] == "Q8_0", f"alternatives {alts}")
        check_plan({"plan": alts[0]["plan"], "host": out["host"]}, 4, vram)
        expect(alts[0]["plan"]["n_gpu_layers"] <= out["plan"]["n_gpu_layers"], "Q8_0 fits less")
        expect("at Q8_0: expect ~" in alts[0]["text"] and "of Q4_K_M" in alts[0]["text"],
               alts[0]["text"])
        # Room for everything: both offload fully, and Q4_K_M (fewer bytes) stays the faster.
        out = json.loads(run("-m", a, "--vram", "8G", "--gpu-bandwidth", "300", "--json",
                             env=env).stdout)
        expect(out["plan"]["n_gpu_layers"] == 5 and out["plan"]["output_on_gpu"], "full offload")
        text = out["alternatives"][0]["text"]
        expect(text.startswith("all 5 layers fit at Q8_0: expect ~") and
               "of Q4_K_M with all 5 layers, so Q4_K_M stays the faster choice" in text, text)
        # The text form: placement, the memory table, the expectation, the sentence.
        p = run("-m", a, "--vram", "48M", "--gpu-bandwidth", "300", "--kv", "q8_0", "--ctx",
                "2048", env=env)
        for want in ("placement:", "weights", "KV cache", "scratch", "margin", "expected:",
                     "other quant:", "300 GB/s (given)", "KV q8_0"):
            expect(want in p.stdout, f"text output lacks {want!r}:\n{p.stdout}")


def case_hf_cache():
    with tempfile.TemporaryDirectory() as d, tempfile.TemporaryDirectory() as hub:
        snap = os.path.join(hub, "models--someone--model-GGUF", "snapshots", "0123abc")
        blobs = os.path.join(hub, "models--someone--model-GGUF", "blobs")
        os.makedirs(snap)
        os.makedirs(blobs)
        a = os.path.join(d, "m-q4_k_m.gguf")
        synth(a, "qwen2.5-coder-0.5b", "q4_k_m", 3)
        blob = os.path.join(blobs, "e3b0c442")
        synth(blob, "qwen2.5-coder-0.5b", "q4_0", 3)
        os.symlink(blob, os.path.join(snap, "model-q4_0.gguf"))  # as huggingface_hub lays it out
        out = json.loads(run("-m", a, "--vram", "1G", "--gpu-bandwidth", "300", "--json",
                             env={"HF_HUB_CACHE": hub}).stdout)
        alts = out["alternatives"]
        expect(len(alts) == 1 and alts[0]["quant"] == "Q4_0", f"alternatives {alts}")
        expect(alts[0]["path"].endswith("model-q4_0.gguf"), alts[0]["path"])
        out = json.loads(run("-m", a, "--json", env={"HF_HUB_CACHE": hub + "/none"}).stdout)
        expect(out["alternatives"] == [], "no cache, no alternatives")


def case_iq3_xs():
    # The choice: partial offload of a Q4_K_M against full offload of an IQ3_XS beside it.
    # The 1.5B shape (rows of 1536, a multiple of 256, so the IQ3 types are really there), 4
    # blocks: Q4_K_M 109 MiB of weights, IQ3_XS 74 MiB. With 48 MiB of scratch and the 256 MiB
    # margin, 400M holds 3 of the Q4_K_M's 5 layers and all of the IQ3_XS's.
    with tempfile.TemporaryDirectory() as d, tempfile.TemporaryDirectory() as hub:
        a, b = os.path.join(d, "m-q4_k_m.gguf"), os.path.join(d, "m-iq3_xs.gguf")
        synth(a, "qwen2.5-coder-1.5b", "q4_k_m", 4)
        synth(b, "qwen2.5-coder-1.5b", "iq3_xs", 4)
        args = ("-m", a, "--vram", "400M", "--gpu-bandwidth", "300", "--ctx", "512")
        out = json.loads(run(*args, "--json", env={"HF_HUB_CACHE": hub}).stdout)
        expect(out["quant"] == "Q4_K_M", "model quant")
        check_plan(out, 4, 400 << 20)
        expect(0 < out["plan"]["n_gpu_layers"] < 5, f"Q4_K_M partial: {out['plan']}")
        alts = out["alternatives"]
        expect(len(alts) == 1 and alts[0]["quant"] == "IQ3_XS", f"alternatives {alts}")
        expect(alts[0]["plan"]["n_gpu_layers"] == 5, f"IQ3_XS full: {alts[0]['plan']}")
        expect(alts[0]["weight_bytes"] < 0.75 * out["weight_bytes"], "IQ3_XS is smaller")
        text = alts[0]["text"]
        expect(text.startswith("all 5 layers fit at IQ3_XS: expect ~") and
               f"the tokens/s of Q4_K_M with {out['plan']['n_gpu_layers']} layers" in text, text)
        p = run(*args, env={"HF_HUB_CACHE": hub})
        expect("other quant: all 5 layers fit at IQ3_XS" in p.stdout, p.stdout)


def case_default_model():
    path = os.environ.get("AUGURY_TEST_MODEL")
    if not path:
        if os.environ.get("AUGURY_REQUIRE_MODELS") == "1":
            sys.exit("AUGURY_TEST_MODEL is not set but AUGURY_REQUIRE_MODELS=1")
        sys.exit(77)
    # Qwen2.5-Coder-1.5B Q4_K_M (1.04 GiB): whole in 4 GiB, partly in 1 GiB.
    for vram, full in (("4G", True), ("1G", False)):
        out = json.loads(run("-m", path, "--vram", vram, "--gpu-bandwidth", "200", "--json").stdout)
        check_plan(out, 28, (4 if full else 1) << 30)
        n = out["plan"]["n_gpu_layers"]
        expect((n == 29) if full else (10 < n < 29), f"--vram {vram}: {n} layers")
        expect(out["plan"]["tokens_per_s"] > out["cpu_only_tokens_per_s"], "offload pays")


{"usage": case_usage, "siblings": case_siblings, "hf_cache": case_hf_cache,
 "iq3_xs": case_iq3_xs, "default_model": case_default_model}[CASE]()
print("ok")
