#include "xpstellar/training_run.hpp"

#include <chrono>
#include <ctime>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "xpstellar/config.hpp"
#include "xpstellar/error.hpp"
#include "xpstellar/gaussian_mixture.hpp"
#include "xpstellar/model_file.hpp"
#include "xpstellar/mpi_session.hpp"
#include "xpstellar/partition.hpp"
#include "xpstellar/star_table.hpp"
#include "xpstellar/training_results.hpp"

namespace xps {

GmmBlockSharing gmm_block_sharing(MPI_Comm comm) {
  const int ranks = comm_size(comm);
  return {comm_rank(comm), ranks, [comm, ranks](double* rows, std::int64_t blocks, std::int64_t width) {
            std::vector<std::int64_t> first_row(static_cast<std::size_t>(ranks) + 1);
            for (int r = 0; r <= ranks; ++r) first_row[static_cast<std::size_t>(r)] = gmm_first_block(blocks, r, ranks);
            all_gather_rows(rows, first_row, width, comm);
          }};
}

namespace {

bool holds_checkpoints(const std::string& dir) {
  std::error_code error;
  if (!std::filesystem::is_directory(dir, error)) return false;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind("checkpoint_", 0) == 0 && entry.path().extension() == ".h5") return true;
  }
  return false;
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

// Work done by rank 0 alone reports its failure to every rank, so that all of them stop together.
void rethrow_from_root(std::string failure, MPI_Comm comm) {
  int length = static_cast<int>(failure.size());
  MPI_Bcast(&length, 1, MPI_INT, 0, comm);
  failure.resize(static_cast<std::size_t>(length));
  MPI_Bcast(failure.data(), length, MPI_CHAR, 0, comm);
  if (!failure.empty()) throw IoError(failure);
}

// The mixture is fitted by every rank together (each holding every point; the EM's block sums
// shared); the enclosing level is sampled by rank 0 alone, which writes the model file.
ModelPrior fit_prior(const std::vector<double>& theta, const GmmPriorSettings& settings, MPI_Comm comm) {
  const auto n = static_cast<Eigen::Index>(theta.size() / 3);
  if (n < settings.fit.components)
    throw UsageError("the prior needs at least gmm.components = " +
                     std::to_string(settings.fit.components) + " trained stars; there are " +
                     std::to_string(n));
  Eigen::MatrixXd points(n, 3);
  for (Eigen::Index i = 0; i < n; ++i)
    for (int k = 0; k < 3; ++k) points(i, k) = theta[static_cast<std::size_t>(3 * i + k)];
  ModelPrior prior;
  prior.mixture = fit_gaussian_mixture(points, settings.fit, gmm_block_sharing(comm));
  prior.prior_mass = settings.prior_mass;
  if (comm_rank(comm) == 0)
    prior.ln_prior_cut = density_level_enclosing(prior.mixture, settings.prior_mass,
                                                 settings.level_samples, settings.fit.seed);
  return prior;
}

// Per-star results of every table, written by rank 0.
void write_results(const TrainingStars& stars, Trainer& trainer, const TrainingSettings& settings,
                   const std::string& model_path, const std::string& dir, MPI_Comm comm) {
  constexpr int fields = 11;  // table, row, 6 parameters, outlier, chi2, exclusion
  const Eigen::VectorXd chi2 = trainer.star_chi_square();
  std::vector<double> local;
  local.reserve(static_cast<std::size_t>(stars.size()) * fields);
  for (std::int64_t i = 0; i < stars.size(); ++i) {
    const auto p = trainer.star_parameters().col(i);
    const auto s = static_cast<std::size_t>(i);
    local.insert(local.end(), {static_cast<double>(stars.table_index[s]),
                               static_cast<double>(stars.table_row[s]), p(0), p(1), p(2),
                               std::exp(p(3)), std::exp(p(4)), p(5),
                               static_cast<double>(trainer.outliers()[s]), chi2(i),
                               static_cast<double>(stars.exclusion[s])});
  }
  const std::vector<double> all = gather_doubles_to_root(local, comm);
  std::string failure;
  if (comm_rank(comm) == 0) {
    try {
      std::filesystem::create_directories(dir);
      std::size_t next = 0;
      for (std::size_t t = 0; t < stars.tables.size(); ++t) {
        const StarTable cheap = read_star_table_rows(stars.tables[t], 0,
                                                     read_star_table_info(stars.tables[t]).rows,
                                                     {false, false});
        TrainingResultsTable table;
        table.healpix_level = cheap.healpix_level;
        table.healpix_pixel = cheap.healpix_pixel;
        table.star_table = std::filesystem::path(stars.tables[t]).filename().string();
        table.model = std::filesystem::path(model_path).filename().string();
        table.resize(cheap.rows());
        table.source_id = cheap.source_id;
        for (std::size_t r = 0; r < cheap.rows(); ++r) {
          if (!has_labels(cheap, r)) continue;
          const bool held_out = is_validation_star(cheap.source_id[r], settings.data.validation_fraction,
                                                   settings.data.split_salt);
          table.role[r] = static_cast<std::uint8_t>(held_out ? TrainingRole::validation : TrainingRole::excluded);
        }
        // Labelled training-part stars that did not enter the canonical order failed the cheap
        // checks; their reason is not kept, only that they were excluded.
        while (next * fields < all.size() && static_cast<std::size_t>(all[next * fields]) == t) {
          const double* v = all.data() + next * fields;
          const auto r = static_cast<std::size_t>(v[1]);
          const auto exclusion = static_cast<std::uint8_t>(v[10]);
          table.exclusion[r] = exclusion;
          if (exclusion == 0) {
            table.role[r] = static_cast<std::uint8_t>(TrainingRole::trained);
            table.teff[r] = static_cast<float>(v[2]);
            table.feh[r] = static_cast<float>(v[3]);
            table.logg[r] = static_cast<float>(v[4]);
            table.parallax[r] = static_cast<float>(v[5]);
            table.E[r] = static_cast<float>(v[6]);
            table.xi[r] = static_cast<float>(v[7]);
            table.outlier[r] = static_cast<std::uint8_t>(v[8]);
            table.chi2[r] = static_cast<float>(v[9]);
          }
          ++next;
        }
        write_training_results(
            (std::filesystem::path(dir) / training_results_file_name(table.healpix_level, table.healpix_pixel)).string(),
            table);
      }
    } catch (const std::exception& error) {
      failure = error.what();
    }
  }
  rethrow_from_root(failure, comm);
}

}  // namespace

