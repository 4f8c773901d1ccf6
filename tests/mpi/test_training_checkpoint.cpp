// Training checkpoints written and read collectively by several ranks (run at 2 ranks by
// ctest): the file and its checksum do not depend on the number of ranks or their slices.
#include <gtest/gtest.h>
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#include "xpstellar/error.hpp"
#include "xpstellar/training_checkpoint.hpp"

namespace {

namespace fs = std::filesystem;

int rank_of(MPI_Comm comm) {
  int rank = 0;
  MPI_Comm_rank(comm, &rank);
  return rank;
}

int size_of(MPI_Comm comm) {
  int size = 1;
  MPI_Comm_size(comm, &size);
  return size;
}

double parameter_value(std::int64_t row, Eigen::Index k, std::int64_t step) {
  return 4000.0 + double(row) + 0.1 * double(k) + 1e-4 * double(step);
}

// Rows [first, first + count) of a deterministic checkpoint of `total` stars: any rank can
// build any slice, so the expected content is known everywhere.
xps::TrainingCheckpoint make_checkpoint(std::int64_t step, std::int64_t total, std::int64_t first,
                                        std::int64_t count, bool second_moment = true) {
  xps::TrainingCheckpoint checkpoint;
  checkpoint.position = {1, 3, 45, step, false};
  checkpoint.seed = 20240601;
  checkpoint.config_text = "[train]\nbatch = 512\n";
  checkpoint.global_parameters = Eigen::VectorXd::LinSpaced(300, -2.0, 2.0 + double(step));
  checkpoint.model_optimizer.first = Eigen::VectorXd::Constant(300, 0.5);
  if (second_moment) checkpoint.model_optimizer.second = Eigen::VectorXd::Constant(300, 1e-6);
  checkpoint.model_optimizer.steps = step;
  checkpoint.total_stars = total;
  xps::StarSliceState& stars = checkpoint.stars;
  stars.first_row = first;
  stars.parameters.resize(6, count);
  stars.first_moment.resize(6, count);
  if (second_moment) stars.second_moment.resize(6, count);
  for (std::int64_t local = 0; local < count; ++local) {
    const std::int64_t row = first + local;
    stars.source_id.push_back(1000003 * row + 5);
    for (Eigen::Index k = 0; k < 6; ++k) {
      stars.parameters(k, local) = parameter_value(row, k, step);
      stars.first_moment(k, local) = -0.5 * double(row) - double(k);
      if (second_moment) stars.second_moment(k, local) = 0.25 * double(row * k);
    }
    stars.optimizer_steps.push_back(row % 7);
    stars.outlier.push_back(static_cast<std::uint8_t>(row % 4 == 1 ? 1 : 0));
  }
  return checkpoint;
}

template <class A, class B>
bool same_bits(const A& a, const B& b) {
  return a.size() == b.size() &&
         std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.size()) * sizeof(*a.data())) ==
             0;
}

void expect_same(const xps::TrainingCheckpoint& expected, const xps::TrainingCheckpoint& actual) {
  EXPECT_EQ(actual.position.global_step, expected.position.global_step);
  EXPECT_EQ(actual.position.epoch, expected.position.epoch);
  EXPECT_EQ(actual.seed, expected.seed);
  EXPECT_EQ(actual.config_text, expected.config_text);
  EXPECT_EQ(actual.total_stars, expected.total_stars);
  EXPECT_TRUE(same_bits(actual.global_parameters, expected.global_parameters));
  EXPECT_TRUE(same_bits(actual.model_optimizer.first, expected.model_optimizer.first));
  EXPECT_TRUE(same_bits(actual.model_optimizer.second, expected.model_optimizer.second));
  EXPECT_EQ(actual.model_optimizer.steps, expected.model_optimizer.steps);
  const xps::StarSliceState& e = expected.stars;
  const xps::StarSliceState& a = actual.stars;
  EXPECT_EQ(a.first_row, e.first_row);
  EXPECT_EQ(a.source_id, e.source_id);
  EXPECT_TRUE(same_bits(a.parameters, e.parameters));
  EXPECT_TRUE(same_bits(a.first_moment, e.first_moment));
  EXPECT_TRUE(same_bits(a.second_moment, e.second_moment));
  EXPECT_EQ(a.optimizer_steps, e.optimizer_steps);
  EXPECT_EQ(a.outlier, e.outlier);
}

std::vector<char> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Each rank's (first, count) when rank r gets counts[r] rows (the last entry repeats).
std::pair<std::int64_t, std::int64_t> my_slice(const std::vector<std::int64_t>& counts) {
  const auto rank = static_cast<std::size_t>(rank_of(MPI_COMM_WORLD));
  std::int64_t first = 0;
  for (std::size_t r = 0; r < rank; ++r) first += counts[std::min(r, counts.size() - 1)];
  return {first, counts[std::min(rank, counts.size() - 1)]};
}

