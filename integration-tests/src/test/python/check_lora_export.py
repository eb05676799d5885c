#!/usr/bin/python3
"""Checks a --save-lora-to-hf export (docs/mapping.md 5.6, with the fixes of 8.9-8.10) of a pp=1 checkpoint: recomputes
every PEFT tensor from the rank files with torch and compares bits, and checks adapter_config.json."""
import argparse
import json
import os
import sys

import torch

from safetensors_folder import read_folder

DT = {"BF16": torch.bfloat16, "F32": torch.float32}


def load_out(folder):
    _, raw = read_folder(folder)
    return {name: torch.frombuffer(bytearray(data), dtype=DT[dtype]).reshape(shape)
            for name, (dtype, shape, data, _, _) in raw.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lora", required=True)
    ap.add_argument("--iteration", default="iter_0000005")
    ap.add_argument("--out", required=True)
    ap.add_argument("--config", required=True)
    ap.add_argument("--tp", type=int, default=1)
    ap.add_argument("--ep", type=int, default=1)
    ap.add_argument("--mtp", type=int, default=0)
    ap.add_argument("--modules", nargs="+", required=True)
    a = ap.parse_args()
    cfg = json.load(open(a.config))
    rq = cfg["q_lora_rank"]
    ranks = {}
    for t in range(a.tp):
        for r in range(a.ep):
            name = "mp_rank_%02d" % t + ("_%03d" % r if a.ep > 1 else "")
            sd = torch.load(os.path.join(a.lora, a.iteration, name, "model_optim_rng.pt"), map_location="cpu")["model"]
            ranks[(t, r)] = {k.replace("lora_a.", "lora_A.").replace("lora_b.", "lora_B."): v for k, v in sd.items()}
    want = {}
    P = "base_model.model.model.layers.%d."

    def A(t, r, x):
        return ranks[(t, r)][x + ".lora_A.default.weight"]

    def B(t, r, x):
        return ranks[(t, r)][x + ".lora_B.default.weight"]

    def gated(h, r, x, hf):
        if "linear_fc1" in a.modules:
            want[hf + "gate_proj.lora_A.weight"] = A(0, r, x + "linear_fc1")
            want[hf + "up_proj.lora_A.weight"] = A(0, r, x + "linear_fc1")
            halves = [torch.chunk(B(t, r, x + "linear_fc1"), 2, 0) for t in range(a.tp)]
            want[hf + "gate_proj.lora_B.weight"] = torch.cat([g for g, _ in halves], 0)
            want[hf + "up_proj.lora_B.weight"] = torch.cat([u for _, u in halves], 0)
        if "linear_fc2" in a.modules:
            want[hf + "down_proj.lora_A.weight"] = torch.cat([A(t, r, x + "linear_fc2") for t in range(a.tp)], 1)
            want[hf + "down_proj.lora_B.weight"] = B(0, r, x + "linear_fc2")

    L = cfg["num_hidden_layers"]
    E = cfg["n_routed_experts"]
    for h in range(L + a.mtp):
        pre = "decoder.layers.%d." % h if h < L else "mtp.layers.%d.transformer_layer." % (h - L)
        hf = P % h
        sa = pre + "self_attention."
        if "linear_qkv" in a.modules:
            for m in ("q_a_proj", "kv_a_proj_with_mqa"):
                want[hf + "self_attn.%s.lora_A.weight" % m] = A(0, 0, sa + "linear_qkv")
            b = B(0, 0, sa + "linear_qkv")  # replicated over tp: one rank's copy (docs/mapping.md 8.9)
            want[hf + "self_attn.q_a_proj.lora_B.weight"] = b[:rq]
            want[hf + "self_attn.kv_a_proj_with_mqa.lora_B.weight"] = b[rq:]
        if "linear_proj" in a.modules:
            want[hf + "self_attn.o_proj.lora_A.weight"] = torch.cat([A(t, 0, sa + "linear_proj") for t in range(a.tp)], 1)
            want[hf + "self_attn.o_proj.lora_B.weight"] = B(0, 0, sa + "linear_proj")
        for mod, hfm in (("linear_q_up_proj", "q_b_proj"), ("linear_kv_up_proj", "kv_b_proj")):
            if mod in a.modules:
                want[hf + "self_attn.%s.lora_A.weight" % hfm] = A(0, 0, sa + mod)
                want[hf + "self_attn.%s.lora_B.weight" % hfm] = torch.cat([B(t, 0, sa + mod) for t in range(a.tp)], 0)
        if h < cfg["first_k_dense_replace"]:
            gated(h, 0, pre + "mlp.", hf + "mlp.")
            continue
        gated(h, 0, pre + "mlp.shared_experts.", hf + "mlp.shared_experts.")
        for r in range(a.ep):
            for l in range(E // a.ep):
                gated(h, r, pre + "mlp.experts.local_experts.%d." % l, hf + "mlp.experts.%d." % (r * (E // a.ep) + l))
    got = load_out(a.out)
    errors = [k for k in want if k not in got] + [k for k in got if k not in want]
    for k, v in want.items():
        if k in got and (got[k].dtype != v.dtype or not torch.equal(got[k].contiguous().view(torch.uint8),
                                                                     v.contiguous().view(torch.uint8))):
            errors.append("%s differs" % k)
    conf = json.load(open(os.path.join(a.out, "adapter_config.json")))
    names = {"linear_qkv": ["q_a_proj", "kv_a_proj_with_mqa"], "linear_proj": ["o_proj"], "linear_fc1": ["gate_proj", "up_proj"],
             "linear_fc2": ["down_proj"], "linear_q_up_proj": ["q_b_proj"], "linear_kv_up_proj": ["kv_b_proj"]}
    if conf["target_modules"] != [n for m in a.modules for n in names[m]] or conf["peft_type"] != "LORA":
        errors.append("adapter_config.json: %s" % conf)
    if errors:
        print("\n".join("MISMATCH " + e for e in errors[:30]))
        print("FAILED: %d" % len(errors))
        sys.exit(1)
    print("OK %d adapter tensors" % len(want))


if __name__ == "__main__":
    main()
