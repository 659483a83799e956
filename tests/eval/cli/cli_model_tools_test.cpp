// tests/eval/cli/cli_model_tools_test.cpp — `qeval inspect / tokenize / logits` end to end on the embedded model.
//
// logits: the file `qeval logits --out` writes is read back with a reader written here from the safetensors layout
// spec (huggingface/safetensors README: uint64 LE header length N, N bytes of JSON, data; offsets relative to the
// data, end exclusive, covering it without holes), and its logits must EQUAL, bit for bit, LlamaModel::forward on
// the same ids in this process (the same code on the same weights, one thread on both sides: nothing may differ).
// The top-k is re-derived here by sorting each row.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "tests/cli_runner.hpp"
#include <sys/wait.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>
#include <string>
#include <vector>

#include "eval/model/checkpoint.hpp"
#include "eval/model/llama.hpp"
#include "eval/tokenizer/tokenizer.hpp"

namespace {

using nlohmann::json;

const std::string kModelDir = std::string(QEVAL_SOURCE_DIR) + "/models/qeval-sotu-4l256";
const std::string kGguf = kModelDir + "/model.gguf";

using Result = qeval::test::CliResult;
using qeval::test::slurp;
class CliModel : public qeval::test::CliTest {};

// ---- an independent safetensors reader (layout spec only) ----
struct StTensor {
  std::string dtype;
  std::vector<int64_t> shape;
  std::string bytes;
};
struct StFile {
  json metadata;
  std::map<std::string, StTensor> tensors;
};

size_t dtype_size(const std::string& d) { return d == "F32" || d == "I32" ? 4 : d == "I64" || d == "F64" ? 8 : 0; }

StFile read_st(const std::string& path) {
  const std::string b = slurp(path);
  StFile f;
  EXPECT_GE(b.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | static_cast<uint8_t>(b[static_cast<size_t>(i)]);  // little-endian
  EXPECT_LE(8 + n, b.size());
  EXPECT_EQ((8 + n) % 8, 0u) << "data should start 8-byte aligned";
  const json h = json::parse(b.substr(8, n));
  const std::string data = b.substr(8 + n);
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const auto& [name, v] : h.items()) {
    if (name == "__metadata__") {
      f.metadata = v;
      continue;
    }
    StTensor t{v.at("dtype"), v.at("shape").get<std::vector<int64_t>>(), ""};
    const uint64_t b0 = v.at("data_offsets")[0], b1 = v.at("data_offsets")[1];
    const int64_t numel = std::accumulate(t.shape.begin(), t.shape.end(), int64_t{1}, std::multiplies<int64_t>());
    EXPECT_EQ(b1 - b0, static_cast<uint64_t>(numel) * dtype_size(t.dtype)) << name;
    EXPECT_LE(b1, data.size()) << name;
    t.bytes = data.substr(b0, b1 - b0);
    ranges.emplace_back(b0, b1);
    f.tensors[name] = t;
  }
  std::sort(ranges.begin(), ranges.end());
  uint64_t at = 0;
  for (const auto& [b0, b1] : ranges) {
    EXPECT_EQ(b0, at) << "hole or overlap in the data section";
    at = b1;
  }
  EXPECT_EQ(at, data.size()) << "data section not covered exactly";
  return f;
}

template <class T>
std::vector<T> values(const StTensor& t) {
  std::vector<T> v(t.bytes.size() / sizeof(T));
  std::memcpy(v.data(), t.bytes.data(), t.bytes.size());
  return v;
}

TEST_F(CliModel, LogitsFileEqualsTheForwardBitForBit) {
  const std::vector<int64_t> ids = {1, 17, 300, 42, 9, 1023, 5, 77};
  const int K = 4;
  const Result r = run("logits --model '" + kGguf + "' --ids 1,17,300,42,9,1023,5,77 --top-k 4 --threads 1 --out l.safetensors");
  ASSERT_EQ(r.status, 0) << r.err;
  const StFile f = read_st(dir_ + "/l.safetensors");
  ASSERT_EQ(f.tensors.size(), 4u);
  EXPECT_EQ(f.metadata.value("format", ""), "pt");
  EXPECT_EQ(f.metadata.value("arch", ""), "llama");

  qeval::model::configure_threads(1);
  qeval::model::LlamaModel m(qeval::model::load_checkpoint(kGguf));
  const at::Tensor want = m.forward(at::tensor(ids, at::kLong).view({1, -1})).select(0, 0).contiguous();
  const int64_t T = want.size(0), V = want.size(1);
  const StTensor& lg = f.tensors.at("logits");
  ASSERT_EQ(lg.dtype, "F32");
  ASSERT_EQ(lg.shape, (std::vector<int64_t>{T, V}));
  EXPECT_EQ(std::memcmp(lg.bytes.data(), want.data_ptr<float>(), lg.bytes.size()), 0) << "logits differ from the forward";
  EXPECT_EQ(values<int64_t>(f.tensors.at("ids")), ids);

  const std::vector<float> logits = values<float>(lg);
  const std::vector<int64_t> top_ids = values<int64_t>(f.tensors.at("topk_ids"));
  const std::vector<float> top_logits = values<float>(f.tensors.at("topk_logits"));
  ASSERT_EQ(f.tensors.at("topk_ids").shape, (std::vector<int64_t>{T, K}));
  for (int64_t t = 0; t < T; ++t) {
    std::vector<int64_t> order(static_cast<size_t>(V));
    std::iota(order.begin(), order.end(), 0);
    const float* row = logits.data() + t * V;
    std::stable_sort(order.begin(), order.end(), [row](int64_t a, int64_t b) { return row[a] > row[b]; });
    for (int k = 0; k < K; ++k) {
      EXPECT_EQ(top_ids[static_cast<size_t>(t * K + k)], order[static_cast<size_t>(k)]) << "pos " << t << " k " << k;
      EXPECT_EQ(top_logits[static_cast<size_t>(t * K + k)], row[order[static_cast<size_t>(k)]]);
    }
  }
  // The printed table names every position's top-1.
  const float* last = logits.data() + 7 * V;
  const int64_t top1 = std::max_element(last, last + V) - last;  // first maximum: the smaller id on a tie
  EXPECT_NE(r.out.find("\n7\t77\t" + std::to_string(top1) + ":"), std::string::npos) << r.out;
}

TEST_F(CliModel, LogitsFromTextUsesTheTokenizerAndIdsFile) {
  const qeval::tokenizer::Tokenizer tok = qeval::tokenizer::Tokenizer::from_hf_json_file(kModelDir + "/tokenizer.json");
  const std::vector<int32_t> ids = tok.encode("The state of the union is strong.");
  std::ofstream(dir_ + "/ids.txt") << [&] {
    std::string s;
    for (int32_t id : ids) s += std::to_string(id) + "\n";
    return s;
  }();
  Result a = run("logits --model '" + kGguf + "' --text 'The state of the union is strong.' --threads 1 --out a.safetensors");
  ASSERT_EQ(a.status, 0) << a.err;
  Result b = run("logits --model '" + kGguf + "' --ids-file ids.txt --threads 1 --out b.safetensors");
  ASSERT_EQ(b.status, 0) << b.err;
  EXPECT_EQ(slurp(dir_ + "/a.safetensors"), slurp(dir_ + "/b.safetensors"));
}

TEST_F(CliModel, LogitsBadInputIsOneLine) {
  expect_one_line_error("logits --model '" + kGguf + "' --ids 1,x,3", "'x' (item 2) is not a token id");
  expect_one_line_error("logits --model '" + kGguf + "' --ids 1,2 --text hi", "exactly one of --ids, --ids-file, --text");
  expect_one_line_error("logits --model '" + kGguf + "' --ids 1,99999", "outside the vocabulary");
  expect_one_line_error("logits --model nowhere.gguf --ids 1", "nowhere.gguf");
  expect_one_line_error("logits --model '" + kGguf + "' --ids-file missing.txt", "missing.txt: cannot open");
}

TEST_F(CliModel, TokenizeMatchesTheTokenizerAndRoundTrips) {
  const std::string text = "Fellow citizens: 1234 naïve words.";
  const qeval::tokenizer::Tokenizer tok = qeval::tokenizer::Tokenizer::from_hf_json_file(kModelDir + "/tokenizer.json");
  const std::vector<int32_t> want = tok.encode(text);
  for (const std::string& model : {kGguf, kModelDir}) {
    const Result r = run("tokenize --json --model '" + model + "' '" + text + "'");
    ASSERT_EQ(r.status, 0) << r.err;
    const json j = json::parse(r.out);
    EXPECT_EQ(j.at("ids").get<std::vector<int32_t>>(), want) << model;
    EXPECT_EQ(j.at("pieces").size(), want.size());
  }
  const Result r = run("tokenize --model '" + kGguf + "' '" + text + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  // The third column (bytes, \xNN-escaped) of every line, concatenated, decodes the ids again.
  std::istringstream lines(r.out);
  std::string line, joined;
  while (std::getline(lines, line)) {
    if (line.empty() || line[0] == '#') continue;
    const std::string esc = line.substr(line.rfind('\t') + 1);
    for (size_t i = 0; i < esc.size(); ++i) {
      if (esc.compare(i, 2, "\\x") == 0) {
        joined += static_cast<char>(std::stoi(esc.substr(i + 2, 2), nullptr, 16));
        i += 3;
      } else {
        joined += esc[i];
      }
    }
  }
  EXPECT_EQ(joined, tok.decode(want));
  expect_one_line_error("tokenize --model '" + kGguf + "'", "exactly one");
  expect_one_line_error("tokenize --model /nonexistent 'x'", "/nonexistent");
}

// A SentencePiece-style family (tests/data/families/mistral: transformers' tokenizer.json, and llama.cpp's
// GGUF "llama" vocabulary of the same tokenizer.model): the tokenizer.json path gives transformers' ids
// (tokenizer_refs.json hf_ids), and the GGUF path the same ids on texts not starting with a space.
TEST_F(CliModel, TokenizeSpmFamilyFromTokenizerJsonAndGguf) {
  const std::string dir = std::string(QEVAL_SOURCE_DIR) + "/tests/data/families/mistral";
  const json refs = json::parse(slurp(std::string(QEVAL_SOURCE_DIR) + "/tests/data/families/tokenizer_refs.json"));
  size_t compared = 0;
  for (const auto& c : refs.at("spm").at("cases")) {
    const std::string text = c.at("text").get<std::string>();
    if (text.empty() || text.find('\'') != std::string::npos) continue;
    const Result a = run("tokenize --json --no-bos --model '" + dir + "' '" + text + "'");
    ASSERT_EQ(a.status, 0) << a.err;
    const auto ids = json::parse(a.out).at("ids").get<std::vector<int32_t>>();
    EXPECT_EQ(ids, c.at("hf_ids").get<std::vector<int32_t>>()) << text;
    if (text[0] == ' ') continue;  // GGUF (llama.cpp) always adds the dummy "▁"; Metaspace "first" does not
    const Result g = run("tokenize --json --no-bos --model '" + dir + "/model.gguf' '" + text + "'");
    ASSERT_EQ(g.status, 0) << g.err;
    EXPECT_EQ(json::parse(g.out).at("ids").get<std::vector<int32_t>>(), ids) << text;
    ++compared;
  }
  EXPECT_GE(compared, 4u);
}

TEST_F(CliModel, InspectTextAndJson) {
  Result r = run("inspect '" + kGguf + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("architecture llama"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("blk.0.attn_q.weight"), std::string::npos);
  r = run("inspect --json '" + kGguf + "'");
  ASSERT_EQ(r.status, 0) << r.err;
  const json j = json::parse(r.out);
  EXPECT_EQ(j.at("architecture"), "llama");
  EXPECT_TRUE(j.at("loadable").get<bool>());
  EXPECT_GT(j.at("tensors").size(), 10u);
  expect_one_line_error("inspect nowhere.gguf", "nowhere.gguf");
}

}  // namespace
