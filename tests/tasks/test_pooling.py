"""make_task's head="auto" on bare encoders: a sentence-transformers folder's pooling config picks the pooling;
a broken one is named; an explicit head wins; the max pooling reads only real tokens."""

import json

import pytest
import torch

from softprompt.core.loading import load_model
from softprompt.core.model import PromptedModel
from softprompt.core.pooling import trained_pooling
from softprompt.data import TaskSpec
from softprompt.errors import ConfigError, PromptFileError
from softprompt.tasks import HeadClassificationTask, VerbalizerTask, make_task, saved_head
from softprompt.tasks.layers import ClassificationHead
from softprompt.testing.models import pooling_flags as flags
from softprompt.testing.models import save_encoder as write_encoder
from softprompt.testing.models import tiny_model
from softprompt.testing.tokenizer import tiny_tokenizer

SPEC = TaskSpec(
    name="reviews",
    task="classification",
    text_fields=("text",),
    label_field="label",
    labels=("negative", "positive"),
)


@pytest.mark.parametrize(
    "on, pool",
    [
        ("pooling_mode_mean_tokens", "mean"),
        ("pooling_mode_cls_token", "first"),
        ("pooling_mode_max_tokens", "max"),
    ],
)
def test_auto_head_takes_the_checkpoints_pooling(tmp_path, on, pool):
    folder = write_encoder(tmp_path / "st", flags(on), pooling_dir="pool")
    model = load_model(str(folder), device="cpu")
    assert model.info.kind == "encoder"
    task = make_task(model, SPEC)
    assert isinstance(task, HeadClassificationTask) and task.head.pool == pool
    assert str(folder / "pool" / "config.json") in task.pool_source
    assert make_task(model, SPEC, head=None).head.pool == pool  # None is "auto"


def test_without_a_pooling_config_the_head_reads_the_first_token(tmp_path):
    plain = load_model(str(write_encoder(tmp_path / "plain")), device="cpu")
    in_memory = PromptedModel(tiny_model("bert", head="base"), tokenizer=tiny_tokenizer("masked"))
    for model in (plain, in_memory):
        task = make_task(model, SPEC)
        assert task.head.pool == "first" and "no sentence-transformers pooling config" in task.pool_source


def test_explicit_head_wins_even_over_a_broken_pooling_config(tmp_path):
    folder = write_encoder(tmp_path / "st", flags("pooling_mode_mean_tokens"))
    model = load_model(str(folder), device="cpu")
    assert make_task(model, SPEC, head="last").head.pool == "last"
    (folder / "1_Pooling" / "config.json").write_text("{not json")
    task = make_task(model, SPEC, head="first")
    assert task.head.pool == "first" and task.pool_source == "asked for"
    with pytest.raises(PromptFileError, match="1_Pooling/config.json: not valid JSON"):
        make_task(model, SPEC)
    with pytest.raises(ConfigError, match="head='cls' is not accepted; choose one of: auto, lm, first"):
        make_task(model, SPEC, head="cls")


@pytest.mark.parametrize(
    "pooling",
    [
        flags("pooling_mode_mean_tokens", "pooling_mode_max_tokens"),  # concatenated: no single head
        flags() | {"pooling_mode_weightedmean_tokens": True},
        flags(),
    ],
)
def test_a_pooling_no_head_reproduces_is_named_with_the_accepted_flags(tmp_path, pooling):
    folder = write_encoder(tmp_path / "st", pooling)
    with pytest.raises(PromptFileError) as e:
        trained_pooling(folder)
    msg = str(e.value)
    assert msg.startswith(str(folder / "1_Pooling" / "config.json"))
    on = [k for k, v in pooling.items() if v is True]
    assert " + ".join(on) in msg if on else "no pooling_mode_* flag true" in msg
    for accepted in ("pooling_mode_cls_token (first)", "pooling_mode_mean_tokens (mean)", "--head"):
        assert accepted in msg


def test_unreadable_modules_json_and_a_folder_without_pooling(tmp_path):
    folder = write_encoder(tmp_path / "st", flags("pooling_mode_mean_tokens"))
    (folder / "modules.json").write_text(json.dumps({"0": "Transformer"}))
    with pytest.raises(PromptFileError, match="modules.json: expected a JSON list"):
        trained_pooling(folder)
    (folder / "modules.json").write_text(json.dumps([{"type": "sentence_transformers.models.Transformer"}]))
    assert trained_pooling(folder) is None  # a sentence-transformers folder without a pooling module
    (folder / "modules.json").write_text(
        json.dumps([{"type": "sentence_transformers.models.Pooling", "path": "x"}])
    )
    with pytest.raises(PromptFileError, match="x/config.json: cannot read it"):
        trained_pooling(folder)
    assert trained_pooling(tmp_path / "nowhere") is None and trained_pooling(None) is None


def test_language_models_keep_label_word_scoring():
    model = PromptedModel(tiny_model("bert"), tokenizer=tiny_tokenizer("masked"))  # with its MLM head
    assert isinstance(make_task(model, SPEC, template="{text} it was {mask} ."), VerbalizerTask)
    assert saved_head(model, None) == "lm"
    encoder = PromptedModel(tiny_model("bert", head="base"), tokenizer=tiny_tokenizer("masked"))
    assert saved_head(encoder, None) == "first"  # files from before "auto" meant the first token
    assert saved_head(encoder, "mean") == "mean"


def test_max_pooling_reads_only_real_tokens():
    head = ClassificationHead(3, 2, pool="max", dropout=0.0)
    hidden = torch.tensor([[[1.0, -5.0, 0.0], [2.0, -1.0, -3.0], [9.0, 9.0, 9.0]]])  # (1, 3, 3)
    mask = torch.tensor([[1, 1, 0]])  # the third position is padding
    expected = head.classifier(torch.tensor([[2.0, -1.0, 0.0]]))
    torch.testing.assert_close(head(hidden, mask), expected)
