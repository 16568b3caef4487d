"""format=<JSON schema>: every output validates against its schema, checked
with the jsonschema package (an independent validator), on the random-weight
tiny_chat model and on the default model (SmolLM2-135M-Instruct, skipped when
scripts/fetch-default-model.sh has not fetched it).

The schemas (tests/fixtures/schema/schemas.json) cover the whole supported
subset: type, properties, required, enum, const, items, minItems/maxItems,
every scalar type, anyOf, type lists, additionalProperties, $ref/$defs
(recursive), free objects and values, and a union of tool-call objects.
"""

import json
import os

import pytest

import airllm_c

jsonschema = pytest.importorskip("jsonschema")

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
DEFAULT_MODEL = os.path.join(os.environ.get("AIRLLM_MODELS_DIR", os.path.join(REPO, "models")),
                             "SmolLM2-135M-Instruct.Q4_1.gguf")
RUNS = 200

with open(os.path.join(REPO, "tests", "fixtures", "schema", "schemas.json"), encoding="utf-8") as f:
    SCHEMAS = json.load(f)

PROMPTS = ["Fill in the form.", "Describe a person as JSON.", "Give me the data.",
           "Reply with the requested object.", "What is the weather in Paris?"]


def _run_all(model, cache_dir, max_tokens, **kw):
    bad = []
    for k in range(RUNS):
        schema = SCHEMAS[k % len(SCHEMAS)]
        r = airllm_c.get_llm_response(PROMPTS[k % len(PROMPTS)], model=model, format=schema,
                                      seed=k, max_tokens=max_tokens, cache_dir=cache_dir, **kw)
        try:
            jsonschema.validate(json.loads(r["response"]), schema)
        except (ValueError, jsonschema.ValidationError) as e:
            bad.append((k, r["response"], str(e).splitlines()[0]))
    return bad


def test_tiny_chat_outputs_validate(tiny_chat, cache_dir):
    # temperature 1 without truncation: the random model's whole distribution
    bad = _run_all(tiny_chat, cache_dir, 160, compression=None, temperature=1.0, top_k=0,
                   top_p=1.0, min_p=0.0)
    assert not bad, f"{len(bad)} of {RUNS} outputs do not validate: {bad[:3]}"


def test_default_model_outputs_validate(lib, cache_dir):
    if not os.path.isfile(DEFAULT_MODEL):
        pytest.skip(f"{DEFAULT_MODEL} is missing (scripts/fetch-default-model.sh fetches it)")
    bad = _run_all(DEFAULT_MODEL, cache_dir, 64)
    assert not bad, f"{len(bad)} of {RUNS} outputs do not validate: {bad[:3]}"


@pytest.mark.parametrize("schema, keyword", [
    ({"type": "object", "properties": {"a": {"type": "string", "pattern": "^x"}}}, "pattern"),
    ({"type": "object", "properties": {"n": {"type": "integer", "minimum": 0}}}, "minimum"),
    ({"oneOf": [{"type": "object"}]}, "oneOf"),
    ({"type": "object", "properties": {"d": {"type": "string", "format": "date"}}}, "format"),
])
def test_unsupported_keyword_is_named(tiny_chat, cache_dir, schema, keyword):
    with pytest.raises(airllm_c.AirLLMError, match=f'"{keyword}"'):
        airllm_c.get_llm_response("x", model=tiny_chat, format=schema, compression=None,
                                  cache_dir=cache_dir, max_tokens=4)


def test_schema_instruction_and_format_json_still_work(ask):
    r = ask("x", format="json", max_tokens=24)
    assert isinstance(json.loads(r["response"]), dict)


def test_cli_schema_option(tiny_chat, tmp_path):
    cli = os.path.join(REPO, "build", "airllm")
    if not os.path.isfile(cli):
        pytest.skip(f"{cli} is not built")
    import subprocess
    schema = SCHEMAS[0]
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(schema))
    out = subprocess.run([cli, "run", tiny_chat, "Fill in the form.", "--schema", str(path),
                          "-n", "96", "--temperature", "1", "--cache-dir", str(tmp_path / "c"),
                          "-c", "none"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    jsonschema.validate(json.loads(out.stdout), schema)
    bad = tmp_path / "bad.json"
    bad.write_text('{"type": "object", "properties": {"a": {"type": "string", "pattern": "x"}}}')
    out = subprocess.run([cli, "run", tiny_chat, "x", "--schema", str(bad), "--cache-dir",
                          str(tmp_path / "c"), "-c", "none"], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode != 0 and '"pattern"' in out.stderr
