// tests/eval/tokenizer/test_support.hpp — helpers for the tokenizer tests: locating data files (skipping when
// absent), reading files, SHA-256 of id sequences (to compare with the references written by
// scripts/testdata/make_tokenizer_refs.py), and a minimal GGUF metadata reader for the SmolLM2 test.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace qeval::tokenizer::test {

// tests/data/tokenizer/<name> in the source tree.
std::string ref_path(const std::string& name);
nlohmann::json load_json(const std::string& path);
std::string read_file(const std::string& path);

// A file of the data shipped beside the project (e.g. "wikitext-2-raw/wiki.test.raw"), looked up in
// $QEVAL_DATA_DIR when set (only there), else <repo>/data, then <repo>/../shared/data; nullopt when absent.
std::optional<std::string> find_data_file(const std::string& relative);

// The SmolLM2 GGUF at qeval::test::smollm2_gguf_path() (tests/smollm2_model.hpp: $QEVAL_SMOLLM2_GGUF, else
// <repo>/models/external/SmolLM2-135M-Instruct.Q4_1.gguf); nullopt when that file is absent.
std::optional<std::string> find_smollm2_gguf();

// SHA-256 (FIPS 180-4), test-local.
std::string sha256_hex(const void* data, size_t n);
// SHA-256 of ids[begin, end) as little-endian uint32 — the encoding the reference generator hashes.
std::string ids_sha256(const std::vector<int32_t>& ids, size_t begin, size_t end);

// Compares ids with a "whole_file" reference object of make_tokenizer_refs.py (count, SHA-256 of the ids,
// SHA-256 per chunk of 4096 ids, head sample); "" when equal, else where the first difference is.
std::string compare_with_reference(const std::vector<int32_t>& ids, const nlohmann::json& whole_file);

// Reads only the key/value section of a GGUF file (v2/v3) into the form eval/model hands to the
// tokenizer: strings → JSON strings, integers → numbers, bools → booleans, arrays → arrays.
std::map<std::string, nlohmann::json> read_gguf_metadata(const std::string& path);

}  // namespace qeval::tokenizer::test
