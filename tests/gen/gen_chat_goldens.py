#!/usr/bin/env python3
"""Generates the chat template goldens in tests/fixtures/chat/.

Reference: transformers' apply_chat_template(..., tokenize=False), run on a
tiny tokenizer whose only special tokens are the template's bos/eos tokens,
so the template sees exactly the variables air_chat_render() gives it.

Inputs (committed):
  tests/fixtures/chat/templates/templates.json   name -> file, bos/eos, source,
                                                 optional extra variables
  tests/fixtures/chat/templates/*.jinja          the templates, byte for byte
  tests/fixtures/chat/cases.json                 message sets (written by this script)
Outputs:
  tests/fixtures/chat/jinja_snippets.json   small templates exercising one
      Jinja feature each, rendered by transformers' own Jinja environment
      (trim_blocks, lstrip_blocks, its tojson, ...): expected text or error.
  tests/fixtures/chat/goldens.json   one record per (template, case,
      add_generation_prompt): the expected text, or the error transformers
      raised ("error": message; the C side must fail with the same message
      for raise_exception errors).
  tests/fixtures/chat/folders/<name>/   tokenizer folders written by
      transformers' save_pretrained (5.x: chat_template.jinja and
      additional_chat_templates/), or edited into the older layouts
      (a list in tokenizer_config.json, chat_template.json), and
  tests/fixtures/chat/folder_goldens.json   for each folder and case, what
      AutoTokenizer.from_pretrained(folder).apply_chat_template renders (with
      and without tools), or the error it raises. chat_template.json is a
      processor file the tokenizer ignores: its record renders the file's
      template explicitly (the C side uses it when nothing else has one).

strftime_now() is pinned to FAKE_DATE below; the C test sets AIR_FAKE_DATE
to the same value.

Re-run from the repository root (needs `pip install transformers jinja2`,
no torch):
    python3 tests/gen/gen_chat_goldens.py            # everything
    python3 tests/gen/gen_chat_goldens.py --folders  # only folders/ and folder_goldens.json
"""
import datetime as _dt
import json
import os
import shutil
import sys

import transformers
import transformers.utils.chat_template_utils as ctu
from tokenizers import Tokenizer, models
from transformers import AutoTokenizer, PreTrainedTokenizerFast

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
    # OpenAI-style history: call ids (9 letters and digits, as Mistral
    # templates require), arguments as JSON strings or objects, tool results
    # with tool_call_id and name
    "tool_results_with_ids": {
        "tools": [WEATHER_TOOL, TIME_TOOL],
        "messages": [
            {"role": "system", "content": "You can call tools."},
            {"role": "user", "content": "Weather and time in Lima?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"id": "call0Abc1", "type": "function",
                 "function": {"name": "get_current_weather", "arguments": {"location": "Lima"}}},
                {"id": "call0Abc2", "type": "function",
                 "function": {"name": "get_time", "arguments": {"tz": "America/Lima"}}}]},
            {"role": "tool", "tool_call_id": "call0Abc1", "name": "get_current_weather",
             "content": "{\"temperature\": 19}"},
            {"role": "tool", "tool_call_id": "call0Abc2", "name": "get_time", "content": "10:15"},
            {"role": "assistant", "content": "19 degrees; it is 10:15."},
            {"role": "user", "content": "And in Quito?"}]},
    "tool_results_string_args_ids": {
        "tools": [WEATHER_TOOL],
        "messages": [
            {"role": "user", "content": "Weather in Quito?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "abcDEF123", "type": "function",
                 "function": {"name": "get_current_weather",
                              "arguments": "{\"location\": \"Quito\", \"unit\": \"celsius\"}"}}]},
            {"role": "tool", "tool_call_id": "abcDEF123", "name": "get_current_weather",
             "content": "cloudy, 14"}]},
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


# (template, variables) pairs; variables avoid integral floats (JSON cannot
# tell 1.0 from 1 once parsed by cJSON).
MSGS = [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi", "n": 1},
        {"role": "assistant", "content": "yo", "tool_calls": [{"function": {"name": "f"}}]}]
