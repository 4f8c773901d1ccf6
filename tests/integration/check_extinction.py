#!/usr/bin/python3
"""Cross-check xpstellar's extinction curves against Debian's python3-extinction (K. Barbary).

Usage: check_extinction.py PATH/TO/dump_extinction_curve

Runs the dump program, evaluates extinction.fitzpatrick99 and extinction.ccm89 (with A_V = 1,
wavelengths in Angstroms) at the same points and fails if any relative difference exceeds
TOLERANCE. CCM89 is compared at all 66 wavelengths: beyond its published range (x = 1/lambda[um]
< 0.3, the unWISE bands) both the C++ code and python3-extinction 0.4.6 extrapolate the IR power
law. Should a package version reject x < 0.3 (returning NaN or raising), those points are skipped.
"""
import subprocess
import sys

import numpy as np

try:
    import extinction
except ImportError:  # the package is a test dependency; say so rather than fail obscurely
    print("check_extinction: python3-extinction is not installed", file=sys.stderr)
    sys.exit(1)

TOLERANCE = 1e-6
EXPECTED_LINES = 2 * 4 * 66


def reference(law, r_v, wavelength_nm):
    wave_aa = np.array([10.0 * wavelength_nm])
    if law == "fitzpatrick99":
        return float(extinction.fitzpatrick99(wave_aa, 1.0, r_v)[0])
    if law == "ccm89":
        try:
            value = float(extinction.ccm89(wave_aa, 1.0, r_v)[0])
        except ValueError:
            return None
        return value if np.isfinite(value) else None
    raise ValueError(f"unknown law {law!r}")


def main():
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    dump = subprocess.run([sys.argv[1]], check=True, capture_output=True, text=True).stdout
    lines = dump.split("\n")
    lines = [line for line in lines if line.strip()]
    if len(lines) != EXPECTED_LINES:
        print(f"check_extinction: expected {EXPECTED_LINES} lines, got {len(lines)}",
              file=sys.stderr)
        return 1

    worst = {}
    failures = 0
    compared = 0
    for line in lines:
        law, r_v, wavelength_nm, ours = line.split()
        r_v, wavelength_nm, ours = float(r_v), float(wavelength_nm), float(ours)
        theirs = reference(law, r_v, wavelength_nm)
        if theirs is None:
            continue
        compared += 1
        rel = abs(ours - theirs) / abs(theirs)
        if rel > worst.get(law, (-1.0,))[0]:
            worst[law] = (rel, r_v, wavelength_nm, ours, theirs)
        if not rel <= TOLERANCE:
            failures += 1
            print(f"MISMATCH {law} R_V={r_v} {wavelength_nm} nm: ours {ours!r} "
                  f"python {theirs!r} rel {rel:.3e}")
    for law, (rel, r_v, wavelength_nm, ours, theirs) in sorted(worst.items()):
        print(f"{law}: max relative difference {rel:.3e} at R_V={r_v}, {wavelength_nm} nm "
              f"(ours {ours!r}, python {theirs!r})")
    print(f"compared {compared} values, {failures} above tolerance {TOLERANCE:g}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
