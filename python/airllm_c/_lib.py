"""Finding and loading libairllm, and the ctypes prototypes of what the
binding calls.

The library is looked up once, on first use, in this order:

  1. $AIRLLM_LIB: an explicit path (an error if it does not exist);
  2. a copy bundled in this package folder at install time;
  3. build/libairllm.so of the source checkout this package sits in;
  4. ctypes.util.find_library("airllm") (the system's library path).
"""

import ctypes
import ctypes.util
import os
import sys
import threading

LIB_NAME = "libairllm.dylib" if sys.platform == "darwin" else "libairllm.so"

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(os.path.dirname(_HERE))  # python/airllm_c -> repository root

# Status codes, as in include/airllm.h (AIR_STATUS_TABLE).
STATUS_NAMES = {
    0: "AIR_OK",
    1: "AIR_ERR_INVALID_ARG",
    2: "AIR_ERR_IO",
    3: "AIR_ERR_FORMAT",
    4: "AIR_ERR_UNSUPPORTED",
    5: "AIR_ERR_NOMEM",
    6: "AIR_ERR_NOT_FOUND",
    7: "AIR_ERR_NETWORK",
    8: "AIR_ERR_AUTH",
    9: "AIR_ERR_ABORTED",
    10: "AIR_ERR_LIMIT",
    11: "AIR_ERR_INTERNAL",
}

BUILD_HINT = (
    "Build it from the airllm.c checkout with\n"
    "    cmake -S . -B build && cmake --build build -j2 --target airllm\n"
    "then either set AIRLLM_LIB=/path/to/build/" + LIB_NAME + ", or reinstall the package "
    "with `pip install ./python` after the build (the built library is then bundled)."
)

# int on_text(void *user, const char *piece): non-zero stops generation.
ON_TEXT = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_char_p)


class LibraryNotFoundError(ImportError):
    """libairllm could not be found or loaded."""


def candidate_paths():
    """The places searched, in order, as (origin, path) pairs; path may be None."""
    out = []
    env = os.environ.get("AIRLLM_LIB")
    if env:
        out.append(("AIRLLM_LIB", env))
    out.append(("bundled", os.path.join(_HERE, LIB_NAME)))
    if os.path.isfile(os.path.join(_REPO, "include", "airllm.h")):
        out.append(("checkout", os.path.join(_REPO, "build", LIB_NAME)))
    out.append(("system", ctypes.util.find_library("airllm")))
    return out


def _locate():
    env = os.environ.get("AIRLLM_LIB")
    if env and not os.path.isfile(env):
        raise LibraryNotFoundError(
            f"AIRLLM_LIB is set to {env!r}, but no such file exists.\n" + BUILD_HINT)
    tried = []
    for origin, path in candidate_paths():
        if not path:
            continue
        if origin == "system" or os.path.isfile(path):
            return path
        tried.append(path)
    raise LibraryNotFoundError(
        "airllm_c cannot find the airllm.c shared library (" + LIB_NAME + "); looked at:\n"
        + "".join(f"    {p}\n" for p in tried)
        + "    the system library path\n" + BUILD_HINT)


def _declare(lib):
    c_int, c_char_p, c_void_p = ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p
    lib.air_get_llm_response.argtypes = [c_char_p, ON_TEXT, c_void_p, ctypes.POINTER(c_void_p)]
    lib.air_get_llm_response.restype = c_int
    lib.air_free.argtypes = [c_void_p]
    lib.air_free.restype = None
    lib.air_last_error.argtypes = []
    lib.air_last_error.restype = c_char_p
    lib.air_strerror.argtypes = [c_int]
    lib.air_strerror.restype = c_char_p
    lib.air_version.argtypes = []
    lib.air_version.restype = c_char_p
    lib.air_default_compression.argtypes = []
    lib.air_default_compression.restype = c_char_p
    lib.air_model_cache_clear.argtypes = []
    lib.air_model_cache_clear.restype = None
    # the steps of a chat turn, on a model from the process cache
    c_size_t, p_int32 = ctypes.c_size_t, ctypes.POINTER(ctypes.c_int32)
    lib.air_model_acquire_json.argtypes = [c_char_p, ctypes.POINTER(c_void_p)]
    lib.air_model_acquire_json.restype = c_int
    lib.air_model_release.argtypes = [c_void_p]
    lib.air_model_release.restype = None
    lib.air_apply_chat_template.argtypes = [c_void_p, c_char_p, c_int, c_char_p,
                                            ctypes.POINTER(c_void_p)]
    lib.air_apply_chat_template.restype = c_int
    lib.air_tokenize.argtypes = [c_void_p, c_char_p, c_size_t, c_int, ctypes.POINTER(p_int32),
                                 ctypes.POINTER(c_size_t)]
    lib.air_tokenize.restype = c_int
    lib.air_detokenize.argtypes = [c_void_p, p_int32, c_size_t, c_int, ctypes.POINTER(c_void_p),
                                   ctypes.POINTER(c_size_t)]
    lib.air_detokenize.restype = c_int


_lock = threading.Lock()
_lib = None
_path = None


def load():
    """The loaded library (loads it on the first call)."""
    global _lib, _path
    if _lib is not None:
        return _lib
    with _lock:
        if _lib is None:
            path = _locate()
            try:
                lib = ctypes.CDLL(path)
                _declare(lib)
            except (OSError, AttributeError) as e:
                stale = " (an older build of the library? rebuild it)" if isinstance(
                    e, AttributeError) or "undefined symbol" in str(e) else ""
                raise LibraryNotFoundError(
                    f"airllm_c could not load {path}: {e}{stale}\n" + BUILD_HINT) from None
            _path = getattr(lib, "_name", path)
            _lib = lib
    return _lib


def loaded_path():
    """Path of the library in use (loads it if needed)."""
    load()
    return _path
