"""Sections shared by the kinds of case: the network, the inputs, the sampling.

Each is a dataclass validated by :mod:`harness.cases.schema`; ``metadata`` gives the
allowed values that collection enforces.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from harness.networks import ACTIVATIONS, PARAMETRIZATIONS, Architecture

DTYPE_NAMES = ("float64", "float32")


def _doc(text: str, **rules):
    return dict(doc=text, **rules)


@dataclass
class NetworkSection:
    """``[case.network]``: a fully connected network and its initialization.

    Give ``depth`` with ``width`` (equal hidden widths), or ``widths`` (the hidden
    widths n_1..n_L, one per layer; ``depth`` optional and then must equal its length).
    """

    sigma_w2: float = field(metadata=_doc("weight variance sigma_w^2 (W ~ N(0, sigma_w^2 / fan_in))", min_exclusive=0))
    depth: int | None = field(default=None, metadata=_doc("number of hidden layers L", min=1))
    width: int | None = field(default=None, metadata=_doc("hidden width n of every layer", min=1))
    widths: list[int] | None = field(default=None, metadata=_doc("hidden widths n_1..n_L", min=1, min_length=1))
    input_dim: int | None = field(default=None, metadata=_doc("input dimension n_0 (default: the first hidden width)", min=1))
    output_dim: int = field(default=1, metadata=_doc("output dimension", min=1))
    activation: str = field(default="relu", metadata=_doc("activation", choices=ACTIVATIONS))
    sigma_b2: float = field(default=0.0, metadata=_doc("bias variance at initialization", min=0))
    trainable_bias: bool = field(default=True, metadata=_doc("whether biases are parameters of the NTK"))
    parametrization: str = field(default="standard", metadata=_doc("standard | ntk", choices=PARAMETRIZATIONS))

    def validate(self) -> None:
        if self.widths is None:
            if self.width is None or self.depth is None:
                raise ValueError("network.width: expected 'depth' and 'width', or 'widths' (the hidden widths)")
        else:
            if self.width is not None:
                raise ValueError("network.width: give either 'width' (with 'depth') or 'widths', not both")
            if self.depth is not None and self.depth != len(self.widths):
                raise ValueError(
                    f"network.depth: expected the number of entries of 'widths' ({len(self.widths)}), got {self.depth}"
                )
        if not self.trainable_bias and self.sigma_b2 != 0:
            raise ValueError(
                f"network.sigma_b2: frozen biases (trainable_bias = false) must be zero; expected 0, got {self.sigma_b2}"
            )

    @property
    def hidden_widths(self) -> tuple[int, ...]:
        if self.widths is not None:
            return tuple(self.widths)
        return (self.width,) * self.depth

    @property
    def num_hidden_layers(self) -> int:
        return len(self.hidden_widths)

    def id_parts(self, phase: str, *, with_input_dim: bool = True) -> list[str]:
        """The readable parts of a case id, e.g. ``["eoc", "w16", "L8", "s2"]``, plus what
        differs from the defaults (activation, input dimension unless the data fixes it,
        bias, parametrization)."""
        hidden = self.hidden_widths
        width = f"w{hidden[0]}" if len(set(hidden)) == 1 else f"w{min(hidden)}-{max(hidden)}"
        parts = [phase, width, f"L{len(hidden)}", f"s{self.sigma_w2:g}"]
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

    def architecture(self) -> Architecture:
        hidden = self.hidden_widths
        return Architecture(
            widths=(self.input_dim or hidden[0],) + hidden,
            sigma_w2=self.sigma_w2,
            sigma_b2=self.sigma_b2,
            activation=self.activation,
            trainable_bias=self.trainable_bias,
            parametrization=self.parametrization,
            output_dim=self.output_dim,
        )


@dataclass
class SamplingSection:
    """``[case.sampling]``: the Monte Carlo over random initializations."""

    samples: int = field(metadata=_doc("number of independently initialized networks", min=2))
    seed: int = field(default=0, metadata=_doc("seed of the run; network i uses a seed derived from (seed, i)", min=0))
    dtype: str = field(default="float64", metadata=_doc("compute dtype", choices=DTYPE_NAMES))
    draw_dtype: str = field(default="float32", metadata=_doc("dtype of the weight draws", choices=DTYPE_NAMES))
    device: str = field(default="auto", metadata=_doc("auto (CUDA if present, else CPU), cpu, cuda, cuda:1, ..."))


@dataclass
class InputsSection:
    """``[case.inputs]``: the inputs at which the NTK is evaluated.

    ``correlated`` (the paper's set): a reference input x_0 and, for each c in
    ``inner_products``, an input x(c) with <x_0, x(c)> = c * norm^2, all of norm ``norm``:
    x(c) = norm * (c u + sqrt(1 - c^2) v_c) for orthonormal u, v_1, v_2, ... drawn from
    a seeded random rotation. ``random``: ``count`` independent inputs uniform on the
    sphere of radius ``norm``; x_0 is the first.
    """

    kind: str = field(default="correlated", metadata=_doc("correlated | random", choices=("correlated", "random")))
    inner_products: list[float] = field(
        default_factory=lambda: [1.0], metadata=_doc("cosines with x_0", min=-1.0, max=1.0, min_length=1)
    )
    count: int = field(default=1, metadata=_doc("number of random inputs", min=1))
    norm: float = field(default=1.0, metadata=_doc("Euclidean norm of every input", min_exclusive=0))
    seed: int = field(default=0, metadata=_doc("seed of the inputs", min=0))
