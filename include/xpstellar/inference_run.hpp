// The inference stage as a whole (what xps_infer runs): read the model, list the star tables
// (optionally a range of them, for one task of a Slurm job array), skip the partitions whose
// catalog already exists (unless forced), hand the others out to the ranks dynamically (an atomic
// counter on rank 0), and for each stream its stars chunk by chunk through the per-star pipeline
// into catalog_<L>_<pixel>.h5, written under a temporary name and renamed. A partition that fails
// is reported by file name and reason; the others still finish.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <optional>
#include <string>

#include "xpstellar/inference_settings.hpp"

namespace xps {
class ParameterSet;

// `A:B` -> star tables at positions A .. B-1 of the pixel-sorted list; `A:` to the end; `A` alone
// is A:A+1. Throws UsageError for anything else.
struct PartitionRange {
  std::int64_t begin = 0;
  std::optional<std::int64_t> end;
};
PartitionRange parse_partition_range(const std::string& text);

struct InferenceRunOptions {
  std::string model_path;
  std::string stars_dir;
  std::string output_dir;
  PartitionRange partitions;
  bool force = false;
  InferenceSettings settings;
  std::string config_text;  // the effective configuration, recorded in every catalog
};

struct InferenceRunSummary {
  std::int64_t partitions_selected = 0, partitions_skipped = 0, partitions_done = 0,
               partitions_failed = 0;
  std::int64_t stars = 0, stars_fitted = 0, stars_not_converged = 0, stars_not_fitted = 0;
  std::int64_t flag_counts[8] = {};  // stars with each quality bit
  std::int64_t good = 0;             // quality_flags < 8
  double seconds = 0;
  int ranks = 1, threads = 1;
};

// Collective over `comm`. Throws UsageError or IoError for what stops every partition (unreadable
// model, no star tables); failures of single partitions are counted in the summary.
InferenceRunSummary run_inference(const InferenceRunOptions& options, MPI_Comm comm);

std::string format_inference_summary(const InferenceRunSummary& summary, const std::string& output_dir);

}  // namespace xps
