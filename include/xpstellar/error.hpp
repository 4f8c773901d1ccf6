// Error types shared by every stage. Input validation throws; it never asserts.
#pragma once

#include <stdexcept>
#include <string>

namespace xps {

// A problem with what the user gave us: a bad option, INI key or value. Drivers exit with 2.
class UsageError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// A file that cannot be read or written, or violates its contract. The message names the file.
class IoError : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

}  // namespace xps
