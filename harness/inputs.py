"""The inputs at which NTK entries are measured.

:func:`make_inputs` returns ``X`` of shape [N, n_0] with the reference input x_0 in
row 0, and the cosines ``<x_0, X_j> / (|x_0| |X_j|)`` of shape [N]. The inputs are built
in float64 numpy from their own seed, so they are the same on every device and dtype.
"""
from __future__ import annotations

import numpy as np

from harness.cases.sections import InputsSection

#: Largest input dimension for which the directions come from a full random rotation.
FULL_ROTATION_MAX = 4096


def make_inputs(section: InputsSection, input_dim: int) -> tuple[np.ndarray, np.ndarray]:
    """(X [N, input_dim] float64, cosines [N]) for the case's inputs section.

    correlated: X_0 = norm * u and, for each c_j != 1 in ``inner_products``,
    X_j = norm * (c_j u + sqrt(1 - c_j^2) v_j), with u, v_1, v_2, ... orthonormal columns
    of a seeded random orthogonal matrix, so <X_0, X_j> = c_j norm^2 exactly (c = 1 is x_0
    itself, so it adds no row; c = -1 adds -x_0).
    random: N = count rows drawn uniformly on the sphere of radius ``norm``.

    The orthonormal columns come from the QR factorization of an input_dim x input_dim
    Gaussian matrix when input_dim <= :data:`FULL_ROTATION_MAX`; above it only the k needed
    columns are drawn (the QR of an input_dim x k Gaussian matrix: the same Haar law without
    the input_dim^2 memory, but other numbers for the same seed).
    """
    rng = np.random.default_rng(section.seed)
    if section.kind == "correlated":
        cosines = [float(c) for c in section.inner_products]
        needed = 1 + sum(1 for c in cosines if abs(c) != 1.0)
        if needed > input_dim:
            raise ValueError(
                f"inputs.inner_products: {len(cosines)} inputs at distinct angles need input_dim >= {needed}; "
                f"the network has input_dim {input_dim}"
            )
        columns = input_dim if input_dim <= FULL_ROTATION_MAX else needed
        q, r = np.linalg.qr(rng.standard_normal((input_dim, columns)))
        q = q * np.sign(np.diag(r))  # Haar-distributed orthogonal matrix
        u = q[:, 0]
        rows = [u]
        next_direction = 1
        for c in cosines:
            if c == 1.0:
                continue  # x_0 itself: row 0
            if c == -1.0:
                rows.append(-u)
            else:
                rows.append(c * u + np.sqrt(1.0 - c * c) * q[:, next_direction])
                next_direction += 1
        x = np.stack(rows) * section.norm
    else:
        z = rng.standard_normal((section.count, input_dim))
        x = section.norm * z / np.linalg.norm(z, axis=1, keepdims=True)
    norms = np.linalg.norm(x, axis=1)
    cosine = x @ x[0] / (norms * norms[0])
    return x, cosine
