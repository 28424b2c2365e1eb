"""Look up an NTK implementation by built-in name, entry point or import path.

Resolution order for a name ``spec``:

1. a built-in name (``jacobian``, ...);
2. an entry point of the group ``ntk_harness.implementations`` with that name;
3. an import path ``package.module:function`` or a file ``path/to/file.py:function``
   (:mod:`harness.imports`, the same resolver as model factories).

Every failure raises :class:`ImplementationError` naming the implementation and what
was wrong.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from pathlib import Path
from importlib.metadata import entry_points
from typing import Callable


ENTRY_POINT_GROUP = "ntk_harness.implementations"

BUILTINS: dict[str, str] = {
    "jacobian": "harness.ntk.jacobian:jacobian_ntk",
    "ntk-vector-products": "harness.ntk.vector_products:ntk_vector_products",
    "structured": "harness.ntk.structured:structured_ntk",
    "autograd-loop": "harness.ntk.autograd_loop:autograd_loop_ntk",
}


class ImplementationError(ValueError):
    """An NTK implementation could not be loaded or misbehaved."""


@dataclass(frozen=True)
class NTKImplementation:
    """A loaded implementation: its name as the user gave it and the callable."""

    name: str
    function: Callable

    @property
    def vmappable(self) -> bool:
        return bool(getattr(self.function, "vmappable", False))

    def supports(self, f) -> str | None:
        """None when the implementation says it can compute the NTK of network ``f``, else why
        not (an implementation states it with a ``supports(f) -> bool`` attribute and, optionally,
        ``supports_reason``; without one it claims every network)."""
        check = getattr(self.function, "supports", None)
        if check is None or check(f):
            return None
        return getattr(self.function, "supports_reason", f"{self.name} does not support {type(f).__name__}")

    def __call__(self, f, params, x1, x2):
        return self.function(f, params, x1, x2)


def implementation_names() -> list[str]:
    """Built-in names and installed entry-point names."""
    names = list(BUILTINS)
    names += [ep.name for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name not in names]
    return names


def _load_path(spec: str, label: str) -> Callable:
    """``package.module:function`` or ``path/to/file.py:function`` (:func:`harness.imports.load_object`;
    a module not on the import path is looked for in the working directory, as ``python -m
    pytest`` and ``ntk-harness`` see it, so ``--ntk-implementation my_ntk:fn`` finds ``./my_ntk.py``
    under a bare ``pytest`` as well)."""
    from harness.imports import SpecError, load_object

    module_part, sep, attribute = spec.rpartition(":")
    if not sep or not module_part or not attribute:
        raise ImplementationError(
            f"NTK implementation {label!r}: expected a built-in name ({', '.join(implementation_names())}), "
            "'package.module:function' or 'path/to/file.py:function'")
    try:
        return load_object(spec, "NTK implementation", [Path.cwd()])
    except SpecError as exc:
        raise ImplementationError(str(exc)) from exc.__cause__


def _check_signature(function: Callable, label: str) -> None:
    if not callable(function):
        raise ImplementationError(f"NTK implementation {label!r}: {function!r} is not callable")
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return  # builtins without a signature: trust the call
    try:
        signature.bind(None, None, None, None)
    except TypeError as exc:
        raise ImplementationError(
            f"NTK implementation {label!r}: expected a callable fn(f, params, x1, x2), got signature {signature}"
        ) from exc


def get_implementation(spec: str | Callable) -> NTKImplementation:
    """Resolve ``spec`` to an :class:`NTKImplementation` (see the module docstring)."""
    if callable(spec):
        _check_signature(spec, getattr(spec, "__name__", repr(spec)))
        return NTKImplementation(getattr(spec, "__name__", repr(spec)), spec)
    if not isinstance(spec, str) or not spec:
        raise ImplementationError(f"NTK implementation must be a name or 'package.module:function'; got {spec!r}")
    if spec in BUILTINS:
        function = _load_path(BUILTINS[spec], spec)
    else:
        matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == spec]
        if matches:
            try:
                function = matches[0].load()
            except Exception as exc:
                raise ImplementationError(f"NTK implementation {spec!r}: entry point failed to load: {exc}") from exc
        else:
            function = _load_path(spec, spec)
    _check_signature(function, spec)
    return NTKImplementation(spec, function)


__all__ = ["BUILTINS", "ENTRY_POINT_GROUP", "ImplementationError", "NTKImplementation", "get_implementation",
           "implementation_names"]
