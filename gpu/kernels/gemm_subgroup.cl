// gpu/kernels/gemm_subgroup.cl — T2 / T3 / emulated-T3 int8 GEMM on the VNNI-packed weight layout
// (quant/layouts.h, section 4): one subgroup of SG lanes computes an 8 × SG block of C with one
// 8-row × 32-k × SG-column multiply-accumulate per K block, exactly the operation of
// cl_intel_subgroup_matrix_multiply_accumulate's intel_sub_group_i8_i8_matrix_mad_k32 (M = 8):
//   a: row m of the 8×32 A block; lane l holds bytes 4l … 4l+3 (SG = 8, an int) or 2l, 2l+1 (SG = 16, a short);
//   b: column n = lane of the 32×SG B block, 8 words of 4 consecutive k (the VNNI packing);
//   acc.s_m += Σ_k A[m][k]·B[k][lane].
// QEVAL_SG_MODE selects who performs that operation:
//   3 = XMX (T3): the extension's built-in, on Intel GPUs with the extension;
//   2 = T2: cl_intel_subgroups shuffles gather the A words across lanes, dot4 per word (the extension
//       spec's own functional description of the built-in), B through intel_sub_group_block_read8;
//   1 = emulated T3: no subgroup extension at all — lanes are work-items (lane = local id mod SG), the A
//       words are exchanged through local memory and B is read lane by lane at the same addresses a block
//       read would use. Same tile loop, same indexing, same packed layout: it keeps T3's data path tested
//       on devices without the extension (PoCL). It is slow and is never chosen for speed.
#include "common.cl"

#ifndef QEVAL_SG
#define QEVAL_SG 8
#endif
#ifndef QEVAL_SG_MODE
#define QEVAL_SG_MODE 1
#endif
#ifndef QEVAL_WG_SG
#define QEVAL_WG_SG 4  // subgroups per work-group, side by side along N
#endif
#ifndef QEVAL_EPI
#define QEVAL_EPI 0
#endif
#define SG QEVAL_SG

#if QEVAL_SG_MODE >= 2
#pragma OPENCL EXTENSION cl_intel_subgroups : enable
#define LANE ((int)get_sub_group_local_id())
#define SGID ((int)get_sub_group_id())
#define SG_ATTR __attribute__((intel_reqd_sub_group_size(SG)))
#else
// The emulation's lane arithmetic uses the run-time lane count (= SG): with the constant, PoCL's LLVM 15 spends
// many minutes compiling the SG = 16 variant; the value is the same.
#define SGR ((int)(get_local_size(0) / QEVAL_WG_SG))
#define LANE ((int)(get_local_id(0) % SGR))
#define SGID ((int)(get_local_id(0) / SGR))
#define SG_ATTR
#endif

#if SG == 8
typedef int8 a_vec;   // per lane: 4 bytes of each of the 8 rows
typedef int a_elem;
#elif SG == 16 && QEVAL_SG_MODE >= 2
typedef short8 a_vec;  // per lane: 2 bytes of each of the 8 rows
typedef short a_elem;
#elif SG == 16
// Emulation: the same 2 bytes per lane and row, carried in ints (PoCL's LLVM 15 spends minutes on the short8
// version of this kernel) and stored as ushort into the exchange buffer.
typedef int8 a_vec;
typedef int a_elem;
#else
#error "QEVAL_SG must be 8 or 16"
#endif

// The K word j (bytes 4j … 4j+3 of the 32-byte block) of row m, gathered from the lanes that hold it.
#if QEVAL_SG_MODE == 2
inline uint a_word(a_elem v, int j) {
#if SG == 8
  return (uint)intel_sub_group_shuffle(v, (uint)j);
#else
  const uint lo = (uint)(ushort)intel_sub_group_shuffle((int)v, (uint)(2 * j));
  const uint hi = (uint)(ushort)intel_sub_group_shuffle((int)v, (uint)(2 * j + 1));
  return lo | (hi << 16);
#endif
}
#endif

