"""Tokenizer: the model's tokenizer and chat template, with the calling
conventions of a transformers tokenizer, over airllm_c.Model's steps
(apply_chat_template, tokenize, detokenize; the work is done by libairllm).

Covered: __call__ / encode (one text or a list, truncation to max_length,
return_tensors None / "pt" / "np"), decode / batch_decode, and
apply_chat_template. Not covered, and refused with a message: padding texts of
different lengths, text pairs, custom chat templates, continue_final_message.
"""

from ._tensor import TokenIds

_TRUNCATE = (True, "longest_first", "only_first")
_NO_TRUNCATE = (None, False, "do_not_truncate")


class BatchEncoding(dict):
    """The tokenizer's output: "input_ids" and "attention_mask", also as
    attributes."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    def to(self, *args, **kwargs):
        return self

    def cuda(self, *args, **kwargs):
        return self


class Tokenizer:
    """The tokenizer of a model opened by AutoModel.from_pretrained."""

    def __init__(self, model):
        self._model = model  # an airllm_c.Model
        self.truncation_side = "right"  # as transformers' default

    def __repr__(self):
        return f"Tokenizer({self._model.model!r}, backend='airllm_c')"

    # -- encoding -----------------------------------------------------------
    def _encode_one(self, text, add_special_tokens, truncation, max_length):
        if not isinstance(text, str):
            raise TypeError(f"text must be a string or a list of strings, not "
                            f"{type(text).__name__}")
        ids = self._model.tokenize(text, add_special=add_special_tokens)
        if truncation in _TRUNCATE:
            if max_length is not None and len(ids) > max_length:
                ids = ids[len(ids) - max_length:] if self.truncation_side == "left" \
                    else ids[:max_length]
        elif truncation not in _NO_TRUNCATE:
            raise ValueError(f"truncation={truncation!r} is not supported (True, False, "
                             "'longest_first', 'only_first' or 'do_not_truncate')")
        return ids

    def __call__(self, text, text_pair=None, add_special_tokens=True, padding=False,
                 truncation=None, max_length=None, return_tensors=None,
                 return_attention_mask=None, return_token_type_ids=None, verbose=True):
        """Token ids of a text (or a list of texts) as a BatchEncoding with
        "input_ids" and "attention_mask"."""
        if text_pair is not None:
            raise ValueError("text pairs are not supported by the airllm_c adapter")
        if return_token_type_ids:
            raise ValueError("token type ids are not supported by the airllm_c adapter")
        if max_length is not None and (isinstance(max_length, bool)
                                       or not isinstance(max_length, int) or max_length < 0):
            raise ValueError(f"max_length must be a non-negative int, got {max_length!r}")
        batch = isinstance(text, (list, tuple))
        rows = [self._encode_one(t, add_special_tokens, truncation, max_length)
                for t in (text if batch else [text])]
        if padding not in (False, None, "do_not_pad") and len({len(r) for r in rows}) > 1:
            raise ValueError("padding texts of different lengths is not supported by the "
                             "airllm_c adapter; encode one text at a time")
        if return_tensors is not None and len({len(r) for r in rows}) > 1:
            raise ValueError("texts of different lengths cannot form one tensor; encode one "
                             "text at a time")
        masks = [[1] * len(r) for r in rows]
        if return_tensors is None:
            ids, mask = (rows, masks) if batch else (rows[0], masks[0])
        else:
            ids, mask = _tensor(rows, return_tensors), _tensor(masks, return_tensors)
        out = BatchEncoding(input_ids=ids)
        if return_attention_mask is not False:
            out["attention_mask"] = mask
        return out

    def encode(self, text, add_special_tokens=True, truncation=None, max_length=None,
               return_tensors=None):
        """Token ids of one text (a list of int, or a (1, n) tensor)."""
        ids = self._encode_one(text, add_special_tokens, truncation, max_length)
        return ids if return_tensors is None else _tensor([ids], return_tensors)

    # -- decoding -----------------------------------------------------------
    def decode(self, token_ids, skip_special_tokens=False, clean_up_tokenization_spaces=None,
               **kwargs):
        """The text of one sequence of ids (a list, a TokenIds row, or any
        object with tolist())."""
        if hasattr(token_ids, "tolist") and not isinstance(token_ids, list):
            token_ids = token_ids.tolist()
        if isinstance(token_ids, int):
            token_ids = [token_ids]
        if token_ids and isinstance(token_ids[0], list):
            raise TypeError("decode() takes one sequence of ids; use batch_decode() for several "
                            "(or index the row: decode(ids[0]))")
        return self._model.detokenize(token_ids, skip_special=skip_special_tokens)

    def batch_decode(self, sequences, skip_special_tokens=False, **kwargs):
        """The texts of several sequences of ids."""
        if hasattr(sequences, "tolist") and not isinstance(sequences, list):
            sequences = sequences.tolist()
        return [self.decode(s, skip_special_tokens=skip_special_tokens) for s in sequences]

    # -- chat template ------------------------------------------------------
    def apply_chat_template(self, conversation, tools=None, documents=None, chat_template=None,
                            add_generation_prompt=False, continue_final_message=False,
                            tokenize=True, padding=False, truncation=False, max_length=None,
                            return_tensors=None, return_dict=False, **template_kwargs):
        """The conversation through the model's chat template: the prompt text
        (tokenize=False) or its ids (tokenize=True, without added special
        tokens, as transformers does). Extra keyword arguments (e.g.
        enable_thinking=False) become template variables."""
        if chat_template is not None:
            raise ValueError("a custom chat_template is not supported by the airllm_c adapter; "
                             "the model's own template is used")
        if continue_final_message:
            raise ValueError("continue_final_message is not supported by the airllm_c adapter")
        if tools is not None:
            template_kwargs["tools"] = tools
        if documents is not None:
            template_kwargs["documents"] = documents
        text = self._model.apply_chat_template(
            conversation, add_generation_prompt=add_generation_prompt, **template_kwargs)
        if not tokenize:
            return text
        enc = self(text, add_special_tokens=False, padding=padding, truncation=truncation,
                   max_length=max_length, return_tensors=return_tensors)
        return enc if return_dict else enc["input_ids"]


def _tensor(rows, kind):
    if kind == "pt":
        return TokenIds(rows)
    if kind == "np":
        try:
            import numpy
        except ImportError:
            raise ValueError("return_tensors='np' needs numpy, which is not installed; use "
                             "return_tensors='pt' (TokenIds, no dependency) or None") from None
        return numpy.array(rows, dtype=numpy.int64)
    raise ValueError(f"return_tensors={kind!r} is not supported by the airllm_c adapter: use "
                     "'pt' (TokenIds, no torch needed), 'np' or None")
