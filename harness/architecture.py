"""A fully connected network and its initialization, as data (torch-free).

Notation (Seleznova & Kutyniok 2022, standard parametrization)::

    h^1 = W^1 x + b^1,   x^l = phi(h^l),   h^{l+1} = W^{l+1} x^l + b^{l+1},   f = h^{L+1}
    W^l_ij ~ N(0, sigma_w2 / n_{l-1}),   b^l_i ~ N(0, sigma_b2)

with input dimension n_0, hidden widths n_1..n_L and output dimension n_{L+1}. Names used
everywhere in the harness:

- ``widths``: ``(n_0, n_1, ..., n_L)``, the input dimension then the hidden widths (the
  convention of :mod:`reference`);
- ``hidden_widths``: ``(n_1, ..., n_L)``;
- ``depth``: L, the number of hidden layers;
- ``depth_to_width``: lambda = sum_l 1/n_l over the hidden layers, which is L/n when every
  hidden layer has width n (:func:`reference.depth_to_width`).

The torch network of an architecture is :class:`harness.networks.MLP`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import reference
from harness.constants import ACTIVATIONS, PARAMETRIZATIONS


@dataclass(frozen=True)
class Architecture:
    """A fully connected network and its initialization.

    widths: ``(n_0, n_1, ..., n_L)``, the input dimension then the L hidden widths.
    output_dim: ``n_{L+1}`` (1 for the paper's scalar-output networks).
    """

    widths: tuple[int, ...]
    sigma_w2: float
    sigma_b2: float = 0.0
    activation: str = "relu"
    trainable_bias: bool = True
    parametrization: str = "standard"
    output_dim: int = 1

    def __post_init__(self):
        if len(self.widths) < 2:
            raise ValueError(f"widths must hold the input dimension and at least one hidden width; got {self.widths}")
        for i, n in enumerate(self.widths):
            if int(n) != n or n < 1:
                raise ValueError(f"widths[{i}] must be a positive integer; got {n!r}")
        if not (math.isfinite(self.sigma_w2) and self.sigma_w2 > 0):
            raise ValueError(f"sigma_w2 must be a finite number > 0; got {self.sigma_w2!r}")
        if not (math.isfinite(self.sigma_b2) and self.sigma_b2 >= 0):
            raise ValueError(f"sigma_b2 must be a finite number >= 0; got {self.sigma_b2!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}; got {self.activation!r}")
        if self.parametrization not in PARAMETRIZATIONS:
            raise ValueError(
                f"parametrization must be one of {', '.join(PARAMETRIZATIONS)}; got {self.parametrization!r}"
            )
        if self.output_dim < 1:
            raise ValueError(f"output_dim must be >= 1; got {self.output_dim!r}")
        if not self.trainable_bias and self.sigma_b2 != 0:
            raise ValueError(
                "frozen biases must be zero: with trainable_bias = false, sigma_b2 must be 0 "
                f"(got {self.sigma_b2!r})"
            )

    @property
    def depth(self) -> int:
        """L, the number of hidden layers."""
        return len(self.widths) - 1

    @property
    def input_dim(self) -> int:
        """n_0."""
        return self.widths[0]

    @property
    def hidden_widths(self) -> tuple[int, ...]:
        """``(n_1, ..., n_L)``."""
        return tuple(self.widths[1:])

    @property
    def depth_to_width(self) -> float:
        """lambda = sum_l 1/n_l over the hidden layers (L/n for equal widths)."""
        return reference.depth_to_width(self.hidden_widths)

    @property
    def phase(self) -> str:
        """``ordered``, ``eoc`` or ``chaotic`` (:func:`reference.phase_of`)."""
        return reference.phase_of(self.sigma_w2, self.sigma_b2, self.activation)

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """``(n_0, n_1, ..., n_L, n_{L+1})``."""
        return tuple(self.widths) + (self.output_dim,)

    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        """Name -> shape of every trainable parameter, in layer order.

        ``layers.{i}.weight``: ``[n_{i+1}, n_i]``; ``layers.{i}.bias``: ``[n_{i+1}]`` (only when
        biases are trainable), for i = 0..L; ``layers.{L}`` is the readout.
        """
        sizes = self.layer_sizes
        shapes: dict[str, tuple[int, ...]] = {}
        for i in range(len(sizes) - 1):
            shapes[f"layers.{i}.weight"] = (sizes[i + 1], sizes[i])
            if self.trainable_bias:
                shapes[f"layers.{i}.bias"] = (sizes[i + 1],)
        return shapes

    def parameter_count(self) -> int:
        """P, the number of trainable parameters."""
        return sum(math.prod(s) for s in self.parameter_shapes().values())

    def to_record(self) -> dict:
        """JSON-ready description (the ``network`` block of a record)."""
        return {
            "input_dim": self.input_dim, "hidden_widths": list(self.hidden_widths), "depth": self.depth,
            "output_dim": self.output_dim, "sigma_w2": self.sigma_w2, "sigma_b2": self.sigma_b2,
            "activation": self.activation, "trainable_bias": self.trainable_bias,
            "parametrization": self.parametrization, "depth_to_width": self.depth_to_width,
            "parameter_count": self.parameter_count(),
        }

    @staticmethod
    def record_schema(defs: dict) -> dict:
        """The JSON Schema of :meth:`to_record` (its form is not its fields: derived values are
        written for readers, recomputed when read)."""
        positive = {"type": "integer", "minimum": 1}
        keys = ("input_dim", "hidden_widths", "depth", "output_dim", "sigma_w2", "sigma_b2", "activation",
                "trainable_bias", "parametrization", "depth_to_width", "parameter_count")
        return {"description": "a fully connected network and its initialization", "type": "object",
                "required": list(keys), "additionalProperties": False, "properties": {
                    "input_dim": positive, "hidden_widths": {"type": "array", "items": positive, "minItems": 1},
                    "depth": positive, "output_dim": positive, "sigma_w2": {"type": "number", "exclusiveMinimum": 0},
                    "sigma_b2": {"type": "number", "minimum": 0}, "activation": {"enum": list(ACTIVATIONS)},
                    "trainable_bias": {"type": "boolean"}, "parametrization": {"enum": list(PARAMETRIZATIONS)},
                    "depth_to_width": {"type": "number", "exclusiveMinimum": 0}, "parameter_count": positive}}

    @classmethod
    def from_record(cls, value: dict) -> Architecture:
        """The architecture of a :meth:`to_record` block (derived fields are recomputed)."""
        return cls(
            widths=(int(value["input_dim"]),) + tuple(int(n) for n in value["hidden_widths"]),
            sigma_w2=float(value["sigma_w2"]), sigma_b2=float(value.get("sigma_b2", 0.0)),
            activation=value.get("activation", "relu"), trainable_bias=bool(value.get("trainable_bias", True)),
            parametrization=value.get("parametrization", "standard"), output_dim=int(value.get("output_dim", 1)),
        )
