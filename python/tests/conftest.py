"""Shared fixtures: the package under test, the tiny_chat model, a cache dir.

Runs either against an installed airllm_c (pip install ./python) or, when it
is not installed, against the package in this checkout. The C library comes
from $AIRLLM_LIB, the copy bundled at install time, or build/ (see
docs/python.md).
"""

import json
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
TINY_CHAT = os.path.join(REPO, "tests", "fixtures", "models", "tiny_chat")
COMPAT = os.path.join(REPO, "python", "compat")  # the `airllm` compatibility package
DEFAULT_MODEL = os.path.join(os.environ.get("AIRLLM_MODELS_DIR") or os.path.join(REPO, "models"),
                             "SmolLM2-135M-Instruct.Q4_1.gguf")

try:
    import airllm_c  # noqa: F401
except ImportError:
    sys.path.insert(0, os.path.dirname(HERE))
    import airllm_c  # noqa: F401


def pytest_report_header(config):
    lines = [f"airllm_c: {os.path.dirname(airllm_c.__file__)}"]
    try:
        lines.append(f"libairllm: {airllm_c.library_path()} ({airllm_c.version()})")
    except ImportError as e:
        lines.append(f"libairllm: not found ({str(e).splitlines()[0]})")
    return lines


@pytest.fixture(scope="session")
def lib():
    """The loaded library; a missing library fails the test with the hint."""
    try:
        airllm_c.library_path()
    except airllm_c.LibraryNotFoundError as e:
        pytest.fail(str(e), pytrace=False)
    return airllm_c


@pytest.fixture(scope="session")
def tiny_chat(lib):
    if not os.path.isfile(os.path.join(TINY_CHAT, "config.json")):
        pytest.skip(f"the tiny_chat test model is missing ({TINY_CHAT}); it is written by "
                    "tests/gen/gen_tiny_chat.py")
    return TINY_CHAT


@pytest.fixture(scope="session")
def golden(tiny_chat):
    path = os.path.join(tiny_chat, "golden.json")
    if not os.path.isfile(path):
        pytest.skip(f"{path} is missing")
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory):
    # One folder for the session: the library keeps opened models per process
    # (keyed "model:compression"), so the first call's cache_dir is the one used.
    return str(tmp_path_factory.mktemp("airllm-cache"))


@pytest.fixture
def ask(tiny_chat, cache_dir):
    """get_llm_response on tiny_chat, uncompressed, greedy unless told."""

    def call(prompt=None, **kw):
        kw.setdefault("model", tiny_chat)
        kw.setdefault("compression", None)
        kw.setdefault("cache_dir", cache_dir)
        kw.setdefault("temperature", 0)
        kw.setdefault("max_tokens", 16)
        return airllm_c.get_llm_response(prompt, **kw)

    return call
