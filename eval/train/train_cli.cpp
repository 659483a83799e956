// eval/train/train_cli.cpp — `train` options shared by qeval-train and `qeval train`.
#include "eval/train/train_cli.hpp"

#include <unistd.h>

#include <cstdlib>
#include <stdexcept>

namespace qeval::train {

void add_train_options(CLI::App* tr, TrainCli& cli) {
  EmbeddedOptions& o = cli.o;
  tr->add_option("--out", o.out_dir, "Output directory, e.g. models/qeval-sotu-4l256")->required();
  tr->add_option("--root", o.root, "Project root; relative paths resolve against it (default .)");
  tr->add_option("--corpus", o.corpus, "sotu.txt (default data/sotu/sotu.txt)");
  tr->add_option("--state", o.state_path, "Training state file (default <out>/train_state.bin; deleted at the end)");
  tr->add_option("--name", o.name, "Model name (default: the output directory's name)");
  tr->add_option("--val-fraction", o.val_fraction, "Held-out share of the bytes, last addresses (default 0.05)");
  tr->add_option("--pre-tokenizer", o.pre_tokenizer, "gpt2 or smollm (default smollm: digits one by one)");
  tr->add_option("--vocab", o.cfg.vocab_size, "Vocabulary size incl. <|endoftext|> (default 2048)");
  tr->add_option("--layers", o.cfg.n_layers, "Transformer blocks (default 4)");
  tr->add_option("--d-model", o.cfg.d_model, "Model width (default 256)");
  tr->add_option("--heads", o.cfg.n_heads, "Query heads (default 4)");
  tr->add_option("--kv-heads", o.cfg.n_kv_heads, "Key/value heads, grouped-query attention (default 2)");
  tr->add_option("--d-ff", o.cfg.d_ff, "SwiGLU hidden width (default 512)");
  tr->add_option("--rope-theta", o.cfg.rope_theta, "RoPE base (default 10000)");
  tr->add_option("--ctx", o.cfg.seq_len, "Training window = n_ctx_train (default 512)");
  tr->add_option("--batch", o.cfg.batch, "Windows per optimizer step (default 8)");
  tr->add_option("--micro-batch", o.cfg.micro_batch, "Windows per forward/backward (default 4)");
  tr->add_option("--steps", o.cfg.steps, "Optimizer steps (default 1200)");
  tr->add_option("--warmup", o.cfg.warmup_steps, "Linear warmup steps (default 100)");
  tr->add_option("--lr", o.cfg.lr, "Peak learning rate (default 2e-3)");
  tr->add_option("--lr-min-ratio", o.cfg.lr_min_ratio, "Final lr / peak lr of the cosine decay (default 0.1)");
  tr->add_option("--weight-decay", o.cfg.weight_decay, "AdamW weight decay on matrices (default 0.1)");
  tr->add_option("--grad-clip", o.cfg.grad_clip, "Global gradient-norm clip (default 1.0)");
  tr->add_option("--init-std", o.cfg.init_std, "Initialization sd (default 0.02)");
  tr->add_option("--seed", o.cfg.seed, "Seed of data order and init (default " + std::to_string(kDefaultSeed) + ")");
  tr->add_option("--threads", o.cfg.threads, "ATen threads — fixed, results depend on it (default 2)");
  tr->add_option("--log-every", o.log_every, "Progress line every N steps (default 10)");
  tr->add_option("--val-every", o.val_every, "Validation every N steps (default 250)");
  tr->add_option("--val-windows", o.val_windows, "Windows of the periodic validation (default 16)");
  tr->add_option("--ckpt-every", o.ckpt_every, "State file every N steps (default 50)");
  tr->add_flag("--resume", o.resume, "Continue from the state file when it exists");
  tr->add_flag("--keep-state", o.keep_state, "Keep the state file after a successful run");
  tr->add_option("--stop-after", o.stop_after, "Stop after N steps in this process, saving the state (testing)");
  tr->add_option("--protocol", o.protocol, "Evaluate this configs/protocol-*.json at the end and record the timing");
  tr->add_option("--group-sizes", cli.groups, "Group sizes of the final timing sweep (default 32,128,256)");
}

std::vector<int64_t> parse_group_sizes(const std::string& s) {
  std::vector<int64_t> out;
  std::string cur;
  for (char c : s + ",") {
    if (c != ',') {
      cur += c;
      continue;
    }
    if (!cur.empty()) {
      size_t used = 0;
      long long v = 0;
      try {
        v = std::stoll(cur, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != cur.size() || v <= 0)
        throw std::invalid_argument("--group-sizes: '" + cur + "' is not a positive integer");
      out.push_back(v);
    }
    cur.clear();
  }
  return out;
}

void run_train_cli(TrainCli& cli, const std::string& command_line) {
  cli.o.group_sizes = parse_group_sizes(cli.groups);
  cli.o.command_line = command_line;
  run_embedded_training(cli.o);
}

void reexec_with_passive_omp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") || std::getenv("QEVAL_NO_REEXEC")) return;
  ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  ::setenv("QEVAL_NO_REEXEC", "1", 1);
  ::execv("/proc/self/exe", argv);  // returns only on failure: then run with the default policy
}

}  // namespace qeval::train
