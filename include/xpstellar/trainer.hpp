// The data-parallel training loop (DESIGN §1.4, §2): runs the phases of the recipe on the training
// stars, each rank owning a contiguous slice of them (TrainingStars) and their parameters.
//
// Determinism: the batches of an epoch are a permutation of the phase's stars drawn from
// (seed, phase, epoch); within a batch, every virtual shard's stars form one block whose gradient
// sum is computed alone, the blocks' sums are gathered and added in shard order. So the model does
// not depend on the number of ranks or threads, and a run resumed from a checkpoint continues
// exactly as if it had never stopped (the state after a step is a function of the state before).
//
// Losses (DESIGN §1.3). Model step: the batch mean of chi^2 (optionally tempered) plus
// ||W||^2 / n_W. Star step: each star's L_star with u = ln parallax and v = ln E, divided by the
// batch size as in the authors' code (their star loss is a batch mean), and optimised in the
// network's normalised Theta units. With a population prior (PopulationPriorSettings) stars start
// at their regression-calibrated labels and L_star gains -2 ln p(Theta).
#pragma once

#include <mpi.h>

#include <Eigen/Dense>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "xpstellar/flux_model.hpp"
#include "xpstellar/gaussian_mixture.hpp"
#include "xpstellar/inference_loss.hpp"
#include "xpstellar/training_checkpoint.hpp"
#include "xpstellar/training_set.hpp"
#include "xpstellar/star_loss.hpp"
#include "xpstellar/training_settings.hpp"

namespace xps {

// Self-cleaning bits of a star (StarSliceState::outlier).
enum OutlierBit : std::uint8_t {
  outlier_labels_parallax = 1,  // some Theta_i or the parallax > label_parallax_sigma from its measurement
  outlier_flux = 2,             // some flux residual > flux_sigma
  outlier_joint = 4             // joint rule (dlogg/s)^2 + (dparallax/s)^2 > joint_sigma^2
};

// The outlier bits that remove a star from the `clean` selection under `rule`.
std::uint8_t removal_bits(CleaningRule rule);

struct PhaseReport {
  std::string name;
  PhaseKind kind = PhaseKind::model;
  StarSelection selection = StarSelection::all;
  std::int64_t stars = 0;  // selected, all ranks
  std::int64_t steps = 0;  // taken in this run (a resumed phase counts only the rest)
  double final_loss = 0;   // last epoch's mean chi^2 (model, alternate) or last step's mean L_star
  double seconds = 0;
  std::int64_t star_gradients = 0;  // per-star forward+backward passes, all ranks
  // Self-cleaning: stars flagged by each criterion and removed in total.
  std::int64_t flagged_labels_parallax = 0, flagged_flux = 0, flagged_joint = 0, removed = 0;
  static PhaseReport of(const TrainingPhase& phase) {
    PhaseReport report;
    report.name = phase.name;
    report.kind = phase.kind;
    report.selection = phase.selection;
    return report;
  }
};

class Trainer {
public:
  Trainer(const TrainingSettings& settings, TrainingStars& stars, std::string config_text,
          MPI_Comm comm);
  ~Trainer();
  Trainer(const Trainer&) = delete;
  Trainer& operator=(const Trainer&) = delete;

  // A fresh start: the initial model and every star at its measured values.
  void start_fresh();
  // Collective: continues from the newest valid checkpoint of `dir`; false if there is none.
  // Throws UsageError if it was written by a different configuration or training set.
  bool resume_from(const std::string& dir);
  // Collective: runs what remains of the recipe, checkpointing into `checkpoint_dir` (empty: no
  // checkpoints).
  void run(const std::string& checkpoint_dir);

  const FluxModel& model() const { return m_model; }
  const std::vector<PhaseReport>& reports() const { return m_reports; }
  // This rank's stars: [6 x n] teff [K], feh, logg, ln parallax, ln E, xi.
  const Eigen::MatrixXd& star_parameters() const { return m_slice.parameters; }
  const std::vector<std::uint8_t>& outliers() const { return m_slice.outlier; }
  // chi^2 of every local star under the current model (NaN for excluded stars).
  Eigen::VectorXd star_chi_square();
  const TrainingPosition& position() const { return m_position; }

private:
  struct Workspace;
  void begin_phase();
  void run_batch_phase(const TrainingPhase& phase, const std::string& checkpoint_dir);
  void run_stars_phase(const TrainingPhase& phase, const std::string& checkpoint_dir);
  void run_self_cleaning(const TrainingPhase& phase);
  double model_step(const std::vector<std::int64_t>& batch, const OptimizerSettings& optimizer,
                    double learning_rate, bool update_extinction);
  double star_step(const std::vector<std::int64_t>& local_rows, const OptimizerSettings& optimizer,
                   double learning_rate, Workspace& workspace);
  double star_solve(const std::vector<std::int64_t>& local_rows, Workspace& workspace);
  InferenceLoss& star_loss(Workspace& workspace);  // the star solve's loss, made on first use
  double tempered(double chi_square) const;        // training.temper_scale applied
  void run_coordinated_phase(const TrainingPhase& phase, const std::string& checkpoint_dir);
  // coordinated_phase.cpp. The loss the model steps see (mean of L_star with chi^2 tempered, plus
  // the weights' L2 prior) at the stored star parameters, and every selected star solved.
  double training_loss(const std::vector<std::vector<std::int64_t>>& rows_by_shard, double stars);
  void solve_all_stars(const std::vector<std::vector<std::int64_t>>& rows_by_shard);
  // The Gauss-Newton system of that loss in the parameters `moved`: [P x P+1], gradient last.
  Eigen::MatrixXd coordinated_system(const std::vector<std::vector<std::int64_t>>& rows_by_shard,
                                     const std::vector<Eigen::Index>& moved, bool extinction,
                                     double stars, std::int64_t& skipped);
  std::vector<std::vector<std::int64_t>> rows_by_local_shard(const std::vector<std::int64_t>& local_rows) const;
  StarMeasurements measurements(std::int64_t local_row) const;
  std::vector<std::vector<std::int64_t>> blocks_within_shards(const std::vector<std::int64_t>& local_rows) const;
  double evaluate_block(const std::vector<std::int64_t>& local_rows, Workspace& workspace,
                        bool global_gradient, bool star_gradient);
  std::vector<std::int64_t> selected_local(StarSelection selection) const;
  void after_step(const std::string& checkpoint_dir);
  void write_checkpoint(const std::string& dir);
  Eigen::VectorXd initial_output_bias(const FluxModel& start);
  void start_at_calibrated_labels();
  Eigen::MatrixXd shard_ordered_sum(const Eigen::MatrixXd& local_partials) const;

  TrainingSettings m_settings;
  TrainingStars& m_stars;
  std::string m_config_text;
  MPI_Comm m_comm;
  int m_rank = 0;
  FluxModel m_model;
  Eigen::VectorXd m_global;  // packed global parameters (pack_global_parameters)
  OptimizerMoments m_model_moments;
  StarSliceState m_slice;
  TrainingPosition m_position;
  std::vector<PhaseReport> m_reports;
  std::vector<Workspace> m_workspaces;  // one per OpenMP thread
  GaussianMixture m_population;         // population_prior.enabled: the label population
  std::unique_ptr<GaussianMixtureDensity> m_population_density;  // and its density; else null
  std::int64_t m_abort_at_step = -1;    // XPS_TRAIN_ABORT_AT_STEP (tests: SIGKILL after that step)
};

}  // namespace xps
