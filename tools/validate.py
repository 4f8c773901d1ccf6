#!/usr/bin/python3
"""Validates inference catalogs against the truth of a mock survey (DESIGN §1.5-1.6, §4).

Reads the star tables DIR/stars_<L>_<pixel>.h5 (with /truth) and the catalogs
DIR/catalog_<L>_<pixel>.h5 (rows in the order of the star table of the same <L>_<pixel>), selects
the validation stars (labelled stars whose source_id falls in the held-out split; --all-stars:
every star with truth) and writes OUTDIR/validation_report.txt, OUTDIR/validation_summary.json
(the same numbers, machine-readable) and OUTDIR/validation.png, and prints a one-screen summary.
With --spectro-catalogs (the same star tables fitted by `xps_infer --inference.use_parallax false`)
it adds a check that needs no truth (its formula works on real data as well): spectrum-only parallaxes
against the measured ones, robust sd of z = (parallax_sp - (parallax_obs - zp)) /
sqrt(err_sp^2 + parallax_error^2) at parallax S/N > --consistency-snr, near 1 when the
spectrophotometric errors are honest, and per star a test for unresolved binaries (brighter than
the single star their spectrum shows, so their spectrum-only parallax is too large): the share of
binaries and of singles with z > --excess-z.

Usage: /usr/bin/python3 tools/validate.py --stars DIR --catalogs DIR --output OUTDIR
           [--compare-catalogs DIR] [--spectro-catalogs DIR [--consistency-snr 10] [--excess-z 3]]
           [--all-stars] [--validation-fraction 0.2] [--split-salt 0]
           [--g-bins 8,10,12,13,14,15,16,17,18,19,21]

Exit status: 0 when the report was written (the numbers are reported, not asserted: PASS/FAIL
words are information), 2 on bad usage or unreadable input (the message names the file).
"""
import argparse
import glob
import json
import math
import os
import re
import sys

import h5py
import numpy as np

PROGRAM = "validate"

# Catalog column order of stellar_params_est / _err; Teff is in kK there and is compared in K.
PARAMETERS = [  # (key, label, unit, factor catalog -> truth unit, truth dataset)
    ("teff", "Teff", "K", 1000.0, "truth/teff"),
    ("feh", "[Fe/H]", "dex", 1.0, "truth/feh"),
    ("logg", "log g", "dex", 1.0, "truth/logg"),
    ("E", "E", "mag", 1.0, "truth/E"),
    ("parallax", "parallax", "mas", 1.0, "truth/parallax"),
]
FIT_STATUS_NAMES = ["converged", "not_converged", "no_bands", "non_finite_flux",
                    "non_positive_variance", "not_positive_definite", "no_information"]
QUALITY_BIT_NAMES = ["teff_confidence", "feh_confidence", "logg_confidence", "chi2", "ln_prior",
                     "parallax_excess", "not_converged", "not_fitted"]
PARALLAX_EXCESS_BIT = 5
MASS_RATIO_BINS = [(0.0, 0.5), (0.5, 0.9), (0.9, 1.0)]   # the last one includes q = 1
PULL_STD_RANGE = (0.9, 1.2)
PULL_BIAS_MAX = 0.1
LOSS_MEDIAN_MAX = 0.05
LOSS_P99_MAX = 1.0
MAD_TO_SIGMA = 1.4826

STAR_COLUMNS = {  # name -> dataset in the star table
    "source_id": "stars/source_id", "g": "stars/phot_g_mean_mag",
    "parallax_obs": "stars/parallax", "parallax_error": "stars/parallax_error",
    "label_teff": "stars/labels/teff", "is_binary": "truth/is_binary",
    "mass_ratio": "truth/mass_ratio",
}
STAR_COLUMNS.update({"truth_" + key: dataset for key, _, _, _, dataset in PARAMETERS})
CATALOG_COLUMNS = {
    "gdr3_source_id": "catalog/gdr3_source_id", "est": "catalog/stellar_params_est",
    "err": "catalog/stellar_params_err", "quality_flags": "catalog/quality_flags",
    "fit_status": "catalog/fit_status",
}
COMPARE_COLUMNS = {"gdr3_source_id": "catalog/gdr3_source_id", "loss_opt": "catalog/loss_opt",
                   "fit_status": "catalog/fit_status", "quality_flags": "catalog/quality_flags"}
OPTIONAL_CATALOG_COLUMNS = {"parallax_spectro": "catalog/parallax_spectro",
                            "parallax_spectro_error": "catalog/parallax_spectro_error"}
CONSISTENCY_COLUMNS = {"gdr3_source_id": "catalog/gdr3_source_id", "est": "catalog/stellar_params_est",
                       "err": "catalog/stellar_params_err", "fit_status": "catalog/fit_status",
                       "quality_flags": "catalog/quality_flags"}
CONSISTENCY_SNR = 10.0
EXCESS_Z = 3.0  # spectrum-only parallax this many sigma above the measured one: a binary candidate
MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


class InputError(Exception):
    """Unreadable or inconsistent input; the message names the file."""


# ---- the validation split ----------------------------------------------------------------------

def held_out_scalar(source_id, fraction=0.2, salt=0):
    """The split for one star (reference; splitmix64 of the source_id)."""
    z = (int(source_id) + salt * GOLDEN + GOLDEN) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    z ^= z >> 31
    return (z >> 11) * 2.0**-53 < fraction


def held_out(source_ids, fraction=0.2, salt=0):
    """Vectorised held_out_scalar: a bool array, True for the validation (held-out) stars.
    uint64 arithmetic wraps modulo 2^64 as the scalar version's masks do."""
    ids = np.ascontiguousarray(np.asarray(source_ids, dtype=np.int64)).view(np.uint64)
    offset = np.uint64((int(salt) * GOLDEN + GOLDEN) & MASK64)
    with np.errstate(over="ignore"):
        z = ids + offset
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    # z >> 11 < 2^53: exact in float64, as in the scalar version.
    return (z >> np.uint64(11)).astype(np.float64) * 2.0**-53 < fraction


