"""Shared by the tools that fit star tables of the labelled training sample with xps_infer and
write what they learn into the model file (select_model_error.py, calibrate_uncertainties.py):
their common options, the choice of star tables, the xps_infer run on links to them, and the
atomic update of the model file. Not a program."""
import os
import shlex
import shutil
import subprocess
import sys

import h5py
import numpy as np

import validate  # the validation split and the partition file names


# The labels both tools compare the estimates with: (name, catalog column, label dataset, label
# error dataset, label units per catalog unit).
LABELS = [
    ("Teff", 0, "stars/labels/teff", "stars/labels/teff_err", 1000.0),
    ("[Fe/H]", 1, "stars/labels/feh", "stars/labels/feh_err", 1.0),
    ("log g", 2, "stars/labels/logg", "stars/labels/logg_err", 1.0),
    ("E", 3, "stars/labels/E_prior", "stars/labels/E_prior_err", 1.0),
]


class ToolError(Exception):
    """A problem the user must fix; the message names the file or the command."""


def tool_main(program, action, args):
    """action(args), with exit status 2 and the message on stderr for a ToolError or bad input."""
    try:
        action(args)
    except (ToolError, validate.InputError) as error:
        print(f"{program}: error: {error}", file=sys.stderr)
        return 2
    return 0


def add_common_arguments(parser, work_name, max_stars, split_use):
    here = os.path.dirname(os.path.abspath(__file__))
    parser.add_argument("--model", required=True, help="model file (updated in place)")
    parser.add_argument("--stars", required=True, help="directory of labelled star tables")
    parser.add_argument("--launcher", default=os.environ.get("XPS_LAUNCHER", ""),
                        help="command put before xps_infer, e.g. 'mpirun -np 2'")
    parser.add_argument("--xps-infer", default=os.path.join(here, "..", "build", "bin", "xps_infer"),
                        help="the xps_infer program")
    parser.add_argument("--work", default=None,
                        help=f"scratch directory (default: {work_name} beside the model)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch catalogs")
    parser.add_argument("--max-stars", type=int, default=max_stars,
                        help="star tables are taken until this many stars [stars]")
    parser.add_argument("--validation-fraction", type=float, default=0.2,
                        help=f"held-out share (as xps_train and validate.py); those stars are not {split_use}")
    parser.add_argument("--split-salt", type=int, default=0, help="salt of the validation split")
    parser.add_argument("--infer-arg", action="append", default=[],
                        help="extra xps_infer argument (repeatable, e.g. --infer-arg=--start.gmm_samples=64)")


def parse_common_arguments(parser, argv):
    """parser.parse_args with the common options checked."""
    args = parser.parse_args(argv)
    if args.max_stars < 1:
        parser.error("--max-stars must be positive")
    return args


def choose_tables(stars_dir, max_stars):
    """Star tables in a fixed pseudo-random order (spread over the sky) until max_stars rows."""
    tables = list(validate.partition_files(stars_dir, "stars").values())
    if not tables:
        raise ToolError(f"{stars_dir}: no star tables (stars_<L>_<pixel>.h5)")
    order = np.random.default_rng(20231121).permutation(len(tables))
    chosen, rows = [], 0
    for index in order:
        path = tables[index]
        try:
            with h5py.File(path, "r") as handle:
                n = handle["stars/source_id"].shape[0]
        except (OSError, KeyError) as error:
            raise ToolError(f"{path}: not a readable star table ({error})") from None
        chosen.append(path)
        rows += n
        if rows >= max_stars:
            break
    return sorted(chosen), rows


def scratch_with_links(args, work_name, tables):
    """A fresh scratch directory with links to `tables` in its stars/; returns (work, stars dir)."""
    work = args.work or os.path.join(os.path.dirname(os.path.abspath(args.model)), work_name)
    shutil.rmtree(work, ignore_errors=True)
    stars_link_dir = os.path.join(work, "stars")
    os.makedirs(stars_link_dir)
    for path in tables:
        os.symlink(os.path.abspath(path), os.path.join(stars_link_dir, os.path.basename(path)))
    return work, stars_link_dir


def run_xps_infer(args, stars_dir, output_dir, options):
    """xps_infer --force on stars_dir into output_dir, its output in output_dir.log."""
    command = shlex.split(args.launcher) + [
        args.xps_infer, "--model", args.model, "--stars", stars_dir, "--output", output_dir,
        "--force"] + options + args.infer_arg
    log_path = output_dir + ".log"
    with open(log_path, "w") as log:
        status = subprocess.run(command, stdout=log, stderr=subprocess.STDOUT).returncode
    if status != 0:
        raise ToolError(f"xps_infer exited {status} (log: {log_path}): {shlex.join(command)}")


def update_model_file(model_path, edit):
    """edit(h5py handle) on a copy of the model file, which then replaces it."""
    temporary = model_path + ".tmp"
    shutil.copyfile(model_path, temporary)
    try:
        with h5py.File(temporary, "r+") as handle:
            if "model" not in handle:
                raise ToolError(f"{model_path}: no /model (not a model file?)")
            edit(handle)
        os.replace(temporary, model_path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
