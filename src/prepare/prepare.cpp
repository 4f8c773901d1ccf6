// xps_prepare: joins converted XP spectra with Gaia, 2MASS, unWISE and label catalogues into
// star tables (docs/prepare.md).
#include "xpstellar/prepare.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <limits>
#include <optional>
#include <sstream>
#include <unordered_map>

#include "xpstellar/bands.hpp"
#include "xpstellar/config.hpp"
#include "xpstellar/csv_table.hpp"
#include "xpstellar/error.hpp"
#include "xpstellar/mpi_session.hpp"
#include "xpstellar/partition.hpp"
#include "xpstellar/progress.hpp"
#include "xpstellar/sampled_spectra.hpp"
#include "xpstellar/star_table.hpp"

namespace xps {

void declare_prepare_parameters(ParameterSet& p) {
  p.declare_integer("prepare.healpix_level", 5, "", "HEALPix level of the output partitions", 0, 12);
  p.declare_integer("prepare.batch_rows", 4096, "rows", "XP rows read per batch (bounds memory)", 1, 10000000);
  p.declare_real("prepare.tmass_crowding_norm_dg", -5, "", "2MASS bands dropped where norm_dg is above this", -100, 100);
  p.declare_real("prepare.wise_crowding_norm_dg", -10, "", "unWISE bands dropped where norm_dg is above this", -100, 100);
  p.declare_flag("cuts.training", false, "apply the training-set cuts below (DESIGN §1.4); off for inference tables");
  p.declare_real("cuts.label_snr_min", 20, "", "spectroscopic S/N in g, r and i above this (columns snr_g, snr_r, snr_i, if present)", 0, 1e6);
  p.declare_real("cuts.teff_err_max", 500, "K", "Teff error below this", 0, 1e6);
  p.declare_real("cuts.logg_err_max", 0.5, "dex", "logg error below this", 0, 100);
  p.declare_real("cuts.feh_err_max", 0.5, "dex", "[Fe/H] error below this", 0, 100);
  p.declare_real("cuts.parallax_snr_min", 3, "", "parallax / parallax_error above this", -1e6, 1e6);
  p.declare_real("cuts.fidelity_min", 0.5, "", "fidelity_v2 above this", 0, 1);
  p.declare_real("cuts.excess_factor_max", 1.3, "", "phot_bp_rp_excess_factor below this", 0, 100);
  p.declare_text("cuts.tmass_ph_qual", "A", "2MASS band kept only with this photometric quality letter");
  p.declare_real("cuts.tmass_sigma_max", 0.2, "mag", "2MASS band kept only with a magnitude error below this", 0, 10);
  p.declare_real("cuts.unwise_fracflux_min", 0.8, "", "unWISE band kept only with fracflux above this", 0, 1);
  p.declare_real("cuts.unwise_qf_min", 0.8, "", "unWISE band kept only with qf above this", 0, 1);
  p.declare_real("cuts.unwise_rel_err_max", 0.2, "", "unWISE band kept only with flux error / flux below this (and flux > 0)", 0, 100);
}

double unwise_nanomaggy_flux(std::size_t nir_index) {
  return nir_magnitude_to_flux(nir_index, 22.5);
}

namespace {

constexpr double nan = std::numeric_limits<double>::quiet_NaN();
constexpr double table_flux_scale = 1e18;  // W m-2 nm-1 -> star-table unit

struct Settings {
  int level;
  std::size_t batch_rows;
  double tmass_crowding, wise_crowding;
  bool training;
  double label_snr_min, teff_err_max, logg_err_max, feh_err_max, parallax_snr_min, fidelity_min,
      excess_max;
  char tmass_quality;
  double tmass_sigma_max, unwise_fracflux_min, unwise_qf_min, unwise_rel_err_max;
};

Settings read_settings(const ParameterSet& p) {
  const std::string quality = p.text("cuts.tmass_ph_qual");
  if (quality.size() != 1) throw UsageError("cuts.tmass_ph_qual must be a single letter");
  return {static_cast<int>(p.integer("prepare.healpix_level")),
          static_cast<std::size_t>(p.integer("prepare.batch_rows")),
          p.real("prepare.tmass_crowding_norm_dg"),
          p.real("prepare.wise_crowding_norm_dg"),
          p.flag("cuts.training"),
          p.real("cuts.label_snr_min"),
          p.real("cuts.teff_err_max"),
          p.real("cuts.logg_err_max"),
          p.real("cuts.feh_err_max"),
          p.real("cuts.parallax_snr_min"),
          p.real("cuts.fidelity_min"),
          p.real("cuts.excess_factor_max"),
          quality[0],
          p.real("cuts.tmass_sigma_max"),
          p.real("cuts.unwise_fracflux_min"),
          p.real("cuts.unwise_qf_min"),
          p.real("cuts.unwise_rel_err_max")};
}

// A catalogue read into named numeric columns plus a source_id -> row index.
struct Catalogue {
  std::string path;
  std::unordered_map<std::int64_t, std::size_t> row_of;
  std::map<std::string, std::vector<double>> column;
  std::vector<std::string> text;  // one optional text column (2MASS ph_qual)

