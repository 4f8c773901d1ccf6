#!/usr/bin/python3
"""Calibrates the catalog's estimates and uncertainties on the training split; writes /calibration.

The Fisher errors of xps_infer see the data noise and the model-error terms of the whitening
(tools/select_model_error.py). A data-driven model is also wrong in ways that a fit turns into
biases of its parameters: a few tens of K, a few hundredths of a dex, that change across the Kiel
diagram and do not shrink as the star gets brighter. On the mock survey they made the pulls of
bright stars 1.3-1.7 times too wide. This tool measures them on what a real survey has, the labelled
training split (the stars tools/validate.py does not use), per cell of (Teff, log g) of the estimate:

  Teff, [Fe/H], log g, E:  d = estimate - label ~ N(offset + curve([Fe/H]), err^2 + label_err^2 + floor^2)
  parallax:                p_sp - (parallax_obs - zp) ~ N(c p, s^2 + parallax_err^2 + f^2 p^2)

p_sp, s: the spectrophotometric parallax and its Fisher error, taken back out of the joint estimate
(whose parallax is their precision-weighted mean with the measured one: 1/err^2 = 1/s^2 +
1/parallax_err^2), p the joint estimate (the precise one, as scale); c the relative offset of p_sp,
f its relative error beyond s. curve is piecewise linear in the estimate's [Fe/H] (--feh-knots),
common to all cells, fitted by robust least squares in turns with the cells: the model's biases
depend on metallicity too (on the mock, metal-poor stars came out up to 0.5 dex too metal-rich, and
a cell's offset is an average over its metallicities). Each cell value is a maximum-likelihood fit
in which the estimates' errors are a scale mixture, the bulk and components of the same centre 2,
5 and 20 times as wide (binaries, stars the model cannot describe), and the reference (label,
measured parallax) its stated Gaussian noise, so the floor is that of the bulk. For the labels of
--outlier-tail-labels (E by default) the wide components are 5 and 20 times the whole deviation's
width instead, outliers only: E's prior is 2-5 times noisier than its estimate, and components a few
times the estimate's width then widen the deviations as a floor does, so the likelihood cannot tell
them apart (fit_outlier_mixture). Every fit is the best of several L-BFGS-B runs on the
analytic gradient (fit_mixture): the likelihood can have two optima, and the floors do not depend
on where an optimiser stops. The offsets and the curve leave out the stars the training run's
self-cleaning marked (joint criterion by default; xps_train's MODEL_training/results): unresolved
binaries, a fifth of the mock's stars, have log g estimates biased low and otherwise set the
offsets, leaving single stars' log g pulls at a median of +0.2. Then, twice, the offsets also leave
out the stars whose calibrated spectrophotometric parallax is |z| >= --offset-max-z (1) from the
measured one, and the floors those with |z| >= --floor-max-z (2): a cut symmetric about the single
stars, which removes binaries (their spectrophotometric parallaxes are too large) without choosing
singles by the sign of their errors, as self-cleaning's one-sided rules do. Cells with fewer than
--min-stars stars take the values of all stars together.
xps_infer then subtracts the offsets and adds the floors, and combines p_sp - c p, with variance
s^2 + (f p)^2, with the measured parallax afresh (docs/inference.md, "Calibration";
include/xpstellar/uncertainty_calibration.hpp). The fit's own combination trusts the spectrum's
parallax with its Fisher error, 2-3 times too small: on the mock the joint parallaxes of bright
stars were less accurate than the measured ones they started from.

The fits need catalogs of the training split made without a calibration: the tool runs xps_infer
(--inference.calibrate false) on the star tables, or takes them from --catalogs. The result goes
into the model file's /calibration, written to a temporary file and renamed.

Usage: /usr/bin/python3 tools/calibrate_uncertainties.py --model MODEL.h5 --stars DIR
           [--catalogs DIR | --launcher "mpirun -np 2" --xps-infer build/bin/xps_infer]
           [--teff-edges 4.0,4.5,5.0,5.5,6.0,6.5] [--logg-edges 2.0,3.0,3.8,4.3]
           [--feh-knots -1.5,-1.0,-0.6,-0.3,0.0,0.3,0.6 | none]
           [--min-stars 300] [--training-results DIR|none] [--outlier-bits 4] [--outlier-tail-labels E]
           [--offset-max-z 1.0] [--floor-max-z 2.0]
           [--max-stars 200000] [--validation-fraction 0.2] [--split-salt 0]

Exit status: 0 when the model file was updated, 2 on bad usage, unreadable input or a failed
xps_infer run (the message names the file or the command).
"""
import argparse
import os
import shutil
import sys

import h5py
import numpy as np
from scipy.optimize import minimize
from scipy.special import logsumexp, softmax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import training_split  # noqa: E402  (options, table choice, the xps_infer run, the model update)
import validate  # noqa: E402  (the validation split, robust statistics)

PROGRAM = "calibrate_uncertainties"
LABELS = training_split.LABELS
UNITS = ["kK", "dex", "dex", "mag"]


CalibrationError = training_split.ToolError


def parse_edges(text, option):
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise CalibrationError(f"{option}: not a comma-separated list of numbers: {text!r}") from None
    if any(b <= a for a, b in zip(values, values[1:])) or not np.all(np.isfinite(values)):
        raise CalibrationError(f"{option}: edges must be finite and increasing: {text!r}")
    return values


