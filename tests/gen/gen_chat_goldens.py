#!/usr/bin/env python3
"""Generates the chat template goldens in tests/fixtures/chat/.

Reference: transformers' apply_chat_template(..., tokenize=False), run on a
tiny tokenizer whose only special tokens are the template's bos/eos tokens,
so the template sees exactly the variables air_chat_render() gives it.

Inputs (committed):
  tests/fixtures/chat/templates/templates.json   name -> file, bos/eos, source
  tests/fixtures/chat/templates/*.jinja          the templates, byte for byte
  tests/fixtures/chat/cases.json                 message sets (written by this script)
Output:
  tests/fixtures/chat/goldens.json   one record per (template, case,
      add_generation_prompt): the expected text, or the error transformers
      raised ("error": message; the C side must fail with the same message
      for raise_exception errors).

strftime_now() is pinned to FAKE_DATE below; the C test sets AIR_FAKE_DATE
to the same value.

Re-run from the repository root (needs `pip install transformers jinja2`,
no torch):
    python3 tests/gen/gen_chat_goldens.py
"""
import datetime as _dt
import json
import os
import sys

import transformers.utils.chat_template_utils as ctu
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures", "chat")
FAKE_DATE = _dt.datetime(2024, 7, 26, 10, 30, 0)


class _FixedDatetime(_dt.datetime):
    @classmethod
    def now(cls, tz=None):
        return FAKE_DATE


ctu.datetime = _FixedDatetime

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_current_weather",
        "description": "Get the current weather in a given location",
        "parameters": {
            "type": "object",
            "properties": {
                "location": {"type": "string", "description": "The city, e.g. Paris"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["location"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a time zone (\"IANA\" name)",
        "parameters": {"type": "object", "properties": {"tz": {"type": "string"}}, "required": []},
    },
}

CASES = {
    "system_user": {"messages": [
        {"role": "system", "content": "You are a helpful assistant."},
        {"role": "user", "content": "Hello, who are you?"}]},
    "user_only": {"messages": [{"role": "user", "content": "What is 2+2?"}]},
    "multi_turn": {"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi!"},
        {"role": "assistant", "content": "Hello. How can I help?"},
        {"role": "user", "content": "Name a color."},
        {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another one."}]},
    "no_system_turns": {"messages": [
        {"role": "user", "content": "First question"},
        {"role": "assistant", "content": "First answer"},
        {"role": "user", "content": "Second question"}]},
    "unicode": {"messages": [
        {"role": "system", "content": "  Réponds en français. 中文也可以。  "},
        {"role": "user", "content": "Ça va? 😀 \"quotes\" and \\backslash\\\n\tnew line\u2028sep "},
        {"role": "assistant", "content": "\n Très bien ! ½ ≠ ∞ \n"},
        {"role": "user", "content": "ÄÖÜ ß Σ"}]},
    "empty_content": {"messages": [
        {"role": "system", "content": ""},
        {"role": "user", "content": ""},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "ok"}]},
    "tools": {
        "tools": [WEATHER_TOOL, TIME_TOOL],
        "messages": [
            {"role": "system", "content": "You can call tools."},
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"type": "function", "function": {"name": "get_current_weather",
                                                  "arguments": {"location": "Paris", "unit": "celsius"}}}]},
            {"role": "tool", "content": "{\"temperature\": 22, \"sky\": \"clear\"}"},
            {"role": "assistant", "content": "It is 22 °C and clear in Paris."},
            {"role": "user", "content": "Thanks"}]},
    "tools_no_system": {
        "tools": [WEATHER_TOOL],
        "messages": [{"role": "user", "content": "Weather in Rome?"}]},
    "tool_calls_multi": {
        "tools": [WEATHER_TOOL, TIME_TOOL],
        "messages": [
            {"role": "user", "content": "Weather and time in Tokyo?"},
            {"role": "assistant", "content": "Let me check.", "tool_calls": [
                {"type": "function", "function": {"name": "get_current_weather",
                                                  "arguments": {"location": "Tokyo"}}},
                {"type": "function", "function": {"name": "get_time",
                                                  "arguments": {"tz": "Asia/Tokyo"}}}]},
            {"role": "tool", "content": "rain, 18"},
            {"role": "tool", "content": "21:05"},
            {"role": "assistant", "content": "Rainy, 18 degrees; it is 21:05."}]},
    "tool_calls_string_args": {
        "messages": [
            {"role": "user", "content": "Weather in Oslo?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"type": "function", "function": {"name": "get_current_weather",
                                                  "arguments": "{\"location\": \"Oslo\"}"}},
                {"type": "function", "function": {"name": "get_time",
                                                  "arguments": "{\"tz\": \"Europe/Oslo\"}"}}]},
            {"role": "tool", "content": "snow, -3"},
            {"role": "tool", "content": "08:00"},
            {"role": "assistant", "content": "Snowing, -3."}]},
    "reasoning": {"messages": [
        {"role": "user", "content": "Think: 3*7?"},
        {"role": "assistant", "content": "21", "reasoning_content": "3 times 7 is 21."},
        {"role": "user", "content": "And 4*7?"}]},
    "think_in_content": {"messages": [
        {"role": "user", "content": "2+3?"},
        {"role": "assistant", "content": "<think>\nadd them\n</think>\n\n5"},
        {"role": "user", "content": "and 2+4?"},
        {"role": "assistant", "content": "<think>\nagain\n</think>\n\n6"}]},
    "no_thinking": {"messages": [{"role": "user", "content": "Quick answer: capital of Peru?"}],
                    "extra": {"enable_thinking": False}},
    "content_parts": {"messages": [
        {"role": "system", "content": [{"type": "text", "text": "System in parts."}]},
        {"role": "user", "content": [{"type": "text", "text": " Look: "},
                                     {"type": "image"},
                                     {"type": "text", "text": "what is it? "}]}]},
    "bad_order": {"messages": [
        {"role": "user", "content": "one"},
        {"role": "user", "content": "two"}]},
    "assistant_first": {"messages": [
        {"role": "assistant", "content": "I start."},
        {"role": "user", "content": "ok"}]},
    "extra_vars": {"messages": [{"role": "user", "content": "Date?"}],
                   "extra": {"date_string": "01 Jan 2025", "custom_flag": True, "n": 3}},
}


