"""Every relative link in README.md, docs/ and reports/ resolves to a file tracked by git.

A report that is not committed does not exist for a reader: a link to an ignored or untracked
file passes on the author's machine and is dead on a fresh clone. Links are markdown links and
images ``[text](target)``; web addresses, mail links and in-page anchors are not files; a
``#fragment`` after a path is dropped. Skipped outside a git checkout.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def _tracked() -> set[str] | None:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return {name for name in out.decode().split("\0") if name}


def _pages(tracked: set[str]) -> list[str]:
    return sorted(p for p in tracked if p.endswith(".md") and (p == "README.md" or p.startswith(("docs/", "reports/"))))


def _links(page: str) -> list[str]:
    text = (ROOT / page).read_text(encoding="utf-8")
    text = re.sub(r"```.*?```", "", text, flags=re.S)      # code blocks hold examples, not links
    return [target for target in LINK.findall(text)
            if not re.match(r"^[a-z][a-z0-9+.-]*:", target) and not target.startswith("#")]


def test_every_relative_link_resolves_to_a_tracked_file():
    tracked = _tracked()
    if tracked is None:
        pytest.skip("not a git checkout: which files are tracked is unknown")
    tracked_dirs = {str(Path(p).parent) for p in tracked} | {str(q) for p in tracked for q in Path(p).parents}
    checked, dead = 0, []
    for page in _pages(tracked):
        for target in _links(page):
            path = (Path(page).parent / target.split("#", 1)[0]).as_posix()
            resolved = Path(path)
            parts = []
            for part in resolved.parts:   # normalize "a/../b" without touching the file system
                if part == "..":
                    parts = parts[:-1]
                elif part != ".":
                    parts.append(part)
            name = "/".join(parts)
            checked += 1
            if name not in tracked and name.rstrip("/") not in tracked_dirs:
                dead.append(f"{page}: {target}")
    assert checked > 20, f"only {checked} links found: the pattern is wrong"
    assert not dead, "links to files not tracked by git:\n" + "\n".join(dead)
