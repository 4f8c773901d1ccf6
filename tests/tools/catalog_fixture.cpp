// Writes catalogs (src/io/catalog.cpp) for tests/integration/check_catalog_python.py, which reads
// them with h5py and astropy. Every value is a dyadic fraction of its row number, exact in float32,
// so that the Python side recomputes it with the same formulas (keep the two in step). Every
// seventh row is "not fitted": NaN estimates, quality bit 7. Rows are written in blocks of 300 in
// reverse order. Output in OUTDIR: catalog_5_1234.h5 with ROWS rows, catalog_5_0.h5 with none.
// Usage: catalog_fixture OUTDIR [ROWS]
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <limits>
#include <string>

#include "xpstellar/catalog.hpp"
#include "xpstellar/mpi_session.hpp"

namespace {

xps::CatalogAttributes fixture_attributes(std::int64_t pixel) {
  xps::CatalogAttributes a;
  a.healpix_level = 5;
  a.healpix_pixel = pixel;
  a.star_table = "stars_5_" + std::to_string(pixel) + ".h5";
  a.model_file = "model_fast.h5";
  a.model_checksum = "0123456789abcdef";
  a.parallax_zero_point = -0.017;
  a.optimizer = "fast";
  a.config_text = "[inference]\noptimizer = fast\n# Teff in kK, σ_ϖ in mas\n";
  a.code_version = "0.1.0-fixture";
  return a;
}

// Rows [first, first + n) by the formulas of check_catalog_python.py's expected_rows().
xps::CatalogRows fixture_rows(std::size_t first, std::size_t n) {
  xps::CatalogRows rows;
  rows.reset(n);
  for (std::size_t k = 0; k < n; ++k) {
    const std::size_t i = first + k;
    const auto fi = static_cast<float>(i);
    rows.gdr3_source_id[k] = (std::int64_t{123456789} << 35) + static_cast<std::int64_t>(i);
    rows.ra[k] = 10.0 + static_cast<double>(i) / 1024.0;
    rows.dec[k] = -30.0 + static_cast<double>(i) / 2048.0;
    if (i % 7 == 0) {
      rows.quality_flags[k] = xps::quality_not_fitted;
      rows.fit_status[k] = static_cast<std::uint8_t>(2 + (i / 7) % 5);
      continue;
    }
    unsigned flags = 0;
    if (i % 5 == 0) flags |= xps::quality_chi2;
    if (i % 11 == 0) flags |= xps::quality_ln_prior;
    if (i % 13 == 0) flags |= xps::quality_not_converged;
    rows.quality_flags[k] = static_cast<std::uint8_t>(flags);
    rows.fit_status[k] = static_cast<std::uint8_t>(i % 13 == 0 ? 1 : 0);
    rows.iterations[k] = static_cast<std::int32_t>(3 + i % 50);
    rows.bands_used[k] = static_cast<std::uint8_t>(66 - i % 5);
    for (std::size_t p = 0; p < 5; ++p) {
      const auto fp = static_cast<float>(p);
      rows.stellar_params_est[k * 5 + p] = fp + fi / 256.0f;
      rows.stellar_params_err[k * 5 + p] = (fp + 1.0f) * 0.125f + fi / 65536.0f;
    }
    for (std::size_t t = 0; t < 15; ++t) {
      const auto ft = static_cast<float>(t);
      rows.stellar_params_icov_triu[k * 15 + t] = 100.0f + ft + fi / 4.0f;
      rows.stellar_params_cov_triu[k * 15 + t] = (ft + 1.0f) / 1024.0f + fi / 1048576.0f;
    }
    rows.chi2_opt[k] = 61.0f + fi / 8.0f;
    rows.ln_prior[k] = -fi / 32.0f;
    rows.chi2_dof[k] = fi / 16.0f;
    rows.xi_est[k] = i % 3 == 0 ? std::numeric_limits<float>::quiet_NaN() : -0.5f + fi / 4096.0f;
    rows.loss_opt[k] = 1000.0 + static_cast<double>(i) / 8.0;
    if (i % 4 != 0) {  // every fourth: no spectrophotometric parallax
      rows.parallax_spectro[k] = 0.25f + fi / 512.0f;
      rows.parallax_spectro_error[k] = 0.03125f + fi / 131072.0f;
    }
  }
  return rows;
}

}  // namespace

int main(int argc, char** argv) {
  xps::MpiSession mpi(argc, argv);
  try {
    if (argc < 2 || argc > 3) {
      std::fprintf(stderr, "usage: catalog_fixture OUTDIR [ROWS]\n");
      return 2;
    }
    const std::string dir = argv[1];
    const std::size_t total = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1000;
    {
      xps::CatalogWriter writer(dir + "/catalog_5_1234.h5", total, fixture_attributes(1234));
      const std::size_t block = 300;
      for (std::size_t end = total; end > 0;) {
        const std::size_t first = end > block ? end - block : 0;
        writer.write(first, fixture_rows(first, end - first));
        end = first;
      }
      writer.commit();
    }
    xps::CatalogWriter empty(dir + "/catalog_5_0.h5", 0, fixture_attributes(0));
    empty.commit();
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "catalog_fixture: %s\n", error.what());
    return 1;
  }
}
