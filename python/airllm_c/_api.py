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
                 "cache_dir", "ram_budget", "n_threads", "revision", "device", "vram_budget")
GEN_OPTIONS = ("max_tokens", "temperature", "top_p", "top_k", "min_p", "repeat_penalty", "seed",
               "stop", "format", "think", "raw", "draft_model", "draft_compression",
               "speculative", "draft_max", "tools", "tool_choice")
# Accepted for drop-in compatibility with get_llm_response of other providers
# and ignored: they have no meaning for a local model.
IGNORED_OPTIONS = ("api_url", "api_key", "npc", "team", "attachments")
# Text only: these are refused when not empty.
TEXT_ONLY_OPTIONS = ("tool_map", "images")


# ---------------------------------------------------------------------------
# Request building and validation
# ---------------------------------------------------------------------------

def _check_str(name, v, allow_none=True):
    if v is None and allow_none:
        return None
    if not isinstance(v, str):
        raise TypeError(f"{name} must be a string, not {type(v).__name__}")
    return v


# Ranges of the numeric arguments, as the C library accepts them
# (air_gen_params and air_model_params in airllm.h).
INT_MAX = 2 ** 31 - 1
EXACT_MAX = 2 ** 53  # larger integers are not exact in the JSON request
FLT_MAX = 3.4028234663852886e38
MAX_SEQ_LEN = 1 << 24


def _range_text(minimum, maximum, exclusive_min=False):
    low = f"> {minimum}" if exclusive_min else f">= {minimum}"
    if maximum is None:
        return low
    return f"from {minimum} to {maximum}"


def _check_int(name, v, minimum=None, maximum=None):
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name} must be an int, not {type(v).__name__}")
    if (minimum is not None and v < minimum) or (maximum is not None and v > maximum):
        raise ValueError(f"{name} must be an int {_range_text(minimum, maximum)}, got {v}")
    return v


def _check_float(name, v, minimum=None, maximum=None, exclusive_min=False):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{name} must be a number, not {type(v).__name__}")
    try:
        v = float(v)
    except OverflowError:
        raise ValueError(f"{name} must be a finite number, got {v}") from None
    if v != v or v in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be a finite number, got {v}")
    if ((minimum is not None and (v < minimum or (exclusive_min and v == minimum)))
            or (maximum is not None and v > maximum)):
        shown = None if maximum == FLT_MAX else maximum
        raise ValueError(f"{name} must be a number {_range_text(minimum, shown, exclusive_min)}, "
                         f"got {v}")
    return v


def _check_ids(ids):
    """Token ids as a list of int (any iterable of integers, e.g. a list or a
    tensor row's tolist())."""
    if hasattr(ids, "tolist") and not isinstance(ids, list):
        ids = ids.tolist()
    if isinstance(ids, (str, bytes)) or not hasattr(ids, "__iter__"):
        raise TypeError(f"token ids must be a sequence of int, not {type(ids).__name__}")
    out = []
    for i, v in enumerate(ids):
        if isinstance(v, bool) or not hasattr(v, "__index__"):
            raise TypeError(f"token ids[{i}] must be an int, not {type(v).__name__}")
        v = v.__index__()
        if not 0 <= v < 2 ** 31:
            raise ValueError(f"token ids[{i}] = {v} is not a token id")
        out.append(v)
    return out


def _check_json(what, value):
    """value as UTF-8 JSON; TypeError when it cannot be written as JSON."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise TypeError(f"{what} must be JSON data (dicts, lists, strings, numbers): {e}") \
            from None


def _take_text(lib, ptr, n=None):
    """The library's string at ptr (n bytes, or up to the NUL), freed."""
    try:
        raw = ctypes.string_at(ptr, n) if n is not None else ctypes.string_at(ptr)
        return raw.decode("utf-8", errors="replace")
    finally:
        lib.air_free(ptr)


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


