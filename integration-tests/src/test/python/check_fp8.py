#!/usr/bin/python3
"""Checks an fp8-to-bf16 output against the FP8 input, independently (docs/formats.md 3.3, 3.6): e4m3fn decoded with its
formula, multiplied by the block scale in float32 (numpy), rounded to bf16 by torch (round to nearest even).
DeepSeek-V4 (model_type deepseek_v4, 3.7): scales named <module>.scale in e8m0 (2^(e-127)); routed experts MXFP4, two
e2m1 codes per I8 byte (low nibble first), one e8m0 scale per 32 inputs of a row."""
import json
import os
import sys

import numpy as np
import torch

from safetensors_folder import read_folder


def read(folder, check_metadata=False):
    idx, out = read_folder(folder)
    for name, (_, _, _, shard, meta) in out.items():
        if check_metadata and meta != {"format": "pt"}:
            print("MISMATCH %s lacks __metadata__ format pt" % shard)
            sys.exit(1)
    return idx, {k: v[:4] for k, v in out.items()}


def e4m3(codes):
    c = codes.astype(np.int32)
    s = np.where(c & 0x80, -1.0, 1.0)
    e = (c >> 3) & 0xF
    m = c & 7
    v = np.where(e == 0, m / 8.0 * 2.0 ** -6, (1 + m / 8.0) * 2.0 ** (e - 7.0))
    return (s * v).astype(np.float32)


E2M1 = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6], dtype=np.float32)


def e8m0(codes):
    e = codes.astype(np.int64)
    return np.where(e == 0, np.float32(2.0 ** -127), np.ldexp(np.float32(1), (e - 127).astype(np.int32))).astype(
        np.float32)


def scale_of(name, v4):
    if not v4:
        return name + "_scale_inv"
    return (name[:-len(".weight")] if name.endswith(".weight") else name) + ".scale"


def main():
    fp8_dir, bf16_dir, block = sys.argv[1], sys.argv[2], int(sys.argv[3])
    _, src = read(fp8_dir)
    idx, dst = read(bf16_dir, check_metadata=True)
    cfg = json.load(open(os.path.join(bf16_dir, "config.json")))
    v4 = cfg.get("model_type") == "deepseek_v4"
    errors = []
    if "quantization_config" in cfg:
        errors.append("config.json still has quantization_config")
    if idx["metadata"].get("total_size") != sum(len(v[2]) for v in dst.values()):
        errors.append("total_size wrong")
    converted = 0
    for name, (dtype, shape, data, shard) in src.items():
        if name.endswith(".scale" if v4 else "_scale_inv"):
            if name in dst:
                errors.append("%s kept" % name)
            continue
        if name not in dst or dst[name][3] != shard:
            errors.append("%s missing or in another file" % name)
            continue
        if dtype != "F8_E4M3" and not (v4 and dtype == "I8"):
            if dst[name][:3] != (dtype, shape, data):
                errors.append("%s changed" % name)
            continue
        s_dtype, s_shape, s_data, _ = src[scale_of(name, v4)]
        raw = np.frombuffer(s_data, dtype=np.uint8 if s_dtype == "F8_E8M0" else np.float32)
        scale = (e8m0(raw) if s_dtype == "F8_E8M0" else raw).reshape(s_shape)
        if dtype == "I8":  # MXFP4
            b = np.frombuffer(data, dtype=np.uint8).reshape(shape)
            x = np.stack([E2M1[b & 0xF], E2M1[b >> 4]], axis=-1).reshape(shape[0], 2 * shape[1])
            shape = [shape[0], 2 * shape[1]]
            full = np.repeat(scale, 32, axis=1)[:, :shape[1]]
        else:
            x = e4m3(np.frombuffer(data, dtype=np.uint8)).reshape(shape)
            full = np.repeat(np.repeat(scale, block, axis=0), block, axis=1)[:shape[0], :shape[1]]
        y = (x * full).astype(np.float32)
        want = torch.from_numpy(y).to(torch.bfloat16).view(torch.int16).numpy().tobytes()
        if dst[name][0] != "BF16" or list(dst[name][1]) != list(shape) or dst[name][2] != want:
            errors.append("%s dequantised wrong" % name)
        converted += 1
    if errors:
        print("\n".join("MISMATCH " + e for e in errors[:20]))
        sys.exit(1)
    print("OK %d FP8 weights dequantised exactly, %d tensors in all" % (converted, len(dst)))


if __name__ == "__main__":
    main()