# ---- reading -----------------------------------------------------------------------------------

def partition_files(directory, prefix):
    """{(level, pixel): path} of DIR/<prefix>_<L>_<pixel>.h5 (temporary *.tmp files ignored)."""
    if not os.path.isdir(directory):
        raise InputError(f"{directory}: not a directory")
    found = {}
    pattern = re.compile(re.escape(prefix) + r"_(\d+)_(\d+)\.h5$")
    for path in glob.glob(os.path.join(directory, prefix + "_*_*.h5")):
        match = pattern.search(os.path.basename(path))
        if match:
            found[(int(match.group(1)), int(match.group(2)))] = path
    return dict(sorted(found.items()))


def read_columns(path, columns, optional=()):
    """Reads whole datasets; every one must have the same number of rows."""
    try:
        handle = h5py.File(path, "r")
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: not a readable HDF5 file ({error})") from None
    data, attributes = {}, {}
    with handle:
        for name, dataset in columns.items():
            if dataset not in handle:
                if name in optional:
                    continue
                if dataset.startswith("truth/") and "truth" not in handle:
                    raise InputError(f"{path}: no /truth (validate.py needs mock star tables)")
                raise InputError(f"{path}: dataset /{dataset} missing")
            try:
                data[name] = handle[dataset][...]
            except (OSError, ValueError, TypeError) as error:
                raise InputError(f"{path}: /{dataset}: cannot read ({error})") from None
        if "catalog" in handle:
            attributes = {key: _plain(value) for key, value in handle["catalog"].attrs.items()}
    rows = {name: array.shape[0] if array.ndim else -1 for name, array in data.items()}
    if len(set(rows.values())) > 1:
        raise InputError(f"{path}: datasets have different row counts {rows}")
    return data, attributes


def _plain(value):
    if isinstance(value, bytes):
        return value.decode("ascii", "replace")
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(())[()]
    if isinstance(value, np.generic):
        return value.item()
    return value if isinstance(value, (str, int, float)) else str(value)


def read_main(stars_dir, catalogs_dir, need_loss=False):
    """Star tables joined row by row with their catalogs. Partitions without a catalog are left
    out (listed in notes). loss_opt is read when need_loss (for --compare-catalogs)."""
    tables = partition_files(stars_dir, "stars")
    if not tables:
        raise InputError(f"{stars_dir}: no star tables (stars_<L>_<pixel>.h5)")
    catalogs = partition_files(catalogs_dir, "catalog")
    notes, parts, attributes = [], [], []
    for key, table_path in tables.items():
        catalog_path = catalogs.get(key)
        if catalog_path is None:
            notes.append(f"no catalog for {os.path.basename(table_path)}: partition left out")
            continue
        stars, _ = read_columns(table_path, STAR_COLUMNS)
        columns = dict(CATALOG_COLUMNS, loss_opt="catalog/loss_opt") if need_loss else dict(CATALOG_COLUMNS)
        columns.update(OPTIONAL_CATALOG_COLUMNS)
        catalog, attrs = read_columns(catalog_path, columns, optional=OPTIONAL_CATALOG_COLUMNS)
        n = stars["source_id"].shape[0]
        if catalog["gdr3_source_id"].shape[0] != n:
            raise InputError(f"{catalog_path}: {catalog['gdr3_source_id'].shape[0]} rows, its star "
                             f"table {table_path} has {n}")
        for name in ("est", "err"):
            if catalog[name].shape != (n, 5):
                raise InputError(f"{catalog_path}: /{CATALOG_COLUMNS[name]} has shape "
                                 f"{list(catalog[name].shape)}, expected [{n},5]")
        if not np.array_equal(catalog["gdr3_source_id"], stars["source_id"]):
            raise InputError(f"{catalog_path}: gdr3_source_id differs from /stars/source_id of "
                             f"{table_path} (rows not in star-table order?)")
        part = dict(stars)
        part.update(catalog)
        parts.append(part)
        attrs["_rows"] = n
        attributes.append(attrs)
    for key, path in catalogs.items():
        if key not in tables:
            notes.append(f"{os.path.basename(path)} has no star table in {stars_dir}: ignored")
    if not parts:
        raise InputError(f"{catalogs_dir}: no catalog (catalog_<L>_<pixel>.h5) for any star table "
                         f"in {stars_dir}")
    # optional columns only where every catalog has them (catalogs before 2026-12-06 lack them)
    names = [name for name in parts[0] if all(name in p for p in parts)]
    data = {name: np.concatenate([p[name] for p in parts]) for name in names}
    return data, attributes, notes, len(parts), len(tables)


def read_catalog_set(directory, columns=COMPARE_COLUMNS):
    files = partition_files(directory, "catalog")
    if not files:
        raise InputError(f"{directory}: no catalogs (catalog_<L>_<pixel>.h5)")
    parts, attributes = [], []
    for path in files.values():
        data, attrs = read_columns(path, columns)
        attrs["_rows"] = data["gdr3_source_id"].shape[0]
        parts.append(data)
        attributes.append(attrs)
    data = {name: np.concatenate([p[name] for p in parts]) for name in columns}
    return data, attributes, len(files)


# ---- statistics --------------------------------------------------------------------------------

def robust_std(x):
    if x.size == 0:
        return math.nan
    return float(MAD_TO_SIGMA * np.median(np.abs(x - np.median(x))))


def median(x):
    return float(np.median(x)) if x.size else math.nan


MEDIAN_SE_FACTOR = math.sqrt(math.pi / 2)  # the median of N Gaussian draws scatters by 1.2533 sd / sqrt(N)


def median_standard_error(robust_sd, n):
    """The sampling error of a bin's median pull: how far from 0 a perfect calibration's median
    strays (0.10 for 150 stars, so the 0.1 bias target is a statistical test in small bins)."""
    return MEDIAN_SE_FACTOR * robust_sd / math.sqrt(n) if n > 0 and np.isfinite(robust_sd) else math.nan


