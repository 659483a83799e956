// eval/inputs/file.cpp — .npy and raw .f32 readers with strict validation and one-line, actionable errors.
#include "eval/inputs/file.hpp"

#include "quant/float_formats.hpp"

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <stdexcept>
#include <vector>

namespace qeval::inputs {

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "eval/inputs/file.cpp reads little-endian files by memcpy: port the byte swapping first"
#endif

namespace {

[[noreturn]] void fail(const std::string& what, const std::string& msg) {
  throw std::runtime_error(what + ": " + msg);
}

std::string read_all(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    const int e = errno;
    fail(path, std::string("cannot open file (") + (e ? std::strerror(e) : "unknown error") + ")");
  }
  std::ostringstream ss;
  ss << f.rdbuf();
  if (f.bad()) fail(path, "read error");
  return ss.str();
}

// A tiny parser for the Python literal dict of a .npy header: {'key': value, ...}. Values are strings,
// True/False, or tuples of non-negative integers.
struct NpyValue {
  enum Kind { string, boolean, tuple } kind = string;
  std::string s;
  bool b = false;
  std::vector<int64_t> dims;
};

class HeaderParser {
 public:
  HeaderParser(const std::string& text, const std::string& what) : t_(text), what_(what) {}

  std::map<std::string, NpyValue> parse() {
    std::map<std::string, NpyValue> out;
    skip_ws();
    expect('{');
    skip_ws();
    while (peek() != '}') {
      const std::string key = parse_string();
      skip_ws();
      expect(':');
      skip_ws();
      NpyValue v = parse_value();
      if (out.count(key)) bad("key '" + key + "' appears twice");
      out[key] = v;
      skip_ws();
      if (peek() == ',') {
        ++i_;
        skip_ws();
      } else if (peek() != '}') {
        bad("expected ',' or '}' after the value of '" + key + "'");
      }
    }
    ++i_;  // '}'
    // Only padding (spaces) and the terminating newline may follow.
    while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\t')) ++i_;
    if (i_ >= t_.size() || t_[i_] != '\n') bad("header does not end with a newline after the dict");
    ++i_;
    if (i_ != t_.size()) bad("unexpected bytes after the header's newline");
    return out;
  }

 private:
  [[noreturn]] void bad(const std::string& msg) const {
    fail(what_, "invalid .npy header (" + msg + "); re-save it with numpy.save");
  }
  char peek() const {
    if (i_ >= t_.size()) bad("header ends inside the dict");
    return t_[i_];
  }
  void expect(char c) {
    if (peek() != c) bad(std::string("expected '") + c + "' at header offset " + std::to_string(i_));
    ++i_;
  }
  void skip_ws() {
    while (i_ < t_.size() && (t_[i_] == ' ' || t_[i_] == '\t')) ++i_;
  }
  std::string parse_string() {
    const char q = peek();
    if (q != '\'' && q != '"') bad("expected a quoted key or string at header offset " + std::to_string(i_));
    ++i_;
    std::string s;
    while (peek() != q) s += t_[i_++];
    ++i_;
    return s;
  }
  NpyValue parse_value() {
    NpyValue v;
    const char c = peek();
    if (c == '\'' || c == '"') {
      v.kind = NpyValue::string;
      v.s = parse_string();
    } else if (t_.compare(i_, 4, "True") == 0) {
      v.kind = NpyValue::boolean;
      v.b = true;
      i_ += 4;
    } else if (t_.compare(i_, 5, "False") == 0) {
      v.kind = NpyValue::boolean;
      v.b = false;
      i_ += 5;
    } else if (c == '(') {
      v.kind = NpyValue::tuple;
      ++i_;
      skip_ws();
      while (peek() != ')') {
        if (!std::isdigit(static_cast<unsigned char>(peek()))) bad("shape holds a non-integer");
        int64_t d = 0;
        while (std::isdigit(static_cast<unsigned char>(peek()))) {
          d = d * 10 + (t_[i_++] - '0');
          if (d > (int64_t{1} << 40)) bad("shape dimension too large");
        }
        while (peek() == 'L') ++i_;  // Python 2 long suffix
        v.dims.push_back(d);
        skip_ws();
        if (peek() == ',') {
          ++i_;
          skip_ws();
        } else if (peek() != ')') {
          bad("expected ',' or ')' in the shape");
        }
      }
      ++i_;
    } else {
      bad("unsupported value at header offset " + std::to_string(i_));
    }
    return v;
  }

