#!/usr/bin/env python3
"""Write tests/fixtures/models/tiny_chat: a tiny Qwen2 chat model with a real
byte-level BPE tokenizer and a ChatML chat template, plus golden.json for the
whole text path (chat template -> tokenizer -> model -> detokenizer).

Run from the repository root:

    python3 tests/gen/gen_tiny_chat.py           # (re)writes the folder, then checks it
    python3 tests/gen/gen_tiny_chat.py --check   # only reloads the folder and re-checks golden.json

Needs `tokenizers`, `transformers` and `torch` (CPU only, a few seconds on one
core). Output is deterministic for a given set of library versions: fixed
training text, fixed seeds, single-threaded torch and tokenizers.

What is written (see docs/test-models.md, section "tiny_chat"):

- tokenizer.json, tokenizer_config.json: byte-level BPE (GPT-2/Qwen style),
  vocabulary 512 = 256 byte tokens + 253 merges + 3 special tokens appended
  at the end (<|endoftext|> 509, <|im_start|> 510, <|im_end|> 511, stored
  only in "added_tokens", as in Qwen's hub files); no BOS; ChatML template.
- config.json, generation_config.json, 2 BF16 safetensors shards + index:
  Qwen2ForCausalLM, hidden 64, 2 layers, 4 heads / 2 KV heads, tied head.
- golden.json: 3 conversations with prompt text, prompt ids, greedy ids and
  greedy text, computed by transformers in fp32 from the BF16 files.
"""

