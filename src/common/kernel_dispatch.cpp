#include "xpstellar/kernel_dispatch.hpp"

#include <cstdlib>
#include <string_view>

namespace xps {

bool use_avx2_kernels() {
  const char* requested = std::getenv("XPS_KERNELS");
  if (requested && std::string_view(requested) == "portable") return false;
#if defined(__GNUC__) && defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

}  // namespace xps
