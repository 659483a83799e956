// eval/tokenizer/byte_alphabet.cpp — builds GPT-2's byte → printable-character table (see the header).
#include "eval/tokenizer/byte_alphabet.hpp"

#include "eval/tokenizer/utf8.hpp"

namespace qeval::tokenizer::detail {

namespace {
ByteAlphabet build() {
  ByteAlphabet a;
  a.byte_of.fill(-1);
  uint32_t next_extra = 0x100;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    const uint32_t cp = printable ? uint32_t(b) : next_extra++;
    a.code_point[b] = cp;
    append_utf8(a.utf8[b], cp);
    a.byte_of[cp] = static_cast<int16_t>(b);
  }
  return a;  // next_extra ends at 0x100 + 68 = 0x144
}
}  // namespace

const ByteAlphabet& byte_alphabet() {
  static const ByteAlphabet a = build();
  return a;
}

}  // namespace qeval::tokenizer::detail
