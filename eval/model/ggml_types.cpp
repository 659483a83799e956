// eval/model/ggml_types.cpp — the ggml type table (block sizes from ggml.c type_traits / gguf-py GGML_QUANT_SIZES).
#include "eval/model/ggml_types.hpp"

namespace qeval::model {

GgmlTypeTraits ggml_type_traits(uint32_t id) {
  // {name, elements per block, bytes per block, dequantizable}; k-quant blocks are 256 elements (QK_K).
  switch (id) {
    case 0: return {"F32", 1, 4, true};
    case 1: return {"F16", 1, 2, true};
    case 2: return {"Q4_0", 32, 18, true};
    case 3: return {"Q4_1", 32, 20, true};
    case 6: return {"Q5_0", 32, 22, true};
    case 7: return {"Q5_1", 32, 24, true};
    case 8: return {"Q8_0", 32, 34, true};
    case 9: return {"Q8_1", 32, 36, false};      // activation format; gguf-py cannot dequantize it either
    case 10: return {"Q2_K", 256, 84, true};
    case 11: return {"Q3_K", 256, 110, true};
    case 12: return {"Q4_K", 256, 144, true};
    case 13: return {"Q5_K", 256, 176, true};
    case 14: return {"Q6_K", 256, 210, true};
    case 15: return {"Q8_K", 256, 292, false};    // activation format, as Q8_1
    case 16: return {"IQ2_XXS", 256, 66, true};
    case 17: return {"IQ2_XS", 256, 74, true};
    case 18: return {"IQ3_XXS", 256, 98, true};
    case 19: return {"IQ1_S", 256, 50, true};
    case 20: return {"IQ4_NL", 32, 18, true};
    case 21: return {"IQ3_S", 256, 110, true};
    case 22: return {"IQ2_S", 256, 82, true};
    case 23: return {"IQ4_XS", 256, 136, true};
    case 24: return {"I8", 1, 1, false};
    case 25: return {"I16", 1, 2, false};
    case 26: return {"I32", 1, 4, false};
    case 27: return {"I64", 1, 8, false};
    case 28: return {"F64", 1, 8, false};
    case 29: return {"IQ1_M", 256, 56, true};
    case 30: return {"BF16", 1, 2, true};
    case 34: return {"TQ1_0", 256, 54, true};
    case 35: return {"TQ2_0", 256, 66, true};
    case 39: return {"MXFP4", 32, 17, true};
    case 40: return {"NVFP4", 64, 36, true};
    case 41: return {"Q1_0", 128, 18, false};     // newer than gguf-py 0.19.0's dequantizers
    case 42: return {"Q2_0", 64, 18, false};      // newer than gguf-py 0.19.0
    default: return {nullptr, 1, 1, false};
  }
}

std::string ggml_supported_type_names() {
  std::string out;
  for (uint32_t id = 0; id < kGgmlTypeIdLimit; ++id) {
    const GgmlTypeTraits tr = ggml_type_traits(id);
    if (tr.name && tr.dequantizable) out += (out.empty() ? "" : " ") + std::string(tr.name);
  }
  return out;
}

}  // namespace qeval::model
