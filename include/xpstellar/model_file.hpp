// The model file of DESIGN §4: the trained flux model (network, input normalisation, extinction
// curves), the covariance inflation it was trained with, the Gaussian-mixture prior on Theta with
// its ln_prior cut, and provenance. Written by xps_train, read by xps_infer and tools/.
// The schema is documented in docs/model_file.md.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "xpstellar/flux_model.hpp"
#include "xpstellar/flux_whitening.hpp"
#include "xpstellar/gaussian_mixture.hpp"
#include "xpstellar/uncertainty_calibration.hpp"

namespace xps {

inline constexpr int model_file_schema_version = 1;

struct ModelPrior {
  GaussianMixture mixture;  // Theta order and units of the network input: teff [K], feh, logg
  double ln_prior_cut = 0;  // ln p level enclosing prior_mass of the mixture (quality bit 4)
  double prior_mass = 0.999;
};

struct ModelProvenance {
  std::string config_text;   // effective INI of the run that made the model
  std::string code_version;  // XPS_VERSION
  std::uint64_t seed = 0;
  std::string creation_time;  // ISO 8601 UTC; the only field that differs between reruns
};

struct ModelFile {
  FluxModel model;
  std::vector<double> wavelength_nm;    // [M]
  std::vector<std::string> band_names;  // [M]
  CovarianceInflation inflation;
  std::optional<ModelPrior> prior;      // absent in a model written before the prior was fitted
  // /calibration, from tools/calibrate_uncertainties.py; absent until that has run.
  std::optional<UncertaintyCalibration> calibration;
  ModelProvenance provenance;
};

// Writes by one process under `path + ".tmp"`, then renames. Object time stamps are off; the
// provenance creation_time attribute is the only content that depends on when it was written.
// Throws IoError naming the file.
void write_model_file(const std::string& path, const ModelFile& model);

// Reads and checks the contract (shapes agree with each other, activation known, covariances
// symmetric positive definite). Throws IoError naming the file and what is wrong.
ModelFile read_model_file(const std::string& path);

// A 64-bit checksum (FNV-1a) of the file's bytes, as 16 hex digits: catalogs record it so that a
// catalog can be matched to the model that made it.
std::string file_checksum(const std::string& path);

}  // namespace xps
