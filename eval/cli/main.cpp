// eval/cli/main.cpp — the `qeval` command line (CLI11): sweep, report, diff, check, merge, list-schemes.
//
// Exit status: 0 success; 1 a run could not be done (bad input data, file, scheme config, malformed report)
// or `qeval check` found a regression; 2 a usage error (unknown option, bad value); 130 a sweep was
// interrupted (SIGINT/SIGTERM; resumable). Every error is ONE line on stderr, "qeval: error: ...".
#include <CLI/CLI.hpp>

#include <exception>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <new>
#include <string>
#include <vector>

#include "eval/sweep/sweep.hpp"
#include "eval/inputs/synthetic.hpp"
#if QEVAL_HAVE_TRAIN
#include "eval/train/train_cli.hpp"
#endif
#include "eval/report/check.hpp"
#include "eval/report/diff.hpp"
#include "eval/report/html.hpp"
#include "eval/report/merge.hpp"
#include "eval/report/report.hpp"
#include "eval/report/schema.hpp"
#include "quant/rng.hpp"
#include "schemes/scheme.hpp"

namespace qeval::cli {  // eval/cli/cmd_devices.cpp
CLI::App* add_devices_command(CLI::App& app);
int run_devices_command();
CLI::App* add_train_command(CLI::App& app, int argc, char** argv);  // eval/cli/cmd_train.cpp
int run_train_command();
}  // namespace qeval::cli

namespace {

// One line, whatever the message holds.
void print_error(const std::string& msg) {
  std::string line;
  for (char c : msg) {
    if (c == '\n' || c == '\r') {
      if (!line.empty() && line.back() != ' ') line += "; ";
    } else {
      line += c;
    }
  }
  while (!line.empty() && (line.back() == ' ' || line.back() == ';')) line.pop_back();
  std::cerr << "qeval: error: " << line << std::endl;
}

std::string group_text(int64_t g) {
  if (g == 0) return "0 (per row)";
  if (g == -1) return "-1 (per tensor)";
  return std::to_string(g);
}

void list_schemes(bool as_json) {
  const auto& list = qeval::schemes::scheme_list();
  if (as_json) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& s : list)
      j.push_back({{"id", s.id},
                   {"target", qeval::schemes::to_string(s.target)},
                   {"default_bits", s.default_bits},
                   {"default_group_size", s.default_group_size},
                   {"summary", s.summary},
                   {"options", s.options}});
    std::cout << j.dump(2) << "\n";
    return;
  }
  for (const auto& s : list) {
    std::cout << s.id << "\n"
              << "    target:        " << qeval::schemes::to_string(s.target) << "\n"
              << "    default bits:  " << s.default_bits << "\n"
              << "    default group: " << group_text(s.default_group_size) << "\n"
              << "    summary:       " << s.summary << "\n"
              << "    options:       " << (*s.options ? s.options : "(none)") << "\n";
  }
}

