// The star table (DESIGN §4): one HDF5 file per HEALPix partition, `stars_<level>_<pixel>.h5`.
// This header owns the in-memory form and the read/write entry points; the on-disk schema is
// documented in docs/star_table.md. Nothing outside src/io includes hdf5.h.
#pragma once

#include <mpi.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace xps {

inline constexpr int star_table_schema_version = 1;
// Flux, flux covariance and model fluxes are stored in this unit (an attribute of every file).
inline constexpr const char* star_table_flux_unit = "1e-18 W m-2 nm-1";

// Number of entries of a packed upper triangle (row-major, i <= j) of an m x m matrix.
constexpr std::size_t packed_triangle_size(std::size_t m) { return m * (m + 1) / 2; }
// Position of element (i, j), i <= j, in that packed upper triangle.
constexpr std::size_t packed_triangle_index(std::size_t i, std::size_t j, std::size_t m) {
  return i * m - i * (i - 1) / 2 + (j - i);
}

// Spectroscopic labels and extinction priors; NaN where a star has none.
struct StarLabels {
  std::vector<float> teff, logg, feh;              // K, dex, dex
  std::vector<float> teff_err, logg_err, feh_err;  // same units
  std::vector<float> E_prior, E_prior_err;         // mag (same normalisation as truth E)
};

// What the mock's truth model knows (DESIGN §4 `/truth`); only mock tables carry it.
struct StarTruth {
  std::vector<float> teff, logg, feh;  // of the primary, K / dex / dex
  std::vector<float> E;                // extinction amplitude, f = f0 exp(-E R)
  std::vector<float> parallax;         // true parallax, mas (no zero-point offset)
  std::vector<float> mass_ratio;       // secondary/primary mass; 0 for single stars
  std::vector<float> xi;               // extinction-curve shape proxy: R_V - mean R_V
  std::vector<std::uint8_t> is_binary;
  std::vector<std::uint8_t> pathology;  // 0 none; codes in docs/mock.md
  std::vector<float> r_v;               // the star's R_V
  std::vector<float> distance_pc;
  std::vector<float> flux;              // noiseless flux [rows x bands], 1e-18 W m-2 nm-1
  std::vector<double> extinction_R;     // /truth/meta/extinction_R [bands]: curve at mean R_V
};

struct StarTable {
  int healpix_level = 0;
  std::int64_t healpix_pixel = 0;
  std::vector<double> wavelength_nm;     // [bands]
  std::vector<std::string> band_names;   // [bands]
  std::vector<std::int64_t> source_id;   // [rows]
  std::vector<double> ra, dec;           // [rows] deg, ICRS
  std::vector<float> flux;               // [rows x bands]
  std::vector<float> flux_cov;           // [rows x packed_triangle_size(bands)]
  std::vector<float> parallax, parallax_error;  // mas
  std::vector<float> phot_g_mean_mag, bp_rp, ruwe, fidelity_v2, norm_dg, phot_bp_rp_excess_factor;
  StarLabels labels;
  bool has_truth = false;
  StarTruth truth;
  // Provenance written to /meta attributes: the effective configuration and the generator.
  std::string provenance_config;
  std::string provenance_generator;

  std::size_t rows() const { return source_id.size(); }
  std::size_t bands() const { return wavelength_nm.size(); }
  // Sizes every per-star array for `rows` stars (NaN-filled floats), keeping bands and truth flag.
  void resize(std::size_t rows);
  // Sizes every per-star array for `rows` stars and fills all of them with missing values (NaN,
  // 0 for integers), reusing the arrays' memory: a table reused for many partitions costs no new
  // pages.
  void reset(std::size_t rows);
  // Throws std::logic_error if array sizes disagree with rows() and bands().
  void check_consistent() const;
};

// What a file holds, read from its metadata without touching the star rows.
struct StarTableInfo {
  std::size_t rows = 0;
  std::size_t bands = 0;
  int schema_version = 0;
  int healpix_level = 0;
  std::int64_t healpix_pixel = 0;
  bool has_truth = false;
};

// Collective over `comm`: each rank passes its own rows; the file holds them concatenated in rank
// order. Metadata (level, pixel, wavelengths, band names, provenance) is taken from rank 0. The
// file is written under `path + ".tmp"` and renamed once complete. Throws IoError naming the file.
void write_star_table(const std::string& path, const StarTable& local_rows, MPI_Comm comm);

// Reads and checks the metadata of a star table (schema version, datasets present with the shapes
// the contract requires). Throws IoError naming the file and what is wrong.
StarTableInfo read_star_table_info(const std::string& path);

// Collective over `comm`: each rank reads rows [first_row, first_row + row_count) of the file
// (ranks may ask for different slices, including empty ones). Checks the contract first.
StarTable read_star_table(const std::string& path, MPI_Comm comm, std::size_t first_row,
                          std::size_t row_count);
// All rows, by one process.
StarTable read_star_table(const std::string& path);

// Which per-star arrays a partial read fills; the others are left empty (size 0).
struct StarTableColumns {
  bool spectra = true;  // flux, flux_cov (and the truth's noiseless flux)
  bool truth = true;    // /truth, when the file has it
};

// Rows [first_row, first_row + row_count), by one process (no collective calls), with only the
// requested columns: a training loader reads the cheap columns of every table first and the
// spectra only of the stars it keeps.
StarTable read_star_table_rows(const std::string& path, std::size_t first_row,
                               std::size_t row_count, const StarTableColumns& columns);

}  // namespace xps
