// tests/quant/params_test.cpp — QuantParams: validate() messages, group-size divisibility, labels, enum names, JSON.
#include <gtest/gtest.h>

#include <limits>
#include <string>

#include "quant/affine.hpp"
#include "quant/matrix.hpp"
#include "quant/json_text.hpp"
#include "quant/params_json.hpp"

namespace qeval::quant {
namespace {

// Runs f, expects std::invalid_argument, returns its message.
template <class F>
std::string message_of(F f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected std::invalid_argument";
  return "";
}

void expect_contains(const std::string& msg, const std::string& part) {
  EXPECT_NE(msg.find(part), std::string::npos) << "message: \"" << msg << "\" lacks \"" << part << "\"";
}

TEST(QuantParamsValidate, DefaultsAreValid) {
  QuantParams p;
  EXPECT_NO_THROW(p.validate());
  EXPECT_EQ(p.version, QuantParams::kVersion);
}

TEST(QuantParamsValidate, BitsRange) {
  for (int b = kMinBits; b <= kMaxBits; ++b) {
    QuantParams p;
    p.bits = b;
    EXPECT_NO_THROW(p.validate()) << "bits " << b;
  }
  for (int b : {-1, 0, 1, 9, 16}) {
    QuantParams p;
    p.bits = b;
    const std::string m = message_of([&] { p.validate(); });
    expect_contains(m, "bits");
    expect_contains(m, std::to_string(b));
    expect_contains(m, "2..8");
  }
}

TEST(QuantParamsValidate, GroupSize) {
  for (int64_t g : {kPerTensor, kPerRow, int64_t{1}, int64_t{32}, int64_t{4096}}) {
    QuantParams p;
    p.group_size = g;
    EXPECT_NO_THROW(p.validate()) << "group_size " << g;
  }
  QuantParams p;
  p.group_size = -2;
  const std::string m = message_of([&] { p.validate(); });
  expect_contains(m, "group_size");
  expect_contains(m, "-2");
  expect_contains(m, "0 (kPerRow");
  expect_contains(m, "-1 (kPerTensor");
}

TEST(QuantParamsValidate, ClipRatioAndPercentile) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (double r : {0.0, -0.5, 1.0000001, 2.0, nan}) {
    QuantParams p;
    p.clip_ratio = r;
    const std::string m = message_of([&] { p.validate(); });
    expect_contains(m, "clip_ratio");
    expect_contains(m, "(0, 1]");
  }
  for (double r : {1e-6, 0.5, 1.0}) {
    QuantParams p;
    p.clip_ratio = r;
    EXPECT_NO_THROW(p.validate());
  }
  for (double pc : {50.0, 10.0, 100.5, nan}) {
    QuantParams p;
    p.clip_percentile = pc;
    const std::string m = message_of([&] { p.validate(); });
    expect_contains(m, "clip_percentile");
    expect_contains(m, "(50, 100]");
  }
  for (double pc : {50.001, 99.9, 100.0}) {
    QuantParams p;
    p.clip_percentile = pc;
    EXPECT_NO_THROW(p.validate());
  }
}

TEST(QuantParamsValidate, VersionAndEnums) {
  QuantParams p;
  p.version = 2;
  const std::string m = message_of([&] { p.validate(); });
  expect_contains(m, "version");
  expect_contains(m, "2");
  expect_contains(m, "1");
  QuantParams q;
  q.mapping = static_cast<Mapping>(7);
  expect_contains(message_of([&] { q.validate(); }), "mapping");
}

TEST(QuantParamsRowLength, NonDivisibleGroupNamesBothNumbers) {
  QuantParams p;
  p.group_size = 100;
  const std::string m = message_of([&] { p.validate_for_row_length(4096); });
  // The brief's exact wording: sizes, and divisors nearest the requested 100 among the usual sizes.
  EXPECT_EQ(m, "group size 100 does not divide the row length 4096; use a divisor of 4096 such as 32, 64, 128, "
               "or 0 for one group per row; or allow a shorter last group with partial_last_group "
               "(CLI: --partial-groups)");
  p.group_size = 128;
  expect_contains(message_of([&] { p.validate_for_row_length(4095); }), "4095");
  expect_contains(message_of([&] { p.validate_for_row_length(4095); }), "128");
  // A prime row length: no divisor to suggest but itself.
  expect_contains(message_of([&] { p.validate_for_row_length(127); }), "only divisors are 1 and 127");
  EXPECT_NO_THROW(p.validate_for_row_length(4096));
  EXPECT_NO_THROW(p.validate_for_row_length(0));
  p.group_size = kPerRow;
  EXPECT_NO_THROW(p.validate_for_row_length(4095));
  p.group_size = kPerTensor;
  EXPECT_NO_THROW(p.validate_for_row_length(4095));
}

TEST(QuantParamsRowLength, GroupsPerRow) {
  QuantParams p;
  p.group_size = 128;
  EXPECT_EQ(p.groups_per_row(4096), 32);
  EXPECT_EQ(p.group_length(4096), 128);
  EXPECT_THROW(p.groups_per_row(4000), std::invalid_argument);  // never a silent partial group
  p.group_size = kPerRow;
  EXPECT_EQ(p.groups_per_row(4096), 1);
  EXPECT_EQ(p.group_length(4096), 4096);
  p.group_size = kPerTensor;
  EXPECT_EQ(p.groups_per_row(4096), 1);
}

TEST(QuantParamsNames, ToString) {
  QuantParams p;
  EXPECT_EQ(p.to_string(), "int4 sym g128");
  p.bits = 8;
  p.mapping = Mapping::asymmetric;
  p.group_size = kPerRow;
  EXPECT_EQ(p.to_string(), "int8 asym per-channel");
  p.bits = 4;
  p.mapping = Mapping::symmetric;
  p.group_size = kPerTensor;
  EXPECT_EQ(p.to_string(), "int4 sym per-tensor");
  // Non-default fields make the label distinct.
  QuantParams a, b;
  b.range = RangeMethod::mse;
  b.clip_ratio = 0.9;
  EXPECT_NE(a.to_string(), b.to_string());
  EXPECT_EQ(b.to_string(), "int4 sym g128 mse clip<=0.9");
  b = QuantParams{};
  b.range = RangeMethod::percentile;
  EXPECT_EQ(b.to_string(), "int4 sym g128 p99.99");
  b = QuantParams{};
  b.rounding = Rounding::toward_zero;
  EXPECT_EQ(b.to_string(), "int4 sym g128 round=toward_zero");
}

TEST(QuantParamsNames, EnumsRoundTrip) {
  for (Mapping m : {Mapping::symmetric, Mapping::asymmetric}) EXPECT_EQ(parse_mapping(to_string(m)), m);
  EXPECT_EQ(parse_mapping("sym"), Mapping::symmetric);
  EXPECT_EQ(parse_mapping("asym"), Mapping::asymmetric);
  for (Rounding r : {Rounding::nearest_even, Rounding::nearest_away, Rounding::toward_zero})
    EXPECT_EQ(parse_rounding(to_string(r)), r);
  for (RangeMethod r : {RangeMethod::minmax, RangeMethod::percentile, RangeMethod::mse})
    EXPECT_EQ(parse_range_method(to_string(r)), r);
  for (NonFinitePolicy p : {NonFinitePolicy::error, NonFinitePolicy::propagate})
    EXPECT_EQ(parse_non_finite_policy(to_string(p)), p);
  for (Format f : {Format::int_affine, Format::fp4_e2m1, Format::fp4_bnb, Format::nf4, Format::fp8_e4m3,
                   Format::fp8_e5m2})
    EXPECT_EQ(parse_format(to_string(f)), f);
  expect_contains(message_of([] { parse_mapping("symetric"); }), "symmetric (sym)");
  expect_contains(message_of([] { parse_rounding("up"); }), "nearest_even");
  expect_contains(message_of([] { parse_range_method("max"); }), "minmax, percentile, mse");
  expect_contains(message_of([] { parse_non_finite_policy("ignore"); }), "error, propagate");
  expect_contains(message_of([] { parse_format("fp4"); }), "fp4_e2m1, fp4_bnb");
}

TEST(QuantParamsEquality, EveryFieldCounts) {
  const QuantParams a;
  auto differs = [&](auto mutate) {
    QuantParams b;
    mutate(b);
    return a != b && !(a == b);
  };
  EXPECT_TRUE(a == QuantParams{});
  EXPECT_TRUE(differs([](QuantParams& b) { b.bits = 8; }));
  EXPECT_TRUE(differs([](QuantParams& b) { b.group_size = 64; }));
  EXPECT_TRUE(differs([](QuantParams& b) { b.mapping = Mapping::asymmetric; }));
  EXPECT_TRUE(differs([](QuantParams& b) { b.rounding = Rounding::nearest_away; }));
  EXPECT_TRUE(differs([](QuantParams& b) { b.range = RangeMethod::mse; }));
  EXPECT_TRUE(differs([](QuantParams& b) { b.clip_ratio = 0.5; }));
  EXPECT_TRUE(differs([](QuantParams& b) { b.clip_percentile = 99.0; }));
  EXPECT_TRUE(differs([](QuantParams& b) { b.non_finite = NonFinitePolicy::propagate; }));
  EXPECT_TRUE(differs([](QuantParams& b) { b.partial_last_group = true; }));
  EXPECT_TRUE(differs([](QuantParams& b) { b.version = 2; }));
}

// ---- JSON --------------------------------------------------------------------------------------

std::string nested_arrays(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

TEST(JsonText, NestingLimitAndErrors) {
  // kMaxJsonDepth levels parse; one more is refused while parsing. 200,000 levels (400 KB) used to parse and then
  // overflow the stack in the first copy (fuzzing: `qeval check` died with SIGSEGV on such a file).
  EXPECT_NO_THROW((void)parse_json_text(nested_arrays(kMaxJsonDepth)));
  for (const size_t depth : {size_t(kMaxJsonDepth) + 1, size_t(200000)}) {
    try {
      (void)parse_json_text(nested_arrays(depth));
      ADD_FAILURE() << depth;
    } catch (const std::invalid_argument& e) {
      EXPECT_STREQ(e.what(), "JSON nested deeper than 128 levels");
    }
  }
  const nlohmann::json j = parse_json_text(R"({"a": [1, {"b": null}], "c": "x"})");
  EXPECT_EQ(j["a"][1].size(), 1u);
  EXPECT_THROW((void)parse_json_text("{\"a\": "), std::invalid_argument);
  EXPECT_THROW((void)parse_json_text("1e99999"), std::invalid_argument);  // out_of_range 406, not parse_error
}

TEST(QuantParamsJson, RoundTripsEveryField) {
  QuantParams p;
  p.bits = 3;
  p.group_size = kPerTensor;
  p.mapping = Mapping::asymmetric;
  p.rounding = Rounding::nearest_away;
  p.range = RangeMethod::percentile;
  p.clip_ratio = 0.8125;
  p.clip_percentile = 99.9;  // not exact in binary: must still round-trip bit-exactly
  p.non_finite = NonFinitePolicy::propagate;
  p.partial_last_group = true;
  const nlohmann::json j = p;
  EXPECT_EQ(j.size(), 10u);
  EXPECT_EQ(j.at("mapping"), "asymmetric");
  EXPECT_EQ(j.at("version"), QuantParams::kVersion);
  const QuantParams back = j.get<QuantParams>();
  EXPECT_EQ(back, p);
  // Through text as well (what a report file does).
  EXPECT_EQ(params_from_json_text(j.dump()), p);
  EXPECT_EQ(params_from_json_text(nlohmann::json(QuantParams{}).dump(2)), QuantParams{});
}

TEST(QuantParamsJson, MissingKeysKeepDefaults) {
  const QuantParams p = params_from_json_text(R"({"bits": 8, "group_size": 0})");
  QuantParams want;
  want.bits = 8;
  want.group_size = kPerRow;
  EXPECT_EQ(p, want);
  EXPECT_EQ(params_from_json_text(R"({"mapping": "asym"})").mapping, Mapping::asymmetric);
}

TEST(QuantParamsJson, RejectsUnknownKeysWrongTypesBadValues) {
  auto msg = [](const std::string& text) { return message_of([&] { params_from_json_text(text); }); };
  {
    const std::string m = msg(R"({"bits": 4, "groupsize": 128})");
    expect_contains(m, "unknown key \"groupsize\"");
    expect_contains(m, "group_size");  // the accepted keys are listed
  }
  expect_contains(msg(R"({"bits": "4"})"), "\"bits\" must be an integer, got string");
  expect_contains(msg(R"({"bits": 4.5})"), "\"bits\" must be an integer");
  expect_contains(msg(R"({"group_size": true})"), "\"group_size\" must be an integer, got boolean");
  expect_contains(msg(R"({"clip_ratio": "0.9"})"), "\"clip_ratio\" must be a number");
  expect_contains(msg(R"({"mapping": 1})"), "\"mapping\" must be a string");
  expect_contains(msg(R"({"mapping": "symetric"})"), "\"mapping\"");
  expect_contains(msg(R"({"rounding": "up"})"), "\"rounding\"");
  expect_contains(msg(R"({"range": "max"})"), "\"range\"");
  expect_contains(msg(R"({"non_finite": "ignore"})"), "\"non_finite\"");
  expect_contains(msg(R"({"bits": 9})"), "\"bits\" = 9");
  expect_contains(msg(R"({"clip_ratio": 1.5})"), "clip_ratio");
  expect_contains(msg(R"({"group_size": -7})"), "group_size");
  expect_contains(msg(R"({"version": 2})"), "\"version\" is 2 but this build reads 1");
  expect_contains(msg(R"({"version": "1"})"), "\"version\" must be an integer");
  expect_contains(msg(R"([4, 128])"), "must be an object");
  expect_contains(msg(R"({"bits": 4,)"), "not valid JSON");
  expect_contains(msg(R"({"clip_ratio": 1e99999})"), "not valid JSON");  // out_of_range, not parse_error (fuzzing)
  expect_contains(msg("{\"bits\": " + nested_arrays(100000) + "}"), "nested deeper than 128 levels");
  // Integers are accepted where a number is expected.
  EXPECT_EQ(params_from_json_text(R"({"clip_ratio": 1})").clip_ratio, 1.0);
}

}  // namespace
}  // namespace qeval::quant