  const std::string& t_;
  const std::string& what_;
  size_t i_ = 0;
};

uint32_t read_le(const std::string& b, size_t at, int nbytes) {
  uint32_t v = 0;
  for (int k = nbytes - 1; k >= 0; --k) v = (v << 8) | static_cast<unsigned char>(b[at + static_cast<size_t>(k)]);
  return v;
}

}  // namespace

float half_to_float(uint16_t h) { return quant::half_bits_to_float(h); }

namespace {

// The .npy preamble: where the header starts and how long it is (versions 1.0, 2.0, 3.0).
std::pair<size_t, size_t> npy_header_span(const std::string& bytes, const std::string& what) {
  static const char kMagic[] = "\x93NUMPY";
  if (bytes.size() < 10 || bytes.compare(0, 6, kMagic, 6) != 0)
    fail(what, "not a .npy file (missing the \\x93NUMPY magic); save arrays with numpy.save");
  const int major = static_cast<unsigned char>(bytes[6]);
  const int minor = static_cast<unsigned char>(bytes[7]);
  size_t header_len = 0, header_start = 0;
  if (major == 1 && minor == 0) {
    header_len = read_le(bytes, 8, 2);
    header_start = 10;
  } else if ((major == 2 || major == 3) && minor == 0) {
    if (bytes.size() < 12) fail(what, "truncated .npy preamble");
    header_len = read_le(bytes, 8, 4);
    header_start = 12;
  } else {
    fail(what, "unsupported .npy format version " + std::to_string(major) + "." + std::to_string(minor) +
                   " (supported: 1.0, 2.0, 3.0)");
  }
  if (header_start + header_len > bytes.size())
    fail(what, "truncated .npy header (header length " + std::to_string(header_len) + ", file " +
                   std::to_string(bytes.size()) + " bytes)");
  return {header_start, header_len};
}

// The header dict must hold exactly descr (a string), fortran_order (a bool) and shape (a tuple).
void check_npy_keys(std::map<std::string, NpyValue>& dict, const std::string& what) {
  for (const auto& [k, v] : dict)
    if (k != "descr" && k != "fortran_order" && k != "shape")
      fail(what, "invalid .npy header (unknown key '" + k + "'); expected exactly descr, fortran_order, shape");
  for (const char* k : {"descr", "fortran_order", "shape"})
    if (!dict.count(k)) fail(what, std::string("invalid .npy header (missing key '") + k + "')");
  if (dict["descr"].kind != NpyValue::string) fail(what, "invalid .npy header ('descr' is not a string)");
  if (dict["fortran_order"].kind != NpyValue::boolean) fail(what, "invalid .npy header ('fortran_order' is not True/False)");
  if (dict["shape"].kind != NpyValue::tuple) fail(what, "invalid .npy header ('shape' is not a tuple)");
}

// Bytes per element of a supported dtype: '<f4' (4) or '<f2' (2).
int npy_itemsize(const std::string& descr, const std::string& what) {
  if (descr == "<f4") return 4;
  if (descr == "<f2") return 2;
  if (descr == ">f4" || descr == ">f2")
    fail(what, "big-endian dtype '" + descr + "' is not supported; save a.astype('<f4')");
  fail(what, "dtype '" + descr + "' is not supported (float32 '<f4' or float16 '<f2' only); save a.astype(numpy.float32)");
}

// [rows, cols] of a 1-D (one row) or 2-D shape, non-empty and below 2^31 elements.
std::pair<int64_t, int64_t> npy_rows_cols(const std::vector<int64_t>& dims, const std::string& what) {
  int64_t rows = 0, cols = 0;
  if (dims.size() == 1) {
    rows = 1;
    cols = dims[0];
  } else if (dims.size() == 2) {
    rows = dims[0];
    cols = dims[1];
  } else {
    fail(what, std::to_string(dims.size()) + "-D array is not supported (1-D or 2-D only); reshape it to "
                   "[rows, cols] with the reduction axis last");
  }
  if (rows == 0 || cols == 0)
    fail(what, "array is empty (shape " + std::to_string(rows) + "x" + std::to_string(cols) + ")");
  if (rows > (int64_t{1} << 31) / cols) fail(what, "array has more than 2^31 elements");
  return {rows, cols};
}

}  // namespace

