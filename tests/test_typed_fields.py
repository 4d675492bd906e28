"""Typed fields: bounds and choices declared on a dataclass's annotations, checked by pydantic, reported as our
ConfigError naming the field, the value and what is accepted (errors.check_fields / check_value)."""

from dataclasses import dataclass
from typing import Annotated, Literal

import pytest
from pydantic import Field

from softprompt.errors import ConfigError, Positive, check_fields, check_value


@dataclass(kw_only=True)
class Knobs:
    steps: Annotated[int, Field(ge=1, le=100)] = 10
    rate: Annotated[float, Field(gt=0, le=1)] = 0.5
    mode: Literal["fast", "slow"] = "fast"
    limit: Positive | None = None
    name: Annotated[str, Field(min_length=2)] = "ok"
    flag: bool = False

    def __post_init__(self):
        check_fields(self)


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"steps": 0}, "steps=0 is out of range; accepted: [1, 100]"),
        ({"steps": 101}, "steps=101 is out of range; accepted: [1, 100]"),
        ({"rate": 0.0}, "rate=0.0 is out of range; accepted: (0, 1]"),
        ({"rate": 0}, "rate=0.0 is out of range; accepted: (0, 1]"),
        ({"mode": "medium"}, "mode='medium' is not accepted; choose one of: fast, slow"),
        ({"limit": 0}, "limit=0 is out of range; accepted: [1, inf]"),
        ({"limit": "3"}, "limit='3' has type str; expected int or null"),
        ({"steps": True}, "steps=True has type bool; expected int"),
        ({"steps": 2.0}, "steps=2.0 has type float; expected int"),
        ({"flag": 1}, "flag=1 has type int; expected bool"),
        ({"name": "x"}, "name='x' is not accepted: String should have at least 2 characters"),
    ],
)
def test_each_mistake_names_field_value_and_what_is_accepted(fields, message):
    with pytest.raises(ConfigError) as e:
        Knobs(**fields)
    assert str(e.value) == message


def test_good_values_pass_and_ints_become_floats():
    k = Knobs(steps=100, rate=1, mode="slow", limit=None)
    assert k.rate == 1.0 and type(k.rate) is float and k.steps == 100


def test_check_value_for_arguments():
    assert check_value("kind", "causal", Literal["causal", "masked"]) == "causal"
    with pytest.raises(ConfigError, match=r"^kind='x' is not accepted; choose one of: causal, masked$"):
        check_value("kind", "x", Literal["causal", "masked"])


def test_configs_declare_their_bounds_on_the_fields():
    from softprompt.commands.runconfig import TaskOptions
    from softprompt.serve import EngineConfig

    with pytest.raises(ConfigError, match=r"^max_rows=0 is out of range; accepted: \[1, 4096\]$"):
        EngineConfig(max_rows=0)
    with pytest.raises(ConfigError, match=r"^request_timeout=0.0 is out of range; accepted: \(0, inf\]$"):
        EngineConfig(request_timeout=0)
    with pytest.raises(ConfigError, match=r"^max_length=4 is out of range; accepted: \[8, 65536\]$"):
        TaskOptions(max_length=4)
    with pytest.raises(ConfigError, match=r"^head='cls' is not accepted; choose one of: auto, lm, first"):
        TaskOptions(head="cls")
