#!/usr/bin/env python3
# scripts/testdata/convert_hf_to_gguf_pre.py — runs llama.cpp's convert_hf_to_gguf.py with tokenizer.ggml.pre given, not guessed.
#
# The converter recognises a byte-level BPE pre-tokenizer by hashing its ids on a fixed text and looking the hash
# up among published tokenizers; a tokenizer trained for a test fixture is never among them, so the converter
# stops ("BPE pre-tokenizer was not recognized"). This wrapper replaces that look-up (TextModel.get_vocab_base_pre)
# with the name given here and runs the converter unchanged otherwise. The caller vouches that the tokenizer.json
# uses exactly the regex llama.cpp associates with that name (make_family_fixtures.py copies it from the family's
# published tokenizer.json). Nothing of llama.cpp is copied: it is imported from the checkout given.
#
#   python3 convert_hf_to_gguf_pre.py LLAMA_CPP_DIR PRE_NAME <convert_hf_to_gguf.py arguments...>
import runpy
import sys
from pathlib import Path


def main() -> None:
    llama_cpp, pre, rest = Path(sys.argv[1]).resolve(), sys.argv[2], sys.argv[3:]
    sys.path.insert(0, str(llama_cpp))
    sys.path.insert(1, str(llama_cpp / "gguf-py"))  # the converter's own gguf-py, as it would insert itself
    import conversion.base as base

    def forced_pre(self, tokenizer) -> str:
        return pre

    base.TextModel.get_vocab_base_pre = forced_pre
    sys.argv = [str(llama_cpp / "convert_hf_to_gguf.py")] + rest
    runpy.run_path(str(llama_cpp / "convert_hf_to_gguf.py"), run_name="__main__")


if __name__ == "__main__":
    main()