quant::Matrix parse_npy(const std::string& bytes, const std::string& what, std::string* dtype) {
  const auto [header_start, header_len] = npy_header_span(bytes, what);
  const std::string header = bytes.substr(header_start, header_len);
  auto dict = HeaderParser(header, what).parse();
  check_npy_keys(dict, what);
  const NpyValue& descr = dict["descr"];
  if (dict["fortran_order"].b)
    fail(what, "Fortran-order (column-major) arrays are not supported; save numpy.ascontiguousarray(a)");
  const int itemsize = npy_itemsize(descr.s, what);
  const auto [rows, cols] = npy_rows_cols(dict["shape"].dims, what);
  const size_t data_start = header_start + header_len;
  const size_t expect = static_cast<size_t>(rows * cols) * static_cast<size_t>(itemsize);
  const size_t have = bytes.size() - data_start;
  if (have != expect)
    fail(what, "data size mismatch: header says " + std::to_string(rows) + "x" + std::to_string(cols) + " " +
                   descr.s + " = " + std::to_string(expect) + " bytes, file holds " + std::to_string(have) +
                   " (truncated or corrupt file)");

  quant::Matrix m(rows, cols);
  const char* src = bytes.data() + data_start;
  if (itemsize == 4) {
    std::memcpy(m.data.data(), src, expect);
  } else {
    for (size_t i = 0; i < m.data.size(); ++i) {
      uint16_t h;
      std::memcpy(&h, src + 2 * i, 2);
      m.data[i] = half_to_float(h);
    }
  }
  if (dtype) *dtype = itemsize == 4 ? "f32" : "f16";
  return m;
}

quant::Matrix read_npy(const std::string& path, std::string* dtype) {
  return parse_npy(read_all(path), path, dtype);
}

void write_npy(const std::string& path, quant::MatrixView m) {
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(m.rows) + ", " +
                       std::to_string(m.cols) + "), }";
  // Pad with spaces so magic(6) + version(2) + length(2) + header + '\n' is a multiple of 64.
  const size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) fail(path, std::string("cannot create file (") + std::strerror(errno) + ")");
  f.write("\x93NUMPY\x01\x00", 8);
  const uint16_t len = static_cast<uint16_t>(header.size());
  const char lb[2] = {static_cast<char>(len & 0xFF), static_cast<char>(len >> 8)};
  f.write(lb, 2);
  f.write(header.data(), static_cast<std::streamsize>(header.size()));
  for (int64_t r = 0; r < m.rows; ++r)
    f.write(reinterpret_cast<const char*>(m.row(r)), static_cast<std::streamsize>(m.cols * sizeof(float)));
  if (!f) fail(path, "write error");
}

quant::Matrix read_raw_f32(const std::string& path, int64_t rows, int64_t cols) {
  if (rows < 1 || cols < 1)
    fail(path, "raw .f32 needs an explicit shape ROWSxCOLS with both >= 1 (e.g. --shape 4096x4096)");
  if (rows > (int64_t{1} << 31) / cols) fail(path, "shape has more than 2^31 elements");
  const std::string bytes = read_all(path);
  const size_t expect = static_cast<size_t>(rows * cols) * 4;
  if (bytes.size() != expect) {
    std::string msg = "raw .f32 size mismatch: shape " + std::to_string(rows) + "x" + std::to_string(cols) +
                      " needs " + std::to_string(expect) + " bytes, the file holds " + std::to_string(bytes.size());
    if (bytes.size() % 4 == 0) msg += " (= " + std::to_string(bytes.size() / 4) + " floats)";
    fail(path, msg + "; pass the matching --shape");
  }
  quant::Matrix m(rows, cols);
  std::memcpy(m.data.data(), bytes.data(), expect);
  return m;
}

