#!/usr/bin/python3
"""Adds seeded LoRA factors to every linear module of an mcore checkpoint, in the two forms MindSpeed produces, and
merges them independently (docs/mapping.md 5.4-5.5) to give the expected result:

  OUT/combined   base as X.base_layer.weight plus X.lora_A/B.default.weight (grouped GEMM: weightN_lora_a/_b)
  OUT/lora-only  only the LoRA keys (training with --lora-ckpt-filter), its own tracker at iteration 5
  OUT/merged     plain X.weight = bf16(W + bf16(s * bf16(B @ A))), every step in float32, the product summed exactly

All written with torch.save, pickle protocol 4, defaultdict models, like the reference.
"""
import argparse
import collections
import hashlib
import os
import re

import torch

LINEAR = re.compile(r"(linear_\w+|eh_proj)\.weight$")


def merge(w, left, right, s):
    prod = (left.double() @ right.double()).float()
    d = prod.to(torch.bfloat16)
    t = (d.float() * torch.tensor(s, dtype=torch.float32)).to(torch.bfloat16)
    return (w.float() + t.float()).to(w.dtype)


def save(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save(obj, path, pickle_protocol=4)


def seeded(key, w):
    """A generator seeded by a tensor's key and bytes."""
    h = hashlib.sha256(key.encode() + w.contiguous().view(torch.int16 if w.element_size() == 2 else torch.uint8)
                       .numpy().tobytes()).hexdigest()
    return torch.Generator().manual_seed(int(h[:15], 16))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mcore", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--r", type=int, default=4)
    ap.add_argument("--alpha", type=float, default=8)
    ap.add_argument("--hidden", type=int, required=True)
    ap.add_argument("--local-experts", type=int, default=1, help="experts per grouped-GEMM rank file")
    a = ap.parse_args()
    s = a.alpha / a.r
    it = os.path.join(a.mcore, "iter_0000001")
    factors = 0
    for rank in sorted(os.listdir(it)):
        src = torch.load(os.path.join(it, rank, "model_optim_rng.pt"), map_location="cpu")
        combined, lora_only, merged = {}, {}, {}
        for top, value in src.items():
            if not top.startswith("model"):
                combined[top] = merged[top] = value
                continue
            c, l, m = (collections.defaultdict(dict) for _ in range(3))
            for key, w in value.items():
                # factors seeded by the module and its base weight: a module the layout replicates over tp or ep
                # ranks gets the same factors in every copy (as training keeps them), split ones get their own
                g = seeded(key, w)
                if key.endswith("experts.weight1") or key.endswith("experts.weight2"):
                    H, r = a.hidden, a.r
                    buf = w.reshape(-1)
                    # weight1 buffer [El, H, 2Ft] stored [H, El*2Ft]; weight2 buffer [El, Ft, H] stored [El*Ft, H]
                    if key.endswith("weight1"):
                        El = a.local_experts
                        rows, cols = H, w.numel() // (El * H)
                        A = (torch.rand(El, rows, r, generator=g) - 0.5).to(torch.bfloat16)
                        B = (torch.rand(El, r, cols, generator=g) - 0.5).to(torch.bfloat16)
                        stored_a, stored_b = A.reshape(H, r * El), B.reshape(r, El * cols)
                    else:
                        El = a.local_experts
                        rows, cols = w.shape[0] // El, H
                        A = (torch.rand(El, rows, r, generator=g) - 0.5).to(torch.bfloat16)
                        B = (torch.rand(El, r, cols, generator=g) - 0.5).to(torch.bfloat16)
                        stored_a, stored_b = A.reshape(El * rows, r), B.reshape(r * El, H)
                    merged_buf = torch.stack([merge(buf.view(El, rows, cols)[e], A[e], B[e], s) for e in range(El)])
                    c[key] = w.clone()
                    c[key + "_lora_a"], c[key + "_lora_b"] = stored_a.clone(), stored_b.clone()
                    l[key + "_lora_a"], l[key + "_lora_b"] = stored_a.clone(), stored_b.clone()
                    m[key] = merged_buf.reshape(w.shape).clone()
                    factors += 2
                elif LINEAR.search(key) and w.dim() == 2:
                    x = key[:-len(".weight")]
                    out, inp = w.shape
                    A = (torch.rand(a.r, inp, generator=g) - 0.5).to(torch.bfloat16)
                    B = (torch.rand(out, a.r, generator=g) - 0.5).to(torch.bfloat16)
                    lower = factors % 4 == 0  # some modules spell the factors lora_a / lora_b
                    an, bn = (x + ".lora_a.default.weight", x + ".lora_b.default.weight") if lower else \
                        (x + ".lora_A.default.weight", x + ".lora_B.default.weight")
                    c[x + ".base_layer.weight"] = w.clone()
                    c[an], c[bn] = A, B
                    l[an], l[bn] = A.clone(), B.clone()
                    m[key] = merge(w, B, A, s)
                    factors += 2
                else:
                    c[key] = m[key] = w.clone()
            combined[top], lora_only[top], merged[top] = c, l, m
        save(os.path.join(a.out, "combined", "iter_0000001", rank, "model_optim_rng.pt"), combined)
        save(os.path.join(a.out, "merged", "iter_0000001", rank, "model_optim_rng.pt"), merged)
        save(os.path.join(a.out, "lora-only", "iter_0000005", rank, "model_optim_rng.pt"), lora_only)
    for name, iteration in (("combined", "1"), ("merged", "1"), ("lora-only", "5")):
        with open(os.path.join(a.out, name, "latest_checkpointed_iteration.txt"), "w") as f:
            f.write(iteration)
    print("added %d LoRA factors" % factors)


if __name__ == "__main__":
    main()
