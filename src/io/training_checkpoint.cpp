// Training checkpoints (issue 4). One HDF5 file per checkpoint, written by all ranks together:
//
//   /                     attributes schema_version i32, phase i32, epoch i64, step_in_phase i64,
//                         global_step i64, phase_complete i32, seed u64, total_stars i64,
//                         checksum u64
//   /config               [1] fixed-length string: the effective INI
//   /model/parameters     [G] f64, the flux model in FluxModel pack order
//   /model/first_moment   [G1] f64 and /model/second_moment [G2] f64 (0 when unused);
//                         attribute /model@optimizer_steps i64
//   /stars/source_id      [N] i64, canonical training order
//   /stars/parameters     [N,6] f64 row-major (the memory of a 6 x N column-major Eigen matrix)
//   /stars/first_moment   [N,6] or [0,6] f64, /stars/second_moment likewise
//   /stars/optimizer_steps [N] i64, /stars/outlier [N] u8
//
// Datasets are contiguous, unfiltered and allocated early (h5::create_preallocated_dataset), so
// the bytes do not depend on the number of ranks that wrote the file. The checksum is the
// wrap-around sum of a hash of the global part and one hash per star row (seeded with the row's
// global index), so it does not depend on how the rows were split over ranks when written or read.
#include "xpstellar/training_checkpoint.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <functional>
#include <span>
#include <string_view>
#include <system_error>
#include <utility>

#include "io/h5.hpp"
#include "xpstellar/error.hpp"
#include "xpstellar/mpi_session.hpp"

