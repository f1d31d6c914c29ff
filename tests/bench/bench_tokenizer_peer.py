#!/usr/bin/env python3
"""The peer's side of tests/bench/bench_tokenizer.c: llama.cpp (llama-cpp-python) loading the
vocabulary and tokenizing the same file, whole and in 10 KB slices, parse_special off, in process
CPU time (best of the repeats).
Run: $(scripts/peer-venv)/bin/python tests/bench/bench_tokenizer_peer.py MODEL.gguf FILE [repeats]
Note: tokenize() goes through Python/ctypes; the slices show its per-call overhead."""
import json
import sys
import time

import llama_cpp


def main():
    model, path = sys.argv[1], sys.argv[2]
    repeats = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    data = open(path, "rb").read()
    best_load = 1e9
    for _ in range(repeats):
        t0 = time.process_time()
        llm = llama_cpp.Llama(model_path=model, vocab_only=True, verbose=False)
        best_load = min(best_load, time.process_time() - t0)
    best_whole, tokens = 1e9, 0
    for _ in range(repeats):
        t0 = time.process_time()
        tokens = len(llm.tokenize(data, add_bos=False, special=False))
        best_whole = min(best_whole, time.process_time() - t0)
    slice_len, best_slices, n_slices = 10 * 1024, 1e9, 0
    for _ in range(repeats):
        t0 = time.process_time()
        n_slices = 0
        for off in range(0, len(data) - slice_len + 1, slice_len):
            llm.tokenize(data[off:off + slice_len], add_bos=False, special=False)
            n_slices += 1
        best_slices = min(best_slices, time.process_time() - t0)
    print(json.dumps({"file_bytes": len(data), "tokens": tokens,
                      "load_vocab_only_ms": round(best_load * 1e3, 1),
                      "encode_mb_s": round(len(data) / best_whole / 1e6, 2),
                      "encode_ms_per_10kb": round(best_slices * 1e3 / max(n_slices, 1), 3)}))


if __name__ == "__main__":
    main()
