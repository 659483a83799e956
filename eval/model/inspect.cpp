// eval/model/inspect.cpp — header-only inspection of GGUF and safetensors checkpoints (see inspect.hpp).
#include "eval/model/inspect.hpp"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "eval/model/checkpoint_internal.hpp"
#include "eval/model/ggml_types.hpp"
#include "eval/model/gguf.hpp"
#include "eval/model/mapped_file.hpp"
#include "eval/model/safetensors.hpp"

namespace qeval::model {

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Level = InspectFinding::Level;

constexpr size_t kMaxArrayShown = 16;  // longer metadata arrays (token lists, merges) are summarised by length
constexpr size_t kMaxNamesShown = 8;   // a finding lists at most this many tensor names, then "… and N more"

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

json shown_value(const json& v) {
  if (v.is_array() && v.size() > kMaxArrayShown) return json{{"array_length", v.size()}};
  return v;
}

std::string name_list(const std::vector<std::string>& names) {
  std::string s;
  for (size_t i = 0; i < names.size() && i < kMaxNamesShown; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > kMaxNamesShown) s += ", … and " + std::to_string(names.size() - kMaxNamesShown) + " more";
  return s;
}

void add(InspectReport& r, Level level, std::string what) { r.findings.push_back({level, std::move(what)}); }

void summarize(InspectReport& r) {
  std::map<std::string, InspectTypeSummary> by;
  for (const auto& t : r.tensors) {
    InspectTypeSummary& s = by[t.type];
    s.type = t.type;
    ++s.tensors;
    s.elements += t.elements;
    s.bytes += t.bytes;
    r.total_elements += t.elements;
    r.total_bytes += t.bytes;
  }
  for (auto& [type, s] : by) r.by_type.push_back(s);
  std::stable_sort(r.by_type.begin(), r.by_type.end(),
                   [](const InspectTypeSummary& a, const InspectTypeSummary& b) { return a.bytes > b.bytes; });
}

// What the forward will run beyond a dense Llama, for the "loads" line: experts (top-k, widths), sliding layers and
// their RoPE base.
std::string feature_summary(const ModelConfig& c) {
  std::string s;
  if (c.is_moe())
    s += ", " + std::to_string(c.n_experts) + " experts (top " + std::to_string(c.n_experts_used) + ", d_ff_expert " +
         std::to_string(c.d_ff_expert) + (c.d_ff_shared > 0 ? ", shared expert " + std::to_string(c.d_ff_shared) : "") +
         (c.expert_norm_topk ? ", top-k renormalised)" : ")");
  if (c.sliding_window > 0) {
    const auto n = std::count(c.layer_sliding.begin(), c.layer_sliding.end(), true);
    s += ", sliding window " + std::to_string(c.sliding_window) + " on " + std::to_string(n) + " of " +
         std::to_string(c.n_layers) + " layers";
    if (c.rope_theta_local > 0) s += " (RoPE base " + json_for_message(c.rope_theta_local) + " there)";
  }
  return s;
}

// Names → shapes-only checkpoint validated as the loaders do (required tensors, shapes against the config).
// A GGUF's tensors are first translated as its loader does (gguf_family_tensors: Phi-3's fused matrices split).
void validate_shapes(InspectReport& r, const ModelConfig& cfg, const std::map<std::string, std::vector<int64_t>>& shapes,
                     bool gguf = false) {
  Checkpoint cp;
  cp.path = r.path;
  cp.config = cfg;
  for (const auto& [name, shape] : shapes) cp.tensors[name].shape = shape;
  try {
    if (gguf) gguf_family_tensors(cp);
    validate_checkpoint_impl(cp, false);
    add(r, Level::ok,
        "loads for qeval's forward (" + cfg.arch + "): " + std::to_string(cfg.n_layers) + " layers, d_model " +
            std::to_string(cfg.d_model) + ", " + std::to_string(cfg.n_heads) + "/" + std::to_string(cfg.n_kv_heads) +
            " heads, d_ff " + std::to_string(cfg.d_ff) + ", vocab " + std::to_string(cfg.vocab_size) +
            (cfg.tied_embeddings ? ", tied embeddings" : "") + feature_summary(cfg));
    r.loadable = true;
  } catch (const CheckpointError& e) {
    add(r, Level::unsupported, e.what());
  }
}

// ---------------------------------------------------------------------------------------------------- GGUF

void gguf_metadata(const GgufFile& f, InspectReport& r) {
  if (const GgufKv* a = f.find_kv("general.architecture"); a && a->value.is_string()) r.architecture = a->value;
  const std::string p = r.architecture + ".";
  for (const auto& kv : f.kv) {
    if (!r.architecture.empty() && starts_with(kv.key, p)) {
      r.hyperparameters[kv.key.substr(p.size())] = shown_value(kv.value);
    } else if (starts_with(kv.key, "tokenizer.ggml.")) {
      r.tokenizer[kv.key.substr(15)] = shown_value(kv.value);
    } else if (starts_with(kv.key, "general.")) {
      r.hyperparameters["general"][kv.key.substr(8)] = shown_value(kv.value);
    }
  }
  for (const auto& t : f.tensors) {
    const GgmlTypeTraits tr = ggml_type_traits(static_cast<uint32_t>(t.type));
    r.tensors.push_back({t.name, t.shape(), tr.name ? tr.name : "?", t.n_elements, t.n_bytes});
  }
}

void gguf_findings(const GgufFile& f, InspectReport& r) {
  std::map<std::string, int> no_dequantizer;  // type name → tensors
  for (const auto& t : f.tensors) {
    const GgmlTypeTraits tr = ggml_type_traits(static_cast<uint32_t>(t.type));
    if (!tr.dequantizable) ++no_dequantizer[tr.name ? tr.name : "?"];
  }
  for (const auto& [type, n] : no_dequantizer) {
    add(r, Level::unsupported,
        std::to_string(n) + " tensor(s) of type " + type + ": no dequantizer (qeval reads " +
            ggml_supported_type_names() + ")");
  }
  const bool types_ok = no_dequantizer.empty();
  if (types_ok) add(r, Level::ok, "every tensor type is one qeval dequantizes (bit-exact with gguf-py)");
  ModelConfig cfg;
  try {
    cfg = gguf_model_config(f);
  } catch (const CheckpointError& e) {
    add(r, Level::unsupported, e.what());
    return;
  }
  if (!forward_supports_arch(cfg.arch)) {
    add(r, Level::unsupported,
        "architecture '" + cfg.arch + "' is not one qeval's forward runs (supported: " + kSupportedArchs + ")");
    return;
  }
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& t : f.tensors) shapes[t.name] = t.shape();
  validate_shapes(r, cfg, shapes, /*gguf=*/true);
  r.loadable = r.loadable && types_ok;
  const std::vector<std::string> unused = gguf_unused_tensors(f, cfg);
  if (!unused.empty()) {
    add(r, Level::warning,
        std::to_string(unused.size()) + " tensor(s) not read by qeval's forward (ignored when loading): " +
            name_list(unused));
  }
}

