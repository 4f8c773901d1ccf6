#include "xpstellar/mpi_session.hpp"

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
