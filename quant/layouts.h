/* quant/layouts.h — packed code layouts, GPU block structs and the 4-bit code books, shared by C, C++ and OpenCL C.
 *
 * One definition for every consumer: compiles as C99, C++17 and OpenCL C 1.2 (kernels #include it), so
 * a code book or a block layout cannot drift between the CPU reference and the GPU kernels.
 * Only facts (layouts, table values) live here; the quantizers are in quant/ (C++) and gpu/ (OpenCL).
 *
 * ---- 1. Planar bit stream (QuantizedMatrix::codes, quant/pack.hpp) -------------------------------
 * Codes are stored as *storage codes* u in [0, 2^b), row by row:
 *   - element c of a row occupies bits [c*b, c*b + b) of the row's byte string, least significant bit
 *     first: bit j of u is bit ((c*b + j) mod 8) of byte floor((c*b + j) / 8);
 *   - every row starts on a byte boundary: row_bytes = ceil(cols*b / 8); the unused high bits of a
 *     row's last byte are 0.
 *   Consequences: int8 → byte c is element c; int4 → element 2k is the LOW nibble of byte k and element
 *   2k+1 the HIGH nibble; int2 → byte k holds elements 4k..4k+3 from bit 0 up; int3 → element 0 is bits
 *   0..2 of byte 0, element 2 straddles bytes 0 and 1 (bits 6,7 of byte 0 and bit 0 of byte 1).
 *   Worked example (int4): elements u = {1, 15, 8} → bytes {0xF1, 0x08}.
 * Storage code u of an integer code q:
 *   - symmetric:  u = q + 2^(b-1)   (int4: q in [-7, 7] → u in [1, 15]; u = 0 is never produced);
 *   - asymmetric: u = q             (q in [0, 2^b - 1]);
 *   - float formats: u is the code-book index / bit pattern (tables below, FP8 bit fields).
 *
 * ---- 2. Interleaved GPU blocks (one struct = one group of 32 elements + its scale) ----------------
 * A row of K elements (K % 32 == 0) becomes K/32 consecutive blocks; blocks of a row are contiguous and
 * rows follow each other. The scale `d` is an IEEE binary16 bit pattern (OpenCL: vload_half on it).
 *   qeval_block_q4_32: d + 16 bytes; element i of the block is nibble (i & 1) of qs[i / 2] (low nibble
 *                      first — the planar rule above applied to the block), as a storage code u;
 *                      int4 sym: x = d * (u - 8); fp4/nf4: x = d * TABLE[u].       sizeof == 18
 *   qeval_block_q8_32: d + 32 signed bytes; qs[i] = q (two's complement, q in [-127, 127]), i.e. the
 *                      storage code u XOR 0x80; x = d * q. Signed so char4 dot products use it directly.
 *                                                                                    sizeof == 34
 * ---- 3. Code books ---------------------------------------------------------------------------------
 * Index = 4-bit storage code u. See each table for its source.
 *
 * ---- 4. VNNI-packed int8 weights (OpenCL T2/T3 GEMM, gpu/kernels/gemm_subgroup.cl) ------------------
 * W is N×K signed int8 operands q (= storage code − 2^(b−1)). Output columns are cut into tiles of SG
 * (the subgroup size, 8 or 16), K into blocks of 32 (KB = ceil(K/32)). The 32-bit word at
 * QEVAL_VNNI_WORD_INDEX(t, kb, j, l, KB, SG) holds W[t·SG + l][kb·32 + 4j + i] in byte i (i = 0..3),
 * zero beyond N or K: one 8 × SG block of words per (tile, K block), so a subgroup block read of 8 rows
 * gives lane l the 8 words (32 k) of column t·SG + l — the B operand of intel_sub_group_i8_i8_matrix_mad_k32.
 * Worked example (SG = 8): word 9 = (t 0, kb 0, j 1, l 1) holds W[1][4..7].
 */
