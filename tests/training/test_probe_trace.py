"""The output-trace probe NTK through the structured path agrees with the Jacobian path."""
from __future__ import annotations

import pytest
import torch

from harness.networks import MLP, Architecture, init_parameters, unstack
from harness.ntk import get_implementation
from harness.ntk.registry import ImplementationError
from harness.ntk.structured import structured_ntk, structured_trace_ntk
from harness.training import probe

ARCHITECTURES = [
    # (input, hidden widths, sigma_w2, outputs, parametrization, sigma_b2, trainable bias, activation)
    Architecture(widths=(7, 5, 6, 4), sigma_w2=2.0, output_dim=3),
    Architecture(widths=(5, 8, 8, 8, 8, 8), sigma_w2=1.0, output_dim=10),
    Architecture(widths=(6, 9, 9), sigma_w2=2.2, output_dim=4, parametrization="ntk", sigma_b2=0.3),
    Architecture(widths=(4, 6, 5), sigma_w2=1.5, output_dim=2, trainable_bias=False),
    Architecture(widths=(3, 5, 5, 5), sigma_w2=1.3, output_dim=3, activation="tanh", sigma_b2=0.1),
    Architecture(widths=(4, 6), sigma_w2=2.0, output_dim=1),
]


def _network(architecture, index=0, seed=11):
    f = MLP(architecture)
    stacked = init_parameters(architecture, seed, range(index + 1), dtype=torch.float64, device=torch.device("cpu"))
    params = unstack(stacked, index)
    # non-zero biases, as after training (zero biases at initialization would hide bias terms)
    generator = torch.Generator().manual_seed(5)
    for name in params:
        if name.endswith("bias"):
            params[name] = 0.3 * torch.randn(params[name].shape, generator=generator, dtype=torch.float64)
    return f, params


@pytest.mark.parametrize("architecture", ARCHITECTURES, ids=lambda a: f"{a.activation}-{a.parametrization}-"
                                                                      f"L{a.depth}-O{a.output_dim}")
def test_trace_equals_the_trace_of_the_jacobian_blocks(architecture):
    f, params = _network(architecture)
    generator = torch.Generator().manual_seed(3)
    x1 = torch.randn(6, architecture.widths[0], generator=generator, dtype=torch.float64)
    x2 = torch.randn(4, architecture.widths[0], generator=generator, dtype=torch.float64)
    jacobian = get_implementation("jacobian")
    for a, b in ((x1, x1), (x1, x2)):
        expected = probe.output_trace(probe._as_blocks(jacobian(f, params, a, b)))
        measured = structured_trace_ntk(f, params, a, b)
        assert measured.shape == (a.shape[0], b.shape[0])
        torch.testing.assert_close(measured, expected, rtol=1e-10, atol=1e-12 * float(expected.abs().max()))
    if architecture.output_dim == 1:  # one output: the trace is the NTK itself
        torch.testing.assert_close(structured_trace_ntk(f, params, x1, x2), structured_ntk(f, params, x1, x2),
                                   rtol=1e-12, atol=0.0)


def test_probe_trace_ntk_uses_the_structured_path_for_an_mlp_and_the_blocks_otherwise():
    architecture = ARCHITECTURES[1]
    f, params = _network(architecture)
    x = torch.randn(5, architecture.widths[0], generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    calls = []

    def counting(f_, p_, a, b):
        calls.append(a.shape[0])
        return get_implementation("jacobian")(f_, p_, a, b)

    fast = probe.probe_trace_ntk(counting, f, params, x, architecture.output_dim, 1 << 30)
    assert calls == []  # the MLP never reaches the implementation

    def wrapped(p, inputs):  # the same network, but not an MLP object: the blocks' trace, chunked
        return f(p, inputs)

    slow = probe.probe_trace_ntk(counting, wrapped, params, x, architecture.output_dim, 1)
    assert calls  # chunked to one probe per block by the tiny budget
    torch.testing.assert_close(fast, slow, rtol=1e-10, atol=0.0)


def test_trace_path_refuses_other_networks_by_name():
    with pytest.raises(ImplementationError, match="structured"):
        structured_trace_ntk(lambda p, x: x, {}, torch.zeros(1, 1), torch.zeros(1, 1))
