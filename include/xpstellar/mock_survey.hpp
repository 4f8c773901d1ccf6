// The synthetic survey `xps_mock` writes: truth model + observation model -> partitioned star
// tables with /truth (DESIGN §4). Generation is distributed over the ranks of a communicator and
// the output is identical whatever their number.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <string>
#include <vector>

#include "xpstellar/mock_truth.hpp"
#include "xpstellar/star_table.hpp"

namespace xps {
class ParameterSet;
}

namespace xps::mock {

void declare_mock_parameters(ParameterSet& parameters);

struct PartitionCount {
  std::int64_t pixel = 0;
  std::int64_t stars = 0;
};

struct MockSummary {
  int healpix_level = 0;
  std::vector<PartitionCount> partitions;  // sorted by pixel
  std::int64_t stars = 0;
  std::int64_t labelled = 0;
  std::int64_t binaries = 0;
  std::int64_t pathological = 0;
  std::int64_t missing_tmass = 0;
  std::int64_t missing_unwise = 0;
  double median_xp_snr = 0;  // median over stars of the median S/N of the 61 XP samples
  double median_g = 0;
  double median_E = 0;
};

// Turns truth stars into an observed star table: noise with realistic covariances, NIR errors and
// crowding, parallax errors and zero-point, labels, pathologies.
class ObservationModel {
public:
  explicit ObservationModel(const ParameterSet& parameters, const TruthModel& truth);
  ~ObservationModel();
  ObservationModel(ObservationModel&&) noexcept;
  ObservationModel& operator=(ObservationModel&&) noexcept;

  // Fills row `row` of `table` (already sized, with standard bands) from `star`.
  void observe(const TruthStar& star, StarTable& table, std::size_t row) const;
  // The XP flux covariance (61 x 61, row-major) of a star with noiseless flux `flux` and G.
  std::vector<double> xp_covariance(const BandFluxes& flux, double g_mag) const;

private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

// A star table for `stars` (sorted by index) observed with `observation`; standard bands, truth.
// `buffer`, a table no longer needed, lends its memory (streaming many partitions then touches no
// new pages).
StarTable make_star_table(const std::vector<TruthStar>& stars, const ObservationModel& observation,
                          const TruthModel& truth, int healpix_level, std::int64_t healpix_pixel,
                          StarTable buffer = {});

// Generates the whole survey into `output_dir` (created if missing), collectively over `comm`.
// Returns the same summary on every rank.
MockSummary run_mock_survey(const ParameterSet& parameters, const std::string& output_dir,
                            MPI_Comm comm);

}  // namespace xps::mock

namespace xps::mock {
// One screen: counts per partition, label and binary fractions, median S/N, G and E.
std::string format_mock_summary(const MockSummary& summary);
}  // namespace xps::mock
