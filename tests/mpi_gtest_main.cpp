// GoogleTest main for multi-rank tests: every rank runs every test; only rank 0 prints, and a
// failure on any rank fails the run on all ranks.
#include <gtest/gtest.h>

#include "private_mpi_tmpdir.hpp"
#include "xpstellar/mpi_session.hpp"

int main(int argc, char** argv) {
  xps::testing::PrivateMpiTmpdir session_directory;  // outlives MPI_Finalize
  xps::MpiSession mpi(argc, argv);
  ::testing::InitGoogleTest(&argc, argv);
  if (mpi.rank() != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int local_failed = RUN_ALL_TESTS();
  int any_failed = 0;
  MPI_Allreduce(&local_failed, &any_failed, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  return any_failed;
}
