"""airllm: the AirLLM interface, as a thin adapter over airllm_c.

This is not the AirLLM package. It provides the part of its interface that
npcpy's provider="airllm" uses, and runs it on airllm.c (through airllm_c, a
ctypes binding of libairllm), on the CPU, without torch or a GPU:

    from airllm import AutoModel
    model = AutoModel.from_pretrained("Qwen/Qwen2.5-7B-Instruct", compression="4bit")
    text = model.tokenizer.apply_chat_template(messages, tokenize=False,
                                               add_generation_prompt=True)
    tokens = model.tokenizer(text, return_tensors="pt", truncation=True, max_length=2048)
    out = model.generate(tokens["input_ids"].cuda(), max_new_tokens=64)
    reply = model.tokenizer.decode(out[0], skip_special_tokens=True)

Every call maps onto one airllm_c.Model step: the chat template, the
tokenizer and the decoder of libairllm, and generation from token ids. The
"pt" tensors are TokenIds (see _tensor.py), not torch tensors; .cuda() returns
them unchanged. It shadows the real package, so it is installed only on
request (pip install ./python/compat). See docs/python.md of airllm.c.
"""

from ._tensor import TokenIds
from ._tokenizer import BatchEncoding, Tokenizer

try:
    import airllm_c as _airllm_c
except ImportError as _e:  # reported when a model is opened (see _need_backend)
    _airllm_c = None
    _import_error = _e

__version__ = "0.1.0"
BACKEND = "airllm.c"

__all__ = ["AutoModel", "AirLLMModel", "BatchEncoding", "GenerateOutput", "TokenIds", "Tokenizer"]


def _need_backend():
    if _airllm_c is None:
        # not an ImportError: callers that catch ImportError at `import airllm`
        # would report the adapter itself as missing
        raise RuntimeError(
            "the `airllm` compatibility package runs on airllm_c, which could not be imported "
            f"({_import_error}); install it from the airllm.c checkout with `pip install ./python`")
    return _airllm_c


class GenerateOutput:
    """generate(..., return_dict_in_generate=True): .sequences (also
    out["sequences"] and out[0]), the prompt ids followed by the new ids."""

    def __init__(self, sequences):
        self.sequences = sequences

    def __getitem__(self, key):
        if key in ("sequences", 0):
            return self.sequences
        raise KeyError(key)

    def keys(self):
        return ["sequences"]


class AirLLMModel:
    """A model opened by AutoModel.from_pretrained: .tokenizer and
    .generate(). Holds an airllm_c.Model (the library keeps the opened model
    in its process cache)."""

    def __init__(self, model):
        self._model = model
        self.tokenizer = Tokenizer(model)
        self.model_name = model.model

    def __repr__(self):
        return f"AirLLMModel({self._model!r}, backend='airllm.c')"

    def generate(self, input_ids=None, max_new_tokens=None, max_length=None, do_sample=False,
                 temperature=None, top_p=None, top_k=None, repetition_penalty=None,
                 return_dict_in_generate=False, use_cache=True, attention_mask=None,
                 pad_token_id=None, eos_token_id=None, output_scores=False, **kwargs):
        """Generates after input_ids (one row). Greedy unless do_sample=True
        (then temperature, top_p and top_k as transformers' defaults: 1.0,
        1.0, 50). Returns the ids (1, prompt + new) as TokenIds, the EOS id
        included when generation stopped at one; or a GenerateOutput with
        return_dict_in_generate=True. Without max_new_tokens, max_length
        (default 20, as transformers) bounds prompt + new ids."""
        if kwargs:
            raise TypeError(f"generate() got unexpected keyword arguments {sorted(kwargs)} "
                            "(the airllm_c adapter takes transformers' common ones)")
        if output_scores:
            raise ValueError("output_scores is not supported by the airllm_c adapter")
        if eos_token_id is not None:
            raise ValueError("eos_token_id cannot be changed: generation stops at the model's "
                             "own EOS ids")
        if input_ids is None:
            raise TypeError("generate() needs input_ids")
        rows = TokenIds(input_ids)
        if rows.ndim == 1:
            rows = TokenIds([rows.tolist()])
        if rows.shape[0] != 1:
            raise ValueError(f"generate() takes one sequence at a time (input_ids has "
                             f"{rows.shape[0]} rows)")
        prompt = rows.tolist()[0]
        if max_new_tokens is None:
            max_new_tokens = max(0, (20 if max_length is None else max_length) - len(prompt))
        gen = {"max_tokens": max_new_tokens}
        if do_sample:
            gen.update(temperature=1.0 if temperature is None else temperature,
                       top_p=1.0 if top_p is None else top_p,
                       top_k=50 if top_k is None else top_k, min_p=0.0)
        else:
            gen["temperature"] = 0.0
        if repetition_penalty is not None:
            gen["repeat_penalty"] = repetition_penalty
        r = self._model.generate_ids(prompt, **gen)
        seq = TokenIds([prompt + r["completion_ids"]])
        return GenerateOutput(seq) if return_dict_in_generate else seq


class AutoModel:
    """AutoModel.from_pretrained(name, ...) opens a model with airllm_c."""

    def __init__(self, *args, **kwargs):
        raise TypeError("use AutoModel.from_pretrained(name, ...)")

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, compression=None, hf_token=None,
                        delete_original=False, max_seq_len=None, prefetching=True,
                        layer_shards_saving_path=None, profiling_mode=False, device=None,
                        dtype=None, **kwargs):
        """Opens (and on first use splits) a model: a Hugging Face id, a local
        folder or a .gguf file. compression: "4bit", "8bit" or None (no
        compression, AirLLM's default). layer_shards_saving_path: where the
        layer store goes (airllm_c's cache_dir). device, dtype and
        profiling_mode are accepted and have no effect: libairllm runs on the
        CPU, in the precision the compression gives. Other airllm_c model
        options (ram_budget, n_threads, revision, cache_dir) may be given."""
        airllm_c = _need_backend()
        options = dict(kwargs)
        if layer_shards_saving_path is not None:
            options["cache_dir"] = layer_shards_saving_path
        model = airllm_c.Model(pretrained_model_name_or_path, compression=compression,
                               hf_token=hf_token, delete_original=delete_original,
                               max_seq_len=max_seq_len, prefetching=prefetching, **options)
        return AirLLMModel(model.open())  # opened (split on first use) now, as AirLLM does
