// Model-file I/O (src/io/model_file.cpp): bitwise round trips, determinism, every contract check
// on reading (each names the file and the object), the writer's own checks, and the checksum.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <span>
#include <string>
#include <vector>

#include "io/h5.hpp"
#include "model_file_fixture.hpp"
#include "test_support.hpp"
#include "xpstellar/error.hpp"
#include "xpstellar/model_file.hpp"

namespace {

namespace fs = std::filesystem;
using xps::test::error_message;

class ModelFileTest : public ::testing::Test {
protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    m_dir = fs::temp_directory_path() /
            ("xps_model_file_" + std::string(info->name()) + "_" + std::to_string(getpid()));
    fs::remove_all(m_dir);
    fs::create_directories(m_dir);
  }
  void TearDown() override { fs::remove_all(m_dir); }
  std::string path(const std::string& name) const { return (m_dir / name).string(); }

  // A valid model file at path(name), returned as written.
  xps::ModelFile write_valid(const std::string& name, xps::test::ModelFixtureOptions options = {}) {
    xps::ModelFile model = xps::test::make_random_model_file(options);
    xps::write_model_file(path(name), model);
    return model;
  }

  fs::path m_dir;
};

// Asserts that reading `file` throws an IoError whose message holds the file name and `part`.
void expect_read_error(const std::string& file, const std::string& part) {
  const std::string message =
      error_message<xps::IoError>([&] { xps::read_model_file(file); });
  ASSERT_FALSE(message.empty()) << "no IoError reading " << file;
  EXPECT_NE(message.find(file), std::string::npos) << "file name not in: " << message;
  EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' not in: " << message;
}

bool same_bits(const Eigen::MatrixXd& a, const Eigen::MatrixXd& b) {
  return a.rows() == b.rows() && a.cols() == b.cols() &&
         std::memcmp(a.data(), b.data(), static_cast<std::size_t>(a.size()) * sizeof(double)) == 0;
}

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

