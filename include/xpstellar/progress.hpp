// Progress of a long loop, printed by rank 0 with rate and ETA (DESIGN §3 Logs). Ranks advance
// their own counters without communicating; rank 0 extrapolates from its share of the work, and
// finish_collective() reports the true total. A total of 0 means unknown: no percentage, no ETA.
#pragma once

#include <mpi.h>

#include <chrono>
#include <cstdint>
#include <string>

namespace xps {

// "42s", "3m05s", "2h07m"; "?" for a negative or non-finite time.
std::string format_duration(double seconds);

class ProgressMeter {
public:
  ProgressMeter(MPI_Comm comm, std::string label, std::int64_t total_items,
                double print_interval_seconds = 5.0);
  void advance_local(std::int64_t items);
  // Collective: sums the items done on all ranks and prints the final rate. Returns seconds taken.
  double finish_collective();

private:
  using clock = std::chrono::steady_clock;
  MPI_Comm m_comm;
  std::string m_label;
  std::int64_t m_total, m_done = 0;
  int m_ranks = 1;
  bool m_prints = false;
  double m_interval;
  clock::time_point m_start, m_last_print;
};

}  // namespace xps
