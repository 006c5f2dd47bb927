"""Costs of the issue-#21 transfer methods: what is paid once per sweep (cached on disk) and per trial.

On a real experiment (default ``taxi1500``, languages de and sw), with an empty cache directory for the
method-level entries so every one-time cost is really paid:

- once: English static vectors (fastText on the English Bible minus the evaluation verses), an English
  vector for every PLM token, each language's alignment (Procrustes + self-learning), and re-learned rows
  per language (through the pretrained encoder; examples/s and wall time);
- once: anchors grown beyond the dictionary (identical strings and self-learned mutual CSLS pairs, per
  language; ``anchors.grow``);
- per trial: the anchors chosen again with the grown pairs from the disk cache (a method's own ``anchors:``),
  and the target rows of one language's evaluation vocabulary, aligned neighbours vs plain RR F_t
  (softmax, k 10) - the work a trial does after its English fine-tuning, which both share.

Writes JSON (default benchmarks/results/bench_transfer.json) and prints it.

    python benchmarks/bench_transfer.py [--experiment taxi1500] [--languages de,sw] [--relearn-verses 1000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "bench_transfer.json"


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--experiment", default="taxi1500")
    p.add_argument("--languages", default="de,sw")
    p.add_argument("--relearn-verses", type=int, default=1000)
    p.add_argument("--repeats", type=int, default=3, help="per-trial timings: best of this many")
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args(argv)

    import torch

    from mosecrot.alignment import neighbour_rows
    from mosecrot.anchor_growth import AnchorGrowthConfig, grown_pairs
    from mosecrot.cache import DiskCache
    from mosecrot.config import load_experiment
    from mosecrot.methods.aligned import (
        AlignedOptions,
        cached_alignment,
        cached_token_vectors,
        load_english_vectors,
    )
    from mosecrot.methods.context import RunContext, load_classifier
    from mosecrot.methods.registry import method_anchors
    from mosecrot.methods.stitched import _target_texts, relearned_rows
    from mosecrot.plm import load_tokenizer
    from mosecrot.prepare import prepare, with_anchors
    from mosecrot.relative import RelativeConfig
    from mosecrot.relearn import RelearnConfig
    from mosecrot.stitching import build_target_vocabulary, target_mapping

    languages = [x for x in args.languages.split(",") if x]
    cfg = load_experiment(args.experiment, [f"target_languages=[{','.join(languages)}]"])
    prepared = prepare(cfg, static=True, progress=False)
    tmp = Path(tempfile.mkdtemp(prefix="bench_transfer_"))
    ctx = RunContext(prepared=prepared, training=cfg.training, cache=DiskCache(tmp))
    tokenizer = load_tokenizer(cfg.model)
    original = ctx.original_embeddings(cfg.model)
    options = AlignedOptions()

    english, t_english = _timed(lambda: load_english_vectors(ctx, options))
    (token_ids, token_matrix), t_tokens = _timed(lambda: cached_token_vectors(ctx, cfg.model, tokenizer, english))
    token_rows = original[torch.from_numpy(token_ids)].float()
    report: dict = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
        "experiment": args.experiment,
        "once": {
            "english_vectors_s": t_english,
            "english_words": len(english),
            "token_vectors_s": t_tokens,
            "tokens_with_vectors": int(len(token_ids)),
            "per_language": {},
        },
        "per_trial": {},
    }
    rel = RelativeConfig(weighting="softmax", tau=0.05, k=10)
    growth = AnchorGrowthConfig(identical=True, self_learning=True)
    plm_vocabulary = set(tokenizer.get_vocab())
    grown_config = method_anchors(cfg.anchors, {"grow": {"identical": True, "self_learning": True}})
    with_anchors(prepared, grown_config)  # fills the disk cache: the timing below is a trial's
    grown_prepared, t_grown_anchors = _timed(lambda: with_anchors(prepared, grown_config))
    report["per_trial"]["anchors_with_grown_pairs_s"] = t_grown_anchors
    pretrained = load_classifier(cfg.model, ctx.num_labels)
    pretrained.eval()
    for lang in languages:
        vectors = prepared.vectors[lang]
        alignment, t_align = _timed(
            lambda lang=lang, vectors=vectors: cached_alignment(ctx, lang, vectors, english, options.stitch.alignment)
        )
        vocab = build_target_vocabulary(lang, _target_texts(ctx, lang), vectors, tokenizer, "subword")
        tokens_english = alignment.map_english(token_matrix)

        def aligned_rows(v=vocab, a=alignment, t=tokens_english):
            return neighbour_rows(a.map_target(v.vectors), t, token_rows, 10, 0.1)

        anchors = prepared.anchors[lang]
        english_rows = original[anchors.source_token_ids].float()

        def rr_rows(v=vocab, a=anchors, r=english_rows, s=vectors):
            return target_mapping(v, s, a, r, torch.empty(0, r.shape[1]), rel)

        t_aligned = min(_timed(aligned_rows)[1] for _ in range(args.repeats))
        t_rr = min(_timed(rr_rows)[1] for _ in range(args.repeats))
        grown_anchors = grown_prepared.anchors[lang]
        grown_rows = original[grown_anchors.source_token_ids].float()

        def rr_grown_rows(v=vocab, a=grown_anchors, r=grown_rows, s=vectors):
            return target_mapping(v, s, a, r, torch.empty(0, r.shape[1]), rel)

        t_rr_grown = min(_timed(rr_grown_rows)[1] for _ in range(args.repeats))
        dictionary = prepared.dictionaries[lang].pairs
        (_, grown_meta), t_grow = _timed(
            lambda lang=lang, d=dictionary, v=vectors: grown_pairs(lang, d, v, plm_vocabulary, lambda: english, growth)
        )
        relearn = RelearnConfig(enabled=True, verses=args.relearn_verses)
        (_, stats, words), t_relearn = _timed(
            lambda f=aligned_rows, lang=lang, r=relearn: relearned_rows(
                ctx, pretrained, lang, f, options.stitch, tokenizer, r
            )
        )
        report["once"]["per_language"][lang] = {
            "alignment_s": t_align,
            "alignment": alignment.stats,
            "relearn_s": t_relearn,
            "relearn_examples_per_second": stats["examples_per_second"],
            "relearn_epochs": stats["epochs"],
            "relearn_held_out_loss": [stats["held_out_loss_before"], stats["held_out_loss_after"]],
            "relearned_words": len(words),
            "anchor_growth_s": t_grow,
            "anchor_growth": grown_meta,
            "anchors": [len(anchors), len(grown_anchors)],
        }
        report["per_trial"][lang] = {
            "vocabulary_words": len(vocab.words),
            "aligned_rows_s": t_aligned,
            "rr_f_t_s": t_rr,
            "ratio_aligned_to_rr": t_aligned / t_rr if t_rr else None,
            "rr_f_t_grown_anchors_s": t_rr_grown,
            "ratio_grown_to_rr": t_rr_grown / t_rr if t_rr else None,
        }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=float))
    print(json.dumps(report, indent=2, default=float))
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
