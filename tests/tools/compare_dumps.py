#!/usr/bin/env python3
"""Compares augury's forward pass with llama.cpp's, tensor by tensor, in graph order:

    compare_dumps.py AUGURY_DIR PEER_DIR [--calls 0,1] [--layers 0,1]

AUGURY_DIR comes from build/dump_forward, PEER_DIR from
tests/fixtures/forward/dump_peer_tensors.py on the same token ids. For each tensor it prints how
many values are bit-identical and the largest difference, so the first step that departs from
llama.cpp's arithmetic stands out. Run by hand."""
import argparse
import os

import numpy as np

# (augury name, peer file stem) in the order the graph computes them; {L} is the layer.
STEPS = [
    ("attn_norm-{L}", "attn_norm-{L}"),
    ("Qcur-{L}", "Qcur-{L}__2_ADD"),
    ("Kcur-{L}", "Kcur-{L}__2_ADD"),
    ("Vcur-{L}", "Vcur-{L}__2_ADD"),
    ("Qrope-{L}", "Qcur-{L}__4_ROPE"),
    ("Krope-{L}", "Kcur-{L}__4_ROPE"),
    ("kqv_out-{L}", "kqv_out-{L}"),
    ("attn_out-{L}", None),  # unnamed in llama.cpp: the MUL_MAT after kqv_out
    ("ffn_inp-{L}", "ffn_inp-{L}"),
    ("ffn_norm-{L}", "ffn_norm-{L}"),
    ("ffn_gate-{L}", "ffn_gate-{L}"),
    ("ffn_up-{L}", "ffn_up-{L}"),
    ("ffn_swiglu-{L}", "ffn_swiglu-{L}"),
    ("ffn_out-{L}", "ffn_out-{L}"),
    ("l_out-{L}", "l_out-{L}"),
]


def load_peer(path):
    a = np.load(path)
    return a.reshape(-1, a.shape[-1]) if a.ndim > 1 else a.reshape(1, -1)


def flat_tokens(a, n_tok):
    """[.., tokens, features] in any head split -> [tokens, features]."""
    return a.reshape(n_tok, -1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("augury")
    ap.add_argument("peer")
    ap.add_argument("--calls", default="0")
    ap.add_argument("--layers", default="0")
    args = ap.parse_args()
    for call in args.calls.split(","):
        print(f"== call {call}")
        adir = os.path.join(args.augury, f"call{call}")
        pdir = os.path.join(args.peer, f"call{call}")
        with open(os.path.join(pdir, "index.txt"), encoding="utf-8") as f:
            index = [line.split()[0][:-4] for line in f if line.strip()]
        steps = []
        for layer in args.layers.split(","):
            for a, p in STEPS:
                if p is None:
                    after = index.index(f"kqv_out-{layer}")
                    p = index[after + 1]
                steps.append((a.format(L=layer), p.format(L=layer)))
        steps += [("result_norm", "result_norm"), ("result_output", "result_output")]
        for aname, pname in steps:
            apath = os.path.join(adir, aname + ".npy")
            ppath = os.path.join(pdir, pname + ".npy")
            if not os.path.exists(apath) or not os.path.exists(ppath):
                print(f"  {aname:16s} (missing {'augury' if not os.path.exists(apath) else 'peer'})")
                continue
            a = np.load(apath)
            p = np.load(ppath)
            n_tok = a.shape[0]
            p = p.reshape(-1)
            if p.size != a.size:
                # llama.cpp keeps only the output rows in the last layer / head
                p = p.reshape(-1, a.shape[1])
                a = a[-p.shape[0]:]
            p = p.reshape(a.shape)
            same = np.sum(a.view(np.uint32) == p.view(np.uint32))
            diff = np.max(np.abs(a.astype(np.float64) - p))
            print(f"  {aname:16s} identical {same}/{a.size}  max |diff| {diff:.3g}")


if __name__ == "__main__":
    main()
