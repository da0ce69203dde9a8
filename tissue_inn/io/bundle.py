"""Model bundles: ``model.safetensors`` (state dict only) + ``model_card.json``. Never pickle.

Loading rebuilds the estimator from the card's ``estimator`` spec, checks the weights file's
sha256 and tensor names/shapes against the card, then ``load_state_dict(strict=True)``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from tissue_inn import __version__
from tissue_inn.atomic import atomic_dir, atomic_path
from tissue_inn.config import models_dir
from tissue_inn.errors import ModelBundleError
from tissue_inn.estimators import PosteriorEstimator
from tissue_inn.hashing import file_sha256

__all__ = ["SCHEMA_VERSION", "save_bundle", "load_bundle", "read_card", "resolve_model", "format_card",
           "update_card"]

SCHEMA_VERSION = 1
WEIGHTS = "model.safetensors"
CARD = "model_card.json"
DEFAULT_MODEL = "colon_default"


def resolve_model(name_or_path: str | os.PathLike | None) -> Path:
    """A bundle folder from a path or the name of a shipped model (default: the shipped default)."""
    if name_or_path is None:
        name_or_path = DEFAULT_MODEL
    p = Path(name_or_path)
    if p.is_dir():
        return p
    shipped = models_dir() / str(name_or_path)
    if shipped.is_dir():
        return shipped
    names = sorted(d.name for d in models_dir().iterdir() if (d / CARD).exists()) if models_dir().is_dir() else []
    raise ModelBundleError(f"model {str(name_or_path)!r} not found; give a bundle folder or one of {names}")


def save_bundle(estimator: PosteriorEstimator, card: dict[str, Any], folder: str | os.PathLike,
                force: bool = False) -> Path:
    """Write a bundle folder atomically (a temp folder renamed into place)."""
    with atomic_dir(folder, force=force) as tmp:
        state = {k: v.detach().cpu().contiguous() for k, v in estimator.state_dict().items()}
        save_file(state, str(tmp / WEIGHTS), metadata={"format": "pt", "tissue_inn_schema": str(SCHEMA_VERSION)})
        full = dict(card)
        full["schema_version"] = SCHEMA_VERSION
        full["package_version"] = __version__
        full.setdefault("created", time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        full["family"] = estimator.family
        full["estimator"] = estimator.spec
        full["parameters"] = full.get("parameters") or [
            {"name": n, "unit": u} for n, u in zip(estimator.parameter_names, estimator.parameter_units)
        ]
        full["band_centers_nm"] = list(estimator.band_centers_nm)
        full["weights"] = {
            "file": WEIGHTS,
            "sha256": file_sha256(tmp / WEIGHTS),
            "n_parameters": int(sum(p.numel() for p in estimator.parameters())),
            "tensors": {k: list(v.shape) for k, v in state.items()},
        }
        (tmp / CARD).write_text(json.dumps(full, indent=2, allow_nan=False))
    return Path(folder)


def read_card(folder: str | os.PathLike) -> dict[str, Any]:
    folder = Path(folder)
    path = folder / CARD
    if not folder.is_dir():
        raise ModelBundleError(f"{folder}: not a model bundle folder")
    if not path.is_file():
        raise ModelBundleError(f"{folder}: {CARD} is missing; a bundle needs {CARD} and {WEIGHTS}")
    try:
        card = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelBundleError(f"{path}: not valid JSON ({exc}); the card is corrupt") from None
    if not isinstance(card, dict):
        raise ModelBundleError(f"{path}: expected a JSON object")
    version = card.get("schema_version")
    if not isinstance(version, int):
        raise ModelBundleError(f"{path}: 'schema_version' missing or not an integer")
    if version > SCHEMA_VERSION:
        raise ModelBundleError(f"{path}: card schema {version} is newer than this tissue_inn supports "
                               f"({SCHEMA_VERSION}); upgrade tissue_inn")
    for key in ("estimator", "weights", "family"):
        if key not in card:
            raise ModelBundleError(f"{path}: required key '{key}' missing")
    return card


def load_bundle(folder: str | os.PathLike | None = None, verify_hash: bool = True) -> tuple[PosteriorEstimator,
                                                                                          dict[str, Any]]:
    """Load a bundle (or a shipped model by name) → (estimator in eval mode, card)."""
    folder = resolve_model(folder)
    card = read_card(folder)
    wpath = _weights_path(folder, card)
    if not wpath.is_file():
        raise ModelBundleError(f"{folder}: weights file {wpath.name} is missing")
    if verify_hash and card["weights"].get("sha256") != file_sha256(wpath):
        raise ModelBundleError(f"{wpath}: sha256 does not match the card; the weights were changed or corrupted")
    try:
        state = load_file(str(wpath))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelBundleError(f"{wpath}: not a readable safetensors file ({exc})") from None
    expected = card["weights"].get("tensors", {})
    if set(expected) != set(state) or any(list(state[k].shape) != list(v) for k, v in expected.items()):
        missing = sorted(set(expected) - set(state))[:5]
        extra = sorted(set(state) - set(expected))[:5]
        raise ModelBundleError(f"{wpath}: tensors do not match the card (missing {missing}, unexpected {extra}, "
                               "or shapes differ)")
    if card.get("family") != card["estimator"].get("family"):
        raise ModelBundleError(f"{folder}: card family {card.get('family')!r} contradicts its estimator spec")
    estimator = PosteriorEstimator(card["estimator"])
    try:
        estimator.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ModelBundleError(f"{wpath}: weights do not fit the architecture in the card ({str(exc)[:200]})") \
            from None
    estimator.eval()
    _check_card_matches(folder, card, estimator)
    return estimator, card


def _weights_path(folder: Path, card: dict[str, Any]) -> Path:
    """The weights file named by the card; it must be a plain file name that resolves inside the bundle."""
    name = card["weights"].get("file", WEIGHTS)
    if not isinstance(name, str) or not name or Path(name).name != name or name in (".", ".."):
        raise ModelBundleError(f"{folder}: the card names the weights file {name!r}, which is not a plain file name "
                               f"inside the bundle folder; a bundle's files must lie in its own folder")
    path = folder / name
    try:
        inside = path.resolve().is_relative_to(folder.resolve())
    except OSError:
        inside = False
    if not inside:
        raise ModelBundleError(f"{folder}: the weights file {name!r} resolves outside the bundle folder (a link?); "
                               f"copy the real file into the bundle")
    return path


def _check_card_matches(folder: Path, card: dict[str, Any], estimator: PosteriorEstimator) -> None:
    """The card's descriptive sections (tissue, parameters, bands) must describe this network."""
    names = list(estimator.parameter_names)
    bands = [float(b) for b in estimator.band_centers_nm]
    problems = []
    listed = [p.get("name") if isinstance(p, dict) else p for p in card.get("parameters") or []]
    if listed and listed != names:
        problems.append(f"its parameter list has {len(listed)} entries {listed}")
    tissue = card.get("tissue")
    if isinstance(tissue, dict) and tissue:
        from tissue_inn.config import TissueModel

        try:
            tissue_names = list(TissueModel.from_dict(tissue, source=f"{folder / CARD}:tissue").parameter_names)
        except Exception as exc:  # any malformed tissue section is a bundle error
            raise ModelBundleError(f"{folder / CARD}: the tissue section is malformed ({exc})") from None
        if tissue_names != names:
            problems.append(f"its tissue {tissue.get('name', '?')!r} has {len(tissue_names)} parameters {tissue_names}")
    card_bands = card.get("band_centers_nm")
    if card_bands is not None and (len(card_bands) != len(bands)
                                   or any(abs(float(a) - b) > 1e-6 for a, b in zip(card_bands, bands))):
        problems.append(f"it lists bands {list(card_bands)} nm")
    cam_bands = (card.get("camera") or {}).get("band_centers_nm") if isinstance(card.get("camera"), dict) else None
    if cam_bands is not None and len(cam_bands) != len(bands):
        problems.append(f"its camera has {len(cam_bands)} bands")
    n_weights = card["weights"].get("n_parameters")
    actual = int(sum(p.numel() for p in estimator.parameters()))
    if n_weights is not None and n_weights != actual:
        problems.append(f"it counts {n_weights} weights")
    if problems:
        raise ModelBundleError(
            f"{folder / CARD}: the card does not match its network, which estimates {len(names)} parameters "
            f"{names} from {len(bands)} bands {bands} nm with {actual} weights, but " + "; ".join(problems)
            + ". The card was edited or belongs to another model; use the card saved with these weights."
        )


