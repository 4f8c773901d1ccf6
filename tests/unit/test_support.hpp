// Small helpers shared by the unit tests.
#pragma once

#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

namespace xps::test {

// Writes `text` to a file of that name in the temporary directory and returns its path.
inline std::string write_temp_file(const std::string& name, const std::string& text) {
  const auto path = std::filesystem::temp_directory_path() / name;
  std::ofstream(path) << text;
  return path.string();
}

// The message of the `Error` that `action` throws, or "" if it throws none.
template <class Error>
std::string error_message(const std::function<void()>& action) {
  try {
    action();
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

}  // namespace xps::test
