// eval/model/ref/ggml_dequant_ref.hpp — scalar reference dequantizers for every ggml block format gguf-py reads (internal header).
//
// Included by the GGUF reader and by tests only. Each function turns `n` elements (a multiple of the type's
// block size; the caller checks) starting at `src` into fp32 at `dst`. `src` needs no alignment.
//
// Exactness: every format here reconstructs x from fp16 (or E8M0/E4M3) scales and small integers, e.g. Q4_K
// x = d·sc·q − dmin·m with d, dmin fp16 (11 significant bits), sc, m < 64 (6 bits), q < 16 (4 bits):
// d·sc·q has ≤ 21 significant bits, dmin·m ≤ 17, and both lie between 2^-24·1 (the smallest fp16 step) and
// 2^16·63·15 < 2^26, a span of < 50 bits. So the computation in double is exact and the single cast to float
// is the one correctly rounded operation — the same value ggml's float code (and gguf-py's numpy code)
// gets, which rounds only the last add/sub. Tests therefore compare these outputs bit-exactly. The widest product
// is Q6_K's d·sc·q: 11 + 8 + 6 = 25 significant bits, rounded once both here and in float32 (where d·sc is exact).
// Non-finite scales propagate as IEEE arithmetic does (Inf·0 = NaN); NaN payloads are not part of the contract.
#pragma once

#include <cstdint>

namespace qeval::ref {

// IEEE binary16 → binary32 (exact; subnormals, ±Inf and NaN preserved).
float fp16_to_fp32(uint16_t h);
// bfloat16 → binary32 (exact: the upper 16 bits of a float).
float bf16_to_fp32(uint16_t h);

// One function per ggml type; n must be a multiple of the type's block size (the caller checks).
void dequantize_row_f32(const uint8_t* src, float* dst, int64_t n);
void dequantize_row_f16(const uint8_t* src, float* dst, int64_t n);
void dequantize_row_bf16(const uint8_t* src, float* dst, int64_t n);
void dequantize_row_q4_0(const uint8_t* src, float* dst, int64_t n);    // 32
void dequantize_row_q4_1(const uint8_t* src, float* dst, int64_t n);    // 32
void dequantize_row_q5_0(const uint8_t* src, float* dst, int64_t n);    // 32
void dequantize_row_q5_1(const uint8_t* src, float* dst, int64_t n);    // 32
void dequantize_row_q8_0(const uint8_t* src, float* dst, int64_t n);    // 32
void dequantize_row_q2_k(const uint8_t* src, float* dst, int64_t n);    // 256
void dequantize_row_q3_k(const uint8_t* src, float* dst, int64_t n);    // 256
void dequantize_row_q4_k(const uint8_t* src, float* dst, int64_t n);    // 256
void dequantize_row_q5_k(const uint8_t* src, float* dst, int64_t n);    // 256
void dequantize_row_q6_k(const uint8_t* src, float* dst, int64_t n);    // 256
void dequantize_row_iq2_xxs(const uint8_t* src, float* dst, int64_t n); // 256
void dequantize_row_iq2_xs(const uint8_t* src, float* dst, int64_t n);  // 256
void dequantize_row_iq2_s(const uint8_t* src, float* dst, int64_t n);   // 256
void dequantize_row_iq3_xxs(const uint8_t* src, float* dst, int64_t n); // 256
void dequantize_row_iq3_s(const uint8_t* src, float* dst, int64_t n);   // 256
void dequantize_row_iq1_s(const uint8_t* src, float* dst, int64_t n);   // 256
void dequantize_row_iq1_m(const uint8_t* src, float* dst, int64_t n);   // 256
void dequantize_row_iq4_nl(const uint8_t* src, float* dst, int64_t n);  // 32
void dequantize_row_iq4_xs(const uint8_t* src, float* dst, int64_t n);  // 256
void dequantize_row_tq1_0(const uint8_t* src, float* dst, int64_t n);   // 256
void dequantize_row_tq2_0(const uint8_t* src, float* dst, int64_t n);   // 256
void dequantize_row_mxfp4(const uint8_t* src, float* dst, int64_t n);   // 32
void dequantize_row_nvfp4(const uint8_t* src, float* dst, int64_t n);   // 64

// The dequantizer of a ggml type id, or nullptr when there is none (ggml_type_traits().dequantizable agrees).
using DequantizeRowFn = void (*)(const uint8_t* src, float* dst, int64_t n);
DequantizeRowFn dequantizer(uint32_t ggml_type_id);

// The 6-bit (scale, min) pair of Q4_K sub-block j ∈ [0, 8) from the 12 packed bytes `q` (layout in the .cpp).
void q4_k_scale_min(int j, const uint8_t* q, int* scale, int* min);

}  // namespace qeval::ref
