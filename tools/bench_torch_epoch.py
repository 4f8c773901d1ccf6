#!/usr/bin/python3
"""One training epoch of the model step in straightforward PyTorch, against bench_train_epoch.

The model step of DESIGN §1.3 (phase 1 of §1.4), written the way a PyTorch user would write it:
torch.nn.Linear layers with tanh, autograd, torch.optim.SGD with momentum, and each star's whitening
L gathered per batch and applied with torch.bmm:

    ln f_abs = net((theta - offset) / scale)        3 -> 32 -> 32 -> 32 -> 66, tanh
    f_pred   = exp(ln f_abs) * parallax^2 * exp(-E * exp(ln R))
    chi^2    = |L (f_pred - f_obs)|^2 per star
    loss     = mean over the batch of chi^2 + (1/n_W) * sum of squared weights (weights only)

It reads the stars, the initial model, the epochs' shuffled orders and the hyper-parameters that
`bench_train_epoch --dump DIR` wrote (.npy files + meta.json), so both sides train on the same data
from the same weights in the same order. float32 is the straightforward choice (torch's default
dtype; L is float32 in both); float64 matches the C++ side, which computes in double with
float32 L. Every configuration starts again from the initial weights.

Usage (Debian's python3-torch, hence /usr/bin/python3):
    build/bin/bench_train_epoch --stars 100000 --dump /tmp/xps_epoch
    /usr/bin/python3 tools/bench_torch_epoch.py /tmp/xps_epoch [--dtypes float32,float64]
        [--threads 1[,2]] [--epochs E]

It prints seconds per epoch and star-gradients/s (per thread), the loss check (first batch of the
unshuffled stars before and after one step, against the C++ values in meta.json), each epoch's
mean batch loss next to the C++ one, and the ratio to the C++ epoch times recorded in meta.json
(the C++ run that wrote the dump; rerun both close together in time on a shared machine).
"""
import argparse
import json
import pathlib
import statistics
import time

import numpy as np
import torch


def load_dump(directory):
    directory = pathlib.Path(directory)
    meta = json.loads((directory / "meta.json").read_text())
    data = {name: np.load(directory / f"{name}.npy")
            for name in ("theta", "ln_parallax", "ln_E", "flux", "whitening", "ln_R",
                         "input_offset", "input_scale", "order")}
    data["weight"] = [np.load(directory / f"weight_{k}.npy") for k in range(meta["layers"])]
    data["bias"] = [np.load(directory / f"bias_{k}.npy") for k in range(meta["layers"])]
    return meta, data


class FluxModel(torch.nn.Module):
    """The forward model: f_pred of a batch from (theta, ln parallax, ln E)."""

    def __init__(self, data, dtype):
        super().__init__()
        self.linear = torch.nn.ModuleList()
        for weight, bias in zip(data["weight"], data["bias"]):
            layer = torch.nn.Linear(weight.shape[1], weight.shape[0], dtype=dtype)
            with torch.no_grad():
                layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(weight)))
                layer.bias.copy_(torch.from_numpy(bias))
            self.linear.append(layer)
        # torch.tensor copies: from_numpy(...).to(float64) would share, and SGD would then update,
        # the loaded initial values.
        self.ln_R = torch.nn.Parameter(torch.tensor(data["ln_R"], dtype=dtype))
        self.register_buffer("offset", torch.from_numpy(data["input_offset"]).to(dtype))
        self.register_buffer("scale", torch.from_numpy(data["input_scale"]).to(dtype))

    def forward(self, theta, ln_parallax, ln_E):
        h = (theta - self.offset) / self.scale
        for layer in self.linear[:-1]:
            h = torch.tanh(layer(h))
        ln_f_abs = self.linear[-1](h)
        parallax = torch.exp(ln_parallax)[:, None]
        E = torch.exp(ln_E)[:, None]
        return torch.exp(ln_f_abs) * parallax**2 * torch.exp(-E * torch.exp(self.ln_R))

    def weight_penalty(self):
        n_weights = sum(layer.weight.numel() for layer in self.linear)
        return sum((layer.weight**2).sum() for layer in self.linear) / n_weights


def star_tensors(data, dtype):
    """theta, ln parallax, ln E, f_obs and L of every star as tensors of `dtype`."""
    return tuple(torch.from_numpy(data[name]).to(dtype)
                 for name in ("theta", "ln_parallax", "ln_E", "flux", "whitening"))


