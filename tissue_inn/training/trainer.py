"""Training of both model families, as a generator of epoch reports.

``train(...)`` yields a :class:`~tissue_inn.progress.Progress` per epoch (loss terms, validation
loss, learning rate, throughput) and returns a :class:`TrainResult` with the best estimator. It is
seeded (data split, batch order, noise, latent draws, weights), checkpoints every epoch to
``<out>/checkpoint/`` (safetensors + JSON, no pickle) and resumes from there, stops early when the
validation loss stops improving, and clips gradients.

Under ``torchrun`` (``WORLD_SIZE > 1``) the same code trains with DistributedDataParallel (gloo on
CPU, NCCL on CUDA): every rank takes its slice of each global batch, gradients are averaged, rank 0
writes checkpoints.

Optimiser defaults follow the authors' code for the medical run (SCIENCE.md §5): Adam, lr 1e-3,
betas (0.9, 0.95), eps 1e-6, weight decay 1e-5, batch 500, y-noise 0.05 (``inn`` family). Family-specific settings reach the network and its loss
only through the family's ``training_options`` (:mod:`tissue_inn.inn.registry`).

One concept, the training loop (≈ 430 lines, kept whole): its settings, checkpoints, resume and
distributed set-up are the state of that one loop and change together with it.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Generator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file
from torch import nn

from tissue_inn.config import Camera, NoiseModel, TissueModel
from tissue_inn.data.dataset import SpectraDataset
from tissue_inn.data.preprocess import BoundedTransform
from tissue_inn.errors import Cancelled, ConfigError, TissueInnError
from tissue_inn.estimators import PosteriorEstimator, make_spec
from tissue_inn.hashing import file_sha256
from tissue_inn.inn.registry import FAMILIES, family_names
from tissue_inn.progress import Progress, ShouldStop

__all__ = ["TrainSettings", "TrainResult", "train", "EpochReport", "maybe_init_distributed"]


@dataclass(frozen=True)
class TrainSettings:
    """Everything that defines a training run (stored in the model card)."""

    family: str = "cinn"
    epochs: int = 60
    iterations_per_epoch: int = 200
    batch_size: int = 500
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.95)
    eps: float = 1e-6
    weight_decay: float = 1e-5
    lr_schedule: str = "cosine"  # cosine | constant
    lr_min_factor: float = 0.01
    grad_clip: float = 10.0
    val_fraction: float = 0.05
    val_max: int = 4000
    early_stop_patience: int = 12
    seed: int = 0
    # network
    n_blocks: int = 4
    block_type: str = "realnvp"
    hidden: int = 128
    n_hidden_layers: int = 3
    clamp: float = 2.0
    actnorm: bool = False
    cond_net_hidden: int | None = None
    dim_z: int | None = None
    loss_weights: dict[str, float] = field(default_factory=dict)
    y_noise: float = 0.05
    # inn only: sigma of the backward-MMD pair weights exp(-|yi - yj|^2 / 2 sigma^2) (paper: 0.48);
    # None disables them (plain MMD against the prior)
    inn_pair_sigma: float | None = 0.48
    # inn_noise only: give the network the camera-noise realisation (false: log-SNR only, the noise is
    # left to the pad dimensions; docs/inn_study)
    inn_noise_input: bool = True
    # inn_noise only: give the noise times the SNR (~ unit noise at every SNR) instead of noise x 20
    inn_unit_noise: bool = False
    # inn_noise only: (C, a) pairs of the backward-MMD kernels (default: the paper's)
    inn_backward_kernels: list[list[float]] | None = None
    # inn_noise only: condition every coupling subnet on log-SNR as well (needs snr_conditioning)
    inn_snr_condition: bool = False
    # inn_noise only: (C, a) pairs of the forward (latent) MMD kernels (default: the paper's)
    inn_forward_kernels: list[list[float]] | None = None
    normalization: str = "geometric_mean"
    # how parameters bounded on both sides enter the network: "logit" or "probit" (a uniform prior becomes
    # exactly N(0, 1); the bidirectional INN needs it, docs/inn_study round 4)
    bounded_map: str = "logit"
    # noise model applied to simulated y in every batch (default: the camera's)
    snr_min: float | None = None
    snr_max: float | None = None
    snr_conditioning: bool = False  # cinn only: condition on log(SNR) of the measurement
    # one SNR per batch instead of one per spectrum: an MMD compares the distributions within a batch, so
    # only batches of one SNR hold the latent to N(0, I) at every SNR (inn_noise; docs/inn_study)
    snr_per_batch: bool = False
    nominal_snr: float | None = None
    device: str = "cpu"
    threads: int | None = None
    limit_samples: int | None = None

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ConfigError(f"family {self.family!r}: use one of {', '.join(repr(n) for n in family_names())}")
        for name in ("epochs", "iterations_per_epoch", "batch_size", "n_blocks", "hidden"):
            if getattr(self, name) < 1:
                raise ConfigError(f"training setting '{name}' must be >= 1")
        if not (0 < self.val_fraction < 0.5):
            raise ConfigError("val_fraction must lie in (0, 0.5)")
        if self.lr_schedule not in ("cosine", "constant"):
            raise ConfigError("lr_schedule: use 'cosine' or 'constant'")
        if self.bounded_map not in BoundedTransform.MAPS:
            raise ConfigError(f"training setting bounded_map {self.bounded_map!r}: use one of "
                              f"{', '.join(repr(m) for m in BoundedTransform.MAPS)}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "settings") -> TrainSettings:
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ConfigError(f"{where}: unknown training setting(s) {sorted(unknown)}")
        d = dict(d)
        if "betas" in d:
            d["betas"] = tuple(d["betas"])
        return cls(**d)


@dataclass(frozen=True)
class EpochReport:
    epoch: int
    losses: dict[str, float]
    val_loss: float
    lr: float
    samples_per_s: float
    seconds: float


@dataclass
class TrainResult:
    estimator: PosteriorEstimator
    history: list[EpochReport]
    best_epoch: int
    best_val_loss: float
    seconds: float
    dataset: dict[str, Any]
    settings: TrainSettings
    tissue: dict[str, Any]
    camera: dict[str, Any]
    noise: dict[str, Any]
    stopped_early: bool = False

    def card_sections(self) -> dict[str, Any]:
        return {
            "training": {
                "settings": self.settings.to_dict(),
                "best_epoch": self.best_epoch,
                "best_val_loss": self.best_val_loss,
                "epochs_run": len(self.history),
                "stopped_early": self.stopped_early,
                "seconds": round(self.seconds, 1),
                "final_losses": self.history[-1].losses if self.history else {},
                "history": [asdict(h) for h in self.history],
            },
            "dataset": self.dataset,
            "tissue": self.tissue,
            "camera": self.camera,
            "noise_model": self.noise,
        }


class _LossModule(nn.Module):
    """Wraps the estimator so DistributedDataParallel sees the loss computation as ``forward``."""

    def __init__(self, estimator: PosteriorEstimator, kwargs: dict[str, Any]) -> None:
        super().__init__()
        self.estimator = estimator
        self.kwargs = kwargs

    def forward(self, x: torch.Tensor, y: torch.Tensor, snr: torch.Tensor, generator: torch.Generator | None = None,
                y_clean: torch.Tensor | None = None):
        return self.estimator.loss(x, y, snr=snr, generator=generator, y_clean=y_clean, **self.kwargs)


def maybe_init_distributed(device: str = "cpu") -> tuple[int, int]:
    """Join the process group when started by ``torchrun`` (``WORLD_SIZE > 1``); return (rank, world)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and dist.is_available() and not dist.is_initialized():
        backend = "nccl" if device.startswith("cuda") and torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return _dist_info()


