// Training checkpoints (issue 4): everything a training run needs to continue bit-identically,
// written atomically by all ranks together into one HDF5 file per checkpoint,
// `<dir>/checkpoint_<global step, 12 digits>.h5`. Stars are stored in the canonical training
// order (independent of the number of ranks), each rank writing its contiguous slice, so a run
// may resume with a different rank count. A checksum over every stored number detects a torn or
// corrupted file; the loader then falls back to the previous checkpoint.
#pragma once

#include <mpi.h>

#include <Eigen/Dense>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace xps {

inline constexpr int checkpoint_schema_version = 1;

// Where the run is: the phase (0-based index into the recipe), the epoch within the phase, the
// step within the phase, and the step counted over the whole run (names the file).
struct TrainingPosition {
  std::int32_t phase = 0;
  std::int64_t epoch = 0;
  std::int64_t step_in_phase = 0;
  std::int64_t global_step = 0;
  bool phase_complete = false;  // written at a phase end, before the next phase starts
};

// First and second moments of an optimiser (SGD momentum uses only the first; Adam both) and its
// step count (Adam's bias correction).
struct OptimizerMoments {
  Eigen::VectorXd first, second;
  std::int64_t steps = 0;
};

// Per-star state of this rank's contiguous slice of the canonical order.
struct StarSliceState {
  std::int64_t first_row = 0;            // position of the slice in the canonical order
  std::vector<std::int64_t> source_id;   // [n]
  Eigen::MatrixXd parameters;            // [6 x n]: teff [K], feh, logg, ln parallax, ln E, xi
  Eigen::MatrixXd first_moment;          // [6 x n] star optimiser
  Eigen::MatrixXd second_moment;         // [6 x n]
  std::vector<std::int64_t> optimizer_steps;  // [n] star optimiser steps (Adam bias correction)
  std::vector<std::uint8_t> outlier;     // [n] self-cleaning bits (0 = kept)
};

struct TrainingCheckpoint {
  TrainingPosition position;
  std::uint64_t seed = 0;
  std::string config_text;            // effective INI; resume refuses a different one
  Eigen::VectorXd global_parameters;  // the flux model flattened (FluxModel pack order)
  OptimizerMoments model_optimizer;
  std::int64_t total_stars = 0;       // rows in the canonical order, all ranks
  StarSliceState stars;               // this rank's slice

  // Set by the readers, ignored by the writer: the file the checkpoint was read from and its
  // verified checksum (the same whatever the number of ranks that wrote or read it).
  std::string source_path;
  std::uint64_t checksum = 0;
};

// `<dir>/checkpoint_<global_step, zero-padded to 12 digits>.h5`.
std::string training_checkpoint_path(const std::string& dir, std::int64_t global_step);

// Collective: every rank passes its slice (slices in rank order must tile [0, total_stars)).
// Writes `<dir>/checkpoint_<step>.h5.tmp`, renames it, then deletes all but the newest `keep`
// checkpoints. Returns the path written. Throws IoError naming the file.
// Details: the position, seed, config, total_stars and model_optimizer are taken from rank 0. A
// star moment matrix is either 6 x n on every rank with rows, or empty (size 0) on every rank
// (stored as [0,6], read back as an empty matrix). `dir` is created if missing. After the
// rename, checkpoints with a larger global_step than this one (an abandoned run) and stale
// `.tmp` files are deleted too; keep <= 0 keeps every older checkpoint.
std::string write_training_checkpoint(const std::string& dir, const TrainingCheckpoint& checkpoint,
                                      int keep, MPI_Comm comm);

// Collective: finds the newest checkpoint in `dir` whose checksum verifies (warning on stderr,
// rank 0, for each one skipped and why) and reads rows [first_row, first_row + rows) of the star
// slice into this rank's checkpoint. Returns nullopt if the directory holds no valid checkpoint.
// A file is skipped when it cannot be read, lacks a dataset, has another schema version, or its
// global_step differs from its name or its checksum does not verify; `.tmp` files are ignored.
// Rows outside [0, total_stars) are an IoError (on every rank), not a reason to skip.
std::optional<TrainingCheckpoint> read_latest_training_checkpoint(const std::string& dir,
                                                                  std::int64_t first_row,
                                                                  std::int64_t rows,
                                                                  MPI_Comm comm);

// The stars of a checkpoint are needed before the slice is known (to check total_stars); this
// reads only the position, seed, config and total_stars of the newest valid checkpoint.
// (It also returns the model vectors; stars is empty. Validity is checked as above, so peek and
// read agree on which checkpoint is the newest valid one.)
std::optional<TrainingCheckpoint> peek_latest_training_checkpoint(const std::string& dir,
                                                                  MPI_Comm comm);

}  // namespace xps
