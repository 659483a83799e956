#!/usr/bin/env python3
# scripts/testdata/make_family_fixtures.py — tiny random checkpoints of each model family, HF's logits on them, and their GGUFs.
#
# For every family in FAMILIES: a small config that exercises the family's features, random weights (torch seed),
# saved with Hugging Face `transformers` as safetensors + config.json (bf16, as these families are published),
# HF's fp32 logits on two fixed sequences of 24 token ids, and a GGUF written by llama.cpp's converter
# (convert_hf_to_gguf.py, run ad hoc from a llama.cpp checkout; its code is not part of qeval). Each feature is
# shown to matter: the same weights are run again with the feature switched off (sliding window, soft-capping,
# RoPE scaling, local RoPE base, …) and the largest logit change is recorded in the manifest.
#
# Weights are rounded to bf16 before HF runs them, and norm weights are multiples of 1/64 near 1 (or near 0 for
# Gemma's 1 + w), so the bf16 file, the fp32 model HF ran and the GGUF (the converter adds Gemma's +1 in bf16) hold
# exactly the same numbers.
#
# Tokenizers (512 pieces each, trained on the first 2 MB of data/sotu/sotu.txt), of the kind each family ships:
#   "spm"        SentencePiece BPE with byte fallback, as Llama 2 / Mistral / Mixtral / Gemma / Phi-3 (tokenizer.model)
#   "bpe-llama3" HF `tokenizers` byte-level BPE with Llama 3's Split regex and ignore_merges, BOS added (GGUF pre
#                "llama-bpe")
#   "bpe-qwen2"  the same with Qwen2's regex (single digits) and NFC (GGUF pre "qwen2")
# The converter cannot recognise a freshly trained BPE tokenizer, so for those it runs through
# convert_hf_to_gguf_pre.py with the pre-tokenizer name given. Each tokenizer's ids (and pieces) on fixed strings
# go to tests/data/families/tokenizer_refs.json.
#
#   python3 -m venv /tmp/v && /tmp/v/bin/pip install torch transformers safetensors sentencepiece protobuf gguf numpy
#   /tmp/v/bin/python scripts/testdata/make_family_fixtures.py --llama-cpp /path/to/llama.cpp [--only llama3,...]
#
# Writes tests/data/families/<family>/{model.safetensors,config.json,tokenizer*,model.gguf,logits.npy,
# PROVENANCE.md} and tests/data/families/manifest.json. Deterministic on one machine (fixed seeds, one thread).
import argparse
import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import transformers

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "data" / "families"
SOTU = ROOT / "data" / "sotu" / "sotu.txt"
VOCAB = 512
SEQ = 24
SEED = 20250615
TOKENIZER_STRINGS = [
    "Fellow-Citizens of the Senate and House of Representatives:",
    "The State of the Union is strong.",
    "  leading spaces, tabs\tand\nnewlines  ",
    "digits 1234567890 and 3.14159",
    "Unicode: café, naïve, Ünïcödé, 日本語, emoji 🙂",
    "",
]

# The published pre-tokenizer regexes (Meta-Llama-3 and Qwen2 tokenizer.json; llama.cpp's "llama-bpe" and "qwen2").
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
# kind → (special tokens at ids 0.., config ids, GGUF pre name for the converter or None for SentencePiece)
TOKENIZERS = {
    "spm": dict(specials=["<unk>", "<s>", "</s>"], ids=dict(bos_token_id=1, eos_token_id=2, pad_token_id=0),
                add_bos=True, pre=None),
    "bpe-llama3": dict(specials=["<|pad|>", "<|begin_of_text|>", "<|end_of_text|>"],
                       ids=dict(bos_token_id=1, eos_token_id=2, pad_token_id=0), add_bos=True, pre="llama-bpe",
                       regex=LLAMA3_REGEX, nfc=False, ignore_merges=True),
    "bpe-qwen2": dict(specials=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                      ids=dict(bos_token_id=None, eos_token_id=2, pad_token_id=0), add_bos=False, pre="qwen2",
                      regex=QWEN2_REGEX, nfc=True, ignore_merges=False),
}

