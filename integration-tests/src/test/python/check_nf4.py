#!/usr/bin/python3
"""Independent check of --qlora-nf4 (docs/mapping.md 7.1-7.6): recomputes, with numpy, the NF4 entries of every key the
spec quantises from the tensors check_mcore.py expects, and checks that every other key is left as it was."""
import json
import sys

import numpy as np
import torch

import check_mcore

CODE = np.array([-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
                 -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
                 0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
                 0.7229568362236023, 1.0], dtype=np.float32)
MIDS = ((CODE[:-1] + CODE[1:]) / np.float32(2)).astype(np.float32)
QUANTISED = ("output_layer.weight", "eh_proj.weight", "linear_qkv.weight", "linear_proj.weight",
             "linear_q_up_proj.weight", "linear_kv_up_proj.weight", "linear_qk_nope.weight", "linear_qk_rope.weight",
             "linear_kv_nope.weight", "linear_v.weight", "linear_fc1.weight", "linear_fc2.weight", "experts.weight1",
             "experts.weight2")


def format_n(w):
    x = w.float().reshape(-1).numpy().astype(np.float32).reshape(-1, 64)
    absmax = np.abs(x).max(axis=1)
    a = (x / absmax[:, None]).astype(np.float32)
    d = np.abs((a[:, :, None] - CODE[None, None, :]).astype(np.float32))
    idx = np.argmin(d, axis=2).reshape(-1)  # first minimum
    nib = (idx + 8) % 16
    packed = (nib[0::2] | (nib[1::2] << 4)).astype(np.uint8)
    return packed, torch.from_numpy(absmax).to(w.dtype).reshape(-1, 1)


def format_c_packed(w):
    x = w.float().reshape(-1).numpy().astype(np.float32)
    n = x.size
    full = n // 64 * 64
    out = []
    blocks = x[:full].reshape(-1, 64)
    absmax = np.abs(blocks).max(axis=1).astype(np.float32)
    inv = (np.float32(1) / np.maximum(absmax, np.float32(1e-38))).astype(np.float32)
    a = np.clip((blocks * inv[:, None]).astype(np.float32), -1, 1)
    out.append(np.searchsorted(MIDS, a.reshape(-1), side="left"))
    absmax_all = list(absmax)
    if full < n:
        tail = x[full:]
        am = max(np.float32(np.abs(tail).max()), np.float32(1e-38))
        out.append(np.searchsorted(MIDS, np.clip((tail / am).astype(np.float32), -1, 1), side="left"))
        absmax_all.append(am)
    idx = np.concatenate(out)
    if idx.size % 2:
        idx = np.append(idx, 7)
    return ((idx[0::2] << 4) | idx[1::2]).astype(np.uint8), np.array(absmax_all, dtype=np.float32)


def main():
    sys.argv, fmt = [sys.argv[0]] + sys.argv[2:], sys.argv[1]
    import argparse
    ap = argparse.ArgumentParser()
    for f in ("--hf", "--mcore"):
        ap.add_argument(f, required=True)
    for f in ("--tp", "--pp", "--ep", "--vpp", "--mtp"):
        ap.add_argument(f, type=int, default=1 if f in ("--tp", "--pp", "--ep") else 0)
    ap.add_argument("--grouped-gemm", action="store_true")
    ap.add_argument("--mla-mm-split", action="store_true")
    a = ap.parse_args()
    for k, v in dict(num_layer_list=None, noop=[], num_layers=None, first_k_dense_replace=None, tp_extend_ep=False,
                     dualpipe=False, key_names="current").items():
        setattr(a, k, v)
    cfg = json.load(open(a.hf + "/config.json"))
    expected = check_mcore.expected_files(cfg, a, check_mcore.load_hf(a.hf))
    errors, quantised, plain = [], 0, 0
    for name, models in expected.items():
        got = torch.load("%s/iter_0000001/%s/model_optim_rng.pt" % (a.mcore, name))
        for mk, sd in models.items():
            g = got[mk]
            for key, w in sd.items():
                if not key.endswith(QUANTISED):
                    plain += 1
                    if key not in g or not torch.equal(g[key].view(torch.uint8), w.contiguous().view(torch.uint8)):
                        errors.append("%s/%s: not kept as it was" % (name, key))
                    continue
                quantised += 1
                state = json.loads(bytes(g[key + ".quant_state.bitsandbytes__nf4"].tolist()))
                if state["shape"] != list(w.shape) or state["dtype"] != "bfloat16" or state["blocksize"] != 64:
                    errors.append("%s/%s: state %s" % (name, key, state))
                if not np.array_equal(g[key + ".quant_map"].numpy(), CODE):
                    errors.append("%s/%s: quant_map" % (name, key))
                if fmt == "npu":
                    packed, absmax = format_n(w)
                    if not np.array_equal(g[key].numpy(), packed) or g[key].dim() != 1:
                        errors.append("%s/%s: packed data differs" % (name, key))
                    if not torch.equal(g[key + ".absmax"].view(torch.int16), absmax.view(torch.int16)):
                        errors.append("%s/%s: absmax differs" % (name, key))
                    if any(k.startswith(key + ".nested") for k in g):
                        errors.append("%s/%s: nested entries in the NPU format" % (name, key))
                else:
                    packed, absmax = format_c_packed(w)
                    if not np.array_equal(g[key].numpy().reshape(-1), packed) or list(g[key].shape) != [packed.size, 1]:
                        errors.append("%s/%s: packed data differs" % (name, key))
                    offset = np.float32(absmax.astype(np.float64).mean())
                    if abs(state["nested_offset"] - float(offset)) > abs(float(offset)) * 1e-6:
                        errors.append("%s/%s: nested_offset %s vs %s" % (name, key, state["nested_offset"], offset))
                    absmax2 = g[key + ".nested_absmax"].numpy()
                    centred = (absmax - offset).astype(np.float32)
                    want2 = np.array([np.abs(centred[i:i + 256]).max() for i in range(0, centred.size, 256)],
                                     dtype=np.float32)
                    if not np.allclose(absmax2, want2, rtol=1e-6):
                        errors.append("%s/%s: nested_absmax differs" % (name, key))
    if errors:
        print("\n".join("MISMATCH " + e for e in errors[:20]))
        sys.exit(1)
    print("OK %d quantised and %d plain tensors" % (quantised, plain))


if __name__ == "__main__":
    main()