def read_outliers(results_dir, table_path, ids):
    """The training run's self-cleaning bits (`outlier`) of one star table's rows."""
    name = os.path.basename(table_path).replace("stars_", "training_", 1)
    path = os.path.join(results_dir, name)
    try:
        with h5py.File(path, "r") as handle:
            if not np.array_equal(handle["training/source_id"][...], ids):
                raise CalibrationError(f"{path}: rows are not those of {table_path}")
            return handle["training/outlier"][...]
    except (OSError, KeyError) as error:
        raise CalibrationError(f"{path}: not readable training results ({error}); "
                               "--training-results none calibrates without them") from None


def read_training_split(tables, catalogs_dir, fraction, salt, results_dir=None, outlier_bits=0):
    """Columns of the training-split stars with labels and quality_flags < 8; `offset_sample`
    marks those whose training self-cleaning bits (in `results_dir`) miss `outlier_bits`."""
    parts, zero_points = [], set()
    for path in tables:
        name = os.path.basename(path).replace("stars_", "catalog_", 1)
        catalog = os.path.join(catalogs_dir, name)
        try:
            with h5py.File(path, "r") as stars:
                ids = stars["stars/source_id"][...]
                labels = np.stack([stars[label][...].astype(np.float64) * (1.0 / per_catalog_unit)
                                   for _, _, label, _, per_catalog_unit in LABELS], axis=1)
                label_err = np.stack([stars[error][...].astype(np.float64) * (1.0 / per_catalog_unit)
                                      for _, _, _, error, per_catalog_unit in LABELS], axis=1)
                parallax = stars["stars/parallax"][...].astype(np.float64)
                parallax_err = stars["stars/parallax_error"][...].astype(np.float64)
        except (OSError, KeyError) as error:
            raise CalibrationError(f"{path}: not a labelled star table ({error})") from None
        try:
            with h5py.File(catalog, "r") as handle:
                group = handle["catalog"]
                if int(group.attrs.get("calibrated", 0)) != 0:
                    raise CalibrationError(f"{catalog}: already calibrated (make it with "
                                           "--inference.calibrate false)")
                if not np.array_equal(group["gdr3_source_id"][...], ids):
                    raise CalibrationError(f"{catalog}: rows are not those of {path}")
                estimate = group["stellar_params_est"][...].astype(np.float64)
                error = group["stellar_params_err"][...].astype(np.float64)
                flags = group["quality_flags"][...]
                zero_points.add(float(group.attrs["parallax_zero_point"]))
        except (OSError, KeyError) as error:
            raise CalibrationError(f"{catalog}: not a readable catalog ({error})") from None
        keep = (~validate.held_out(ids, fraction, salt) & (flags < 8)
                & np.all(np.isfinite(estimate), axis=1) & np.all(np.isfinite(error), axis=1))
        offset_sample = np.ones(ids.size, dtype=bool)
        if results_dir and outlier_bits:
            offset_sample = (read_outliers(results_dir, path, ids) & outlier_bits) == 0
        parts.append(dict(estimate=estimate[keep], error=error[keep], label=labels[keep],
                          label_err=label_err[keep], parallax=parallax[keep],
                          parallax_err=parallax_err[keep], offset_sample=offset_sample[keep]))
    if len(zero_points) > 1:
        raise CalibrationError(f"{catalogs_dir}: catalogs with different parallax zero points")
    data = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    data["zero_point"] = zero_points.pop() if zero_points else 0.0
    return data


# The estimates' errors as a scale mixture: the bulk and components 2, 5 and 20 times as wide, of
# the same centre (binaries, stars the model cannot describe). With one component 3 times as wide
# the bulk took part of the tail and single stars' Teff pulls came out 0.75-0.87 wide (seeds 1, 2024).
BROAD_VARIANCE_FACTORS = (4.0, 25.0, 400.0)

# The outlier-only mixture: components 5 and 20 times as wide as the whole deviation. E's prior is
# 2-5 times noisier than its estimate, so components a few times the estimate's width are hardly
# wider than its deviations; on the mock survey (seed 2024) E's floors then came out 0 in cells whose
# single stars' E pulls were 1.1-3.4 wide (docs/inference.md, "E's floors from an outlier-only mixture").
OUTLIER_VARIANCE_FACTORS = (25.0, 400.0)


def mixture_nll(p, deviation, estimate_variance, reference_variance, scale, factors, reference_factors):
    """-ln L and its gradient in p = (mu, (s / scale)^2, logits of the wide components) of

        deviation ~ sum_j wj N(mu, Fj (estimate_variance + s^2) + Rj reference_variance)

    w = softmax(0, logits); factors = (1, F1, ...), reference_factors = (1, R1, ...). The floor
    enters as a variance, whose gradient at 0 is not 0 (in ln s it vanishes as s -> 0, and an
    optimiser stops anywhere on the way to a floor of 0)."""
    factors = np.asarray(factors)[:, None]
    reference_factors = np.asarray(reference_factors)[:, None]
    floor_variance = p[1] * scale ** 2
    weight = softmax(np.concatenate([[0.0], p[2:]]))
    variance = factors * (estimate_variance + floor_variance) + reference_factors * reference_variance
    residual = deviation - p[0]
    whitened2 = residual * residual / variance
    ln_joint = np.log(weight)[:, None] - 0.5 * (whitened2 + np.log(variance))
    ln_star = logsumexp(ln_joint, axis=0)
    responsibility = np.exp(ln_joint - ln_star)
    gradient = [-np.sum(responsibility * residual / variance),
                -0.5 * scale ** 2 * np.sum(responsibility * (whitened2 - 1.0) / variance * factors)]
    gradient.extend(deviation.size * weight[1:] - responsibility[1:].sum(axis=1))
    return -ln_star.sum(), np.asarray(gradient)


