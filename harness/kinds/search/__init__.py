"""``kind = "search"``: a property-based search for a disagreement with the reference (spec, torch-free).

Where an agreement case checks the networks and call shapes it names, a search case lets
hypothesis generate them: architectures (depth up to ``max_depth``, hidden widths 2 to
``max_width`` per layer, input dimension, up to ``max_outputs`` outputs, relu / tanh / erf /
linear, sigma_w2, sigma_b2, trainable or frozen biases, standard or NTK parametrization),
call shapes (those of :mod:`harness.kinds.agreement`), input counts, exactly zero inputs and
seeds. Each generated example is one agreement check of two networks in one call shape
(:func:`harness.kinds.agreement.run.check_implementation`). When an example fails,
hypothesis shrinks it to the smallest architecture and input set that still fails, and the
check prints it as a ready-to-paste agreement case (its seed replays the same networks and
inputs). The search is deterministic for a given ``seed`` and bounded by ``examples`` per
implementation, so it fits the quick suite.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from harness.cases.schema import FieldError
from harness.cases.sections import doc
from harness.constants import ACTIVATIONS, DTYPE_NAMES
from harness.kinds.base import Kind
from harness.kinds.search.result import SearchResult


@dataclass
class SearchSection:
    """``[case.search]``: the space searched and the budget."""

    examples: int = field(default=30, metadata=doc("generated examples per implementation (hypothesis max_examples)",
                                                   min=1, max=10_000))
    seed: int = field(default=0, metadata=doc("seed of the search: the same seed generates the same examples", min=0))
    max_depth: int = field(default=32, metadata=doc("deepest network generated", min=1, max=256))
    max_width: int = field(default=64, metadata=doc("widest hidden layer generated (the narrowest is 2)", min=2,
                                                    max=4096))
    max_outputs: int = field(default=10, metadata=doc("most outputs generated", min=1, max=64))
    max_inputs: int = field(default=6, metadata=doc(
        "most inputs in x1 or x2 (counts just below, at and above powers of two and 1000 are drawn first)", min=2,
        max=4096))
    max_jacobian_entries: int = field(default=4_000_000, metadata=doc(
        "bound of (N1 + N2) x outputs x parameters per example: the more inputs, the smaller the network", min=1000))
    activations: list[str] = field(default_factory=lambda: ["relu", "tanh", "erf"],
                                   metadata=doc("activations generated", choices=ACTIVATIONS, min_length=1))
    dtype: str = field(default="float64", metadata=doc("dtype of parameters and inputs", choices=DTYPE_NAMES))
    device: str = field(default="auto", metadata=doc("auto (CUDA if present, else CPU), cpu, cuda, ..."))

    def validate(self) -> None:
        if len(set(self.activations)) != len(self.activations):
            raise FieldError("search.activations", f"expected each activation once, got {self.activations}")


@dataclass
class SearchSections:
    """The sections of a search case: ``[case.search]``."""

    search: SearchSection


class SearchKind(Kind):
    name = "search"
    sections = SearchSections
    result_type = SearchResult
    markers = ("agreement", "search")
    run_module = "harness.kinds.search.run"
    default_implementation = None   # every built-in in turn
    load_implementations = False    # a failure to load is the check "loads"

    def settings(self, case) -> SearchSection:
        return case.sections.search

    def case_id(self, case) -> str:
        s: SearchSection = case.sections.search
        return f"L1-{s.max_depth}-w2-{s.max_width}-o1-{s.max_outputs}-{s.examples}ex-seed{s.seed}-{s.dtype}"


KIND = SearchKind()
