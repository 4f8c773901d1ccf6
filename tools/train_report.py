#!/usr/bin/env python3
"""Training report on a mock survey (issue 4): how close the learned model is to the truth model.

    /usr/bin/python3 tools/train_report.py --model out/model.h5 --stars out/report_stars \
        --output out/train_report

Reads the model file, the mock star tables (with /truth) and the per-star results next to the
model (MODEL_training/), and writes OUTPUT/report.txt and OUTPUT/report.png:

* the learned extinction curve R against the truth curve, both normalised at 550 nm;
* the model's noiseless flux at the true Theta, parallax and E of single, non-pathological stars
  against the truth's noiseless flux, split into a level (mean ln ratio over the XP bands) and a
  shape (the rest), for dwarfs and giants, and mapped over the Kiel diagram;
* self-cleaning: the share of trained stars removed, by mass ratio and parallax S/N, the count
  of each criterion, and the best separation of binaries any luminosity test could reach in this
  mock (from the truth).
"""
import argparse
import glob
import os
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import xps_model  # noqa: E402


def load_stars(stars_dir, results_dir):
    columns = {}
    for path in sorted(glob.glob(os.path.join(stars_dir, "stars_*.h5"))):
        name = os.path.basename(path).replace("stars_", "training_")
        with h5py.File(path) as f, h5py.File(os.path.join(results_dir, name)) as r:
            s, t, tr = f["stars"], f["truth"], r["training"]
            part = {
                "parallax_obs": s["parallax"][:], "parallax_err": s["parallax_error"][:],
                "teff": t["teff"][:], "feh": t["feh"][:], "logg": t["logg"][:], "E": t["E"][:],
                "parallax": t["parallax"][:], "q": t["mass_ratio"][:], "binary": t["is_binary"][:],
                "pathology": t["pathology"][:], "flux_true": t["flux"][:],
                "role": tr["role"][:], "outlier": tr["outlier"][:],
                "fit_teff": tr["teff"][:], "fit_logg": tr["logg"][:],
            }
            curve = f["truth/meta/extinction_R"][:]
            wavelength = f["meta/wavelength_nm"][:]
            config = r["meta"].attrs.get("model", "")
        for k, v in part.items():
            columns.setdefault(k, []).append(v)
    return {k: np.concatenate(v) for k, v in columns.items()}, curve, wavelength


def at_550(wavelength, values):
    return np.interp(550.0, wavelength[:61], values[:61])


def log_g_axis(d, index, theta, level):
    """How the learned model's log g axis compares with the truth's, for main-sequence dwarfs.

    At fixed Teff the truth's luminosity falls by ln 10 per dex of log g. Against the offset of
    the true log g from the median at that Teff, the level error's slope says how far the model's
    slope is from that, and the trained stars' fitted offsets (high parallax S/N, where the
    parallax pins the luminosity) say how much the joint fit has stretched the axis (1 = not)."""
    teff, logg = theta[:, 0], theta[:, 2]
    dwarf = (logg > 3.8) & (teff > 4000) & (teff < 7000)
    edges = np.arange(4000, 7001, 100)
    bin_of = np.digitize(teff, edges)
    ridge = np.full(len(edges) + 1, np.nan)
    for k in range(len(ridge)):
        members = dwarf & (bin_of == k)
        if members.sum() >= 20:
            ridge[k] = np.median(logg[members])
    offset = logg - ridge[bin_of]
    use = dwarf & np.isfinite(offset)
    if use.sum() < 100:
        return []
    design = np.vstack([offset[use], np.ones(use.sum())]).T
    slope = np.linalg.lstsq(design, level[use], rcond=None)[0][0]
    trend_removed = level[use] - design @ np.linalg.lstsq(design, level[use], rcond=None)[0]
    snr = (d["parallax_obs"] / d["parallax_err"])[index]
    bright = use & (snr > 50)
    fitted_offset = d["fit_logg"][index] - ridge[bin_of]
    stretch = np.linalg.lstsq(np.vstack([offset[bright], np.ones(bright.sum())]).T,
                              fitted_offset[bright], rcond=None)[0][0] if bright.sum() > 100 else np.nan
    teff_error = d["fit_teff"][index] - teff
    out = ["log g axis, single dwarfs 4000-7000 K (level error and fitted log g against the true offset"
           " from the median log g at their Teff):",
           f"  model d ln f / d logg = {-np.log(10) + slope:.3f} per dex (truth {-np.log(10):.3f});"
           f" |level| p50 {np.median(np.abs(level[use])):.4f}, {np.median(np.abs(trend_removed)):.4f}"
           f" with that slope error removed",
           f"  parallax S/N > 50 ({bright.sum()} stars): fitted offset = {stretch:.3f} x true offset (1 = no stretch)"]
    for low, high in [(4000, 5000), (5000, 6000), (6000, 7000)]:
        members = use & (snr > 20) & (teff >= low) & (teff < high)
        if members.any():
            out.append(f"  parallax S/N > 20, Teff {low}-{high} K: fitted - true Teff median"
                       f" {np.median(teff_error[members]):+.0f} K")
    return out


