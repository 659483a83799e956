// eval/tokenizer/byte_alphabet.hpp — GPT-2's byte → printable-character table used by every byte-level BPE
// vocabulary (GPT-2, SmolLM2, Llama-3): token texts are spelt in these characters. Internal.
//
// The table (a fact of GPT-2's published encoder.py, bytes_to_unicode): the 188 bytes 0x21–0x7E, 0xA1–0xAC
// and 0xAE–0xFF map to the code point of the same value; the other 68 bytes (0x00–0x20, 0x7F–0xA0, 0xAD),
// in increasing order, map to U+0100, U+0101, ... U+0143. Worked cases: ' ' (0x20) is the 33rd of those
// 68 → U+0100 + 32 = U+0120 'Ġ'; '\n' (0x0A) is the 11th → U+010A 'Ċ'; 0xAD → U+0143 'Ń'.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace qeval::tokenizer::detail {

struct ByteAlphabet {
  std::array<uint32_t, 256> code_point{};  // byte → code point
  std::array<std::string, 256> utf8;       // byte → UTF-8 of that code point
  std::array<int16_t, 0x144> byte_of{};    // code point (< U+0144) → byte, −1 if not in the alphabet

  int byte_of_code_point(uint32_t cp) const { return cp < byte_of.size() ? byte_of[cp] : -1; }
};

const ByteAlphabet& byte_alphabet();

}  // namespace qeval::tokenizer::detail
