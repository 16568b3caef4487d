"""get_llm_response, streaming and the Model object, over the library's
JSON entry point air_get_llm_response().

Every call runs the C function in a worker thread, with an on_text callback
that returns non-zero once the call should stop (generator closed, Ctrl-C in
the caller, interpreter exit). Streaming passes each text piece from the
callback to the caller through a queue. The library's last error is
thread-local, so it is read in the worker right after the failing call.
"""

import atexit
import collections.abc
import ctypes
import json
import os
import queue
import threading
import weakref

from . import _lib


class AirLLMError(RuntimeError):
    """An error reported by libairllm.

    Attributes: ``status`` (the air_status code), ``status_name`` (e.g.
    "AIR_ERR_NOT_FOUND"), ``description`` (air_strerror's text) and
    ``detail`` (the library's message about this failure).
    """

    def __init__(self, status, status_name, description, detail):
        self.status = status
        self.status_name = status_name
        self.description = description
        self.detail = detail
        text = detail or description
        super().__init__(f"{text} [{status_name}: {description}]")


class _PlatformDefault:
    """Sentinel: let the library pick the compression ("4bit" on Linux, none
    on macOS, "8bit" for a .gguf file whose weights are already quantized)."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self):
        return "<platform default>"

    def __reduce__(self):
        return (_PlatformDefault, ())


PLATFORM_DEFAULT = _PlatformDefault()

# Keyword arguments, by where they go. Model options select and open the model
# (the library caches opened models per process, keyed "model:compression");
# generation options apply to one call.
MODEL_OPTIONS = ("compression", "hf_token", "delete_original", "max_seq_len", "prefetching",
                 "cache_dir", "ram_budget", "n_threads", "revision")
GEN_OPTIONS = ("max_tokens", "temperature", "top_p", "top_k", "min_p", "repeat_penalty", "seed",
               "stop", "format", "tools", "tool_choice")
# Accepted for drop-in compatibility with get_llm_response of other providers
# and ignored: they have no meaning for a local model.
IGNORED_OPTIONS = ("api_url", "api_key", "npc", "team", "context", "attachments")


# ---------------------------------------------------------------------------
# Request building and validation
# ---------------------------------------------------------------------------

def _check_str(name, v, allow_none=True):
    if v is None and allow_none:
        return None
    if not isinstance(v, str):
        raise TypeError(f"{name} must be a string, not {type(v).__name__}")
    return v


def _check_int(name, v, minimum=None):
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name} must be an int, not {type(v).__name__}")
    if minimum is not None and v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    return v


def _check_float(name, v, minimum=None):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{name} must be a number, not {type(v).__name__}")
    v = float(v)
    if v != v or v in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be finite, got {v}")
    if minimum is not None and v < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {v}")
    return v


def _content_text(i, content):
    """A message's content as text: a string, None, or a list of
    {"type": "text", "text": ...} parts."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and part.get("type") == "text":
                parts.append(_check_str(f"messages[{i}] text part", part.get("text", "")) or "")
            else:
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise ValueError(f"messages[{i}]: content part of type {kind!r} is not "
                                 "supported (text only)")
        return "".join(parts)
    raise TypeError(f"messages[{i}]['content'] must be a string, not {type(content).__name__}")


def _check_messages(messages):
    if messages is None:
        return []
    if isinstance(messages, (str, bytes)) or not hasattr(messages, "__iter__"):
        raise TypeError("messages must be a list of {'role': ..., 'content': ...} dicts")
    out = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict):
            raise TypeError(f"messages[{i}] must be a dict, not {type(m).__name__}")
        role = m.get("role")
        if not isinstance(role, str) or not role:
            raise ValueError(f"messages[{i}] has no 'role'")
        msg = {"role": role, "content": _content_text(i, m.get("content"))}
        calls = m.get("tool_calls")
        if calls:
            if not isinstance(calls, list) or not all(isinstance(c, dict) for c in calls):
                raise TypeError(f"messages[{i}]['tool_calls'] must be a list of dicts")
            msg["tool_calls"] = calls
            if m.get("content") is None:
                msg["content"] = None
        for key in ("tool_call_id", "name"):
            if m.get(key) is not None:
                msg[key] = _check_str(f"messages[{i}]['{key}']", m[key])
        out.append(msg)
    return out


