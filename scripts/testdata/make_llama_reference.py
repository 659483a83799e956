#!/usr/bin/env python3
# scripts/testdata/make_llama_reference.py — builds a tiny random Llama in Hugging Face layout and its logits, for the forward cross-check.
#
# An independent implementation of the Llama forward in numpy (float64), written from the Hugging Face
# modeling_llama definitions (RMSNorm, rotate_half RoPE on UN-permuted q/k, repeat_kv GQA, causal softmax,
# SwiGLU), NOT from qeval's code. It writes, into the output directory (default
# tests/data/tiny_llama):
#   config.json           LlamaForCausalLM config (2 layers, d_model 64, 4 query heads : 2 KV heads, d_ff 160,
#                         vocab 101, untied lm_head, rope_theta 10000, rms_norm_eps 1e-5)
#   model.safetensors     F32 weights under HF names; q_proj/k_proj rows in HF order, so qeval's safetensors
#                         reader must apply llama.cpp's permutation for the GGUF adjacent-pair RoPE to match
#   reference.json        tokens (2 sequences × 40), shapes, seed, and the numbers below
#   reference_logits.f64  logits [2, 40, 101], float64 little-endian, row-major
# Deterministic: numpy's PCG64 with a fixed seed; weights are rounded to float32 BEFORE the float64 forward,
# so the reference is the exact function of the stored weights (up to float64 rounding, ~1e-16 relative).
# Needs only numpy (PyTorch is not required; the safetensors file is written by hand: 8-byte little-endian
# header length, JSON header, raw data).
#
#   python3 scripts/testdata/make_llama_reference.py [out_dir]
import json
import os
import struct
import sys

import numpy as np

SEED = 20240229
CFG = dict(
    architectures=["LlamaForCausalLM"], model_type="llama", hidden_size=64, intermediate_size=160,
    num_attention_heads=4, num_key_value_heads=2, num_hidden_layers=2, vocab_size=101,
    max_position_embeddings=128, rope_theta=10000.0, rms_norm_eps=1e-5, tie_word_embeddings=False,
    bos_token_id=1, eos_token_id=2, hidden_act="silu", torch_dtype="float32",
)
B, T = 2, 40


def make_weights(rng):
    d, f, v = CFG["hidden_size"], CFG["intermediate_size"], CFG["vocab_size"]
    h, kv = CFG["num_attention_heads"], CFG["num_key_value_heads"]
    hd = d // h
    s = 1.0 / np.sqrt(d)
    w = {}

    def n(shape, scale):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    w["model.embed_tokens.weight"] = n((v, d), 1.0)
    for i in range(CFG["num_hidden_layers"]):
        p = f"model.layers.{i}."
        # Norm weights around 1 (not exactly 1) so that a forgotten norm weight shows.
        w[p + "input_layernorm.weight"] = (1.0 + n((d,), 0.2)).astype(np.float32)
        w[p + "post_attention_layernorm.weight"] = (1.0 + n((d,), 0.2)).astype(np.float32)
        w[p + "self_attn.q_proj.weight"] = n((h * hd, d), 2 * s)  # larger q/k → peaked attention
        w[p + "self_attn.k_proj.weight"] = n((kv * hd, d), 2 * s)
        w[p + "self_attn.v_proj.weight"] = n((kv * hd, d), s)
        w[p + "self_attn.o_proj.weight"] = n((d, h * hd), s)
        w[p + "mlp.gate_proj.weight"] = n((f, d), s)
        w[p + "mlp.up_proj.weight"] = n((f, d), s)
        w[p + "mlp.down_proj.weight"] = n((d, f), 1.0 / np.sqrt(f))
    w["model.norm.weight"] = (1.0 + n((d,), 0.2)).astype(np.float32)
    w["lm_head.weight"] = n((v, d), s * 4)
    return w


def rmsnorm(x, g, eps):
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * g


def rotate_half(x):
    half = x.shape[-1] // 2
    return np.concatenate([-x[..., half:], x[..., :half]], axis=-1)


