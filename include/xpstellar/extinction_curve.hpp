// Parametrised interstellar extinction curves, A(lambda)/A(V) as a function of R_V.
// Fitzpatrick (1999, PASP 111, 63) and Cardelli, Clayton & Mathis (1989, ApJ 345, 245).
// Used by the mock's truth model; cross-checked against Debian's python3-extinction.
#pragma once

#include <string>

namespace xps {

// Fitzpatrick (1999): valid from 0.1 to 6 microns (wavelength in nm).
double extinction_fitzpatrick99(double wavelength_nm, double r_v);
// Cardelli, Clayton & Mathis (1989): valid from 0.1 to 3.33 microns; its infrared power law is
// extrapolated beyond (the WISE bands), as is common practice.
double extinction_ccm89(double wavelength_nm, double r_v);

enum class ExtinctionLaw { fitzpatrick99, ccm89 };
ExtinctionLaw parse_extinction_law(const std::string& name);  // "fitzpatrick99" | "ccm89"
double extinction_a_over_av(ExtinctionLaw law, double wavelength_nm, double r_v);

}  // namespace xps
