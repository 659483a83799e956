#!/usr/bin/env python3
# scripts/testdata/make_gguf_fixtures.py — writes the GGUF and safetensors test fixtures of tests/data/{gguf,safetensors}.
#
# Independent reference: the expected fp32 values come from the PyPI `gguf` package (gguf-py, maintained with
# llama.cpp): gguf.quants.quantize() packs Q8_0/Q4_0/Q4_1/BF16 blocks, gguf.quants.dequantize() unpacks every
# type. gguf-py has no quantizer for Q4_K/Q6_K, so those blocks are built from random codes and random (finite,
# positive) fp16 super-block scales, and their expected values are again gguf.quants.dequantize(); one Q4_K and
# one Q6_K block with hand-computed values are checked in the C++ tests as well. Nothing here calls qeval.
#
#   pip install gguf numpy safetensors
#   python3 scripts/testdata/make_gguf_fixtures.py            # rewrites tests/data/gguf and tests/data/safetensors
#
# Deterministic: numpy Generator(PCG64) with fixed seeds; the same gguf/numpy versions give byte-identical files.
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

import gguf
from gguf import GGMLQuantizationType as T
from gguf import GGUFValueType as V
from gguf.quants import dequantize, quantize

ROOT = Path(__file__).resolve().parents[2]
GGUF_DIR = ROOT / "tests" / "data" / "gguf"
ST_DIR = ROOT / "tests" / "data" / "safetensors"


def write_expected(path_json: Path, entries: list[tuple[str, str, list[int], np.ndarray]], extra: dict) -> None:
    """Expected values as one raw little-endian float32 blob + a JSON index (name, type, shape, offset)."""
    blob = []
    index = []
    off = 0
    for name, typ, shape, values in entries:
        v = np.ascontiguousarray(values, dtype="<f4").reshape(-1)
        assert v.size == int(np.prod(shape)), name
        index.append({"name": name, "type": typ, "shape": shape, "offset": off, "count": int(v.size)})
        blob.append(v)
        off += v.size
    raw = path_json.with_suffix(".f32")
    np.concatenate(blob).astype("<f4").tofile(raw)
    doc = {"values_file": raw.name, "tensors": index}
    doc.update(extra)
    path_json.write_text(json.dumps(doc, indent=1) + "\n")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def manifest_sha256(d: Path) -> str:
    """Content hash of a safetensors directory as checkpoint.hpp defines it: SHA-256 of the `sha256sum`-style
    lines "<hex>  <name>" of config.json, the index (if any) and the weight files, sorted by name."""
    names = sorted(p.name for p in d.iterdir() if p.name == "config.json" or p.name.endswith(".safetensors")
                   or p.name.endswith(".index.json"))
    text = "".join(f"{sha256(d / n)}  {n}\n" for n in names)
    return hashlib.sha256(text.encode()).hexdigest()


def random_f16_scales(rng: np.random.Generator, n: int, lo: float, hi: float) -> np.ndarray:
    return rng.uniform(lo, hi, size=n).astype(np.float16)


def q4_k_blocks(rng: np.random.Generator, n_blocks: int) -> np.ndarray:
    """Random Q4_K blocks: d, dmin fp16 | 12 bytes of packed 6-bit scales/mins (any byte is valid) | 128 nibble bytes."""
    d = random_f16_scales(rng, n_blocks, 1e-4, 2e-2).view(np.uint8).reshape(n_blocks, 2)
    dmin = random_f16_scales(rng, n_blocks, 1e-4, 2e-2).view(np.uint8).reshape(n_blocks, 2)
    scales = rng.integers(0, 256, size=(n_blocks, 12), dtype=np.uint8)
    qs = rng.integers(0, 256, size=(n_blocks, 128), dtype=np.uint8)
    return np.concatenate([d, dmin, scales, qs], axis=1)


def q6_k_blocks(rng: np.random.Generator, n_blocks: int) -> np.ndarray:
    """Random Q6_K blocks: 128 ql bytes | 64 qh bytes | 16 int8 scales | d fp16."""
    ql = rng.integers(0, 256, size=(n_blocks, 128), dtype=np.uint8)
    qh = rng.integers(0, 256, size=(n_blocks, 64), dtype=np.uint8)
    sc = rng.integers(-128, 128, size=(n_blocks, 16)).astype(np.int8).view(np.uint8)
    d = random_f16_scales(rng, n_blocks, 1e-4, 2e-3).view(np.uint8).reshape(n_blocks, 2)
    return np.concatenate([ql, qh, sc, d], axis=1)


