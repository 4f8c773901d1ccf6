// The double-precision matrix products of the flux network's batch passes (flux_model.cpp):
// forward W A, backward W^T delta and the weight gradient delta A^T, with W at most 66 x 32 and a
// batch of a few hundred columns. In a portable (SSE2) build Eigen's products take ~40 % of a
// training epoch; on x86-64 CPUs with AVX2 + FMA a kernel chosen at run time takes 8 rows of the
// left factor at a time and holds an 8 x 6 block of the result in registers. Every entry is then
// a plain FMA sum over k in order, so it does not depend on the batch size or on where a column
// falls in a block; Eigen blocks its sums its own way, so the two paths agree to rounding, not
// bit for bit (`XPS_KERNELS=portable` keeps Eigen's products).
#pragma once

#include <Eigen/Core>

namespace xps {

// c = a b (c resized).
void network_product(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b, Eigen::MatrixXd& c);
// c = a^T b (c resized); `a_transposed` is scratch that keeps its allocation between calls.
void network_product_transposed_left(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b,
                                     Eigen::MatrixXd& c, Eigen::MatrixXd& a_transposed);
// c += a b^T (c must already be [a.rows() x b.rows()]).
void network_product_add_transposed_right(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b,
                                          Eigen::MatrixXd& c);

// Which path the products take on this machine: "avx2" or "portable".
const char* network_product_kernel_name();

}  // namespace xps
