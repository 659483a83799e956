// tests/eval/model/protocol_test.cpp — protocol JSON and windows, perplexity/KL/top-1, the fp cache, determinism, blame, LAMBADA.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <dirent.h>
#include <fstream>
#include <unistd.h>

#include "eval/model/lambada.hpp"
#include "eval/model/llama.hpp"
#include "eval/model/ppl.hpp"
#include "eval/model/protocol.hpp"
#include "quant/rng.hpp"

namespace qeval::model {
namespace {

const std::string kRoot = QEVAL_SOURCE_DIR;

ModelConfig cfg(int64_t V = 101) {
  ModelConfig c;
  c.arch = "llama";
  c.n_layers = 2;
  c.d_model = 64;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.d_ff = 128;
  c.vocab_size = V;
  c.rope_theta = 10000.0;
  c.rms_eps = 1e-5;
  c.bos_id = 1;
  return c;
}

Protocol proto(int64_t n_ctx = 32, int threads = 2, int64_t batch = 2) {
  Protocol p;
  p.name = "test";
  p.n_ctx = n_ctx;
  p.threads = threads;
  p.batch = batch;
  p.bos = BosMode::replace_first;
  return p;
}

std::vector<int32_t> stream(int64_t n, int64_t V, uint64_t seed) {
  Rng r(seed);
  std::vector<int32_t> t(static_cast<size_t>(n));
  for (auto& x : t) x = static_cast<int32_t>(r.below(static_cast<uint64_t>(V)));
  return t;
}

schemes::SchemeConfig rtn(int bits, int64_t group) {
  schemes::SchemeConfig c = schemes::default_config("rtn");
  c.params.bits = bits;
  c.params.group_size = group;
  return c;
}

TEST(Protocol, JsonRoundTripAndStrictKeys) {
  Protocol p = proto();
  p.text = "data/x.txt";
  p.text_sha256 = "sha256:00";
  p.lambada.enabled = true;
  p.lambada.count = 10;
  const Protocol q = Protocol::from_json(p.to_json());
  EXPECT_EQ(q.to_json(), p.to_json());
  EXPECT_EQ(q.hash(), p.hash());
  nlohmann::json j = p.to_json();
  j["n_ctxx"] = 5;
  EXPECT_THROW(Protocol::from_json(j), std::invalid_argument);
  j = p.to_json();
  j["bos"] = "prepend";
  EXPECT_THROW(Protocol::from_json(j), std::invalid_argument);
  j = p.to_json();
  j["n_ctx"] = "512";
  EXPECT_THROW(Protocol::from_json(j), std::invalid_argument);
  j = p.to_json();
  j["n_ctx"] = 64;
  EXPECT_NE(Protocol::from_json(j).hash(), p.hash());
}

TEST(Protocol, ShippedConfigsLoadAndPinTheSharedText) {
  int n = 0;
  DIR* d = opendir((kRoot + "/configs").c_str());
  ASSERT_NE(d, nullptr);
  while (dirent* e = readdir(d)) {
    const std::string f = e->d_name;
    if (f.rfind("protocol-", 0) != 0 || f.size() < 5 || f.substr(f.size() - 5) != ".json") continue;
    ++n;
    const Protocol p = Protocol::load(kRoot + "/configs/" + f);
    EXPECT_FALSE(p.text_sha256.empty()) << f;
    // The text is in the repository (data/, copied from ../shared/data with its licence); its hash must match.
    const std::string path = p.text[0] == '/' ? p.text : kRoot + "/" + p.text;
    EXPECT_EQ(access(path.c_str(), R_OK), 0) << f << ": " << path << " is missing";
    EXPECT_NO_THROW(p.checked_text_path(kRoot)) << f;
  }
  closedir(d);
  EXPECT_GE(n, 2);
}

// text_begin_byte: only the text from a line start on is evaluated; absent (0) it is left out of the JSON, so
// protocols without it keep their hashes (and every committed run id).
TEST(Protocol, TextBeginByteStartsTheTextAtALine) {
  char tmpl[] = "/tmp/qeval-proto-XXXXXX";
  const int fd = mkstemp(tmpl);
  ASSERT_GE(fd, 0);
  const std::string text = "first line\nsecond line\nthird\n";
  ASSERT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);
  Protocol p = proto();
  p.text = tmpl;
  p.text_sha256 = "";
  EXPECT_EQ(p.read_text("/"), text);
  EXPECT_FALSE(p.to_json().contains("text_begin_byte"));
  p.text_begin_byte = 11;  // "second line\n..."
  EXPECT_EQ(p.read_text("/"), "second line\nthird\n");
  EXPECT_EQ(Protocol::from_json(p.to_json()).text_begin_byte, 11);
  p.text_begin_byte = 12;
  try {
    p.read_text("/");
    ADD_FAILURE() << "a start inside a line must be refused";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("not at a line start"), std::string::npos) << e.what();
  }
  p.text_begin_byte = static_cast<int64_t>(text.size());
  EXPECT_THROW(p.read_text("/"), std::invalid_argument);
  nlohmann::json j = p.to_json();
  j["text_begin_byte"] = -1;
  EXPECT_THROW(Protocol::from_json(j), std::invalid_argument);
  std::remove(tmpl);
}

