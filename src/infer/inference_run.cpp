#include "xpstellar/inference_run.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <sstream>

#include "xpstellar/catalog.hpp"
#include "xpstellar/error.hpp"
#include "xpstellar/model_file.hpp"
#include "xpstellar/mpi_session.hpp"
#include "xpstellar/partition.hpp"
#include "xpstellar/progress.hpp"
#include "xpstellar/star_inference.hpp"
#include "xpstellar/star_table.hpp"

namespace xps {

PartitionRange parse_partition_range(const std::string& text) {
  auto parse = [&text](const std::string& part) {
    std::size_t used = 0;
    long long value = -1;
    try {
      value = std::stoll(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used != part.size() || value < 0)
      throw UsageError("--partitions '" + text + "': expected A:B, A: or A with integers A < B >= 0");
    return static_cast<std::int64_t>(value);
  };
  PartitionRange range;
  const auto colon = text.find(':');
  if (colon == std::string::npos) {
    range.begin = parse(text);
    range.end = range.begin + 1;
    return range;
  }
  range.begin = parse(text.substr(0, colon));
  if (colon + 1 < text.size()) range.end = parse(text.substr(colon + 1));
  if (range.end && *range.end < range.begin)
    throw UsageError("--partitions '" + text + "': the end is before the beginning");
  return range;
}

namespace {

namespace fs = std::filesystem;

struct Partition {
  std::string table;    // path of the star table
  std::string catalog;  // path of its catalog
  std::int64_t rows = 0;
};

// stars_<L>_<pixel>.h5 -> catalog_<L>_<pixel>.h5 in the output directory
std::string catalog_path_for(const std::string& table, const std::string& output_dir) {
  const std::string name = fs::path(table).filename().string();
  return (fs::path(output_dir) / ("catalog_" + name.substr(std::string("stars_").size()))).string();
}

// Rank 0 lists and selects; every rank gets the same list. Partitions with a catalog are skipped.
std::vector<Partition> select_partitions(const InferenceRunOptions& options, MPI_Comm comm,
                                         InferenceRunSummary& summary) {
  std::string listing, failure;
  if (comm_rank(comm) == 0) {
    try {
      const std::vector<std::string> tables = list_star_tables(options.stars_dir);
      if (tables.empty()) throw UsageError("no star tables stars_<L>_<pixel>.h5 in " + options.stars_dir);
      const auto count = static_cast<std::int64_t>(tables.size());
      const std::int64_t begin = std::min(options.partitions.begin, count);
      const std::int64_t end = std::min(options.partitions.end.value_or(count), count);
      std::ostringstream out;
      for (std::int64_t i = begin; i < end; ++i) {
        const std::string& table = tables[static_cast<std::size_t>(i)];
        ++summary.partitions_selected;
        const std::string catalog = catalog_path_for(table, options.output_dir);
        if (!options.force && fs::exists(catalog)) {
          ++summary.partitions_skipped;
          continue;
        }
        std::int64_t rows = 0;
        try {
          rows = static_cast<std::int64_t>(read_star_table_info(table).rows);
        } catch (const std::exception&) {
          rows = 0;  // reported when its turn comes
        }
        out << table << '\n' << catalog << '\n' << rows << '\n';
      }
      listing = out.str();
    } catch (const std::exception& error) {
      failure = error.what();
    }
  }
  broadcast_string(failure, comm);
  if (!failure.empty()) throw UsageError(failure);
  broadcast_string(listing, comm);
  MPI_Bcast(&summary.partitions_selected, 1, MPI_INT64_T, 0, comm);
  MPI_Bcast(&summary.partitions_skipped, 1, MPI_INT64_T, 0, comm);
  std::vector<Partition> partitions;
  std::istringstream in(listing);
  Partition p;
  while (std::getline(in, p.table) && std::getline(in, p.catalog) && in >> p.rows) {
    in.ignore();
    partitions.push_back(p);
  }
  return partitions;
}

// The next partition index for whichever rank asks first: an atomic counter on rank 0.
class WorkCounter {
public:
  explicit WorkCounter(MPI_Comm comm) {
    const MPI_Aint size = comm_rank(comm) == 0 ? sizeof(std::int64_t) : 0;
    MPI_Win_allocate(size, sizeof(std::int64_t), MPI_INFO_NULL, comm, &m_base, &m_window);
    if (comm_rank(comm) == 0) {
      MPI_Win_lock(MPI_LOCK_EXCLUSIVE, 0, 0, m_window);
      *m_base = 0;
      MPI_Win_unlock(0, m_window);
    }
    MPI_Barrier(comm);
  }
  ~WorkCounter() { MPI_Win_free(&m_window); }
  WorkCounter(const WorkCounter&) = delete;
  WorkCounter& operator=(const WorkCounter&) = delete;

  std::int64_t next() {
    const std::int64_t one = 1;
    std::int64_t value = 0;
    MPI_Win_lock(MPI_LOCK_SHARED, 0, 0, m_window);
    MPI_Fetch_and_op(&one, &value, MPI_INT64_T, 0, 0, MPI_SUM, m_window);
    MPI_Win_unlock(0, m_window);
    return value;
  }

private:
  MPI_Win m_window = MPI_WIN_NULL;
  std::int64_t* m_base = nullptr;
};

// Counts of one rank, reduced at the end: partitions done/failed, stars, flags.
struct Tally {
  std::int64_t done = 0, failed = 0, stars = 0, fitted = 0, not_converged = 0, not_fitted = 0, good = 0;
  std::int64_t flags[8] = {};

  void add(const CatalogRows& rows) {
    for (std::size_t i = 0; i < rows.rows(); ++i) {
      ++stars;
      const auto status = static_cast<FitStatus>(rows.fit_status[i]);
      const std::uint8_t quality = rows.quality_flags[i];
      if (quality & quality_not_fitted) ++not_fitted;
      else if (status == FitStatus::not_converged) ++not_converged, ++fitted;
      else ++fitted;
      if (quality < 8) ++good;
      for (int bit = 0; bit < 8; ++bit)
        if (quality & (1u << bit)) ++flags[bit];
    }
  }
};

struct SharedModel {
  ModelFile file;
  std::string checksum;
  std::unique_ptr<GaussianMixtureDensity> prior;
  std::unique_ptr<StartGrid> start_grid;
  CovarianceInflation inflation;  // the model file's with the run's model-error terms
  std::unique_ptr<FluxWhitening> whitening;
};

SharedModel load_model(const InferenceRunOptions& options) {
  SharedModel shared;
  shared.file = read_model_file(options.model_path);
  if (!shared.file.prior)
    throw IoError(options.model_path + ": the model file has no /prior/gmm (write it with xps_train)");
  shared.checksum = file_checksum(options.model_path);
  shared.prior = std::make_unique<GaussianMixtureDensity>(shared.file.prior->mixture);
  shared.start_grid = std::make_unique<StartGrid>(shared.file.model, shared.file.prior->mixture,
                                                  shared.file.wavelength_nm, options.settings.start);
  shared.inflation = with_model_error(shared.file.inflation, options.settings.model_error);
  shared.whitening = std::make_unique<FluxWhitening>(shared.file.band_names, shared.file.wavelength_nm,
                                                     shared.inflation);
  return shared;
}

const UncertaintyCalibration* calibration_of(const ModelFile& file, const InferenceSettings& settings) {
  return settings.calibrate && file.calibration ? &*file.calibration : nullptr;
}

void check_bands(const StarTable& table, const ModelFile& model, const std::string& path) {
  if (table.band_names != model.band_names)
    throw IoError(path + ": its bands (" + std::to_string(table.bands()) +
                  ") are not the model's (" + std::to_string(model.band_names.size()) +
                  "): star table and model must be sampled alike");
}

void infer_partition(const Partition& partition, const InferenceRunOptions& options,
                     const SharedModel& shared, const InferenceContext& context,
                     std::vector<std::unique_ptr<InferenceWorker>>& workers, ProgressMeter& progress,
                     Tally& tally) {
  const StarTableInfo info = read_star_table_info(partition.table);
  CatalogAttributes attributes;
  attributes.healpix_level = info.healpix_level;
  attributes.healpix_pixel = info.healpix_pixel;
  attributes.star_table = fs::path(partition.table).filename().string();
  attributes.model_file = fs::path(options.model_path).filename().string();
  attributes.model_checksum = shared.checksum;
  attributes.parallax_zero_point = options.settings.parallax_zero_point;
  attributes.model_error_level_frac = shared.inflation.level_frac;
  attributes.model_error_smooth_frac = shared.inflation.smooth_frac;
  attributes.model_error_smooth_length_nm = shared.inflation.smooth_length_nm;
  attributes.calibrated = calibration_of(shared.file, options.settings) != nullptr;
  attributes.optimizer = optimizer_name(options.settings.optimizer);
  attributes.config_text = options.config_text;
  attributes.code_version = XPS_VERSION;
  CatalogWriter writer(partition.catalog, info.rows, attributes);

  const auto chunk_size = static_cast<std::size_t>(options.settings.chunk_stars);
  const int free_parameters = shared.file.model.use_xi ? 6 : 5;
  InferenceChunk chunk;
  CatalogRows rows;
  Tally local;
  for (std::size_t first = 0; first < info.rows; first += chunk_size) {
    const std::size_t n = std::min(chunk_size, info.rows - first);
    const StarTable table = read_star_table_rows(partition.table, first, n, {true, false});
    if (first == 0) check_bands(table, shared.file, partition.table);
    chunk.reset(n, static_cast<int>(table.bands()));
    rows.reset(n);
    std::copy(table.source_id.begin(), table.source_id.end(), rows.gdr3_source_id.begin());
    std::copy(table.ra.begin(), table.ra.end(), rows.ra.begin());
    std::copy(table.dec.begin(), table.dec.end(), rows.dec.begin());
    const auto count = static_cast<std::int64_t>(n);
#pragma omp parallel for schedule(dynamic, 16)
    for (std::int64_t i = 0; i < count; ++i)
      prepare_inference_star(table, static_cast<std::size_t>(i), *shared.whitening,
                             options.settings.parallax_zero_point, free_parameters, chunk,
                             static_cast<std::size_t>(i), options.settings.use_parallax);
    const auto blocks = static_cast<std::int64_t>((n + start_screen_block - 1) / start_screen_block);
#pragma omp parallel for schedule(dynamic, 1)
    for (std::int64_t block = 0; block < blocks; ++block) {
      auto& worker = workers[static_cast<std::size_t>(omp_get_thread_num())];
      if (!worker) worker = std::make_unique<InferenceWorker>(context);
      const std::size_t begin = static_cast<std::size_t>(block) * start_screen_block;
      worker->infer_block(chunk, begin, std::min(n, begin + start_screen_block), rows);
    }
    writer.write(first, rows);
    local.add(rows);
    progress.advance_local(count);
  }
  writer.commit();
  tally.stars += local.stars;
  tally.fitted += local.fitted;
  tally.not_converged += local.not_converged;
  tally.not_fitted += local.not_fitted;
  tally.good += local.good;
  for (int bit = 0; bit < 8; ++bit) tally.flags[bit] += local.flags[bit];
  ++tally.done;
}

}  // namespace

InferenceRunSummary run_inference(const InferenceRunOptions& options, MPI_Comm comm) {
  const auto start = std::chrono::steady_clock::now();
  InferenceRunSummary summary;
  summary.ranks = comm_size(comm);
  summary.threads = omp_get_max_threads();
  const std::vector<Partition> partitions = select_partitions(options, comm, summary);

  // Every rank reads the model itself (a few hundred kB); failures are the same everywhere.
  const SharedModel shared = load_model(options);
  if (comm_rank(comm) == 0) {
    std::error_code error;
    fs::create_directories(options.output_dir, error);
    if (error) throw IoError(options.output_dir + ": cannot create the output directory: " + error.message());
  }
  MPI_Barrier(comm);

  std::int64_t total_stars = 0;
  for (const Partition& p : partitions) total_stars += p.rows;
  io_out(comm) << "xps_infer: " << partitions.size() << " partition(s) to do, " << summary.partitions_skipped
               << " already done (--force redoes them), " << total_stars << " stars; optimizer "
               << optimizer_name(options.settings.optimizer) << ", " << summary.ranks << " rank(s) x "
               << summary.threads << " thread(s)\n"
               << std::flush;

  const InferenceContext context{shared.file.model, *shared.prior, *shared.start_grid,
                                 shared.file.prior->ln_prior_cut, options.settings,
                                 calibration_of(shared.file, options.settings)};
  std::vector<std::unique_ptr<InferenceWorker>> workers(static_cast<std::size_t>(std::max(1, summary.threads)));
  ProgressMeter progress(comm, "inference (stars)", total_stars, options.settings.log_interval_seconds);
  Tally tally;
  {
    WorkCounter counter(comm);
    for (std::int64_t next = counter.next(); next < static_cast<std::int64_t>(partitions.size());
         next = counter.next()) {
      const Partition& partition = partitions[static_cast<std::size_t>(next)];
      try {
        infer_partition(partition, options, shared, context, workers, progress, tally);
      } catch (const std::exception& error) {
        ++tally.failed;
        std::cerr << "xps_infer: partition " << partition.table << " failed: " << error.what() << '\n'
                  << std::flush;
      }
    }
    MPI_Barrier(comm);
  }
  progress.finish_collective();

  std::int64_t totals[15] = {tally.done, tally.failed, tally.stars, tally.fitted, tally.not_converged,
                             tally.not_fitted, tally.good};
  for (int bit = 0; bit < 8; ++bit) totals[7 + bit] = tally.flags[bit];
  MPI_Allreduce(MPI_IN_PLACE, totals, 15, MPI_INT64_T, MPI_SUM, comm);
  summary.partitions_done = totals[0];
  summary.partitions_failed = totals[1];
  summary.stars = totals[2];
  summary.stars_fitted = totals[3];
  summary.stars_not_converged = totals[4];
  summary.stars_not_fitted = totals[5];
  summary.good = totals[6];
  for (int bit = 0; bit < 8; ++bit) summary.flag_counts[bit] = totals[7 + bit];
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

std::string format_inference_summary(const InferenceRunSummary& s, const std::string& output_dir) {
  std::ostringstream out;
  out << "inference summary\n"
      << "  partitions: " << s.partitions_selected << " selected, " << s.partitions_done << " done, "
      << s.partitions_skipped << " skipped (catalog present), " << s.partitions_failed << " failed\n"
      << "  stars: " << s.stars << " (" << s.stars_fitted << " fitted, of which " << s.stars_not_converged
      << " not converged; " << s.stars_not_fitted << " not fitted)\n"
      << "  quality_flags < 8: " << s.good << "\n  stars per quality bit:";
  for (int bit = 3; bit < 8; ++bit) out << " [" << bit << "] " << s.flag_counts[bit];
  const double cores = static_cast<double>(s.ranks) * s.threads;
  out << "\n  time: " << s.seconds << " s; " << (s.seconds > 0 ? static_cast<double>(s.stars) / s.seconds / cores : 0.0)
      << " stars/s per core (" << s.ranks << " rank(s) x " << s.threads << " thread(s))\n"
      << "  catalogs: " << output_dir << "/catalog_<L>_<pixel>.h5 (schema docs/catalog.md)\n";
  return out.str();
}

}  // namespace xps
