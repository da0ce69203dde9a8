"""A sequence of invertible blocks, rebuildable from a plain JSON configuration.

Per block ``k`` (the paper's layout, Ardizzone et al. 2019, §5 of SCIENCE.md)::

    [ActNorm]  →  coupling (RealNVP or GLOW)  →  FixedPermutation(seed + k)

The forward pass runs the blocks in order and sums their log|det J|; the reverse pass runs their
inverses in reverse order and returns the log-det of the inverse map (the negative of the forward one
at the corresponding point).
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
from torch import Tensor, nn

from tissue_inn.errors import ConfigError
from tissue_inn.inn.coupling import (
    ActNorm,
    FixedPermutation,
    GLOWCoupling,
    RealNVPCoupling,
    _repeated,
    mlp_constructor,
)

__all__ = ["BLOCK_TYPES", "EVAL_CHUNK_ROWS", "InvertibleSequence", "eval_chunk_rows"]

EVAL_CHUNK_ROWS = 1024
"""Rows per pass when no gradient is recorded (evaluation mode): a 1024 × 128 float32 activation is
512 KiB, so a whole pass through the blocks stays in a core's L2 cache instead of streaming
megabyte-sized activations through memory (measured: ``benchmarks/bench_inference.py``). The rows
are independent, so the result does not depend on the chunking. This is the one-thread size; see
:func:`eval_chunk_rows` for more threads."""

PARALLEL_GRAIN = 32768
"""Elements below which PyTorch runs an element-wise CPU operation on one thread (ATen's
``at::internal::GRAIN_SIZE``)."""


def eval_chunk_rows(half_width: int, threads: int | None = None) -> int:
    """Rows per evaluation chunk for a network whose coupling halves are ``half_width`` wide.

    On one thread, :data:`EVAL_CHUNK_ROWS`. With more, a chunk's element-wise steps (``atan``, ``exp``
    and the affine updates on ``[rows, half_width]`` arrays) must exceed :data:`PARALLEL_GRAIN` elements
    per extra thread, or they run on one thread while the matrix products use all of them: on 2 threads
    the 1,024-row chunks left a third of the time single-threaded. The chunk grows to the next power of
    two above that (8,192 rows for colon's 13 parameters on 2 threads; ``benchmarks/bench_inference.py``).

    >>> eval_chunk_rows(6, threads=1), eval_chunk_rows(6, threads=2), eval_chunk_rows(6, threads=4)
    (1024, 8192, 32768)
    """
    n = torch.get_num_threads() if threads is None else int(threads)
    if n <= 1:
        return EVAL_CHUNK_ROWS
    rows = EVAL_CHUNK_ROWS
    while rows * max(1, half_width) <= PARALLEL_GRAIN * (n - 1):
        rows *= 2
    return rows

BLOCK_TYPES: dict[str, type[nn.Module]] = {"realnvp": RealNVPCoupling, "glow": GLOWCoupling}
"""Coupling block classes by their configuration name."""


class InvertibleSequence(nn.Module):
    """Stack of coupling blocks with fixed permutations (and optional ActNorm).

    All constructor arguments are plain JSON values so the network can be rebuilt from a model card:
    ``InvertibleSequence.from_config(net.config())`` builds an identical architecture, and with
    ``load_state_dict`` identical weights (the state_dict holds weights, permutations and ActNorm
    state).

    Args:
        dim: width of the data.
        n_blocks: number of coupling blocks.
        block_type: ``"realnvp"`` (separate s and t subnets, the paper's) or ``"glow"``.
        hidden: hidden width of every subnet.
        n_hidden_layers: hidden layers per subnet.
        clamp: soft clamp of the log-scales.
        cond_dim: width of the conditioning input (0: unconditional).
        actnorm: put an ActNorm (with data-dependent initialisation) before each coupling.
        seed: seed of the subnet initialisation and of the permutations.
        permute: follow each coupling by a fixed random permutation.

    Example:
        >>> import torch
        >>> net = InvertibleSequence(4, n_blocks=2, hidden=16)
        >>> x = torch.randn(5, 4, generator=torch.Generator().manual_seed(1))
        >>> z, log_jac = net(x)
        >>> x_back, log_jac_rev = net(z, rev=True)
        >>> bool(torch.allclose(x_back, x, atol=1e-5)), tuple(log_jac.shape)
        (True, (5,))
    """

    def __init__(
        self,
        dim: int,
        n_blocks: int = 4,
        block_type: str = "realnvp",
        hidden: int = 128,
        n_hidden_layers: int = 3,
        clamp: float = 2.0,
        cond_dim: int = 0,
        actnorm: bool = False,
        seed: int = 0,
        permute: bool = True,
    ) -> None:
        super().__init__()
        if block_type not in BLOCK_TYPES:
            raise ConfigError(f"unknown block_type {block_type!r}; choose one of {sorted(BLOCK_TYPES)}")
        if n_blocks < 1:
            raise ConfigError(f"n_blocks must be >= 1, got {n_blocks}")
        if dim < 2:
            raise ConfigError(f"an invertible sequence needs dim >= 2 (pad the data), got dim={dim}")
        self._config: dict[str, Any] = {
            "dim": int(dim),
            "n_blocks": int(n_blocks),
            "block_type": str(block_type),
            "hidden": int(hidden),
            "n_hidden_layers": int(n_hidden_layers),
            "clamp": float(clamp),
            "cond_dim": int(cond_dim),
            "actnorm": bool(actnorm),
            "seed": int(seed),
            "permute": bool(permute),
        }
        self.dim = int(dim)
        self.cond_dim = int(cond_dim)
        construct = mlp_constructor(hidden=hidden, n_hidden_layers=n_hidden_layers, seed=seed)
        coupling_cls = BLOCK_TYPES[block_type]
        blocks: list[nn.Module] = []
        for k in range(n_blocks):
            if actnorm:
                blocks.append(ActNorm(dim, data_init=True))
            blocks.append(coupling_cls(dim, subnet_constructor=construct, clamp=clamp, cond_dim=cond_dim))
            if permute:
                blocks.append(FixedPermutation(dim, seed=seed + k))
        self.blocks = nn.ModuleList(blocks)

    def config(self) -> dict[str, Any]:
        """Constructor arguments as a JSON-serialisable dict (a fresh copy)."""
        return dict(self._config)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> InvertibleSequence:
        """Rebuild the architecture from :meth:`config` output (weights come from ``load_state_dict``).

        Raises:
            ConfigError: on unknown or missing keys.
        """
        return cls(**_checked_kwargs(cls, config, required=("dim",)))

    def forward(self, x: Tensor, c: Tensor | None = None, rev: bool = False) -> tuple[Tensor, Tensor]:
        """Run the network forward (``rev=False``) or backward.

        Args:
            x: ``[batch, dim]``.
            c: ``[batch, cond_dim]`` when the network is conditional, else None.
            rev: run the inverse.

        Returns:
            ``(out [batch, dim], log_jac [batch])``.
        """
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"InvertibleSequence expects x of shape [batch, {self.dim}], got {tuple(x.shape)}")
        if self.cond_dim == 0 and c is not None:
            raise ValueError("this network is unconditional (cond_dim=0) but c was given")
        if self.training or torch.is_grad_enabled():
            return self._run(x, c, rev)
        return self._evaluate(x, c, rev, jac=True)

    def transform(self, x: Tensor, c: Tensor | None = None, rev: bool = False, repeats: int = 1) -> Tensor:
        """The map alone (no log-determinant), for sampling: the same output as ``forward(...)[0]``.

        ``repeats``: ``c`` holds one row per ``repeats`` consecutive rows of x (the draws of one spectrum),
        which saves building ``c.repeat_interleave(repeats)`` and the condition's share of every subnet's
        first layer per row (:meth:`~tissue_inn.inn.coupling.MLP.evaluate`).
        """
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"InvertibleSequence expects x of shape [batch, {self.dim}], got {tuple(x.shape)}")
        if self.cond_dim == 0 and c is not None:
            raise ValueError("this network is unconditional (cond_dim=0) but c was given")
        repeats = int(repeats)
        if c is not None and (repeats < 1 or c.shape[0] * repeats != x.shape[0]):
            raise ValueError(f"c has {c.shape[0]} rows; with repeats={repeats} x needs {c.shape[0] * repeats}, "
                             f"got {x.shape[0]}")
        if self.training or torch.is_grad_enabled():
            return self._run(x, _repeated(c, repeats), rev)[0]
        return self._evaluate(x, c, rev, jac=False, repeats=repeats if c is not None else 1)[0]

    def _evaluate(self, x: Tensor, c: Tensor | None, rev: bool, jac: bool, repeats: int = 1) -> tuple[Tensor, Tensor]:
        """No-gradient evaluation in row chunks (see :func:`eval_chunk_rows`), whole groups of ``repeats``."""
        n = x.shape[0]
        rows = max(1, eval_chunk_rows(self.dim // 2) // repeats) * repeats
        if n <= rows + rows // 2 or x.device.type != "cpu":  # a GPU wants the caller's whole batch
            return self._run(x, c, rev) if jac else self._run_map_only(x, c, rev, repeats)
        out = torch.empty_like(x)
        log_jac = x.new_zeros(n)
        for s in range(0, n, rows):
            cs = None if c is None else c[s // repeats : (s + rows) // repeats]
            if jac:
                o, log_jac[s : s + rows] = self._run(x[s : s + rows], cs, rev)
            else:
                o, _ = self._run_map_only(x[s : s + rows], cs, rev, repeats)
            out[s : s + rows] = o
        return out, log_jac

    def _run_map_only(self, x: Tensor, c: Tensor | None, rev: bool, repeats: int = 1) -> tuple[Tensor, Tensor]:
        for block in reversed(self.blocks) if rev else self.blocks:
            if isinstance(block, FixedPermutation):
                x = torch.index_select(x, 1, block.inverse_perm if rev else block.perm)
            elif isinstance(block, (RealNVPCoupling, GLOWCoupling)):
                x = block.transform(x, c, rev, repeats)
            else:  # ActNorm, which ignores c
                x, _ = block(x, c=c, rev=rev)
        return x, x.new_zeros(x.shape[0])

    def _run(self, x: Tensor, c: Tensor | None, rev: bool) -> tuple[Tensor, Tensor]:
        log_jac = x.new_zeros(x.shape[0])
        blocks = reversed(self.blocks) if rev else self.blocks
        for block in blocks:
            x, block_log_jac = block(x, c=c, rev=rev)
            log_jac = log_jac + block_log_jac
        return x, log_jac


def _checked_kwargs(cls: type, config: dict[str, Any], required: tuple[str, ...]) -> dict[str, Any]:
    """Validate a config dict against ``cls.__init__``'s parameters."""
    if not isinstance(config, dict):
        raise ConfigError(f"{cls.__name__} config must be a dict, got {type(config).__name__}")
    accepted = set(inspect.signature(cls.__init__).parameters) - {"self"}
    unknown = sorted(set(config) - accepted)
    if unknown:
        raise ConfigError(f"{cls.__name__} config has unknown keys {unknown}; accepted: {sorted(accepted)}")
    missing = [key for key in required if key not in config]
    if missing:
        raise ConfigError(f"{cls.__name__} config is missing {missing}")
    return dict(config)
