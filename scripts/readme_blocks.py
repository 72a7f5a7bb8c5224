"""Refresh the generated blocks of a markdown file from the files they name.

A block is the text between ``<!-- BEGIN path -->`` and ``<!-- END path -->``; it is replaced by
the content of ``path`` (relative to the repository root). The README's Results tables are such
blocks: ``bash scripts/cpu_table.sh collect`` writes them, tests/test_docs.py checks them.

    python scripts/readme_blocks.py [README.md]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"(<!-- BEGIN (\S+) -->\n)(.*?)(<!-- END \2 -->)", re.DOTALL)


def blocks(text: str) -> list[tuple[str, str]]:
    """(path, content) of every generated block in ``text``."""
    return [(m.group(2), m.group(3)) for m in BLOCK.finditer(text)]


def refresh(text: str, root: Path = ROOT) -> str:
    """``text`` with every block's content replaced by its file's content."""

    def fill(m: re.Match[str]) -> str:
        content = (root / m.group(2)).read_text()
        return m.group(1) + content + ("" if content.endswith("\n") else "\n") + m.group(4)

    return BLOCK.sub(fill, text)


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "README.md"
    old = path.read_text()
    new = refresh(old)
    if new != old:
        path.write_text(new)
    print(
        f"{path}: {len(blocks(new))} generated blocks, {'updated' if new != old else 'unchanged'}"
    )
