// eval/train/corpus.cpp — State of the Union parsing, the address-boundary split, token streams.
#include "eval/train/corpus.hpp"

#include <stdexcept>

#include "eval/tokenizer/tokenizer.hpp"

namespace qeval::train {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

std::string trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && is_space(s[b])) ++b;
  while (e > b && is_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

// "= name =" → name; "" when the line is not a header.
std::string header_name(const std::string& line) {
  std::string l = line;
  if (!l.empty() && l.back() == '\r') l.pop_back();
  if (l.size() < 5 || l.compare(0, 2, "= ") != 0 || l.compare(l.size() - 2, 2, " =") != 0) return "";
  return l.substr(2, l.size() - 4);
}

}  // namespace

std::vector<Address> parse_sotu(const std::string& file_text, const std::string& source) {
  std::vector<Address> out;
  std::string body;
  bool have = false;
  size_t pos = 0, lineno = 0;
  auto finish = [&] {
    if (!have) return;
    const std::string t = trim(body);
    if (t.empty())
      throw std::invalid_argument(source + ": address '" + out.back().name + "' has no text");
    out.back().text = t + "\n";
  };
  while (pos < file_text.size()) {
    size_t nl = file_text.find('\n', pos);
    if (nl == std::string::npos) nl = file_text.size();
    const std::string line = file_text.substr(pos, nl - pos);
    ++lineno;
    pos = nl + 1;
    const std::string name = header_name(line);
    if (!name.empty()) {
      finish();
      out.push_back(Address{name, ""});
      body.clear();
      have = true;
    } else if (!have) {
      if (!trim(line).empty())
        throw std::invalid_argument(source + ": line " + std::to_string(lineno) +
                                    ": text before the first '= <year>_<name>_<party> =' header");
    } else {
      body += line;
      body += '\n';
    }
  }
  finish();
  if (out.empty())
    throw std::invalid_argument(source + ": no '= <year>_<name>_<party> =' header found (is this sotu.txt?)");
  return out;
}

CorpusSplit split_last_addresses(const std::vector<Address>& all, double val_fraction) {
  if (!(val_fraction > 0.0 && val_fraction < 1.0))
    throw std::invalid_argument("split_last_addresses: val_fraction must be in (0, 1), got " +
                                std::to_string(val_fraction));
  int64_t total = 0;
  for (const auto& a : all) total += static_cast<int64_t>(a.text.size());
  CorpusSplit s;
  size_t first_val = all.size();
  int64_t acc = 0;
  while (first_val > 0 && static_cast<double>(acc) < val_fraction * static_cast<double>(total)) {
    --first_val;
    acc += static_cast<int64_t>(all[first_val].text.size());
  }
  if (first_val == 0 || first_val == all.size())
    throw std::invalid_argument("split_last_addresses: " + std::to_string(all.size()) +
                                " addresses cannot be split with val_fraction " + std::to_string(val_fraction) +
                                " (one part would be empty)");
  s.train.assign(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(first_val));
  s.val.assign(all.begin() + static_cast<std::ptrdiff_t>(first_val), all.end());
  s.val_bytes = acc;
  s.train_bytes = total - acc;
  return s;
}

std::vector<int32_t> token_stream(const std::vector<Address>& docs, const tokenizer::Tokenizer& tok, int32_t eot) {
  if (eot < 0 || eot >= tok.vocab_size())
    throw std::invalid_argument("token_stream: end-of-text id " + std::to_string(eot) + " is not in the vocabulary");
  tokenizer::EncodeOptions o;
  o.add_bos = false;
  o.add_eos = false;
  o.parse_special = false;
  std::vector<int32_t> out;
  for (const auto& d : docs) {
    out.push_back(eot);
    const std::vector<int32_t> ids = tok.encode(d.text, o);
    out.insert(out.end(), ids.begin(), ids.end());
  }
  return out;
}

}  // namespace qeval::train