def scale_mixture_nll(p, deviation, estimate_variance, reference_variance, scale):
    """mixture_nll with the estimate's errors a scale mixture, the bulk and BROAD_VARIANCE_FACTORS
    times as wide, and the reference (label, measured parallax) its stated Gaussian noise."""
    factors = (1.0,) + BROAD_VARIANCE_FACTORS
    return mixture_nll(p, deviation, estimate_variance, reference_variance, scale, factors,
                       (1.0,) * len(factors))


def outlier_mixture_nll(p, deviation, estimate_variance, reference_variance, scale):
    """mixture_nll with the bulk N(mu, estimate_variance + s^2 + reference_variance) and outliers
    OUTLIER_VARIANCE_FACTORS times as wide as all of it."""
    factors = (1.0,) + OUTLIER_VARIANCE_FACTORS
    return mixture_nll(p, deviation, estimate_variance, reference_variance, scale, factors, factors)


# (floor^2 / scale^2, logit of each wide component): no floor with most stars in the wide
# components, the median error with a quarter, twice it with a few per cent. Five starts (also
# (0, -4) and (4, 0)) gave the same tables on seed 1's main job to 1e-5, and moved seed 2024's
# median pulls by < 0.01.
MIXTURE_STARTS = [(0.0, 0.0), (1.0, -2.0), (4.0, -4.0)]


def fit_mixture(nll, components, deviation, estimate_variance, reference_variance, scale):
    """ML (mu, floor s) of nll (one of the *_mixture_nll): L-BFGS-B on the analytic gradient from
    each of MIXTURE_STARTS, the best optimum kept. The likelihood can have two optima, a floor with
    little weight in the wide components and no floor with much; on the mock, starts from a floor
    of 0 and from the median error end in different ones in many cells."""
    best = None
    for floor_variance, logit in MIXTURE_STARTS:
        start = [np.median(deviation), floor_variance] + [logit] * (components - 1)
        result = optimise_mixture(nll, start, deviation, estimate_variance, reference_variance, scale)
        if best is None or result.fun < best.fun:
            best = result
    return best.x[0], np.sqrt(best.x[1]) * scale


def optimise_mixture(nll, start, deviation, estimate_variance, reference_variance, scale):
    """scipy's result of L-BFGS-B on nll from start (p as mixture_nll's)."""
    return minimize(nll, start, jac=True, method="L-BFGS-B",
                    bounds=[(None, None), (0.0, 1e6)] + [(-30.0, 30.0)] * (len(start) - 2),
                    args=(deviation, estimate_variance, reference_variance, scale),
                    options=dict(maxiter=1000, ftol=1e-13, gtol=1e-9))


def fit_scale_mixture(deviation, estimate_variance, reference_variance, scale):
    return fit_mixture(scale_mixture_nll, 1 + len(BROAD_VARIANCE_FACTORS), deviation,
                       estimate_variance, reference_variance, scale)


def fit_outlier_mixture(deviation, estimate_variance, reference_variance, scale):
    """The floor is identified by the width of the core: the outlier components are too wide to
    take its place."""
    return fit_mixture(outlier_mixture_nll, 1 + len(OUTLIER_VARIANCE_FACTORS), deviation,
                       estimate_variance, reference_variance, scale)


MIN_FIT_STARS = 20  # fewer stars with the label (or a parallax): the values of all stars


def label_fit(data, rows, k, outlier_tail=False):
    """(offset, floor) of label k: the floor over those of `rows` in the floor sample, the offset
    over those in the offset sample (either: all of `rows` when fewer than MIN_FIT_STARS); None with
    too few labelled stars. outlier_tail: fit_outlier_mixture instead of fit_scale_mixture."""
    value = centre_and_floor(data, rows & data["floor_sample"], k, outlier_tail)
    if value is None:
        value = centre_and_floor(data, rows, k, outlier_tail)
    if value is None:
        return None
    centre = centre_and_floor(data, rows & data["offset_sample"], k, outlier_tail)
    return (value[0] if centre is None else centre[0]), value[1]


def centre_and_floor(data, rows, k, outlier_tail=False):
    rows = (rows & np.isfinite(data["label"][:, k]) & np.isfinite(data["label_err"][:, k])
            & (data["label_err"][:, k] > 0))
    if rows.sum() < MIN_FIT_STARS:
        return None
    deviation = data["estimate"][rows, k] - data["label"][rows, k] - data["label_shift"][rows, k]
    estimate_variance, label_variance = data["error"][rows, k] ** 2, data["label_err"][rows, k] ** 2
    scale = np.median(data["error"][rows, k])
    if outlier_tail:
        return fit_outlier_mixture(deviation, estimate_variance, label_variance, scale)
    return fit_scale_mixture(deviation, estimate_variance, label_variance, scale)


