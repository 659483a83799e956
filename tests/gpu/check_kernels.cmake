# tests/gpu/check_kernels.cmake — type-checks every kernel variant with clang's OpenCL C front end, including the
# tiers no CI device runs: T1 (cl_khr_integer_dot_product), T2 (cl_intel_subgroups), T3 (the XMX built-in,
# declared here as in the cl_intel_subgroup_matrix_multiply_accumulate spec) and T0's NVIDIA dp4a assembly.
# A syntax/type error in a tier that only a real Intel or NVIDIA GPU would compile is caught in CI.
# Run by CTest: cmake -DCLANG=<clang> -DROOT=<repo> -DWORK=<dir> -P check_kernels.cmake
execute_process(COMMAND ${CLANG} -print-resource-dir OUTPUT_VARIABLE RES OUTPUT_STRIP_TRAILING_WHITESPACE)
set(HDR ${RES}/include/opencl-c.h)
if(NOT EXISTS ${HDR})
  message(FATAL_ERROR "no opencl-c.h under ${RES}/include")
endif()
file(MAKE_DIRECTORY ${WORK})
file(WRITE ${WORK}/mma_decl.h
  "int8 __attribute__((overloadable)) intel_sub_group_i8_i8_matrix_mad_k32(int8 a, int8 b, int8 acc);\n"
  "int8 __attribute__((overloadable)) intel_sub_group_i8_i8_matrix_mad_k32(short8 a, int8 b, int8 acc);\n")
set(BASE -x cl -cl-std=CL1.2 -fsyntax-only --target=spir64 -Xclang -include -Xclang ${HDR}
         -I${ROOT} -I${ROOT}/gpu/kernels)
set(T1 "-DQEVAL_DOT4_KHR=1,-Dcl_khr_integer_dot_product=1,-D__opencl_c_integer_dot_product_input_4x8bit_packed=1")
set(variants
  "quantize.cl|-DQEVAL_VEC=4"
  "quantize.cl|-DQEVAL_VEC=1,-DQEVAL_IN_HALF=1"
  "quantize.cl|-DQEVAL_HAS_FP64=1,-Dcl_khr_fp64=1,-DQEVAL_VEC=4"
  "quantize.cl|-DQEVAL_PARAMS_IN=1"
  "quantize.cl|-DQEVAL_HAS_FP64=1,-Dcl_khr_fp64=1,-DQEVAL_PARAMS_DEVICE=1,-DQEVAL_VEC=8,-DQEVAL_MAX_NV=16"
  "quantize.cl|-DQEVAL_VEC=8,-DQEVAL_IN_HALF=1,-DQEVAL_CL_APPROX_RECIP=1"
  "quantize.cl|--target=nvptx64,-Dasm=__asm__,-DQEVAL_NV_SHFL=1,-DQEVAL_VEC=4,-DQEVAL_HAS_FP64=1,-Dcl_khr_fp64=1,-DQEVAL_PARAMS_DEVICE=1"
  "dequantize.cl|-DQEVAL_CL_APPROX_RECIP=1"
  "dequantize.cl|-DQEVAL_HAS_FP64=1,-Dcl_khr_fp64=1"
  "dequantize.cl|"
  "gemm_tiled.cl|-DQEVAL_EPI=1"
  "gemm_tiled.cl|-DQEVAL_W_BITS=4,-DQEVAL_BM=64,-DQEVAL_BN=64,-DQEVAL_TM=4,-DQEVAL_TN=4"
  "gemm_tiled.cl|${T1},-DQEVAL_EPI=1"
  "gemm_tiled.cl|--target=nvptx64,-Dasm=__asm__,-DQEVAL_DOT4_NV=1"
  "gemm_tiled.cl|-DQEVAL_BK=64,-DQEVAL_BM=128,-DQEVAL_BN=256,-DQEVAL_TM=8,-DQEVAL_TN=16,-DQEVAL_EPI=1,-DQEVAL_W_BITS=4"
  "gemm_tiled.cl|--target=nvptx64,-Dasm=__asm__,-DQEVAL_DOT4_NV=1,-DQEVAL_BK=64,-DQEVAL_TM=16,-DQEVAL_BM=256"
  "gemm_decode.cl|-DQEVAL_EPI=1"
  "gemm_decode.cl|${T1},-DQEVAL_DEC_TPC=32,-DQEVAL_DEC_J=4"
  "gemm_decode.cl|--target=nvptx64,-Dasm=__asm__,-DQEVAL_DOT4_NV=1"
  "gemm_decode.cl|-DQEVAL_DEC_MMAX=1,-DQEVAL_DEC_STAGE_A=0,-DQEVAL_DEC_RPT=4,-DQEVAL_DEC_J=4,-DQEVAL_DEC_TPC=8"
  "gemm_decode.cl|--target=nvptx64,-Dasm=__asm__,-DQEVAL_DOT4_NV=1,-DQEVAL_NV_SHFL=1,-DQEVAL_DEC_RPT=2,-DQEVAL_DEC_J=4,-DQEVAL_EPI=1"
  "gemm_subgroup.cl|-DQEVAL_SG=8,-DQEVAL_SG_MODE=1,-DQEVAL_EPI=1"
  "gemm_subgroup.cl|-DQEVAL_SG=16,-DQEVAL_SG_MODE=1"
  "gemm_subgroup.cl|-Dcl_intel_subgroups=1,-DQEVAL_SG=8,-DQEVAL_SG_MODE=2,-DQEVAL_EPI=1"
  "gemm_subgroup.cl|-Dcl_intel_subgroups=1,-DQEVAL_SG=16,-DQEVAL_SG_MODE=2"
  "gemm_subgroup.cl|-Dcl_intel_subgroups=1,-include,${WORK}/mma_decl.h,-DQEVAL_SG=8,-DQEVAL_SG_MODE=3,-DQEVAL_EPI=1"
  "gemm_subgroup.cl|-Dcl_intel_subgroups=1,-include,${WORK}/mma_decl.h,-DQEVAL_SG=16,-DQEVAL_SG_MODE=3"
  "matmul_a16.cl|-DQEVAL_IN_HALF=1"
  "bench.cl|--target=nvptx64,-Dasm=__asm__,-DQEVAL_DOT4_NV=1"
)
set(failed 0)
foreach(v IN LISTS variants)
  string(REPLACE "," ";" v "${v}")  # variants: "file|flag,flag,..."
  string(REPLACE "|" ";" parts "${v}")
  list(GET parts 0 file)
  list(REMOVE_AT parts 0)
  execute_process(COMMAND ${CLANG} ${BASE} ${parts} ${ROOT}/gpu/kernels/${file}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(SEND_ERROR "${file} [${parts}]:\n${err}")
    math(EXPR failed "${failed} + 1")
  else()
    message(STATUS "ok: ${file} [${parts}]")
  endif()
endforeach()
if(failed)
  message(FATAL_ERROR "${failed} kernel variant(s) failed the clang OpenCL C check")
endif()
