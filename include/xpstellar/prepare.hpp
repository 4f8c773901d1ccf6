// xps_prepare: real survey data -> star tables (DESIGN §4). Joins, by source_id, the XP spectra
// converted by xps_xpconvert (392-992 nm every 10 nm) with a Gaia source table, 2MASS and unWISE
// photometry and optional spectroscopic labels; converts NIR magnitudes to flux with the paper's
// Vega->AB offsets; drops NIR bands of crowded sources; optionally applies the training-set cuts;
// writes HEALPix partitions in parallel. Input columns are documented in docs/prepare.md.
#pragma once

#include <mpi.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace xps {
class ParameterSet;

void declare_prepare_parameters(ParameterSet& parameters);

struct PrepareInputs {
  std::string xp;      // HDF5 from xps_xpconvert (required)
  std::string gaia;    // CSV (required)
  std::string tmass;   // CSV (optional, "" = none)
  std::string unwise;  // CSV (optional)
  std::string labels;  // CSV (optional)
};

struct PrepareSummary {
  std::int64_t xp_rows = 0;
  std::int64_t written = 0;
  std::int64_t skipped = 0;              // rows that could not be used (reported one by one)
  std::map<std::string, std::int64_t> cut;  // training-set cuts: reason -> stars removed
  std::int64_t tmass_bands_dropped = 0;  // band values set missing (crowding or quality)
  std::int64_t unwise_bands_dropped = 0;
  std::int64_t labelled = 0;
  std::int64_t partitions = 0;
};

// Collective over `comm`. Warnings for skipped rows go to stderr naming source_id and reason.
PrepareSummary run_prepare(const ParameterSet& parameters, const PrepareInputs& inputs,
                           const std::string& output_dir, MPI_Comm comm);

std::string format_prepare_summary(const PrepareSummary& summary);

// unWISE fluxes are Vega nanomaggies (m = 22.5 - 2.5 log10 f); this is f_lambda of one
// nanomaggy in 1e-18 W m-2 nm-1 for W1 (nir index 3) or W2 (4). Linear, so negative fluxes of
// faint sources convert too.
double unwise_nanomaggy_flux(std::size_t nir_index);

}  // namespace xps
