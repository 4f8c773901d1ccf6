// Model-file I/O (DESIGN §4; on-disk schema in docs/model_file.md). Every number is float64, so
// what inference reads is bit for bit what training wrote.
#include "xpstellar/model_file.hpp"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <span>
#include <utility>

#include "io/h5.hpp"
#include "xpstellar/error.hpp"
#include "xpstellar/star_table.hpp"

namespace xps {

namespace {

using RowMajorMatrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

constexpr int theta_dimension = 3;  // teff [K], feh, logg

std::string layer_group(std::size_t k) { return "model/nn/layer_" + std::to_string(k); }

// Appends rather than `"[" + std::to_string(...)`, which trips GCC 12's -Wrestrict false positive.
std::string shape_text(Eigen::Index rows, Eigen::Index cols) {
  std::string text = "[";
  text += std::to_string(rows);
  text += ',';
  text += std::to_string(cols);
  text += ']';
  return text;
}

bool all_finite(const Eigen::Ref<const Eigen::MatrixXd>& values) {
  return values.array().isFinite().all();
}

// The CovarianceInflation fields in file order, as (attribute name, member, optional on reading).
template <class Inflation, class Visit>
void visit_inflation(Inflation& inflation, Visit&& visit) {
  visit("diag_frac", inflation.diag_frac, false);
  visit("joint_frac", inflation.joint_frac, false);
  visit("bp_frac", inflation.bp_frac, false);
  visit("rp_frac", inflation.rp_frac, false);
  visit("unwise_frac", inflation.unwise_frac, false);
  visit("eigen_floor", inflation.eigen_floor, false);
  visit("merge_start_nm", inflation.merge_start_nm, false);
  visit("merge_end_nm", inflation.merge_end_nm, false);
  visit("negative_eigen_tolerance", inflation.negative_eigen_tolerance, false);
  // The model-error terms: files written before them have none (then they stay at 0).
  visit("level_frac", inflation.level_frac, true);
  visit("smooth_frac", inflation.smooth_frac, true);
  visit("smooth_length_nm", inflation.smooth_length_nm, true);
}

// ---- the contract, checked on the values (before writing and after reading) -------------------

// The network's layers chain 3 -> ... -> M and hold finite numbers; "" if so, else the problem.
std::string network_problem(const FluxNetwork& network, Eigen::Index bands) {
  if (network.weight.empty()) return "/model/nn has no layers";
  if (network.bias.size() != network.weight.size()) {
    return "/model/nn has " + std::to_string(network.weight.size()) + " weight matrices but " +
           std::to_string(network.bias.size()) + " bias vectors";
  }
  Eigen::Index inputs = theta_dimension;
  for (std::size_t k = 0; k < network.weight.size(); ++k) {
    const Eigen::MatrixXd& weight = network.weight[k];
    const std::string name = std::string("/").append(layer_group(k));
    const std::string shape = shape_text(weight.rows(), weight.cols());
    if (weight.cols() != inputs) {
      return name + "/weight has shape " + shape + ": its " + std::to_string(weight.cols()) +
             " inputs must be " +
             (k == 0 ? "the 3 of Theta"
                     : "the " + std::to_string(inputs) + " outputs of /" + layer_group(k - 1));
    }
    if (weight.rows() < 1) return name + "/weight has shape " + shape + ": no outputs";
    if (k + 1 == network.weight.size() && weight.rows() != bands) {
      return name + "/weight has shape " + shape + ": the last layer must have " +
             std::to_string(bands) + " outputs, one per band of /model/wavelength_nm";
    }
    if (network.bias[k].size() != weight.rows()) {
      return name + "/bias has " + std::to_string(network.bias[k].size()) + " entries, expected " +
             std::to_string(weight.rows()) + " (the outputs of " + name + "/weight)";
    }
    if (!all_finite(weight)) return name + "/weight holds non-finite values";
    if (!all_finite(network.bias[k])) return name + "/bias holds non-finite values";
    inputs = weight.rows();
  }
  if (!all_finite(network.input_offset)) return "/model/input_offset holds non-finite values";
  if (!all_finite(network.input_scale) || (network.input_scale.array() == 0.0).any())
    return "/model/input_scale must be finite and non-zero";
  return "";
}

std::string prior_problem(const ModelPrior& prior) {
  const GaussianMixture& mixture = prior.mixture;
  const int components = mixture.components();
  if (components < 1) return "/prior/gmm/weights is empty: the prior has no components";
  if (mixture.means.rows() != components || mixture.means.cols() != theta_dimension) {
    return "/prior/gmm/means has shape " + shape_text(mixture.means.rows(), mixture.means.cols()) +
           ", expected " + shape_text(components, theta_dimension) +
           " (one Theta = teff, feh, logg per component of /prior/gmm/weights)";
  }
  if (mixture.covariances.size() != static_cast<std::size_t>(components)) {
    return "/prior/gmm/covariances holds " + std::to_string(mixture.covariances.size()) +
           " matrices, expected " + std::to_string(components);
  }
  if (!all_finite(mixture.weights) || (mixture.weights.array() < 0.0).any())
    return "/prior/gmm/weights must be finite and non-negative";
  if (std::abs(mixture.weights.sum() - 1.0) > 1e-6)
    return "/prior/gmm/weights sum to " + std::to_string(mixture.weights.sum()) + ", expected 1";
  if (!all_finite(mixture.means)) return "/prior/gmm/means holds non-finite values";
  for (int k = 0; k < components; ++k) {
    const Eigen::MatrixXd& covariance = mixture.covariances[static_cast<std::size_t>(k)];
    const std::string name = "/prior/gmm/covariances[" + std::to_string(k) + "]";
    if (covariance.rows() != theta_dimension || covariance.cols() != theta_dimension)
      return name + " has shape " + shape_text(covariance.rows(), covariance.cols()) +
             ", expected [3,3]";
    if (!all_finite(covariance)) return name + " holds non-finite values";
    const double size = covariance.cwiseAbs().maxCoeff();
    const bool symmetric =
        (covariance - covariance.transpose()).cwiseAbs().maxCoeff() <= 1e-12 * size;
    if (!symmetric || Eigen::LLT<Eigen::MatrixXd>(covariance).info() != Eigen::Success)
      return name + " is not symmetric positive definite";
  }
  if (!std::isfinite(prior.ln_prior_cut)) return "/prior/gmm@ln_prior_cut is not finite";
  if (!(prior.prior_mass > 0.0 && prior.prior_mass <= 1.0))
    return "/prior/gmm@prior_mass is " + std::to_string(prior.prior_mass) + ", expected (0, 1]";
  return "";
}

// Everything the reader and the writer both insist on; "" if the model keeps the contract.
// `empty_R1_allowed`: a model without xi may leave R1 empty in memory (written as zeros).
std::string model_problem(const ModelFile& file, bool empty_R1_allowed) {
  const auto bands = static_cast<Eigen::Index>(file.wavelength_nm.size());
  if (bands < 1) return "/model/wavelength_nm is empty";
  for (double wavelength : file.wavelength_nm)
    if (!std::isfinite(wavelength)) return "/model/wavelength_nm holds non-finite values";
  if (file.band_names.size() != file.wavelength_nm.size()) {
    return "/model/band_names has " + std::to_string(file.band_names.size()) +
           " entries, /model/wavelength_nm " + std::to_string(bands);
  }
  const FluxModel& model = file.model;
  if (model.extinction_R.size() != bands) {
    return "/model/extinction_R has " + std::to_string(model.extinction_R.size()) +
           " entries, expected " + std::to_string(bands) + " (the length of /model/wavelength_nm)";
  }
  const bool R1_may_be_empty = empty_R1_allowed && !model.use_xi;
  if (model.extinction_R1.size() != bands &&
      !(R1_may_be_empty && model.extinction_R1.size() == 0)) {
    return "/model/extinction_R1 has " + std::to_string(model.extinction_R1.size()) +
           " entries, expected " + std::to_string(bands) + " (the length of /model/wavelength_nm)";
  }
  if (!all_finite(model.extinction_R)) return "/model/extinction_R holds non-finite values";
  if (!all_finite(model.extinction_R1)) return "/model/extinction_R1 holds non-finite values";
  std::string problem = network_problem(model.network, bands);
  if (problem.empty() && file.prior) problem = prior_problem(*file.prior);
  if (problem.empty() && file.calibration) {
    problem = calibration_problem(*file.calibration);
    if (!problem.empty()) problem = "/calibration: " + problem;
  }
  return problem;
}

// ---- writing -----------------------------------------------------------------------------------

void write_array(h5::Group& root, const std::string& name, const h5::Dims& shape,
                 std::span<const double> values, const char* unit) {
  h5::Dataset dataset = root.create_dataset<double>(name, shape, h5::Layout{});
  if (unit != nullptr) dataset.write_attribute("units", std::string(unit));
  dataset.write_rows<double>(0, shape[0], values);
}

void write_vector(h5::Group& root, const std::string& name, const Eigen::VectorXd& values,
                  const char* unit) {
  write_array(root, name, {static_cast<std::uint64_t>(values.size())},
              std::span<const double>(values.data(), static_cast<std::size_t>(values.size())),
              unit);
}

// Row-major [rows, cols], as numpy sees it.
void write_matrix(h5::Group& root, const std::string& name, const Eigen::MatrixXd& values) {
  const RowMajorMatrix row_major = values;
  write_array(
      root, name,
      {static_cast<std::uint64_t>(values.rows()), static_cast<std::uint64_t>(values.cols())},
      std::span<const double>(row_major.data(), static_cast<std::size_t>(row_major.size())),
      nullptr);
}

void write_model_group(h5::File& file, const ModelFile& source) {
  const FluxModel& model = source.model;
  const auto bands = static_cast<std::uint64_t>(source.wavelength_nm.size());
  h5::Group group = file.create_group("model");
  group.write_attribute("schema_version", std::int32_t{model_file_schema_version});
  group.write_attribute("flux_unit", std::string(star_table_flux_unit));
  group.write_attribute("use_xi", std::int32_t{model.use_xi ? 1 : 0});

  write_array(file, "model/wavelength_nm", {bands}, source.wavelength_nm, "nm");
  std::size_t longest = 0;
  for (const std::string& name : source.band_names) longest = std::max(longest, name.size());
  file.create_string_dataset("model/band_names", bands, longest)
      .write_string_rows(0, std::span<const std::string>(source.band_names));
  write_vector(file, "model/extinction_R", model.extinction_R, "");
  const Eigen::VectorXd R1 = model.extinction_R1.size() == 0
                                 ? Eigen::VectorXd::Zero(static_cast<Eigen::Index>(bands))
                                 : model.extinction_R1;
  write_vector(file, "model/extinction_R1", R1, "");
  write_vector(file, "model/input_offset", model.network.input_offset, "K, dex, dex");
  write_vector(file, "model/input_scale", model.network.input_scale, "K, dex, dex");

  h5::Group inflation = file.create_group("model/inflation");
  visit_inflation(source.inflation,
                  [&](const char* name, double value, bool) { inflation.write_attribute(name, value); });

  h5::Group network = file.create_group("model/nn");
  network.write_attribute("activation", std::string(activation_name(model.network.activation)));
  network.write_attribute("hidden_layers", std::int32_t{model.network.layers() - 1});
  for (std::size_t k = 0; k < model.network.weight.size(); ++k) {
    file.create_group(layer_group(k));
    write_matrix(file, layer_group(k) + "/weight", model.network.weight[k]);
    write_vector(file, layer_group(k) + "/bias", model.network.bias[k], nullptr);
  }
}

void write_prior_group(h5::File& file, const ModelPrior& prior) {
  const GaussianMixture& mixture = prior.mixture;
  const auto components = static_cast<std::uint64_t>(mixture.components());
  file.create_group("prior");
  h5::Group gmm = file.create_group("prior/gmm");
  gmm.write_attribute("ln_prior_cut", prior.ln_prior_cut);
  gmm.write_attribute("prior_mass", prior.prior_mass);
  write_vector(file, "prior/gmm/weights", mixture.weights, "");
  write_matrix(file, "prior/gmm/means", mixture.means);
  std::vector<double> covariances;
  for (const Eigen::MatrixXd& covariance : mixture.covariances) {
    const RowMajorMatrix row_major = covariance;
    covariances.insert(covariances.end(), row_major.data(), row_major.data() + row_major.size());
  }
  write_array(file, "prior/gmm/covariances", {components, theta_dimension, theta_dimension},
              covariances, nullptr);
}

void write_calibration_group(h5::File& file, const UncertaintyCalibration& c) {
  const auto cells = static_cast<std::uint64_t>(c.cells());
  file.create_group("calibration");
  write_array(file, "calibration/teff_edges_kK", {c.teff_edges_kK.size()}, c.teff_edges_kK, "kK");
  write_array(file, "calibration/logg_edges", {c.logg_edges.size()}, c.logg_edges, "dex");
  write_array(file, "calibration/offset", {cells, calibrated_labels}, c.offset, "kK, dex, dex, mag");
  write_array(file, "calibration/floor", {cells, calibrated_labels}, c.floor, "kK, dex, dex, mag");
  write_array(file, "calibration/parallax_offset_frac", {cells}, c.parallax_offset_frac, "");
  write_array(file, "calibration/parallax_floor_frac", {cells}, c.parallax_floor_frac, "");
  write_array(file, "calibration/stars", {cells}, c.stars, "");
  if (!c.feh_knots.empty()) {
    write_array(file, "calibration/feh_knots", {c.feh_knots.size()}, c.feh_knots, "dex");
    write_array(file, "calibration/feh_offset", {c.feh_knots.size(), calibrated_labels}, c.feh_offset,
                "kK, dex, dex, mag");
  }
}

void write_provenance_group(h5::File& file, const ModelProvenance& provenance) {
  h5::Group group = file.create_group("provenance");
  group.write_attribute("config", provenance.config_text);
  group.write_attribute("code_version", provenance.code_version);
  h5::write_u64_attribute(group, "seed", provenance.seed);
  group.write_attribute("creation_time", provenance.creation_time);
}

// ---- reading -----------------------------------------------------------------------------------

struct Array {
  h5::Dims shape;
  std::vector<double> values;
};

// A floating-point dataset of `rank` dimensions, read whole (converted to double by HDF5).
Array read_array(const h5::File& file, const std::string& name, std::size_t rank) {
  const h5::Dataset dataset = file.open_dataset(name);
  Array array;
  array.shape = dataset.shape();
  if (array.shape.size() != rank) {
    throw IoError(file.file_name() + ": dataset " + dataset.path() + " has shape " +
                  h5::dims_text(array.shape) + ", expected " + std::to_string(rank) +
                  (rank == 1 ? " dimension" : " dimensions"));
  }
  if (dataset.type_class() != h5::TypeClass::floating)
    throw IoError(file.file_name() + ": dataset " + dataset.path() +
                  " holds non-floating-point values");
  std::uint64_t count = 1;
  for (auto extent : array.shape) count *= extent;
  array.values.resize(count);
  dataset.read_rows<double>(0, array.shape[0], std::span<double>(array.values));
  return array;
}

Eigen::VectorXd read_vector(const h5::File& file, const std::string& name) {
  const Array array = read_array(file, name, 1);
  return Eigen::Map<const Eigen::VectorXd>(array.values.data(),
                                           static_cast<Eigen::Index>(array.values.size()));
}

Eigen::MatrixXd read_matrix(const h5::File& file, const std::string& name) {
  const Array array = read_array(file, name, 2);
  return Eigen::Map<const RowMajorMatrix>(array.values.data(),
                                          static_cast<Eigen::Index>(array.shape[0]),
                                          static_cast<Eigen::Index>(array.shape[1]));
}

Eigen::Vector3d read_vector3(const h5::File& file, const std::string& name) {
  const Eigen::VectorXd values = read_vector(file, name);
  if (values.size() != 3) {
    throw IoError(file.file_name() + ": dataset /" + name + " has " +
                  std::to_string(values.size()) + " entries, expected 3 (teff, feh, logg)");
  }
  return values;
}

void check_version_and_unit(const h5::File& file, const h5::Group& model) {
  const std::int64_t version = model.read_integer_attribute("schema_version");
  if (version != model_file_schema_version) {
    throw IoError(file.file_name() + ": /model@schema_version is " + std::to_string(version) +
                  ", expected " + std::to_string(model_file_schema_version));
  }
  const std::string unit = model.read_string_attribute("flux_unit");
  if (unit != star_table_flux_unit) {
    throw IoError(file.file_name() + ": /model@flux_unit is '" + unit + "', expected '" +
                  star_table_flux_unit + "'");
  }
}

FluxNetwork read_network(const h5::File& file) {
  const h5::Group group = file.open_group("model/nn");
  FluxNetwork network;
  const std::string activation = group.read_string_attribute("activation");
  try {
    network.activation = parse_activation(activation);
  } catch (const UsageError&) {
    throw IoError(file.file_name() + ": /model/nn@activation is '" + activation +
                  "', expected one of tanh, silu, relu, softplus, elu, sigmoid");
  }
  const std::int64_t hidden_layers = group.read_integer_attribute("hidden_layers");
  if (hidden_layers < 0 || hidden_layers > 1000) {
    throw IoError(file.file_name() + ": /model/nn@hidden_layers is " +
                  std::to_string(hidden_layers) + ", expected a count from 0 to 1000");
  }
  const auto layers = static_cast<std::size_t>(hidden_layers) + 1;
  for (std::size_t k = 0; k < layers; ++k) {
    network.weight.push_back(read_matrix(file, layer_group(k) + "/weight"));
    network.bias.push_back(read_vector(file, layer_group(k) + "/bias"));
  }
  if (file.has(layer_group(layers))) {
    throw IoError(file.file_name() + ": /" + layer_group(layers) +
                  " exists beyond the layers that /model/nn@hidden_layers = " +
                  std::to_string(hidden_layers) + " announces");
  }
  network.input_offset = read_vector3(file, "model/input_offset");
  network.input_scale = read_vector3(file, "model/input_scale");
  return network;
}

ModelPrior read_prior(const h5::File& file) {
  const h5::Group gmm = file.open_group("prior/gmm");
  ModelPrior prior;
  prior.ln_prior_cut = gmm.read_double_attribute("ln_prior_cut");
  prior.prior_mass = gmm.read_double_attribute("prior_mass");
  GaussianMixture& mixture = prior.mixture;
  mixture.weights = read_vector(file, "prior/gmm/weights");
  mixture.means = read_matrix(file, "prior/gmm/means");
  const Array covariances = read_array(file, "prior/gmm/covariances", 3);
  const auto components = static_cast<std::uint64_t>(mixture.weights.size());
  const h5::Dims expected{components, theta_dimension, theta_dimension};
  if (covariances.shape != expected) {
    throw IoError(file.file_name() + ": dataset /prior/gmm/covariances has shape " +
                  h5::dims_text(covariances.shape) + ", expected " + h5::dims_text(expected));
  }
  for (std::uint64_t k = 0; k < components; ++k) {
    mixture.covariances.emplace_back(Eigen::Map<const RowMajorMatrix>(
        covariances.values.data() + k * theta_dimension * theta_dimension, theta_dimension,
        theta_dimension));
  }
  return prior;
}

UncertaintyCalibration read_calibration(const h5::File& file) {
  UncertaintyCalibration c;
  c.teff_edges_kK = read_array(file, "calibration/teff_edges_kK", 1).values;
  c.logg_edges = read_array(file, "calibration/logg_edges", 1).values;
  c.offset = read_array(file, "calibration/offset", 2).values;
  c.floor = read_array(file, "calibration/floor", 2).values;
  c.parallax_floor_frac = read_array(file, "calibration/parallax_floor_frac", 1).values;
  c.stars = read_array(file, "calibration/stars", 1).values;
  // Tables written before 2026-12-05 have no parallax offset.
  c.parallax_offset_frac = file.has("calibration/parallax_offset_frac")
                               ? read_array(file, "calibration/parallax_offset_frac", 1).values
                               : std::vector<double>(c.parallax_floor_frac.size(), 0.0);
  // Optional (tables without a metallicity curve, or written before 2026-12-06).
  if (file.has("calibration/feh_knots")) {
    c.feh_knots = read_array(file, "calibration/feh_knots", 1).values;
    c.feh_offset = read_array(file, "calibration/feh_offset", 2).values;
  }
  return c;
}

ModelProvenance read_provenance(const h5::File& file) {
  const h5::Group group = file.open_group("provenance");
  ModelProvenance provenance;
  provenance.config_text = group.read_string_attribute("config");
  provenance.code_version = group.read_string_attribute("code_version");
  provenance.seed = h5::read_u64_attribute(group, "seed");
  provenance.creation_time = group.read_string_attribute("creation_time");
  return provenance;
}

ModelFile read_contents(const h5::File& file) {
  ModelFile result;
  {
    const h5::Group model = file.open_group("model");
    check_version_and_unit(file, model);
    const std::int64_t use_xi = model.read_integer_attribute("use_xi");
    if (use_xi != 0 && use_xi != 1)
      throw IoError(file.file_name() + ": /model@use_xi is " + std::to_string(use_xi) +
                    ", expected 0 or 1");
    result.model.use_xi = use_xi == 1;
  }
  const Eigen::VectorXd wavelength = read_vector(file, "model/wavelength_nm");
  result.wavelength_nm.assign(wavelength.data(), wavelength.data() + wavelength.size());
  result.band_names = file.open_dataset("model/band_names").read_strings();
  result.model.extinction_R = read_vector(file, "model/extinction_R");
  result.model.extinction_R1 = read_vector(file, "model/extinction_R1");
  result.model.network = read_network(file);
  {
    const h5::Group inflation = file.open_group("model/inflation");
    visit_inflation(result.inflation, [&](const char* name, double& value, bool optional) {
      if (optional && !inflation.has_attribute(name)) return;
      value = inflation.read_double_attribute(name);
    });
  }
  if (file.has("prior")) result.prior = read_prior(file);
  if (file.has("calibration")) result.calibration = read_calibration(file);
  result.provenance = read_provenance(file);
  return result;
}

}  // namespace

void write_model_file(const std::string& path, const ModelFile& model) {
  if (const std::string problem = model_problem(model, true); !problem.empty())
    throw IoError(path + ": cannot write model file: " + problem);
  const std::string temporary = path + ".tmp";
  try {
    h5::File file = h5::File::create(temporary, MPI_COMM_SELF);
    write_model_group(file, model);
    if (model.prior) write_prior_group(file, *model.prior);
    if (model.calibration) write_calibration_group(file, *model.calibration);
    write_provenance_group(file, model.provenance);
    file.close();
  } catch (...) {
    std::error_code ignored;
    std::filesystem::remove(temporary, ignored);
    throw;
  }
  std::error_code error;
  std::filesystem::rename(temporary, path, error);
  if (error) {
    std::error_code ignored;
    std::filesystem::remove(temporary, ignored);
    throw IoError(path + ": cannot rename " + temporary + " to it: " + error.message());
  }
}

ModelFile read_model_file(const std::string& path) {
  ModelFile model;
  {
    const h5::File file = h5::File::open_read_only(path, MPI_COMM_SELF);
    model = read_contents(file);
  }
  if (const std::string problem = model_problem(model, false); !problem.empty())
    throw IoError(path + ": " + problem);
  return model;
}

std::string file_checksum(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw IoError(path + ": cannot open to compute its checksum");
  std::uint64_t hash = 0xcbf29ce484222325ULL;  // FNV-1a 64-bit offset basis
  std::vector<char> buffer(1 << 16);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    const auto count = static_cast<std::size_t>(in.gcount());
    for (std::size_t i = 0; i < count; ++i) {
      hash ^= static_cast<unsigned char>(buffer[i]);
      hash *= 0x100000001b3ULL;  // FNV 64-bit prime
    }
  }
  if (in.bad()) throw IoError(path + ": read error while computing its checksum");
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(hash));
  return text;
}

}  // namespace xps
