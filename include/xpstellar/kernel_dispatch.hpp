// Which kernels a portable (SSE2-baseline) x86-64 build runs: the AVX2 + FMA ones when the CPU
// has them, unless XPS_KERNELS=portable is set in the environment (to test the portable kernels on
// AVX2 machines). The flux model's tanh/exp, the whitened chi^2 and the start screen's products
// all ask here, once each.
#pragma once

// The attribute that compiles one function for AVX2 + FMA inside a portable build; such a function
// may run only when use_avx2_kernels() said so.
#if defined(__GNUC__) && defined(__x86_64__)
#define XPS_TARGET_AVX2 __attribute__((target("avx2,fma")))
#endif

namespace xps {

// True when the AVX2 + FMA kernels should run (always false off x86-64 or without GCC builtins).
bool use_avx2_kernels();

}  // namespace xps