#ifndef QEVAL_QUANT_LAYOUTS_H
#define QEVAL_QUANT_LAYOUTS_H

/* OpenCL C: device compilers (PoCL, vendor drivers) define __OPENCL_VERSION__; stand-alone `clang -x cl`
 * (the syntax check in tests/quant) defines only __OPENCL_C_VERSION__. Either selects the OpenCL branch. */
#if defined(__OPENCL_VERSION__) || defined(__OPENCL_C_VERSION__)
#define QEVAL_OPENCL_C 1
#endif

#ifdef QEVAL_OPENCL_C
/* OpenCL C: built-in fixed-size types; program-scope tables must be __constant. */
typedef uchar qeval_u8;
typedef char qeval_i8;
typedef ushort qeval_u16;
#define QEVAL_CONST_TABLE __constant
#else
#include <stdint.h>
typedef uint8_t qeval_u8;
typedef int8_t qeval_i8;
typedef uint16_t qeval_u16;
#define QEVAL_CONST_TABLE static const
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes of one planar row of `cols` codes of `bits` bits. */
#define QEVAL_ROW_BYTES(cols, bits) (((cols) * (bits) + 7) / 8)

/* Elements per GPU block. */
#define QEVAL_BLOCK_SIZE 32

typedef struct {
  qeval_u16 d;                          /* scale, binary16 bits */
  qeval_u8 qs[QEVAL_BLOCK_SIZE / 2];    /* 32 storage codes, two per byte, low nibble first */
} qeval_block_q4_32;

typedef struct {
  qeval_u16 d;                          /* scale, binary16 bits */
  qeval_i8 qs[QEVAL_BLOCK_SIZE];        /* signed codes q */
} qeval_block_q8_32;

/* Size checks: the layouts above are ABI shared with the device; a padded struct would silently shift
 * every block. C++: static_assert; C11: _Static_assert; C99: a negative-size array typedef;
 * OpenCL C 1.2 has no static assertion (the host-side checks cover the same struct). */
#if defined(__cplusplus)
static_assert(sizeof(qeval_block_q4_32) == 18, "qeval_block_q4_32 must be 2 + 16 bytes (no padding)");
static_assert(sizeof(qeval_block_q8_32) == 34, "qeval_block_q8_32 must be 2 + 32 bytes (no padding)");
#elif defined(QEVAL_OPENCL_C)
/* skipped */
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
_Static_assert(sizeof(qeval_block_q4_32) == 18, "qeval_block_q4_32 must be 2 + 16 bytes (no padding)");
_Static_assert(sizeof(qeval_block_q8_32) == 34, "qeval_block_q8_32 must be 2 + 32 bytes (no padding)");
#else
typedef char qeval_assert_block_q4_32_is_18_bytes[(sizeof(qeval_block_q4_32) == 18) ? 1 : -1];
typedef char qeval_assert_block_q8_32_is_34_bytes[(sizeof(qeval_block_q8_32) == 34) ? 1 : -1];
#endif

/* FP4 E2M1, OCP Microscaling Formats (MX) Specification v1.0 (Open Compute Project, Sept. 2023), the FP4
 * (E2M1) element data type: 1 sign bit, 2 exponent bits (bias 1), 1 mantissa bit, no Inf/NaN.
 * u = S·8 + E·2 + M: E = 0 is subnormal (0, 0.5), else 2^(E−1)·(1 + M/2). Max 6.
 * Magnitudes increase with the code: |u & 7| → 0, 0.5, 1, 1.5, 2, 3, 4, 6. */