int qeval_main(int argc, char** argv) {
  std::vector<std::string> command_line(argv, argv + argc);

  CLI::App app{
      "qeval — quantization research toolkit: quantize tensors with pluggable schemes and measure the error\n"
      "against the information-theoretic bound (6.02 dB per bit), explaining the gap."};
  app.name("qeval");
  app.set_version_flag("--version", qeval::report::version_string(), "Print the version, git SHA and build, then exit");
  app.require_subcommand(1);
  app.footer(
      "Examples:\n"
      "  qeval sweep --group-sizes 32,128,256\n"
      "  qeval sweep --scheme rtn,nf4,fp4 --bits 4 --group-sizes 64 --input student-t\n"
      "  qeval sweep --config configs/sweep-ci.json --out cur.json --jobs 2\n"
      "  qeval report cur.json -o cur.html\n"
      "  qeval diff old.json cur.json\n"
      "  qeval check --baseline reports/baseline/ci.json cur.json\n"
      "  qeval merge part-*.json -o merged.json\n"
      "  qeval list-schemes\n"
      "Run 'qeval <subcommand> --help' for the subcommand's options.");

  // ---- sweep
  qeval::sweep::SweepOptions o;
  o.seed = qeval::seed_from_env(qeval::kDefaultSeed);
  std::string schemes_text = "rtn";
  std::vector<std::string> bits_text, groups_text, mapping_text;
  bool sym = false, asym = false, no_report = false;
  std::string range_text = "minmax", rounding_text = "nearest_even", non_finite_text = "error";

  CLI::App* sweep = app.add_subcommand(
      "sweep",
      "Quantize a model (default: the embedded default model on WikiText-2; perplexity, delta-ppl, KL and top-1\n"
      "against fp) or a tensor (--input: MSE, SQNR vs the 6.02*b bound and the gap's causes, max-abs error,\n"
      "cosine) with every combination of scheme x bits x group size x mapping, print a table and write a\n"
      "versioned JSON report.");
  sweep->add_option("--scheme", schemes_text,
                    "Comma-separated scheme ids (default: rtn). 'qeval list-schemes' lists them.")
      ->type_name("LIST");
  sweep->add_option("--bits", bits_text,
                    "Bit widths, comma-separated (default: each scheme's own, e.g. rtn 4). Integer formats: 2..8.")
      ->delimiter(',')
      ->type_name("LIST");
  sweep->add_option("--group-sizes", groups_text,
                    "Group sizes along the row, comma-separated (default: each scheme's own, e.g. rtn 128).\n"
                    "0 or 'row' = one group per row (per channel/token), -1 or 'tensor' = one per tensor.\n"
                    "Each size must divide the row length. Example: --group-sizes 32,128,256")
      ->delimiter(',')
      ->type_name("LIST");
  sweep->add_flag("--sym", sym, "Symmetric mapping: scale = max|x|/(2^(b-1)-1), zero point 0 (the default)");
  sweep->add_flag("--asym", asym, "Asymmetric mapping: scale = (max-min)/(2^b-1) with a zero point");
  sweep->add_option("--mapping", mapping_text, "Mappings, comma-separated: sym, asym (e.g. --mapping sym,asym)")
      ->delimiter(',')
      ->type_name("LIST");
  sweep->add_option("--range", range_text,
                    "How each group's range is chosen: minmax (default), percentile, mse (clipping search)");
  sweep->add_option("--clip-ratio", o.clip_ratio,
                    "Shrink the minmax range by this factor in (0, 1] (default 1; upper bound of the mse search)");
  sweep->add_option("--percentile", o.clip_percentile, "Percentile of |x| for --range percentile (default 99.99)");
  sweep->add_option("--rounding", rounding_text, "nearest_even (default), nearest_away, toward_zero");
  sweep->add_flag("--partial-groups", o.partial_groups,
                  "Allow a shorter last group where the group size does not divide the row length\n"
                  "(e.g. 576 columns in g128: 4 x 128 + 64; QuantParams::partial_last_group)");
  sweep->add_option("--option", o.options,
                    "Scheme option key=value, repeatable; 'scheme.key=value' applies to one scheme only\n"
                    "(e.g. --option fp4.codebook=bnb). Options per scheme: 'qeval list-schemes'.")
      ->type_name("KEY=VALUE");
  sweep->add_option("--non-finite", non_finite_text,
                    "NaN/Inf in the input: error (default: stop with the element's position) or propagate\n"
                    "(quantize the finite values, NaN/Inf dequantize to NaN and are left out of the metrics)");
  std::string model_text;
  sweep->add_option("--model", model_text,
                    "Evaluate a quantized model instead of a tensor: 'default' (the embedded default model,\n"
                    "models/qeval-sotu-4l256, also used when no tensor input option is given) or a .gguf /\n"
                    "safetensors path (e.g. models/external/SmolLM2-135M-Instruct.Q4_1.gguf). Reports perplexity,\n"
                    "delta-ppl, KL and top-1 against the fp model under a pinned protocol (docs/model-eval.md)");
  sweep->add_option("--protocol", o.protocol,
                    "Evaluation protocol of model runs: configs/protocol-*.json (default: the one configs/default-model.json\n"
                    "names for the embedded model, 32 windows of its held-out text: configs/protocol-sotu-heldout-512-32.json;\n"
                    "WikiText-2: configs/protocol-wikitext2-512-32chunks.json)");
  sweep->add_option("--activation", o.activations,
                    "Model runs: activation schemes, comma-separated ('none' = fp activations), e.g.\n"
                    "--activation none,dynamic_per_token")
      ->delimiter(',')
      ->type_name("LIST");
  sweep->add_option("--max-windows", o.max_windows, "Model runs: evaluate only the first N protocol windows");
  sweep->add_flag("--lambada", o.lambada, "Model runs: also LAMBADA accuracy (when the protocol has a lambada section)");
  sweep->add_option("--blame-windows", o.blame_windows,
                    "Model runs: per-layer blame (each layer quantized alone) on N windows (default 0: off)");
  sweep->add_option("--input", o.input,
                    "gaussian (default), laplace, student-t, uniform, outliers — synthetic, unit variance —\n"
                    "or a file: .npy (float32/float16, C order, 1-D or 2-D) or raw little-endian .f32 (needs --shape)");
  auto* rows_opt = sweep->add_option("--rows", o.rows, "Rows of a synthetic input (default 1024)");
  auto* cols_opt = sweep->add_option(
      "--cols", o.cols, "Columns of a synthetic input: the innermost axis groups run along (default 4096)");
  sweep->add_option("--shape", o.raw_shape, "Shape of a raw .f32 input file: ROWSxCOLS, e.g. 4096x11008");
  sweep->add_option("--seed", o.seed,
                    "Seed of the synthetic input (default " + std::to_string(qeval::kDefaultSeed) +
                        ", or $QEVAL_SEED); recorded in the report");
  sweep->add_option("--nu", o.student_nu, "Degrees of freedom of --input student-t (default 3: heavy tails)");
  sweep->add_option("--outlier-channels", o.outlier_channels,
                    "Columns scaled up by --input outliers (default 8, chosen from the seed)");
  sweep->add_option("--outlier-scale", o.outlier_scale,
                    "Factor of the outlier columns (default 20, as LLM.int8 reports for LLM activations)");
  sweep->add_option("--out", o.out, "Report path (default ./qeval-report.json); written atomically");
  sweep->add_flag("--no-report", no_report, "Print the table only; write no report (and keep no journal)");
  std::string config_path, shard_text, progress_text = "auto", inject_text;
  std::vector<std::string> backend_text;
  sweep->add_option("--config", config_path,
                    "Sweep config JSON (configs/<name>.json: sweeps[] of axes, seed, protocol; see\n"
                    "docs/sweeps.md). Replaces the axis options (--scheme, --bits, --input, ...)");
  sweep->add_option("--backend", backend_text, "Backends, comma-separated: cpu (default), opencl (when built in)")
      ->delimiter(',')
      ->type_name("LIST");
  sweep->add_flag("--resume", o.resume,
                  "Continue an interrupted sweep: skip every run already in the journal (<out>.jsonl) or in <out>");
  sweep->add_option("--jobs,-j", o.jobs, "Runs executed in parallel threads (default 1; the report is identical)")
      ->check(CLI::Range(1, 1024));
  sweep->add_option("--shard", shard_text,
                    "Run only shard i of N (0-based): runs i, i+N, ... of the plan; merge the parts with 'qeval merge'\n"
                    "(scripts/slurm/ submits one shard per Slurm array task)")
      ->type_name("i/N");
  sweep->add_option("--progress", progress_text,
                    "auto (default: a bar with ETA on a terminal, plain lines otherwise), bar, lines, none");
  sweep->add_flag("--dry-run", o.dry_run,
                  "Validate the sweep and list its runs (id and name; with --shard, that shard's), execute nothing");
  // Test-only fault injection: executes with a worse rounding while the run specs (and ids) stay the same,
  // so `qeval check` must catch it. Hidden from --help.
  sweep->add_option("--inject-rounding", inject_text)->group("");
  sweep->add_option("--inject-scale-error", o.inject_scale_error)->group("");
  sweep->add_flag("--twin", o.twin,
                  "Model runs also run their reassociation twin: the same run with every linear product summed in\n"
                  "another order, compared token by token - how far float summation order alone moves KL and dppl\n"
                  "(what another CPU would show); the CI gate derives its tolerances from it (docs/regression-gate.md)");
  sweep->footer(
      "Examples:\n"
      "  qeval sweep --group-sizes 32,128,256           rtn 4-bit sym on the embedded default model and its\n"
      "                                                 held-out text: ppl, delta-ppl, KL, top-1, ranked by KL\n"
      "  qeval sweep --input gaussian --group-sizes 32,128,256   the same on a 1024x4096 N(0,1) tensor (SQNR)\n"
      "  qeval sweep --model models/external/SmolLM2-135M-Instruct.Q4_1.gguf --group-sizes 32,64 \\\n"
      "      --scheme rtn,gptq,awq --bits 3,4 --protocol configs/protocol-wikitext2-512-quick.json\n"
      "  qeval sweep --bits 2,3,4,8 --mapping sym,asym  8 runs\n"
      "  qeval sweep --scheme rtn,nf4 --bits 4 --group-sizes 64 --input outliers\n"
      "  qeval sweep --scheme fp4 --option codebook=bnb --input weights.npy --out fp4.json\n"
      "  qeval sweep --input w.f32 --shape 4096x4096 --group-sizes 0\n"
      "  qeval sweep --config configs/sweep-ci.json --out r.json --jobs 2      (Ctrl-C, then add --resume)\n"
      "Table columns: SQNR and its bound (6.02*b), grid-adjusted figure, distribution-aware expectation and the\n"
      "gap split into grid + range + other losses (docs/metrics.md); the report schema is docs/report-schema.md;\n"
      "configs, resume, --jobs, shards and Slurm: docs/sweeps.md.");

  // ---- list-schemes
  bool list_json = false;
  CLI::App* ls = app.add_subcommand("list-schemes", "List the registered quantization schemes (schemes/schemes.def)");
  ls->add_flag("--json", list_json, "Print the list as JSON");

  // ---- report
  std::string report_in, report_out;
  CLI::App* rep = app.add_subcommand(
      "report", "Render a report as one self-contained HTML page (tables; SQNR vs bits with the 6.02*b line;\n"
                "Pareto fronts of bits/weight vs error; per-layer blame). Chart.js is inlined: no network needed.");
  rep->add_option("report", report_in, "Report JSON (qeval sweep/merge output)")->required();
  rep->add_option("-o,--out", report_out, "HTML file to write (default: the report's name with .html)");

  // ---- diff
  std::string diff_a, diff_b;
  bool diff_json = false;
  CLI::App* dif = app.add_subcommand(
      "diff", "What changed between two reports: runs added/removed, metric deltas per run id,\n"
              "config/protocol/environment differences");
  dif->add_option("a", diff_a, "Old report")->required();
  dif->add_option("b", diff_b, "New report")->required();
  dif->add_flag("--json", diff_json, "Print the differences as JSON");

  // ---- check
  std::string check_base, check_cur;
  bool check_json = false, check_update = false;
  double check_alpha = 0.01;
  bool check_weights = false;
  CLI::App* chk = app.add_subcommand(
      "check", "Regression gate: fail (exit 1) when an error metric (SQNR, MSE, KL, dppl) of a run is worse than in\n"
               "the baseline by more than a tolerance derived from what can legitimately differ (float summation\n"
               "order: measured by the runs' reassociation twins; input samples); names the layers whose quantized\n"
               "weights changed (fingerprints)\n"
               "(docs/regression-gate.md). --update-baseline replaces the baseline with the current report.");
  chk->add_option("--baseline", check_base, "Baseline report (reports/baseline/<name>.json)")->required();
  chk->add_option("current", check_cur, "Current report")->required();
  chk->add_flag("--json", check_json, "Print the verdict as JSON");
  chk->add_flag("--update-baseline", check_update,
                "Write the current report (validated, marked with who/when/from what) over the baseline instead");
  chk->add_flag("--fail-on-weight-change", check_weights,
                "Also fail when a model run's quantized weights changed (fingerprints differ) although they do not\n"
                "depend on float summation order (its twin kept them): for changes that must not move one code");
  chk->add_option("--alpha", check_alpha,
                  "Family-wise false-alarm probability of comparisons across input samples / model runs (default 0.01)")
      ->check(CLI::Range(1e-12, 0.5));

  // ---- merge
  std::vector<std::string> merge_in;
  std::string merge_out;
  bool merge_partial = false;
  CLI::App* mrg = app.add_subcommand(
      "merge", "Merge the reports of one sweep's shards (qeval sweep --shard i/N, Slurm array tasks) into one\n"
               "report in plan order; checks they come from the same sweep and that no run is missing");
  mrg->add_option("parts", merge_in, "Shard reports")->required();
  mrg->add_option("-o,--out", merge_out, "Merged report path")->required();
  mrg->add_flag("--allow-partial", merge_partial, "Write the merged report even when planned runs are missing");

  CLI::App* devices = qeval::cli::add_devices_command(app);
  CLI::App* train = qeval::cli::add_train_command(app, argc, argv);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);  // --help, --version
    std::string hint = "qeval --help";
    for (CLI::App* sc : {sweep, rep, dif, chk, mrg, ls})
      if (sc->parsed()) hint = "qeval " + sc->get_name() + " --help";
    print_error(std::string(e.what()) + " (see '" + hint + "')");
    return 2;
  }

  if (ls->parsed()) {
    list_schemes(list_json);
    return 0;
  }
  if (devices->parsed()) return qeval::cli::run_devices_command();
  if (train->parsed()) return qeval::cli::run_train_command();
  if (sweep->parsed()) {
    // Usage errors in option values: exit status 2.
    try {
      {
        std::vector<std::string> items;
        std::string cur;
        for (char c : schemes_text + ",") {
          if (c == ',') {
            if (!cur.empty()) items.push_back(cur);
            cur.clear();
          } else {
            cur += c;
          }
        }
        o.schemes = items;
      }
      o.bits = qeval::sweep::parse_bits_list(bits_text);
      o.group_sizes = qeval::sweep::parse_group_list(groups_text);
      o.mappings = qeval::sweep::parse_mapping_list(mapping_text);
      if (sym) o.mappings.push_back(qeval::quant::Mapping::symmetric);
      if (asym) o.mappings.push_back(qeval::quant::Mapping::asymmetric);
      o.range = qeval::quant::parse_range_method(range_text);
      o.rounding = qeval::quant::parse_rounding(rounding_text);
      o.non_finite = qeval::quant::parse_non_finite_policy(non_finite_text);
      o.backends = backend_text;
      o.progress = qeval::sweep::parse_progress_mode(progress_text);
      if (!inject_text.empty()) o.inject_rounding = qeval::quant::parse_rounding(inject_text);
      if (!shard_text.empty()) {
        int i = 0, n = 0;
        qeval::sweep::parse_shard(shard_text, &i, &n);
        o.shard = shard_text;
      }
      if (!config_path.empty()) {
        o.config_path = config_path;
        for (const char* opt : {"--scheme", "--bits", "--group-sizes", "--sym", "--asym", "--mapping", "--range",
                                "--clip-ratio", "--percentile", "--rounding", "--option", "--non-finite", "--input",
                                "--rows", "--cols", "--shape", "--nu", "--outlier-channels", "--outlier-scale", "--backend",
                                "--seed", "--partial-groups"})
          if (sweep->count(opt) > 0)
            throw std::invalid_argument(std::string(opt) + " cannot be combined with --config (put the axis in the config)");
      }
      if (o.resume && no_report) throw std::invalid_argument("--resume needs a report (and its journal); drop --no-report");
    } catch (const std::exception& e) {
      print_error(std::string(e.what()) + " (see 'qeval sweep --help')");
      return 2;
    }
    o.shape_given = rows_opt->count() > 0 || cols_opt->count() > 0;
    // Which kind of run: a model when --model is given, or when no tensor option is (then the embedded default
    // model, if this qeval has the model evaluator); a tensor otherwise.
    {
      bool tensor_opt = false;
      for (const char* opt : {"--input", "--rows", "--cols", "--shape", "--nu", "--outlier-channels", "--outlier-scale",
                              "--backend", "--range", "--clip-ratio", "--percentile", "--rounding", "--non-finite"})
        tensor_opt = tensor_opt || sweep->count(opt) > 0;
      const bool model_opt = !model_text.empty() || sweep->count("--protocol") > 0 ||
                             sweep->count("--activation") > 0 || sweep->count("--max-windows") > 0 ||
                             sweep->count("--lambada") > 0 || sweep->count("--blame-windows") > 0;
      if (!model_text.empty() && tensor_opt) {
        print_error("--model evaluates a model; --input, --rows, --backend, --range ... describe tensor runs "
                    "(use one or the other; see 'qeval sweep --help')");
        return 2;
      }
      if (model_opt && tensor_opt) {
        print_error("--protocol/--activation/--max-windows/--lambada/--blame-windows apply to model runs; drop "
                    "the tensor options (--input, --rows, ...) or the model ones");
        return 2;
      }
#if QEVAL_HAVE_MODEL_RUNS
      if (model_text.empty() && !tensor_opt && o.config_path.empty()) model_text = "default";
#else
      if (!model_text.empty() || model_opt) {
        print_error("this qeval was built without the model evaluator (configure with -DQEVAL_TORCH=ON); tensor "
                    "runs work: e.g. --input gaussian");
        return 2;
      }
#endif
      if (!o.config_path.empty() && (model_opt || !model_text.empty())) {
        print_error("--model/--protocol/... cannot be combined with --config (put them in the config)");
        return 2;
      }
      o.model = model_text;
    }
    o.write_report = !no_report;
    o.extra_libraries["cli11"] = CLI11_VERSION;
    o.handle_signals = true;
    return qeval::sweep::run_sweep(o, command_line, std::cout, std::cerr);
  }
  if (rep->parsed()) {
    const nlohmann::json r = qeval::report::load_report(report_in);
    if (report_out.empty()) {
      report_out = report_in;
      if (report_out.size() > 5 && report_out.compare(report_out.size() - 5, 5, ".json") == 0)
        report_out.resize(report_out.size() - 5);
      report_out += ".html";
    }
    std::string where;
    const std::string js = qeval::report::chartjs_source(&where);
    std::string title = report_in.substr(report_in.find_last_of('/') == std::string::npos ? 0 : report_in.find_last_of('/') + 1);
    const std::string html = qeval::report::render_html(r, title, js);
    const std::string tmp = report_out + ".tmp";
    {
      std::ofstream f(tmp, std::ios::binary);
      if (!f) throw std::runtime_error("cannot write '" + report_out + "' (cannot create '" + tmp + "')");
      f << html;
      if (!f.flush()) throw std::runtime_error("cannot write '" + tmp + "'");
    }
    if (std::rename(tmp.c_str(), report_out.c_str()) != 0) throw std::runtime_error("cannot rename '" + tmp + "' to '" + report_out + "'");
    std::cout << "report: " << r["runs"].size() << " run(s) rendered to " << report_out << " (" << html.size() / 1024
              << " KiB; Chart.js " << where << ")\n";
    return 0;
  }
  if (dif->parsed()) {
    const nlohmann::json a = qeval::report::load_report(diff_a), b = qeval::report::load_report(diff_b);
    const nlohmann::json d = qeval::report::diff_reports(a, b, diff_a, diff_b);
    if (diff_json) std::cout << d.dump(2) << "\n";
    else std::cout << qeval::report::format_diff(d);
    return 0;
  }
  if (chk->parsed()) {
    const nlohmann::json cur = qeval::report::load_report(check_cur);
    if (check_update) {
      qeval::report::write_json_atomic(check_base, qeval::report::as_baseline(cur, check_cur));
      std::cout << "qeval check: baseline " << check_base << " replaced by " << check_cur << " (" << cur["runs"].size()
                << " runs, git " << cur["producer"].value("git_sha", nlohmann::json("unknown")).dump() << ")\n";
      return 0;
    }
    const nlohmann::json base = qeval::report::load_report(check_base);
    qeval::report::GateOptions go;
    go.alpha = check_alpha;
    go.fail_on_weight_change = check_weights;
    const qeval::report::GateResult g = qeval::report::check_regression(base, cur, go);
    if (check_json) std::cout << g.to_json().dump(2) << "\n";
    else std::cout << qeval::report::format_gate(g, check_base, check_cur, base);
    return g.pass() ? 0 : 1;
  }
  if (mrg->parsed()) {
    std::vector<nlohmann::json> parts;
    for (const auto& p : merge_in) parts.push_back(qeval::report::load_report(p));
    const nlohmann::json m = qeval::report::merge_reports(parts, merge_in, command_line, merge_partial);
    qeval::report::validate(m);
    qeval::report::write_json_atomic(merge_out, m);
    std::cout << "merge: " << m["runs"].size() << " run(s) from " << parts.size() << " report(s) written to " << merge_out << "\n";
    return 0;
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
#if QEVAL_HAVE_TRAIN
  // `train` and model runs in `sweep` use LibTorch's OpenMP threads; spinning waiters starve each other on a
  // shared machine (measured: a training step 42 s spinning vs 5–8 s passive under load 6 on 2 cores,
  // eval/train/train_cli.hpp). Re-exec once with OMP_WAIT_POLICY=PASSIVE. Results do not depend on the wait policy.
  for (int i = 1; i < argc; ++i)
    if (std::string(argv[i]) == "sweep" || std::string(argv[i]) == "train") {
      qeval::train::reexec_with_passive_omp(argv);
      break;
    }
#endif
  try {
    return qeval_main(argc, argv);
  } catch (const std::bad_alloc&) {
    print_error("out of memory (try a smaller --rows/--cols)");
  } catch (const std::exception& e) {
    print_error(e.what());
  } catch (...) {
    print_error("unexpected error of unknown type");
  }
  return 1;
}