def _dist_info() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def build_estimator(settings: TrainSettings, tissue: TissueModel, camera: Camera,
                    noise: NoiseModel | None = None) -> PosteriorEstimator:
    network: dict[str, Any] = {
        "n_blocks": settings.n_blocks,
        "block_type": settings.block_type,
        "hidden": settings.hidden,
        "n_hidden_layers": settings.n_hidden_layers,
        "clamp": settings.clamp,
        "actnorm": settings.actnorm,
        "seed": settings.seed,
    }
    network.update(FAMILIES[settings.family].training_options(settings.to_dict())[0])
    bounds = tissue.prior_bounds()
    spec = make_spec(
        settings.family,
        list(tissue.parameter_names),
        list(tissue.parameter_units),
        list(bounds[:, 0]),
        list(bounds[:, 1]),
        list(camera.band_centers_nm),
        network,
        settings.normalization,
        snr_range=(noise.snr_min, noise.snr_max) if (settings.snr_conditioning and noise is not None) else None,
        nominal_snr=settings.nominal_snr,
        bounded_map=settings.bounded_map,
    )
    return PosteriorEstimator(spec)


def _save_checkpoint(folder: Path, estimator: PosteriorEstimator, best_state: dict, optimizer, epoch: int,
                     history: list[EpochReport], best: tuple[int, float], gen_state: torch.Tensor,
                     settings: TrainSettings) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in estimator.state_dict().items()}
    tensors.update({f"best.{k}": v.detach().cpu().contiguous() for k, v in best_state.items()})
    opt = optimizer.state_dict()
    for pid, st in opt["state"].items():
        for k, v in st.items():
            t = v if torch.is_tensor(v) else torch.tensor(v)
            tensors[f"opt.{pid}.{k}"] = t.detach().cpu().contiguous()
    tensors["rng"] = gen_state.clone()
    meta = {
        "epoch": epoch,
        "history": [asdict(h) for h in history],
        "best_epoch": best[0],
        "best_val_loss": best[1],
        "opt_param_groups": opt["param_groups"],
        "settings": settings.to_dict(),
    }
    tmp = folder / "state.safetensors.part"
    save_file(tensors, str(tmp))
    os.replace(tmp, folder / "state.safetensors")
    tmpj = folder / "state.json.part"
    tmpj.write_text(json.dumps(meta))
    os.replace(tmpj, folder / "state.json")


