#!/usr/bin/python3
"""Independent check of an HF -> mcore conversion, written from deepseek3-mcore-mapping.md alone.

Loads every rank file with real torch.load, recomputes what each should hold from the HF safetensors with
torch ops (chunk, cat, transpose, view), the way the reference converter builds its state dicts, and compares
keys (and their order), dtypes, shapes and bits. Prints "OK ..." and exits 0, or lists differences and exits 1.
"""
import argparse
import json
import os
import sys

import torch

from safetensors_folder import read_folder

DTYPES = {"BF16": torch.bfloat16, "F16": torch.float16, "F32": torch.float32, "F64": torch.float64,
          "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
          "BOOL": torch.bool}


def load_hf(folder):
    _, raw = read_folder(folder)
    tensors = {}
    for name, (dtype, shape, data, _, _) in raw.items():
        t = torch.frombuffer(bytearray(data), dtype=DTYPES[dtype])
        tensors[name] = t.reshape(shape) if shape else t.reshape(())
    return tensors


def placement(cfg, a):
    """(pp, v) -> list of (hf index, local slot); docs/mapping.md section 4."""
    L = a.num_layers if a.num_layers is not None else cfg["num_hidden_layers"] + len(a.noop)
    noop = set(a.noop)
    R = L - len(noop)
    kc = cfg.get("first_k_dense_replace", 0)  # DeepSeek-V4 has no dense layers
    k = a.first_k_dense_replace if a.first_k_dense_replace is not None else kc
    seq = list(range(R)) if k >= kc else list(range(k)) + list(range(kc, kc + R - k))
    out = {}
    if a.dualpipe:
        s = L // a.pp // 2
        rem = list(range(L))
        order = []
        while rem:
            order += rem[:s] + rem[-s:]
            rem = rem[s:-s]
        for p in range(a.pp):
            for v in range(2):
                slots = order[p * 2 * s + v * s: p * 2 * s + (v + 1) * s]
                real = [x for x in slots if x not in noop]
                out[(p, v)] = [(x - len([n for n in noop if n < x]), i) for i, x in enumerate(real)]
        return out, 2
    it = iter(seq)
    if a.num_layer_list:
        for p, cnt in enumerate(a.num_layer_list):
            out[(p, 0)] = [(next(it), i) for i in range(cnt)]
        return out, 1
    if a.vpp:
        V = (L // a.pp) // a.vpp
        for v in range(V):
            for p in range(a.pp):
                q = v * a.pp + p
                out[(p, v)] = [(next(it), i) for i in range(a.vpp) if q * a.vpp + i not in noop]
        return out, V
    c = L // a.pp
    for p in range(a.pp):
        out[(p, 0)] = [(next(it), i) for i in range(c) if p * c + i not in noop]
    return out, 1


def rank_files(a, V, chunk):
    """{rank dir: {model key: state dict}} for every (tp, pp, ep) rank file; chunk(sd, p, v, t, r) fills one chunk."""
    files = {}
    for p in range(a.pp):
        for r in range(a.ep):
            for t in range(a.tp):
                name = "mp_rank_%02d" % t + ("_%03d" % p if a.pp > 1 else "") + ("_%03d" % r if a.ep > 1 else "")
                models = {}
                for v in range(V):
                    sd = {}
                    chunk(sd, p, v, t, r)
                    models["model%d" % v if V > 1 or a.vpp or a.dualpipe else "model"] = sd
                files[name] = models
    return files


def expected_files(cfg, a, hf):
    H = cfg["hidden_size"]; E = cfg["n_routed_experts"]; nH = cfg["num_attention_heads"]
    dn = cfg["qk_nope_head_dim"]; dr = cfg["qk_rope_head_dim"]; dv = cfg["v_head_dim"]
    rq = cfg["q_lora_rank"]; kc = cfg["first_k_dense_replace"]
    tp, pp, ep = a.tp, a.pp, a.ep
    M = a.mtp
    old = a.key_names == "2025.03"
    places, V = placement(cfg, a)

    def rows(t, i):
        return torch.chunk(t, tp, dim=0)[i].clone()

    def cols(t, i):
        return torch.chunk(t, tp, dim=1)[i].clone()

    def gated(prefix, t):
        g = hf[prefix + "gate_proj.weight"]; u = hf[prefix + "up_proj.weight"]; d = hf[prefix + "down_proj.weight"]
        return torch.cat([rows(g, t), rows(u, t)], dim=0), cols(d, t)

    def layer(sd, pre, h, t, r):
        P = "model.layers.%d." % h
        A = P + "self_attn."
        sd[pre + "input_layernorm.weight"] = hf[P + "input_layernorm.weight"]
        sd[pre + "pre_mlp_layernorm.weight"] = hf[P + "post_attention_layernorm.weight"]
        sa = pre + "self_attention."
        sd[sa + "linear_qkv.weight"] = torch.cat([hf[A + "q_a_proj.weight"], hf[A + "kv_a_proj_with_mqa.weight"]], 0)
        sd[sa + "linear_proj.weight"] = cols(hf[A + "o_proj.weight"], t)
        sd[sa + "q_layernorm.weight"] = hf[A + "q_a_layernorm.weight"]
        sd[sa + ("k_layernorm.weight" if old else "kv_layernorm.weight")] = hf[A + "kv_a_layernorm.weight"]
        qb = hf[A + "q_b_proj.weight"]; kvb = hf[A + "kv_b_proj.weight"]
        if a.mla_mm_split:
            q3 = qb.view(nH, dn + dr, rq); kv3 = kvb.view(nH, dn + dv, -1)
            sd[sa + "linear_qk_nope.weight"] = rows(q3[:, :dn, :].reshape(nH * dn, rq), t)
            sd[sa + "linear_qk_rope.weight"] = rows(q3[:, dn:, :].reshape(nH * dr, rq), t)
            sd[sa + "linear_kv_nope.weight"] = rows(kv3[:, :dn, :].reshape(nH * dn, -1), t)
            sd[sa + "linear_v.weight"] = rows(kv3[:, dn:, :].reshape(nH * dv, -1), t)
        else:
            sd[sa + ("linear_qb.weight" if old else "linear_q_up_proj.weight")] = rows(qb, t)
            sd[sa + ("linear_kvb.weight" if old else "linear_kv_up_proj.weight")] = rows(kvb, t)
        if "index_n_heads" in cfg:
            # DeepSeek-V3.2's DSA indexer: copied whole into every rank, dtypes kept
            for k in ("wq_b.weight", "wk.weight", "k_norm.weight", "k_norm.bias", "weights_proj.weight"):
                sd[sa + "dsa_indexer." + k] = hf[A + "indexer." + k]
        if h < kc:
            sd[pre + "mlp.linear_fc1.weight"], sd[pre + "mlp.linear_fc2.weight"] = gated(P + "mlp.", t)
            return
        sd[pre + "mlp.router.weight"] = hf[P + "mlp.gate.weight"][:E]
        sd[pre + "mlp.router.expert_bias"] = hf[P + "mlp.gate.e_score_correction_bias"][:E]
        if cfg["n_shared_experts"] > 0:
            sd[pre + "mlp.shared_experts.linear_fc1.weight"], sd[pre + "mlp.shared_experts.linear_fc2.weight"] = \
                gated(P + "mlp.shared_experts.", t)
        X = P + "mlp.experts.%d."
        if a.grouped_gemm:
            if a.tp_extend_ep:
                El = E // (ep * tp); first = (r * tp + t) * El
                w1 = [torch.cat([hf[X % g + "gate_proj.weight"], hf[X % g + "up_proj.weight"]], 0).t()
                      for g in range(first, first + El)]
                w2 = [hf[X % g + "down_proj.weight"].t() for g in range(first, first + El)]
            else:
                El = E // ep; first = r * El
                w1 = [torch.cat([rows(hf[X % g + "gate_proj.weight"], t), rows(hf[X % g + "up_proj.weight"], t)], 0).t()
                      for g in range(first, first + El)]
                w2 = [cols(hf[X % g + "down_proj.weight"], t).t() for g in range(first, first + El)]
            sd[pre + "mlp.experts.weight1"] = torch.stack(w1).contiguous().view(H, -1)
            sd[pre + "mlp.experts.weight2"] = torch.cat(w2, 0).contiguous()
        else:
            El = E // ep
            for l in range(El):
                f1, f2 = gated(X % (r * El + l), t)
                sd[pre + "mlp.experts.local_experts.%d.linear_fc1.weight" % l] = f1
                sd[pre + "mlp.experts.local_experts.%d.linear_fc2.weight" % l] = f2

    def final(sd, t):
        sd["final_layernorm.weight" if M > 0 else "decoder.final_layernorm.weight"] = hf["model.norm.weight"]
        sd["output_layer.weight"] = rows(hf["lm_head.weight"], t)

    final_chunk = (0, 1) if a.dualpipe else (pp - 1, V - 1)

    def chunk(sd, p, v, t, r):
        if (p, v) == (0, 0):
            sd["embedding.word_embeddings.weight"] = rows(hf["model.embed_tokens.weight"], t)
        if (p, v) == final_chunk and a.dualpipe:
            final(sd, t)
        if (p, v) == final_chunk:
            for m in range(M):
                h = cfg["num_hidden_layers"] + m
                P = "model.layers.%d." % h
                mp = ("mtp_layers.%d." if old else "mtp.layers.%d.") % m
                sd[mp + "enorm.weight"] = hf[P + "enorm.weight"]
                sd[mp + "hnorm.weight"] = hf[P + "hnorm.weight"]
                sd[mp + "eh_proj.weight"] = rows(hf[P + "eh_proj.weight"], t)
                if pp > 1:
                    key = (mp + "embedding.word_embeddings.weight") if old else "embedding.word_embeddings.weight"
                    if key not in sd:  # one shared key for every MTP layer: the first one's copy
                        sd[key] = rows(hf[P + "embed_tokens.weight"], t)
                layer(sd, mp + "transformer_layer.", h, t, r)
                sd[(mp + "final_layernorm.weight") if old else "mtp.final_layernorms.%d.weight" % m] = \
                    hf[P + "shared_head.norm.weight"]
        for h, i in places[(p, v)]:
            layer(sd, "decoder.layers.%d." % i, h, t, r)
        if (p, v) == final_chunk and not a.dualpipe:
            final(sd, t)

    return rank_files(a, V, chunk)


def expected_files_v4(cfg, a, hf):
    """DeepSeek-V4 (deepseek4-mcore-mapping.md appendix A): expert-TP 1, experts whole on every tp rank."""
    H = cfg["hidden_size"]; E = cfg["n_routed_experts"]; R = cfg["num_hidden_layers"]
    cr = cfg["compress_ratios"]; n_hash = cfg["num_hash_layers"]
    tp, pp, ep = a.tp, a.pp, a.ep
    M = a.mtp
    places, V = placement(cfg, a)

    def rows(t, i):
        return torch.chunk(t, tp, dim=0)[i].clone()

    def cols(t, i):
        return torch.chunk(t, tp, dim=1)[i].clone()

    def layer(sd, pre, P, h, t, r, mtp):
        sd[pre + "input_layernorm.weight"] = hf[P + "attn_norm.weight"]
        sd[pre + "pre_mlp_layernorm.weight"] = hf[P + "ffn_norm.weight"]
        sa = pre + "self_attention."
        A = P + "attn."
        sd[sa + "attn_sink"] = rows(hf[A + "attn_sink"], t)
        sd[sa + "kv_layernorm.weight"] = hf[A + "kv_norm.weight"]
        sd[sa + "q_layernorm.weight"] = hf[A + "q_norm.weight"]
        sd[sa + "linear_o_down_proj.weight"] = rows(hf[A + "wo_a.weight"], t)
        sd[sa + "linear_kv.weight"] = hf[A + "wkv.weight"]
        sd[sa + "linear_o_up_proj.weight"] = cols(hf[A + "wo_b.weight"], t)
        sd[sa + "linear_q.weight"] = hf[A + "wq_a.weight"]
        sd[sa + "linear_q_up_proj.weight"] = rows(hf[A + "wq_b.weight"], t)
        ratio = 0 if mtp else cr[h]
        if ratio != 0:
            for k in ("ape", "norm.weight", "wgate.weight", "wkv.weight"):
                sd[sa + "compressor." + k] = hf[A + "compressor." + k]
        if ratio == 4:
            for k in ("ape", "norm.weight", "wgate.weight", "wkv.weight"):
                sd[sa + "indexer.kv_compressor." + k] = hf[A + "indexer.compressor." + k]
            sd[sa + "indexer.wq_b.weight"] = hf[A + "indexer.wq_b.weight"]
            sd[sa + "indexer.weights_proj.weight"] = hf[A + "indexer.weights_proj.weight"]
        F = P + "ffn."
        sd[pre + "mlp.router.weight"] = hf[F + "gate.weight"][:E]
        if not mtp and h < n_hash:
            sd[pre + "mlp.router.tid2eid"] = hf[F + "gate.tid2eid"]
        else:
            sd[pre + "mlp.router.expert_bias"] = hf[F + "gate.bias"]
        S = F + "shared_experts."
        sd[pre + "mlp.shared_experts.linear_fc1.weight"] = torch.cat([rows(hf[S + "w1.weight"], t),
                                                                     rows(hf[S + "w3.weight"], t)], 0)
        sd[pre + "mlp.shared_experts.linear_fc2.weight"] = cols(hf[S + "w2.weight"], t)
        for mk, hk in (("attn_mhc.", "hc_attn_"), ("mlp_mhc.", "hc_ffn_")):
            sd[pre + mk + "hc_base"] = hf[P + hk + "base"]
            sd[pre + mk + "hc_fn.weight"] = hf[P + hk + "fn"]
            sd[pre + mk + "hc_scale"] = hf[P + hk + "scale"]
        X = F + "experts.%d."
        El = E // ep
        experts = range(r * El, (r + 1) * El)
        if a.grouped_gemm:
            w1 = [torch.cat([hf[X % g + "w1.weight"], hf[X % g + "w3.weight"]], 0).t() for g in experts]
            sd[pre + "mlp.experts.weight1"] = torch.stack(w1).contiguous().view(H, -1)
            sd[pre + "mlp.experts.weight2"] = torch.cat([hf[X % g + "w2.weight"].t() for g in experts], 0).contiguous()
        else:
            for l, g in enumerate(experts):
                w1, w3, w2 = hf[X % g + "w1.weight"], hf[X % g + "w3.weight"], hf[X % g + "w2.weight"]
                if a.etp > 1:  # expert-TP = tp: split like V3's experts
                    fc1, fc2 = torch.cat([rows(w1, t), rows(w3, t)], 0), cols(w2, t)
                else:  # expert-TP 1: whole on every tp rank
                    fc1, fc2 = torch.cat([w1, w3], 0), w2
                sd[pre + "mlp.experts.local_experts.%d.linear_fc1.weight" % l] = fc1
                sd[pre + "mlp.experts.local_experts.%d.linear_fc2.weight" % l] = fc2

    def hc_head(sd, pre, P):
        sd[pre + "hc_base"] = hf[P + "hc_head_base"]
        sd[pre + "hc_fn.weight"] = hf[P + "hc_head_fn"]
        sd[pre + "hc_scale"] = hf[P + "hc_head_scale"]

    final_chunk = (pp - 1, V - 1)

    def chunk(sd, p, v, t, r):
        if (p, v) == (0, 0):
            sd["embedding.word_embeddings.weight"] = rows(hf["embed.weight"], t)
        if (p, v) == final_chunk:
            for m in range(M):
                P = "mtp.%d." % m
                mp = "mtp.layers.%d." % m
                sd[mp + "enorm.weight"] = hf[P + "enorm.weight"]
                sd[mp + "hnorm.weight"] = hf[P + "hnorm.weight"]
                sd[mp + "eh_proj.weight"] = rows(torch.cat([hf[P + "e_proj.weight"],
                                                            hf[P + "h_proj.weight"]], 1), t)
                if pp > 1:  # the MTP layer's own embedding where the checkpoint has one (Base), else the model's
                    own = "mtp.%d.emb.tok_emb.weight" % (M - 1)  # each MTP layer writes the key: the last one's wins
                    src = own if own in hf else "embed.weight"
                    sd["embedding.word_embeddings.weight"] = rows(hf[src], t)
                layer(sd, mp + "transformer_layer.", P, R + m, t, r, True)
                sd["mtp.final_layernorms.%d.weight" % m] = hf[P + "norm.weight"]
                hc_head(sd, mp + "hc_head.", P)
        for h, i in places[(p, v)]:
            layer(sd, "decoder.layers.%d." % i, "layers.%d." % h, h, t, r, False)
        if (p, v) == final_chunk:
            sd["final_layernorm.weight"] = hf["norm.weight"]
            sd["output_layer.weight"] = rows(hf["head.weight"], t)
            hc_head(sd, "hc_head.", "")

    return rank_files(a, V, chunk)


def check_v4_args(args, cfg, a):
    if args is None or type(args).__name__ != "Namespace":
        return ["no args Namespace"]
    got = vars(args)
    L = a.num_layers if a.num_layers is not None else cfg["num_hidden_layers"] + len(a.noop)
    want = {"tensor_model_parallel_size": a.tp, "pipeline_model_parallel_size": a.pp,
            "expert_model_parallel_size": a.ep, "expert_tensor_parallel_size": max(1, a.etp), "num_layers": L,
            "hidden_size": cfg["hidden_size"], "num_attention_heads": cfg["num_attention_heads"],
            "num_experts": cfg["n_routed_experts"], "n_hash_layers": cfg["num_hash_layers"],
            "compress_ratios": cfg["compress_ratios"][:cfg["num_hidden_layers"] + cfg["num_nextn_predict_layers"]],
            "untie_embeddings_and_output_weights": True, "tie_mtp_embeddings_and_lmhead": "true",
            "model_type_hf": "deepseek4", "router_bias": True, "ep_size": a.ep, "save_layer_by_layer": True}
    if a.v4_base:  # MindSpeed's deepseek4_base: no tie flag, which its mcore2hf reads as "write the Base copies"
        want["tie_mtp_embeddings_and_lmhead"] = None
        want["model_type_hf"] = "deepseek4_base"
    if a.vpp:
        want["num_layers_per_virtual_pipeline_stage"] = a.vpp
    if a.num_layer_list:
        want["num_layer_list"] = ",".join(str(x) for x in a.num_layer_list)
    errors = ["args.%s is %r, expected %r" % (k, got.get(k), v) for k, v in want.items() if got.get(k) != v]
    if list(got)[:2] != ["model_type_hf", "load_model_type"]:  # the config reader's own fields come first
        errors.append("args starts with %r, expected model_type_hf, load_model_type" % list(got)[:2])
    return errors


def write(folder, files):
    import collections
    for name, models in files.items():
        os.makedirs(os.path.join(folder, "iter_0000001", name))
        obj = {}
        if list(models) == ["model"]:
            obj["model"] = None
        obj["checkpoint_version"] = 3.0
        obj["iteration"] = 1
        for mk, sd in models.items():
            obj[mk] = collections.defaultdict(dict, {k: v.clone() for k, v in sd.items()})
        torch.save(obj, os.path.join(folder, "iter_0000001", name, "model_optim_rng.pt"), pickle_protocol=4)
    with open(os.path.join(folder, "latest_checkpointed_iteration.txt"), "w") as f:
        f.write("1")
    print("wrote %d rank file(s)" % len(files))


class UsageTracking(dict):
    """The HF tensors, remembering which ones the expected output used."""

    def __init__(self, tensors):
        super().__init__(tensors)
        self.used = set()

    def __getitem__(self, name):
        self.used.add(name)
        return dict.__getitem__(self, name)


def dropped_by_spec(name, cfg, a, used_layers):
    """Whether the spec lets HF -> mcore leave this input tensor out (docs/mapping.md 2.1, 3.8, 4.1)."""
    if cfg.get("model_type") == "deepseek_v4":
        if name.startswith("mtp."):
            m = int(name.split(".")[1])
            return m >= a.mtp or name.endswith(".emb.tok_emb.weight") or name.endswith(".head.weight")
        return False
    if not name.startswith("model.layers."):
        return False
    layer = int(name.split(".")[2])
    n = cfg["num_hidden_layers"]
    if layer >= n:  # an MTP layer
        m = layer - n
        if m >= a.mtp or name.endswith("shared_head.head.weight"):
            return True
        if name.endswith(".embed_tokens.weight"):
            return a.pp == 1 or (m > 0 and a.key_names != "2025.03")
        return False
    return layer not in used_layers  # not part of the layout (fewer layers, or skipped dense layers)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hf", required=True)
    ap.add_argument("--mcore", required=True)
    ap.add_argument("--tp", type=int, default=1)
    ap.add_argument("--pp", type=int, default=1)
    ap.add_argument("--ep", type=int, default=1)
    ap.add_argument("--vpp", type=int, default=0)
    ap.add_argument("--num-layer-list", type=lambda s: [int(x) for x in s.split(",")], default=None)
    ap.add_argument("--noop", type=lambda s: [int(x) for x in s.split(",")], default=[])
    ap.add_argument("--num-layers", type=int, default=None)
    ap.add_argument("--first-k-dense-replace", type=int, default=None)
    ap.add_argument("--mtp", type=int, default=0)
    ap.add_argument("--grouped-gemm", action="store_true")
    ap.add_argument("--tp-extend-ep", action="store_true")
    ap.add_argument("--mla-mm-split", action="store_true")
    ap.add_argument("--dualpipe", action="store_true")
    ap.add_argument("--key-names", default="current")
    ap.add_argument("--v4-base", action="store_true", help="DeepSeek-V4 converted as deepseek4_base")
    ap.add_argument("--etp", type=int, default=1, help="DeepSeek-V4 expert tensor-parallel size")
    ap.add_argument("--write", action="store_true",
                    help="write the expected rank files with torch.save (protocol 4, defaultdict models, as the "
                         "reference converter does) instead of checking")
    a = ap.parse_args()
    with open(os.path.join(a.hf, "config.json")) as f:
        cfg = json.load(f)
    hf = UsageTracking(load_hf(a.hf))
    v4 = cfg.get("model_type") == "deepseek_v4"
    expected = (expected_files_v4 if v4 else expected_files)(cfg, a, hf)
    if a.write:
        write(a.mcore, expected)
        return
    errors = []
    places, _ = placement(cfg, a)
    used_layers = {h for chunk in places.values() for h, _ in chunk}
    for name in sorted(hf):
        if name not in hf.used and not dropped_by_spec(name, cfg, a, used_layers):
            errors.append("HF tensor %s is not used, and the spec does not drop it" % name)
    with open(os.path.join(a.mcore, "latest_checkpointed_iteration.txt")) as f:
        if f.read() != "1":
            errors.append("tracker file does not hold '1'")
    it = os.path.join(a.mcore, "iter_0000001")
    present = sorted(os.listdir(it))
    if present != sorted(expected):
        errors.append("rank dirs %s, expected %s" % (present, sorted(expected)))
    tensors = 0
    for name, models in sorted(expected.items()):
        path = os.path.join(it, name, "model_optim_rng.pt")
        if not os.path.exists(path):
            continue
        got = torch.load(path, map_location="cpu")
        want_top = (["model"] if list(models) == ["model"] else []) + ["checkpoint_version", "iteration"] + \
                   ([] if list(models) == ["model"] else list(models))
        if v4:  # MindSpeed's V4 order, with the args Namespace its tools read back (deepseek4-mcore-mapping 2.2)
            want_top = ["args", "checkpoint_version", "iteration"] + list(models)
            errors.extend("%s: %s" % (name, e) for e in check_v4_args(got.get("args"), cfg, a))
        if list(got.keys()) != want_top:
            errors.append("%s: top-level keys %s, expected %s" % (name, list(got.keys()), want_top))
        if got.get("checkpoint_version") != 3.0 or got.get("iteration") != 1:
            errors.append("%s: checkpoint_version/iteration wrong" % name)
        for mk, sd in models.items():
            g = got.get(mk, {})
            if list(g.keys()) != list(sd.keys()):
                missing = [k for k in sd if k not in g]
                extra = [k for k in g if k not in sd]
                errors.append("%s/%s: key order or set differs; missing %s extra %s; got order %s" % (
                    name, mk, missing[:5], extra[:5], list(g.keys())[:8]))
            for k, want in sd.items():
                if k not in g:
                    continue
                have = g[k]
                tensors += 1
                if have.dtype != want.dtype or tuple(have.shape) != tuple(want.shape):
                    errors.append("%s/%s/%s: %s%s, expected %s%s" % (name, mk, k, have.dtype, tuple(have.shape),
                                                                  want.dtype, tuple(want.shape)))
                elif not have.is_contiguous() or have.storage_offset() != 0:
                    errors.append("%s/%s/%s: not a contiguous tensor of its own storage" % (name, mk, k))
                elif not torch.equal(have.contiguous().view(torch.uint8) if have.dim() else have.reshape(1).view(torch.uint8),
                                     want.contiguous().view(torch.uint8) if want.dim() else want.reshape(1).view(torch.uint8)):
                    errors.append("%s/%s/%s: values differ" % (name, mk, k))
    if errors:
        for e in errors[:40]:
            print("MISMATCH " + e)
        print("FAILED: %d difference(s)" % len(errors))
        sys.exit(1)
    print("OK %d rank file(s), %d tensors match the HF input" % (len(expected), tensors))


if __name__ == "__main__":
    main()
