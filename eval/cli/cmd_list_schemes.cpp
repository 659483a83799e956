// eval/cli/cmd_list_schemes.cpp — `qeval list-schemes`: the registered schemes (schemes/schemes.def), as text or JSON.
#include <iostream>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "eval/cli/command.hpp"
#include "schemes/scheme.hpp"

namespace qeval::cli {

namespace {

std::string group_text(int64_t g) {
  if (g == 0) return "0 (per row)";
  if (g == -1) return "-1 (per tensor)";
  return std::to_string(g);
}

void list_schemes(bool as_json) {
  const auto& list = schemes::scheme_list();
  if (as_json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& s : list)
      j.push_back({{"id", s.id},
                   {"target", schemes::to_string(s.target)},
                   {"default_bits", s.default_bits},
                   {"default_group_size", s.default_group_size},
                   {"summary", s.summary},
                   {"options", s.options}});
    std::cout << j.dump(2) << "\n";
    return;
  }
  for (const auto& s : list)
    std::cout << s.id << "\n"
              << "    target:        " << schemes::to_string(s.target) << "\n"
              << "    default bits:  " << s.default_bits << "\n"
              << "    default group: " << group_text(s.default_group_size) << "\n"
              << "    summary:       " << s.summary << "\n"
              << "    options:       " << (*s.options ? s.options : "(none)") << "\n";
}

}  // namespace

Command add_list_schemes_command(CLI::App& app, const Invocation&) {
  auto as_json = std::make_shared<bool>(false);
  CLI::App* c = app.add_subcommand("list-schemes", "List the registered quantization schemes (schemes/schemes.def)");
  c->add_flag("--json", *as_json, "Print the list as JSON");
  return {c, [as_json] {
            list_schemes(*as_json);
            return 0;
          }};
}

}  // namespace qeval::cli
