// tests/eval/model/smollm2_calib_test.cpp — slow: GPTQ and AWQ against RTN at 3 bits (g64) on SmolLM2-135M through
// run_model and the quick protocol (configs/protocol-wikitext2-512-quick.json, 16 windows of 512).
//
// Needs models/external/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/setup.sh), the WikiText-2 text and data/sotu;
// skips with a message when they are absent. 32 calibration windows (16k tokens) instead of the default 128 keep it
// near 20 minutes on 2 cores; the recorded figures (reports/smollm2-calib-schemes.md) use the defaults.
// The claim (GPTQ and AWQ papers; issue 6): at 3 bits both beat RTN on perplexity and on KL to the fp model. The
// margins there are large (e.g. OPT-125M 3-bit g128 wikitext2: RTN 37.3 vs GPTQ 30.1 — GPTQ paper Table 3), so a
// strict inequality on a 4k-token evaluation is a meaningful check: Δ mean NLL's paired standard error on 4080
// tokens is a few 1e−3 nats, far below the gap expected.
#include <gtest/gtest.h>

#include <cstdio>
#include <unistd.h>

#include "eval/model/model_run.hpp"

namespace qeval::model {
namespace {

const std::string kRoot = QEVAL_SOURCE_DIR;
const std::string kModel = "models/external/SmolLM2-135M-Instruct.Q4_1.gguf";

nlohmann::json spec(const std::string& scheme) {
  return {{"model", kModel},
          {"protocol", "configs/protocol-wikitext2-512-quick.json"},
          {"plan",
           {{"weight", {{"scheme", scheme}, {"params", {{"bits", 3}, {"group_size", 64}}}}},
            {"overrides", {{{"pattern", "output"}, {"skip", true}}}}}},
          {"calibration", {{"count", 32}}},
          {"lambada", false},
          {"blame_windows", 0}};
}

TEST(SmolLM2Calib, GptqAndAwqBeatRtnAtThreeBits) {
  if (access((kRoot + "/" + kModel).c_str(), R_OK) != 0) GTEST_SKIP() << kModel << " absent (scripts/setup.sh)";
  if (access((kRoot + "/data/sotu/sotu.txt").c_str(), R_OK) != 0) GTEST_SKIP() << "data/sotu/sotu.txt absent";
  ModelRunContext ctx(kRoot, "");  // memory-only fp reference in tests
  std::map<std::string, nlohmann::json> r;
  for (const char* s : {"rtn", "gptq", "awq"}) {
    r[s] = run_model(spec(s), ctx);
    std::printf("[ SmolLM2 %s int3 g64 ] ppl %.3f (fp %.3f) KL %.4f top1 %.4f bpw %.3f quantize %.1fs\n", s,
                r[s]["ppl"]["ppl"].get<double>(), r[s]["fp_ppl"]["ppl"].get<double>(), r[s]["kl"]["mean"].get<double>(),
                r[s]["top1"].get<double>(), r[s]["bits_per_weight"].get<double>(),
                r[s]["timings"]["quantize_s"].get<double>());
  }
  for (const char* s : {"gptq", "awq"}) {
    EXPECT_LT(r[s]["ppl"]["ppl"].get<double>(), r["rtn"]["ppl"]["ppl"].get<double>()) << s;
    EXPECT_LT(r[s]["kl"]["mean"].get<double>(), r["rtn"]["kl"]["mean"].get<double>()) << s;
    EXPECT_GT(r[s]["top1"].get<double>(), r["rtn"]["top1"].get<double>()) << s;
  }
  // Same storage: int3 + fp16 scale per 64 (GPTQ, RTN); AWQ adds col_scale on attn_output (GQA: unfolded).
  EXPECT_NEAR(r["rtn"]["bits_per_weight"].get<double>(), 3.25, 1e-9);
  EXPECT_NEAR(r["gptq"]["bits_per_weight"].get<double>(), 3.25, 1e-9);
  EXPECT_LT(r["awq"]["bits_per_weight"].get<double>() - 3.25, 0.01);
}

}  // namespace
}  // namespace qeval::model