def best_possible_cleaning(d, truth_R, sample, binaries, singles):
    """The best a luminosity test can separate binaries in this mock, whatever the model.

    Everything but the companion is given: the primary's true Teff and [Fe/H], the true parallax
    and E, the noiseless flux. The score is the mean ln absolute XP flux minus the single stars'
    median in its (Teff, [Fe/H]) cell. The singles' spread at fixed Teff and [Fe/H] (evolution off
    the main sequence, the log g scatter) is what a q > 0.9 companion must stand out from; log g
    labels cannot narrow it when their errors exceed that spread.
    """
    xp = slice(0, 61)
    absolute = (np.log(d["flux_true"][:, xp]) + d["E"][:, None] * truth_R[None, xp]).mean(axis=1) \
        - 2 * np.log(d["parallax"])
    cell = np.digitize(d["teff"], np.arange(3000, 8001, 100)) * 100 + np.digitize(d["feh"], np.arange(-1.0, 0.51, 0.25))
    excess = np.full(len(absolute), np.nan)
    for c in np.unique(cell[sample]):
        members = sample & (cell == c)
        if (members & singles).sum() >= 20:
            excess[members] = absolute[members] - np.median(absolute[members & singles])
    known = np.isfinite(excess)
    s, b = excess[singles & known], excess[binaries & known]
    if len(s) < 100 or len(b) < 20:
        return []
    at_5_percent = np.mean(b > np.percentile(s, 95))
    for_90_percent = np.mean(s > np.percentile(b, 10))
    return [f"  best possible in this mock (true Teff, [Fe/H], parallax, E, noiseless flux; dwarfs): a cut on"
            f" the luminosity excess removing 5 % of singles removes {at_5_percent:.3f} of these binaries;"
            f" removing 90 % of them removes {for_90_percent:.3f} of singles"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True)
    parser.add_argument("--stars", required=True, help="mock star tables the model was trained on")
    parser.add_argument("--results", help="per-star results (default: MODEL_training next to the model)")
    parser.add_argument("--output", required=True)
    parser.add_argument("--max-stars", type=int, default=100000, help="stars used for the flux check")
    args = parser.parse_args()
    results = args.results or os.path.splitext(args.model)[0] + "_training"
    os.makedirs(args.output, exist_ok=True)
    model = xps_model.load_model(args.model)
    d, truth_R, wavelength = load_stars(args.stars, results)
    lines = [f"training report: model {args.model}, stars {args.stars}"]

    # Extinction curve.
    learned = model["extinction_R"] / at_550(wavelength, model["extinction_R"])
    true = truth_R / at_550(wavelength, truth_R)
    ratio = learned / true
    xp = slice(0, 61)
    lines.append("extinction curve R (normalised at 550 nm), learned / truth:")
    lines.append(f"  XP 392-992 nm: max |ratio - 1| = {np.max(np.abs(ratio[xp] - 1)):.4f}"
                 f" (at {wavelength[xp][np.argmax(np.abs(ratio[xp] - 1))]:.0f} nm); target < 0.02")
    lines.append("  NIR J H Ks W1 W2: " + " ".join(f"{x:.3f}" for x in ratio[61:]))
    scale = model["extinction_R"][:61].mean() / truth_R[:61].mean()
    lines.append(f"  scale of R relative to the truth curve (mean over XP): {scale:.4f}")

    # Noiseless flux at the true parameters.
    single = (d["binary"] == 0) & (d["pathology"] == 0) & (d["role"] == 1)
    index = np.flatnonzero(single)[: args.max_stars]
    theta = np.stack([d["teff"][index], d["feh"][index], d["logg"][index]], axis=1).astype(float)
    predicted = xps_model.predict_flux(model, theta, d["parallax"][index].astype(float), d["E"][index].astype(float))
    ln_ratio = np.log(predicted[:, xp] / d["flux_true"][index][:, xp])
    level = ln_ratio.mean(axis=1)
    shape = ln_ratio - level[:, None]
    logg = theta[:, 2]
    lines.append(f"noiseless flux, model at the true Theta/parallax/E vs truth, {len(index)} single trained stars:")
    for name, mask in [("all", np.ones(len(index), bool)), ("dwarfs (logg > 3.8)", logg > 3.8),
                       ("giants (logg < 3.5)", logg < 3.5)]:
        if not mask.any():
            continue
        shape_rms = np.sqrt((shape[mask] ** 2).mean(axis=1))
        lines.append(f"  {name:20s} n={mask.sum():6d}  level |ln| p50 {np.median(np.abs(level[mask])):.4f}"
                     f" p90 {np.percentile(np.abs(level[mask]), 90):.4f}   shape rms p50 {np.median(shape_rms):.4f}"
                     f" p90 {np.percentile(shape_rms, 90):.4f}   within 1%: {np.mean(np.abs(ln_ratio[mask]).max(axis=1) < 0.01):.3f}")
    lines.append("  (giants' luminosity at fixed Theta scatters by the mock's giant_mass_log_sigma: their level"
                 " cannot be a function of Theta)")

    lines += log_g_axis(d, index, theta, level)

    # Self-cleaning.
    trained = d["role"] == 1
    removed = (d["outlier"] & 3) > 0
    snr = d["parallax_obs"] / d["parallax_err"]
    lines.append("self-cleaning (trained stars; removed = labels/parallax or flux criterion):")
    lines.append(f"  criteria: labels/parallax {np.sum(((d['outlier'] & 1) > 0) & trained)}, flux "
                 f"{np.sum(((d['outlier'] & 2) > 0) & trained)}, joint rule {np.sum(((d['outlier'] & 4) > 0) & trained)};"
                 f" removed {np.sum(removed & trained)} of {trained.sum()} ({np.mean(removed[trained]):.3f})")
    q_bins = [("single", (d["binary"] == 0)), ("q 0.80-0.85", (d["binary"] == 1) & (d["q"] < 0.85)),
              ("q 0.85-0.90", (d["binary"] == 1) & (d["q"] >= 0.85) & (d["q"] < 0.9)),
              ("q 0.90-0.95", (d["binary"] == 1) & (d["q"] >= 0.9) & (d["q"] < 0.95)),
              ("q 0.95-1.00", (d["binary"] == 1) & (d["q"] >= 0.95))]
    snr_bins = [("S/N<10", snr < 10), ("10-20", (snr >= 10) & (snr < 20)), (">20", snr >= 20)]
    lines.append("  removed fraction (count) by mass ratio and parallax S/N:")
    lines.append("  " + " " * 14 + "".join(f"{n:>18s}" for n, _ in snr_bins))
    for qn, qm in q_bins:
        cells = []
        for _, sm in snr_bins:
            m = trained & qm & sm
            cells.append(f"{np.mean(removed[m]) if m.any() else float('nan'):10.3f} ({m.sum():5d})")
        lines.append(f"  {qn:14s}" + "".join(f"{c:>18s}" for c in cells))
    high = trained & (snr > 20)
    b09 = high & (d["binary"] == 1) & (d["q"] > 0.9)
    s = high & (d["binary"] == 0)
    lines.append(f"  parallax S/N > 20: removed {np.mean(removed[b09]):.3f} of binaries with q > 0.9 (target >= 0.90),"
                 f" {np.mean(removed[s]):.3f} of single stars (target < 0.05)")
    dwarfs = high & (d["logg"] > 3.8) & (d["pathology"] == 0)
    lines += best_possible_cleaning(d, truth_R, dwarfs, b09, s)

    text = "\n".join(lines) + "\n"
    with open(os.path.join(args.output, "report.txt"), "w") as out:
        out.write(text)
    print(text, end="")

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    axes[0].plot(wavelength, ratio, "o-", ms=3)
    axes[0].axhspan(0.98, 1.02, color="0.9")
    axes[0].set(xscale="log", xlabel="wavelength [nm]", ylabel="learned R / truth R (at 550 nm)")
    shape_rms = np.sqrt((shape ** 2).mean(axis=1))
    sc = axes[1].scatter(theta[:, 0], logg, c=np.abs(level), s=2, vmin=0, vmax=0.1, cmap="viridis")
    axes[1].set(xlim=(8000, 3000), ylim=(5.5, 0), xlabel="Teff [K]", ylabel="log g", title="|level| ln ratio")
    fig.colorbar(sc, ax=axes[1])
    sc = axes[2].scatter(theta[:, 0], logg, c=shape_rms, s=2, vmin=0, vmax=0.02, cmap="viridis")
    axes[2].set(xlim=(8000, 3000), ylim=(5.5, 0), xlabel="Teff [K]", title="shape rms")
    fig.colorbar(sc, ax=axes[2])
    fig.tight_layout()
    fig.savefig(os.path.join(args.output, "report.png"), dpi=110)


if __name__ == "__main__":
    main()
