// tests/eval/model/families_fixtures_test.cpp — the model-family fixtures (tests/data/families) are present and consistent.
//
// The fixtures (scripts/testdata/make_family_fixtures.py: tiny random HF checkpoints, their GGUFs from llama.cpp's
// converter, HF's fp32 logits) are the references for the family forwards still to come. Until then this checks that
// what the manifest promises is there: every file with its size and SHA-256, no stray file, a logits array of the
// recorded shape, a config.json of the family's model_type, a safetensors and a GGUF that qeval's readers parse and
// dequantize completely, and that each feature the fixture claims to exercise actually moved HF's logits.
#include <gtest/gtest.h>

#include <filesystem>

#include "eval/model/gguf.hpp"
#include "eval/model/safetensors.hpp"
#include "eval/model/sha256.hpp"
#include "tests/eval/model/test_util.hpp"

namespace qeval::model {
namespace {

namespace fs = std::filesystem;

std::string families_dir() { return test::data_dir() + "/families"; }

const nlohmann::json& manifest() {
  static const nlohmann::json m = test::read_json(families_dir() + "/manifest.json");
  return m;
}

// Family → (HF config model_type, GGUF general.architecture as llama.cpp's converter names it).
const std::map<std::string, std::pair<std::string, std::string>> kFamilies = {
    {"llama3", {"llama", "llama"}},     {"mistral", {"mistral", "llama"}},  {"qwen2", {"qwen2", "qwen2"}},
    {"qwen3", {"qwen3", "qwen3"}},      {"gemma2", {"gemma2", "gemma2"}},   {"gemma3", {"gemma3_text", "gemma3"}},
    {"phi3", {"phi3", "phi3"}},         {"mixtral", {"mixtral", "llama"}},  {"qwen2moe", {"qwen2_moe", "qwen2moe"}},
};


TEST(FamilyFixtures, ManifestListsEveryFamily) {
  std::set<std::string> listed;
  for (const auto& [family, e] : manifest()["families"].items()) listed.insert(family);
  std::set<std::string> want;
  for (const auto& [family, kinds] : kFamilies) want.insert(family);
  EXPECT_EQ(listed, want);
  for (const auto& [family, e] : manifest()["families"].items()) {
    ASSERT_EQ(e["ids"].size(), 2u) << family;
    for (const auto& seq : e["ids"]) {
      EXPECT_EQ(seq.size(), 24u) << family;
      for (const auto& id : seq) EXPECT_LT(id.get<int64_t>(), manifest()["vocab_size"].get<int64_t>()) << family;
    }
  }
}

TEST(FamilyFixtures, FilesMatchManifest) {
  for (const auto& [family, e] : manifest()["families"].items()) {
    const std::string dir = families_dir() + "/" + family;
    std::set<std::string> on_disk;
    for (const auto& p : fs::directory_iterator(dir)) on_disk.insert(p.path().filename().string());
    std::set<std::string> listed;
    for (const auto& [name, info] : e["files"].items()) {
      listed.insert(name);
      const auto bytes = test::read_bytes(dir + "/" + name);
      EXPECT_EQ(bytes.size(), info["bytes"].get<size_t>()) << family << "/" << name;
      EXPECT_EQ(sha256_hex(bytes.data(), bytes.size()), info["sha256"].get<std::string>()) << family << "/" << name;
    }
    EXPECT_EQ(on_disk, listed) << family << ": files on disk and in the manifest differ";
    for (const char* need : {"config.json", "model.safetensors", "model.gguf", "logits.npy", "tokenizer.json",
                             "tokenizer_config.json", "PROVENANCE.md"}) {
      EXPECT_TRUE(listed.count(need)) << family << " lacks " << need;
    }
    // SentencePiece families ship tokenizer.model, the byte-level BPE ones only tokenizer.json
    EXPECT_EQ(listed.count("tokenizer.model"), e["tokenizer"] == "spm" ? 1u : 0u) << family;
  }
}

TEST(FamilyFixtures, LogitsConfigAndFeatures) {
  const int64_t vocab = manifest()["vocab_size"];
  for (const auto& [family, e] : manifest()["families"].items()) {
    const std::string dir = families_dir() + "/" + family;
    std::vector<std::string> logits_files = {e["logits"].get<std::string>()};
    if (e.contains("extra_logits"))
      for (const auto& [file, what] : e["extra_logits"].items()) logits_files.push_back(file);
    for (const std::string& file : logits_files) {
      const auto npy = test::read_bytes(dir + "/" + file);
      size_t off = 0;
      const std::vector<int64_t> shape = test::npy_f32_shape(npy, &off);
      EXPECT_EQ(shape, (std::vector<int64_t>{2, 24, vocab})) << family << "/" << file;
      EXPECT_EQ(shape, e["logits_shape"].get<std::vector<int64_t>>()) << family << "/" << file;
      ASSERT_EQ(npy.size() - off, size_t{2} * 24 * vocab * 4) << family << "/" << file;
    }
    const nlohmann::json cfg = test::read_json(dir + "/config.json");
    EXPECT_EQ(cfg["model_type"], kFamilies.at(family).first) << family;
    EXPECT_EQ(cfg["vocab_size"], vocab) << family;
    EXPECT_FALSE(e["features"].empty()) << family;
    for (const auto& eff : e["measured"]["feature_off_effects"]) {
      EXPECT_GT(eff["max_abs_logit_change"].get<double>(), 1e-3) << family << ": " << eff["switch"];
    }
  }
}

// Both files parse with qeval's readers and every tensor converts to fp32 (bf16 weights, F32 norms).
TEST(FamilyFixtures, ReadersParseBothFormats) {
  for (const auto& [family, e] : manifest()["families"].items()) {
    const std::string dir = families_dir() + "/" + family;
    const auto gb = test::read_bytes(dir + "/model.gguf");
    const GgufFile g = parse_gguf(gb.data(), gb.size(), family + "/model.gguf");
    ASSERT_NE(g.find_kv("general.architecture"), nullptr) << family;
    EXPECT_EQ(g.find_kv("general.architecture")->value, kFamilies.at(family).second) << family;
    for (const auto& t : g.tensors) EXPECT_NO_THROW(read_gguf_tensor(g, t)) << family << " " << t.name;
    const auto sb = test::read_bytes(dir + "/model.safetensors");
    const SafetensorsFile s = parse_safetensors(sb.data(), sb.size(), family + "/model.safetensors");
    EXPECT_GE(s.tensors.size(), 10u) << family;
    for (const auto& t : s.tensors) {
      EXPECT_EQ(t.dtype, "BF16") << family << " " << t.name;
      EXPECT_NO_THROW(read_safetensors_tensor(s, t)) << family << " " << t.name;
    }
  }
}

}  // namespace
}  // namespace qeval::model
