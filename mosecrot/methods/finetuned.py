"""Fine-tuned methods that read target text through the model's own tokenizer.

- ``own_tokenizer``: the English model reads target text through its English WordPiece: the floor every
  transfer method must beat;
- ``multilingual_plm``: a multilingual encoder (``model:``: ``multilingual-e5-small`` offline, a hub id or a
  local path) fine-tuned on English: the paper's mBERT row.
"""

from __future__ import annotations

from dataclasses import dataclass

from mosecrot.errors import InputError
from mosecrot.methods.context import RunContext, cached_encode
from mosecrot.methods.spec import MethodSpec
from mosecrot.plm import load_tokenizer


@dataclass
class ModelOptions:
    model: str | None = None  # hub id or local path; null: the experiment's model


@dataclass
class MultilingualOptions(ModelOptions):
    def validate(self, prefix: str = "methods") -> None:
        if not self.model:
            raise InputError(
                "the multilingual_plm method needs a model",
                key=f"{prefix}.model",
                expected="multilingual-e5-small (offline), a hub id (bert-base-multilingual-cased) or a local path",
            )


def check_model(options: ModelOptions) -> None:
    """The model's tokenizer loads (a misspelt hub id or path fails before any data is prepared)."""
    if options.model:
        load_tokenizer(options.model)


def run_own_tokenizer(ctx: RunContext, options: ModelOptions, seed: int) -> dict[str, float]:
    """Fine-tune the model on English, then score it on target text read through its own tokenizer."""
    model_name = options.model or ctx.config.model
    tokenizer = load_tokenizer(model_name)
    model, ft = ctx.english_model(seed, model_name)
    metrics = ctx.english_metrics(model, model_name, tokenizer, ft)
    for lang in ctx.targets:
        metrics.update(
            ctx.evaluate_language(
                model,
                lang,
                lambda t: cached_encode(ctx, model_name, tokenizer, t, ctx.training.max_length),
                tokenizer.pad_token_id,
            )
        )
    return metrics


SPECS = (
    MethodSpec(
        "own_tokenizer",
        run_own_tokenizer,
        ModelOptions,
        preflight=check_model,
        summary="the English model reads target text through its own tokenizer: the floor",
    ),
    MethodSpec(
        "multilingual_plm",
        run_own_tokenizer,
        MultilingualOptions,
        preflight=check_model,
        summary="a multilingual encoder (model: hub id or path) fine-tuned on English",
    ),
)