  std::optional<std::size_t> find(std::int64_t source_id) const {
    const auto it = row_of.find(source_id);
    if (it == row_of.end()) return std::nullopt;
    return it->second;
  }
  double at(const std::string& name, std::size_t row) const { return column.at(name)[row]; }
};

Catalogue read_catalogue(const std::string& path, const std::vector<std::string>& required,
                         const std::vector<std::string>& optional,
                         const std::string& text_column = "") {
  Catalogue catalogue;
  catalogue.path = path;
  if (path.empty()) return catalogue;
  const CsvTable csv = CsvTable::read(path);
  std::vector<std::string> needed = required;
  needed.insert(needed.begin(), "source_id");
  csv.require(needed);
  const auto ids = csv.integers("source_id");
  for (std::size_t row = 0; row < ids.size(); ++row)
    if (!catalogue.row_of.emplace(ids[row], row).second)
      throw IoError(path + ": source_id " + std::to_string(ids[row]) + " appears twice");
  for (const auto& name : required) catalogue.column[name] = csv.numbers(name);
  for (const auto& name : optional) catalogue.column[name] = csv.numbers_or_nan(name);
  if (!text_column.empty())
    catalogue.text = csv.has(text_column) ? csv.strings(text_column)
                                          : std::vector<std::string>(ids.size());
  return catalogue;
}

struct Catalogues {
  Catalogue gaia, tmass, unwise, labels;
};

Catalogues read_catalogues(const PrepareInputs& in) {
  return {read_catalogue(in.gaia, {"ra", "dec", "parallax", "parallax_error", "phot_g_mean_mag"},
                         {"bp_rp", "ruwe", "phot_bp_rp_excess_factor", "fidelity_v2", "norm_dg"}),
          read_catalogue(in.tmass, {"j_m", "j_msigcom", "h_m", "h_msigcom", "k_m", "k_msigcom"}, {},
                         "ph_qual"),
          read_catalogue(in.unwise, {"flux_w1", "dflux_w1", "flux_w2", "dflux_w2"},
                         {"fracflux_w1", "fracflux_w2", "qf_w1", "qf_w2"}),
          read_catalogue(in.labels, {"teff", "teff_err", "logg", "logg_err", "feh", "feh_err"},
                         {"E_prior", "E_prior_err", "snr_g", "snr_r", "snr_i"})};
}

void check_xp_grid(const std::string& path, const std::vector<double>& wavelength_nm) {
  const auto standard = standard_wavelengths_nm();
  bool same = wavelength_nm.size() == xp_sample_count;
  for (std::size_t k = 0; same && k < xp_sample_count; ++k)
    same = std::abs(wavelength_nm[k] - standard[k]) < 1e-6;
  if (!same)
    throw IoError(path + ": XP spectra must be sampled at 392:992:10 nm (61 samples; run "
                  "xps_xpconvert --sampling 392:992:10), found " +
                  std::to_string(wavelength_nm.size()) + " samples");
}

// The training-set cuts, in the order they are tried; the summary counts stars under these names.
enum StarCut { no_labels, label_snr, teff_error, logg_error, feh_error, parallax_snr, fidelity,
               bp_rp_excess, star_cut_count };
constexpr const char* star_cut_names[star_cut_count] = {
    "no spectroscopic labels", "label S/N",    "Teff error",  "logg error",
    "[Fe/H] error",            "parallax S/N", "fidelity_v2", "BP/RP excess"};

// The first training-set cut a star fails, or star_cut_count if it passes them all.
StarCut failed_star_cut(const Settings& s, const Catalogues& c, std::size_t gaia_row,
                        std::optional<std::size_t> label_row) {
  if (!label_row) return no_labels;
  const auto& l = c.labels;
  const std::size_t r = *label_row;
  for (const char* snr : {"snr_g", "snr_r", "snr_i"}) {
    const double value = l.at(snr, r);
    if (!std::isnan(value) && !(value > s.label_snr_min)) return label_snr;
  }
  if (!(l.at("teff_err", r) < s.teff_err_max)) return teff_error;
  if (!(l.at("logg_err", r) < s.logg_err_max)) return logg_error;
  if (!(l.at("feh_err", r) < s.feh_err_max)) return feh_error;
  const auto& g = c.gaia;
  if (!(g.at("parallax", gaia_row) / g.at("parallax_error", gaia_row) > s.parallax_snr_min))
    return parallax_snr;
  if (!(g.at("fidelity_v2", gaia_row) > s.fidelity_min)) return fidelity;
  if (!(g.at("phot_bp_rp_excess_factor", gaia_row) < s.excess_max)) return bp_rp_excess;
  return star_cut_count;
}

class PartitionBuilder {
public:
  PartitionBuilder(const Settings& settings, const Catalogues& catalogues, PrepareSummary& summary)
      : m_settings(settings), m_catalogues(catalogues), m_summary(summary) {}