def in_range(value, bounds):
    return bool(np.isfinite(value) and bounds[0] <= value <= bounds[1])


def bin_label(lo, hi):
    return f"{lo:g}-{hi:g}"


def analyse(d, args):
    """Every number of the report, as plain Python values (JSON-ready apart from NaN)."""
    n = d["source_id"].shape[0]
    s = {"n_stars": n}
    is_binary = d["is_binary"].astype(bool)
    s["n_single"] = int(np.sum(~is_binary))
    s["n_binary"] = int(np.sum(is_binary))
    status = d["fit_status"].astype(int)
    s["fit_status"] = {}
    for code in np.unique(status):
        name = FIT_STATUS_NAMES[code] if code < len(FIT_STATUS_NAMES) else f"status_{code}"
        s["fit_status"][name] = int(np.sum(status == code))
    flags = d["quality_flags"].astype(np.uint8)
    s["quality_bits"] = {str(bit): int(np.sum((flags >> bit) & 1)) for bit in range(8)}
    good = flags < 8
    s["fraction_quality_lt8"] = float(np.mean(good)) if n else math.nan

    edges = args.g_bins
    g = d["g"].astype(np.float64)
    bins = [(edges[i], edges[i + 1]) for i in range(len(edges) - 1)]
    s["g_bins"] = edges
    s["n_outside_g_bins"] = int(np.sum(~((g >= edges[0]) & (g < edges[-1]))))
    base = ~is_binary & good & np.isfinite(g)

    s["residuals"], s["pulls"] = {}, {}
    est_all, err_all, res_all, truth_all, pull_all = {}, {}, {}, {}, {}
    for index, (key, label, unit, factor, _) in enumerate(PARAMETERS):
        est = d["est"][:, index].astype(np.float64) * factor
        err = d["err"][:, index].astype(np.float64) * factor
        truth = d["truth_" + key].astype(np.float64)
        residual = est - truth
        use = base & np.isfinite(residual)
        with np.errstate(divide="ignore", invalid="ignore"):
            pull = residual / err
        use_pull = use & np.isfinite(pull) & (err > 0)
        est_all[key], err_all[key], truth_all[key] = est, err, truth
        res_all[key], pull_all[key] = np.where(use, residual, np.nan), np.where(use_pull, pull, np.nan)

        rows = []
        for lo, hi in [(edges[0], edges[-1])] + bins:
            r = residual[use & (g >= lo) & (g < hi)]
            rows.append({"g_lo": lo, "g_hi": hi, "n": int(r.size), "median": median(r),
                         "robust_scatter": robust_std(r)})
        s["residuals"][key] = {"label": label, "unit": unit, "all": rows[0], "bins": rows[1:]}

        z_all = pull[use_pull]
        overall_std = robust_std(z_all)
        p = {"label": label, "n": int(z_all.size), "robust_std": overall_std,
             "median_z": median(z_all), "std_pass": in_range(overall_std, PULL_STD_RANGE),
             "bins": []}
        worst, worst_badness = None, -1.0
        verdict_ok = p["std_pass"]
        for lo, hi in bins:
            z = pull[use_pull & (g >= lo) & (g < hi)]
            b = {"g_lo": lo, "g_hi": hi, "n": int(z.size), "median_z": median(z),
                 "robust_std": robust_std(z)}
            b["median_z_se"] = median_standard_error(b["robust_std"], b["n"])
            b["std_pass"] = in_range(b["robust_std"], PULL_STD_RANGE)
            b["bias_pass"] = bool(np.isfinite(b["median_z"]) and abs(b["median_z"]) < PULL_BIAS_MAX)
            b["pass"] = b["std_pass"] and b["bias_pass"]
            b["checked"] = hi <= args.bright_limit and z.size >= args.min_bin_stars
            if b["checked"]:
                verdict_ok &= b["pass"]
                badness = max(abs(b["median_z"]) / PULL_BIAS_MAX, b["robust_std"] / PULL_STD_RANGE[1],
                              PULL_STD_RANGE[0] / b["robust_std"] if b["robust_std"] > 0 else math.inf)
                if badness > worst_badness:
                    worst, worst_badness = b, badness
            p["bins"].append(b)
        if z_all.size == 0:
            p["verdict"] = "no stars"
        else:
            p["verdict"] = "PASS" if verdict_ok and worst is not None else (
                "FAIL" if not verdict_ok else "no checked bin")
        p["worst_bin"] = None if worst is None else {
            "g_lo": worst["g_lo"], "g_hi": worst["g_hi"], "median_z": worst["median_z"],
            "median_z_se": worst["median_z_se"],
            "robust_std": worst["robust_std"], "n": worst["n"], "pass": worst["pass"]}
        s["pulls"][key] = p

    # Binaries and the parallax-excess flag, among fitted stars with a precise measured parallax.
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = d["parallax_obs"].astype(np.float64) / d["parallax_error"].astype(np.float64)
    fitted = (status <= 1) & ((flags & 0x80) == 0)
    precise = fitted & np.isfinite(snr) & (snr > 10)
    excess = ((flags >> PARALLAX_EXCESS_BIT) & 1).astype(bool)
    s["binaries"] = flagged_shares(excess, precise, is_binary, d["mass_ratio"])
    arrays = {"g": g, "est": est_all, "err": err_all, "truth": truth_all, "residual": res_all,
              "pull": pull_all}
    return s, arrays


def loss_statistics(difference):
    n = int(difference.size)
    out = {"n": n}
    if n == 0:
        out.update({"median": math.nan, "p99": math.nan, "mean": math.nan,
                    "fraction_main_lower": math.nan, "verdict": "no stars"})
        return out
    out["median"] = float(np.median(difference))
    out["p99"] = float(np.percentile(difference, 99))
    out["mean"] = float(np.mean(difference))
    out["fraction_main_lower"] = float(np.mean(difference < 0))
    ok = out["median"] <= LOSS_MEDIAN_MAX and out["p99"] <= LOSS_P99_MAX
    out["verdict"] = "PASS" if ok else "FAIL"
    return out