# Common small shape: d_model 64, 4 query heads, 2 KV heads, head_dim 16, FFN 128, 2 layers, context 64; weights
# N(0, 0.125²) = N(0, 1/d_model) so that activations and logits are O(1) and the soft-caps clip.
BASE = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, rms_norm_eps=1e-5, tie_word_embeddings=False,
            initializer_range=0.125)

FAMILIES = {
    "llama3": dict(
        tokenizer="bpe-llama3",
        cls="LlamaForCausalLM", cfg="LlamaConfig",
        kw=dict(head_dim=16, tie_word_embeddings=True,
                rope_parameters=dict(rope_type="llama3", rope_theta=500000.0, factor=8.0, low_freq_factor=1.0,
                                     high_freq_factor=4.0, original_max_position_embeddings=32)),
        features=["GQA 4 query / 2 KV heads", "tied embeddings (no lm_head)",
                  "llama3 RoPE scaling: factor 8, low/high freq factor 1/4, original context 32 — head_dim 16 has "
                  "wavelengths below 8 (kept), between 8 and 32 (smoothed) and above 32 (divided by 8)"],
        off=[("rope scaling off", {"rope_parameters": dict(rope_type="default", rope_theta=500000.0)})]),
    "mistral": dict(
        tokenizer="spm",
        cls="MistralForCausalLM", cfg="MistralConfig",
        kw=dict(head_dim=16, sliding_window=8, rope_parameters=dict(rope_type="default", rope_theta=1000000.0)),
        features=["sliding_window 8 < sequence 24 (every layer)", "GQA 4/2"],
        off=[("sliding window off", {"sliding_window": None})],
        extra_logits={"sliding window off": "logits_no_sliding_window.npy"},
        notes=["llama.cpp's converter writes no sliding-window key for MistralForCausalLM (GGUF architecture "
               "'llama'): the GGUF alone describes full attention, so a forward that follows it matches "
               "logits_no_sliding_window.npy (HF, sliding_window = None, same weights), not logits.npy"]),
    "qwen2": dict(
        tokenizer="bpe-qwen2",
        cls="Qwen2ForCausalLM", cfg="Qwen2Config",
        kw=dict(rope_parameters=dict(rope_type="default", rope_theta=1000000.0)),
        features=["q/k/v projection biases (random, std 0.5)", "GQA 4/2"],
        off=[("qkv bias zeroed", "zero_qkv_bias")]),
    "qwen3": dict(
        tokenizer="bpe-qwen2",
        cls="Qwen3ForCausalLM", cfg="Qwen3Config",
        kw=dict(head_dim=32, rope_parameters=dict(rope_type="default", rope_theta=1000000.0)),
        features=["per-head RMSNorm on q and k (q_norm, k_norm)",
                  "head_dim 32 ≠ d_model / n_heads = 16 (q projection 64 → 128)", "no qkv bias"],
        off=[("q/k norm weights set to 1", "unit_qk_norm")]),
    "gemma2": dict(
        tokenizer="spm",
        cls="Gemma2ForCausalLM", cfg="Gemma2Config",
        kw=dict(head_dim=16, sliding_window=8, query_pre_attn_scalar=16, attn_logit_softcapping=1.0,
                final_logit_softcapping=3.0, hidden_activation="gelu_pytorch_tanh", tie_word_embeddings=True,
                layer_types=["sliding_attention", "full_attention"],
                rope_parameters=dict(rope_type="default", rope_theta=10000.0)),
        features=["RMSNorm scale 1 + w", "GeGLU with tanh-approximated GELU", "embeddings scaled by sqrt(64) = 8",
                  "attention soft-capping 1.0", "final logit soft-capping 3.0", "sliding window 8 on layer 0, "
                  "global layer 1", "pre- and post-norms around attention and FFN", "query_pre_attn_scalar 16",
                  "tied embeddings"],
        off=[("final soft-cap off", {"final_logit_softcapping": None}),
             ("attention soft-cap off", {"attn_logit_softcapping": None}),
             ("sliding window off", {"layer_types": ["full_attention", "full_attention"]})]),
    "gemma3": dict(
        tokenizer="spm",
        cls="Gemma3ForCausalLM", cfg="Gemma3TextConfig",
        kw=dict(head_dim=16, sliding_window=8, query_pre_attn_scalar=16, hidden_activation="gelu_pytorch_tanh",
                tie_word_embeddings=True, layer_types=["sliding_attention", "full_attention"],
                rope_parameters={"sliding_attention": dict(rope_type="default", rope_theta=10000.0),
                                 "full_attention": dict(rope_type="default", rope_theta=1000000.0)}),
        features=["q/k RMSNorm (1 + w)", "local RoPE base 10000 (sliding layer 0) / global 1e6 (layer 1)",
                  "sliding window 8 on layer 0", "embeddings scaled by 8", "pre+post norms", "tied embeddings"],
        off=[("one RoPE base (1e6) for both layers",
              {"rope_parameters": {"sliding_attention": dict(rope_type="default", rope_theta=1000000.0),
                                   "full_attention": dict(rope_type="default", rope_theta=1000000.0)}}),
             ("sliding window off", {"layer_types": ["full_attention", "full_attention"]}),
             ("both layers sliding", {"layer_types": ["sliding_attention", "sliding_attention"]})],
        extra_logits={"both layers sliding": "logits_both_sliding.npy"},
        notes=["llama.cpp's converter writes gemma3.attention.sliding_window but no sliding_window_pattern, and "
               "llama.cpp then slides layer i when i mod 6 < 5 (its Gemma 3 default): both layers of this 2-layer "
               "model. A forward that follows the GGUF matches logits_both_sliding.npy (HF, layer_types both "
               "sliding_attention, same weights), not logits.npy"]),
    "phi3": dict(
        tokenizer="spm",
        cls="Phi3ForCausalLM", cfg="Phi3Config",
        kw=dict(rope_parameters=dict(rope_type="default", rope_theta=10000.0, partial_rotary_factor=1.0)),
        features=["fused qkv_proj [(4+2+2)·16, 64]", "fused gate_up_proj [2·128, 64]"],
        off=[],
        notes=["the GGUF keeps both fusions: blk.N.attn_qkv and blk.N.ffn_up [2·128, 64] (gate rows first)"]),
    "mixtral": dict(
        tokenizer="spm",
        cls="MixtralForCausalLM", cfg="MixtralConfig",
        kw=dict(head_dim=16, num_local_experts=4, num_experts_per_tok=2, intermediate_size=64,
                rope_parameters=dict(rope_type="default", rope_theta=1000000.0)),
        features=["4 experts, top-2 routing (softmax over the top 2)", "expert FFN 64"],
        off=[],
        extra_gguf={"q8_0": "model-q8_0.gguf"},
        notes=["GGUF architecture 'llama' with llama.expert_count 4; the experts are stacked as "
               "blk.N.ffn_{gate,up,down}_exps, the router is blk.N.ffn_gate_inp (F32)",
               "model-q8_0.gguf: the stacked experts (and the other 2-D weights) as Q8_0, to test that a quantized "
               "stack dequantizes expert by expert"]),
    "qwen2moe": dict(
        tokenizer="bpe-qwen2",
        cls="Qwen2MoeForCausalLM", cfg="Qwen2MoeConfig",
        kw=dict(num_experts=4, num_experts_per_tok=2, moe_intermediate_size=32, shared_expert_intermediate_size=64,
                norm_topk_prob=False, decoder_sparse_step=1, mlp_only_layers=[],
                rope_parameters=dict(rope_type="default", rope_theta=1000000.0)),
        features=["4 experts, top-2 of a softmax over all 4 (not renormalised)", "shared expert 64 with sigmoid gate",
                  "q/k/v biases"],
        off=[]),
}


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def training_text(work: Path) -> Path:
    corpus = work / "sotu_2mb.txt"
    corpus.write_text(SOTU.read_bytes()[:2_000_000].decode("utf-8", errors="ignore"))
    return corpus