  std::map<std::int64_t, StarTable>& tables() { return m_tables; }

  // Adds XP row `row` of `batch` (source known to Gaia) to its partition's table.
  void add(const SampledSpectra& batch, std::size_t row, std::size_t gaia_row,
           std::optional<std::size_t> label_row) {
    const std::int64_t source_id = batch.source_id[row];
    const std::int64_t pixel = healpix_pixel_from_source_id(source_id, m_settings.level);
    StarTable& table = table_for(pixel);
    const std::size_t r = table.rows();
    table.resize(r + 1);
    table.source_id[r] = source_id;
    copy_xp(batch, row, table, r);
    copy_gaia(gaia_row, table, r);
    const double norm_dg = m_catalogues.gaia.at("norm_dg", gaia_row);
    copy_two_mass(source_id, norm_dg, table, r);
    copy_unwise(source_id, norm_dg, table, r);
    if (label_row) copy_labels(*label_row, table, r);
  }

private:
  StarTable& table_for(std::int64_t pixel) {
    auto [it, inserted] = m_tables.try_emplace(pixel);
    if (inserted) {
      it->second.healpix_level = m_settings.level;
      it->second.healpix_pixel = pixel;
      it->second.wavelength_nm = standard_wavelengths_nm();
      it->second.band_names = standard_band_names();
    }
    return it->second;
  }

  void copy_xp(const SampledSpectra& batch, std::size_t row, StarTable& table, std::size_t r) {
    const std::size_t m = standard_band_count, n = xp_sample_count;
    float* flux = &table.flux[r * m];
    float* cov = &table.flux_cov[r * packed_triangle_size(m)];
    for (std::size_t i = 0; i < n; ++i) {
      flux[i] = static_cast<float>(batch.flux[row * n + i] * table_flux_scale);
      for (std::size_t j = i; j < n; ++j)
        cov[packed_triangle_index(i, j, m)] = static_cast<float>(
            batch.flux_cov[(row * n + i) * n + j] * table_flux_scale * table_flux_scale);
      // Cross terms between XP and NIR bands are zero unless a band is missing (NaN row/column).
      for (std::size_t j = n; j < m; ++j) cov[packed_triangle_index(i, j, m)] = 0.0f;
    }
    for (std::size_t i = n; i < m; ++i)
      for (std::size_t j = i; j < m; ++j) cov[packed_triangle_index(i, j, m)] = 0.0f;
  }

  void copy_gaia(std::size_t g, StarTable& table, std::size_t r) {
    const auto& gaia = m_catalogues.gaia;
    const auto f = [&](const char* name) { return static_cast<float>(gaia.at(name, g)); };
    table.ra[r] = gaia.at("ra", g);
    table.dec[r] = gaia.at("dec", g);
    table.parallax[r] = f("parallax");
    table.parallax_error[r] = f("parallax_error");
    table.phot_g_mean_mag[r] = f("phot_g_mean_mag");
    table.bp_rp[r] = f("bp_rp");
    table.ruwe[r] = f("ruwe");
    table.fidelity_v2[r] = f("fidelity_v2");
    table.norm_dg[r] = f("norm_dg");
    table.phot_bp_rp_excess_factor[r] = f("phot_bp_rp_excess_factor");
  }