void parse_shape(const std::string& text, int64_t* rows, int64_t* cols) {
  auto bad = [&]() -> void {
    throw std::invalid_argument("bad shape '" + text + "' (expected ROWSxCOLS, ROWS,COLS or N, e.g. 4096x4096)");
  };
  std::vector<int64_t> dims;
  std::string cur;
  for (size_t i = 0; i <= text.size(); ++i) {
    const char c = i < text.size() ? text[i] : 'x';
    if (c == 'x' || c == 'X' || c == ',') {
      if (cur.empty() || cur.size() > 12) bad();
      dims.push_back(std::stoll(cur));
      cur.clear();
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      cur += c;
    } else {
      bad();
    }
  }
  if (dims.size() == 1) {
    *rows = 1;
    *cols = dims[0];
  } else if (dims.size() == 2) {
    *rows = dims[0];
    *cols = dims[1];
  } else {
    bad();
  }
  if (*rows < 1 || *cols < 1) bad();
}

namespace {

std::string stem_of(const std::string& path) {
  const size_t slash = path.find_last_of('/');
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  const size_t dot = base.find_last_of('.');
  if (dot != std::string::npos && dot > 0) base = base.substr(0, dot);
  return base.empty() ? std::string("tensor") : base;
}

class FileSource final : public TensorSource {
 public:
  FileSource(std::string kind, std::string path, quant::Matrix m, std::string dtype)
      : kind_(std::move(kind)), path_(std::move(path)), dtype_(std::move(dtype)) {
    info_ = TensorInfo{stem_of(path_), m.rows, m.cols, dtype_};
    m_ = std::make_shared<quant::Matrix>(std::move(m));
  }
  std::string kind() const override { return kind_; }
  nlohmann::json describe() const override {
    nlohmann::json j;
    j["kind"] = kind_;
    j["path"] = path_;
    j["dtype"] = dtype_;
    j["rows"] = info_.rows;
    j["cols"] = info_.cols;
    return j;
  }
  std::vector<TensorInfo> tensors() const override { return {info_}; }
  Tensor load(const std::string& name) const override {
    if (name != info_.name)
      throw std::invalid_argument("file source '" + path_ + "' has one tensor, '" + info_.name + "' (asked for '" +
                                  name + "')");
    Tensor t;
    t.info = info_;
    t.view = m_->view();
    t.owner = m_;
    return t;
  }

 private:
  std::string kind_, path_, dtype_;
  TensorInfo info_;
  std::shared_ptr<quant::Matrix> m_;
};

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

}  // namespace

// The file is read once when the source is opened (validation up front; the tensor-level
// evaluator needs the whole tensor anyway).
std::unique_ptr<TensorSource> open_npy_source(const std::string& path) {
  std::string dtype;
  quant::Matrix m = read_npy(path, &dtype);
  return std::make_unique<FileSource>("npy", path, std::move(m), dtype);
}

std::unique_ptr<TensorSource> open_raw_f32_source(const std::string& path, int64_t rows, int64_t cols) {
  quant::Matrix m = read_raw_f32(path, rows, cols);
  return std::make_unique<FileSource>("raw_f32", path, std::move(m), "f32");
}

std::unique_ptr<TensorSource> open_file_source(const std::string& path, int64_t rows, int64_t cols) {
  if (ends_with(path, ".npy")) return open_npy_source(path);
  if (ends_with(path, ".f32")) {
    if (rows < 1 || cols < 1)
      fail(path, "raw .f32 files need an explicit shape (e.g. --shape 4096x4096)");
    return open_raw_f32_source(path, rows, cols);
  }
  fail(path, "unsupported input file type (supported: .npy, .f32 with --shape; GGUF/safetensors model files come "
             "through eval/model)");
}

}  // namespace qeval::inputs
