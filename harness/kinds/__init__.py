"""The kinds of case and their one registry :data:`KINDS` (``kind = "..."`` in a case file).

A kind is one folder, ``harness/kinds/<name>/``:

- ``__init__.py``: its spec (torch-free): the typed sections of its case (a dataclass whose
  fields are the ``[case.<section>]`` tables), its id, phase and validation rules, and
  ``KIND``, the :class:`~harness.kinds.base.Kind` object;
- ``result.py``: its result type (a record dataclass, written and read by its fields) with its
  report tables and figure data;
- ``run.py``: its computation (torch allowed), ``run(case, resolution, options) -> KindOutcome``,
  imported only when a case of that kind runs.

and one line of :data:`KIND_TABLE` below. Everything else derives from that table: the kinds
the case schema accepts, the result types a results file is read with (:func:`result_types`),
the JSON Schema's kinds, and the pytest markers (:func:`markers`). The table is plain data, so
that the pytest plugin reads the markers without importing any kind (importing a spec costs
numpy and scipy); :data:`KINDS` imports a kind's package the first time it is asked for.
``docs/kinds.md`` adds a kind in a worked example.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Registration:
    """One kind: its name (``kind = "<name>"`` and its pytest marker), what its marker means, the
    package that holds it (default ``harness.kinds.<name>``) and other markers its cases may carry."""

    name: str
    description: str
    package: str = ""
    other_markers: dict[str, str] = field(default_factory=dict)

    @property
    def module(self) -> str:
        return self.package or f"harness.kinds.{self.name}"


#: The registry: one line per kind.
KIND_TABLE: list[Registration] = [
    Registration("dispersion", "NTK dispersion at initialization against theory"),
    Registration("agreement", "an NTK implementation against the reference implementation", other_markers={
        "models": "agreement on the example models of cases/models (a user's nn.Module instead of the MLP)"}),
    Registration("search", "a property-based search (hypothesis) for a disagreement with the reference"),
    Registration("training", "NTK constancy during training"),
]


class KindRegistry(Mapping):
    """name -> :class:`~harness.kinds.base.Kind`, loaded from :data:`KIND_TABLE` on first access."""

    def __init__(self, table: list[Registration]):
        self.table = table
        self._loaded: dict = {}

    def registration(self, name: str) -> Registration:
        for entry in self.table:
            if entry.name == name:
                return entry
        raise KeyError(name)

    def __getitem__(self, name: str):
        if name not in self._loaded:
            kind = importlib.import_module(self.registration(name).module).KIND
            if kind.name != name:
                raise RuntimeError(f"kind package {self.registration(name).module} registers {kind.name!r}, "
                                   f"listed as {name!r} in harness.kinds.KIND_TABLE")
            self._loaded[name] = kind
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter([entry.name for entry in self.table])

    def __len__(self) -> int:
        return len(self.table)

    def __contains__(self, name) -> bool:
        return any(entry.name == name for entry in self.table)


KINDS = KindRegistry(KIND_TABLE)


def result_types() -> dict:
    """kind name -> its result type (``KINDS[name].result_type``), in registry order."""
    return {name: KINDS[name].result_type for name in KINDS}


#: The markers every case may carry whatever its kind.
OWN_MARKERS = {
    "quick": "a small set of cases (under 2 minutes on 2 CPU cores) that catches a broken NTK",
    "paper": "the paper's own sizes; run only when asked with -m paper",
}


def markers() -> dict[str, str]:
    """Every marker the harness knows -> its help: its own, each kind's name and the kinds' other
    markers; no kind is imported."""
    out = dict(OWN_MARKERS)
    for entry in KINDS.table:
        out[entry.name] = entry.description
        out.update(entry.other_markers)
    return out


def load_cases(path):
    """Every case of one case file, validated against the registered kinds, with ids
    (:func:`harness.cases.schema.load_case_file`); raises :class:`~harness.cases.schema.CaseError`."""
    from harness.cases.schema import load_case_file

    return load_case_file(path, KINDS)


__all__ = ["KINDS", "KIND_TABLE", "OWN_MARKERS", "KindRegistry", "Registration", "load_cases", "markers",
           "result_types"]
