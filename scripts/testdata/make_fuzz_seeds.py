#!/usr/bin/env python3
# scripts/testdata/make_fuzz_seeds.py — writes the seed corpora of the libFuzzer drivers, tests/fuzz/corpus/<driver>/,
# from the committed fixtures, configs and reports (Python standard library only; deterministic, idempotent).
#
#   python3 scripts/testdata/make_fuzz_seeds.py        # rewrites the seed_* files; other files there are kept
#
# Seeds are small valid (and a few deliberately odd) inputs, so that a short fuzzing budget starts deep inside each
# parser. Files named seed_* are this script's; reproducers of fixed findings are committed beside them as
# crash-<what>.* (scripts/fuzz.sh keeps every file of the folder as a seed).
import json
import struct
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests/fuzz/corpus"


def write(driver: str, name: str, data) -> None:
    d = OUT / driver
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, (dict, list)):
        data = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    elif isinstance(data, str):
        data = data.encode()
    (d / ("seed_" + name)).write_bytes(data)


def copy(driver: str, name: str, src: Path) -> None:
    write(driver, name, src.read_bytes())


# ---- container files: the fixtures as they are
def model_files() -> None:
    for f in sorted((ROOT / "tests/data/gguf").glob("*.gguf")):
        copy("fuzz_gguf", f.name, f)
    st = ROOT / "tests/data/safetensors"
    copy("fuzz_safetensors", "tiny_llama.safetensors", st / "tiny_llama_hf/model.safetensors")
    for f in sorted((st / "tiny_llama_hf_sharded").glob("*.safetensors")):
        copy("fuzz_safetensors", f.name, f)


# ---- tiny GGUFs of the families whose fixtures are too large for a seed (written here, standard library only)
def gguf_bytes(kvs: list, tensors: list) -> bytes:
    """GGUF v3: kvs as (key, "u32" | "f32" | "str" | "strs", value), tensors as (name, PyTorch shape, float values)
    stored F32, data aligned to 32."""
    def s(x: str) -> bytes:
        return struct.pack("<Q", len(x.encode())) + x.encode()
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs))
    for key, kind, v in kvs:
        out += s(key)
        if kind == "u32":
            out += struct.pack("<II", 4, v)
        elif kind == "f32":
            out += struct.pack("<If", 6, v)
        elif kind == "str":
            out += struct.pack("<I", 8) + s(v)
        else:
            out += struct.pack("<IIQ", 9, 8, len(v)) + b"".join(s(x) for x in v)
    data, offset = b"", 0
    for name, shape, vals in tensors:
        out += s(name) + struct.pack("<I", len(shape)) + b"".join(struct.pack("<Q", n) for n in reversed(shape))
        out += struct.pack("<IQ", 0, offset)
        blob = struct.pack("<%df" % len(vals), *vals)
        blob += b"\0" * (-len(blob) % 32)
        data += blob
        offset += len(blob)
    return out + b"\0" * (-len(out) % 32) + data


