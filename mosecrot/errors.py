"""One error type for bad input, so callers (and the CLI) can show it without a stack trace."""

from __future__ import annotations

from pathlib import Path


class InputError(ValueError):
    """Bad user input: names where (file, line, key) and what was expected.

    Raised before any expensive work starts. The CLI prints `str(err)` and exits with status 2.
    """

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        key: str | None = None,
        expected: str | None = None,
    ) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        self.line = line
        self.key = key
        self.expected = expected
        where = []
        if self.path is not None:
            where.append(self.path + (f":{line}" if line is not None else ""))
        elif line is not None:
            where.append(f"line {line}")
        if key is not None:
            where.append(f"key '{key}'")
        text = (", ".join(where) + ": " if where else "") + message
        if expected:
            text += f" (expected {expected})"
        super().__init__(text)


def rebase_key(err: InputError, old: str, new: str) -> InputError:
    """The same error with its key moved from under ``old`` to under ``new`` (where it was loaded)."""
    key = err.key
    if key is not None and (key == old or key.startswith(old + ".")):
        key = new + key[len(old) :]
    return InputError(err.message, path=err.path, line=err.line, key=key, expected=err.expected)


def unknown_choice(kind: str, value: object, valid: list[str] | tuple[str, ...], **where) -> InputError:
    """Uniform message for an unknown registry name: it always lists the valid ones."""
    return InputError(f"unknown {kind} {value!r}", expected="one of: " + ", ".join(sorted(valid)), **where)


def lookup(registry: dict, kind: str, name: str, key: str):
    """``registry[name]``, or an error that lists the valid names (every registry looks up this way)."""
    if name not in registry:
        raise unknown_choice(kind, name, list(registry), key=key)
    return registry[name]
