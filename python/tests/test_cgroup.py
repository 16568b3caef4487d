"""The default RAM budget inside a memory cgroup (a container's limit).

The default model split without compression (about 513 MiB) runs in a cgroup
capped at 384 MiB with the default budget: it must answer, with the same text
as without the cap, instead of pinning the whole store and being killed by the
cgroup's OOM killer (the old default, half of the host's MemAvailable, did
that). Needs root and a writable memory cgroup (v1, or v2 with the memory
controller); skipped otherwise.
"""

import os
import subprocess
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
CLI = os.path.join(REPO, "build", "airllm")
MODEL = os.path.join(REPO, "models", "SmolLM2-135M-Instruct.Q4_1.gguf")
CAP = 384 << 20


def _make_cgroup():
    """A fresh memory cgroup capped at CAP: (procs file, limit file, dir), or None."""
    if os.geteuid() != 0:
        return None
    name = f"airllm_test_{os.getpid()}"
    candidates = []
    for root in ("/sys/fs/cgroup", "/sys/fs/cgroup/unified"):
        try:
            with open(os.path.join(root, "cgroup.controllers")) as f:
                if "memory" in f.read().split():
                    candidates.append((root, "memory.max"))
        except OSError:
            pass
    if os.path.isfile("/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        candidates.append(("/sys/fs/cgroup/memory", "memory.limit_in_bytes"))
    for root, limit_file in candidates:
        d = os.path.join(root, name)
        try:
            os.mkdir(d)
            with open(os.path.join(d, limit_file), "w") as f:
                f.write(str(CAP))
            return os.path.join(d, "cgroup.procs"), d
        except OSError:
            try:
                os.rmdir(d)
            except OSError:
                pass
    return None


def _run(args, cgroup_procs=None):
    cmd = [CLI, "run", MODEL, "--compression", "none", "--temperature", "0", "-n", "6",
           "--max-seq-len", "256", "What is 2+2?"]
    if cgroup_procs:
        # join the cgroup, then exec the CLI: everything it allocates counts
        cmd = ["sh", "-c", f'echo $$ > "{cgroup_procs}" && exec "$@"', "sh"] + cmd
    return subprocess.run(cmd + args, capture_output=True, text=True, timeout=600)


def test_default_budget_fits_a_memory_cgroup():
    if not os.path.isfile(CLI) or not os.path.isfile(MODEL):
        pytest.skip("needs build/airllm and the default model (scripts/fetch-default-model.sh)")
    cg = _make_cgroup()
    if cg is None:
        pytest.skip("needs root and a writable memory cgroup")
    procs, d = cg
    try:
        free = _run([])  # also splits the store, outside the cap
        assert free.returncode == 0, free.stderr
        capped = _run([], procs)
        assert capped.returncode == 0, (
            f"rc {capped.returncode} under a {CAP >> 20} MiB cgroup (killed by its OOM killer?): "
            f"{capped.stderr}")
        assert capped.stdout == free.stdout
    finally:
        for _ in range(50):
            try:
                os.rmdir(d)
                break
            except OSError:
                time.sleep(0.1)