// ---------------------------------------------------------------------------------------------- safetensors

struct StLayout {
  std::string dir;
  std::vector<std::string> shards;  // file names in dir
};

StLayout safetensors_layout(const std::string& path) {
  std::error_code ec;
  StLayout l;
  if (!fs::is_directory(path, ec)) {
    l.dir = fs::path(path).parent_path().string();
    l.shards.push_back(fs::path(path).filename().string());
  } else {
    l.dir = path;
    const fs::path index = fs::path(path) / "model.safetensors.index.json";
    if (fs::is_regular_file(index, ec)) {
      std::ifstream in(index);
      const json idx = json::parse(in, nullptr, false);
      if (idx.is_discarded() || !idx.contains("weight_map") || !idx["weight_map"].is_object()) {
        throw CheckpointError(index.string(), "weight_map", "missing or not an object");
      }
      std::set<std::string> s;
      for (const auto& [k, v] : idx["weight_map"].items())
        if (v.is_string()) s.insert(v.get<std::string>());
      l.shards.assign(s.begin(), s.end());
    } else {
      for (const auto& de : fs::directory_iterator(path, ec)) {
        const std::string n = de.path().filename().string();
        if (n.size() > 12 && n.compare(n.size() - 12, 12, ".safetensors") == 0) l.shards.push_back(n);
      }
      std::sort(l.shards.begin(), l.shards.end());
    }
  }
  if (l.dir.empty()) l.dir = ".";
  if (l.shards.empty()) throw CheckpointError(path, "directory", "no *.safetensors file found");
  return l;
}

json read_config(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw CheckpointError(path, "config.json", "cannot open — a safetensors checkpoint needs config.json beside it");
  const json c = json::parse(in, nullptr, false);
  if (c.is_discarded() || !c.is_object()) throw CheckpointError(path, "config.json", "not a JSON object");
  return c;
}

