"""Invertible building blocks: affine coupling blocks, activation normalisation, fixed permutations.

Every block follows one contract (after FrEIA's, without its ``jac`` flag)::

    out, log_jac = block(x, c=None, rev=False)

``x`` has shape ``[batch, dim]``; ``c`` (conditioning, only used where ``cond_dim > 0``) has shape
``[batch, cond_dim]``; ``log_jac`` has shape ``[batch]`` and is log|det ∂out/∂x| of the map that was
actually run, so the forward and reverse log-dets of the same point cancel.

Notation (Ardizzone et al., ICLR 2019, eq. 1–2): the input is split into ``u1`` (first ``dim // 2``
entries) and ``u2`` (the rest); ``s`` is a log-scale, ``t`` a shift, both predicted by subnets.

Soft clamping. The published code bounds every log-scale by ``s ↦ clamp · 0.636 · atan(s / clamp)``.
We use the exact constant ``2/π ≈ 0.6366`` instead of 0.636, so the range is exactly
``(−clamp, clamp)``; the slope at s = 0 is 2/π whatever the clamp (the subnet absorbs that constant).
SCIENCE.md §5 writes the argument as ``atan(s)``; we divide by ``clamp`` as the authors' FrEIA code
does, so the clamp bounds large values without compressing small ones more for a larger clamp.

Randomness: subnet weights are initialised from an explicit ``torch.Generator`` (see
:func:`mlp_constructor`); permutations are drawn from a seeded generator. The global RNG is never used.

One concept, the blocks of the contract above (≈ 420 lines, kept whole): every block shares the input
check, the conditioning and the clamp, and the contract test runs over all of them from this one module.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = [
    "MLP",
    "ActNorm",
    "FixedPermutation",
    "GLOWCoupling",
    "RealNVPCoupling",
    "SubnetConstructor",
    "mlp_constructor",
    "soft_clamp",
]

OUTPUT_ROWS_MULTIPLE = 16
"""Evaluation pads a subnet's output layer with zero rows to a multiple of this: the CPU BLAS computes a
``[rows, 128] × [128, 16]`` product 2.1× faster than ``[128, 14]`` (235 against 503 µs for 8,192 rows on
the 2-core build machine; ``× 7``: 326 µs), so the padded product is cheaper than the one asked for."""

SubnetConstructor = Callable[[int, int], nn.Module]
"""A callable ``(in_features, out_features) -> nn.Module`` building one coupling subnet."""

_TWO_OVER_PI = 2.0 / math.pi


def soft_clamp(s: Tensor, clamp: float) -> Tensor:
    """Bound a log-scale smoothly to ``(−clamp, clamp)``: ``clamp · (2/π) · atan(s / clamp)``.

    Args:
        s: unbounded log-scales.
        clamp: bound; ``clamp <= 0`` disables clamping.

    Returns:
        Tensor of the same shape as ``s``.

    Example:
        >>> float(soft_clamp(torch.tensor(1e6), 2.0)) < 2.0
        True
    """
    if clamp <= 0:
        return s
    return clamp * _TWO_OVER_PI * torch.atan(s / clamp)


class MLP(nn.Sequential):
    """Fully connected ReLU network used as a coupling subnet.

    ``n_hidden_layers`` hidden layers of width ``hidden``; the last (output) layer is initialised to
    zero so that a coupling block built from such subnets starts as the identity map.

    Evaluation (no gradient recorded): the hidden activations are written into two reused buffers
    per thread (``addmm(..., out=)`` then ``relu_``) instead of fresh tensors; freshly allocated
    activation-sized tensors cost a page fault per 4 KiB page on first touch, which measured as much
    as the matrix products themselves (``benchmarks/bench_inference.py``). Same kernels, same numbers.

    Args:
        in_features: input width.
        out_features: output width.
        hidden: width of each hidden layer.
        n_hidden_layers: number of hidden layers (≥ 1).
        generator: source of randomness for the weight initialisation (the global RNG is never used;
            ``None`` uses a fresh generator seeded with 0).
        zero_last: initialise the output layer to zero.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        hidden: int = 128,
        n_hidden_layers: int = 3,
        generator: torch.Generator | None = None,
        zero_last: bool = True,
    ) -> None:
        if n_hidden_layers < 1:
            raise ValueError(f"MLP needs at least one hidden layer, got n_hidden_layers={n_hidden_layers}")
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        widths = [in_features] + [hidden] * n_hidden_layers + [out_features]
        layers: list[nn.Module] = []
        for k in range(len(widths) - 1):
            # skip_init builds the layer without touching the global RNG; we initialise it ourselves.
            linear = torch.nn.utils.skip_init(nn.Linear, widths[k], widths[k + 1])
            is_last = k == len(widths) - 2
            if is_last and zero_last:
                nn.init.zeros_(linear.weight)
                nn.init.zeros_(linear.bias)
            else:
                # Same distribution as PyTorch's default for nn.Linear: U(−1/√fan_in, 1/√fan_in).
                bound = 1.0 / math.sqrt(widths[k])
                with torch.no_grad():
                    linear.weight.uniform_(-bound, bound, generator=generator)
                    linear.bias.uniform_(-bound, bound, generator=generator)
            layers.append(linear)
            if not is_last:
                layers.append(nn.ReLU(inplace=True))  # in place: no extra activation-sized tensor
        super().__init__(*layers)
        self._scratch = threading.local()
        self._linears = tuple(m for m in self if isinstance(m, nn.Linear))  # plain tuple: not registered twice

    def forward(self, x: Tensor) -> Tensor:
        if self.training or torch.is_grad_enabled():
            return super().forward(x)
        return self.evaluate(x)

    def evaluate(self, x: Tensor, cond: Tensor | None = None, repeats: int = 1,
                 split: int | None = None) -> Tensor | tuple[Tensor, Tensor]:
        """Evaluation only (no autograd): the MLP of ``[x, cond]`` with reused scratch buffers.

        Args:
            x: ``[rows, in_features − cond_width]`` (all of the input when ``cond`` is None).
            cond: ``[rows / repeats, cond_width]``: one condition per ``repeats`` consecutive rows of x
                (posterior draws of one spectrum share it). Its share of the first layer,
                ``W_c · cond + b``, is computed once per condition and broadcast into the rows, so the
                products see only x's columns and no ``[x, cond]`` array is built.
            repeats: rows of x per row of ``cond``.
            split: return the output's first ``split`` columns and the rest as two *contiguous* tensors,
                so a GLOW block's log-scale half is a dense array: element-wise ``atan``/``exp`` on a
                column slice of the joint output cannot use vector instructions and measured 3–5× slower.

        The output layer runs with zero rows added (:data:`OUTPUT_ROWS_MULTIPLE`), which are dropped.

        Same products as :meth:`forward` up to the order of the additions in the first layer (float32
        rounding; ``tests/inn/test_inn_blocks.py`` holds the two paths together).
        """
        linears = self._linears
        first = linears[0]
        if cond is not None and repeats == 1:
            x, cond = torch.cat([x, cond], dim=1), None
        if cond is None:
            h = torch.addmm(first.bias, x, first.weight.t(), out=self._buffer(0, x.shape[0], first.out_features, x))
        else:
            width = x.shape[1]
            # [rows / repeats, hidden]; an element-wise product and sum, not a matrix product, so that a
            # spectrum's numbers do not depend on how many others share the call (BLAS picks its kernel
            # by size): maps stay bit-identical whatever the tiling.
            shared = (cond.unsqueeze(1) * first.weight[:, width:].unsqueeze(0)).sum(dim=-1).add_(first.bias)
            h = self._buffer(0, x.shape[0], first.out_features, x)
            h.view(cond.shape[0], repeats, -1).copy_(shared.unsqueeze(1))
            h.addmm_(x, first.weight[:, :width].t())
        h = h.relu_()
        for k, linear in enumerate(linears[1:-1], start=1):
            h = torch.addmm(linear.bias, h, linear.weight.t(), out=self._buffer(k % 2, h.shape[0], linear.out_features, h))
            h = h.relu_()
        w, b = self._padded_output()
        out = torch.addmm(b, h, w.t())
        n_out = linears[-1].out_features
        if split is None:
            return out if out.shape[1] == n_out else out[:, :n_out].contiguous()
        return out[:, :split].contiguous(), out[:, split:n_out].contiguous()

    def _padded_output(self) -> tuple[Tensor, Tensor]:
        """The output layer's weight and bias with zero rows up to a multiple of :data:`OUTPUT_ROWS_MULTIPLE`
        (cached; rebuilt when the parameters change)."""
        last = self._linears[-1]
        w, b = last.weight, last.bias
        if w.shape[0] % OUTPUT_ROWS_MULTIPLE == 0:
            return w, b
        key = (w.data_ptr(), w._version, b._version, w.dtype, w.device)
        cached = self.__dict__.get("_padded_cache")
        if cached is None or cached[0] != key:
            rows = -(-w.shape[0] // OUTPUT_ROWS_MULTIPLE) * OUTPUT_ROWS_MULTIPLE
            w_pad = w.new_zeros(rows, w.shape[1])
            b_pad = b.new_zeros(rows)
            w_pad[: w.shape[0]] = w
            b_pad[: b.shape[0]] = b
            cached = self.__dict__["_padded_cache"] = (key, w_pad, b_pad)
        return cached[1], cached[2]

    def _buffer(self, slot: int, rows: int, width: int, like: Tensor) -> Tensor:
        """A reusable ``[rows, width]`` scratch tensor of this thread (kept per dtype, device and mode)."""
        try:
            store = self._scratch.buffers
        except AttributeError:
            store = self._scratch.buffers = {}
        key = (slot, width, like.dtype, like.device, torch.is_inference_mode_enabled())
        buf = store.get(key)
        if buf is None or buf.shape[0] < rows:
            buf = store[key] = torch.empty((max(rows, 1), width), dtype=like.dtype, device=like.device)
        return buf[:rows]


def mlp_constructor(hidden: int = 128, n_hidden_layers: int = 3, seed: int = 0) -> SubnetConstructor:
    """Return a subnet constructor building :class:`MLP` subnets from one seeded generator.

    Successive calls of the returned constructor draw from the same generator, so the subnets of a
    network differ from each other but the whole network is reproducible from ``seed``.

    Args:
        hidden: hidden width.
        n_hidden_layers: number of hidden layers.
        seed: seed of the initialisation generator.

    Returns:
        ``(in_features, out_features) -> MLP``.
    """
    generator = torch.Generator().manual_seed(seed)

    def construct(in_features: int, out_features: int) -> nn.Module:
        return MLP(in_features, out_features, hidden=hidden, n_hidden_layers=n_hidden_layers, generator=generator)

    return construct


def _check_input(x: Tensor, dim: int, c: Tensor | None, cond_dim: int, name: str) -> None:
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"{name} expects x of shape [batch, {dim}], got {tuple(x.shape)}")
    if cond_dim > 0:
        if c is None:
            raise ValueError(f"{name} was built with cond_dim={cond_dim} and needs c of shape [batch, {cond_dim}]")
        if c.ndim != 2 or c.shape[0] != x.shape[0] or c.shape[1] != cond_dim:
            raise ValueError(
                f"{name} expects c of shape [{x.shape[0]}, {cond_dim}] (one row per row of x), got {tuple(c.shape)}"
            )