void expect_identical(const xps::ModelFile& expected, const xps::ModelFile& actual) {
  const xps::FluxNetwork& a = expected.model.network;
  const xps::FluxNetwork& b = actual.model.network;
  EXPECT_EQ(a.activation, b.activation);
  ASSERT_EQ(a.layers(), b.layers());
  for (std::size_t k = 0; k < a.weight.size(); ++k) {
    EXPECT_TRUE(same_bits(a.weight[k], b.weight[k])) << "layer " << k << " weight";
    EXPECT_TRUE(same_bits(a.bias[k], b.bias[k])) << "layer " << k << " bias";
  }
  EXPECT_TRUE(same_bits(a.input_offset, b.input_offset));
  EXPECT_TRUE(same_bits(a.input_scale, b.input_scale));
  EXPECT_TRUE(same_bits(expected.model.extinction_R, actual.model.extinction_R));
  EXPECT_TRUE(same_bits(expected.model.extinction_R1, actual.model.extinction_R1));
  EXPECT_EQ(expected.model.use_xi, actual.model.use_xi);
  EXPECT_EQ(expected.wavelength_nm, actual.wavelength_nm);
  EXPECT_EQ(expected.band_names, actual.band_names);

  const xps::CovarianceInflation& i = expected.inflation;
  const xps::CovarianceInflation& j = actual.inflation;
  EXPECT_TRUE(same_bits(i.diag_frac, j.diag_frac));
  EXPECT_TRUE(same_bits(i.joint_frac, j.joint_frac));
  EXPECT_TRUE(same_bits(i.bp_frac, j.bp_frac));
  EXPECT_TRUE(same_bits(i.rp_frac, j.rp_frac));
  EXPECT_TRUE(same_bits(i.unwise_frac, j.unwise_frac));
  EXPECT_TRUE(same_bits(i.eigen_floor, j.eigen_floor));
  EXPECT_TRUE(same_bits(i.merge_start_nm, j.merge_start_nm));
  EXPECT_TRUE(same_bits(i.merge_end_nm, j.merge_end_nm));
  EXPECT_TRUE(same_bits(i.negative_eigen_tolerance, j.negative_eigen_tolerance));
  EXPECT_TRUE(same_bits(i.level_frac, j.level_frac));
  EXPECT_TRUE(same_bits(i.smooth_frac, j.smooth_frac));
  EXPECT_TRUE(same_bits(i.smooth_length_nm, j.smooth_length_nm));

  ASSERT_EQ(expected.prior.has_value(), actual.prior.has_value());
  if (expected.prior) {
    const xps::GaussianMixture& p = expected.prior->mixture;
    const xps::GaussianMixture& q = actual.prior->mixture;
    EXPECT_TRUE(same_bits(p.weights, q.weights));
    EXPECT_TRUE(same_bits(p.means, q.means));
    ASSERT_EQ(p.covariances.size(), q.covariances.size());
    for (std::size_t k = 0; k < p.covariances.size(); ++k)
      EXPECT_TRUE(same_bits(p.covariances[k], q.covariances[k])) << "covariance " << k;
    EXPECT_TRUE(same_bits(expected.prior->ln_prior_cut, actual.prior->ln_prior_cut));
    EXPECT_TRUE(same_bits(expected.prior->prior_mass, actual.prior->prior_mass));
  }
  ASSERT_EQ(expected.calibration.has_value(), actual.calibration.has_value());
  if (expected.calibration) {
    const xps::UncertaintyCalibration& c = *expected.calibration;
    const xps::UncertaintyCalibration& d = *actual.calibration;
    EXPECT_EQ(c.teff_edges_kK, d.teff_edges_kK);
    EXPECT_EQ(c.logg_edges, d.logg_edges);
    EXPECT_EQ(c.offset, d.offset);
    EXPECT_EQ(c.floor, d.floor);
    EXPECT_EQ(c.parallax_offset_frac, d.parallax_offset_frac);
    EXPECT_EQ(c.parallax_floor_frac, d.parallax_floor_frac);
    EXPECT_EQ(c.stars, d.stars);
    EXPECT_EQ(c.feh_knots, d.feh_knots);
    EXPECT_EQ(c.feh_offset, d.feh_offset);
  }
  EXPECT_EQ(expected.provenance.config_text, actual.provenance.config_text);
  EXPECT_EQ(expected.provenance.code_version, actual.provenance.code_version);
  EXPECT_EQ(expected.provenance.seed, actual.provenance.seed);
  EXPECT_EQ(expected.provenance.creation_time, actual.provenance.creation_time);
}

