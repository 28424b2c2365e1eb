"""Which cases Dask ran again because their worker died, from the scheduler's event logs.

Two logs, both kept by the scheduler (so complete whichever process noticed what):

- every task announces its start on the topic :data:`STARTED` (``{"key", "worker"}``)
  before it does anything else, through a synchronous call to the scheduler
  (``Client.log_event`` from inside the task): a start is on record even when the worker
  dies a moment later;
- when a worker leaves the cluster the scheduler logs, on its ``"all"`` topic,
  ``{"action": "remove-worker", "worker": ADDRESS, "processing-tasks": KEYS, "expected": BOOL}``
  and reschedules the tasks in KEYS (those it had given that worker: running, or waiting
  behind the running one). ``expected`` is False when the worker died (killed, crashed, out
  of memory); past ``distributed.scheduler.allowed-failures`` deaths (3 unless configured)
  Dask gives up on a task with ``KilledWorker``.

A case that had started on a worker that then left lost that run, and Dask ran it again;
a case only waiting on such a worker was moved to another one and ran once.
"""
from __future__ import annotations

from dataclasses import dataclass, field

#: The event topic of the tasks' start announcements.
STARTED = "ntk-harness-task-started"


@dataclass
class Attempts:
    """One case on the cluster: the workers it started on, and those that went away while it
    was assigned to them (``died``: the departures that were not clean)."""

    started_on: list[str] = field(default_factory=list)
    lost_on: list[str] = field(default_factory=list)
    died: int = 0

    @property
    def lost_runs(self) -> list[str]:
        """The departed workers it had started on: each is one run lost."""
        return [worker for worker in self.lost_on if worker in self.started_on]

    @property
    def retries(self) -> int:
        return max(len(self.started_on) - 1, 0)


def attempts(started, removed, keys: dict[str, str]) -> dict[str, Attempts]:
    """``{nodeid: Attempts}`` of the cases whose worker went away or that started more than
    once, from the :data:`STARTED` events ``started`` and the ``"all"`` events ``removed``
    (``client.get_events``: (time, message) pairs), for the tasks of ``keys`` (key -> nodeid)."""
    every: dict[str, Attempts] = {}
    for _, message in started:
        key = message.get("key") if isinstance(message, dict) else None
        if key in keys:
            every.setdefault(key, Attempts()).started_on.append(str(message.get("worker", "?")))
    departed = set()
    for _, message in removed:
        if not isinstance(message, dict) or message.get("action") != "remove-worker":
            continue
        for key in message.get("processing-tasks") or ():
            if key in keys:
                item = every.setdefault(key, Attempts())
                item.lost_on.append(str(message.get("worker", "?")))
                item.died += not message.get("expected")
                departed.add(key)
    return {keys[key]: item for key, item in every.items() if key in departed or item.retries}


def describe(nodeid: str, item: Attempts) -> str:
    """One line: the case, how many times it ran, and why."""
    how = "died" if item.died == len(item.lost_on) else "went away"
    lost, moved = item.lost_runs, [w for w in item.lost_on if w not in item.started_on]
    parts = []
    if lost:
        parts.append(f"Dask ran it again after {_workers(lost)} {how} while running it")
    if moved:
        parts.append(f"moved to another worker after {_workers(moved)} {how} before it started there")
    if not item.lost_on:
        parts.append("no departure of its worker on record")
    runs = len(item.started_on)
    return f"{nodeid}: run {'once' if runs == 1 else f'{runs} times'} ({'; '.join(parts)})"


def _workers(addresses: list[str]) -> str:
    return ("worker " if len(addresses) == 1 else "workers ") + ", ".join(addresses)
