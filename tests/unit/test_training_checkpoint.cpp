// Training checkpoints at one rank: round trip, pruning, and the fall-back to an older
// checkpoint when the newest is corrupt (src/io/training_checkpoint.cpp).
#include <gtest/gtest.h>
#include <mpi.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "io/h5.hpp"
#include "test_support.hpp"
#include "xpstellar/error.hpp"
#include "xpstellar/training_checkpoint.hpp"

namespace {

namespace fs = std::filesystem;

// Rows [first, first + count) of a deterministic checkpoint of `total` stars at `step`.
xps::TrainingCheckpoint make_checkpoint(std::int64_t step, std::int64_t total, std::int64_t first,
                                        std::int64_t count, bool first_moment = true,
                                        bool second_moment = true) {
  xps::TrainingCheckpoint checkpoint;
  checkpoint.position = {2, 7, 123, step, step % 2 == 1};
  checkpoint.seed = 0xfedcba9876543210ULL;
  checkpoint.config_text = "[train]\nrecipe = adam\nsteps = " + std::to_string(step) + "\n";
  checkpoint.global_parameters = Eigen::VectorXd::LinSpaced(97, -1.0, 1.0 + 1e-3 * double(step));
  checkpoint.global_parameters[3] = std::numeric_limits<double>::quiet_NaN();
  checkpoint.global_parameters[4] = -0.0;
  if (first_moment) checkpoint.model_optimizer.first = Eigen::VectorXd::Constant(97, 0.25);
  if (second_moment) checkpoint.model_optimizer.second = Eigen::VectorXd::Constant(97, 1e-9);
  checkpoint.model_optimizer.steps = step * 3;
  checkpoint.total_stars = total;
  xps::StarSliceState& stars = checkpoint.stars;
  stars.first_row = first;
  stars.parameters.resize(6, count);
  if (first_moment) stars.first_moment.resize(6, count);
  if (second_moment) stars.second_moment.resize(6, count);
  for (std::int64_t local = 0; local < count; ++local) {
    const std::int64_t row = first + local;
    stars.source_id.push_back((std::int64_t{4295} << 35) + 17 * row);
    for (Eigen::Index k = 0; k < 6; ++k) {
      const double x = double(row) + 0.1 * double(k) + 1e-4 * double(step);
      stars.parameters(k, local) = 5000.0 + x;
      if (first_moment) stars.first_moment(k, local) = -x;
      if (second_moment) stars.second_moment(k, local) = x * x;
    }
    stars.optimizer_steps.push_back(row % 11 + step);
    stars.outlier.push_back(static_cast<std::uint8_t>(row % 3 == 0 ? 1 : 0));
  }
  return checkpoint;
}

template <class A, class B>
bool same_bits(const A& a, const B& b) {
  return a.size() == b.size() &&
         std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.size()) * sizeof(*a.data())) ==
             0;
}

void expect_same_global(const xps::TrainingCheckpoint& expected,
                        const xps::TrainingCheckpoint& actual) {
  EXPECT_EQ(actual.position.phase, expected.position.phase);
  EXPECT_EQ(actual.position.epoch, expected.position.epoch);
  EXPECT_EQ(actual.position.step_in_phase, expected.position.step_in_phase);
  EXPECT_EQ(actual.position.global_step, expected.position.global_step);
  EXPECT_EQ(actual.position.phase_complete, expected.position.phase_complete);
  EXPECT_EQ(actual.seed, expected.seed);
  EXPECT_EQ(actual.config_text, expected.config_text);
  EXPECT_EQ(actual.total_stars, expected.total_stars);
  EXPECT_TRUE(same_bits(actual.global_parameters, expected.global_parameters));
  EXPECT_TRUE(same_bits(actual.model_optimizer.first, expected.model_optimizer.first));
  EXPECT_TRUE(same_bits(actual.model_optimizer.second, expected.model_optimizer.second));
  EXPECT_EQ(actual.model_optimizer.steps, expected.model_optimizer.steps);
}

void expect_same_stars(const xps::StarSliceState& expected, const xps::StarSliceState& actual) {
  EXPECT_EQ(actual.first_row, expected.first_row);
  EXPECT_EQ(actual.source_id, expected.source_id);
  EXPECT_EQ(actual.parameters.rows(), expected.parameters.rows());
  EXPECT_TRUE(same_bits(actual.parameters, expected.parameters));
  EXPECT_EQ(actual.first_moment.size() == 0, expected.first_moment.size() == 0);
  EXPECT_TRUE(same_bits(actual.first_moment, expected.first_moment));
  EXPECT_TRUE(same_bits(actual.second_moment, expected.second_moment));
  EXPECT_EQ(actual.optimizer_steps, expected.optimizer_steps);
  EXPECT_EQ(actual.outlier, expected.outlier);
}

