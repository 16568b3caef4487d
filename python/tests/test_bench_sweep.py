"""`airllm bench --ram-sweep --json`: one point per RAM budget, from every
unit streamed (all bytes read per token) to every unit resident (none)."""
import json
import os
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CLI = os.path.join(REPO, "build", "airllm")
TINY = os.path.join(REPO, "tests", "fixtures", "models", "tiny_chat")


def test_ram_sweep_json(tmp_path):
    if not os.path.isfile(CLI):
        pytest.skip("needs build/airllm")
    r = subprocess.run([CLI, "bench", TINY, "-c", "none", "--ram-sweep=3", "--json", "-g", "2",
                        "-p", "4", "-q", "--cache-dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    pts = d["points"]
    assert len(pts) == 4
    assert d["store_bytes"] > 0 and d["decode_tokens"] == 2
    # all streamed: every unit's bytes read per token; all resident: nothing read
    assert pts[0]["pinned_bytes"] == 0
    assert pts[0]["bytes_read_per_token"] == pytest.approx(d["store_bytes"], rel=0.01)
    assert pts[-1]["pinned_bytes"] == d["store_bytes"]
    assert pts[-1]["bytes_read_per_token"] == 0
    pinned = [p["pinned_bytes"] for p in pts]
    read = [p["bytes_read_per_token"] for p in pts]
    assert pinned == sorted(pinned) and read == sorted(read, reverse=True)
    for p in pts:
        assert p["s_per_token"] > 0
        if p["bytes_read_per_token"] and d["disk_gb_per_s"] > 0:
            assert p["floor_s_per_token"] == pytest.approx(
                p["bytes_read_per_token"] / (d["disk_gb_per_s"] * 1e9), rel=1e-6)


def test_ram_sweep_bad_count():
    if not os.path.isfile(CLI):
        pytest.skip("needs build/airllm")
    r = subprocess.run([CLI, "bench", TINY, "--ram-sweep=0"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 2 and "--ram-sweep" in r.stderr