def wall_time(attributes):
    timed = [a for a in attributes if isinstance(a.get("wall_seconds"), (int, float))]
    if not timed:
        return None
    seconds = float(sum(a["wall_seconds"] for a in timed))
    rows = int(sum(a["_rows"] for a in timed))
    return {"seconds": seconds, "files": len(timed), "rows": rows,
            "ms_per_star": 1000.0 * seconds / rows if rows else math.nan}


def compare(main_ids, main_loss, main_status, main_flags, main_attrs, selected_ids, compare_dir):
    """The loss comparison. The verdict is on the stars with quality_flags < 8 in both sets: a star
    the model cannot describe (bit 3, e.g. a white dwarf) has no meaningful minimum (its fits run
    to the E limit, where any optimiser stops somewhere on a flat wall); all fitted stars are
    reported too."""
    other, other_attrs, n_files = read_catalog_set(compare_dir)
    out = {"directory": compare_dir, "files": n_files, "rows": int(other["gdr3_source_id"].size)}
    for name, ids in (("main", main_ids), ("compare", other["gdr3_source_id"])):
        duplicates = int(ids.size - np.unique(ids).size)
        if duplicates:
            out.setdefault("notes", []).append(f"{duplicates} duplicated gdr3_source_id in the {name} "
                                               "set: first occurrence used")
    common, i_main, i_other = np.intersect1d(main_ids, other["gdr3_source_id"],
                                             return_indices=True)
    out["matched"] = int(common.size)
    both = ((main_status[i_main] <= 1) & (other["fit_status"][i_other] <= 1)
            & np.isfinite(main_loss[i_main]) & np.isfinite(other["loss_opt"][i_other]))
    difference = (main_loss[i_main] - other["loss_opt"][i_other].astype(np.float64))[both]
    out["fitted_in_both"] = loss_statistics(difference)
    in_selection = np.isin(common[both], selected_ids)
    out["fitted_in_both_selected"] = loss_statistics(difference[in_selection])
    usable = ((main_flags[i_main] < 8) & (other["quality_flags"][i_other] < 8))[both]
    out["usable_in_both"] = loss_statistics(difference[usable])
    optimizers = lambda attrs: sorted({str(a.get("optimizer", "?")) for a in attrs})  # noqa: E731
    out["optimizer_main"], out["optimizer_compare"] = optimizers(main_attrs), optimizers(other_attrs)
    out["wall_main"], out["wall_compare"] = wall_time(main_attrs), wall_time(other_attrs)
    return out


def flagged_shares(flagged, rows, is_binary, mass_ratio):
    """How many of the singles and of the binaries among `rows` are `flagged`, the binaries also
    per MASS_RATIO_BINS: {"singles", "binaries": {n, n_flagged, fraction}, "q_bins": [... q_lo, q_hi]}."""
    def share(mask):
        k = int(np.sum(mask))
        return {"n": k, "n_flagged": int(np.sum(flagged[mask])),
                "fraction": float(np.mean(flagged[mask])) if k else math.nan}

    q = np.asarray(mass_ratio, dtype=np.float64)
    shares = {"singles": share(rows & ~is_binary), "binaries": share(rows & is_binary), "q_bins": []}
    for lo, hi in MASS_RATIO_BINS:
        in_bin = (q >= lo) & ((q <= hi) if hi >= 1.0 else (q < hi))
        entry = share(rows & is_binary & in_bin)
        entry.update({"q_lo": lo, "q_hi": hi})
        shares["q_bins"].append(entry)
    return shares


def parallax_consistency(selection, spectro_dir, args):
    """Spectrum-only parallaxes (catalogs of `xps_infer --inference.use_parallax false` on the same
    star tables) against the measured ones, z = (parallax_sp - (parallax_obs - zp)) /
    sqrt(err_sp^2 + parallax_error^2), over the selected stars fitted with quality_flags < 8 and
    parallax_obs / parallax_error > args.consistency_snr. It needs no truth (the same check works on
    a real survey): a robust sd near 1 says the spectrophotometric parallax errors are honest (binaries,
    whose spectra claim a larger parallax, are in it as they would be there). With truth, the same
    stars' (parallax_sp - parallax) / err_sp is reported beside it (the two agree where err_sp
    dominates parallax_error)."""
    other, attrs, n_files = read_catalog_set(spectro_dir, CONSISTENCY_COLUMNS)
    out = {"directory": spectro_dir, "files": n_files, "snr_min": args.consistency_snr, "notes": []}
    zero_points = sorted({float(a["parallax_zero_point"]) for a in attrs if "parallax_zero_point" in a})
    if len(zero_points) != 1:
        out["notes"].append(f"parallax_zero_point attributes {zero_points or 'missing'}: "
                            f"{zero_points[0] if zero_points else 0.0:g} mas used")
    zero_point = zero_points[0] if zero_points else 0.0
    out["parallax_zero_point"] = zero_point
    _, i_sel, i_other = np.intersect1d(selection["source_id"], other["gdr3_source_id"],
                                       return_indices=True)
    parallax_sp = other["est"][i_other, 4].astype(np.float64)
    error_sp = other["err"][i_other, 4].astype(np.float64)
    measured = selection["parallax_obs"][i_sel].astype(np.float64) - zero_point
    measured_error = selection["parallax_error"][i_sel].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = measured / measured_error
        z = (parallax_sp - measured) / np.sqrt(error_sp ** 2 + measured_error ** 2)
        z_truth = (parallax_sp - selection["truth_parallax"][i_sel].astype(np.float64)) / error_sp
    use = ((other["fit_status"][i_other] <= 1) & (other["quality_flags"][i_other] < 8)
           & np.isfinite(z) & (error_sp > 0) & (snr > args.consistency_snr))
    single = selection["is_binary"][i_sel] == 0
    g = selection["g"][i_sel].astype(np.float64)
    out["matched"] = int(i_sel.size)
    out["all"] = {"n": int(use.sum()), "robust_std": robust_std(z[use]), "median": median(z[use]),
                  "truth_robust_std": robust_std(z_truth[use]),
                  "truth_robust_std_singles": robust_std(z_truth[use & single])}
    # One-sided: a binary's light makes its spectrophotometric parallax too large, never too small.
    out["excess"] = dict(z_min=args.excess_z, **flagged_shares(
        z > args.excess_z, use, selection["is_binary"][i_sel] == 1, selection["mass_ratio"][i_sel]))
    if "parallax_spectro" in selection:
        out["joint"] = joint_spectro_parallax(selection, i_sel, use, parallax_sp, measured, measured_error, args)
    out["bins"] = []
    edges = args.g_bins
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = use & (g >= lo) & (g < hi)
        out["bins"].append({"g_lo": lo, "g_hi": hi, "n": int(in_bin.sum()),
                            "robust_std": robust_std(z[in_bin]), "median": median(z[in_bin]),
                            "truth_robust_std": robust_std(z_truth[in_bin])})
    return out