def quantized(rng: np.random.Generator, qtype: T, rows: int, cols: int) -> tuple[np.ndarray, np.ndarray]:
    """(raw bytes [rows, bytes_per_row], expected fp32 [rows, cols]) for one quantized tensor."""
    if qtype in (T.Q4_K, T.Q6_K):
        nb = rows * cols // 256
        raw = (q4_k_blocks if qtype == T.Q4_K else q6_k_blocks)(rng, nb).reshape(rows, -1)
    else:
        x = rng.normal(0.0, 0.05, size=(rows, cols)).astype(np.float32)
        raw = quantize(x, qtype)
    exp = dequantize(raw, qtype).astype(np.float32).reshape(rows, cols)
    assert np.all(np.isfinite(exp))
    return raw, exp


def add_quant(w: gguf.GGUFWriter, name: str, raw: np.ndarray, qtype: T) -> None:
    if qtype == T.F32:
        w.add_tensor(name, raw.astype(np.float32))
    elif qtype == T.F16:
        w.add_tensor(name, raw.astype(np.float16))
    else:
        w.add_tensor(name, raw, raw_dtype=qtype)


def make_types(rng: np.random.Generator) -> None:
    """types.gguf: every supported tensor type + every metadata value type; not a model (arch 'qeval-test')."""
    path = GGUF_DIR / "types.gguf"
    w = gguf.GGUFWriter(str(path), "qeval-test")
    kv = {}
    def put(key, val, vtype, sub=None, expect=None):
        w.add_key_value(key, val, vtype, sub)
        kv[key] = {"type": vtype.name, "value": val if expect is None else expect}
    put("test.u8", 200, V.UINT8)
    put("test.i8", -100, V.INT8)
    put("test.u16", 60000, V.UINT16)
    put("test.i16", -30000, V.INT16)
    put("test.u32", 4000000000, V.UINT32)
    put("test.i32", -2000000000, V.INT32)
    put("test.f32", 0.15625, V.FLOAT32)  # exactly representable
    put("test.bool_true", True, V.BOOL)
    put("test.bool_false", False, V.BOOL)
    put("test.string", "héllo, GGUF ✓", V.STRING)
    put("test.empty_string", "", V.STRING)
    put("test.u64", 18000000000000000000, V.UINT64)
    put("test.i64", -9000000000000000000, V.INT64)
    put("test.f64", 0.1, V.FLOAT64)
    put("test.arr_u8", [0, 1, 255], V.ARRAY, V.UINT8)
    put("test.arr_i32", [-1, 0, 7], V.ARRAY, V.INT32)
    put("test.arr_f32", [0.5, -2.25], V.ARRAY, V.FLOAT32)
    put("test.arr_str", ["a", "", "<0x0A>", "Ġthe"], V.ARRAY, V.STRING)
    put("test.arr_bool", [True, False], V.ARRAY, V.BOOL)
    put("test.arr_nested", [[1, 2], [3]], V.ARRAY, V.ARRAY)  # inner arrays: INT32

    entries = []
    f32 = rng.normal(0, 1, size=(3, 64)).astype(np.float32)
    w.add_tensor("t.f32", f32)
    entries.append(("t.f32", "F32", [3, 64], f32))
    # F16 with edge values: smallest subnormal 2^-24, largest normal 65504, −0, 1/3 rounded
    f16 = rng.normal(0, 1, size=(3, 64)).astype(np.float16)
    f16[0, :4] = [2.0 ** -24, 65504.0, -0.0, 1.0 / 3.0]
    w.add_tensor("t.f16", f16)
    entries.append(("t.f16", "F16", [3, 64], f16.astype(np.float32)))
    bf = quantize(rng.normal(0, 1, size=(3, 64)).astype(np.float32), T.BF16)
    w.add_tensor("t.bf16", bf, raw_dtype=T.BF16)
    entries.append(("t.bf16", "BF16", [3, 64], dequantize(bf, T.BF16)))
    for qtype, rows, cols in [(T.Q8_0, 3, 64), (T.Q4_0, 3, 64), (T.Q4_1, 3, 64), (T.Q4_K, 2, 512), (T.Q6_K, 2, 512)]:
        raw, exp = quantized(rng, qtype, rows, cols)
        name = "t." + qtype.name.lower()
        w.add_tensor(name, raw, raw_dtype=qtype)
        entries.append((name, qtype.name, [rows, cols], exp))
    t3 = np.arange(24, dtype=np.float32).reshape(2, 3, 4)  # value = flat row-major index
    w.add_tensor("t.f32_3d", t3)
    entries.append(("t.f32_3d", "F32", [2, 3, 4], t3))
    t1 = np.array([1.5, -2.0, 0.0, 3.25, 1e-3], dtype=np.float32)
    w.add_tensor("t.f32_1d", t1)
    entries.append(("t.f32_1d", "F32", [5], t1))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    write_expected(GGUF_DIR / "types_expected.json", entries, {"gguf": path.name, "sha256": sha256(path), "kv": kv})