def render(tmpl, bos, eos, case, add_gen):
    tok = Tokenizer(models.WordLevel({"<unk>": 0}, unk_token="<unk>"))
    kw = {}
    if bos is not None:
        kw["bos_token"] = bos
    if eos is not None:
        kw["eos_token"] = eos
    t = PreTrainedTokenizerFast(tokenizer_object=tok, **kw)
    extra = case.get("extra", {})
    return t.apply_chat_template(case["messages"], tools=case.get("tools"), tokenize=False,
                                 add_generation_prompt=add_gen, chat_template=tmpl, **extra)


def main():
    tdir = os.path.join(ROOT, "templates")
    manifest = json.load(open(os.path.join(tdir, "templates.json"), encoding="utf-8"))
    with open(os.path.join(ROOT, "cases.json"), "w", encoding="utf-8") as f:
        json.dump(CASES, f, indent=1, ensure_ascii=False)
        f.write("\n")
    records = []
    for name, info in manifest.items():
        if not info.get("file"):
            continue
        with open(os.path.join(tdir, info["file"]), encoding="utf-8", newline="") as f:
            tmpl = f.read()
        for cname, case in CASES.items():
            for add_gen in (False, True):
                rec = {"template": name, "case": cname, "add_generation_prompt": add_gen}
                try:
                    rec["expected"] = render(tmpl, info["bos_token"], info["eos_token"], case, add_gen)
                except Exception as e:  # the C side must fail too
                    rec["error"] = str(e)
                    rec["error_type"] = type(e).__name__
                records.append(rec)
    with open(os.path.join(ROOT, "goldens.json"), "w", encoding="utf-8") as f:
        json.dump({"fake_date": FAKE_DATE.strftime("%Y-%m-%dT%H:%M:%S"), "records": records},
                  f, indent=1, ensure_ascii=False)
        f.write("\n")
    ok = sum("expected" in r for r in records)
    print(f"{len(records)} records ({ok} rendered, {len(records) - ok} errors)", file=sys.stderr)


if __name__ == "__main__":
    main()
