#include "xpstellar/inference_star.hpp"

#include <cmath>
#include <limits>

#include "xpstellar/star_table.hpp"

namespace xps {

void InferenceChunk::reset(std::size_t n, int band_count) {
  bands = band_count;
  const auto m = static_cast<std::size_t>(band_count);
  whitening.resize(n * whitening_size(m));
  flux_for_fit.resize(n * m);
  flux_weight.resize(n * m);
  parallax.assign(n, 0.0);
  parallax_error.assign(n, 0.0);
  has_parallax.assign(n, 0);
  bands_used.assign(n, 0);
  status.assign(n, FitStatus::converged);
}

InferenceStar InferenceChunk::star(std::size_t i) const {
  const auto m = static_cast<std::size_t>(bands);
  InferenceStar s;
  s.whitening = whitening.data() + i * whitening_size(m);
  s.flux_for_fit = flux_for_fit.data() + i * m;
  s.flux_weight = flux_weight.data() + i * m;
  s.parallax = parallax[i];
  s.parallax_error = parallax_error[i];
  s.has_parallax = has_parallax[i] != 0;
  s.bands_used = bands_used[i];
  return s;
}

namespace {

FitStatus from_whitening(WhiteningStatus status) {
  switch (status) {
    case WhiteningStatus::ok: return FitStatus::converged;
    case WhiteningStatus::no_bands: return FitStatus::no_bands;
    case WhiteningStatus::non_finite_flux: return FitStatus::non_finite_flux;
    case WhiteningStatus::non_positive_variance: return FitStatus::non_positive_variance;
    case WhiteningStatus::not_positive_semidefinite: return FitStatus::not_positive_definite;
  }
  return FitStatus::not_positive_definite;
}

}  // namespace

void prepare_inference_star(const StarTable& table, std::size_t row, const FluxWhitening& whitening,
                            double parallax_zero_point, int free_parameters, InferenceChunk& chunk,
                            std::size_t slot, bool use_parallax) {
  const auto m = static_cast<std::size_t>(chunk.bands);
  float* variance = chunk.flux_weight.data() + slot * m;
  const WhiteningStatus status =
      whitening.whiten(table.flux.data() + row * m, table.flux_cov.data() + row * packed_triangle_size(m),
                       chunk.whitening.data() + slot * whitening_size(m), chunk.flux_for_fit.data() + slot * m,
                       variance);
  int used = 0;
  for (std::size_t b = 0; b < m; ++b) {
    const bool present = std::isfinite(variance[b]) && variance[b] > 0;
    used += present ? 1 : 0;
    variance[b] = present ? 1.0f / variance[b] : 0.0f;  // now the screen's weight
  }
  chunk.bands_used[slot] = used;
  const double parallax = static_cast<double>(table.parallax[row]) - parallax_zero_point;
  const double error = table.parallax_error[row];
  const bool has_parallax = use_parallax && std::isfinite(parallax) && std::isfinite(error) && error > 0;
  chunk.parallax[slot] = has_parallax ? parallax : 0.0;
  chunk.parallax_error[slot] = has_parallax ? error : 0.0;
  chunk.has_parallax[slot] = has_parallax ? 1 : 0;
  FitStatus fit = from_whitening(status);
  if (fit == FitStatus::converged && !has_parallax && used < free_parameters)
    fit = FitStatus::no_information;
  chunk.status[slot] = fit;
}

}  // namespace xps