TEST(Protocol, FileThatIsNotJsonIsNamed) {
  // A syntax error, a number beyond double (out_of_range, not parse_error) and nesting deep enough to overflow the
  // stack in a copy are all "not valid JSON" naming the file (found with the fuzz drivers on the other JSON readers).
  const std::string path = ::testing::TempDir() + "/qeval_protocol_bad.json";
  for (const std::string& text : {std::string(R"({"n_ctx": )"), std::string(R"({"n_ctx": 1e99999})"),
                                  std::string(200000, '[') + std::string(200000, ']')}) {
    std::ofstream(path, std::ios::binary) << text;
    try {
      (void)Protocol::load(path);
      ADD_FAILURE() << text.substr(0, 40);
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find(path + ": not valid JSON"), std::string::npos) << e.what();
    }
  }
  std::remove(path.c_str());
}

TEST(Protocol, WindowsFollowLlamaCppChunking) {
  const Protocol p = proto(16);
  const std::vector<int32_t> ids = stream(100, 50, 1);
  const Windows w = make_windows(p, ids, 7);
  // Stream = [BOS] + 100 ids = 101 tokens → floor(101/16) = 6 windows; each scores 16 − 1 − 8 = 7 tokens.
  EXPECT_EQ(w.n_stream_tokens, 101);
  EXPECT_EQ(w.n_windows(), 6);
  EXPECT_EQ(w.scored_per_window(), 7);
  EXPECT_EQ(w.first, 8);
  for (int64_t c = 0; c < 6; ++c) {
    EXPECT_EQ(w.tokens[c * 16], 7) << "the first token of every window is BOS";
    for (int64_t t = 1; t < 16; ++t) EXPECT_EQ(w.tokens[c * 16 + t], ids[c * 16 + t - 1]);
    // Scored: logits at positions 8..14 predict tokens at 9..15.
    for (int64_t s = 0; s < 7; ++s) EXPECT_EQ(w.targets[c * 7 + s], w.tokens[c * 16 + 9 + s]);
  }
  Protocol q = proto(16);
  q.bos = BosMode::none;
  q.n_chunks = 2;
  q.first_chunk = 1;
  q.chunk_stride = 3;
  const Windows v = make_windows(q, ids, -1);
  EXPECT_EQ(v.chunk_ids, (std::vector<int64_t>{1, 4}));
  EXPECT_EQ(v.tokens[0], ids[16]);
  q.n_chunks = 3;  // chunk 7 does not exist
  EXPECT_THROW(make_windows(q, ids, -1), std::invalid_argument);
  EXPECT_THROW(make_windows(proto(16), ids, -1), std::invalid_argument);  // replace_first needs a BOS id
  Protocol a = proto(16);
  a.bos = BosMode::auto_;
  EXPECT_THROW(make_windows(a, ids, 7), std::invalid_argument);  // auto must be resolved by make_evaluator
  EXPECT_EQ(Protocol::from_json(a.to_json()).bos, BosMode::auto_);
  EXPECT_THROW(make_windows(proto(512), ids, 7), std::invalid_argument);  // shorter than one window
}

