// Per-star training results (issue 4): one HDF5 file per star table, `training_<L>_<pixel>.h5`,
// whose rows are the star table's rows in the same order, so that h5py users can index both with
// the same mask. Schema in docs/training.md.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace xps {

inline constexpr int training_results_schema_version = 1;

// What a star was to the training run.
enum class TrainingRole : std::uint8_t {
  unlabelled = 0,  // no spectroscopic labels
  trained = 1,     // in the training set and trained on
  validation = 2,  // held out by the split
  excluded = 3     // labelled, in the training part, but bad input (see `exclusion`)
};

struct TrainingResultsTable {
  int healpix_level = 0;
  std::int64_t healpix_pixel = 0;
  std::string star_table;  // file name of the star table the rows align with
  std::string model;       // file name of the model
  std::vector<std::int64_t> source_id;
  std::vector<std::uint8_t> role, exclusion, outlier;  // exclusion: training_set.hpp Exclusion
  std::vector<float> teff, feh, logg, parallax, E, xi, chi2;  // fitted; NaN unless trained
  std::size_t rows() const { return source_id.size(); }
  void resize(std::size_t rows);  // NaN floats, zero integers
};

// By one process, atomically (`.tmp` then rename). Throws IoError naming the file.
void write_training_results(const std::string& path, const TrainingResultsTable& table);
TrainingResultsTable read_training_results(const std::string& path);

// "training_<level>_<pixel>.h5"
std::string training_results_file_name(int level, std::int64_t pixel);

}  // namespace xps