void st_metadata(const json& config, const StLayout& l, InspectReport& r) {
  if (config.contains("architectures") && config["architectures"].is_array() && !config["architectures"].empty() &&
      config["architectures"][0].is_string()) {
    r.architecture = config["architectures"][0];
  } else if (config.contains("model_type") && config["model_type"].is_string()) {
    r.architecture = config["model_type"];
  }
  for (const auto& [k, v] : config.items())
    if (k != "architectures") r.hyperparameters[k] = shown_value(v);
  for (const char* f : {"tokenizer.json", "tokenizer.model", "tokenizer_config.json"}) {
    std::error_code ec;
    if (fs::is_regular_file(fs::path(l.dir) / f, ec)) r.tokenizer["files"].push_back(f);
  }
  std::ifstream tj(fs::path(l.dir) / "tokenizer.json");
  if (tj) {
    const json t = json::parse(tj, nullptr, false);
    if (!t.is_discarded() && t.contains("model") && t["model"].is_object()) {
      r.tokenizer["model"] = t["model"].value("type", "?");
      if (t["model"].contains("vocab") && t["model"]["vocab"].is_object()) r.tokenizer["vocab_size"] = t["model"]["vocab"].size();
      if (t.contains("pre_tokenizer") && t["pre_tokenizer"].is_object()) r.tokenizer["pre_tokenizer"] = t["pre_tokenizer"].value("type", "?");
    }
  }
}

// The canonical tensor(s) an HF tensor becomes (fused ones split), with their shapes.
void add_canonical_shapes(const InspectTensor& t, const std::string& file, const ModelConfig& cfg,
                          std::map<std::string, std::vector<int64_t>>& shapes) {
  const auto mp = hf_to_canonical(t.name, file);
  if (!mp || (mp->canonical == "output.weight" && cfg.tied_embeddings)) return;
  for (const HfPart& p : hf_parts(*mp, cfg, t.shape.empty() ? 0 : t.shape[0], file, t.name)) {
    shapes[p.canonical] = t.shape;
    if (!t.shape.empty()) shapes[p.canonical][0] = p.rows;
  }
}

void st_findings(const json& config, const std::string& config_path, const std::vector<std::pair<std::string, std::string>>& where,
                 InspectReport& r) {
  std::vector<std::string> bad_dtype, unread;
  for (const auto& t : r.tensors)
    if (t.type != "F32" && t.type != "F16" && t.type != "BF16") bad_dtype.push_back(t.name + " (" + t.type + ")");
  if (!bad_dtype.empty()) add(r, Level::unsupported, "dtype(s) other than F32/F16/BF16: " + name_list(bad_dtype));
  ModelConfig cfg;
  try {
    cfg = hf_llama_config(config, config_path);
  } catch (const CheckpointError& e) {
    add(r, Level::unsupported, e.what());
    return;
  }
  std::map<std::string, std::vector<int64_t>> shapes;
  for (size_t i = 0; i < r.tensors.size(); ++i) {
    try {
      add_canonical_shapes(r.tensors[i], where[i].second, cfg, shapes);
    } catch (const CheckpointError&) {
      unread.push_back(r.tensors[i].name);
    }
  }
  if (!unread.empty()) {
    add(r, Level::unsupported, std::to_string(unread.size()) + " tensor(s) with no place in a supported checkpoint: " +
                                   name_list(unread));
  }
  validate_shapes(r, cfg, shapes);
  r.loadable = r.loadable && bad_dtype.empty() && unread.empty();
}

InspectReport inspect_safetensors(const std::string& path) {
  const StLayout l = safetensors_layout(path);
  InspectReport r;
  r.path = path;
  r.format = "safetensors";
  const std::string config_path = (fs::path(l.dir) / "config.json").string();
  const json config = read_config(config_path);
  st_metadata(config, l, r);
  std::vector<std::pair<std::string, std::string>> where;  // per tensor: (shard, shard path)
  for (const auto& sn : l.shards) {
    const std::string sp = (fs::path(l.dir) / sn).string();
    const MappedFile m(sp);
    const SafetensorsFile st = parse_safetensors(m.data(), m.size(), sp);
    for (const auto& e : st.tensors) {
      uint64_t n = 1;
      for (int64_t d : e.shape) n *= static_cast<uint64_t>(d);
      r.tensors.push_back({e.name, e.shape, e.dtype, n, e.end - e.begin});
      where.emplace_back(sn, sp);
    }
  }
  summarize(r);
  st_findings(config, config_path, where, r);
  return r;
}

