// schemes/common/calib_common.hpp — shared pieces of the calibration-based schemes (gptq, awq, smoothquant,
// llm_int8, static_act, kv_cache, mixed): calibration look-ups with the standard error, the Gram matrix of the
// captured inputs, integer codes → QuantizedMatrix, and the output-error metric ‖X·(W − Ŵ)ᵀ‖².
//
// Everything here goes through quant/'s formula (choose_group_params, group_params_from_range, quantize_one,
// dequantize_one, quantize_affine); nothing restates it.
#pragma once

#include <Eigen/Dense>
#include <cstdint>
#include <string>
#include <vector>

#include "quant/affine.hpp"
#include "quant/matrix.hpp"
#include "schemes/scheme.hpp"

namespace qeval::schemes::calib {

// Row-major double / float matrices (the layout of MatrixView, so copies are straight loops).
using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
using MatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// "scheme 'gptq' (layer blk.0.attn_q): " — the prefix of every error message.
std::string who(const std::string& scheme, const Calibration* c);

// The standard "no calibration" error: names the scheme, the layer and what is missing, and the fix
// "run with calibration (--calib ...)". Throws std::invalid_argument.
[[noreturn]] void missing_calibration(const std::string& scheme, const Calibration* c, const std::string& what);

// calib itself, or the standard error when it is null.
const Calibration& require(const std::string& scheme, const Calibration* c, const std::string& what);

// True when the calibration carries captured input rows (inputs.rows > 0).
bool has_inputs(const Calibration& c);

// Checks that captured inputs (if any) and statistics (if any) are `in` features wide; throws naming both
// numbers otherwise (a calibration from another layer).
void check_width(const std::string& scheme, const Calibration& c, int64_t in);

// H = 2·XᵀX/n (in × in, double) from c.hessian when present, else from c.inputs (accumulated in double).
// Throws the standard error when neither is there.
Eigen::MatrixXd hessian(const std::string& scheme, const Calibration& c, int64_t in);

// Per-feature max|x| / mean|x| from the captured statistics when present, else from c.inputs.
std::vector<double> act_absmax(const std::string& scheme, const Calibration& c, int64_t in);
std::vector<double> act_absmean(const std::string& scheme, const Calibration& c, int64_t in);

// Copies of views.
MatD to_matd(quant::MatrixView v);
MatF to_matf(quant::MatrixView v);
quant::Matrix to_matrix(const MatD& m);
quant::Matrix copy(quant::MatrixView v);
// vᵀ as a dense matrix (per-channel quantization of [tokens, features] stores the transpose, so that a
// channel is a row and quant/'s row groups run along the tokens).
quant::Matrix transpose(quant::MatrixView v);
// out = vᵀ (out must be v.cols × v.rows).
void transpose_into(quant::MatrixView v, quant::MutableMatrixView out);
// The per-channel storage of kv_cache (axis=channel) and static_act (granularity=channel): q holds the transpose
// [features, tokens]; out [tokens, features] receives its dequantized values transposed back. `setting` names the
// option that chose it (e.g. "axis=channel") in the shape error.
void dequantize_transposed(const std::string& scheme, const std::string& setting, const quant::QuantizedMatrix& q,
                           quant::MutableMatrixView out);

// Migration factors for a layer of `in` features: size `in`, every entry finite and > 0, else
// std::invalid_argument naming the entry.
void check_migration_scales(const std::string& scheme, const Calibration& c, const std::vector<float>& s, int64_t in);

// Builds an int_affine QuantizedMatrix from integer codes q (rows × cols, row-major, each in
// [p.qmin(), p.qmax()]) and one GroupParams per group in QuantizedMatrix::group_index order (1 for
// kPerTensor). Storage codes are u = q + 2^(bits−1) (symmetric) or q (asymmetric), as quant/ stores them.
quant::QuantizedMatrix pack_affine(const quant::QuantParams& p, int64_t rows, int64_t cols, const int32_t* q,
                                   const std::vector<quant::GroupParams>& groups);

// ‖X·Eᵀ‖²_F for error matrices E = W − Ŵ ([out, in]) on a layer's calibration input X, optionally seen through a
// migration (X·diag(1/s): the input of a layer whose weight was scaled by s). Uses the captured rows directly
// when there are fewer rows than features (n·in per output row instead of in²), else the Gram matrix ∝ XᵀX (the
// captured Hessian 2·XᵀX/n when present, else built once from the rows; any positive multiple ranks candidates
// the same). The products run in float (Eigen GEMM), the final sums in double: candidates are ranked to ≈ 1e-6
// relative, far below the differences a search resolves, at half the cost of double (AWQ's α grid on a
// 576 × 1536 layer: 21 products of 1.4 GFLOP each).
class OutputError {
 public:
  // inv_s: empty, or per-feature factors the input is multiplied by (1/s).
  OutputError(const std::string& scheme, const Calibration& c, int64_t in, const std::vector<double>& inv_s = {});
  double operator()(const MatD& e) const;
  // Per-row errors Σ_t (x_t·e_rᵀ)² restricted to the columns [c0, c0 + len): e is [out, len] — the error of
  // one column group, with cross-group terms left out (what a per-group search can act on).
  Eigen::VectorXd group_rows(const MatD& e, int64_t c0) const;
  int64_t in() const { return in_; }

 private:
  int64_t in_ = 0;
  bool use_x_ = false;
  MatF x_;             // [n, in] when use_x_
  Eigen::MatrixXf g_;  // [in, in] otherwise
};

// Validators shared by the option parsers; each throws std::invalid_argument naming scheme, key, value and
// the accepted range.
double unit_interval(const std::string& scheme, const Options& o, const std::string& key, double def);
int64_t positive_int(const std::string& scheme, const Options& o, const std::string& key, int64_t def);
double positive_double(const std::string& scheme, const Options& o, const std::string& key, double def);

}  // namespace qeval::schemes::calib