std::vector<char> file_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Flips the bits of a few bytes at `offset` of `path`.
void flip_bytes(const std::string& path, std::uint64_t offset) {
  std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);
  file.seekg(static_cast<std::streamoff>(offset));
  char bytes[3] = {};
  file.read(bytes, 3);
  for (char& byte : bytes) byte = static_cast<char>(~byte);
  file.seekp(static_cast<std::streamoff>(offset));
  file.write(bytes, 3);
}

std::uint64_t data_offset(const std::string& path, const std::string& dataset) {
  const xps::h5::File file = xps::h5::File::open_read_only(path, MPI_COMM_SELF);
  return xps::h5::dataset_storage_offset(file.open_dataset(dataset));
}

class TrainingCheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    m_dir = fs::temp_directory_path() / ("xps_checkpoint_unit_" + std::to_string(getpid()));
    fs::remove_all(m_dir);
  }
  void TearDown() override { fs::remove_all(m_dir); }
  std::string dir() const { return m_dir.string(); }
  std::string path(std::int64_t step) const { return xps::training_checkpoint_path(dir(), step); }
  std::string write(std::int64_t step, int keep = 0) {
    return xps::write_training_checkpoint(dir(), make_checkpoint(step, 40, 0, 40), keep,
                                          MPI_COMM_SELF);
  }
  std::vector<std::string> names() const {
    std::vector<std::string> found;
    for (const auto& entry : fs::directory_iterator(m_dir)) {
      found.push_back(entry.path().filename().string());
    }
    std::sort(found.begin(), found.end());
    return found;
  }
  // The newest valid checkpoint's step and what the reader said on stderr.
  std::pair<std::int64_t, std::string> read_newest() const {
    ::testing::internal::CaptureStderr();
    const auto checkpoint = xps::read_latest_training_checkpoint(dir(), 0, 40, MPI_COMM_SELF);
    const std::string said = ::testing::internal::GetCapturedStderr();
    return {checkpoint ? checkpoint->position.global_step : -1, said};
  }

  fs::path m_dir;
};

TEST_F(TrainingCheckpointTest, FileNameHoldsTheStepInTwelveDigits) {
  EXPECT_EQ(xps::training_checkpoint_path("/a/b", 4321), "/a/b/checkpoint_000000004321.h5");
}

TEST_F(TrainingCheckpointTest, RoundTripKeepsEveryBit) {
  const xps::TrainingCheckpoint written = make_checkpoint(1500, 40, 0, 40);
  const std::string file = xps::write_training_checkpoint(dir(), written, 3, MPI_COMM_SELF);
  EXPECT_EQ(file, path(1500));
  EXPECT_EQ(names(), std::vector<std::string>{"checkpoint_000000001500.h5"});

  const auto read = xps::read_latest_training_checkpoint(dir(), 0, 40, MPI_COMM_SELF);
  ASSERT_TRUE(read.has_value());
  expect_same_global(written, *read);
  expect_same_stars(written.stars, read->stars);
  EXPECT_EQ(read->source_path, file);
  {
    const xps::h5::File h5 = xps::h5::File::open_read_only(file, MPI_COMM_SELF);
    EXPECT_EQ(read->checksum, xps::h5::read_u64_attribute(h5, "checksum"));
  }

  const auto middle = xps::read_latest_training_checkpoint(dir(), 13, 20, MPI_COMM_SELF);
  ASSERT_TRUE(middle.has_value());
  expect_same_stars(make_checkpoint(1500, 40, 13, 20).stars, middle->stars);
  EXPECT_EQ(middle->checksum, read->checksum);

  const auto peek = xps::peek_latest_training_checkpoint(dir(), MPI_COMM_SELF);
  ASSERT_TRUE(peek.has_value());
  expect_same_global(written, *peek);
  EXPECT_EQ(peek->stars.first_row, 0);
  EXPECT_TRUE(peek->stars.source_id.empty());
  EXPECT_EQ(peek->stars.parameters.size(), 0);
}

