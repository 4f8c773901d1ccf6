#!/usr/bin/python3
"""Chooses the model-error terms of inference and writes them into the model file.

A trained flux model is not exact, and its errors are smooth in wavelength: they look like small
changes of Teff, [Fe/H] or E, or like a different flux level (a different parallax). The paper's
inflation (a per-sample and a joint 0.5 % term) cannot say so, and a fit then trusts the spectrum
too much. Inference can add two terms to each star's covariance (docs/inference.md):

    level_frac  e   e^2 f_i f_j over every band (XP and NIR)
    smooth_frac g   g^2 f_i f_j exp(-(lambda_i - lambda_j)^2 / 2 l^2) over the XP samples

This tool picks e and g (l fixed) by cross-validation against what a real survey has: the
spectroscopic labels and E priors of the training sample. For each candidate it runs xps_infer
(which never sees labels) on star tables of the training sample and scores the fits by

    score = sum over Teff, [Fe/H], log g, E of robust_var((estimate - label) / label_err)

over the labelled stars of the training split (the stars that tools/validate.py does not use).
Label noise adds the same amount to every candidate, so the lowest score is the most accurate
setting. Coordinate search: g over its grid at the smallest e, then e at the best g, then g again.
The chosen values go into /model/inflation (attributes level_frac, smooth_frac, smooth_length_nm,
and model_error_selection: the table of scores), written to a temporary file and renamed, so every
later xps_infer run uses them unless its model_error.* keys say otherwise. A /calibration made for
the old terms (tools/calibrate_uncertainties.py) is removed; the candidates are fitted without it.

Usage: /usr/bin/python3 tools/select_model_error.py --model MODEL.h5 --stars DIR
           [--launcher "mpirun -np 2"] [--xps-infer build/bin/xps_infer] [--work DIR]
           [--max-stars 8000] [--smooth-grid 0,0.01,0.02,0.03,0.05] [--level-grid 0,0.02,0.05,0.1]
           [--smooth-length 100] [--validation-fraction 0.2] [--split-salt 0] [--infer-arg=ARG ...]

Exit status: 0 when the model file was updated, 2 on bad usage, unreadable input or a failed
xps_infer run (the message names the file or the command).
"""
import argparse
import os
import shutil
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import training_split  # noqa: E402  (options, table choice, the xps_infer run, the model update)
import validate  # noqa: E402  (the validation split and the partition file names)

PROGRAM = "select_model_error"
SCORED = training_split.LABELS


SelectionError = training_split.ToolError


def parse_grid(text, option):
    try:
        values = sorted({float(v) for v in text.split(",") if v.strip()})
    except ValueError:
        raise SelectionError(f"{option}: not a comma-separated list of numbers: {text!r}") from None
    if not values or min(values) < 0 or max(values) >= 1:
        raise SelectionError(f"{option}: values must lie in [0, 1): {text!r}")
    return values


def read_labels(tables, fraction, salt):
    """Per table: the labels and errors of the training-split stars (NaN elsewhere)."""
    labels = {}
    for path in tables:
        with h5py.File(path, "r") as handle:
            ids = handle["stars/source_id"][...]
            training = ~validate.held_out(ids, fraction, salt)
            columns = {}
            for name, _, label, error, _ in SCORED:
                if label not in handle or error not in handle:
                    raise SelectionError(f"{path}: /{label} or /{error} missing (labelled star "
                                         "tables needed)")
                value = handle[label][...].astype(np.float64)
                sigma = handle[error][...].astype(np.float64)
                usable = training & np.isfinite(value) & np.isfinite(sigma) & (sigma > 0)
                columns[name] = (np.where(usable, value, np.nan), sigma)
            labels[os.path.basename(path)] = (ids, columns)
    return labels


def robust_variance(z):
    return (validate.MAD_TO_SIGMA * np.median(np.abs(z - np.median(z)))) ** 2


def score_catalogs(catalog_dir, labels):
    """(total score, {parameter: (robust variance, stars)}) of one candidate's catalogs."""
    deviations = {name: [] for name, *_ in SCORED}
    for table_name, (ids, columns) in labels.items():
        path = os.path.join(catalog_dir, table_name.replace("stars_", "catalog_", 1))
        try:
            with h5py.File(path, "r") as handle:
                catalog_ids = handle["catalog/gdr3_source_id"][...]
                estimate = handle["catalog/stellar_params_est"][...].astype(np.float64)
        except (OSError, KeyError) as error:
            raise SelectionError(f"{path}: not a readable catalog ({error})") from None
        if not np.array_equal(catalog_ids, ids):
            raise SelectionError(f"{path}: rows are not those of its star table")
        for name, column, _, _, factor in SCORED:
            value, sigma = columns[name]
            z = (estimate[:, column] * factor - value) / sigma
            deviations[name].append(z[np.isfinite(z)])
    parts = {}
    for name, pieces in deviations.items():
        z = np.concatenate(pieces)
        if z.size >= 20:
            parts[name] = (robust_variance(z), z.size)
    if not parts:
        raise SelectionError(f"{catalog_dir}: fewer than 20 labelled training stars fitted")
    return sum(v for v, _ in parts.values()), parts


