#!/usr/bin/env python3
# scripts/testdata/make_spm_tokenizer_refs.py — trains small SentencePiece-style tokenizer.json files with HF
# `tokenizers` (BPE, byte_fallback, unk) configured as Llama-2 / Mistral / Gemma publish them, and records
# HF's ids for tricky texts, so tests/tokenizer/ can compare qeval's tokenizer.json loader with HF exactly.
#
# Why this reference is independent of eval/tokenizer/: only the inputs are shared (the trained vocabulary,
# merges and pipeline configuration). Normalizers, Metaspace, the character split, byte fallback, unk fusing
# and the merge loop are HF's own Rust code.
#
# The pipelines, as in the published tokenizer.json files (structure only; no vocabulary is copied):
#   spm_llama2   : normalizer Sequence[Prepend("▁"), Replace(" ", "▁")], pre_tokenizer null, decoder
#                  Sequence[Replace("▁", " "), ByteFallback, Fuse, Strip(" ", 1, 0)], TemplateProcessing "<s> $A"
#                  (meta-llama/Llama-2-7b-hf, mistralai/Mistral-7B-v0.1, Mixtral-8x7B-v0.1 tokenizer.json)
#   spm_metaspace: normalizer null, pre_tokenizer Metaspace("▁", prepend_scheme "first", split false),
#                  decoder as spm_llama2 (transformers' LlamaConverter with legacy=False; Mistral v0.3)
#   spm_gemma    : normalizer Replace(" ", "▁"), pre_tokenizer null, decoder Sequence[Replace, ByteFallback,
#                  Fuse] — no dummy prefix (google/gemma-2b tokenizer.json)
#   spm_unk      : NFKC normalizer, Metaspace("▁", prepend_scheme "always", split true), byte_fallback false,
#                  unk "<unk>" with fuse_unk false — characters outside the vocabulary become <unk>;
#                  decoder Metaspace
#   spm_fuse     : NFC normalizer, Metaspace(prepend_scheme "never", split true), byte_fallback true but only
#                  the ASCII byte tokens <0x00>..<0x7F>, fuse_unk true — other characters outside the
#                  vocabulary become one fused <unk>, and HF writes byte-fallback tokens before a pending <unk>
#   spm_gemma3   : as spm_gemma plus pre_tokenizer Split(" ", MergedWithPrevious) (transformers' GemmaTokenizer;
#                  a no-op after the Replace normalizer)
#   spm_split    : every Split behavior on String patterns before Metaspace("first", split true):
#                  Split("-", Removed), Split(",", MergedWithPrevious), Split(".", Contiguous),
#                  Split("!", MergedWithNext), Split("\n", Isolated)
#   spm_strip    : spm_metaspace plus added tokens with lstrip/rstrip (Phi-3's chat tokens have rstrip true):
#                  special "<|user|>" lstrip, "<|assistant|>" rstrip, non-special "<sep>" both
# Vocabulary: "<unk>", "<s>", "</s>" (Gemma: "<pad>", "<eos>", "<bos>", "<unk>"), the 256 <0xNN> byte tokens
# (model.vocab only, as in Llama-2's file; not in spm_unk), then BPE pieces trained on the first 400 kB of
# data/sotu/sotu.txt up to 1000 tokens.
#
# Whole-file references (count, SHA-256 of the ids, per-chunk SHA-256; see make_tokenizer_refs.py) of
# data/wikitext-2-raw/wiki.test.raw for spm_llama2 (one 1.3 MB BPE word: no pre-tokenizer) and spm_fuse.
#
# Usage:  python3 scripts/testdata/make_spm_tokenizer_refs.py [--out tests/data/tokenizer]
# Needs:  pip install tokenizers   (0.23.3 was used)
import argparse
import hashlib
import json
import os
import sys

import tokenizers
from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, trainers
from tokenizers import pre_tokenizers as P

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_tokenizer_refs import ids_summary  # noqa: E402  (same compact whole-file form as the other refs)

SP = "\u2581"
BYTES = ["<0x%02X>" % b for b in range(256)]