bool is_gguf_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[4] = {};
  return in.read(magic, 4) && std::string(magic, 4) == "GGUF";
}


const char* level_name(Level l) {
  switch (l) {
    case Level::ok: return "ok";
    case Level::warning: return "warning";
    case Level::unsupported: return "unsupported";
  }
  return "?";
}

std::string shape_text(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

std::string fixed(double v, int digits) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*f", digits, v);
  return b;
}

// Rows of cells printed with every column as wide as its widest cell (numbers right-aligned, text left-aligned).
std::string table(const std::vector<std::vector<std::string>>& rows, const std::vector<bool>& right) {
  std::vector<size_t> w(right.size(), 0);
  for (const auto& row : rows)
    for (size_t c = 0; c < row.size(); ++c) w[c] = std::max(w[c], row[c].size());
  std::string out;
  for (const auto& row : rows) {
    std::string line = " ";
    for (size_t c = 0; c < row.size(); ++c) {
      const std::string pad(w[c] - row[c].size(), ' ');
      line += "  " + (right[c] ? pad + row[c] : row[c] + (c + 1 < row.size() ? pad : ""));
    }
    out += line + "\n";
  }
  return out;
}

}  // namespace

InspectReport inspect_gguf_bytes(const uint8_t* data, size_t size, const std::string& name) {
  const GgufFile f = parse_gguf(data, size, name);
  InspectReport r;
  r.path = name;
  r.format = "gguf";
  gguf_metadata(f, r);
  summarize(r);
  gguf_findings(f, r);
  return r;
}

InspectReport inspect_model(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw CheckpointError(path, "path", "does not exist");
  if (!fs::is_directory(path, ec) && is_gguf_file(path)) {
    const MappedFile m(path);
    return inspect_gguf_bytes(m.data(), m.size(), path);
  }
  return inspect_safetensors(path);
}

json inspect_to_json(const InspectReport& r) {
  json j = {{"path", r.path}, {"format", r.format}, {"architecture", r.architecture},
            {"hyperparameters", r.hyperparameters}, {"tokenizer", r.tokenizer}, {"loadable", r.loadable},
            {"total_elements", r.total_elements}, {"total_bytes", r.total_bytes},
            {"bits_per_weight", r.bits_per_weight()}};
  j["tensors"] = json::array();
  for (const auto& t : r.tensors) {
    j["tensors"].push_back({{"name", t.name}, {"shape", t.shape}, {"type", t.type}, {"elements", t.elements},
                            {"bytes", t.bytes}});
  }
  j["by_type"] = json::array();
  for (const auto& s : r.by_type) {
    j["by_type"].push_back({{"type", s.type}, {"tensors", s.tensors}, {"elements", s.elements}, {"bytes", s.bytes},
                            {"bits_per_weight", s.bits_per_weight()}});
  }
  j["findings"] = json::array();
  for (const auto& f : r.findings) j["findings"].push_back({{"level", level_name(f.level)}, {"what", f.what}});
  return j;
}

std::string inspect_to_text(const InspectReport& r) {
  std::string out = r.path + " (" + r.format + ", architecture " + (r.architecture.empty() ? "?" : r.architecture) + ")\n";
  out += "hyper-parameters: " + r.hyperparameters.dump() + "\n";
  out += "tokenizer: " + r.tokenizer.dump() + "\n";
  std::vector<std::vector<std::string>> rows = {{"tensor", "shape", "type", "bytes"}};
  for (const auto& t : r.tensors) rows.push_back({t.name, shape_text(t.shape), t.type, std::to_string(t.bytes)});
  out += "tensors (" + std::to_string(r.tensors.size()) + "):\n" + table(rows, {false, false, false, true});
  rows = {{"type", "tensors", "weights", "bytes", "bits/weight"}};
  for (const auto& s : r.by_type) {
    rows.push_back({s.type, std::to_string(s.tensors), std::to_string(s.elements), std::to_string(s.bytes),
                    fixed(s.bits_per_weight(), 4)});
  }
  rows.push_back({"total", std::to_string(r.tensors.size()), std::to_string(r.total_elements),
                  std::to_string(r.total_bytes), fixed(r.bits_per_weight(), 4)});
  out += "by type:\n" + table(rows, {false, true, true, true, true});
  out += "qeval:\n";
  for (const auto& f : r.findings) out += std::string("  ") + level_name(f.level) + ": " + f.what + "\n";
  out += std::string("verdict: ") + (r.loadable ? "loads" : "does not load") + "\n";
  return out;
}

}  // namespace qeval::model
