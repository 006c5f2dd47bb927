import json

from mosecrot.cache import DiskCache, stable_hash


def _builder(calls):
    def build(d):
        calls.append(1)
        (d / "data.txt").write_text("payload")
        (d / "sub").mkdir()
        (d / "sub" / "x.bin").write_bytes(b"\x00\x01")

    return build


def test_builds_once_then_loads(tmp_path):
    cache, calls = DiskCache(tmp_path), []
    load = lambda d: (d / "data.txt").read_text()  # noqa: E731
    assert cache.get_or_build("ns", {"a": 1}, _builder(calls), load) == "payload"
    assert cache.get_or_build("ns", {"a": 1}, _builder(calls), load) == "payload"
    assert len(calls) == 1
    cache.get_or_build("ns", {"a": 2}, _builder(calls), load)
    assert len(calls) == 2


def test_corrupt_entry_is_detected_and_rebuilt(tmp_path, caplog):
    cache, calls = DiskCache(tmp_path), []
    load = lambda d: (d / "sub" / "x.bin").read_bytes()  # noqa: E731
    cache.get_or_build("ns", {"k": 1}, _builder(calls), load)
    entry = cache.path_for("ns", {"k": 1})
    (entry / "sub" / "x.bin").write_bytes(b"\xff\xff")
    assert cache.get_or_build("ns", {"k": 1}, _builder(calls), load) == b"\x00\x01"
    assert len(calls) == 2 and "checksum mismatch" in caplog.text
    manifest = json.loads((entry / "MANIFEST.json").read_text())
    assert set(manifest["files"]) == {"data.txt", "sub/x.bin"}


def test_failed_build_leaves_nothing(tmp_path):
    cache = DiskCache(tmp_path)

    def boom(d):
        (d / "half").write_text("x")
        raise RuntimeError("fail")

    try:
        cache.get_or_build("ns", {"k": 1}, boom, lambda d: None)
    except RuntimeError:
        pass
    assert not any((tmp_path / "ns").iterdir())


def test_stable_hash_ignores_key_order():
    assert stable_hash({"a": 1, "b": [1, 2]}) == stable_hash({"b": [1, 2], "a": 1})
