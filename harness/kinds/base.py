"""What every kind of case provides (torch-free), what decides how a case runs, and what running one returns.

A *kind* (``dispersion``, ``agreement``, ``search``, ``training``) is a :class:`Kind` with:

- ``name``: the value of ``kind = "..."`` in a case file;
- ``sections``: a dataclass whose fields are the case's ``[case.<section>]`` tables, each field's
  type a section dataclass; :mod:`harness.cases.schema` builds and validates one (unknown keys,
  wrong types and impossible values fail with the file, the case and the key), and a case's
  ``sections`` attribute IS that object (``case.sections.network``). A section typed
  ``X | None`` is optional (None when the case does not give it); a section whose dataclass has
  no required field may be omitted;
- ``result_type``: its result (a record dataclass in ``harness/kinds/<kind>/result.py``);
- ``markers``: pytest markers every case of this kind carries;
- ``case_id(case)``: the readable part of a case id, e.g. ``eoc-w16-L8-s2``;
- ``phase(case)``: ``ordered``, ``eoc``, ``chaotic`` or None;
- ``validate(case)``: rules across sections, raising :class:`~harness.cases.schema.FieldError`;
- ``resolve(case, options)``: the ONE place that decides how a case runs (:class:`Resolution`:
  the implementations, the device, the dtype, the seed, the time limit), from the session's
  options, the case's own keys and the kind's defaults; the runner records it, on the error
  path too;
- ``run_module``: the module (torch allowed) whose ``run(case, resolution, options) -> KindOutcome``
  computes, compares with the reference and returns the checks and the typed result. It is
  imported only when a case of this kind runs, so collecting cases never imports torch.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, ClassVar

from harness.options import RunOptions, case_timeout
from harness.records import Check, KindResult, Timing


@dataclass
class KindOutcome:
    """What a kind's run returns: checks, the typed result and how it ran.

    ``expected_failure``: set by a kind whose case
    asserts a claim that is known not to hold in this regime (the reason states the measured
    numbers). ``skipped``: why the implementation cannot run the case (not a pass).
    """

    checks: list[Check] = field(default_factory=list)
    result: KindResult | None = None
    timing: Timing = field(default_factory=Timing)
    expected_failure: str | None = None
    skipped: str | None = None

    @property
    def checks_passed(self) -> bool:
        """Every check passed (what the outcome is then depends on the expected failures)."""
        return bool(self.checks) and all(c.passed for c in self.checks)

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]


@dataclass
class Resolution:
    """How one case runs, decided by :meth:`Kind.resolve` before it runs.

    ``implementation_specs``: the NTK implementations as named (a built-in name, an entry-point
    name, ``package.module:function`` or ``path/to/file.py:function``): one, or for the kinds that
    check every built-in when none is selected, all of them; ``device`` (a name, ``auto``
    allowed), ``dtype`` (``float64`` / ``float32``), ``seed``, ``timeout_seconds`` (0: none).
    :meth:`load` turns the names into objects (torch): ``implementations`` (one
    :class:`~harness.ntk.registry.NTKImplementation` per spec) and ``torch_device``.
    """

    implementation_specs: list[str]
    device: str
    dtype: str
    seed: int
    timeout_seconds: float
    every_builtin: bool = False
    #: False for the kinds that report loading as a check of their own (agreement, search)
    load_implementations: bool = True
    implementations: list = field(default_factory=list)
    torch_device: Any = None

    @property
    def implementation_spec(self) -> str:
        """What a record names: the one spec, or the specs joined with commas."""
        return ",".join(self.implementation_specs)

    @property
    def implementation(self):
        """The one loaded implementation (kinds that run one)."""
        (implementation,) = self.implementations
        return implementation

    @property
    def torch_dtype(self):
        from harness.devices import resolve_dtype

        return resolve_dtype(self.dtype)

    def load(self) -> Resolution:
        """Load the implementations and resolve the device (raises ImplementationError, DeviceError)."""
        from harness.devices import resolve_device
        from harness.ntk.registry import get_implementation

        if self.load_implementations and not self.implementations:
            self.implementations = [get_implementation(spec) for spec in self.implementation_specs]
        if self.torch_device is None:
            self.torch_device = resolve_device(self.device)
        return self


class Kind:
    """Base of the kinds' specs (see the module docstring)."""

    name: ClassVar[str] = ""
    sections: ClassVar[type] = type(None)
    result_type: ClassVar[type] = KindResult
    markers: ClassVar[tuple[str, ...]] = ()
    run_module: ClassVar[str] = ""
    #: The implementation a case of this kind runs when neither --ntk-implementation nor the case names one;
    #: None: every built-in in turn.
    default_implementation: ClassVar[str | None] = None
    #: whether the runner loads the implementations before the run (False: the run loads each
    #: and reports a failure to load as one of its checks)
    load_implementations: ClassVar[bool] = True

    def case_id(self, case) -> str:  # pragma: no cover - every kind overrides it
        raise NotImplementedError

    def phase(self, case) -> str | None:
        return None

    def validate(self, case) -> None:
        return None

    def expected_failure(self, case) -> str | None:
        """Why the case is expected to fail (strict), or None: the case's ``expected_failure``;
        a kind whose checks carry their own expected failures joins their reasons."""
        return case.expected_failure

    def settings(self, case):
        """The section that holds the case's own ``device``, ``dtype`` and ``seed``."""
        raise NotImplementedError  # pragma: no cover - every kind overrides it

    def resolve(self, case, options: RunOptions) -> Resolution:
        """How the case runs: ``--ntk-implementation``, else the case's ``implementation``, else the kind's
        default (or every built-in); ``--ntk-device`` / ``--ntk-dtype``, else the case's own;
        the case's seed; ``--ntk-timeout``, else the case's ``timeout``, else the default."""
        from harness.ntk.registry import BUILTINS

        own = self.settings(case)
        selected = options.implementation_spec or case.implementation_spec or self.default_implementation
        return Resolution(
            implementation_specs=[selected] if selected is not None else list(BUILTINS),
            device=options.device if options.device is not None else own.device,
            dtype=options.dtype if options.dtype is not None else own.dtype,
            seed=own.seed, timeout_seconds=case_timeout(options, case.timeout), every_builtin=selected is None,
            load_implementations=self.load_implementations)

    def run(self, case, options: RunOptions, resolution: Resolution | None = None) -> KindOutcome:
        """Resolve (unless given), load, and run the case with the kind's run module."""
        resolution = (resolution or self.resolve(case, options)).load()
        return importlib.import_module(self.run_module).run(case, resolution, options)
