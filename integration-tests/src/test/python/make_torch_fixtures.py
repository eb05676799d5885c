#!/usr/bin/python3
"""Writes .pt files with real torch.save, in the shapes Megatron / MindSpeed checkpoints take, and a JSON of what
each tensor holds, for the Java reader to read back exactly."""
import argparse
import collections
import json
import os
import random
import sys

import numpy as np
import torch


def tensors():
    g = torch.Generator().manual_seed(3)
    base = torch.arange(12, dtype=torch.float32) * 1.5
    return collections.OrderedDict([
        ("decoder.layers.0.self_attention.linear_qkv.weight", torch.randn(4, 6, generator=g).to(torch.bfloat16)),
        ("decoder.layers.0.mlp.router.expert_bias", torch.randn(5, generator=g)),
        ("embedding.word_embeddings.weight", torch.randn(3, 2, generator=g).to(torch.float16)),
        ("ids", torch.arange(4, dtype=torch.int64)),
        ("view.of.shared.storage", base[3:9].view(2, 3)),
        ("shared.base", base),
        ("scalar", torch.tensor(2.5, dtype=torch.float32)),
    ])


def training_extras():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    return {
        "args": argparse.Namespace(lr=0.01, params_dtype=torch.bfloat16, name="run", layers=[1, 2]),
        "optimizer": opt.state_dict(),
        "rng_state": [{"random_rng_state": random.getstate(), "np_rng_state": np.random.get_state(),
                       "torch_rng_state": torch.get_rng_state()}],
        "opt_param_scheduler": {"max_lr": 0.01, "num_steps": 10},
    }


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    t = tensors()
    cases = {
        "p2_dict_with_training_state.pt": (2, lambda m: dict(model=dict(m), checkpoint_version=3.0, iteration=7,
                                                             **training_extras())),
        "p4_ordereddict.pt": (4, lambda m: {"model": collections.OrderedDict(m), "checkpoint_version": 3.0,
                                            "iteration": 1}),
        "p4_defaultdict.pt": (4, lambda m: {"checkpoint_version": 3.0, "iteration": 1,
                                            "model0": collections.defaultdict(dict, m)}),
        "p2_state_dict_metadata.pt": (2, lambda m: {"model": torch.nn.Linear(6, 4).state_dict()}),
    }
    expected = {}
    for name, (protocol, make) in cases.items():
        obj = make(t)
        torch.save(obj, os.path.join(out, name), pickle_protocol=protocol)
        key = "model0" if "model0" in obj else "model"
        entry = {}
        for k, v in obj[key].items():
            c = v.detach().contiguous()
            entry[k] = {"dtype": str(c.dtype).replace("torch.", ""), "shape": list(c.shape),
                        "hex": c.reshape(-1).view(torch.uint8).numpy().tobytes().hex() if c.dim() else
                        c.reshape(1).view(torch.uint8).numpy().tobytes().hex()}
        expected[name] = {"entry": key, "tensors": entry}
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected, f)
    print("wrote %d files" % len(cases))


if __name__ == "__main__":
    main()
