// gpu/vnni.hpp — host-side VNNI packing of int8 weights for the T2/T3 subgroup GEMM (layout: quant/layouts.h §4).
//
// The device packs with the pack_vnni kernel (gpu/kernels/quantize.cl); this host version states the layout
// once more in plain C++ so the tests can check the device packer word for word.
#pragma once

#include <cstdint>
#include <vector>

namespace qeval::gpu {

// Words of the packed form of an N×K matrix for subgroup size sg: ceil(N/sg)·ceil(K/32)·8·sg.
int64_t vnni_words(int64_t N, int64_t K, int sg);

// W: N×K signed int8 operands, row stride ldw. Returns the packed words (zero beyond N or K).
std::vector<uint32_t> pack_vnni_host(const int8_t* W, int64_t N, int64_t K, int64_t ldw, int sg);

}  // namespace qeval::gpu
