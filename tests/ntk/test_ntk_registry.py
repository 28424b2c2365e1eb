"""Resolving implementations: built-in names, import paths, entry points, bad input."""
from __future__ import annotations

import sys
import textwrap

import pytest

from harness.ntk import get_implementation, implementation_names
from harness.ntk.registry import BUILTINS, ENTRY_POINT_GROUP, ImplementationError


def test_builtin_names():
    assert {"jacobian", "ntk-vector-products", "structured", "autograd-loop"} <= set(BUILTINS)
    for name in BUILTINS:
        assert get_implementation(name).name == name


def test_import_path():
    impl = get_implementation("tests.ntk.broken:scaled")
    assert impl.name == "tests.ntk.broken:scaled" and callable(impl.function)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("no_such_module_xyz:fn", "cannot import module 'no_such_module_xyz'"),
        ("tests.ntk.broken:no_such_function", "has no attribute 'no_such_function'"),
        ("not-a-name-or-path", "expected a built-in name"),
        ("tests.ntk.broken:wrong_signature", "expected a callable fn(f, params, x1, x2)"),
        ("tests.ntk.broken:BROKEN", "is not callable"),
    ],
)
def test_bad_specs_name_the_implementation(spec, message):
    with pytest.raises(ImplementationError) as info:
        get_implementation(spec)
    assert spec in str(info.value)
    assert message in str(info.value)


def test_entry_point_group(tmp_path, monkeypatch):
    """A distribution that declares ``[project.entry-points."ntk_harness.implementations"]``."""
    module = tmp_path / "user_ntk_plugin.py"
    module.write_text(textwrap.dedent("""
        from harness.ntk.jacobian import jacobian_ntk

        def my_ntk(f, params, x1, x2):
            return jacobian_ntk(f, params, x1, x2)
    """))
    dist = tmp_path / "user_ntk_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: user-ntk-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nmy-fast-ntk = user_ntk_plugin:my_ntk\n"
                                           "broken-ep = user_ntk_plugin:missing\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "my-fast-ntk" in implementation_names()
    impl = get_implementation("my-fast-ntk")
    assert impl.name == "my-fast-ntk" and impl.function.__name__ == "my_ntk"
    with pytest.raises(ImplementationError, match="'broken-ep': entry point failed to load"):
        get_implementation("broken-ep")
    sys.modules.pop("user_ntk_plugin", None)
