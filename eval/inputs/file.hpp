// eval/inputs/file.hpp — tensors from files: NumPy .npy (float32/float16, C order, 1-D/2-D) and raw .f32.
//
// .npy (format versions 1.0, 2.0 and 3.0 of numpy.lib.format): the header dict must have exactly the
// keys 'descr', 'fortran_order', 'shape'; descr '<f4' or '<f2' (little-endian float32/float16);
// fortran_order False; shape (n,) → 1 × n, or (rows, cols); the data must be exactly
// rows·cols·itemsize bytes. Anything else is a std::runtime_error that names the file, the problem
// and the fix (e.g. "save with np.save(path, a.astype(np.float32))"). float16 values are widened
// exactly to float32.
// .f32: raw little-endian float32 in row-major order, no header; the shape is given explicitly and
// must account for every byte of the file.
// Values are not checked for NaN/Inf here: the evaluator applies the run's NonFinitePolicy, so the
// error names the element and the policy option.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "eval/inputs/source.hpp"
#include "quant/matrix.hpp"

namespace qeval::inputs {

// Parses an in-memory .npy image; `what` names it in errors (usually the path).
quant::Matrix parse_npy(const std::string& bytes, const std::string& what, std::string* dtype = nullptr);
// Reads a .npy file (throws std::runtime_error when unreadable or invalid).
quant::Matrix read_npy(const std::string& path, std::string* dtype = nullptr);
// Writes a float32 C-order .npy (version 1.0) — for tests and for exporting tensors.
void write_npy(const std::string& path, quant::MatrixView m);

// Reads raw float32 with an explicit shape (rows ≥ 1, cols ≥ 1); the file size must be rows·cols·4.
quant::Matrix read_raw_f32(const std::string& path, int64_t rows, int64_t cols);

// Sources over one file; the tensor is named after the file (its stem). Opening checks that the file
// is readable and that its header/size are valid, so errors surface before any run starts.
std::unique_ptr<TensorSource> open_npy_source(const std::string& path);
std::unique_ptr<TensorSource> open_raw_f32_source(const std::string& path, int64_t rows, int64_t cols);

// Parses a shape such as "4096x4096", "4096,4096" or "4096" (→ 1 × 4096); throws
// std::invalid_argument naming the text and the accepted forms.
void parse_shape(const std::string& text, int64_t* rows, int64_t* cols);

// Half-precision bits → float (exact: every binary16 value is a binary32 value).
float half_to_float(uint16_t h);

}  // namespace qeval::inputs

namespace qeval::inputs {
// Opens a file source by extension: .npy, or .f32 (needs rows/cols > 0, else an error asking for
// the shape). Other extensions are an error listing the supported ones.
std::unique_ptr<TensorSource> open_file_source(const std::string& path, int64_t rows = 0, int64_t cols = 0);
}  // namespace qeval::inputs