  void set_band(StarTable& table, std::size_t r, std::size_t band, double flux, double sigma) {
    const std::size_t m = standard_band_count;
    float* cov = &table.flux_cov[r * packed_triangle_size(m)];
    if (!std::isfinite(flux) || !(sigma > 0) || !std::isfinite(sigma)) {
      table.flux[r * m + band] = static_cast<float>(nan);
      for (std::size_t i = 0; i < m; ++i)
        cov[packed_triangle_index(std::min(i, band), std::max(i, band), m)] = static_cast<float>(nan);
      return;
    }
    table.flux[r * m + band] = static_cast<float>(flux);
    cov[packed_triangle_index(band, band, m)] = static_cast<float>(sigma * sigma);
  }

  void copy_two_mass(std::int64_t source_id, double norm_dg, StarTable& table, std::size_t r) {
    static const char* magnitude[3] = {"j_m", "h_m", "k_m"};
    static const char* error[3] = {"j_msigcom", "h_msigcom", "k_msigcom"};
    const auto row = m_catalogues.tmass.find(source_id);
    const bool crowded = norm_dg > m_settings.tmass_crowding;
    for (std::size_t n = 0; n < 3; ++n) {
      double flux = nan, sigma = nan;
      if (row) {
        const double m = m_catalogues.tmass.at(magnitude[n], *row);
        const double sigma_m = m_catalogues.tmass.at(error[n], *row);
        const std::string& quality = m_catalogues.tmass.text[*row];
        const bool poor = m_settings.training &&
                          (quality.size() != 3 || quality[n] != m_settings.tmass_quality ||
                           !(sigma_m < m_settings.tmass_sigma_max));
        if (std::isfinite(m) && (crowded || poor)) {
          ++m_summary.tmass_bands_dropped;
        } else if (std::isfinite(m)) {
          flux = nir_magnitude_to_flux(n, m);
          sigma = 0.4 * std::log(10.0) * sigma_m * flux;
        }
      }
      set_band(table, r, xp_sample_count + n, flux, sigma);
    }
  }

  void copy_unwise(std::int64_t source_id, double norm_dg, StarTable& table, std::size_t r) {
    static const char* flux_name[2] = {"flux_w1", "flux_w2"};
    static const char* error_name[2] = {"dflux_w1", "dflux_w2"};
    static const char* fracflux_name[2] = {"fracflux_w1", "fracflux_w2"};
    static const char* qf_name[2] = {"qf_w1", "qf_w2"};
    const auto row = m_catalogues.unwise.find(source_id);
    const bool crowded = norm_dg > m_settings.wise_crowding;
    for (std::size_t n = 0; n < 2; ++n) {
      double flux = nan, sigma = nan;
      if (row) {
        const auto& u = m_catalogues.unwise;
        const double nanomaggies = u.at(flux_name[n], *row);
        const double error = u.at(error_name[n], *row);
        const bool poor = m_settings.training &&
                          !(u.at(fracflux_name[n], *row) > m_settings.unwise_fracflux_min &&
                            u.at(qf_name[n], *row) > m_settings.unwise_qf_min && nanomaggies > 0 &&
                            error / nanomaggies < m_settings.unwise_rel_err_max);
        if (std::isfinite(nanomaggies) && (crowded || poor)) {
          ++m_summary.unwise_bands_dropped;
        } else if (std::isfinite(nanomaggies)) {
          flux = nanomaggies * unwise_nanomaggy_flux(3 + n);
          sigma = error * unwise_nanomaggy_flux(3 + n);
        }
      }
      set_band(table, r, xp_sample_count + 3 + n, flux, sigma);
    }
  }

  void copy_labels(std::size_t l, StarTable& table, std::size_t r) {
    const auto& labels = m_catalogues.labels;
    const auto f = [&](const char* name) { return static_cast<float>(labels.at(name, l)); };
    table.labels.teff[r] = f("teff");
    table.labels.teff_err[r] = f("teff_err");
    table.labels.logg[r] = f("logg");
    table.labels.logg_err[r] = f("logg_err");
    table.labels.feh[r] = f("feh");
    table.labels.feh_err[r] = f("feh_err");
    table.labels.E_prior[r] = f("E_prior");
    table.labels.E_prior_err[r] = f("E_prior_err");
    ++m_summary.labelled;
  }