import argparse
import copy
import hashlib
import json
import os
import shutil
import sys
import tempfile

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import tokenizers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from tokenizers import (  # noqa: E402
    AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers,
)
from transformers import (  # noqa: E402
    AutoModelForCausalLM,
    AutoTokenizer,
    GenerationConfig,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
OUT = os.path.join(ROOT, "tests", "fixtures", "models", "tiny_chat")

VOCAB = 512
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 509, 510, 511
MAX_NEW = 24
GAP_REL = 5e-3      # required top1-top2 gap, relative to max |logit|, at every greedy step
MIN_DISTINCT = 6    # a greedy path must visit at least this many distinct tokens
MIN_STOP_LEN = 4    # a run that ends on EOS must first emit at least this many distinct tokens
BASE_SEED = 7000

# Pre-tokenizer split pattern of Qwen2 tokenizers (transformers rebuilds a
# model_type "qwen2" tokenizer with exactly this Split + ByteLevel + NFC
# pipeline, whatever tokenizer.json says, so tokenizer.json must match it).
SPLIT_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
               r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

# ---------------------------------------------------------------------------
# Training text for the tokenizer. Plain English first (it dominates the
# merges), then some chat words, JSON, numbers, and a little French, German,
# Spanish, Chinese and emoji so that multi-byte UTF-8 shows up in the vocab.
# ---------------------------------------------------------------------------

TRAIN_TEXT = r"""
The small engine reads a model from disk one layer at a time. Each layer is
loaded, used for every token in the batch, and then dropped again, so the
memory it needs stays close to the size of a single layer. This is slower than
keeping the whole model in memory, but it lets a laptop run a model that would
never fit in its RAM.

Hello! How are you today? I am fine, thank you. What would you like to talk
about? We could talk about the weather, about books, or about the history of
the town where you were born. The weather is nice: the sun is out and there is
a light wind from the west. It will rain later in the evening.

You are a helpful assistant. The user asks a question and the assistant gives
a short, clear answer. If the assistant does not know the answer, it says so.
The system message tells the assistant who it is and how it should behave.
Who are you? I am a helpful assistant, a small language model that answers
questions. Hello, who are you? Hi there, I am here to help you.

A tokenizer turns text into numbers, and a detokenizer turns the numbers back
into text. Byte-level tokenizers never fail: every string is a sequence of
bytes, and every byte has its own token. Common words become single tokens,
rare words are split into smaller pieces, and unknown symbols fall back to
their bytes. The model only ever sees the numbers.

There are three kinds of people in the world: those who can count, and those
who cannot. In 1999 there were 365 days in the year; in 2000 there were 366.
The answer is 42. Add 17 and 25 to get 42, or multiply 6 by 7. The price is
$3.50 per item, or 10% less when you buy 12 or more items.

{"name": "Alice", "age": 30, "city": "Paris", "tags": ["admin", "user"]}
{"name": "Bob", "age": 25, "city": "Berlin", "active": true, "score": 9.5}
{"id": 1, "type": "message", "role": "user", "content": "Hello"}
{"id": 2, "type": "message", "role": "assistant", "content": "Hi! How can I help?"}
{"answer": "yes", "confidence": 0.87, "items": [1, 2, 3, 4, 5], "next": null}
{"temperature": 21.5, "unit": "C", "ok": false, "values": {"min": 0, "max": 100}}
{"query": "weather", "results": [{"day": "Monday", "high": 18}, {"day": "Tuesday", "high": 20}]}
[{"key": "a", "value": 10}, {"key": "b", "value": 20}, {"key": "c", "value": 30}]

def add(a, b):
    return a + b

for i in range(10):
    print(i, add(i, i * 2))

if (x > 0 && y < 10) { return x + y; } else { return 0; }

Bonjour, comment allez-vous ? Je vais très bien, merci. C'est une belle journée
et le café est délicieux. Où est la gare ? Elle est près de l'église.
Guten Tag! Wie geht es Ihnen? Mir geht es gut, danke. Das Wetter ist schön und
die Straße ist ruhig. Grüße aus München.
Hola, ¿cómo estás? Estoy bien, gracias. Mañana vamos a la playa con mi familia.
你好，你是谁？我是一个有用的助手。今天天气很好，我们去公园散步吧。
中文文本也可以被分词。谢谢你的帮助！
こんにちは、元気ですか？ありがとう。
Emoji are bytes too: 😀 🙂 👍 🎉 ❤️ 🚀 — and so are symbols like € £ ° ± × ÷ → ….

The quick brown fox jumps over the lazy dog. Pack my box with five dozen
liquor jugs. How vexingly quick daft zebras jump! The five boxing wizards jump
quickly. Sphinx of black quartz, judge my vow.

Once upon a time there was a little robot who wanted to learn how to write.
Every morning it read one page of a book, and every evening it wrote one line
of its own. After a year it had written a whole story about a cat, a river and
a very old tree. The cat liked the river, the river liked the tree, and the
tree liked everyone. The end.

Question: What is the capital of France? Answer: The capital of France is Paris.
Question: What is the capital of Germany? Answer: The capital of Germany is Berlin.
Question: What is 2 + 2? Answer: 2 + 2 = 4.
Question: Can you write JSON? Answer: Yes, for example {"ok": true}.
"""


def training_lines():
    lines = [ln for ln in TRAIN_TEXT.strip("\n").split("\n")]
    # Paragraph-sized chunks keep newlines and indentation inside the data.
    chunks, cur = [], []
    for ln in lines:
        if ln.strip() == "" and cur:
            chunks.append("\n".join(cur) + "\n")
            cur = []
        elif ln.strip() != "":
            cur.append(ln)
    if cur:
        chunks.append("\n".join(cur) + "\n")
    return chunks


# ---------------------------------------------------------------------------
# Chat template: ChatML as in Qwen2.5 without tools. A default system message
# is inserted when the conversation does not start with one.
# ---------------------------------------------------------------------------

CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}\n"
    "    {{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}\n"
    "{%- else %}\n"
    "    {{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}\n"
    "{%- endif %}\n"
    "{%- for message in messages %}\n"
    "    {%- if not (loop.first and message['role'] == 'system') %}\n"
    "        {{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}\n"
    "    {%- endif %}\n"
    "{%- endfor %}\n"
    "{%- if add_generation_prompt %}\n"
    "    {{- '<|im_start|>assistant\\n' }}\n"
    "{%- endif %}\n"
)