SPECTRUM_SHARE_MIN = 1e-6  # below this share of the parallax information the spectrum has none
FLOOR_PARALLAX_SNR_MIN = 10.0  # the parallax floor is fitted on stars with parallax / error above


def parallax_usable(data):
    return np.isfinite(data["parallax"]) & np.isfinite(data["parallax_err"]) & (data["parallax_err"] > 0)


def spectrophotometric_parallax(data):
    """(p_sp, s^2, measured p - zp, its variance, has_spectrum) per star: the spectrum's parallax and
    variance taken back out of the joint estimate (uncertainty_calibration.cpp does the same).
    has_spectrum is False where a measured parallax carries all the information."""
    estimate, variance = data["estimate"][:, 4], data["error"][:, 4] ** 2
    measured = data["parallax"] - data["zero_point"]
    measured_variance = data["parallax_err"] ** 2
    usable = parallax_usable(data)
    with np.errstate(invalid="ignore", divide="ignore"):
        room = measured_variance - variance
        has_spectrum = ~usable | (room > SPECTRUM_SHARE_MIN * measured_variance)
        decombined = usable & has_spectrum
        spectro_variance = np.where(decombined, variance * measured_variance / room, variance)
        spectro = np.where(decombined, estimate + (estimate - measured) * spectro_variance / measured_variance,
                           estimate)
    return spectro, spectro_variance, measured, measured_variance, has_spectrum


def parallax_fit(data, rows, offset_rows=None):
    """(relative offset c over `offset_rows`, relative floor f over `rows`) of the spectrophotometric
    parallax, or None (too few stars with a measured parallax)."""
    spectro, spectro_variance, measured, measured_variance, has_spectrum = spectrophotometric_parallax(data)
    usable = parallax_usable(data) & has_spectrum & (data["estimate"][:, 4] > 0)
    rows = rows & usable
    if rows.sum() < MIN_FIT_STARS:
        return None
    # in units of the joint estimate: precise, positive (the fit's parameter is ln parallax), and
    # unlike p_sp not noisy enough to skew the ratio
    scale_parallax = data["estimate"][:, 4]
    relative = (spectro - measured) / scale_parallax
    with np.errstate(invalid="ignore", divide="ignore"):
        own_variance = spectro_variance / scale_parallax ** 2
        reference_variance = measured_variance / scale_parallax ** 2
    scale = np.median(np.sqrt(own_variance[rows]))
    centre_rows = rows
    if offset_rows is not None and (offset_rows & rows).sum() >= MIN_FIT_STARS:
        centre_rows = offset_rows & rows
    centre, _ = fit_scale_mixture(relative[centre_rows], own_variance[centre_rows],
                                  reference_variance[centre_rows], scale)
    # Only where the measurement can tell: with a noisy measurement the width is that of its own
    # noise whatever f is, and such stars would pull the robust width towards 1.
    telling = rows & (reference_variance < FLOOR_PARALLAX_SNR_MIN ** -2)
    if telling.sum() < MIN_FIT_STARS:
        telling = rows
    floor = robust_floor(relative[telling] - centre, own_variance[telling] + reference_variance[telling])
    return centre, floor


def robust_floor(deviation, variance):
    """The f >= 0 for which deviation / sqrt(variance + f^2) has a robust sd of 1.

    Not the mixture fit's floor: the spectrophotometric parallaxes' errors are so heavy-tailed that
    the fit gave their bulk a floor of 0-9 % and half of them to its broad component, and catalogs
    of the spectrum alone then had pulls 1.6 wide."""
    def width(f):
        return validate.robust_std(deviation / np.sqrt(variance + f * f))
    if width(0.0) <= 1.0:
        return 0.0
    low, high = 0.0, 2.0 * validate.robust_std(deviation)
    while width(high) > 1.0:
        high *= 2.0
    for _ in range(60):
        middle = 0.5 * (low + high)
        low, high = (middle, high) if width(middle) > 1.0 else (low, middle)
    return 0.5 * (low + high)


def parse_label_names(text, option):
    """[4] bools: which of LABELS' names the comma-separated `text` lists ('none': no label)."""
    names = [name for name, *_ in LABELS]
    chosen = [] if text.strip() == "none" else [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in chosen if v not in names]
    if unknown:
        raise CalibrationError(f"{option}: unknown label {unknown[0]!r} "
                               f"(labels: {', '.join(names)}; or none)")
    return tuple(name in chosen for name in names)


def cell_index(teff_kK, logg, teff_edges, logg_edges):
    return np.digitize(teff_kK, teff_edges) * (len(logg_edges) + 1) + np.digitize(logg, logg_edges)


