"""Language centering (mosecrot/centering.py): offsets from parallel verses, never from evaluated ones."""

from __future__ import annotations

import numpy as np
import pytest

from mosecrot.centering import candidate_verses, centre, language_offsets
from mosecrot.errors import InputError
from mosecrot.methods import MethodConfig
from mosecrot.methods.probes import SentenceProbeOptions, centred_evals
from mosecrot.text.bible import Bible, make_verse_id

from memory_bible import DictSource

IDS = [make_verse_id(1, 1, v) for v in range(1, 11)]


def tiny_bible() -> Bible:
    return Bible(
        DictSource(
            "tiny",
            {
                "en1": ("en", {v: f"en {v}" for v in IDS}),
                "de1": ("de", {v: f"de {v}" for v in IDS[:8]} | {IDS[8]: "  "}),  # IDS[8] empty, IDS[9] missing
            },
        )
    )


def encoder(texts: list[str]) -> np.ndarray:
    """A toy encoder: German vectors are English ones plus (3, -1); the verse number sets the rest."""
    rows = []
    for t in texts:
        lang, verse = t.split(" ", 1)
        base = np.array([float(int(verse[-3:])), 1.0])
        rows.append(base + (np.array([3.0, -1.0]) if lang == "de" else 0.0))
    return np.array(rows)


def test_offset_is_the_mean_difference_over_the_same_verses():
    offsets = language_offsets(encoder, tiny_bible(), ["de"], "en", exclude=[])
    np.testing.assert_allclose(offsets["de"], [3.0, -1.0])
    x = encoder(["de 01001005"])
    np.testing.assert_allclose(centre(x, offsets["de"]), encoder(["en 01001005"]))


def test_evaluated_empty_and_missing_verses_are_never_used():
    candidates = candidate_verses(tiny_bible(), "de", "en", n=100)
    assert {v for v, _, _ in candidates} == set(IDS[:8])  # IDS[8] is empty in German, IDS[9] missing
    assert all(t == f"de {v}" and s == f"en {v}" for v, t, s in candidates)  # parallel
    assert [v for v, _, _ in candidate_verses(tiny_bible(), "de", "en", n=3)] == [v for v, _, _ in candidates[:3]]
    seen: list[str] = []

    def recording(texts: list[str]) -> np.ndarray:
        seen.extend(texts)
        return encoder(texts)

    # Excluding the candidates with the largest verse numbers moves the mean of what is left: only kept
    # verses are averaged (the offset stays (3, -1), the per-verse part cancels between the two sides).
    excluded = {v for v in IDS if v[-3:] in ("006", "007", "008")}
    offsets = language_offsets(recording, tiny_bible(), ["de"], "en", exclude=excluded)
    np.testing.assert_allclose(offsets["de"], [3.0, -1.0])
    assert len(seen) == 16  # every candidate encoded (cacheable across runs), both sides


def test_the_mean_uses_only_verses_outside_the_evaluation_sets():
    def leaky(texts: list[str]) -> np.ndarray:  # an excluded verse would shift the German mean by +100
        return np.array([[100.0 if (t.startswith("de") and t.endswith("005")) else 0.0] for t in texts])

    five = {v for v in IDS if v.endswith("005")}
    assert language_offsets(leaky, tiny_bible(), ["de"], "en", exclude=five)["de"][0] == 0.0
    assert language_offsets(leaky, tiny_bible(), ["de"], "en", exclude=[])["de"][0] == pytest.approx(100 / 8)


def test_a_language_without_bible_text_is_a_clear_error():
    with pytest.raises(InputError, match="centering"):
        language_offsets(encoder, tiny_bible(), ["sw"], "en", exclude=[])
    with pytest.raises(InputError, match="outside the evaluation sets"):
        language_offsets(encoder, tiny_bible(), ["de"], "en", exclude=IDS)


@pytest.mark.parametrize(
    "method, key",
    [
        ({"kind": "frozen_encoder", "centering": "mean"}, "methods[0].centering"),
        ({"kind": "ls", "centering": "language"}, "methods[0].centering"),
        ({"kind": "frozen_encoder", "centering": "language", "centering_verses": 0}, "methods[0].centering_verses"),
    ],
)
def test_bad_centering_settings_name_the_key(method, key):
    with pytest.raises(InputError) as err:
        MethodConfig.from_config({"name": "x", **method}, prefix="methods[0]")
    assert err.value.key == key


def test_centering_is_accepted_for_frozen_vector_methods():
    MethodConfig.from_config({"name": "x", "kind": "frozen_encoder", "centering": "language"})
    MethodConfig.from_config({"name": "x", "kind": "ems", "centering": "language", "ems": "cpu"})


def test_a_method_centres_only_target_vectors_and_never_on_evaluated_verses():
    from types import SimpleNamespace

    evaluated = IDS[:2]  # the run's dev/test verses (English and German): never averaged
    ctx = SimpleNamespace(
        config=SimpleNamespace(source_language="en"),
        prepared=SimpleNamespace(bible=tiny_bible(), evaluation_ids=set(evaluated)),
    )
    used: list[str] = []

    def recording(texts: list[str]) -> np.ndarray:
        used.extend(texts)
        return encoder(texts)

    x = np.zeros((1, 2))
    evals = {("dev", "en"): (x, [0]), ("test", "de"): (x, [0])}
    plain = SentenceProbeOptions()
    assert centred_evals(ctx, plain, recording, evals) is evals and not used
    out = centred_evals(ctx, SentenceProbeOptions(centering="language"), recording, evals)
    np.testing.assert_allclose(out[("dev", "en")][0], x)  # English (and the classifier) untouched
    np.testing.assert_allclose(out[("test", "de")][0], [[-3.0, 1.0]])
    assert out[("test", "de")][1] == [0]

    # Make the evaluated verses poison the mean if they were averaged: the offset must not move.
    def poisoned(texts: list[str]) -> np.ndarray:
        rows = encoder(texts)
        rows[[any(t.endswith(v) for v in evaluated) and t.startswith("de") for t in texts]] += 1000.0
        return rows

    out = centred_evals(ctx, SentenceProbeOptions(centering="language"), poisoned, evals)
    np.testing.assert_allclose(out[("test", "de")][0], [[-3.0, 1.0]])