def _conversation(prompt, messages):
    """The conversation as npcpy's providers send it: copies of the caller's
    message dicts, with a non-empty prompt replacing the content of a last
    user turn (the first text part of a content list), or appended as a new
    user turn. Validation comes later (_check_messages)."""
    if messages is None:
        messages = []
    if isinstance(messages, (str, bytes)) or not hasattr(messages, "__iter__"):
        raise TypeError("messages must be a list of {'role': ..., 'content': ...} dicts")
    conv = [dict(m) if isinstance(m, dict) else m for m in messages]
    prompt = _check_str("prompt", prompt)
    if not prompt:
        return conv
    last = conv[-1] if conv else None
    if isinstance(last, dict) and last.get("role") == "user":
        content = last.get("content")
        if isinstance(content, list):
            parts = [dict(p) if isinstance(p, dict) else p for p in content]
            for p in parts:
                if isinstance(p, dict) and p.get("type") == "text":
                    p["text"] = prompt
                    break
            else:
                parts.append({"type": "text", "text": prompt})
            last["content"] = parts
        else:
            last["content"] = prompt
    else:
        conv.append({"role": "user", "content": prompt})
    return conv


def _think_vars(think):
    """npcpy's think= as chat template variables (enable_thinking, and
    reasoning_effort for "low"/"medium"/"high")."""
    if think is None:
        return None
    if isinstance(think, bool):
        return {"enable_thinking": think}
    if isinstance(think, str) and think in ("low", "medium", "high"):
        return {"enable_thinking": True, "reasoning_effort": think}
    raise ValueError(f"think must be None, True, False, 'low', 'medium' or 'high', got {think!r}")


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
        req["max_seq_len"] = _check_int("max_seq_len", opts["max_seq_len"], 0, MAX_SEQ_LEN)
    if opts.get("ram_budget") is not None:
        req["ram_budget"] = _check_int("ram_budget", opts["ram_budget"], 0, EXACT_MAX)
    if opts.get("n_threads") is not None:
        req["n_threads"] = _check_int("n_threads", opts["n_threads"], 0, INT_MAX)
    if opts.get("device") is not None:
        dev = _check_str("device", opts["device"])
        if dev not in ("auto", "cpu", "cuda"):
            raise ValueError(f"device must be 'auto', 'cpu' or 'cuda', not {dev!r}")
        req["device"] = dev
    if opts.get("vram_budget") is not None:
        req["vram_budget"] = _check_int("vram_budget", opts["vram_budget"], 0, EXACT_MAX)
    return req


def _gen_request(opts):
    """JSON fields of one generation; opts holds GEN_OPTIONS keys."""
    req = {}
    if opts.get("max_tokens") is not None:
        req["max_tokens"] = _check_int("max_tokens", opts["max_tokens"], 0, INT_MAX)
    if opts.get("temperature") is not None:
        req["temperature"] = _check_float("temperature", opts["temperature"], 0, FLT_MAX)
    for k in ("top_p", "min_p"):
        if opts.get(k) is not None:
            req[k] = _check_float(k, opts[k], 0, 1)
    if opts.get("repeat_penalty") is not None:
        req["repeat_penalty"] = _check_float("repeat_penalty", opts["repeat_penalty"], 0, FLT_MAX,
                                             exclusive_min=True)
    if opts.get("top_k") is not None:
        req["top_k"] = _check_int("top_k", opts["top_k"], 0, INT_MAX)
    if opts.get("seed") is not None:
        req["seed"] = _check_int("seed", opts["seed"], 0, EXACT_MAX)
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
            if req.get("max_tokens", 256) < 2:
                raise ValueError(f"max_tokens must be 2 or more with format='json' (the shortest "
                                 f"JSON object, {{}}, takes two tokens), got {req['max_tokens']}")
            req["format"] = "json"
        else:
            raise ValueError(f"format must be None, 'json' or a JSON schema dict, got {fmt!r}")
    tvars = _think_vars(opts.get("think"))
    if tvars:
        req["chat_template_kwargs"] = tvars
    raw = opts.get("raw")
    if raw is not None:
        if not isinstance(raw, bool):
            raise TypeError(f"raw must be True or False, got {raw!r}")
        if raw:
            req["raw"] = True
    # speculative decoding: same output, several tokens per pass over the layers
    draft = opts.get("draft_model")
    if draft is not None:
        req["draft_model"] = os.fspath(draft) if isinstance(draft, os.PathLike) else \
            _check_str("draft_model", draft)
    if opts.get("draft_compression") is not None:
        req["draft_compression"] = _check_str("draft_compression", opts["draft_compression"])
    spec = opts.get("speculative")
    if spec is not None:
        if not isinstance(spec, bool):
            raise TypeError(f"speculative must be True, False or None, got {spec!r}")
        req["speculative"] = spec
    if opts.get("draft_max") is not None:
        n = _check_int("draft_max", opts["draft_max"], 0)
        if n > 64:
            raise ValueError(f"draft_max must be 0 (automatic) to 64, got {n}")
        req["draft_max"] = n
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
        elif k in TEXT_ONLY_OPTIONS:
            if v:
                why = ("airllm_c runs text-only language models, so it cannot take images"
                       if k == "images" else
                       "airllm_c returns tool calls but does not run them")
                raise ValueError(f"{k}: {why}; leave {k} empty")
        else:
            raise TypeError(f"{where}() got an unexpected keyword argument {k!r}")
    return model_opts, gen_opts