def parallax_cells(data, teff_edges, logg_edges, min_stars):
    """Per cell relative offset and floor of the spectrophotometric parallax (parallax_fit; cells
    with fewer than min_stars stars, or too few parallaxes, take the values of all stars), and
    those global values. All that parallax_consistency needs of a table."""
    cells = (len(teff_edges) + 1) * (len(logg_edges) + 1)
    cell = cell_index(data["estimate"][:, 0], data["estimate"][:, 2], teff_edges, logg_edges)
    everyone = np.ones(cell.size, dtype=bool)
    global_parallax = parallax_fit(data, everyone, data["offset_sample"])
    global_parallax = (0.0, 0.0) if global_parallax is None else global_parallax  # no parallaxes: no term
    parallax_offset, parallax_floor = np.zeros(cells), np.zeros(cells)
    for c in range(cells):
        rows = cell == c
        value = parallax_fit(data, rows, data["offset_sample"]) if rows.sum() >= min_stars else None
        parallax_offset[c], parallax_floor[c] = global_parallax if value is None else value
    return dict(parallax_offset_frac=parallax_offset, parallax_floor_frac=parallax_floor,
                teff_edges_kK=np.asarray(teff_edges, float), logg_edges=np.asarray(logg_edges, float),
                global_parallax_offset_frac=global_parallax[0],
                global_parallax_floor_frac=global_parallax[1])


def cell_table(data, teff_edges, logg_edges, min_stars, outlier_tail=(False,) * 4):
    """Per cell offsets [n x 4], floors [n x 4], parallax offset and floor (parallax_cells), stars;
    the labels' deviations less data["label_shift"] (the metallicity curve's part). outlier_tail:
    per label, whether its fits use fit_outlier_mixture."""
    cells = (len(teff_edges) + 1) * (len(logg_edges) + 1)
    cell = cell_index(data["estimate"][:, 0], data["estimate"][:, 2], teff_edges, logg_edges)
    everyone = np.ones(cell.size, dtype=bool)
    offset, floor, stars = np.zeros((cells, 4)), np.zeros((cells, 4)), np.zeros(cells)
    global_values = [label_fit(data, everyone, k, outlier_tail[k]) for k in range(4)]
    for (name, *_), value in zip(LABELS, global_values):
        if value is None:
            raise CalibrationError(f"fewer than {MIN_FIT_STARS} training-split stars with a {name} label")
    for c in range(cells):
        rows = cell == c
        own = rows.sum() >= min_stars
        stars[c] = rows.sum() if own else 0
        for k in range(4):
            value = label_fit(data, rows, k, outlier_tail[k]) if own else None
            offset[c, k], floor[c, k] = global_values[k] if value is None else value
    table = parallax_cells(data, teff_edges, logg_edges, min_stars)
    table.update(offset=offset, floor=floor, stars=stars,
                 global_offset=[g[0] for g in global_values], global_floor=[g[1] for g in global_values])
    return table


CURVE_ROUNDS = 2  # cells, curve, cells, curve, cells: a third round moves the offsets by < 1e-3 dex
HUBER_THRESHOLD = 1.5  # the curve's robust least squares: residuals beyond 1.5 sigma weigh less


def hat_basis(x, knots):
    """[n x knots]: the weights of linear interpolation between the knots, constant beyond them
    (uncertainty_calibration.cpp, UncertaintyCalibration::offset_of)."""
    knots = np.asarray(knots, dtype=np.float64)
    x = np.clip(np.nan_to_num(x, nan=knots[0]), knots[0], knots[-1])
    upper = np.clip(np.searchsorted(knots, x, side="right"), 1, knots.size - 1)
    t = (x - knots[upper - 1]) / (knots[upper] - knots[upper - 1])
    basis = np.zeros((x.size, knots.size))
    basis[np.arange(x.size), upper - 1] = 1.0 - t
    basis[np.arange(x.size), upper] += t
    return basis


def fit_curve(deviation, variance, basis):
    """Robust (Huber) weighted least squares of deviation ~ basis @ values. A slight penalty on the
    values' second differences carries the curve linearly over knots without stars."""
    weight = 1.0 / variance
    knots = basis.shape[1]
    second_difference = np.diff(np.eye(knots), 2, axis=0)
    smoothing = weight.sum() * (1e-4 / knots * (second_difference.T @ second_difference) + 1e-9 * np.eye(knots))
    values = np.zeros(knots)
    for _ in range(10):
        whitened = (deviation - basis @ values) * np.sqrt(weight)
        robust_weight = weight * np.minimum(1.0, HUBER_THRESHOLD / np.maximum(np.abs(whitened), 1e-12))
        values = np.linalg.solve(basis.T @ (basis * robust_weight[:, None]) + smoothing,
                                 basis.T @ (robust_weight * deviation))
    return values


def feh_curve(data, table, basis):
    """[knots x 4]: what the labels' deviations, less their cells' offsets, have left as a function
    of the estimated [Fe/H]; fitted on the offset sample with the cells' floors in the weights."""
    cell = cell_index(data["estimate"][:, 0], data["estimate"][:, 2], table["teff_edges_kK"], table["logg_edges"])
    curve = np.zeros((basis.shape[1], 4))
    for k in range(4):
        deviation = data["estimate"][:, k] - data["label"][:, k] - table["offset"][cell, k]
        variance = data["error"][:, k] ** 2 + data["label_err"][:, k] ** 2 + table["floor"][cell, k] ** 2
        rows = (data["offset_sample"] & np.isfinite(deviation) & np.isfinite(variance)
                & (data["label_err"][:, k] > 0))
        if rows.sum() < MIN_FIT_STARS:
            continue  # no curve for a label nobody has
        curve[:, k] = fit_curve(deviation[rows], variance[rows], basis[rows])
    return curve


