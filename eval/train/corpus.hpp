// eval/train/corpus.hpp — the training text of the embedded model: State of the Union addresses, split into
// train / validation at an address boundary, and turned into token streams. Plain C++ (no LibTorch).
//
// sotu.txt holds 233 addresses in date order, each preceded by a header line "= <year>_<name>_<party> =".
// An address's text is the lines between its header and the next header, with leading and trailing
// whitespace removed (each body is one long line in the file), plus one "\n" so that the model sees a line
// end at the end of every document.
// Split: validation = the shortest run of LAST addresses holding at least `val_fraction` of all address
// bytes; everything before is training text. Worked number: val_fraction 0.05 on sotu.txt (10,768,180 B)
// → the 15 addresses 2007_george_w_bush_r … 2021_joseph_r_biden_d, 5.1 % of the bytes. The newest
// addresses are held out, so validation is also a (mild) test of generalization forward in time.
// Token stream: for each address in order, <eot> then the address's ids (no BOS/EOS added by the
// tokenizer, special-token text not parsed). The same token is BOS and EOT (GPT-2's convention); training
// and validation windows replace their first token by it (the evaluation protocol's "replace_first").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace qeval::tokenizer {
class Tokenizer;
}

namespace qeval::train {

struct Address {
  std::string name;  // "1790_george_washington_n"
  std::string text;  // body, trimmed, + "\n"
};

// Parses sotu.txt's format. Throws std::invalid_argument (naming `source`) when no header is found, text
// precedes the first header, or an address is empty.
std::vector<Address> parse_sotu(const std::string& file_text, const std::string& source = "sotu.txt");

struct CorpusSplit {
  std::vector<Address> train, val;
  int64_t train_bytes = 0, val_bytes = 0;
};
// Throws std::invalid_argument unless 0 < val_fraction < 1 and both parts end up non-empty.
CorpusSplit split_last_addresses(const std::vector<Address>& all, double val_fraction);

// <eot> + ids(address) for each address, in order. `encode` must add no BOS/EOS.
std::vector<int32_t> token_stream(const std::vector<Address>& docs, const tokenizer::Tokenizer& tok, int32_t eot);

}  // namespace qeval::train