def tiny_family_gguf(arch: str, moe: bool) -> bytes:
    """d_model 8, 1 block, 2/1 heads, vocab 6; moe: 2 stacked experts of width 4, top 1 (Mixtral's layout under
    arch "llama", plus qwen2moe's shared expert); else Gemma 3's keys (q/k norms, post norms, local RoPE base)."""
    vals = lambda n: [((i * 7) % 13 - 6) / 16.0 for i in range(n)]  # noqa: E731
    p = arch + "."
    kvs = [("general.architecture", "str", arch), (p + "block_count", "u32", 1), (p + "context_length", "u32", 64),
           (p + "embedding_length", "u32", 8), (p + "feed_forward_length", "u32", 16),
           (p + "attention.head_count", "u32", 2), (p + "attention.head_count_kv", "u32", 1),
           (p + "attention.layer_norm_rms_epsilon", "f32", 1e-5), ("tokenizer.ggml.tokens", "strs", list("abcdef"))]
    t = [("token_embd.weight", [6, 8], vals(48)), ("output_norm.weight", [8], vals(8)),
         ("blk.0.attn_norm.weight", [8], vals(8)), ("blk.0.ffn_norm.weight", [8], vals(8)),
         ("blk.0.attn_q.weight", [8, 8], vals(64)), ("blk.0.attn_k.weight", [4, 8], vals(32)),
         ("blk.0.attn_v.weight", [4, 8], vals(32)), ("blk.0.attn_output.weight", [8, 8], vals(64))]
    if moe:
        kvs += [(p + "expert_count", "u32", 2), (p + "expert_used_count", "u32", 1),
                (p + "expert_feed_forward_length", "u32", 4)]
        t += [("blk.0.ffn_gate_inp.weight", [2, 8], vals(16)), ("blk.0.ffn_gate_exps.weight", [2, 4, 8], vals(64)),
              ("blk.0.ffn_up_exps.weight", [2, 4, 8], vals(64)), ("blk.0.ffn_down_exps.weight", [2, 8, 4], vals(64))]
        if arch == "qwen2moe":
            kvs += [(p + "expert_shared_feed_forward_length", "u32", 4)]
            t += [("blk.0.ffn_gate_inp_shexp.weight", [1, 8], vals(8)), ("blk.0.ffn_gate_shexp.weight", [4, 8], vals(32)),
                  ("blk.0.ffn_up_shexp.weight", [4, 8], vals(32)), ("blk.0.ffn_down_shexp.weight", [8, 4], vals(32))]
    else:
        kvs += [(p + "attention.sliding_window", "u32", 4), (p + "rope.freq_base_swa", "f32", 10000.0)]
        t += [("blk.0.ffn_gate.weight", [16, 8], vals(128)), ("blk.0.ffn_up.weight", [16, 8], vals(128)),
              ("blk.0.ffn_down.weight", [8, 16], vals(128)), ("blk.0.attn_q_norm.weight", [4], vals(4)),
              ("blk.0.attn_k_norm.weight", [4], vals(4)), ("blk.0.post_attention_norm.weight", [8], vals(8)),
              ("blk.0.post_ffw_norm.weight", [8], vals(8))]
    return gguf_bytes(kvs, t)


def family_ggufs() -> None:
    write("fuzz_gguf", "tiny_mixtral.gguf", tiny_family_gguf("llama", True))
    write("fuzz_gguf", "tiny_qwen2moe.gguf", tiny_family_gguf("qwen2moe", True))
    write("fuzz_gguf", "tiny_gemma3.gguf", tiny_family_gguf("gemma3", False))


# ---- tokenizers: the toy tokenizer.json files cut to their first 400 ids (a valid, small vocabulary)
def small_tokenizer(name: str, keep: int = 400) -> dict:
    j = json.loads((ROOT / "tests/data/tokenizer" / (name + ".tokenizer.json")).read_text())
    vocab = {t: i for t, i in j["model"]["vocab"].items() if i < keep}
    merges = []
    for m in j["model"]["merges"]:
        a, b = m.split(" ", 1) if isinstance(m, str) else m
        if a in vocab and b in vocab and a + b in vocab:
            merges.append(a + " " + b)
    j["model"]["vocab"] = vocab
    j["model"]["merges"] = merges
    for i, t in enumerate(j.get("added_tokens", [])):
        t["id"] = keep + i
    return j


def gguf_metadata(tok: dict, pre: str) -> dict:
    vocab = dict(tok["model"]["vocab"])
    for t in tok.get("added_tokens", []):
        vocab[t["content"]] = t["id"]
    tokens = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    specials = {t["content"] for t in tok.get("added_tokens", []) if t.get("special")}
    return {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": pre, "tokenizer.ggml.tokens": tokens,
            "tokenizer.ggml.token_type": [3 if t in specials else 1 for t in tokens],
            "tokenizer.ggml.merges": tok["model"]["merges"], "tokenizer.ggml.bos_token_id": len(tokens) - 1,
            "tokenizer.ggml.eos_token_id": len(tokens) - 1, "tokenizer.ggml.add_bos_token": False}


