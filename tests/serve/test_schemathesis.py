"""The HTTP API fuzzed from its own ``/openapi.json`` (schemathesis): every operation the schema lists, every body
field, data that fits the schema and data that does not; no 5xx, no traceback in a body, every request answered
within its bound, every status code and body as the schema documents them (serve/replies.py).

Half the bodies that fit the schema name a served prompt as ``model`` (a random name is a 404, which tests little).
``SOFTPROMPT_SCHEMATHESIS_EXAMPLES`` sets the examples per operation and mode (default 25; ``make fuzz`` runs more
through bench/fuzz.py, which reads the counts this test writes to ``SOFTPROMPT_SCHEMATHESIS_REPORT``).
"""

import collections
import json
import os
import shutil

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from .serving import PROMPTS, start

EXAMPLES = int(os.environ.get("SOFTPROMPT_SCHEMATHESIS_EXAMPLES", "25"))
TIMEOUT = 20.0
"""Seconds any one request may take (a hang fails the test)."""
DATA_DEPENDENT = [
    "prompt is empty",  # text that tokenizes to nothing
    "no such folder",  # POST /v1/prompts: the path must hold a prompt folder
    "neither a prompt folder",
    "outside the prompts directory",
    "not a usable path",
    "is already served",  # ... and the name must be free
    "is reserved",
    "no classification task",  # /v1/classify: the prompt must have been trained for classification
    "classifies into",  # ... and an ensemble's members into the same labels
]
"""400s a body that fits the schema may still get: what they depend on (the tokenizer, the prompt's length, the
files, the served names) is not a JSON-schema bound."""
OPERATIONS = [
    "POST /v1/completions",
    "POST /v1/chat/completions",
    "POST /v1/classify",
    "POST /v1/prompts",
    "GET /v1/models",
    "GET /health",
    "GET /metrics",
    "DELETE /v1/prompts/{name}",  # last: it may remove served prompts
]
CASES = [(op, GenerationMode.POSITIVE) for op in OPERATIONS] + [
    (op, GenerationMode.NEGATIVE) for op in OPERATIONS if op.startswith("POST")
]  # (the others take no body and no field a wrong value could be sent in: a path segment is any string)
SERVED = ["base", *PROMPTS, "run"]
TALLY: collections.Counter = collections.Counter()


@pytest.fixture(scope="module")
def api(serve_assets, tmp_path_factory):
    prompts = tmp_path_factory.mktemp("fuzzed") / "prompts"  # its own copy: the deletes it sends are kept
    shutil.copytree(serve_assets["prompts"], prompts)
    assets = {**serve_assets, "prompts": str(prompts)}
    live = start(assets, max_rows=8, max_queue=64, max_new_tokens=16, request_timeout=15.0)
    yield schemathesis.openapi.from_url(live.url + "/openapi.json")
    live.close()
    live.engine.stop()
    if out := os.environ.get("SOFTPROMPT_SCHEMATHESIS_REPORT"):
        with open(out, "w") as f:
            json.dump({"examples": EXAMPLES, "requests": [[*k, n] for k, n in sorted(TALLY.items())]}, f)


def test_every_operation_is_fuzzed(api):
    listed = {op.ok().label for op in api.get_all_operations()}
    assert listed == set(OPERATIONS)


@pytest.mark.parametrize(("label", "mode"), CASES, ids=[f"{op}-{m.value}" for op, m in CASES])
def test_operation_conforms_to_its_schema(api, label, mode):
    method, path = label.split(" ", 1)
    operation = api[path][method]
    positive = mode is GenerationMode.POSITIVE

    @given(case=operation.as_strategy(generation_mode=mode), served=st.sampled_from([None, *SERVED]))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def run(case, served):
        if positive and served is not None:
            if isinstance(case.body, dict) and "model" in case.body:
                case.body["model"] = served
            if case.path_parameters and "name" in case.path_parameters:
                case.path_parameters["name"] = served
        response = case.call(timeout=TIMEOUT)
        TALLY[label, mode.value, response.status_code] += 1
        why = f"{case.as_curl_command()}\n-> {response.status_code} {response.text[:500]}"
        assert response.status_code < 500, why
        assert "Traceback" not in response.text and 'File "' not in response.text, why
        case.validate_response(response, excluded_checks=[positive_data_acceptance])
        if positive and response.status_code == 400:
            err = response.json()["error"]
            too_long = err["code"] == "context_length_exceeded"  # input + max_tokens over the positions
            assert too_long or any(m in err["message"] for m in DATA_DEPENDENT), why

    run()
