"""Monte Carlo over random initializations: NTK samples of many networks, batched.

:func:`sample_ntk` draws S = ``networks`` networks of one architecture, network i with the
seed derived from ``(seed, i)`` (:func:`harness.networks.network_seed`), and returns
the NTK row ``Theta(x_0, X_j)`` of each, shape [networks, N]. Networks are processed in
chunks: the parameters of a chunk are stacked ([M, ...] per tensor) and the NTK
implementation is vmapped over them when it declares ``vmappable``; otherwise it is
called once per network. The chunk size follows a memory budget (default 512 MiB):

    bytes per network ~ P * (itemsize * (2 + 2 N) + draw_itemsize)

where P is the parameter count and 2 N a conservative allowance for the per-sample
Jacobians the reference implementation materializes and the temporaries of their
contraction (measured peaks stay below it). The implementation is called with
``x1 = x2 = X`` (the full [N, N] kernel, so that per-input derivatives are computed
once) and row 0 is kept. A case whose single network does not fit the
budget fails with the estimate and the limit instead of exhausting memory.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch.func import vmap

from harness.networks import MLP, Architecture, init_parameters, unstack
from harness.ntk.registry import ImplementationError, NTKImplementation

#: torch's out-of-memory error: ``torch.OutOfMemoryError`` since torch 2.5, ``torch.cuda.OutOfMemoryError``
#: before (the declared floor is torch 2.3; an ``except`` naming a missing attribute would turn every
#: exception passing through it, a Ctrl-C included, into an AttributeError)
_TORCH_OUT_OF_MEMORY = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError


class MemoryBudgetError(MemoryError):
    """One network's NTK does not fit the memory budget."""


@dataclass
class NTKSamples:
    """NTK entries of S independent networks.

    row: [networks, N] with row[s, j] = Theta_s(x_0, X_j); row[:, 0] is the diagonal
    Theta_s(x_0, x_0). Non-finite entries (overflow) are kept as they are; the verdict
    reports them.
    """

    row: np.ndarray
    seconds: float
    chunk_size: int
    parameter_count: int

    @property
    def diagonal(self) -> np.ndarray:
        return self.row[:, 0]

    @property
    def nonfinite(self) -> int:
        return int((~np.isfinite(self.row)).any(axis=1).sum())


