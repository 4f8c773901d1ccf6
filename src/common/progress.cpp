#include "xpstellar/progress.hpp"

#include <cmath>
#include <cstdio>

#include "xpstellar/mpi_session.hpp"

namespace xps {

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<long long>(seconds + 0.5);
  char text[32];
  if (s >= 3600)
    std::snprintf(text, sizeof text, "%lldh%02lldm", s / 3600, (s / 60) % 60);
  else if (s >= 60)
    std::snprintf(text, sizeof text, "%lldm%02llds", s / 60, s % 60);
  else
    std::snprintf(text, sizeof text, "%llds", s);
  return text;
}

ProgressMeter::ProgressMeter(MPI_Comm comm, std::string label, std::int64_t total_items,
                             double print_interval_seconds)
    : m_comm(comm),
      m_label(std::move(label)),
      m_total(total_items),
      m_ranks(comm_size(comm)),
      m_prints(comm_rank(comm) == 0),
      m_interval(print_interval_seconds),
      m_start(clock::now()),
      m_last_print(m_start) {}

void ProgressMeter::advance_local(std::int64_t items) {
  m_done += items;
  if (!m_prints) return;
  const auto now = clock::now();
  if (std::chrono::duration<double>(now - m_last_print).count() < m_interval) return;
  m_last_print = now;
  const double elapsed = std::chrono::duration<double>(now - m_start).count();
  const double estimated_done = static_cast<double>(m_done) * m_ranks;
  const double rate = estimated_done / elapsed;
  if (m_total <= 0) {  // total unknown in advance: count and rate only
    std::printf("%s: ~%.0f so far, %.0f /s\n", m_label.c_str(), estimated_done, rate);
    std::fflush(stdout);
    return;
  }
  const double eta = rate > 0 ? (static_cast<double>(m_total) - estimated_done) / rate : 0.0;
  std::printf("%s: ~%.0f%% (%.0f of %lld), %.0f /s, ETA %.0f s\n", m_label.c_str(),
              100.0 * estimated_done / static_cast<double>(m_total), estimated_done,
              static_cast<long long>(m_total), rate, eta > 0 ? eta : 0.0);
  std::fflush(stdout);
}

double ProgressMeter::finish_collective() {
  std::int64_t done = m_done;
  MPI_Allreduce(MPI_IN_PLACE, &done, 1, MPI_INT64_T, MPI_SUM, m_comm);
  const double elapsed = std::chrono::duration<double>(clock::now() - m_start).count();
  if (m_prints) {
    std::printf("%s: done, %lld in %.1f s (%.0f /s on %d rank%s)\n", m_label.c_str(),
                static_cast<long long>(done), elapsed, static_cast<double>(done) / elapsed,
                m_ranks, m_ranks == 1 ? "" : "s");
    std::fflush(stdout);
  }
  return elapsed;
}

}  // namespace xps
