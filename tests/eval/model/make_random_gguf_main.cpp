// tests/eval/model/make_random_gguf_main.cpp — qeval_make_random_gguf: CLI over random_gguf.hpp for benchmarks.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>

#include "tests/eval/model/random_gguf.hpp"

namespace {

const char* const kUsage =
    "usage: qeval_make_random_gguf --out FILE [--preset 460m|7b] [--d-model N] [--layers N] [--ff N] [--heads N]\n"
    "       [--kv-heads N] [--vocab N] [--type F32|F16|BF16] [--tied] [--seed N] [--gpt2-dir DIR]\n";

int64_t to_int(const std::string& flag, const std::string& v) {
  char* end = nullptr;
  const long long x = std::strtoll(v.c_str(), &end, 10);
  if (v.empty() || *end != '\0') throw std::invalid_argument(flag + " '" + v + "' is not an integer");
  return x;
}

// Applies one "--flag value" pair; false when the flag is unknown.
bool apply(qeval::test::RandomGgufSpec& s, const std::string& f, const std::string& v) {
  if (f == "--preset") s = qeval::test::random_gguf_preset(v);
  else if (f == "--d-model") s.d_model = to_int(f, v);
  else if (f == "--layers") s.n_layers = to_int(f, v);
  else if (f == "--ff") s.d_ff = to_int(f, v);
  else if (f == "--heads") s.n_heads = to_int(f, v);
  else if (f == "--kv-heads") s.n_kv_heads = to_int(f, v);
  else if (f == "--vocab") s.vocab = to_int(f, v);
  else if (f == "--type") s.type = v;
  else if (f == "--seed") s.seed = static_cast<uint64_t>(to_int(f, v));
  else return false;
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  qeval::test::RandomGgufSpec s;
  std::string out, gpt2_dir = std::string(QEVAL_SOURCE_DIR) + "/data/gpt2-bpe";
  try {
    for (int i = 1; i < argc; ++i) {
      const std::string f = argv[i];
      if (f == "--tied") { s.tied = true; continue; }
      if (i + 1 >= argc) throw std::invalid_argument(f + " needs a value");
      const std::string v = argv[++i];
      if (f == "--out") out = v;
      else if (f == "--gpt2-dir") gpt2_dir = v;
      else if (!apply(s, f, v)) throw std::invalid_argument("unknown option " + f);
    }
    if (out.empty()) throw std::invalid_argument("--out FILE is required");
    qeval::test::write_random_gguf(s, out, gpt2_dir);
    std::printf("%s: %lld parameters, %s\n", out.c_str(),
                static_cast<long long>(qeval::test::random_gguf_parameters(s)), s.type.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qeval_make_random_gguf: error: %s\n%s", e.what(), kUsage);
    return 2;
  }
  return 0;
}
