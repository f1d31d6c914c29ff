#!/usr/bin/env python3
"""By-hand check (not run by CI): every `augury synth` preset x type loads in llama.cpp and gives
finite logits of sane spread, i.e. the random blocks are valid for the reference implementation.

usage: $(scripts/peer-venv)/bin/python tests/cli/synth_vs_llama_cpp.py BUILD_DIR [LAYERS] [N_VOCAB]
(defaults: 2 blocks, 1024 tokens; LAYERS 0 and N_VOCAB 0 mean the full model).
"""
import os
import subprocess
import sys
import tempfile

import numpy as np
from llama_cpp import Llama

PRESETS = ["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "qwen2.5-coder-7b", "llama-3.2-1b"]
TYPES = ["f16", "q8_0", "q4_0", "q4_k_m", "q5_k_m", "iq3_xs"]


def main():
    build = sys.argv[1]
    layers = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    n_vocab = int(sys.argv[3]) if len(sys.argv) > 3 else 1024
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        for like in PRESETS:
            for typ in TYPES:
                path = os.path.join(tmp, f"{like}-{typ}.gguf")
                args = [os.path.join(build, "augury"), "synth", "--like", like, "--type", typ,
                        "-o", path]
                if layers:
                    args += ["--layers", str(layers)]
                if n_vocab:
                    args += ["--n-vocab", str(n_vocab)]
                subprocess.run(args, check=True)
                llm = Llama(path, n_ctx=64, n_threads=2, verbose=False, logits_all=True)
                tokens = llm.tokenize(b"int main(void) { return 0; }", add_bos=False)
                llm.eval(tokens)
                logits = np.array(llm.scores[: len(tokens)])
                ok = bool(np.isfinite(logits).all()) and 0.05 < logits.std() < 20
                failures += not ok
                print(f"{like:20s} {typ:7s} {os.path.getsize(path):>12d} bytes  "
                      f"logits std {logits.std():.3f} max {np.abs(logits).max():.3f}  "
                      f"{'ok' if ok else 'FAIL'}")
                del llm
                os.unlink(path)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