TEXTS = [
    "", "Hello world", "Hello  world", " leading space", "   leading spaces", "trailing spaces   ",
    "a\n\nb", "\n\n\n", "tab\there", "line\r\nbreak", " \n \n = Robert Boulter = \n",
    "multiple   internal    spaces", "I'm", "can't", "The year 2024's 3rd quarter: $1.5M (+12%).",
    "1234567890", "caf\u00e9", "na\u00efve", "e\u0301 combining", "a\u0308\u0323 two marks", "\u00c5ngstr\u00f6m",
    "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac", "\u0420\u0443\u0441\u0441\u043a\u0438\u0439",
    "\u4f60\u597d\uff0c\u4e16\u754c\uff01", "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8", "\ud55c\uad6d\uc5b4",
    "\U0001F600\U0001F44D\U0001F3FD\U0001F1FA\U0001F1F8\u2764\ufe0f", "\U0001F468\u200d\U0001F469\u200d\U0001F467",
    "\u00a0nbsp", "a\u3000b", "\ufb01 ligature \u2460 \u00bd", "\uff21\uff22 fullwidth",
    "\x00\x01\x7f controls", "a\x1cb\x0bc", "\U0010FFFF", "\ufeffbom", "\u2581 literal lower block",
    "<s>", "Hello<s>world</s>", "</s> after", "<unk>", "<0x41> not a byte token",
    "a" * 200, " " * 20, "!!!???...---", "def f(x):\n    return x**2  # comment\n",
    "the quick brown fox jumps over the lazy dog", "\u65e5\x01\u672c\u8a9e x", "\x01\u65e5\u672c\x02",
    "-leading dash", "a-b--c-", "x,,y, z,", "wait... what.... ok.", "!!hi! there!", "line\n\nbreak\n", ",.!-\n",
    "<|user|>\n hi <|assistant|>  \n ok", "a \u3000 <|user|>b", "x<sep>y", "x \t<sep>\n y", "<sep>   ",
    "   <|user|>", "<|assistant|>\u00a0\u2003z", "<|user|><|assistant|> <sep> <|user|>",
    "Mr. Speaker, Mr. President, and distinguished Members of the Congress",
]

VARIANTS = ("spm_llama2", "spm_metaspace", "spm_gemma", "spm_unk", "spm_fuse", "spm_gemma3", "spm_split", "spm_strip")


WHOLE_FILE = ("spm_llama2", "spm_fuse")
WIKI = "wikitext-2-raw/wiki.test.raw"


def whole_file(tok, path):
    with open(path, "rb") as f:
        raw = f.read()
    out = {"text_file": WIKI, "text_sha256": hashlib.sha256(raw).hexdigest(), "text_bytes": len(raw)}
    out.update(ids_summary(tok.encode(raw.decode("utf-8"), add_special_tokens=False).ids))
    return out


def specials_of(name):
    return ["<pad>", "<eos>", "<bos>", "<unk>"] if name.startswith("spm_gemma") else ["<unk>", "<s>", "</s>"]


def train(name, text):
    """BPE trained with a Metaspace(split) pre-tokenizer (so words are the training units, as in
    SentencePiece); the published pipeline is set on the JSON afterwards."""
    byte_fallback = name != "spm_unk"
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=byte_fallback, fuse_unk=byte_fallback))
    tok.normalizer = {"spm_unk": normalizers.NFKC(), "spm_fuse": normalizers.NFC()}.get(name)
    byte_tokens = BYTES[:128] if name == "spm_fuse" else BYTES if byte_fallback else []
    tok.pre_tokenizer = P.Metaspace(replacement=SP, prepend_scheme="always", split=True)
    specials = specials_of(name)
    trainer = trainers.BpeTrainer(vocab_size=1000, min_frequency=2, show_progress=False,
                                  special_tokens=specials + byte_tokens,
                                  limit_alphabet=150)
    tok.train_from_iterator(text.splitlines(), trainer=trainer)
    j = json.loads(tok.to_str())
    # Byte tokens live in model.vocab only (as in Llama-2's tokenizer.json), not as added tokens.
    j["added_tokens"] = [a for a in j["added_tokens"] if a["content"] in specials]
    return j


