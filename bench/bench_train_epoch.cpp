// Benchmark (issue 4): one training epoch of the model step (DESIGN §1.3, phase 1 of §1.4) on one
// core, to compare with a straightforward PyTorch implementation (tools/bench_torch_epoch.py).
// Per batch of 512 stars: forward the 3x32 tanh network, f_pred = f_abs parallax^2 exp(-E R) with
// R = exp(ln R), chi^2 = |L (f_pred - f_obs)|^2 with each star's own float32 whitening L, loss =
// mean chi^2 + (1/n_W) |W|^2, backward to W, b, ln R, then one SGD-with-momentum update. An epoch
// visits all stars in a shuffled order. The stars are mock-survey stars (truth + observation
// model), whitened with FluxWhitening as training would do at load time.
//
// Usage: bench_train_epoch [--stars N] [--epochs E] [--lr X] [--momentum M] [--seed S]
//                          [--dump DIR | --load DIR] [--check]
//   --dump DIR  writes the stars, the initial model, the epochs' orders, the hyper-parameters and
//               the measured losses and epoch times as .npy files + meta.json, for
//               tools/bench_torch_epoch.py
//   --load DIR  trains on a dump instead of making the stars (and rewrites DIR/meta.json); with
//               more --epochs than the dump holds, its orders are reused in turn
//   --check     only the loss check: first batch (unshuffled) before and after one step
#include <Eigen/Dense>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_support.hpp"
#include "xpstellar/bands.hpp"
#include "xpstellar/config.hpp"
#include "xpstellar/flux_model.hpp"
#include "xpstellar/flux_whitening.hpp"
#include "xpstellar/mock_survey.hpp"
#include "xpstellar/mpi_session.hpp"
#include "xpstellar/random_stream.hpp"

using xps::bench::clock_type;
using xps::bench::seconds_since;