def joint_spectro_parallax(selection, i_sel, use, parallax_sp, measured, measured_error, args):
    """The main catalogs' parallax_spectro (taken back out of the joint fit, no second fit) on the
    same stars: its relative difference to the spectrum-only fit, the robust sd of its z, and the
    binary candidates it picks."""
    joint = selection["parallax_spectro"][i_sel].astype(np.float64)
    joint_error = selection["parallax_spectro_error"][i_sel].astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = (joint - measured) / np.sqrt(joint_error ** 2 + measured_error ** 2)
        relative = (joint - parallax_sp) / parallax_sp
    rows = use & np.isfinite(z)
    single = selection["is_binary"][i_sel] == 0
    return {"n": int(rows.sum()), "robust_std_singles": robust_std(z[rows & single]),
            "relative_median": median(relative[rows]), "relative_robust_std": robust_std(relative[rows]),
            "excess": dict(z_min=args.excess_z, **flagged_shares(
                z > args.excess_z, rows, ~single, selection["mass_ratio"][i_sel]))}


def consistency_text(c):
    lines = ["", "6. Parallax consistency (needs no truth): spectrum-only parallaxes of " + c["directory"]]
    out = lines.append
    out(f"  z = (parallax_sp - (parallax_obs - zp)) / sqrt(err_sp^2 + parallax_error^2), zp "
        f"{c['parallax_zero_point']:g} mas, selected stars with quality_flags < 8 and parallax S/N > "
        f"{c['snr_min']:g} (binaries included); near 1 when the spectrophotometric errors are honest")
    for note in c["notes"]:
        out(f"  note: {note}")
    a = c["all"]
    out(f"  all: N {a['n']}, robust sd {fmt(a['robust_std'], '.3f')}, median {fmt(a['median'], '+.3f')}; "
        f"against the truth (parallax_sp - parallax) / err_sp: robust sd {fmt(a['truth_robust_std'], '.3f')} "
        f"(singles {fmt(a['truth_robust_std_singles'], '.3f')})")
    out(f"  {'G':>13} {'N':>7} {'robust sd':>10} {'median':>8} {'truth sd':>9}")
    for b in c["bins"]:
        if b["n"]:
            out(f"  {bin_label(b['g_lo'], b['g_hi']):>13} {b['n']:>7} {fmt(b['robust_std'], '.3f'):>10} "
                f"{fmt(b['median'], '+.3f'):>8} {fmt(b['truth_robust_std'], '.3f'):>9}")
    out(f"  binary candidates, z > {c['excess']['z_min']:g} (the binary's light makes the spectrum's "
        f"parallax too large): {excess_text(c['excess'])}")
    j = c.get("joint")
    if j:
        out(f"  the main catalogs' parallax_spectro (taken out of the joint fit) on {j['n']} of these stars: "
            f"relative to the spectrum-only fit median {fmt(j['relative_median'], '+.4f')}, robust sd "
            f"{fmt(j['relative_robust_std'], '.4f')}; its z robust sd (singles) {fmt(j['robust_std_singles'], '.3f')}; "
            f"z > {j['excess']['z_min']:g}: {excess_text(j['excess'])}")
    return "\n".join(lines) + "\n"


def excess_text(e):
    def share(entry):
        return f"{percent(entry['fraction'])} of {entry['n']}" if entry["n"] else "-"
    q_bins = ", ".join(f"q {q['q_lo']:g}-{q['q_hi']:g} {percent(q['fraction']) if q['n'] else '-'}"
                       for q in e["q_bins"])
    return f"binaries {share(e['binaries'])} ({q_bins}); singles {share(e['singles'])}"


# ---- output ------------------------------------------------------------------------------------

def fmt(value, spec=".3g"):
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value, spec)


def percent(value):
    return "-" if not math.isfinite(value) else f"{100 * value:.2f} %"


