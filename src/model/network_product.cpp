#include "xpstellar/network_product.hpp"

#include <stdexcept>
#include <string>

#include "xpstellar/kernel_dispatch.hpp"
#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif

namespace xps {

namespace {

// A right-hand factor read with arbitrary strides, so that b^T needs no copy: entry (k, j) is
// data[k * depth_stride + j * column_stride].
struct RightFactor {
  const double* data;
  Eigen::Index depth_stride, column_stride;
};

// c [rows x cols] (= or +=) a [rows x depth, column-major] times the right factor [depth x cols].
using ProductKernel = void (*)(const double* a, Eigen::Index rows, Eigen::Index depth,
                               RightFactor b, Eigen::Index cols, double* c, bool accumulate);

#if defined(__GNUC__) && defined(__x86_64__)
#define XPS_NETWORK_PRODUCT_X86 1

constexpr Eigen::Index panel_columns = 6;  // 12 accumulators + 2 of a + 1 broadcast of 16 registers

// One panel: 4 * Vectors rows of c (the last vector's lanes limited by `mask` when Masked) by
// Cols columns, each entry an FMA sum over k in order.
template <int Vectors, int Cols, bool Masked>
XPS_TARGET_AVX2 inline void panel(const double* a, Eigen::Index lda, RightFactor b, double* c,
                                  Eigen::Index ldc, Eigen::Index depth, __m256i mask,
                                  bool accumulate) {
  __m256d sum[Vectors][Cols];
#pragma GCC unroll 8
  for (int j = 0; j < Cols; ++j)
#pragma GCC unroll 2
    for (int v = 0; v < Vectors; ++v) sum[v][j] = _mm256_setzero_pd();
  for (Eigen::Index k = 0; k < depth; ++k) {
    __m256d a_k[Vectors];
#pragma GCC unroll 2
    for (int v = 0; v < Vectors; ++v) {
      const double* column = a + k * lda + 4 * v;
      if constexpr (Masked)
        a_k[v] = _mm256_maskload_pd(column, mask);
      else
        a_k[v] = _mm256_loadu_pd(column);
    }
    const double* b_k = b.data + k * b.depth_stride;
#pragma GCC unroll 8
    for (int j = 0; j < Cols; ++j) {
      const __m256d b_kj = _mm256_broadcast_sd(b_k + j * b.column_stride);
#pragma GCC unroll 2
      for (int v = 0; v < Vectors; ++v) sum[v][j] = _mm256_fmadd_pd(a_k[v], b_kj, sum[v][j]);
    }
  }
#pragma GCC unroll 8
  for (int j = 0; j < Cols; ++j)
#pragma GCC unroll 2
    for (int v = 0; v < Vectors; ++v) {
      double* out = c + j * ldc + 4 * v;
      if constexpr (Masked) {
        const __m256d value =
            accumulate ? _mm256_add_pd(_mm256_maskload_pd(out, mask), sum[v][j]) : sum[v][j];
        _mm256_maskstore_pd(out, mask, value);
      } else {
        _mm256_storeu_pd(out, accumulate ? _mm256_add_pd(_mm256_loadu_pd(out), sum[v][j]) : sum[v][j]);
      }
    }
}

// Every column of one row panel: blocks of six, then the remaining one to five.
template <int Vectors, bool Masked>
XPS_TARGET_AVX2 void row_panel(const double* a, Eigen::Index lda, RightFactor b, Eigen::Index cols,
                               double* c, Eigen::Index ldc, Eigen::Index depth, __m256i mask,
                               bool accumulate) {
  Eigen::Index j = 0;
  const auto at = [&](Eigen::Index column) {
    return RightFactor{b.data + column * b.column_stride, b.depth_stride, b.column_stride};
  };
  for (; j + panel_columns <= cols; j += panel_columns)
    panel<Vectors, panel_columns, Masked>(a, lda, at(j), c + j * ldc, ldc, depth, mask, accumulate);
  double* rest = c + j * ldc;
  switch (cols - j) {
    case 5: panel<Vectors, 5, Masked>(a, lda, at(j), rest, ldc, depth, mask, accumulate); break;
    case 4: panel<Vectors, 4, Masked>(a, lda, at(j), rest, ldc, depth, mask, accumulate); break;
    case 3: panel<Vectors, 3, Masked>(a, lda, at(j), rest, ldc, depth, mask, accumulate); break;
    case 2: panel<Vectors, 2, Masked>(a, lda, at(j), rest, ldc, depth, mask, accumulate); break;
    case 1: panel<Vectors, 1, Masked>(a, lda, at(j), rest, ldc, depth, mask, accumulate); break;
    default: break;
  }
}

XPS_TARGET_AVX2 void product_avx2(const double* a, Eigen::Index rows, Eigen::Index depth,
                                  RightFactor b, Eigen::Index cols, double* c, bool accumulate) {
  const __m256i all = _mm256_set1_epi64x(-1);
  Eigen::Index i = 0;
  for (; i + 8 <= rows; i += 8) row_panel<2, false>(a + i, rows, b, cols, c + i, rows, depth, all, accumulate);
  if (i + 4 <= rows) {
    row_panel<1, false>(a + i, rows, b, cols, c + i, rows, depth, all, accumulate);
    i += 4;
  }
  if (i < rows) {
    const __m256i lanes_left = _mm256_set1_epi64x(rows - i);
    const __m256i mask = _mm256_cmpgt_epi64(lanes_left, _mm256_setr_epi64x(0, 1, 2, 3));
    row_panel<1, true>(a + i, rows, b, cols, c + i, rows, depth, mask, accumulate);
  }
}

ProductKernel selected_kernel() {
  static const ProductKernel kernel = use_avx2_kernels() ? product_avx2 : nullptr;
  return kernel;
}
#else
ProductKernel selected_kernel() { return nullptr; }
#endif

void check_inner(Eigen::Index left, Eigen::Index right, const char* what) {
  if (left != right) throw std::logic_error(std::string(what) + ": inner dimensions differ");
}

}  // namespace

void network_product(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b, Eigen::MatrixXd& c) {
  check_inner(a.cols(), b.rows(), "network_product");
  const ProductKernel kernel = selected_kernel();
  if (!kernel) {
    c.noalias() = a * b;
    return;
  }
  c.resize(a.rows(), b.cols());
  kernel(a.data(), a.rows(), a.cols(), RightFactor{b.data(), 1, b.rows()}, b.cols(), c.data(), false);
}

void network_product_transposed_left(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b,
                                     Eigen::MatrixXd& c, Eigen::MatrixXd& a_transposed) {
  check_inner(a.rows(), b.rows(), "network_product_transposed_left");
  if (!selected_kernel()) {
    c.noalias() = a.transpose() * b;
    return;
  }
  // The kernel loads columns of its left factor as vectors; a^T's are rows of a, so copy (a is
  // a weight matrix, small next to the batch).
  a_transposed = a.transpose();
  network_product(a_transposed, b, c);
}

void network_product_add_transposed_right(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b,
                                          Eigen::MatrixXd& c) {
  check_inner(a.cols(), b.cols(), "network_product_add_transposed_right");
  if (c.rows() != a.rows() || c.cols() != b.rows())
    throw std::logic_error("network_product_add_transposed_right: c has the wrong shape");
  const ProductKernel kernel = selected_kernel();
  if (!kernel) {
    c.noalias() += a * b.transpose();
    return;
  }
  kernel(a.data(), a.rows(), a.cols(), RightFactor{b.data(), b.rows(), 1}, b.rows(), c.data(), true);
}

const char* network_product_kernel_name() { return selected_kernel() ? "avx2" : "portable"; }

}  // namespace xps