def bytes_per_network(architecture: Architecture, num_inputs: int, dtype: torch.dtype, draw_dtype: torch.dtype,
                      implementation: NTKImplementation | None = None) -> int:
    """Memory of one network of a chunk: its parameters (draws and cast) plus what the
    implementation holds; an implementation may state the latter with a
    ``memory_per_network(architecture, num_inputs, itemsize) -> bytes`` attribute, else the
    per-sample Jacobians of the reference are assumed (``2 N P`` items, a conservative bound)."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    draw_itemsize = torch.empty((), dtype=draw_dtype).element_size()
    p = architecture.parameter_count()
    stated = getattr(implementation.function, "memory_per_network", None) if implementation is not None else None
    if stated is not None:
        return p * (itemsize + draw_itemsize) + int(stated(architecture, num_inputs, itemsize))
    return p * (itemsize * (2 + 2 * num_inputs) + draw_itemsize)


def chunk_size_for(architecture, num_inputs, dtype, draw_dtype, memory_budget_bytes, networks,
                   implementation: NTKImplementation | None = None) -> int:
    per_network = bytes_per_network(architecture, num_inputs, dtype, draw_dtype, implementation)
    if per_network > memory_budget_bytes:
        raise MemoryBudgetError(
            f"one network needs about {per_network / 2**20:.1f} MiB for its NTK "
            f"({architecture.parameter_count()} parameters, {num_inputs} inputs), more than the memory budget of "
            f"{memory_budget_bytes / 2**20:.1f} MiB (--ntk-memory-budget); raise --ntk-memory-budget or shrink the case"
        )
    return max(1, min(networks, memory_budget_bytes // per_network))


def _checked(result, implementation: NTKImplementation, expected_shape, dtype) -> torch.Tensor:
    if not isinstance(result, torch.Tensor):
        raise ImplementationError(
            f"NTK implementation {implementation.name!r} returned {type(result).__name__}, expected a torch.Tensor"
        )
    if tuple(result.shape) != tuple(expected_shape):
        raise ImplementationError(
            f"NTK implementation {implementation.name!r} returned shape {tuple(result.shape)}, "
            f"expected {tuple(expected_shape)}"
        )
    if result.dtype != dtype:
        raise ImplementationError(
            f"NTK implementation {implementation.name!r} returned dtype {result.dtype}, expected {dtype}"
        )
    return result


def sample_ntk(
    architecture: Architecture,
    inputs: np.ndarray,
    *,
    networks: int,
    seed: int,
    implementation: NTKImplementation,
    dtype: torch.dtype = torch.float64,
    draw_dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    memory_budget_bytes: int = 512 * 2**20,
    progress: Callable[[int, int], None] | None = None,
) -> NTKSamples:
    """NTK rows Theta(x_0, X_j) of S = ``networks`` networks; see the module docstring.

    inputs: [N, n_0] with x_0 in row 0. Exceptions raised inside the implementation are
    re-raised as :class:`ImplementationError` naming it.
    """
    if networks < 1:
        raise ValueError(f"networks must be >= 1; got {networks}")
    device = torch.device(device)
    start = time.perf_counter()
    f = MLP(architecture)
    x = torch.as_tensor(inputs, dtype=dtype, device=device)
    num_inputs = x.shape[0]
    chunk = chunk_size_for(architecture, num_inputs, dtype, draw_dtype, memory_budget_bytes, networks, implementation)
    expected = (num_inputs, num_inputs)
    rows = []

    def one(params):
        # the whole [N, N] kernel, of which row 0 is kept: passing the same tensor twice
        # lets an implementation compute the per-input derivatives once (for the
        # jacobian implementation this is several times faster than a separate x_0)
        return implementation(f, params, x, x)

    batched = vmap(one) if implementation.vmappable else None
    for first in range(0, networks, chunk):
        indices = range(first, min(networks, first + chunk))
        params = init_parameters(architecture, seed, indices, dtype=dtype, device=device, draw_dtype=draw_dtype)
        try:
            if batched is not None:
                result = _checked(batched(params), implementation, (len(indices),) + expected, dtype)
            else:
                result = torch.stack(
                    [_checked(one(unstack(params, i)), implementation, expected, dtype) for i in range(len(indices))]
                )
        except ImplementationError:
            raise
        except (MemoryError, _TORCH_OUT_OF_MEMORY) as exc:
            # the machine's limit, not the implementation's fault
            raise MemoryBudgetError(
                f"out of memory computing the NTK of {len(indices)} networks at once ({exc}); "
                f"lower the memory budget (now {memory_budget_bytes / 2**20:.0f} MiB) so that chunks are smaller"
            ) from exc
        except Exception as exc:
            raise ImplementationError(
                f"NTK implementation {implementation.name!r} raised {type(exc).__name__}: {exc}"
            ) from exc
        rows.append(result[:, 0, :].detach().to("cpu", torch.float64).numpy())
        if progress is not None:
            progress(indices.stop, networks)
    return NTKSamples(
        row=np.concatenate(rows),
        seconds=time.perf_counter() - start,
        chunk_size=chunk,
        parameter_count=architecture.parameter_count(),
    )


@dataclass
class Differential:
    """The differential check's measurements: how many of the case's networks were recomputed
    with the reference, the largest relative error over them and where, and its cost."""

    rechecked: int
    max_relative_error: float
    worst: str
    seconds: float
    #: what the worst network's disagreement looks like (:func:`harness.ntk.diagnosis.diagnose`), or ""
    diagnosis: str = ""
    #: the tolerance (:mod:`harness.ntk.precision`: in float32 derived from the reference's own
    #: float32 error on these networks) and its rule
    rtol: float = 0.0
    tolerance_rule: str = ""
    reference_float32_error: float | None = None


def _relative_error(got: torch.Tensor, want: torch.Tensor, scale: float, what: str) -> tuple[float, str]:
    """``max|got - want| / scale`` (NaN counts as infinite; a shape mismatch is infinite) and where
    the largest difference sits, for the differential check's record."""
    if tuple(got.shape) != tuple(want.shape):
        return float("inf"), f"{what} has shape {list(got.shape)}, expected {list(want.shape)}"
    difference = (got - want).abs()
    difference = torch.where(torch.isnan(difference), torch.full_like(difference, float("inf")), difference)
    error = float(difference.max()) / scale if scale > 0 else float(difference.max())
    position = np.unravel_index(int(difference.argmax()), tuple(difference.shape))
    return error, (f"{what}[{', '.join(map(str, position))}] = {float(got[position]):.10g}, "
                   f"reference {float(want[position]):.10g}")


def _diagnosis(worst_case, f, x64: torch.Tensor, rtol: float) -> str:
    """The agreement kind's diagnosis of the worst rechecked network's disagreement."""
    from harness.ntk.diagnosis import diagnose

    own64, expected, params64 = worst_case
    return diagnose(own64, expected, f=f, params64={k: v.cpu() for k, v in params64.items()},
                    x1=x64.cpu(), x2=x64.cpu(), num_layers=f.num_layers, rtol=rtol, earlier=[])


