"""Reads a sharded safetensors folder with json + struct only, for the independent checkers."""
import json
import os
import struct


def read_folder(folder):
    """(index, {name: (dtype, shape, data bytes, shard file, shard metadata)})."""
    with open(os.path.join(folder, "model.safetensors.index.json")) as f:
        index = json.load(f)
    out = {}
    for shard in sorted(set(index["weight_map"].values())):
        with open(os.path.join(folder, shard), "rb") as f:
            data = f.read()
        n = struct.unpack("<Q", data[:8])[0]
        header = json.loads(data[8:8 + n])
        meta = header.get("__metadata__")
        for name, info in header.items():
            if name != "__metadata__":
                b, e = info["data_offsets"]
                out[name] = (info["dtype"], info["shape"], data[8 + n + b:8 + n + e], shard, meta)
    return index, out
