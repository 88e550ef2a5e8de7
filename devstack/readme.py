"""Generated sections of README.md: the text between a pair of HTML comment markers is owned by a command."""

from __future__ import annotations

from pathlib import Path

from jobstream.settings import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"


def replace_section(start: str, end: str, body: str, readme: Path = README) -> bool:
    """Put `body` between the `start` and `end` markers; True if the file changed.

    ValueError if the markers are missing: a section that vanished must not be silently re-added elsewhere.
    """
    text = readme.read_text()
    if start not in text or end not in text:
        raise ValueError(f"{readme} has no {start} ... {end} section")
    head, _, rest = text.partition(start)
    _, _, tail = rest.partition(end)
    updated = f"{head}{start}\n{body}\n{end}{tail}"
    if updated == text:
        return False
    readme.write_text(updated)
    return True
