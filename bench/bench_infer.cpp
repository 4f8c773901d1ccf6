// Benchmark: the per-star inference pipeline (DESIGN §1.5) on one core, stage by stage — whitening
// (prepare_inference_star), the starting-grid screen (StartGrid::screen in blocks of
// start_screen_block), the re-scoring of the screened starts with the full loss, the fit and the
// Fisher uncertainties — plus the whole InferenceWorker::infer_block as xps_infer runs it, for the
// fast (default) optimiser and, on a subset, the paper's. Reading the star tables is timed apart
// (I/O, not per-star compute).
// Usage: bench_infer --model M.h5 --stars DIR [--stars-limit N] [--paper-stars N] [--threads T]
#include <sys/resource.h>
#include <time.h>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "bench_support.hpp"
#include "xpstellar/catalog.hpp"
#include "xpstellar/config.hpp"
#include "xpstellar/fisher.hpp"
#include "xpstellar/inference_loss.hpp"
#include "xpstellar/inference_settings.hpp"
#include "xpstellar/inference_star.hpp"
#include "xpstellar/inference_start.hpp"
#include "xpstellar/model_file.hpp"
#include "xpstellar/mpi_session.hpp"
#include "xpstellar/partition.hpp"
#include "xpstellar/star_fit.hpp"
#include "xpstellar/star_inference.hpp"
#include "xpstellar/star_table.hpp"

using xps::bench::clock_type;
using xps::bench::seconds_since;

namespace {

const char* text_option(int argc, char** argv, const char* name, const char* fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (!std::strcmp(argv[i], name)) return argv[i + 1];
  return fallback;
}

double median(std::vector<double> values) {
  if (values.empty()) return std::numeric_limits<double>::quiet_NaN();
  const std::size_t mid = values.size() / 2;
  std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(mid), values.end());
  double m = values[mid];
  if (values.size() % 2 == 0) {
    const double below = *std::max_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(mid));
    m = 0.5 * (m + below);
  }
  return m;
}

// CPU time of the calling thread: on a shared machine it moves less than the wall clock when
// other processes compete for the cores.
double thread_cpu_seconds() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

struct StageClock {  // thread CPU time and wall time of one stage
  double cpu0 = thread_cpu_seconds();
  clock_type::time_point wall0 = clock_type::now();
  void restart() {
    cpu0 = thread_cpu_seconds();
    wall0 = clock_type::now();
  }
  double cpu() const { return thread_cpu_seconds() - cpu0; }
  double wall() const { return seconds_since(wall0); }
};

std::string load_average() {
  std::FILE* f = std::fopen("/proc/loadavg", "r");
  if (!f) return "?";
  char text[64] = {};
  const bool ok = std::fgets(text, sizeof text, f) != nullptr;
  std::fclose(f);
  if (!ok) return "?";
  std::string s(text);
  const auto third = s.find(' ', s.find(' ', s.find(' ') + 1) + 1);
  return s.substr(0, third);
}

double peak_rss_mib() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_maxrss) / 1024.0;  // Linux: kB
}

// infer_block over [begin, end) in blocks of start_screen_block aligned to chunk positions, as
// inference_run.cpp does; returns the thread CPU seconds spent.
double infer_range(xps::InferenceWorker& worker, const xps::InferenceChunk& chunk, std::size_t begin,
                   std::size_t end, xps::CatalogRows& rows, double* wall_seconds = nullptr) {
  const StageClock clock;
  for (std::size_t first = begin; first < end;) {
    const std::size_t block_end = std::min(end, (first / xps::start_screen_block + 1) * xps::start_screen_block);
    worker.infer_block(chunk, first, block_end, rows);
    first = block_end;
  }
  if (wall_seconds) *wall_seconds = clock.wall();
  return clock.cpu();
}

}  // namespace

