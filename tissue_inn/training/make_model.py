"""A model in one step: simulate → train → evaluate → (misfit gate) → bundle, resumable.

:func:`make_model` is a generator of :class:`~tissue_inn.progress.Progress` (stages ``simulate``,
``test-set``, ``train``, ``evaluate``, ``gate``, ``bundle``) that returns a :class:`MadeModel`. All work
goes to ``<output>.work/`` (simulation shards, test set, training checkpoint, the bundle being
assembled); running the same request again resumes where it stopped (after a crash, ``Ctrl-C`` or
``should_stop``), and only the finished bundle is renamed to ``<output>``. The simulated data stay in
the work folder afterwards (``train.h5``, ``test.h5``), so the same request with ``--force`` and other
training settings retrains without simulating again. The simulation is cut
into ``processes`` shards simulated by separate processes (CPU), or runs in this process on a GPU.
:func:`estimate_cost` measures the solver and the network on a few spectra and predicts the time
of each stage before anything starts.

Front ends: ``tissue-inn make-model`` (:mod:`tissue_inn.cli.make_model`) and the GUI's
"Model ▸ New model…" dialog. Both build a :class:`MakeModelRequest`, show :func:`estimate_cost`,
then drive :func:`make_model` (the GUI in a worker thread with ``should_stop`` for Cancel).

Example (a tiny model, seconds):
    >>> req = MakeModelRequest("skin", "spectrocam8", "models/tiny", size=400, test_size=100, epochs=1)
    >>> print(estimate_cost(req).text)  # doctest: +SKIP
    >>> made = run_to_completion(make_model(req))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import queue as queue_mod
import shutil
import time
import tomllib
from collections.abc import Generator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from tissue_inn.config import Camera, TissueModel, load_camera, load_tissue
from tissue_inn.errors import Cancelled, ConfigError, OutputExistsError, TissueInnError
from tissue_inn.progress import Progress, ShouldStop, run_to_completion
from tissue_inn.simulation.simulate import merge_shards, simulate_dataset

__all__ = ["MakeModelRequest", "CostEstimate", "MadeModel", "estimate_cost", "make_model", "work_dir",
           "training_settings"]


@dataclass(frozen=True)
class MakeModelRequest:
    """What to make. ``tissue``/``camera``: shipped names or TOML paths; ``device`` ``auto`` = CUDA if present."""

    tissue: str
    camera: str
    output: str
    size: int = 100_000
    test_size: int = 2_000
    epochs: int = 40
    device: str = "auto"
    seed: int = 0
    processes: int | None = None  # simulation processes on CPU (default: the number of CPU cores)
    train_config: str = "train_cinn"  # shipped config name (configs/) or TOML path
    eval_snrs: tuple[float, ...] = (20.0, 10.0)
    eval_draws: int = 1024
    ppc_cases: int = 50
    gate: bool = True  # calibrate the "not explained" gate when tissue_inn.inference.misfit is present
    gate_epochs: int = 60
    threads: int | None = None
    description: str = ""
    force: bool = False

    def __post_init__(self) -> None:
        if self.size < 100:
            raise ConfigError(f"--size {self.size}: a model needs at least 100 simulated spectra")
        if self.test_size < 20:
            raise ConfigError(f"test size {self.test_size}: need at least 20 held-out spectra")
        if self.epochs < 1 or self.eval_draws < 16:
            raise ConfigError("--epochs must be >= 1 and the evaluation needs >= 16 draws")

    def resolved_device(self) -> str:
        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise TissueInnError(f"--device {self.device}: no CUDA device here; use --device cpu")
        return self.device

    def n_processes(self) -> int:
        if self.resolved_device() != "cpu":
            return 1
        return max(1, self.processes or os.cpu_count() or 1)


@dataclass(frozen=True)
class CostEstimate:
    """Predicted seconds per stage (from measured rates) and the rates they come from."""

    simulate_s: float
    train_s: float
    evaluate_s: float
    solver_spectra_per_s: float
    train_samples_per_s: float
    processes: int
    device: str
    text: str

    @property
    def total_s(self) -> float:
        return self.simulate_s + self.train_s + self.evaluate_s


@dataclass(frozen=True)
class MadeModel:
    path: Path
    card: dict[str, Any]
    seconds: float
    stage_seconds: dict[str, float] = field(default_factory=dict)


def work_dir(output: str | os.PathLike) -> Path:
    """The resumable work folder of a request: ``<output>.work``."""
    out = Path(output)
    return out.with_name(out.name + ".work")


def _configs_dir() -> Path:
    here = Path(__file__).resolve().parent.parent
    for c in (here / "configs", here.parent / "configs"):
        if c.is_dir():
            return c
    raise ConfigError("cannot find the shipped training configs; reinstall tissue_inn")


def training_settings(request: MakeModelRequest, n_samples: int):
    """The trainer settings: the request's config, with epochs, seed, device and batch fitted to the data."""
    from tissue_inn.training.trainer import TrainSettings

    path = Path(request.train_config)
    if not path.suffix:
        path = _configs_dir() / f"{request.train_config}.toml"
    try:
        d = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"training config {request.train_config!r}: cannot read {path} ({exc})") from None
    n_train = n_samples - min(max(int(n_samples * d.get("val_fraction", 0.05)), 1), d.get("val_max", 4000))
    batch = int(min(d.get("batch_size", 500), max(8, n_train // 4)))
    d.update(epochs=request.epochs, seed=request.seed, device=request.resolved_device(), batch_size=batch,
             iterations_per_epoch=max(1, n_train // batch))
    if request.threads:
        d["threads"] = request.threads
    return TrainSettings.from_dict(d, where=str(path))


def estimate_cost(request: MakeModelRequest, n_probe: int = 32) -> CostEstimate:
    """Time the solver on ``n_probe`` prior draws and a few training steps; predict each stage's time."""
    from tissue_inn.optics.forward import ForwardModel
    from tissue_inn.training.trainer import build_estimator

    tissue, camera = load_tissue(request.tissue), load_camera(request.camera)
    device = request.resolved_device()
    procs = request.n_processes()
    fm = ForwardModel(tissue, camera, device=device)
    x = tissue.sample_prior(n_probe, torch.Generator().manual_seed(request.seed))
    with torch.inference_mode():
        fm.bands(x[:4])  # warm-up
        t0 = time.perf_counter()
        y = fm.bands(x).float().cpu()
        rate = n_probe / max(time.perf_counter() - t0, 1e-9)
    # several processes on a machine with that many cores: close to linear (measured by bench_make_model)
    sim_rate = rate * procs
    settings = training_settings(request, request.size)
    est = build_estimator(settings, tissue, camera, camera.noise)
    est.fit_scalers(x, y)
    est.to(device)
    from tissue_inn.inn.registry import FAMILIES

    loss_kwargs = FAMILIES[settings.family].training_options(settings.to_dict())[1]
    opt = torch.optim.Adam(est.parameters(), lr=1e-4)
    gen = torch.Generator().manual_seed(0)
    bs = settings.batch_size
    steps, t_train = 3, 0.0
    for i in range(steps + 1):
        idx = torch.randint(0, n_probe, (bs,), generator=gen)
        yb, snr = camera.noise.apply(y[idx].double(), gen, return_snr=True)
        t0 = time.perf_counter()
        terms = est.loss(x[idx].to(device), yb.to(device), snr.to(device), generator=gen, **loss_kwargs)
        opt.zero_grad()
        terms["total"].backward()
        opt.step()
        if i:  # the first step is a warm-up
            t_train += time.perf_counter() - t0
    train_rate = steps * bs / max(t_train, 1e-9)
    n_sim = _remaining_simulation(request)
    simulate_s = n_sim / sim_rate
    train_s = settings.epochs * settings.iterations_per_epoch * bs / train_rate
    n_eval = min(request.test_size, 2000)
    # sampling ≈ 3 network passes per draw of a training step's cost; PPC and gate re-simulate spectra
    evaluate_s = (len(request.eval_snrs) * (n_eval * request.eval_draws / (3 * train_rate)
                                             + request.ppc_cases * 8 / rate)
                  + (n_eval / rate + 0.2 * train_s if request.gate else 0.0))
    text = (f"estimated time: {_hms(simulate_s + train_s + evaluate_s)} — simulate {n_sim:,} spectra "
            f"{'(the rest is in ' + str(work_dir(request.output)) + ') ' if n_sim < request.size + request.test_size else ''}"
            f"{_hms(simulate_s)} ({rate:.0f} spectra/s per process × {procs} on {device}), train {settings.epochs} "
            f"epochs {_hms(train_s)} ({train_rate:.0f} samples/s), evaluate {_hms(evaluate_s)}")
    return CostEstimate(simulate_s, train_s, evaluate_s, rate, train_rate, procs, device, text)


def _remaining_simulation(request: MakeModelRequest) -> int:
    """Spectra still to simulate: what a resumed request (finished files in its work folder) skips."""
    work = work_dir(request.output)
    n = 0
    if not (work / "train.h5").exists():
        procs = request.n_processes()
        shards = [work / f"train.s{k}.h5" for k in range(procs)]
        n = request.size if procs == 1 else sum(_shard_size(request.size, k, procs)
                                                 for k, p in enumerate(shards) if not p.exists())
    if not (work / "test.h5").exists():
        n += request.test_size
    return n


def _hms(s: float) -> str:
    s = int(round(s))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d} min"


def _sim_worker(tissue_raw, camera_raw, n, seed, shard, path, queue, stop) -> None:
    """One simulation shard in its own process (one thread); reports (shard, done, total) or an error."""
    torch.set_num_threads(1)
    try:
        tissue = TissueModel.from_dict(tissue_raw)
        camera = Camera.from_dict(camera_raw)
        gen = simulate_dataset(tissue, camera, n, seed, path, shard=shard, should_stop=stop.is_set)
        run_to_completion(gen, lambda p: queue.put((shard[0], p.done, p.total, None)))
        queue.put((shard[0], -1, 0, None))
    except Cancelled:
        queue.put((shard[0], -2, 0, None))
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which raises it
        queue.put((shard[0], -3, 0, f"{type(exc).__name__}: {exc}"))


def _simulate_sharded(tissue: TissueModel, camera: Camera, n: int, seed: int, out: Path, procs: int,
                      should_stop: ShouldStop) -> Generator[Progress, None, None]:
    shards = [out.with_name(f"{out.stem}.s{k}.h5") for k in range(procs)]
    todo = [k for k in range(procs) if not shards[k].exists()]
    ctx = mp.get_context("spawn")
    queue, stop = ctx.Queue(), ctx.Event()
    workers = [ctx.Process(target=_sim_worker, args=(tissue.to_dict(), camera.to_dict(), n, seed, (k, procs),
                                                      shards[k], queue, stop), daemon=True) for k in todo]
    for w in workers:
        w.start()
    done = {k: 0 for k in todo}
    already = n - sum(_shard_size(n, k, procs) for k in todo)
    finished: set[int] = set()
    t0 = time.monotonic()
    try:
        while len(finished) < len(todo):
            if should_stop is not None and should_stop():
                stop.set()
            try:
                k, d, _total, err = queue.get(timeout=1.0)
            except queue_mod.Empty:
                if not any(w.is_alive() for w in workers):
                    raise TissueInnError("a simulation process died; re-run the same command to resume") from None
                continue
            if d == -3:
                raise TissueInnError(f"simulation shard {k}/{procs} failed: {err}")
            if d == -2:
                raise Cancelled("simulation stopped; re-run the same command to resume")
            if d == -1:
                finished.add(k)
                continue
            done[k] = d
            rate = sum(done.values()) / max(time.monotonic() - t0, 1e-9)
            yield Progress("simulate", already + sum(done.values()), n,
                           f"{rate:.0f} spectra/s in {len(todo)} processes", {"rate": rate})
    finally:
        stop.set()
        for w in workers:
            w.join(timeout=30)
    merge_shards([str(s) for s in shards], out, force=True)
    for s in shards:
        s.unlink()


def _shard_size(n: int, k: int, procs: int) -> int:
    from tissue_inn.simulation.simulate import DEFAULT_BLOCK_SIZE

    n_blocks = -(-n // DEFAULT_BLOCK_SIZE)
    b0, b1 = k * n_blocks // procs, (k + 1) * n_blocks // procs
    return max(0, min(b1 * DEFAULT_BLOCK_SIZE, n) - b0 * DEFAULT_BLOCK_SIZE)


def _identity(request: MakeModelRequest) -> dict[str, Any]:
    tissue, camera = load_tissue(request.tissue), load_camera(request.camera)
    return {"tissue": tissue.to_dict(), "camera": camera.to_dict(), "size": request.size,
            "test_size": request.test_size, "seed": request.seed}


def make_model(request: MakeModelRequest, should_stop: ShouldStop = None,
               ) -> Generator[Progress, None, MadeModel]:
    """Make the model of ``request`` (module docstring); resumable; returns the written bundle."""
    from tissue_inn.training.make_model_stages import evaluate_bundle, write_bundle
    from tissue_inn.training.trainer import train

    out = Path(request.output)
    if out.exists() and not request.force:
        raise OutputExistsError(f"{out} already exists; pass --force to replace it, or choose another -o")
    t_start = time.monotonic()
    stage_s: dict[str, float] = {}
    tissue, camera = load_tissue(request.tissue), load_camera(request.camera)
    work = work_dir(out)
    work.mkdir(parents=True, exist_ok=True)
    ident = _identity(request)
    ident_path = work / "request.json"
    if ident_path.exists() and json.loads(ident_path.read_text()).get("identity") != json.loads(json.dumps(ident)):
        raise TissueInnError(f"{work} holds the work of a different request (tissue, camera, size or seed); "
                             "delete that folder or choose another -o")
    ident_path.write_text(json.dumps({"identity": ident, "request": asdict(request)}, indent=1))
    device = request.resolved_device()

    train_path, test_path = work / "train.h5", work / "test.h5"
    t0 = time.monotonic()
    if not train_path.exists():
        procs = request.n_processes()
        if procs > 1:
            yield from _simulate_sharded(tissue, camera, request.size, request.seed, train_path, procs, should_stop)
        else:
            yield from simulate_dataset(tissue, camera, request.size, request.seed, train_path, device=device,
                                        should_stop=should_stop)
    if not test_path.exists():
        gen = simulate_dataset(tissue, camera, request.test_size, request.seed + 1, test_path, device=device,
                               should_stop=should_stop)
        for p in gen:
            yield Progress("test-set", p.done, p.total, p.message, p.extra)
    stage_s["simulate"] = round(time.monotonic() - t0, 1)

    t0 = time.monotonic()
    settings = training_settings(request, request.size)
    result = yield from train(train_path, settings, checkpoint_dir=work / "checkpoint", resume=True,
                              should_stop=should_stop)
    stage_s["train"] = round(time.monotonic() - t0, 1)

    bundle = work / "bundle"
    card = write_bundle(result, tissue, camera, request, bundle)
    t0 = time.monotonic()
    yield from evaluate_bundle(bundle, test_path, train_path, request, should_stop, stage_s)
    stage_s["evaluate"] = round(time.monotonic() - t0 - stage_s.get("gate", 0.0), 1)
    yield Progress("bundle", 0, 1, f"writing {out}")
    from tissue_inn.io.bundle import read_card, update_card

    update_card(bundle, {"make_model": {"request": asdict(request), "stage_seconds": stage_s,
                                        "seconds": round(time.monotonic() - t_start, 1)}})
    if out.exists():
        shutil.rmtree(out)
    os.replace(bundle, out)
    card = read_card(out)
    # keep the simulated data (train.h5, test.h5): a retrain with other settings reuses them
    shutil.rmtree(work / "checkpoint", ignore_errors=True)
    yield Progress("bundle", 1, 1, f"wrote {out}")
    return MadeModel(out, card, time.monotonic() - t_start, stage_s)
