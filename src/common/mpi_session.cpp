#include "xpstellar/mpi_session.hpp"

#include <limits>
#include <string>
#include "xpstellar/error.hpp"
#include <iostream>
#include <ostream>
#include <streambuf>

namespace xps {

MpiSession::MpiSession(int& argc, char**& argv) {
  int initialised = 0;
  MPI_Initialized(&initialised);
  if (!initialised) MPI_Init(&argc, &argv);
  MPI_Comm_rank(MPI_COMM_WORLD, &m_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &m_size);
}

MpiSession::~MpiSession() {
  int finalised = 0;
  MPI_Finalized(&finalised);
  if (!finalised) MPI_Finalize();
}

int comm_rank(MPI_Comm comm) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  return rank;
}

int comm_size(MPI_Comm comm) {
  int size = 1;
  MPI_Comm_size(comm, &size);
  return size;
}

namespace {

template <class Value>
std::vector<Value> all_gather_values(const std::vector<Value>& local, MPI_Datatype type, const char* name,
                                     MPI_Comm comm) {
  const int ranks = comm_size(comm);
  const int local_count = static_cast<int>(local.size());
  std::vector<int> counts(static_cast<std::size_t>(ranks)), offsets(static_cast<std::size_t>(ranks));
  MPI_Allgather(&local_count, 1, MPI_INT, counts.data(), 1, MPI_INT, comm);
  std::int64_t total = 0;
  for (int r = 0; r < ranks; ++r) {
    offsets[static_cast<std::size_t>(r)] = static_cast<int>(total);
    total += counts[static_cast<std::size_t>(r)];
  }
  if (total > std::numeric_limits<int>::max())
    throw UsageError(std::string(name) + ": " + std::to_string(total) + " values exceed MPI's int counts");
  std::vector<Value> all(static_cast<std::size_t>(total));
  MPI_Allgatherv(local.data(), local_count, type, all.data(), counts.data(), offsets.data(), type, comm);
  return all;
}

}  // namespace

std::vector<std::int64_t> all_gather_int64(const std::vector<std::int64_t>& local, MPI_Comm comm) {
  return all_gather_values(local, MPI_INT64_T, "all_gather_int64", comm);
}

std::vector<double> all_gather_doubles(const std::vector<double>& local, MPI_Comm comm) {
  return all_gather_values(local, MPI_DOUBLE, "all_gather_doubles", comm);
}

void all_gather_rows(double* table, const std::vector<std::int64_t>& first_row, std::int64_t width,
                     MPI_Comm comm) {
  const int ranks = comm_size(comm);
  if (static_cast<int>(first_row.size()) != ranks + 1)
    throw UsageError("all_gather_rows: first_row needs one entry per rank and the end");
  if (first_row.back() * width > std::numeric_limits<int>::max())
    throw UsageError("all_gather_rows: the table exceeds MPI's int counts");
  std::vector<int> counts(static_cast<std::size_t>(ranks)), offsets(static_cast<std::size_t>(ranks));
  for (std::size_t r = 0; r < counts.size(); ++r) {
    offsets[r] = static_cast<int>(first_row[r] * width);
    counts[r] = static_cast<int>((first_row[r + 1] - first_row[r]) * width);
  }
  MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, table, counts.data(), offsets.data(), MPI_DOUBLE, comm);
}

std::vector<double> gather_doubles_to_root(const std::vector<double>& local, MPI_Comm comm) {
  const int ranks = comm_size(comm);
  const int local_count = static_cast<int>(local.size());
  std::vector<int> counts(static_cast<std::size_t>(ranks)), offsets(static_cast<std::size_t>(ranks));
  MPI_Gather(&local_count, 1, MPI_INT, counts.data(), 1, MPI_INT, 0, comm);
  std::int64_t total = 0;
  for (int r = 0; r < ranks; ++r) {
    offsets[static_cast<std::size_t>(r)] = static_cast<int>(total);
    total += counts[static_cast<std::size_t>(r)];
  }
  // Only rank 0 knows the total: it decides, and every rank learns the verdict.
  int too_many = total > std::numeric_limits<int>::max() ? 1 : 0;
  MPI_Bcast(&too_many, 1, MPI_INT, 0, comm);
  if (too_many != 0) throw UsageError("gather_doubles_to_root: the values exceed MPI's int counts");
  std::vector<double> all(comm_rank(comm) == 0 ? static_cast<std::size_t>(total) : 0);
  MPI_Gatherv(local.data(), local_count, MPI_DOUBLE, all.data(), counts.data(), offsets.data(),
              MPI_DOUBLE, 0, comm);
  return all;
}

void broadcast_string(std::string& text, MPI_Comm comm) {
  std::uint64_t size = text.size();
  MPI_Bcast(&size, 1, MPI_UINT64_T, 0, comm);
  text.resize(size);
  if (size > static_cast<std::uint64_t>(std::numeric_limits<int>::max()))
    throw UsageError("broadcast_string: " + std::to_string(size) + " bytes exceed MPI's int counts");
  MPI_Bcast(text.data(), static_cast<int>(size), MPI_CHAR, 0, comm);
}

namespace {
class NullBuffer : public std::streambuf {
protected:
  int overflow(int c) override { return c; }
};
}  // namespace

std::ostream& io_out(MPI_Comm comm) {
  static NullBuffer null_buffer;
  static std::ostream null_stream(&null_buffer);
  return comm_rank(comm) == 0 ? std::cout : null_stream;
}

void warn(MPI_Comm comm, const std::string& message) {
  std::cerr << "warning [rank " << comm_rank(comm) << "]: " << message << '\n';
}

}  // namespace xps
