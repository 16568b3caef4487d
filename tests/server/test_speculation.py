"""`airllm serve` with speculative decoding, through the real `openai`
client: concurrent requests (greedy, a stop string, sampled with a seed,
JSON mode, streamed) to a streamed server with lookup and a resident draft
(the model's own 8bit copy) answer exactly what a server without speculation
answers for each request alone; /metrics reports tokens per sweep and the
acceptance rate."""

import json
import threading

import pytest

from conftest import MODEL_ID, TINY_CHAT, get_json, start

openai = pytest.importorskip("openai")

QUESTIONS = [
    "Hello, who are you?",
    "Repeat after me: the quick brown fox jumps over the lazy dog, the quick brown fox.",
    "What is the capital of France?",
    "Give me a JSON object describing a cat.",
]


def requests():
    """(keyword arguments, streamed) of each request."""
    out = []
    for i, q in enumerate(QUESTIONS):
        out.append((dict(messages=[{"role": "user", "content": q}], max_tokens=40,
                         temperature=0), i == 1))
    out.append((dict(messages=[{"role": "user", "content": QUESTIONS[2]}], max_tokens=40,
                     temperature=0.9, top_p=1.0, seed=5), False))
    out.append((dict(messages=[{"role": "user", "content": QUESTIONS[3]}], max_tokens=48,
                     temperature=0.8, seed=3, response_format={"type": "json_object"}), True))
    return out


def ask(server, kw, stream):
    c = openai.OpenAI(base_url=server.url + "/v1", api_key="none", max_retries=0, timeout=120)
    if not stream:
        r = c.chat.completions.create(model=MODEL_ID, **kw)
        return r.choices[0].message.content, r.choices[0].finish_reason
    text, finish = "", None
    for ch in c.chat.completions.create(model=MODEL_ID, stream=True, **kw):
        if ch.choices:
            text += ch.choices[0].delta.content or ""
            finish = ch.choices[0].finish_reason or finish
    return text, finish


@pytest.fixture(scope="module")
def plain_answers(tmp_path_factory):
    s = start(tmp_path_factory, "--ram", "0", "--no-speculation")
    try:
        reqs = requests()
        answers = [ask(s, kw, st) for kw, st in reqs]
        # a stop string from the middle of the first greedy answer
        text = answers[0][0]
        stop = text[len(text) // 2:len(text) // 2 + 3]
        kw = dict(reqs[0][0], stop=[stop])
        answers.append(ask(s, kw, False))
        m = get_json(s.url + "/metrics")[1]["models"][0]
        assert m["drafted"] == 0 and m["accepted"] == 0 and m["acceptance_rate"] == 0
        assert m["tokens_per_step"] == 1
    finally:
        assert s.stop() == 0
    assert answers[-1][1] == "stop" and stop not in answers[-1][0]
    return answers, stop


@pytest.mark.parametrize("args", [
    ["--lookup"],
    ["--draft", TINY_CHAT, "--draft-compression", "8bit"],
    ["--draft", TINY_CHAT, "--draft-compression", "4bit", "--lookup", "--draft-max", "8"],
], ids=["lookup", "8bit-draft-auto", "4bit-draft-lookup-fixed"])
def test_concurrent_answers_equal_plain(tmp_path_factory, plain_answers, args):
    answers, stop = plain_answers
    s = start(tmp_path_factory, "--ram", "0", *args)
    try:
        reqs = requests()
        reqs.append((dict(reqs[0][0], stop=[stop]), False))
        got = [None] * len(reqs)

        def run(i):
            got[i] = ask(s, *reqs[i])

        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(reqs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for i, (want, have) in enumerate(zip(answers, got)):
            assert have == want, (i, reqs[i][0])
        json.loads(got[5][0])  # JSON mode still gives one object
        m = get_json(s.url + "/metrics")[1]["models"][0]
        assert m["drafted"] > 0, m
        assert 0 <= m["acceptance_rate"] <= 1
        assert m["decode_tokens"] >= m["decode_steps"] > 0
        if "--draft" in args:  # the model's own copy agrees: several tokens per step
            assert m["accepted"] > 0 and m["tokens_per_step"] > 1, m
    finally:
        assert s.stop() == 0, s.stderr.decode(errors="replace")


def test_bad_draft_is_refused(tmp_path_factory):
    with pytest.raises(RuntimeError, match="draft"):
        start(tmp_path_factory, "--draft", "/nonexistent/draft-model")