std::int64_t total_rows(const std::vector<std::int64_t>& counts) {
  std::int64_t total = 0;
  for (int r = 0; r < size_of(MPI_COMM_WORLD); ++r) {
    total += counts[std::min(static_cast<std::size_t>(r), counts.size() - 1)];
  }
  return total;
}

// A slicing of [0, total) unlike the writers': an even split in reverse rank order.
std::pair<std::int64_t, std::int64_t> reversed_slice(std::int64_t total) {
  const std::int64_t size = size_of(MPI_COMM_WORLD);
  const std::int64_t block = size - 1 - rank_of(MPI_COMM_WORLD);
  const std::int64_t first = total * block / size;
  return {first, total * (block + 1) / size - first};
}

// A directory every rank agrees on (rank 0's pid), removed at the end.
class TrainingCheckpointParallel : public ::testing::Test {
 protected:
  void SetUp() override {
    long pid = static_cast<long>(getpid());
    MPI_Bcast(&pid, 1, MPI_LONG, 0, MPI_COMM_WORLD);
    m_dir = fs::temp_directory_path() / ("xps_checkpoint_mpi_" + std::to_string(pid));
    if (rank_of(MPI_COMM_WORLD) == 0) fs::remove_all(m_dir);
    MPI_Barrier(MPI_COMM_WORLD);
  }
  void TearDown() override {
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank_of(MPI_COMM_WORLD) == 0) fs::remove_all(m_dir);
  }
  std::string dir(const std::string& name) const { return (m_dir / name).string(); }

  // Writes step `step` of a `counts`-sliced checkpoint into `name` with every rank.
  std::string write(const std::string& name, std::int64_t step,
                    const std::vector<std::int64_t>& counts, int keep,
                    bool second_moment = true) const {
    const auto [first, count] = my_slice(counts);
    return xps::write_training_checkpoint(
        dir(name), make_checkpoint(step, total_rows(counts), first, count, second_moment), keep,
        MPI_COMM_WORLD);
  }

  fs::path m_dir;
};

TEST_F(TrainingCheckpointParallel, ReadBackWithADifferentSlicing) {
  for (const bool second_moment : {true, false}) {
    SCOPED_TRACE(second_moment ? "Adam" : "SGD momentum");
    const std::vector<std::int64_t> counts{37, 80};
    const std::int64_t total = total_rows(counts);
    write("run", 10, counts, 2, second_moment);
    // Reversed slices; then overlapping ones, rank 0's empty.
    const bool root = rank_of(MPI_COMM_WORLD) == 0;
    const std::int64_t middle = std::min<std::int64_t>(30, total);
    for (const auto& [first, rows] : std::vector<std::pair<std::int64_t, std::int64_t>>{
             reversed_slice(total),
             {root ? 0 : middle, root ? 0 : std::min<std::int64_t>(40, total - middle)}}) {
      const auto read =
          xps::read_latest_training_checkpoint(dir("run"), first, rows, MPI_COMM_WORLD);
      ASSERT_TRUE(read.has_value());
      expect_same(make_checkpoint(10, total, first, rows, second_moment), *read);
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (root) fs::remove_all(dir("run"));
    MPI_Barrier(MPI_COMM_WORLD);
  }
}

TEST_F(TrainingCheckpointParallel, SameFileWhateverTheNumberOfRanks) {
  // Uneven slices; rank 0 without rows.
  for (const std::vector<std::int64_t>& counts :
       std::vector<std::vector<std::int64_t>>{{61, 44}, {0, 105}}) {
    SCOPED_TRACE("rank 0 rows " + std::to_string(counts[0]));
    const std::int64_t total = total_rows(counts);
    const std::string parallel = write("parallel", 7, counts, 1);
    std::string serial;
    if (rank_of(MPI_COMM_WORLD) == 0) {
      serial = xps::write_training_checkpoint(dir("serial"), make_checkpoint(7, total, 0, total), 1,
                                              MPI_COMM_SELF);
      EXPECT_TRUE(file_bytes(serial) == file_bytes(parallel));
    }
    MPI_Barrier(MPI_COMM_WORLD);
    const auto [first, count] = reversed_slice(total);
    const auto from_parallel =
        xps::read_latest_training_checkpoint(dir("parallel"), first, count, MPI_COMM_WORLD);
    const auto from_serial =
        xps::read_latest_training_checkpoint(dir("serial"), first, count, MPI_COMM_WORLD);
    ASSERT_TRUE(from_parallel.has_value());
    ASSERT_TRUE(from_serial.has_value());
    EXPECT_EQ(from_parallel->checksum, from_serial->checksum);
    expect_same(make_checkpoint(7, total, first, count), *from_parallel);
    expect_same(make_checkpoint(7, total, first, count), *from_serial);
    MPI_Barrier(MPI_COMM_WORLD);
  }
}

TEST_F(TrainingCheckpointParallel, KeepsOnlyTheNewest) {
  for (const std::int64_t step : {1, 2, 3, 4}) write("run", step, {20, 30}, 2);
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir("run"))) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names,
            (std::vector<std::string>{"checkpoint_000000000003.h5", "checkpoint_000000000004.h5"}));
  const auto peek = xps::peek_latest_training_checkpoint(dir("run"), MPI_COMM_WORLD);
  ASSERT_TRUE(peek.has_value());
  EXPECT_EQ(peek->position.global_step, 4);
  EXPECT_EQ(peek->total_stars, total_rows({20, 30}));
}

