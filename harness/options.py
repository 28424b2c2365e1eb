"""Run options, defined once and added to both front ends (pytest plugin and ``ntk-harness``).

Each :class:`Option` becomes ``--ntk-<name>`` in pytest's option group "ntk-harness" and in
every ``ntk-harness`` command that runs cases, with the same name, type, default and help
(as pytest-benchmark shares its option builders between its plugin and its CLI).
:func:`run_options` turns either front end's parsed values into one :class:`RunOptions`.
Torch-free: devices and dtypes are checked by name here and resolved when a case runs.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from harness.constants import DTYPE_NAMES

#: Default memory budget of one chunk of networks (MiB).
DEFAULT_MEMORY_BUDGET_MIB = 512
#: Default time limit of one case (seconds); 0 turns it off.
DEFAULT_TIMEOUT_SECONDS = 3600.0
#: Largest time limit (seconds, ~32 years): the SIGALRM timer of the runner takes no more.
MAX_TIMEOUT_SECONDS = 1e9


def default_cache_dir() -> Path:
    """``$NTK_HARNESS_CACHE_DIR``, else ``$XDG_CACHE_HOME/ntk-harness`` (``~/.cache/ntk-harness``).

    One user-level cache for both front ends and every project: calibrated intervals depend
    only on the parameters they were computed for, so sharing them is safe and saves time.
    """
    explicit = os.environ.get("NTK_HARNESS_CACHE_DIR")
    if explicit:
        return Path(explicit).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "ntk-harness"


@dataclass(frozen=True)
class Option:
    """One run option: ``--ntk-<name>``; ``dest`` is its attribute on the parsed namespace."""

    name: str
    help: str
    default: Any = None
    type: Callable | None = None
    choices: tuple | None = None
    metavar: str | None = None
    action: str | None = None
    #: deprecated spellings (``--ntk-<alias>``), accepted for one release with a warning
    aliases: tuple[str, ...] = ()

    @property
    def flag(self) -> str:
        return f"--ntk-{self.name}"

    @property
    def flags(self) -> list[str]:
        return [self.flag] + [f"--ntk-{alias}" for alias in self.aliases]

    @property
    def dest(self) -> str:
        return "ntk_" + self.name.replace("-", "_")

    def kwargs(self) -> dict:
        out = {"dest": self.dest, "help": self.help, "default": self.default}
        for key in ("type", "choices", "metavar", "action"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


RUN_OPTIONS = (
    Option("device", "device for every case: auto (CUDA if present, else CPU), cpu, cuda, cuda:N "
                     "(default: each case's own)", metavar="DEV"),
    Option("dtype", f"compute dtype for every case: {' or '.join(DTYPE_NAMES)} (default: each case's own)",
           metavar="DTYPE"),
    Option("implementation", "NTK implementation for every case, by its spec: a built-in name, an entry-point name, "
                             "package.module:function or path/to/file.py:function (default: each case's own); "
                             "--ntk-impl is its deprecated spelling", metavar="SPEC", aliases=("impl",)),
    Option("cache-dir", "cache of calibrated acceptance intervals and of the records --ntk-resume reuses "
                        "(default: $NTK_HARNESS_CACHE_DIR, else $XDG_CACHE_HOME/ntk-harness, else "
                        "~/.cache/ntk-harness)", metavar="DIR"),
    Option("memory-budget", f"memory budget of one chunk of networks in MiB (default {DEFAULT_MEMORY_BUDGET_MIB})",
           default=DEFAULT_MEMORY_BUDGET_MIB, metavar="MIB"),
    Option("timeout", "time limit of one case in seconds; 0: none (default: the case's own `timeout` key, else "
                      f"{DEFAULT_TIMEOUT_SECONDS:g})", metavar="SECONDS"),
    Option("tf32", "float32 agreement with TF32-level error (about 1e-4 relative: matmuls on 10 mantissa bits): "
                   "reject (default; the float32 tolerance is derived from the reference's own float32 error, "
                   "about 1e-6) or allow (tolerance 1e-3, said in the record)", default="reject", metavar="POLICY"),
    Option("calibration", "the calibrated checks of the diagonal's exact law: decide (default: the interval's "
                          "verdict from the replicates it needs, usually one block; the interval itself and the "
                          "simulated detectable scale only where a check fails) or full (every replicate: the "
                          "interval and the simulated detectable scale always; cached)", default="decide",
           metavar="MODE"),
    Option("resume", "reuse the record of every case an earlier run finished with the same case, options, "
                     "package versions and harness source (stored under the cache directory's records/), so an "
                     "interrupted sweep continues where it stopped", action="store_true", default=False),
)


def case_timeout(options: RunOptions, case_timeout_seconds: float | None) -> float:
    """The time limit of one case: ``--ntk-timeout`` when given, else the case's own ``timeout``,
    else :data:`DEFAULT_TIMEOUT_SECONDS` (0: no limit)."""
    if options.timeout_seconds is not None:
        return options.timeout_seconds
    return case_timeout_seconds if case_timeout_seconds is not None else DEFAULT_TIMEOUT_SECONDS


def add_to_pytest(group) -> None:
    """Add every run option to a pytest option group (``parser.getgroup(...)``)."""
    for option in RUN_OPTIONS:
        group.addoption(*option.flags, **option.kwargs())


def add_to_argparse(parser) -> None:
    """Add every run option to an argparse (sub)parser."""
    group = parser.add_argument_group("run options (the same as pytest's --ntk-* options)")
    for option in RUN_OPTIONS:
        group.add_argument(*option.flags, **option.kwargs())


def deprecated_spellings(arguments) -> list[str]:
    """One warning per deprecated option spelling among the command-line ``arguments``."""
    found = []
    for option in RUN_OPTIONS:
        for alias in option.aliases:
            old = f"--ntk-{alias}"
            if any(a == old or a.startswith(old + "=") for a in arguments):
                found.append(f"{old} is deprecated and will be removed in the next release; use {option.flag} "
                             "(same meaning)")
    return found


@dataclass
class RunOptions:
    """Session-wide settings that override a case's own (``None`` = keep the case's)."""

    device: str | None = None
    dtype: str | None = None
    implementation_spec: str | None = None   # --ntk-implementation: the spec of every case's implementation
    cache_dir: Path | None = None
    memory_budget_bytes: int = DEFAULT_MEMORY_BUDGET_MIB * 2**20
    timeout_seconds: float | None = None   # None: the case's own ``timeout``, else DEFAULT_TIMEOUT_SECONDS
    resume: bool = False
    tf32: str = "reject"   # --ntk-tf32: reject or allow float32 agreement at TF32-level error
    calibration: str = "decide"   # --ntk-calibration: decide or full (harness.kinds.dispersion.run)
    progress: Callable[[int, int], None] | None = None  # progress(done, total) of a long Monte Carlo


class OptionError(ValueError):
    """An option value that cannot be used; the message names the option and what was expected."""


def _number(value: Any) -> float | None:
    """``value`` (a number, or the text given on a command line) as a float; None if it is not one."""
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _shown(value: Any) -> str:
    """A value as the user typed it: numbers and numeric text as is (no spurious ``.0``), other text quoted."""
    if isinstance(value, str):
        return value if _number(value) is not None else repr(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return repr(value)


def run_options(get: Callable[[str], Any]) -> RunOptions:
    """:class:`RunOptions` from parsed values; ``get(dest)`` reads one (pytest's
    ``config.getoption`` or ``vars(args).get``). Raises :class:`OptionError` naming the option.

    The numeric options arrive as text from both front ends and are parsed here, so that a
    bad value gives the same one-line message under pytest and ``ntk-harness`` (argparse's
    own type errors come with a usage block under pytest).
    """
    raw_budget = get("ntk_memory_budget")
    budget = _number(raw_budget)
    if budget is None or not 0 < budget < float("inf"):
        raise OptionError(f"--ntk-memory-budget: expected a number of MiB > 0, got {_shown(raw_budget)}")
    raw_timeout = get("ntk_timeout")
    timeout = None if raw_timeout is None else _number(raw_timeout)
    if raw_timeout is not None and (timeout is None or not 0 <= timeout <= MAX_TIMEOUT_SECONDS):
        raise OptionError(f"--ntk-timeout: expected a number of seconds from 0 to {MAX_TIMEOUT_SECONDS:g} "
                          f"(0: no limit), got {_shown(raw_timeout)}")
    tf32 = get("ntk_tf32") or "reject"
    if tf32 not in ("reject", "allow"):
        raise OptionError(f"--ntk-tf32: expected reject or allow, got {_shown(tf32)}")
    calibration = get("ntk_calibration") or "decide"
    if calibration not in ("decide", "full"):
        raise OptionError(f"--ntk-calibration: expected decide or full, got {_shown(calibration)}")
    dtype = get("ntk_dtype")
    if dtype is not None and dtype not in DTYPE_NAMES:
        raise OptionError(f"--ntk-dtype: expected {' or '.join(DTYPE_NAMES)}, got {_shown(dtype)}")
    device = get("ntk_device")
    if device is not None:
        check_device_name(device)
    cache = get("ntk_cache_dir")
    return RunOptions(
        device=device, dtype=dtype, implementation_spec=get("ntk_implementation"),
        cache_dir=Path(cache).expanduser() if cache else default_cache_dir(),
        memory_budget_bytes=int(budget * 2**20), timeout_seconds=timeout, resume=bool(get("ntk_resume")),
        tf32=tf32, calibration=calibration,
    )


def check_device_name(name: str) -> None:
    """Refuse a device name torch would not read (checked without importing torch):
    ``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``."""
    import re

    if not re.fullmatch(r"auto|cpu|mps|cuda(:\d+)?", name):
        raise OptionError(f"--ntk-device: expected auto, cpu, cuda, cuda:N or mps, got {name!r}")
