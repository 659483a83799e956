// eval/cli/cmd_inspect.cpp — `qeval inspect FILE|DIR [--json]`: what a model file holds and what qeval does with it (eval/model/inspect.hpp).
#include <iostream>
#include <memory>
#include <string>

#include "eval/cli/command.hpp"
#include "eval/model/inspect.hpp"

namespace qeval::cli {

namespace {
struct InspectArgs {
  std::string path;
  bool json = false;
};
}  // namespace

Command add_inspect_command(CLI::App& app, const Invocation&) {
  auto a = std::make_shared<InspectArgs>();
  CLI::App* c = app.add_subcommand(
      "inspect",
      "What a model holds, from its headers only (fast on any size): architecture, hyper-parameters, tokenizer,\n"
      "tensors (name, shape, type, bytes), bits per weight by type, and what qeval will and will not support and why");
  c->add_option("path", a->path, "A GGUF file, a .safetensors file (config.json beside it) or a checkpoint directory")
      ->required();
  c->add_flag("--json", a->json, "Print the report as JSON");
  return {c, [a] {
            const model::InspectReport r = model::inspect_model(a->path);
            if (a->json) std::cout << model::inspect_to_json(r).dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
            else std::cout << model::inspect_to_text(r);
            return 0;
          }};
}

}  // namespace qeval::cli
