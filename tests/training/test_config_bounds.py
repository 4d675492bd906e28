"""Property tests of config values at and beyond every declared bound: TrainConfig and every method config.

The bounds are read from the configs themselves (every ``check_range`` call their ``__post_init__`` makes, and
every bound declared on a field's annotation, ``Annotated[int, Field(ge=1)]``, that ``errors.check_fields`` checks
with pydantic), so a new field with a range is covered without editing this file. In range: accepted. Beyond it, NaN, infinite, or not
a number at all: a ConfigError naming the field."""

import dataclasses
import math
import sys
import typing

import pytest
from hypothesis import given
from hypothesis import strategies as st

import softprompt.errors
from softprompt.errors import ConfigError
from softprompt.methods import METHODS, make_config
from softprompt.training import TrainConfig

BASE = {"p-tuning": {"encoder_hidden": 8}}


def _bounds(build) -> dict[str, tuple]:
    """``{field: (low, high, low_open)}`` of every range ``build()`` checks."""
    seen, real = {}, softprompt.errors.check_range

    def spy(name, value, *, low=None, high=None, low_open=False):
        seen[name] = (low, high, low_open)
        return real(name, value, low=low, high=high, low_open=low_open)

    patched = [m for m in list(sys.modules.values()) if getattr(m, "check_range", None) is real]
    for module in patched:
        module.check_range = spy
    try:
        build()
    finally:
        for module in patched:
            module.check_range = real
    return seen


def _declared(cls) -> dict[str, tuple]:
    """``{field: (low, high, low_open)}`` of every bound declared on ``cls``'s field annotations (pydantic's)."""
    from annotated_types import Ge, GroupedMetadata, Gt, Le

    seen = {}
    for name, hint in typing.get_type_hints(cls, include_extras=True).items():
        if typing.get_origin(hint) is not typing.Annotated:
            continue
        low = high = None
        low_open = False
        for meta in typing.get_args(hint)[1:]:
            for m in meta if isinstance(meta, GroupedMetadata) else getattr(meta, "metadata", [meta]):
                if isinstance(m, (Ge, Gt)):
                    low, low_open = (m.ge, False) if isinstance(m, Ge) else (m.gt, True)
                elif isinstance(m, Le):
                    high = m.le
        if (low, high) != (None, None):
            seen[name] = (low, high, low_open)
    return seen


def _builders():
    yield "train", lambda **kw: TrainConfig(**kw)
    for method in METHODS:
        if dataclasses.fields(METHODS[method].config):
            yield method, lambda _m=method, **kw: make_config(_m, **{**BASE.get(_m, {}), **kw})


CASES = [
    (who, build, name, bound)
    for who, build in _builders()
    for name, bound in {**_bounds(build), **(_declared(TrainConfig) if who == "train" else {})}.items()
]


def test_every_config_declares_some_bounds():
    assert {who for who, *_ in CASES} >= {"train", "prompt-tuning", "p-tuning", "prefix-tuning"}


def _is_int(build, name) -> bool:
    return isinstance(dataclasses.asdict(build()).get(name), int) and name != "init_range"


@pytest.mark.parametrize(("who", "build", "name", "bound"), CASES, ids=[f"{c[0]}.{c[2]}" for c in CASES])
@given(data=st.data())
def test_in_range_is_accepted_and_beyond_is_refused_naming_the_field(who, build, name, bound, data):
    low, high, low_open = bound
    integer = _is_int(build, name)
    numbers = st.integers(-(2**40), 2**40) if integer else st.floats(allow_nan=True, allow_infinity=True)
    edges = [v for v in (low, high) if v is not None]
    nudges = [e + d for e in edges for d in ((-1, 0, 1) if integer else (-1e-9, 0, 1e-9))]
    value = data.draw(st.one_of(numbers, st.sampled_from(nudges)))
    if integer and not isinstance(value, int):
        value = int(value)
    inside = (
        not (isinstance(value, float) and not math.isfinite(value))
        and (low is None or (value > low if low_open else value >= low))
        and (high is None or value <= high)
    )
    if inside:
        assert getattr(build(**{name: value}), name) == value
    else:
        with pytest.raises(ConfigError, match=rf"^{name}="):
            build(**{name: value})


@pytest.mark.parametrize(("who", "build", "name", "bound"), CASES, ids=[f"{c[0]}.{c[2]}" for c in CASES])
@pytest.mark.parametrize("value", [None, "1", [1], float("nan")])
def test_a_value_that_is_not_a_number_is_refused_naming_the_field(who, build, name, bound, value):
    try:
        build(**{name: value})
    except ConfigError as e:
        assert name in str(e)
    else:  # only a None where the field is optional (e.g. head_lr=None: the method's default)
        assert value is None
