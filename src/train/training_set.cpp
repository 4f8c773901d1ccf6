#include "xpstellar/training_set.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "xpstellar/error.hpp"
#include "xpstellar/mpi_session.hpp"
#include "xpstellar/random_stream.hpp"
#include "xpstellar/star_table.hpp"

namespace xps {

bool is_validation_star(std::int64_t source_id, double fraction, std::uint64_t salt) {
  std::uint64_t state = static_cast<std::uint64_t>(source_id) + salt * 0x9e3779b97f4a7c15ULL;
  const std::uint64_t hash = splitmix64(state);
  return static_cast<double>(hash >> 11) * 0x1.0p-53 < fraction;
}

const char* exclusion_name(Exclusion reason) {
  switch (reason) {
    case Exclusion::none: return "none";
    case Exclusion::absurd_labels: return "absurd labels";
    case Exclusion::bad_parallax: return "bad parallax";
    case Exclusion::no_bands: return "no bands";
    case Exclusion::non_finite_flux: return "non-finite flux";
    case Exclusion::non_positive_variance: return "non-positive variance";
    case Exclusion::not_positive_semidefinite: return "covariance not positive semidefinite";
    case Exclusion::count: break;
  }
  return "?";
}

bool has_labels(const StarTable& table, std::size_t row) {
  return !(std::isnan(table.labels.teff[row]) && std::isnan(table.labels.logg[row]) &&
           std::isnan(table.labels.feh[row]));
}

std::string format_training_set_summary(const TrainingSetSummary& s) {
  std::ostringstream out;
  out << "training set: " << s.table_rows << " table rows, " << s.unlabelled << " without labels, "
      << s.validation << " held out for validation, " << s.candidates << " training candidates\n";
  for (int r = 1; r < static_cast<int>(Exclusion::count); ++r)
    if (s.excluded[static_cast<std::size_t>(r)] > 0)
      out << "  excluded (" << exclusion_name(static_cast<Exclusion>(r))
          << "): " << s.excluded[static_cast<std::size_t>(r)] << "\n";
  out << "  usable: " << s.usable << " (high-quality subset: " << s.high_quality << ")\n";
  return out.str();
}

namespace {

constexpr std::size_t scan_chunk_rows = 65536;
constexpr std::size_t spectra_chunk_rows = 4096;
constexpr int table_bits = 24;  // packed candidate: table << 40 | row
constexpr std::int64_t row_mask = (std::int64_t{1} << 40) - 1;

bool positive_finite(float x) { return std::isfinite(x) && x > 0; }

Exclusion label_check(const StarTable& t, std::size_t i, const TrainingDataSettings& d) {
  const auto& l = t.labels;
  const float values[3] = {l.teff[i], l.feh[i], l.logg[i]};
  const float errors[3] = {l.teff_err[i], l.feh_err[i], l.logg_err[i]};
  for (int k = 0; k < 3; ++k)
    if (!std::isfinite(values[k]) || !positive_finite(errors[k])) return Exclusion::absurd_labels;
  if (l.teff[i] < d.teff_min || l.teff[i] > d.teff_max || l.logg[i] < d.logg_min ||
      l.logg[i] > d.logg_max || l.feh[i] < d.feh_min || l.feh[i] > d.feh_max)
    return Exclusion::absurd_labels;
  if (!std::isfinite(t.parallax[i]) || !positive_finite(t.parallax_error[i]))
    return Exclusion::bad_parallax;
  return Exclusion::none;
}

Exclusion from_whitening(WhiteningStatus status) {
  switch (status) {
    case WhiteningStatus::ok: return Exclusion::none;
    case WhiteningStatus::no_bands: return Exclusion::no_bands;
    case WhiteningStatus::non_finite_flux: return Exclusion::non_finite_flux;
    case WhiteningStatus::non_positive_variance: return Exclusion::non_positive_variance;
    case WhiteningStatus::not_positive_semidefinite: return Exclusion::not_positive_semidefinite;
  }
  return Exclusion::not_positive_semidefinite;
}

struct TableLayout {
  std::vector<std::size_t> rows;
  std::vector<double> wavelength_nm;
  std::vector<std::string> band_names;
  std::vector<double> truth_extinction_R;
};

// Every rank reads the metadata of every table (small) and checks that the bands agree.
TableLayout read_layout(const std::vector<std::string>& tables) {
  TableLayout layout;
  for (std::size_t t = 0; t < tables.size(); ++t) {
    const StarTableInfo info = read_star_table_info(tables[t]);
    layout.rows.push_back(info.rows);
    if (t == 0) {
      const StarTable head = read_star_table_rows(tables[t], 0, 0, {false, true});
      layout.wavelength_nm = head.wavelength_nm;
      layout.band_names = head.band_names;
      if (head.has_truth) layout.truth_extinction_R = head.truth.extinction_R;
    } else if (info.bands != layout.wavelength_nm.size()) {
      throw UsageError(tables[t] + ": " + std::to_string(info.bands) + " bands, but " + tables[0] +
                       " has " + std::to_string(layout.wavelength_nm.size()));
    }
  }
  return layout;
}

// The candidates of this rank's share of every table's rows, packed (table << 40 | row).
std::vector<std::int64_t> scan_candidates(const std::vector<std::string>& tables,
                                          const TableLayout& layout, const TrainingDataSettings& d,
                                          int rank, int ranks, TrainingSetSummary& counts) {
  std::vector<std::int64_t> candidates;
  for (std::size_t t = 0; t < tables.size(); ++t) {
    const std::size_t rows = layout.rows[t];
    const std::size_t begin = rows * static_cast<std::size_t>(rank) / static_cast<std::size_t>(ranks);
    const std::size_t end = rows * static_cast<std::size_t>(rank + 1) / static_cast<std::size_t>(ranks);
    for (std::size_t first = begin; first < end; first += scan_chunk_rows) {
      const std::size_t count = std::min(scan_chunk_rows, end - first);
      const StarTable chunk = read_star_table_rows(tables[t], first, count, {false, false});
      counts.table_rows += static_cast<std::int64_t>(count);
      for (std::size_t i = 0; i < count; ++i) {
        if (!has_labels(chunk, i)) {
          ++counts.unlabelled;
        } else if (is_validation_star(chunk.source_id[i], d.validation_fraction, d.split_salt)) {
          ++counts.validation;
        } else if (const Exclusion reason = label_check(chunk, i, d); reason != Exclusion::none) {
          ++counts.excluded[static_cast<std::size_t>(reason)];
        } else {
          candidates.push_back(static_cast<std::int64_t>(t) << 40 |
                               static_cast<std::int64_t>(first + i));
        }
      }
    }
  }
  return candidates;
}

void sum_counts(TrainingSetSummary& s, MPI_Comm comm) {
  std::vector<std::int64_t> values = {s.table_rows, s.unlabelled, s.validation, s.usable,
                                      s.high_quality};
  values.insert(values.end(), s.excluded.begin(), s.excluded.end());
  MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_INT64_T, MPI_SUM,
                comm);
  s.table_rows = values[0];
  s.unlabelled = values[1];
  s.validation = values[2];
  s.usable = values[3];
  s.high_quality = values[4];
  std::copy(values.begin() + 5, values.end(), s.excluded.begin());
}

void size_local(TrainingStars& stars, std::size_t n) {
  const std::size_t m = static_cast<std::size_t>(stars.bands());
  stars.source_id.resize(n);
  stars.table_index.resize(n);
  stars.table_row.resize(n);
  stars.whitening.assign(n * whitening_size(m), 0.0f);
  stars.flux_for_fit.assign(n * m, 0.0f);
  stars.flux_sigma.assign(n * m, std::numeric_limits<float>::infinity());
  const auto columns = static_cast<Eigen::Index>(n);
  stars.label.setZero(3, columns);
  stars.label_error.setOnes(3, columns);
  stars.parallax.setZero(columns);
  stars.parallax_error.setOnes(columns);
  stars.E_prior.setConstant(columns, std::numeric_limits<double>::quiet_NaN());
  stars.E_prior_error.setConstant(columns, std::numeric_limits<double>::quiet_NaN());
  stars.exclusion.assign(n, Exclusion::none);
  stars.high_quality.assign(n, 0);
}

// Copies star `i` of `chunk` into local slot `slot` and whitens it.
void load_star(const StarTable& chunk, std::size_t i, std::size_t slot, const FluxWhitening& whitening,
               const TrainingSettings& settings, TrainingStars& stars) {
  const auto& d = settings.data;
  const std::size_t m = static_cast<std::size_t>(stars.bands());
  const auto col = static_cast<Eigen::Index>(slot);
  const auto& l = chunk.labels;
  stars.source_id[slot] = chunk.source_id[i];
  stars.label.col(col) << l.teff[i], l.feh[i], l.logg[i];
  stars.label_error.col(col) << l.teff_err[i], l.feh_err[i], l.logg_err[i];
  stars.parallax(col) = static_cast<double>(chunk.parallax[i]) - d.parallax_zero_point;
  stars.parallax_error(col) = chunk.parallax_error[i];
  const double E = l.E_prior[i], E_err = l.E_prior_err[i];
  const bool has_E_prior = std::isfinite(E) && std::isfinite(E_err) && E_err > 0;
  if (has_E_prior) {
    stars.E_prior(col) = E;
    stars.E_prior_error(col) = std::sqrt(E_err * E_err + (d.E_prior_frac * E) * (d.E_prior_frac * E) +
                                         d.E_prior_floor * d.E_prior_floor);
  }
  const float* flux = chunk.flux.data() + i * m;
  const float* covariance = chunk.flux_cov.data() + i * packed_triangle_size(m);
  std::vector<float> variance(m);
  const WhiteningStatus status = whitening.whiten(flux, covariance, stars.whitening.data() + slot * whitening_size(m),
                                                  stars.flux_for_fit.data() + slot * m, variance.data());
  stars.exclusion[slot] = from_whitening(status);
  if (status != WhiteningStatus::ok) return;
  for (std::size_t b = 0; b < m; ++b)
    if (std::isfinite(variance[b]) && variance[b] > 0) stars.flux_sigma[slot * m + b] = std::sqrt(variance[b]);
  stars.high_quality[slot] = l.teff_err[i] < d.hq_teff_err && l.feh_err[i] < d.hq_feh_err &&
                             l.logg_err[i] < d.hq_logg_err &&
                             chunk.parallax[i] > d.hq_parallax_snr * chunk.parallax_error[i] &&
                             has_E_prior && E_err < d.hq_E_err;
}

}  // namespace