SNIPPETS = [
    # whitespace control, trim_blocks, lstrip_blocks
    ("a\n  {% if true %}\n  b\n  {% endif %}\nc\n", {}),
    ("a  {%- if true -%}  b  {%- endif -%}  c", {}),
    ("x {{- ' y ' -}} z", {}),
    ("  {{ 1 }}\n  {% if 1 %}x{% endif %}\n", {}),
    ("a {#- comment -#} b\n{# c #}\nd", {}),
    ("  {%+ if true %}k{% endif %}\n{% if true +%}\nm{% endif %}", {}),
    ("{% raw %}{{ not evaluated }}{% endraw %}", {}),
    ("line1\r\nline2\rline3\n\n", {}),
    ("{% for i in range(3) %}\n  - {{ i }}\n{% endfor %}\n", {}),
    ("{{ {'a': {'b': 1}} }}", {}),
    ("\t{% if true %}tab{% endif %}", {}),
    ("x\n    {# c #}\ny", {}),
    # literals and printing
    ("{{ 1 }} {{ -2 }} {{ 1.5 }} {{ 1.0 }} {{ 1e3 }} {{ 0.1 + 0.2 }} {{ 1e16 }} {{ 1e-7 }}", {}),
    ("{{ 'a' 'b' }} {{ \"q'q\" }} {{ 'x\\ny' }} {{ '\\u00e9\\t|' }}", {}),
    ("{{ [1, 'a', none, true, 2.5] }} {{ ('a',) }} {{ (1, 2) }} {{ {'k': 'v', 1: [none]} }}", {}),
    ("{{ none }} {{ true }} {{ False }} {{ None }}", {}),
    ("{{ \"it's\" }} {{ [\"it's\", 'say \"x\"', 'both \\' \"'] }}", {}),
    ("{{ 0x1F }} {{ 0o17 }} {{ 0b101 }} {{ 1_000 }}", {}),
    # arithmetic (Python semantics)
    ("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 % -3 }} {{ 7 / 2 }} {{ 6 / 3 }}", {}),
    ("{{ 2 ** 10 }} {{ 2 ** -1 }} {{ 2 ** 3 ** 2 }} {{ -2 ** 2 }} {{ 7.5 // 2 }} {{ -7.5 % 2 }}", {}),
    ("{{ 'ab' * 3 }} {{ [1] * 3 }} {{ [1, 2] + [3] }} {{ 'a' ~ 1 ~ none ~ true }} {{ 1 + 2.5 }}", {}),
    ("{{ true + 1 }} {{ 10 - 2 * 3 }} {{ (10 - 2) * 3 }} {{ 1 - 2 - 3 }}", {}),
    ("{{ 'a' + 1 }}", {}),
    ("{{ 1 / 0 }}", {}),
    ("{{ 1 // 0 }}", {}),
    ("{{ x + 1 }}", {}),
    # comparisons, logic, membership
    ("{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 1 == 1.0 }}", {}),
    ("{{ 1 and 'x' }} {{ 0 or 'y' }} {{ none or 0 }} {{ not [] }} {{ '' and 1 }}", {}),
    ("{{ 'a' in 'cat' }} {{ 1 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 3 not in [1] }} {{ 'x' in u }}", {}),
    ("{{ 'yes' if 1 else 'no' }} {{ 'yes' if 0 else 'no' }} [{{ 'only' if false }}]", {}),
    ("{{ 1 < 'a' }}", {}),
    # variables, attributes, items, slices
    ("{{ m.role }} {{ m['content'] }} {{ m.missing }}|{{ m.get('role') }} {{ m.get('x', 'dflt') }}",
     {"m": MSGS[0]}),
    ("{{ messages[0].role }} {{ messages[-1]['tool_calls'][0].function.name }} {{ messages[1].n }}",
     {"messages": MSGS}),
    ("{{ messages[5] }}|{{ m.a.b }}", {"messages": MSGS, "m": {}}),
    ("{{ undefined_var }}|{{ undefined_var is defined }}|{{ undefined_var | length }}", {}),
    ("{{ undefined_var.attr }}", {}),
    ("{{ 'hello'[1:3] }} {{ 'hello'[::-1] }} {{ 'hello'[-2:] }} {{ [1, 2, 3, 4][::2] }} {{ [1, 2, 3][5:] }}", {}),
    ("{{ 'héllo wörld'[1] }} {{ 'héllo'|length }} {{ 'héllo'[:2] }} {{ 'añb'[::-1] }}", {}),
    ("{{ messages[1:] | length }} {{ messages[::-1][0].role }}", {"messages": MSGS}),
    # is tests
    ("{{ x is defined }} {{ y is undefined }} {{ none is none }} {{ 'a' is string }} {{ {} is mapping }}", {"x": 1}),
    ("{{ [] is iterable }} {{ 'a' is iterable }} {{ 1 is iterable }} {{ [] is sequence }} {{ 1 is number }}", {}),
    ("{{ 1 is integer }} {{ 1.5 is float }} {{ true is boolean }} {{ true is true }} {{ 0 is false }}", {}),
    ("{{ 4 is even }} {{ 3 is odd }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }} {{ 2 is eq 2 }}", {}),
    ("{{ 'a' is equalto 'a' }} {{ 3 is gt 2 }} {{ 3 is lt 2 }} {{ 2 is ge 2 }} {{ 1 is ne 1 }} {{ 1 is in [1] }}", {}),
    ("{{ x is not none }} {{ x is not defined }} {{ 'ab' is lower }} {{ 'AB' is upper }} {{ range is callable }}", {"x": None}),
    ("{{ 1 is sameas 1 }} {{ none is sameas none }} {{ true is sameas true }}", {}),
    # loops
    ("{% for x in xs %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}", {"xs": ["a", "b", "c"]}),
    ("{% for x in [] %}x{% else %}empty{% endfor %}|{% for x in [1] %}x{% else %}empty{% endfor %}", {}),
    ("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{% for k in d %}{{ k }}{% endfor %}", {"d": {"b": 1, "a": 2}}),
    ("{% for x in range(10) if x is odd %}{{ x }}/{{ loop.index }}/{{ loop.length }} {% endfor %}", {}),
    ("{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}", {}),
    ("{% for a in [1, 2] %}{% for b in 'xy' %}{{ a }}{{ b }}{{ loop.index }} {% endfor %}{{ loop.index }}|{% endfor %}", {}),
    ("{% for x in [1, 2] %}[{{ y }}]{% set y = x %}{{ y }}{% endfor %}[{{ y }}]", {}),
    ("{% for x in xs %}{{ loop.previtem }}-{{ x }}-{{ loop.nextitem }};{% endfor %}", {"xs": [1, 2, 3]}),
    ("{% for x in xs %}{{ loop.cycle('odd', 'even') }} {% endfor %}", {"xs": [1, 2, 3]}),
    ("{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }} {% endfor %}{% for a, b in [(1, 2)] %}{{ a }}{{ b }}{% endfor %}", {}),
    ("{% for x in 'abc' %}{{ x }}.{% endfor %}", {}),
    ("{% for x in 5 %}{% endfor %}", {}),
    ("{% for a, b in [[1, 2, 3]] %}{% endfor %}", {}),
    ("{% for i in xs recursive %}{{ i.n }}{% if i.c %}({{ loop(i.c) }}){% endif %}{% endfor %}",
     {"xs": [{"n": 1, "c": [{"n": 2, "c": [{"n": 3}]}]}, {"n": 4}]}),
    ("{% break %}", {}),
    # set, namespace, with
    ("{% set x = 1 %}{% set y, z = 2, 3 %}{{ x }}{{ y }}{{ z }}{% set t = 1, 2 %}{{ t }}", {}),
    ("{% set ns = namespace(n=0, s='') %}{% for i in range(4) %}{% set ns.n = ns.n + i %}{% set ns.s = ns.s ~ i %}{% endfor %}{{ ns.n }} {{ ns.s }}", {}),
    ("{% set ns = namespace() %}{% set ns.found = true %}{{ ns.found }}", {}),
    ("{% set x %}block {{ 1 + 1 }}{% endset %}[{{ x }}]{% set y | upper %}up{% endset %}{{ y }}", {}),
    ("{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}[{{ a }}]", {}),
    ("{% set d = dict(a=1, b='x') %}{{ d }} {{ dict(d, c=3) }}", {}),
    ("{% set x = 5 %}{% set x = 6 %}{{ x }}", {}),
    ("{% set ns.x = 1 %}", {}),
    ("{% set s = 'abc' %}{% set s.x = 1 %}", {}),
    ("{% set ns = namespace(_x=1) %}", {}),
    # macros and call
    ("{% macro greet(name, greeting='Hello') %}{{ greeting }}, {{ name }}!{% endmacro %}{{ greet('Ann') }} {{ greet('Bob', 'Hi') }} {{ greet(greeting='Yo', name='Cy') }}", {}),
    ("{% macro f(a) %}{{ a }}{{ varargs }}{{ kwargs }}{% endmacro %}{{ f(1, 2, 3, k=4) }}", {}),
    ("{% macro render(x) %}{% if x is mapping %}{% for k, v in x.items() %}{{ k }}:{{ render(v) }};{% endfor %}{% else %}{{ x }}{% endif %}{% endmacro %}{{ render({'a': {'b': 1}, 'c': 2}) }}", {}),
    ("{% macro wrap(tag) %}<{{ tag }}>{{ caller() }}</{{ tag }}>{% endmacro %}{% call wrap('b') %}bold {{ 1 }}{% endcall %}", {}),
    ("{% macro list(items) %}{% for i in items %}{{ caller(i) }}{% endfor %}{% endmacro %}{% call(item) list([1, 2]) %}[{{ item }}]{% endcall %}", {}),
    ("{% macro m() %}{{ outer }}{% endmacro %}{% set outer = 'late' %}{{ m() }}", {}),
    ("{% macro inf(n) %}{{ inf(n + 1) }}{% endmacro %}{{ inf(0) }}", {}),
    ("{% filter upper %}shout {{ 'it' }}{% endfilter %}", {}),
    # filters
    ("{{ '  pad  ' | trim }}|{{ 'xxaxx' | trim('x') }}|{{ 'Mixed Case' | upper }} {{ 'Mixed Case' | lower }}", {}),
    ("{{ [1, 2, 3] | length }} {{ 'abc' | count }} {{ {'a': 1} | length }} {{ [3, 1, 2] | join(', ') }} {{ ['a', 'b'] | join }}", {}),
    ("{{ x | default('d') }} {{ '' | default('d') }} {{ '' | default('d', true) }} {{ none | default('d') }} {{ y | d('dd') }}", {"y": 0}),
    ("{{ [1, 2, 3] | first }} {{ [1, 2, 3] | last }} {{ 'abc' | first }} [{{ [] | first }}]", {}),
    ("{{ d | items | list }} {{ d | dictsort }} {{ d | dictsort(by='value') }} {{ d | dictsort(reverse=true) }}", {"d": {"b": 1, "a": 3, "C": 2}}),
    ("{{ messages | selectattr('role', 'equalto', 'user') | list | length }} {{ messages | rejectattr('tool_calls') | map(attribute='role') | join(',') }}", {"messages": MSGS}),
    ("{{ messages | selectattr('tool_calls') | list | length }} {{ messages | map(attribute='n', default=0) | list }}", {"messages": MSGS}),
    ("{{ ['a', 'B'] | map('upper') | list }} {{ [1, 2, 3, 4] | select('odd') | list }} {{ [1, 2, 3] | reject('even') | list }}", {}),
    ("{{ 'a-b-c' | replace('-', '+') }} {{ 'aaa' | replace('a', 'b', 2) }}", {}),
    ("{{ 'a\nb\n\nc' | indent }}|{{ 'a\nb' | indent(2, true) }}|{{ 'a\n\nb' | indent(2, blank=true) }}|{{ 'x\ny' | indent('> ') }}", {}),
    ("{{ 1 | string }}{{ none | string }} {{ '42' | int + 1 }} {{ 'x' | int }} {{ '3.7' | int }} {{ 3.9 | int }} {{ '2.5' | float }} {{ 'z' | float }} {{ 2 | float }}", {}),
    ("{{ 'hello world' | capitalize }} {{ 'hello wORLD-foo (bar)' | title }} {{ 'a' | safe }}", {}),
    ("{{ ['b', 'A', 'a', 'c'] | unique | list }} {{ [3, 1, 2] | sort }} {{ ['b', 'A', 'c'] | sort }} {{ [3, 1, 2] | sort(reverse=true) }} {{ 'abc' | reverse }} {{ [1, 2] | reverse | list }}", {}),
    ("{{ xs | sort(attribute='n') | map(attribute='n') | list }} {{ xs | map(attribute='n') | max }} {{ xs | map(attribute='n') | min }} {{ xs | sum(attribute='n') }}", {"xs": [{"n": 3}, {"n": 1}, {"n": 2}]}),
    ("{{ -3 | abs }} {{ (-3) | abs }} {{ 2.5 | round }} {{ 3.5 | round }} {{ 3.14159 | round(2) }} {{ 3 | round }} {{ 2.1 | round(0, 'ceil') }} {{ 2.9 | round(method='floor') }}", {}),
    ("{{ [1, 2, 3, 4, 5] | batch(2) | list }} {{ [1, 2, 3] | batch(2, 'x') | list }} {{ 'one two  three' | wordcount }}", {}),
    ("{{ '%s-%d' | format('a', 3) }} {{ '%s!' % 'hi' }} {{ 'v=%s' % (1,) }}", {}),
    ("{{ [1, 2] | list }} {{ 'ab' | list }} {{ {'a': 1} | list }} {{ 'x' | center(5) }}|", {}),
    ("{{ x | tojson }}", {"x": {"a": [1, 2.5, None, True, "é\n\"\u2028\u0001"], "b": {}, "c": []}}),
    ("{{ x | tojson(indent=2) }}", {"x": {"a": [1, {"b": None}], "e": {}, "l": []}}),
    ("{{ x | tojson(indent=2, sort_keys=true) }}|{{ x | tojson(separators=(',', ':')) }}|{{ x | tojson(ensure_ascii=true) }}", {"x": {"z": "ü😀", "a": 1}}),
    ("{{ 'str' | tojson }} {{ 1.5 | tojson }} {{ none | tojson }} {{ (1, 2) | tojson }} {{ {1: 2, true: 3} | tojson }}", {}),
    ("{{ undefined_var | tojson }}", {}),
    ("{{ tools | tojson }}", {"tools": [WEATHER_TOOL]}),
    ("{{ 'abc' | nosuchfilter }}", {}),
    # string methods
    ("{{ '  x  '.strip() }}|{{ '  x  '.lstrip() }}|{{ '  x  '.rstrip() }}|{{ 'xxaxx'.strip('x') }}|{{ '\n\nhi\n'.lstrip('\n') }}", {}),
    ("{{ 'hello'.startswith('he') }} {{ 'hello'.endswith('lo') }} {{ 'hello'.startswith(('x', 'h')) }} {{ 'hello'.endswith('x') }}", {}),
    ("{{ 'a b  c'.split() }} {{ 'a,b,,c'.split(',') }} {{ 'a,b,c'.split(',', 1) }} {{ 'a,b,c'.rsplit(',', 1) }} {{ '  a  b '.split(none, 1) }}", {}),
    ("{{ 'x</think>y</think>z'.split('</think>')[-1] }} {{ 'a<think>b'.split('<think>')[0] }}", {}),
    ("{{ 'aXbXc'.replace('X', '-') }} {{ 'Hello'.upper() }} {{ 'Hello'.lower() }} {{ 'hello world'.title() }} {{ 'hELLO'.capitalize() }}", {}),
    ("{{ '{} and {}'.format('a', 'b') }} {{ '{1}{0}'.format('a', 'b') }} {{ '{x}!'.format(x=5) }} {{ '{{lit}}'.format() }}", {}),
    ("{{ 'hello'.find('l') }} {{ 'hello'.find('z') }} {{ 'hello'.rfind('l') }} {{ 'héllo'.find('l') }} {{ 'banana'.count('an') }} {{ '-'.join(['a', 'b']) }}", {}),
    ("{{ '12'.isdigit() }} {{ 'ab'.isalpha() }} {{ '  '.isspace() }} {{ 'a\nb'.splitlines() }}", {}),
    ("{{ d.keys() | list }} {{ d.values() | list }} {{ d.items() | list }} {{ d.get('a') }} {{ d.get('z') }}", {"d": {"a": 1, "b": [2]}}),
    ("{{ [1, 2, 2].count(2) }} {{ [1, 2, 3].index(3) }}", {}),
    ("{{ xs.append(1) }}", {"xs": []}),
    ("{{ d.update({'a': 1}) }}", {"d": {}}),
    # globals
    ("{{ range(3) | list }} {{ range(1, 7, 2) | list }} {{ range(5, 0, -2) | list }}", {}),
    ("{{ strftime_now('%Y-%m-%d %H:%M %A %B %d %b %j') }}", {}),
    ("{{ raise_exception('custom failure: ' ~ 42) }}", {}),
    # syntax errors
    ("{% if x %}unclosed", {}),
    ("{% for x in y %}{% endif %}", {}),
    ("{{ 1 + }}", {}),
    ("hello\n{{ 'unterminated }}", {}),
    ("{% endfor %}", {}),
    ("{% unknowntag %}", {}),
    ("{{ x is nosuchtest }}", {}),
    ("a\nb\n   {{ (1 ]] }}", {}),
    ("{# unclosed comment", {}),
]