def report_text(s, args, notes, n_parts, n_tables):
    lines = []
    out = lines.append
    out("xpstellar validation report")
    out(f"star tables: {args.stars} ({n_tables}), catalogs: {args.catalogs} ({n_parts} used)")
    if args.all_stars:
        out("selection: every star with truth (--all-stars)")
    else:
        out(f"selection: labelled stars (finite /stars/labels/teff) in the validation split "
            f"(fraction {args.validation_fraction:g}, salt {args.split_salt})")
    for note in notes:
        out(f"note: {note}")
    out("")
    out("1. Counts")
    out(f"  stars: {s['n_stars']}   single: {s['n_single']}   binary: {s['n_binary']}")
    if s["n_stars"] == 0:
        out("  no stars: nothing else to report")
        return "\n".join(lines) + "\n"
    out("  fit_status: " + ", ".join(f"{k} {v}" for k, v in s["fit_status"].items()))
    out("  quality_flags bits set: " + ", ".join(
        f"{b} ({QUALITY_BIT_NAMES[int(b)]}) {v}" for b, v in s["quality_bits"].items()))
    out(f"  quality_flags < 8: {percent(s['fraction_quality_lt8'])}")
    out(f"  outside the G bins: {s['n_outside_g_bins']}")
    out("")
    out("2. Residuals est - truth, single stars with quality_flags < 8 (Teff: catalog kK x 1000)")
    for key, r in s["residuals"].items():
        out(f"  {r['label']} [{r['unit']}]")
        out(f"    {'G':>9} {'N':>7} {'median':>11} {'robust sd':>11}")
        for row in [r["all"]] + r["bins"]:
            name = "all" if row is r["all"] else bin_label(row["g_lo"], row["g_hi"])
            out(f"    {name:>9} {row['n']:>7} {fmt(row['median'], '.4g'):>11} "
                f"{fmt(row['robust_scatter'], '.4g'):>11}")
    out("")
    out(f"3. Pulls z = (est - truth) / err, single stars with quality_flags < 8: robust sd within "
        f"[{PULL_STD_RANGE[0]:g}, {PULL_STD_RANGE[1]:g}], |median z| < {PULL_BIAS_MAX:g}; the verdict "
        f"needs the overall sd and every bin brighter than G = {args.bright_limit:g} with at least "
        f"{args.min_bin_stars} stars")
    for key, p in s["pulls"].items():
        out(f"  {p['label']}: N {p['n']}, robust sd {fmt(p['robust_std'], '.3f')} "
            f"{'PASS' if p['std_pass'] else 'FAIL'}, median z {fmt(p['median_z'], '+.3f')}; "
            f"verdict {p['verdict']}")
        out(f"    {'G':>9} {'N':>7} {'median z':>9} {'+- se':>6} {'robust sd':>9}  sd    bias  bin")
        for b in p["bins"]:
            role = "" if b["checked"] else ("  (not in verdict: faint)" if b["g_hi"] > args.bright_limit
                                            else "  (not in verdict: few stars)")
            out(f"    {bin_label(b['g_lo'], b['g_hi']):>9} {b['n']:>7} {fmt(b['median_z'], '+.3f'):>9} "
                f"{fmt(b['median_z_se'], '.3f'):>6} "
                f"{fmt(b['robust_std'], '.3f'):>9}  {'PASS' if b['std_pass'] else 'FAIL'}  "
                f"{'PASS' if b['bias_pass'] else 'FAIL'}  {'PASS' if b['pass'] else 'FAIL'}{role}")
        w = p["worst_bin"]
        if w:
            out(f"    worst bin: G {bin_label(w['g_lo'], w['g_hi'])} (median z {fmt(w['median_z'], '+.3f')} "
                f"+- {fmt(w['median_z_se'], '.3f')}, "
                f"robust sd {fmt(w['robust_std'], '.3f')}, N {w['n']})")
    out("")
    b = s["binaries"]
    out("4. Parallax-excess flag (bit 5) among fitted stars with measured parallax / error > 10")
    out(f"  singles:  {b['singles']['n_flagged']:>6} of {b['singles']['n']:>7} "
        f"({percent(b['singles']['fraction'])})")
    out(f"  binaries: {b['binaries']['n_flagged']:>6} of {b['binaries']['n']:>7} "
        f"({percent(b['binaries']['fraction'])})")
    for e in b["q_bins"]:
        close = "]" if e["q_hi"] >= 1.0 else ")"
        out(f"    q in [{e['q_lo']:g}, {e['q_hi']:g}{close}: {e['n_flagged']:>6} of {e['n']:>7} "
            f"({percent(e['fraction'])})")
    return "\n".join(lines) + "\n"


def compare_text(c):
    lines = ["", "5. Loss comparison with the catalogs of " + c["directory"]]
    out = lines.append
    out(f"  optimizer: main {', '.join(c['optimizer_main'])}; compare {', '.join(c['optimizer_compare'])}")
    out(f"  compare set: {c['rows']} rows in {c['files']} files; matched by gdr3_source_id: "
        f"{c['matched']}")
    for note in c.get("notes", []):
        out(f"  note: {note}")
    for name, title in (("fitted_in_both", "all matched stars fitted in both (fit_status 0/1)"),
                        ("fitted_in_both_selected", "the selected stars among them"),
                        ("usable_in_both", "matched stars with quality_flags < 8 in both")):
        st = c[name]
        out(f"  {title}: N {st['n']}")
        if st["n"]:
            out(f"    loss_opt(main) - loss_opt(compare): median {st['median']:.6g}, "
                f"99th percentile {st['p99']:.6g}, mean {st['mean']:.6g}; main lower in "
                f"{percent(st['fraction_main_lower'])}")
    out(f"  fast no worse than paper (median <= {LOSS_MEDIAN_MAX:g} and p99 <= {LOSS_P99_MAX:g}) on the "
        f"stars with quality_flags < 8 in both: {c['usable_in_both']['verdict']} (all fitted stars: "
        f"{c['fitted_in_both']['verdict']})")
    wm, wc = c["wall_main"], c["wall_compare"]
    if wm or wc:
        for name, w in (("main", wm), ("compare", wc)):
            if w:
                out(f"  wall time {name}: {w['seconds']:.6g} s over {w['rows']} stars in {w['files']} "
                    f"files ({w['ms_per_star']:.4g} ms per star)")
            else:
                out(f"  wall time {name}: no wall_seconds attribute")
        if wm and wc and wm["ms_per_star"] > 0:
            out(f"  compare / main time per star: {wc['ms_per_star'] / wm['ms_per_star']:.3g}")
    else:
        out("  wall time: no wall_seconds attribute on /catalog")
    return "\n".join(lines) + "\n"


