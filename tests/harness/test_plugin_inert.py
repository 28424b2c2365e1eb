"""The plugin is a guest in every project of the environment (issue: one record, one runner, a
plugin that stays in its lane), and the import graph flows one way.

A throw-away project with an unrelated test module, its own ``paper`` marker and an unrelated
``config.toml`` holding ``[[case]]`` tables collects and passes exactly as it does without the
plugin; the plugin adds only ``--ntk-*`` options, changes no session setting, and imports
nothing heavy at start-up.
"""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

PROJECT_TESTS = textwrap.dedent('''
    import sys
    import pytest


    def test_plain():
        assert 1 + 1 == 2


    @pytest.mark.paper
    def test_marked_with_the_projects_own_paper_marker():
        assert True


    def test_torch_is_not_loaded_by_a_guest_plugin():
        assert "torch" not in sys.modules
''')

PROJECT_CONFIG = textwrap.dedent('''
    [[case]]
    name = "not-an-ntk-case"
    width = 3
''')


def _pytest(cwd: Path, *args: str, plugin: bool = True) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER")}
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    if not plugin:
        command[3:3] = ["-p", "no:ntk_harness"]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def project(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    paper: the project's own marker\n")
    (tmp_path / "test_x.py").write_text(PROJECT_TESTS)
    (tmp_path / "config.toml").write_text(PROJECT_CONFIG)
    return tmp_path


def _summary(result) -> str:
    return result.stdout.strip().splitlines()[-1]


def test_an_unrelated_project_collects_and_passes_as_without_the_plugin(project):
    with_plugin, without = _pytest(project, "-q"), _pytest(project, "-q", plugin=False)
    assert with_plugin.returncode == without.returncode == 0, with_plugin.stdout + with_plugin.stderr
    assert "3 passed" in _summary(with_plugin) and "3 passed" in _summary(without)
    listed = _pytest(project, "--collect-only", "-q")
    assert "config.toml" not in listed.stdout
    assert listed.stdout.count("test_x.py::") == 3


def test_a_broken_test_module_still_stops_collection(project):
    (project / "test_broken.py").write_text("import does_not_exist\n")
    with_plugin, without = _pytest(project, "-q"), _pytest(project, "-q", plugin=False)
    assert with_plugin.returncode == without.returncode == 2   # pytest's own: interrupted by collection errors


def test_every_option_of_the_plugin_carries_the_ntk_prefix(project):
    help_text = _pytest(project, "--help").stdout
    section = help_text.split("ntk-harness case files", 1)[1].split("\n\n", 1)[0]
    flags = [line.split()[0] for line in section.splitlines() if line.strip().startswith("--")]
    assert flags and all(flag.startswith("--ntk-") for flag in flags), flags
    for foreign in ("--device ", "--dtype ", "--shard ", "--report-dir "):
        assert foreign not in help_text.replace("--ntk-", "")


def test_start_up_imports_nothing_heavy(project):
    """``pytest --version`` pays only for the plugin module and harness.options (stdlib):
    what it imports is checked, rather than timing it (measured in docs/measurements)."""
    code = ("import sys, pytest; code = pytest.main(['--version']); "
            "print(sorted(m for m in ('torch', 'numpy', 'scipy', 'sklearn', 'matplotlib', 'reference') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


# ---------------------------------------------------------------------- import flow
def _imports(path: Path) -> set[str]:
    """Every module named by an import statement of ``path`` (top level and inside functions)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found |= {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def _module_file(name: str) -> Path | None:
    parts = name.split(".")
    for candidate in (ROOT.joinpath(*parts).with_suffix(".py"), ROOT.joinpath(*parts, "__init__.py")):
        if candidate.exists():
            return candidate
    return None


def _closure(start: str, top_level_only: bool = False) -> set[str]:
    """Modules reachable from ``start`` through import statements, following the repository's own."""
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _module_file(name)
        if path is None:
            continue
        parents = [".".join(name.split(".")[:i]) for i in range(1, len(name.split(".")))]
        todo += [p for p in parents if _module_file(p)]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        nodes = tree.body if top_level_only else ast.walk(tree)
        for node in nodes:
            if isinstance(node, ast.Import):
                todo += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                todo.append(node.module)
                todo += [f"{node.module}.{alias.name}" for alias in node.names if _module_file(f"{node.module}.{alias.name}")]
    return seen


def _heavy(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] in ("torch", "functorch")}


def test_the_case_schema_imports_no_kind_and_no_torch():
    reached = _closure("harness.cases.schema")
    assert not _heavy(reached), _heavy(reached)
    assert not {m for m in reached if m.startswith("harness.kinds")}
    sections = _closure("harness.cases.sections")
    assert not _heavy(sections) and not {m for m in sections if m.startswith("harness.kinds")}


def test_kind_specs_and_records_are_torch_free():
    for start in ("harness.kinds", "harness.records", "harness.records.document", "harness.plugin"):
        reached = _closure(start, top_level_only=True)
        assert not _heavy(reached), (start, _heavy(reached))


def test_reference_imports_neither_torch_nor_harness():
    for path in (ROOT / "reference").glob("*.py"):
        bad = {m for m in _imports(path) if m.split(".")[0] in ("torch", "harness")}
        assert not bad, (path.name, bad)


def test_the_report_reads_records_not_the_kinds_internals():
    """The report asks the kinds' registry for their result types (harness.kinds), and imports no
    kind's spec or run, and no torch."""
    from harness.kinds import KINDS

    inside = tuple(f"harness.kinds.{name}" for name in KINDS) + ("harness.kinds.base",)
    for path in (ROOT / "harness" / "report").glob("*.py"):
        imported = _imports(path)
        assert not {m for m in imported if m.startswith(inside) or m.split(".")[0] == "torch"}, path.name


def test_the_plugin_module_imports_only_the_standard_library_pytest_and_options_at_start_up():
    tree = ast.parse((ROOT / "harness" / "plugin.py").read_text(encoding="utf-8"))
    top = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            top.add(node.module)
    assert top <= {"__future__", "pathlib", "pytest", "harness", "harness.report"}, top
    # harness.report's package module holds two names and imports nothing at all.
    assert not _imports(ROOT / "harness" / "report" / "__init__.py")


def test_helper_plugins_live_only_for_the_session_and_state_is_in_the_stash(tmp_path):
    """The plugin's helper (the diagnosis summary) is registered in pytest_configure and gone after
    pytest_unconfigure, and it keeps no ``config._ntk_harness_*`` attributes (state in config.stash),
    as pytest's own junitxml does."""
    seen = {}

    class Probe:
        def pytest_sessionfinish(self, session):
            seen["config"] = session.config
            seen["during"] = session.config.pluginmanager.get_plugin("ntk-harness-diagnoses") is not None

    (tmp_path / "test_one.py").write_text("def test_one():\n    pass\n")
    assert pytest.main([str(tmp_path), "-q", "-p", "no:cacheprovider", "-p", "no:xdist"], plugins=[Probe()]) == 0
    config = seen["config"]
    assert seen["during"], "the helper was not registered during the session"
    assert config.pluginmanager.get_plugin("ntk-harness-diagnoses") is None, "the helper outlived the session"
    assert not [name for name in vars(config) if name.startswith("_ntk")]
