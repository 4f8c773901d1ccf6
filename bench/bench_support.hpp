// Shared by the benchmark programs: a wall clock and `--name VALUE` options.
#pragma once

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>

namespace xps::bench {

using clock_type = std::chrono::steady_clock;

inline double seconds_since(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

// True (after printing `usage`) when -h or --help is on the command line.
inline bool help_requested(int argc, char** argv, const char* usage) {
  for (int i = 1; i < argc; ++i)
    if (!std::strcmp(argv[i], "--help") || !std::strcmp(argv[i], "-h")) {
      std::cout << usage;
      return true;
    }
  return false;
}

// The number after `--name` on the command line, or `fallback`.
inline double numeric_option(int argc, char** argv, const char* name, double fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (!std::strcmp(argv[i], name)) return std::atof(argv[i + 1]);
  return fallback;
}

}  // namespace xps::bench
