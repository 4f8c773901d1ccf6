// C = A B for the float matrices of the inference start screen (inference_start.cpp): A tall
// [T x K] (the template table, T ~ 31,000, K = 66 bands), B short [K x N] (a block's data,
// N <= 128). Eigen's product in a portable (SSE2) build runs at ~30 GFLOP/s here; on x86-64 CPUs
// with AVX2 + FMA a kernel chosen at run time takes 16 rows of A at a time, keeps them in L1 while
// it sweeps every column of B (which stays in L2), and holds a 16 x 6 block of C in registers.
// The kernel sums over k in order with FMA; Eigen blocks and orders its sums its own way, so the two
// agree to float rounding, not bit for bit; `XPS_KERNELS=portable` keeps Eigen's product.
#pragma once

#include <Eigen/Dense>

namespace xps {

// c is resized to [a.rows() x b.cols()]; a.cols() must equal b.rows().
void float_product(const Eigen::MatrixXf& a, const Eigen::MatrixXf& b, Eigen::MatrixXf& c);

// Which path float_product takes on this machine: "avx2" or "portable".
const char* float_product_kernel_name();

}  // namespace xps
