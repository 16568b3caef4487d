"""Build hook for airllm_c: nothing is compiled here.

When a built C library is found at install time it is copied into the
package folder, so that the installed package works without AIRLLM_LIB:

  1. $AIRLLM_LIB, if set (a path to libairllm.so);
  2. ../build/libairllm.so next to this folder (a built checkout).

Otherwise the package is installed pure-Python and finds the library at
import time (see docs/python.md). Set AIRLLM_NO_BUNDLE=1 to skip the copy.
"""

import os
import shutil
import sys

from setuptools import setup
from setuptools.command.build_py import build_py
from setuptools.dist import Distribution

HERE = os.path.dirname(os.path.abspath(__file__))
LIB_NAME = "libairllm.dylib" if sys.platform == "darwin" else "libairllm.so"


def find_built_library():
    if os.environ.get("AIRLLM_NO_BUNDLE"):
        return None
    candidates = []
    env = os.environ.get("AIRLLM_LIB")
    if env:
        candidates.append(env)
    candidates.append(os.path.join(HERE, "..", "build", LIB_NAME))
    for path in candidates:
        if os.path.isfile(path):
            return os.path.abspath(path)
    return None


class BuildPyWithLibrary(build_py):
    """Copies the C library into the built package when one was found."""

    def run(self):
        super().run()
        lib = find_built_library()
        if lib is None:
            print("airllm_c: no built libairllm found; installing without a bundled library")
            return
        dest = os.path.join(self.build_lib, "airllm_c", LIB_NAME)
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(lib, dest)
        os.chmod(dest, 0o755)
        print(f"airllm_c: bundled {lib}")


class BinaryDistribution(Distribution):
    """A wheel that carries a shared library is platform-specific."""

    def has_ext_modules(self):
        return find_built_library() is not None


setup(cmdclass={"build_py": BuildPyWithLibrary}, distclass=BinaryDistribution)