TEST(Metrics, NllStatsMatchHandComputation) {
  const double x[4] = {1, 2, 3, 4};
  const NllStats s = nll_stats(x, 4);
  // mean 2.5; population variance 1.25; se = sqrt(1.25 / 3) = 0.6455; ppl = e^2.5.
  EXPECT_DOUBLE_EQ(s.mean_nll, 2.5);
  EXPECT_NEAR(s.se_nll, std::sqrt(1.25 / 3.0), 1e-15);
  EXPECT_NEAR(s.ppl, std::exp(2.5), 1e-12);
  EXPECT_NEAR(s.ppl_se, std::exp(2.5) * std::sqrt(1.25 / 3.0), 1e-12);
  const NllStats w = nll_stats(x, 4, 2);  // windows {1,2}, {3,4}: means 1.5, 3.5 → se = sqrt(1/1)/... = 1
  EXPECT_NEAR(w.se_nll_window, 1.0, 1e-15);
}

TEST(Metrics, UniformLogitsGivePerplexityExactlyV) {
  // A model whose head weights are zero has logits ≡ 0, so q(target) = 1/V for every token and
  // ppl = exp(mean(log V)) = V. In double: Σ_i exp(0) = V exactly, lse = log V, so every NLL is the same
  // double log(V) and the mean of n equal doubles is within n·2^−53 relative of it → |ppl − V| ≤ 1e−12·V.
  const int64_t V = 101;
  LlamaModel r(cfg(V), 31);
  Checkpoint ck = r.to_checkpoint();
  ck.config.arch = "llama";
  ck.path = "uniform";
  std::fill(ck.tensors["output.weight"].data.begin(), ck.tensors["output.weight"].data.end(), 0.0f);
  LlamaModel m(ck);
  const Evaluator ev(proto(32), make_windows(proto(32), stream(400, V, 2), 1));
  const EvalResult res = ev.evaluate(m, nullptr);
  EXPECT_EQ(res.ppl.n, ev.windows().n_scored());
  EXPECT_NEAR(res.ppl.ppl, double(V), 1e-12 * V);
  // Every NLL is the same double; only the mean's rounding (≤ n·2^−53 relative) separates them: se ≈ 1e−15.
  EXPECT_LE(res.ppl.se_nll, 1e-12);
}

TEST(Metrics, IdenticalModelsGiveZeroKlAndFullAgreement) {
  LlamaModel a(cfg(), 32), b(cfg(), 32);
  const Protocol p = proto(32);
  const Evaluator ev(p, make_windows(p, stream(600, 101, 3), 1));
  // Exact path: the same logits on both sides → every per-token KL is exactly 0.
  const EvalResult pair = ev.evaluate_pair(a, b);
  EXPECT_EQ(pair.kl_mean, 0.0);
  EXPECT_EQ(pair.kl_max, 0.0);
  EXPECT_EQ(pair.top1, 1.0);
  EXPECT_EQ(pair.delta_mean_nll, 0.0);
  // Cached path: KL(P'‖P) of the uint16 encoding is ≥ 0 and within the derived bound; top-1 exact.
  const auto ref = ev.compute_reference(b);
  const EvalResult c = ev.evaluate(a, ref.get());
  EXPECT_EQ(c.top1, 1.0);
  EXPECT_EQ(c.ppl.mean_nll, c.ref_ppl.mean_nll);
  EXPECT_LE(std::fabs(c.kl_mean), c.kl_bias_bound);
  EXPECT_LT(c.kl_bias_bound, 1e-4);
  std::printf("[ cache ] identical models: cached KL = %.3e (bound %.3e)\n", c.kl_mean, c.kl_bias_bound);
}

