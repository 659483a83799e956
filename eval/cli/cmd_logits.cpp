// eval/cli/cmd_logits.cpp — `qeval logits --model FILE|DIR --ids|--ids-file|--text [--out F.safetensors] [--top-k K]`:
// the fp32 logits of a model on given tokens (eval/model/logits_dump.hpp), to compare a port with HF or llama.cpp.
#include <cstdio>
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "eval/cli/command.hpp"
#include "eval/cli/model_inputs.hpp"

#if QEVAL_HAVE_MODEL
#include "eval/model/checkpoint.hpp"
#include "eval/model/llama.hpp"
#include "eval/model/logits_dump.hpp"
#endif

namespace qeval::cli {

namespace {

struct LogitsArgs {
  std::string model, ids, ids_file, text, out;
  int64_t top_k = 5;
  int threads = 0;
  bool no_bos = false;
};

#if QEVAL_HAVE_MODEL
std::vector<int64_t> input_ids(const LogitsArgs& a) {
  const int given = !a.ids.empty() + !a.ids_file.empty() + !a.text.empty();
  if (given != 1) throw std::invalid_argument("logits: give the tokens with exactly one of --ids, --ids-file, --text");
  if (!a.ids.empty()) return model::parse_token_ids(a.ids, "--ids");
  if (!a.ids_file.empty()) return model::parse_token_ids(read_input_file(a.ids_file, "--ids-file"), a.ids_file);
  tokenizer::EncodeOptions o;
  if (a.no_bos) o.add_bos = false;
  o.parse_special = true;
  const std::vector<int32_t> ids = tokenizer_for_model(a.model).encode(a.text, o);
  if (ids.empty()) throw std::invalid_argument("logits: --text encodes to no tokens");
  return {ids.begin(), ids.end()};
}

// One line per position: the id and the top-k "id:logit" pairs.
void print_top_k(const model::LogitsDump& d) {
  const int64_t K = d.top_k;
  std::cout << "# pos\tid\ttop-" << K << " (id:logit)\n";
  for (size_t t = 0; t < d.ids.size(); ++t) {
    std::cout << t << "\t" << d.ids[t] << "\t";
    for (int64_t k = 0; k < K; ++k) {
      char buf[64];
      const size_t i = t * static_cast<size_t>(K) + static_cast<size_t>(k);
      std::snprintf(buf, sizeof buf, "%s%lld:%.6g", k ? " " : "", static_cast<long long>(d.topk_ids[i]),
                    static_cast<double>(d.topk_logits[i]));
      std::cout << buf;
    }
    std::cout << "\n";
  }
}

int run_logits(const LogitsArgs& a) {
  const std::vector<int64_t> ids = input_ids(a);
  model::configure_threads(a.threads);
  model::LlamaModel m(model::load_checkpoint(a.model));
  const model::LogitsDump d = model::compute_logits(m, ids, a.top_k);
  std::cout << "# " << a.model << " (" << m.config().arch << ", " << m.content_hash() << "): " << d.logits.size(0)
            << " positions × " << d.logits.size(1) << " logits\n";
  print_top_k(d);
  if (!a.out.empty()) {
    model::save_logits_safetensors(d, a.out, m, a.model);
    std::cout << "# wrote " << a.out << " (logits F32 [T, V], ids, topk_ids, topk_logits)\n";
  }
  return 0;
}
#else
int run_logits(const LogitsArgs&) {
  throw std::runtime_error("logits: this qeval was built without the LibTorch forward (configure with -DQEVAL_TORCH=ON)");
}
#endif

}  // namespace

Command add_logits_command(CLI::App& app, const Invocation&) {
  auto a = std::make_shared<LogitsArgs>();
  CLI::App* c = app.add_subcommand(
      "logits",
      "The fp32 logits (and top-k per position) of a model on given tokens, as one sequence from position 0;\n"
      "saved as safetensors with --out (logits [T, V], ids, topk_ids, topk_logits) to compare with HF or llama.cpp.\n"
      "Checkpoints without a tokenizer work when ids are given");
  c->add_option("--model", a->model, "GGUF file, .safetensors file or checkpoint directory (config.json)")->required();
  c->add_option("--ids", a->ids, "Token ids, e.g. 1,2,3");
  c->add_option("--ids-file", a->ids_file, "A file of token ids separated by commas, spaces or newlines");
  c->add_option("--text", a->text, "Text, encoded with the model's tokenizer (BOS as the tokenizer adds it)");
  c->add_flag("--no-bos", a->no_bos, "With --text: do not add BOS");
  c->add_option("--out", a->out, "Write the logits to this .safetensors file");
  c->add_option("--top-k", a->top_k, "Top-k per position to print and save (0: none)")->capture_default_str();
  c->add_option("--threads", a->threads, "ATen threads (0: OMP_NUM_THREADS, else all cores)")->capture_default_str();
  return {c, [a] { return run_logits(*a); }};
}

}  // namespace qeval::cli
