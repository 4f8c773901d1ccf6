// Prints A(lambda)/A(V) for both extinction laws at the project's 66 wavelengths (61 XP samples
// 392..992 nm, 2MASS J/H/Ks, unWISE W1/W2) and R_V in {2.5, 3.1, 4.0, 5.0}, one
// `law r_v wavelength_nm a_over_av` line each, for tests/integration/check_extinction.py.
#include <cstdio>
#include <exception>
#include <vector>

#include "xpstellar/extinction_curve.hpp"

int main() {
  try {
    std::vector<double> wavelengths_nm;
    for (int i = 0; i <= 60; ++i) wavelengths_nm.push_back(392.0 + 10.0 * i);
    for (double band_nm : {1235.0, 1662.0, 2159.0, 3352.6, 4602.8}) {
      wavelengths_nm.push_back(band_nm);
    }
    const struct {
      const char* name;
      xps::ExtinctionLaw law;
    } laws[] = {{"fitzpatrick99", xps::ExtinctionLaw::fitzpatrick99},
                {"ccm89", xps::ExtinctionLaw::ccm89}};
    for (const auto& law : laws) {
      for (double r_v : {2.5, 3.1, 4.0, 5.0}) {
        for (double wavelength : wavelengths_nm) {
          std::printf("%s %.17g %.17g %.17g\n", law.name, r_v, wavelength,
                      xps::extinction_a_over_av(law.law, wavelength, r_v));
        }
      }
    }
    return 0;
  } catch (const std::exception& error) {
    std::fprintf(stderr, "dump_extinction_curve: %s\n", error.what());
    return 1;
  }
}
