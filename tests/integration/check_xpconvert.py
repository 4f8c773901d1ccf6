#!/usr/bin/env python3
"""Checks xps_xpconvert outputs (HDF5) against GaiaXPy's reference files and against an
independent evaluation written here with numpy/scipy (scipy.interpolate.splrep/splev as GaiaXPy
uses them, Hermite functions, GaiaXPy's merge and covariance rules).

    check_xpconvert.py reference OUT.h5 REFERENCE_PREFIX
        REFERENCE_PREFIX_{392_992_10.csv, 392_992_10_cov.csv}: GaiaXPy's own output.
    check_xpconvert.py independent OUT.h5 INPUT.csv CALIBRATION_DIR [--truncate] [--propagated]
        Recomputes every source of INPUT.csv on OUT.h5's wavelength grid.

Tolerances (issue): flux and flux_error 1e-6 relative; every covariance element 1e-5 relative
to sqrt(C_ii C_jj). NaN exactly where the reference has NaN (missing band). Exit 0 when all pass.
"""
import csv
import pathlib
import sys

import numpy as np

FLUX_TOLERANCE = 1e-6
COVARIANCE_TOLERANCE = 1e-5
csv.field_size_limit(10**8)


def read_output(path):
    import h5py
    with h5py.File(path, "r") as f:
        return {k: f[k][()] for k in ("source_id", "wavelength_nm", "flux", "flux_error", "flux_cov")}


def number(text):
    return float(text) if text.strip() else np.nan


class Failures:
    def __init__(self):
        self.messages = []
        self.worst = {"flux": 0.0, "flux_error": 0.0, "flux_cov": 0.0}

    def compare(self, label, source_id, ours, theirs, scale, tolerance):
        nan_ours, nan_theirs = np.isnan(ours), np.isnan(theirs)
        if not np.array_equal(nan_ours, nan_theirs):
            self.messages.append(f"{source_id} {label}: NaN at {np.argwhere(nan_ours != nan_theirs)[:5].tolist()}")
            return
        ok = ~nan_theirs
        if not ok.any():
            return
        error = np.max(np.abs(ours[ok] - theirs[ok]) / scale[ok])
        self.worst[label] = max(self.worst[label], error)
        if not error <= tolerance:
            self.messages.append(f"{source_id} {label}: max relative error {error:.3g} > {tolerance:g}")

    def compare_source(self, source_id, out, row, flux, flux_error, covariance):
        self.compare("flux", source_id, out["flux"][row], flux, np.abs(flux), FLUX_TOLERANCE)
        self.compare("flux_error", source_id, out["flux_error"][row], flux_error, flux_error, FLUX_TOLERANCE)
        diagonal = np.diag(covariance)
        self.compare("flux_cov", source_id, out["flux_cov"][row], covariance,
                     np.sqrt(np.outer(diagonal, diagonal)), COVARIANCE_TOLERANCE)

    def finish(self, what):
        print(f"{what}: max relative errors flux {self.worst['flux']:.2e}, flux_error "
              f"{self.worst['flux_error']:.2e}, flux_cov {self.worst['flux_cov']:.2e}")
        for message in self.messages:
            print("FAIL:", message)
        return 1 if self.messages else 0


# ---- against GaiaXPy's reference files ---------------------------------------------------------

def check_reference(output, prefix):
    out = read_output(output)
    m = len(out["wavelength_nm"])
    fluxes, covariances = {}, {}
    with open(f"{prefix}_392_992_10.csv") as f:
        for r in csv.DictReader(f):
            fluxes.setdefault(int(r["source_id"]), []).append(
                (number(r["wavelength_nm"]), number(r["flux"]), number(r["flux_error"])))
    with open(f"{prefix}_392_992_10_cov.csv") as f:
        for r in csv.DictReader(f):
            matrix = covariances.setdefault(int(r["source_id"]), np.full((m, m), np.nan))
            i, j = int(r["i"]), int(r["j"])
            matrix[i, j] = matrix[j, i] = number(r["cov"])
    failures = Failures()
    if sorted(fluxes) != sorted(out["source_id"].tolist()):
        failures.messages.append(f"source_ids {sorted(out['source_id'].tolist())}, reference {sorted(fluxes)}")
    for row, source_id in enumerate(out["source_id"].tolist()):
        if source_id not in fluxes:
            continue
        reference = np.array(fluxes[source_id])
        if not np.allclose(reference[:, 0], out["wavelength_nm"]):
            failures.messages.append(f"{source_id}: wavelengths differ from the reference")
            continue
        failures.compare_source(source_id, out, row, reference[:, 1], reference[:, 2], covariances[source_id])
    return failures.finish(f"{output} vs {prefix}")


# ---- independent evaluation (GaiaXPy's algorithm, written afresh) ------------------------------

def parse_array(text):
    return np.array([float(x) for x in text.strip().strip("()[]").split(",")])


def load_model(directory, band):
    directory = pathlib.Path(directory)
    (dispersion_file,) = directory.glob(f"{band}*_dispersion.csv")
    (response_file,) = directory.glob(f"{band}*_response.csv")
    (bases_file,) = directory.glob(f"{band}*_bases.csv")
    with open(bases_file) as f:
        header, values = list(csv.reader(f))
    bases = dict(zip(header, values))
    n = int(bases["nBases"])
    return {
        "dispersion": np.genfromtxt(dispersion_file, delimiter=","),
        "response": np.genfromtxt(response_file, delimiter=","),
        "inverse": parse_array(bases["inverseBasesCoefficients"]).reshape(n, int(bases["nInverseBasesCoefficients"])),
        "transformation": parse_array(bases["transformationMatrix"]).reshape(n, int(bases["nTransformedBases"])),
        "ranges": [float(bases[k]) for k in ("pwlRangeMin", "pwlRangeMax", "normRangeMin", "normRangeMax")],
    }