def make_spm(work: Path, out: Path) -> None:
    """tokenizer.model + HF's LlamaTokenizer files for it."""
    import sentencepiece as spm
    prefix = work / "spm"
    spm.SentencePieceTrainer.train(
        input=str(training_text(work)), model_prefix=str(prefix), vocab_size=VOCAB, model_type="bpe",
        byte_fallback=True, character_coverage=1.0, num_threads=1, unk_id=0, bos_id=1, eos_id=2, pad_id=-1,
        seed_sentencepiece_size=100000, shuffle_input_sentence=False, max_sentence_length=1 << 16, minloglevel=2,
        # as Llama 2's tokenizer.model: no normalisation (and no 240 KB NFKC table), spaces kept, a dummy "▁"
        # prefix, digits split
        normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=True, split_digits=True)
    (out / "tokenizer.model").write_bytes(prefix.with_suffix(".model").read_bytes())
    transformers.LlamaTokenizer.from_pretrained(out).save_pretrained(out)


def make_bpe(work: Path, out: Path, kind: str) -> None:
    """tokenizer.json (byte-level BPE, the family's Split regex) + tokenizer_config.json."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    t = TOKENIZERS[kind]
    tok = Tokenizer(models.BPE(ignore_merges=t["ignore_merges"]))
    if t["nfc"]:
        tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(t["regex"]), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=t["specials"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train([str(training_text(work))], trainer)
    bos = t["specials"][1]
    if t["add_bos"]:
        tok.post_processor = processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos} $B",
                                                           special_tokens=[(bos, 1)])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    hf = transformers.PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=t["specials"][0], eos_token=t["specials"][2],
        bos_token=bos if t["add_bos"] else None)
    hf.save_pretrained(out)


def make_tokenizers(work: Path) -> dict:
    dirs = {}
    for kind in TOKENIZERS:
        d = work / f"tok_{kind}"
        d.mkdir(parents=True, exist_ok=True)
        make_spm(work, d) if kind == "spm" else make_bpe(work, d, kind)
        dirs[kind] = d
    return dirs


def encode(kind: str, tok_dir: Path, text: str, special: bool) -> list[int]:
    """Ids of the tokenizer library itself (sentencepiece / tokenizers), with BOS when `special` and the kind adds it."""
    if kind == "spm":
        import sentencepiece as spm
        ids = spm.SentencePieceProcessor(model_file=str(tok_dir / "tokenizer.model")).encode(text)
        return ([1] + ids) if special else ids
    from tokenizers import Tokenizer
    return Tokenizer.from_file(str(tok_dir / "tokenizer.json")).encode(text, add_special_tokens=special).ids


def fixed_ids(kind: str, tok_dir: Path) -> np.ndarray:
    """Two sequences of SEQ ids: the tokens of a held-out passage (BOS first where the family adds one), then
    seeded random ids that avoid the three special tokens."""
    text = SOTU.read_bytes()[5_000_000:5_004_000].decode("utf-8", errors="ignore")
    seq0 = encode(kind, tok_dir, text, special=True)[:SEQ]
    rng = np.random.default_rng(SEED)
    seq1 = rng.integers(3, VOCAB, size=SEQ).tolist()
    return np.array([seq0, seq1], dtype=np.int64)


def round_weights(model, family: str, gen: torch.Generator) -> None:
    """bf16-round every parameter; norms become 1 + k/64 (Gemma: k/64, its norm computes 1 + w), |k| ≤ 16; biases
    get std 0.5 so that they matter."""
    gemma = family.startswith("gemma")
    for name, p in model.named_parameters():
        with torch.no_grad():
            if name.endswith("norm.weight"):
                k = torch.randint(-16, 17, p.shape, generator=gen).float() / 64
                p.copy_(k if gemma else 1 + k)
            elif name.endswith(".bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
            p.copy_(p.to(torch.bfloat16).float())


def make_model(spec: dict, family: str, overrides: dict | None = None):
    cfg_cls = getattr(transformers, spec["cfg"])
    kw = dict(BASE)
    kw.update(TOKENIZERS[spec["tokenizer"]]["ids"])
    kw.update(spec["kw"])
    if overrides:
        kw.update(overrides)
    cfg = cfg_cls(**kw)
    cfg._attn_implementation = "eager"  # soft-capping and sliding windows as the reference computes them
    torch.manual_seed(SEED)
    model = getattr(transformers, spec["cls"])(cfg).float().eval()
    return model


def logits_of(model, ids: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        out = model(input_ids=torch.from_numpy(ids), use_cache=False)
    return out.logits.float().numpy()


def apply_switch(model, how) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if how == "zero_qkv_bias" and name.endswith(("q_proj.bias", "k_proj.bias", "v_proj.bias")):
                p.zero_()
            if how == "unit_qk_norm" and name.endswith(("q_norm.weight", "k_norm.weight")):
                p.fill_(1.0)


def tanh_inputs(model, ids: np.ndarray) -> list[float]:
    """max |x| of every torch.tanh call in one forward (Gemma 2's soft-caps: one per attention layer, then the
    final logits), to show that the caps clip."""
    seen, real = [], torch.tanh

    def spy(x, *a, **k):
        seen.append(float(x.abs().max()))
        return real(x, *a, **k)
    torch.tanh = spy
    try:
        logits_of(model, ids)
    finally:
        torch.tanh = real
    return seen


def expert_usage(model, ids: np.ndarray, k: int) -> list[list[int]]:
    """Per layer, how many of the 2·SEQ tokens each expert receives (top-k of the router logits)."""
    with torch.no_grad():
        out = model(input_ids=torch.from_numpy(ids), use_cache=False, output_router_logits=True)
    usage = []
    for r in out.router_logits:
        top = torch.topk(r.float(), k, dim=-1).indices.reshape(-1)
        usage.append(torch.bincount(top, minlength=r.shape[-1]).tolist())
    return usage


def measure(spec: dict, family: str, model, ids: np.ndarray, logits: np.ndarray) -> dict:
    import copy
    m = {"max_abs_logit": float(np.abs(logits).max())}
    effects = []
    for label, how in spec["off"]:
        if isinstance(how, dict):
            m2 = make_model(spec, family, how)
            m2.load_state_dict(model.state_dict())
        else:
            m2 = copy.deepcopy(model)
            apply_switch(m2, how)
        off_logits = logits_of(m2, ids)
        effects.append({"switch": label, "max_abs_logit_change": float(np.abs(off_logits - logits).max())})
        if label in spec.get("extra_logits", {}):
            np.save(OUT / family / spec["extra_logits"][label], off_logits.astype("<f4"))
    m["feature_off_effects"] = effects
    if family == "gemma2":
        seen = tanh_inputs(model, ids)
        cfg = model.config
        m["attn_softcap_max_abs_score_before_cap"] = [x * cfg.attn_logit_softcapping for x in seen[:-1]]
        m["final_softcap_max_abs_logit_before_cap"] = seen[-1] * cfg.final_logit_softcapping
    if "num_experts_per_tok" in spec["kw"]:
        m["expert_usage_per_layer"] = expert_usage(model, ids, spec["kw"]["num_experts_per_tok"])
    return m


def save_checkpoint(model, d: Path, tok_dir: Path) -> None:
    model.to(torch.bfloat16).save_pretrained(d, safe_serialization=True)
    (d / "generation_config.json").unlink(missing_ok=True)
    for f in sorted(tok_dir.iterdir()):
        (d / f.name).write_bytes(f.read_bytes())
    for f in d.iterdir():
        f.chmod(0o644)


def convert(d: Path, llama_cpp: Path, pre: str | None, outtype: str = "bf16", outfile: str = "model.gguf") -> list[str]:
    """llama.cpp's converter, bf16 out (2-D weights stay bf16; it writes norms and other 1-D tensors as F32) or
    another --outtype; for a BPE tokenizer through convert_hf_to_gguf_pre.py with the pre-tokenizer name."""
    args = [str(d), "--outfile", str(d / outfile), "--outtype", outtype]
    if pre is None:
        cmd = [sys.executable, str(llama_cpp / "convert_hf_to_gguf.py")] + args
        shown = ["python3", "LLAMA_CPP/convert_hf_to_gguf.py"]
    else:
        cmd = [sys.executable, str(Path(__file__).with_name("convert_hf_to_gguf_pre.py")), str(llama_cpp), pre] + args
        shown = ["python3", "scripts/testdata/convert_hf_to_gguf_pre.py", "LLAMA_CPP", pre]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.stderr.write(r.stdout[-3000:] + r.stderr[-6000:])
        raise SystemExit(f"convert_hf_to_gguf.py failed for {d.name}")
    rel = f"tests/data/families/{d.name}"
    return shown + [rel, "--outfile", f"{rel}/{outfile}", "--outtype", outtype]


def versions(llama_cpp: Path) -> dict:
    import importlib.metadata
    import safetensors
    import sentencepiece
    lcp = "?"
    init = llama_cpp.parents[1] / "llama_cpp" / "__init__.py"  # llama-cpp-python sdist layout: vendor/llama.cpp
    if init.is_file():
        lcp = next((l.split('"')[1] for l in init.read_text().splitlines() if l.startswith("__version__")), "?")
    return {"python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
            "safetensors": safetensors.__version__, "sentencepiece": sentencepiece.__version__,
            "numpy": np.__version__, "gguf (PyPI, not used by the converter)": importlib.metadata.version("gguf"),
            "llama.cpp converter": f"convert_hf_to_gguf.py of the llama.cpp vendored in the PyPI sdist "
                                   f"llama-cpp-python {lcp} (with its own gguf-py)"}


TOKENIZER_FILES = {
    "spm": "| `tokenizer.model` | SentencePiece BPE, 512 pieces, byte fallback, identity normalisation, digits split, "
           "trained on the first 2 MB of data/sotu/sotu.txt; `tokenizer.json`/`tokenizer_config.json`: the same as "
           "HF `LlamaTokenizer` saved it |",
    "bpe-llama3": "| `tokenizer.json` | HF `tokenizers` byte-level BPE, 512 tokens, Meta-Llama-3's Split regex, "
                  "ignore_merges, BOS `<|begin_of_text|>` added; trained on the first 2 MB of data/sotu/sotu.txt; GGUF "
                  "pre `llama-bpe` |",
    "bpe-qwen2": "| `tokenizer.json` | HF `tokenizers` byte-level BPE, 512 tokens, NFC, Qwen2's Split regex (single "
                 "digits), no BOS; trained on the first 2 MB of data/sotu/sotu.txt; GGUF pre `qwen2` |",
}


def provenance(family: str, spec: dict, entry: dict, vers: dict, cmd: list[str]) -> str:
    lines = [f"# tests/data/families/{family} — tiny random {spec['cls']} (generated; do not edit)", "",
             "Written by `scripts/testdata/make_family_fixtures.py` (see its header); "
             f"seed {SEED} (torch.manual_seed for the HF init, then bf16 rounding and norms as described there).", "",
             "| file | what |", "|---|---|",
             "| `config.json`, `model.safetensors` | HF checkpoint, weights bf16 (saved by `save_pretrained`) |",
             TOKENIZER_FILES[spec["tokenizer"]],
             "| `model.gguf` | llama.cpp's converter on this directory, `--outtype bf16` |"]
    lines += [f"| `{f}` | the same converter command with `--outtype {t}` and `--outfile` this file |"
              for t, f in spec.get("extra_gguf", {}).items()]
    lines += [

             f"| `logits.npy` | HF's fp32 logits, float32 [2, {SEQ}, {VOCAB}], on the ids in ../manifest.json "
             "(eager attention, the bf16 weights in fp32) |", "",
             "Converter command (LLAMA_CPP = the llama.cpp directory):", "", "    " + " ".join(cmd), "",
             "Features:", ""]
    lines += [f"- {f}" for f in spec["features"]]
    if spec.get("notes"):
        lines += ["", "Notes:", ""] + [f"- {n}" for n in spec["notes"]]
    lines += ["", "Measured on these weights (max |Δlogit| with the feature switched off, same weights):", ""]
    lines += [f"- {e['switch']}: {e['max_abs_logit_change']:.4g}" for e in entry["measured"]["feature_off_effects"]]
    for k, v in entry["measured"].items():
        if k != "feature_off_effects":
            lines.append(f"- {k}: {json.dumps(v)}")
    lines += ["", "Versions:", ""] + [f"- {k}: {v}" for k, v in vers.items()]
    return "\n".join(lines) + "\n"


def build(family: str, spec: dict, tok_dirs: dict, llama_cpp: Path, vers: dict) -> dict:
    d = OUT / family
    d.mkdir(parents=True, exist_ok=True)
    for f in d.iterdir():
        f.unlink()
    kind = spec["tokenizer"]
    ids = fixed_ids(kind, tok_dirs[kind])
    model = make_model(spec, family)
    round_weights(model, family, torch.Generator().manual_seed(SEED + sorted(FAMILIES).index(family)))
    logits = logits_of(model, ids)
    measured = measure(spec, family, model, ids, logits)
    save_checkpoint(model, d, tok_dirs[kind])
    np.save(d / "logits.npy", logits.astype("<f4"))
    cmd = convert(d, llama_cpp, TOKENIZERS[kind]["pre"])
    for outtype, outfile in spec.get("extra_gguf", {}).items():  # after model.gguf: the converter reads the same dir
        convert(d, llama_cpp, TOKENIZERS[kind]["pre"], outtype, outfile)
    entry = {"hf_class": spec["cls"], "tokenizer": kind, "gguf_pre": TOKENIZERS[kind]["pre"] or "default",
             "weights_dtype": "bf16", "ids": ids.tolist(), "logits": "logits.npy", "logits_shape": list(logits.shape),
             "features": spec["features"], "notes": spec.get("notes", []), "measured": measured}
    if spec.get("extra_logits"):
        entry["extra_logits"] = {file: f"HF logits with '{label}'" for label, file in spec["extra_logits"].items()}
    (d / "PROVENANCE.md").write_text(provenance(family, spec, entry, vers, cmd))
    entry["files"] = {p.name: {"bytes": p.stat().st_size, "sha256": sha256(p)} for p in sorted(d.iterdir())
                      if p.is_file()}
    return entry


def tokenizer_refs(tok_dirs: dict) -> dict:
    """Per tokenizer kind: the tokenizer library's ids (no special tokens) and HF transformers' AutoTokenizer ids and
    pieces (with the special tokens it adds) on fixed strings."""
    out = {}
    for kind, d in tok_dirs.items():
        hf = transformers.AutoTokenizer.from_pretrained(d)
        out[kind] = {"families": [f for f, s in FAMILIES.items() if s["tokenizer"] == kind], "cases": [
            {"text": s, "ids": encode(kind, d, s, special=False), "hf_ids": hf(s)["input_ids"],
             "hf_pieces": hf.convert_ids_to_tokens(hf(s)["input_ids"])} for s in TOKENIZER_STRINGS]}
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--llama-cpp", type=Path, required=True, help="llama.cpp source dir with convert_hf_to_gguf.py")
    ap.add_argument("--only", default="", help="comma-separated families (default: all)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/qeval_family_work"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    os.environ["RAYON_NUM_THREADS"] = "1"  # tokenizers' trainer, deterministic
    args.work.mkdir(parents=True, exist_ok=True)
    tok_dirs = make_tokenizers(args.work)
    vers = versions(args.llama_cpp)
    OUT.mkdir(parents=True, exist_ok=True)
    manifest_path = OUT / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {"families": {}}
    only = [f for f in args.only.split(",") if f] or list(FAMILIES)
    for family in only:
        print(f"building {family}", file=sys.stderr)
        manifest["families"][family] = build(family, FAMILIES[family], tok_dirs, args.llama_cpp, vers)
    manifest.update({"generator": "scripts/testdata/make_family_fixtures.py", "seed": SEED, "versions": vers,
                     "vocab_size": VOCAB, "logits_dtype": "float32"})
    manifest_path.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
    (OUT / "tokenizer_refs.json").write_text(json.dumps(tokenizer_refs(tok_dirs), indent=1, ensure_ascii=False) + "\n")
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"tests/data/families: {total / 1e6:.2f} MB", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
