"""Model ▸ New model… without Qt: the request, its cost, resuming, progress with a loss curve and ETA.

The GUI's dialog (:mod:`tissue_inn.gui.new_model_dialog`) only draws what this module computes; the
work itself is :func:`tissue_inn.training.make_model.make_model` (simulate → train → evaluate → gate →
bundle), resumable through its ``<output>.work`` folder. This module adds what a dialog needs around
it: the shipped tissues and cameras, a camera file for a cube whose bands no model fits, what an
earlier stopped run left behind (so the dialog can offer *Resume*), and a :class:`MakeModelTracker` that
turns the stream of progress reports into a stage line, a loss curve and an ETA.

Example:
    >>> sorted(shipped("tissue"))[:2]
    ['colon', 'generic']
    >>> t = MakeModelTracker(stage_estimates={"simulate": 10.0, "train": 30.0, "evaluate": 10.0})
    >>> t.overall_fraction()
    0.0
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tissue_inn.atomic import atomic_path
from tissue_inn.config import resources_dir
from tissue_inn.errors import ConfigError
from tissue_inn.progress import Progress, ShouldStop
from tissue_inn.training.make_model import (
    CostEstimate,
    MadeModel,
    MakeModelRequest,
    estimate_cost,
    make_model,
    work_dir,
)

__all__ = ["shipped", "new_model_request", "estimate", "run", "ResumeInfo", "resume_info", "cube_camera_file",
           "MakeModelTracker", "default_models_dir", "MakeModelRequest", "CostEstimate", "MadeModel", "Progress",
           "work_dir"]

# The order of make_model's stages; "test-set" and "gate" are folded into their neighbours' estimates.
STAGES = ("simulate", "test-set", "train", "evaluate", "gate", "bundle")
_ESTIMATE_OF = {"simulate": "simulate", "test-set": "simulate", "train": "train", "evaluate": "evaluate",
                "gate": "evaluate", "bundle": "evaluate"}


def shipped(kind: str) -> list[str]:
    """Names of the shipped ``"tissue"`` or ``"camera"`` definitions (``resources/<kind>s/*.toml``)."""
    if kind not in ("tissue", "camera"):
        raise ValueError(f"kind must be 'tissue' or 'camera', not {kind!r}")
    return sorted(p.stem for p in (resources_dir() / f"{kind}s").glob("*.toml"))


def default_models_dir() -> Path:
    """Where new models go unless the user picks another folder (``~/tissue_inn_models``)."""
    return Path(os.environ.get("TISSUE_INN_MODELS", Path.home() / "tissue_inn_models"))


def new_model_request(tissue: str, camera: str, output: str | os.PathLike, size: int = 100_000, epochs: int = 40,
                      device: str = "auto", gate: bool = True, **advanced: Any) -> MakeModelRequest:
    """The request of the dialog's fields. The held-out test set scales with ``size`` (a fifth, 40 to
    2,000 spectra) unless ``advanced`` names ``test_size``; ``advanced`` passes any other request field.

    Raises:
        ConfigError: A size, epoch count or test size the pipeline cannot use.
    """
    if not str(tissue).strip() or not str(camera).strip():
        raise ConfigError("choose a tissue and a camera (a shipped name or a .toml file)")
    if not str(output).strip():
        raise ConfigError("choose where to write the model (an output folder)")
    advanced.setdefault("test_size", int(min(2000, max(40, size // 5))))
    return MakeModelRequest(tissue=str(tissue), camera=str(camera), output=str(output), size=int(size),
                            epochs=int(epochs), device=device, gate=gate, **advanced)


def estimate(request: MakeModelRequest) -> CostEstimate:
    """The predicted time of each stage (measures the solver and a few training steps; about a second)."""
    return estimate_cost(request)


def run(request: MakeModelRequest, should_stop: ShouldStop = None) -> Generator[Progress, None, MadeModel]:
    """Make the model (resuming whatever ``<output>.work`` holds); a generator of progress reports."""
    return make_model(request, should_stop=should_stop)


@dataclass(frozen=True)
class ResumeInfo:
    """What an earlier run of a request left in its work folder."""

    folder: Path
    done: tuple[str, ...]  # finished pieces, in words
    same_request: bool  # False: the folder holds the work of another tissue/camera/size/seed

    @property
    def text(self) -> str:
        if not self.same_request:
            return (f"{self.folder} holds the work of a different request; choose another output folder or "
                    "delete that folder")
        have = ", ".join(self.done) if self.done else "nothing finished yet"
        return f"An earlier run stopped here ({have}). Resume continues from there."


def resume_info(output: str | os.PathLike, request: MakeModelRequest | None = None) -> ResumeInfo | None:
    """The state of ``<output>.work`` (None when there is none): what is finished, and whether it belongs to
    ``request`` (the same tissue, camera, size and seed; otherwise make_model would refuse it)."""
    work = work_dir(output)
    if not work.is_dir():
        return None
    done: list[str] = []
    shards = sorted(work.glob("train.s*.h5"))
    if (work / "train.h5").exists():
        done.append("training spectra simulated")
    elif shards:
        done.append(f"{len(shards)} simulation shard{'s' if len(shards) > 1 else ''}")
    if (work / "test.h5").exists():
        done.append("test spectra simulated")
    state = work / "checkpoint" / "state.json"
    if state.exists():
        try:
            epoch = json.loads(state.read_text()).get("epoch")
        except (OSError, json.JSONDecodeError):
            epoch = None
        done.append(f"trained to epoch {epoch}" if epoch is not None else "a training checkpoint")
    same = True
    ident = work / "request.json"
    if request is not None and ident.exists():
        try:
            old = json.loads(ident.read_text()).get("request", {})
        except (OSError, json.JSONDecodeError):
            old = {}
        keys = ("size", "test_size", "seed")
        same = all(old.get(k) == getattr(request, k) for k in keys) and \
            _same_definition(old.get("tissue"), request.tissue) and _same_definition(old.get("camera"), request.camera)
    return ResumeInfo(work, tuple(done), same)


def _same_definition(old: str | None, new: str) -> bool:
    if old is None:
        return True
    return old == new or (Path(old).suffix == ".toml" and Path(old).resolve() == Path(new).resolve())


def cube_camera_file(wavelengths_nm: Sequence[float], folder: str | os.PathLike, name: str | None = None) -> Path:
    """Write a camera file for a cube whose filters are unknown: Gaussian bands at its band centres (FWHM =
    the median band spacing). Returns its path (``<folder>/<name>.toml``; an existing file is replaced)."""
    from tissue_inn.camera_config import camera_from_bands, camera_toml

    centres = [float(w) for w in wavelengths_nm]
    if not centres:
        raise ConfigError("the image names no band wavelengths; a camera needs its band centres")
    name = name or f"cube_{len(centres)}bands_{min(centres):.0f}-{max(centres):.0f}nm"
    camera = camera_from_bands(centres, name=name)
    path = Path(folder) / f"{name}.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path, force=True) as tmp:
        tmp.write_text(camera_toml(camera))
    return path


@dataclass
class MakeModelTracker:
    """Follows make_model's reports: the stage line, train/validation loss per epoch, overall ETA.

    ``stage_estimates`` are the cost estimate's seconds (keys ``simulate``, ``train``, ``evaluate``);
    the overall fraction weighs each stage by its estimate, and the ETA extrapolates the elapsed time
    (before 2 % is done it is the estimate minus the elapsed time).
    """

    stage_estimates: dict[str, float] = field(default_factory=dict)
    clock: Any = time.monotonic
    stage: str = ""
    message: str = ""
    stage_fraction: float = 0.0
    epochs: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    val_loss: list[float] = field(default_factory=list)
    log: list[str] = field(default_factory=list)
    _t0: float | None = None
    _finished: set[str] = field(default_factory=set)

    def update(self, p: Progress) -> None:
        if self._t0 is None:
            self._t0 = self.clock()
        # a stage marks all estimates before it as done (a resumed run skips finished stages)
        order = ("simulate", "train", "evaluate")
        key = _ESTIMATE_OF.get(p.stage, p.stage)
        if key in order:
            self._finished.update(order[:order.index(key)])
        self.stage, self.message, self.stage_fraction = p.stage, p.message, p.fraction
        report = p.extra.get("report") if isinstance(p.extra, dict) else None
        if p.stage == "train" and isinstance(report, dict) and "epoch" in report:
            if report["epoch"] not in self.epochs:
                self.epochs.append(int(report["epoch"]))
                self.train_loss.append(float(report.get("losses", {}).get("total", float("nan"))))
                self.val_loss.append(float(report.get("val_loss", float("nan"))))
        line = p.extra.get("log_line") if isinstance(p.extra, dict) else None
        if line:
            self.log.append(str(line))

    def overall_fraction(self) -> float:
        est = {k: max(float(v), 0.0) for k, v in self.stage_estimates.items()}
        total = sum(est.values())
        if total <= 0 or not self.stage:
            return 0.0
        current = _ESTIMATE_OF.get(self.stage, self.stage)
        done = sum(v for k, v in est.items() if k in self._finished and k != current)
        done += est.get(current, 0.0) * min(max(self.stage_fraction, 0.0), 1.0)
        return min(done / total, 1.0)

    def elapsed_s(self) -> float:
        return 0.0 if self._t0 is None else self.clock() - self._t0

    def eta_s(self) -> float | None:
        """Seconds left (None before the first report)."""
        if self._t0 is None:
            return None
        f, elapsed = self.overall_fraction(), self.elapsed_s()
        if f < 0.02:
            return max(sum(self.stage_estimates.values()) - elapsed, 0.0)
        return elapsed * (1.0 - f) / f

    def status_text(self) -> str:
        eta = self.eta_s()
        left = "" if eta is None else f" — about {_duration(eta)} left"
        pct = f" {100 * self.stage_fraction:.0f} %" if self.stage_fraction else ""
        return f"{self.stage}{pct}: {self.message}{left}" if self.stage else "starting …"


def _duration(s: float) -> str:
    s = int(round(s))
    if s >= 3600:
        return f"{s // 3600} h {s // 60 % 60:02d} min"
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"