def differential_check(
    architecture: Architecture,
    inputs: np.ndarray,
    rows: np.ndarray,
    *,
    seed: int,
    implementation: NTKImplementation,
    reference: NTKImplementation,
    dtype: torch.dtype,
    draw_dtype: torch.dtype,
    device: torch.device | str,
    rechecked: int,
    tf32: str = "reject",
    subset_seed: int = 0xD1FF,
) -> Differential:
    """Recompute a seeded subset of the Monte Carlo's own networks with ``reference``, entry by entry.

    The networks are the case's (same ``seed``, same indices, same draws: network i depends
    only on (seed, i)); for each, the implementation's whole kernel K(X, X) [N, N] (one call,
    not vmapped), its row call K(X[0:1], X) [1, N] (the paper's own call, x1 a view of x2's
    first row) and the row the Monte Carlo recorded for it (``rows[i]``, from the batched,
    possibly vmapped call) are compared with the reference's K(X, X) computed in float64 on
    the same parameters upcast: relative error ``max|K - K_ref| / max|K_ref|``. The
    ``rechecked`` networks are a seeded random subset (the same for the same seed, so the
    record is reproducible). The tolerance follows :mod:`harness.ntk.precision` (in float32:
    from the reference's own float32 error on these networks; ``tf32``: ``--ntk-tf32``); the
    reference runs at full precision. When the worst network's error exceeds it, its
    disagreement is diagnosed as the agreement kind diagnoses one (a missing parameter group, a
    constant factor: :func:`harness.ntk.diagnosis.diagnose`).
    """
    from harness.networks import MLP

    device = torch.device(device)
    start = time.perf_counter()
    f = MLP(architecture)
    # Three words, so never equal to a network's two-word [seed, index] key.
    order = np.random.default_rng(np.random.SeedSequence([int(seed), subset_seed, 1])).permutation(rows.shape[0])
    order = order[:max(1, min(int(rechecked), rows.shape[0]))]
    x = torch.as_tensor(inputs, dtype=dtype, device=device)
    x64 = torch.as_tensor(inputs, dtype=torch.float64, device=device)
    from harness.ntk.precision import full_precision, reference_float32_error, tolerance

    worst_error, worst, checked = 0.0, "", 0
    worst_case = None   # (own64, expected, params64) of the worst network, diagnosed at the end
    float32_error = 0.0 if dtype == torch.float32 else None
    for index in order:
        params = unstack(init_parameters(architecture, seed, [int(index)], dtype=dtype, device=device,
                                         draw_dtype=draw_dtype), 0)
        params64 = {name: value.to(torch.float64) for name, value in params.items()}
        try:
            own = implementation(f, params, x, x)
            row = implementation(f, params, x[0:1], x)   # the paper's call: x1 a view of x2's first row
        except Exception as exc:
            raise ImplementationError(
                f"NTK implementation {implementation.name!r} raised {type(exc).__name__}: {exc}") from exc
        with full_precision():   # the reference never runs in TF32
            expected = reference(f, params64, x64, x64)
        if float32_error is not None:
            float32_error = max(float32_error, reference_float32_error(f, params64, [(x64, x64)]))
        own = _checked(own, implementation, (x.shape[0], x.shape[0]), dtype)
        row = _checked(row, implementation, (1, x.shape[0]), dtype)
        own64 = own.detach().to("cpu", torch.float64)
        expected = expected.detach().to("cpu", torch.float64)
        scale = float(expected.abs().max())
        for what, got, want in (("K(X, X)", own64, expected),
                                ("the row call K(X[0:1], X)", row.detach().to("cpu", torch.float64), expected[:1]),
                                ("the Monte Carlo's row Theta(x0, X)", torch.as_tensor(rows[index]), expected[0])):
            error, where = _relative_error(got, want, scale, f"network {int(index)}: {what}")
            if not error <= worst_error:
                worst_error, worst = error, where
                worst_case = (own64, expected, params64)
        checked += 1
    found = tolerance("float32" if dtype == torch.float32 else "float64", reference_error=float32_error, tf32=tf32)
    rtol = found.rtol
    diagnosis = _diagnosis(worst_case, f, x64, rtol) if worst_case is not None and worst_error > rtol else ""
    return Differential(rechecked=checked, max_relative_error=worst_error, worst=worst,
                        seconds=time.perf_counter() - start, diagnosis=diagnosis, rtol=rtol,
                        tolerance_rule=found.rule, reference_float32_error=float32_error)
