"""Damages chosen training stars of a mock star table in place, one kind of bad input per star,
and prints the expected exclusion counts. The stars are picked among labelled stars outside the
validation split, which is recomputed here independently (SplitMix64 of source_id, DESIGN §1.4)."""
import sys
import h5py
import numpy as np

MASK = (1 << 64) - 1


def held_out(source_id, fraction=0.2, salt=0):
    z = (int(source_id) + salt * 0x9E3779B97F4A7C15 + 0x9E3779B97F4A7C15) & MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    z ^= z >> 31
    return (z >> 11) * 2.0**-53 < fraction


path = sys.argv[1]
with h5py.File(path, "r+") as f:
    s = f["stars"]
    teff = s["labels/teff"][:]
    candidates = [i for i, sid in enumerate(s["source_id"][:]) if np.isfinite(teff[i]) and not held_out(sid)]
    assert len(candidates) >= 12, "need 12 training candidates in " + path
    m = f["meta/wavelength_nm"].shape[0]
    diagonal = [i * m - i * (i - 1) // 2 for i in range(m)]
    flux, cov = s["flux"][:], s["flux_cov"][:]
    labels_teff, parallax = s["labels/teff"][:], s["parallax"][:]
    c = iter(candidates)
    for _ in range(2):  # absurd labels
        labels_teff[next(c)] = 1e6
    for _ in range(2):  # bad parallax
        parallax[next(c)] = np.nan
    for _ in range(3):  # NaN flux in a present band
        flux[next(c), 10] = np.nan
    for _ in range(2):  # non-positive variance
        cov[next(c), diagonal[5]] = -1.0
    for _ in range(3):  # covariance far from positive semidefinite
        i = next(c)
        cov[i, diagonal[3] + 1] = 50 * np.sqrt(cov[i, diagonal[3]] * cov[i, diagonal[4]])
    s["flux"][...], s["flux_cov"][...] = flux, cov
    s["labels/teff"][...], s["parallax"][...] = labels_teff, parallax
print("absurd labels: 2")
print("bad parallax: 2")
print("non-finite flux: 3")
print("non-positive variance: 2")
print("covariance not positive semidefinite: 3")
