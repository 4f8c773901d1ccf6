// Counter-based random streams: every star (or other item) draws from its own stream, keyed by
// (seed, star index, purpose), so a star's values do not depend on which rank made it or on how
// many ranks there are. xoshiro256** seeded through SplitMix64; normals by Box-Muller, written here
// so that results do not depend on the standard library's distribution implementations.
#pragma once

#include <cmath>
#include <cstdint>
#include <numbers>

namespace xps {

enum class StreamPurpose : std::uint64_t {
  truth = 1,
  observation = 2,
  survey = 3,
  model_initialisation = 4,
  mixture_fit = 5,
  training_batches = 6
};

constexpr std::uint64_t splitmix64(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

class RandomStream {
public:
  RandomStream(std::uint64_t seed, std::uint64_t index, StreamPurpose purpose) {
    std::uint64_t mix = seed ^ (index * 0xd1b54a32d192ed03ULL) ^
                        (static_cast<std::uint64_t>(purpose) << 56);
    for (auto& word : m_state) word = splitmix64(mix);
  }

  std::uint64_t next() {
    const std::uint64_t result = rotl(m_state[1] * 5, 7) * 9;
    const std::uint64_t t = m_state[1] << 17;
    m_state[2] ^= m_state[0];
    m_state[3] ^= m_state[1];
    m_state[1] ^= m_state[2];
    m_state[0] ^= m_state[3];
    m_state[2] ^= t;
    m_state[3] = rotl(m_state[3], 45);
    return result;
  }

  // Uniform in (0, 1): never 0, so logarithms are safe.
  double uniform() { return (static_cast<double>(next() >> 11) + 0.5) * 0x1.0p-53; }
  double uniform(double low, double high) { return low + (high - low) * uniform(); }

  double normal() {
    if (m_has_spare) {
      m_has_spare = false;
      return m_spare;
    }
    const double radius = std::sqrt(-2.0 * std::log(uniform()));
    const double angle = 2.0 * std::numbers::pi * uniform();
    m_spare = radius * std::sin(angle);
    m_has_spare = true;
    return radius * std::cos(angle);
  }
  double normal(double mean, double sigma) { return mean + sigma * normal(); }
  double exponential(double mean) { return -mean * std::log(uniform()); }
  bool bernoulli(double probability) { return uniform() < probability; }

private:
  static constexpr std::uint64_t rotl(std::uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  std::uint64_t m_state[4] = {};
  double m_spare = 0;
  bool m_has_spare = false;
};

}  // namespace xps