def calibrate_cells(data, teff_edges, logg_edges, min_stars, feh_knots=(), outlier_tail=(False,) * 4):
    """The /calibration table for the offset and floor samples as given: cells (cell_table) and,
    with feh_knots, the offsets' [Fe/H] curve, fitted in turns (backfitting: each given the other)."""
    shift = np.zeros((data["estimate"].shape[0], 4))
    table = cell_table(dict(data, label_shift=shift), teff_edges, logg_edges, min_stars, outlier_tail)
    curve = np.zeros((len(feh_knots), 4))
    if len(feh_knots):
        basis = hat_basis(data["estimate"][:, 1], feh_knots)
        for _ in range(CURVE_ROUNDS):
            curve = feh_curve(data, table, basis)
            table = cell_table(dict(data, label_shift=basis @ curve), teff_edges, logg_edges, min_stars,
                               outlier_tail)
    table.update(feh_knots=np.asarray(feh_knots, dtype=np.float64), feh_offset=curve)
    return table


def calibrated_spectrophotometric_parallax(table, data, cell):
    """spectrophotometric_parallax(data) with p_sp - c p and s^2 + (f p)^2 of each star's cell."""
    spectro, spectro_variance, measured, measured_variance, has_spectrum = spectrophotometric_parallax(data)
    joint = data["estimate"][:, 4]
    spectro = spectro - table["parallax_offset_frac"][cell] * joint
    spectro_variance = spectro_variance + (table["parallax_floor_frac"][cell] * joint) ** 2
    return spectro, spectro_variance, measured, measured_variance, has_spectrum


def parallax_consistency(table, data):
    """[n]: (p_sp - (parallax_obs - zp)) / sqrt(s^2 + parallax_err^2), p_sp and s as the table
    calibrates them; NaN without a measured parallax or a spectrophotometric one."""
    cell = cell_index(data["estimate"][:, 0], data["estimate"][:, 2], table["teff_edges_kK"],
                      table["logg_edges"])
    spectro, spectro_variance, measured, measured_variance, has_spectrum = \
        calibrated_spectrophotometric_parallax(table, data, cell)
    with np.errstate(invalid="ignore", divide="ignore"):
        consistency = (spectro - measured) / np.sqrt(spectro_variance + measured_variance)
    return np.where(parallax_usable(data) & has_spectrum, consistency, np.nan)


CONSISTENCY_ROUNDS = 2  # the cut moves the parallax offset it is measured against; a third round
                        # moved the median pulls by < 0.01 on the mock


def calibrate(data, teff_edges, logg_edges, min_stars, feh_knots=(), outlier_tail=(False,) * 4,
              offset_max_z=np.inf, floor_max_z=np.inf):
    """calibrate_cells, then CONSISTENCY_ROUNDS times again with the offset sample cut to
    |parallax_consistency| < offset_max_z and the floor sample to < floor_max_z (from the previous
    table; stars without both parallaxes stay). The cut is symmetric about the single stars'
    centre, so it does not choose them by the sign of their errors as the one-sided self-cleaning
    rules do, and it removes binaries, whose spectrophotometric parallaxes are too large."""
    self_cleaned = data["offset_sample"]
    data = dict(data, floor_sample=np.ones(self_cleaned.size, dtype=bool))
    if np.isinf(offset_max_z) and np.isinf(floor_max_z):
        return calibrate_cells(data, teff_edges, logg_edges, min_stars, feh_knots, outlier_tail)
    # the cells' parallax offsets and floors (which neither the labels nor the curve touch) place
    # the first cut
    table = parallax_cells(data, teff_edges, logg_edges, min_stars)
    for _ in range(CONSISTENCY_ROUNDS):
        consistency = np.abs(parallax_consistency(table, data))
        untold = np.isnan(consistency)
        data["offset_sample"] = self_cleaned & (untold | (consistency < offset_max_z))
        data["floor_sample"] = untold | (consistency < floor_max_z)
        table = calibrate_cells(data, teff_edges, logg_edges, min_stars, feh_knots, outlier_tail)
    table.update(offset_sample_stars=int(data["offset_sample"].sum()),
                 floor_sample_stars=int(data["floor_sample"].sum()))
    return table


def label_offsets(table, estimate):
    """[n x 4]: what xps_infer subtracts from each star's labels: its cell's offsets plus the curve."""
    cell = cell_index(estimate[:, 0], estimate[:, 2], table["teff_edges_kK"], table["logg_edges"])
    offsets = table["offset"][cell]
    if len(table.get("feh_knots", ())):
        offsets = offsets + hat_basis(estimate[:, 1], table["feh_knots"]) @ table["feh_offset"]
    return offsets


def apply(table, data):
    """Estimates and errors as xps_infer would write them (uncertainty_calibration.cpp)."""
    cell = cell_index(data["estimate"][:, 0], data["estimate"][:, 2], table["teff_edges_kK"],
                      table["logg_edges"])
    estimate = data["estimate"].copy()
    variance = data["error"] ** 2
    estimate[:, :4] -= label_offsets(table, data["estimate"])
    variance[:, :4] += table["floor"][cell] ** 2
    spectro, spectro_variance, measured, measured_variance, has_spectrum = \
        calibrated_spectrophotometric_parallax(table, data, cell)
    usable = parallax_usable(data)
    with np.errstate(invalid="ignore", divide="ignore"):
        combined_variance = 1.0 / (1.0 / spectro_variance + 1.0 / measured_variance)
        combined = combined_variance * (spectro / spectro_variance + measured / measured_variance)
    estimate[:, 4] = np.where(usable, combined, spectro)
    variance[:, 4] = np.where(usable, combined_variance, spectro_variance)
    keep = ~has_spectrum  # the measurement alone: unchanged
    estimate[keep, 4], variance[keep, 4] = data["estimate"][keep, 4], data["error"][keep, 4] ** 2
    return estimate, np.sqrt(variance)


