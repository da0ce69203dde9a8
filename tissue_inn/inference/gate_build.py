"""Build a model's misfit gate: train the forward surrogate, check it against the solver, calibrate, attach.

``build_gate(bundle, train_path, test_path, ...)`` is a generator of :class:`~tissue_inn.progress.Progress`
(stages ``surrogate``, ``check``, ``calibrate``) returning the card entries it wrote. Steps:

1. train a :class:`~tissue_inn.estimators.surrogate.ForwardSurrogate` on the simulated pairs of
   ``train_path`` (noise-free ``x``/``y`` HDF5 as written by ``tissue-inn simulate``; seed recorded);
2. check it on the held-out test set against the adding-doubling spectra stored there (median/p99
   relative band error, residual) and time it against batched solver calls (spectra per second);
3. calibrate the gate on the test set (:func:`tissue_inn.inference.misfit.calibrate`) with the surrogate
   as residual engine;
4. store both in the bundle (:func:`tissue_inn.inference.gate_store.attach_to_bundle`; the model's
   weights file stays byte-identical).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch

from tissue_inn.errors import DataFileError, ModelBundleError
from tissue_inn.estimators.surrogate import ForwardSurrogate, fit_surrogate, make_surrogate_spec, surrogate_errors
from tissue_inn.hashing import file_sha256
from tissue_inn.inference.gate_store import attach_to_bundle, load_surrogate
from tissue_inn.inference.misfit import DEFAULT_ALPHA
from tissue_inn.inference.misfit_calibrate import calibrate
from tissue_inn.inference.posterior import PREDICTIVE_N_QUAD, Posterior
from tissue_inn.progress import Progress

__all__ = ["build_gate", "read_pairs", "time_engines"]


def read_pairs(path: str | os.PathLike, parameter_names: tuple[str, ...], limit: int | None = None,
               ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """``(x [N, D], y [N, B], provenance)`` of a simulated dataset whose parameters match the model's."""
    try:
        with h5py.File(path, "r") as f:
            names = tuple(json.loads(f.attrs["parameter_names"]))
            if names != tuple(parameter_names):
                raise DataFileError(f"{path}: parameters {list(names)} differ from the model's {list(parameter_names)}; "
                                    "simulate the data with the model's tissue")
            done = f["blocks_done"][:] if "blocks_done" in f else None
            if done is not None and not np.all(done):
                raise DataFileError(f"{path}: the simulation is incomplete; resume it with tissue-inn simulate")
            n = f["x"].shape[0] if limit is None else min(int(limit), f["x"].shape[0])
            x = f["x"][:n].astype(np.float64)
            y = f["y"][:n].astype(np.float64)
            prov = {"path": str(path), "n": int(n), "seed": int(f.attrs.get("seed", -1)),
                    "solver": str(f.attrs.get("solver", ""))}
    except (OSError, KeyError) as exc:
        raise DataFileError(f"{path}: not a readable simulated dataset ({exc})") from None
    prov["sha256"] = file_sha256(path)
    return x, y, prov


def time_engines(posterior: Posterior, surrogate: ForwardSurrogate, x: np.ndarray, repeats: int = 3,
                 ) -> dict[str, Any]:
    """Spectra per second of the surrogate and of the solver (``n_quad`` of the predictive check), batched."""
    x_t = torch.as_tensor(x, dtype=torch.float64)
    fm = posterior.forward_model()

    def rate(fn: Callable[[torch.Tensor], torch.Tensor], xs: torch.Tensor) -> list[float]:
        out = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            with torch.inference_mode():
                fn(xs)
            out.append(xs.shape[0] / (time.perf_counter() - t0))
        return out

    n_solver = min(512, x_t.shape[0])
    sur = rate(surrogate.bands, x_t)
    sol = rate(fm.bands, x_t[:n_solver])
    return {
        "threads": torch.get_num_threads(),
        "surrogate_spectra_per_s": [round(v) for v in sur],
        "solver_spectra_per_s": [round(v, 1) for v in sol],
        "solver_n_quad": PREDICTIVE_N_QUAD,
        "speedup_median": round(float(np.median(sur) / np.median(sol))),
        "batch": {"surrogate": int(x_t.shape[0]), "solver": int(n_solver)},
    }