def spm_metadata() -> dict:
    # SentencePiece-style (Llama-2): <unk> <s> </s>, 256 byte tokens, then pieces ordered by score.
    tokens, types, scores = ["<unk>", "<s>", "</s>"], [2, 3, 3], [0.0, 0.0, 0.0]
    for b in range(256):
        tokens.append("<0x%02X>" % b)
        types.append(6)
        scores.append(0.0)
    for i, p in enumerate(["\u2581", "a", "b", "ab", "\u2581a", "\u2581ab", "aa", "\u2581the", "t", "h", "e", "th"]):
        tokens.append(p)
        types.append(1)
        scores.append(-1.0 - i)
    return {"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": tokens, "tokenizer.ggml.token_type": types,
            "tokenizer.ggml.scores": scores, "tokenizer.ggml.bos_token_id": 1, "tokenizer.ggml.eos_token_id": 2,
            "tokenizer.ggml.unknown_token_id": 0, "tokenizer.ggml.add_space_prefix": True}


def tokenizers() -> None:
    texts = ["Hello world, it's 2024: 12345 tokens!\n", "caf\u00e9 \u65e5\u672c\u8a9e  \t\r\n  x<|endoftext|>y",
             "\u2581a ab the<s>aa</s><unk>"]
    for mode in range(4):
        for i, t in enumerate(texts):
            write("fuzz_tokenizer", "mode%d_text%d" % (mode, i), bytes([mode]) + t.encode())
    write("fuzz_tokenizer", "mode0_invalid_utf8", b"\x00\xff\xfe\xc3 broken \xe2\x82")
    for name, pre in [("toy_prefix", "gpt2"), ("toy_digits", "smollm"), ("toy_llama3", "llama-bpe")]:
        tok = small_tokenizer(name)
        write("fuzz_tokenizer", "mode4_" + name + ".json", b"\x04" + json.dumps(tok, ensure_ascii=False).encode())
        write("fuzz_tokenizer_gguf", name + ".json", gguf_metadata(tok, pre))
    write("fuzz_tokenizer_gguf", "spm.json", spm_metadata())


# ---- .npy: versions 1.0/2.0/3.0, float32/float16, 1-D/2-D
def npy(descr: str, shape: tuple, payload: bytes, version: int = 1) -> bytes:
    dims = "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"
    header = "{'descr': '%s', 'fortran_order': False, 'shape': %s, }" % (descr, dims)
    pre = 10 if version == 1 else 12
    header += " " * ((64 - (pre + len(header) + 1) % 64) % 64) + "\n"
    size = struct.pack("<H", len(header)) if version == 1 else struct.pack("<I", len(header))
    return b"\x93NUMPY" + bytes([version, 0]) + size + header.encode("latin-1") + payload


def npy_files() -> None:
    f32 = struct.pack("<6f", 0.5, -1.25, 3.0, 1e-3, -7.5, 2.0)
    write("fuzz_npy", "f4_2x3.npy", npy("<f4", (2, 3), f32))
    write("fuzz_npy", "f4_6_v2.npy", npy("<f4", (6,), f32, version=2))
    write("fuzz_npy", "f2_2x2_v3.npy", npy("<f2", (2, 2), struct.pack("<4H", 0x3C00, 0xC000, 0x0001, 0x7BFF), 3))
    write("fuzz_npy", "fortran.npy", npy("<f4", (2, 3), f32).replace(b"False", b"True "))