namespace xps {

namespace {

namespace fs = std::filesystem;

constexpr std::int64_t star_parameter_count = 6;
constexpr std::int64_t largest_step = 999'999'999'999;  // 12 digits in the file name
constexpr std::uint64_t hash_rows_per_block = 1 << 16;  // rows read at once when verifying

// ---- checksum ----------------------------------------------------------------------------------

// The splitmix64 finaliser: a bijection of 64-bit words with good avalanche.
constexpr std::uint64_t mix64(std::uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// A chained hash over 64-bit words: every value is hashed through its bit pattern, so NaN
// payloads and signed zeros count.
class Hash {
 public:
  explicit Hash(std::uint64_t seed) : m_state(mix64(seed ^ 0x9e3779b97f4a7c15ULL)) {}
  void add(std::uint64_t value) { m_state = mix64(m_state ^ value) + 0x9e3779b97f4a7c15ULL; }
  void add(std::int64_t value) { add(static_cast<std::uint64_t>(value)); }
  void add(double value) { add(std::bit_cast<std::uint64_t>(value)); }
  void add(std::span<const double> values) {
    add(static_cast<std::uint64_t>(values.size()));
    for (const double v : values) add(v);
  }
  void add(const std::string& text) {
    add(static_cast<std::uint64_t>(text.size()));
    std::uint64_t word = 0;
    for (std::size_t i = 0; i < text.size(); ++i) {
      word |= std::uint64_t{static_cast<unsigned char>(text[i])} << (8 * (i % 8));
      if (i % 8 == 7 || i + 1 == text.size()) {
        add(word);
        word = 0;
      }
    }
  }
  std::uint64_t value() const { return mix64(m_state); }

 private:
  std::uint64_t m_state;
};

constexpr std::uint64_t global_hash_seed = 0x78707374656c6c61ULL;  // "xpstella"
constexpr std::uint64_t row_hash_seed = 0x636b70745f726f77ULL;     // "ckpt_row"

// Which optional star arrays a checkpoint holds, agreed by all ranks.
struct StarLayout {
  bool first_moment = false;
  bool second_moment = false;
};

// Everything but the star rows; identical on every rank.
struct GlobalPart {
  TrainingPosition position;
  std::uint64_t seed = 0;
  std::string config_text;
  std::int64_t total_stars = 0;
  StarLayout layout;
};

std::uint64_t hash_global(const GlobalPart& global, const Eigen::VectorXd& parameters,
                          const OptimizerMoments& moments) {
  Hash hash(global_hash_seed);
  hash.add(std::int64_t{checkpoint_schema_version});
  hash.add(std::int64_t{global.position.phase});
  hash.add(global.position.epoch);
  hash.add(global.position.step_in_phase);
  hash.add(global.position.global_step);
  hash.add(std::int64_t{global.position.phase_complete ? 1 : 0});
  hash.add(global.seed);
  hash.add(global.config_text);
  hash.add(global.total_stars);
  hash.add(std::int64_t{global.layout.first_moment ? 1 : 0});
  hash.add(std::int64_t{global.layout.second_moment ? 1 : 0});
  hash.add(std::span<const double>(parameters.data(), static_cast<std::size_t>(parameters.size())));
  hash.add(std::span<const double>(moments.first.data(),
                                   static_cast<std::size_t>(moments.first.size())));
  hash.add(std::span<const double>(moments.second.data(),
                                   static_cast<std::size_t>(moments.second.size())));
  hash.add(moments.steps);
  return hash.value();
}

// The 6 values of row `local` of a [n x 6] row-major array (a 6 x n column-major matrix).
std::span<const double> row_values(const double* data, std::size_t local) {
  return {data + local * star_parameter_count, static_cast<std::size_t>(star_parameter_count)};
}

// Sum (mod 2^64) of the hashes of rows [first_row, first_row + n), held in arrays laid out as in
// the file. Moment pointers are null when the layout has no such moment.
std::uint64_t hash_rows(std::uint64_t first_row, std::size_t n, const std::int64_t* source_id,
                        const double* parameters, const double* first_moment,
                        const double* second_moment, const std::int64_t* optimizer_steps,
                        const std::uint8_t* outlier) {
  std::uint64_t sum = 0;
  for (std::size_t i = 0; i < n; ++i) {
    Hash hash(row_hash_seed);
    hash.add(first_row + i);
    hash.add(source_id[i]);
    for (const double v : row_values(parameters, i)) hash.add(v);
    if (first_moment != nullptr) {
      for (const double v : row_values(first_moment, i)) hash.add(v);
    }
    if (second_moment != nullptr) {
      for (const double v : row_values(second_moment, i)) hash.add(v);
    }
    hash.add(optimizer_steps[i]);
    hash.add(std::uint64_t{outlier[i]});
    sum += hash.value();
  }
  return sum;
}

// ---- agreement between ranks -------------------------------------------------------------------

void broadcast_string(std::string& text, int root, MPI_Comm comm) {
  std::uint64_t size = text.size();
  MPI_Bcast(&size, 1, MPI_UINT64_T, root, comm);
  text.resize(size);
  MPI_Bcast(text.data(), static_cast<int>(size), MPI_CHAR, root, comm);
}

// Every rank learns the worst outcome (largest code) and the message of the lowest rank that
// reported it, tagged with that rank when it is not rank 0, so all ranks act together.
struct Verdict {
  int code = 0;
  std::string message;
};

Verdict agree(int local_code, const std::string& local_message, MPI_Comm comm) {
  Verdict verdict;
  MPI_Allreduce(&local_code, &verdict.code, 1, MPI_INT, MPI_MAX, comm);
  if (verdict.code == 0) return verdict;
  const int size = comm_size(comm);
  const int mine = local_code == verdict.code ? comm_rank(comm) : size;
  int reporter = size;
  MPI_Allreduce(&mine, &reporter, 1, MPI_INT, MPI_MIN, comm);
  verdict.message = local_message;
  broadcast_string(verdict.message, reporter, comm);
  if (reporter != 0) verdict.message = "rank " + std::to_string(reporter) + ": " + verdict.message;
  return verdict;
}

// Throws IoError on every rank if any rank has a problem.
void agree_or_throw(const std::string& problem, MPI_Comm comm) {
  const Verdict verdict = agree(problem.empty() ? 0 : 1, problem, comm);
  if (verdict.code != 0) throw IoError(verdict.message);
}

// ---- file names --------------------------------------------------------------------------------

constexpr std::string_view name_prefix = "checkpoint_";
constexpr std::string_view name_suffix = ".h5";
constexpr std::size_t step_digits = 12;

// The global step a file name `checkpoint_<12 digits>.h5` stands for, or -1.
std::int64_t step_of_name(const std::string& name) {
  if (name.size() != name_prefix.size() + step_digits + name_suffix.size()) return -1;
  if (!name.starts_with(name_prefix) || !name.ends_with(name_suffix)) return -1;
  std::int64_t step = 0;
  for (std::size_t i = 0; i < step_digits; ++i) {
    const char c = name[name_prefix.size() + i];
    if (c < '0' || c > '9') return -1;
    step = step * 10 + (c - '0');
  }
  return step;
}

bool is_temporary_name(const std::string& name) {
  return name.ends_with(".tmp") && step_of_name(name.substr(0, name.size() - 4)) >= 0;
}

// Steps of the checkpoint files in `dir`, newest first (empty if `dir` does not exist). Only
// the calling process looks; callers broadcast.
std::vector<std::int64_t> list_steps(const std::string& dir) {
  std::vector<std::int64_t> steps;
  std::error_code error;
  fs::directory_iterator it(dir, error);
  if (error) return steps;
  for (const fs::directory_entry& entry : it) {
    const std::int64_t step = step_of_name(entry.path().filename().string());
    if (step >= 0) steps.push_back(step);
  }
  std::sort(steps.begin(), steps.end(), std::greater<>());
  return steps;
}

std::vector<std::int64_t> broadcast_steps(std::vector<std::int64_t> steps, MPI_Comm comm) {
  std::uint64_t count = steps.size();
  MPI_Bcast(&count, 1, MPI_UINT64_T, 0, comm);
  steps.resize(count);
  MPI_Bcast(steps.data(), static_cast<int>(count), MPI_INT64_T, 0, comm);
  return steps;
}

// ---- writing -----------------------------------------------------------------------------------

// Rank 0's global fields, sent to every rank (attributes and dataset shapes are collective).
GlobalPart broadcast_global(const TrainingCheckpoint& checkpoint, MPI_Comm comm) {
  GlobalPart global;
  global.position = checkpoint.position;
  global.seed = checkpoint.seed;
  global.config_text = checkpoint.config_text;
  global.total_stars = checkpoint.total_stars;
  std::int32_t phase_complete = global.position.phase_complete ? 1 : 0;
  MPI_Bcast(&global.position.phase, 1, MPI_INT32_T, 0, comm);
  MPI_Bcast(&global.position.epoch, 1, MPI_INT64_T, 0, comm);
  MPI_Bcast(&global.position.step_in_phase, 1, MPI_INT64_T, 0, comm);
  MPI_Bcast(&global.position.global_step, 1, MPI_INT64_T, 0, comm);
  MPI_Bcast(&phase_complete, 1, MPI_INT32_T, 0, comm);
  global.position.phase_complete = phase_complete != 0;
  MPI_Bcast(&global.seed, 1, MPI_UINT64_T, 0, comm);
  MPI_Bcast(&global.total_stars, 1, MPI_INT64_T, 0, comm);
  broadcast_string(global.config_text, 0, comm);
  return global;
}

// Checks this rank's slice against the contract; returns what is wrong, or "".
std::string slice_problem(const StarSliceState& stars, std::int64_t expected_first_row) {
  const Eigen::Index n = stars.parameters.cols();
  const auto count = static_cast<std::size_t>(n);
  auto shape = [](const Eigen::MatrixXd& m) {
    return std::to_string(m.rows()) + " x " + std::to_string(m.cols());
  };
  if (stars.parameters.rows() != star_parameter_count && n != 0) {
    return "star parameters are " + shape(stars.parameters) + ", expected 6 x n";
  }
  if (stars.source_id.size() != count || stars.optimizer_steps.size() != count ||
      stars.outlier.size() != count) {
    return "star slice of " + std::to_string(n) + " parameter columns has " +
           std::to_string(stars.source_id.size()) + " source_ids, " +
           std::to_string(stars.optimizer_steps.size()) + " optimizer_steps and " +
           std::to_string(stars.outlier.size()) + " outlier flags";
  }
  for (const auto& [name, moment] :
       {std::pair<const char*, const Eigen::MatrixXd*>{"first", &stars.first_moment},
        std::pair<const char*, const Eigen::MatrixXd*>{"second", &stars.second_moment}}) {
    if (moment->size() != 0 && (moment->rows() != star_parameter_count || moment->cols() != n)) {
      return std::string("star ") + name + " moment is " + shape(*moment) + ", expected 6 x " +
             std::to_string(n) + " or empty";
    }
  }
  if (stars.first_row != expected_first_row) {
    return "star slice starts at row " + std::to_string(stars.first_row) +
           ", but the slices of the lower ranks end at row " + std::to_string(expected_first_row);
  }
  return {};
}

// Agrees on the star layout and checks that the slices tile [0, total_stars).
StarLayout check_slices(const std::string& path, const TrainingCheckpoint& checkpoint,
                        const GlobalPart& global, MPI_Comm comm) {
  const StarSliceState& stars = checkpoint.stars;
  const auto rows = static_cast<std::int64_t>(stars.parameters.cols());
  std::int64_t first = 0;
  MPI_Exscan(&rows, &first, 1, MPI_INT64_T, MPI_SUM, comm);
  if (comm_rank(comm) == 0) first = 0;  // MPI_Exscan leaves rank 0's result undefined
  std::int64_t total = 0;
  MPI_Allreduce(&rows, &total, 1, MPI_INT64_T, MPI_SUM, comm);

  std::string problem = slice_problem(stars, first);
  if (problem.empty() && global.total_stars != total) {
    problem = "total_stars is " + std::to_string(global.total_stars) + ", the slices hold " +
              std::to_string(total) + " rows";
  }
  if (problem.empty() && global.config_text.find('\0') != std::string::npos) {
    problem = "the config text contains a NUL character";
  }
  if (problem.empty() &&
      (global.position.global_step < 0 || global.position.global_step > largest_step)) {
    problem = "global_step " + std::to_string(global.position.global_step) + " out of range";
  }
  int has[2] = {stars.first_moment.size() != 0 ? 1 : 0, stars.second_moment.size() != 0 ? 1 : 0};
  int any[2] = {0, 0};
  MPI_Allreduce(has, any, 2, MPI_INT, MPI_MAX, comm);
  if (problem.empty() && rows > 0 && (has[0] != any[0] || has[1] != any[1])) {
    problem = "star moments are empty on some ranks with rows and not on others";
  }
  agree_or_throw(problem.empty() ? "" : path + ": cannot write checkpoint: " + problem, comm);
  return StarLayout{any[0] != 0, any[1] != 0};
}

std::span<const double> values_of(const Eigen::MatrixXd& matrix) {
  return {matrix.data(), static_cast<std::size_t>(matrix.size())};
}

std::span<const double> values_of(const Eigen::VectorXd& vector) {
  return {vector.data(), static_cast<std::size_t>(vector.size())};
}

// A contiguous dataset of shape `shape` holding, from this rank, rows [first, first + rows).
template <h5::Element T>
void write_dataset(h5::Group& group, const std::string& name, const h5::Dims& shape,
                   std::uint64_t first, std::uint64_t rows, std::span<const T> values) {
  h5::Dataset dataset = h5::create_preallocated_dataset<T>(group, name, shape);
  // Parallel HDF5 cannot even select nothing of a dataset without storage; shapes are collective,
  // so all ranks skip together.
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return;
  dataset.write_rows<T>(first, rows, values);
}

// A 1-D model vector written by rank 0 alone (the others select nothing).
void write_model_vector(h5::Group& group, const std::string& name, std::uint64_t length,
                        const Eigen::VectorXd& values, bool is_root) {
  write_dataset<double>(group, name, {length}, 0, is_root ? length : 0,
                        is_root ? values_of(values) : std::span<const double>());
}

void write_file(const std::string& temporary, const TrainingCheckpoint& checkpoint,
                const GlobalPart& global, std::uint64_t checksum, MPI_Comm comm) {
  const bool is_root = comm_rank(comm) == 0;
  const StarSliceState& stars = checkpoint.stars;
  const auto total = static_cast<std::uint64_t>(global.total_stars);
  const auto first = static_cast<std::uint64_t>(stars.first_row);
  const auto rows = static_cast<std::uint64_t>(stars.parameters.cols());
  const auto width = static_cast<std::uint64_t>(star_parameter_count);

  // Model vector lengths are rank 0's; the others only need them for the shapes.
  std::uint64_t lengths[3] = {static_cast<std::uint64_t>(checkpoint.global_parameters.size()),
                              static_cast<std::uint64_t>(checkpoint.model_optimizer.first.size()),
                              static_cast<std::uint64_t>(checkpoint.model_optimizer.second.size())};
  std::int64_t model_steps = checkpoint.model_optimizer.steps;
  MPI_Bcast(lengths, 3, MPI_UINT64_T, 0, comm);
  MPI_Bcast(&model_steps, 1, MPI_INT64_T, 0, comm);

  h5::File file = h5::File::create(temporary, comm);
  file.write_attribute("schema_version", std::int32_t{checkpoint_schema_version});
  file.write_attribute("phase", global.position.phase);
  file.write_attribute("epoch", global.position.epoch);
  file.write_attribute("step_in_phase", global.position.step_in_phase);
  file.write_attribute("global_step", global.position.global_step);
  file.write_attribute("phase_complete", std::int32_t{global.position.phase_complete ? 1 : 0});
  h5::write_u64_attribute(file, "seed", global.seed);
  file.write_attribute("total_stars", global.total_stars);
  h5::write_u64_attribute(file, "checksum", checksum);

  h5::create_preallocated_string_dataset(file, "config", 1, global.config_text.size())
      .write_string_rows(0, is_root ? std::span<const std::string>(&global.config_text, 1)
                                    : std::span<const std::string>());

  {  // every object must be closed before the file
    h5::Group model = file.create_group("model");
    model.write_attribute("optimizer_steps", model_steps);
    write_model_vector(model, "parameters", lengths[0], checkpoint.global_parameters, is_root);
    write_model_vector(model, "first_moment", lengths[1], checkpoint.model_optimizer.first,
                       is_root);
    write_model_vector(model, "second_moment", lengths[2], checkpoint.model_optimizer.second,
                       is_root);
  }
  {
    h5::Group group = file.create_group("stars");
    write_dataset<std::int64_t>(group, "source_id", {total}, first, rows,
                                std::span<const std::int64_t>(stars.source_id));
    write_dataset<double>(group, "parameters", {total, width}, first, rows,
                          values_of(stars.parameters));
    // An absent moment is [0,6]; a rank without rows may hold it as an empty matrix either way.
    const auto moment = [&](const char* name, bool present, const Eigen::MatrixXd& values) {
      write_dataset<double>(group, name, {present ? total : 0, width}, present ? first : 0,
                            present ? rows : 0,
                            present && rows > 0 ? values_of(values) : std::span<const double>());
    };
    moment("first_moment", global.layout.first_moment, stars.first_moment);
    moment("second_moment", global.layout.second_moment, stars.second_moment);
    write_dataset<std::int64_t>(group, "optimizer_steps", {total}, first, rows,
                                std::span<const std::int64_t>(stars.optimizer_steps));
    write_dataset<std::uint8_t>(group, "outlier", {total}, first, rows,
                                std::span<const std::uint8_t>(stars.outlier));
  }
  file.close();
}

// Flushes `path` (a file or directory) to stable storage; returns an error text or "".
std::string sync_to_disk(const std::string& path, bool directory) {
  const int descriptor = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (descriptor < 0) return std::error_code(errno, std::generic_category()).message();
  std::string failure;
  if (::fsync(descriptor) != 0 && !directory) {  // some file systems cannot sync a directory
    failure = std::error_code(errno, std::generic_category()).message();
  }
  ::close(descriptor);
  return failure;
}

// Rank 0: removes checkpoints newer than `written` (a run abandoned by resuming from an older
// one), all but the newest `keep` of the rest, and stale temporary files. Failures only warn.
void prune(const std::string& dir, std::int64_t written, int keep, MPI_Comm comm) {
  std::vector<std::string> doomed;
  int kept = 0;
  for (const std::int64_t step : list_steps(dir)) {
    const bool newer = step > written;
    if (!newer && (keep <= 0 || kept < keep)) {
      ++kept;
      continue;
    }
    doomed.push_back(training_checkpoint_path(dir, step));
  }
  std::error_code error;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir, error)) {
    if (is_temporary_name(entry.path().filename().string()))
      doomed.push_back(entry.path().string());
  }
  for (const std::string& path : doomed) {
    std::error_code remove_error;
    fs::remove(path, remove_error);
    if (remove_error)
      warn(comm, path + ": cannot delete old checkpoint: " + remove_error.message());
  }
}

// ---- reading -----------------------------------------------------------------------------------

h5::Dims star_shape(std::uint64_t rows) {
  return {rows, static_cast<std::uint64_t>(star_parameter_count)};
}

Eigen::VectorXd read_vector(const h5::File& file, const std::string& name) {
  const std::uint64_t length = h5::dataset_length(file, name);
  h5::Dataset dataset = h5::open_checked<double>(file, name, {length});
  Eigen::VectorXd values(static_cast<Eigen::Index>(length));
  dataset.read_rows<double>(0, length, std::span<double>(values.data(), length));
  return values;
}

// Whether a star moment dataset holds rows ([total,6]) or is absent ([0,6]).
bool read_moment_presence(const h5::File& file, const std::string& name, std::uint64_t total) {
  const h5::Dataset dataset = file.open_dataset(name);
  const h5::Dims shape = dataset.shape();
  if (shape == star_shape(0)) return false;
  h5::open_checked<double>(file, name, star_shape(total));
  return true;
}

// The global part and the model vectors; checks the shapes of the star datasets.
void read_global(const h5::File& file, GlobalPart& global, TrainingCheckpoint& checkpoint) {
  const std::int64_t version = file.read_integer_attribute("schema_version");
  if (version != checkpoint_schema_version) {
    throw IoError(file.file_name() + ": /@schema_version is " + std::to_string(version) +
                  ", expected " + std::to_string(checkpoint_schema_version));
  }
  TrainingPosition& position = global.position;
  position.phase = static_cast<std::int32_t>(file.read_integer_attribute("phase"));
  position.epoch = file.read_integer_attribute("epoch");
  position.step_in_phase = file.read_integer_attribute("step_in_phase");
  position.global_step = file.read_integer_attribute("global_step");
  position.phase_complete = file.read_integer_attribute("phase_complete") != 0;
  global.seed = h5::read_u64_attribute(file, "seed");
  global.total_stars = file.read_integer_attribute("total_stars");
  if (global.total_stars < 0) {
    throw IoError(file.file_name() + ": /@total_stars is " + std::to_string(global.total_stars));
  }
  const std::vector<std::string> config = file.open_dataset("config").read_strings();
  if (config.size() != 1) {
    throw IoError(file.file_name() + ": /config has " + std::to_string(config.size()) +
                  " entries, expected 1");
  }
  global.config_text = config.front();

  checkpoint.global_parameters = read_vector(file, "model/parameters");
  checkpoint.model_optimizer.first = read_vector(file, "model/first_moment");
  checkpoint.model_optimizer.second = read_vector(file, "model/second_moment");
  checkpoint.model_optimizer.steps =
      file.open_group("model").read_integer_attribute("optimizer_steps");

  const auto total = static_cast<std::uint64_t>(global.total_stars);
  h5::open_checked<std::int64_t>(file, "stars/source_id", {total});
  h5::open_checked<double>(file, "stars/parameters", star_shape(total));
  global.layout.first_moment = read_moment_presence(file, "stars/first_moment", total);
  global.layout.second_moment = read_moment_presence(file, "stars/second_moment", total);
  h5::open_checked<std::int64_t>(file, "stars/optimizer_steps", {total});
  h5::open_checked<std::uint8_t>(file, "stars/outlier", {total});
}

// Rows [first, first + rows) of the star datasets, in a slice whose moments are empty matrices
// when the layout has none.
StarSliceState read_stars(const h5::File& file, const StarLayout& layout, std::uint64_t first,
                          std::uint64_t rows) {
  StarSliceState stars;
  stars.first_row = static_cast<std::int64_t>(first);
  const auto n = static_cast<Eigen::Index>(rows);
  const std::uint64_t values = rows * static_cast<std::uint64_t>(star_parameter_count);
  auto read_matrix = [&](const std::string& name, Eigen::MatrixXd& out) {
    out.resize(star_parameter_count, n);
    file.open_dataset(name).read_rows<double>(first, rows, std::span<double>(out.data(), values));
  };
  stars.source_id.resize(rows);
  file.open_dataset("stars/source_id")
      .read_rows<std::int64_t>(first, rows, std::span<std::int64_t>(stars.source_id));
  read_matrix("stars/parameters", stars.parameters);
  if (layout.first_moment) read_matrix("stars/first_moment", stars.first_moment);
  if (layout.second_moment) read_matrix("stars/second_moment", stars.second_moment);
  stars.optimizer_steps.resize(rows);
  file.open_dataset("stars/optimizer_steps")
      .read_rows<std::int64_t>(first, rows, std::span<std::int64_t>(stars.optimizer_steps));
  stars.outlier.resize(rows);
  file.open_dataset("stars/outlier")
      .read_rows<std::uint8_t>(first, rows, std::span<std::uint8_t>(stars.outlier));
  return stars;
}

std::uint64_t hash_slice(const StarSliceState& stars, const StarLayout& layout) {
  return hash_rows(static_cast<std::uint64_t>(stars.first_row), stars.source_id.size(),
                   stars.source_id.data(), stars.parameters.data(),
                   layout.first_moment ? stars.first_moment.data() : nullptr,
                   layout.second_moment ? stars.second_moment.data() : nullptr,
                   stars.optimizer_steps.data(), stars.outlier.data());
}

// This rank's share of the rows to verify: an even split, whatever slice it reads.
std::pair<std::uint64_t, std::uint64_t> verification_share(std::uint64_t total, MPI_Comm comm) {
  const auto size = static_cast<std::uint64_t>(comm_size(comm));
  const auto rank = static_cast<std::uint64_t>(comm_rank(comm));
  const std::uint64_t base = total / size;
  const std::uint64_t extra = total % size;
  return {rank * base + std::min(rank, extra), base + (rank < extra ? 1 : 0)};
}

enum Outcome : int { valid = 0, invalid_file = 1, bad_request = 2 };

struct SliceRequest {
  bool wanted = false;  // false: peek (no star slice)
  std::int64_t first_row = 0;
  std::int64_t rows = 0;
};

// Collective: loads `path`, the checkpoint of `step`, and verifies its checksum. Every rank
// returns the same outcome.
std::pair<Verdict, TrainingCheckpoint> try_load(const std::string& path, std::int64_t step,
                                                const SliceRequest& request, MPI_Comm comm) {
  TrainingCheckpoint checkpoint;
  GlobalPart global;
  int outcome = valid;
  std::string problem;
  std::uint64_t global_hash = 0;
  std::uint64_t rows_hash = 0;
  std::uint64_t stored = 0;
  try {
    // Every process opens the file on its own: a torn file then cannot leave ranks waiting in
    // a collective HDF5 call that another rank abandoned.
    const h5::File file = h5::File::open_read_only(path, MPI_COMM_SELF);
    read_global(file, global, checkpoint);
    if (global.position.global_step != step) {
      throw IoError(path + ": /@global_step is " + std::to_string(global.position.global_step) +
                    ", the file name says " + std::to_string(step));
    }
    stored = h5::read_u64_attribute(file, "checksum");
    global_hash = hash_global(global, checkpoint.global_parameters, checkpoint.model_optimizer);
    const auto total = static_cast<std::uint64_t>(global.total_stars);
    const auto [share_first, share_rows] = verification_share(total, comm);
    for (std::uint64_t done = 0; done < share_rows; done += hash_rows_per_block) {
      const std::uint64_t block = std::min(hash_rows_per_block, share_rows - done);
      rows_hash +=
          hash_slice(read_stars(file, global.layout, share_first + done, block), global.layout);
    }
    if (request.wanted) {
      if (request.first_row < 0 || request.rows < 0 ||
          request.first_row > global.total_stars - request.rows) {
        outcome = bad_request;
        problem = path + ": rows [" + std::to_string(request.first_row) + "," +
                  std::to_string(request.first_row + request.rows) +
                  ") requested, the checkpoint has " + std::to_string(global.total_stars);
      } else {
        checkpoint.stars =
            read_stars(file, global.layout, static_cast<std::uint64_t>(request.first_row),
                       static_cast<std::uint64_t>(request.rows));
      }
    }
  } catch (const std::exception& error) {  // IoError, or bad_alloc from a corrupt shape
    outcome = invalid_file;
    problem = error.what();
  }
  std::uint64_t all_rows_hash = 0;
  MPI_Allreduce(&rows_hash, &all_rows_hash, 1, MPI_UINT64_T, MPI_SUM, comm);
  if (outcome == valid && global_hash + all_rows_hash != stored) {
    outcome = invalid_file;
    char text[80];
    std::snprintf(text, sizeof text, "checksum mismatch (stored %016llx, computed %016llx)",
                  static_cast<unsigned long long>(stored),
                  static_cast<unsigned long long>(global_hash + all_rows_hash));
    problem = text;
  }
  Verdict verdict = agree(outcome, problem, comm);
  if (verdict.code != valid) return {verdict, TrainingCheckpoint{}};
  checkpoint.position = global.position;
  checkpoint.seed = global.seed;
  checkpoint.config_text = std::move(global.config_text);
  checkpoint.total_stars = global.total_stars;
  checkpoint.source_path = path;
  checkpoint.checksum = stored;
  return {verdict, std::move(checkpoint)};
}

std::optional<TrainingCheckpoint> load_latest(const std::string& dir, const SliceRequest& request,
                                              MPI_Comm comm) {
  const bool is_root = comm_rank(comm) == 0;
  const std::vector<std::int64_t> steps =
      broadcast_steps(is_root ? list_steps(dir) : std::vector<std::int64_t>{}, comm);
  for (const std::int64_t step : steps) {
    const std::string path = training_checkpoint_path(dir, step);
    auto [verdict, checkpoint] = try_load(path, step, request, comm);
    if (verdict.code == valid) return std::move(checkpoint);
    if (verdict.code == bad_request) throw IoError(verdict.message);
    if (is_root) {
      const std::string reason =
          verdict.message.starts_with(path) ? verdict.message : path + ": " + verdict.message;
      warn(comm, "skipping checkpoint: " + reason + "; trying an older one");
    }
  }
  return std::nullopt;
}

}  // namespace

