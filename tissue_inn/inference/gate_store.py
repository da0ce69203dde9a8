"""The misfit gate's parts inside a model bundle: the forward surrogate's weights and the card entries.

Layout (beside the untouched ``model.safetensors``)::

    surrogate.safetensors          the ForwardSurrogate's state dict (safetensors; never pickle)
    model_card.json  "surrogate"   {file, sha256, spec, tensors, training, validation}
                     "misfit_gate" the calibration table of :mod:`tissue_inn.inference.misfit`

:func:`attach_to_bundle` writes the weights atomically, then merges the card entries through
:func:`tissue_inn.io.bundle.update_card`; :func:`load_surrogate` checks the file's sha256 and tensor
shapes against the card before ``load_state_dict(strict=True)``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from tissue_inn.atomic import atomic_path
from tissue_inn.errors import ModelBundleError
from tissue_inn.estimators.surrogate import ForwardSurrogate
from tissue_inn.hashing import file_sha256
from tissue_inn.io.bundle import read_card, resolve_model, update_card

__all__ = ["SURROGATE_FILE", "SURROGATE_KEY", "attach_to_bundle", "load_surrogate", "surrogate_card_entry"]

SURROGATE_FILE = "surrogate.safetensors"
SURROGATE_KEY = "surrogate"


def surrogate_card_entry(surrogate: ForwardSurrogate, sha256: str, training: dict[str, Any] | None = None,
                         validation: dict[str, Any] | None = None) -> dict[str, Any]:
    """The card's ``"surrogate"`` entry for a saved surrogate."""
    return {
        "file": SURROGATE_FILE,
        "sha256": sha256,
        "spec": surrogate.spec,
        "tensors": {k: list(v.shape) for k, v in surrogate.state_dict().items()},
        "n_weights": int(sum(p.numel() for p in surrogate.parameters())),
        "training": dict(training or {}),
        "validation": dict(validation or {}),
    }


def attach_to_bundle(folder: str | os.PathLike, surrogate: ForwardSurrogate | None = None,
                     training: dict[str, Any] | None = None, validation: dict[str, Any] | None = None,
                     gate_section: dict[str, Any] | None = None) -> Path:
    """Store a surrogate and/or a gate section in an existing bundle (weights of the model untouched).

    The surrogate file is replaced atomically (temp file + rename); the card is rewritten atomically by
    :func:`tissue_inn.io.bundle.update_card` with the new file's sha256.
    """
    folder = resolve_model(folder)
    read_card(folder)  # fails clearly when the folder is no bundle
    for part in (training, validation, gate_section):  # refuse before anything is written
        try:
            json.dumps(part, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise ModelBundleError(f"the gate's card entries are not valid JSON ({exc}); nothing was written") from None
    updates: dict[str, Any] = {}
    if surrogate is not None:
        state = {k: v.detach().cpu().contiguous() for k, v in surrogate.state_dict().items()}
        with atomic_path(folder / SURROGATE_FILE, force=True) as tmp:  # bytes into the temp file: keeps its mode
            tmp.write_bytes(save(state, metadata={"format": "pt", "tissue_inn_part": "forward_surrogate"}))
        updates[SURROGATE_KEY] = surrogate_card_entry(surrogate, file_sha256(folder / SURROGATE_FILE), training,
                                                      validation)
    if gate_section is not None:
        from tissue_inn.inference.misfit import GATE_KEY

        updates[GATE_KEY] = gate_section
    if updates:
        update_card(folder, updates)
    return folder


def load_surrogate(card: dict[str, Any], folder: str | os.PathLike | None = None,
                   device: str | torch.device = "cpu") -> ForwardSurrogate | None:
    """The bundle's forward surrogate (eval mode, on ``device``), or None when the card has none.

    ``folder`` defaults to the card's ``_bundle_path`` (set by ``Posterior.from_bundle``).
    """
    entry = card.get(SURROGATE_KEY)
    if not isinstance(entry, dict):
        return None
    folder = folder if folder is not None else card.get("_bundle_path")
    if folder is None:
        raise ModelBundleError("the model card names a forward surrogate but not the bundle folder holding it; "
                               "load the model from its folder")
    path = Path(folder) / entry.get("file", SURROGATE_FILE)
    if not path.is_file():
        raise ModelBundleError(f"{path} is missing; the model card names a forward surrogate there")
    if entry.get("sha256") != file_sha256(path):
        raise ModelBundleError(f"{path}: sha256 does not match the card; the surrogate was changed or corrupted")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelBundleError(f"{path}: not a readable safetensors file ({exc})") from None
    expected = entry.get("tensors", {})
    if set(expected) != set(state) or any(list(state[k].shape) != list(v) for k, v in expected.items()):
        raise ModelBundleError(f"{path}: tensors do not match the card's surrogate entry")
    try:
        model = ForwardSurrogate(entry["spec"])
        model.load_state_dict(state, strict=True)
    except (KeyError, ValueError, RuntimeError) as exc:
        raise ModelBundleError(f"{path}: surrogate does not fit its card entry ({str(exc)[:200]})") from None
    return model.requires_grad_(False).to(device).eval()
