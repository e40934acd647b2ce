"""What loading a program fails with, whichever loader (CO-RE object or bcc source) ran: every
module of exporter/load/ imports these, and this module imports none of them."""
from __future__ import annotations

from core.problems import Problem


class LoadError(Exception):
    """A program could not be loaded or attached; `where` is the file (and field) to blame."""

    def __init__(self, where: str, message: str, log_tail: str = "", variants: tuple = ()):
        self.where, self.message, self.log_tail = where, message, log_tail
        self.variants = variants     # Verdicts, when the program has [[variants]]
        super().__init__(f"{where}: {message}" + (f"\n{log_tail}" if log_tail else ""))

    @classmethod
    def from_problems(cls, problems: list[Problem]) -> "LoadError":
        first = problems[0]
        where = f"{first.file}: {first.field}" if first.field else first.file
        rest = "".join(f"\n{p}" for p in problems[1:])
        return cls(where, first.message + rest)


class NotApplicableOnHost(LoadError):
    """The program cannot run on this host by design (a bcc-source program where bcc finds no
    kernel headers): reported as state not_applicable, not as a failure."""