#if QEVAL_SG_MODE == 3
#define MMA(a, b, acc) intel_sub_group_i8_i8_matrix_mad_k32((a), (b), (acc))
#elif QEVAL_SG_MODE == 2
inline int8 mma_shuffle(a_vec a, int8 b, int8 acc) {
  for (int j = 0; j < 8; ++j) {
    const uint bj = (uint)((j == 0) ? b.s0 : (j == 1) ? b.s1 : (j == 2) ? b.s2 : (j == 3) ? b.s3
                         : (j == 4) ? b.s4 : (j == 5) ? b.s5 : (j == 6) ? b.s6 : b.s7);
    acc.s0 = dot4_acc(a_word(a.s0, j), bj, acc.s0);
    acc.s1 = dot4_acc(a_word(a.s1, j), bj, acc.s1);
    acc.s2 = dot4_acc(a_word(a.s2, j), bj, acc.s2);
    acc.s3 = dot4_acc(a_word(a.s3, j), bj, acc.s3);
    acc.s4 = dot4_acc(a_word(a.s4, j), bj, acc.s4);
    acc.s5 = dot4_acc(a_word(a.s5, j), bj, acc.s5);
    acc.s6 = dot4_acc(a_word(a.s6, j), bj, acc.s6);
    acc.s7 = dot4_acc(a_word(a.s7, j), bj, acc.s7);
  }
  return acc;
}
#define MMA(a, b, acc) mma_shuffle((a), (b), (acc))
#else
// Emulation through local memory: ex[sg][m][lane] holds every lane's A element (row m = 32 contiguous bytes in k
// order, i.e. 8 words, whatever SG is); all work-items of the
// work-group reach the barriers (the tile loop is uniform).
#if SG == 8
typedef uint ex_t;    // bytes 4·lane … 4·lane+3 of a row
#else
typedef ushort ex_t;  // bytes 2·lane, 2·lane+1 of a row
#endif
inline int8 mma_emulated(a_vec a, int8 b, int8 acc, __local uint* ex, int sg, int lane) {
  __local ex_t* mine = (__local ex_t*)(ex + sg * 8 * 8);
  const int L = SGR;
  mine[0 * L + lane] = (ex_t)a.s0;
  mine[1 * L + lane] = (ex_t)a.s1;
  mine[2 * L + lane] = (ex_t)a.s2;
  mine[3 * L + lane] = (ex_t)a.s3;
  mine[4 * L + lane] = (ex_t)a.s4;
  mine[5 * L + lane] = (ex_t)a.s5;
  mine[6 * L + lane] = (ex_t)a.s6;
  mine[7 * L + lane] = (ex_t)a.s7;
  barrier(CLK_LOCAL_MEM_FENCE);
  __local const uint* w32 = ex + sg * 8 * 8;  // row m, word j = w32[m·8 + j] (4 bytes = 32 k / 8)
  int r0 = acc.s0, r1 = acc.s1, r2 = acc.s2, r3 = acc.s3, r4 = acc.s4, r5 = acc.s5, r6 = acc.s6, r7 = acc.s7;
  // Each row's 32 bytes are contiguous in ex (SG lanes × 4 or 2 bytes), i.e. 8 words whatever SG is.
#pragma unroll 1
  for (int j = 0; j < 8; ++j) {
    const uint bj = (uint)((j == 0) ? b.s0 : (j == 1) ? b.s1 : (j == 2) ? b.s2 : (j == 3) ? b.s3
                         : (j == 4) ? b.s4 : (j == 5) ? b.s5 : (j == 6) ? b.s6 : b.s7);
    r0 = dot4_acc(w32[0 * 8 + j], bj, r0);
    r1 = dot4_acc(w32[1 * 8 + j], bj, r1);
    r2 = dot4_acc(w32[2 * 8 + j], bj, r2);
    r3 = dot4_acc(w32[3 * 8 + j], bj, r3);
    r4 = dot4_acc(w32[4 * 8 + j], bj, r4);
    r5 = dot4_acc(w32[5 * 8 + j], bj, r5);
    r6 = dot4_acc(w32[6 * 8 + j], bj, r6);
    r7 = dot4_acc(w32[7 * 8 + j], bj, r7);
  }
  barrier(CLK_LOCAL_MEM_FENCE);
  return (int8)(r0, r1, r2, r3, r4, r5, r6, r7);
}
#define MMA(a, b, acc) mma_emulated((a), (b), (acc), ex, sg, lane)
#endif

// This lane's A element of row `row` in the 32-byte K block starting at k (zero outside the matrix),
// with the storage-code XOR applied to the bytes in range only.
inline a_elem load_a(__global const uchar* A, int lda, int M, int K, int row, int k, int lane, uint a_xor) {
  if (row >= M) return (a_elem)0;
#if SG == 8
  const int k0 = k + 4 * lane;
  __global const uchar* p = A + (size_t)row * (size_t)lda + k0;
  uint w = 0;
  for (int i = 0; i < 4; ++i)
    if (k0 + i < K) w |= ((uint)p[i] ^ (a_xor & 0xFFu)) << (8 * i);
  return (a_elem)w;
#else
  const int k0 = k + 2 * lane;
  __global const uchar* p = A + (size_t)row * (size_t)lda + k0;
  uint w = 0;
  for (int i = 0; i < 2; ++i)
    if (k0 + i < K) w |= ((uint)p[i] ^ (a_xor & 0xFFu)) << (8 * i);
  return (a_elem)(short)w;  // emulation: a_elem is int, the sign-extended value's low 16 bits are the bytes
#endif
}

