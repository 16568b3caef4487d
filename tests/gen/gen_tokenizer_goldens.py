#!/usr/bin/env python3
"""Generates the tokenizer goldens with the Hugging Face `tokenizers` library.

Outputs (all under tests/fixtures/tokenizers/):
  corpus.json.gz            the hard-case corpus (text, or hex bytes for invalid UTF-8)
  goldens/<name>.json.gz    for each real tokenizer: per case, ids with and without
                            add_special_tokens, decode with skip_special_tokens
                            false/true, DecodeStream chunks; plus decode/stream
                            goldens of random id sequences
  arrays/<name>.json.gz     llama3_1 / llama2 vocabularies as GGUF-style arrays
                            (tokens, scores, types, merges) for air_tokenizer_from_arrays
  variants/<name>.json.gz   small synthetic tokenizers exercising components the
                            real ones do not use (Metaspace, Digits, Punctuation,
                            Whitespace, Lowercase, NFKC, Strip, added-token options,
                            ...), each with its own goldens

Usage:
  python3 tests/gen/gen_tokenizer_goldens.py [--copy-from /path/to/shared/fixtures/tokenizers]

Invalid UTF-8 cases: Python strings cannot hold invalid UTF-8, so HF is given
bytes.decode("utf-8", "replace") (each maximal invalid subsequence -> U+FFFD);
the C tokenizer receives the raw bytes and must do the same lossy decoding.
"""
import argparse
import gzip
import json
import os
import random
import shutil
import sys

from tokenizers import Tokenizer
from tokenizers.decoders import DecodeStream

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures", "tokenizers")
NAMES = ["llama3_1", "qwen3", "llama2", "deepseek_v3", "gemma3"]


def wgz(path, obj):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    with open(path, "wb") as f:
        with gzip.GzipFile(fileobj=f, mode="wb", compresslevel=9, mtime=0) as g:
            g.write(data)


def rgz(path):
    with gzip.open(path, "rb") as f:
        return f.read()


# --------------------------------------------------------------------------
# Corpus
# --------------------------------------------------------------------------
def long_mixed(rng, size):
    words = ("the quick brown fox jumps over lazy dog tokenizer streaming layer model "
             "weights memory disk Hello World it's we'll they've I'M DON'T 3.14159 "
             "2024-01-31 1234567 0x1F foo_bar camelCase HTTPServer naïve café résumé "
             "日本語 中文 한국어 العربية हिन्दी ไทย Ελληνικά Русский 👍🏽 👨‍👩‍👧 🇫🇷 ").split(" ")
    seps = [" ", " ", " ", "  ", ", ", ". ", "\t", "\n", " - ", "; ", "!", "?", "   "]
    out = []
    n = 0
    while n < size:
        w = rng.choice(words) + rng.choice(seps)
        out.append(w)
        n += len(w.encode("utf-8"))
    return "".join(out).replace("\n", " ")  # one very long line