def set_pipeline(name, j):
    replace_dec = {"type": "Replace", "pattern": {"String": SP}, "content": " "}
    if name == "spm_llama2":
        j["normalizer"] = {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": SP}, {"type": "Replace", "pattern": {"String": " "}, "content": SP}]}
        j["pre_tokenizer"] = None
        j["decoder"] = {"type": "Sequence", "decoders": [
            replace_dec, {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
        j["post_processor"] = {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
    elif name in ("spm_metaspace", "spm_strip"):
        j["normalizer"] = None
        j["pre_tokenizer"] = {"type": "Metaspace", "replacement": SP, "prepend_scheme": "first", "split": False}
        j["decoder"] = {"type": "Sequence", "decoders": [
            replace_dec, {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    elif name.startswith("spm_gemma"):
        j["normalizer"] = {"type": "Replace", "pattern": {"String": " "}, "content": SP}
        j["pre_tokenizer"] = None if name == "spm_gemma" else {
            "type": "Split", "pattern": {"String": " "}, "behavior": "MergedWithPrevious", "invert": False}
        j["decoder"] = {"type": "Sequence", "decoders": [replace_dec, {"type": "ByteFallback"}, {"type": "Fuse"}]}
    elif name == "spm_split":
        def split(pat, behavior):
            return {"type": "Split", "pattern": {"String": pat}, "behavior": behavior, "invert": False}
        j["normalizer"] = None
        j["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
            split("-", "Removed"), split(",", "MergedWithPrevious"), split(".", "Contiguous"),
            split("!", "MergedWithNext"), split("\n", "Isolated"),
            {"type": "Metaspace", "replacement": SP, "prepend_scheme": "first", "split": True}]}
        j["decoder"] = {"type": "Sequence", "decoders": [
            replace_dec, {"type": "ByteFallback"}, {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    elif name == "spm_fuse":
        j["normalizer"] = {"type": "NFC"}
        j["pre_tokenizer"] = {"type": "Metaspace", "replacement": SP, "prepend_scheme": "never", "split": True}
        j["decoder"] = {"type": "Sequence", "decoders": [replace_dec, {"type": "ByteFallback"}, {"type": "Fuse"}]}
    else:
        j["normalizer"] = {"type": "NFKC"}
        j["pre_tokenizer"] = {"type": "Metaspace", "replacement": SP, "prepend_scheme": "always", "split": True}
        j["decoder"] = {"type": "Metaspace", "replacement": SP, "prepend_scheme": "always", "split": True}
    return j


def add_strip_tokens(j):
    """Added tokens with lstrip/rstrip, appended by HF itself (ids after the vocabulary)."""
    tok = Tokenizer.from_str(json.dumps(j))
    tok.add_special_tokens([AddedToken("<|user|>", lstrip=True, normalized=False),
                            AddedToken("<|assistant|>", rstrip=True, normalized=False)])
    tok.add_tokens([AddedToken("<sep>", lstrip=True, rstrip=True, normalized=False)])
    return json.loads(tok.to_str())


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.normpath(os.path.join(here, "..", ".."))
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(root, "tests", "data", "tokenizer"))
    a = ap.parse_args()
    with open(os.path.join(root, "data", "sotu", "sotu.txt"), encoding="utf-8") as f:
        text = f.read(400_000)
    out = {"generator": {"script": "scripts/testdata/make_spm_tokenizer_refs.py",
                         "tokenizers": tokenizers.__version__,
                         "training_text": "data/sotu/sotu.txt, first 400000 characters"}, "cases": {}}
    for name in VARIANTS:
        j = set_pipeline(name, train(name, text))
        if name == "spm_strip":
            j = add_strip_tokens(j)
        s = json.dumps(j, ensure_ascii=False, separators=(",", ":"))
        with open(os.path.join(a.out, name + ".tokenizer.json"), "w", encoding="utf-8") as f:
            f.write(s)
        tok = Tokenizer.from_str(s)
        cases = []
        for t in TEXTS:
            ids = tok.encode(t, add_special_tokens=False).ids
            cases.append({"text": t, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=True),
                          "ids_with_specials": tok.encode(t, add_special_tokens=True).ids})
        out["cases"][name] = cases
        if name in WHOLE_FILE:
            out.setdefault("whole_file", {})[name] = whole_file(tok, os.path.join(root, "data", WIKI))
        print("wrote", name + ".tokenizer.json", "vocab", tok.get_vocab_size())
    with open(os.path.join(a.out, "spm_refs.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=True, indent=1)
        f.write("\n")
    print("wrote spm_refs.json")


if __name__ == "__main__":
    main()
