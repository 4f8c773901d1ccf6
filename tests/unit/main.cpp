// GoogleTest main for the unit tests: MPI is initialised (as a singleton) because the library's
// I/O and mock entry points take a communicator.
#include <gtest/gtest.h>

#include "private_mpi_tmpdir.hpp"
#include "xpstellar/mpi_session.hpp"

int main(int argc, char** argv) {
  xps::testing::PrivateMpiTmpdir session_directory;  // outlives MPI_Finalize
  xps::MpiSession mpi(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
