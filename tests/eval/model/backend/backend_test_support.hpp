// tests/eval/model/backend/backend_test_support.hpp — what the cpu and opencl backend tests share: code decoding, the
// integer-case description, and the embedded-model run both compare with ref.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <initializer_list>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "eval/model/model_run.hpp"
#include "quant/matrix.hpp"
#include "quant/pack.hpp"
#include "tests/quant/quant_test_util.hpp"

namespace qeval::model::backend_test {

using test::gaussian;

inline constexpr double kU = 0x1.0p-24;  // unit roundoff of fp32 (round to nearest)

// The value q − zero_point of element (r, c), decoded here from the storage code (quant/matrix.hpp's convention:
// symmetric stores q + 2^(b−1), asymmetric stores q).
inline int64_t centered(const quant::QuantizedMatrix& q, int64_t r, int64_t c) {
  const int64_t u = quant::packed_code_at(q.codes.data() + r * q.row_bytes(), c, q.params.bits);
  const bool sym = q.params.mapping == quant::Mapping::symmetric;
  return sym ? u - (int64_t{1} << (q.params.bits - 1)) : u - q.zero_points[static_cast<size_t>(q.group_index(r, c))];
}

// One integer layer case: weight bits, mapping, group; activation (int8) mapping, group.
struct Case {
  int wbits;
  quant::Mapping wmap;
  int64_t wgroup;  // 0: per channel
  quant::Mapping amap;
  int64_t agroup;  // 0: per token
};

inline std::string describe(const Case& c, int64_t k, int64_t m) {
  return "w int" + std::to_string(c.wbits) + (c.wmap == quant::Mapping::symmetric ? " sym" : " asym") + " g" +
         std::to_string(c.wgroup) + ", a int8" + (c.amap == quant::Mapping::symmetric ? " sym" : " asym") + " g" +
         std::to_string(c.agroup) + ", k " + std::to_string(k) + ", m " + std::to_string(m);
}

// A model run of the embedded model (models/qeval-sotu-4l256) on `n_chunks` windows of 256 held-out SOTU tokens
// (> 64 rows: dynamic activations quantize), the head left fp, on `backend`.
inline nlohmann::json model_spec(const nlohmann::json& plan, const std::string& backend, int n_chunks) {
  nlohmann::json protocol = nlohmann::json::parse(R"({"version": 1, "text": "data/sotu/sotu.txt",
    "text_begin_byte": 10216959, "tokenizer": "model", "n_ctx": 256, "first_chunk": 0, "chunk_stride": 10,
    "bos": "auto", "dtype": "fp32", "threads": 2, "batch": 1, "seed": 0})");
  protocol["name"] = "sotu-heldout-256-" + std::to_string(n_chunks);
  protocol["n_chunks"] = n_chunks;
  nlohmann::json p = plan;
  p["overrides"] = nlohmann::json::array({{{"pattern", "output"}, {"skip", true}}});
  return {{"model", "models/qeval-sotu-4l256/model.gguf"}, {"protocol", protocol}, {"plan", p},
          {"backend", backend}, {"lambada", false}, {"blame_windows", 0}};
}

inline ModelRunContext& context() {
  static ModelRunContext ctx(QEVAL_SOURCE_DIR, "");  // memory cache only: the fp reference is shared
  ctx.progress = false;
  return ctx;
}

// `f` must throw std::invalid_argument whose message is one line holding every part of `parts`.
template <class F>
void expect_one_line_error(F&& f, std::initializer_list<const char*> parts, const std::string& what) {
  try {
    f();
    ADD_FAILURE() << what << " was accepted";
  } catch (const std::invalid_argument& e) {
    const std::string msg = e.what();
    for (const char* part : parts) EXPECT_NE(msg.find(part), std::string::npos) << "'" << part << "' missing in: " << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

// A run of `plan` on `backend` must fail at plan time with one line holding every part of `parts`.
inline void expect_one_line_refusal(const nlohmann::json& plan, const std::string& backend, int n_chunks,
                                    std::initializer_list<const char*> parts) {
  expect_one_line_error([&] { run_model(model_spec(plan, backend, n_chunks), context()); }, parts,
                        plan.dump() + " on " + backend);
}

// The plans both backends' model-level agreement tests run: W8A8 per channel, W4A8 g32 with asymmetric weights and
// activations, W4A16 g128, and (with_llm_int8) LLM.int8.
inline std::vector<nlohmann::json> agreement_plans(bool with_llm_int8) {
  const nlohmann::json dyn = {{"scheme", "dynamic_per_token"}, {"params", {{"bits", 8}, {"group_size", 0}}}};
  const nlohmann::json dyn_asym = {{"scheme", "dynamic_per_token"},
                                   {"params", {{"bits", 8}, {"group_size", 0}, {"mapping", "asymmetric"}}}};
  std::vector<nlohmann::json> plans = {
      {{"weight", {{"scheme", "rtn"}, {"params", {{"bits", 8}, {"group_size", 0}}}}}, {"activation", dyn}},
      {{"weight", {{"scheme", "rtn"}, {"params", {{"bits", 4}, {"group_size", 32}, {"mapping", "asymmetric"}}}}},
       {"activation", dyn_asym}},
      {{"weight", {{"scheme", "rtn"}, {"params", {{"bits", 4}, {"group_size", 128}}}}}},
  };
  if (with_llm_int8) plans.push_back({{"linear", {{"scheme", "llm_int8"}, {"params", {{"bits", 8}, {"group_size", 0}}}}}});
  return plans;
}

}  // namespace qeval::model::backend_test
