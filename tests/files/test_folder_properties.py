"""Property tests of prompt folders and checkpoints: random corruptions of their JSON and safetensors files are
refused with a PromptFileError naming the file (never a raw json / safetensors / struct / Key / Type error), and
nothing is ever unpickled."""

import json
import pickle
import random
import shutil
import struct

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from conftest import make_model
from softprompt.errors import PromptFileError, SoftPromptError
from softprompt.files import checkpoint
from softprompt.files.prompts import load_prompt, save_prompt

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def json_damage(draw, data: bytes) -> bytes:
    """A JSON file cut short, with bytes flipped, or with one value of its tree replaced by any JSON value."""
    kind = draw(st.sampled_from(["truncate", "flip", "subtree", "whole"]))
    if kind == "truncate":
        return data[: draw(st.integers(0, max(len(data) - 1, 0)))]
    if kind == "flip":
        out = bytearray(data)
        for _ in range(draw(st.integers(1, 4))):
            out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
        return bytes(out)
    if kind == "whole":
        return json.dumps(draw(JSON_VALUES)).encode()
    tree = json.loads(data)
    paths = list(_paths(tree, ()))
    path = draw(st.sampled_from(paths))
    if not path:
        return json.dumps(draw(JSON_VALUES)).encode()
    node = tree
    for key in path[:-1]:
        node = node[key]
    if draw(st.booleans()):
        node[path[-1]] = draw(JSON_VALUES)
    else:
        del node[path[-1]]
    return json.dumps(tree).encode()


def _paths(node, prefix):
    yield prefix
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield from _paths(value, (*prefix, key))


@st.composite
def safetensors_damage(draw, data: bytes) -> bytes:
    """A safetensors file with its header length, header JSON or payload damaged, or cut short."""
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    kind = draw(st.sampled_from(["length", "header", "entry", "truncate", "flip"]))
    if kind == "length":
        return struct.pack("<Q", draw(st.integers(0, 2**64 - 1))) + data[8:]
    if kind == "truncate":
        return data[: draw(st.integers(0, len(data) - 1))]
    if kind == "flip":
        out = bytearray(data)
        out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
        return bytes(out)
    if kind == "entry":
        name = draw(st.sampled_from(sorted(k for k in header if k != "__metadata__")))
        field = draw(st.sampled_from(["dtype", "shape", "data_offsets"]))
        header[name][field] = draw(
            st.one_of(
                JSON_VALUES, st.sampled_from(["F16", "I64", "BOOL", "F64"]), st.lists(st.integers(-1, 99))
            )
        )
    else:
        header = draw(JSON_VALUES)
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + data[8 + n :]


