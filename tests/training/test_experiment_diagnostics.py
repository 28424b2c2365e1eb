"""Where a network sits in the phase diagram: effective variances and signal propagation."""
from __future__ import annotations

import math

import pytest
import torch

from harness.networks import MLP, Architecture, init_parameters, unstack
from harness.training.experiment import effective_variances, signal_propagation


@pytest.mark.parametrize("parametrization", ["standard", "ntk"])
@pytest.mark.parametrize("sigma_w2", [1.0, 2.0, 2.2])
def test_effective_variances_at_initialization_are_the_drawn_ones(sigma_w2, parametrization):
    architecture = Architecture(widths=(16,) + (128,) * 6, sigma_w2=sigma_w2, output_dim=10,
                                parametrization=parametrization)
    params = unstack(init_parameters(architecture, 3, [0], dtype=torch.float64), 0)
    gain, bias = effective_variances(architecture, params)
    # 5 hidden-to-hidden layers of 128 x 128 entries: the sample variance is within 1% (sd 0.25%)
    assert gain == pytest.approx(sigma_w2, rel=0.01)
    assert bias == 0.0
    params["layers.2.bias"] = torch.full((128,), 0.5, dtype=torch.float64)
    scale = 1.0 if parametrization == "standard" else architecture.sigma_b2
    assert effective_variances(architecture, params)[1] == pytest.approx(0.25 * scale / 6)


def test_signal_propagation_dies_out_in_the_ordered_phase_only():
    x = torch.randn(40, 16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    spreads = {}
    for sigma_w2 in (1.0, 2.0):
        architecture = Architecture(widths=(16,) + (256,) * 10, sigma_w2=sigma_w2, output_dim=10)
        params = unstack(init_parameters(architecture, 5, [0], dtype=torch.float64), 0)
        spreads[sigma_w2] = signal_propagation(MLP(architecture), params, x)
    # ordered: at most (1/2)^10 ~ 1e-3 of EOC's order-1 spread (x 256/16 for the width ratio)
    assert spreads[1.0] < 2 * 0.5**10 * spreads[2.0]
    assert 0.05 < spreads[2.0] / (256 / 16) < 5 and math.isfinite(spreads[1.0])