int main(int argc, char** argv) {
  xps::MpiSession mpi(argc, argv);
  const std::string model_path = text_option(argc, argv, "--model", "");
  const std::string stars_dir = text_option(argc, argv, "--stars", "");
  if (model_path.empty() || stars_dir.empty()) {
    std::fprintf(stderr,
                 "Usage: bench_infer --model M.h5 --stars DIR [--stars-limit N (4000)] [--paper-stars N (100)]"
                 " [--threads T (1)]\n");
    return 2;
  }
  const auto stars_limit = static_cast<std::size_t>(xps::bench::numeric_option(argc, argv, "--stars-limit", 4000));
  const auto paper_limit = static_cast<std::size_t>(xps::bench::numeric_option(argc, argv, "--paper-stars", 100));
  const int threads = std::max(1, static_cast<int>(xps::bench::numeric_option(argc, argv, "--threads", 1)));
  constexpr double survey_stars = 220e6;

  const std::string load_at_start = load_average();
  StageClock clock;
  // Model, settings (the built-in defaults of config/infer keys), shared immutable objects.
  auto start = clock_type::now();
  const xps::ModelFile file = xps::read_model_file(model_path);
  if (!file.prior) {
    std::fprintf(stderr, "bench_infer: %s has no prior (write it with xps_train)\n", model_path.c_str());
    return 2;
  }
  xps::ParameterSet parameters;
  xps::declare_inference_parameters(parameters);
  xps::InferenceSettings settings = xps::read_inference_parameters(parameters);
  settings.parallax_zero_point = -0.017;
  settings.optimizer = xps::InferenceOptimizer::fast;
  const xps::GaussianMixtureDensity prior(file.prior->mixture);
  const xps::FluxWhitening whitening(file.band_names, file.wavelength_nm, file.inflation);
  const double load_seconds = seconds_since(start);
  clock.restart();
  const xps::StartGrid grid(file.model, file.prior->mixture, file.wavelength_nm, settings.start);
  const double grid_seconds = clock.cpu();
  const int free_parameters = file.model.use_xi ? 6 : 5;
  const int bands = static_cast<int>(file.band_names.size());

  // Stars: the first tables of the pixel-sorted list, up to stars_limit rows.
  start = clock_type::now();
  std::vector<xps::StarTable> tables;
  std::size_t total = 0;
  for (const std::string& path : xps::list_star_tables(stars_dir)) {
    if (total >= stars_limit) break;
    const std::size_t n = std::min(xps::read_star_table_info(path).rows, stars_limit - total);
    if (n == 0) continue;
    tables.push_back(xps::read_star_table_rows(path, 0, n, {true, false}));
    if (tables.back().band_names != file.band_names) {
      std::fprintf(stderr, "bench_infer: %s: bands differ from the model's\n", path.c_str());
      return 2;
    }
    total += n;
  }
  const double read_seconds = seconds_since(start);
  if (total == 0) {
    std::fprintf(stderr, "bench_infer: no star rows in %s\n", stars_dir.c_str());
    return 2;
  }
  const std::size_t paper_stars = std::min(paper_limit, total);

  // Stage 1: preparation (whitening), one thread.
  xps::InferenceChunk chunk;
  chunk.reset(total, bands);
  clock.restart();
  {
    std::size_t slot = 0;
    for (const xps::StarTable& table : tables)
      for (std::size_t r = 0; r < table.rows(); ++r, ++slot)
        xps::prepare_inference_star(table, r, whitening, settings.parallax_zero_point, free_parameters, chunk, slot);
  }
  const double prepare_seconds = clock.cpu();
  std::size_t prepared = 0;
  for (std::size_t i = 0; i < total; ++i) prepared += chunk.status[i] == xps::FitStatus::converged ? 1 : 0;

  // Stage 2: the start screen, in blocks of start_screen_block chunk positions (prepared stars only).
  std::vector<std::vector<xps::StartCandidate>> candidates(total);
  double screen_seconds = 0;
  {
    xps::StartScreenWorkspace workspace;
    std::vector<xps::InferenceStar> block;
    std::vector<std::size_t> block_rows;
    std::vector<std::vector<xps::StartCandidate>> block_candidates;
    for (std::size_t first = 0; first < total; first += xps::start_screen_block) {
      block.clear();
      block_rows.clear();
      for (std::size_t i = first; i < std::min(total, first + xps::start_screen_block); ++i)
        if (chunk.status[i] == xps::FitStatus::converged) {
          block.push_back(chunk.star(i));
          block_rows.push_back(i);
        }
      if (block.empty()) continue;
      clock.restart();
      grid.screen(block.data(), static_cast<int>(block.size()), workspace, block_candidates);
      screen_seconds += clock.cpu();
      for (std::size_t b = 0; b < block.size(); ++b) candidates[block_rows[b]] = block_candidates[b];
    }
  }

  // How much of the screen is its two matrix products: the same shapes on random data.
  double gemm_seconds_per_star = 0;
  {
    const auto T = static_cast<Eigen::Index>(grid.templates());
    const auto B = static_cast<Eigen::Index>(xps::start_screen_block);
    using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
    const RowMajor flux = RowMajor::Random(T, bands), squared = RowMajor::Random(T, bands);
    const Eigen::MatrixXf data = Eigen::MatrixXf::Random(bands, 2 * B), weights = Eigen::MatrixXf::Random(bands, B);
    Eigen::MatrixXf products(T, 2 * B), squares(T, B);
    constexpr int repeats = 8;
    products.noalias() = flux * data;  // warm-up
    clock.restart();
    for (int r = 0; r < repeats; ++r) {
      products.noalias() = flux * data;
      squares.noalias() = squared * weights;
    }
    gemm_seconds_per_star = clock.cpu() / (repeats * static_cast<double>(B));
  }

  // Stages 3-5: what infer_block does after the screen, timed apart: re-scoring the screened starts
  // with the full loss, the fast fit of the best `fast.starts`, the Fisher uncertainties.
  xps::InferenceLoss loss(file.model, prior, settings.xi_prior_sigma, settings.E_limit);
  struct Scored {
    double value;
    xps::StarVector parameters;
  };
  std::vector<std::vector<Scored>> starts(total);
  clock.restart();
  for (std::size_t i = 0; i < total; ++i) {
    if (chunk.status[i] != xps::FitStatus::converged) continue;
    const xps::InferenceStar star = chunk.star(i);
    for (const xps::StartCandidate& c : candidates[i]) {
      if (!std::isfinite(c.score)) continue;
      const xps::StarVector p = loss.parameters_of(c.theta, c.parallax, c.E, 0.0);
      const double value = loss.value(star, p);
      if (std::isfinite(value)) starts[i].push_back({value, p});
    }
    std::stable_sort(starts[i].begin(), starts[i].end(),
                     [](const Scored& x, const Scored& y) { return x.value < y.value; });
  }
  const double rescore_seconds = clock.cpu();

  std::vector<xps::StarFit> fits(total);
  std::vector<unsigned char> fitted(total, 0);
  long long fit_calls = 0, lm_iterations = 0;
  clock.restart();
  for (std::size_t i = 0; i < total; ++i) {
    if (starts[i].empty()) continue;
    const xps::InferenceStar star = chunk.star(i);
    const std::size_t tries = std::min<std::size_t>(starts[i].size(), static_cast<std::size_t>(settings.fast.starts));
    for (std::size_t t = 0; t < tries; ++t) {
      const xps::StarFit trial = xps::fit_star_fast(loss, star, starts[i][t].parameters, settings.fast);
      ++fit_calls;
      lm_iterations += trial.iterations;
      if (t == 0 || trial.parts.total < fits[i].parts.total) fits[i] = trial;
    }
    fitted[i] = 1;
  }
  const double fit_seconds = clock.cpu();

  std::size_t fisher_done = 0;
  double fisher_checksum = 0;
  clock.restart();
  for (std::size_t i = 0; i < total; ++i) {
    if (!fitted[i] || !std::isfinite(fits[i].parts.total)) continue;
    const xps::InferenceStar star = chunk.star(i);
    const xps::StarUncertainty u = xps::fisher_uncertainty(loss.whitened_catalog_jacobian(star, fits[i].parameters),
                                                           star.has_parallax ? star.parallax_error : 0.0);
    fisher_checksum += u.error.sum();
    ++fisher_done;
  }
  const double fisher_seconds = clock.cpu();

  // The whole fast pipeline as xps_infer runs it: infer_block (screen + rescore + fit + Fisher + flags).
  const xps::InferenceContext context{file.model, prior, grid, file.prior->ln_prior_cut, settings};
  xps::InferenceWorker worker(context);
  xps::CatalogRows rows;
  rows.reset(total);
  double block_wall = 0;
  const double block_seconds = infer_range(worker, chunk, 0, total, rows, &block_wall);
  std::size_t converged = 0, mismatches = 0;
  double largest_difference = 0;
  for (std::size_t i = 0; i < total; ++i) {
    converged += rows.fit_status[i] == static_cast<std::uint8_t>(xps::FitStatus::converged) ? 1 : 0;
    if (!fitted[i] || !std::isfinite(rows.loss_opt[i])) continue;
    const double d = std::abs(rows.loss_opt[i] - fits[i].parts.total);
    if (!(d <= 1e-9 * std::max(1.0, std::abs(rows.loss_opt[i])))) ++mismatches;
    if (std::isfinite(d)) largest_difference = std::max(largest_difference, d);
  }

  // The paper optimiser on the first paper_stars stars, and the fast one on the same stars.
  xps::InferenceSettings paper_settings = settings;
  paper_settings.optimizer = xps::InferenceOptimizer::paper;
  const xps::InferenceContext paper_context{file.model, prior, grid, file.prior->ln_prior_cut, paper_settings};
  xps::InferenceWorker paper_worker(paper_context);
  xps::CatalogRows paper_rows, fast_subset_rows;
  paper_rows.reset(paper_stars);
  fast_subset_rows.reset(paper_stars);
  const double fast_subset_seconds = infer_range(worker, chunk, 0, paper_stars, fast_subset_rows);
  const double paper_seconds = infer_range(paper_worker, chunk, 0, paper_stars, paper_rows);
  std::vector<double> loss_difference;
  long long paper_steps = 0;
  std::size_t fast_better = 0, paper_better = 0, paper_converged = 0;
  for (std::size_t i = 0; i < paper_stars; ++i) {
    paper_steps += paper_rows.iterations[i];
    paper_converged += paper_rows.fit_status[i] == static_cast<std::uint8_t>(xps::FitStatus::converged) ? 1 : 0;
    const double f = rows.loss_opt[i], p = paper_rows.loss_opt[i];
    if (!std::isfinite(f) || !std::isfinite(p)) continue;
    loss_difference.push_back(f - p);
    fast_better += f < p - 0.01 ? 1 : 0;
    paper_better += p < f - 0.01 ? 1 : 0;
  }

  // Optional: the whole fast pipeline on `threads` OpenMP threads, as inference_run.cpp runs it.
  double threaded_seconds = 0;
  if (threads > 1) {
    omp_set_num_threads(threads);
    std::vector<std::unique_ptr<xps::InferenceWorker>> workers(static_cast<std::size_t>(threads));
    xps::InferenceChunk threaded_chunk;
    threaded_chunk.reset(total, bands);
    xps::CatalogRows threaded_rows;
    threaded_rows.reset(total);
    std::vector<std::pair<const xps::StarTable*, std::size_t>> where;
    for (const xps::StarTable& table : tables)
      for (std::size_t r = 0; r < table.rows(); ++r) where.emplace_back(&table, r);
    const auto count = static_cast<std::int64_t>(total);
    const auto blocks = static_cast<std::int64_t>((total + xps::start_screen_block - 1) / xps::start_screen_block);
    start = clock_type::now();
#pragma omp parallel for schedule(dynamic, 16)
    for (std::int64_t i = 0; i < count; ++i) {
      const auto& [table, r] = where[static_cast<std::size_t>(i)];
      xps::prepare_inference_star(*table, r, whitening, settings.parallax_zero_point, free_parameters,
                                  threaded_chunk, static_cast<std::size_t>(i));
    }
#pragma omp parallel for schedule(dynamic, 1)
    for (std::int64_t block = 0; block < blocks; ++block) {
      auto& w = workers[static_cast<std::size_t>(omp_get_thread_num())];
      if (!w) w = std::make_unique<xps::InferenceWorker>(context);
      const std::size_t begin = static_cast<std::size_t>(block) * xps::start_screen_block;
      w->infer_block(threaded_chunk, begin, std::min(total, begin + xps::start_screen_block), threaded_rows);
    }
    threaded_seconds = seconds_since(start);
  }

  // Figures.
  const double n = static_cast<double>(total), np = static_cast<double>(paper_stars);
  const double us = 1e6;
  const double fast_per_star = (prepare_seconds + block_seconds) / n;
  const double fast_subset_per_star = prepare_seconds / n + fast_subset_seconds / np;
  const double paper_per_star = prepare_seconds / n + paper_seconds / np;
  const double stages = prepare_seconds + screen_seconds + rescore_seconds + fit_seconds + fisher_seconds;
  std::printf("bench_infer: %zu stars from %zu table(s) of %s (%zu prepared), model %s\n", total, tables.size(),
              stars_dir.c_str(), prepared, model_path.c_str());
  std::printf("  %d bands, %d free parameters, %zu start templates (%d samples x %d E), rescore %d, fast.starts %d,"
              " one core\n",
              bands, free_parameters, grid.templates(), grid.samples(), grid.E_steps(), settings.start.rescore,
              settings.fast.starts);
  std::printf("  setup (once per process): model %.3f s, start grid %.3f s; reading the tables %.3f s"
              " (%.0f stars/s, not counted below)\n",
              load_seconds, grid_seconds, read_seconds, n / read_seconds);
  std::printf("  whole pipeline, fast   %10.0f stars/s/core (prepare + start + optimise + Fisher; target >= 1,000)\n",
              1.0 / fast_per_star);
  if (paper_stars > 0) {
    std::printf("  whole pipeline, paper  %10.2f stars/s/core (first %zu stars; fast on the same stars %.0f /s)\n",
                1.0 / paper_per_star, paper_stars, 1.0 / fast_subset_per_star);
    std::printf("  paper / fast time      %10.1f x\n", paper_per_star / fast_subset_per_star);
  } else {
    std::printf("  whole pipeline, paper  (not timed: --paper-stars 0)\n");
  }
  std::printf("  per-star split (us/star, fast, over all %zu stars):\n", total);
  std::printf("    prepare (whitening)  %10.1f\n", us * prepare_seconds / n);
  std::printf("    start screen         %10.1f   (StartGrid::screen, blocks of %zu)\n", us * screen_seconds / n,
              xps::start_screen_block);
  std::printf("      of which GEMMs       %10.1f   (the two float products alone, %.1f GFLOP/s; build %s)\n",
              us * gemm_seconds_per_star, 6.0 * static_cast<double>(grid.templates()) * bands / gemm_seconds_per_star / 1e9,
#if defined(__AVX2__)
              "with AVX2"
#else
              "without -march=native: SSE2 Eigen kernels"
#endif
  );
  std::printf("    rescore starts       %10.1f   (full loss of the %d best screened starts)\n",
              us * rescore_seconds / n, settings.start.rescore);
  std::printf("    fast fit             %10.1f   (%.2f fits/star, %.1f LM iterations/fit)\n", us * fit_seconds / n,
              static_cast<double>(fit_calls) / n,
              fit_calls > 0 ? static_cast<double>(lm_iterations) / static_cast<double>(fit_calls) : 0.0);
  std::printf("    Fisher               %10.1f   (%zu stars, checksum %.4g)\n", us * fisher_seconds / n, fisher_done,
              fisher_checksum);
  std::printf("    sum of stages        %10.1f\n", us * stages / n);
  std::printf("    infer_block whole    %10.1f   (+ prepare = %.1f; %zu of %zu converged)\n", us * block_seconds / n,
              us * fast_per_star, converged, total);
  std::printf("    paper infer_block    %10.1f   (%.0f optimiser steps/star, %zu of %zu converged)\n",
              us * paper_seconds / np, static_cast<double>(paper_steps) / np, paper_converged, paper_stars);
  std::printf("  stage replica vs infer_block: %zu loss mismatch(es), max |dloss| %.3g\n", mismatches,
              largest_difference);
  std::printf("  %.3g stars: %.0f core-hours fast, %.0f core-hours paper\n", survey_stars,
              survey_stars * fast_per_star / 3600.0, survey_stars * paper_per_star / 3600.0);
  std::printf("  loss fast - paper on %zu stars: median %.4g; fast lower by > 0.01: %zu, paper lower by > 0.01: %zu\n",
              loss_difference.size(), median(loss_difference), fast_better, paper_better);
  if (threads > 1)
    std::printf("  %d threads (OpenMP, as xps_infer): %.0f stars/s, %.0f stars/s/core, efficiency %.0f %%\n",
                threads, n / threaded_seconds, n / threaded_seconds / threads,
                100.0 * (n * fast_per_star) / (threaded_seconds * threads));
  std::printf("  times: thread CPU time (the whole fast infer_block took %.3f s wall for %.3f s CPU); load average"
              " %s at start, %s at end (%s)\n",
              block_wall, block_seconds, load_at_start.c_str(), load_average().c_str(),
              "figures are noisy while other processes share the cores");
  std::printf("  peak RSS %.1f MiB\n", peak_rss_mib());
  return 0;
}
