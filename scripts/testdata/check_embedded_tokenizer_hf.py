#!/usr/bin/env python3
# scripts/testdata/check_embedded_tokenizer_hf.py — independent check of a tokenizer.json written by qeval's
# BPE trainer (eval/tokenizer/bpe_train): Hugging Face `tokenizers` (pip install tokenizers) must load it and
# produce exactly the ids qeval produces. qeval's ids come from a file of one id per line, e.g. written by
# a small program around qeval::tokenizer::Tokenizer::encode (add_bos true, parse_special false).
#
#   python3 scripts/testdata/check_embedded_tokenizer_hf.py models/qeval-sotu-4l256/tokenizer.json \
#       data/wikitext-2-raw/wiki.test.raw qeval_ids.txt
#
# Result recorded for models/qeval-sotu-4l256 (tokenizers 0.23.3): identical ids on the whole of
# wiki.test.raw (522,682 ids incl. BOS) and sotu.txt (2,957,701 ids). Read the text as bytes and decode it
# (Python's text mode would turn "\r\n" into "\n" and change the ids).
import sys

from tokenizers import Tokenizer


def main() -> int:
    tok_path, text_path, ids_path = sys.argv[1:4]
    tok = Tokenizer.from_file(tok_path)
    text = open(text_path, "rb").read().decode("utf-8")
    hf = tok.encode(text).ids
    ours = [int(line) for line in open(ids_path)]
    if hf == ours:
        print(f"identical: {len(hf)} ids")
        return 0
    first = next((i for i, (a, b) in enumerate(zip(hf, ours)) if a != b), min(len(hf), len(ours)))
    print(f"DIFFERENT: HF {len(hf)} ids, qeval {len(ours)} ids, first difference at {first}")
    return 1


if __name__ == "__main__":
    sys.exit(main())