# ---- sweep configs: the committed ones, plus tensor entries over every axis and file inputs (relative to tests/data)
def configs() -> None:
    for f in sorted((ROOT / "configs").glob("sweep-*.json")) + [ROOT / "reports/models/embedded-calib.sweep.json"]:
        copy("fuzz_config", f.name, f)
    small = {"distribution": "gaussian", "rows": 4, "cols": 64}
    write("fuzz_config", "axes.json", {
        "version": 1, "name": "axes", "seed": 3, "protocol": {"tensor": {"sampling": "rows"}},
        "sweeps": [{"kind": "tensor", "schemes": ["rtn"], "bits": [2, 8], "group_sizes": [16, "row", "tensor"],
                    "mappings": ["sym", "asym"], "backends": ["cpu"], "ranges": ["minmax", "percentile", "mse"],
                    "clip_ratios": [0.9], "percentiles": [99.9], "roundings": ["nearest_even"], "non_finite": ["error"],
                    "partial_groups": [False],
                    "inputs": [small, {"distribution": "student-t", "rows": 2, "cols": 96, "nu": 3, "seed": 9}]},
                   {"group_sizes": "row", "inputs": [{"distribution": "outliers", "rows": 2, "cols": 64, "outlier_channels": 2,
                                "outlier_scale": 20}, "laplace", "uniform"]},
                   {"schemes": ["nf4", "fp4", "fp8"], "group_sizes": [32],
                    "options": {"fp4.codebook": ["e2m1", "bnb"], "fp8.format": "e5m2"}, "inputs": [small]},
                   {"schemes": ["rtn"], "bits": 3, "group_sizes": 48, "partial_groups": True, "inputs": [small]}]})
    write("fuzz_config", "files.json", {
        "sweeps": [{"schemes": ["rtn"], "bits": [4], "group_sizes": ["row", "tensor"],
                    "inputs": [{"file": "gguf/align64_expected.f32", "shape": "1x67"},
                               {"file": "safetensors/tiny_llama_hf_expected.f32", "shape": "88x62", "tensors": ["tiny_llama_hf_expected"]},
                               "../fuzz/corpus/fuzz_npy/seed_f4_2x3.npy", "../fuzz/corpus/fuzz_npy/seed_f2_2x2_v3.npy"]}]})


# ---- reports: reports/baseline/ci.json cut to a few runs (ids are spec hashes, so runs stay valid when others go)
def cut_report(src: Path, kinds: dict, layers: int = 3) -> dict:
    j = json.loads(src.read_text())
    runs = []
    for kind, n in kinds.items():
        runs += [r for r in j["runs"] if r["kind"] == kind][:n]
    for r in runs:
        m = r.get("metrics", {})
        for k in ("layers", "blame", "per_layer", "scheme_stats"):
            if isinstance(m.get(k), list):
                m[k] = m[k][:layers]
        if isinstance(r.get("per_layer"), list):
            r["per_layer"] = r["per_layer"][:layers]
    j["runs"] = runs
    j["plan"] = {"runs": len(runs), "ids": [r["id"] for r in runs]}
    j.pop("views", None)
    return j


def reports() -> None:
    base = cut_report(ROOT / "reports/baseline/ci.json", {"tensor": 3, "model": 2})
    write("fuzz_report", "ci_cut.json", base)
    worse = json.loads(json.dumps(base))
    worse["runs"][0]["metrics"]["sqnr_db"] -= 0.5
    worse["runs"][0]["metrics"]["mse"] *= 1.2
    for r in worse["runs"]:
        if r["kind"] == "model":
            r["metrics"]["kl"]["mean"] *= 1.1
            break
    del worse["runs"][1]
    worse["plan"] = {"runs": len(worse["runs"]), "ids": [r["id"] for r in worse["runs"]]}
    write("fuzz_report", "pair_regressed.json", [base, worse])
    write("fuzz_report", "calib_cut.json", cut_report(ROOT / "reports/models/embedded-calib.report.json", {"model": 2}))
    # A version-1 report (docs/report-schema.md; migrated when read), as tests/eval/sweep/report_views_test.cpp builds it.
    run = {k: v for k, v in base["runs"][0].items() if k not in ("name", "spec", "backend", "input")}
    run["id"] = "rtn/2b/sym/g32/synthetic"
    write("fuzz_report", "v1.json", {
        "schema_version": 1, "tool": {"name": "qeval", "version": "0.1.0"}, "created": "2024-02-29T12:00:00Z",
        "command_line": ["qeval", "sweep"], "environment": {"git": {"sha": None}}, "seed": 20240229,
        "input": {"kind": "synthetic", "distribution": "gaussian", "rows": 4, "cols": 128, "seed": 20240229,
                  "variance": 1.0}, "runs": [run]})


def main() -> int:
    for d in OUT.glob("*/seed_*"):
        d.unlink()
    model_files()
    family_ggufs()
    tokenizers()
    npy_files()
    configs()
    reports()
    for d in sorted(OUT.iterdir()):
        files = list(d.iterdir())
        print("%-22s %3d files %8d bytes" % (d.name, len(files), sum(f.stat().st_size for f in files)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
