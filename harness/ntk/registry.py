"""Look up an NTK implementation by built-in name, entry point or import path.

Resolution order for a name ``spec``:

1. a built-in name (``jacobian``, ...), or the name of an adapter of an optional library
   (:data:`OPTIONAL`: ``nngeometry``, ``backpack``, ``curvlinops``, ``neural-tangents/...``);
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


@dataclass(frozen=True)
class OptionalImplementation:
    """A built-in adapter of a third-party library (:mod:`harness.ntk.adapters`): ``path`` is its
    ``module:function``; ``extra`` the optional extra that installs the library; ``modules`` the
    top-level modules that must be importable; ``install`` the command that installs it
    without replacing the user's torch (docs/third-party.md)."""

    path: str
    extra: str
    modules: tuple[str, ...]
    install: str


_TORCH_INSTALL = "pip install --no-deps -r constraints/thirdparty.txt"
_JAX_INSTALL = ("the JAX stack of constraints/jax.txt in a virtual environment of its own (jax 0.4.23, "
                "tensorflow-cpu, neural-tangents --no-deps; the commands are in docs/third-party.md)")

#: Built-in adapters of optional libraries, resolved by name like :data:`BUILTINS` but never part
#: of "every built-in in turn" (the agreement and search kinds iterate BUILTINS only): each is
#: imported only when named, and names its missing extra when its library is absent.
OPTIONAL: dict[str, OptionalImplementation] = {
    "nngeometry": OptionalImplementation("harness.ntk.adapters.with_nngeometry:nngeometry_ntk", "nngeometry",
                                         ("nngeometry",), _TORCH_INSTALL),
    "backpack": OptionalImplementation("harness.ntk.adapters.with_backpack:backpack_ntk", "backpack",
                                       ("backpack",), _TORCH_INSTALL),
    "curvlinops": OptionalImplementation("harness.ntk.adapters.with_curvlinops:curvlinops_ntk", "curvlinops",
                                         ("curvlinops",), _TORCH_INSTALL),
    "neural-tangents/jacobian": OptionalImplementation(
        "harness.ntk.adapters.with_neural_tangents:jacobian_contraction", "neural-tangents",
        ("jax", "neural_tangents"), _JAX_INSTALL),
    "neural-tangents/ntk-vector-products": OptionalImplementation(
        "harness.ntk.adapters.with_neural_tangents:ntk_vector_products", "neural-tangents",
        ("jax", "neural_tangents"), _JAX_INSTALL),
    "neural-tangents/structured": OptionalImplementation(
        "harness.ntk.adapters.with_neural_tangents:structured_derivatives", "neural-tangents",
        ("jax", "neural_tangents"), _JAX_INSTALL),
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
        ``supports_reason``: a string, or a callable ``f -> str`` for a reason that names what in
        ``f`` it cannot handle; without ``supports`` it claims every network)."""
        check = getattr(self.function, "supports", None)
        if check is None or check(f):
            return None
        reason = getattr(self.function, "supports_reason", f"{self.name} does not support {type(f).__name__}")
        return reason(f) if callable(reason) else reason

    def __call__(self, f, params, x1, x2):
        return self.function(f, params, x1, x2)


def implementation_names() -> list[str]:
    """Built-in names, the optional adapters' names and installed entry-point names."""
    names = list(BUILTINS) + list(OPTIONAL)
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


def _load_optional(spec: str) -> Callable:
    """The adapter ``spec`` of :data:`OPTIONAL`; ImplementationError naming the extra and the install
    command when one of its libraries is not installed."""
    import importlib.util

    adapter = OPTIONAL[spec]
    missing = []
    for module in adapter.modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(module)
    if missing:
        raise ImplementationError(
            f"NTK implementation {spec!r} needs the optional extra {adapter.extra!r}: {', '.join(missing)} "
            f"{'is' if len(missing) == 1 else 'are'} not installed; install with {adapter.install} "
            f"(pip install 'ntk-harness[{adapter.extra}]' names the same libraries, see docs/third-party.md)")
    try:
        return _load_path(adapter.path, spec)
    except ImplementationError as exc:
        raise ImplementationError(f"NTK implementation {spec!r} (optional extra {adapter.extra!r}): {exc}") from exc


def get_implementation(spec: str | Callable) -> NTKImplementation:
    """Resolve ``spec`` to an :class:`NTKImplementation` (see the module docstring)."""
    if callable(spec):
        _check_signature(spec, getattr(spec, "__name__", repr(spec)))
        return NTKImplementation(getattr(spec, "__name__", repr(spec)), spec)
    if not isinstance(spec, str) or not spec:
        raise ImplementationError(f"NTK implementation must be a name or 'package.module:function'; got {spec!r}")
    if spec in BUILTINS:
        function = _load_path(BUILTINS[spec], spec)
    elif spec in OPTIONAL:
        function = _load_optional(spec)
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


__all__ = ["BUILTINS", "ENTRY_POINT_GROUP", "OPTIONAL", "ImplementationError", "NTKImplementation",
           "OptionalImplementation", "get_implementation", "implementation_names"]