def render_snippets():
    out = []
    for src, variables in SNIPPETS:
        rec = {"template": src, "vars": variables}
        try:
            rec["expected"] = ctu._compile_jinja_template(src).render(**variables)
        except Exception as e:
            rec["error"] = str(e)
            rec["error_type"] = type(e).__name__
        out.append(rec)
    with open(os.path.join(ROOT, "jinja_snippets.json"), "w", encoding="utf-8") as f:
        json.dump({"fake_date": FAKE_DATE.strftime("%Y-%m-%dT%H:%M:%S"), "snippets": out}, f,
                  indent=1, ensure_ascii=False)
        f.write("\n")
    bad = sum("error" in r for r in out)
    print(f"{len(out)} snippets ({bad} errors)", file=sys.stderr)


def render(tmpl, bos, eos, case, add_gen, template_extra=None):
    tok = Tokenizer(models.WordLevel({"<unk>": 0}, unk_token="<unk>"))
    kw = {}
    if bos is not None:
        kw["bos_token"] = bos
    if eos is not None:
        kw["eos_token"] = eos
    t = PreTrainedTokenizerFast(tokenizer_object=tok, **kw)
    extra = dict(template_extra or {})
    extra.update(case.get("extra", {}))
    return t.apply_chat_template(case["messages"], tools=case.get("tools"), tokenize=False,
                                 add_generation_prompt=add_gen, chat_template=tmpl, **extra)