def screen_summary(s, c, args, files, consistency=None):
    lines = []
    out = lines.append
    selection = "every star with truth" if args.all_stars else "validation stars"
    out(f"{PROGRAM}: {s['n_stars']} stars ({selection}): {s['n_single']} single, "
        f"{s['n_binary']} binary")
    if s["n_stars"]:
        out("  fit_status: " + ", ".join(f"{k} {v}" for k, v in s["fit_status"].items()))
        bits = ", ".join(f"{b}:{v}" for b, v in s["quality_bits"].items() if v)
        out(f"  quality_flags < 8: {percent(s['fraction_quality_lt8'])}  (bits set: {bits or 'none'})")
        out(f"  {'parameter':<9} {'N':>6} {'scatter':>10} {'pull sd':>8}  {'sd':<4}  "
            f"{'verdict':<8} worst bin (median z, sd)")
        for key, p in s["pulls"].items():
            r = s["residuals"][key]["all"]
            w = p["worst_bin"]
            worst = "-" if not w else (f"G {bin_label(w['g_lo'], w['g_hi'])} "
                                      f"({fmt(w['median_z'], '+.2f')}, {fmt(w['robust_std'], '.2f')})")
            out(f"  {p['label']:<9} {p['n']:>6} {fmt(r['robust_scatter'], '.3g'):>10} "
                f"{fmt(p['robust_std'], '.3f'):>8}  {'PASS' if p['std_pass'] else 'FAIL':<4}  "
                f"{p['verdict']:<8} {worst}")
        b = s["binaries"]
        qs = ", ".join(f"q {e['q_lo']:g}-{e['q_hi']:g} {percent(e['fraction'])}" for e in b["q_bins"])
        out(f"  bit 5 at parallax S/N > 10: binaries {percent(b['binaries']['fraction'])} "
            f"({qs}); singles {percent(b['singles']['fraction'])}")
    else:
        out("  no stars")
    if c:
        st, every = c["usable_in_both"], c["fitted_in_both"]
        out(f"  loss main - compare over {st['n']} stars with quality_flags < 8: median "
            f"{fmt(st['median'], '.4g')}, p99 {fmt(st['p99'], '.4g')}, main lower "
            f"{percent(st['fraction_main_lower'])}: fast no worse than paper {st['verdict']} "
            f"(all {every['n']} fitted: p99 {fmt(every['p99'], '.4g')}, {every['verdict']})")
    if consistency:
        a = consistency["all"]
        out(f"  parallax consistency (no truth) at S/N > {consistency['snr_min']:g}: spectrum-only "
            f"parallaxes vs measured, robust sd {fmt(a['robust_std'], '.3f')} over {a['n']} stars "
            f"(against the truth {fmt(a['truth_robust_std'], '.3f')})")
        out(f"  spectrum-only parallax > measured by {consistency['excess']['z_min']:g} sigma: "
            f"{excess_text(consistency['excess'])}")
    out("  wrote " + ", ".join(files))
    return "\n".join(lines)


def plot(path, s, arrays, c):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, len(PARAMETERS), figsize=(4.4 * len(PARAMETERS), 12.5),
                             squeeze=False)
    for column, (key, label, unit, _, _) in enumerate(PARAMETERS):
        ax = axes[0, column]
        residual = arrays["residual"].get(key) if arrays else None
        if residual is None or not np.any(np.isfinite(residual)):
            for row in range(3):
                axes[row, column].text(0.5, 0.5, "no stars", ha="center", va="center",
                                       transform=axes[row, column].transAxes)
                axes[row, column].set_title(label)
            continue
        use = np.isfinite(residual)
        x, y = arrays["truth"][key][use], residual[use]
        centre, spread = np.median(y), robust_std(y)
        spread = spread if spread > 0 else max(np.max(np.abs(y - centre)), 1e-6)
        if x.size > 2000:
            ax.hexbin(x, y, gridsize=50, bins="log", mincnt=1, cmap="viridis",
                      extent=(np.min(x), np.max(x), centre - 6 * spread, centre + 6 * spread))
        else:
            ax.scatter(x, y, s=3, alpha=0.6)
        ax.axhline(0, color="k", lw=0.8)
        ax.set(xlabel=f"{label} truth [{unit}]", ylabel=f"est - truth [{unit}]",
               ylim=(centre - 6 * spread, centre + 6 * spread),
               title=f"{label}: single, flags < 8 (N {x.size})")

        ax = axes[1, column]
        z = arrays["pull"][key]
        z = z[np.isfinite(z)]
        grid = np.linspace(-5, 5, 201)
        ax.hist(np.clip(z, -5, 5), bins=50, range=(-5, 5), density=True, alpha=0.7,
                label=f"robust sd {robust_std(z):.3f}")
        ax.plot(grid, np.exp(-0.5 * grid**2) / math.sqrt(2 * math.pi), "k-", lw=1.2, label="N(0, 1)")
        ax.set(xlabel=f"pull ({label})", ylabel="density", title=f"{label} pulls (clipped at ±5)")
        ax.legend(fontsize=8)

        ax = axes[2, column]
        rows = s["residuals"][key]["bins"]
        centres = [(r["g_lo"] + r["g_hi"]) / 2 for r in rows]
        ax.plot(centres, [r["robust_scatter"] for r in rows], "o-", label="robust scatter")
        ax.plot(centres, [r["median"] for r in rows], "s--", label="median")
        ax.axhline(0, color="k", lw=0.6)
        ax.set(xlabel="G [mag]", ylabel=f"{label} [{unit}]", title=f"{label} residual vs G")
        ax.legend(fontsize=8)
    title = f"xpstellar validation: {s['n_stars']} stars"
    if c and c["fitted_in_both"]["n"]:
        st = c["fitted_in_both"]
        title += (f"; loss main - compare median {st['median']:.3g}, p99 {st['p99']:.3g} "
                  f"({st['verdict']})")
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def json_ready(value):
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items() if not isinstance(v, np.ndarray)}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


