"""Read an xpstellar model file and evaluate its forward model in numpy.

The schema is docs/model_file.md (DESIGN §4); the model is DESIGN §1.1 (Zhang, Green & Rix 2023,
eqs. 1-4), evaluated exactly as src/model/flux_model.cpp does it:

    x = (theta - input_offset) / input_scale          theta = (teff [K], feh, logg)
    h = activation(W_k h + b_k)  on hidden layers, W_last h + b_last on the last
    ln f_abs = h                                      ln flux at 1 kpc, 1e-18 W m-2 nm-1
    f_pred = exp(ln f_abs + 2 ln parallax - E (R + xi R1))   (xi only when the model uses it)

Usage:
    import xps_model
    model = xps_model.load_model("model.h5")
    flux = xps_model.predict_flux(model, [[5800, 0.0, 4.4]], parallax=2.0, E=0.1)
"""

import h5py
import numpy as np

SCHEMA_VERSION = 1
FLUX_UNIT = "1e-18 W m-2 nm-1"
INFLATION_FIELDS = ("diag_frac", "joint_frac", "bp_frac", "rp_frac", "unwise_frac", "eigen_floor",
                    "merge_start_nm", "merge_end_nm", "negative_eigen_tolerance")


def _text(value):
    """An HDF5 string attribute or element as str (fixed-length strings come back as bytes)."""
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def _softplus(z):
    # Same branches as the C++ kernel: z above 30 is returned as is.
    with np.errstate(over="ignore"):
        return np.where(z > 30.0, z, np.log1p(np.exp(np.minimum(z, 30.0))))


ACTIVATIONS = {
    "tanh": np.tanh,
    "silu": lambda z: z * _sigmoid(z),
    "relu": lambda z: np.where(z > 0.0, z, 0.0),
    "softplus": _softplus,
    "elu": lambda z: np.where(z > 0.0, z, np.expm1(np.minimum(z, 0.0))),
    "sigmoid": _sigmoid,
}


def load_model(path):
    """Everything in a model file as a dict of numpy arrays and Python scalars.

    Keys: wavelength_nm [M], band_names (list of str), extinction_R [M], extinction_R1 [M],
    use_xi (bool), activation (str), weights (list of [out, in] arrays), biases (list of [out]),
    input_offset [3], input_scale [3], inflation (dict), prior (dict with weights [K], means [K, 3],
    covariances [K, 3, 3], ln_prior_cut, prior_mass; or None), provenance (dict with config,
    code_version, seed, creation_time), schema_version, flux_unit.
    """
    with h5py.File(path, "r") as f:
        group = f["model"]
        version = int(group.attrs["schema_version"])
        if version != SCHEMA_VERSION:
            raise ValueError(f"{path}: /model@schema_version is {version}, expected {SCHEMA_VERSION}")
        nn = group["nn"]
        layers = int(nn.attrs["hidden_layers"]) + 1
        model = {
            "schema_version": version,
            "flux_unit": _text(group.attrs["flux_unit"]),
            "use_xi": bool(int(group.attrs["use_xi"])),
            "wavelength_nm": group["wavelength_nm"][()].astype(np.float64),
            "band_names": [_text(name) for name in group["band_names"][()]],
            "extinction_R": group["extinction_R"][()].astype(np.float64),
            "extinction_R1": group["extinction_R1"][()].astype(np.float64),
            "input_offset": group["input_offset"][()].astype(np.float64),
            "input_scale": group["input_scale"][()].astype(np.float64),
            "activation": _text(nn.attrs["activation"]),
            "weights": [nn[f"layer_{k}/weight"][()].astype(np.float64) for k in range(layers)],
            "biases": [nn[f"layer_{k}/bias"][()].astype(np.float64) for k in range(layers)],
            "inflation": {name: float(group["inflation"].attrs[name]) for name in INFLATION_FIELDS},
            "prior": None,
        }
        if "prior" in f:
            gmm = f["prior/gmm"]
            model["prior"] = {
                "weights": gmm["weights"][()].astype(np.float64),
                "means": gmm["means"][()].astype(np.float64),
                "covariances": gmm["covariances"][()].astype(np.float64),
                "ln_prior_cut": float(gmm.attrs["ln_prior_cut"]),
                "prior_mass": float(gmm.attrs["prior_mass"]),
            }
        provenance = f["provenance"].attrs
        model["provenance"] = {
            "config": _text(provenance["config"]),
            "code_version": _text(provenance["code_version"]),
            "seed": int(provenance["seed"]),
            "creation_time": _text(provenance["creation_time"]),
        }
    if model["activation"] not in ACTIVATIONS:
        raise ValueError(f"{path}: unknown activation '{model['activation']}'")
    if model["flux_unit"] != FLUX_UNIT:
        raise ValueError(f"{path}: flux unit '{model['flux_unit']}', expected '{FLUX_UNIT}'")
    return model


