"""Languages: one table mapping the codes each resource uses (ISO 639-1 / 639-3, SIB-200 folder,
MUSE file suffix, FreeDict code) and the tokeniser family that splits its text into words.

Keys are ISO 639-1 codes where one exists ("de"); users may also write ISO 639-3 ("deu") or the
SIB-200 folder name ("deu_Latn"): `get_language` normalises all three.
"""

from __future__ import annotations

from dataclasses import dataclass

from mosecrot.errors import unknown_choice


@dataclass(frozen=True)
class Language:
    code: str  # ISO 639-1 (or 639-3 where no 639-1 exists)
    iso3: str  # ISO 639-3
    name: str
    sib200: str  # folder name in the SIB-200 layout, e.g. deu_Latn
    tokenizer: str  # key of mosecrot.text.tokenize.TOKENIZERS
    freedict: str | None = None  # FreeDict code (eng-XXX) where Debian ships a dictionary


_LANGS = [
    Language("en", "eng", "English", "eng_Latn", "spaced"),
    Language("de", "deu", "German", "deu_Latn", "spaced", "deu"),
    Language("es", "spa", "Spanish", "spa_Latn", "spaced", "spa"),
    Language("fr", "fra", "French", "fra_Latn", "spaced", "fra"),
    Language("it", "ita", "Italian", "ita_Latn", "spaced", "ita"),
    Language("pt", "por", "Portuguese", "por_Latn", "spaced", "por"),
    Language("ro", "ron", "Romanian", "ron_Latn", "spaced", None),  # Debian's "rom" is Romany, not Romanian
    Language("pl", "pol", "Polish", "pol_Latn", "spaced", "pol"),
    Language("ru", "rus", "Russian", "rus_Cyrl", "spaced", "rus"),
    Language("uk", "ukr", "Ukrainian", "ukr_Cyrl", "spaced", None),  # no eng-ukr FreeDict package
    Language("tr", "tur", "Turkish", "tur_Latn", "spaced", "tur"),
    Language("id", "ind", "Indonesian", "ind_Latn", "spaced"),
    Language("vi", "vie", "Vietnamese", "vie_Latn", "spaced"),
    Language("tl", "tgl", "Tagalog", "tgl_Latn", "spaced"),
    Language("sw", "swh", "Swahili", "swh_Latn", "spaced", "swh"),
    Language("hi", "hin", "Hindi", "hin_Deva", "spaced", "hin"),
    Language("bn", "ben", "Bengali", "ben_Beng", "spaced"),
    Language("ar", "arb", "Arabic", "arb_Arab", "spaced"),
    Language("fa", "pes", "Persian", "pes_Arab", "spaced"),
    Language("ko", "kor", "Korean", "kor_Hang", "spaced"),
    Language("zh", "zho", "Chinese (simplified)", "zho_Hans", "chinese"),
    Language("ja", "jpn", "Japanese", "jpn_Jpan", "japanese", "jpn"),
]

LANGUAGES: dict[str, Language] = {lang.code: lang for lang in _LANGS}
_ALIASES: dict[str, str] = {}
for _lang in _LANGS:
    for _alias in (_lang.code, _lang.iso3, _lang.sib200, _lang.sib200.lower()):
        _ALIASES[_alias] = _lang.code
_ALIASES.update({"ara": "ar", "swa": "sw", "fas": "fa", "cmn": "zh", "zho_Hant": "zh"})


def get_language(code: str, **where) -> Language:
    """Look a language up by ISO 639-1, ISO 639-3 or SIB-200 code; unknown codes list the valid ones."""
    key = _ALIASES.get(code) or _ALIASES.get(str(code).lower())
    if key is None:
        raise unknown_choice("language code", code, list(LANGUAGES), **where)
    return LANGUAGES[key]
