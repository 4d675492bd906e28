"""``/openapi.json`` describes every endpoint: each POST has a typed JSON body with its fields and constraints; bodies
FastAPI refuses keep the API's error shape, and the size limit holds for bodies sent without a length."""

import httpx

from .test_error_catalogue import error_of

FIELDS = {
    "/v1/completions": {
        "model",
        "prompt",
        "max_tokens",
        "temperature",
        "top_p",
        "stop",
        "seed",
        "n",
        "logprobs",
    },
    "/v1/chat/completions": {
        "model",
        "messages",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
    },
    "/v1/classify": {"model", "input"},
    "/v1/prompts": {"name", "path"},
}


def body_schema(spec: dict, path: str) -> dict:
    ref = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    return spec["components"]["schemas"][ref.rsplit("/", 1)[1]]


def test_every_post_endpoint_has_a_typed_body(server):
    spec = httpx.get(server.url + "/openapi.json").json()
    posts = {p for p, ops in spec["paths"].items() if "post" in ops}
    assert posts == set(FIELDS)
    for path, fields in FIELDS.items():
        schema = body_schema(spec, path)
        assert fields <= set(schema["properties"]), (path, set(schema["properties"]))
        assert "model" in schema["required"] or path == "/v1/prompts"
    props = body_schema(spec, "/v1/completions")["properties"]
    assert (props["temperature"]["minimum"], props["temperature"]["maximum"]) == (0.0, 2.0)
    assert props["top_p"]["exclusiveMinimum"] == 0.0 and props["n"]["maximum"] == 16
    assert props["temperature"]["default"] == 1.0 and props["logprobs"]["anyOf"][0]["maximum"] == 5
    assert {"get"} <= set(spec["paths"]["/v1/models"]) and "delete" in spec["paths"]["/v1/prompts/{name}"]


def test_empty_body_is_400(server):
    r = httpx.post(server.url + "/v1/completions", headers={"content-type": "application/json"})
    assert error_of(r, 400)["code"] == "invalid_json"


def test_body_without_a_length_over_the_limit_is_413(server):
    def chunks():
        yield b'{"model": "pt", "prompt": "'
        for _ in range(300):
            yield b"a " * 2000
        yield b'"}'

    r = httpx.post(server.url + "/v1/completions", content=chunks())
    assert "limit is 1048576" in error_of(r, 413)["message"]
    small = httpx.post(
        server.url + "/v1/completions",
        content=iter([b'{"model": "base", "prompt": "the",', b' "max_tokens": 2, "temperature": 0}']),
    )
    assert small.status_code == 200 and small.json()["usage"]["completion_tokens"] <= 2