def predict_ln_flux_abs(model, theta):
    """ln f_abs(theta): the network's output, ln flux at 1 kpc [N, M] (or [M] for one star).

    theta: [N, 3] or [3], columns teff [K], feh, logg.
    """
    theta = np.asarray(theta, dtype=np.float64)
    single = theta.ndim == 1
    x = np.atleast_2d(theta)
    if x.shape[1] != 3:
        raise ValueError(f"theta has shape {theta.shape}, expected [N, 3] (teff, feh, logg)")
    h = ((x - model["input_offset"]) / model["input_scale"]).T  # [3, N], stars in columns
    activation = ACTIVATIONS[model["activation"]]
    last = len(model["weights"]) - 1
    for k, (weight, bias) in enumerate(zip(model["weights"], model["biases"])):
        h = weight @ h + bias[:, None]
        if k < last:
            h = activation(h)
    ln_flux = h.T
    return ln_flux[0] if single else ln_flux


def predict_flux(model, theta, parallax, E, xi=None):
    """f_pred [N, M] (or [M] for one star) in 1e-18 W m-2 nm-1.

    parallax [mas] and E (extinction amplitude): scalars or [N]; xi: scalar or [N], used only when
    the model was trained with xi (model["use_xi"]), as in the C++ forward pass.
    """
    theta = np.asarray(theta, dtype=np.float64)
    single = theta.ndim == 1
    ln_flux = np.atleast_2d(predict_ln_flux_abs(model, theta))
    n = ln_flux.shape[0]
    parallax = np.broadcast_to(np.asarray(parallax, dtype=np.float64), (n,))
    E = np.broadcast_to(np.asarray(E, dtype=np.float64), (n,))
    R = np.broadcast_to(model["extinction_R"], ln_flux.shape)
    if model["use_xi"] and xi is not None:
        xi = np.broadcast_to(np.asarray(xi, dtype=np.float64), (n,))
        R = R + xi[:, None] * model["extinction_R1"][None, :]
    flux = np.exp(ln_flux + 2.0 * np.log(parallax)[:, None] - R * E[:, None])
    return flux[0] if single else flux


def ln_prior(model, theta):
    """ln p(theta) of the model's Gaussian-mixture prior, [N] (or a float for one star)."""
    prior = model["prior"]
    if prior is None:
        raise ValueError("the model file holds no prior")
    theta = np.asarray(theta, dtype=np.float64)
    single = theta.ndim == 1
    x = np.atleast_2d(theta)
    terms = []
    for weight, mean, covariance in zip(prior["weights"], prior["means"], prior["covariances"]):
        chol = np.linalg.cholesky(covariance)
        z = np.linalg.solve(chol, (x - mean).T)
        log_det = 2.0 * np.sum(np.log(np.diag(chol)))
        terms.append(np.log(weight) - 0.5 * (x.shape[1] * np.log(2 * np.pi) + log_det)
                     - 0.5 * np.sum(z * z, axis=0))
    terms = np.array(terms)
    top = terms.max(axis=0)
    result = top + np.log(np.exp(terms - top).sum(axis=0))
    return float(result[0]) if single else result


def file_checksum(path):
    """FNV-1a 64-bit over the file's bytes, 16 lowercase hex digits (as the catalogs record it)."""
    value = 0xcbf29ce484222325
    with open(path, "rb") as f:
        for byte in f.read():
            value = ((value ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return f"{value:016x}"