def _model_request(model, opts):
    """JSON fields that open the model; opts holds MODEL_OPTIONS keys."""
    if model is None:
        raise TypeError("get_llm_response() needs a model (a Hugging Face id, a local folder "
                        "or a .gguf file)")
    if isinstance(model, os.PathLike):
        model = os.fspath(model)
    req = {"model": _check_str("model", model, allow_none=False)}
    comp = opts.get("compression", PLATFORM_DEFAULT)
    if comp is not PLATFORM_DEFAULT:
        req["compression"] = _check_str("compression", comp)  # None -> null -> no compression
    if opts.get("hf_token") is not None:
        if not isinstance(opts["hf_token"], str):
            raise TypeError("hf_token must be a string")
        req["hf_token"] = opts["hf_token"]
    for k in ("cache_dir",):
        if opts.get(k) is not None:
            v = opts[k]
            req[k] = os.fspath(v) if isinstance(v, os.PathLike) else _check_str(k, v)
    if opts.get("revision") is not None:
        req["revision"] = _check_str("revision", opts["revision"])
    req["delete_original"] = bool(opts.get("delete_original", False))
    req["prefetching"] = bool(opts.get("prefetching", True))
    if opts.get("max_seq_len") is not None:
        req["max_seq_len"] = _check_int("max_seq_len", opts["max_seq_len"], 0)
    if opts.get("ram_budget") is not None:
        req["ram_budget"] = _check_int("ram_budget", opts["ram_budget"], 0)
    if opts.get("n_threads") is not None:
        req["n_threads"] = _check_int("n_threads", opts["n_threads"], 0)
    return req


def _gen_request(opts):
    """JSON fields of one generation; opts holds GEN_OPTIONS keys."""
    req = {}
    if opts.get("max_tokens") is not None:
        req["max_tokens"] = _check_int("max_tokens", opts["max_tokens"], 0)
    for k in ("temperature", "top_p", "min_p", "repeat_penalty"):
        if opts.get(k) is not None:
            req[k] = _check_float(k, opts[k], 0.0)
    if opts.get("top_k") is not None:
        req["top_k"] = _check_int("top_k", opts["top_k"], 0)
    if opts.get("seed") is not None:
        seed = _check_int("seed", opts["seed"], 0)
        if seed >= 2 ** 53:
            raise ValueError("seed must be below 2**53")
        req["seed"] = seed
    stop = opts.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            stop = [stop]
        stop = list(stop)
        for s in stop:
            _check_str("stop", s, allow_none=False)
        req["stop"] = stop
    fmt = opts.get("format")
    if fmt is not None:
        if isinstance(fmt, dict):
            req["format"] = fmt  # a JSON schema (the subset in docs/json-mode.md)
        elif fmt == "json":
            req["format"] = "json"
        else:
            raise ValueError(f"format must be None, 'json' or a JSON schema dict, got {fmt!r}")
    tools = opts.get("tools")
    if tools:
        if not isinstance(tools, (list, tuple)) or not all(isinstance(t, dict) for t in tools):
            raise TypeError("tools must be a list of OpenAI tool dicts "
                            "({'type': 'function', 'function': {...}})")
        req["tools"] = list(tools)
    choice = opts.get("tool_choice")
    if choice is not None:
        if not isinstance(choice, (str, dict)):
            raise TypeError("tool_choice must be 'auto', 'none', 'required', a function name "
                            "or {'type': 'function', 'function': {'name': ...}}")
        req["tool_choice"] = choice
    return req