def _load_checkpoint(folder: Path, estimator: PosteriorEstimator, optimizer, settings: TrainSettings):
    meta = json.loads((folder / "state.json").read_text())
    if meta["settings"] != settings.to_dict():
        raise TissueInnError(f"checkpoint in {folder} was made with other settings; delete it or use --no-resume")
    tensors = load_file(str(folder / "state.safetensors"))
    estimator.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=True)
    best_state = {k[5:]: v for k, v in tensors.items() if k.startswith("best.")}
    state: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, pid, name = k.split(".", 2)
            state.setdefault(int(pid), {})[name] = v
    optimizer.load_state_dict({"state": state, "param_groups": meta["opt_param_groups"]})
    history = [EpochReport(**h) for h in meta["history"]]
    return meta["epoch"], history, (meta["best_epoch"], meta["best_val_loss"]), best_state, tensors["rng"]


def _batch_snr(noise, generator: torch.Generator, per_batch: bool) -> float | None:
    """One SNR for the whole batch, log-uniform in the noise model's range (``None``: one per spectrum)."""
    if not per_batch:
        return None
    lo, hi = math.log(noise.snr_min), math.log(noise.snr_max)
    return math.exp(lo + float(torch.rand((), generator=generator, dtype=torch.float64)) * (hi - lo))


def train(
    data_path: str | os.PathLike,
    settings: TrainSettings,
    *,
    checkpoint_dir: str | os.PathLike | None = None,
    resume: bool = True,
    should_stop: ShouldStop = None,
) -> Generator[Progress, None, TrainResult]:
    """Train an estimator on a simulated dataset. Yields per-epoch Progress; returns TrainResult."""
    previous_threads = torch.get_num_threads()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    try:
        result = yield from _train(data_path, settings, checkpoint_dir, resume, should_stop)
    finally:
        torch.set_num_threads(previous_threads)
    return result


