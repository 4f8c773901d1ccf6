// From prepared stars to catalog rows (DESIGN §1.5-1.6): starting-grid screen, the best start by
// the full loss, the fit (fast or paper optimiser), Fisher uncertainties and quality flags. Pure
// per-star work: threads and ranks belong to the caller (inference_run.cpp).
#pragma once

#include <cstddef>
#include <vector>

#include "xpstellar/catalog.hpp"
#include "xpstellar/inference_loss.hpp"
#include "xpstellar/inference_settings.hpp"
#include "xpstellar/inference_start.hpp"
#include "xpstellar/star_fit.hpp"
#include "xpstellar/uncertainty_calibration.hpp"

namespace xps {

// What every thread shares; immutable.
struct InferenceContext {
  const FluxModel& model;
  const GaussianMixtureDensity& prior;
  const StartGrid& start_grid;
  double ln_prior_cut;  // quality bit 4
  const InferenceSettings& settings;
  const UncertaintyCalibration* calibration = nullptr;  // applied to every fitted star if set
};

// Stars are screened this many at a time (one matrix product per block); block boundaries are
// fixed by the position in the chunk, so results do not depend on the number of threads.
inline constexpr std::size_t start_screen_block = 64;

class InferenceWorker {  // one per thread
public:
  explicit InferenceWorker(const InferenceContext& context);

  // Fits stars [begin, end) of `chunk` and writes their estimate columns (everything but
  // gdr3_source_id, ra, dec) into the same rows of `rows`, which the caller has sized.
  void infer_block(const InferenceChunk& chunk, std::size_t begin, std::size_t end, CatalogRows& rows);

private:
  void write_fit(const InferenceStar& star, const StarFit& fit, std::size_t row, CatalogRows& rows);

  const InferenceContext& m_context;
  InferenceLoss m_loss;
  StartScreenWorkspace m_screen;
  std::vector<InferenceStar> m_block;
  std::vector<std::size_t> m_block_rows;
  std::vector<std::vector<StartCandidate>> m_candidates;
  struct ScoredStart {
    double loss;
    StarVector parameters;
  };
  std::vector<ScoredStart> m_starts;
};

// Marks row `row` as not fitted: NaN estimates, quality bit 7, fit_status `status`.
void write_not_fitted(FitStatus status, int bands_used, std::size_t row, CatalogRows& rows);

}  // namespace xps
