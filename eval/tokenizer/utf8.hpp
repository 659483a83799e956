// eval/tokenizer/utf8.hpp — UTF-8 helpers for the tokenizer: strict validation (Unicode Table 3-7), code
// point encoding, NFC via utf8proc. Internal to eval/tokenizer (and its tests).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace qeval::tokenizer::detail {

// Length (1–4) of the well-formed UTF-8 sequence that starts at s[0], or 0 when s[0..] does not start
// one (stray continuation byte, overlong form, surrogate U+D800–DFFF, > U+10FFFF, truncated sequence).
// The well-formed byte sequences are those of The Unicode Standard, Table 3-7: e.g. E0 must be followed by
// A0–BF (E0 80..9F would be overlong), ED by 80–9F (ED A0..BF would encode a surrogate).
size_t utf8_sequence_length(const uint8_t* s, size_t n);

inline size_t utf8_sequence_length(std::string_view s, size_t pos) {
  return utf8_sequence_length(reinterpret_cast<const uint8_t*>(s.data()) + pos, s.size() - pos);
}

bool is_valid_utf8(std::string_view s);

// The code point of the well-formed sequence at s[pos] (length `len` from utf8_sequence_length).
uint32_t utf8_decode(std::string_view s, size_t pos, size_t len);

void append_utf8(std::string& out, uint32_t code_point);

// Unicode NFC of valid UTF-8 (utf8proc, UTF8PROC_STABLE | UTF8PROC_COMPOSE). Throws std::runtime_error if
// utf8proc fails (out of memory).
std::string nfc(std::string_view valid_utf8);
// Unicode NFKC (UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT), same contract as nfc().
std::string nfkc(std::string_view valid_utf8);

}  // namespace qeval::tokenizer::detail