TEST_F(TrainingCheckpointTest, RewriteIsByteIdentical) {
  const std::string file = write(20);
  const std::vector<char> first = file_bytes(file);
  write(20);
  EXPECT_TRUE(first == file_bytes(file));
}

TEST_F(TrainingCheckpointTest, EmptyMomentsRoundTripAsEmpty) {
  // SGD without second moment; plain SGD without any.
  for (const bool first_moment : {true, false}) {
    const xps::TrainingCheckpoint written = make_checkpoint(5, 30, 0, 30, first_moment, false);
    xps::write_training_checkpoint(dir(), written, 1, MPI_COMM_SELF);
    const auto read = xps::read_latest_training_checkpoint(dir(), 4, 26, MPI_COMM_SELF);
    ASSERT_TRUE(read.has_value());
    expect_same_global(written, *read);
    EXPECT_EQ(read->model_optimizer.second.size(), 0);
    EXPECT_EQ(read->stars.second_moment.size(), 0);
    EXPECT_EQ(read->stars.first_moment.size(), first_moment ? 6 * 26 : 0);
    expect_same_stars(make_checkpoint(5, 30, 4, 26, first_moment, false).stars, read->stars);
  }
}

TEST_F(TrainingCheckpointTest, NoStarsRoundTrip) {
  const xps::TrainingCheckpoint written = make_checkpoint(0, 0, 0, 0);
  xps::write_training_checkpoint(dir(), written, 1, MPI_COMM_SELF);
  const auto read = xps::read_latest_training_checkpoint(dir(), 0, 0, MPI_COMM_SELF);
  ASSERT_TRUE(read.has_value());
  expect_same_global(written, *read);
  EXPECT_EQ(read->stars.parameters.rows(), 6);
  EXPECT_EQ(read->stars.parameters.cols(), 0);
}

TEST_F(TrainingCheckpointTest, KeepsOnlyTheNewest) {
  for (const std::int64_t step : {100, 200, 300, 400}) write(step, 2);
  EXPECT_EQ(names(),
            (std::vector<std::string>{"checkpoint_000000000300.h5", "checkpoint_000000000400.h5"}));
  write(500, 0);  // keep <= 0: nothing older is deleted
  EXPECT_EQ(names().size(), 3u);
}

TEST_F(TrainingCheckpointTest, NewerCheckpointsOfAnAbandonedRunAreDeleted) {
  write(100, 5);
  write(300, 5);
  write(200, 5);  // resumed from 100: 300 belongs to the abandoned run
  EXPECT_EQ(names(),
            (std::vector<std::string>{"checkpoint_000000000100.h5", "checkpoint_000000000200.h5"}));
  EXPECT_EQ(read_newest().first, 200);
}

TEST_F(TrainingCheckpointTest, FlippedDataBytesFallBackToThePreviousOne) {
  write(100);
  write(200);
  flip_bytes(path(200), data_offset(path(200), "stars/parameters") + 8 * 6 * 17 + 2);
  const auto [step, said] = read_newest();
  EXPECT_EQ(step, 100);
  EXPECT_NE(said.find(path(200)), std::string::npos) << said;
  EXPECT_NE(said.find("checksum mismatch"), std::string::npos) << said;
  // Peek agrees with the reader.
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(xps::peek_latest_training_checkpoint(dir(), MPI_COMM_SELF)->position.global_step, 100);
  ::testing::internal::GetCapturedStderr();
}

TEST_F(TrainingCheckpointTest, EveryStoredArrayIsCovered) {
  for (const char* dataset :
       {"model/parameters", "model/first_moment", "model/second_moment", "stars/source_id",
        "stars/first_moment", "stars/second_moment", "stars/optimizer_steps", "stars/outlier"}) {
    SCOPED_TRACE(dataset);
    write(100);
    write(200);
    flip_bytes(path(200), data_offset(path(200), dataset));
    const auto [step, said] = read_newest();
    EXPECT_EQ(step, 100);
    EXPECT_NE(said.find("checksum mismatch"), std::string::npos) << said;
    fs::remove_all(m_dir);
  }
}

TEST_F(TrainingCheckpointTest, TruncatedNewestFallsBack) {
  write(100);
  write(200);
  fs::resize_file(path(200), fs::file_size(path(200)) / 2);
  const auto [step, said] = read_newest();
  EXPECT_EQ(step, 100);
  EXPECT_NE(said.find(path(200)), std::string::npos) << said;
}