def update_card(folder: str | os.PathLike, updates: dict[str, Any]) -> None:
    """Merge ``updates`` into a bundle's card (atomic rewrite; weights untouched)."""
    folder = Path(folder)
    card = read_card(folder)
    card.update(updates)
    with atomic_path(folder / CARD, force=True) as tmp:
        tmp.write_text(json.dumps(card, indent=2, allow_nan=False))


def format_card(card: dict[str, Any]) -> str:
    """A readable summary of a model card."""
    lines = [f"model family : {card.get('family')}  (schema {card.get('schema_version')}, "
             f"tissue_inn {card.get('package_version')})",
             f"created      : {card.get('created', '?')}"]
    tissue = card.get("tissue", {})
    cam = card.get("camera", {})
    lines.append(f"tissue       : {tissue.get('name', '?')} — {tissue.get('description', '')}")
    lines.append(f"camera       : {cam.get('name', '?')} bands {card.get('band_centers_nm')} nm")
    noise = card.get("noise_model", {})
    if noise:
        lines.append(f"noise model  : multiplicative, SNR {noise.get('snr_min')}–{noise.get('snr_max')}")
    spec = card["estimator"]
    lines.append(f"preprocessing: {spec.get('normalization')} log-spectrum, bounded parameters via "
                 f"{spec.get('bounded_map', 'logit')}/log")
    net = spec.get("network", {})
    lines.append(f"network      : {net.get('n_blocks')} × {net.get('block_type')} blocks, hidden {net.get('hidden')}"
                 f" × {net.get('n_hidden_layers')}, clamp {net.get('clamp')}; "
                 f"{card['weights'].get('n_parameters', '?')} weights")
    lines.append("parameters   :")
    lows, highs = spec.get("prior_low", []), spec.get("prior_high", [])
    for i, (n, u) in enumerate(zip(spec["parameter_names"], spec["parameter_units"])):
        lo = lows[i] if i < len(lows) else None
        hi = highs[i] if i < len(highs) else None
        lines.append(f"  {n:10s} [{u:5s}] prior support [{lo if lo is not None else '-inf'}, "
                     f"{hi if hi is not None else 'inf'}]")
    ds = card.get("dataset", {})
    if ds:
        lines.append(f"dataset      : {ds.get('path')} ({ds.get('n_samples')} samples, seed {ds.get('seed')}, "
                     f"sha256 {str(ds.get('sha256'))[:12]}…)")
    tr = card.get("training", {})
    if tr:
        lines.append(f"training     : {tr.get('epochs_run')} epochs, best {tr.get('best_epoch')} "
                     f"(val {tr.get('best_val_loss'):.4f}), {tr.get('seconds')} s")
    ev = card.get("evaluation", {})
    for cond, res in ev.get("summary", {}).items() if isinstance(ev, dict) else []:
        lines.append(f"evaluation   : {cond}: {json.dumps(res)}")
    return "\n".join(lines)
