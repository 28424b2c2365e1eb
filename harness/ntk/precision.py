"""The precision policy: how close to the float64 reference an implementation must come.

float64: ``max|K - K_ref| / max|K_ref| <= 1e-10`` (:data:`FLOAT64_RTOL`), far above float64
rounding at the cases' sizes and far below any real bug.

float32: the tolerance is derived from the reference's OWN float32 rounding error on the
case's networks and call shapes, ``e_ref = max relative error of jacobian in float32 against
jacobian in float64`` (:func:`reference_float32_error`)::

    rtol_float32 = max(FLOAT32_MARGIN * e_ref, FLOAT32_FLOOR) = max(8 e_ref, 1e-6)

Measured on every float32 and model case shipped (docs/measurements/precision.md): e_ref is
0.75-2.6e-7; the correct built-ins land within 0.7-2.2 e_ref of float64 (headroom >= 3.6x);
a float32 contraction with TF32 operands (10 mantissa bits, the default matmul precision on
Ampere and Hopper GPUs for many frameworks) lands at 5e-5 to 3.1e-4, i.e. rejected by a margin
of at least 50x (the policy asks for 5x). An implementation whose float32 matmuls run in TF32
on purpose is accepted only when asked: ``--ntk-tf32 allow`` raises the float32 tolerance to
``max(rtol_float32, TF32_RTOL)`` with ``TF32_RTOL = 1e-3`` (TF32 rounds operands to a relative
2^-11 = 4.9e-4; the contraction's error measured above stays below 3.1e-4) and the record says so.

The reference itself always runs at full precision: on CUDA, :func:`full_precision` turns
TF32 off for matmuls and convolutions while it computes (and the record states it).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

FLOAT64_RTOL = 1e-10
FLOAT32_MARGIN = 8.0
FLOAT32_FLOOR = 1e-6
TF32_RTOL = 1e-3
TF32_CHOICES = ("reject", "allow")


@dataclass(frozen=True)
class Tolerance:
    """A relative tolerance and the rule it came from, in words for the record."""

    rtol: float
    rule: str
    reference_float32_error: float | None = None


def tolerance(dtype_name: str, *, case_rtol: float | None = None, reference_error: float | None = None,
              tf32: str = "reject") -> Tolerance:
    """The tolerance of a check in ``dtype_name`` (module docstring). A case's own ``rtol`` wins in
    its own dtype; in float32 ``reference_error`` (the reference's float32 error on the case's
    networks) sets it; ``tf32 = "allow"`` raises a float32 tolerance to :data:`TF32_RTOL`."""
    if dtype_name == "float64":
        if case_rtol is not None:
            return Tolerance(case_rtol, f"the case's rtol {case_rtol:g}")
        return Tolerance(FLOAT64_RTOL, f"float64: {FLOAT64_RTOL:g}")
    if case_rtol is not None:
        found = Tolerance(case_rtol, f"the case's rtol {case_rtol:g}", reference_error)
    elif reference_error is None:
        found = Tolerance(FLOAT32_FLOOR, f"float32: the floor {FLOAT32_FLOOR:g} (the reference's float32 error "
                                         "was not measured)")
    else:
        rtol = max(FLOAT32_MARGIN * reference_error, FLOAT32_FLOOR)
        found = Tolerance(rtol, f"float32: max({FLOAT32_MARGIN:g} x the reference's own float32 error "
                                f"{reference_error:.3g} on these networks, {FLOAT32_FLOOR:g})", reference_error)
    if tf32 == "allow" and found.rtol < TF32_RTOL:
        found = Tolerance(TF32_RTOL, found.rule + f"; raised to {TF32_RTOL:g} by --ntk-tf32 allow", reference_error)
    return found


@contextlib.contextmanager
def full_precision():
    """Compute in full float32/float64 precision: TF32 off for CUDA matmuls and cuDNN convolutions,
    and ``torch.get_float32_matmul_precision() == "highest"``; the settings are restored after."""
    matmul = torch.backends.cuda.matmul.allow_tf32
    cudnn = torch.backends.cudnn.allow_tf32
    precision = torch.get_float32_matmul_precision()
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = matmul
        torch.backends.cudnn.allow_tf32 = cudnn
        torch.set_float32_matmul_precision(precision)


def reference_float32_error(f, params64: dict, pairs) -> float:
    """max over ``pairs`` [(x1, x2), ...] (float64) of ``max|K32 - K64| / max|K64|``, with
    ``K32`` the reference (jacobian) in float32 on the parameters and inputs rounded to float32,
    ``K64`` in float64: the reference's own float32 rounding error on these networks."""
    from harness.ntk.diagnosis import relative_error
    from harness.ntk.jacobian import jacobian_ntk

    params32 = {name: value.to(torch.float32) for name, value in params64.items()}
    worst = 0.0
    with full_precision():
        for x1, x2 in pairs:
            exact = jacobian_ntk(f, params64, x1, x2)
            rounded = jacobian_ntk(f, params32, x1.to(torch.float32), x1.to(torch.float32) if x2 is x1
                                   else x2.to(torch.float32))
            worst = max(worst, relative_error(rounded.to(torch.float64), exact))
    return worst