CONVERSATIONS = [
    ("single_user", [
        {"role": "user", "content": "Hello, who are you?"},
    ]),
    ("multi_turn", [
        {"role": "system", "content": "You answer in JSON only."},
        {"role": "user", "content": "What is the capital of France?"},
        {"role": "assistant", "content": "{\"answer\": \"Paris\", \"confidence\": 0.99}"},
        {"role": "user", "content": "And of Germany? Reply with {\"answer\": ...}."},
    ]),
    ("non_ascii", [
        {"role": "user", "content": "Café au lait, s'il vous plaît. 你好，中文怎么样？ Emoji: 😀👍🎉"},
    ]),
]


def build_tokenizer(tmp):
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(SPLIT_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB - len(SPECIALS),
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    tok.train_from_iterator(training_lines(), trainer=trainer)
    n_model = tok.get_vocab_size(with_added_tokens=False)
    if n_model != VOCAB - len(SPECIALS):
        sys.exit(f"trained vocabulary has {n_model} entries, expected {VOCAB - len(SPECIALS)}: "
                 "add training text")
    tok.add_special_tokens([
        AddedToken(s, special=True, normalized=False, lstrip=False, rstrip=False, single_word=False)
        for s in SPECIALS
    ])
    assert tok.get_vocab_size(with_added_tokens=True) == VOCAB

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        extra_special_tokens=["<|im_start|>", "<|im_end|>"],
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
        model_max_length=512,
        split_special_tokens=False,
    )
    fast.save_pretrained(tmp, save_jinja_files=False)
    # Name the class real Qwen2 folders name; it builds the same pipeline.
    path = os.path.join(tmp, "tokenizer_config.json")
    with open(path, encoding="utf-8") as f:
        tc = json.load(f)
    tc["tokenizer_class"] = "Qwen2Tokenizer"
    dump_json(path, tc, indent=2)
    return AutoTokenizer.from_pretrained(tmp)


def special_ids(tok):
    ids = {s: tok.convert_tokens_to_ids(s) for s in SPECIALS}
    assert ids == {"<|endoftext|>": 509, "<|im_start|>": 510, "<|im_end|>": 511}, ids
    return ids


def build_config(ids):
    cfg = Qwen2Config(
        vocab_size=VOCAB,
        hidden_size=64,
        intermediate_size=176,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        rms_norm_eps=1e-6,
        rope_theta=1000000.0,
        tie_word_embeddings=True,
        hidden_act="silu",
        use_sliding_window=False,
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=None,
    )
    return cfg


EMBED_STD = 0.1        # tied embedding / output head ...
EMBED_ROW_SPREAD = 0.3  # ... with each row scaled by exp(0.3 randn): peakier logits
EOS_ROW_SCALE = 1.8     # <|im_end|>'s row scaled up so that some greedy runs end on it
FINAL_NORM_SCALE = 2.0
LINEAR_STD = 0.15