#define QEVAL_FP4_E2M1_MAX 6.0f
QEVAL_CONST_TABLE float qeval_fp4_e2m1_values[16] = {
    0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
    -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

/* bitsandbytes FP4 (the "fp4" quant_type of bitsandbytes' 4-bit layers), NOT the OCP table above.
 * Source: bitsandbytes/functional.py get_4bit_type("fp4"):
 *   data = [0, 0.0625, 8.0, 12.0, 4.0, 6.0, 2.0, 3.0, -0, -0.0625, -8.0, -12.0, -4.0, -6.0, -2.0, -3.0]
 *   normalized by max |data| = 12; the same values as dDequantizeFP4Tree in bitsandbytes' csrc/kernels.cu
 *   (0.16666667, 0.25, 0.33333333, 0.5, 0.66666667, 1.0, 5.208333333e-03).
 * Differences from E2M1 (why the two must never be mixed, cf. ITREX's fp4_e2m1 vs fp4_e2m1_bnb bug):
 *   the exponent field runs the other way (u&7 = 2,3 are the LARGEST magnitudes 8/12 and 12/12; u&7 = 6,7
 *   are 2/12 and 3/12), the subnormal is 0.0625/12 = 1/192 (E2M1's is 0.5/6 = 1/12), and the table is
 *   normalized to max 1 (E2M1's max is 6). Codes 0, 4, 5 (and 8, 12, 13) mean the same fraction of the
 *   maximum in both books (0, 1/3, 1/2); every other code differs.
 * Values are the float32 roundings of data/12 (printed with 9 significant digits, exact round trip). */
#define QEVAL_FP4_BNB_MAX 1.0f
QEVAL_CONST_TABLE float qeval_fp4_bnb_values[16] = {
    0.0f,  0.00520833349f,  0.666666687f,  1.0f,  0.333333343f,  0.5f,  0.166666672f,  0.25f,
    -0.0f, -0.00520833349f, -0.666666687f, -1.0f, -0.333333343f, -0.5f, -0.166666672f, -0.25f};

/* NF4 (4-bit NormalFloat), Dettmers et al., "QLoRA: Efficient Finetuning of Quantized LLMs" (2023),
 * Appendix E ("NormalFloat 4-bit data type", which lists the exact values), identical to bitsandbytes/functional.py get_4bit_type("nf4")
 * and its CUDA dDequantizeNF4. Ascending; index 7 is exact 0; asymmetric (8 positive, 7 negative levels).
 * Every value is exactly a float32 (the published digits are float32 values printed in full). */
#define QEVAL_NF4_MAX 1.0f
QEVAL_CONST_TABLE float qeval_nf4_values[16] = {
    -1.0f,
    -0.6961928009986877f,
    -0.5250730514526367f,
    -0.39491748809814453f,
    -0.28444138169288635f,
    -0.18477343022823334f,
    -0.09105003625154495f,
    0.0f,
    0.07958029955625534f,
    0.16093020141124725f,
    0.24611230194568634f,
    0.33791524171829224f,
    0.44070982933044434f,
    0.5626170039176941f,
    0.7229568362236023f,
    1.0f};
#define QEVAL_NF4_ZERO_CODE 7

/* FP8, OCP 8-bit Floating Point Specification (OFP8) rev 1.0 (2023):
 *   E4M3: bias 7, no Inf, NaN = S.1111.111 (0x7F/0xFF), max S.1111.110 = 448, min subnormal 2^-9.
 *   E5M2: bias 15, IEEE-like: Inf = S.11111.00 (0x7C/0xFC), NaN = S.11111.{01,10,11}, max 57344
 *         (S.11110.11 = 0x7B), min subnormal 2^-16. */
#define QEVAL_FP8_E4M3_MAX 448.0f
#define QEVAL_FP8_E5M2_MAX 57344.0f
#define QEVAL_FP8_E4M3_NAN 0x7F
#define QEVAL_FP8_E5M2_NAN 0x7F
#define QEVAL_FP8_E5M2_INF 0x7C

/* Section 4: the VNNI weight tiles. */
#define QEVAL_VNNI_KBLOCK 32
#define QEVAL_VNNI_WORD_INDEX(t, kb, j, l, KB, SG) ((((t) * (KB) + (kb)) * 8 + (j)) * (SG) + (l))

#ifdef __cplusplus
}
#endif

#endif /* QEVAL_QUANT_LAYOUTS_H */