def _borrowed_surrogate(source: str | os.PathLike, posterior: Posterior, spec: dict[str, Any],
                        ) -> tuple[ForwardSurrogate, dict[str, Any]]:
    """Another bundle's surrogate, checked to describe the same tissue, camera and prior."""
    other = Posterior.from_bundle(source, device="cpu")
    surrogate = load_surrogate(other.card)
    if surrogate is None:
        raise ModelBundleError(f"{source}: the bundle has no forward surrogate to reuse")
    same = all(surrogate.spec[k] == spec[k] for k in ("parameter_names", "prior_low", "prior_high",
                                                       "band_centers_nm"))
    if not same or other.card.get("tissue") != posterior.card.get("tissue") or \
            other.card.get("camera") != posterior.card.get("camera"):
        raise ModelBundleError(f"{source}: its surrogate was made for another tissue, camera or prior")
    training = dict(other.card["surrogate"].get("training", {}))
    if Path(str(other.card.get("_bundle_path"))).resolve() != Path(str(posterior.card.get("_bundle_path"))).resolve():
        training["reused_from"] = {"model": other.model_name, "sha256": other.card["surrogate"].get("sha256")}
    return surrogate, training


def build_gate(
    bundle: str | os.PathLike,
    train_path: str | os.PathLike,
    test_path: str | os.PathLike,
    n_train: int | None = None,
    n_test: int | None = None,
    epochs: int = 60,
    hidden: int = 256,
    n_hidden_layers: int = 3,
    seed: int = 0,
    snr_grid: list[float] | None = None,
    n_draws: int = 256,
    alpha: float = DEFAULT_ALPHA,
    should_stop: Callable[[], bool] | None = None,
    surrogate_from: str | os.PathLike | None = None,
) -> Generator[Progress, None, dict[str, Any]]:
    """Train, check, calibrate and attach the gate of ``bundle`` (module docstring). Returns the card entries.

    ``surrogate_from``: reuse the surrogate of another bundle of the same tissue, camera and prior
    (``train_path`` is then not read) instead of training one.
    """
    posterior = Posterior.from_bundle(bundle, device="cpu")
    names = posterior.parameter_names
    x_te, y_te, prov_te = read_pairs(test_path, names, n_test)
    bounds = posterior.prior_bounds
    spec = make_surrogate_spec(list(names), list(bounds[:, 0]), list(bounds[:, 1]),
                               list(posterior.band_centers_nm), hidden=hidden, n_hidden_layers=n_hidden_layers,
                               seed=seed)
    if surrogate_from is not None:
        surrogate, training = _borrowed_surrogate(surrogate_from, posterior, spec)
    else:
        x_tr, y_tr, prov_tr = read_pairs(train_path, names, n_train)
        surrogate, report = yield from fit_surrogate(x_tr, y_tr, spec, epochs=epochs, seed=seed,
                                                     should_stop=should_stop)
        training = {"dataset": prov_tr, **{k: v for k, v in report.items() if k != "history"},
                    "history_val_mse": [round(h["val_mse"], 8) for h in report["history"]]}
    yield Progress("check", 0, 1, "surrogate vs adding-doubling on the test set")
    validation = {"test_set": prov_te, **surrogate_errors(surrogate, x_te, y_te, posterior.scale_free),
                  "speed": time_engines(posterior, surrogate, x_te[:4096])}
    section = yield from calibrate(posterior, surrogate.bands, y_te, snr_grid=snr_grid, n_draws=n_draws, seed=seed,
                                   alpha=alpha, residual_engine="surrogate", test_set=prov_te,
                                   should_stop=should_stop)
    attach_to_bundle(bundle, surrogate, training=training, validation=validation, gate_section=section)
    return {"surrogate": {"training": training, "validation": validation}, "misfit_gate": section}
