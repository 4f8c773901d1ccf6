// A star as inference sees it (DESIGN §1.5): its whitened flux (DESIGN §1.2, with the model's
// inflation), per-band inflated variances for the starting-grid screen, and its parallax with the
// zero point subtracted. Stars are prepared a chunk at a time; a chunk owns the memory and hands out
// light views.
#pragma once

#include <cstddef>
#include <vector>

#include "xpstellar/catalog.hpp"
#include "xpstellar/flux_whitening.hpp"
#include "xpstellar/star_loss.hpp"

namespace xps {

struct StarTable;

struct InferenceStar {
  const float* whitening = nullptr;      // [whitening_size(M)], lower triangular
  const float* flux_for_fit = nullptr;   // [M], 0 where missing
  const float* flux_weight = nullptr;    // [M] 1 / inflated variance, 0 where missing
  double parallax = 0;                   // mas, zero point subtracted
  double parallax_error = 0;             // mas; the parallax term is used only if has_parallax
  bool has_parallax = false;
  int bands_used = 0;
  // Training: a labelled star's measurements. When set, the loss is L_star (labels, parallax and
  // E prior from here) instead of L_inf, and the fields parallax* above are not used.
  const StarMeasurements* labels = nullptr;
};

struct InferenceChunk {
  int bands = 0;
  std::vector<float> whitening, flux_for_fit, flux_weight;
  std::vector<double> parallax, parallax_error;
  std::vector<unsigned char> has_parallax;
  std::vector<int> bands_used;
  std::vector<FitStatus> status;  // converged = ready to fit; otherwise why it cannot be

  std::size_t size() const { return status.size(); }
  // Sizes for n stars of `bands` bands, reusing memory.
  void reset(std::size_t n, int bands);
  InferenceStar star(std::size_t i) const;
};

// Prepares row `row` of `table` into slot `slot` of `chunk` (sized by reset). Thread-safe for
// distinct slots. A star that cannot be fitted gets its FitStatus and is left unprepared.
// `free_parameters` (5 or 6) decides when a star without parallax has too few bands.
// `use_parallax` false fits the spectrum alone, as if the star had no parallax measurement.
void prepare_inference_star(const StarTable& table, std::size_t row, const FluxWhitening& whitening,
                            double parallax_zero_point, int free_parameters, InferenceChunk& chunk,
                            std::size_t slot, bool use_parallax = true);

}  // namespace xps
