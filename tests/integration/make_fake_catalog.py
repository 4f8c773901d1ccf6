#!/usr/bin/python3
"""Writes a small fake survey for tests/integration/test_validate_tool.sh: star tables holding only
the datasets tools/validate.py reads, catalogs with known errors, and OUTDIR/injected.json with the
numbers validate.py must recover.

    OUTDIR/stars/stars_2_<pixel>.h5     two partitions
    OUTDIR/main/catalog_2_<pixel>.h5    both partitions (optimizer "fast")
    OUTDIR/compare/catalog_2_<pixel>.h5 the first partition only (optimizer "paper")
    OUTDIR/spectro/catalog_2_<pixel>.h5 both partitions, "spectrum-only" parallaxes

Estimates are truth + err * z. For single stars with quality_flags < 8, z in each (G bin,
parameter) is a Gaussian sample of scale --pull-scale drawn by stratified quantiles
(ndtri((k + 0.5) / n) in random order), so each bin's median is exactly 0 and its robust
standard deviation the scale to within O(1/n); the bin G 13-14 gets a bias of +0.5 in z. Binaries
and flagged stars get wide random noise (they must be left out of the pulls). The parallax-excess
bit 5 is set on an exact number of stars per group, and the compare catalogs' loss_opt differs
from the main one by a known array. The spectro catalogs' parallaxes differ from the measured ones
(minus the zero point) by z sqrt(err^2 + parallax_error^2), z stratified with scale
--consistency-scale over the fitted stars with quality_flags < 8 and parallax S/N > 10.

Usage: make_fake_catalog.py OUTDIR [--stars-per-partition 3000] [--pull-scale 1.1]
                            [--consistency-scale 1.3] [--seed 7]
"""
import argparse
import json
import os

import h5py
import numpy as np
from scipy.special import ndtri

LEVEL = 2
PIXELS = [5, 17]
G_EDGES = [8, 10, 12, 13, 14, 15, 16, 17, 18, 19, 21]
BIASED_BIN = 3                      # G 13-14
BIAS = 0.5                          # in sigma units
PARAMETERS = ["teff", "feh", "logg", "E", "parallax"]
BASE_ERROR = [0.05, 0.05, 0.08, 0.02, 0.04]   # catalog units (Teff kK) at G = 15
BIT5_SINGLES = 0.02
BIT5_Q_BINS = [(0.0, 0.5, 0.10), (0.5, 0.9, 0.40), (0.9, 1.0, 0.80)]
WALL_MAIN, WALL_COMPARE = 12.5, 80.0
ZERO_POINT = -0.017                 # mas, the catalogs' parallax_zero_point
EXCESS_Z = 3.0                      # validate.py's default binary-candidate threshold
MASS_RATIO_BINS = [(0.0, 0.5), (0.5, 0.9), (0.9, 1.0)]   # the last one includes q = 1
MASK = (1 << 64) - 1