def label_consistency(data, estimate, error):
    """Robust sd of (estimate - label) / sqrt(err^2 + label_err^2) per label, and of the
    spectrophotometric parallax against the measured one (needs no truth)."""
    out = []
    for k in range(4):
        z = (estimate[:, k] - data["label"][:, k]) / np.sqrt(error[:, k] ** 2 + data["label_err"][:, k] ** 2)
        out.append(validate.robust_std(z[np.isfinite(z)]))
    # The spectrophotometric parallax the estimate was combined from, against the measured one.
    spectro, spectro_variance, measured, measured_variance, has_spectrum = spectrophotometric_parallax(
        dict(data, estimate=estimate, error=error))
    use = parallax_usable(data) & has_spectrum
    z = (spectro[use] - measured[use]) / np.sqrt(spectro_variance[use] + measured_variance[use])
    out.append(validate.robust_std(z[np.isfinite(z)]))
    return out


def write_table(model_path, table):
    def edit(handle):
        if "calibration" in handle:
            del handle["calibration"]
        group = handle.create_group("calibration")
        for name, unit in [("teff_edges_kK", "kK"), ("logg_edges", "dex"),
                           ("offset", "kK, dex, dex, mag"), ("floor", "kK, dex, dex, mag"),
                           ("parallax_offset_frac", ""), ("parallax_floor_frac", ""), ("stars", ""),
                           ("feh_knots", "dex"), ("feh_offset", "kK, dex, dex, mag")]:
            if name.startswith("feh_") and not len(table["feh_knots"]):
                continue  # no curve: no datasets (xps_infer reads none)
            dataset = group.create_dataset(name, data=np.asarray(table[name], dtype=np.float64),
                                           track_times=False)
            dataset.attrs["units"] = unit
    training_split.update_model_file(model_path, edit)


def report(table, before, after, n_stars):
    lines = [f"{PROGRAM}: {n_stars} training-split stars with labels and quality_flags < 8"]
    names = [name for name, *_ in LABELS]
    lines.append("  all stars: offset " + ", ".join(
        f"{n} {o:+.4g} {u}" for n, o, u in zip(names, table["global_offset"], UNITS)))
    lines.append("             floor  " + ", ".join(
        f"{n} {f:.4g} {u}" for n, f, u in zip(names, table["global_floor"], UNITS))
        + f", parallax {100 * table['global_parallax_floor_frac']:.3g} % of the spectrophotometric parallax"
        + f" (offset {100 * table['global_parallax_offset_frac']:+.3g} %)")
    lines.append("  cell (Teff kK, log g)          stars  offset Teff  [Fe/H]   log g      E   "
                 "floor Teff  [Fe/H]  log g      E   parallax offset, floor %")
    teff_edges = [-np.inf] + list(table["teff_edges_kK"]) + [np.inf]
    logg_edges = [-np.inf] + list(table["logg_edges"]) + [np.inf]
    c = 0
    for i in range(len(teff_edges) - 1):
        for j in range(len(logg_edges) - 1):
            if table["stars"][c] > 0:
                o, f = table["offset"][c], table["floor"][c]
                lines.append(f"  [{teff_edges[i]:>4g},{teff_edges[i+1]:<4g}) x [{logg_edges[j]:>4g},{logg_edges[j+1]:<4g})"
                             f" {int(table['stars'][c]):>7d}  {o[0]:+.4f} {o[1]:+.4f} {o[2]:+.4f} {o[3]:+.4f}"
                             f"  {f[0]:.4f} {f[1]:.4f} {f[2]:.4f} {f[3]:.4f}  {100 * table['parallax_offset_frac'][c]:+6.2f}"
                             f" {100 * table['parallax_floor_frac'][c]:6.2f}")
            c += 1
    if len(table["feh_knots"]):
        lines.append("  added to the cells' offsets, linear in the estimate's [Fe/H] between knots:")
        lines.append("    [Fe/H]   Teff     [Fe/H]   log g     E")
        for knot, values in zip(table["feh_knots"], table["feh_offset"]):
            lines.append(f"    {knot:+5.2f}  " + " ".join(f"{value:+.4f}" for value in values))
    lines.append("  robust sd of (estimate - label) / sqrt(err^2 + label_err^2) and of the spectrophotometric "
                 "parallax against the measured one, before -> after:")
    lines.append("    " + ", ".join(f"{n} {b:.3f} -> {a:.3f}"
                                    for n, b, a in zip(names + ["parallax"], before, after)))
    return "\n".join(lines)


