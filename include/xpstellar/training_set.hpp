// The training stars (DESIGN §1.4): which labelled stars train the model, in a canonical order
// that does not depend on the number of ranks, and this rank's slice of them, loaded and whitened
// once (DESIGN §1.2) and kept resident.
//
// Canonical order: star tables in the order of list_star_tables (partition.hpp), rows in file order, keeping the stars that
// have labels, fall in the training part of the split (a hash of source_id), and pass the
// cheap sanity checks. It is cut into `virtual_shards` contiguous shards; rank r of K owns shards
// [r V / K, (r + 1) V / K), i.e. one contiguous slice. Stars whose spectra cannot be whitened stay
// in the order, marked excluded, so that the order is known before any spectrum is read.
//
// Memory per resident star: the float32 whitening L (whitening_size(M) * 4 B = 9,248 B for M = 66,
// lower triangular with rows padded to four floats), the flux
// and per-band sigma (2 M * 4 B), the labels, priors and flags (~120 B), and the star's parameters
// and optimiser moments of the trainer (3 * 6 * 8 B): about 10.0 KB for M = 66.
#pragma once

#include <mpi.h>

#include <Eigen/Dense>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "xpstellar/flux_whitening.hpp"
#include "xpstellar/training_settings.hpp"

namespace xps {

struct StarTable;

// Whether row `row` of a star table carries spectroscopic labels (any of Teff, logg, [Fe/H]).
bool has_labels(const StarTable& table, std::size_t row);

// Whether a star belongs to the validation part of the split: a SplitMix64 hash of
// (source_id + salt * golden ratio) mapped to [0, 1) is below `fraction` (never for fraction 0).
// tools/ reproduce it.
bool is_validation_star(std::int64_t source_id, double fraction, std::uint64_t salt);

// Why a labelled star is not trained on. The first four are decided from the cheap columns before
// the canonical order is fixed; the whitening failures after the spectra are read.
enum class Exclusion : std::uint8_t {
  none = 0,
  absurd_labels,        // non-finite label, error <= 0, or outside the configured ranges
  bad_parallax,         // non-finite parallax or parallax error <= 0
  no_bands,             // whitening failures (WhiteningStatus)
  non_finite_flux,
  non_positive_variance,
  not_positive_semidefinite,
  count
};
const char* exclusion_name(Exclusion reason);

struct TrainingSetSummary {
  std::int64_t table_rows = 0;      // all rows of all tables
  std::int64_t unlabelled = 0;      // no spectroscopic labels
  std::int64_t validation = 0;      // held out by the split
  std::int64_t candidates = 0;      // rows of the canonical order
  std::int64_t usable = 0;          // candidates that can be trained on
  std::int64_t high_quality = 0;    // usable and in the HQ subset
  std::array<std::int64_t, static_cast<int>(Exclusion::count)> excluded{};  // per reason
};
std::string format_training_set_summary(const TrainingSetSummary& summary);

struct TrainingStars {
  std::vector<std::string> tables;           // all ranks: the star tables, canonical order
  std::vector<double> wavelength_nm;         // [M]
  std::vector<std::string> band_names;       // [M]
  std::vector<double> truth_extinction_R;    // [M] /truth/meta/extinction_R if mock, else empty
  std::int64_t total = 0;                    // rows of the canonical order, all ranks
  std::int64_t first_row = 0;                // this rank's slice [first_row, first_row + size())
  int virtual_shards = 1;
  std::vector<std::int64_t> shard_begin;     // [V + 1] canonical row where each shard starts
  int first_shard = 0, end_shard = 0;        // this rank's shards [first_shard, end_shard)

  // Per local star.
  std::vector<std::int64_t> source_id;
  std::vector<std::int32_t> table_index;     // into `tables`
  std::vector<std::int64_t> table_row;
  std::vector<float> whitening;              // [n x whitening_size(M)] per star
  std::vector<float> flux_for_fit;           // [n x M], 0 at missing bands
  std::vector<float> flux_sigma;             // [n x M] sqrt of the inflated variance; inf if missing
  Eigen::Matrix3Xd label, label_error;       // teff [K], feh, logg
  Eigen::VectorXd parallax, parallax_error;  // mas, zero point subtracted
  Eigen::VectorXd E_prior, E_prior_error;    // inflated error; NaN where no prior
  std::vector<Exclusion> exclusion;
  std::vector<std::uint8_t> high_quality;

  int bands() const { return static_cast<int>(wavelength_nm.size()); }
  std::int64_t size() const { return static_cast<std::int64_t>(source_id.size()); }
  bool usable(std::int64_t i) const { return exclusion[static_cast<std::size_t>(i)] == Exclusion::none; }
};

// Collective over `comm`: scans the cheap columns of every table (ranks split the rows), fixes the
// canonical order, then each rank reads and whitens its slice. Throws UsageError if the tables
// disagree on bands or more ranks than virtual shards are used, IoError for unreadable files.
TrainingStars load_training_stars(const std::vector<std::string>& tables,
                                  const TrainingSettings& settings, MPI_Comm comm,
                                  TrainingSetSummary& summary);

}  // namespace xps
