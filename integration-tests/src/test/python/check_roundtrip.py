#!/usr/bin/python3
"""Checks an HF -> mcore -> HF round trip: every tensor of the output equals the input tensor of the same name,
bit for bit (dtype, shape, bytes), and every input tensor the layout converts is in the output.

Reads safetensors with its own parser (json + struct), and checks the output index against the shard headers.
"""
import argparse
import json
import os
import sys

from safetensors_folder import read_folder


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hf-in", required=True)
    ap.add_argument("--hf-out", required=True)
    ap.add_argument("--expect-missing", default="", help="comma-separated name fragments allowed to be absent")
    a = ap.parse_args()
    _, src = read_folder(a.hf_in)
    index, dst = read_folder(a.hf_out)
    errors = []
    for name, shard in index["weight_map"].items():
        if name not in dst or dst[name][3] != shard:
            errors.append("index names %s in %s, but that shard does not hold it" % (name, shard))
    total = sum(len(v[2]) for v in dst.values())
    if index["metadata"].get("total_size") != total:
        errors.append("total_size %s != %d" % (index["metadata"].get("total_size"), total))
    for name, (dtype, shape, data, _, _) in dst.items():
        if name not in src:
            errors.append("output has %s, which the input lacks" % name)
        elif src[name][:3] != (dtype, shape, data):
            errors.append("%s differs: %s%s vs input %s%s" % (name, dtype, shape, src[name][0], src[name][1]))
    allowed = [x for x in a.expect_missing.split(",") if x]
    for name in src:
        if name not in dst and not any(x in name for x in allowed):
            errors.append("input tensor %s is missing from the output" % name)
    if errors:
        for e in errors[:40]:
            print("MISMATCH " + e)
        print("FAILED: %d difference(s)" % len(errors))
        sys.exit(1)
    print("OK %d tensors identical" % len(dst))


if __name__ == "__main__":
    main()