def run_inference(args, stars_link_dir, output_dir, smooth, level):
    training_split.run_xps_infer(args, stars_link_dir, output_dir, [
        "--model_error.smooth_frac", repr(smooth), "--model_error.level_frac", repr(level),
        "--model_error.smooth_length", repr(args.smooth_length), "--inference.calibrate", "false"])


def write_choice(model_path, smooth, level, length, table_text):
    def edit(handle):
        if "model/inflation" not in handle:
            raise SelectionError(f"{model_path}: no /model/inflation (not a model file?)")
        attributes = handle["model/inflation"].attrs
        attributes["level_frac"] = np.float64(level)
        attributes["smooth_frac"] = np.float64(smooth)
        attributes["smooth_length_nm"] = np.float64(length)
        attributes["model_error_selection"] = table_text
        if "calibration" in handle:  # fitted to the fits of the old terms
            del handle["calibration"]
            print(f"{PROGRAM}: removed /calibration from {model_path} (made with the previous "
                  "model-error terms): run tools/calibrate_uncertainties.py again", flush=True)
    training_split.update_model_file(model_path, edit)


def select(args):
    smooth_grid = parse_grid(args.smooth_grid, "--smooth-grid")
    level_grid = parse_grid(args.level_grid, "--level-grid")
    if not os.path.isfile(args.model):
        raise SelectionError(f"{args.model}: no such model file")
    tables, rows = training_split.choose_tables(args.stars, args.max_stars)
    labels = read_labels(tables, args.validation_fraction, args.split_salt)
    work, stars_link_dir = training_split.scratch_with_links(args, "model_error_selection", tables)
    print(f"{PROGRAM}: {len(tables)} star tables, {rows} stars (training split scored), "
          f"smooth_length {args.smooth_length:g} nm", flush=True)

    results = {}

    def evaluate(smooth, level):
        key = (smooth, level)
        if key not in results:
            output = os.path.join(work, f"catalog_g{smooth:g}_e{level:g}")
            run_inference(args, stars_link_dir, output, smooth, level)
            results[key] = score_catalogs(output, labels)
            total, parts = results[key]
            detail = "  ".join(f"{name} {variance:.3f}" for name, (variance, _) in parts.items())
            print(f"  smooth_frac {smooth:<6g} level_frac {level:<6g} score {total:.4f}  ({detail})",
                  flush=True)
        return results[key][0]

    level = level_grid[0]
    smooth = min(smooth_grid, key=lambda g: evaluate(g, level))
    level = min(level_grid, key=lambda e: evaluate(smooth, e))
    smooth = min(smooth_grid, key=lambda g: evaluate(g, level))

    names = [name for name, *_ in SCORED]
    lines = ["smooth_frac level_frac score " + " ".join(n.replace(" ", "") for n in names)]
    for (g, e), (total, parts) in sorted(results.items(), key=lambda item: item[1][0]):
        lines.append(f"{g:g} {e:g} {total:.4f} " +
                     " ".join(f"{parts[n][0]:.4f}" if n in parts else "nan" for n in names))
    write_choice(args.model, smooth, level, args.smooth_length, "\n".join(lines))
    baseline = results.get((0.0, 0.0))
    print(f"{PROGRAM}: chose smooth_frac {smooth:g}, level_frac {level:g} (smooth_length "
          f"{args.smooth_length:g} nm): score {results[(smooth, level)][0]:.4f}"
          + (f", {baseline[0]:.4f} without model error" if baseline else "")
          + f"; written to {args.model} /model/inflation")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return smooth, level


def parse_args(argv):
    parser = argparse.ArgumentParser(prog=PROGRAM, description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    training_split.add_common_arguments(parser, "model_error_selection", 8000, "scored")
    parser.add_argument("--smooth-grid", default="0,0.01,0.02,0.03,0.05",
                        help="candidate smooth_frac values")
    parser.add_argument("--level-grid", default="0,0.02,0.05,0.1", help="candidate level_frac values")
    parser.add_argument("--smooth-length", type=float, default=100.0,
                        help="correlation length of the smooth term [nm]")
    args = training_split.parse_common_arguments(parser, argv)
    if not args.smooth_length >= 1:
        parser.error("--smooth-length must be at least 1 nm")
    return args


def main(argv=None):
    return training_split.tool_main(PROGRAM, select, parse_args(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    sys.exit(main())
