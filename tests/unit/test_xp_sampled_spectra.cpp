// The sampled-spectra file written by xps_xpconvert and read by xps_prepare.
#include "io/h5.hpp"
#include "xp_test_support.hpp"
#include "xpstellar/error.hpp"
#include "xpstellar/sampled_spectra.hpp"

using namespace xps::xp::testing;

namespace {

xps::SampledSpectra make_batch(std::int64_t first_id, std::size_t rows, std::size_t m) {
  xps::SampledSpectra batch;
  for (std::size_t r = 0; r < rows; ++r)
    batch.source_id.push_back(first_id + static_cast<std::int64_t>(r));
  for (std::size_t i = 0; i < rows * m; ++i) {
    batch.flux.push_back(static_cast<double>(first_id) + 0.5 * static_cast<double>(i));
    batch.flux_error.push_back(0.25 * static_cast<double>(i));
  }
  for (std::size_t i = 0; i < rows * m * m; ++i)
    batch.flux_cov.push_back(static_cast<double>(i) - 3.0);
  return batch;
}

class XpSampledSpectraTest : public ScratchTest {};

}  // namespace

TEST_F(XpSampledSpectraTest, AppendedBatchesReadBack) {
  const std::vector<double> wavelength{400, 500, 600};
  xps::SampledSpectraWriter writer(path("s.h5"), wavelength, "test provenance");
  const auto first = make_batch(10, 4, 3);
  const auto second = make_batch(100, 2, 3);
  writer.append(first);
  writer.append(xps::SampledSpectra{});  // an empty batch is fine
  writer.append(second);
  EXPECT_EQ(writer.rows_written(), 6u);
  EXPECT_FALSE(fs::exists(path("s.h5")));  // published only by close()
  writer.close();
  EXPECT_FALSE(fs::exists(path("s.h5.tmp")));

  const xps::SampledSpectra all = xps::read_sampled_spectra(path("s.h5"));
  EXPECT_EQ(all.wavelength_nm, wavelength);
  EXPECT_EQ(all.source_id, (std::vector<std::int64_t>{10, 11, 12, 13, 100, 101}));
  EXPECT_EQ(std::vector<double>(all.flux.begin(), all.flux.begin() + 12), first.flux);
  EXPECT_EQ(std::vector<double>(all.flux_cov.begin() + 36, all.flux_cov.end()), second.flux_cov);
  const xps::SampledSpectra part = xps::read_sampled_spectra(path("s.h5"), 3, 2);
  EXPECT_EQ(part.source_id, (std::vector<std::int64_t>{13, 100}));
  EXPECT_EQ(part.flux_error.size(), 6u);
  EXPECT_EQ(part.flux_cov.size(), 18u);
  EXPECT_EQ(xps::read_sampled_spectra(path("s.h5"), 6).rows(), 0u);
  EXPECT_THROW(xps::read_sampled_spectra(path("s.h5"), 7), xps::IoError);
}

TEST_F(XpSampledSpectraTest, UnclosedWriterLeavesNoFile) {
  {
    xps::SampledSpectraWriter writer(path("s.h5"), {400, 500}, "p");
    writer.append(make_batch(1, 2, 2));
  }
  EXPECT_FALSE(fs::exists(path("s.h5")));
  EXPECT_FALSE(fs::exists(path("s.h5.tmp")));
}

TEST_F(XpSampledSpectraTest, InconsistentBatchesAndFilesAreErrors) {
  xps::SampledSpectraWriter writer(path("s.h5"), {400, 500}, "p");
  auto batch = make_batch(1, 2, 2);
  batch.flux_cov.pop_back();
  EXPECT_THROW(writer.append(batch), xps::IoError);
  batch = make_batch(1, 2, 2);
  batch.wavelength_nm = {400, 501};
  EXPECT_THROW(writer.append(batch), xps::IoError);
  writer.append(make_batch(1, 2, 2));
  writer.close();
  {
    auto file = xps::h5::File::open_read_write(path("s.h5"));
    file.move_link("flux_cov", "flux_covariance");
    file.close();
  }
  try {
    xps::read_sampled_spectra(path("s.h5"));
    FAIL() << "a file without /flux_cov was read";
  } catch (const xps::IoError& error) {
    EXPECT_NE(std::string(error.what()).find("flux_cov"), std::string::npos) << error.what();
  }
  EXPECT_THROW(xps::read_sampled_spectra(path("absent.h5")), xps::IoError);
}
