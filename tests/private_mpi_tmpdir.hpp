// Open MPI 4 puts every job's session directory under one path per host and user
// (/tmp/ompi.<host>.<uid>), creates it on start and removes it when the last job ends; two jobs
// starting at once race for it, and one fails in orte_init ("mkdir ... File exists";
// open-mpi/ompi#8510). ctest -j starts test processes at once, so each gets a directory of its
// own (orte_tmpdir_base), unless its launcher already gave it one
// (tests/private_mpi_tmpdir.sh).
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>
#include <system_error>

namespace xps::testing {

class PrivateMpiTmpdir {
public:
  PrivateMpiTmpdir() {
    if (std::getenv(variable) != nullptr) return;
    std::string pattern = "/tmp/xps-ompi-XXXXXX";  // short: Open MPI puts sockets under it
    if (mkdtemp(pattern.data()) == nullptr) return;  // no directory: Open MPI's default
    m_path = pattern;
    setenv(variable, m_path.c_str(), 1);
  }
  ~PrivateMpiTmpdir() {
    if (m_path.empty()) return;
    std::error_code ignored;
    std::filesystem::remove_all(m_path, ignored);
  }
  PrivateMpiTmpdir(const PrivateMpiTmpdir&) = delete;
  PrivateMpiTmpdir& operator=(const PrivateMpiTmpdir&) = delete;

private:
  static constexpr const char* variable = "OMPI_MCA_orte_tmpdir_base";
  std::string m_path;
};

}  // namespace xps::testing
