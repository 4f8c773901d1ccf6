// Distributed generation of the mock survey. Each rank draws the truth stars of a contiguous index
// block, the stars travel to the rank that owns their partition (MPI_Alltoallv), and each owner
// observes and writes its partitions. Every star depends only on (seed, index), partitions are
// sorted by index, so the files are the same whatever the number of ranks.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <limits>
#include <stdexcept>
#include <map>
#include <numeric>
#include <sstream>

#include "xpstellar/config.hpp"
#include "xpstellar/mock_survey.hpp"
#include "xpstellar/mpi_session.hpp"
#include "xpstellar/partition.hpp"
#include "xpstellar/progress.hpp"

namespace xps::mock {
namespace {

double median(std::vector<double> values) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  const auto middle = values.begin() + static_cast<std::ptrdiff_t>(values.size() / 2);
  std::nth_element(values.begin(), middle, values.end());
  return *middle;
}

// Partitions go to ranks largest first, each to the least-loaded rank (ties: lowest rank), which
// balances the work and depends only on the global counts.
std::map<std::int64_t, int> assign_partitions(const std::vector<PartitionCount>& partitions,
                                              int ranks) {
  std::vector<PartitionCount> by_size = partitions;
  std::stable_sort(by_size.begin(), by_size.end(),
                   [](const auto& a, const auto& b) { return a.stars > b.stars; });
  std::vector<std::int64_t> load(static_cast<std::size_t>(ranks), 0);
  std::map<std::int64_t, int> owner;
  for (const auto& partition : by_size) {
    const auto least = std::min_element(load.begin(), load.end()) - load.begin();
    owner[partition.pixel] = static_cast<int>(least);
    load[static_cast<std::size_t>(least)] += partition.stars;
  }
  return owner;
}

std::vector<PartitionCount> count_partitions(const std::vector<TruthStar>& stars, int level,
                                             MPI_Comm comm) {
  std::vector<std::int64_t> counts(static_cast<std::size_t>(healpix_pixel_count(level)), 0);
  for (const auto& star : stars) ++counts[static_cast<std::size_t>(healpix_pixel_from_radec(star.ra, star.dec, level))];
  MPI_Allreduce(MPI_IN_PLACE, counts.data(), static_cast<int>(counts.size()), MPI_INT64_T,
                MPI_SUM, comm);
  std::vector<PartitionCount> partitions;
  for (std::size_t pixel = 0; pixel < counts.size(); ++pixel)
    if (counts[pixel] > 0) partitions.push_back({static_cast<std::int64_t>(pixel), counts[pixel]});
  return partitions;
}

// Sends every truth star to the rank that owns its partition.
std::vector<TruthStar> exchange_stars(const std::vector<TruthStar>& stars, int level,
                                      const std::map<std::int64_t, int>& owner, MPI_Comm comm) {
  const int ranks = comm_size(comm);
  std::vector<std::vector<TruthStar>> outgoing(static_cast<std::size_t>(ranks));
  for (const auto& star : stars)
    outgoing[static_cast<std::size_t>(owner.at(healpix_pixel_from_radec(star.ra, star.dec, level)))]
        .push_back(star);
  constexpr auto record = static_cast<int>(sizeof(TruthStar));
  std::vector<int> send_counts(static_cast<std::size_t>(ranks)), send_offsets(send_counts.size());
  std::vector<TruthStar> send_buffer;
  for (int r = 0; r < ranks; ++r) {
    const auto& block = outgoing[static_cast<std::size_t>(r)];
    // MPI counts are int: one exchange carries at most 2 GiB per pair of ranks.
    if (block.size() * sizeof(TruthStar) > static_cast<std::size_t>(std::numeric_limits<int>::max()) / 2)
      throw std::runtime_error("mock: " + std::to_string(block.size()) +
                               " stars to send from one rank to another exceed one MPI exchange; "
                               "run with more ranks");
    send_offsets[static_cast<std::size_t>(r)] = static_cast<int>(send_buffer.size()) * record;
    send_counts[static_cast<std::size_t>(r)] = static_cast<int>(block.size()) * record;
    send_buffer.insert(send_buffer.end(), block.begin(), block.end());
  }
  std::vector<int> receive_counts(send_counts.size()), receive_offsets(send_counts.size());
  MPI_Alltoall(send_counts.data(), 1, MPI_INT, receive_counts.data(), 1, MPI_INT, comm);
  int total = 0;
  for (std::size_t r = 0; r < receive_counts.size(); ++r) {
    receive_offsets[r] = total;
    total += receive_counts[r];
  }
  std::vector<TruthStar> received(static_cast<std::size_t>(total / record));
  MPI_Alltoallv(send_buffer.data(), send_counts.data(), send_offsets.data(), MPI_BYTE,
                received.data(), receive_counts.data(), receive_offsets.data(), MPI_BYTE, comm);
  return received;
}

struct LocalTally {
  std::int64_t stars = 0, labelled = 0, binaries = 0, pathological = 0, missing_tmass = 0,
               missing_unwise = 0;
  std::vector<double> xp_snr, g, e;