def init_weights(model, seed):
    """Norm weights 1 + 0.1 randn (final norm x2), linears std 0.15, q/k/v
    biases std 0.1, tied embedding std 0.1 with log-normal row scales."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            if name == "model.norm.weight":
                v = FINAL_NORM_SCALE * (1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("norm.weight"):
                v = 1.0 + 0.1 * torch.randn(p.shape, generator=g)
            elif name == "model.embed_tokens.weight":
                v = EMBED_STD * torch.randn(p.shape, generator=g)
                v = v * torch.exp(EMBED_ROW_SPREAD * torch.randn(p.shape[0], 1, generator=g))
                v[VOCAB - 1] *= EOS_ROW_SCALE
            elif name.endswith(".bias"):
                v = 0.1 * torch.randn(p.shape, generator=g)
            else:
                v = LINEAR_STD * torch.randn(p.shape, generator=g)
            p.copy_(v)


def bf16_round(model):
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(torch.bfloat16).to(torch.float32))


def run_greedy(model, gen_cfg, prompt_ids):
    """model.generate with the KV cache and EOS stopping; also returns the
    per-step logits so that the top-2 gap can be checked."""
    inp = torch.tensor([prompt_ids])
    gc = copy.deepcopy(gen_cfg)
    gc.update(do_sample=False, max_new_tokens=MAX_NEW, output_logits=True, return_dict_in_generate=True)
    with torch.no_grad():
        out = model.generate(inp, attention_mask=torch.ones_like(inp), generation_config=gc)
    new = out.sequences[0, len(prompt_ids):].tolist()
    logits = [row[0].float() for row in out.logits]
    return new, logits


def check_no_cache(model, prompt_ids, new):
    """The same path recomputed over the whole sequence at every step."""
    seq = list(prompt_ids)
    with torch.no_grad():
        for t in new:
            nxt = int(model(torch.tensor([seq]), use_cache=False).logits[0, -1].argmax())
            if nxt != t:
                return False
            seq.append(nxt)
    return True


def gaps(logits):
    out = []
    for row in logits:
        top = torch.topk(row, 2).values
        out.append(float((top[0] - top[1]) / row.abs().max()))
    return out


def gen_config_for(ids):
    return GenerationConfig(
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        pad_token_id=ids["<|endoftext|>"],
        do_sample=False,
    )


def prompts(tok):
    res = []
    for name, msgs in CONVERSATIONS:
        text = tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        via = tok.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True)
        if isinstance(via, dict) or hasattr(via, "keys"):
            via = via["input_ids"]
        assert list(via) == list(ids), (name, via, ids)
        assert tok.decode(ids) == text, name  # byte-level BPE round-trips exactly
        res.append((name, msgs, text, ids))
    return res


def pick_seed(cfg, gen_cfg, ps):
    for seed in range(BASE_SEED, BASE_SEED + 1000):
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(cfg).eval()
        init_weights(model, seed)
        bf16_round(model)
        why, stops = None, []
        for name, _, _, ids in ps:
            new, logits = run_greedy(model, gen_cfg, ids)
            stopped = len(new) < MAX_NEW or new[-1] in gen_cfg.eos_token_id
            body = new[:-1] if stopped else new
            if min(gaps(logits)) < GAP_REL:
                why = f"{name}: top-2 gap {min(gaps(logits)):.4f}"
            elif len(set(body)) < (MIN_STOP_LEN if stopped else MIN_DISTINCT):
                why = f"{name}: {len(set(body))} distinct tokens before the end"
            if why:
                break
            stops.append(stopped)
        if why is None and not (any(stops) and not all(stops)):
            why = f"EOS stops {stops}: want at least one run that stops and one that does not"
        if why is None:
            print(f"seed {seed}: EOS stops {stops}")
            return seed
        print(f"seed {seed} rejected ({why})")
    sys.exit("no usable seed found")


def write_model(cfg, gen_cfg, seed, out):
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(cfg).eval()
    init_weights(model, seed)
    model = model.to(torch.bfloat16)
    model.generation_config = gen_cfg
    model.save_pretrained(out, max_shard_size="160KB")


def load_model(d):
    return AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()


def make_golden(d, seed):
    tok = AutoTokenizer.from_pretrained(d)
    model = load_model(d)
    gen_cfg = GenerationConfig.from_pretrained(d)
    ids = special_ids(tok)
    eos = set(gen_cfg.eos_token_id)
    convs = []
    raw_tok = Tokenizer.from_file(os.path.join(d, "tokenizer.json"))  # tokenizer.json alone
    for name, msgs, text, pids in prompts(tok):
        assert raw_tok.encode(text, add_special_tokens=False).ids == pids, name
        new, logits = run_greedy(model, gen_cfg, pids)
        assert check_no_cache(model, pids, new), name
        stopped = len(new) < MAX_NEW or new[-1] in eos
        if stopped:
            assert new[-1] in eos and all(t not in eos for t in new[:-1]), name
        gtext = tok.decode(new, skip_special_tokens=True)
        assert raw_tok.decode(new, skip_special_tokens=True) == gtext, name
        raw = token_bytes(tok, [t for t in new if t < VOCAB - len(SPECIALS)])
        convs.append({
            "name": name,
            "messages": msgs,
            "prompt_text": text,
            "prompt_ids": pids,
            "greedy_ids": new,
            "stopped_on_eos": stopped,
            "greedy_text": gtext,
            "greedy_bytes_hex": raw.hex(),
            "greedy_text_has_replacement_char": "\ufffd" in gtext,
            "min_top2_gap_rel": round(min(gaps(logits)), 6),
        })
    return {
        "model": "tiny_chat",
        "seed": seed,
        "special_token_ids": ids,
        "bos_token_id": None,
        "eos_token_ids": list(gen_cfg.eos_token_id),
        "max_new_tokens": MAX_NEW,
        "generation": "greedy (do_sample=False), KV cache, stops after emitting any id in "
                      "generation_config.eos_token_id; greedy_ids include that EOS id",
        "reference": {
            "transformers": transformers.__version__,
            "torch": torch.__version__,
            "tokenizers": tokenizers.__version__,
            "dtype": "float32 (from BF16 files)",
            "attn_implementation": "eager",
        },
        "conversations": convs,
    }


_BYTE_DECODER = None


def token_bytes(tok, ids):
    """Raw bytes of byte-level tokens (before UTF-8 validation)."""
    global _BYTE_DECODER
    if _BYTE_DECODER is None:
        bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
            + list(range(ord("®"), ord("ÿ") + 1))
        cs = bs[:]
        n = 0
        for b in range(256):
            if b not in bs:
                bs.append(b)
                cs.append(256 + n)
                n += 1
        _BYTE_DECODER = {chr(c): b for b, c in zip(bs, cs)}
        # sanity: the library's own alphabet is the same 256 characters
        assert set(_BYTE_DECODER) == set(pre_tokenizers.ByteLevel.alphabet())
    return bytes(_BYTE_DECODER[ch] for t in tok.convert_ids_to_tokens(ids) for ch in t)


def dump_json(path, obj, indent=1):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=indent)
        f.write("\n")


def check(d):
    with open(os.path.join(d, "golden.json"), encoding="utf-8") as f:
        golden = json.load(f)
    fresh = make_golden(d, golden["seed"])
    for k in ("special_token_ids", "eos_token_ids", "conversations"):
        if fresh[k] != golden[k]:
            sys.exit(f"check FAILED: {k} differs")
    tok = AutoTokenizer.from_pretrained(d)
    assert tok.bos_token is None and tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    assert len(tok) == VOCAB
    cfg = json.load(open(os.path.join(d, "config.json")))
    assert cfg["eos_token_id"] == 511 and cfg["tie_word_embeddings"] is True
    idx = json.load(open(os.path.join(d, "model.safetensors.index.json")))
    shards = sorted(set(idx["weight_map"].values()))
    assert len(shards) >= 2 and "lm_head.weight" not in idx["weight_map"], shards
    total = sum(os.path.getsize(os.path.join(d, f)) for f in os.listdir(d))
    print(f"check OK: {len(golden['conversations'])} conversations, {len(shards)} shards, "
          f"{total} bytes")
    for c in golden["conversations"]:
        print(f"  {c['name']}: {len(c['prompt_ids'])} prompt ids, {len(c['greedy_ids'])} new, "
              f"stopped_on_eos={c['stopped_on_eos']}, gap {c['min_top2_gap_rel']}, "
              f"text {c['greedy_text']!r}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="only re-check the existing folder")
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.check:
        check(OUT)
        return

    with tempfile.TemporaryDirectory() as tmp:
        tok = build_tokenizer(tmp)
        ids = special_ids(tok)
        cfg = build_config(ids)
        gen_cfg = gen_config_for(ids)
        seed = pick_seed(cfg, gen_cfg, prompts(tok))

        if os.path.isdir(OUT):
            shutil.rmtree(OUT)
        os.makedirs(OUT)
        for f in sorted(os.listdir(tmp)):
            shutil.copy(os.path.join(tmp, f), os.path.join(OUT, f))
    write_model(cfg, gen_cfg, seed, OUT)
    dump_json(os.path.join(OUT, "golden.json"), make_golden(OUT, seed))
    for f in sorted(os.listdir(OUT)):
        p = os.path.join(OUT, f)
        print(f"  {f:40s} {os.path.getsize(p):8d}  {hashlib.sha256(open(p, 'rb').read()).hexdigest()[:12]}")
    check(OUT)


if __name__ == "__main__":
    main()