std::string file_bytes(const std::string& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// Replaces a float64 dataset of `file` with one of the given shape and values.
void replace_dataset(const std::string& file, const std::string& name, const xps::h5::Dims& shape,
                     const std::vector<double>& values) {
  xps::h5::File h5file = xps::h5::File::open_read_write(file);
  h5file.move_link(name, name + "_old");
  xps::h5::Dataset dataset = h5file.create_dataset<double>(name, shape, {});
  dataset.write_rows<double>(0, shape[0], std::span<const double>(values));
}

// ---- round trips -------------------------------------------------------------------------------

TEST_F(ModelFileTest, RoundTripIsBitwiseWithPriorAndXi) {
  xps::test::ModelFixtureOptions options;
  options.activation = xps::Activation::silu;
  options.use_xi = true;
  options.width = 32;
  options.seed = (std::uint64_t{1} << 63) + 12345;  // does not fit an int64
  const xps::ModelFile model = write_valid("model.h5", options);
  expect_identical(model, xps::read_model_file(path("model.h5")));
  EXPECT_FALSE(fs::exists(path("model.h5.tmp")));
}

TEST_F(ModelFileTest, RoundTripWithoutPrior) {
  xps::test::ModelFixtureOptions options;
  options.with_prior = false;
  options.hidden_layers = 1;
  options.bands = 7;
  options.activation = xps::Activation::softplus;
  const xps::ModelFile model = write_valid("model.h5", options);
  const xps::ModelFile back = xps::read_model_file(path("model.h5"));
  EXPECT_FALSE(back.prior.has_value());
  expect_identical(model, back);
}

xps::UncertaintyCalibration two_by_three_calibration() {
  xps::UncertaintyCalibration c;
  c.teff_edges_kK = {5.0};
  c.logg_edges = {3.0, 4.0};
  for (int cell = 0; cell < 6; ++cell) {
    for (int k = 0; k < 4; ++k) {
      c.offset.push_back(0.01 * cell - 0.003 * k);
      c.floor.push_back(0.02 + 0.001 * (cell + k));
    }
    c.parallax_offset_frac.push_back(0.01 * cell - 0.02);
    c.parallax_floor_frac.push_back(0.05 * cell);
    c.stars.push_back(100.0 * cell);
  }
  return c;
}

TEST_F(ModelFileTest, CalibrationRoundTripsAndIsCheckedOnWriting) {
  xps::ModelFile model = xps::test::make_random_model_file({});
  model.calibration = two_by_three_calibration();
  xps::write_model_file(path("model.h5"), model);
  expect_identical(model, xps::read_model_file(path("model.h5")));

  auto expect_refused = [&](const xps::UncertaintyCalibration& calibration, const std::string& part) {
    xps::ModelFile bad = model;
    bad.calibration = calibration;
    const std::string message =
        error_message<xps::IoError>([&] { xps::write_model_file(path("bad.h5"), bad); });
    EXPECT_NE(message.find("/calibration: " + part), std::string::npos) << message;
  };
  xps::UncertaintyCalibration c = two_by_three_calibration();
  c.floor.pop_back();
  expect_refused(c, "floor is not [6 cells");
  c = two_by_three_calibration();
  c.logg_edges = {4.0, 3.0};
  expect_refused(c, "logg_edges must be finite and increasing");
  c = two_by_three_calibration();
  c.parallax_floor_frac[2] = -0.1;
  expect_refused(c, "parallax_floor_frac must be finite and non-negative");
  c = two_by_three_calibration();
  c.offset[5] = std::nan("");
  expect_refused(c, "offset holds non-finite values");
}

TEST_F(ModelFileTest, MetallicityCurveRoundTripsAndIsOptional) {
  xps::ModelFile model = xps::test::make_random_model_file({});
  model.calibration = two_by_three_calibration();
  model.calibration->feh_knots = {-1.0, -0.3, 0.4};
  model.calibration->feh_offset = {0.1, 0.3, -0.2, 0.01, 0.0, -0.02, 0.01, 0.0, -0.05, 0.08, 0.04, -0.002};
  xps::write_model_file(path("curve.h5"), model);
  expect_identical(model, xps::read_model_file(path("curve.h5")));
  {
    xps::h5::File h5file = xps::h5::File::open_read_write(path("curve.h5"));
    h5file.move_link("calibration/feh_offset", "old_feh_offset");
  }
  expect_read_error(path("curve.h5"), "calibration/feh_offset");

  model.calibration = two_by_three_calibration();  // no curve: no datasets, read back empty
  xps::write_model_file(path("plain.h5"), model);
  EXPECT_FALSE(xps::h5::File::open_read_write(path("plain.h5")).has("calibration/feh_knots"));
  const xps::ModelFile back = xps::read_model_file(path("plain.h5"));
  ASSERT_TRUE(back.calibration.has_value());
  EXPECT_TRUE(back.calibration->feh_knots.empty() && back.calibration->feh_offset.empty());

  xps::ModelFile bad = model;
  bad.calibration->feh_knots = {0.2, 0.1};
  bad.calibration->feh_offset.assign(8, 0.0);
  const std::string message =
      error_message<xps::IoError>([&] { xps::write_model_file(path("bad.h5"), bad); });
  EXPECT_NE(message.find("/calibration: feh_knots must be finite and increasing"), std::string::npos) << message;
}

TEST_F(ModelFileTest, CalibrationWithTheWrongShapeIsReportedOnReading) {
  xps::ModelFile model = xps::test::make_random_model_file({});
  model.calibration = two_by_three_calibration();
  xps::write_model_file(path("model.h5"), model);
  replace_dataset(path("model.h5"), "calibration/stars", {5}, {1, 2, 3, 4, 5});
  expect_read_error(path("model.h5"), "/calibration: stars is not [6 cells");
}

TEST_F(ModelFileTest, CalibrationWithoutParallaxOffsetsReadsZeroOffsets) {
  xps::ModelFile model = xps::test::make_random_model_file({});
  model.calibration = two_by_three_calibration();
  xps::write_model_file(path("model.h5"), model);
  {  // as tables written before the offsets were fitted
    xps::h5::File h5file = xps::h5::File::open_read_write(path("model.h5"));
    h5file.move_link("calibration/parallax_offset_frac", "old_parallax_offset_frac");
  }
  const xps::ModelFile back = xps::read_model_file(path("model.h5"));
  ASSERT_TRUE(back.calibration.has_value());
  EXPECT_EQ(back.calibration->parallax_offset_frac, std::vector<double>(6, 0.0));
  EXPECT_EQ(back.calibration->parallax_floor_frac, model.calibration->parallax_floor_frac);
}

TEST_F(ModelFileTest, EveryActivationRoundTrips) {
  for (auto activation : {xps::Activation::tanh, xps::Activation::silu, xps::Activation::relu,
                          xps::Activation::softplus, xps::Activation::elu,
                          xps::Activation::sigmoid}) {
    xps::test::ModelFixtureOptions options;
    options.activation = activation;
    options.bands = 5;
    const xps::ModelFile model = write_valid("model.h5", options);
    EXPECT_EQ(xps::read_model_file(path("model.h5")).model.network.activation, activation);
  }
}

TEST_F(ModelFileTest, NoHiddenLayerIsALinearModel) {
  xps::test::ModelFixtureOptions options;
  options.hidden_layers = 0;
  const xps::ModelFile model = write_valid("model.h5", options);
  expect_identical(model, xps::read_model_file(path("model.h5")));
}

TEST_F(ModelFileTest, EmptyR1WithoutXiIsWrittenAsZeros) {
  xps::ModelFile model = xps::test::make_random_model_file({});
  model.model.extinction_R1.resize(0);
  xps::write_model_file(path("model.h5"), model);
  const xps::ModelFile back = xps::read_model_file(path("model.h5"));
  EXPECT_EQ(back.model.extinction_R1, Eigen::VectorXd::Zero(66));
}

TEST_F(ModelFileTest, RewritingGivesByteIdenticalFilesAndChecksums) {
  const xps::ModelFile model = write_valid("first.h5");
  xps::write_model_file(path("second.h5"), model);
  const std::string bytes = file_bytes(path("first.h5"));
  EXPECT_FALSE(bytes.empty());
  EXPECT_TRUE(bytes == file_bytes(path("second.h5")));
  EXPECT_EQ(xps::file_checksum(path("first.h5")), xps::file_checksum(path("second.h5")));
  // Overwriting an existing model file replaces it.
  xps::test::ModelFixtureOptions other;
  other.seed = 99;
  const xps::ModelFile replacement = write_valid("first.h5", other);
  expect_identical(replacement, xps::read_model_file(path("first.h5")));
  EXPECT_NE(xps::file_checksum(path("first.h5")), xps::file_checksum(path("second.h5")));
}

// ---- the writer's checks -----------------------------------------------------------------------

TEST_F(ModelFileTest, WriterRefusesAnInconsistentModel) {
  const std::string file = path("model.h5");
  auto expect_refused = [&](const xps::ModelFile& model, const std::string& part) {
    const std::string message =
        error_message<xps::IoError>([&] { xps::write_model_file(file, model); });
    EXPECT_NE(message.find(file + ": cannot write model file: "), std::string::npos) << message;
    EXPECT_NE(message.find(part), std::string::npos) << "'" << part << "' not in: " << message;
    EXPECT_FALSE(fs::exists(file));
    EXPECT_FALSE(fs::exists(file + ".tmp"));
  };
  const xps::ModelFile valid = xps::test::make_random_model_file({});

  xps::ModelFile model = valid;
  model.model.extinction_R.conservativeResize(65);
  expect_refused(model, "/model/extinction_R has 65 entries, expected 66");

  model = valid;
  model.band_names.pop_back();
  expect_refused(model, "/model/band_names has 65 entries, /model/wavelength_nm 66");

  model = valid;
  model.model.network.weight[2].conservativeResize(8, 7);
  expect_refused(model, "/model/nn/layer_2/weight has shape [8,7]: its 7 inputs must be the 8 "
                        "outputs of /model/nn/layer_1");

  model = valid;
  model.model.network.bias[1].conservativeResize(3);
  expect_refused(model, "/model/nn/layer_1/bias has 3 entries, expected 8");

  model = valid;
  model.model.use_xi = true;
  model.model.extinction_R1.resize(0);
  expect_refused(model, "/model/extinction_R1 has 0 entries, expected 66");

  model = valid;
  model.model.network.weight[0](0, 0) = std::nan("");
  expect_refused(model, "/model/nn/layer_0/weight holds non-finite values");

  model = valid;
  model.prior->mixture.covariances[1](0, 0) = -1.0;
  expect_refused(model, "/prior/gmm/covariances[1] is not symmetric positive definite");

  model = valid;
  model.model.network.input_scale(1) = 0.0;
  expect_refused(model, "/model/input_scale must be finite and non-zero");
}

TEST_F(ModelFileTest, UnwritableDirectoryIsReported) {
  const std::string file = path("no/such/dir/model.h5");
  const std::string message = error_message<xps::IoError>(
      [&] { xps::write_model_file(file, xps::test::make_random_model_file({})); });
  EXPECT_NE(message.find(file + ".tmp: cannot create HDF5 file"), std::string::npos) << message;
}

// ---- the reader's checks -----------------------------------------------------------------------

TEST_F(ModelFileTest, MissingDatasetIsNamed) {
  write_valid("model.h5");
  const std::string file = path("model.h5");
  {
    xps::h5::File h5file = xps::h5::File::open_read_write(file);
    h5file.move_link("model/nn/layer_1/bias", "model/nn/layer_1/bias_renamed");
  }
  expect_read_error(file, ": dataset /model/nn/layer_1/bias missing");
}

TEST_F(ModelFileTest, EveryContractDatasetIsRequired) {
  for (const std::string name :
       {"model/wavelength_nm", "model/band_names", "model/extinction_R", "model/extinction_R1",
        "model/input_offset", "model/input_scale", "model/nn/layer_0/weight",
        "model/nn/layer_3/weight", "model/nn/layer_3/bias", "prior/gmm/weights", "prior/gmm/means",
        "prior/gmm/covariances"}) {
    const std::string file = path("model.h5");
    write_valid("model.h5");
    {
      xps::h5::File h5file = xps::h5::File::open_read_write(file);
      h5file.move_link(name, name + "_renamed");
    }
    expect_read_error(file, "dataset /" + name + " missing");
  }
}

// Model files written before the model-error terms existed have no such attributes: they read
// as no model error (the behaviour those files were made with).
TEST_F(ModelFileTest, FilesWithoutModelErrorAttributesReadAsNoModelError) {
  const std::string file = path("model.h5");
  const xps::ModelFile written = write_valid("model.h5");
  ASSERT_GT(written.inflation.level_frac, 0.0);
  ASSERT_GT(written.inflation.smooth_frac, 0.0);
  {  // the inflation group as an older writer made it: the paper's terms only
    xps::h5::File h5file = xps::h5::File::open_read_write(file);
    h5file.move_link("model/inflation", "model/inflation_new");
    xps::h5::Group old = h5file.create_group("model/inflation");
    const xps::CovarianceInflation& i = written.inflation;
    for (const auto& [name, value] :
         {std::pair{"diag_frac", i.diag_frac}, {"joint_frac", i.joint_frac}, {"bp_frac", i.bp_frac},
          {"rp_frac", i.rp_frac}, {"unwise_frac", i.unwise_frac}, {"eigen_floor", i.eigen_floor},
          {"merge_start_nm", i.merge_start_nm}, {"merge_end_nm", i.merge_end_nm},
          {"negative_eigen_tolerance", i.negative_eigen_tolerance}})
      old.write_attribute(name, value);
  }
  const xps::CovarianceInflation back = xps::read_model_file(file).inflation;
  const xps::CovarianceInflation none;
  EXPECT_EQ(back.level_frac, 0.0);
  EXPECT_EQ(back.smooth_frac, 0.0);
  EXPECT_EQ(back.smooth_length_nm, none.smooth_length_nm);
  EXPECT_EQ(back.diag_frac, written.inflation.diag_frac);
}

TEST_F(ModelFileTest, MissingGroupsAreNamed) {
  for (const std::string group : {"model/inflation", "provenance"}) {
    const std::string file = path("model.h5");
    write_valid("model.h5");
    {
      xps::h5::File h5file = xps::h5::File::open_read_write(file);
      h5file.move_link(group, group + "_renamed");
    }
    expect_read_error(file, "group /" + group + " missing");
  }
}

TEST_F(ModelFileTest, LayersThatDoNotChainAreReported) {
  const std::string file = path("model.h5");
  write_valid("model.h5");  // width 8, three hidden layers, 66 bands
  replace_dataset(file, "model/nn/layer_2/weight", {8, 5}, std::vector<double>(40, 0.1));
  expect_read_error(file, "/model/nn/layer_2/weight has shape [8,5]: its 5 inputs must be the 8 "
                          "outputs of /model/nn/layer_1");
}

TEST_F(ModelFileTest, FirstLayerMustTakeTheta) {
  const std::string file = path("model.h5");
  write_valid("model.h5");
  replace_dataset(file, "model/nn/layer_0/weight", {8, 4}, std::vector<double>(32, 0.1));
  expect_read_error(file, "/model/nn/layer_0/weight has shape [8,4]: its 4 inputs must be the 3 "
                          "of Theta");
}

TEST_F(ModelFileTest, LastLayerMustGiveOneOutputPerBand) {
  const std::string file = path("model.h5");
  xps::test::ModelFixtureOptions options;
  options.hidden_layers = 1;
  write_valid("model.h5", options);
  replace_dataset(file, "model/nn/layer_1/weight", {65, 8}, std::vector<double>(520, 0.1));
  expect_read_error(file, "/model/nn/layer_1/weight has shape [65,8]: the last layer must have 66 "
                          "outputs");
}

TEST_F(ModelFileTest, BiasOfTheWrongLengthIsReported) {
  const std::string file = path("model.h5");
  write_valid("model.h5");
  replace_dataset(file, "model/nn/layer_0/bias", {9}, std::vector<double>(9, 0.1));
  expect_read_error(file, "/model/nn/layer_0/bias has 9 entries, expected 8");
}

TEST_F(ModelFileTest, ExtraLayerBeyondHiddenLayersIsReported) {
  const std::string file = path("model.h5");
  write_valid("model.h5");
  {
    xps::h5::File h5file = xps::h5::File::open_read_write(file);
    h5file.open_group("model/nn").write_attribute("hidden_layers", std::int32_t{2});
  }
  expect_read_error(file, "/model/nn/layer_3 exists beyond the layers that "
                          "/model/nn@hidden_layers = 2 announces");
}

TEST_F(ModelFileTest, UnknownActivationIsReported) {
  const std::string file = path("model.h5");
  write_valid("model.h5");
  {
    xps::h5::File h5file = xps::h5::File::open_read_write(file);
    h5file.open_group("model/nn").write_attribute("activation", std::string("gelu"));
  }
  expect_read_error(file, "/model/nn@activation is 'gelu', expected one of tanh, silu, relu, "
                          "softplus, elu, sigmoid");
}

TEST_F(ModelFileTest, NonSpdCovarianceIsReported) {
  const std::string file = path("model.h5");
  write_valid("model.h5");  // four components
  std::vector<double> covariances;
  for (int k = 0; k < 4; ++k) {
    const std::vector<double> identity{1, 0, 0, 0, 1, 0, 0, 0, 1};
    const std::vector<double> indefinite{1, 2, 0, 2, 1, 0, 0, 0, 1};  // eigenvalues 3, -1, 1
    const auto& matrix = k == 2 ? indefinite : identity;
    covariances.insert(covariances.end(), matrix.begin(), matrix.end());
  }
  replace_dataset(file, "prior/gmm/covariances", {4, 3, 3}, covariances);
  expect_read_error(file, "/prior/gmm/covariances[2] is not symmetric positive definite");
}

TEST_F(ModelFileTest, AsymmetricCovarianceIsReported) {
  const std::string file = path("model.h5");
  xps::test::ModelFixtureOptions options;
  options.prior_components = 1;
  write_valid("model.h5", options);
  replace_dataset(file, "prior/gmm/covariances", {1, 3, 3}, {2, 0.5, 0, 0, 2, 0, 0, 0, 2});
  expect_read_error(file, "/prior/gmm/covariances[0] is not symmetric positive definite");
}

TEST_F(ModelFileTest, PriorShapesMustAgree) {
  const std::string file = path("model.h5");
  write_valid("model.h5");  // four components
  replace_dataset(file, "prior/gmm/covariances", {3, 3, 3}, std::vector<double>(27, 0.0));
  expect_read_error(file, "dataset /prior/gmm/covariances has shape [3,3,3], expected [4,3,3]");
  write_valid("model.h5");
  replace_dataset(file, "prior/gmm/means", {4, 2}, std::vector<double>(8, 0.0));
  expect_read_error(file, "/prior/gmm/means has shape [4,2], expected [4,3]");
}

TEST_F(ModelFileTest, WrongSchemaVersionIsReported) {
  const std::string file = path("model.h5");
  write_valid("model.h5");
  {
    xps::h5::File h5file = xps::h5::File::open_read_write(file);
    h5file.open_group("model").write_attribute("schema_version", std::int32_t{2});
  }
  expect_read_error(file, ": /model@schema_version is 2, expected 1");
}

TEST_F(ModelFileTest, WrongFluxUnitIsReported) {
  const std::string file = path("model.h5");
  write_valid("model.h5");
  {
    xps::h5::File h5file = xps::h5::File::open_read_write(file);
    h5file.open_group("model").write_attribute("flux_unit", std::string("erg s-1 cm-2 A-1"));
  }
  expect_read_error(file, "/model@flux_unit is 'erg s-1 cm-2 A-1', expected '1e-18 W m-2 nm-1'");
}

TEST_F(ModelFileTest, NonHdf5AndMissingFilesAreReported) {
  const std::string text = xps::test::write_temp_file(
      "xps_model_file_not_hdf5_" + std::to_string(getpid()) + ".h5", "[model]\nwidth = 32\n");
  expect_read_error(text, " is not a readable HDF5 file");
  fs::remove(text);
  expect_read_error(path("absent.h5"), ": no such file");
}

TEST_F(ModelFileTest, TruncatedFileNamesTheFile) {
  const std::string file = path("model.h5");
  write_valid("model.h5");
  const auto size = fs::file_size(file);
  for (const auto kept : {size / 2, size - 100, std::uintmax_t{100}}) {
    write_valid("model.h5");
    fs::resize_file(file, kept);
    const std::string message =
        error_message<xps::IoError>([&] { xps::read_model_file(file); });
    EXPECT_NE(message.find(file), std::string::npos) << "kept " << kept << ": " << message;
  }
}

// ---- checksum ----------------------------------------------------------------------------------

TEST_F(ModelFileTest, ChecksumIsFnv1a64OfTheBytes) {
  // Reference values of FNV-1a 64 (the FNV authors' test suite).
  auto checksum_of = [&](const std::string& bytes) {
    const std::string file = path("bytes.bin");
    std::ofstream(file, std::ios::binary) << bytes;
    return xps::file_checksum(file);
  };
  EXPECT_EQ(checksum_of(""), "cbf29ce484222325");
  EXPECT_EQ(checksum_of("a"), "af63dc4c8601ec8c");
  EXPECT_EQ(checksum_of("foobar"), "85944171f73967e8");
  // Longer than the reader's buffer, with every byte value: FNV-1a folds one byte at a time.
  std::string bytes;
  for (int i = 0; i < 200000; ++i) bytes.push_back(static_cast<char>((i * 7 + i / 256) & 0xff));
  std::uint64_t expected = 0xcbf29ce484222325ULL;
  for (unsigned char byte : bytes) expected = (expected ^ byte) * 0x100000001b3ULL;
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(expected));
  EXPECT_EQ(checksum_of(bytes), text);
  const std::string message =
      error_message<xps::IoError>([&] { xps::file_checksum(path("absent.h5")); });
  EXPECT_NE(message.find(path("absent.h5")), std::string::npos) << message;
}

}  // namespace
