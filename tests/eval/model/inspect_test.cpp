// tests/eval/model/inspect_test.cpp — inspect_model() on the committed fixtures: tensors, types, bits per weight, findings.
//
// Expected tensor names, shapes, types and bits per weight come from gguf-py (dequant_expected.json, written by
// scripts/testdata/make_dequant_fixtures.py: GGML_QUANT_SIZES) and from the family fixtures' own files; the findings
// are checked for the facts each fixture was built to show (MoE refused, biases not read in GGUFs).
#include <gtest/gtest.h>

#include <sstream>

#include "eval/model/inspect.hpp"
#include "tests/eval/model/test_util.hpp"

namespace qeval::model {
namespace {

std::string family(const std::string& f) { return test::data_dir() + "/families/" + f; }

bool has_finding(const InspectReport& r, InspectFinding::Level level, const std::string& text) {
  for (const auto& f : r.findings)
    if (f.level == level && f.what.find(text) != std::string::npos) return true;
  return false;
}

std::string findings_text(const InspectReport& r) { return inspect_to_text(r); }

TEST(Inspect, EveryTypeFixtureAgainstGgufPy) {
  nlohmann::json doc;
  const auto expected = test::load_expected(test::gguf_fixture("dequant_expected.json"), &doc);
  const InspectReport r = inspect_model(test::gguf_fixture("dequant.gguf"));  // NaN blocks inside: never read
  EXPECT_EQ(r.format, "gguf");
  EXPECT_EQ(r.architecture, "qeval-test");
  ASSERT_EQ(r.tensors.size(), expected.size());
  uint64_t bytes = 0;
  for (const auto& t : r.tensors) {
    const auto& e = expected.at(t.name);
    EXPECT_EQ(t.shape, e.shape) << t.name;
    EXPECT_EQ(t.type, e.type) << t.name;
    EXPECT_EQ(t.elements, e.values.size()) << t.name;
    bytes += t.bytes;
  }
  EXPECT_EQ(r.total_bytes, bytes);
  ASSERT_EQ(r.by_type.size(), doc["types"].size());
  for (const auto& s : r.by_type) {
    EXPECT_EQ(s.bits_per_weight(), doc["types"][s.type]["bits_per_weight"].get<double>()) << s.type;
  }
  EXPECT_TRUE(has_finding(r, InspectFinding::Level::ok, "every tensor type is one qeval dequantizes"));
  EXPECT_TRUE(has_finding(r, InspectFinding::Level::unsupported, "kv 'qeval-test.block_count'")) << findings_text(r);
  EXPECT_FALSE(r.loadable);
}

TEST(Inspect, FamilyGgufs) {
  const InspectReport q = inspect_model(family("qwen2/model.gguf"));
  EXPECT_EQ(q.architecture, "qwen2");
  EXPECT_EQ(q.hyperparameters["block_count"], 2);
  EXPECT_EQ(q.tokenizer["pre"], "qwen2");
  EXPECT_EQ(q.tokenizer["tokens"]["array_length"], 512);
  EXPECT_TRUE(q.loadable) << findings_text(q);
  // The family GGUF path reads every tensor (biases included): nothing is reported unread.
  EXPECT_TRUE(has_finding(q, InspectFinding::Level::ok, "loads for qeval's forward (qwen2)")) << findings_text(q);
  EXPECT_FALSE(has_finding(q, InspectFinding::Level::warning, "not read by qeval's forward")) << findings_text(q);
  // Phi-3's fused attn_qkv / gate+up are split as the loader splits them, so its shapes validate.
  const InspectReport p = inspect_model(family("phi3/model.gguf"));
  EXPECT_TRUE(p.loadable) << findings_text(p);
  EXPECT_FALSE(has_finding(p, InspectFinding::Level::warning, "not read by qeval's forward")) << findings_text(p);
  for (const auto& s : q.by_type) {
    EXPECT_TRUE(s.type == "BF16" || s.type == "F32") << s.type;
    EXPECT_EQ(s.bits_per_weight(), s.type == "BF16" ? 16.0 : 32.0);
  }
  // MoE GGUFs: the router, the stacked experts (split per expert at load) and Qwen2-MoE's shared expert are read.
  for (const char* moe : {"mixtral/model.gguf", "qwen2moe/model.gguf", "gemma3/model.gguf"}) {  // + Gemma 3's keys
    const InspectReport m = inspect_model(family(moe));
    EXPECT_TRUE(m.loadable) << moe << findings_text(m);
    EXPECT_FALSE(has_finding(m, InspectFinding::Level::warning, "not read by qeval's forward")) << findings_text(m);
  }
  // The "loads" line says what the forward will run: experts and their routing, sliding layers and their RoPE base.
  EXPECT_TRUE(has_finding(inspect_model(family("mixtral/model.gguf")), InspectFinding::Level::ok,
                          "4 experts (top 2, d_ff_expert 64, top-k renormalised)"));
  EXPECT_TRUE(has_finding(inspect_model(family("qwen2moe/model.gguf")), InspectFinding::Level::ok,
                          "4 experts (top 2, d_ff_expert 32, shared expert 64)"));
  EXPECT_TRUE(has_finding(inspect_model(family("gemma3/model.gguf")), InspectFinding::Level::ok,
                          "sliding window 8 on 2 of 2 layers (RoPE base 10000.0 there)"));
  const InspectReport l = inspect_model(family("llama3/model.gguf"));
  EXPECT_TRUE(l.loadable) << findings_text(l);  // rope_freqs.weight is read (Llama 3.1's RoPE divisors)
  EXPECT_FALSE(has_finding(l, InspectFinding::Level::warning, "rope_freqs.weight")) << findings_text(l);
}

TEST(Inspect, SafetensorsDirectories) {
  const InspectReport l = inspect_model(family("llama3"));
  EXPECT_EQ(l.format, "safetensors");
  EXPECT_EQ(l.architecture, "LlamaForCausalLM");
  EXPECT_EQ(l.hyperparameters["hidden_size"], 64);
  ASSERT_EQ(l.by_type.size(), 1u);
  EXPECT_EQ(l.by_type[0].type, "BF16");
  EXPECT_EQ(l.total_bytes, l.total_elements * 2);
  EXPECT_TRUE(l.loadable) << findings_text(l);  // rope_parameters (llama3 scaling) is read since the family forwards
  EXPECT_EQ(l.tokenizer["model"], "BPE");
  const InspectReport q = inspect_model(family("qwen2"));
  EXPECT_TRUE(q.loadable) << findings_text(q);  // q/k/v biases are read since the family forwards
  EXPECT_TRUE(inspect_model(family("gemma2")).loadable);
  for (const char* moe : {"mixtral", "qwen2moe"}) {  // routers and experts are read since the MoE forward
    const InspectReport r = inspect_model(family(moe));
    EXPECT_TRUE(r.loadable) << moe << ": " << findings_text(r);
  }
  const InspectReport g = inspect_model(family("gemma3"));
  EXPECT_TRUE(g.loadable) << findings_text(g);  // local/global RoPE and q/k norms are read since the Gemma 3 forward
  EXPECT_THROW(inspect_model(family("no-such-dir")), CheckpointError);
}

// The text form aligns its columns: every row of the by-type table (right-aligned numbers) has the same length.
TEST(Inspect, TextColumnsAlignAndJsonHasEverything) {
  const InspectReport r = inspect_model(test::gguf_fixture("dequant.gguf"));
  const std::string text = inspect_to_text(r);
  std::istringstream in(text.substr(text.find("by type:\n") + 9));
  std::string line;
  size_t width = 0, rows = 0;
  while (std::getline(in, line) && line != "qeval:") {
    if (!width) width = line.size();
    EXPECT_EQ(line.size(), width) << line;
    ++rows;
  }
  EXPECT_EQ(rows, r.by_type.size() + 2);  // header, types, total
  const nlohmann::json j = inspect_to_json(r);
  EXPECT_EQ(j["tensors"].size(), r.tensors.size());
  EXPECT_EQ(j["by_type"].size(), r.by_type.size());
  EXPECT_EQ(j["loadable"], false);
  EXPECT_EQ(j["findings"][0]["level"], "ok");
}

}  // namespace
}  // namespace qeval::model
