"""Every example in the documentation runs, or says why it cannot.

Each page (``docs/*.md`` and ``README.md``) runs in a child process
(``tests/docs/run_examples.py``, whose docstring gives the rules): its ``python`` blocks
in order in one namespace, its ``sh`` blocks as ``smtpx`` commands, against embedded
servers that stand in for ``mail.example.org`` and the other placeholder hosts. A block
that cannot run has ``<!-- not-run: REASON -->`` on the line before its fence.

The site's own rules are checked here too: every page is in the nav of ``mkdocs.yml``
and every public name has an entry in the reference.
"""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
RUNNER = HERE / "run_examples.py"
PAGE_TIMEOUT = 120  # seconds: a page whose examples hang fails instead

sys.path.insert(0, str(HERE))
import run_examples  # noqa: E402

PAGES = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]


def run_runner(*pages: Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-bb", "-W", "error", str(RUNNER), *map(str, pages)]
    return subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=PAGE_TIMEOUT, check=False
    )


def runnable(page: Path) -> list[run_examples.Block]:
    return [block for block in run_examples.parse(page) if block.runnable_kind]


def test_there_are_examples_to_run() -> None:
    blocks = [block for page in PAGES for block in runnable(page)]
    ran = [block for block in blocks if block.not_run is None]
    marked = [block for block in blocks if block.not_run is not None]
    print(f"{len(ran)} examples run, {len(marked)} marked not-run")
    # Most examples run: a wave of not-run marks would hollow this test out.
    assert len(ran) >= 15
    assert len(marked) < len(ran)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_page_examples_run(page: Path) -> None:
    if not any(block.not_run is None for block in runnable(page)):
        # Still parsed: a malformed mark or a stray shell command fails here.
        for block in runnable(page):
            if block.lang in run_examples.SHELL_LANGS and block.not_run is None:
                run_examples.shell_commands(block)
        return
    done = run_runner(page)
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
    assert "blocks ran" in done.stdout


# -- the harness can fail --------------------------------------------------------------


def write_page(tmp_path: Path, text: str) -> Path:
    page = tmp_path / "page.md"
    page.write_text(textwrap.dedent(text), encoding="utf-8")
    return page


def test_a_failing_example_fails(tmp_path: Path) -> None:
    page = write_page(
        tmp_path,
        """
        ```python
        import smtpx

        with smtpx.SMTP("mail.example.org", 587) as smtp:
            smtp.starttls()
            smtp.login("alice", "wrong")
        ```
        """,
    )
    done = run_runner(page)
    assert done.returncode != 0
    assert "SMTPAuthenticationError" in done.stderr


def test_examples_share_a_namespace_and_reach_the_servers(tmp_path: Path) -> None:
    page = write_page(
        tmp_path,
        """
        ```python
        import smtpx
        ```

        ```python
        result = smtpx.send(message, url="smtps://alice:s3cret@mail.example.org")
        assert result.accepted
        ```

        ```py
        async def test_async_send():
            result = await smtpx.asend(message, url="smtp+starttls://alice:s3cret@mail.example.org")
            assert result.accepted
        ```
        """,
    )
    done = run_runner(page)
    assert done.returncode == 0, done.stderr
    assert "calling test_async_send()" in done.stdout
    assert "3 blocks ran, 2 messages received" in done.stdout


def test_an_unknown_host_never_reaches_the_network(tmp_path: Path) -> None:
    page = write_page(
        tmp_path,
        """
        ```python
        import smtpx
        smtpx.SMTP("mail.example.com", 25)
        ```
        """,
    )
    done = run_runner(page)
    assert done.returncode != 0
    assert "is not a placeholder of the docs harness" in done.stderr


def test_shell_blocks_run_smtpx_commands(tmp_path: Path) -> None:
    ok = write_page(tmp_path, "```sh\n$ smtpx --version\npython -m smtpx demo\n```\n")
    done = run_runner(ok)
    assert done.returncode == 0, done.stderr
    assert "message as received by the server" in done.stdout

    failing = write_page(tmp_path, "```sh\nsmtpx no-such-command\n```\n")
    assert run_runner(failing).returncode != 0

    other = write_page(tmp_path, "```sh\npip install smtpx\n```\n")
    done = run_runner(other)
    assert done.returncode == 2
    assert "'pip install smtpx' is not an smtpx command" in done.stderr


def test_a_marked_block_does_not_run(tmp_path: Path) -> None:
    page = write_page(
        tmp_path,
        """
        <!-- not-run: raises on purpose -->
        ```python
        raise RuntimeError("run")
        ```
        """,
    )
    done = run_runner(page)
    assert done.returncode == 0, done.stderr
    assert "not run: raises on purpose" in done.stdout


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<!-- not-run: -->\n```python\npass\n```\n", "must give its reason"),
        ("<!-- not-run: why -->\n\ntext\n```python\npass\n```\n", "right before a fence"),
        ("<!-- not-run: why -->\n```text\nplain\n```\n", "never runs"),
        ("text\n<!-- not-run: why -->\n", "no block after it"),
        ("```python\npass\n", "never ends"),
    ],
)
def test_malformed_marks_are_errors(tmp_path: Path, text: str, message: str) -> None:
    page = write_page(tmp_path, text)
    with pytest.raises(run_examples.PageError, match=message):
        run_examples.parse(page)


# -- the site --------------------------------------------------------------------------


def test_every_page_is_in_the_nav() -> None:
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    in_nav = set(re.findall(r"^\s*-\s*(?:[^:\n]+:\s*)?(\S+\.md)\s*$", config, re.MULTILINE))
    pages = {str(page.relative_to(ROOT / "docs")) for page in ROOT.joinpath("docs").rglob("*.md")}
    assert pages - in_nav == set(), "add these pages to nav in mkdocs.yml"
    assert in_nav - pages == set(), "nav names pages that do not exist"


@pytest.mark.parametrize("module_name", ["smtpx", "smtpx.auth", "smtpx.testing", "smtpx.outbox"])
def test_every_public_name_is_in_the_reference(module_name: str) -> None:
    reference = "\n".join(
        page.read_text(encoding="utf-8") for page in (ROOT / "docs" / "reference").glob("*.md")
    )
    if re.search(rf"^::: {re.escape(module_name)}\s*$", reference, re.MULTILINE):
        return  # the whole module's __all__ is rendered
    module = importlib.import_module(module_name)
    missing = [
        name
        for name in module.__all__
        if not re.search(rf"(^::: |`){re.escape(module_name)}\.{name}\b", reference, re.MULTILINE)
    ]
    assert missing == [], f"names of {module_name} missing from docs/reference/"
