"""Running a search case: hypothesis generates agreement examples, shrinks a failing one.

For each implementation, :func:`hypothesis.find` looks for an :class:`Example` on which
:func:`harness.kinds.agreement.run.check_implementation` fails, within ``examples`` tries
from the case's seed; if it finds one it shrinks it (fewer layers, narrower layers, fewer
outputs and inputs, smaller seeds) and returns the smallest that still fails, which the
check prints as an agreement case to paste into a case file.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass

import torch

from harness.kinds.agreement import CALL_SHAPES, AgreementSection
from harness.kinds.agreement.run import case_tolerance, check_implementation, mlp_subject
from harness.kinds.base import KindOutcome, Resolution
from harness.kinds.search import SearchSection
from harness.options import RunOptions
from harness.records import Check, Timing
from harness.kinds.search.result import ImplementationSearch, SearchResult

SIGMA_W2 = (0.5, 1.0, 2.0, 3.0)
SIGMA_B2 = (0.0, 0.1)


@dataclass(frozen=True)
class Example:
    """One generated agreement example (see :func:`as_case` for the case it stands for)."""

    hidden_widths: tuple[int, ...]
    input_dim: int
    output_dim: int
    activation: str
    sigma_w2: float
    sigma_b2: float
    trainable_bias: bool
    parametrization: str
    call_shape: str
    inputs: int
    other_inputs: int
    zero_input: bool
    seed: int

    def network_section(self):
        from harness.cases.sections import NetworkSection

        return NetworkSection(sigma_w2=self.sigma_w2, hidden_widths=list(self.hidden_widths),
                              input_dim=self.input_dim, output_dim=self.output_dim, activation=self.activation,
                              sigma_b2=self.sigma_b2 if self.trainable_bias else 0.0,
                              trainable_bias=self.trainable_bias, parametrization=self.parametrization)

    def agreement_section(self, dtype: str) -> AgreementSection:
        return AgreementSection(networks=2, inputs=self.inputs, other_inputs=self.other_inputs,
                                call_shapes=[self.call_shape], zero_input=self.zero_input, seed=self.seed,
                                dtype=dtype, device="cpu")


def as_case(example: Example, implementation: str, dtype: str) -> str:
    """A ready-to-paste agreement case that replays ``example`` (same networks, same inputs)."""
    sigma_b2 = example.sigma_b2 if example.trainable_bias else 0.0
    return "\n".join([
        "[[case]]",
        'name = "found-by-search"',
        'kind = "agreement"',
        f'implementation = "{implementation}"',
        "",
        "[case.network]",
        f"hidden_widths = {list(example.hidden_widths)}",
        f"input_dim = {example.input_dim}",
        f"output_dim = {example.output_dim}",
        f'activation = "{example.activation}"',
        f"sigma_w2 = {example.sigma_w2}",
        f"sigma_b2 = {sigma_b2}",
        f"trainable_bias = {str(example.trainable_bias).lower()}",
        f'parametrization = "{example.parametrization}"',
        "",
        "[case.agreement]",
        "networks = 2",
        f"inputs = {example.inputs}",
        f"other_inputs = {example.other_inputs}",
        f'call_shapes = ["{example.call_shape}"]',
        f"zero_input = {str(example.zero_input).lower()}",
        f"seed = {example.seed}",
        f'dtype = "{dtype}"',
    ])


#: Input counts where chunked, blocked or power-of-two code breaks: drawn first (hypothesis leans
#: towards the first branch of one_of), any count up to max_inputs otherwise.
BOUNDARY_COUNTS = (1, 2, 31, 32, 33, 63, 64, 65, 127, 128, 129, 255, 256, 257, 511, 512, 513, 1000, 1023, 1024,
                   1025, 2047, 2048)


def _counts(st, low: int, high: int):
    boundaries = [n for n in BOUNDARY_COUNTS if low <= n <= high]
    return st.one_of(st.sampled_from(boundaries), st.integers(low, high)) if boundaries else st.integers(low, high)


def examples_strategy(section: SearchSection):
    """hypothesis strategy of :class:`Example` within the case's bounds; shrinks towards one
    narrow layer, one output, few inputs, relu, standard parametrization and seed 0. Input counts
    lean towards :data:`BOUNDARY_COUNTS`; the network is sized after them, so that the Jacobians
    of an example, about (2 N1 + N2) x outputs x parameters entries, stay below
    ``max_jacobian_entries`` (a 2048-input example has a few hundred parameters)."""
    from hypothesis import strategies as st

    @st.composite
    def example(draw):
        inputs = draw(_counts(st, 1, section.max_inputs))
        other_inputs = draw(_counts(st, 1, section.max_inputs))
        output_dim = draw(st.integers(1, section.max_outputs))
        input_dim = draw(st.integers(1, 16))
        parameters = max(8, section.max_jacobian_entries // ((2 * inputs + other_inputs) * output_dim))
        depth = draw(st.integers(1, max(1, min(section.max_depth, parameters // 12))))
        # widths w with about depth * (w + 1) * w + (input_dim + output_dim) * w <= parameters
        room = max(2, int((parameters / depth) ** 0.5) - 1)
        widths = draw(st.lists(st.integers(2, max(2, min(section.max_width, room))), min_size=depth,
                               max_size=depth))
        call_shape = draw(st.sampled_from(CALL_SHAPES))
        if call_shape == "blocks":   # a split needs two rows
            inputs = max(inputs, 2)
        return Example(
            hidden_widths=tuple(widths), input_dim=input_dim, output_dim=output_dim,
            activation=draw(st.sampled_from(section.activations)), sigma_w2=draw(st.sampled_from(SIGMA_W2)),
            sigma_b2=draw(st.sampled_from(SIGMA_B2)), trainable_bias=draw(st.booleans()),
            parametrization=draw(st.sampled_from(("standard", "ntk"))), call_shape=call_shape,
            inputs=inputs, other_inputs=other_inputs, zero_input=draw(st.booleans()),
            seed=draw(st.integers(0, 2**16)))

    return example()


def run(case, resolution: Resolution, options: RunOptions) -> KindOutcome:
    from hypothesis import HealthCheck, find, settings
    from hypothesis.errors import NoSuchExample

    start = time.perf_counter()
    section: SearchSection = case.sections.search
    dtype_name, dtype, device = resolution.dtype, resolution.torch_dtype, resolution.torch_device
    specs = resolution.implementation_specs
    outcome = KindOutcome()
    result = SearchResult(seed=section.seed, budget=section.examples)
    strategy = examples_strategy(section)
    for spec in specs:
        tried = 0
        failures: dict[Example, str] = {}

        def fails(example: Example) -> bool:
            nonlocal tried
            tried += 1
            subject = mlp_subject(example.network_section(), example.agreement_section(dtype_name), device)
            rtol = case_tolerance(subject, dtype_name, None, options.tf32).rtol
            checks, agreement = check_implementation(spec, subject, dtype, device, rtol)
            if agreement.skipped is not None:
                return False
            bad = [c for c in checks if not c.passed]
            if bad:
                failures[example] = f"{bad[0].name}: {bad[0].detail}"
            return bool(bad)

        began = time.perf_counter()
        search_settings = settings(max_examples=section.examples, database=None, deadline=None,
                                   suppress_health_check=list(HealthCheck), derandomize=False)
        try:
            found = find(strategy, fails, settings=search_settings, random=random.Random(section.seed))
        except NoSuchExample:
            found = None
        entry = ImplementationSearch(implementation_spec=spec, examples=tried, seconds=time.perf_counter() - began)
        if found is not None:
            entry.counterexample = as_case(found, spec, dtype_name)
            entry.failure = failures.get(found, "")
        result.implementations.append(entry)
        label = f"[{spec}] " if resolution.every_builtin else ""
        outcome.checks.append(Check(
            f"{label}no disagreement in {section.examples} generated examples", found is None,
            measured=float(tried), expected=f"every generated example agrees with the reference (seed {section.seed})",
            detail=("" if found is None else
                    f"NTK implementation {spec!r} disagrees; the smallest failing example after shrinking "
                    f"({tried} examples tried, seed {section.seed}): {entry.failure}\n"
                    f"Paste this case into a case file to replay it:\n{entry.counterexample}")))
    outcome.result = result
    outcome.timing = Timing(total_seconds=time.perf_counter() - start,
                            ntk_seconds=sum(i.seconds for i in result.implementations))
    return outcome