def _with_cond(u: Tensor, c: Tensor | None, cond_dim: int) -> Tensor:
    return torch.cat([u, c], dim=1) if cond_dim > 0 else u


def _repeated(c: Tensor | None, repeats: int) -> Tensor | None:
    """One row of ``c`` per row of x, from one per ``repeats`` rows."""
    return c if c is None or repeats == 1 else c.repeat_interleave(repeats, dim=0)


class _TwoSidedCoupling(nn.Module):
    """Shared logic of the two-coupling affine blocks; subclasses define ``_scale_shift``."""

    def __init__(self, dim: int, clamp: float, cond_dim: int) -> None:
        super().__init__()
        if dim < 2:
            raise ValueError(f"a coupling block needs dim >= 2 to split its input, got dim={dim}")
        if cond_dim < 0:
            raise ValueError(f"cond_dim must be >= 0, got {cond_dim}")
        self.dim = int(dim)
        self.len1 = self.dim // 2
        self.len2 = self.dim - self.len1
        self.clamp = float(clamp)
        self.cond_dim = int(cond_dim)

    def _scale_shift(self, which: int, u: Tensor) -> tuple[Tensor, Tensor]:
        s, t = self._raw_scale_shift(which, u)
        return soft_clamp(s, self.clamp), t

    def _raw_scale_shift(self, which: int, u: Tensor) -> tuple[Tensor, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _eval_scale_shift(self, which: int, u: Tensor, c: Tensor | None, repeats: int) -> tuple[Tensor, Tensor]:
        """``_raw_scale_shift`` of ``[u, c]`` for :meth:`transform`, with ``c`` holding one row per ``repeats``
        rows of ``u``; contiguous ``s`` and ``t``."""
        raise NotImplementedError  # pragma: no cover - abstract

    def transform(self, x: Tensor, c: Tensor | None = None, rev: bool = False, repeats: int = 1) -> Tensor:
        """The block's map without its log-determinant, for evaluation (no autograd): in-place element-wise
        steps on fresh subnet outputs, the operations of :meth:`forward` in the same order. ``c`` may hold
        one row per ``repeats`` consecutive rows of x (:meth:`MLP.evaluate`). Inputs are not checked (the
        caller, :class:`InvertibleSequence`, did)."""
        a, b = x[:, : self.len1], x[:, self.len1 :]
        k = self.clamp * _TWO_OVER_PI
        if not rev:
            s2, t2 = self._eval_scale_shift(2, b, c, repeats)
            if self.clamp > 0:
                s2 = s2.div_(self.clamp).atan_().mul_(k)
            v1 = (a * s2.exp_()).add_(t2)
            s1, t1 = self._eval_scale_shift(1, v1, c, repeats)
            if self.clamp > 0:
                s1 = s1.div_(self.clamp).atan_().mul_(k)
            return torch.cat([v1, (b * s1.exp_()).add_(t1)], dim=1)
        s1, t1 = self._eval_scale_shift(1, a, c, repeats)
        if self.clamp > 0:
            s1 = s1.div_(self.clamp).atan_().mul_(k)
        u2 = (b - t1).mul_(s1.neg_().exp_())
        s2, t2 = self._eval_scale_shift(2, u2, c, repeats)
        if self.clamp > 0:
            s2 = s2.div_(self.clamp).atan_().mul_(k)
        return torch.cat([(a - t2).mul_(s2.neg_().exp_()), u2], dim=1)

    def forward(self, x: Tensor, c: Tensor | None = None, rev: bool = False) -> tuple[Tensor, Tensor]:
        """Run the block.

        Forward:  v1 = u1 ⊙ exp(s2(u2)) + t2(u2);  v2 = u2 ⊙ exp(s1(v1)) + t1(v1).
        Reverse:  u2 = (v2 − t1(v1)) ⊙ exp(−s1(v1));  u1 = (v1 − t2(u2)) ⊙ exp(−s2(u2)).
        Subnets see ``[argument, c]`` when the block is conditional.

        Args:
            x: ``[batch, dim]``.
            c: ``[batch, cond_dim]`` or None.
            rev: run the inverse map.

        Returns:
            ``(out [batch, dim], log_jac [batch])``.
        """
        _check_input(x, self.dim, c, self.cond_dim, type(self).__name__)
        a, b = x[:, : self.len1], x[:, self.len1 :]
        if not rev:
            s2, t2 = self._scale_shift(2, _with_cond(b, c, self.cond_dim))
            v1 = a * torch.exp(s2) + t2
            s1, t1 = self._scale_shift(1, _with_cond(v1, c, self.cond_dim))
            v2 = b * torch.exp(s1) + t1
            return torch.cat([v1, v2], dim=1), s1.sum(dim=1) + s2.sum(dim=1)
        v1, v2 = a, b
        s1, t1 = self._scale_shift(1, _with_cond(v1, c, self.cond_dim))
        u2 = (v2 - t1) * torch.exp(-s1)
        s2, t2 = self._scale_shift(2, _with_cond(u2, c, self.cond_dim))
        u1 = (v1 - t2) * torch.exp(-s2)
        return torch.cat([u1, u2], dim=1), -(s1.sum(dim=1) + s2.sum(dim=1))


class RealNVPCoupling(_TwoSidedCoupling):
    """The paper's coupling block: two affine couplings, separate subnets for scale and shift.

    Subnets ``s1, t1: len1 (+cond) → len2`` transform the second half given the (new) first half;
    ``s2, t2: len2 (+cond) → len1`` transform the first half given the second.

    Args:
        dim: width of the input.
        subnet_constructor: ``(in, out) -> nn.Module``; default :func:`mlp_constructor` ``()``.
        clamp: soft bound of the log-scales (see :func:`soft_clamp`).
        cond_dim: width of the conditioning input (0: unconditional).

    Example:
        >>> block = RealNVPCoupling(4)
        >>> x = torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
        >>> out, log_jac = block(x)
        >>> bool(torch.allclose(block(out, rev=True)[0], x))
        True
    """

    def __init__(
        self,
        dim: int,
        subnet_constructor: SubnetConstructor | None = None,
        clamp: float = 2.0,
        cond_dim: int = 0,
    ) -> None:
        super().__init__(dim, clamp, cond_dim)
        construct = subnet_constructor if subnet_constructor is not None else mlp_constructor()
        self.s1 = construct(self.len1 + self.cond_dim, self.len2)
        self.t1 = construct(self.len1 + self.cond_dim, self.len2)
        self.s2 = construct(self.len2 + self.cond_dim, self.len1)
        self.t2 = construct(self.len2 + self.cond_dim, self.len1)

    def _raw_scale_shift(self, which: int, u: Tensor) -> tuple[Tensor, Tensor]:
        if which == 1:
            return self.s1(u), self.t1(u)
        return self.s2(u), self.t2(u)

    def _eval_scale_shift(self, which: int, u: Tensor, c: Tensor | None, repeats: int) -> tuple[Tensor, Tensor]:
        nets = (self.s1, self.t1) if which == 1 else (self.s2, self.t2)
        if all(isinstance(n, MLP) for n in nets):
            return nets[0].evaluate(u, c, repeats), nets[1].evaluate(u, c, repeats)
        return self._raw_scale_shift(which, _with_cond(u, _repeated(c, repeats), self.cond_dim))


class GLOWCoupling(_TwoSidedCoupling):
    """Two affine couplings, one subnet per half predicting both scale and shift (GLOW style).

    Args:
        dim: width of the input.
        subnet_constructor: ``(in, out) -> nn.Module``; the subnet outputs ``[s, t]`` (2× the width
            of the half it transforms).
        clamp: soft bound of the log-scales.
        cond_dim: width of the conditioning input (0: unconditional).
    """

    def __init__(
        self,
        dim: int,
        subnet_constructor: SubnetConstructor | None = None,
        clamp: float = 2.0,
        cond_dim: int = 0,
    ) -> None:
        super().__init__(dim, clamp, cond_dim)
        construct = subnet_constructor if subnet_constructor is not None else mlp_constructor()
        self.subnet1 = construct(self.len1 + self.cond_dim, 2 * self.len2)
        self.subnet2 = construct(self.len2 + self.cond_dim, 2 * self.len1)

    def _raw_scale_shift(self, which: int, u: Tensor) -> tuple[Tensor, Tensor]:
        if which == 1:
            s, t = self.subnet1(u).chunk(2, dim=1)
        else:
            s, t = self.subnet2(u).chunk(2, dim=1)
        return s, t

    def _eval_scale_shift(self, which: int, u: Tensor, c: Tensor | None, repeats: int) -> tuple[Tensor, Tensor]:
        subnet = self.subnet1 if which == 1 else self.subnet2
        width = self.len2 if which == 1 else self.len1
        if isinstance(subnet, MLP):
            return subnet.evaluate(u, c, repeats, split=width)
        s, t = subnet(_with_cond(u, _repeated(c, repeats), self.cond_dim)).split(width, dim=1)
        return s.contiguous(), t


class ActNorm(nn.Module):
    """Per-feature affine normalisation ``out = (x + bias) ⊙ exp(log_scale)`` (Kingma & Dhariwal 2018).

    With ``data_init=True`` the first forward (not reverse) call in training mode sets ``bias`` and
    ``log_scale`` so that this batch leaves the layer with zero mean and unit variance. Whether that
    has happened is recorded in the buffer ``initialized`` (part of the state_dict), so a loaded model
    is never re-initialised.

    Args:
        dim: width of the input.
        data_init: enable the data-dependent initialisation.
        cond_dim: accepted for interface uniformity; ActNorm ignores ``c``.
    """

    def __init__(self, dim: int, data_init: bool = False, cond_dim: int = 0) -> None:
        super().__init__()
        self.dim = int(dim)
        self.cond_dim = int(cond_dim)
        self.data_init = bool(data_init)
        self.log_scale = nn.Parameter(torch.zeros(self.dim))
        self.bias = nn.Parameter(torch.zeros(self.dim))
        self.register_buffer("initialized", torch.tensor(not self.data_init))

    @torch.no_grad()
    def _initialise_from(self, x: Tensor) -> None:
        mean = x.mean(dim=0)
        std = x.std(dim=0, unbiased=False) if x.shape[0] > 1 else torch.ones_like(mean)
        self.bias.copy_(-mean)
        self.log_scale.copy_(-torch.log(std.clamp_min(1e-6)))
        self.initialized.fill_(True)

    def forward(self, x: Tensor, c: Tensor | None = None, rev: bool = False) -> tuple[Tensor, Tensor]:
        """Run the layer.

        Args:
            x: ``[batch, dim]``.
            c: ignored.
            rev: run the inverse map ``x = out ⊙ exp(−log_scale) − bias``.

        Returns:
            ``(out, log_jac [batch])``.
        """
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"ActNorm expects x of shape [batch, {self.dim}], got {tuple(x.shape)}")
        if not rev and self.training and not bool(self.initialized):
            self._initialise_from(x)
        log_jac = self.log_scale.sum().expand(x.shape[0])
        if not rev:
            return (x + self.bias) * torch.exp(self.log_scale), log_jac
        return x * torch.exp(-self.log_scale) - self.bias, -log_jac