# ---- main --------------------------------------------------------------------------------------

def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="validate.py", description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--stars", required=True, help="directory of mock star tables (with /truth)")
    parser.add_argument("--catalogs", required=True, help="directory of catalog_<L>_<pixel>.h5")
    parser.add_argument("--output", required=True, help="directory for the report, summary and plot")
    parser.add_argument("--compare-catalogs", help="second catalog set (e.g. --optimizer paper) whose "
                        "loss_opt is compared star by star (matched by gdr3_source_id)")
    parser.add_argument("--spectro-catalogs", help="catalogs of the same star tables fitted without "
                        "the measured parallax (xps_infer --inference.use_parallax false), for the "
                        "parallax-consistency check")
    parser.add_argument("--consistency-snr", type=float, default=CONSISTENCY_SNR,
                        help="the consistency check uses stars with a measured parallax S/N above this")
    parser.add_argument("--excess-z", type=float, default=EXCESS_Z,
                        help="binary candidates: spectrum-only parallax above the measured one by more "
                        "than this many combined sigma")
    parser.add_argument("--all-stars", action="store_true",
                        help="every star with truth instead of the validation stars")
    parser.add_argument("--validation-fraction", type=float, default=0.2,
                        help="held-out share of the labelled stars")
    parser.add_argument("--split-salt", type=int, default=0, help="salt of the held-out split")
    parser.add_argument("--g-bins", default="8,10,12,13,14,15,16,17,18,19,21",
                        help="edges of the G-magnitude bins [mag]")
    parser.add_argument("--bright-limit", type=float, default=17.0,
                        help="pull verdicts use the bins whose faint edge is at most this G [mag]")
    parser.add_argument("--min-bin-stars", type=int, default=20,
                        help="bins with fewer pull stars are reported but left out of the verdict")
    args = parser.parse_args(argv)
    try:
        args.g_bins = [float(x) for x in args.g_bins.split(",")]
    except ValueError:
        parser.error(f"--g-bins: not a list of numbers: {args.g_bins}")
    if len(args.g_bins) < 2 or any(b <= a for a, b in zip(args.g_bins, args.g_bins[1:])):
        parser.error("--g-bins: at least two increasing edges")
    if not 0 <= args.validation_fraction <= 1:
        parser.error("--validation-fraction: between 0 and 1")
    return args


def model_error_notes(attributes):
    """The model-error terms the catalogs were made with (catalog attributes; absent in older ones)."""
    keys = ("model_error_level_frac", "model_error_smooth_frac", "model_error_smooth_length_nm")
    settings = sorted({tuple(float(a[k]) for k in keys) for a in attributes if all(k in a for k in keys)})
    notes = [f"model error: level_frac {e:g}, smooth_frac {g:g} over {l:g} nm" for e, g, l in settings]
    calibrated = sorted({int(a.get("calibrated", 0)) for a in attributes})
    names = {0: "no (the fit's own values)", 1: "yes (the model file's /calibration)"}
    return notes + ["calibrated: " + ", ".join(names[c] for c in calibrated)]


def main(argv=None):
    args = parse_args(argv)
    try:
        data, main_attrs, notes, n_parts, n_tables = read_main(args.stars, args.catalogs,
                                                               bool(args.compare_catalogs))
        if args.all_stars:
            selected = np.ones(data["source_id"].shape[0], dtype=bool)
        else:
            selected = np.isfinite(data["label_teff"]) & held_out(
                data["source_id"], args.validation_fraction, args.split_salt)
        selection = {name: array[selected] for name, array in data.items()}
        notes = notes + model_error_notes(main_attrs)
        summary, arrays = analyse(selection, args)
        comparison = None
        if args.compare_catalogs:
            comparison = compare(data["gdr3_source_id"], data["loss_opt"].astype(np.float64),
                                 data["fit_status"].astype(int), data["quality_flags"], main_attrs,
                                 selection["source_id"], args.compare_catalogs)
        consistency = None
        if args.spectro_catalogs:
            consistency = parallax_consistency(selection, args.spectro_catalogs, args)
    except InputError as error:
        print(f"{PROGRAM}: {error}", file=sys.stderr)
        return 2

    try:
        write_outputs(args, summary, arrays, comparison, notes, n_parts, n_tables, consistency)
    except OSError as error:
        print(f"{PROGRAM}: cannot write to {args.output}: {error}", file=sys.stderr)
        return 2
    return 0


def write_outputs(args, summary, arrays, comparison, notes, n_parts, n_tables, consistency=None):
    os.makedirs(args.output, exist_ok=True)
    report_path = os.path.join(args.output, "validation_report.txt")
    json_path = os.path.join(args.output, "validation_summary.json")
    png_path = os.path.join(args.output, "validation.png")
    text = report_text(summary, args, notes, n_parts, n_tables)
    if comparison:
        text += compare_text(comparison)
    if consistency:
        text += consistency_text(consistency)
    with open(report_path, "w") as handle:
        handle.write(text)
    document = {"selection": "all" if args.all_stars else "validation",
                "validation_fraction": args.validation_fraction, "split_salt": args.split_salt,
                "partitions_used": n_parts, "star_tables": n_tables, "notes": notes,
                "bright_limit": args.bright_limit, "min_bin_stars": args.min_bin_stars}
    document.update(summary)
    if comparison:
        document["compare"] = comparison
    if consistency:
        document["parallax_consistency"] = consistency
    with open(json_path, "w") as handle:
        json.dump(json_ready(document), handle, indent=1)
    plot(png_path, summary, arrays if summary["n_stars"] else None, comparison)
    print(screen_summary(summary, comparison, args, [report_path, json_path, png_path], consistency))


if __name__ == "__main__":
    sys.exit(main())