# ---------------------------------------------------------------------------
# Calling the library
# ---------------------------------------------------------------------------

_active = weakref.WeakSet()  # running calls, stopped at interpreter exit
_handle_lock = threading.Lock()  # Model._handle: one acquire per object
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


def _error(lib, status, secrets):
    """The AirLLMError of a failed call; read on the thread that made it (the
    library's last error is per thread)."""
    detail = (lib.air_last_error() or b"").decode("utf-8", errors="replace")
    desc = (lib.air_strerror(status) or b"").decode("utf-8", errors="replace")
    name = _lib.STATUS_NAMES.get(status, f"status {status}")
    return AirLLMError(status, name, desc, _redact(detail, secrets))


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
        self.finished = threading.Event()  # set when the library call has returned
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
                self.error = _error(lib, status, self.secrets)
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
            self.finished.set()

    def wait(self):
        """Waits for the worker; Ctrl-C stops generation (or the split of a
        model opened for the first time) at its next check, waits for the
        library call to return, then re-raises.

        It waits on an Event, not on Thread.join: a join interrupted by
        KeyboardInterrupt can leave the thread looking finished while the
        call still runs, and the next join then returns at once."""
        try:
            while not self.finished.wait(0.1):
                pass
        except BaseException:
            self.stop.set()
            self.finished.wait()
            raise


def _secrets(model_req):
    out = []
    if model_req.get("hf_token"):
        out.append(model_req["hf_token"])
    if os.environ.get("HF_TOKEN"):
        out.append(os.environ["HF_TOKEN"])
    return out


def _finish(result, conv):
    """Rebuilds result["messages"] from the conversation sent (copies of the
    caller's message dicts, so extra keys and content lists survive), then the
    assistant reply the library appended."""
    lib_msgs = result.get("messages") or []
    if conv is not None and len(lib_msgs) >= len(conv):
        result["messages"] = [dict(m) for m in conv] + lib_msgs[len(conv):]
    return result


def _call(request, secrets, in_messages):
    run = _Run(request, secrets).start()
    run.wait()
    if run.error is not None:
        raise run.error
    return _finish(run.result, in_messages)


class _StreamState:
    def __init__(self, request, secrets, in_messages, include_usage=False):
        self.request = request
        self.secrets = secrets
        self.in_messages = in_messages
        self.include_usage = include_usage
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
    result = state.result()
    if state.include_usage and result is not None:
        # npcpy's usage event at the end of a stream
        u = result.get("usage") or {}
        yield {"type": "usage", "input_tokens": u.get("prompt_tokens", 0),
               "output_tokens": u.get("completion_tokens", 0)}
    return result


class ResponseStream(collections.abc.Generator):
    """The text pieces of a reply, as they are produced (what
    get_llm_response(stream=True) returns).

    Iterate it for str pieces; together they are the reply's text. close()
    (also called when the stream is garbage collected, or on leaving a
    ``with`` block) stops generation and waits for the worker thread.
    Afterwards ``.result`` is the full response dict, with ``usage`` and
    ``finish_reason`` ("callback" when the stream was closed early), or None
    when the call failed or never started. With include_usage, the last item
    is not text but {"type": "usage", "input_tokens", "output_tokens"}. The generator's return value
    (``StopIteration.value``, or the value of ``yield from``) is the same dict.
    A library failure is raised by the iteration as AirLLMError.
    """

    def __init__(self, request, secrets, in_messages, include_usage=False):
        # The generator refers to this small state, not to the stream object,
        # so that dropping the last reference to the stream closes it at once.
        self._state = _StreamState(request, secrets, in_messages, include_usage)
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
    """The JSON request; the conversation is resolved here (_conversation), so
    the library gets "messages" only, or with raw=True the prompt alone."""
    req = _model_request(model, model_opts)
    req.update(_gen_request(gen_opts))
    if req.get("raw"):
        if messages or prompt is None:
            raise ValueError("raw=True continues one prompt as it is; it takes no messages "
                             "(nor a system prompt)")
        req["prompt"] = _check_str("prompt", prompt)
        return req
    msgs = _check_messages(_conversation(prompt, messages))
    if not msgs:
        raise ValueError("give a prompt or a non-empty messages list")
    req["messages"] = msgs
    return req


