#!/usr/bin/python3
"""Cross-check xpstellar's Gaussian-mixture EM (DESIGN §1.5) against Debian's python3-sklearn.

Usage: check_gmm_vs_sklearn.py PATH/TO/fit_gmm WORK_DIR

Draws a fixed-seed, Kiel-diagram-like sample of (Teff [K], [Fe/H], logg): a curved main sequence,
a metallicity-dependent red-giant branch and a red clump, with scatter. Fits
sklearn.mixture.GaussianMixture(16, covariance_type='full', n_init=N_INIT) on the standardised
sample (its k-means init would otherwise see only Teff) and xpstellar's fit_gmm on the raw sample,
and fails unless our mean log-likelihood per point (original units) is at least sklearn's minus
TOLERANCE.
"""
import os
import subprocess
import sys
import time

import numpy as np

try:
    from sklearn.mixture import GaussianMixture
except ImportError:  # a test dependency; say so rather than fail obscurely
    print("check_gmm_vs_sklearn: python3-sklearn is not installed", file=sys.stderr)
    sys.exit(1)

COMPONENTS = 16
N_INIT = 3
TOLERANCE = 0.01
SEED = 20230817


def kiel_sample(rng, n):
    n_ms, n_rgb = int(0.6 * n), int(0.28 * n)
    n_rc = n - n_ms - n_rgb
    # Main sequence: logg falls and bends towards the turn-off.
    teff = rng.uniform(3900.0, 7200.0, n_ms)
    t = (teff - 3900.0) / 3300.0
    ms = np.column_stack([teff + rng.normal(0, 60, n_ms),
                          rng.normal(-0.15, 0.3, n_ms),
                          4.75 - 0.35 * t - 0.35 * t ** 3 + rng.normal(0, 0.08, n_ms)])
    # Red-giant branch: metal-poor giants are hotter at the same logg.
    feh = rng.normal(-0.35, 0.4, n_rgb)
    logg = rng.uniform(0.8, 3.6, n_rgb)
    rgb = np.column_stack([4000.0 + 330.0 * (logg - 0.8) - 250.0 * feh + rng.normal(0, 70, n_rgb),
                           feh, logg + rng.normal(0, 0.07, n_rgb)])
    rc = np.column_stack([rng.normal(4780.0, 90.0, n_rc), rng.normal(-0.1, 0.2, n_rc),
                          rng.normal(2.45, 0.08, n_rc)])
    sample = np.vstack([ms, rgb, rc])
    return sample[rng.permutation(n)]


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    fit_gmm, work = sys.argv[1], sys.argv[2]
    os.makedirs(work, exist_ok=True)
    points = kiel_sample(np.random.default_rng(SEED), 20000)
    path = os.path.join(work, "kiel_points.csv")
    np.savetxt(path, points, delimiter=",", fmt="%.17g", header="teff,feh,logg")

    start = time.time()
    out = subprocess.run([fit_gmm, path, str(COMPONENTS), str(N_INIT), "1"],
                         check=True, capture_output=True, text=True).stdout
    ours = float(out.split()[1])
    ours_s = time.time() - start

    centre, scale = points.mean(axis=0), points.std(axis=0)
    start = time.time()
    sk = GaussianMixture(COMPONENTS, covariance_type="full", n_init=N_INIT, max_iter=300,
                         tol=3e-5, random_state=0).fit((points - centre) / scale)
    theirs = sk.score((points - centre) / scale) - np.log(scale).sum()
    sk_s = time.time() - start

    print(f"mean ln L per point: xpstellar {ours:.5f} ({ours_s:.1f} s), "
          f"sklearn {theirs:.5f} ({sk_s:.1f} s, converged={sk.converged_}), "
          f"difference {ours - theirs:+.5f}")
    if ours < theirs - TOLERANCE:
        print(f"FAIL: xpstellar is worse than sklearn by more than {TOLERANCE}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
