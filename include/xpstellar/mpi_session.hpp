// MPI lifetime object (deal.II's MPI_InitFinalize): one per driver main(), nothing else calls
// MPI_Init or MPI_Finalize. Drivers also run without mpirun (a singleton MPI job).
#pragma once

#include <mpi.h>

#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

namespace xps {

class MpiSession {
public:
  MpiSession(int& argc, char**& argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  MPI_Comm world() const { return MPI_COMM_WORLD; }
  int rank() const { return m_rank; }
  int size() const { return m_size; }
  bool is_io_rank() const { return m_rank == 0; }

private:
  int m_rank = 0;
  int m_size = 1;
};

int comm_rank(MPI_Comm comm);
int comm_size(MPI_Comm comm);

// Every rank's values, concatenated in rank order, on every rank. Throws UsageError past 2^31
// values in total (MPI counts are ints).
std::vector<std::int64_t> all_gather_int64(const std::vector<std::int64_t>& local, MPI_Comm comm);

// The same for doubles.
std::vector<double> all_gather_doubles(const std::vector<double>& local, MPI_Comm comm);

// A row-major table [first_row.back() x width] of which rank r filled rows
// [first_row[r], first_row[r + 1]): on return every rank holds every row (in place).
void all_gather_rows(double* table, const std::vector<std::int64_t>& first_row, std::int64_t width,
                     MPI_Comm comm);

// Every rank's values, concatenated in rank order, on rank 0 (empty elsewhere). Throws UsageError
// past 2^31 values in total.
std::vector<double> gather_doubles_to_root(const std::vector<double>& local, MPI_Comm comm);

// Rank 0's `text` on every rank.
void broadcast_string(std::string& text, MPI_Comm comm);

// Only the I/O rank of `comm` prints (AMReX's Print()); other ranks' messages go through warn().
std::ostream& io_out(MPI_Comm comm);
// Warnings from any rank, tagged with the rank, on stderr.
void warn(MPI_Comm comm, const std::string& message);

}  // namespace xps