std::string training_checkpoint_path(const std::string& dir, std::int64_t global_step) {
  char name[40];
  std::snprintf(name, sizeof name, "checkpoint_%012lld.h5", static_cast<long long>(global_step));
  return (fs::path(dir) / name).string();
}

std::string write_training_checkpoint(const std::string& dir, const TrainingCheckpoint& checkpoint,
                                      int keep, MPI_Comm comm) {
  const bool is_root = comm_rank(comm) == 0;
  GlobalPart global = broadcast_global(checkpoint, comm);
  const std::string path = training_checkpoint_path(dir, global.position.global_step);
  const std::string temporary = path + ".tmp";
  global.layout = check_slices(path, checkpoint, global, comm);

  std::string problem;
  if (is_root) {
    std::error_code error;
    fs::create_directories(dir, error);
    if (error) problem = path + ": cannot create directory " + dir + ": " + error.message();
  }
  agree_or_throw(problem, comm);

  // The global hash is rank 0's: only its model vectors are written.
  std::uint64_t global_hash =
      hash_global(global, checkpoint.global_parameters, checkpoint.model_optimizer);
  MPI_Bcast(&global_hash, 1, MPI_UINT64_T, 0, comm);
  const std::uint64_t local_rows_hash = hash_slice(checkpoint.stars, global.layout);
  std::uint64_t rows_hash = 0;
  MPI_Allreduce(&local_rows_hash, &rows_hash, 1, MPI_UINT64_T, MPI_SUM, comm);

  try {
    write_file(temporary, checkpoint, global, global_hash + rows_hash, comm);
  } catch (const IoError& error) {
    problem = error.what();
  }
  const Verdict written = agree(problem.empty() ? 0 : 1, problem, comm);
  if (written.code != 0) {
    if (is_root) {
      std::error_code ignored;
      fs::remove(temporary, ignored);
    }
    throw IoError(written.message);
  }

  // Every rank has closed the file: rank 0 makes it durable and publishes it.
  if (is_root) {
    problem = sync_to_disk(temporary, false);
    if (!problem.empty()) {
      problem = temporary + ": cannot flush to disk: " + problem;
    } else {
      std::error_code error;
      fs::rename(temporary, path, error);
      if (error) {
        problem = path + ": cannot rename " + temporary + " to it: " + error.message();
      } else {
        sync_to_disk(dir, true);
        prune(dir, global.position.global_step, keep, comm);
      }
    }
  }
  agree_or_throw(problem, comm);  // also holds every rank until the directory is final
  return path;
}

std::optional<TrainingCheckpoint> read_latest_training_checkpoint(const std::string& dir,
                                                                  std::int64_t first_row,
                                                                  std::int64_t rows,
                                                                  MPI_Comm comm) {
  return load_latest(dir, SliceRequest{true, first_row, rows}, comm);
}

std::optional<TrainingCheckpoint> peek_latest_training_checkpoint(const std::string& dir,
                                                                  MPI_Comm comm) {
  return load_latest(dir, SliceRequest{}, comm);
}

}  // namespace xps