  const Settings& m_settings;
  const Catalogues& m_catalogues;
  PrepareSummary& m_summary;
  std::map<std::int64_t, StarTable> m_tables;
};

bool has_any_xp_flux(const SampledSpectra& batch, std::size_t row) {
  for (std::size_t k = 0; k < xp_sample_count; ++k)
    if (std::isfinite(batch.flux[row * xp_sample_count + k])) return true;
  return false;
}

void reduce_summary(PrepareSummary& s, MPI_Comm comm) {
  std::int64_t counts[6] = {s.written, s.skipped, s.tmass_bands_dropped, s.unwise_bands_dropped,
                            s.labelled, s.partitions};
  MPI_Allreduce(MPI_IN_PLACE, counts, 6, MPI_INT64_T, MPI_SUM, comm);
  s.written = counts[0];
  s.skipped = counts[1];
  s.tmass_bands_dropped = counts[2];
  s.unwise_bands_dropped = counts[3];
  s.labelled = counts[4];
  s.partitions = counts[5];
  for (const char* reason : star_cut_names) {
    std::int64_t count = s.cut.count(reason) ? s.cut[reason] : 0;
    MPI_Allreduce(MPI_IN_PLACE, &count, 1, MPI_INT64_T, MPI_SUM, comm);
    if (count > 0) s.cut[reason] = count;
    else s.cut.erase(reason);
  }
}

}  // namespace

PrepareSummary run_prepare(const ParameterSet& parameters, const PrepareInputs& inputs,
                           const std::string& output_dir, MPI_Comm comm) {
  const Settings settings = read_settings(parameters);
  const int rank = comm_rank(comm), ranks = comm_size(comm);
  const Catalogues catalogues = read_catalogues(inputs);
  PrepareSummary summary;
  PartitionBuilder builder(settings, catalogues, summary);

  // Every rank reads the XP file in batches and keeps the partitions it owns (pixel mod ranks),
  // so a partition's rows are in file order whatever the number of ranks.
  std::size_t first = 0;
  ProgressMeter progress(comm, "prepare: join", 0);
  for (;;) {
    const SampledSpectra batch = read_sampled_spectra(inputs.xp, first, settings.batch_rows);
    if (first == 0) check_xp_grid(inputs.xp, batch.wavelength_nm);
    for (std::size_t row = 0; row < batch.rows(); ++row) {
      const std::int64_t source_id = batch.source_id[row];
      const std::int64_t pixel = healpix_pixel_from_source_id(source_id, settings.level);
      if (pixel % ranks != rank) continue;
      const auto gaia_row = catalogues.gaia.find(source_id);
      std::string problem;
      if (!gaia_row) problem = "no row in " + inputs.gaia;
      else if (!has_any_xp_flux(batch, row)) problem = "no finite XP flux";
      if (!problem.empty()) {
        warn(comm, "source_id " + std::to_string(source_id) + " skipped: " + problem);
        ++summary.skipped;
        continue;
      }
      const auto label_row = catalogues.labels.find(source_id);
      if (settings.training) {
        const StarCut cut = failed_star_cut(settings, catalogues, *gaia_row, label_row);
        if (cut != star_cut_count) {
          ++summary.cut[star_cut_names[cut]];
          continue;
        }
      }
      builder.add(batch, row, *gaia_row, label_row);
    }
    summary.xp_rows += static_cast<std::int64_t>(batch.rows());
    progress.advance_local(static_cast<std::int64_t>(batch.rows()) / ranks);
    first += batch.rows();
    if (batch.rows() < settings.batch_rows) break;
  }
  progress.finish_collective();

  if (rank == 0) std::filesystem::create_directories(output_dir);
  MPI_Barrier(comm);
  const std::string config_text = parameters.effective_ini(false);
  for (auto& [pixel, table] : builder.tables()) {
    table.provenance_config = config_text;
    table.provenance_generator = std::string("xps_prepare ") + XPS_VERSION;
    write_star_table((std::filesystem::path(output_dir) / star_table_file_name(settings.level, pixel)).string(),
                     table, MPI_COMM_SELF);
    summary.written += static_cast<std::int64_t>(table.rows());
    ++summary.partitions;
  }
  reduce_summary(summary, comm);
  return summary;
}

std::string format_prepare_summary(const PrepareSummary& s) {
  std::ostringstream out;
  out << "prepare: " << s.xp_rows << " XP rows -> " << s.written << " stars in " << s.partitions
      << " partitions; " << s.labelled << " labelled; " << s.skipped << " skipped\n";
  out << "  NIR bands dropped (crowding or quality): 2MASS " << s.tmass_bands_dropped
      << ", unWISE " << s.unwise_bands_dropped << '\n';
  for (const auto& [reason, count] : s.cut) out << "  cut (" << reason << "): " << count << '\n';
  return out.str();
}

}  // namespace xps