# ---------------------------------------------------------------------------------------------- tiny Llama

TINY = dict(n_layers=2, d_model=32, n_heads=4, n_kv_heads=2, d_ff=64, vocab=40, ctx=128, eps=1e-5)
# storage type per tensor kind (mix of every type whose block fits d_model = 32 / d_ff = 64)
TINY_TYPES = {"token_embd": T.Q8_0, "attn_norm": T.F32, "attn_q": T.Q4_0, "attn_k": T.Q4_1, "attn_v": T.F16,
              "attn_output": T.BF16, "ffn_norm": T.F32, "ffn_gate": T.Q8_0, "ffn_up": T.F32, "ffn_down": T.Q4_0,
              "output_norm": T.F32, "output": T.Q8_0}


def tiny_shapes(c: dict) -> dict[str, list[int]]:
    d, hd = c["d_model"], c["d_model"] // c["n_heads"]
    s = {"token_embd.weight": [c["vocab"], d]}
    for i in range(c["n_layers"]):
        b = f"blk.{i}."
        s.update({b + "attn_norm.weight": [d], b + "attn_q.weight": [c["n_heads"] * hd, d],
                  b + "attn_k.weight": [c["n_kv_heads"] * hd, d], b + "attn_v.weight": [c["n_kv_heads"] * hd, d],
                  b + "attn_output.weight": [d, c["n_heads"] * hd], b + "ffn_norm.weight": [d],
                  b + "ffn_gate.weight": [c["d_ff"], d], b + "ffn_up.weight": [c["d_ff"], d],
                  b + "ffn_down.weight": [d, c["d_ff"]]})
    s["output_norm.weight"] = [d]
    s["output.weight"] = [c["vocab"], d]
    return s


def make_tiny_llama_gguf(rng: np.random.Generator, tied: bool) -> None:
    c = TINY
    name = "tiny_llama_tied" if tied else "tiny_llama"
    path = GGUF_DIR / f"{name}.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_block_count(c["n_layers"])
    w.add_context_length(c["ctx"])
    w.add_embedding_length(c["d_model"])
    w.add_feed_forward_length(c["d_ff"])
    w.add_head_count(c["n_heads"])
    w.add_head_count_kv(c["n_kv_heads"])
    w.add_layer_norm_rms_eps(c["eps"])
    if not tied:
        w.add_rope_freq_base(50000.0)  # the tied file omits it: the reader's default 10000 applies
    w.add_tokenizer_model("gpt2")
    tokens = [f"tok{i}" for i in range(c["vocab"])]
    w.add_token_list(tokens)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    entries = []
    summary = {}
    for tname, shape in tiny_shapes(c).items():
        if tied and tname == "output.weight":
            continue
        kind = tname.split(".")[-2]
        qtype = TINY_TYPES[kind]
        if len(shape) == 1:
            x = (1.0 + rng.normal(0, 0.1, size=shape)).astype(np.float32)
            w.add_tensor(tname, x)
            exp = x
        elif qtype in (T.F32, T.F16):
            x = rng.normal(0, 0.05, size=shape).astype(np.float32 if qtype == T.F32 else np.float16)
            w.add_tensor(tname, x)
            exp = x.astype(np.float32)
        elif qtype == T.BF16:
            raw = quantize(rng.normal(0, 0.05, size=shape).astype(np.float32), T.BF16)
            w.add_tensor(tname, raw, raw_dtype=T.BF16)
            exp = dequantize(raw, T.BF16)
        else:
            raw, exp = quantized(rng, qtype, shape[0], shape[1])
            w.add_tensor(tname, raw, raw_dtype=qtype)
        exp = np.asarray(exp, dtype=np.float32).reshape(shape)
        summary[tname] = {"type": qtype.name, "shape": shape, "sum": float(exp.astype(np.float64).sum()),
                          "sumsq": float((exp.astype(np.float64) ** 2).sum()),
                          "first": [float(v) for v in exp.reshape(-1)[:8]], "last": float(exp.reshape(-1)[-1])}
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    cfg = {"arch": "llama", "n_layers": c["n_layers"], "d_model": c["d_model"], "n_heads": c["n_heads"],
           "n_kv_heads": c["n_kv_heads"], "d_ff": c["d_ff"], "vocab_size": c["vocab"], "n_ctx_train": c["ctx"],
           "rope_theta": 10000.0 if tied else 50000.0, "rms_eps": float(np.float32(c["eps"])),
           "tied_embeddings": tied, "bos_id": 1, "eos_id": 2}
    (GGUF_DIR / f"{name}_expected.json").write_text(
        json.dumps({"gguf": path.name, "sha256": sha256(path), "config": cfg, "tensors": summary}, indent=1) + "\n")


