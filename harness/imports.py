"""The one resolver of ``module:attribute`` and ``path/to/file.py:attribute`` specs (torch-free).

NTK implementations (``--ntk-implementation``, a case's ``implementation``) and model
factories (``[case.model] factory``) are named the same way, and found the same way by
:func:`load_object`:

- ``package.module:attribute``: imported from the import path; when no such module is there,
  looked up as a file ``package/module.py`` (or a package folder) in each of ``search_dirs``
  in turn (the case file's folder and its parents for a factory; the working directory for
  an implementation, as ``python -m pytest`` would see it), and imported under a private
  package named after that folder, so that relative imports inside a user's ``models/``
  package work and another ``models`` package elsewhere is neither shadowed nor shadowing;
- ``path/to/file.py:attribute``: that file, relative to the first of ``search_dirs`` (or the
  working directory), imported under the same kind of private package.

``attribute`` may be dotted (``module:Class.create``). Every failure raises
:class:`SpecError` whose message starts with ``<what> '<spec>':`` and says what was wrong;
callers re-raise it as their own error type.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
import types
from pathlib import Path
from typing import Iterable

#: Modules found in a folder (not on sys.path) live under this prefix, one package per folder.
PRIVATE_PREFIX = "_ntk_harness_user_models"
FORMS = "'package.module:function' or 'path/to/file.py:function'"


class SpecError(ValueError):
    """A spec that does not resolve; the message names what it is for, the spec and why."""


def looks_like_file(module_part: str) -> bool:
    return module_part.endswith(".py") or "/" in module_part or "\\" in module_part


def private_package_for(folder: Path) -> str:
    """A package named after ``folder``'s resolved path whose ``__path__`` is that folder."""
    folder = folder.resolve()
    name = f"{PRIVATE_PREFIX}_{hashlib.sha1(str(folder).encode()).hexdigest()[:12]}"
    if name not in sys.modules:
        package = types.ModuleType(name, f"user modules found in {folder}")
        package.__path__ = [str(folder)]
        package.__file__ = None
        sys.modules[name] = package
    return name


def _holds_module(folder: Path, parts: list[str]) -> bool:
    target = folder.joinpath(*parts)
    return target.with_suffix(".py").is_file() or target.is_dir()


def _import_module(label: str, module_name: str, search_dirs: list[Path]) -> types.ModuleType:
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        # only "this module does not exist" falls through; a missing import inside it is the user's error
        missing = exc.name or ""
        if not (module_name == missing or module_name.startswith(missing + ".")):
            raise SpecError(f"{label}: cannot import module {module_name!r}: {exc}") from exc
    except Exception as exc:
        raise SpecError(f"{label}: cannot import module {module_name!r}: {type(exc).__name__}: {exc}") from exc
    parts = module_name.split(".")
    for folder in search_dirs:
        if not _holds_module(folder, parts):
            continue
        try:
            return importlib.import_module(f"{private_package_for(folder)}.{module_name}")
        except Exception as exc:
            raise SpecError(f"{label}: cannot import module {module_name!r} from {folder}: "
                            f"{type(exc).__name__}: {exc}") from exc
    where = "the import path" + (f" or {', '.join(map(str, search_dirs[:3]))}" if search_dirs else "")
    if len(search_dirs) > 3:
        where += f" (and {len(search_dirs) - 3} folders above)"
    raise SpecError(f"{label}: cannot import module {module_name!r}: no such module on {where}")


def _import_file(label: str, file_part: str, base_dir: Path) -> types.ModuleType:
    path = Path(file_part).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    path = path.resolve()
    if not path.is_file():
        raise SpecError(f"{label}: no file {str(path)!r}")
    if path.suffix != ".py":
        raise SpecError(f"{label}: {str(path)!r} is not a .py file")
    name = f"{private_package_for(path.parent)}.{path.stem}"
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module  # before exec: dataclasses and pickling look the module up
    try:
        module_spec.loader.exec_module(module)
    except Exception as exc:
        del sys.modules[name]
        raise SpecError(f"{label}: executing {str(path)!r} raised {type(exc).__name__}: {exc}") from exc
    return module


def load_object(spec: str, what: str, search_dirs: Iterable[Path | str] = ()) -> object:
    """The object ``spec`` names (see the module docstring); raises :class:`SpecError`."""
    label = f"{what} {spec!r}"
    if not isinstance(spec, str) or not spec.strip():
        raise SpecError(f"{label}: expected {FORMS}")
    module_part, sep, attribute = spec.rpartition(":")
    if not sep or not module_part or not attribute:
        raise SpecError(f"{label}: expected {FORMS} (no ':function' given)")
    folders = [Path(d).resolve() for d in search_dirs]
    if looks_like_file(module_part):
        module = _import_file(label, module_part, folders[0] if folders else Path.cwd())
    else:
        module = _import_module(label, module_part, folders)
    target = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            raise SpecError(f"{label}: module {module_part!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    return target


def folder_and_parents(folder: Path | str) -> list[Path]:
    """``folder`` and every folder above it: where a case file's factory module is looked for."""
    base = Path(folder).resolve()
    return [base, *base.parents]
