#!/usr/bin/env python3
# scripts/testdata/make_dequant_fixtures.py — random blocks of every GGUF type gguf-py dequantizes, and gguf-py's output.
#
# Writes tests/data/gguf/dequant.gguf (not a model: architecture "qeval-test") with two tensors per type:
#   "<TYPE>.finite"     blocks whose gguf-py dequantization is all finite (the reader must return these values)
#   "<TYPE>.nonfinite"  blocks whose dequantization holds ±Inf or NaN (from Inf/NaN scales, or an E8M0 exponent
#                       so large that 2^127 · 12 overflows); the reader must reject them, the reference
#                       dequantizers must reproduce them (NaN positions, every other bit)
# and tests/data/gguf/dequant_expected.{json,f32}: gguf.quants.dequantize() of every tensor, as raw float32.
#
# The blocks: random bytes (every bit pattern of these formats decodes — grid, sign and sub-scale indices are all
# in range), then
#   * scales: most blocks get a random fp16 scale, log-uniform over |d| ∈ [2^-14, 2^4] with either sign; a set of
#     extreme blocks gets each of ±0, the smallest/largest subnormal, the smallest normal, ±65504, ±Inf, quiet
#     and signalling NaN — in d, and separately in dmin where the type has one; E8M0/E4M3 scales are random bytes
#     with every extreme (0, 1, 254, 255; 0x00, 0x7F, 0x80, 0xFF) forced in;
#   * lattice types: the grid indices of the ordinary blocks run through a random permutation of the whole grid,
#     so every grid row is used at least once (IQ1_S/IQ1_M: 2048 rows = 64 blocks of 32 groups).
# Nothing here calls qeval. Deterministic (numpy PCG64, seed below).
#
#   pip install gguf==0.19.0 numpy
#   python3 scripts/testdata/make_dequant_fixtures.py
import hashlib
import importlib.metadata
import json
import sys
import warnings
from pathlib import Path

import numpy as np

import gguf
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES
from gguf.quants import dequantize

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "tests" / "data" / "gguf"
SEED = 20250614

# fp16 bit patterns of the extreme scales
EXTREME_F16 = [0x0000, 0x8000, 0x0001, 0x83FF, 0x0400, 0x7BFF, 0xFBFF, 0x7C00, 0xFC00, 0x7E00, 0x7C01, 0xFE00]
# byte offsets of the fp16 scale fields: (d, dmin or m or None)
F16_FIELDS = {
    T.Q4_0: (0, None), T.Q4_1: (0, 2), T.Q5_0: (0, None), T.Q5_1: (0, 2), T.Q8_0: (0, None),
    T.Q2_K: (80, 82), T.Q3_K: (108, None), T.Q4_K: (0, 2), T.Q5_K: (0, 2), T.Q6_K: (208, None),
    T.TQ1_0: (52, None), T.TQ2_0: (64, None), T.IQ4_NL: (0, None), T.IQ4_XS: (0, None),
    T.IQ2_XXS: (0, None), T.IQ2_XS: (0, None), T.IQ2_S: (0, None), T.IQ3_XXS: (0, None), T.IQ3_S: (0, None),
    T.IQ1_S: (0, None), T.IQ1_M: ("iq1m", None),
}
# lattice types: (grid rows, groups per block)
GRIDS = {T.IQ2_XXS: (256, 32), T.IQ2_XS: (512, 32), T.IQ2_S: (1024, 32), T.IQ3_XXS: (256, 64),
         T.IQ3_S: (512, 64), T.IQ1_S: (2048, 32), T.IQ1_M: (2048, 32)}
ORDINARY_BLOCKS = {32: 48, 64: 32, 256: 16}  # by block size, before the lattice minimum


def random_f16(rng: np.random.Generator, n: int) -> np.ndarray:
    mag = np.exp2(rng.uniform(-14, 4, size=n))
    sign = np.where(rng.integers(0, 2, size=n) == 1, -1.0, 1.0)
    return (sign * mag).astype(np.float16).view(np.uint16)