FOLDER_CASES = ("system_user", "multi_turn", "tools")
TINY_CHAT = os.path.join(ROOT, "..", "models", "tiny_chat")


def _template(name):
    with open(os.path.join(ROOT, "templates", name + ".jinja"), encoding="utf-8", newline="") as f:
        return f.read()


def _small_tokenizer(bos, eos):
    tok = Tokenizer(models.WordLevel({"<unk>": 0, bos: 1, eos: 2}, unk_token="<unk>"))
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos)


def _edit_json(path, **changes):
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    for k, v in changes.items():
        if v is None:
            d.pop(k, None)
        else:
            d[k] = v
    with open(path, "w", encoding="utf-8") as f:
        json.dump(d, f, indent=2, ensure_ascii=False)
        f.write("\n")


def write_folders():
    """The template folders and what transformers renders for each."""
    fdir = os.path.join(ROOT, "folders")
    shutil.rmtree(fdir, ignore_errors=True)
    os.makedirs(fdir)
    qwen3, llama = _template("qwen3"), _template("llama3_1")

    def saved(name, tok):
        out = os.path.join(fdir, name)
        tok.save_pretrained(out)
        return out

    # 1. the tiny_chat tokenizer saved by transformers 5.x: chat_template.jinja
    v5 = saved("v5_jinja", AutoTokenizer.from_pretrained(TINY_CHAT))
    # 2. named templates: chat_template.jinja + additional_chat_templates/tool_use.jinja
    t = _small_tokenizer("<s>", "</s>")
    t.chat_template = {"default": qwen3, "tool_use": llama}
    saved("v5_multi", t)
    # 3. the same two as a list in tokenizer_config.json (the older layout)
    t = _small_tokenizer("<s>", "</s>")
    d = saved("config_list", t)
    _edit_json(os.path.join(d, "tokenizer_config.json"),
               chat_template=[{"name": "default", "template": qwen3},
                              {"name": "tool_use", "template": llama}])
    # 4. chat_template.jinja next to an older template in tokenizer_config.json: the file wins
    t = _small_tokenizer("<s>", "</s>")
    t.chat_template = qwen3
    d = saved("jinja_over_config", t)
    _edit_json(os.path.join(d, "tokenizer_config.json"), chat_template=llama)
    # 5. only chat_template.json (a processor's file)
    t = _small_tokenizer("<s>", "</s>")
    d = saved("json_only", t)
    with open(os.path.join(d, "chat_template.json"), "w", encoding="utf-8") as f:
        json.dump({"chat_template": qwen3}, f, indent=2)
    # 6. chat_template.jinja with Windows line ends (read as text: they become \n)
    t = _small_tokenizer("<s>", "</s>")
    t.chat_template = qwen3
    d = saved("crlf", t)
    with open(os.path.join(d, "chat_template.jinja"), "w", encoding="utf-8", newline="\r\n") as f:
        f.write(qwen3)
    # 7. named templates without a default: transformers refuses
    t = _small_tokenizer("<s>", "</s>")
    t.chat_template = {"default": qwen3, "tool_use": llama}
    d = saved("no_default", t)
    os.remove(os.path.join(d, "chat_template.jinja"))
    assert v5

    records = []
    for name in sorted(os.listdir(fdir)):
        d = os.path.join(fdir, name)
        tok = AutoTokenizer.from_pretrained(d)
        explicit = None
        if name == "json_only":
            assert tok.chat_template is None  # the tokenizer ignores chat_template.json
            with open(os.path.join(d, "chat_template.json"), encoding="utf-8") as f:
                explicit = json.load(f)["chat_template"]
        for cname in FOLDER_CASES:
            case = CASES[cname]
            for add_gen in (False, True):
                rec = {"folder": name, "case": cname, "add_generation_prompt": add_gen,
                       "bos_token": tok.bos_token, "eos_token": tok.eos_token}
                try:
                    rec["expected"] = tok.apply_chat_template(
                        case["messages"], tools=case.get("tools"), tokenize=False,
                        add_generation_prompt=add_gen, chat_template=explicit)
                except Exception as e:  # the C side must fail too
                    rec["error"] = str(e)
                records.append(rec)
    with open(os.path.join(ROOT, "folder_goldens.json"), "w", encoding="utf-8") as f:
        json.dump({"transformers": transformers.__version__, "cases": FOLDER_CASES,
                   "records": records}, f, indent=1, ensure_ascii=False)
        f.write("\n")
    print(f"{len(records)} folder records", file=sys.stderr)


def main():
    write_folders()
    if "--folders" in sys.argv[1:]:
        return
    render_snippets()
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
                    rec["expected"] = render(tmpl, info["bos_token"], info["eos_token"], case, add_gen,
                                             info.get("extra"))
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