def corpus():
    rng = random.Random(1234)
    C = []

    def add(name, text=None, raw=None):
        if raw is not None:
            C.append({"name": name, "hex": raw.hex()})
        else:
            C.append({"name": name, "text": text})

    add("empty", "")
    add("space", " ")
    add("spaces", "     ")
    add("newline", "\n")
    add("newlines", "\n\n\n")
    add("tab", "\t")
    add("mixed_ws", " \t \n \r\n  \n\t\t x")
    add("hello", "Hello world")
    add("lead_space", " Hello")
    add("double_space", "Hello  world")
    add("trailing_ws", "Hello world   ")
    add("sentence", "The quick brown fox jumps over the lazy dog. It's 5 o'clock!")
    add("contractions", "I'm don't won't it's they'll we've I'd you're ISN'T Y'ALL I'VE 'S 'll 'VE 'Ll 'ſ 'K")
    add("digits", "1 12 123 1234 12345 123456 1234567 12345678901234567890")
    add("long_digits", "31415926535897932384626433832795028841971693993751058209749445923078164062862089986280348253421170679")
    add("numbers_misc", "3.14159 1,000,000 -42 +7e10 0x1F 1/2 ½ ① ② Ⅻ ٣٤٥ ١٢ ४२ ๔๒")
    add("code_py", "def foo(x):\n\tif x > 0:\n\t\treturn x  +   1    # comment\n\treturn None\n\n\nclass A(object):\n    pass\n")
    add("code_c", "int main(int argc, char **argv) {\n    for (int i = 0; i < argc; i++) {\n        printf(\"%s\\n\", argv[i]);\n    }\n    return 0;\n}\n")
    add("code_json", '{"key": [1, 2.5, null, true], "nested": {"a": "b\\"c"}}')
    add("ws_run", "x" + " " * 50 + "y" + "\t" * 20 + "z" + "\n" * 10 + "w")
    add("ws_run_end", "tail" + " " * 33)
    add("indent", "    \n    \n        foo\n\t\t\t\tbar\n")
    add("chinese", "中华人民共和国成立于1949年。我爱北京天安门，天安门上太阳升！")
    add("japanese", "日本語のテキスト、カタカナとひらがな。ｶﾀｶﾅ半角です。東京都")
    add("korean", "한국어 텍스트입니다. 안녕하세요! 감사합니다")
    add("arabic", "مرحبا بالعالم! هذا نص عربي مع أرقام ١٢٣ وعلامات تشكيل: مُحَمَّد")
    add("hebrew", "שלום עולם! זהו טקסט בעברית")
    add("devanagari", "नमस्ते दुनिया! हिन्दी में लिखा गया पाठ। क्षत्रिय")
    add("thai", "สวัสดีชาวโลก ภาษาไทยไม่มีช่องว่างระหว่างคำ")
    add("bengali_tamil", "বাংলা লেখা। தமிழ் எழுத்து")
    add("greek_cyrillic", "Ελληνικά κείμενο ΣΊΣΥΦΟΣ σοφός. Русский текст, ЁЖИК ёжик")
    add("vietnamese", "Tiếng Việt có dấu: Phở, bánh mì, cà phê sữa đá")
    add("emoji", "😀 😃 👍 👍🏽 👍🏿 ❤️ ✨ 🎉🎉🎉")
    add("emoji_zwj", "👨‍👩‍👧‍👦 👩🏽‍💻 🏳️‍🌈 🧑🏿‍🤝‍🧑🏻 👁️‍🗨️")
    add("flags_keycaps", "🇫🇷🇯🇵🇺🇸 1️⃣ #️⃣ ©️ ™ ®")
    add("nfc_nfd", "é vs e\u0301, Å vs A\u030a, ñ vs n\u0303, \u1100\u1161\u11a8 한")
    add("compat", "ﬁ ﬂ ﬀ ＡＢＣ１２３ ㎏ ㍿ ℌ ℡ ⁵ ₂ ｱｲｳ")
    add("case", "İstanbul ISTANBUL ıi Straße STRASSE ǅ ǈ ΣΑΣ σας")
    add("unicode_ws", "a\u00a0b\u2000c\u2003d\u3000e\u2028f\u0085g\u180eh\u200bi\ufeffj\u1680k\u202fl\u205fm\x0bn\x0co\x1cp\x1dq\x1er\x1fs")
    add("controls", "nul\x00byte \x01\x02 del\x7f esc\x1b[31mred\x1b[0m bell\x07")
    add("punct", "!!!??? ... ---- ==== ((( ))) [[]] {{}} <<>> ~~~ ``` *** ___ ''' \"\"\" ,,, ;;; ::: ///")
    add("markdown", "# Title\n\n- item **bold** _it_ `code`\n\n```python\nprint('hi')\n```\n> quote")
    add("html", "<div class=\"x\"><p>Hello&nbsp;world</p><br/></div>")
    add("urls", "See https://example.com/path?q=1&r=2#frag or mail me@example.org :)")
    add("latex", "$\\frac{a}{b} + \\sum_{i=0}^{n} x_i^2 = \\alpha$")
    add("identifiers", "__init__ camelCaseWord snake_case_word HTTPServerError x86_64 utf8proc")
    add("metaspace_chars", "\u2581 hello \u2581\u2581world\u2581 Ġhello ĊĠ <0x41> <0xZZ>")
    add("specials_llama3", "<|begin_of_text|>Hello<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>")
    add("specials_qwen", "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nhi<|im_end|><|endoftext|>")
    add("specials_spm", "<s>Hello</s> <s> spaced </s>abc<s>def<unk><pad><bos><eos>")
    add("specials_gemma", "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n<unused5><mask>[multimodal]")
    add("specials_deepseek", "<｜begin▁of▁sentence｜>Hi<｜User｜>q<｜Assistant｜>a<｜end▁of▁sentence｜><｜tool▁sep｜>")
    add("specials_near_miss", "<|im_start| <|im_end <s <|begin_of_text| < s> <|IM_START|> <BOS>")
    add("added_ws_tokens", "a\n\nb\n\n\n\nc\t\td\t\t\t e\u2581\u2581f \u2581\u2581\u2581\u2581g")
    add("rare_chars", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𓀀 𐍈 ꙮ ⸘ ⁂ ☃ ♞ 🝖 \U0001F9EC \U0010FFFD")
    add("mixed_scripts", "Hello世界مرحباनमस्ते123abcΑΒΓ😀x")
    add("one_char_each", "a b c d e f g A B C 0 1 2 . , ; é ü ß 中 日 한")
    add("long_word", "Supercalifragilisticexpialidocious" * 30)
    add("long_mixed_100k", long_mixed(rng, 100_000))
    add("long_no_space_100k", ("abcdefghij" * 10_000))
    # invalid UTF-8 (raw bytes)
    add("added_overlap", "a <tool>  xyz <tool>\t\tx  fox foxes HELLO hello world  world!")
    add("strip_first", "   leading spaces then [INST] words\u0301 \x01\x02ctrl")
    add("bad_ff", raw=b"\xff")
    add("bad_trunc2", raw=b"abc\xc3")
    add("bad_trunc3", raw=b"x\xe2\x82 y")
    add("bad_surrogate", raw=b"a\xed\xa0\x80b")
    add("bad_trunc4", raw=b"\xf0\x9f\x98 smile")
    add("bad_overlong", raw=b"\xc0\xaf \xe0\x80\xaf")
    add("bad_5byte", raw=b"\xf8\x88\x80\x80\x80 z")
    add("bad_mixed", raw=b"hello\x80world \xfe\xfe ok \xe4\xb8\xad\xe6 end \xf4\x90\x80\x80")
    add("bad_cont", raw=b"\x80\x81\x82\xbf")
    return C


def case_text(c):
    if "hex" in c:
        return bytes.fromhex(c["hex"]).decode("utf-8", "replace")
    return c["text"]


# --------------------------------------------------------------------------
# Goldens
# --------------------------------------------------------------------------
def stream(tok, ids, skip):
    ds = DecodeStream(skip_special_tokens=skip)
    out = []
    try:
        for i in ids:
            r = ds.step(tok, i)
            out.append(r if r is not None else "")
    except BaseException:
        return None
    return out


def safe_decode(tok, ids, skip):
    try:
        return tok.decode(ids, skip_special_tokens=skip)
    except BaseException:  # pyo3 PanicException derives from BaseException
        return None


def goldens_for(tok, cases, rng, with_stream=True):
    G = []
    for c in cases:
        text = case_text(c)
        e0 = tok.encode(text, add_special_tokens=False).ids
        e1 = tok.encode(text, add_special_tokens=True).ids
        g = {"name": c["name"], "ids": e0}
        if e1 != e0:
            g["ids_special"] = e1
        tok.encode_special_tokens = True  # special tokens in the text are plain text
        e2 = tok.encode(text, add_special_tokens=False).ids
        tok.encode_special_tokens = False
        if e2 != e0:
            g["ids_split_special"] = e2
        d0 = safe_decode(tok, e1, False)
        d1 = safe_decode(tok, e1, True)
        if d0 is not None:  # HF panics on some inputs (Strip decoder on an empty token)
            g["decode"] = d0
            if d1 is not None and d1 != d0:
                g["decode_skip"] = d1
        g["roundtrip"] = safe_decode(tok, e0, False) == text
        if with_stream and len(e1) <= 4000:
            s = stream(tok, e1, False)
            if s is not None:
                g["stream"] = s
        G.append(g)
    # random id sequences: exercise the decoders on arbitrary tokens
    V = tok.get_vocab_size(with_added_tokens=True)
    R = []
    for k in range(40):
        n = rng.randint(1, 40)
        ids = [rng.randrange(V) for _ in range(n)]
        if k % 4 == 0:  # start with special ids
            ids = [rng.randrange(max(1, V - 300), V)] + ids
        r = {"ids": ids}
        d0, d1 = safe_decode(tok, ids, False), safe_decode(tok, ids, True)
        if d0 is not None:
            r["decode"] = d0
        if d1 is not None:
            r["decode_skip"] = d1
        s0 = stream(tok, ids, False)
        s1 = stream(tok, ids, True)
        if s0 is not None:
            r["stream"] = s0
        if s1 is not None:
            r["stream_skip"] = s1
        R.append(r)
    return G, R


def load_fixture(name):
    d = os.path.join(FIX, name)
    tj = rgz(os.path.join(d, "tokenizer.json.gz")).decode("utf-8")
    return Tokenizer.from_str(tj), json.loads(tj)


# --------------------------------------------------------------------------
# Arrays (GGUF-like) for from_arrays
# --------------------------------------------------------------------------
def arrays_for(name, tj):
    m = tj["model"]
    vocab = m["vocab"]
    added = {a["id"]: a for a in tj["added_tokens"]}
    n = max(max(vocab.values()), max(added) if added else -1) + 1
    tokens = [""] * n
    for t, i in vocab.items():
        tokens[i] = t
    types = [1] * n
    for i, a in added.items():
        tokens[i] = a["content"]
        types[i] = 3 if a["special"] else 4
    out = {"tokens": tokens, "types": types}
    if name == "llama2":
        # SentencePiece scores as GGUF stores them: the merge order of HF's
        # tokenizer.json is the order of the merged pieces' scores, so a piece
        # made by merge rank r gets score -r (pieces no merge makes: -1e9;
        # byte and control tokens: 0)
        first_rank = {}
        for r, mg in enumerate(m["merges"]):
            a, b = mg.split(" ") if isinstance(mg, str) else mg
            first_rank.setdefault(a + b, r)
        scores = [0.0] * n
        for i, t in enumerate(tokens):
            if t.startswith("<0x") and len(t) == 6:
                types[i] = 6
            elif t == "<unk>":
                types[i] = 2
            elif types[i] == 1:
                scores[i] = -float(first_rank.get(t, 1e9))
        out["scores"] = scores
        out["bos_id"], out["eos_id"], out["add_bos"] = 1, 2, 1
        out["pre"] = "default"
    else:
        out["merges"] = [" ".join(x) if isinstance(x, list) else x for x in m["merges"]]
        out["bos_id"], out["eos_id"], out["add_bos"] = 128000, 128009, 1
        out["pre"] = "llama-bpe"
    return out


# --------------------------------------------------------------------------
# Synthetic variants
# --------------------------------------------------------------------------
def train_small(kind, texts):
    from tokenizers import models, trainers, pre_tokenizers, decoders, normalizers
    if kind == "bytelevel":
        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        tr = trainers.BpeTrainer(vocab_size=700, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                 special_tokens=["<|endoftext|>"])
    else:
        tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        tr = trainers.BpeTrainer(vocab_size=900, special_tokens=["<unk>", "<s>", "</s>"] +
                                 ["<0x%02X>" % b for b in range(256)])
    tok.train_from_iterator(texts, tr)
    return json.loads(tok.to_str())


def train_affixes(texts):
    """Word-level BPE with continuing_subword_prefix and end_of_word_suffix."""
    from tokenizers import models, trainers, pre_tokenizers, decoders
    tok = Tokenizer(models.BPE(unk_token="[UNK]", continuing_subword_prefix="##",
                               end_of_word_suffix="</w>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.BPEDecoder(suffix="</w>")
    tr = trainers.BpeTrainer(vocab_size=800, special_tokens=["[UNK]"],
                             continuing_subword_prefix="##", end_of_word_suffix="</w>")
    tok.train_from_iterator(texts, tr)
    return json.loads(tok.to_str())


def variants(cases):
    texts = [case_text(c) for c in cases if len(case_text(c)) < 5000] * 3
    bl = train_small("bytelevel", texts)
    sp = train_small("spm", texts)
    V = []

    def mk(name, base, **over):
        j = json.loads(json.dumps(base))
        for k, v in over.items():
            j[k] = v
        V.append((name, j))

    R = lambda p: {"Regex": p}
    S = lambda p: {"String": p}
    # byte-level family
    mk("bl_gpt2", bl)
    mk("bl_prefix_space", bl, pre_tokenizer={"type": "ByteLevel", "add_prefix_space": True,
                                            "trim_offsets": True, "use_regex": True})
    mk("bl_digits_punct", bl, pre_tokenizer={"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "Punctuation", "behavior": "Isolated"},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]})
    mk("bl_digits_contig_ws", bl, pre_tokenizer={"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": False},
        {"type": "Whitespace"},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]})
    mk("bl_wssplit_punct_removed", bl, pre_tokenizer={"type": "Sequence", "pretokenizers": [
        {"type": "WhitespaceSplit"},
        {"type": "Punctuation", "behavior": "Removed"},
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": False}]})
    mk("bl_split_behaviors", bl, pre_tokenizer={"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": S(" "), "behavior": "MergedWithPrevious", "invert": False},
        {"type": "Split", "pattern": R("[,.]"), "behavior": "MergedWithNext", "invert": False},
        {"type": "Split", "pattern": R("\\d+"), "behavior": "Contiguous", "invert": False},
        {"type": "Split", "pattern": R("\\p{L}+"), "behavior": "Removed", "invert": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]})
    mk("bl_norms", bl, normalizer={"type": "Sequence", "normalizers": [
        {"type": "NFKC"}, {"type": "Lowercase"}, {"type": "Strip", "strip_left": True, "strip_right": True},
        {"type": "Replace", "pattern": R("\\s+"), "content": " "}]})
    mk("bl_nfd_strip_accents", bl, normalizer={"type": "Sequence", "normalizers": [
        {"type": "NFD"}, {"type": "StripAccents"}, {"type": "NFC"}]})
    mk("bl_nfkd_rstrip", bl, normalizer={"type": "Sequence", "normalizers": [
        {"type": "NFKD"}, {"type": "Strip", "strip_left": False, "strip_right": True}]})
    added = bl["added_tokens"] + [
        {"id": 10000, "content": "<tool>", "single_word": False, "lstrip": True, "rstrip": True,
         "normalized": False, "special": True},
        {"id": 10001, "content": "fox", "single_word": True, "lstrip": False, "rstrip": False,
         "normalized": True, "special": False},
        {"id": 10002, "content": "HELLO", "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": True, "special": False},
        {"id": 10003, "content": " world", "single_word": False, "lstrip": False, "rstrip": True,
         "normalized": False, "special": False},
        {"id": 10004, "content": "<|im_start|>", "single_word": False, "lstrip": False,
         "rstrip": False, "normalized": False, "special": True},
        {"id": 10005, "content": " xy", "single_word": False, "lstrip": False,
         "rstrip": False, "normalized": False, "special": False},
        {"id": 10006, "content": "\t\tx", "single_word": False, "lstrip": False,
         "rstrip": False, "normalized": False, "special": False},
    ]
    mk("bl_added_opts", bl, added_tokens=added,
       normalizer={"type": "Lowercase"},
       post_processor={"type": "TemplateProcessing",
                       "single": [{"SpecialToken": {"id": "<|endoftext|>", "type_id": 0}},
                                  {"Sequence": {"id": "A", "type_id": 0}},
                                  {"SpecialToken": {"id": "<tool>", "type_id": 0}}],
                       "pair": [{"Sequence": {"id": "A", "type_id": 0}},
                                {"Sequence": {"id": "B", "type_id": 1}}],
                       "special_tokens": {
                           "<|endoftext|>": {"id": "<|endoftext|>", "ids": [0], "tokens": ["<|endoftext|>"]},
                           "<tool>": {"id": "<tool>", "ids": [10000], "tokens": ["<tool>"]}}})
    mk("bl_roberta_post", bl, post_processor={"type": "RobertaProcessing", "sep": ["<|endoftext|>", 0],
                                              "cls": ["<|endoftext|>", 0], "trim_offsets": True,
                                              "add_prefix_space": False})
    mk("bl_no_decoder", bl, decoder=None)
    bl2 = json.loads(json.dumps(bl))
    bl2["model"]["ignore_merges"] = True
    mk("bl_ignore_merges", bl2)
    mk("bl_dec_wordpiece", bl, decoder={"type": "WordPiece", "prefix": "##", "cleanup": True})
    mk("bl_dec_replace_regex", bl, decoder={"type": "Sequence", "decoders": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        {"type": "Replace", "pattern": R("[aeiou]+"), "content": "_"},
        {"type": "Strip", "content": "_", "start": 2, "stop": 0}]})
    af = train_affixes(texts)
    mk("bpe_affixes", af)
    mk("bpe_affixes_wordpiece_dec", af, decoder={"type": "WordPiece", "prefix": "##", "cleanup": False},
       pre_tokenizer={"type": "BertPreTokenizer"})
    # SentencePiece family
    mk("spm_metaspace", sp)
    mk("spm_metaspace_first", sp,
       pre_tokenizer={"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True},
       decoder={"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True},
       added_tokens=sp["added_tokens"] + [{"id": 5000, "content": "[INST]", "single_word": False,
                                            "lstrip": False, "rstrip": False, "normalized": False,
                                            "special": True}])
    first = {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": True}
    for nm, norm in [("strip", {"type": "Strip", "strip_left": True, "strip_right": False}),
                     ("nmt", {"type": "Nmt"}),
                     ("accents", {"type": "Sequence", "normalizers": [{"type": "NFD"}, {"type": "StripAccents"}]}),
                     ("replace_empty", {"type": "Replace", "pattern": {"Regex": "^\\s+"}, "content": ""})]:
        mk("spm_first_" + nm, sp, normalizer=norm, pre_tokenizer=first, decoder=first,
           added_tokens=sp["added_tokens"] + [{"id": 5000, "content": "[INST]", "single_word": False,
                                                "lstrip": False, "rstrip": False, "normalized": False,
                                                "special": True}])
    mk("spm_metaspace_never_nosplit", sp,
       pre_tokenizer={"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "never", "split": False},
       decoder={"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "never", "split": False})
    mk("spm_prepend_replace", sp, normalizer={"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "\u2581"}, {"type": "Replace", "pattern": S(" "), "content": "\u2581"}]},
        pre_tokenizer=None,
        decoder={"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": S("\u2581"), "content": " "}, {"type": "ByteFallback"},
            {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]})
    mk("spm_nmt_strip_dec", sp, normalizer={"type": "Nmt"},
       decoder={"type": "Sequence", "decoders": [
           {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
           {"type": "ByteFallback"}, {"type": "Strip", "content": " ", "start": 0, "stop": 1}]})
    sp2 = json.loads(json.dumps(sp))
    sp2["model"]["byte_fallback"] = False
    mk("spm_unk_fused", sp2)
    sp3 = json.loads(json.dumps(sp2))
    sp3["model"]["fuse_unk"] = False
    mk("spm_unk_not_fused", sp3)
    return V


# --------------------------------------------------------------------------
# Unicode table: what Oniguruma's \p{X} matches beyond PCRE2's
# --------------------------------------------------------------------------
PCLS_C = r"""
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdio.h>
#include <string.h>
int main(int argc, char **argv) {
  for (int a = 1; a < argc; a++) {
    char pat[32]; snprintf(pat, sizeof pat, "\\p{%s}", argv[a]);
    int e; PCRE2_SIZE o;
    pcre2_code *c = pcre2_compile((PCRE2_SPTR)pat, strlen(pat), PCRE2_UTF|PCRE2_UCP, &e, &o, NULL);
    pcre2_match_data *md = pcre2_match_data_create(2, NULL);
    printf("%s", argv[a]);
    for (long cp = 0; cp < 0x110000; cp++) {
      if (cp >= 0xD800 && cp <= 0xDFFF) continue;
      unsigned char b[4]; int l;
      if (cp < 0x80) { b[0]=cp; l=1; }
      else if (cp < 0x800) { b[0]=0xC0|(cp>>6); b[1]=0x80|(cp&63); l=2; }
      else if (cp < 0x10000) { b[0]=0xE0|(cp>>12); b[1]=0x80|((cp>>6)&63); b[2]=0x80|(cp&63); l=3; }
      else { b[0]=0xF0|(cp>>18); b[1]=0x80|((cp>>12)&63); b[2]=0x80|((cp>>6)&63); b[3]=0x80|(cp&63); l=4; }
      if (pcre2_match(c, b, l, 0, PCRE2_ANCHORED, md, NULL) > 0) printf(" %lx", cp);
    }
    printf("\n");
  }
  return 0;
}
"""
CLASSES = "LMNPS"

# utf8proc side of the normalizer tables: what our C normalizers compute
# without the tables (utf8proc_map / utf8proc_tolower / utf8proc_category).
UNORM_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
int main(void) {
  static char line[1 << 16];
  int opts[4] = {UTF8PROC_STABLE | UTF8PROC_COMPOSE, UTF8PROC_STABLE | UTF8PROC_DECOMPOSE,
                 UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT,
                 UTF8PROC_STABLE | UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT};
  while (fgets(line, sizeof line, stdin)) {
    size_t n = strlen(line);
    if (n && line[n - 1] == '\n') line[--n] = 0;
    for (int f = 0; f < 4; f++) {
      utf8proc_uint8_t *r = NULL;
      utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)line, (utf8proc_ssize_t)n, &r,
                                        (utf8proc_option_t)opts[f]);
      for (utf8proc_ssize_t i = 0; i < m; i++) printf("%02x", r[i]);
      printf(f < 3 ? " " : "");
      free(r);
    }
    /* lowercase and mark flag of the first code point */
    utf8proc_int32_t cp;
    utf8proc_iterate((const utf8proc_uint8_t *)line, (utf8proc_ssize_t)n, &cp);
    utf8proc_category_t k = utf8proc_category(cp);
    printf(" %x %d\n", cp == 0x130 ? 0x130 : utf8proc_tolower(cp),
           k == UTF8PROC_CATEGORY_MN || k == UTF8PROC_CATEGORY_MC || k == UTF8PROC_CATEGORY_ME);
  }
  return 0;
}
"""


def norm_tables():
    """Code points where HF's normalizers (older Unicode tables in
    unicode-normalization-alignments; Rust char for lowercase) differ from
    utf8proc. Returns C source for tokenizer_unitab.c."""
    import subprocess
    import tempfile
    from tokenizers import normalizers as N
    cps = [c for c in range(0x20, 0x110000) if not (0xD800 <= c <= 0xDFFF)
           and c not in (0x85, 0x2028, 0x2029)]
    probes = []  # (cp, text)
    for c in cps:
        probes.append((c, chr(c)))
        probes.append((c, "a" + chr(c) + "\u0316"))  # ordering against a ccc-220 mark
        probes.append((c, chr(c) + "\u0301"))        # composition with a following mark
    with tempfile.TemporaryDirectory() as d:
        src, exe = os.path.join(d, "unorm.c"), os.path.join(d, "unorm")
        open(src, "w").write(UNORM_C)
        subprocess.check_call(["gcc", "-O2", src, "-lutf8proc", "-o", exe])
        inp = "\n".join(t for _, t in probes) + "\n"
        out = subprocess.run([exe], input=inp.encode("utf-8", "surrogatepass"),
                             stdout=subprocess.PIPE, check=True).stdout.decode().splitlines()
    forms = [N.NFC(), N.NFD(), N.NFKC(), N.NFKD()]
    SEP = "\u0001"
    hf = []
    for f in forms:
        joined = f.normalize_str(SEP.join(t for _, t in probes))
        parts = joined.split(SEP)
        assert len(parts) == len(probes)
        hf.append(parts)
    barrier = [dict() for _ in range(4)]  # cp -> HF output of the cp alone
    for i, (c, t) in enumerate(probes):
        ours = out[i].split(" ")
        for fi in range(4):
            if bytes.fromhex(ours[fi]).decode() != hf[fi][i]:
                barrier[fi][c] = None
    single = {c: i for i, (c, t) in enumerate(probes) if len(t) == 1}
    # compositions utf8proc applies and HF's older tables do not (e.g. U+11935
    # U+11930 -> U+11938): probe utf8proc's own decompositions; where HF
    # composes differently, the first code point becomes a barrier
    dec = {}
    for c in cps:
        u = bytes.fromhex(out[single[c]].split(" ")[1]).decode()
        if u != chr(c) and len(u) >= 2:
            dec[c] = u
    keys = sorted(dec)
    with tempfile.TemporaryDirectory() as d:
        src, exe = os.path.join(d, "unorm.c"), os.path.join(d, "unorm")
        open(src, "w").write(UNORM_C)
        subprocess.check_call(["gcc", "-O2", src, "-lutf8proc", "-o", exe])
        o2 = subprocess.run([exe], input=("\n".join(dec[c] for c in keys) + "\n").encode(),
                            stdout=subprocess.PIPE, check=True).stdout.decode().splitlines()
    for fi in (0, 2):
        hfj = forms[fi].normalize_str(SEP.join(dec[c] for c in keys)).split(SEP)
        for c, line, h in zip(keys, o2, hfj):
            if bytes.fromhex(line.split(" ")[fi]).decode() != h:
                barrier[fi].setdefault(ord(dec[c][0]), None)
    for fi in range(4):
        for c in barrier[fi]:
            barrier[fi][c] = hf[fi][single[c]]
    lower_hf = N.Lowercase().normalize_str(SEP.join(chr(c) for c in cps)).split(SEP)
    strip_hf = N.StripAccents().normalize_str(SEP.join(chr(c) for c in cps)).split(SEP)
    lower, marks = {}, []
    for k, c in enumerate(cps):
        o = out[single[c]].split(" ")
        ours_lower = "i\u0307" if c == 0x130 else chr(int(o[4], 16))
        if lower_hf[k] != ours_lower:
            lower[c] = lower_hf[k]
        if (strip_hf[k] == "") != (o[5] == "1"):
            marks.append(c)

    def cstr(x):
        return '"' + "".join("\\x%02x" % b for b in x.encode()) + '"'

    L = []
    names = ["nfc", "nfd", "nfkc", "nfkd"]
    for fi in range(4):
        items = sorted(barrier[fi].items())
        L.append("static const tk_cpmap norm_%s[] = {" % names[fi])
        L += ["    {0x%x, %s}," % (c, cstr(o)) for c, o in items] or ["    {0, 0}, /* none */"]
        L.append("};")
    L.append("const tk_cpmap *const tk_hf_norm[4] = {norm_nfc, norm_nfd, norm_nfkc, norm_nfkd};")
    L.append("const size_t tk_hf_norm_n[4] = {%s};" % ", ".join(str(len(b)) for b in barrier))
    L.append("static const tk_cpmap lower[] = {")
    L += ["    {0x%x, %s}," % (c, cstr(o)) for c, o in sorted(lower.items())] or ["    {0, 0},"]
    L.append("};")
    L.append("const tk_cpmap *const tk_hf_lower = lower;")
    L.append("const size_t tk_hf_lower_n = %d;" % len(lower))
    L.append("static const uint32_t marks[] = {%s};" %
             (", ".join("0x%x" % c for c in marks) or "0"))
    L.append("const uint32_t *const tk_hf_mark_flip = marks;")
    L.append("const size_t tk_hf_mark_flip_n = %d;" % len(marks))
    print("normalizer tables: barriers %s, lowercase %d, marks %d" %
          ([len(b) for b in barrier], len(lower), len(marks)), file=sys.stderr)
    return L


def unicode_table():
    """Writes src/text/tokenizer_unitab.c: for each of \p{L M N P S}, the code
    points HF's Oniguruma matches and the local PCRE2 does not (its Unicode
    tables are older), as regex class ranges."""
    import subprocess
    import tempfile
    from tokenizers import pre_tokenizers as P, Regex
    with tempfile.TemporaryDirectory() as d:
        src, exe = os.path.join(d, "pcls.c"), os.path.join(d, "pcls")
        open(src, "w").write(PCLS_C)
        subprocess.check_call(["gcc", "-O2", src, "-lpcre2-8", "-o", exe])
        out = subprocess.check_output([exe] + list(CLASSES)).decode()
    pc = {l.split()[0]: set(int(x, 16) for x in l.split()[1:]) for l in out.splitlines()}
    cps = [c for c in range(0x110000) if not (0xD800 <= c <= 0xDFFF)]
    text = "".join(map(chr, cps))
    frags = []
    for X in CLASSES:
        kept = bytearray(len(cps))
        for _, (a, b) in P.Split(Regex(r"\p{%s}" % X), "removed").pre_tokenize_str(text):
            for i in range(a, b):
                kept[i] = 1
        onig = set(cps[i] for i in range(len(cps)) if not kept[i])
        if pc[X] - onig:
            sys.exit("PCRE2 \\p{%s} matches code points Oniguruma does not: %s" %
                     (X, sorted(pc[X] - onig)[:10]))
        add = sorted(onig - pc[X])
        rng = []
        for c in add:
            if rng and rng[-1][1] == c - 1:
                rng[-1][1] = c
            else:
                rng.append([c, c])
        frags.append(["\\\\x{%x}" % a if a == b else "\\\\x{%x}-\\\\x{%x}" % (a, b)
                      for a, b in rng])
        print("unicode table: \\p{%s} +%d code points in %d ranges" % (X, len(add), len(rng)),
              file=sys.stderr)
    lines = ["/*", " * tokenizer_unitab.c - generated by tests/gen/gen_tokenizer_goldens.py",
             " * --unicode-table: for \\p{L M N P S}, the code points HF's Oniguruma (newer",
             " * Unicode) matches and this PCRE2 does not; appended to those classes when",
             " * compiling regexes. Then the normalizer exceptions below. Regenerate after",
             " * a PCRE2, utf8proc or tokenizers upgrade.", " */",
             '#include "text/tokenizer_internal.h"', "",
             'const char tk_onig_classes[] = "%s";' % CLASSES, "",
             "const char *const tk_onig_extra[%d] = {" % len(CLASSES)]
    for X, f in zip(CLASSES, frags):
        lines.append("    /* %s */" % X)
        # one literal per line, split between ranges
        parts, cur = [], ""
        for r in f:
            if len(cur) + len(r) > 88:
                parts.append(cur)
                cur = ""
            cur += r
        parts.append(cur)
        for k, part in enumerate(parts):
            lines.append('    "%s"%s' % (part, "," if k == len(parts) - 1 else ""))
    lines.append("};")
    lines.append("")
    lines.append("/* Normalizers: code points where HF's tables (older Unicode in")
    lines.append(" * unicode-normalization-alignments, Rust char for lowercase) differ from")
    lines.append(" * utf8proc. norm_*: code points HF treats differently in NFC/NFD/NFKC/NFKD")
    lines.append(" * (alone, before a mark, or after a letter); the text is normalized around")
    lines.append(" * them and they become HF's result for them alone. lower: HF's lowercase.")
    lines.append(" * marks: code points whose combining-mark status (StripAccents) differs. */")
    lines += norm_tables()
    with open(os.path.join(ROOT, "src", "text", "tokenizer_unitab.c"), "w") as f:
        f.write("\n".join(lines) + "\n")


# --------------------------------------------------------------------------
# Unicode sweep: every code point in a few contexts, one id-list hash per chunk
# --------------------------------------------------------------------------
SWEEP_BLOCK = 64


def sweep_cps():
    # all of planes 0-2, the tags / variation selectors of plane 14, and every
    # 4096th code point elsewhere (surrogates excluded)
    return [c for c in range(0x110000) if not (0xD800 <= c <= 0xDFFF) and
            (c < 0x30000 or 0xE0000 <= c < 0xE0200 or c % 4096 == 0)]


def sweep_text(chunk):
    return "".join("a%sb %s%s1%s x %s's%s\n%s " % ((chr(c),) * 7) for c in chunk)


def fnv64(ids):
    h = 0xcbf29ce484222325
    for i in ids:
        for b in (i & 0xFFFFFFFF).to_bytes(4, "little"):
            h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def unicode_sweep(names):
    cps = sweep_cps()
    out = {"block": SWEEP_BLOCK, "tokenizers": {}}
    for n in names:
        tok, _ = load_fixture(n)
        hs = []
        for i in range(0, len(cps), SWEEP_BLOCK):
            ids = tok.encode(sweep_text(cps[i:i + SWEEP_BLOCK]), add_special_tokens=False).ids
            hs.append("%016x" % fnv64(ids))
        out["tokenizers"][n] = hs
        print("sweep", n, len(hs), file=sys.stderr)
    # normalizers: each code point alone, between "a" and U+0316, before U+0301
    from tokenizers import normalizers as N
    norms = {"NFC": N.NFC(), "NFD": N.NFD(), "NFKC": N.NFKC(), "NFKD": N.NFKD(),
             "Lowercase": N.Lowercase(), "StripAccents": N.StripAccents(), "Nmt": N.Nmt()}
    out["normalizers"] = {}
    for k, f in norms.items():
        hs = []
        for i in range(0, len(cps), SWEEP_BLOCK):
            t = "|".join("%s|a%s\u0316|%s\u0301" % (chr(c), chr(c), chr(c))
                         for c in cps[i:i + SWEEP_BLOCK])
            h = 0xcbf29ce484222325
            for b in f.normalize_str(t).encode("utf-8"):
                h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
            hs.append("%016x" % h)
        out["normalizers"][k] = hs
        print("sweep", k, file=sys.stderr)
    wgz(os.path.join(FIX, "unicode_sweep.json.gz"), out)


# --------------------------------------------------------------------------
def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--copy-from", help="refresh the gzipped fixtures from this folder")
    ap.add_argument("--unicode-table", action="store_true",
                    help="only regenerate src/text/tokenizer_unitab.c")
    ap.add_argument("--sweep-only", action="store_true",
                    help="only regenerate unicode_sweep.json.gz")
    args = ap.parse_args()
    if args.unicode_table:
        unicode_table()
        return
    if args.sweep_only:
        unicode_sweep(["llama3_1", "qwen3", "deepseek_v3"])
        return
    if args.copy_from:
        for n in NAMES:
            d = os.path.join(FIX, n)
            os.makedirs(d, exist_ok=True)
            for f in ["tokenizer.json", "tokenizer_config.json"]:
                with open(os.path.join(args.copy_from, n, f), "rb") as src:
                    data = src.read()
                with open(os.path.join(d, f + ".gz"), "wb") as o:
                    with gzip.GzipFile(fileobj=o, mode="wb", compresslevel=9, mtime=0) as g:
                        g.write(data)
            shutil.copy(os.path.join(args.copy_from, n, "LICENSE.package"), d)

    cases = corpus()
    wgz(os.path.join(FIX, "corpus.json.gz"), cases)
    for n in NAMES:
        tok, tj = load_fixture(n)
        rng = random.Random(hash(n) & 0xFFFF if False else sum(map(ord, n)))
        G, R = goldens_for(tok, cases, rng)
        wgz(os.path.join(FIX, "goldens", n + ".json.gz"), {"tokenizer": n, "cases": G, "random": R})
        print(n, "cases", len(G), "roundtrip", sum(g["roundtrip"] for g in G), file=sys.stderr)
        if n in ("llama3_1", "llama2"):
            wgz(os.path.join(FIX, "arrays", n + ".json.gz"), arrays_for(n, tj))
    unicode_sweep(["llama3_1", "qwen3", "deepseek_v3"])
    for name, j in variants(cases):
        tok = Tokenizer.from_str(json.dumps(j))
        rng = random.Random(sum(map(ord, name)))
        small = [c for c in cases if len(case_text(c)) < 20000]
        G, R = goldens_for(tok, small, rng)
        wgz(os.path.join(FIX, "variants", name + ".json.gz"),
            {"tokenizer": name, "tokenizer_json": json.dumps(j, ensure_ascii=False),
             "cases": G, "random": R})
        print("variant", name, file=sys.stderr)


if __name__ == "__main__":
    main()
