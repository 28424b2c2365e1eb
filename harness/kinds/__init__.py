"""The kinds of case and their registry :data:`KINDS` (``kind = "..."`` in a case file).

Each module defines a module-level ``KIND`` (see :class:`harness.kinds.base.Kind`).
A kind whose module fails to import is left out of :data:`KINDS` and its error kept in
:data:`KIND_ERRORS`, so a case of that kind fails collection with the reason while the
other kinds keep working.
"""
from __future__ import annotations

import importlib

_MODULES = ("dispersion", "agreement", "training")

KIND_ERRORS: dict[str, str] = {}


def _load() -> dict:
    kinds = {}
    for module_name in _MODULES:
        try:
            module = importlib.import_module(f"harness.kinds.{module_name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"harness.kinds.{module_name}":
                continue  # a kind not shipped in this build
            KIND_ERRORS[module_name] = f"{type(exc).__name__}: {exc}"
            continue
        except ImportError as exc:
            KIND_ERRORS[module_name] = f"{type(exc).__name__}: {exc}"
            continue
        kinds[module.KIND.name] = module.KIND
    return kinds


KINDS: dict = _load()
