// gpu/embedded_sources.hpp — the OpenCL C sources of gpu/kernels/, embedded at build time (gpu/tools/embed_cl.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace qeval::gpu {

struct EmbeddedSource {
  const char* name;  // file name, e.g. "gemm_tiled.cl"
  const char* text;  // with every #include resolved (quant/layouts.h inlined)
  size_t size;
  uint64_t hash;     // FNV-1a 64 of text
};

// All embedded kernel files (generated source).
const EmbeddedSource* embedded_sources(size_t* count);
// The committed tuning tables of gpu/tuning/*.json (generated source; gpu/tuning.hpp reads them).
const EmbeddedSource* embedded_tuning_tables(size_t* count);

// The file `name`; throws std::invalid_argument listing the embedded names when it does not exist.
const EmbeddedSource& embedded_source(const std::string& name);

}  // namespace qeval::gpu