def _split_kwargs(kwargs, where):
    model_opts, gen_opts = {}, {}
    for k, v in kwargs.items():
        if k in MODEL_OPTIONS:
            model_opts[k] = v
        elif k in GEN_OPTIONS:
            gen_opts[k] = v
        elif k in IGNORED_OPTIONS:
            continue
        elif k in ("tool_map", "images"):
            if v:
                raise ValueError(f"{k}: the airllm provider returns tool calls but does not run "
                                 "them (no tool_map), and takes text only (no images)")
        else:
            raise TypeError(f"{where}() got an unexpected keyword argument {k!r}")
    return model_opts, gen_opts


# ---------------------------------------------------------------------------
# Calling the library
# ---------------------------------------------------------------------------

_active = weakref.WeakSet()  # running calls, stopped at interpreter exit
_shutting_down = threading.Event()


@atexit.register
def _stop_all():
    _shutting_down.set()
    for run in list(_active):
        run.stop.set()
    for run in list(_active):
        if run.thread is not None:
            run.thread.join(timeout=10)


def _redact(text, secrets):
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "<hidden>")
    return text


class _Run:
    """One air_get_llm_response call in a worker thread.

    on_piece(str) is called (in the worker) with each text piece, and
    on_done() once the call has ended, when given.
    After the thread ends, exactly one of .result (the response dict) and
    .error (an exception) is set.
    """

    def __init__(self, request, secrets, on_piece=None, on_done=None):
        self.request = json.dumps(request, ensure_ascii=False, allow_nan=False).encode("utf-8")
        self.secrets = secrets
        self.on_piece = on_piece
        self.on_done = on_done
        self.stop = threading.Event()
        self.result = None
        self.error = None
        self.thread = None

    def start(self):
        self.thread = threading.Thread(target=self._work, name="airllm_c-generate", daemon=True)
        _active.add(self)
        self.thread.start()
        return self

    def _on_text(self, user, piece):
        try:
            if self.stop.is_set() or _shutting_down.is_set():
                return 1
            if self.on_piece is not None and piece:
                self.on_piece(piece.decode("utf-8", errors="replace"))
            return 0
        except BaseException:  # never let an exception cross the C frames
            self.stop.set()
            return 1

    def _work(self):
        try:
            lib = _lib.load()
            cb = _lib.ON_TEXT(self._on_text)
            out = ctypes.c_void_p()
            status = lib.air_get_llm_response(self.request, cb, None, ctypes.byref(out))
            if status != 0:
                detail = (lib.air_last_error() or b"").decode("utf-8", errors="replace")
                desc = (lib.air_strerror(status) or b"").decode("utf-8", errors="replace")
                name = _lib.STATUS_NAMES.get(status, f"status {status}")
                self.error = AirLLMError(status, name, desc, _redact(detail, self.secrets))
                return
            try:
                text = ctypes.string_at(out.value).decode("utf-8", errors="replace")
            finally:
                lib.air_free(out)
            self.result = json.loads(text)
        except BaseException as e:
            self.error = e
        finally:
            self.request = None  # drop the token as soon as possible
            _active.discard(self)
            if self.on_done is not None:
                self.on_done()

    def wait(self):
        """Waits for the worker; Ctrl-C stops generation, then re-raises."""
        try:
            while self.thread.is_alive():
                self.thread.join(0.1)
        except BaseException:
            self.stop.set()
            self.thread.join()
            raise


def _secrets(model_req):
    out = []
    if model_req.get("hf_token"):
        out.append(model_req["hf_token"])
    if os.environ.get("HF_TOKEN"):
        out.append(os.environ["HF_TOKEN"])
    return out


def _finish(result, in_messages):
    """Rebuilds result["messages"] from the caller's own message dicts (so
    extra keys survive), then what the library appended (the prompt as a user
    turn when it was added, and the assistant reply)."""
    lib_msgs = result.get("messages") or []
    if in_messages is not None and len(lib_msgs) >= len(in_messages):
        result["messages"] = [dict(m) for m in in_messages] + lib_msgs[len(in_messages):]
    return result


def _call(request, secrets, in_messages):
    run = _Run(request, secrets).start()
    run.wait()
    if run.error is not None:
        raise run.error
    return _finish(run.result, in_messages)


