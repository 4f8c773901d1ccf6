// The coordinated phase (coordinated_step.hpp): Levenberg-Marquardt steps of the first layer, the
// biases and ln R on the training loss, every selected star re-solved at each trial model.
//
// Determinism: sums are taken per virtual shard (one thread walks a shard's stars in order) and
// added in shard order; the loss that accepts or rejects a step is evaluated from the stored star
// parameters, and every step starts from the configured damping. So neither the rank count nor a
// resume from a checkpoint changes the result.
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <limits>

#include "xpstellar/coordinated_step.hpp"
#include "xpstellar/error.hpp"
#include "xpstellar/model_parameters.hpp"
#include "xpstellar/mpi_session.hpp"
#include "xpstellar/progress.hpp"
#include "xpstellar/trainer.hpp"
#include "trainer_workspace.hpp"

namespace xps {
namespace {

InferenceStar star_view(const TrainingStars& stars, std::int64_t row, const StarMeasurements& measured) {
  const auto m = static_cast<std::size_t>(stars.bands());
  InferenceStar star;
  star.whitening = stars.whitening.data() + static_cast<std::size_t>(row) * whitening_size(m);
  star.flux_for_fit = stars.flux_for_fit.data() + static_cast<std::size_t>(row) * m;
  star.labels = &measured;
  return star;
}

}  // namespace

std::vector<std::vector<std::int64_t>> Trainer::rows_by_local_shard(
    const std::vector<std::int64_t>& local_rows) const {
  const int local_shards = m_stars.end_shard - m_stars.first_shard;
  std::vector<std::vector<std::int64_t>> rows(static_cast<std::size_t>(local_shards));
  for (const std::int64_t row : local_rows) {
    const auto shard = std::upper_bound(m_stars.shard_begin.begin(), m_stars.shard_begin.end(),
                                        row + m_stars.first_row) -
                       m_stars.shard_begin.begin() - 1 - m_stars.first_shard;
    rows[static_cast<std::size_t>(shard)].push_back(row);
  }
  return rows;
}

double Trainer::training_loss(const std::vector<std::vector<std::int64_t>>& rows_by_shard, double stars) {
  const auto shards = static_cast<Eigen::Index>(rows_by_shard.size());
  Eigen::MatrixXd partial = Eigen::MatrixXd::Zero(1, shards);
#pragma omp parallel for schedule(dynamic)
  for (Eigen::Index v = 0; v < shards; ++v) {
    InferenceLoss& loss = star_loss(m_workspaces[static_cast<std::size_t>(omp_get_thread_num())]);
    double sum = 0;
    for (const std::int64_t row : rows_by_shard[static_cast<std::size_t>(v)]) {
      const auto p = m_slice.parameters.col(static_cast<Eigen::Index>(row));
      const StarMeasurements measured = measurements(row);
      InferenceLossParts parts;
      loss.value(star_view(m_stars, row, measured), loss.parameters_of(p.head<3>(), std::exp(p(3)), std::exp(p(4)), p(5)),
                 &parts);
      sum += parts.total - parts.chi2 + tempered(parts.chi2);
    }
    partial(0, v) = sum;
  }
  double weights = 0;
  for (const auto& [begin, end] : weight_ranges(m_model)) weights += m_global.segment(begin, end - begin).squaredNorm();
  return shard_ordered_sum(partial)(0, 0) / stars +
         weights / static_cast<double>(m_model.network.weight_count());
}

void Trainer::solve_all_stars(const std::vector<std::vector<std::int64_t>>& rows_by_shard) {
  const auto shards = static_cast<std::ptrdiff_t>(rows_by_shard.size());
#pragma omp parallel for schedule(dynamic)
  for (std::ptrdiff_t v = 0; v < shards; ++v)
    star_solve(rows_by_shard[static_cast<std::size_t>(v)], m_workspaces[static_cast<std::size_t>(omp_get_thread_num())]);
}

Eigen::MatrixXd Trainer::coordinated_system(const std::vector<std::vector<std::int64_t>>& rows_by_shard,
                                            const std::vector<Eigen::Index>& moved, bool extinction,
                                            double stars, std::int64_t& skipped) {
  const auto P = static_cast<Eigen::Index>(moved.size());
  const auto shards = static_cast<Eigen::Index>(rows_by_shard.size());
  const double temper = m_settings.temper_scale > 0 ? m_settings.temper_scale * m_stars.bands()
                                                    : std::numeric_limits<double>::infinity();
  // Per shard: the Hessian (lower triangle, full storage), the gradient, the stars skipped.
  Eigen::MatrixXd partial = Eigen::MatrixXd::Zero(P * P + P + 1, shards);
#pragma omp parallel for schedule(dynamic)
  for (Eigen::Index v = 0; v < shards; ++v) {
    InferenceLoss& loss = star_loss(m_workspaces[static_cast<std::size_t>(omp_get_thread_num())]);
    ProfileSystem system(P, m_stars.bands());
    double skipped_here = 0;
    StarVector gradient;
    StarMatrix hessian;
    for (const std::int64_t row : rows_by_shard[static_cast<std::size_t>(v)]) {
      const auto p = m_slice.parameters.col(static_cast<Eigen::Index>(row));
      const StarMeasurements measured = measurements(row);
      const InferenceStar star = star_view(m_stars, row, measured);
      InferenceLossParts parts;
      const double value = loss.value_gradient_hessian(
          star, loss.parameters_of(p.head<3>(), std::exp(p(3)), std::exp(p(4)), p(5)), gradient, hessian, &parts);
      // d (tempered chi^2) / d chi^2: an outlier counts as much in this step as in a model step.
      const double weight = !std::isfinite(value) ? 0.0 : 1.0 / std::hypot(1.0, parts.chi2 / temper);
      if (!system.add_star(loss, star.whitening, gradient, hessian, weight, extinction)) skipped_here += 1;
    }
    auto column = partial.col(v);
    Eigen::Map<Eigen::MatrixXd>(column.data(), P, P) = system.hessian();
    column.segment(P * P, P) = system.gradient();
    column(P * P + P) = skipped_here;
  }
  const Eigen::MatrixXd sum = shard_ordered_sum(partial);
  Eigen::MatrixXd result(P, P + 1);
  const Eigen::Map<const Eigen::MatrixXd> lower(sum.data(), P, P);
  result.leftCols(P) = lower.selfadjointView<Eigen::Lower>();
  result.leftCols(P) /= stars;
  result.col(P) = sum.col(0).segment(P * P, P) / stars;
  skipped = std::llround(sum(P * P + P, 0));
  return result;
}

void Trainer::run_coordinated_phase(const TrainingPhase& phase, const std::string& checkpoint_dir) {
  PhaseReport report = PhaseReport::of(phase);
  const std::vector<std::int64_t> local = selected_local(phase.selection);
  auto count = static_cast<std::int64_t>(local.size());
  MPI_Allreduce(&count, &report.stars, 1, MPI_INT64_T, MPI_SUM, m_comm);
  if (report.stars == 0)
    throw UsageError(phase.name + " (coordinated, selection " + selection_name(phase.selection) +
                     ") has no stars to train on");
  const auto rows = rows_by_local_shard(local);
  const bool extinction = phase.update_extinction;
  const std::vector<Eigen::Index> moved = coordinated_parameter_indices(m_model, extinction);
  const auto P = static_cast<Eigen::Index>(moved.size());
  const auto stars = static_cast<double>(report.stars);
  // The weights' L2 prior ||W||^2 / n_W of the model step, on the first layer's weights.
  const double weight_count = static_cast<double>(m_model.network.weight_count());
  std::vector<bool> is_weight(static_cast<std::size_t>(P), false);
  for (const auto& [begin, end] : weight_ranges(m_model))
    for (Eigen::Index j = 0; j < P; ++j)
      if (moved[static_cast<std::size_t>(j)] >= begin && moved[static_cast<std::size_t>(j)] < end)
        is_weight[static_cast<std::size_t>(j)] = true;
  if (m_rank == 0)
    std::cout << phase.name << ": coordinated on " << report.stars << " " << selection_name(phase.selection)
              << " stars, " << phase.steps << " Gauss-Newton steps of " << P << " model parameters" << std::endl;
  const auto start = std::chrono::steady_clock::now();
  const auto seconds_since_start = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  if (m_position.step_in_phase == 0) {
    solve_all_stars(rows);  // every star at its optimum of the model the phase starts from
    report.star_gradients += report.stars;
  }
  double loss = training_loss(rows, stars);
  const std::int64_t first_step = m_position.step_in_phase;
  while (m_position.step_in_phase < phase.steps) {
    std::int64_t skipped = 0;
    const Eigen::MatrixXd system = coordinated_system(rows, moved, extinction, stars, skipped);
    Eigen::MatrixXd hessian = system.leftCols(P);
    Eigen::VectorXd gradient = system.col(P);
    for (Eigen::Index j = 0; j < P; ++j) {
      if (!is_weight[static_cast<std::size_t>(j)]) continue;
      hessian(j, j) += 2.0 / weight_count;
      gradient(j) += 2.0 * m_global(moved[static_cast<std::size_t>(j)]) / weight_count;
    }
    const Eigen::VectorXd scale = hessian.diagonal().cwiseMax(1e-12 * hessian.diagonal().maxCoeff());
    const Eigen::VectorXd saved_global = m_global;
    const Eigen::MatrixXd saved_stars = m_slice.parameters;
    double damping = m_settings.coordinated.initial_damping, trial = loss, predicted = 0;
    bool accepted = false;
    for (int attempt = 0; attempt < m_settings.coordinated.attempts && !accepted; ++attempt) {
      if (attempt > 0) damping *= 10;
      Eigen::MatrixXd damped = hessian;
      damped.diagonal() += damping * scale;
      const Eigen::VectorXd step = damped.ldlt().solve(-gradient);
      predicted = gradient.dot(step) + 0.5 * step.dot(hessian * step);
      for (Eigen::Index j = 0; j < P; ++j) m_global(moved[static_cast<std::size_t>(j)]) += step(j);
      unpack_global_parameters(m_global, m_model);
      if (m_model.use_xi) {
        orthogonalise_R1(m_model);
        m_global = pack_global_parameters(m_model);
      }
      solve_all_stars(rows);
      report.star_gradients += report.stars;
      trial = training_loss(rows, stars);
      accepted = trial < loss;
      if (!accepted) {
        m_global = saved_global;
        unpack_global_parameters(m_global, m_model);
        m_slice.parameters = saved_stars;
      }
    }
    if (m_rank == 0) {
      const double rate = static_cast<double>(m_position.step_in_phase + 1 - first_step) / seconds_since_start();
      std::cout << phase.name << " step " << m_position.step_in_phase + 1 << "/" << phase.steps << "  loss "
                << loss << " -> " << (accepted ? trial : loss) << " (predicted " << predicted << ", damping "
                << damping << (accepted ? "" : ", rejected") << ", " << skipped << " stars not smooth)  ETA "
                << format_duration(static_cast<double>(phase.steps - m_position.step_in_phase - 1) / rate)
                << std::endl;
    }
    if (accepted) loss = trial;
    report.final_loss = loss;
    after_step(checkpoint_dir);
    ++report.steps;
  }
  report.seconds = seconds_since_start();
  m_reports.push_back(report);
}

}  // namespace xps
