"""``curvlinops``: the NTK as the product of two Jacobian linear operators.

curvlinops (``curvlinops-for-pytorch``) represents the mini-batch Jacobian of a module
``J[(a, i), p] = d f_i(x_a) / d p`` [N O, P] as a linear operator
(``JacobianLinearOperator``, products by ``torch.func.jvp``) and its transpose
(``TransposedJacobianLinearOperator``, products by ``torch.func.vjp``). The NTK is::

    Theta = J(x1) J(x2)^T = J(x1) @ (J(x2)^T @ I_{N2 O})       [N1 O, N2 O]

computed as N2 O vjps (the columns of J(x2)^T, [P, N2 O]) and then N2 O jvps over x1, batched
with ``torch.func.vmap`` by curvlinops. Memory: P N2 O for J(x2)^T; time about
N2 O (backward over x2 + forward-mode pass over x1).

The network is :func:`harness.ntk.adapters.module.as_module` ``(f, params)`` (the harness MLP
with its scales, or a copy of the user's model with ``params`` loaded); curvlinops
differentiates the parameters passed to it (the counted ones) and holds every other parameter
and buffer of the module fixed. relu'(0) = 0 (torch's autograd). Supports the harness MLP and
any ModelFunction whose operations have forward-mode derivatives; float32 and float64; not
vmappable (a module holds one network's parameters).
"""
from __future__ import annotations

import torch

from harness.ntk.adapters.layout import from_rows
from harness.ntk.adapters.module import as_module


def _flat_output(module: torch.nn.Module) -> torch.nn.Module:
    """The module with its output flattened to [N, O] (curvlinops keeps the output's shape)."""

    class Flat(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            out = self.inner(x)
            return out.reshape(out.shape[0], -1)

    return Flat(module)


def curvlinops_ntk(f, params, x1, x2):
    """Theta(x1, x2) = J(x1) J(x2)^T with curvlinops' Jacobian operators; [N1, N2] or [N1, N2, O, O]."""
    from curvlinops import JacobianLinearOperator, TransposedJacobianLinearOperator

    module = _flat_output(as_module(f, params, dtype=x1.dtype, device=x1.device))
    named = dict(module.named_parameters())
    counted = [named[f"inner.{name}"] for name in params]
    n1, n2 = x1.shape[0], x2.shape[0]
    with torch.no_grad():
        outputs = module(x2[:1]).shape[1]
    dummy1 = torch.zeros(n1, dtype=x1.dtype, device=x1.device)
    dummy2 = torch.zeros(n2, dtype=x2.dtype, device=x2.device)
    # check_deterministic=False: it evaluates the module twice more to detect data augmentation or
    # dropout; the harness's networks are deterministic functions (models are in eval mode)
    jacobian1 = JacobianLinearOperator(module, counted, [(x1, dummy1)], check_deterministic=False)
    transposed2 = TransposedJacobianLinearOperator(module, counted, [(x2, dummy2)], check_deterministic=False)
    identity = torch.eye(n2 * outputs, dtype=x1.dtype, device=x1.device)
    matrix = jacobian1 @ (transposed2 @ identity)
    return from_rows(matrix.detach(), n1, n2, outputs)


curvlinops_ntk.vmappable = False