class _StreamState:
    def __init__(self, request, secrets, in_messages):
        self.request = request
        self.secrets = secrets
        self.in_messages = in_messages
        self.run = None

    def result(self):
        run = self.run
        if run is None or run.thread.is_alive() or run.result is None:
            return None
        return _finish(run.result, self.in_messages)


def _pieces(state):
    q = queue.Queue()
    done = object()
    state.run = run = _Run(state.request, state.secrets, on_piece=q.put,
                           on_done=lambda: q.put(done))
    state.request = None
    run.start()
    try:
        while True:
            item = q.get()
            if item is done:
                break
            yield item
    finally:
        # closed early, collected, or an exception in the consumer: the
        # callback returns non-zero from the next piece on
        run.stop.set()
        run.thread.join()
    if run.error is not None:
        raise run.error
    return state.result()


class ResponseStream(collections.abc.Generator):
    """The text pieces of a reply, as they are produced (what
    get_llm_response(stream=True) returns).

    Iterate it for str pieces; together they are the reply's text. close()
    (also called when the stream is garbage collected, or on leaving a
    ``with`` block) stops generation and waits for the worker thread.
    Afterwards ``.result`` is the full response dict, with ``usage`` and
    ``finish_reason`` ("callback" when the stream was closed early), or None
    when the call failed or never started. The generator's return value
    (``StopIteration.value``, or the value of ``yield from``) is the same dict.
    A library failure is raised by the iteration as AirLLMError.
    """

    def __init__(self, request, secrets, in_messages):
        # The generator refers to this small state, not to the stream object,
        # so that dropping the last reference to the stream closes it at once.
        self._state = _StreamState(request, secrets, in_messages)
        self._gen = _pieces(self._state)

    @property
    def result(self):
        return self._state.result()

    def send(self, value):
        return self._gen.send(value)

    def throw(self, *args):
        return self._gen.throw(*args)

    def close(self):
        self._gen.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def __del__(self):
        gen = getattr(self, "_gen", None)
        if gen is not None:
            gen.close()


def _request(prompt, messages, model, model_opts, gen_opts):
    prompt = _check_str("prompt", prompt)
    msgs = _check_messages(messages)
    if prompt is None and not msgs:
        raise ValueError("give a prompt or a non-empty messages list")
    req = _model_request(model, model_opts)
    req.update(_gen_request(gen_opts))
    if msgs:
        req["messages"] = msgs
    if prompt is not None:
        req["prompt"] = prompt
    return req


# ---------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------

def get_llm_response(prompt=None, model=None, provider="airllm", messages=None, max_tokens=256,
                     temperature=0.7, format=None, compression=PLATFORM_DEFAULT, hf_token=None,
                     delete_original=False, max_seq_len=None, prefetching=True, stream=False,
                     **kwargs):
    """Generates a reply with a local model, streamed layer by layer from disk.

    prompt: a user message, appended to ``messages`` unless it is already
    their last user turn. model: a Hugging Face id ("org/name"), a local HF
    folder or a .gguf file. compression: "4bit", "8bit", or None for none;
    the default is the platform's ("4bit" on Linux, none on macOS).
    format="json" makes the reply a single JSON object; format=<dict>, a
    JSON schema, makes it an object valid against that schema (the subset in
    docs/json-mode.md; other keywords raise AirLLMError naming them).
    tools: OpenAI tools ([{"type": "function", "function": {"name",
    "description", "parameters"}}]), given to the model's chat template;
    tool_choice: "auto" (default), "none", "required" or a function name
    (or {"type": "function", "function": {"name": ...}}): with "required" or
    a name the reply is one call whose arguments follow the tool's
    parameters schema. Other keyword arguments: top_p, top_k, min_p,
    repeat_penalty, seed, stop (a string or a list), cache_dir, ram_budget
    (bytes of layers kept in memory), n_threads, revision.

    Returns a dict with "response" (the text, without tool calls),
    "messages" (the conversation with the reply appended, its tool_calls
    included), "raw_response" (the text as generated), "tool_calls" (OpenAI
    tool calls: {"id", "type": "function", "function": {"name",
    "arguments" (a JSON string)}}), "tool_results" ([]), "usage" and
    "finish_reason" ("tool_calls" when calls were made). With stream=True,
    returns a generator of text pieces instead; closing it stops generation.
    Library failures raise AirLLMError.
    """
    if not isinstance(provider, str) or provider.lower() != "airllm":
        raise ValueError(f"airllm_c serves provider='airllm' only, not {provider!r}")
    model_opts, gen_opts = _split_kwargs(kwargs, "get_llm_response")
    model_opts.update(compression=compression, hf_token=hf_token, delete_original=delete_original,
                      max_seq_len=max_seq_len, prefetching=prefetching)
    gen_opts.update(max_tokens=max_tokens, temperature=temperature, format=format)
    req = _request(prompt, messages, model, model_opts, gen_opts)
    in_messages = list(messages) if messages is not None else []
    if stream:
        return ResponseStream(req, _secrets(req), in_messages)
    return _call(req, _secrets(req), in_messages)


