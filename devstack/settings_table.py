"""Render the settings table the README shows: `python -m devstack.settings_table` (a test keeps it current)."""

from __future__ import annotations

from pathlib import Path

from devstack.readme import replace_section
from jobstream.settings import PROJECT_ROOT, Settings

START = "<!-- settings:start -->"
END = "<!-- settings:end -->"


def _default(value: object) -> str:
    if isinstance(value, Path):
        text = str(value)
        text = text.replace(str(PROJECT_ROOT), "<checkout>").replace(str(Path.home()), "~")
        return f"`{text}`"
    if value is None or value == "":
        return "(empty)"
    return f"`{value}`"


def render() -> str:
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        description = (field.description or "").replace("|", "\\|")
        rows.append(f"| `JOBSTREAM_{name.upper()}` | {_default(field.default)} | {description} |")
    return "\n".join(rows)


def update(readme: Path = PROJECT_ROOT / "README.md") -> bool:
    """Rewrite the table between the markers; True if the file changed."""
    return replace_section(START, END, render(), readme)


if __name__ == "__main__":
    print("README.md updated" if update() else "README.md already current")