TEST(Metrics, CachedKlWithinItsBoundOfExactKl) {
  LlamaModel fp(cfg(), 33), q(cfg(), 33);
  QuantPlan plan;
  plan.weight = rtn(4, 32);
  q.apply_plan(plan);
  const Protocol p = proto(32);
  const Evaluator ev(p, make_windows(p, stream(800, 101, 4), 1));
  const EvalResult exact = ev.evaluate_pair(q, fp);
  const auto ref = ev.compute_reference(fp);
  const EvalResult cached = ev.evaluate(q, ref.get());
  std::printf("[ cache ] int4 g32: exact KL %.6e, cached %.6e, |Δ| %.2e, stated bound %.2e; top1 %.4f / %.4f\n",
              exact.kl_mean, cached.kl_mean, std::fabs(exact.kl_mean - cached.kl_mean), cached.kl_bias_bound,
              exact.top1, cached.top1);
  EXPECT_GT(exact.kl_mean, 0.0);
  EXPECT_LE(std::fabs(exact.kl_mean - cached.kl_mean), cached.kl_bias_bound);
  EXPECT_EQ(exact.top1, cached.top1);
  EXPECT_EQ(exact.ppl.mean_nll, cached.ppl.mean_nll);
  EXPECT_EQ(exact.ref_ppl.mean_nll, cached.ref_ppl.mean_nll);
  EXPECT_LE(std::fabs(exact.kl_p99 - cached.kl_p99), cached.kl_token_bound_max);
}

TEST(Metrics, DiskCacheRoundTripAndKeying) {
  char tmpl[] = "/tmp/qeval_cache_XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  LlamaModel fp(cfg(), 34);
  const Protocol p = proto(32);
  const Evaluator ev(p, make_windows(p, stream(500, 101, 5), 1));
  const auto r1 = ev.reference(fp, dir);
  const std::string file = dir + "/" + ev.reference_key(fp) + ".qfpref";
  ASSERT_EQ(access(file.c_str(), R_OK), 0);
  const auto loaded = FpReference::load(file);
  ASSERT_EQ(loaded->n_tokens(), r1->n_tokens());
  EXPECT_EQ(0, std::memcmp(loaded->codes(0), r1->codes(0), sizeof(uint16_t) * r1->n_tokens() * r1->n_vocab()));
  EXPECT_EQ(0, std::memcmp(loaded->nll(), r1->nll(), sizeof(double) * r1->n_tokens()));
  LlamaModel q(cfg(), 34);
  QuantPlan plan;
  plan.weight = rtn(8, 0);
  q.apply_plan(plan);
  EvalResult e1 = ev.evaluate(q, r1.get()), e2 = ev.evaluate(q, loaded.get());
  e1.seconds = e2.seconds = 0;
  EXPECT_EQ(e1.to_json().dump(), e2.to_json().dump());
  // Different model weights or protocol → different key.
  LlamaModel other(cfg(), 35);
  EXPECT_NE(ev.reference_key(other), ev.reference_key(fp));
  Protocol p2 = p;
  p2.n_ctx = 16;
  EXPECT_NE(Evaluator(p2, make_windows(p2, stream(500, 101, 5), 1)).reference_key(fp), ev.reference_key(fp));
  // A corrupted file is refused with a message naming it.
  { std::ofstream f(file, std::ios::binary | std::ios::in | std::ios::out); f.seekp(3); f.put('X'); }
  EXPECT_THROW(FpReference::load(file), std::runtime_error);
  std::remove(file.c_str());
  rmdir(tmpl);
}

TEST(Determinism, TwoRunsBitIdenticalAndIndependentOfThreadsAndBatch) {
  LlamaModel fp(cfg(), 36), q(cfg(), 36);
  QuantPlan plan;
  plan.weight = rtn(4, 32);
  q.apply_plan(plan);
  const std::vector<int32_t> ids = stream(1200, 101, 6);
  auto run = [&](int threads, int64_t batch) {
    const Protocol p = proto(64, threads, batch);
    const Evaluator ev(p, make_windows(p, ids, 1));
    const auto ref = ev.compute_reference(fp);
    EvalResult r = ev.evaluate(q, ref.get());
    r.seconds = 0;
    return r.to_json().dump();
  };
  const std::string a = run(2, 2), b = run(2, 2);
  EXPECT_EQ(a, b) << "two runs of the same protocol must be bit-identical";
  const std::string t1 = run(1, 2);
  const std::string b1 = run(2, 1), b4 = run(2, 4);
  // Recorded, not only asserted: the figures say whether threads/batch could be left out of the protocol.
  std::printf("[ determinism ] threads 1 vs 2: %s; batch 1 vs 2 vs 4: %s\n", t1 == a ? "identical" : "DIFFERENT",
              (b1 == a && b4 == a) ? "identical" : "DIFFERENT");
  EXPECT_EQ(t1, a);
}