// Flips bytes of the stored value of star row 23's parameter 2 in the data region.
void corrupt_a_parameter(const std::string& path, std::int64_t step) {
  const double target = parameter_value(23, 2, step);
  char pattern[sizeof(double)];
  std::memcpy(pattern, &target, sizeof pattern);
  std::vector<char> bytes = file_bytes(path);
  const auto found = std::search(bytes.begin(), bytes.end(), pattern, pattern + sizeof pattern);
  ASSERT_NE(found, bytes.end());
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  file.seekp(found - bytes.begin() + 3);
  file.put(static_cast<char>(~*(found + 3)));
}

TEST_F(TrainingCheckpointParallel, CorruptOrTruncatedNewestFallsBackOnEveryRank) {
  for (const bool truncate : {false, true}) {
    SCOPED_TRACE(truncate ? "truncated" : "flipped bytes");
    write("run", 100, {30, 25}, 3);
    write("run", 200, {30, 25}, 3);
    const std::string newest = xps::training_checkpoint_path(dir("run"), 200);
    if (rank_of(MPI_COMM_WORLD) == 0) {
      std::ofstream(newest + "0.tmp") << "ignored";
      std::ofstream(xps::training_checkpoint_path(dir("run"), 300) + ".tmp") << "killed";
      if (truncate) {
        fs::resize_file(newest, fs::file_size(newest) - 100);
      } else {
        corrupt_a_parameter(newest, 200);
      }
    }
    MPI_Barrier(MPI_COMM_WORLD);
    const auto [first, count] = reversed_slice(total_rows({30, 25}));
    ::testing::internal::CaptureStderr();
    const auto read =
        xps::read_latest_training_checkpoint(dir("run"), first, count, MPI_COMM_WORLD);
    const std::string said = ::testing::internal::GetCapturedStderr();
    ASSERT_TRUE(read.has_value());
    expect_same(make_checkpoint(100, total_rows({30, 25}), first, count), *read);
    if (rank_of(MPI_COMM_WORLD) == 0) {
      EXPECT_NE(said.find(newest), std::string::npos) << said;
      if (!truncate) {
        EXPECT_NE(said.find("checksum mismatch"), std::string::npos) << said;
      }
    } else {
      EXPECT_EQ(said, "");  // only rank 0 talks
    }
    MPI_Barrier(MPI_COMM_WORLD);
    if (rank_of(MPI_COMM_WORLD) == 0) fs::remove_all(dir("run"));
    MPI_Barrier(MPI_COMM_WORLD);
  }
}

TEST_F(TrainingCheckpointParallel, EmptyOrMissingDirectoryGivesNothing) {
  EXPECT_FALSE(xps::read_latest_training_checkpoint(dir("none"), 0, 0, MPI_COMM_WORLD));
  if (rank_of(MPI_COMM_WORLD) == 0) fs::create_directories(dir("empty"));
  MPI_Barrier(MPI_COMM_WORLD);
  EXPECT_FALSE(xps::read_latest_training_checkpoint(dir("empty"), 0, 0, MPI_COMM_WORLD));
  EXPECT_FALSE(xps::peek_latest_training_checkpoint(dir("empty"), MPI_COMM_WORLD));
}

TEST_F(TrainingCheckpointParallel, BadSliceOnOneRankFailsEveryRank) {
  const auto [first, count] = my_slice({12, 9});
  xps::TrainingCheckpoint checkpoint = make_checkpoint(5, total_rows({12, 9}), first, count);
  if (rank_of(MPI_COMM_WORLD) == size_of(MPI_COMM_WORLD) - 1) checkpoint.stars.source_id.pop_back();
  EXPECT_THROW(xps::write_training_checkpoint(dir("run"), checkpoint, 1, MPI_COMM_WORLD),
               xps::IoError);
  checkpoint = make_checkpoint(5, total_rows({12, 9}), first, count);
  if (rank_of(MPI_COMM_WORLD) == size_of(MPI_COMM_WORLD) - 1) checkpoint.stars.first_row += 1;
  EXPECT_THROW(xps::write_training_checkpoint(dir("run"), checkpoint, 1, MPI_COMM_WORLD),
               xps::IoError);
  EXPECT_FALSE(fs::exists(xps::training_checkpoint_path(dir("run"), 5)));
}

}  // namespace
