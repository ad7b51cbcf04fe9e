"""The documentation: a short README, links that resolve, nothing pointing outside the
repository, and the model-zoo table of docs/zoo.md as the cards generate it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from conftest import REPO

README_LIMIT = 10_240  # bytes: the README is the front door, the manual is in docs/

# [text](target) and ![alt](target), with an optional "title"; code spans and fenced blocks
# are removed first, so `a[i](x)` in code is no link.
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1[^\n]*$", re.MULTILINE | re.DOTALL)
INDENTED_CODE = re.compile(r"(?:^(?: {4}|\t).*\n?)+", re.MULTILINE)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)


def _markdown_files() -> list[Path]:
    files = [REPO / "README.md", REPO / "CONTRIBUTING.md"]
    files += sorted((REPO / "docs").glob("*.md"))
    files += sorted((REPO / "apps").glob("*/README.md"))
    return files


def _prose(text: str) -> str:
    text = FENCE.sub("", text)
    text = INDENTED_CODE.sub("", text)
    return CODE_SPAN.sub("", text)


def relative_links(path: Path) -> list[str]:
    """The link targets of a markdown file that point into the repository (no URL scheme,
    no bare #anchor)."""
    targets = LINK.findall(_prose(path.read_text(encoding="utf-8")))
    return [
        t
        for t in targets
        if not re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", t)  # http:, https:, mailto: ...
        and not t.startswith("#")
    ]


def test_readme_is_a_front_door():
    size = (REPO / "README.md").stat().st_size
    assert size <= README_LIMIT, (
        f"README.md is {size:,} bytes, over the {README_LIMIT:,}-byte limit: move detail "
        "into a page of docs/ and link to it"
    )


def test_the_pages_exist():
    for name in ("README.md", "CONTRIBUTING.md", "docs/zoo.md", "docs/benchmarks.md"):
        assert (REPO / name).is_file(), f"{name} is missing"


@pytest.mark.parametrize("path", _markdown_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(path):
    broken = []
    for target in relative_links(path):
        file_part = target.split("#", 1)[0].split("?", 1)[0]
        resolved = (path.parent / file_part).resolve()
        if not resolved.is_relative_to(REPO):
            broken.append(f"{target} (points outside the repository)")
        elif not resolved.is_file():
            broken.append(f"{target} (no file {resolved.relative_to(REPO)})")
    rel = path.relative_to(REPO)
    assert not broken, f"{rel}: broken links:\n  " + "\n  ".join(broken)


def test_the_link_finder_finds_links_and_skips_code(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "See [the trainer](docs/trainer.md#two-stacks), ![a plot](images/a.png),\n"
        "[a site](https://example.org/x.md), [here](#anchor) and `[not](code.md)`.\n"
        "```python\nx = a[i](y.md)\n```\n"
    )
    assert relative_links(page) == ["docs/trainer.md#two-stacks", "images/a.png"]


def _tracked_files() -> list[str]:
    result = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, capture_output=True, timeout=60, check=False
    )
    if result.returncode != 0:
        pytest.skip(f"not a git checkout ({result.stderr.decode(errors='replace').strip()})")
    return [name for name in result.stdout.decode().split("\0") if name]


def test_no_tracked_file_points_outside_the_repository():
    needle = "../" + "shared"  # spelt in two pieces, so this file does not match itself
    offenders = []
    for name in _tracked_files():
        path = REPO / name
        if not path.is_file():  # deleted in the work tree, not yet committed
            continue
        data = path.read_bytes()
        if needle.encode() in data:
            lines = [
                n
                for n, line in enumerate(data.decode("utf-8", errors="replace").splitlines(), 1)
                if needle in line
            ]
            offenders.append(f"{name} (line {', '.join(map(str, lines))})")
    assert not offenders, f"files that refer to {needle!r}, outside the repository:\n  " + (
        "\n  ".join(offenders)
    )


def _zoo_table(text: str) -> str:
    lines = text.splitlines()
    header = "| name | task | data | metric | size |"
    assert header in lines, f"docs/zoo.md has no model-zoo table (a line {header!r})"
    start = lines.index(header)
    end = start
    while end < len(lines) and lines[end].startswith("|"):
        end += 1
    return "\n".join(lines[start:end])


def test_zoo_table_is_generated_from_the_cards():
    from sparkzoo.models import cli

    page = REPO / "docs" / "zoo.md"
    assert _zoo_table(page.read_text(encoding="utf-8")) == cli.markdown_table(), (
        "docs/zoo.md: the model-zoo table differs from the cards; regenerate it with "
        "`python -m sparkzoo.models.cli --markdown` and paste it over the table"
    )