# ---------------------------------------------------------------------------
# Public functions
# ---------------------------------------------------------------------------

def get_llm_response(prompt=None, model=None, provider="airllm", messages=None, max_tokens=256,
                     temperature=0.7, format=None, compression=PLATFORM_DEFAULT, hf_token=None,
                     delete_original=False, max_seq_len=None, prefetching=True, stream=False,
                     context=None, include_usage=False, n_samples=1,
                     auto_process_tool_calls=False, **kwargs):
    """Generates a reply with a local model, streamed layer by layer from disk.

    prompt: a user message; it replaces the content of a last user turn of
    ``messages``, or is appended as a new user turn (as npcpy does). context:
    appended to the prompt as "User Provided Context: ...". model: a Hugging
    Face id ("org/name"), a local HF folder or a .gguf file. compression:
    "4bit", "8bit", or None for none; the default is the platform's ("4bit"
    on Linux, none on macOS). format="json" makes the reply a single JSON
    object; format=<dict>, a JSON schema, makes it an object valid against
    that schema (the subset in docs/json-mode.md). tools: OpenAI tools,
    given to the model's chat template; tool_choice: "auto" (default),
    "none", "required" or a function name: with "required" or a name the
    reply is one call whose arguments follow the tool's parameters. think: True/False sets the chat template's enable_thinking.
    n_samples > 1 runs the request that many times (seeds seed, seed+1, ...)
    and returns every run. include_usage=True with stream=True ends the
    stream with a {"type": "usage", ...} item. Other keyword arguments:
    top_p, top_k, min_p, repeat_penalty, seed, stop (a string or a list),
    raw (True: continue the prompt as it is, with no chat template, BOS
    added as the tokenizer says; for base models), cache_dir, ram_budget
    (bytes of layers kept in memory), n_threads, revision, device ("auto"
    (default): the GPU when the CUDA plugin, a driver and a GPU are there,
    else the CPU; "cpu"; "cuda": the GPU or an error), vram_budget (bytes of
    GPU memory to use; layers beyond it stream through the GPU).

    Speculative decoding (the reply is the same; a pass over the layers
    yields several tokens): draft_model, a small model with the same
    vocabulary kept in memory (draft_compression, default "4bit");
    speculative=True also proposes continuations of n-grams seen in the
    prompt and reply, False turns speculation off, None (default) uses the
    draft when given and the n-gram lookup when the model does not fit in
    memory; draft_max caps the candidate tokens per pass (0: automatic).
    "usage" reports "sweeps", "tokens_per_sweep" and "acceptance_rate".

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
    if not isinstance(include_usage, bool):
        raise TypeError(f"include_usage must be a bool, not {type(include_usage).__name__}")
    if not isinstance(auto_process_tool_calls, bool):
        raise TypeError("auto_process_tool_calls must be a bool, not "
                        f"{type(auto_process_tool_calls).__name__}")
    # (auto_process_tool_calls: calls are returned, never run; tool_map is refused)
    n_samples = 1 if n_samples is None else _check_int("n_samples", n_samples, 0) or 1
    if context:
        prompt = _check_str("prompt", prompt)
        prompt = (f"{prompt}\n\n\nUser Provided Context: {context}" if prompt
                  else f"User Provided Context: {context}")
    conv = _conversation(prompt, messages)
    req = _request(prompt, messages, model, model_opts, gen_opts)
    if stream:
        if n_samples > 1:
            raise ValueError("n_samples > 1 returns every run's full response: it needs "
                             "stream=False")
        return ResponseStream(req, _secrets(req), conv, include_usage)
    if n_samples == 1:
        return _call(req, _secrets(req), conv)
    return _samples(req, conv, n_samples)


def _samples(req, conv, n):
    """n runs of one request, as npcpy's get_llm_response returns them
    (n_samples): run i samples with seed + i, so the runs differ unless
    decoding is greedy."""
    runs = []
    for i in range(n):
        r = dict(req, seed=req.get("seed", 0) + i)
        if r["seed"] >= 2 ** 53:
            raise ValueError("seed + n_samples must stay below 2**53")
        raw = _call(r, _secrets(r), conv)
        runs.append({"response": raw["response"], "raw": raw, "combo": {}, "sample_index": i})
    return {"response": runs[0]["response"], "runs": runs, "messages": runs[0]["raw"]["messages"]}


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
        conv = _conversation(prompt, messages)
        req = _request(prompt, messages, self.model, self._options, gen_opts)
        if stream:
            return ResponseStream(req, _secrets(req), conv)
        return _call(req, _secrets(req), conv)

    # -- the steps of a chat turn, one by one (for front ends that template,
    # tokenize and decode themselves, such as the `airllm` compatibility
    # package). They use the model from the library's process cache, opened
    # on the first call and held until this object is collected.

    def _handle(self):
        h = self.__dict__.get("_h")
        if h is not None:
            return h
        with _handle_lock:
            h = self.__dict__.get("_h")
            if h is None:
                req = _model_request(self.model, self._options)
                lib = _lib.load()
                out = ctypes.c_void_p()
                st = lib.air_model_acquire_json(
                    json.dumps(req, ensure_ascii=False).encode("utf-8"), ctypes.byref(out))
                if st != 0:
                    raise _error(lib, st, _secrets(req))
                h = out.value
                weakref.finalize(self, lib.air_model_release, h)
                self._h = h
        return h

    def open(self):
        """Opens the model now (building its layer store on first use) instead
        of at the first call; returns self."""
        self._handle()
        return self

    def apply_chat_template(self, messages, add_generation_prompt=True, **template_vars):
        """The prompt text of a conversation through the model's chat template
        (as transformers' apply_chat_template(..., tokenize=False)). messages:
        dicts with "role" and "content" (any other key reaches the template);
        template_vars: extra template variables, e.g. enable_thinking=False."""
        msgs = _check_json("messages", list(_conversation(None, messages)))
        lib = _lib.load()
        out = ctypes.c_void_p()
        st = lib.air_apply_chat_template(
            self._handle(), msgs, 1 if add_generation_prompt else 0,
            _check_json("template variables", template_vars) if template_vars else None,
            ctypes.byref(out))
        if st != 0:
            raise _error(lib, st, _secrets(self._options))
        return _take_text(lib, out.value)

    def tokenize(self, text, add_special=True):
        """Token ids of text (a list of int). add_special applies the
        tokenizer's post-processor (BOS etc.), as add_special_tokens=True."""
        data = _check_str("text", text, allow_none=False).encode("utf-8", errors="surrogatepass")
        lib = _lib.load()
        ids = ctypes.POINTER(ctypes.c_int32)()
        n = ctypes.c_size_t()
        st = lib.air_tokenize(self._handle(), data, len(data), 1 if add_special else 0,
                              ctypes.byref(ids), ctypes.byref(n))
        if st != 0:
            raise _error(lib, st, _secrets(self._options))
        try:
            return ids[:n.value]
        finally:
            lib.air_free(ids)

    def detokenize(self, ids, skip_special=True):
        """The text of token ids (as transformers' decode); skip_special drops
        special tokens."""
        ids = _check_ids(ids)
        lib = _lib.load()
        arr = (ctypes.c_int32 * len(ids))(*ids)
        out = ctypes.c_void_p()
        n = ctypes.c_size_t()
        st = lib.air_detokenize(self._handle(), arr, len(ids), 1 if skip_special else 0,
                                ctypes.byref(out), ctypes.byref(n))
        if st != 0:
            raise _error(lib, st, _secrets(self._options))
        return _take_text(lib, out.value, n.value)

    def generate_ids(self, ids, **gen):
        """Generates after a prompt given as token ids (already templated and
        tokenized). Returns the get_llm_response dict without "messages", with
        "completion_ids": the generated ids, ending with the EOS id when one
        stopped generation. Generation options as for chat()."""
        gen_opts = self._gen(gen, "generate_ids")
        if gen_opts.get("think") is not None:
            raise ValueError("generate_ids(): think acts on the chat template, which a tokenized "
                             "prompt has already been through; pass enable_thinking to "
                             "apply_chat_template() instead")
        ids = _check_ids(ids)
        if not ids:
            raise ValueError("generate_ids() needs at least one token id")
        req = _model_request(self.model, self._options)
        req.update(_gen_request(gen_opts))
        req["prompt_ids"] = ids
        return _call(req, _secrets(req), None)

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