def make_align64(rng: np.random.Generator) -> None:
    """align64.gguf: general.alignment = 64; two tensors whose offsets must be multiples of 64."""
    path = GGUF_DIR / "align64.gguf"
    w = gguf.GGUFWriter(str(path), "qeval-test")
    w.data_alignment = 64
    w.add_custom_alignment(64)
    a = rng.normal(0, 1, size=(3,)).astype(np.float32)   # 12 bytes: the next tensor is padded to 64
    b = rng.normal(0, 1, size=(2, 32)).astype(np.float16)
    w.add_tensor("a", a)
    w.add_tensor("b", b)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    write_expected(GGUF_DIR / "align64_expected.json", [("a", "F32", [3], a), ("b", "F16", [2, 32], b.astype(np.float32))],
                   {"gguf": path.name})


# ---------------------------------------------------------------------------------------------- safetensors

HF = dict(n_layers=2, d_model=16, n_heads=2, n_kv_heads=1, d_ff=32, vocab=24, ctx=64, eps=1e-6, theta=500000.0)


def hf_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF rotate_half row order → GGUF adjacent-pair row order, as llama.cpp's convert_hf_to_gguf.py `permute`
    describes it: view the rows as [n_head, 2, head_dim/2], swap the last two axes, flatten back."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def make_safetensors(rng: np.random.Generator) -> None:
    c = HF
    d, hd = c["d_model"], c["d_model"] // c["n_heads"]
    hf = {}   # HF name → (array in file dtype, canonical name, canonical fp32 array)
    def put(hf_name, canon, shape, dtype, n_perm=None):
        x = rng.normal(0, 0.05, size=shape).astype(np.float32) if len(shape) == 2 else \
            (1.0 + rng.normal(0, 0.1, size=shape)).astype(np.float32)
        if dtype == "F16":
            stored = x.astype(np.float16)
            as_f32 = stored.astype(np.float32)
        elif dtype == "BF16":
            # bf16 stored as uint16 bit patterns; safetensors.numpy has no bf16 dtype, so the header is patched below
            stored = quantize(x, T.BF16).view(np.uint16).reshape(shape)
            as_f32 = dequantize(quantize(x, T.BF16), T.BF16).reshape(shape)
        else:
            stored, as_f32 = x, x
        canon_val = hf_permute(as_f32, n_perm) if n_perm else as_f32
        hf[hf_name] = (stored, dtype, canon, canon_val)
    put("model.embed_tokens.weight", "token_embd.weight", [c["vocab"], d], "F32")
    for i in range(c["n_layers"]):
        p, b = f"model.layers.{i}.", f"blk.{i}."
        put(p + "input_layernorm.weight", b + "attn_norm.weight", [d], "F32")
        put(p + "self_attn.q_proj.weight", b + "attn_q.weight", [c["n_heads"] * hd, d], "F16", c["n_heads"])
        put(p + "self_attn.k_proj.weight", b + "attn_k.weight", [c["n_kv_heads"] * hd, d], "BF16", c["n_kv_heads"])
        put(p + "self_attn.v_proj.weight", b + "attn_v.weight", [c["n_kv_heads"] * hd, d], "F32")
        put(p + "self_attn.o_proj.weight", b + "attn_output.weight", [d, c["n_heads"] * hd], "BF16")
        put(p + "post_attention_layernorm.weight", b + "ffn_norm.weight", [d], "F16")
        put(p + "mlp.gate_proj.weight", b + "ffn_gate.weight", [c["d_ff"], d], "F32")
        put(p + "mlp.up_proj.weight", b + "ffn_up.weight", [c["d_ff"], d], "F16")
        put(p + "mlp.down_proj.weight", b + "ffn_down.weight", [d, c["d_ff"]], "F32")
    put("model.norm.weight", "output_norm.weight", [d], "F32")
    put("lm_head.weight", "output.weight", [c["vocab"], d], "F32")

    def config(tied):
        return {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": d,
                "intermediate_size": c["d_ff"], "num_hidden_layers": c["n_layers"],
                "num_attention_heads": c["n_heads"], "num_key_value_heads": c["n_kv_heads"],
                "vocab_size": c["vocab"], "max_position_embeddings": c["ctx"], "rms_norm_eps": c["eps"],
                "rope_theta": c["theta"], "tie_word_embeddings": tied, "hidden_act": "silu",
                "bos_token_id": 1, "eos_token_id": 2, "rope_scaling": None, "torch_dtype": "float32"}

    def write_st(path: Path, names: list[str]) -> None:
        # Written directly (the format is an 8-byte length + JSON header + data) because safetensors.numpy has no
        # bfloat16; the F32/F16 tensors are read back with the safetensors package below as a cross-check.
        header = {"__metadata__": {"format": "pt"}}
        off = 0
        for k in sorted(names):
            nb = hf[k][0].nbytes
            header[k] = {"dtype": hf[k][1], "shape": list(hf[k][0].shape), "data_offsets": [off, off + nb]}
            off += nb
        hb = json.dumps(header, separators=(",", ":")).encode()
        hb += b" " * (-len(hb) % 8)
        data = b"".join(np.ascontiguousarray(hf[k][0]).astype(hf[k][0].dtype.newbyteorder("<")).tobytes()
                        for k in sorted(names))
        path.write_bytes(len(hb).to_bytes(8, "little") + hb + data)
        from safetensors import safe_open
        with safe_open(str(path), framework="numpy") as f:
            assert sorted(f.keys()) == sorted(names)
            for k in names:
                if hf[k][1] != "BF16":
                    assert np.array_equal(f.get_tensor(k), hf[k][0]), k

    single = ST_DIR / "tiny_llama_hf"
    single.mkdir(parents=True, exist_ok=True)
    write_st(single / "model.safetensors", sorted(hf))
    (single / "config.json").write_text(json.dumps(config(False), indent=1) + "\n")

    sharded = ST_DIR / "tiny_llama_hf_sharded"   # tied embeddings: no lm_head
    sharded.mkdir(parents=True, exist_ok=True)
    names = sorted(n for n in hf if n != "lm_head.weight")
    # shard 1: embeddings + layer 0; shard 2: layer 1 + final norm
    shard_of = {n: ("model-00002-of-00002.safetensors" if ("layers.1." in n or n == "model.norm.weight")
                    else "model-00001-of-00002.safetensors") for n in names}
    for shard in sorted(set(shard_of.values())):
        write_st(sharded / shard, [n for n in names if shard_of[n] == shard])
    (sharded / "model.safetensors.index.json").write_text(json.dumps(
        {"metadata": {"total_size": int(sum(hf[n][0].nbytes for n in names))}, "weight_map": shard_of}, indent=1) + "\n")
    (sharded / "config.json").write_text(json.dumps(config(True), indent=1) + "\n")

    # Expected canonical tensors (q/k permuted as convert_hf_to_gguf.py would): raw fp32 + index
    entries = [(hf[n][2], hf[n][1], list(hf[n][3].shape), hf[n][3]) for n in sorted(hf)]
    write_expected(ST_DIR / "tiny_llama_hf_expected.json", entries,
                   {"config": {"n_layers": c["n_layers"], "d_model": d, "n_heads": c["n_heads"],
                               "n_kv_heads": c["n_kv_heads"], "d_ff": c["d_ff"], "vocab_size": c["vocab"],
                               "n_ctx_train": c["ctx"], "rope_theta": c["theta"], "rms_eps": c["eps"],
                               "bos_id": 1, "eos_id": 2},
                    "content_hash": {"tiny_llama_hf": manifest_sha256(single),
                                     "tiny_llama_hf_sharded": manifest_sha256(sharded)}})


def main() -> int:
    GGUF_DIR.mkdir(parents=True, exist_ok=True)
    ST_DIR.mkdir(parents=True, exist_ok=True)
    make_types(np.random.default_rng(20240601))
    make_align64(np.random.default_rng(20240602))
    make_tiny_llama_gguf(np.random.default_rng(20240603), tied=False)
    make_tiny_llama_gguf(np.random.default_rng(20240604), tied=True)
    make_safetensors(np.random.default_rng(20240605))
    for p in sorted(list(GGUF_DIR.iterdir()) + list(ST_DIR.rglob("*"))):
        if p.is_file():
            print(f"{p.stat().st_size:8d}  {p.relative_to(ROOT)}")
    print(f"gguf {gguf.__version__ if hasattr(gguf, '__version__') else '?'}, numpy {np.__version__}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