TEST_F(TrainingCheckpointTest, MissingDatasetFallsBack) {
  write(100);
  write(200);
  {
    xps::h5::File file = xps::h5::File::open_read_write(path(200));
    file.move_link("stars/outlier", "stars/outlier_renamed");
    file.close();
  }
  const auto [step, said] = read_newest();
  EXPECT_EQ(step, 100);
  EXPECT_NE(said.find("/stars/outlier missing"), std::string::npos) << said;
}

TEST_F(TrainingCheckpointTest, FileRenamedToAnotherStepIsSkipped) {
  write(100);
  fs::copy_file(path(100), path(300));
  const auto [step, said] = read_newest();
  EXPECT_EQ(step, 100);
  EXPECT_NE(said.find("/@global_step is 100, the file name says 300"), std::string::npos) << said;
}

TEST_F(TrainingCheckpointTest, StaleTemporaryFileIsIgnoredThenRemoved) {
  write(100);
  std::ofstream(path(200) + ".tmp") << "a write killed half way";
  const auto [step, said] = read_newest();
  EXPECT_EQ(step, 100);
  EXPECT_EQ(said, "");
  write(150);
  EXPECT_EQ(names(),
            (std::vector<std::string>{"checkpoint_000000000100.h5", "checkpoint_000000000150.h5"}));
}

TEST_F(TrainingCheckpointTest, NoValidCheckpointGivesNothing) {
  EXPECT_FALSE(xps::read_latest_training_checkpoint(dir(), 0, 0, MPI_COMM_SELF).has_value());
  EXPECT_FALSE(xps::peek_latest_training_checkpoint(dir(), MPI_COMM_SELF).has_value());
  fs::create_directories(m_dir);
  std::ofstream(m_dir / "notes.txt") << "not a checkpoint";
  EXPECT_FALSE(xps::read_latest_training_checkpoint(dir(), 0, 0, MPI_COMM_SELF).has_value());
  std::ofstream(path(7)) << "not HDF5";
  const auto [step, said] = read_newest();
  EXPECT_EQ(step, -1);
  EXPECT_NE(said.find(path(7)), std::string::npos) << said;
}

TEST_F(TrainingCheckpointTest, RowsOutsideTheCheckpointAreAnError) {
  write(100);
  const std::string message = xps::test::error_message<xps::IoError>(
      [&] { xps::read_latest_training_checkpoint(dir(), 30, 11, MPI_COMM_SELF); });
  EXPECT_NE(message.find(path(100)), std::string::npos) << message;
  EXPECT_NE(message.find("[30,41)"), std::string::npos) << message;
}

TEST_F(TrainingCheckpointTest, UnwritableDirectoryNamesTheFile) {
  fs::create_directories(m_dir);
  std::ofstream(m_dir / "plain_file") << "x";
  const std::string target = (m_dir / "plain_file" / "checkpoints").string();
  const std::string message = xps::test::error_message<xps::IoError>([&] {
    xps::write_training_checkpoint(target, make_checkpoint(9, 4, 0, 4), 1, MPI_COMM_SELF);
  });
  EXPECT_NE(message.find(xps::training_checkpoint_path(target, 9)), std::string::npos) << message;
}

TEST_F(TrainingCheckpointTest, InconsistentSliceIsRejected) {
  xps::TrainingCheckpoint checkpoint = make_checkpoint(9, 4, 0, 4);
  checkpoint.stars.outlier.pop_back();
  EXPECT_NE(xps::test::error_message<xps::IoError>([&] {
              xps::write_training_checkpoint(dir(), checkpoint, 1, MPI_COMM_SELF);
            }).find("outlier"),
            std::string::npos);
  checkpoint = make_checkpoint(9, 5, 0, 4);  // total_stars disagrees with the slices
  EXPECT_NE(xps::test::error_message<xps::IoError>([&] {
              xps::write_training_checkpoint(dir(), checkpoint, 1, MPI_COMM_SELF);
            }).find("total_stars"),
            std::string::npos);
  checkpoint = make_checkpoint(9, 4, 0, 4);
  checkpoint.stars.first_moment.resize(6, 3);
  EXPECT_NE(xps::test::error_message<xps::IoError>([&] {
              xps::write_training_checkpoint(dir(), checkpoint, 1, MPI_COMM_SELF);
            }).find("first moment"),
            std::string::npos);
  EXPECT_FALSE(fs::exists(path(9)));
}

}  // namespace