class FixedPermutation(nn.Module):
    """A fixed random permutation of the features, drawn once from a seeded generator.

    The permutation and its inverse are buffers ``perm`` and ``inverse_perm`` (saved in the
    state_dict, never trained). log|det J| = 0.

    Args:
        dim: width of the input.
        seed: seed of the ``torch.Generator`` that draws the permutation.
        cond_dim: accepted for interface uniformity; ignored.
    """

    def __init__(self, dim: int, seed: int = 0, cond_dim: int = 0) -> None:
        super().__init__()
        self.dim = int(dim)
        self.cond_dim = int(cond_dim)
        generator = torch.Generator().manual_seed(int(seed))
        perm = torch.randperm(self.dim, generator=generator)
        self.register_buffer("perm", perm)
        self.register_buffer("inverse_perm", torch.argsort(perm))

    def forward(self, x: Tensor, c: Tensor | None = None, rev: bool = False) -> tuple[Tensor, Tensor]:
        """Permute (or un-permute) the features.

        Args:
            x: ``[batch, dim]``.
            c: ignored.
            rev: apply the inverse permutation.

        Returns:
            ``(out, zeros [batch])``.
        """
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"FixedPermutation expects x of shape [batch, {self.dim}], got {tuple(x.shape)}")
        index = self.inverse_perm if rev else self.perm
        return x[:, index], x.new_zeros(x.shape[0])
