// gpu/ops.hpp — the OpenCL kernels as device-resident operations: dynamic quantization of rows, dequantize,
// int8 GEMM (T0/T1 tiled, T2/T3/T3-emulated on the VNNI layout) with the scale/zero-point epilogue,
// weight-only matmul (W4A16/W8A16/any format) and LLM.int8's fp32 outlier part.
//
// Everything here works on device buffers and only enqueues (one in-order queue per Device), so the
// benchmarks can time kernels with profiling events; gpu/backend.hpp wraps these for host matrices.
// Every function validates its arguments and throws std::invalid_argument naming the problem and the fix.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "gpu/cl_api.hpp"
#include "gpu/device.hpp"
#include "gpu/variants.hpp"
#include "quant/affine.hpp"
#include "quant/matrix.hpp"

namespace qeval::gpu {

// ---- device-resident data ---------------------------------------------------------------------------

enum class ElemType : uint8_t { f32, f16 };  // f16: IEEE binary16 bit patterns (uint16_t on the host)

// A row-major float (or half) matrix on the device.
struct DevMatrix {
  Buffer buf;
  int64_t rows = 0, cols = 0, ld = 0;  // ld: elements between row starts
  ElemType type = ElemType::f32;
};
DevMatrix upload(Device& d, quant::MatrixView x);                                      // f32
DevMatrix upload_f16(Device& d, const uint16_t* x, int64_t rows, int64_t cols, int64_t ld);
DevMatrix alloc_matrix(Device& d, int64_t rows, int64_t cols, ElemType t = ElemType::f32);
quant::Matrix download(Device& d, const DevMatrix& m);                                  // f32 only

// What dynamic (activation) quantization computes: QuantParams restricted to what the kernel does.
struct ActQuantSpec {
  int bits = 8;                                      // 2..8 (int8 and int4 are the GEMM operands)
  int64_t group_size = quant::kPerRow;               // kPerRow (per token) or > 0 along the row
  quant::Mapping mapping = quant::Mapping::symmetric;
  quant::Rounding rounding = quant::Rounding::nearest_even;
  double clip_ratio = 1.0;                           // RangeMethod::minmax with this ratio
  quant::NonFinitePolicy non_finite = quant::NonFinitePolicy::error;
  bool with_sums = true;                             // also Σ(u − 2^(b−1)) per group
  bool partial_last_group = false;                   // QuantParams::partial_last_group
  // From QuantParams: throws std::invalid_argument for what the kernel does not do (percentile/MSE
  // ranges, per-tensor groups), naming the field and the fix (quantize on the CPU).
  static ActQuantSpec from_params(const quant::QuantParams& p);
  quant::QuantParams to_params() const;
};

// Quantized rows on the device: the planar storage codes of quant::QuantizedMatrix plus the group sums.
struct DevQuantized {
  quant::Format format = quant::Format::int_affine;
  quant::QuantParams params;
  int64_t rows = 0, cols = 0;
  int64_t row_bytes = 0;
  int64_t glen = 0;     // elements per group (cols for per-row; rows·cols for per-tensor)
  int64_t gpr = 0;      // groups per row (0 = one scale for the whole tensor)
  Buffer codes;         // rows × row_bytes
  Buffer scales;        // float per group
  Buffer zps;           // int32 per group, asymmetric int_affine only
  Buffer sums;          // int32 per group Σ(u − 2^(b−1)) (dynamic quantization with_sums)
  Buffer perm, col_scale, non_finite;  // optional QuantizedMatrix extensions (dequantize)
  int64_t n_non_finite = 0;

