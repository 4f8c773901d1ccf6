// The built-in GaiaXPy calibration, the --sampling grammar and the design matrices' layout.
#include <fstream>

#include "xp_test_support.hpp"
#include "xpstellar/error.hpp"

namespace xp = xps::xp;
using namespace xps::xp::testing;

TEST(XpCalibration, BuiltinHasGaiaXPyDimensions) {
  const xp::Calibration& calibration = xp::builtin_calibration();
  for (const xp::Band band : xp::bands) {
    const xp::BandModel& model = calibration[band];
    EXPECT_EQ(model.n_bases, 55);
    EXPECT_EQ(model.inverse_bases.rows(), 55);
    EXPECT_EQ(model.inverse_bases.cols(), 55);
    EXPECT_EQ(model.transformation.rows(), 55);
    EXPECT_EQ(model.response.size(), model.response_wavelength_nm.size());
    EXPECT_GE(model.response_wavelength_nm.size(), 1000u);
  }
  EXPECT_DOUBLE_EQ(calibration[xp::Band::bp].norm_range_min, -9.8);
  EXPECT_DOUBLE_EQ(calibration[xp::Band::rp].norm_range_max, 9.6);
  EXPECT_NE(calibration.description.find("bpC03_v375wi_bases.csv"), std::string::npos);
}

TEST(XpCalibration, BuiltinMatchesSharedFiles) {
  // src/xp/xp_calibration_data.inc is tools/embed_xp_calibration.py's copy of these files.
  XPS_REQUIRE_REALDATA();
  const xp::Calibration shared = xp::read_calibration((gaiaxpy_dir / "calibration").string());
  const xp::Calibration& builtin = xp::builtin_calibration();
  for (const xp::Band band : xp::bands) {
    const xp::BandModel& a = shared[band];
    const xp::BandModel& b = builtin[band];
    EXPECT_EQ(a.dispersion_wavelength_nm, b.dispersion_wavelength_nm);
    EXPECT_EQ(a.dispersion_pseudo_wavelength, b.dispersion_pseudo_wavelength);
    EXPECT_EQ(a.response_wavelength_nm, b.response_wavelength_nm);
    EXPECT_EQ(a.response, b.response);
    EXPECT_EQ(a.inverse_bases, b.inverse_bases);
    EXPECT_EQ(a.transformation, b.transformation);
    EXPECT_EQ(a.pwl_range_max, b.pwl_range_max);
  }
}

TEST(XpCalibration, BadFilesAreErrorsNamingTheFile) {
  EXPECT_THROW(xp::read_calibration("/nonexistent/calibration"), xps::IoError);
  xp::BandModel model;
  EXPECT_THROW(xp::parse_dispersion_csv("1,2,3\n", "d.csv", model), xps::IoError);
  EXPECT_THROW(xp::parse_dispersion_csv("1,2,3,4\n1,2,3\n", "d.csv", model), xps::IoError);
  EXPECT_THROW(xp::parse_response_csv("1,3,2,4\n1,2,3,4\n", "r.csv", model), xps::IoError);
  try {
    xp::parse_bases_csv("nBases,pwlRangeMin\n55,0\n", "b.csv", model);
    FAIL();
  } catch (const xps::IoError& error) {
    EXPECT_NE(std::string(error.what()).find("b.csv"), std::string::npos);
  }
}

TEST(XpSampling, ParsesStartStopStepInclusive) {
  EXPECT_EQ(xp::parse_sampling("392:992:10").size(), 61u);
  EXPECT_EQ(xp::parse_sampling("392:992:10").back(), 992.0);
  EXPECT_EQ(xp::parse_sampling("330:1050:0.1").size(), 7201u);
  EXPECT_EQ(xp::parse_sampling("330:1050:0.1").back(), 1050.0);
  EXPECT_EQ(xp::parse_sampling("400:405:2"), (std::vector<double>{400, 402, 404}));
  EXPECT_EQ(xp::parse_sampling("500:500:1"), (std::vector<double>{500}));
  for (const char* bad : {"392:992", "392:992:10:1", "a:992:10", "392:992:0", "392:992:-1",
                          "992:392:10", "320:992:10", "392:1060:10", "", "392::10"}) {
    EXPECT_THROW(xp::parse_sampling(bad), xps::UsageError) << bad;
  }
  EXPECT_EQ(xp::parse_covariance_mode("propagated"), xp::CovarianceMode::propagated);
  EXPECT_THROW(xp::parse_covariance_mode("full"), xps::UsageError);
}

TEST(XpDesign, BandsCoverTheirSideOfTheMergeWithLinearWeights) {
  const std::vector<double> grid{330, 500, 635, 636, 639, 642, 643, 800, 1050};
  const xp::DesignMatrices design(xp::builtin_calibration(), grid);
  const auto& bp = design[xp::Band::bp];
  const auto& rp = design[xp::Band::rp];
  EXPECT_EQ(bp.first_sample, 0u);
  EXPECT_EQ(bp.samples, 6u);       // up to 642 nm: the BP weight vanishes at 643
  EXPECT_EQ(rp.first_sample, 3u);  // from 636 nm: the RP weight vanishes at 635
  EXPECT_EQ(rp.samples, 6u);
  EXPECT_EQ(bp.matrix.rows(), 55);
  EXPECT_EQ(bp.matrix.cols(), 6);
  EXPECT_DOUBLE_EQ(bp.weight[4], 0.5);
  EXPECT_DOUBLE_EQ(rp.weight[4], 0.5);
  for (std::size_t s = 0; s < grid.size(); ++s) EXPECT_DOUBLE_EQ(bp.weight[s] + rp.weight[s], 1.0);
  EXPECT_THROW(xp::DesignMatrices(xp::builtin_calibration(), {500, 400}), std::invalid_argument);
}
