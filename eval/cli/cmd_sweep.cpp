// eval/cli/cmd_sweep.cpp — `qeval sweep`: the options (CLI11) → sweep::SweepOptions → sweep::run_sweep
// (eval/sweep/sweep.hpp: config, typed plan, engine). This file only reads the command line: which run kind the
// options describe, and usage errors (exit status 2); every value is validated once, by the sweep library.
#include <iostream>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "eval/cli/command.hpp"
#include "eval/sweep/sweep.hpp"
#include "quant/rng.hpp"
#include "schemes/scheme.hpp"

namespace qeval::cli {

namespace {

// What CLI11 fills: SweepOptions plus the option texts parsed after the command line is read.
struct SweepArgs {
  sweep::SweepOptions o;
  std::string schemes = "rtn", range = "minmax", rounding = "nearest_even", non_finite = "error";
  std::vector<std::string> bits, groups, mappings, backends;
  bool sym = false, asym = false, no_report = false;
  std::string model, config, shard, progress = "auto", inject;
  CLI::Option *rows = nullptr, *cols = nullptr;
};

// Options that only make sense for one kind of run (the kind is chosen from them: choose_kind).
const std::vector<const char*> kTensorOptions = {"--input", "--rows", "--cols", "--shape", "--nu", "--outlier-channels",
                                                 "--outlier-scale", "--range", "--clip-ratio",
                                                 "--percentile", "--rounding", "--non-finite"};
const std::vector<const char*> kModelOptions = {"--protocol", "--activation", "--max-windows", "--lambada", "--blame-windows"};
// Axis options a --config replaces.
const std::vector<const char*> kAxisOptions = {"--scheme", "--bits", "--group-sizes", "--sym", "--asym", "--mapping",
                                               "--range", "--clip-ratio", "--percentile", "--rounding", "--option",
                                               "--non-finite", "--input", "--rows", "--cols", "--shape", "--nu",
                                               "--outlier-channels", "--outlier-scale", "--backend", "--seed",
                                               "--partial-groups"};

std::string scheme_ids() {
  std::string ids;
  for (const auto& s : schemes::scheme_list()) ids += (ids.empty() ? "" : ", ") + std::string(s.id);
  return ids;
}

void add_axis_options(CLI::App* c, SweepArgs& a) {
  sweep::SweepOptions& o = a.o;
  c->add_option("--scheme", a.schemes,
                "Comma-separated scheme ids (default: rtn): " + scheme_ids() + ".\n'qeval list-schemes' describes them.")
      ->type_name("LIST");
  c->add_option("--bits", a.bits, "Bit widths, comma-separated (default: each scheme's own, e.g. rtn 4). Integer formats: 2..8.")
      ->delimiter(',')
      ->type_name("LIST");
  c->add_option("--group-sizes", a.groups,
                "Group sizes along the row, comma-separated (default: each scheme's own, e.g. rtn 128).\n"
                "0 or 'row' = one group per row (per channel/token), -1 or 'tensor' = one per tensor.\n"
                "Each size must divide the row length. Example: --group-sizes 32,128,256")
      ->delimiter(',')
      ->type_name("LIST");
  c->add_flag("--sym", a.sym, "Symmetric mapping: scale = max|x|/(2^(b-1)-1), zero point 0 (the default)");
  c->add_flag("--asym", a.asym, "Asymmetric mapping: scale = (max-min)/(2^b-1) with a zero point");
  c->add_option("--mapping", a.mappings, "Mappings, comma-separated: sym, asym (e.g. --mapping sym,asym)")
      ->delimiter(',')
      ->type_name("LIST");
  c->add_option("--range", a.range, "How each group's range is chosen: minmax (default), percentile, mse (clipping search)");
  c->add_option("--clip-ratio", o.clip_ratio,
                "Shrink the minmax range by this factor in (0, 1] (default 1; upper bound of the mse search)");
  c->add_option("--percentile", o.clip_percentile, "Percentile of |x| for --range percentile (default 99.99)");
  c->add_option("--rounding", a.rounding, "nearest_even (default), nearest_away, toward_zero");
  c->add_flag("--partial-groups", o.partial_groups,
              "Allow a shorter last group where the group size does not divide the row length\n"
              "(e.g. 576 columns in g128: 4 x 128 + 64; QuantParams::partial_last_group)");
  c->add_option("--option", o.options,
                "Scheme option key=value, repeatable; 'scheme.key=value' applies to one scheme only\n"
                "(e.g. --option fp4.codebook=bnb; a key given twice is an axis). Options per scheme: 'qeval list-schemes'.")
      ->type_name("KEY=VALUE");
  c->add_option("--non-finite", a.non_finite,
                "NaN/Inf in the input: error (default: stop with the element's position) or propagate\n"
                "(quantize the finite values, NaN/Inf dequantize to NaN and are left out of the metrics)");
}

void add_model_options(CLI::App* c, SweepArgs& a) {
  sweep::SweepOptions& o = a.o;
  c->add_option("--model", a.model,
                "Evaluate a quantized model instead of a tensor: 'default' (the embedded default model,\n"
                "models/qeval-sotu-4l256, also used when no tensor input option is given) or a .gguf /\n"
                "safetensors path (e.g. models/external/SmolLM2-135M-Instruct.Q4_1.gguf). Reports perplexity,\n"
                "delta-ppl, KL and top-1 against the fp model under a pinned protocol (docs/model-eval.md)");
  c->add_option("--protocol", o.protocol,
                "Evaluation protocol of model runs: configs/protocol-*.json (default: the one configs/default-model.json\n"
                "names for the embedded model, 32 windows of its held-out text: configs/protocol-sotu-heldout-512-32.json;\n"
                "WikiText-2: configs/protocol-wikitext2-512-32chunks.json)");
  c->add_option("--activation", o.activations,
                "Model runs: activation schemes, comma-separated ('none' = fp activations), e.g.\n"
                "--activation none,dynamic_per_token")
      ->delimiter(',')
      ->type_name("LIST");
  c->add_option("--max-windows", o.max_windows, "Model runs: evaluate only the first N protocol windows");
  c->add_flag("--lambada", o.lambada, "Model runs: also LAMBADA accuracy (when the protocol has a lambada section)");
  c->add_option("--blame-windows", o.blame_windows,
                "Model runs: per-layer blame (each layer quantized alone) on N windows (default 0: off)");
  c->add_flag("--twin", o.twin,
              "Model runs also run their reassociation twin: the same run with every linear product summed in\n"
              "another order, compared token by token - how far float summation order alone moves KL and dppl\n"
              "(what another CPU would show); the CI gate derives its tolerances from it (docs/regression-gate.md)");
}

void add_tensor_options(CLI::App* c, SweepArgs& a) {
  sweep::SweepOptions& o = a.o;
  c->add_option("--input", o.input,
                "gaussian (default), laplace, student-t, uniform, outliers — synthetic, unit variance —\n"
                "or a file: .npy (float32/float16, C order, 1-D or 2-D) or raw little-endian .f32 (needs --shape)");
  a.rows = c->add_option("--rows", o.rows, "Rows of a synthetic input (default 1024)");
  a.cols = c->add_option("--cols", o.cols, "Columns of a synthetic input: the innermost axis groups run along (default 4096)");
  c->add_option("--shape", o.raw_shape, "Shape of a raw .f32 input file: ROWSxCOLS, e.g. 4096x11008");
  c->add_option("--seed", o.seed,
                "Seed of the synthetic input (default " + std::to_string(kDefaultSeed) + ", or $QEVAL_SEED); recorded in the report");
  c->add_option("--nu", o.student_nu, "Degrees of freedom of --input student-t (default 3: heavy tails)");
  c->add_option("--outlier-channels", o.outlier_channels, "Columns scaled up by --input outliers (default 8, chosen from the seed)");
  c->add_option("--outlier-scale", o.outlier_scale,
                "Factor of the outlier columns (default 20, as LLM.int8 reports for LLM activations)");
  c->add_option("--backend", a.backends,
                "Backends, comma-separated. Tensor runs: cpu (default), opencl (when built in). Model runs: ref\n"
                "(default: fake quantization), cpu (integer kernels), opencl (the OpenCL kernels on one device, when built in;\n"
                "$QEVAL_CL_DEVICE picks it); cpu and opencl runs also report their agreement with ref")
      ->delimiter(',')
      ->type_name("LIST");
}

void add_execution_options(CLI::App* c, SweepArgs& a) {
  sweep::SweepOptions& o = a.o;
  c->add_option("--out", o.out, "Report path (default ./qeval-report.json); written atomically");
  c->add_flag("--no-report", a.no_report, "Print the table only; write no report (and keep no journal)");
  c->add_option("--config", a.config,
                "Sweep config JSON (configs/<name>.json: sweeps[] of axes, seed, protocol; see\n"
                "docs/sweeps.md). Replaces the axis options (--scheme, --bits, --input, ...)");
  c->add_flag("--resume", o.resume,
              "Continue an interrupted sweep: skip every run already in the journal (<out>.jsonl) or in <out>");
  c->add_option("--jobs,-j", o.jobs, "Runs executed in parallel threads (default 1; the report is identical)")
      ->check(CLI::Range(1, 1024));
  c->add_option("--shard", a.shard,
                "Run only shard i of N (0-based): runs i, i+N, ... of the plan; merge the parts with 'qeval merge'\n"
                "(scripts/slurm/ submits one shard per Slurm array task)")
      ->type_name("i/N");
  c->add_option("--progress", a.progress, "auto (default: a bar with ETA on a terminal, plain lines otherwise), bar, lines, none");
  c->add_flag("--dry-run", o.dry_run,
              "Validate the sweep and list its runs (id and name; with --shard, that shard's), execute nothing");
  c->add_flag("--explain", o.explain,
              "Dry run that shows, per run, how the parameters travel: the config paths of its axis values, the\n"
              "typed spec (SchemeConfig with its QuantParams, input, backend), the spec JSON and its id");
  c->add_flag("--plan-json", o.plan_json, "Dry run that prints the plan (the --explain content) as JSON");
  // Test-only fault injection: executes with a worse rounding while the run specs (and ids) stay the same,
  // so `qeval check` must catch it. Hidden from --help.
  c->add_option("--inject-rounding", a.inject)->group("");
  c->add_option("--inject-scale-error", o.inject_scale_error)->group("");
}

const char* kSweepFooter =
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
    "  qeval sweep --input gaussian --bits 3,4 --group-sizes 64 --explain    (the typed spec of every run)\n"
    "Table columns: SQNR and its bound (6.02*b), grid-adjusted figure, distribution-aware expectation and the\n"
    "gap split into grid + range + other losses (docs/metrics.md); the report schema is docs/report-schema.md;\n"
    "configs, resume, --jobs, shards and Slurm: docs/sweeps.md.";

// The option texts into SweepOptions (std::invalid_argument names the option: a usage error).
void read_texts(SweepArgs& a, const CLI::App& c) {
  sweep::SweepOptions& o = a.o;
  o.schemes = sweep::parse_word_list(a.schemes);
  o.bits = sweep::parse_bits_list(a.bits);
  o.group_sizes = sweep::parse_group_list(a.groups);
  o.mappings = sweep::parse_mapping_list(a.mappings);
  if (a.sym) o.mappings.push_back(quant::Mapping::symmetric);
  if (a.asym) o.mappings.push_back(quant::Mapping::asymmetric);
  o.range = quant::parse_range_method(a.range);
  o.rounding = quant::parse_rounding(a.rounding);
  o.non_finite = quant::parse_non_finite_policy(a.non_finite);
  o.backends = a.backends;
  o.progress = sweep::parse_progress_mode(a.progress);
  if (!a.inject.empty()) o.inject_rounding = quant::parse_rounding(a.inject);
  if (!a.shard.empty()) {
    int i = 0, n = 0;
    sweep::parse_shard(a.shard, &i, &n);
    o.shard = a.shard;
  }
  if (!a.config.empty()) {
    o.config_path = a.config;
    for (const char* opt : kAxisOptions)
      if (c.count(opt) > 0)
        throw std::invalid_argument(std::string(opt) + " cannot be combined with --config (put the axis in the config)");
  }
  if (o.resume && a.no_report) throw std::invalid_argument("--resume needs a report (and its journal); drop --no-report");
  o.shape_given = a.rows->count() > 0 || a.cols->count() > 0;
  o.write_report = !a.no_report;
}

// Which kind of run: a model when --model is given, or when no tensor option is (then the embedded default model,
// if this qeval has the model evaluator); a tensor otherwise. Throws std::invalid_argument for contradictions.
void choose_kind(SweepArgs& a, const CLI::App& c) {
  bool tensor_opt = false, model_opt = !a.model.empty();
  for (const char* opt : kTensorOptions) tensor_opt = tensor_opt || c.count(opt) > 0;
  for (const char* opt : kModelOptions) model_opt = model_opt || c.count(opt) > 0;
  if (!a.model.empty() && tensor_opt)
    throw std::invalid_argument("--model evaluates a model; --input, --rows, --range ... describe tensor runs; "
                                "use one or the other");
  if (model_opt && tensor_opt)
    throw std::invalid_argument("--protocol/--activation/--max-windows/--lambada/--blame-windows apply to model runs; "
                                "drop the tensor options (--input, --rows, ...) or the model ones");
#if QEVAL_HAVE_MODEL_RUNS
  if (a.model.empty() && !tensor_opt && a.config.empty()) a.model = "default";
#else
  if (model_opt)
    throw std::invalid_argument("this qeval was built without the model evaluator (configure with -DQEVAL_TORCH=ON); "
                                "tensor runs work: e.g. --input gaussian");
#endif
  if (!a.config.empty() && !a.model.empty())
    throw std::invalid_argument("--model/--protocol/... cannot be combined with --config (put them in the config)");
  a.o.model = a.model;
}

}  // namespace

Command add_sweep_command(CLI::App& app, const Invocation& inv) {
  auto a = std::make_shared<SweepArgs>();
  a->o.seed = seed_from_env(kDefaultSeed);
  CLI::App* c = app.add_subcommand(
      "sweep",
      "Quantize a model (default: the embedded default model on its held-out text; perplexity, delta-ppl, KL and\n"
      "top-1 against fp, ranked by KL) or a tensor (--input: MSE, SQNR vs the 6.02*b bound and the gap's causes,\n"
      "max-abs error, cosine) with every combination of scheme x bits x group size x mapping, print a table and\n"
      "write a versioned JSON report.");
  add_axis_options(c, *a);
  add_model_options(c, *a);
  add_tensor_options(c, *a);
  add_execution_options(c, *a);
  c->footer(kSweepFooter);
  return {c, [a, c, inv] {
            try {
              read_texts(*a, *c);
              choose_kind(*a, *c);
            } catch (const std::exception& e) {  // usage errors in option values: exit status 2
              print_error(std::string(e.what()) + " (see 'qeval sweep --help')");
              return 2;
            }
            a->o.extra_libraries["cli11"] = CLI11_VERSION;
            a->o.handle_signals = true;
            return sweep::run_sweep(a->o, inv.command_line, std::cout, std::cerr);
          }};
}

}  // namespace qeval::cli
