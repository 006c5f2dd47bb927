"""The shared subword vocabulary: SentencePiece trained on the training side of the parallel corpus.

Input is lower-cased (as in the reference model). The tokenizer is identified by the SHA-256 of its
serialised model, and every checkpoint records that fingerprint, so a model is never paired with a
tokenizer it was not trained with.
"""

from __future__ import annotations

import hashlib
import io
import random
from pathlib import Path

import sentencepiece as spm

from mosecrot.ems.config import EMSTokenizerConfig
from mosecrot.errors import InputError

PAD_ID, UNK_ID = 0, 1


class EMSTokenizer:
    """Lower-casing SentencePiece encoder with a fixed pad (0) and unk (1) id."""

    def __init__(self, model_bytes: bytes) -> None:
        self.model_bytes = bytes(model_bytes)
        self.sp = spm.SentencePieceProcessor(model_proto=self.model_bytes)
        self.fingerprint = hashlib.sha256(self.model_bytes).hexdigest()[:16]
        self.pad_id, self.unk_id = PAD_ID, UNK_ID

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, texts: list[str], max_length: int) -> list[list[int]]:
        """Token ids, truncated to ``max_length``; a text with no token becomes ``[unk]`` (never empty,
        so mean pooling always has a token to average)."""
        ids = self.sp.encode([t.lower() for t in texts])
        return [row[:max_length] or [UNK_ID] for row in ids]

    def save(self, path: str | Path) -> None:
        Path(path).write_bytes(self.model_bytes)

    @classmethod
    def load(cls, path: str | Path) -> EMSTokenizer:
        path = Path(path)
        if not path.is_file():
            raise InputError("tokenizer model not found", path=path)
        try:
            return cls(path.read_bytes())
        except (RuntimeError, OSError) as err:
            raise InputError(f"not a SentencePiece model ({err})", path=path) from err


def tokenizer_sentences(sentences: list[str], limit: int, seed: int) -> list[str]:
    """Lower-cased training sentences, a seeded sample of at most ``limit`` (order-independent result)."""
    unique = sorted({s.lower() for s in sentences if s.strip()})
    if len(unique) > limit:
        unique = random.Random(seed).sample(unique, limit)
    return unique


def train_tokenizer(sentences: list[str], cfg: EMSTokenizerConfig, seed: int = 0) -> EMSTokenizer:
    """Train SentencePiece in memory; a vocabulary size the corpus cannot support is an `InputError`."""
    corpus = tokenizer_sentences(sentences, cfg.max_sentences, seed)
    if not corpus:
        raise InputError("no text to train the tokenizer on", key="languages")
    buf = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(corpus),
            model_writer=buf,
            vocab_size=cfg.vocab_size,
            model_type=cfg.model_type,
            character_coverage=cfg.character_coverage,
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            bos_id=-1,
            eos_id=-1,
            normalization_rule_name="nmt_nfkc",
            input_sentence_size=len(corpus),
            shuffle_input_sentence=False,
            num_threads=2,
            minloglevel=2,
        )
    except RuntimeError as err:
        text = str(err)
        if "ocabulary size" in text:
            detail = text.split("]")[-1].strip()
            raise InputError(
                f"vocabulary size {cfg.vocab_size} is impossible for this corpus: {detail}",
                key="tokenizer.vocab_size",
                expected="a size the corpus supports (more data or languages, or a smaller size)",
            ) from err
        raise
    return EMSTokenizer(buf.getvalue())