  void add(const StarTable& table) {
    const std::size_t bands = table.bands();
    for (std::size_t row = 0; row < table.rows(); ++row) {
      ++stars;
      labelled += std::isfinite(table.labels.teff[row]) ? 1 : 0;
      binaries += table.truth.is_binary[row];
      pathological += table.truth.pathology[row] != 0 ? 1 : 0;
      missing_tmass += std::isnan(table.flux[row * bands + band_j]) ? 1 : 0;
      missing_unwise += std::isnan(table.flux[row * bands + band_w1]) ? 1 : 0;
      std::vector<double> snr(xp_sample_count);
      for (std::size_t k = 0; k < xp_sample_count; ++k)
        snr[k] = table.flux[row * bands + k] /
                 std::sqrt(table.flux_cov[row * packed_triangle_size(bands) +
                                          packed_triangle_index(k, k, bands)]);
      xp_snr.push_back(median(snr));
      g.push_back(table.phot_g_mean_mag[row]);
      e.push_back(table.truth.E[row]);
    }
  }
};

MockSummary summarise(const LocalTally& tally, std::vector<PartitionCount> partitions, int level,
                      MPI_Comm comm) {
  MockSummary summary;
  summary.healpix_level = level;
  summary.partitions = std::move(partitions);
  std::int64_t counts[6] = {tally.stars,        tally.labelled,      tally.binaries,
                            tally.pathological, tally.missing_tmass, tally.missing_unwise};
  MPI_Allreduce(MPI_IN_PLACE, counts, 6, MPI_INT64_T, MPI_SUM, comm);
  summary.stars = counts[0];
  summary.labelled = counts[1];
  summary.binaries = counts[2];
  summary.pathological = counts[3];
  summary.missing_tmass = counts[4];
  summary.missing_unwise = counts[5];
  double medians[3] = {median(gather_doubles_to_root(tally.xp_snr, comm)),
                       median(gather_doubles_to_root(tally.g, comm)), median(gather_doubles_to_root(tally.e, comm))};
  MPI_Bcast(medians, 3, MPI_DOUBLE, 0, comm);
  summary.median_xp_snr = medians[0];
  summary.median_g = medians[1];
  summary.median_E = medians[2];
  return summary;
}

}  // namespace

StarTable make_star_table(const std::vector<TruthStar>& stars, const ObservationModel& observation,
                          const TruthModel& truth, int healpix_level, std::int64_t healpix_pixel,
                          StarTable buffer) {
  StarTable table = std::move(buffer);
  table.healpix_level = healpix_level;
  table.healpix_pixel = healpix_pixel;
  table.wavelength_nm = standard_wavelengths_nm();
  table.band_names = standard_band_names();
  table.has_truth = true;
  table.reset(stars.size());
  const BandFluxes curve = truth.extinction_R(truth.r_v_mean());
  std::copy(curve.begin(), curve.end(), table.truth.extinction_R.begin());
  for (std::size_t row = 0; row < stars.size(); ++row) observation.observe(stars[row], table, row);
  return table;
}