def run(args):
    teff_edges = parse_edges(args.teff_edges, "--teff-edges")
    logg_edges = parse_edges(args.logg_edges, "--logg-edges")
    feh_knots = [] if args.feh_knots == "none" else parse_edges(args.feh_knots, "--feh-knots")
    if len(feh_knots) == 1:
        raise CalibrationError(f"--feh-knots: none or at least two knots: {args.feh_knots!r}")
    outlier_tail = parse_label_names(args.outlier_tail_labels, "--outlier-tail-labels")
    if not os.path.isfile(args.model):
        raise CalibrationError(f"{args.model}: no such model file")
    tables, rows = training_split.choose_tables(args.stars, args.max_stars)
    work = None
    catalogs = args.catalogs
    if catalogs is None:
        work, stars_link_dir = training_split.scratch_with_links(args, "calibration_work", tables)
        catalogs = os.path.join(work, "catalog")
        print(f"{PROGRAM}: xps_infer on {len(tables)} star tables ({rows} stars) -> {catalogs}", flush=True)
        training_split.run_xps_infer(args, stars_link_dir, catalogs, ["--inference.calibrate", "false"])
    results_dir = training_results_dir(args)
    data = read_training_split(tables, catalogs, args.validation_fraction, args.split_salt,
                               results_dir, args.outlier_bits)
    if results_dir and args.outlier_bits:
        print(f"{PROGRAM}: {int((~data['offset_sample']).sum())} training-split stars left out of "
              f"the offsets as self-cleaning outliers (bits {args.outlier_bits} of {results_dir})",
              flush=True)
    n_stars = data["estimate"].shape[0]
    if n_stars < args.min_stars:
        raise CalibrationError(f"{args.stars}: {n_stars} usable training-split stars, fewer than "
                               f"--min-stars {args.min_stars}")
    table = calibrate(data, teff_edges, logg_edges, args.min_stars, feh_knots, outlier_tail,
                      args.offset_max_z, args.floor_max_z)
    if "offset_sample_stars" in table:
        print(f"{PROGRAM}: parallax consistency: offsets from {table['offset_sample_stars']} stars "
              f"(|z| < {args.offset_max_z:g} and not self-cleaned), floors from "
              f"{table['floor_sample_stars']} (|z| < {args.floor_max_z:g}) of {n_stars}", flush=True)
    before = label_consistency(data, data["estimate"], data["error"])
    after = label_consistency(data, *apply(table, data))
    write_table(args.model, table)
    print(report(table, before, after, n_stars))
    print(f"{PROGRAM}: written to {args.model} /calibration "
          f"({int((table['stars'] > 0).sum())} of {len(table['stars'])} cells with their own values)")
    if work and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return table


def training_results_dir(args):
    """The directory of xps_train's per-star results, or None (not used)."""
    if args.training_results == "none":
        return None
    if args.training_results is not None:
        if not os.path.isdir(args.training_results):
            raise CalibrationError(f"{args.training_results}: no such training-results directory")
        return args.training_results
    beside_model = os.path.splitext(args.model)[0] + "_training"
    return beside_model if os.path.isdir(beside_model) else None


def parse_args(argv):
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    training_split.add_common_arguments(parser, "calibration_work", 200000, "used")
    parser.add_argument("--catalogs", default=None,
                        help="uncalibrated catalogs of those tables (default: run xps_infer)")
    parser.add_argument("--teff-edges", default="4.0,4.5,5.0,5.5,6.0,6.5",
                        help="interior Teff edges of the cells [kK]")
    parser.add_argument("--logg-edges", default="2.0,3.0,3.8,4.3",
                        help="interior log g edges of the cells [dex]")
    parser.add_argument("--feh-knots", default="-1.5,-1.0,-0.6,-0.3,0.0,0.3,0.6",
                        help="knots in the estimate's [Fe/H] of an offset curve added to the cells' "
                             "offsets [dex]; 'none': cells alone")
    parser.add_argument("--min-stars", type=int, default=300,
                        help="a cell with fewer training stars takes the values of all stars")
    parser.add_argument("--training-results", default=None,
                        help="xps_train's per-star results (training_<L>_<pixel>.h5; default: "
                             "MODEL_training beside the model when it exists; 'none': not used)")
    parser.add_argument("--outlier-bits", type=int, default=4,
                        help="offsets leave out stars whose training `outlier` bits share one with "
                             "this (1 labels/parallax, 2 flux, 4 joint; 0: keep every star)")
    parser.add_argument("--outlier-tail-labels", default="E",
                        help="labels whose floors are fitted with outlier components 5 and 20 times "
                             "the whole deviation's width, not 2, 5 and 20 times the estimate's "
                             "(comma-separated of Teff, [Fe/H], log g, E; 'none')")
    parser.add_argument("--offset-max-z", type=float, default=1.0,
                        help="offsets also leave out stars whose calibrated spectrophotometric "
                             "parallax differs from the measured one by this many sigma or more "
                             "(inf: no cut)")
    parser.add_argument("--floor-max-z", type=float, default=2.0,
                        help="floors leave out stars whose calibrated spectrophotometric parallax "
                             "differs from the measured one by this many sigma or more (inf: no cut)")
    args = training_split.parse_common_arguments(parser, argv)
    if not (args.offset_max_z > 0 and args.floor_max_z > 0):
        parser.error("--offset-max-z and --floor-max-z must be positive (inf: no cut)")
    if args.min_stars < 1:
        parser.error("--min-stars must be positive")
    if not 0 <= args.outlier_bits <= 255:
        parser.error("--outlier-bits must be 0-255")
    return args


def main(argv=None):
    return training_split.tool_main(PROGRAM, run, parse_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
