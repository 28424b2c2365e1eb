"""The pytest plugin's state, kept in ``config.stash`` under these keys (as pytest's own plugins do).

Nothing is set on the config object itself; what the plugin registers in ``pytest_configure``
it unregisters in ``pytest_unconfigure`` (:data:`HELPERS`), like pytest's junitxml.
"""
from __future__ import annotations

import pytest

#: the session's run options (harness.options.RunOptions)
OPTIONS = pytest.StashKey[object]()
#: --ntk-shard as (k, n)
SHARD = pytest.StashKey[tuple]()
#: whether items carry their records for a report (set on xdist workers too)
REPORTING = pytest.StashKey[bool]()
#: the pytest Session, for the report's "was the run stopped early" question
SESSION = pytest.StashKey[object]()
#: the helper plugin objects this plugin registered, unregistered at the end
HELPERS = pytest.StashKey[list]()


def register_helper(config, plugin, name: str) -> None:
    """Register ``plugin`` under ``name`` and remember it for :func:`unregister_helpers`."""
    config.pluginmanager.register(plugin, name)
    config.stash.setdefault(HELPERS, []).append(plugin)


def unregister_helpers(config) -> None:
    for plugin in config.stash.get(HELPERS, []):
        if config.pluginmanager.is_registered(plugin):
            config.pluginmanager.unregister(plugin)
    config.stash[HELPERS] = []