  // Derived data the GEMMs build on first use and keep: VNNI tiles per subgroup size, segment sums per
  // segment length.
  std::map<int, Buffer> vnni;
  std::map<int64_t, Buffer> seg_sums;
};
DevQuantized upload(Device& d, const quant::QuantizedMatrix& q);
quant::QuantizedMatrix download(Device& d, const DevQuantized& q);  // codes, scales, zero points

// ---- kernels ----------------------------------------------------------------------------------------

// Whether quantize_rows computes scale, zero point and inv_scale on the device: it needs fp64 (the
// reference's double operations) and correctly rounded float division (its 1.0f / scale).
bool group_params_on_device(const DeviceInfo& i);

// Dynamic quantization of every row of x (f32 or f16), bit-exact with ref::quantize_affine_ref on the same
// float values. NonFinitePolicy::error: throws quant::NonFiniteError with the reference's message;
// propagate: NaN/Inf get the code of 0 and are listed (read back on the host). `col_mask` (optional,
// cols bytes, 1 = excluded): masked columns are left out of the range and get the code of 0 (LLM.int8).
// Devices without fp64 or without correctly rounded float division take a two-launch path: min/max on the
// device, parameters on the host (group_params_on_device).
// `variant`: the kernel layout (the tuner, tests); nullptr = the device's tuning table for the class
// (per token or grouped), else the safe default. A variant whose vector width does not divide the row stride
// and group length runs with the widest that does.
DevQuantized quantize_rows(Device& d, const DevMatrix& x, const ActQuantSpec& spec, const Buffer* col_mask = nullptr,
                           Event* ev = nullptr, const QuantizeVariant* variant = nullptr);
// The variant quantize_rows(d, x, spec, ..., variant) runs, after the table lookup and the alignment fallback.
QuantizeVariant quantize_variant_for(Device& d, const DevMatrix& x, const ActQuantSpec& spec,
                                     const QuantizeVariant* variant = nullptr);

// x̂ of every element into out (rows × cols floats, ld elements per row). Every Format and bit width.
void dequantize(Device& d, const DevQuantized& q, const Buffer& out, int64_t ld);

// Which kernel of a tier, for tests and benchmarks; `automatic` picks by shape.
// decode: the weight-streaming kernel for M ≤ 16 (gemm_decode.cl; int32 output or a single K segment).
enum class TileConfig : uint8_t { automatic, large, medium, small, decode };
struct GemmOptions {
  Tier tier = Tier::t0;
  TileConfig tile = TileConfig::automatic;
  bool portable_dot4 = false;  // T0: the char4 dot product even where dp4a is available (benchmarks)
  int decode_tpc = 16;         // gemm_decode: work-items per weight row (16 or 32)
  // T0/T1: this exact kernel variant (the tuner, tests); std::invalid_argument when it cannot serve the call.
  // Unset with tile == automatic: the device's tuning table for the shape class, else the safe defaults.
  std::optional<GemmVariant> variant;
};
// The shape class of a T0/T1 GEMM call (table lookup): M = 1, M ≤ 16, M ≥ 64 (int8 or int4 weights); none
// for 17 ≤ M ≤ 63 (safe defaults).
std::optional<ShapeClass> gemm_shape_class(int64_t M, int w_bits);
// The variant a T0/T1 GEMM call runs (benchmark labels, tests): M×N×K, weights of w_bits, K segments of `seg`
// (nseg of them; 1 and K for the plain int32 GEMM).
GemmVariant gemm_variant_for(Device& d, const GemmOptions& o, int64_t M, int64_t N, int w_bits, int64_t seg,
                             int64_t nseg);
inline constexpr int64_t kDecodeMaxRows = 16;

// C (int32, M×N, ldc) = A·Wᵀ, A: M×K int8 (lda bytes per row), W: N×K int8 (ldw), exact (wraps mod 2^32
// like ref::gemm_s8s8_s32_ref). a_xor/w_xor = 0x80 for uint8 storage codes (operand u − 128).
// T2/T3/T3-emulated pack W to the VNNI layout on the device first (gpu/vnni.hpp).
void gemm_s8s8_s32(Device& d, int64_t M, int64_t N, int64_t K, const Buffer& A, int64_t lda, const Buffer& W,
                   int64_t ldw, const Buffer& C, int64_t ldc, const GemmOptions& o, uint8_t a_xor = 0,
                   uint8_t w_xor = 0, Event* ev = nullptr);

// Y (float, M×N) = dequantized A·Ŵᵀ computed as int8 (int4 weights: W4A8) products with the scale and
// zero-point epilogue per K segment (segment = the shorter of the two group lengths; the longer must be a
// multiple of it, and it must be a multiple of 32 or the whole row). a: int8 dynamic quantization;
// w: int_affine 8- or 4-bit, no perm/col_scale. On T2/T3 4-bit weights are widened to int8 in the VNNI
// packing (the packed copy is kept with the weights).
void matmul_quantized(Device& d, const DevQuantized& a, DevQuantized& w, const Buffer& Y, int64_t ldy,
                      const GemmOptions& o, Event* ev = nullptr);
// The K segment matmul_quantized uses for activation / weight group lengths a_glen, w_glen (each ≤ K; K = the whole
// row); throws std::invalid_argument naming the two lengths when no segment fits (callers check this before running).
int64_t quantized_segment_length(int64_t a_glen, int64_t w_glen, int64_t K);

// Weight-only quantized matmul: Y = X·Ŵᵀ, X f32/f16 (M×K), Ŵ dequantized in registers (any Format; no
// perm/col_scale — dequantize() those first and pass the float matrix to matmul_f32).
void matmul_a16(Device& d, const DevMatrix& x, const DevQuantized& w, const Buffer& Y, int64_t ldy,
                Event* ev = nullptr);
// Y = X·Wᵀ in fp32 with W a float matrix on the device (N×K).
void matmul_f32(Device& d, const DevMatrix& x, const DevMatrix& w, const Buffer& Y, int64_t ldy);

// LLM.int8's fp32 outlier part (Dettmers et al. 2022): Y[m][n] += Σ_i X[m][c_i]·W[n][c_i] over the input features
// c_i of `cols` (int32, n_cols of them), fp32 fma in list order; W: the float weights (N×K, f32). Which features are
// outliers is the scheme's decision (schemes/llm_int8, asked through Scheme::outlier_columns), never gpu/'s: the
// model path (eval/model/backend/opencl_backend) composes the int8 part from quantize_rows with a col_mask (of X and
// of the float weights) and matmul_quantized, and adds this.
void outlier_accumulate(Device& d, const DevMatrix& x, const DevMatrix& w, const Buffer& cols, int64_t n_cols,
                        const Buffer& Y, int64_t ldy);

// The known-answer probe of a tier: a small GEMM against qeval::ref::gemm_s8s8_s32_ref (and, for T0, the
// quantize kernel against ref::quantize_affine_ref). Returns "" on success, else what differed.
std::string probe_tier(Device& d, Tier t);

}  // namespace qeval::gpu