@pytest.fixture(autouse=True)
def no_unpickling(monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("a prompt or checkpoint file was unpickled")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(torch, "load", refuse)


@pytest.fixture(scope="module")
def saved_prompt(tmp_path_factory):
    model = make_model("llama", ["p-tuning"])
    return save_prompt(model, "p_tuning", tmp_path_factory.mktemp("p") / "p")


@given(data=st.data(), file=st.sampled_from(["prompt.json", "prompt.safetensors"]))
def test_a_corrupt_prompt_folder_is_refused_naming_the_file(tmp_path_factory, saved_prompt, data, file):
    folder = tmp_path_factory.mktemp("c") / "p"
    shutil.copytree(saved_prompt, folder)
    original = (folder / file).read_bytes()
    damage = json_damage if file.endswith(".json") else safetensors_damage
    damaged = data.draw(damage(original))
    (folder / file).write_bytes(damaged)
    try:
        load_prompt(make_model("llama"), folder)
    except SoftPromptError as e:  # PromptFileError, or BackboneMismatch when the backbone description changed
        assert str(folder) in str(e), str(e)


@pytest.fixture(scope="module")
def saved_checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    module = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(module.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LinearLR(opt, total_iters=4)
    module(torch.ones(1, 3)).sum().backward()
    opt.step()
    sched.step()
    out = tmp_path_factory.mktemp("ck")
    counters = {"epoch": 0, "best": None, "bad_evals": 0, "elapsed": 1.0}
    return checkpoint.save_checkpoint(
        out,
        1,
        modules={"m": module},
        optimizer=opt,
        scheduler=sched,
        counters=counters,
        rng=[checkpoint.rng_state()],
    )


CHECKPOINT_FILES = ["trainer.json", "optimizer.json", "scheduler.json", "rng.json"]
CHECKPOINT_TENSORS = ["params.safetensors", "optimizer.safetensors", "rng.safetensors"]


@given(data=st.data(), file=st.sampled_from(CHECKPOINT_FILES + CHECKPOINT_TENSORS))
def test_a_corrupt_checkpoint_is_refused_naming_the_file(tmp_path_factory, saved_checkpoint, data, file):
    folder = tmp_path_factory.mktemp("c") / "step-1"
    shutil.copytree(saved_checkpoint, folder)
    damage = json_damage if file.endswith(".json") else safetensors_damage
    (folder / file).write_bytes(data.draw(damage((folder / file).read_bytes())))
    module = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(module.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LinearLR(opt, total_iters=4)
    state = random.getstate(), torch.get_rng_state()
    try:
        ckpt = checkpoint.load_checkpoint(folder)
        checkpoint.restore(ckpt, {"m": module}, opt, sched)
        with checkpoint.named_if_corrupt(folder / "rng.json"):  # as training/resume.py calls it
            checkpoint.set_rng_state(ckpt.rng[0])
    except PromptFileError as e:
        assert str(folder) in str(e), str(e)
    finally:
        random.setstate(state[0])
        torch.set_rng_state(state[1])


# The failures the property tests found, kept as plain regression tests (each was a raw Python error before).
PROMPT_BUGS = [
    ("null", "holds a JSON NoneType"),  # AttributeError: 'NoneType' object has no attribute 'get'
    ({"config": {"num_virtual_tokens": None}}, "num_virtual_tokens"),  # TypeError: '<' between None and int
    ({"name": True}, "'name' must be a string"),  # TypeError: expected string or bytes-like object
    ({"config": {"method": []}}, "'method' must be a string"),  # TypeError: unhashable type: 'list'
    (
        {"backbone": {"fingerprint": None}},
        "'fingerprint' must be a string",
    ),  # AttributeError (found by make fuzz)
]


@pytest.mark.parametrize(("change", "message"), PROMPT_BUGS)
def test_found_prompt_json_bugs_are_named(tmp_path, saved_prompt, change, message):
    folder = tmp_path / "p"
    shutil.copytree(saved_prompt, folder)
    meta = json.loads((folder / "prompt.json").read_text())
    if isinstance(change, dict):
        for key, value in change.items():
            meta[key] = {**meta[key], **value} if isinstance(value, dict) else value
        (folder / "prompt.json").write_text(json.dumps(meta))
    else:
        (folder / "prompt.json").write_text(change)
    with pytest.raises(PromptFileError, match=message):
        load_prompt(make_model("llama"), folder)


CHECKPOINT_BUGS = [
    ("scheduler.json", '"0"'),  # ValueError: dictionary update sequence element #0 has length 1
    ("rng.json", "null"),  # TypeError: 'NoneType' object is not iterable
    (
        "rng.json",
        '[{"python": [3, [1, 2], null], "numpy": ["MT19937", [1], 623, 0, 0.0]}]',
    ),  # ValueError/IndexError
    ("optimizer.json", '{"param_groups": []}'),  # KeyError: 'scalars'
    ("trainer.json", '{"format": "softprompt-checkpoint", "step": null}'),  # TypeError: int(None)
]


@pytest.mark.parametrize(("file", "text"), CHECKPOINT_BUGS)
def test_found_checkpoint_bugs_are_named(tmp_path, saved_checkpoint, file, text):
    folder = tmp_path / "step-1"
    shutil.copytree(saved_checkpoint, folder)
    (folder / file).write_text(text)
    module = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(module.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.LinearLR(opt, total_iters=4)
    state = random.getstate(), torch.get_rng_state()
    with pytest.raises(PromptFileError, match=str(folder)):
        ckpt = checkpoint.load_checkpoint(folder)
        checkpoint.restore(ckpt, {"m": module}, opt, sched)
        with checkpoint.named_if_corrupt(folder / "rng.json"):
            checkpoint.set_rng_state(ckpt.rng[0])
    random.setstate(state[0])
    torch.set_rng_state(state[1])
