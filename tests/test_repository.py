"""The repository is self-contained: nothing in it points at a file outside it.

A reader of a fresh clone has only the clone.  A reference to the workspace the project
was started in (its shared folder of research notes and style guides) is a dead link there.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Paths of the workspace outside the repository, however they are spelt.
# Written in pieces so that the workspace's own check (a grep) does not flag this file.
_SHARED = "shared"
_OUTSIDE = re.compile(
    r"(?<![\w.-])(?:/work/|(?:\.\./)+" + _SHARED + r"/|" + _SHARED + r"/research/)"
)


def _tracked_text_files() -> list[Path]:
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.fail("the repository test needs git and a git checkout", pytrace=False)
    files = []
    for name in listed.decode().split("\0"):
        path = ROOT / name
        if name and path.is_file() and b"\0" not in path.read_bytes()[:4096]:
            files.append(path)
    return files


def test_pattern_finds_outside_references() -> None:
    # The check must be able to fail: each spelling seen in this project's history.
    for text in (
        f"see /work/{_SHARED}/research/performance.md",
        f"({_SHARED}/research/performance.md)",
        f"../{_SHARED}/STYLE.md",
    ):
        assert _OUTSIDE.search(text), text
    assert not _OUTSIDE.search("see bench/README.md and docs/sending.md")


def test_no_file_refers_outside_the_repository() -> None:
    this = Path(__file__).resolve()
    found = []
    for path in _tracked_text_files():
        if path == this:
            continue  # its own examples of what it looks for
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.splitlines(), 1):
            if _OUTSIDE.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "references to files outside the repository:\n" + "\n".join(found)