def put_u16(block: np.ndarray, off: int, v: int) -> None:
    block[off] = v & 0xFF
    block[off + 1] = (v >> 8) & 0xFF


def set_d(block: np.ndarray, qtype: T, field, bits: int) -> None:
    if field == "iq1m":  # the fp16 is the top nibble of each of the 4 uint16 scale words (bytes 48..55)
        for k in range(4):
            block[48 + 2 * k + 1] = (int(block[48 + 2 * k + 1]) & 0x0F) | (((bits >> (4 * k)) & 0xF) << 4)
    else:
        put_u16(block, field, bits)


def set_grid_index(block: np.ndarray, qtype: T, g: int, idx: int) -> None:
    """Grid index of group (IQ3: row) g — the layouts of eval/model/ggml_types.hpp / ggml-common.h."""
    if qtype == T.IQ2_XXS:
        block[2 + 8 * (g // 4) + g % 4] = idx
    elif qtype == T.IQ2_XS:
        v = int(block[2 + 2 * g]) | int(block[3 + 2 * g]) << 8
        put_u16(block, 2 + 2 * g, (v & ~511) | idx)
    elif qtype == T.IQ2_S:
        block[2 + g] = idx & 0xFF
        q = 66 + g // 4
        block[q] = (int(block[q]) & ~(3 << (2 * (g % 4)))) | ((idx >> 8) << (2 * (g % 4)))
    elif qtype == T.IQ3_XXS:
        block[2 + g] = idx
    elif qtype == T.IQ3_S:
        block[2 + g] = idx & 0xFF
        q = 66 + g // 8
        block[q] = (int(block[q]) & ~(1 << (g % 8))) | ((idx >> 8) << (g % 8))
    elif qtype == T.IQ1_S:
        block[2 + g] = idx & 0xFF
        off, sh = 34 + 2 * (g // 4), 3 * (g % 4)
        v = int(block[off]) | int(block[off + 1]) << 8
        put_u16(block, off, (v & ~(7 << sh)) | ((idx >> 8) << sh))
    elif qtype == T.IQ1_M:
        block[g] = idx & 0xFF
        q, sh = 32 + g // 2, 4 * (g % 2)
        block[q] = (int(block[q]) & ~(7 << sh)) | ((idx >> 8) << sh)


def make_blocks(rng: np.random.Generator, qtype: T) -> np.ndarray:
    block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
    n_ord = ORDINARY_BLOCKS[block_elems]
    if qtype in GRIDS:
        rows, groups = GRIDS[qtype]
        n_ord = max(n_ord, rows // groups)
    d_field, m_field = F16_FIELDS.get(qtype, (None, None))
    extremes = []
    if d_field is not None:
        extremes += [(e, None) for e in EXTREME_F16]
        if m_field is not None:
            extremes += [(None, e) for e in EXTREME_F16] + [(0x7C00, 0x7C00), (0x7C00, 0xFC00)]
    n_ext = len(extremes)
    blocks = rng.integers(0, 256, size=(n_ord + n_ext, block_bytes), dtype=np.uint8)
    if d_field is not None:
        for i in range(n_ord + n_ext):
            d_bits, m_bits = random_f16(rng, 2)
            if i >= n_ord:
                e_d, e_m = extremes[i - n_ord]
                d_bits = e_d if e_d is not None else d_bits
                m_bits = e_m if e_m is not None else m_bits
            set_d(blocks[i], qtype, d_field, int(d_bits))
            if m_field is not None:
                put_u16(blocks[i], m_field, int(m_bits))
    elif qtype == T.MXFP4:
        blocks[:8, 0] = [0, 1, 2, 127, 128, 253, 254, 255]
    elif qtype == T.NVFP4:
        blocks[:2, :4] = [[0x00, 0x7F, 0x80, 0xFF], [0x01, 0x08, 0x7E, 0xFE]]
    if qtype in GRIDS:
        rows, groups = GRIDS[qtype]
        perm = rng.permutation(rows)
        for c in range(n_ord * groups):
            set_grid_index(blocks[c // groups], qtype, c % groups, int(perm[c % rows]))
    return blocks


# bf16 bit patterns of the same extremes (subnormals 2^-133 and the largest, ±max, ±Inf, quiet/signalling NaN)
EXTREME_BF16 = [0x0000, 0x8000, 0x0001, 0x807F, 0x0080, 0x7F7F, 0xFF7F, 0x7F80, 0xFF80, 0x7FC0, 0x7F81, 0xFFC0]


def plain_blocks(rng: np.random.Generator, n: int, extremes: list[int]) -> np.ndarray:
    """F16 / BF16: 32 random 16-bit patterns per row, with the extremes in row 0 (and again, negated, in row 1)."""
    bits = rng.integers(0, 1 << 16, size=(n, 32), dtype=np.uint16)
    bits[0, :len(extremes)] = extremes
    bits[1, :len(extremes)] = np.array(extremes, dtype=np.uint16) ^ np.uint16(0x8000)
    return bits.view(np.uint8)


TYPES = [T.F16, T.BF16, T.Q4_0, T.Q4_1, T.Q5_0, T.Q5_1, T.Q8_0, T.Q2_K, T.Q3_K, T.Q4_K, T.Q5_K, T.Q6_K,
         T.IQ2_XXS, T.IQ2_XS, T.IQ2_S, T.IQ3_XXS, T.IQ3_S, T.IQ1_S, T.IQ1_M, T.IQ4_NL, T.IQ4_XS,
         T.TQ1_0, T.TQ2_0, T.MXFP4, T.NVFP4]


def main() -> int:
    rng = np.random.default_rng(SEED)
    path = OUT / "dequant.gguf"
    w = gguf.GGUFWriter(str(path), "qeval-test")
    w.add_string("qeval.fixture", "dequant: random blocks per ggml type, see scripts/testdata/make_dequant_fixtures.py")
    index, blobs, summary = [], [], {}
    off = 0
    for qtype in TYPES:
        block_elems, block_bytes = GGML_QUANT_SIZES[qtype]
        if qtype in (T.F16, T.BF16):
            raw = plain_blocks(rng, 8, EXTREME_F16 if qtype == T.F16 else EXTREME_BF16)
        else:
            raw = make_blocks(rng, qtype)
        if qtype in (T.F16, T.BF16):
            block_elems, block_bytes = 32, 64  # one "block" = one row of 32 values
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            vals = dequantize(raw, qtype).astype(np.float32).reshape(len(raw), block_elems)
        finite = np.all(np.isfinite(vals), axis=1)
        summary[qtype.name] = {"blocks": int(len(raw)), "nonfinite_blocks": int((~finite).sum()),
                               "nan_values": int(np.isnan(vals).sum()), "inf_values": int(np.isinf(vals).sum()),
                               "bits_per_weight": GGML_QUANT_SIZES[qtype][1] * 8 / GGML_QUANT_SIZES[qtype][0]}
        for part, sel in (("finite", finite), ("nonfinite", ~finite)):
            if not sel.any():
                continue
            name = f"{qtype.name}.{part}"
            r, v = raw[sel], vals[sel]
            w.add_tensor(name, np.ascontiguousarray(r), raw_dtype=qtype)  # bytes [n, block_bytes]
            index.append({"name": name, "type": qtype.name, "shape": [int(sel.sum()), block_elems],
                          "offset": off, "count": int(v.size)})
            blobs.append(v.reshape(-1))
            off += v.size
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    np.concatenate(blobs).astype("<f4").tofile(OUT / "dequant_expected.f32")
    doc = {"values_file": "dequant_expected.f32", "gguf": path.name,
           "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
           "generator": "scripts/testdata/make_dequant_fixtures.py", "seed": SEED,
           "gguf_py": importlib.metadata.version("gguf"), "numpy": np.__version__,
           "types": summary, "tensors": index}
    (OUT / "dequant_expected.json").write_text(json.dumps(doc, indent=1) + "\n")
    for p in (path, OUT / "dequant_expected.f32", OUT / "dequant_expected.json"):
        print(f"{p.stat().st_size:8d}  {p.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