def held_out_reference(source_id, fraction=0.2, salt=0):
    """The split as specified (scalar); validate.py has its own vectorised version."""
    z = (int(source_id) + salt * 0x9E3779B97F4A7C15 + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    z ^= z >> 31
    return (z >> 11) * 2.0**-53 < fraction


def robust_std(x):
    return float(1.4826 * np.median(np.abs(x - np.median(x))))


def make_partition(rng, pixel, n, offset):
    """Truth, measured columns and the catalog of one partition (dict of arrays)."""
    p = {}
    pix12 = pixel * 4 ** (12 - LEVEL) + rng.choice(4 ** (12 - LEVEL), n, replace=False)
    p["source_id"] = (pix12.astype(np.int64) << 35) + offset + np.arange(n)
    g_bin = rng.permutation(np.arange(n) % (len(G_EDGES) - 1))
    lo, hi = np.array(G_EDGES[:-1])[g_bin], np.array(G_EDGES[1:])[g_bin]
    p["g_bin"] = g_bin
    p["g"] = (lo + (hi - lo) * rng.uniform(0.02, 0.98, n)).astype(np.float32)
    p["is_binary"] = (rng.uniform(size=n) < 0.25).astype(np.uint8)
    q = np.zeros(n, dtype=np.float32)
    q[p["is_binary"] == 1] = rng.uniform(0.05, 1.0, int(p["is_binary"].sum()))
    q[np.flatnonzero(p["is_binary"] == 1)[:5]] = 1.0       # the closed end of the last q bin
    p["mass_ratio"] = q
    p["truth"] = np.stack([rng.uniform(3500, 8000, n), rng.uniform(-2, 0.5, n),
                           rng.uniform(1, 5, n), rng.uniform(0, 2, n),
                           rng.uniform(0.2, 5, n)], axis=1).astype(np.float32)
    labelled = rng.uniform(size=n) < 0.6
    p["label_teff"] = np.where(labelled, p["truth"][:, 0] + rng.normal(0, 50, n), np.nan).astype(np.float32)
    precise = rng.uniform(size=n) < 0.7                     # measured parallax S/N about 20-28
    plx = p["truth"][:, 4].astype(np.float64)
    error = np.where(precise, plx / 25, plx / 4)            # the other stars: S/N 2-6
    p["parallax_error"] = error.astype(np.float32)
    p["parallax_obs"] = (plx + error * rng.uniform(-2, 2, n)).astype(np.float32)
    p["precise"] = precise

    # Fit outcome and flags: 2 % not fitted, 3 % not converged, 6 % chi2 flag.
    u = rng.uniform(size=n)
    status = np.zeros(n, dtype=np.uint8)
    flags = np.zeros(n, dtype=np.uint8)
    status[u < 0.02] = 2
    flags[u < 0.02] |= 0x80
    not_converged = (u >= 0.02) & (u < 0.05)
    status[not_converged] = 1
    flags[not_converged] |= 0x40
    flags[(u >= 0.05) & (u < 0.11)] |= 0x08
    p["fit_status"], p["flags"] = status, flags
    return p


def set_bit5(rng, parts):
    """Bit 5 on an exact number of fitted precise stars per group (over both partitions), and on
    half of the imprecise fitted stars (which validate.py must not count)."""
    fitted = np.concatenate([p["fit_status"] <= 1 for p in parts])
    precise = np.concatenate([p["precise"] for p in parts])
    binary = np.concatenate([p["is_binary"] == 1 for p in parts])
    q = np.concatenate([p["mass_ratio"] for p in parts])
    flag = np.zeros(fitted.size, dtype=bool)
    expected = {}

    def choose(mask, fraction):
        members = np.flatnonzero(mask)
        k = int(round(fraction * members.size))
        flag[rng.choice(members, k, replace=False)] = True
        return {"n": int(members.size), "n_flagged": k, "fraction": k / members.size}

    expected["singles"] = choose(fitted & precise & ~binary, BIT5_SINGLES)
    expected["q_bins"] = []
    for lo, hi, fraction in BIT5_Q_BINS:
        in_bin = (q >= lo) & ((q <= hi) if hi >= 1.0 else (q < hi))
        expected["q_bins"].append(dict(choose(fitted & precise & binary & in_bin, fraction),
                                       q_lo=lo, q_hi=hi))
    n_bin = sum(e["n"] for e in expected["q_bins"])
    k_bin = sum(e["n_flagged"] for e in expected["q_bins"])
    expected["binaries"] = {"n": n_bin, "n_flagged": k_bin, "fraction": k_bin / n_bin}
    choose(fitted & ~precise, 0.5)
    start = 0
    for p in parts:
        n = p["fit_status"].size
        p["flags"][flag[start:start + n]] |= 0x20
        start += n
    return expected


def set_estimates(rng, parts, scale):
    """est = truth + err * z (catalog units), z stratified per (G bin, parameter) for the pull
    stars of both partitions together. Returns the injected overall robust pull std."""
    n_all = sum(p["g"].size for p in parts)
    g_bin = np.concatenate([p["g_bin"] for p in parts])
    single = np.concatenate([p["is_binary"] == 0 for p in parts])
    good = np.concatenate([p["flags"] < 8 for p in parts])
    fitted = np.concatenate([p["fit_status"] <= 1 for p in parts])
    nan_e = np.zeros(n_all, dtype=bool)       # a few pull stars without an E estimate
    nan_e[rng.choice(np.flatnonzero(single & good), 20, replace=False)] = True
    centre = (np.array(G_EDGES[:-1]) + np.array(G_EDGES[1:])) / 2
    err = np.stack([b * 10 ** (0.2 * (centre[g_bin] - 15)) for b in BASE_ERROR], axis=1)
    z = rng.normal(0, 3 * scale, (n_all, 5))   # binaries and flagged stars
    injected_std = {}
    for j, name in enumerate(PARAMETERS):
        pull_star = single & good & fitted & ~(nan_e if name == "E" else np.zeros_like(nan_e))
        for b in range(len(G_EDGES) - 1):
            members = np.flatnonzero(pull_star & (g_bin == b))
            quantiles = ndtri((rng.permutation(members.size) + 0.5) / members.size)
            z[members, j] = scale * quantiles + (BIAS if b == BIASED_BIN else 0.0)
        injected_std[name] = robust_std(z[pull_star, j])
    truth = np.concatenate([p["truth"] for p in parts]).astype(np.float64)
    truth[:, 0] /= 1000.0
    est = truth + err * z
    est[~fitted] = np.nan
    err = np.where(fitted[:, None], err, np.nan)
    est[nan_e, 3] = np.nan
    err[nan_e, 3] = np.nan
    start = 0
    for p in parts:
        n = p["g"].size
        p["est"] = est[start:start + n].astype(np.float32)
        p["err"] = err[start:start + n].astype(np.float32)
        start += n
    errors = {name: [float(err_b) for err_b in BASE_ERROR[j] * 10 ** (0.2 * (centre - 15))]
              for j, name in enumerate(PARAMETERS)}
    return injected_std, errors


def spectro_partitions(rng, parts, scale):
    """Copies of the partitions whose parallax estimates are measured - zp + z sqrt(err^2 + error^2)
    on the consistency stars (z stratified, scale `scale`, all partitions together); the count, and
    how many of them have z > EXCESS_Z (as stored, float32) among singles, binaries and their
    mass-ratio bins."""
    spectro = [dict(p, est=p["est"].copy()) for p in parts]
    measured = np.concatenate([p["parallax_obs"].astype(np.float64) - ZERO_POINT for p in parts])
    measured_error = np.concatenate([p["parallax_error"].astype(np.float64) for p in parts])
    est = np.concatenate([p["est"] for p in parts]).astype(np.float64)
    err = np.concatenate([p["err"] for p in parts]).astype(np.float64)
    usable = (np.concatenate([(p["fit_status"] <= 1) & (p["flags"] < 8) for p in parts])
              & np.isfinite(err[:, 4]) & (measured / measured_error > 10))
    members = np.flatnonzero(usable)
    z = scale * ndtri((rng.permutation(members.size) + 0.5) / members.size)
    est[members, 4] = measured[members] + z * np.sqrt(err[members, 4] ** 2 + measured_error[members] ** 2)
    start = 0
    for p in spectro:
        n = p["g"].size
        p["est"] = est[start:start + n].astype(np.float32)
        start += n
    stored = np.concatenate([p["est"][:, 4] for p in spectro]).astype(np.float64)
    z_stored = (stored - measured) / np.sqrt(err[:, 4] ** 2 + measured_error ** 2)
    candidate = np.zeros(stored.size, dtype=bool)
    candidate[members] = z_stored[members] > EXCESS_Z
    binary = np.concatenate([p["is_binary"] == 1 for p in parts])
    q = np.concatenate([p["mass_ratio"] for p in parts])
    excess = {"singles": int((candidate & ~binary).sum()), "binaries": int((candidate & binary).sum()),
              "q_bins": [int((candidate & binary & (q >= lo) & ((q <= hi) if hi >= 1.0 else (q < hi)))
                             .sum()) for lo, hi in MASS_RATIO_BINS]}
    return spectro, int(members.size), excess


def write_star_table(path, p):
    with h5py.File(path, "w") as f:
        f["stars/source_id"] = p["source_id"]
        f["stars/phot_g_mean_mag"] = p["g"]
        f["stars/parallax"] = p["parallax_obs"]
        f["stars/parallax_error"] = p["parallax_error"]
        f["stars/labels/teff"] = p["label_teff"]
        for j, name in enumerate(PARAMETERS):
            f["truth/" + name] = p["truth"][:, j]
        f["truth/mass_ratio"] = p["mass_ratio"]
        f["truth/is_binary"] = p["is_binary"]


def write_catalog(path, p, loss, status, optimizer, wall, parallax_spectro=None):
    n = p["source_id"].size
    fitted = status <= 1
    with h5py.File(path, "w") as f:
        c = f.create_group("catalog")
        c["gdr3_source_id"] = p["source_id"]
        c["ra"] = np.zeros(n)
        c["dec"] = np.zeros(n)
        c["stellar_params_est"] = p["est"] if optimizer == "fast" else np.where(
            fitted[:, None], p["est"], np.nan).astype(np.float32)
        c["stellar_params_err"] = p["err"]
        for name in ("chi2_opt", "ln_prior", "chi2_dof", "xi_est", "teff_confidence",
                     "feh_confidence", "logg_confidence"):
            c[name] = np.full(n, np.nan, dtype=np.float32)
        c["quality_flags"] = p["flags"] if optimizer == "fast" else np.where(
            fitted, p["flags"], 0x80).astype(np.uint8)
        c["stellar_params_icov_triu"] = np.full((n, 15), np.nan, dtype=np.float32)
        c["stellar_params_cov_triu"] = np.full((n, 15), np.nan, dtype=np.float32)
        c["loss_opt"] = loss
        c["fit_status"] = status
        c["iterations"] = np.full(n, 20, dtype=np.int32)
        c["bands_used"] = np.full(n, 66, dtype=np.uint8)
        if parallax_spectro is not None:  # (value, error): xps_infer's columns since 2026-12-06
            c["parallax_spectro"], c["parallax_spectro_error"] = parallax_spectro
        c.attrs["parallax_zero_point"] = ZERO_POINT
        c.attrs["optimizer"] = optimizer
        c.attrs["model_file"] = "fake_model.h5"
        c.attrs["model_checksum"] = "0123456789abcdef"
        c.attrs["wall_seconds"] = wall


def loss_expected(d):
    return {"n": int(d.size), "median": float(np.median(d)), "p99": float(np.percentile(d, 99)),
            "fraction_main_lower": float(np.mean(d < 0))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output")
    parser.add_argument("--stars-per-partition", type=int, default=3000)
    parser.add_argument("--pull-scale", type=float, default=1.1)
    parser.add_argument("--consistency-scale", type=float, default=1.3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    parts = [make_partition(rng, pixel, args.stars_per_partition, 1000 * i)
             for i, pixel in enumerate(PIXELS)]
    bit5 = set_bit5(rng, parts)
    injected_std, errors = set_estimates(rng, parts, args.pull_scale)

    spectro, n_consistency, excess = spectro_partitions(rng, parts, args.consistency_scale)

    for sub in ("stars", "main", "compare", "spectro"):
        os.makedirs(os.path.join(args.output, sub), exist_ok=True)
    # Losses: main everywhere; compare (first partition only) = main - d on stars fitted in both,
    # d mostly about -0.1 (main lower) with a 3 % tail up to +0.5; some stars fitted only in main.
    # Stars without a fit get a finite loss of 0 (only fit_status tells them apart).
    loss_main = [np.where(p["fit_status"] <= 1, 100 + 50 * rng.uniform(size=p["g"].size), 0.0)
                 for p in parts]
    first = parts[0]
    n = first["g"].size
    compare_status = first["fit_status"].copy()
    compare_status[(compare_status <= 1) & (rng.uniform(size=n) < 0.02)] = 6
    d = np.where(rng.uniform(size=n) < 0.97, rng.normal(-0.1, 0.02, n), rng.uniform(0, 0.5, n))
    both = (first["fit_status"] <= 1) & (compare_status <= 1)
    loss_compare = np.where(compare_status <= 1, loss_main[0] - d, 0.0)

    for p, s, loss, pixel in zip(parts, spectro, loss_main, PIXELS):
        write_star_table(os.path.join(args.output, "stars", f"stars_{LEVEL}_{pixel}.h5"), p)
        # the main catalogs carry the spectro catalogs' parallaxes as their parallax_spectro
        write_catalog(os.path.join(args.output, "main", f"catalog_{LEVEL}_{pixel}.h5"), p, loss,
                      p["fit_status"], "fast", WALL_MAIN, (s["est"][:, 4], s["err"][:, 4]))
    for p, loss, pixel in zip(spectro, loss_main, PIXELS):
        write_catalog(os.path.join(args.output, "spectro", f"catalog_{LEVEL}_{pixel}.h5"), p, loss,
                      p["fit_status"], "fast", WALL_MAIN)
    write_catalog(os.path.join(args.output, "compare", f"catalog_{LEVEL}_{PIXELS[0]}.h5"), first,
                  loss_compare, compare_status, "paper", WALL_COMPARE)
    # The differences as validate.py computes them (from the stored float64 losses).
    d_stored = (loss_main[0] - loss_compare)[both]
    usable = (first["flags"] < 8)[both]  # quality_flags < 8 in both sets (the same flags where fitted)

    ids = np.concatenate([p["source_id"] for p in parts])
    labelled = np.concatenate([np.isfinite(p["label_teff"]) for p in parts])
    n_validation = {str(salt): int(sum(held_out_reference(i, 0.2, salt)
                                       for i in ids[labelled])) for salt in (0, 5)}
    injected = {
        "n_stars": int(ids.size), "n_labelled": int(labelled.sum()),
        "n_validation": n_validation, "pull_scale": args.pull_scale,
        "injected_robust_std": injected_std, "g_edges": G_EDGES,
        "biased_bin": [G_EDGES[BIASED_BIN], G_EDGES[BIASED_BIN + 1]], "bias": BIAS,
        "errors": errors, "bit5": bit5,
        "loss": loss_expected(d_stored), "loss_swapped": loss_expected(-d_stored),
        "loss_usable": loss_expected(d_stored[usable]),
        "wall": {"main_seconds": WALL_MAIN * len(PIXELS), "compare_seconds": WALL_COMPARE},
        "consistency": {"scale": args.consistency_scale, "n_all_stars": n_consistency,
                        "excess_z": EXCESS_Z, "excess": excess},
    }
    with open(os.path.join(args.output, "injected.json"), "w") as handle:
        json.dump(injected, handle, indent=1)
    print(f"make_fake_catalog: {ids.size} stars in {len(PIXELS)} partitions under {args.output}")


if __name__ == "__main__":
    main()
