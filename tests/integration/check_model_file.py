"""Checks a model file written by tests/tools/model_file_fixture against the schema of
docs/model_file.md through h5py, and the C++ forward pass, prior density and checksum in its
predictions.csv against tools/xps_model.py (numpy).
Usage: check_model_file.py DIR...   (each DIR holds model.h5, predictions.csv, checksum.txt)"""
import os
import sys

import h5py
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tools"))
import xps_model  # noqa: E402


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def check_schema(path):
    with h5py.File(path, "r") as f:
        model = f["model"]
        m = model["wavelength_nm"].shape[0]
        for name in ("wavelength_nm", "extinction_R", "extinction_R1"):
            if model[name].dtype != np.float64 or model[name].shape != (m,):
                fail(f"/model/{name}: {model[name].dtype} {model[name].shape}, expected float64 ({m},)")
        if model["band_names"].shape != (m,) or model["band_names"].dtype.kind != "S":
            fail(f"/model/band_names: {model['band_names'].dtype} {model['band_names'].shape}")
        for name in ("input_offset", "input_scale"):
            if model[name].dtype != np.float64 or model[name].shape != (3,):
                fail(f"/model/{name}: expected float64 (3,)")
        for name in ("schema_version", "flux_unit", "use_xi"):
            if name not in model.attrs:
                fail(f"/model@{name} missing")
        if int(model.attrs["schema_version"]) != 1:
            fail("/model@schema_version != 1")
        if model.attrs["flux_unit"] != b"1e-18 W m-2 nm-1":
            fail(f"/model@flux_unit is {model.attrs['flux_unit']!r}")
        inflation = model["inflation"].attrs
        for name in xps_model.INFLATION_FIELDS:
            if not isinstance(inflation[name], np.float64):
                fail(f"/model/inflation@{name} is {type(inflation[name])}, expected float64")
        nn = model["nn"]
        layers = int(nn.attrs["hidden_layers"]) + 1
        if sorted(nn.keys()) != sorted(f"layer_{k}" for k in range(layers)):
            fail(f"/model/nn holds {sorted(nn.keys())}, expected {layers} layers")
        inputs = 3
        for k in range(layers):
            weight, bias = nn[f"layer_{k}/weight"], nn[f"layer_{k}/bias"]
            if weight.dtype != np.float64 or bias.dtype != np.float64:
                fail(f"layer_{k}: not float64")
            if weight.shape[1] != inputs or bias.shape != (weight.shape[0],):
                fail(f"layer_{k}: weight {weight.shape}, bias {bias.shape}, input {inputs}")
            inputs = weight.shape[0]
        if inputs != m:
            fail(f"last layer has {inputs} outputs, expected {m}")
        gmm = f["prior/gmm"]
        k = gmm["weights"].shape[0]
        if gmm["means"].shape != (k, 3) or gmm["covariances"].shape != (k, 3, 3):
            fail(f"/prior/gmm shapes {gmm['means'].shape} {gmm['covariances'].shape}")
        for matrix in gmm["covariances"][()]:
            np.linalg.cholesky(matrix)  # positive definite
        for name in ("ln_prior_cut", "prior_mass"):
            if not isinstance(gmm.attrs[name], np.float64):
                fail(f"/prior/gmm@{name} is not float64")
        provenance = f["provenance"].attrs
        for name in ("config", "code_version", "creation_time"):
            if not isinstance(provenance[name], bytes):
                fail(f"/provenance@{name} is not a string")
        if provenance["seed"].dtype != np.uint64:
            fail(f"/provenance@seed is {provenance['seed'].dtype}, expected uint64")


def check_directory(directory):
    path = os.path.join(directory, "model.h5")
    check_schema(path)
    model = xps_model.load_model(path)
    m = len(model["wavelength_nm"])
    if len(model["band_names"]) != m or model["band_names"][-1] != "W2":
        fail(f"band names {model['band_names'][-5:]}")
    rows = np.loadtxt(os.path.join(directory, "predictions.csv"), delimiter=",", ndmin=2)
    if rows.shape[1] != 7 + 2 * m:
        fail(f"predictions.csv has {rows.shape[1]} columns, expected {7 + 2 * m}")
    theta, ln_parallax, ln_e, xi, ln_prior = rows[:, :3], rows[:, 3], rows[:, 4], rows[:, 5], rows[:, 6]
    cpp_ln_flux, cpp_flux = rows[:, 7:7 + m], rows[:, 7 + m:]

    ln_flux = xps_model.predict_ln_flux_abs(model, theta)
    worst = np.max(np.abs(ln_flux - cpp_ln_flux) / np.maximum(1.0, np.abs(cpp_ln_flux)))
    if not worst < 1e-12:
        fail(f"ln f_abs differs from the C++ forward pass by {worst:.3g} (relative)")
    flux = xps_model.predict_flux(model, theta, np.exp(ln_parallax), np.exp(ln_e), xi)
    worst_flux = np.max(np.abs(flux - cpp_flux) / np.abs(cpp_flux))
    if not worst_flux < 1e-12:
        fail(f"f_pred differs from the C++ forward pass by {worst_flux:.3g} (relative)")
    one = xps_model.predict_flux(model, theta[0], np.exp(ln_parallax[0]), np.exp(ln_e[0]), xi[0])
    if one.shape != (m,) or not np.allclose(one, flux[0], rtol=1e-15, atol=0):
        fail("a single star does not match the batch")
    if model["use_xi"]:
        without = xps_model.predict_flux(model, theta, np.exp(ln_parallax), np.exp(ln_e))
        if np.allclose(without, flux):
            fail("xi has no effect on a model that uses it")
    worst_prior = np.max(np.abs(xps_model.ln_prior(model, theta) - ln_prior) / np.maximum(1.0, np.abs(ln_prior)))
    if not worst_prior < 1e-12:
        fail(f"ln prior differs from the C++ density by {worst_prior:.3g} (relative)")

    with open(os.path.join(directory, "checksum.txt")) as f:
        cpp_checksum = f.read().strip()
    if cpp_checksum != xps_model.file_checksum(path):
        fail(f"checksum {cpp_checksum} != numpy's {xps_model.file_checksum(path)}")
    print(f"{directory}: {model['activation']}, use_xi={model['use_xi']}, {len(rows)} stars: "
          f"ln f_abs within {worst:.2g}, f_pred within {worst_flux:.2g}, ln prior within "
          f"{worst_prior:.2g}, checksum {cpp_checksum}")


if __name__ == "__main__":
    for argument in sys.argv[1:]:
        check_directory(argument)