MockSummary run_mock_survey(const ParameterSet& parameters, const std::string& output_dir,
                            MPI_Comm comm) {
  const int rank = comm_rank(comm), ranks = comm_size(comm);
  const std::int64_t total = parameters.integer("survey.stars");
  const int level = static_cast<int>(parameters.integer("survey.healpix_level"));
  const TruthModel truth(parameters);
  const ObservationModel observation(parameters, truth);

  const std::int64_t first = total * rank / ranks, last = total * (rank + 1) / ranks;
  std::vector<TruthStar> stars;
  stars.reserve(static_cast<std::size_t>(last - first));
  ProgressMeter truth_progress(comm, "mock: truth", total);
  for (std::int64_t index = first; index < last; ++index) {
    stars.push_back(truth.draw(index));
    truth_progress.advance_local(1);
  }
  truth_progress.finish_collective();

  const auto partitions = count_partitions(stars, level, comm);
  const auto owner = assign_partitions(partitions, ranks);
  std::vector<TruthStar> mine = exchange_stars(stars, level, owner, comm);
  stars = {};
  std::stable_sort(mine.begin(), mine.end(),
                   [](const auto& a, const auto& b) { return a.index < b.index; });
  std::map<std::int64_t, std::vector<TruthStar>> by_partition;
  for (const auto& star : mine)
    by_partition[healpix_pixel_from_radec(star.ra, star.dec, level)].push_back(star);
  mine = {};

  if (rank == 0) std::filesystem::create_directories(output_dir);
  MPI_Barrier(comm);
  LocalTally tally;
  ProgressMeter write_progress(comm, "mock: observe + write", total);
  const std::string config_text = parameters.effective_ini(false);
  StarTable buffer;
  for (auto& [pixel, members] : by_partition) {
    StarTable table = make_star_table(members, observation, truth, level, pixel, std::move(buffer));
    table.provenance_config = config_text;
    table.provenance_generator = std::string("xps_mock ") + XPS_VERSION;
    write_star_table((std::filesystem::path(output_dir) / star_table_file_name(level, pixel)).string(),
                     table, MPI_COMM_SELF);
    tally.add(table);
    write_progress.advance_local(static_cast<std::int64_t>(members.size()));
    members = {};
    buffer = std::move(table);
  }
  write_progress.finish_collective();
  return summarise(tally, partitions, level, comm);
}

}  // namespace xps::mock

namespace xps::mock {

std::string format_mock_summary(const MockSummary& s) {
  std::ostringstream out;
  const auto share = [&s](std::int64_t n) {
    return 100.0 * static_cast<double>(n) / static_cast<double>(std::max<std::int64_t>(s.stars, 1));
  };
  out << std::fixed << std::setprecision(1);
  out << "mock survey: " << s.stars << " stars in " << s.partitions.size()
      << " partitions (HEALPix level " << s.healpix_level << ")\n";
  out << "  labelled " << s.labelled << " (" << share(s.labelled) << " %), binaries "
      << s.binaries << " (" << share(s.binaries) << " %), pathological " << s.pathological
      << " (" << share(s.pathological) << " %)\n";
  out << "  2MASS missing " << share(s.missing_tmass) << " %, unWISE missing "
      << share(s.missing_unwise) << " %\n";
  out << std::setprecision(2) << "  median XP S/N " << s.median_xp_snr << ", median G "
      << s.median_g << ", median E " << s.median_E << '\n';
  out << "  stars per partition (pixel:count):";
  for (std::size_t i = 0; i < s.partitions.size(); ++i)
    out << (i % 8 == 0 ? "\n    " : "  ") << std::setw(5) << s.partitions[i].pixel << ':'
        << std::left << std::setw(6) << s.partitions[i].stars << std::right;
  out << '\n';
  return out.str();
}

}  // namespace xps::mock