def forward(w, tokens):
    """HF LlamaForCausalLM forward in float64. tokens: [B, T] → logits [B, T, V]."""
    W = {k: v.astype(np.float64) for k, v in w.items()}
    d, h, kv = CFG["hidden_size"], CFG["num_attention_heads"], CFG["num_key_value_heads"]
    hd, eps, theta = d // h, CFG["rms_norm_eps"], CFG["rope_theta"]
    b, t = tokens.shape
    x = W["model.embed_tokens.weight"][tokens]  # [B, T, D]
    inv_freq = 1.0 / theta ** (np.arange(0, hd, 2, dtype=np.float64) / hd)  # [hd/2]
    ang = np.arange(t, dtype=np.float64)[:, None] * inv_freq[None, :]     # [T, hd/2]
    emb = np.concatenate([ang, ang], axis=-1)                               # [T, hd]
    cos, sin = np.cos(emb)[None, None], np.sin(emb)[None, None]             # [1, 1, T, hd]
    mask = np.triu(np.full((t, t), -np.inf), k=1)
    for i in range(CFG["num_hidden_layers"]):
        p = f"model.layers.{i}."
        n1 = rmsnorm(x, W[p + "input_layernorm.weight"], eps)
        q = (n1 @ W[p + "self_attn.q_proj.weight"].T).reshape(b, t, h, hd).transpose(0, 2, 1, 3)
        k = (n1 @ W[p + "self_attn.k_proj.weight"].T).reshape(b, t, kv, hd).transpose(0, 2, 1, 3)
        v = (n1 @ W[p + "self_attn.v_proj.weight"].T).reshape(b, t, kv, hd).transpose(0, 2, 1, 3)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = h // kv
        k = np.repeat(k, rep, axis=1)  # repeat_kv: head j uses kv head j // rep
        v = np.repeat(v, rep, axis=1)
        s = q @ k.transpose(0, 1, 3, 2) / np.sqrt(hd) + mask
        s = s - s.max(axis=-1, keepdims=True)
        pr = np.exp(s)
        pr = pr / pr.sum(axis=-1, keepdims=True)
        o = (pr @ v).transpose(0, 2, 1, 3).reshape(b, t, h * hd)
        x = x + o @ W[p + "self_attn.o_proj.weight"].T
        n2 = rmsnorm(x, W[p + "post_attention_layernorm.weight"], eps)
        g = n2 @ W[p + "mlp.gate_proj.weight"].T
        u = n2 @ W[p + "mlp.up_proj.weight"].T
        x = x + ((g / (1.0 + np.exp(-g))) * u) @ W[p + "mlp.down_proj.weight"].T
    x = rmsnorm(x, W["model.norm.weight"], eps)
    return x @ W["lm_head.weight"].T


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name], dtype="<f4")
        raw = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(raw)]}
        offset += len(raw)
        blobs.append(raw)
    header["__metadata__"] = {"format": "pt"}
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * ((8 - len(hj) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for raw in blobs:
            f.write(raw)


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(root, "tests", "eval_forward", "data", "tiny_llama")
    os.makedirs(out, exist_ok=True)
    rng = np.random.Generator(np.random.PCG64(SEED))
    w = make_weights(rng)
    tokens = rng.integers(0, CFG["vocab_size"], size=(B, T), dtype=np.int64)
    tokens[:, 0] = CFG["bos_token_id"]
    logits = forward(w, tokens)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(CFG, f, indent=2, sort_keys=True)
        f.write("\n")
    write_safetensors(os.path.join(out, "model.safetensors"), w)
    logits.astype("<f8").tofile(os.path.join(out, "reference_logits.f64"))
    ref = {
        "generator": "scripts/testdata/make_llama_reference.py (numpy float64 HF-convention forward)",
        "seed": SEED,
        "tokens": tokens.tolist(),
        "logits_shape": list(logits.shape),
        "logits_file": "reference_logits.f64",
        "max_abs_logit": float(np.abs(logits).max()),
        "numpy": np.__version__,
    }
    with open(os.path.join(out, "reference.json"), "w") as f:
        json.dump(ref, f, indent=1)
        f.write("\n")
    print(f"wrote {out}: max|logit| = {ref['max_abs_logit']:.4f}")


if __name__ == "__main__":
    main()
