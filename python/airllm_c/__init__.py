"""airllm_c: Python binding of airllm.c.

Runs large language models whose weights do not fit in memory by streaming
them layer by layer from disk, through the C library libairllm (loaded with
ctypes; no third-party dependency).

    import airllm_c
    r = airllm_c.get_llm_response("Hello!", model="Qwen/Qwen2.5-7B-Instruct",
                                  provider="airllm", max_tokens=64)
    print(r["response"])

See docs/python.md in the airllm.c repository.
"""

from ._api import (
    PLATFORM_DEFAULT,
    AirLLMError,
    Model,
    ResponseStream,
    clear_model_cache,
    default_compression,
    get_llm_response,
    library_path,
    version,
)
from ._lib import LibraryNotFoundError

__version__ = "0.1.0"

__all__ = [
    "AirLLMError",
    "LibraryNotFoundError",
    "Model",
    "PLATFORM_DEFAULT",
    "ResponseStream",
    "clear_model_cache",
    "default_compression",
    "get_llm_response",
    "library_path",
    "version",
]