TrainingStars load_training_stars(const std::vector<std::string>& tables,
                                  const TrainingSettings& settings, MPI_Comm comm,
                                  TrainingSetSummary& summary) {
  if (tables.empty()) throw UsageError("no star tables to train on");
  if (tables.size() >= (std::size_t{1} << table_bits))
    throw UsageError("too many star tables (" + std::to_string(tables.size()) + ")");
  const int rank = comm_rank(comm), ranks = comm_size(comm);
  const int shards = settings.virtual_shards;
  if (ranks > shards)
    throw UsageError("training runs on at most training.virtual_shards = " + std::to_string(shards) +
                     " ranks; " + std::to_string(ranks) + " were started (raise the key)");

  TrainingStars stars;
  stars.tables = tables;
  TableLayout layout = read_layout(tables);
  stars.wavelength_nm = std::move(layout.wavelength_nm);
  stars.band_names = std::move(layout.band_names);
  stars.truth_extinction_R = std::move(layout.truth_extinction_R);

  summary = TrainingSetSummary{};
  const std::vector<std::int64_t> local_candidates =
      scan_candidates(tables, layout, settings.data, rank, ranks, summary);
  std::vector<std::int64_t> order = all_gather_int64(local_candidates, comm);
  std::sort(order.begin(), order.end());  // table-major, then row: the canonical order

  stars.total = static_cast<std::int64_t>(order.size());
  stars.virtual_shards = shards;
  stars.shard_begin.resize(static_cast<std::size_t>(shards) + 1);
  for (int v = 0; v <= shards; ++v)
    stars.shard_begin[static_cast<std::size_t>(v)] = stars.total * v / shards;
  stars.first_shard = rank * shards / ranks;
  stars.end_shard = (rank + 1) * shards / ranks;
  stars.first_row = stars.shard_begin[static_cast<std::size_t>(stars.first_shard)];
  const std::int64_t end_row = stars.shard_begin[static_cast<std::size_t>(stars.end_shard)];
  size_local(stars, static_cast<std::size_t>(end_row - stars.first_row));

  const FluxWhitening whitening(stars.band_names, stars.wavelength_nm, settings.inflation);
  // This rank's rows of each table are contiguous in the canonical order: read their covering
  // row range chunk by chunk.
  std::int64_t next = stars.first_row;
  while (next < end_row) {
    const auto table = static_cast<std::size_t>(order[static_cast<std::size_t>(next)] >> 40);
    std::int64_t table_end = next;
    while (table_end < end_row &&
           static_cast<std::size_t>(order[static_cast<std::size_t>(table_end)] >> 40) == table)
      ++table_end;
    std::int64_t position = next;
    while (position < table_end) {
      const std::int64_t first_row = order[static_cast<std::size_t>(position)] & row_mask;
      std::int64_t chunk_end = position;
      while (chunk_end < table_end &&
             (order[static_cast<std::size_t>(chunk_end)] & row_mask) - first_row <
                 static_cast<std::int64_t>(spectra_chunk_rows))
        ++chunk_end;
      const std::int64_t last_row = order[static_cast<std::size_t>(chunk_end - 1)] & row_mask;
      const StarTable chunk = read_star_table_rows(
          tables[table], static_cast<std::size_t>(first_row),
          static_cast<std::size_t>(last_row - first_row + 1), {true, false});
      for (std::int64_t c = position; c < chunk_end; ++c) {
        const std::int64_t row = order[static_cast<std::size_t>(c)] & row_mask;
        const auto slot = static_cast<std::size_t>(c - stars.first_row);
        stars.table_index[slot] = static_cast<std::int32_t>(table);
        stars.table_row[slot] = row;
        load_star(chunk, static_cast<std::size_t>(row - first_row), slot, whitening, settings, stars);
      }
      position = chunk_end;
    }
    next = table_end;
  }

  for (std::size_t i = 0; i < stars.exclusion.size(); ++i) {
    if (stars.exclusion[i] == Exclusion::none) {
      ++summary.usable;
      summary.high_quality += stars.high_quality[i];
    } else {
      ++summary.excluded[static_cast<std::size_t>(stars.exclusion[i])];
    }
  }
  sum_counts(summary, comm);
  summary.candidates = stars.total;
  return stars;
}

}  // namespace xps
