#include "xpstellar/trainer.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <limits>
#include <memory>
#include <sstream>

#include "xpstellar/deconvolved_mixture.hpp"
#include "xpstellar/error.hpp"
#include "xpstellar/flux_whitening.hpp"
#include "xpstellar/inference_loss.hpp"
#include "xpstellar/label_population.hpp"
#include "xpstellar/model_parameters.hpp"
#include "xpstellar/mpi_session.hpp"
#include "xpstellar/optimizer.hpp"
#include "xpstellar/progress.hpp"
#include "xpstellar/random_stream.hpp"
#include "xpstellar/star_fit.hpp"
#include "xpstellar/star_loss.hpp"
#include "trainer_workspace.hpp"

namespace xps {

std::uint8_t removal_bits(CleaningRule rule) {
  return rule == CleaningRule::joint ? std::uint8_t{outlier_joint}
                                     : std::uint8_t{outlier_labels_parallax | outlier_flux};
}

namespace {

constexpr int star_parameter_count = 6;  // teff, feh, logg, ln parallax, ln E, xi
constexpr double nan = std::numeric_limits<double>::quiet_NaN();

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// The order of an epoch's batches: a Fisher-Yates shuffle from (seed, phase, epoch).
void shuffle_for_epoch(std::vector<std::int64_t>& order, std::uint64_t seed, int phase,
                       std::int64_t epoch) {
  const std::uint64_t key = (static_cast<std::uint64_t>(phase) << 40) ^ static_cast<std::uint64_t>(epoch);
  RandomStream random(seed, key, StreamPurpose::training_batches);
  for (std::size_t i = order.size(); i > 1; --i) {
    const auto j = static_cast<std::size_t>(random.next() % i);
    std::swap(order[i - 1], order[j]);
  }
}

}  // namespace

Trainer::Trainer(const TrainingSettings& settings, TrainingStars& stars, std::string config_text,
                 MPI_Comm comm)
    : m_settings(settings), m_stars(stars), m_config_text(std::move(config_text)), m_comm(comm) {
  m_rank = comm_rank(comm);
  m_workspaces.resize(static_cast<std::size_t>(std::max(1, omp_get_max_threads())));
  if (const char* abort_at = std::getenv("XPS_TRAIN_ABORT_AT_STEP")) m_abort_at_step = std::atoll(abort_at);
  if (m_settings.population_prior.enabled) {
    m_population = fit_label_population(m_stars, m_settings.population_prior, m_comm);
    m_population_density = std::make_unique<GaussianMixtureDensity>(m_population);
  }
}

Trainer::~Trainer() = default;

Eigen::MatrixXd Trainer::shard_ordered_sum(const Eigen::MatrixXd& local_partials) const {
  // Every shard's partial is computed by exactly one rank; gathering them and adding them in
  // shard order makes the sum independent of how shards are spread over ranks.
  const int ranks = comm_size(m_comm);
  const Eigen::Index rows = local_partials.rows();
  const int shards = m_stars.virtual_shards;
  std::vector<int> counts(static_cast<std::size_t>(ranks)), offsets(static_cast<std::size_t>(ranks));
  for (int r = 0; r < ranks; ++r) {
    const int first = r * shards / ranks, end = (r + 1) * shards / ranks;
    counts[static_cast<std::size_t>(r)] = static_cast<int>(rows) * (end - first);
    offsets[static_cast<std::size_t>(r)] = static_cast<int>(rows) * first;
  }
  Eigen::MatrixXd all(rows, shards);
  MPI_Allgatherv(local_partials.data(), static_cast<int>(local_partials.size()), MPI_DOUBLE,
                 all.data(), counts.data(), offsets.data(), MPI_DOUBLE, m_comm);
  Eigen::MatrixXd sum = Eigen::MatrixXd::Zero(rows, 1);
  for (int v = 0; v < shards; ++v) sum.col(0) += all.col(v);
  return sum;
}

Eigen::VectorXd Trainer::initial_output_bias(const FluxModel& start) {
  const int m = m_stars.bands();
  const int local_shards = m_stars.end_shard - m_stars.first_shard;
  Eigen::MatrixXd partial = Eigen::MatrixXd::Zero(2 * m, local_shards);
  for (int v = 0; v < local_shards; ++v) {
    const auto begin = m_stars.shard_begin[static_cast<std::size_t>(m_stars.first_shard + v)] - m_stars.first_row;
    const auto end = m_stars.shard_begin[static_cast<std::size_t>(m_stars.first_shard + v + 1)] - m_stars.first_row;
    for (std::int64_t i = begin; i < end; ++i) {
      if (!m_stars.usable(i)) continue;
      const double parallax = m_stars.parallax(i);
      if (!(parallax > 3 * m_stars.parallax_error(i))) continue;
      const double E = std::isfinite(m_stars.E_prior(i)) ? std::max(m_stars.E_prior(i), 0.0) : 0.0;
      for (int b = 0; b < m; ++b) {
        const double flux = m_stars.flux_for_fit[static_cast<std::size_t>(i * m + b)];
        if (!(flux > 0) || !std::isfinite(m_stars.flux_sigma[static_cast<std::size_t>(i * m + b)])) continue;
        partial(b, v) += std::log(flux) - 2 * std::log(parallax) + E * start.extinction_R(b);
        partial(m + b, v) += 1;
      }
    }
  }
  const Eigen::MatrixXd sum = shard_ordered_sum(partial);
  Eigen::VectorXd bias(m);
  for (int b = 0; b < m; ++b) bias(b) = sum(m + b, 0) > 0 ? sum(b, 0) / sum(m + b, 0) : 0.0;
  return bias;
}

void Trainer::start_fresh() {
  const FluxModel shape = initial_flux_model(m_settings.network, m_stars.wavelength_nm,
                                             Eigen::VectorXd(), m_settings.seed);
  m_model = initial_flux_model(m_settings.network, m_stars.wavelength_nm, initial_output_bias(shape),
                               m_settings.seed);
  m_global = pack_global_parameters(m_model);
  m_model_moments = OptimizerMoments{};
  const auto n = static_cast<Eigen::Index>(m_stars.size());
  m_slice = StarSliceState{};
  m_slice.first_row = m_stars.first_row;
  m_slice.source_id = m_stars.source_id;
  m_slice.parameters.resize(star_parameter_count, n);
  for (Eigen::Index i = 0; i < n; ++i) {
    const double parallax = std::max(m_stars.parallax(i), m_stars.parallax_error(i));
    const double E = std::isfinite(m_stars.E_prior(i)) ? std::max(m_stars.E_prior(i), 0.01) : 0.1;
    m_slice.parameters.col(i) << m_stars.label.col(i), std::log(parallax), std::log(E), 0.0;
  }
  if (m_population_density) start_at_calibrated_labels();
  m_slice.first_moment = Eigen::MatrixXd::Zero(star_parameter_count, n);
  m_slice.second_moment = Eigen::MatrixXd::Zero(star_parameter_count, n);
  m_slice.optimizer_steps.assign(static_cast<std::size_t>(n), 0);
  m_slice.outlier.assign(static_cast<std::size_t>(n), 0);
  m_position = TrainingPosition{};
  m_reports.clear();
}

// Usable stars move from their labels to E[Theta | label] under the label population.
void Trainer::start_at_calibrated_labels() {
  std::vector<Eigen::Index> usable;
  for (Eigen::Index i = 0; i < static_cast<Eigen::Index>(m_stars.size()); ++i)
    if (m_stars.usable(i)) usable.push_back(i);
  Eigen::MatrixXd labels(static_cast<Eigen::Index>(usable.size()), 3), variances(labels.rows(), 3);
  for (Eigen::Index j = 0; j < labels.rows(); ++j) {
    labels.row(j) = m_stars.label.col(usable[static_cast<std::size_t>(j)]).transpose();
    variances.row(j) = m_stars.label_error.col(usable[static_cast<std::size_t>(j)]).array().square().transpose();
  }
  const Eigen::MatrixXd calibrated = posterior_means(m_population, labels, variances);
  for (Eigen::Index j = 0; j < labels.rows(); ++j)
    m_slice.parameters.col(usable[static_cast<std::size_t>(j)]).head<3>() = calibrated.row(j).transpose();
}

bool Trainer::resume_from(const std::string& dir) {
  const auto peek = peek_latest_training_checkpoint(dir, m_comm);
  if (!peek) return false;
  if (peek->config_text != m_config_text)
    throw UsageError(dir + ": the newest checkpoint was written with a different configuration; "
                           "resume with the same configuration or start afresh in another directory");
  if (peek->total_stars != m_stars.total)
    throw UsageError(dir + ": the newest checkpoint holds " + std::to_string(peek->total_stars) +
                     " training stars, the star tables give " + std::to_string(m_stars.total));
  auto checkpoint = read_latest_training_checkpoint(dir, m_stars.first_row, m_stars.size(), m_comm);
  if (!checkpoint) return false;
  const FluxModel shape = initial_flux_model(m_settings.network, m_stars.wavelength_nm,
                                             Eigen::VectorXd(), m_settings.seed);
  m_model = shape;
  if (checkpoint->global_parameters.size() != global_parameter_count(m_model))
    throw UsageError(dir + ": checkpoint global parameters do not match the configured network");
  m_global = checkpoint->global_parameters;
  unpack_global_parameters(m_global, m_model);
  m_model_moments = checkpoint->model_optimizer;
  m_slice = std::move(checkpoint->stars);
  m_position = checkpoint->position;
  if (m_slice.source_id != m_stars.source_id)
    throw UsageError(dir + ": the checkpoint's stars differ from the star tables' training stars");
  if (m_position.phase_complete) {
    ++m_position.phase;
    m_position.phase_complete = false;
    m_position.step_in_phase = 0;
    m_position.epoch = 0;
  }
  if (m_rank == 0)
    std::cout << "resuming at " << (m_position.phase < static_cast<int>(m_settings.phases.size())
                                        ? m_settings.phases[static_cast<std::size_t>(m_position.phase)].name
                                        : std::string("the end"))
              << ", step " << m_position.step_in_phase << " (global step " << m_position.global_step
              << ")" << std::endl;
  return true;
}

std::vector<std::int64_t> Trainer::selected_local(StarSelection selection) const {
  std::vector<std::int64_t> rows;
  for (std::int64_t i = 0; i < m_stars.size(); ++i) {
    if (!m_stars.usable(i)) continue;
    const auto s = static_cast<std::size_t>(i);
    if (selection == StarSelection::high_quality && !m_stars.high_quality[s]) continue;
    if (selection == StarSelection::clean && (m_slice.outlier[s] & removal_bits(m_settings.cleaning.rule)) != 0)
      continue;
    rows.push_back(i);
  }
  return rows;
}

double Trainer::evaluate_block(const std::vector<std::int64_t>& local_rows, Workspace& w,
                               bool global_gradient, bool star_gradient) {
  const int m = m_stars.bands();
  const auto n = static_cast<Eigen::Index>(local_rows.size());
  w.batch.theta.resize(3, n);
  w.batch.ln_parallax.resize(n);
  w.batch.ln_E.resize(n);
  w.batch.xi.resize(n);
  for (Eigen::Index j = 0; j < n; ++j) {
    const auto p = m_slice.parameters.col(local_rows[static_cast<std::size_t>(j)]);
    w.batch.theta.col(j) = p.head<3>();
    w.batch.ln_parallax(j) = p(3);
    w.batch.ln_E(j) = p(4);
    w.batch.xi(j) = p(5);
  }
  flux_model_forward(m_model, w.batch, w.flux);
  w.loss_flux_gradient.resize(m, n);
  w.chi_square.resize(n);
  const double temper = m_settings.temper_scale * m;
  double loss = 0;
  for (Eigen::Index j = 0; j < n; ++j) {
    const auto row = static_cast<std::size_t>(local_rows[static_cast<std::size_t>(j)]);
    if (j + 1 < n) {
      const auto next = static_cast<std::size_t>(local_rows[static_cast<std::size_t>(j + 1)]);
      prefetch_whitening(m_stars.whitening.data() + next * whitening_size(static_cast<std::size_t>(m)),
                         m_stars.flux_for_fit.data() + next * static_cast<std::size_t>(m),
                         static_cast<std::size_t>(m));
    }
    const double chi2 = whitened_chi_square(
        m_stars.whitening.data() + row * whitening_size(static_cast<std::size_t>(m)),
        m_stars.flux_for_fit.data() + row * static_cast<std::size_t>(m), w.flux.flux.col(j).data(),
        m, w.loss_flux_gradient.col(j).data());
    w.chi_square(j) = chi2;
    if (temper > 0) {
      // c asinh(chi^2 / c): outliers count less than quadratically.
      loss += temper * std::asinh(chi2 / temper);
      w.loss_flux_gradient.col(j) *= 1.0 / std::sqrt(1.0 + (chi2 / temper) * (chi2 / temper));
    } else {
      loss += chi2;
    }
  }
  if (!global_gradient && !star_gradient) return loss;
  if (global_gradient) w.global.reset_like(m_model);
  flux_model_backward(m_model, w.batch, w.flux, w.loss_flux_gradient,
                      global_gradient ? &w.global : nullptr, star_gradient ? &w.star : nullptr);
  return loss;
}

double Trainer::model_step(const std::vector<std::int64_t>& batch, const OptimizerSettings& optimizer,
                           double learning_rate, bool update_extinction) {
  const Eigen::Index parameters = m_global.size();
  const int local_shards = m_stars.end_shard - m_stars.first_shard;
  // Rows 0..P-1: gradient sum; P: loss sum.
  Eigen::MatrixXd partial = Eigen::MatrixXd::Zero(parameters + 1, local_shards);
  std::vector<std::vector<std::int64_t>> blocks(static_cast<std::size_t>(local_shards));
  const std::int64_t first = m_stars.first_row;
  const std::int64_t end = first + m_stars.size();
  for (const std::int64_t row : batch) {
    if (row < first || row >= end) continue;
    const auto shard = std::upper_bound(m_stars.shard_begin.begin(), m_stars.shard_begin.end(), row) -
                       m_stars.shard_begin.begin() - 1 - m_stars.first_shard;
    blocks[static_cast<std::size_t>(shard)].push_back(row - first);
  }
#pragma omp parallel for schedule(dynamic)
  for (int v = 0; v < local_shards; ++v) {
    const auto& rows = blocks[static_cast<std::size_t>(v)];
    if (rows.empty()) continue;
    Workspace& w = m_workspaces[static_cast<std::size_t>(omp_get_thread_num())];
    partial(parameters, v) = evaluate_block(rows, w, true, false);
    pack_global_gradient(w.global, m_model, partial.col(v).data());
  }
  const Eigen::MatrixXd sum = shard_ordered_sum(partial);
  const double batch_size = static_cast<double>(batch.size());
  Eigen::VectorXd gradient = sum.col(0).head(parameters) / batch_size;
  const double weight_count = static_cast<double>(m_model.network.weight_count());
  for (const auto& [begin, stop] : weight_ranges(m_model))
    gradient.segment(begin, stop - begin) += (2.0 / weight_count) * m_global.segment(begin, stop - begin);

  if (!update_extinction) {
    const auto [curve_begin, curve_end] = extinction_range(m_model);
    gradient.segment(curve_begin, curve_end - curve_begin).setZero();
  }
  if (m_model_moments.first.size() != parameters) m_model_moments.first = Eigen::VectorXd::Zero(parameters);
  if (m_model_moments.second.size() != parameters) m_model_moments.second = Eigen::VectorXd::Zero(parameters);
  ++m_model_moments.steps;
  Eigen::VectorXd step(parameters);
  optimizer_step(optimizer, learning_rate, gradient.data(), m_model_moments.first.data(),
                 m_model_moments.second.data(), m_model_moments.steps, step.data(),
                 static_cast<int>(parameters));
  m_global += step;
  unpack_global_parameters(m_global, m_model);
  if (m_model.use_xi) {
    orthogonalise_R1(m_model);
    m_global = pack_global_parameters(m_model);
  }
  return sum(parameters, 0) / batch_size;
}

// Blocks of at most batch_size rows that never straddle a virtual shard: a star's place in its
// block, and so the rounding of the batched matrix products, is then the same at any rank count.
std::vector<std::vector<std::int64_t>> Trainer::blocks_within_shards(
    const std::vector<std::int64_t>& local_rows) const {
  std::vector<std::vector<std::int64_t>> blocks;
  const auto block = static_cast<std::size_t>(m_settings.batch_size);
  std::int64_t current_shard = -1;
  for (const std::int64_t row : local_rows) {
    const std::int64_t canonical = row + m_stars.first_row;
    const auto shard = std::upper_bound(m_stars.shard_begin.begin(), m_stars.shard_begin.end(), canonical) -
                       m_stars.shard_begin.begin();
    if (shard != current_shard || blocks.back().size() == block) blocks.emplace_back();
    current_shard = shard;
    blocks.back().push_back(row);
  }
  return blocks;
}

StarMeasurements Trainer::measurements(std::int64_t local_row) const {
  const auto i = static_cast<Eigen::Index>(local_row);
  StarMeasurements measured;
  measured.label = m_stars.label.col(i);
  measured.label_error = m_stars.label_error.col(i);
  measured.parallax = m_stars.parallax(i);
  measured.parallax_error = m_stars.parallax_error(i);
  measured.E_prior = m_stars.E_prior(i);
  measured.E_prior_error = m_stars.E_prior_error(i);
  return measured;
}

// Each star to the optimum of L_star (untempered chi^2) at the current model, from where it is.
InferenceLoss& Trainer::star_loss(Workspace& w) {
  const double E_limit = m_settings.star_solve.E_limit;
  if (!w.solve_loss)
    w.solve_loss = m_population_density
                       ? std::make_unique<InferenceLoss>(m_model, *m_population_density, 0.0, E_limit)
                       : std::make_unique<InferenceLoss>(m_model, 0.0, E_limit);
  return *w.solve_loss;
}

double Trainer::tempered(double chi_square) const {
  const double temper = m_settings.temper_scale * m_stars.bands();
  return temper > 0 ? temper * std::asinh(chi_square / temper) : chi_square;
}

double Trainer::star_solve(const std::vector<std::int64_t>& rows, Workspace& w) {
  const StarSolveSettings& solve = m_settings.star_solve;
  InferenceLoss& loss = star_loss(w);
  FastOptimizerSettings lm;
  lm.starts = 1;
  lm.max_iterations = solve.max_iterations;
  lm.initial_damping = solve.initial_damping;
  lm.decrement_tolerance = solve.decrement_tolerance;
  const auto m = static_cast<std::size_t>(m_stars.bands());
  double total = 0;
  for (const std::int64_t row : rows) {
    auto p = m_slice.parameters.col(static_cast<Eigen::Index>(row));
    const StarMeasurements measured = measurements(row);
    InferenceStar star;
    star.whitening = m_stars.whitening.data() + static_cast<std::size_t>(row) * whitening_size(m);
    star.flux_for_fit = m_stars.flux_for_fit.data() + static_cast<std::size_t>(row) * m;
    star.labels = &measured;
    const StarVector start = loss.parameters_of(p.head<3>(), std::exp(p(3)), std::exp(p(4)), p(5));
    const StarFit fit = fit_star_fast(loss, star, start, lm);
    if (!std::isfinite(fit.parts.total)) {  // the model overflows here: leave the star where it is
      total += loss.value(star, start);
      continue;
    }
    p.head<3>() = loss.theta(fit.parameters);
    p(3) = fit.parameters(3);
    p(4) = fit.parameters(4);
    if (m_model.use_xi) p(5) = fit.parameters(5);
    total += fit.parts.total;
  }
  return total;
}

double Trainer::star_step(const std::vector<std::int64_t>& rows, const OptimizerSettings& optimizer,
                          double learning_rate, Workspace& w) {
  if (rows.empty()) return 0;
  if (optimizer.kind == OptimizerKind::levenberg_marquardt) return star_solve(rows, w);
  double loss = evaluate_block(rows, w, false, true);
  const bool use_xi = m_model.use_xi;
  const int free_parameters = use_xi ? 6 : 5;
  const Eigen::Vector3d scale = m_model.network.input_scale;
  const double per_batch = 1.0 / static_cast<double>(m_settings.batch_size);
  double gradient[6], step[6];
  for (std::size_t j = 0; j < rows.size(); ++j) {
    const auto i = static_cast<Eigen::Index>(rows[j]);
    auto p = m_slice.parameters.col(i);
    const auto jj = static_cast<Eigen::Index>(j);
    const StarMeasurements measured = measurements(rows[j]);
    double prior = star_measurement_terms(p.data(), measured, gradient);
    if (m_population_density) {
      double population_gradient[3];
      prior -= 2 * m_population_density->evaluate(p.data(), population_gradient, nullptr);
      for (int k = 0; k < 3; ++k) gradient[k] -= 2 * population_gradient[k];
    }
    for (int k = 0; k < 3; ++k) gradient[k] = (gradient[k] + w.star.theta(k, jj)) * scale(k);
    gradient[3] += w.star.ln_parallax(jj);
    gradient[4] += w.star.ln_E(jj);
    gradient[5] = use_xi ? w.star.xi(jj) : 0.0;
    loss += prior;
    for (int k = 0; k < free_parameters; ++k) gradient[k] *= per_batch;
    auto& steps = m_slice.optimizer_steps[static_cast<std::size_t>(i)];
    ++steps;
    optimizer_step(optimizer, learning_rate, gradient, m_slice.first_moment.col(i).data(),
                   m_slice.second_moment.col(i).data(), steps, step, free_parameters);
    for (int k = 0; k < 3; ++k) p(k) += step[k] * scale(k);
    for (int k = 3; k < free_parameters; ++k) p(k) += step[k];
  }
  return loss;
}

void Trainer::begin_phase() {
  m_model_moments = OptimizerMoments{};
  m_model_moments.first = Eigen::VectorXd::Zero(m_global.size());
  m_model_moments.second = Eigen::VectorXd::Zero(m_global.size());
  m_slice.first_moment.setZero();
  m_slice.second_moment.setZero();
  std::fill(m_slice.optimizer_steps.begin(), m_slice.optimizer_steps.end(), 0);
  m_position.step_in_phase = 0;
  m_position.epoch = 0;
  m_position.phase_complete = false;
}

void Trainer::write_checkpoint(const std::string& dir) {
  if (dir.empty()) return;
  TrainingCheckpoint checkpoint;
  checkpoint.position = m_position;
  checkpoint.seed = m_settings.seed;
  checkpoint.config_text = m_config_text;
  checkpoint.global_parameters = m_global;
  checkpoint.model_optimizer = m_model_moments;
  checkpoint.total_stars = m_stars.total;
  checkpoint.stars = m_slice;
  write_training_checkpoint(dir, checkpoint, m_settings.checkpoint_keep, m_comm);
}

void Trainer::after_step(const std::string& checkpoint_dir) {
  ++m_position.step_in_phase;
  ++m_position.global_step;
  if (m_position.global_step % m_settings.checkpoint_every == 0) write_checkpoint(checkpoint_dir);
  if (m_abort_at_step == m_position.global_step) std::raise(SIGKILL);  // tests of --resume
}

void Trainer::run_batch_phase(const TrainingPhase& phase, const std::string& checkpoint_dir) {
  PhaseReport report = PhaseReport::of(phase);
  const std::vector<std::int64_t> local = selected_local(phase.selection);
  std::vector<std::int64_t> selected_local_canonical(local.size());
  for (std::size_t i = 0; i < local.size(); ++i) selected_local_canonical[i] = local[i] + m_stars.first_row;
  const std::vector<std::int64_t> selected = all_gather_int64(selected_local_canonical, m_comm);
  report.stars = static_cast<std::int64_t>(selected.size());
  if (selected.empty())
    throw UsageError(phase.name + " (" + phase_kind_name(phase.kind) + ", selection " +
                     selection_name(phase.selection) + ") has no stars to train on");
  const auto batch_size = static_cast<std::size_t>(m_settings.batch_size);
  const std::int64_t batches_per_epoch =
      static_cast<std::int64_t>((selected.size() + batch_size - 1) / batch_size);
  const std::int64_t total_steps = phase.epochs * batches_per_epoch;
  const bool alternate = phase.kind == PhaseKind::alternate;
  if (m_rank == 0)
    std::cout << phase.name << ": " << phase_kind_name(phase.kind) << " on " << report.stars << " "
              << selection_name(phase.selection) << " stars, " << phase.epochs << " epochs of "
              << batches_per_epoch << " batches" << std::endl;

  std::vector<std::int64_t> order;
  std::int64_t order_epoch = -1;
  std::vector<std::int64_t> local_batch;
  double epoch_loss = 0, last_epoch_loss = nan;
  std::int64_t epoch_stars = 0;
  const auto start = Clock::now();
  auto last_log = start;
  const std::int64_t first_step = m_position.step_in_phase;
  Workspace& w0 = m_workspaces[0];
  while (m_position.step_in_phase < total_steps) {
    const std::int64_t epoch = m_position.step_in_phase / batches_per_epoch;
    const std::int64_t batch_index = m_position.step_in_phase % batches_per_epoch;
    m_position.epoch = epoch;
    if (order_epoch != epoch) {
      order = selected;
      shuffle_for_epoch(order, m_settings.seed, m_position.phase, epoch);
      order_epoch = epoch;
    }
    if (batch_index == 0) {
      epoch_loss = 0;
      epoch_stars = 0;
    }
    const auto begin = static_cast<std::size_t>(batch_index) * batch_size;
    const std::vector<std::int64_t> batch(order.begin() + static_cast<std::ptrdiff_t>(begin),
                                          order.begin() + static_cast<std::ptrdiff_t>(std::min(begin + batch_size, order.size())));
    const double model_lr = phase.model_optimizer.learning_rate.at(epoch);
    const double loss = model_step(batch, phase.model_optimizer, model_lr, phase.update_extinction);
    epoch_loss += loss * static_cast<double>(batch.size());
    epoch_stars += static_cast<std::int64_t>(batch.size());
    report.star_gradients += static_cast<std::int64_t>(batch.size());
    if (alternate) {
      local_batch.clear();
      for (const std::int64_t row : batch)
        if (row >= m_stars.first_row && row < m_stars.first_row + m_stars.size())
          local_batch.push_back(row - m_stars.first_row);
      std::sort(local_batch.begin(), local_batch.end());
      for (const auto& rows : blocks_within_shards(local_batch))
        star_step(rows, phase.star_optimizer, phase.star_optimizer.learning_rate.at(epoch), w0);
      report.star_gradients += static_cast<std::int64_t>(batch.size());
    }
    if (batch_index == batches_per_epoch - 1) last_epoch_loss = epoch_loss / static_cast<double>(epoch_stars);
    after_step(checkpoint_dir);
    ++report.steps;
    if (m_rank == 0 && seconds_since(last_log) >= m_settings.log_interval_seconds) {
      last_log = Clock::now();
      const double elapsed = seconds_since(start);
      const double rate = static_cast<double>(m_position.step_in_phase - first_step) / elapsed;
      std::cout << phase.name << " epoch " << epoch + 1 << "/" << phase.epochs << " step "
                << m_position.step_in_phase << "/" << total_steps << "  mean chi2 "
                << (std::isfinite(last_epoch_loss) ? last_epoch_loss : epoch_loss / static_cast<double>(std::max<std::int64_t>(epoch_stars, 1)))
                << "  "
                << static_cast<long long>(rate * static_cast<double>(batch_size)) << " stars/s  ETA "
                << format_duration(static_cast<double>(total_steps - m_position.step_in_phase) / rate)
                << std::endl;
    }
  }
  report.final_loss = last_epoch_loss;
  report.seconds = seconds_since(start);
  m_reports.push_back(report);
}

void Trainer::run_stars_phase(const TrainingPhase& phase, const std::string& checkpoint_dir) {
  PhaseReport report = PhaseReport::of(phase);
  const std::vector<std::int64_t> local = selected_local(phase.selection);
  std::int64_t count = static_cast<std::int64_t>(local.size());
  MPI_Allreduce(&count, &report.stars, 1, MPI_INT64_T, MPI_SUM, m_comm);
  if (report.stars == 0)
    throw UsageError(phase.name + " (stars, selection " + selection_name(phase.selection) +
                     ") has no stars to train on");
  if (m_rank == 0)
    std::cout << phase.name << ": stars on " << report.stars << " " << selection_name(phase.selection)
              << " stars, " << phase.steps << " steps each" << std::endl;
  const auto block_rows = blocks_within_shards(local);
  const std::size_t blocks = block_rows.size();
  const auto start = Clock::now();
  auto last_log = start;
  const std::int64_t first_step = m_position.step_in_phase;
  while (m_position.step_in_phase < phase.steps) {
    const double lr = phase.star_optimizer.learning_rate.at(m_position.step_in_phase);
    double loss = 0;
#pragma omp parallel for schedule(dynamic) reduction(+ : loss)
    for (std::size_t b = 0; b < blocks; ++b)
      loss += star_step(block_rows[b], phase.star_optimizer, lr,
                        m_workspaces[static_cast<std::size_t>(omp_get_thread_num())]);
    MPI_Allreduce(MPI_IN_PLACE, &loss, 1, MPI_DOUBLE, MPI_SUM, m_comm);
    report.final_loss = loss / static_cast<double>(report.stars);
    report.star_gradients += report.stars;
    after_step(checkpoint_dir);
    ++report.steps;
    if (m_rank == 0 && seconds_since(last_log) >= m_settings.log_interval_seconds) {
      last_log = Clock::now();
      const double rate = static_cast<double>(m_position.step_in_phase - first_step) / seconds_since(start);
      std::cout << phase.name << " step " << m_position.step_in_phase << "/" << phase.steps
                << "  mean star loss " << report.final_loss << "  "
                << static_cast<long long>(rate * static_cast<double>(report.stars)) << " stars/s  ETA "
                << format_duration(static_cast<double>(phase.steps - m_position.step_in_phase) / rate)
                << std::endl;
    }
  }
  report.seconds = seconds_since(start);
  m_reports.push_back(report);
}

void Trainer::run_self_cleaning(const TrainingPhase& phase) {
  PhaseReport report = PhaseReport::of(phase);
  const auto& c = m_settings.cleaning;
  const int m = m_stars.bands();
  const std::vector<std::int64_t> local = selected_local(StarSelection::all);
  const std::uint8_t rule = removal_bits(c.rule);
  std::int64_t counts[5] = {static_cast<std::int64_t>(local.size()), 0, 0, 0, 0};
  Workspace& w = m_workspaces[0];
  for (const auto& rows : blocks_within_shards(local)) {
    evaluate_block(rows, w, false, false);
    for (std::size_t j = 0; j < rows.size(); ++j) {
      const auto i = static_cast<Eigen::Index>(rows[j]);
      const auto p = m_slice.parameters.col(i);
      std::uint8_t flags = 0;
      const double parallax_pull = (std::exp(p(3)) - m_stars.parallax(i)) / m_stars.parallax_error(i);
      double worst = std::abs(parallax_pull);
      for (int k = 0; k < 3; ++k)
        worst = std::max(worst, std::abs(p(k) - m_stars.label(k, i)) / m_stars.label_error(k, i));
      if (worst > c.label_parallax_sigma) flags |= outlier_labels_parallax;
      for (int b = 0; b < m; ++b) {
        const auto at = static_cast<std::size_t>(i * m + b);
        const double sigma = m_stars.flux_sigma[at];
        if (!std::isfinite(sigma)) continue;
        const double residual = w.flux.flux(b, static_cast<Eigen::Index>(j)) - m_stars.flux_for_fit[at];
        if (std::abs(residual) > c.flux_sigma * sigma) {
          flags |= outlier_flux;
          break;
        }
      }
      const double logg_pull = (p(2) - m_stars.label(2, i)) / m_stars.label_error(2, i);
      if (logg_pull * logg_pull + parallax_pull * parallax_pull > c.joint_sigma * c.joint_sigma)
        flags |= outlier_joint;
      // Every criterion is recorded; only the configured rule's bits remove the star.
      m_slice.outlier[static_cast<std::size_t>(i)] = flags;
      counts[1] += (flags & outlier_labels_parallax) != 0;
      counts[2] += (flags & outlier_flux) != 0;
      counts[3] += (flags & outlier_joint) != 0;
      counts[4] += (flags & rule) != 0;
    }
  }
  MPI_Allreduce(MPI_IN_PLACE, counts, 5, MPI_INT64_T, MPI_SUM, m_comm);
  report.stars = counts[0];
  report.flagged_labels_parallax = counts[1];
  report.flagged_flux = counts[2];
  report.flagged_joint = counts[3];
  report.removed = counts[4];
  if (m_rank == 0) {
    const double n = static_cast<double>(std::max<std::int64_t>(counts[0], 1));
    std::cout << phase.name << ": self-cleaning of " << counts[0] << " stars: " << counts[1]
              << " (" << 100.0 * static_cast<double>(counts[1]) / n << " %) off their labels or parallax, "
              << counts[2] << " (" << 100.0 * static_cast<double>(counts[2]) / n
              << " %) with a flux residual, joint rule " << counts[3] << "; removed " << counts[4]
              << " (" << 100.0 * static_cast<double>(counts[4]) / n << " %)" << std::endl;
  }
  m_reports.push_back(report);
}

void Trainer::run(const std::string& checkpoint_dir) {
  const int phases = static_cast<int>(m_settings.phases.size());
  while (m_position.phase < phases) {
    const TrainingPhase& phase = m_settings.phases[static_cast<std::size_t>(m_position.phase)];
    if (m_position.step_in_phase == 0) begin_phase();
    switch (phase.kind) {
      case PhaseKind::model:
      case PhaseKind::alternate:
        run_batch_phase(phase, checkpoint_dir);
        break;
      case PhaseKind::stars:
        run_stars_phase(phase, checkpoint_dir);
        break;
      case PhaseKind::self_cleaning:
        run_self_cleaning(phase);
        break;
      case PhaseKind::coordinated:
        run_coordinated_phase(phase, checkpoint_dir);
        break;
    }
    m_position.phase_complete = true;
    write_checkpoint(checkpoint_dir);
    ++m_position.phase;
    m_position.phase_complete = false;
    m_position.step_in_phase = 0;
    m_position.epoch = 0;
  }
}

Eigen::VectorXd Trainer::star_chi_square() {
  Eigen::VectorXd chi2 = Eigen::VectorXd::Constant(m_stars.size(), nan);
  const std::vector<std::int64_t> local = selected_local(StarSelection::all);
  Workspace& w = m_workspaces[0];
  for (const auto& rows : blocks_within_shards(local)) {
    evaluate_block(rows, w, false, false);
    for (std::size_t j = 0; j < rows.size(); ++j)
      chi2(static_cast<Eigen::Index>(rows[j])) = w.chi_square(static_cast<Eigen::Index>(j));
  }
  return chi2;
}

}  // namespace xps