def hermite_functions(count, x):
    """psi_n(x) for n < count from the closed form with numpy's physicists' Hermite polynomials
    (numerically fine for the |x| < 10 and n < 60 used here), not from the recursion."""
    from numpy.polynomial.hermite import hermval
    from scipy.special import gammaln
    values = np.empty((count, len(x)))
    for n in range(count):
        coefficients = np.zeros(n + 1)
        coefficients[n] = 1.0
        log_norm = -0.5 * (n * np.log(2.0) + gammaln(n + 1) + 0.5 * np.log(np.pi))
        values[n] = hermval(x, coefficients) * np.exp(log_norm - x ** 2 / 2)
    return values


def merge_weights(wavelength):
    low, high = 635.0, 643.0
    bp = np.where(wavelength < low, 1.0, np.where(wavelength > high, 0.0, 1.0 - (wavelength - low) / (high - low)))
    return {"bp": bp, "rp": 1.0 - bp}


def design_matrix(model, wavelength, weight):
    from scipy import interpolate
    pwl_min, pwl_max, norm_min, norm_max = model["ranges"]
    scale = (norm_max - norm_min) / (pwl_max - pwl_min)
    dispersion = interpolate.splrep(model["dispersion"][0], model["dispersion"][1], s=0)
    x = interpolate.splev(wavelength, dispersion) * scale + norm_min - pwl_min * scale
    hermite = hermite_functions(model["inverse"].shape[1], x) * (weight > 0)
    response = interpolate.splev(wavelength, interpolate.splrep(model["response"][0], model["response"][1], s=0))
    hc = 1e9 * 2.99792458e8 * 6.62607004e-34
    norm = np.where(response > 0, hc / (0.7278 * np.where(response > 0, response, 1.0) * wavelength), 0.0)
    return model["transformation"] @ (model["inverse"] @ hermite) * norm


def correlation_matrix(values, n):
    matrix = np.eye(n)
    matrix[np.tril_indices(n, -1)] = values  # row by row below the diagonal
    return matrix + np.tril(matrix, -1).T


def convert(row, wavelength, designs, truncate, propagated):
    weights = merge_weights(wavelength)
    bands = {}
    for band in ("bp", "rp"):
        if not row[f"{band}_coefficients"].strip():
            continue
        c = parse_array(row[f"{band}_coefficients"])
        e = parse_array(row[f"{band}_coefficient_errors"])
        sigma = float(row[f"{band}_standard_deviation"])
        C = np.diag(e / sigma) @ correlation_matrix(parse_array(row[f"{band}_coefficient_correlations"]), len(c)) @ np.diag(e / sigma)
        A = designs[band]
        if truncate and int(row[f"{band}_n_relevant_bases"]) > 0:
            k = int(row[f"{band}_n_relevant_bases"])
            A, C, c = A[:k], C[:k, :k], c[:k]
        sampled = A.T @ C @ A
        bands[band] = {"flux": c @ A, "error": np.sqrt(np.diag(sampled)) * sigma, "cov": sampled, "sigma": sigma}
    if len(bands) == 2:
        flux = sum(bands[b]["flux"] * weights[b] for b in bands)
        error = np.sqrt(sum(bands[b]["error"] ** 2 * weights[b] ** 2 for b in bands))
        if propagated:
            return flux, error, sum(np.outer(weights[b], weights[b]) * bands[b]["cov"] * bands[b]["sigma"] ** 2 for b in bands)
        merged = sum(bands[b]["cov"] * weights[b] for b in bands)  # GaiaXPy: columns only
    else:
        (band, values), = bands.items()
        flux, error, merged = values["flux"].copy(), values["error"].copy(), values["cov"].copy()
        masked = wavelength <= 635.0 if band == "rp" else wavelength >= 643.0
        flux[masked] = error[masked] = np.nan
        merged[:, masked] = np.nan
        merged[masked, :] = np.nan
    v = np.sqrt(np.diag(merged))
    correlation = merged / np.outer(v, v)
    correlation[merged == 0] = 0
    lower = np.tril(correlation, -1)  # GaiaXPy reports the lower triangle
    correlation = lower + lower.T + np.diag(np.diag(correlation))
    return flux, error, correlation * np.outer(error, error)


def check_independent(output, input_csv, calibration, truncate, propagated):
    out = read_output(output)
    wavelength = out["wavelength_nm"]
    weights = merge_weights(wavelength)
    designs = {b: design_matrix(load_model(calibration, b), wavelength, weights[b]) for b in ("bp", "rp")}
    row_of = {s: i for i, s in enumerate(out["source_id"].tolist())}
    failures = Failures()
    with open(input_csv) as f:
        for row in csv.DictReader(line for line in f if not line.startswith("#")):
            source_id = int(row["source_id"])
            if source_id not in row_of:
                failures.messages.append(f"{source_id} missing from {output}")
                continue
            flux, error, covariance = convert(row, wavelength, designs, truncate, propagated)
            failures.compare_source(source_id, out, row_of[source_id], flux, error, covariance)
    mode = ("truncated, " if truncate else "") + ("propagated" if propagated else "gaiaxpy")
    return failures.finish(f"{output} ({len(wavelength)} samples {wavelength[0]:g}..{wavelength[-1]:g} nm, "
                           f"{mode}) vs independent evaluation")


def main(argv):
    if len(argv) >= 3 and argv[0] == "reference":
        return check_reference(argv[1], argv[2])
    if len(argv) >= 4 and argv[0] == "independent":
        return check_independent(argv[1], argv[2], argv[3], "--truncate" in argv, "--propagated" in argv)
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
