"""Which cases Dask ran again because their worker died, from the scheduler's event logs.

Two logs, both kept by the scheduler (so complete whichever process noticed what):

- every task announces its start on the topic :data:`STARTED` (``{"key", "worker"}``)
  before it does anything else, through a synchronous call to the scheduler
  (``Client.log_event`` from inside the task): a start is on record even when the worker
  dies a moment later;
- when a worker leaves the cluster the scheduler logs, on its ``"all"`` topic,
  ``{"action": "remove-worker", "worker": ADDRESS, "processing-tasks": KEYS,
  "lost-computed-tasks": KEYS, "expected": BOOL}`` and reschedules the tasks it had given
  that worker (running, or waiting behind the running one) and those whose result only
  that worker held (finished, not yet fetched by the client). ``expected`` is False when
  the worker died (killed, crashed, out of memory); past ``distributed.scheduler.allowed-failures``
  deaths (3 unless configured) Dask gives up on a task with ``KilledWorker``.

A case running on a worker that went away, or whose result went with it, ran again; a
case only waiting on such a worker was moved to another one and ran once.
"""
from __future__ import annotations

from dataclasses import dataclass, field

#: The event topic of the tasks' start announcements.
STARTED = "ntk-harness-task-started"


@dataclass
class Attempts:
    """One case on the cluster: the workers it started on, and what the departed workers
    took with them: ``(worker, what, died)`` with ``what`` one of :data:`LOST`."""

    started_on: list[str] = field(default_factory=list)
    lost: list[tuple[str, str, bool]] = field(default_factory=list)

    @property
    def retries(self) -> int:
        return max(len(self.started_on) - 1, 0)


#: What a departed worker took: a run in progress, a result not yet fetched, or a place in its queue.
LOST = {"running": "while running it", "result": "holding its result", "waiting": "before it started there"}


def attempts(started, removed, keys: dict[str, str]) -> dict[str, Attempts]:
    """``{nodeid: Attempts}`` of the cases whose worker went away or that started more than
    once, from the :data:`STARTED` events ``started`` and the ``"all"`` events ``removed``
    (``client.get_events``: (time, message) pairs), for the tasks of ``keys`` (key -> nodeid)."""
    every: dict[str, Attempts] = {}
    for _, message in started:
        key = message.get("key") if isinstance(message, dict) else None
        if key in keys:
            every.setdefault(key, Attempts()).started_on.append(str(message.get("worker", "?")))
    for _, message in removed:
        if not isinstance(message, dict) or message.get("action") != "remove-worker":
            continue
        worker, died = str(message.get("worker", "?")), not message.get("expected")
        for field_name, held in (("processing-tasks", "running"), ("lost-computed-tasks", "result")):
            for key in message.get(field_name) or ():
                if key in keys:
                    item = every.setdefault(key, Attempts())
                    what = held if held == "result" or worker in item.started_on else "waiting"
                    item.lost.append((worker, what, died))
    return {keys[key]: item for key, item in every.items() if item.lost or item.retries}


def describe(nodeid: str, item: Attempts) -> str:
    """One line: the case, how many times it ran, and why."""
    parts = []
    for worker, what, died in item.lost:
        event = f"worker {worker} {'died' if died else 'left the cluster'} {LOST[what]}"
        parts.append(f"moved to another worker after {event}" if what == "waiting" else f"run again after {event}")
    if not item.lost:
        parts.append("no departure of its worker on record")
    runs = len(item.started_on)
    return f"{nodeid}: run {'once' if runs == 1 else f'{runs} times'} by Dask ({'; '.join(parts)})"
