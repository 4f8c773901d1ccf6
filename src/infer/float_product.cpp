#include "xpstellar/float_product.hpp"

#include "xpstellar/kernel_dispatch.hpp"

#include <stdexcept>
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif

namespace xps {

namespace {

void product_portable(const Eigen::MatrixXf& a, const Eigen::MatrixXf& b, Eigen::MatrixXf& c) {
  c.noalias() = a * b;
}

#if defined(__GNUC__) && defined(__x86_64__)
#define XPS_FLOAT_PRODUCT_X86 1

constexpr Eigen::Index panel_rows = 16;  // two AVX registers of A's column
constexpr Eigen::Index panel_cols = 6;   // 12 accumulators + 2 A + 1 broadcast of 16 registers

// C[rows, cols] of one 16-row panel, `cols` <= 6 columns starting at b / c (column-major).
template <int Cols>
XPS_TARGET_AVX2 inline void panel_kernel(const float* a, Eigen::Index lda, const float* b, Eigen::Index ldb,
                                         float* c, Eigen::Index ldc, Eigen::Index depth) {
  // Fully unrolled, so that the accumulators live in registers.
  __m256 low[Cols], high[Cols];
#pragma GCC unroll 8
  for (int j = 0; j < Cols; ++j) low[j] = high[j] = _mm256_setzero_ps();
  for (Eigen::Index k = 0; k < depth; ++k) {
    const __m256 a_low = _mm256_loadu_ps(a + k * lda), a_high = _mm256_loadu_ps(a + k * lda + 8);
#pragma GCC unroll 8
    for (int j = 0; j < Cols; ++j) {
      const __m256 bk = _mm256_broadcast_ss(b + j * ldb + k);
      low[j] = _mm256_fmadd_ps(a_low, bk, low[j]);
      high[j] = _mm256_fmadd_ps(a_high, bk, high[j]);
    }
  }
#pragma GCC unroll 8
  for (int j = 0; j < Cols; ++j) {
    _mm256_storeu_ps(c + j * ldc, low[j]);
    _mm256_storeu_ps(c + j * ldc + 8, high[j]);
  }
}

XPS_TARGET_AVX2 void product_avx2(const Eigen::MatrixXf& a, const Eigen::MatrixXf& b, Eigen::MatrixXf& c) {
  const Eigen::Index rows = a.rows(), depth = a.cols(), cols = b.cols();
  c.resize(rows, cols);
  const Eigen::Index full_rows = rows - rows % panel_rows;
  for (Eigen::Index i = 0; i < full_rows; i += panel_rows) {
    const float* a_panel = a.data() + i;
    Eigen::Index j = 0;
    for (; j + panel_cols <= cols; j += panel_cols)
      panel_kernel<panel_cols>(a_panel, rows, b.data() + j * depth, depth, c.data() + j * rows + i, rows, depth);
    for (; j < cols; ++j)
      panel_kernel<1>(a_panel, rows, b.data() + j * depth, depth, c.data() + j * rows + i, rows, depth);
  }
  // The last rows (fewer than 16) by plain sums in the same k order.
  for (Eigen::Index j = 0; j < cols; ++j)
    for (Eigen::Index i = full_rows; i < rows; ++i) {
      float sum = 0.0f;
      for (Eigen::Index k = 0; k < depth; ++k) sum += a(i, k) * b(k, j);
      c(i, j) = sum;
    }
}

using ProductKernel = void (*)(const Eigen::MatrixXf&, const Eigen::MatrixXf&, Eigen::MatrixXf&);
#endif

}  // namespace

void float_product(const Eigen::MatrixXf& a, const Eigen::MatrixXf& b, Eigen::MatrixXf& c) {
  if (a.cols() != b.rows()) throw std::logic_error("float_product: inner dimensions differ");
#ifdef XPS_FLOAT_PRODUCT_X86
  static const ProductKernel kernel = use_avx2_kernels() ? product_avx2 : product_portable;
  kernel(a, b, c);
#else
  product_portable(a, b, c);
#endif
}

const char* float_product_kernel_name() {
#ifdef XPS_FLOAT_PRODUCT_X86
  if (use_avx2_kernels()) return "avx2";
#endif
  return "portable";
}

}  // namespace xps
