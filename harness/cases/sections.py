"""Sections shared by the kinds of case: the network, the inputs, the Monte Carlo sampling.

Each is a dataclass validated by :mod:`harness.cases.schema`; ``metadata`` gives the
allowed values that collection enforces. Torch-free: a section describes, it builds nothing.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import reference
from harness.architecture import Architecture
from harness.cases.schema import FieldError
from harness.constants import ACTIVATIONS, DTYPE_NAMES, PARAMETRIZATIONS


def doc(text: str, **rules) -> dict:
    """Field metadata: a description and the rules collection enforces (choices, min, ...)."""
    return dict(doc=text, **rules)


@dataclass
class NetworkSection:
    """``[case.network]``: a fully connected network and its initialization.

    Give ``depth`` with ``width`` (equal hidden widths), or ``hidden_widths`` (n_1..n_L, one
    per layer; ``depth`` optional and then must equal its length).
    """

    sigma_w2: float = field(metadata=doc("weight variance sigma_w^2 (W ~ N(0, sigma_w^2 / fan_in))", min_exclusive=0))
    depth: int | None = field(default=None, metadata=doc("number of hidden layers L", min=1))
    width: int | None = field(default=None, metadata=doc("hidden width n of every layer", min=1))
    hidden_widths: list[int] | None = field(default=None, metadata=doc("hidden widths n_1..n_L", min=1, min_length=1))
    input_dim: int | None = field(default=None, metadata=doc("input dimension n_0 (default: the first hidden width)",
                                                             min=1))
    output_dim: int = field(default=1, metadata=doc("output dimension", min=1))
    activation: str = field(default="relu", metadata=doc("activation", choices=ACTIVATIONS))
    sigma_b2: float = field(default=0.0, metadata=doc("bias variance at initialization", min=0))
    trainable_bias: bool = field(default=True, metadata=doc("whether biases are parameters of the NTK"))
    parametrization: str = field(default="standard", metadata=doc("standard | ntk", choices=PARAMETRIZATIONS))

    def validate(self) -> None:
        if self.hidden_widths is None:
            if self.width is None or self.depth is None:
                raise FieldError("network.width", "expected 'depth' and 'width', or 'hidden_widths'")
        else:
            if self.width is not None:
                raise FieldError("network.width", "give either 'width' (with 'depth') or 'hidden_widths', not both")
            if self.depth is not None and self.depth != len(self.hidden_widths):
                raise FieldError("network.depth", f"expected the number of entries of 'hidden_widths' "
                                                  f"({len(self.hidden_widths)}), got {self.depth}")
        if not self.trainable_bias and self.sigma_b2 != 0:
            raise FieldError("network.sigma_b2", "frozen biases (trainable_bias = false) must be zero; "
                                                 f"expected 0, got {self.sigma_b2}")

    @property
    def layer_widths(self) -> tuple[int, ...]:
        """``(n_1, ..., n_L)`` from ``width`` and ``depth`` or from ``hidden_widths``."""
        if self.hidden_widths is not None:
            return tuple(self.hidden_widths)
        return (self.width,) * self.depth

    @property
    def depth_count(self) -> int:
        """L."""
        return len(self.layer_widths)

    @property
    def phase(self) -> str:
        """``ordered``, ``eoc`` or ``chaotic`` (:func:`reference.phase_of`)."""
        return reference.phase_of(self.sigma_w2, self.sigma_b2, self.activation)

    def id_parts(self, *, with_input_dim: bool = True) -> list[str]:
        """The readable parts of a case id, e.g. ``["eoc", "w16", "L8", "s2"]``, plus what
        differs from the defaults (activation, input dimension unless the data fixes it,
        bias, parametrization)."""
        hidden = self.layer_widths
        width = f"w{hidden[0]}" if len(set(hidden)) == 1 else f"w{min(hidden)}-{max(hidden)}"
        parts = [self.phase, width, f"L{len(hidden)}", f"s{self.sigma_w2:g}"]
        if self.activation != "relu":
            parts.insert(0, self.activation)
        if with_input_dim and self.input_dim is not None and self.input_dim != hidden[0]:
            parts.append(f"d{self.input_dim}")
        if self.sigma_b2:
            parts.append(f"b{self.sigma_b2:g}")
        if not self.trainable_bias:
            parts.append("nobias")
        if self.parametrization != "standard":
            parts.append(self.parametrization)
        return parts

    def architecture(self, *, depth: int | None = None, width: int | None = None) -> Architecture:
        """The :class:`Architecture`; ``depth``/``width`` replace the section's (equal widths)."""
        hidden = self.layer_widths
        if depth is not None or width is not None:
            hidden = (width or hidden[0],) * (depth or len(hidden))
        return Architecture(
            widths=(self.input_dim or hidden[0],) + tuple(hidden), sigma_w2=self.sigma_w2, sigma_b2=self.sigma_b2,
            activation=self.activation, trainable_bias=self.trainable_bias, parametrization=self.parametrization,
            output_dim=self.output_dim,
        )


@dataclass
class SamplingSection:
    """``[case.sampling]``: the Monte Carlo over random initializations."""

    networks: int = field(metadata=doc("number of independently initialized networks S", min=2))
    seed: int = field(default=0, metadata=doc("seed of the run; network i uses a seed derived from (seed, i)", min=0))
    dtype: str = field(default="float64", metadata=doc("compute dtype", choices=DTYPE_NAMES))
    draw_dtype: str = field(default="float32", metadata=doc("dtype of the weight draws", choices=DTYPE_NAMES))
    device: str = field(default="auto", metadata=doc("auto (CUDA if present, else CPU), cpu, cuda, cuda:1, ..."))
    reference_draws: int = field(default=20, metadata=doc(
        "draws of the exact joint law per network (the two-sample tests' reference: at 20, its variance adds 5% to "
        "the measured sample's, so the tests' power is set by the networks)", min=1))
    rechecked: int | None = field(default=None, metadata=doc(
        "how many of the networks the differential check recomputes with the reference implementation, entry by "
        "entry (default: 3% of them, 2 to 32)", min=1))


@dataclass
class InputsSection:
    """``[case.inputs]``: the inputs at which the NTK is evaluated.

    ``correlated`` (the paper's set): a reference input x_0 and, for each c in
    ``inner_products``, an input x(c) with <x_0, x(c)> = c * norm^2, all of norm ``norm``:
    x(c) = norm * (c u + sqrt(1 - c^2) v_c) for orthonormal u, v_1, v_2, ... drawn from
    a seeded random rotation. ``random``: ``count`` independent inputs uniform on the
    sphere of radius ``norm``; x_0 is the first.
    """

    kind: str = field(default="correlated", metadata=doc("correlated | random", choices=("correlated", "random")))
    inner_products: list[float] = field(
        default_factory=lambda: [1.0], metadata=doc("cosines with x_0", min=-1.0, max=1.0, min_length=1))
    count: int = field(default=1, metadata=doc("number of random inputs", min=1))
    norm: float = field(default=1.0, metadata=doc("Euclidean norm of every input", min_exclusive=0))
    seed: int = field(default=0, metadata=doc("seed of the inputs", min=0))

    def directions_needed(self) -> int:
        """Orthonormal directions the inputs need (x_0 plus one per cosine other than +-1)."""
        if self.kind == "correlated":
            return 1 + sum(1 for c in self.inner_products if abs(c) != 1.0)
        return 1

    def number_of_inputs(self) -> int:
        """N, the rows of X (x_0 first; c = 1 is x_0 itself and adds no row)."""
        if self.kind == "correlated":
            return 1 + sum(1 for c in self.inner_products if c != 1.0)
        return self.count