def _train(data_path, settings: TrainSettings, checkpoint_dir, resume: bool, should_stop: ShouldStop):
    t_start = time.monotonic()
    rank, world = maybe_init_distributed(settings.device)
    if settings.batch_size % world:
        raise ConfigError(f"batch_size {settings.batch_size} must be divisible by the number of processes {world}")
    device = torch.device(settings.device if not settings.device.startswith("cuda") or torch.cuda.is_available()
                          else "cpu")
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    data = SpectraDataset(data_path, limit=settings.limit_samples)
    info = data.info
    tissue = TissueModel.from_dict(info.tissue, source=f"{data_path}:tissue")
    camera = Camera.from_dict(info.camera, source=f"{data_path}:camera")
    noise = camera.noise.with_snr_range(settings.snr_min, settings.snr_max)
    if tuple(tissue.parameter_names) != info.parameter_names:
        raise TissueInnError(f"{data_path}: parameter names do not match its tissue definition")

    val_idx, train_idx = data.split(settings.val_fraction, settings.batch_size,
                                    torch.Generator().manual_seed(settings.seed), settings.val_max)
    x_train, y_train = data.x[train_idx], data.y[train_idx]
    x_val, y_val = data.x[val_idx], data.y[val_idx]
    val_noise_gen = torch.Generator().manual_seed(settings.seed + 1)
    y_val_noisy, snr_val = noise.apply(y_val, val_noise_gen, return_snr=True)
    if settings.snr_conditioning and not FAMILIES[settings.family].supports_snr_conditioning:
        able = [n for n in family_names() if FAMILIES[n].supports_snr_conditioning]
        raise ConfigError(f"snr_conditioning needs the {', '.join(able)} family")

    estimator = build_estimator(settings, tissue, camera, noise)
    estimator.fit_scalers(x_train, y_train)
    estimator.to(device)
    loss_kwargs = FAMILIES[settings.family].training_options(settings.to_dict())[1]
    loss_module = _LossModule(estimator, loss_kwargs)
    if world > 1:
        model: nn.Module = nn.parallel.DistributedDataParallel(loss_module)
    else:
        model = loss_module
    params = [p for p in estimator.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=settings.lr, betas=settings.betas, eps=settings.eps,
                                 weight_decay=settings.weight_decay)

    def lr_at(epoch: int) -> float:
        if settings.lr_schedule == "constant":
            return settings.lr
        frac = epoch / max(settings.epochs - 1, 1)
        lo = settings.lr * settings.lr_min_factor
        return lo + 0.5 * (settings.lr - lo) * (1 + math.cos(math.pi * frac))

    batch_gen = torch.Generator().manual_seed(settings.seed + 2)
    history: list[EpochReport] = []
    best = (-1, math.inf)
    best_state = {k: v.detach().clone() for k, v in estimator.state_dict().items()}
    start_epoch = 0
    ckpt = Path(checkpoint_dir) if checkpoint_dir is not None else None
    if ckpt is not None and resume and (ckpt / "state.json").exists():
        start_epoch, history, best, best_state, rng = _load_checkpoint(ckpt, estimator, optimizer, settings)
        batch_gen.set_state(rng)
        yield Progress("train", start_epoch, settings.epochs, f"resumed at epoch {start_epoch}",
                       {"log_line": f"resumed from {ckpt} at epoch {start_epoch}"})
    patience_left = settings.early_stop_patience - (len(history) - 1 - best[0]) if history else \
        settings.early_stop_patience
    stopped_early = False
    n_train = x_train.shape[0]
    local_bs = settings.batch_size // world

    for epoch in range(start_epoch, settings.epochs):
        t_epoch = time.monotonic()
        for group in optimizer.param_groups:
            group["lr"] = lr_at(epoch)
        estimator.train()
        sums: dict[str, float] = {}
        n_iter = min(settings.iterations_per_epoch, n_train // settings.batch_size)
        order = torch.randperm(n_train, generator=batch_gen)
        for it in range(n_iter):
            if should_stop is not None and should_stop():
                raise Cancelled("training stopped; re-run the same command to resume from the last checkpoint")
            idx = order[it * settings.batch_size:(it + 1) * settings.batch_size]
            idx = idx[rank * local_bs:(rank + 1) * local_bs]
            xb = x_train[idx]
            yb, snr_b = noise.apply(y_train[idx], batch_gen, snr=_batch_snr(noise, batch_gen, settings.snr_per_batch),
                                    return_snr=True)
            loss_gen = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,), generator=batch_gen)) + rank)
            terms = model(xb.to(device), yb.to(device), snr_b.to(device), loss_gen, y_train[idx].to(device))
            total = terms["total"]
            if not torch.isfinite(total):
                raise TissueInnError(f"training diverged at epoch {epoch + 1} (loss {total.item()}); lower --lr "
                                     "or --clamp")
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            torch.nn.utils.clip_grad_norm_(params, settings.grad_clip)
            optimizer.step()
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
        losses = {k: v / max(n_iter, 1) for k, v in sums.items()}
        # validation (fixed noisy copy, fixed latent draws)
        estimator.eval()
        with torch.no_grad():
            vgen = torch.Generator().manual_seed(settings.seed + 3)
            vals = []
            for s in range(0, x_val.shape[0], settings.batch_size):
                vt = loss_module(x_val[s:s + settings.batch_size].to(device),
                                 y_val_noisy[s:s + settings.batch_size].to(device),
                                 snr_val[s:s + settings.batch_size].to(device), vgen,
                                 y_val[s:s + settings.batch_size].to(device))
                vals.append(float(vt["total"]) * min(settings.batch_size, x_val.shape[0] - s))
            val_loss = sum(vals) / x_val.shape[0]
        dt = time.monotonic() - t_epoch
        rep = EpochReport(epoch + 1, losses, val_loss, lr_at(epoch), n_iter * settings.batch_size / dt, dt)
        history.append(rep)
        if val_loss < best[1]:
            best = (epoch + 1, val_loss)
            best_state = {k: v.detach().clone() for k, v in estimator.state_dict().items()}
            patience_left = settings.early_stop_patience
        else:
            patience_left -= 1
        if ckpt is not None and rank == 0:
            _save_checkpoint(ckpt, estimator, best_state, optimizer, epoch + 1, history, best,
                             batch_gen.get_state(), settings)
        terms_txt = " ".join(f"{k}={v:.4g}" for k, v in losses.items() if k != "total")
        line = (f"epoch {epoch + 1:3d}/{settings.epochs} loss={losses.get('total', float('nan')):.4f} "
                f"val={val_loss:.4f} lr={rep.lr:.2e} {terms_txt} ({rep.samples_per_s:.0f} samples/s)")
        yield Progress("train", epoch + 1, settings.epochs, f"val={val_loss:.4f}",
                       {"log_line": line, "report": asdict(rep)})
        if patience_left <= 0:
            stopped_early = True
            break

    estimator.load_state_dict(best_state)
    estimator.eval()
    dataset = {
        "path": str(data_path),
        "n_samples": info.n_samples,
        "n_train": int(n_train),
        "n_val": len(val_idx),
        "sha256": file_sha256(data_path),
        "seed": info.seed,
        "solver": info.solver,
    }
    return TrainResult(
        estimator=estimator.cpu(),
        history=history,
        best_epoch=best[0],
        best_val_loss=best[1],
        seconds=time.monotonic() - t_start,
        dataset=dataset,
        settings=settings,
        tissue=tissue.to_dict(),
        camera=camera.to_dict(),
        noise=asdict(noise),
        stopped_early=stopped_early,
    )
