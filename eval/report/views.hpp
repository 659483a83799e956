// eval/report/views.hpp — views derived from a report's runs: Pareto fronts, SQNR vs the 6.02·b bound per
// tensor type, per-layer blame. Pure functions of runs[], so they are recomputed after a merge and by
// `qeval report`, never trusted from the file.
//
// Pareto front: among runs on the same input (tensor runs: input + tensor; model runs: model + protocol),
// plot bits/weight (QuantizedMatrix::bits_per_weight: codes + fp16 scales + zero points — the storage the
// scheme really costs) against one error metric; a run is on the front when no other run has
// bits/weight ≤ and a metric at least as good with one of the two strictly better. Metrics: tensor runs
// SQNR (higher is better) and MSE (lower); model runs KL mean and Δppl (lower).
// Worked example (reports/baseline/ci.json, N(0,1) 1024 × 4096): rtn int4 sym g128 (4.125 b/w, 18.61 dB),
// nf4 g64 (4.25, 20.73), rtn int4 sym g32 (4.5, 20.26), rtn int4 asym g32 (4.625, 21.86): nf4 g64 dominates
// int4 sym g32 (fewer bits, more dB) → the front of these four = int4 sym g128, nf4 g64, int4 asym g32.
//
// SQNR vs bound per tensor type: tensor runs grouped by (tensor type, scheme config); tensor type = the
// synthetic distribution, or the tensor name with layer indices replaced by '*'
// ("model.layers.*.mlp.up_proj.weight"). Mean measured and expected SQNR beside 6.02·b and the
// grid-adjusted 20·log10(2^b − 1).
//
// Blame: model runs that carry per_layer[] (eval/model LayerBlame: layer, output_sqnr_db, kl_alone, ...),
// layers ordered worst first (largest kl_alone, else lowest output SQNR).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace qeval::report {

// metrics.bits of a run as a bit width, or -1 when it is absent or not a whole number in [0, 64] (a corrupt or
// hand-edited report): the bits views and charts leave such a run out. Converting NaN or 1e300 to int is undefined
// behaviour (UBSan, tests/fuzz/fuzz_report: a v1 report without metrics.bits, migrated before it is validated).
int run_bits(const nlohmann::json& run);

// One error metric a Pareto front is drawn against.
struct ParetoMetric {
  std::string kind;     // run kind it applies to
  std::string name;     // "sqnr_db", "mse", "kl_mean", "delta_ppl"
  std::string pointer;  // JSON pointer into a run, e.g. "/metrics/sqnr_db"
  bool higher_is_better = false;
};
const std::vector<ParetoMetric>& pareto_metrics();

// Indices of the non-dominated points among (x, y), x minimized, y minimized or maximized. Points with a
// non-finite coordinate are never on the front. Returned in ascending x (ties: better y first).
std::vector<size_t> pareto_front(const std::vector<double>& x, const std::vector<double>& y, bool y_higher_is_better);

// "gaussian 1024x4096 seed 20240229", "w.npy", or "<model> <protocol>" — what a run was measured on.
std::string input_label(const nlohmann::json& run);
// "gaussian" for synthetic inputs; the tensor name with every ".<digits>." replaced by ".*.".
std::string tensor_type(const nlohmann::json& run);

// {"pareto": [...], "bound_by_tensor_type": [...], "blame": [...]} (docs/report-schema.md, "views").
nlohmann::json compute_views(const nlohmann::json& runs);

}  // namespace qeval::report