std::string training_results_dir(const std::string& model_path) {
  const std::filesystem::path path(model_path);
  return (path.parent_path() / (path.stem().string() + "_training")).string();
}

void declare_train_parameters(ParameterSet& parameters) {
  declare_training_parameters(parameters);
  declare_gmm_parameters(parameters, "gmm");
}

TrainingRunSummary run_training(const ParameterSet& parameters, const TrainingRunPaths& paths,
                                MPI_Comm comm) {
  const auto start = std::chrono::steady_clock::now();
  const int rank = comm_rank(comm);
  const TrainingSettings settings = read_training_parameters(parameters);
  const GmmPriorSettings prior_settings = read_gmm_parameters(parameters, "gmm");
  if (!paths.checkpoint_dir.empty() && !paths.resume && holds_checkpoints(paths.checkpoint_dir))
    throw UsageError(paths.checkpoint_dir + " already holds checkpoints: pass --resume to continue "
                     "that run, or choose an empty --checkpoint-dir");
  if (!paths.checkpoint_dir.empty() && rank == 0) std::filesystem::create_directories(paths.checkpoint_dir);

  TrainingRunSummary summary;
  const std::vector<std::string> tables = list_star_tables(paths.stars_dir);
  if (tables.empty()) throw IoError(paths.stars_dir + ": no star tables (stars_<level>_<pixel>.h5)");
  if (rank == 0) std::cout << "loading training stars from " << tables.size() << " star tables" << std::endl;
  TrainingStars stars = load_training_stars(tables, settings, comm, summary.data);
  if (rank == 0)
    std::cout << format_training_set_summary(summary.data) << "loaded in "
              << std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()
              << " s" << std::endl;
  if (summary.data.usable == 0) throw UsageError(paths.stars_dir + ": no usable training stars");

  const std::string config_text = parameters.effective_ini(false);
  Trainer trainer(settings, stars, config_text, comm);
  if (!(paths.resume && trainer.resume_from(paths.checkpoint_dir))) {
    if (paths.resume && rank == 0)
      std::cout << "no valid checkpoint in " << paths.checkpoint_dir << ": starting afresh" << std::endl;
    trainer.start_fresh();
  }
  trainer.run(paths.checkpoint_dir);
  summary.phases = trainer.reports();

  // The prior on Theta: fitted to the trained stars that survived self-cleaning.
  std::vector<double> local_theta;
  for (std::int64_t i = 0; i < stars.size(); ++i)
    if (stars.usable(i) &&
        (trainer.outliers()[static_cast<std::size_t>(i)] & removal_bits(settings.cleaning.rule)) == 0)
      for (int k = 0; k < 3; ++k) local_theta.push_back(trainer.star_parameters()(k, i));
  // Every rank fits from the same points in the same order (the same bits), so a fit that throws
  // throws on every rank alike.
  const std::vector<double> theta = all_gather_doubles(local_theta, comm);
  const auto prior_start = std::chrono::steady_clock::now();
  if (rank == 0)
    std::cout << "fitting the prior on Theta of " << theta.size() / 3 << " trained stars on "
              << comm_size(comm) << " rank(s)" << std::endl;
  ModelPrior prior = fit_prior(theta, prior_settings, comm);
  std::string failure;
  if (rank == 0) {
    try {
      std::cout << "prior fitted in "
                << std::chrono::duration<double>(std::chrono::steady_clock::now() - prior_start).count()
                << " s" << std::endl;
      ModelFile file;
      file.model = trainer.model();
      file.wavelength_nm = stars.wavelength_nm;
      file.band_names = stars.band_names;
      file.inflation = settings.inflation;
      file.prior = std::move(prior);
      file.provenance = ModelProvenance{config_text, XPS_VERSION, settings.seed, utc_now()};
      if (const auto parent = std::filesystem::path(paths.model_path).parent_path(); !parent.empty())
        std::filesystem::create_directories(parent);
      write_model_file(paths.model_path, file);
      summary.prior_components = file.prior->mixture.components();
      summary.ln_prior_cut = file.prior->ln_prior_cut;
    } catch (const std::exception& error) {
      failure = error.what();
    }
  }
  rethrow_from_root(failure, comm);

  summary.model_path = paths.model_path;
  summary.results_dir = training_results_dir(paths.model_path);
  write_results(stars, trainer, settings, paths.model_path, summary.results_dir, comm);
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

std::string format_training_summary(const TrainingRunSummary& s) {
  std::ostringstream out;
  out << "xps_train summary\n";
  for (const PhaseReport& p : s.phases) {
    out << "  " << p.name << " (" << phase_kind_name(p.kind) << ", " << selection_name(p.selection)
        << "): " << p.stars << " stars";
    if (p.kind == PhaseKind::self_cleaning) {
      out << "; flagged " << p.flagged_labels_parallax << " by labels/parallax, " << p.flagged_flux
          << " by flux residuals (joint rule " << p.flagged_joint << "); removed " << p.removed;
    } else {
      out << ", " << p.steps << " steps, final loss " << p.final_loss << ", " << p.seconds << " s";
      if (p.seconds > 0)
        out << " (" << static_cast<long long>(static_cast<double>(p.star_gradients) / p.seconds)
            << " star-gradients/s)";
    }
    out << "\n";
  }
  out << "  prior: " << s.prior_components << " Gaussians, ln_prior cut " << s.ln_prior_cut << "\n";
  out << "  model: " << s.model_path << "\n  per-star results: " << s.results_dir << "\n";
  out << "  total " << s.seconds << " s\n";
  return out.str();
}

}  // namespace xps