TEST(Blame, RanksTheWorstQuantizedLayerFirst) {
  LlamaModel m(cfg(), 37);
  QuantPlan plan;
  LayerOverride a, b;
  a.pattern = "blk.1.ffn_down";
  a.weight = rtn(2, 32);  // 2-bit: far worse
  b.pattern = "blk.0.attn_v";
  b.weight = rtn(8, 0);
  plan.overrides = {a, b};
  m.apply_plan(plan);
  const Protocol p = proto(32);
  const Evaluator ev(p, make_windows(p, stream(400, 101, 7), 1));
  const auto s = ev.blame_sqnr(m, 2);
  ASSERT_EQ(s.size(), 2u);
  EXPECT_EQ(s[0].layer, "blk.1.ffn_down");
  EXPECT_EQ(s[1].layer, "blk.0.attn_v");
  // Output SQNR with fp inputs ≈ weight SQNR for a single layer (first-order: Δy = x·ΔWᵀ); within 6 dB.
  for (const auto& e : s) EXPECT_NEAR(e.output_sqnr_db, e.weight_sqnr_db, 6.0) << e.layer;
  LlamaModel fp(cfg(), 37);
  const auto ref = ev.compute_reference(fp);
  const auto k = ev.blame_one_at_a_time(m, *ref, 2);
  ASSERT_EQ(k.size(), 2u);
  EXPECT_EQ(k[0].layer, "blk.1.ffn_down");
  EXPECT_GT(k[0].kl_alone, k[1].kl_alone);
  // The installed plan is restored.
  EXPECT_TRUE(m.linear_layer("blk.0.attn_v").weight_scheme);
  EXPECT_TRUE(m.linear_layer("blk.1.ffn_down").weight_scheme);
  EXPECT_FALSE(m.linear_layer("blk.0.attn_q").weight_scheme);
}

TEST(Lambada, SplitAndTokenizeLikeLmEval) {
  auto [c, t] = lambada_split("He looked at the old man");
  EXPECT_EQ(c, "He looked at the old");
  EXPECT_EQ(t, " man");
  auto [c2, t2] = lambada_split("word");
  EXPECT_EQ(c2, "");
  EXPECT_EQ(t2, " word");
  // Char-level toy encoder: one token per byte.
  auto enc = [](const std::string& s) {
    std::vector<int32_t> v;
    for (unsigned char ch : s) v.push_back(ch % 101);
    return v;
  };
  LambadaProtocol lp;
  lp.count = 2;
  lp.offset = 1;
  lp.stride = 2;
  const std::vector<std::string> texts = {"a bc", "de fgh", "ij k", "lm nop", "q rs"};
  const auto items = lambada_items(texts, lp, enc, 1, 2);
  ASSERT_EQ(items.size(), 2u);  // passages 1 and 3
  EXPECT_EQ(items[0].context, enc("de"));
  EXPECT_EQ(items[0].target, enc(" fgh"));
  EXPECT_EQ(items[1].target, enc(" nop"));
  lp.prepend_bos = true;
  EXPECT_EQ(lambada_items(texts, lp, enc, 1, 2)[0].context[0], 1);
  // Evaluation runs and is batch-independent in its decisions here.
  LlamaModel m(cfg(), 38);
  const auto r1 = eval_lambada(m, items, 1, 2);
  const auto r2 = eval_lambada(m, items, 2, 2);
  EXPECT_EQ(r1.n, 2);
  EXPECT_EQ(r1.correct, r2.correct);
  EXPECT_NEAR(r1.mean_target_ll, r2.mean_target_ll, 1e-4);
}

TEST(Lambada, ReadsTheRepositoryCopy) {
  const std::string path = kRoot + "/data/lambada/lambada_test.jsonl";
  const auto texts = read_lambada(path);
  EXPECT_EQ(texts.size(), 5153u);  // the lambada_openai test split
}

}  // namespace
}  // namespace qeval::model
