"""Shared by the guide's example scripts (not an example itself): copy what each step of a script
prints into ``OUT/<step>.txt``, which the user guide includes next to the step's code.

Usage: ``sections = guide_sections(OUT)`` once, then ``sections.start("step")`` before each step;
everything is still printed as usual.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TextIO


class Sections:
    """A stdout that prints as usual and also writes into ``out/<current step>.txt``."""

    def __init__(self, stream: TextIO, out: Path) -> None:
        self.stream, self.out, self.file = stream, out, None

    def start(self, name: str) -> None:
        if self.file is not None:
            self.file.close()
        self.file = open(self.out / f"{name}.txt", "w", encoding="utf-8")

    def write(self, text: str) -> int:
        if self.file is not None:
            self.file.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()


def guide_sections(out: Path) -> Sections:
    """Install a :class:`Sections` writing into ``out`` as ``sys.stdout`` and return it."""
    sections = Sections(sys.stdout, out)
    sys.stdout = sections
    return sections
