"""The `airllm` command checks every numeric option whole and against its range:
a bad value ends the command with exit code 2 and a message that names the
option and what it accepts, before any model is opened; the edge values that
are valid run.

The command is build/airllm, or $AIRLLM_CLI when set (to try another build).
"""

import json
import os
import subprocess

import pytest

from conftest import REPO

CLI = os.environ.get("AIRLLM_CLI") or os.path.join(REPO, "build", "airllm")

pytestmark = pytest.mark.skipif(not os.access(CLI, os.X_OK), reason=f"{CLI} is not built")

# (command, option, value, what the message must say the option accepts)
BAD = [
    ("run", "-n", "abc", "an integer from 0 to 2147483647"),
    ("run", "-n", "-1", "an integer from 0 to 2147483647"),
    ("run", "-n", "99999999999999999999", "an integer from 0 to 2147483647"),
    ("run", "-n", "2147483648", "an integer from 0 to 2147483647"),
    ("run", "-n", "5x", "an integer from 0 to 2147483647"),
    ("run", "--max-tokens", "", "an integer from 0 to 2147483647"),
    ("run", "-n", " 5", "an integer from 0 to 2147483647"),
    ("run", "--max-tokens", "1.5", "an integer from 0 to 2147483647"),
    ("run", "--temperature", "-1", "a number >= 0"),
    ("run", "--temperature", "nan", "a number >= 0"),
    ("run", "--temperature", "inf", "a number >= 0"),
    ("run", "--temperature", "1e999", "a number >= 0"),
    ("run", "--temperature", "warm", "a number >= 0"),
    ("run", "--top-p", "2", "a number from 0 to 1"),
    ("run", "--top-p", "-0.1", "a number from 0 to 1"),
    ("run", "--min-p", "2", "a number from 0 to 1"),
    ("run", "--min-p", "nan", "a number from 0 to 1"),
    ("run", "--top-k", "-5", "an integer from 0 to 2147483647"),
    ("run", "--seed", "-1", "an integer from 0 to 18446744073709551615"),
    ("run", "--seed", "18446744073709551616", "an integer from 0 to 18446744073709551615"),
    ("run", "--seed", "0x10", "an integer from 0 to 18446744073709551615"),
    ("run", "--max-seq-len", "0", "an integer from 1 to 16777216"),
    ("run", "--max-seq-len", "-4", "an integer from 1 to 16777216"),
    ("run", "--max-seq-len", "16777217", "an integer from 1 to 16777216"),
    ("run", "-t", "0", "an integer from 1 to 2147483647"),
    ("run", "-t", "-2", "an integer from 1 to 2147483647"),
    ("run", "--threads", "two", "an integer from 1 to 2147483647"),
    ("run", "--ram", "nan", "a size >= 0"),
    ("run", "--ram", "-1G", "a size >= 0"),
    ("run", "--ram", "1e30T", "a size >= 0"),
    ("run", "--ram", "8Q", "a size >= 0"),
    ("pull", "-t", "0", "an integer from 1 to 2147483647"),
    ("pull", "--max-seq-len", "0", "an integer from 1 to 16777216"),
    ("bench", "-p", "0", "an integer from 1 to 65536"),
    ("bench", "-g", "abc", "an integer from 1 to 65536"),
    ("bench", "--gen-tokens", "-3", "an integer from 1 to 65536"),
]


def _run(args, timeout=300):
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("cmd,opt,value,accepts", BAD,
                         ids=[f"{c} {o} {v!r}" for c, o, v, _ in BAD])
def test_bad_value_is_usage_error(tiny_chat, tmp_path, cmd, opt, value, accepts):
    args = [cmd, tiny_chat]
    if cmd == "run":
        args.append("Hi")
    # option and value as one argument (--opt=value / -nVALUE) so an empty value is passed too
    joined = f"{opt}={value}" if opt.startswith("--") else f"{opt}{value}"
    r = _run(args + [joined, "--cache-dir", str(tmp_path), "-q"])
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert r.stdout == ""
    assert accepts in r.stderr, r.stderr
    assert opt.lstrip("-") in r.stderr, r.stderr  # names the option
    assert not os.listdir(tmp_path), "nothing is split before the options are checked"


def test_json_needs_two_tokens(tiny_chat, tmp_path):
    for n in ("0", "1"):
        r = _run(["run", tiny_chat, "Hi", "--json", "-n", n, "--cache-dir", str(tmp_path), "-q"])
        assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
        assert "--json needs -n 2 or more" in r.stderr


# Valid edges: each runs and answers.
GOOD = [
    ["-n", "0"],
    ["-n", "3", "--temperature", "0"],
    ["-n", "3", "--temperature", "0.0001", "--top-p", "0"],
    ["-n", "3", "--top-p", "1", "--min-p", "0", "--top-k", "0"],
    ["-n", "3", "--min-p", "1"],
    ["-n", "3", "--seed", "18446744073709551615"],
    ["-n", "3", "--seed", "0", "--top-k", "2147483647"],
    ["-n", "3", "--max-seq-len", "64"],
    ["-n", "3", "-t", "1", "--ram", "0"],
    ["-n", "3", "--ram", "1.5G"],
    ["-n", "2147483647", "--max-seq-len", "40"],
]


@pytest.mark.parametrize("opts", GOOD, ids=[" ".join(o) for o in GOOD])
def test_valid_edges_run(tiny_chat, cache_dir, opts):
    r = _run(["run", tiny_chat, "Hi", "-c", "none", "--cache-dir", cache_dir, "-q", *opts])
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith("\n")
    if opts[:2] == ["-n", "0"]:
        assert r.stdout == "\n"
    else:
        assert r.stdout.strip(), "an answer was printed"


def test_json_two_tokens_is_json(tiny_chat, cache_dir):
    r = _run(["run", tiny_chat, "Hi", "--json", "-n", "2", "-c", "none", "--cache-dir", cache_dir,
              "-q"])
    assert r.returncode == 0, r.stderr
    assert isinstance(json.loads(r.stdout), dict)


def test_too_many_threads_are_capped_with_a_warning(tiny_chat, cache_dir):
    r = _run(["run", tiny_chat, "Hi", "-n", "3", "-t", "100000", "-c", "none", "--cache-dir",
              cache_dir, "-q"])
    assert r.returncode == 0, r.stderr
    assert "-t 100000 is more than the" in r.stderr and "CPUs" in r.stderr
    assert r.stdout.strip()
