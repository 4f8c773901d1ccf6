"""Checks catalogs written by tests/tools/catalog_fixture against docs/catalog.md through h5py:
dataset names, dtypes, shapes, values (recomputed here with the fixture's formulas), units,
descriptions and /catalog attributes; then exports them with astropy to FITS, as users do for
TOPCAT, and reads that back.
Usage: check_catalog_python.py CATALOG ROWS EMPTY_CATALOG WORKDIR"""
import os
import sys
import warnings

import h5py
import numpy as np
from astropy.table import Table

# name: (dtype, values per row, unit); the order of docs/catalog.md.
COLUMNS = {
    "gdr3_source_id": (np.int64, 1, ""),
    "ra": (np.float64, 1, "deg"),
    "dec": (np.float64, 1, "deg"),
    "stellar_params_est": (np.float32, 5, "kK, dex, dex, mag, mas"),
    "stellar_params_err": (np.float32, 5, "kK, dex, dex, mag, mas"),
    "chi2_opt": (np.float32, 1, ""),
    "ln_prior": (np.float32, 1, ""),
    "teff_confidence": (np.float32, 1, ""),
    "feh_confidence": (np.float32, 1, ""),
    "logg_confidence": (np.float32, 1, ""),
    "quality_flags": (np.uint8, 1, ""),
    "stellar_params_icov_triu": (np.float32, 15, "1 / (unit_i unit_j)"),
    "stellar_params_cov_triu": (np.float32, 15, "unit_i unit_j"),
    "chi2_dof": (np.float32, 1, ""),
    "xi_est": (np.float32, 1, ""),
    "loss_opt": (np.float64, 1, ""),
    "parallax_spectro": (np.float32, 1, "mas"),
    "parallax_spectro_error": (np.float32, 1, "mas"),
    "fit_status": (np.uint8, 1, ""),
    "iterations": (np.int32, 1, ""),
    "bands_used": (np.uint8, 1, ""),
}
STRING_ATTRIBUTES = {
    "star_table": None,  # checked per file below
    "model_file": "model_fast.h5",
    "model_checksum": "0123456789abcdef",
    "optimizer": "fast",
    "config_text": "[inference]\noptimizer = fast\n# Teff in kK, σ_ϖ in mas\n",
    "code_version": "0.1.0-fixture",
    "parameter_names": "teff,feh,logg,E,parallax",
}
FIT_STATUS_NAMES = ("0 converged, 1 not_converged, 2 no_bands, 3 non_finite_flux, "
                    "4 non_positive_variance, 5 not_positive_definite, 6 no_information")


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def expected_rows(n):
    """The fixture's formulas (tests/tools/catalog_fixture.cpp, fixture_rows): all exact in float32."""
    i = np.arange(n)
    fi = i.astype(np.float64)
    fitted = i % 7 != 0
    nan = np.nan
    e = {
        "gdr3_source_id": (np.int64(123456789) << 35) + i.astype(np.int64),
        "ra": 10.0 + fi / 1024.0,
        "dec": -30.0 + fi / 2048.0,
    }
    p = np.arange(5, dtype=np.float64)
    t = np.arange(15, dtype=np.float64)
    e["stellar_params_est"] = p[None, :] + fi[:, None] / 256.0
    e["stellar_params_err"] = (p[None, :] + 1.0) * 0.125 + fi[:, None] / 65536.0
    e["stellar_params_icov_triu"] = 100.0 + t[None, :] + fi[:, None] / 4.0
    e["stellar_params_cov_triu"] = (t[None, :] + 1.0) / 1024.0 + fi[:, None] / 1048576.0
    e["chi2_opt"] = 61.0 + fi / 8.0
    e["ln_prior"] = -fi / 32.0
    e["chi2_dof"] = fi / 16.0
    e["xi_est"] = np.where(i % 3 == 0, nan, -0.5 + fi / 4096.0)
    e["loss_opt"] = 1000.0 + fi / 8.0
    e["parallax_spectro"] = np.where(i % 4 != 0, 0.25 + fi / 512.0, nan)
    e["parallax_spectro_error"] = np.where(i % 4 != 0, 0.03125 + fi / 131072.0, nan)
    for name in ("stellar_params_est", "stellar_params_err", "stellar_params_icov_triu",
                 "stellar_params_cov_triu"):
        e[name][~fitted, :] = nan
    for name in ("chi2_opt", "ln_prior", "chi2_dof", "xi_est", "loss_opt", "parallax_spectro",
                 "parallax_spectro_error"):
        e[name] = np.where(fitted, e[name], nan)
    for name in ("teff_confidence", "feh_confidence", "logg_confidence"):
        e[name] = np.full(n, nan)
    flags = (np.where(i % 5 == 0, 8, 0) | np.where(i % 11 == 0, 16, 0)
             | np.where(i % 13 == 0, 64, 0))
    e["quality_flags"] = np.where(fitted, flags, 128)
    e["fit_status"] = np.where(fitted, np.where(i % 13 == 0, 1, 0), 2 + (i // 7) % 5)
    e["iterations"] = np.where(fitted, 3 + i % 50, 0)
    e["bands_used"] = np.where(fitted, 66 - i % 5, 0)
    return {name: np.asarray(v).astype(COLUMNS[name][0]) for name, v in e.items()}


def check_schema(path, n, pixel):
    with h5py.File(path, "r") as f:
        if list(f.keys()) != ["catalog"]:
            fail(f"{path}: top level holds {list(f.keys())}, expected ['catalog']")
        c = f["catalog"]
        if sorted(c.keys()) != sorted(COLUMNS):
            fail(f"{path}: /catalog holds {sorted(c.keys())}, expected {sorted(COLUMNS)}")
        for name, (dtype, width, unit) in COLUMNS.items():
            d = c[name]
            shape = (n,) if width == 1 else (n, width)
            if d.dtype != np.dtype(dtype) or d.shape != shape:
                fail(f"{path}: /catalog/{name} is {d.dtype} {d.shape}, expected "
                     f"{np.dtype(dtype)} {shape}")
            if d.dtype.byteorder not in ("<", "=", "|"):
                fail(f"{path}: /catalog/{name} is not little-endian")
            for attribute in ("unit", "description"):
                value = d.attrs.get(attribute)
                if not isinstance(value, str):
                    fail(f"{path}: /catalog/{name}@{attribute} is {value!r}, expected a str")
            if d.attrs["unit"] != unit:
                fail(f"{path}: /catalog/{name}@unit is {d.attrs['unit']!r}, expected {unit!r}")
            if not d.attrs["description"]:
                fail(f"{path}: /catalog/{name}@description is empty")
            if d.compression is not None:
                fail(f"{path}: /catalog/{name} is compressed ({d.compression})")

        a = c.attrs
        for name, expected in {"schema_version": 1, "healpix_level": 5,
                               "healpix_pixel": pixel}.items():
            value = a.get(name)
            if not isinstance(value, np.integer) or value != expected:
                fail(f"{path}: /catalog@{name} is {value!r}, expected the integer {expected}")
        if a["healpix_pixel"].dtype != np.int64:
            fail(f"{path}: /catalog@healpix_pixel is {a['healpix_pixel'].dtype}, expected int64")
        if not isinstance(a.get("parallax_zero_point"), np.float64) \
                or a["parallax_zero_point"] != -0.017:
            fail(f"{path}: /catalog@parallax_zero_point is {a.get('parallax_zero_point')!r}")
        strings = dict(STRING_ATTRIBUTES, star_table=f"stars_5_{pixel}.h5")
        for name, expected in strings.items():
            if a.get(name) != expected or not isinstance(a[name], str):
                fail(f"{path}: /catalog@{name} is {a.get(name)!r}, expected {expected!r}")
        bits = a.get("quality_flags_bits")
        if not isinstance(bits, str):
            fail(f"{path}: /catalog@quality_flags_bits is {bits!r}, expected a str")
        for part in [f"bit {b} ({1 << b})" for b in range(8)] + ["quality_flags < 8"]:
            if part not in bits:
                fail(f"{path}: /catalog@quality_flags_bits lacks {part!r}: {bits!r}")
        if a.get("fit_status_names") != FIT_STATUS_NAMES:
            fail(f"{path}: /catalog@fit_status_names is {a.get('fit_status_names')!r}")


def check_values(path, n):
    expected = expected_rows(n)
    with h5py.File(path, "r") as f:
        for name, values in expected.items():
            read = f["catalog"][name][...]
            # NaN where expected, and every other value exactly.
            same = read == values
            if read.dtype.kind == "f":
                same |= np.isnan(read) & np.isnan(values)
            if not same.all():
                bad = np.argwhere(~same)
                fail(f"{path}: /catalog/{name} differs from the fixture's values, first at "
                     f"{bad[0].tolist()}: {read[tuple(bad[0])]!r} vs {values[tuple(bad[0])]!r}")
        # The cut users apply: every unfitted star, and only flagged ones, fail it.
        kept = f["catalog/quality_flags"][...] < 8
        est = f["catalog/stellar_params_est"][...]
        if np.isnan(est[kept]).any():
            fail(f"{path}: a star with quality_flags < 8 has NaN estimates")


def export_to_fits(path, n, workdir):
    """The export of docs/catalog.md: scalar columns (with units) and the vector ones to FITS."""
    with h5py.File(path, "r") as f:
        c = f["catalog"]
        scalars = Table({name: c[name][...] for name in COLUMNS if c[name].ndim == 1})
        full = Table({name: c[name][...] for name in COLUMNS})
        for name in full.colnames:
            full[name].description = c[name].attrs["description"]
            if c[name].attrs["unit"] == "deg":
                full[name].unit = "deg"
    if len(scalars) != n or len(scalars.colnames) != 17 or len(full.colnames) != len(COLUMNS):
        fail(f"{path}: astropy tables have {len(scalars)} rows, {scalars.colnames} scalar columns")
    stem = os.path.join(workdir, os.path.basename(path).replace(".h5", ""))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an astropy warning here is a schema problem
        scalars.write(stem + "_scalars.fits", overwrite=True)
        full.write(stem + ".fits", overwrite=True)
        back = Table.read(stem + ".fits")
    expected = expected_rows(n)
    for name, (dtype, width, _) in COLUMNS.items():
        column = np.asarray(back[name])
        if column.dtype.newbyteorder("=") != np.dtype(dtype).newbyteorder("=") \
                or column.shape != expected[name].shape:
            fail(f"{stem}.fits: {name} is {column.dtype} {column.shape}, expected "
                 f"{np.dtype(dtype)} {expected[name].shape}")
        if not np.array_equal(column, expected[name], equal_nan=column.dtype.kind == "f"):
            fail(f"{stem}.fits: {name} changed in the export")
    if str(back["ra"].unit) != "deg":
        fail(f"{stem}.fits: ra has unit {back['ra'].unit}")
    return len(back)


def main():
    if len(sys.argv) != 5:
        fail("usage: check_catalog_python.py CATALOG ROWS EMPTY_CATALOG WORKDIR")
    path, n, empty, workdir = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    check_schema(path, n, 1234)
    check_values(path, n)
    check_schema(empty, 0, 0)
    check_values(empty, 0)
    rows = export_to_fits(path, n, workdir)
    empty_rows = export_to_fits(empty, 0, workdir)
    print(f"check_catalog_python: {path} ({n} rows) and {empty} (empty) match the schema; "
          f"FITS exports of {rows} and {empty_rows} rows read back")


if __name__ == "__main__":
    main()