namespace {

constexpr int band_count = static_cast<int>(xps::standard_band_count);
constexpr int batch_size = 512;

const char* string_option(int argc, char** argv, const char* name, const char* fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (!std::strcmp(argv[i], name)) return argv[i + 1];
  return fallback;
}

bool flag_option(int argc, char** argv, const char* name) {
  for (int i = 1; i < argc; ++i)
    if (!std::strcmp(argv[i], name)) return true;
  return false;
}

// The training set as training holds it after loading: per-star parameters and whitening.
struct SyntheticStars {
  Eigen::Index count = 0;
  Eigen::Matrix3Xd theta;        // Teff [K], [Fe/H], logg
  Eigen::VectorXd ln_parallax;   // ln(parallax / mas)
  Eigen::VectorXd ln_E;
  std::vector<float> whitening;  // [count x whitening_size(M)], L as training stores it
  std::vector<float> flux;       // flux_for_fit [count x M]
  Eigen::VectorXd extinction_R;  // the mock's curve at mean R_V (initial R)
};

// Mock stars in the training range (Teff 3500-8000 K, [Fe/H] -1..0.5, logg 1..5, no pathology),
// observed with realistic XP covariances and whitened with the paper's inflation.
SyntheticStars make_synthetic_stars(Eigen::Index count) {
  xps::ParameterSet parameters;
  xps::mock::declare_mock_parameters(parameters);
  const xps::mock::TruthModel truth(parameters);
  const xps::mock::ObservationModel observation(parameters, truth);
  const xps::FluxWhitening whitening(xps::standard_band_names(), xps::standard_wavelengths_nm(),
                                     xps::CovarianceInflation{});
  constexpr std::size_t m = xps::standard_band_count, mm = xps::whitening_size(m);
  SyntheticStars out;
  out.count = count;
  out.theta.resize(3, count);
  out.ln_parallax.resize(count);
  out.ln_E.resize(count);
  out.whitening.resize(static_cast<std::size_t>(count) * mm);
  out.flux.resize(static_cast<std::size_t>(count) * m);
  const auto curve = truth.extinction_R(truth.r_v_mean());
  out.extinction_R = Eigen::Map<const Eigen::VectorXd>(curve.data(), band_count);

  Eigen::Index filled = 0;
  std::int64_t next_index = 0;
  std::vector<xps::mock::TruthStar> chunk;
  xps::StarTable table;
  while (filled < count) {
    chunk.clear();
    while (chunk.size() < 4096 && filled + static_cast<Eigen::Index>(chunk.size()) < count) {
      xps::mock::TruthStar star = truth.draw(next_index++);
      const auto& p = star.primary;
      if (star.pathology == xps::mock::Pathology::none && p.teff >= 3500 && p.teff <= 8000 &&
          p.feh >= -1.0 && p.feh <= 0.5 && p.logg >= 1.0 && p.logg <= 5.0)
        chunk.push_back(star);
    }
    table = xps::mock::make_star_table(chunk, observation, truth, 1, 0, std::move(table));
    for (std::size_t row = 0; row < table.rows() && filled < count; ++row) {
      const std::size_t s = static_cast<std::size_t>(filled);
      const auto status = whitening.whiten(&table.flux[row * m],
                                           &table.flux_cov[row * xps::packed_triangle_size(m)],
                                           &out.whitening[s * mm], &out.flux[s * m]);
      if (status != xps::WhiteningStatus::ok) continue;
      out.theta.col(filled) << table.truth.teff[row], table.truth.feh[row], table.truth.logg[row];
      out.ln_parallax[filled] = std::log(double(table.truth.parallax[row]));
      out.ln_E[filled] = std::log(std::max(double(table.truth.E[row]), 1e-3));
      ++filled;
    }
  }
  return out;
}

// The trainable parameters and their SGD velocities: the network's W and b and ln R (R = exp ln R
// keeps the curve positive, DESIGN §1.4 "flat on ln R").
struct TrainState {
  xps::FluxModel model;
  Eigen::VectorXd ln_R;
  std::vector<Eigen::MatrixXd> velocity_weight;
  std::vector<Eigen::VectorXd> velocity_bias;
  Eigen::VectorXd velocity_ln_R;
};

void reset_velocity(TrainState& state) {
  state.velocity_weight.clear();
  state.velocity_bias.clear();
  for (const auto& w : state.model.network.weight)
    state.velocity_weight.push_back(Eigen::MatrixXd::Zero(w.rows(), w.cols()));
  for (const auto& b : state.model.network.bias)
    state.velocity_bias.push_back(Eigen::VectorXd::Zero(b.size()));
  state.velocity_ln_R = Eigen::VectorXd::Zero(state.ln_R.size());
}

TrainState make_train_state(const SyntheticStars& stars) {
  TrainState state;
  state.model.network = xps::FluxNetwork::initialise(3, 32, band_count, xps::Activation::tanh,
                                                     {5500, -0.2, 3.5}, {1500, 0.5, 1.2}, 1,
                                                     Eigen::VectorXd::Zero(band_count));
  state.ln_R = stars.extinction_R.array().log();
  state.model.extinction_R = stars.extinction_R;

  // The output layer by ridge least squares on the random hidden features (targets ln f_abs of
  // stars with positive fluxes in every band): a freshly initialised network predicts fluxes off by
  // orders of magnitude, chi^2 ~ 1e8 and SGD diverges at any learning rate; this start is like a
  // network part-way through training, where epochs are spent.
  std::vector<Eigen::Index> fit_stars;
  for (Eigen::Index s = 0; s < stars.count && fit_stars.size() < 20000; ++s) {
    const float* f = &stars.flux[static_cast<std::size_t>(s) * xps::standard_band_count];
    if (std::all_of(f, f + band_count, [](float x) { return x > 0; })) fit_stars.push_back(s);
  }
  const auto n = static_cast<Eigen::Index>(fit_stars.size());
  xps::StarBatch batch;
  batch.theta.resize(3, n);
  batch.ln_parallax.resize(n);
  batch.ln_E.resize(n);
  batch.xi = Eigen::VectorXd::Zero(n);
  Eigen::MatrixXd target(band_count, n);
  for (Eigen::Index b = 0; b < n; ++b) {
    const Eigen::Index s = fit_stars[std::size_t(b)];
    batch.theta.col(b) = stars.theta.col(s);
    batch.ln_parallax[b] = stars.ln_parallax[s];
    batch.ln_E[b] = stars.ln_E[s];
    const float* f = &stars.flux[static_cast<std::size_t>(s) * xps::standard_band_count];
    for (int k = 0; k < band_count; ++k)
      target(k, b) = std::log(double(f[k])) - 2.0 * stars.ln_parallax[s] +
                     std::exp(stars.ln_E[s]) * stars.extinction_R[k];
  }
  xps::FluxModelWorkspace work;
  xps::flux_model_forward(state.model, batch, work);
  const auto& hidden = work.activation.back();  // [width x n]
  Eigen::MatrixXd features(hidden.rows() + 1, n);
  features << hidden, Eigen::RowVectorXd::Ones(n);
  Eigen::MatrixXd normal = features * features.transpose();
  normal.diagonal().array() += 1e-2 * double(n);  // keeps W small: larger W makes SGD stiffer
  const Eigen::MatrixXd solution =
      normal.ldlt().solve(features * target.transpose()).transpose();  // [M x (width + 1)]
  auto& net = state.model.network;
  net.weight.back() = solution.leftCols(hidden.rows());
  net.bias.back() = solution.col(hidden.rows());

  reset_velocity(state);
  return state;
}

// SGD with momentum as torch.optim.SGD does it (no dampening, no Nesterov):
//   v <- momentum v + g,  p <- p - lr v   (v starts at 0, so the first step is p - lr g).
// `gradient` holds dLoss/dW, dLoss/db and, in extinction_R, dLoss/d ln R.
void sgd_momentum_step(TrainState& state, const xps::FluxModelGradient& gradient, double lr,
                       double momentum) {
  auto& net = state.model.network;
  for (std::size_t k = 0; k < net.weight.size(); ++k) {
    state.velocity_weight[k] = momentum * state.velocity_weight[k] + gradient.weight[k];
    net.weight[k] -= lr * state.velocity_weight[k];
    state.velocity_bias[k] = momentum * state.velocity_bias[k] + gradient.bias[k];
    net.bias[k] -= lr * state.velocity_bias[k];
  }
  state.velocity_ln_R = momentum * state.velocity_ln_R + gradient.extinction_R;
  state.ln_R -= lr * state.velocity_ln_R;
  state.model.extinction_R = state.ln_R.array().exp();
}

// Everything one model step reuses from batch to batch.
struct StepWorkspace {
  xps::StarBatch batch;
  xps::FluxModelWorkspace model;
  xps::FluxModelGradient gradient;
  Eigen::MatrixXd loss_flux_gradient;
};

// Loss of the batch `order[first, first + size)`; with `gradient`, also its gradient with respect
// to W, b and ln R into work.gradient.
double model_step_loss(const TrainState& state, const SyntheticStars& stars,
                       const std::int64_t* order, Eigen::Index size, StepWorkspace& work,
                       bool gradient) {
  constexpr std::size_t m = xps::standard_band_count;
  auto& batch = work.batch;
  if (batch.size() != size) {
    batch.theta.resize(3, size);
    batch.ln_parallax.resize(size);
    batch.ln_E.resize(size);
    batch.xi = Eigen::VectorXd::Zero(size);
    work.loss_flux_gradient.resize(band_count, size);
  }
  for (Eigen::Index b = 0; b < size; ++b) {
    const auto s = static_cast<Eigen::Index>(order[b]);
    batch.theta.col(b) = stars.theta.col(s);
    batch.ln_parallax[b] = stars.ln_parallax[s];
    batch.ln_E[b] = stars.ln_E[s];
  }
  xps::flux_model_forward(state.model, batch, work.model);
  double chi_square = 0;
  for (Eigen::Index b = 0; b < size; ++b) {
    const auto s = static_cast<std::size_t>(order[b]);
    if (b + 1 < size) {
      const auto next = static_cast<std::size_t>(order[b + 1]);
      xps::prefetch_whitening(&stars.whitening[next * xps::whitening_size(m)], &stars.flux[next * m], m);
    }
    chi_square += xps::whitened_chi_square(&stars.whitening[s * xps::whitening_size(m)], &stars.flux[s * m],
                                           work.model.flux.col(b).data(), band_count,
                                           gradient ? work.loss_flux_gradient.col(b).data()
                                                    : nullptr);
  }
  const auto& net = state.model.network;
  const double n_w = double(net.weight_count());
  double weight_square = 0;
  for (const auto& w : net.weight) weight_square += w.squaredNorm();
  if (gradient) {
    work.loss_flux_gradient /= double(size);  // the loss is the batch mean of chi^2
    work.gradient.reset_like(state.model);
    xps::flux_model_backward(state.model, batch, work.model, work.loss_flux_gradient,
                             &work.gradient, nullptr);
    for (std::size_t k = 0; k < net.weight.size(); ++k)
      work.gradient.weight[k] += (2.0 / n_w) * net.weight[k];
    // dLoss/d ln R = R . dLoss/dR
    work.gradient.extinction_R = work.gradient.extinction_R.cwiseProduct(state.model.extinction_R);
  }
  return chi_square / double(size) + weight_square / n_w;
}

// One epoch over `order` [N]; returns the mean of the batch losses.
double train_epoch(TrainState& state, const SyntheticStars& stars, const std::int64_t* order,
                   StepWorkspace& work, double lr, double momentum) {
  double loss_sum = 0;
  Eigen::Index batches = 0;
  for (Eigen::Index first = 0; first < stars.count; first += batch_size, ++batches) {
    const Eigen::Index size = std::min<Eigen::Index>(batch_size, stars.count - first);
    loss_sum += model_step_loss(state, stars, order + first, size, work, true);
    sgd_momentum_step(state, work.gradient, lr, momentum);
  }
  return loss_sum / double(batches);
}

// --- .npy output (NumPy format 1.0), so that the PyTorch side reads exactly our data ---------

[[noreturn]] void fail(const char* what, const std::filesystem::path& path) {
  throw std::runtime_error(std::string("bench_train_epoch: ").append(what).append(" ").append(
      path.string()));
}

void write_npy(const std::filesystem::path& path, const char* descr, const std::vector<long>& shape,
               bool fortran_order, const void* data, std::size_t bytes) {
  std::string header("{'descr': '");
  header.append(descr).append("', 'fortran_order': ").append(fortran_order ? "True" : "False");
  header.append(", 'shape': (");
  for (long n : shape) header.append(std::to_string(n)).append(", ");
  header.append("), }");
  const std::size_t unpadded = 10 + header.size() + 1;
  header.append((64 - unpadded % 64) % 64, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  const unsigned char magic[8] = {0x93, 'N', 'U', 'M', 'P', 'Y', 1, 0};
  out.write(reinterpret_cast<const char*>(magic), 8);
  const auto length = static_cast<std::uint16_t>(header.size());
  const unsigned char length_bytes[2] = {static_cast<unsigned char>(length & 0xff),
                                         static_cast<unsigned char>(length >> 8)};
  out.write(reinterpret_cast<const char*>(length_bytes), 2);
  out.write(header.data(), static_cast<std::streamsize>(header.size()));
  out.write(static_cast<const char*>(data), static_cast<std::streamsize>(bytes));
  if (!out) fail("cannot write", path);
}

void write_matrix(const std::filesystem::path& path, const Eigen::MatrixXd& a) {  // column-major
  write_npy(path, "<f8", {long(a.rows()), long(a.cols())}, true, a.data(),
            std::size_t(a.size()) * sizeof(double));
}
void write_vector(const std::filesystem::path& path, const Eigen::VectorXd& a) {
  write_npy(path, "<f8", {long(a.size())}, false, a.data(), std::size_t(a.size()) * sizeof(double));
}

// Reads a .npy file that write_npy wrote: checks the type and the element count, returns the
// shape. Enough for our own dumps, not a general reader.
std::vector<long> read_npy(const std::filesystem::path& path, const char* descr, void* data,
                           std::size_t element_bytes, std::size_t max_elements) {
  std::ifstream in(path, std::ios::binary);
  unsigned char prefix[10];
  in.read(reinterpret_cast<char*>(prefix), 10);
  if (!in || std::memcmp(prefix, "\x93NUMPY\x01", 7) != 0)
    fail("not a .npy 1.x file:", path);
  std::string header(std::size_t(prefix[8]) | std::size_t(prefix[9]) << 8, ' ');
  in.read(header.data(), static_cast<std::streamsize>(header.size()));
  if (header.find(std::string("'descr': '").append(descr)) == std::string::npos)
    fail(std::string("expected ").append(descr).append(" in").c_str(), path);
  std::vector<long> shape;
  std::size_t elements = 1;
  for (std::size_t at = header.find('(') + 1; at < header.size() && header[at] != ')';) {
    std::size_t used = 0;
    shape.push_back(std::stol(header.substr(at), &used));
    elements *= std::size_t(shape.back());
    at = header.find_first_not_of(", ", at + used);
  }
  if (elements > max_elements)
    fail("too many elements in", path);
  in.read(static_cast<char*>(data), static_cast<std::streamsize>(elements * element_bytes));
  if (!in) fail("short file", path);
  return shape;
}

long npy_rows(const std::filesystem::path& path) {  // first dimension, from the header only
  std::ifstream in(path, std::ios::binary);
  std::string text(256, ' ');
  in.read(text.data(), 256);
  const std::size_t at = text.find("'shape': (");
  if (!in || at == std::string::npos)
    throw std::runtime_error(std::string("bench_train_epoch: cannot read ").append(path.string()));
  return std::stol(text.substr(at + 10));
}

// The stars, initial model and epoch orders that dump_dataset wrote (repeated timings skip the
// minutes that making and whitening 100,000 mock stars takes); `orders` gets every stored epoch.
void load_dataset(const std::filesystem::path& dir, SyntheticStars& stars, TrainState& state,
                  std::vector<std::int64_t>& orders) {
  const long n = npy_rows(dir / "theta.npy");
  const std::size_t count = std::size_t(n), m = xps::standard_band_count;
  stars.count = n;
  stars.theta.resize(3, n);
  stars.ln_parallax.resize(n);
  stars.ln_E.resize(n);
  stars.flux.resize(count * m);
  stars.whitening.resize(count * xps::whitening_size(m));
  read_npy(dir / "theta.npy", "<f8", stars.theta.data(), 8, count * 3);
  read_npy(dir / "ln_parallax.npy", "<f8", stars.ln_parallax.data(), 8, count);
  read_npy(dir / "ln_E.npy", "<f8", stars.ln_E.data(), 8, count);
  read_npy(dir / "flux.npy", "<f4", stars.flux.data(), 4, count * m);
  {  // PyTorch reads the dense L; training stores the lower triangle
    std::vector<float> dense(count * m * m);
    read_npy(dir / "whitening.npy", "<f4", dense.data(), 4, dense.size());
    for (std::size_t s = 0; s < count; ++s)
      if (!xps::pack_whitening(&dense[s * m * m], m, &stars.whitening[s * xps::whitening_size(m)]))
        throw std::runtime_error((dir / "whitening.npy").string() + ": star " + std::to_string(s) +
                                 " has an L that is not lower triangular (a dump from before the "
                                 "triangular storage): make it again with --dump");
  }
  auto& net = state.model.network;
  net = xps::FluxNetwork::initialise(3, 32, band_count, xps::Activation::tanh, {0, 0, 0}, {1, 1, 1},
                                     1, Eigen::VectorXd::Zero(band_count));
  for (std::size_t k = 0; k < net.weight.size(); ++k) {
    const std::string layer = std::to_string(k);
    read_npy(dir / std::string("weight_").append(layer).append(".npy"), "<f8",
             net.weight[k].data(), 8, std::size_t(net.weight[k].size()));
    read_npy(dir / std::string("bias_").append(layer).append(".npy"), "<f8", net.bias[k].data(), 8,
             std::size_t(net.bias[k].size()));
  }
  read_npy(dir / "input_offset.npy", "<f8", net.input_offset.data(), 8, 3);
  read_npy(dir / "input_scale.npy", "<f8", net.input_scale.data(), 8, 3);
  state.ln_R.resize(band_count);
  read_npy(dir / "ln_R.npy", "<f8", state.ln_R.data(), 8, m);
  state.model.extinction_R = state.ln_R.array().exp();
  reset_velocity(state);
  orders.resize(std::size_t(npy_rows(dir / "order.npy")) * count);
  read_npy(dir / "order.npy", "<i8", orders.data(), 8, orders.size());
}

void dump_dataset(const std::filesystem::path& dir, const SyntheticStars& stars,
                  const TrainState& initial, const std::vector<std::int64_t>& orders, int epochs) {
  std::filesystem::create_directories(dir);
  const long n = long(stars.count), m = band_count;
  write_npy(dir / "theta.npy", "<f8", {n, 3}, false, stars.theta.data(), std::size_t(n) * 3 * 8);
  write_vector(dir / "ln_parallax.npy", stars.ln_parallax);
  write_vector(dir / "ln_E.npy", stars.ln_E);
  write_npy(dir / "flux.npy", "<f4", {n, m}, false, stars.flux.data(), stars.flux.size() * 4);
  std::vector<float> dense(std::size_t(n * m * m));  // PyTorch gathers the dense L
  for (std::size_t s = 0; s < std::size_t(n); ++s)
    xps::unpack_whitening(&stars.whitening[s * xps::whitening_size(std::size_t(m))], std::size_t(m),
                          &dense[s * std::size_t(m * m)]);
  write_npy(dir / "whitening.npy", "<f4", {n, m, m}, false, dense.data(), dense.size() * 4);
  const auto& net = initial.model.network;
  for (std::size_t k = 0; k < net.weight.size(); ++k) {
    const std::string layer = std::to_string(k);
    write_matrix(dir / std::string("weight_").append(layer).append(".npy"), net.weight[k]);
    write_vector(dir / std::string("bias_").append(layer).append(".npy"), net.bias[k]);
  }
  write_vector(dir / "ln_R.npy", initial.ln_R);
  write_vector(dir / "input_offset.npy", net.input_offset);
  write_vector(dir / "input_scale.npy", net.input_scale);
  write_npy(dir / "order.npy", "<i8", {long(epochs), n}, false, orders.data(), orders.size() * 8);
}

void write_meta(const std::filesystem::path& dir, int layers, double lr, double momentum,
                int epochs, const double check[2], const std::vector<double>& epoch_loss,
                const std::vector<double>& epoch_seconds) {
  std::ofstream out(dir / "meta.json");
  auto list = [&out](const std::vector<double>& v) {
    out << '[';
    for (std::size_t i = 0; i < v.size(); ++i) out << (i ? ", " : "") << v[i];
    out << ']';
  };
  out.precision(17);
  out << "{\"layers\": " << layers << ", \"batch\": " << batch_size << ", \"lr\": " << lr
      << ", \"momentum\": " << momentum << ", \"epochs\": " << epochs
      << ", \"activation\": \"tanh\", \"check_loss_before\": " << check[0]
      << ", \"check_loss_after\": " << check[1] << ", \"cpp_epoch_loss\": ";
  list(epoch_loss);
  out << ", \"cpp_epoch_seconds\": ";
  list(epoch_seconds);
  out << "}\n";
  if (!out) fail("cannot write meta.json in", dir);
}

}  // namespace

int main(int argc, char** argv) {
  if (xps::bench::help_requested(argc, argv,
                                  "Usage: bench_train_epoch [--stars N (100000)] [--epochs E (3)] [--lr X (1e-7)] [--momentum M (0.5)]\n"
    "                         [--seed S (1)] [--dump DIR | --load DIR] [--check]\n"
    "One training epoch of the model step on one core (batches of 512, 3x32 tanh network);\n"
    "--dump writes the stars and results for tools/bench_torch_epoch.py, --load re-times a dump,\n"
    "--check runs only the first-batch loss check.\n"))
    return 0;
  xps::MpiSession mpi(argc, argv);
  auto count = static_cast<Eigen::Index>(xps::bench::numeric_option(argc, argv, "--stars", 100000));
  int epochs = static_cast<int>(xps::bench::numeric_option(argc, argv, "--epochs", 3));
  const double lr = xps::bench::numeric_option(argc, argv, "--lr", 1e-7);
  const double momentum = xps::bench::numeric_option(argc, argv, "--momentum", 0.5);
  const auto seed = static_cast<std::uint64_t>(xps::bench::numeric_option(argc, argv, "--seed", 1));
  const std::string dump = string_option(argc, argv, "--dump", "");
  const std::string load = string_option(argc, argv, "--load", "");
  const bool check_only = flag_option(argc, argv, "--check");
  if (count < batch_size || epochs < 1 || (!dump.empty() && !load.empty())) {
    std::fprintf(stderr, "bench_train_epoch: need --stars >= %d, --epochs >= 1, not both --dump "
                 "and --load\n", batch_size);
    return 2;
  }

  SyntheticStars stars;
  TrainState state;
  std::vector<std::int64_t> orders;
  auto start = clock_type::now();
  if (!load.empty()) {
    load_dataset(load, stars, state, orders);
    count = stars.count;
  } else {
    stars = make_synthetic_stars(count);
    state = make_train_state(stars);
    // Every epoch's order, drawn up front so that the PyTorch side can replay it.
    orders.resize(static_cast<std::size_t>(epochs) * std::size_t(count));
    xps::RandomStream random(seed, 0, xps::StreamPurpose::survey);
    for (int e = 0; e < epochs; ++e) {
      std::int64_t* order = &orders[std::size_t(e) * std::size_t(count)];
      std::iota(order, order + count, std::int64_t{0});
      for (Eigen::Index i = count - 1; i > 0; --i)  // Fisher-Yates
        std::swap(order[i], order[static_cast<Eigen::Index>(random.next() % std::uint64_t(i + 1))]);
    }
  }
  const double setup_seconds = seconds_since(start);
  std::printf("bench_train_epoch: %td mock stars (%s in %.1f s), batch %d, 3x32 tanh -> %d bands, "
              "SGD lr %g momentum %g, one core\n",
              count, load.empty() ? "made and whitened" : "loaded", setup_seconds, batch_size,
              band_count, lr, momentum);

  // Loss check against the PyTorch side: first batch in star order, before and after one step.
  std::vector<std::int64_t> identity(static_cast<std::size_t>(count));
  std::iota(identity.begin(), identity.end(), std::int64_t{0});
  StepWorkspace work;
  double check[2];
  {
    TrainState probe = state;
    check[0] = model_step_loss(probe, stars, identity.data(), batch_size, work, true);
    sgd_momentum_step(probe, work.gradient, lr, momentum);
    check[1] = model_step_loss(probe, stars, identity.data(), batch_size, work, false);
  }
  std::printf("  check: first batch (stars 0-511) loss %.10e before, %.10e after one step\n",
              check[0], check[1]);
  if (!dump.empty()) dump_dataset(dump, stars, state, orders, epochs);
  const std::string meta_dir = dump.empty() ? load : dump;
  const int layers = state.model.network.layers();
  if (check_only) {
    if (!meta_dir.empty()) write_meta(meta_dir, layers, lr, momentum, epochs, check, {}, {});
    return 0;
  }

  std::vector<double> epoch_loss, epoch_seconds;
  for (int e = 0; e < epochs; ++e) {
    start = clock_type::now();
    // A loaded dump's orders are reused in turn when asked for more epochs than it holds.
    const std::size_t stored = orders.size() / std::size_t(count);
    const std::int64_t* order = &orders[std::size_t(e) % stored * std::size_t(count)];
    epoch_loss.push_back(train_epoch(state, stars, order, work, lr, momentum));
    epoch_seconds.push_back(seconds_since(start));
    std::printf("  epoch %d: %8.3f s  %10.0f star-gradients/s/core  mean batch loss %.10e\n", e + 1,
                epoch_seconds.back(), double(count) / epoch_seconds.back(), epoch_loss.back());
  }
  const double best = *std::min_element(epoch_seconds.begin(), epoch_seconds.end());
  std::printf("  best epoch %.3f s: %.0f star-gradients/s/core\n", best, double(count) / best);
  if (!meta_dir.empty())
    write_meta(meta_dir, layers, lr, momentum, epochs, check, epoch_loss, epoch_seconds);
  return 0;
}
