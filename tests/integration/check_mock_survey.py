#!/usr/bin/python3
"""Checks a mock survey directory with libraries independent of ours (healpy, h5py, numpy,
python3-extinction). Usage: check_mock_survey.py DIR"""
import glob
import math
import os
import re
import sys

import extinction
import h5py
import healpy
import numpy as np

REQUIRED = {
    "stars/source_id": np.int64, "stars/ra": np.float64, "stars/dec": np.float64,
    "stars/flux": np.float32, "stars/flux_cov": np.float32, "stars/parallax": np.float32,
    "stars/parallax_error": np.float32, "stars/phot_g_mean_mag": np.float32,
    "stars/bp_rp": np.float32, "stars/ruwe": np.float32, "stars/fidelity_v2": np.float32,
    "stars/norm_dg": np.float32, "stars/phot_bp_rp_excess_factor": np.float32,
    "stars/labels/teff": np.float32, "stars/labels/E_prior_err": np.float32,
    "truth/teff": np.float32, "truth/logg": np.float32, "truth/feh": np.float32,
    "truth/E": np.float32, "truth/parallax": np.float32, "truth/mass_ratio": np.float32,
    "truth/xi": np.float32, "truth/is_binary": np.uint8, "meta/wavelength_nm": np.float64,
    "truth/meta/extinction_R": np.float64,
}


def fail(message):
    sys.exit("FAIL: " + message)


def check_file(path, level):
    pixel = int(re.match(r"stars_(\d+)_(\d+)\.h5", os.path.basename(path)).group(2))
    with h5py.File(path, "r") as f:
        for name, dtype in REQUIRED.items():
            if name not in f:
                fail(f"{path}: {name} missing")
            if f[name].dtype != dtype:
                fail(f"{path}: {name} has dtype {f[name].dtype}, expected {np.dtype(dtype)}")
        meta = f["meta"].attrs
        if int(meta["schema_version"]) != 1 or int(meta["healpix_level"]) != level \
                or int(meta["healpix_pixel"]) != pixel:
            fail(f"{path}: /meta attributes disagree with the file name")
        if "1e-18" not in str(meta["flux_unit"]):
            fail(f"{path}: flux_unit attribute is {meta['flux_unit']}")
        source_id = f["stars/source_id"][...]
        ra, dec = f["stars/ra"][...], f["stars/dec"][...]
        pixel12 = healpy.ang2pix(4096, ra, dec, nest=True, lonlat=True)
        if not np.array_equal(source_id >> 35, pixel12):
            fail(f"{path}: source_id >> 35 disagrees with healpy's level-12 pixel of ra/dec")
        if not np.all(healpy.ang2pix(2 ** level, ra, dec, nest=True, lonlat=True) == pixel):
            fail(f"{path}: a star lies outside the file's partition")
        running = source_id & ((1 << 35) - 1)
        if not np.all(np.diff(running) > 0):
            fail(f"{path}: rows are not in survey order")
        flux, packed = f["stars/flux"][...], f["stars/flux_cov"][...]
        bands = flux.shape[1]
        upper = np.triu_indices(bands)
        for row in range(len(flux)):
            cov = np.zeros((bands, bands))
            cov[upper] = packed[row]
            cov = cov + np.triu(cov, 1).T
            present = np.isfinite(flux[row])
            if np.isnan(cov[np.ix_(present, present)]).any():
                fail(f"{path}: NaN covariance among present bands, row {row}")
            if not np.isnan(cov[~present]).all():
                fail(f"{path}: a missing band has finite covariance, row {row}")
            np.linalg.cholesky(cov[np.ix_(present, present)])  # raises if not positive definite
        wavelength = f["meta/wavelength_nm"][...]
        curve = f["truth/meta/extinction_R"][...]
        expected = 0.4 * math.log(10) * 3.1 * extinction.fitzpatrick99(wavelength * 10.0, 1.0, 3.1)
        if np.max(np.abs(curve / expected - 1)) > 1e-6:
            fail(f"{path}: truth extinction curve differs from python3-extinction's F99")
        return len(source_id), int(f["truth/is_binary"][...].sum()), \
            int(np.isfinite(f["stars/labels/teff"][...]).sum())


def main():
    directory = sys.argv[1]
    files = sorted(glob.glob(os.path.join(directory, "stars_*_*.h5")))
    if not files:
        fail(f"no star tables in {directory}")
    level = int(re.match(r"stars_(\d+)_", os.path.basename(files[0])).group(1))
    totals = np.sum([check_file(path, level) for path in files], axis=0)
    stars, binaries, labelled = (int(x) for x in totals)
    if not 0.15 < binaries / stars < 0.25:
        fail(f"binary fraction {binaries / stars:.3f}")
    print(f"ok: {len(files)} files, {stars} stars, {binaries} binaries, {labelled} labelled; "
          "pixels agree with healpy, covariances positive definite, truth curve = F99")


if __name__ == "__main__":
    main()
