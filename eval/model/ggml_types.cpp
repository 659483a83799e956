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
    case 6: return {"Q5_0", 32, 22, false};
    case 7: return {"Q5_1", 32, 24, false};
    case 8: return {"Q8_0", 32, 34, true};
    case 9: return {"Q8_1", 32, 36, false};
    case 10: return {"Q2_K", 256, 84, false};
    case 11: return {"Q3_K", 256, 110, false};
    case 12: return {"Q4_K", 256, 144, true};
    case 13: return {"Q5_K", 256, 176, false};
    case 14: return {"Q6_K", 256, 210, true};
    case 15: return {"Q8_K", 256, 292, false};
    case 16: return {"IQ2_XXS", 256, 66, false};
    case 17: return {"IQ2_XS", 256, 74, false};
    case 18: return {"IQ3_XXS", 256, 98, false};
    case 19: return {"IQ1_S", 256, 50, false};
    case 20: return {"IQ4_NL", 32, 18, false};
    case 21: return {"IQ3_S", 256, 110, false};
    case 22: return {"IQ2_S", 256, 82, false};
    case 23: return {"IQ4_XS", 256, 136, false};
    case 24: return {"I8", 1, 1, false};
    case 25: return {"I16", 1, 2, false};
    case 26: return {"I32", 1, 4, false};
    case 27: return {"I64", 1, 8, false};
    case 28: return {"F64", 1, 8, false};
    case 29: return {"IQ1_M", 256, 56, false};
    case 30: return {"BF16", 1, 2, true};
    case 34: return {"TQ1_0", 256, 54, false};
    case 35: return {"TQ2_0", 256, 66, false};
    case 39: return {"MXFP4", 32, 17, false};
    default: return {nullptr, 1, 1, false};
  }
}

}  // namespace qeval::model
