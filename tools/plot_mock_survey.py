#!/usr/bin/python3
"""Plots a mock survey (star tables with /truth) for a look by eye: the truth Kiel diagram, the
observed colour-magnitude diagram, extinction against distance, and source counts on the sky.

Usage: /usr/bin/python3 tools/plot_mock_survey.py DIR [--output mock_survey.png]
"""
import argparse
import glob
import os
import sys

import h5py
import healpy
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

COLUMNS = {"teff": "truth/teff", "logg": "truth/logg", "feh": "truth/feh", "E": "truth/E",
           "distance": "truth/distance_pc", "binary": "truth/is_binary",
           "pathology": "truth/pathology", "g": "stars/phot_g_mean_mag",
           "bp_rp": "stars/bp_rp", "parallax": "truth/parallax", "ra": "stars/ra",
           "dec": "stars/dec"}


def read_survey(directory):
    files = sorted(glob.glob(os.path.join(directory, "stars_*_*.h5")))
    if not files:
        sys.exit(f"plot_mock_survey: no star tables (stars_*_*.h5) in {directory}")
    data = {name: [] for name in COLUMNS}
    for path in files:
        with h5py.File(path, "r") as table:
            if "truth" not in table:
                sys.exit(f"plot_mock_survey: {path} has no /truth (not a mock star table)")
            for name, dataset in COLUMNS.items():
                data[name].append(table[dataset][...])
    return {name: np.concatenate(parts) for name, parts in data.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--output", default="mock_survey.png")
    args = parser.parse_args()
    s = read_survey(args.directory)
    normal = s["pathology"] == 0
    fig, axes = plt.subplots(2, 2, figsize=(12, 10))

    ax = axes[0, 0]
    points = ax.scatter(s["teff"][normal], s["logg"][normal], c=s["feh"][normal], s=1,
                        cmap="viridis", vmin=-1.5, vmax=0.5)
    ax.scatter(s["teff"][~normal], s["logg"][~normal], s=2, c="red", label="pathological")
    ax.set(xlim=(20000, 2800), ylim=(8.5, 0), xscale="log", xlabel="Teff [K] (truth)",
           ylabel="log g (truth)", title="Kiel diagram")
    ax.legend(loc="lower left")
    fig.colorbar(points, ax=ax, label="[Fe/H]")

    ax = axes[0, 1]
    absolute_g = s["g"] + 5 * np.log10(s["parallax"] / 100.0)
    single = normal & (s["binary"] == 0)
    ax.scatter(s["bp_rp"][single], absolute_g[single], s=1, c="k", label="single")
    ax.scatter(s["bp_rp"][normal & (s["binary"] == 1)], absolute_g[normal & (s["binary"] == 1)],
               s=1, c="tab:orange", label="binary")
    ax.set(ylim=(12, -4), xlabel="BP - RP (observed, reddened)", ylabel="G + 5 log10(parallax/100)",
           title="colour-magnitude diagram (true parallax)")
    ax.legend(loc="upper right", markerscale=5)

    ax = axes[1, 0]
    ax.scatter(s["distance"] / 1000.0, s["E"], s=1, alpha=0.3)
    ax.set(xscale="log", yscale="log", xlabel="distance [kpc]", ylabel="E (truth)",
           title="extinction against distance")

    ax = axes[1, 1]
    plt.sca(ax)
    nside = 16
    counts = np.bincount(healpy.ang2pix(nside, s["ra"], s["dec"], lonlat=True),
                         minlength=healpy.nside2npix(nside)).astype(float)
    healpy.mollview(counts, hold=True, title="source counts (ICRS, nside 16)", unit="stars")

    fig.suptitle(f"{args.directory}: {len(s['teff'])} stars")
    fig.subplots_adjust(hspace=0.3, wspace=0.25)
    fig.savefig(args.output, dpi=90)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
