"""A Bible source held in memory, for tests that need a few verses in a few editions without a Bible file."""

from __future__ import annotations

from mosecrot.text.bible import Edition


class DictSource:
    """A Bible source held in memory: {edition: (language, {verse_id: text})}."""

    def __init__(self, name: str, editions: dict[str, tuple[str, dict[str, str]]]) -> None:
        self.name = name
        self._editions = editions

    def editions(self) -> dict[str, Edition]:
        return {code: Edition(code, lang, code) for code, (lang, _) in self._editions.items()}

    def verses(self, edition: str) -> dict[str, str]:
        return self._editions[edition][1]