// Wp: the VNNI-packed weights, (ceil(N/SG) tiles) × KB blocks × 8 words × SG lanes of uint (layouts.h).
__kernel SG_ATTR __attribute__((reqd_work_group_size(SG * QEVAL_WG_SG, 1, 1))) void gemm_vnni(
    int M, int N, int K, __global const uchar* A, int lda, uint a_xor, __global const uint* Wp, int KB,
    __global int* C, int ldc, __global float* Y, int ldy, QEVAL_EPI_PARAMS) {
  const int lane = LANE;
  const int sg = SGID;
  const int ntiles = (N + SG - 1) / SG;
  const int tile_raw = get_group_id(0) * QEVAL_WG_SG + sg;
  const int tile = min(tile_raw, ntiles - 1);  // idle subgroups still run the loop (barriers in emulation)
  const int n = tile * SG + lane;
  const int m0 = get_group_id(1) * 8;
#if QEVAL_SG_MODE == 1
  __local uint ex[QEVAL_WG_SG * 8 * 8];  // 8 rows × 32 bytes (8 words) per subgroup
#endif
  int8 acc = (int8)(0);
#if QEVAL_EPI
  float8 y = (float8)(0.0f);
#endif
  for (int kb = 0; kb < KB; ++kb) {
    const int k = kb * 32;
    a_vec a;
    a.s0 = load_a(A, lda, M, K, m0 + 0, k, lane, a_xor);
    a.s1 = load_a(A, lda, M, K, m0 + 1, k, lane, a_xor);
    a.s2 = load_a(A, lda, M, K, m0 + 2, k, lane, a_xor);
    a.s3 = load_a(A, lda, M, K, m0 + 3, k, lane, a_xor);
    a.s4 = load_a(A, lda, M, K, m0 + 4, k, lane, a_xor);
    a.s5 = load_a(A, lda, M, K, m0 + 5, k, lane, a_xor);
    a.s6 = load_a(A, lda, M, K, m0 + 6, k, lane, a_xor);
    a.s7 = load_a(A, lda, M, K, m0 + 7, k, lane, a_xor);
    __global const uint* bp = Wp + ((size_t)tile * (size_t)KB + (size_t)kb) * (size_t)(8 * SG);
#if QEVAL_SG_MODE >= 2
    const int8 b = as_int8(intel_sub_group_block_read8(bp));  // lane l gets bp[j·SG + l], j = 0..7
#else
    const int L = SGR;
    const int8 b = (int8)((int)bp[0 * L + lane], (int)bp[1 * L + lane], (int)bp[2 * L + lane],
                          (int)bp[3 * L + lane], (int)bp[4 * L + lane], (int)bp[5 * L + lane],
                          (int)bp[6 * L + lane], (int)bp[7 * L + lane]);
#endif
    acc = MMA(a, b, acc);
#if QEVAL_EPI
    const int k_end = min(k + 32, K);  // segments are multiples of 32, or K
    if (k_end % seg == 0 || k_end == K) {
      const int s = (k_end - 1) / seg;
      const int G = min(seg, K - s * seg);
      const bool ok = tile_raw < ntiles && n < N;
      const int accs[8] = {acc.s0, acc.s1, acc.s2, acc.s3, acc.s4, acc.s5, acc.s6, acc.s7};
      float ys[8] = {y.s0, y.s1, y.s2, y.s3, y.s4, y.s5, y.s6, y.s7};
      for (int m = 0; m < 8; ++m)
        if (ok && m0 + m < M) ys[m] += epi_term(m0 + m, n, accs[m], s, G, QEVAL_EPI_ARGS);
      y = (float8)(ys[0], ys[1], ys[2], ys[3], ys[4], ys[5], ys[6], ys[7]);
      acc = (int8)(0);
    }
#endif
  }
  if (tile_raw >= ntiles || n >= N) return;
#if QEVAL_EPI
  const float ys[8] = {y.s0, y.s1, y.s2, y.s3, y.s4, y.s5, y.s6, y.s7};
  for (int m = 0; m < 8; ++m)
    if (m0 + m < M) Y[(size_t)(m0 + m) * (size_t)ldy + n] = ys[m];
#else
  const int cs[8] = {acc.s0, acc.s1, acc.s2, acc.s3, acc.s4, acc.s5, acc.s6, acc.s7};
  for (int m = 0; m < 8; ++m)
    if (m0 + m < M) C[(size_t)(m0 + m) * (size_t)ldc + n] = cs[m];
#endif
}
