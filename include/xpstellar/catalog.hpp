// The catalog (DESIGN §1.6 and §4): one HDF5 file per partition, `catalog_<level>_<pixel>.h5`,
// rows in the order of the star table they came from. Datasets under /catalog/ keep the names of
// the published catalog (Zhang, Green & Rix 2023); our additions have new names. Every dataset
// carries `unit` and `description` attributes; /catalog carries the provenance attributes below.
// The schema is documented in docs/catalog.md. Written by one process per file (inference hands
// partitions to ranks), streamed in row blocks so that a partition of any size fits in memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace xps {

inline constexpr int catalog_schema_version = 1;
inline constexpr int catalog_parameters = 5;       // Teff [kK], [Fe/H], logg, E, parallax [mas]
inline constexpr int catalog_triangle = 15;        // packed upper triangle of a 5 x 5 matrix

// quality_flags bits (DESIGN §1.5). Bits 0-2 come with the confidence classifiers (always 0 until
// then); bits 6 and 7 are ours: the paper leaves them 0.
enum QualityBit : std::uint8_t {
  quality_teff_confidence = 1u << 0,
  quality_feh_confidence = 1u << 1,
  quality_logg_confidence = 1u << 2,
  quality_chi2 = 1u << 3,             // chi2_dof > inference flag threshold (2)
  quality_ln_prior = 1u << 4,         // ln_prior below the model's ln_prior_cut
  quality_parallax_excess = 1u << 5,  // |parallax_hat - parallax_est| / sigma > 10
  quality_not_converged = 1u << 6,    // the optimiser stopped without meeting its tests
  quality_not_fitted = 1u << 7,       // no fit at all (fit_status says why); estimates are NaN
};

// Why a star has no fit, or how its fit ended (column fit_status).
enum class FitStatus : std::uint8_t {
  converged = 0,
  not_converged = 1,           // iteration limit, or Hessian not positive definite at the end
  no_bands = 2,                // every band missing
  non_finite_flux = 3,         // NaN/inf flux in a band with a finite variance
  non_positive_variance = 4,   // a present band with variance <= 0
  not_positive_definite = 5,   // flux covariance not positive (semi)definite after inflation
  no_information = 6,          // too few bands to constrain the parameters and no usable parallax
  count
};
const char* fit_status_name(FitStatus status);

// Columns of a block of catalog rows (structure of arrays; row-major for the vector columns).
struct CatalogRows {
  std::vector<std::int64_t> gdr3_source_id;
  std::vector<double> ra, dec;                   // deg, ICRS (copied from the star table)
  std::vector<float> stellar_params_est;         // [n x 5] Teff kK, [Fe/H], logg, E, parallax mas
  std::vector<float> stellar_params_err;         // [n x 5]
  std::vector<float> chi2_opt;                   // flux chi^2 at the optimum
  std::vector<float> ln_prior;                   // ln p_GMM(Theta_est)
  std::vector<float> teff_confidence, feh_confidence, logg_confidence;  // NaN: no classifier yet
  std::vector<std::uint8_t> quality_flags;
  std::vector<float> stellar_params_icov_triu;   // [n x 15] packed upper triangle, row-major
  std::vector<float> stellar_params_cov_triu;    // [n x 15]
  // Additions.
  std::vector<float> chi2_dof;                   // chi2_opt / (bands used - free parameters)
  std::vector<float> xi_est;                     // extinction-curve shape; NaN if the model has none
  std::vector<double> loss_opt;                  // L_inf at the optimum (DESIGN §1.3)
  std::vector<float> parallax_spectro;           // mas: the spectrum's parallax alone (from the joint fit)
  std::vector<float> parallax_spectro_error;     // mas
  std::vector<std::uint8_t> fit_status;          // FitStatus
  std::vector<std::int32_t> iterations;          // optimiser iterations (or steps) used
  std::vector<std::uint8_t> bands_used;          // bands with data

  std::size_t rows() const { return gdr3_source_id.size(); }
  // Sizes every column for n rows, floats NaN, integers 0, reusing memory.
  void reset(std::size_t n);
  // Throws std::logic_error if the column sizes disagree with rows().
  void check_consistent() const;
};

// Attributes of /catalog (DESIGN §4).
struct CatalogAttributes {
  int healpix_level = 0;
  std::int64_t healpix_pixel = 0;
  std::string star_table;          // file name of the star table the rows came from
  std::string model_file;          // file name of the model
  std::string model_checksum;      // file_checksum() of the model (16 hex digits)
  double parallax_zero_point = 0;  // mas, as subtracted from the measured parallax
  // The model-error terms the uncertainties were computed with (CovarianceInflation; 0 = none).
  double model_error_level_frac = 0;
  double model_error_smooth_frac = 0;
  double model_error_smooth_length_nm = 0;
  bool calibrated = false;         // the model file's /calibration was applied
  std::string optimizer;           // "fast" or "paper"
  std::string config_text;         // the effective configuration (INI)
  std::string code_version;
  int schema_version = catalog_schema_version;
};

// Writes one catalog file by one process, row block by row block, under `path + ".tmp"`; commit()
// closes it and renames it to `path`. A writer destroyed without commit() removes the temporary
// file. Object time stamps are off, so the same rows and attributes give the same bytes.
// Throws IoError naming the file.
class CatalogWriter {
public:
  CatalogWriter(const std::string& path, std::size_t total_rows, const CatalogAttributes& attributes);
  ~CatalogWriter();
  CatalogWriter(const CatalogWriter&) = delete;
  CatalogWriter& operator=(const CatalogWriter&) = delete;

  // Rows [first_row, first_row + rows.rows()) of the file.
  void write(std::size_t first_row, const CatalogRows& rows);
  void commit();

private:
  struct Impl;
  std::unique_ptr<Impl> m_impl;
};

// Reads a whole catalog file (for tests and tools). Throws IoError naming the file.
CatalogRows read_catalog(const std::string& path);
CatalogAttributes read_catalog_attributes(const std::string& path);

}  // namespace xps
