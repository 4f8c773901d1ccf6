// Benchmark: mock-survey generation rate on one core (truth model, observation model, HDF5
// writing), printed as stars per second per core and the time 1 million stars would take.
// Usage: bench_mock [--stars N] [--chunk C]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include "bench_support.hpp"
#include "xpstellar/config.hpp"
#include "xpstellar/mock_survey.hpp"
#include "xpstellar/mpi_session.hpp"

using xps::bench::clock_type;
using xps::bench::seconds_since;

int main(int argc, char** argv) {
  if (xps::bench::help_requested(argc, argv,
                                  "Usage: bench_mock [--stars N (1e6)] [--chunk C (1e4)]\n"
    "Mock-survey generation rate per core (stars per second).\n"))
    return 0;
  xps::MpiSession mpi(argc, argv);
  const auto stars = static_cast<std::int64_t>(xps::bench::numeric_option(argc, argv, "--stars", 1e6));
  const auto chunk = static_cast<std::int64_t>(xps::bench::numeric_option(argc, argv, "--chunk", 1e4));
  xps::ParameterSet parameters;
  xps::mock::declare_mock_parameters(parameters);
  const xps::mock::TruthModel truth(parameters);
  const xps::mock::ObservationModel observation(parameters, truth);

  double truth_seconds = 0, observe_seconds = 0, write_seconds = 0;
  std::int64_t written = 0;
  const auto scratch = std::filesystem::temp_directory_path() / "xps_bench_mock.h5";
  std::vector<xps::mock::TruthStar> block;
  xps::StarTable buffer;
  for (std::int64_t first = 0; first < stars; first += chunk) {
    const std::int64_t last = std::min(stars, first + chunk);
    block.clear();
    auto start = clock_type::now();
    for (std::int64_t index = first; index < last; ++index) block.push_back(truth.draw(index));
    truth_seconds += seconds_since(start);
    start = clock_type::now();
    xps::StarTable table =
        xps::mock::make_star_table(block, observation, truth, 1, 0, std::move(buffer));
    observe_seconds += seconds_since(start);
    if (first < 5 * chunk) {  // writing is disk-bound: a few chunks are enough for its rate
      start = clock_type::now();
      xps::write_star_table(scratch.string(), table, MPI_COMM_SELF);
      write_seconds += seconds_since(start);
      written += last - first;
    }
    buffer = std::move(table);
  }
  std::filesystem::remove(scratch);
  const double n = static_cast<double>(stars);
  std::printf("bench_mock: %lld stars on 1 core\n", static_cast<long long>(stars));
  std::printf("  truth model        %10.0f stars/s/core\n", n / truth_seconds);
  std::printf("  observation model  %10.0f stars/s/core\n", n / observe_seconds);
  std::printf("  truth+observation  %10.0f stars/s/core  -> 1e6 stars in %.1f core-seconds\n",
              n / (truth_seconds + observe_seconds), 1e6 * (truth_seconds + observe_seconds) / n);
  std::printf("  HDF5 write         %10.0f stars/s/core  (%lld stars, compressed, %.1f KB/star raw)\n",
              static_cast<double>(written) / write_seconds, static_cast<long long>(written),
              (66 * 4 + 2211 * 4 + 66 * 4 + 100) / 1024.0);
  return 0;
}