class Trainer:
    """The training set as tensors of one dtype, the model and its optimiser."""

    def __init__(self, meta, data, stars, dtype):
        self.theta, self.ln_parallax, self.ln_E, self.flux, self.whitening = stars
        self.model = FluxModel(data, dtype)
        self.optimiser = torch.optim.SGD(self.model.parameters(), lr=meta["lr"],
                                         momentum=meta["momentum"])
        self.batch = meta["batch"]

    def loss(self, index):
        f_pred = self.model(self.theta[index], self.ln_parallax[index], self.ln_E[index])
        whitened = torch.bmm(self.whitening[index], (f_pred - self.flux[index]).unsqueeze(2))
        chi_square = (whitened.squeeze(2)**2).sum(dim=1)
        return chi_square.mean() + self.model.weight_penalty()

    def step(self, index):
        self.optimiser.zero_grad()
        loss = self.loss(index)
        loss.backward()
        self.optimiser.step()
        return loss.item()

    def epoch(self, order):
        total, batches = 0.0, 0
        for first in range(0, len(order), self.batch):
            total += self.step(order[first:first + self.batch])
            batches += 1
        return total / batches


def relative(a, b):
    return abs(a - b) / max(abs(b), 1e-300)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("dump", help="directory written by bench_train_epoch --dump")
    parser.add_argument("--dtypes", default="float32,float64")
    parser.add_argument("--threads", default="1", help="comma-separated torch thread counts")
    parser.add_argument("--epochs", type=int, default=None,
                        help="default: as many as the C++ run that last wrote meta.json")
    args = parser.parse_args()

    torch.set_num_interop_threads(1)
    meta, data = load_dump(args.dump)
    stars = data["theta"].shape[0]
    orders = torch.from_numpy(data["order"])
    epochs = args.epochs or len(meta.get("cpp_epoch_seconds") or []) or orders.shape[0]
    cpp_seconds = meta.get("cpp_epoch_seconds") or []
    cpp_best = min(cpp_seconds) if cpp_seconds else None
    print(f"bench_torch_epoch: torch {torch.__version__}, {stars} stars, batch {meta['batch']}, "
          f"{meta['layers'] - 1}x32 tanh -> {data['flux'].shape[1]} bands, SGD lr {meta['lr']:g} "
          f"momentum {meta['momentum']:g}, {epochs} epochs")
    if cpp_best:
        print(f"  C++ (from the dump's run): best epoch {cpp_best:.3f} s, "
              f"{stars / cpp_best:.0f} star-gradients/s/core")

    for dtype_name in args.dtypes.split(","):
        dtype = getattr(torch, dtype_name)
        stars_tensors = star_tensors(data, dtype)
        for threads in (int(t) for t in args.threads.split(",")):
            torch.set_num_threads(threads)
            trainer = Trainer(meta, data, stars_tensors, dtype)
            check = torch.arange(meta["batch"])
            before = trainer.step(check)
            with torch.no_grad():
                after = trainer.loss(check).item()
            print(f"  [{dtype_name}, {threads} thread{'s' if threads > 1 else ''}] check: first "
                  f"batch loss {before:.10e} before (C++ {meta['check_loss_before']:.10e}, "
                  f"rel. diff {relative(before, meta['check_loss_before']):.1e}), {after:.10e} "
                  f"after one step (C++ {meta['check_loss_after']:.10e}, rel. diff "
                  f"{relative(after, meta['check_loss_after']):.1e})")
            trainer = Trainer(meta, data, stars_tensors, dtype)
            seconds = []
            for e in range(epochs):
                start = time.perf_counter()
                loss = trainer.epoch(orders[e % orders.shape[0]])  # reused in turn, as in C++
                seconds.append(time.perf_counter() - start)
                cpp_loss = meta.get("cpp_epoch_loss") or []
                versus = (f" (C++ {cpp_loss[e]:.10e}, rel. diff {relative(loss, cpp_loss[e]):.1e})"
                          if e < len(cpp_loss) else "")
                print(f"    epoch {e + 1}: {seconds[-1]:8.3f} s {stars / seconds[-1]:10.0f} "
                      f"star-gradients/s  mean batch loss {loss:.10e}{versus}")
            best = min(seconds)
            line = (f"    best epoch {best:.3f} s (median {statistics.median(seconds):.3f} s): "
                    f"{stars / best:.0f} star-gradients/s, {stars / best / threads:.0f} per thread")
            if cpp_best:
                line += f"; C++ one core is {best / cpp_best:.1f}x faster"
                if threads > 1:
                    line += f" ({best * threads / cpp_best:.1f}x per core)"
            print(line)
            del trainer
        del stars_tensors


if __name__ == "__main__":
    main()