def version():
    """The C library's version, "MAJOR.MINOR.PATCH"."""
    return _lib.load().air_version().decode()


def default_compression():
    """The library's default compression on this platform ("4bit" or "none")."""
    return _lib.load().air_default_compression().decode()


def clear_model_cache():
    """Closes the models the library keeps open (those not in use)."""
    _lib.load().air_model_cache_clear()


def library_path():
    """Path of the libairllm in use."""
    return _lib.loaded_path()


class Model:
    """A model and its open options; each call goes through get_llm_response,
    and the library keeps the opened model for the life of the process.

        m = Model("Qwen/Qwen2.5-7B-Instruct", compression="4bit")
        m.generate("Hello", max_tokens=32)
        for piece in m.chat_stream([{"role": "user", "content": "Hi"}]):
            print(piece, end="")
    """

    def __init__(self, model, **options):
        model_opts, gen_opts = _split_kwargs(options, "Model")
        if gen_opts:
            raise TypeError(f"Model() takes model options only; pass {sorted(gen_opts)} to "
                            "chat() or generate()")
        _model_request(model, model_opts)  # validate now
        self.model = os.fspath(model) if isinstance(model, os.PathLike) else model
        self._options = model_opts

    def __repr__(self):
        shown = {k: v for k, v in self._options.items() if k != "hf_token"}
        args = "".join(f", {k}={v!r}" for k, v in sorted(shown.items()))
        return f"Model({self.model!r}{args})"

    def _gen(self, gen, where):
        model_opts, gen_opts = _split_kwargs(gen, where)
        if model_opts:
            raise TypeError(f"{where}() takes generation options only; {sorted(model_opts)} "
                            "belong to Model()")
        return gen_opts

    def response(self, prompt=None, messages=None, stream=False, **gen):
        """The full get_llm_response dict (or its generator with stream=True)."""
        gen_opts = self._gen(gen, "response")
        req = _request(prompt, messages, self.model, self._options, gen_opts)
        in_messages = list(messages) if messages is not None else []
        if stream:
            return ResponseStream(req, _secrets(req), in_messages)
        return _call(req, _secrets(req), in_messages)

    def chat(self, messages, **gen):
        """The assistant's reply to a conversation, as a string."""
        return self.response(messages=messages, **gen)["response"]

    def generate(self, prompt, system=None, **gen):
        """The reply to one user prompt (with an optional system prompt)."""
        msgs = [{"role": "system", "content": system}] if system else None
        return self.response(prompt=prompt, messages=msgs, **gen)["response"]

    def chat_stream(self, messages, **gen):
        """Generator of the reply's text pieces; closing it stops generation."""
        return self.response(messages=messages, stream=True, **gen)

    def generate_stream(self, prompt, system=None, **gen):
        """Generator of the reply's text pieces for one user prompt."""
        msgs = [{"role": "system", "content": system}] if system else None
        return self.response(prompt=prompt, messages=msgs, stream=True, **gen)
