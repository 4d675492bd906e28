"""PEFT checkpoints in and out: logits equal PEFT's own on separate copies of the same seeded backbone."""

import json

import pytest
import torch

peft = pytest.importorskip("peft")
from peft import PeftModel, PrefixTuningConfig, PromptEncoderConfig, PromptTuningConfig, get_peft_model  # noqa: E402

from softprompt.core.model import PromptedModel  # noqa: E402
from softprompt.errors import BackboneMismatch, PromptFileError, UnsupportedModel  # noqa: E402
from softprompt.files.peft import import_peft  # noqa: E402
from softprompt.files.peft_export import export_peft  # noqa: E402
from softprompt.methods import make_config  # noqa: E402
from softprompt.testing.models import tiny_model  # noqa: E402

ATOL = 1e-4
P = 3
TASK = {"llama": "CAUSAL_LM", "gpt2": "CAUSAL_LM", "bert": "FEATURE_EXTRACTION", "t5": "SEQ_2_SEQ_LM"}

PEFT_CONFIGS = {
    "prompt": lambda task: PromptTuningConfig(task_type=task, num_virtual_tokens=P),
    "ptune-mlp": lambda task: PromptEncoderConfig(
        task_type=task, num_virtual_tokens=P, encoder_hidden_size=8
    ),
    "ptune-lstm": lambda task: PromptEncoderConfig(
        task_type=task, num_virtual_tokens=P, encoder_hidden_size=8, encoder_reparameterization_type="LSTM"
    ),
    "prefix": lambda task: PrefixTuningConfig(task_type=task, num_virtual_tokens=P),
    "prefix-proj": lambda task: PrefixTuningConfig(
        task_type=task, num_virtual_tokens=P, prefix_projection=True, encoder_hidden_size=16
    ),
}
PREFIX = ("prefix", "prefix-proj")
CASES = [(f, c) for f in ("llama", "gpt2", "bert") for c in PEFT_CONFIGS] + [
    ("t5", c) for c in PEFT_CONFIGS if c not in PREFIX
]


def inputs(family: str, seed: int = 0) -> dict:
    """Two rows: one full, one right-padded by two."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 200, (2, 6), generator=g)
    mask = torch.ones_like(ids)
    mask[1, -2:] = 0
    kw = {"input_ids": ids, "attention_mask": mask}
    if family == "t5":
        kw["decoder_input_ids"] = torch.randint(5, 200, (2, 4), generator=g)
    return kw


def perturb(params, seed: int = 1) -> None:
    """Move weights off their initialization, so a test cannot pass on init values."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params:
            p.add_(torch.randn(p.shape, generator=g) * 0.5)


def peft_logits(model, family: str, kw: dict, prompt_embeds: bool) -> torch.Tensor:
    """PEFT's logits on the caller's positions (causal/masked prompt tuning returns the virtual ones too)."""
    with torch.no_grad():
        logits = model(**kw).logits
    return logits[:, P:] if prompt_embeds and family != "t5" else logits


def ours_logits(model: PromptedModel, kw: dict, name: str) -> torch.Tensor:
    with torch.no_grad():
        return model(**kw, prompts=name).logits


def assert_close_on_real(ours, theirs, family: str, kw: dict) -> None:
    keep = slice(None) if family == "t5" else kw["attention_mask"].bool()
    assert ours.shape == theirs.shape
    assert (ours[keep] - theirs[keep]).abs().max().item() <= ATOL
    bare = tiny_model(family)(**kw).logits
    assert (bare[keep] - theirs[keep]).abs().max().item() > 1e-2  # the prompt matters


@pytest.mark.parametrize("family,kind", CASES)
def test_import_matches_peft_logits(family, kind, tmp_path):
    theirs = get_peft_model(tiny_model(family), PEFT_CONFIGS[kind](TASK[family])).eval()
    perturb(theirs.prompt_encoder.parameters())
    theirs.save_pretrained(tmp_path / "ckpt")
    ours = PromptedModel(tiny_model(family))
    name = import_peft(ours, tmp_path / "ckpt", "imported")
    expected = {"prompt": "prompt-tuning", "prefix": "prefix-tuning"}.get(kind, "static")
    assert name == "imported" and ours.bank.get(name).config.method == expected
    kw = inputs(family)
    assert_close_on_real(
        ours_logits(ours, kw, name), peft_logits(theirs, family, kw, kind not in PREFIX), family, kw
    )


OUR_METHODS = {
    "prompt-tuning": dict(init="random"),
    "p-tuning": dict(encoder="lstm", encoder_hidden=8),
    "prefix-tuning": dict(mlp_hidden=16),
    "p-tuning-v2": dict(dropout=0.0),
}
EXPORT_CASES = [(f, m) for f in ("llama", "gpt2", "bert") for m in OUR_METHODS] + [
    ("t5", m) for m in ("prompt-tuning", "p-tuning")
]


@pytest.mark.parametrize("family,method", EXPORT_CASES)
def test_export_loads_in_peft_with_equal_logits(family, method, tmp_path):
    ours = PromptedModel(tiny_model(family))
    module = ours.add_prompt("p", make_config(method, num_virtual_tokens=P, **OUR_METHODS[method]))
    perturb(module.parameters())
    ours.eval()
    export_peft(ours, "p", tmp_path / "out", base_model_name_or_path="tiny")
    cfg = json.loads((tmp_path / "out" / "adapter_config.json").read_text())
    assert cfg["peft_type"] == (
        "PREFIX_TUNING" if method.startswith(("prefix", "p-tuning-v2")) else "PROMPT_TUNING"
    )
    theirs = PeftModel.from_pretrained(tiny_model(family), tmp_path / "out").eval()
    kw = inputs(family)
    theirs_logits = peft_logits(theirs, family, kw, cfg["peft_type"] == "PROMPT_TUNING")
    assert_close_on_real(ours_logits(ours, kw, "p"), theirs_logits, family, kw)


def test_export_then_import_round_trips_values(tmp_path):
    ours = PromptedModel(tiny_model("llama"))
    module = ours.add_prompt("p", make_config("prefix-tuning", num_virtual_tokens=P, mlp_hidden=16))
    perturb(module.parameters())
    export_peft(ours, "p", tmp_path / "out")
    back = import_peft(ours, tmp_path / "out", "back")
    torch.testing.assert_close(ours.bank.get(back).contribute().kv, module.eject().kv, atol=1e-6, rtol=0)


# ----- errors ------------------------------------------------------------------------------------------------
def saved(tmp_path, family: str, kind: str):
    theirs = get_peft_model(tiny_model(family), PEFT_CONFIGS[kind](TASK[family]))
    theirs.save_pretrained(tmp_path / "ckpt")
    return tmp_path / "ckpt"


def test_prefix_for_another_backbone_raises_backbone_mismatch(tmp_path):
    path = saved(tmp_path, "llama", "prefix")  # GQA: 2 kv heads x 8 = token_dim 16
    with pytest.raises(BackboneMismatch, match=r"num_attention_heads \(kv heads\): checkpoint 2 vs model 4"):
        import_peft(PromptedModel(tiny_model("gpt2")), path)


def test_prompt_of_another_width_raises_backbone_mismatch(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    path = saved(tmp_path, "llama", "prompt")
    wide = LlamaForCausalLM(
        LlamaConfig(
            hidden_size=64,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=256,
        )
    )
    with pytest.raises(BackboneMismatch, match="checkpoint 32 vs model 64"):
        import_peft(PromptedModel(wide), path)


def test_seq2seq_checkpoint_on_causal_model_raises(tmp_path):
    with pytest.raises(BackboneMismatch, match="SEQ_2_SEQ_LM"):
        import_peft(PromptedModel(tiny_model("llama")), saved(tmp_path, "t5", "prompt"))


def test_corrupt_safetensors_raises_prompt_file_error(tmp_path):
    path = saved(tmp_path, "gpt2", "prompt")
    f = path / "adapter_model.safetensors"
    f.write_bytes(f.read_bytes()[:40])
    with pytest.raises(PromptFileError, match="corrupt"):
        import_peft(PromptedModel(tiny_model("gpt2")), path)


def test_pickle_only_checkpoint_is_refused(tmp_path):
    path = saved(tmp_path, "gpt2", "prompt")
    (path / "adapter_model.safetensors").rename(path / "adapter_model.bin")
    with pytest.raises(PromptFileError, match="convert it to adapter_model.safetensors"):
        import_peft(PromptedModel(tiny_model("gpt2")), path)


def test_unsupported_peft_type_is_refused(tmp_path):
    path = saved(tmp_path, "gpt2", "prompt")
    cfg = json.loads((path / "adapter_config.json").read_text())
    (path / "adapter_config.json").write_text(json.dumps({**cfg, "peft_type": "LORA"}))
    with pytest.raises(PromptFileError, match="peft_type='LORA'"):
        import_peft(PromptedModel(tiny_model("gpt2")), path)


def test_seq2seq_prefix_is_refused_both_ways(tmp_path):
    ours = PromptedModel(tiny_model("t5"))
    with pytest.raises(UnsupportedModel, match="decoder self-attention"):
        import_peft(ours, saved(tmp_path, "t5", "prefix"))
    ours.add_prompt("p", make_config("prefix-tuning", num_virtual_tokens=P, mlp_hidden=16))
    with pytest.raises(UnsupportedModel, match="decoder self-attention"):
        export_peft(ours, "p", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_sliding_window_prefix_warns(tmp_path):
    TASK["mistral"] = "CAUSAL_LM"
    with pytest.warns(UserWarning, match="sliding window"):
        import_peft(PromptedModel(tiny_model("mistral")), saved(tmp_path, "mistral", "prefix"))


def test_hard_prompt_cannot_be_exported(tmp_path):
    ours = PromptedModel(tiny_model("gpt2"))
    ours.add_prompt("h", make_config("hard"))
    with pytest.raises(UnsupportedModel, match="no trained values"):
        export_peft(ours, "h", tmp_path / "out")


def test_task_head_weights_are_reported_not_imported(tmp_path):
    from transformers import AutoModelForSequenceClassification, BertConfig

    def classifier():
        torch.manual_seed(0)
        return AutoModelForSequenceClassification.from_config(
            BertConfig(
                hidden_size=32,
                intermediate_size=64,
                num_hidden_layers=2,
                num_attention_heads=4,
                vocab_size=256,
                max_position_embeddings=96,
                num_labels=2,
            )
        )

    get_peft_model(
        classifier(), PromptTuningConfig(task_type="SEQ_CLS", num_virtual_tokens=P)
    ).save_pretrained(tmp_path / "ckpt")
    with pytest.warns(UserWarning, match="classifier"):
        name = import_peft(PromptedModel(classifier()), tmp_path / "ckpt")
    assert name == "ckpt"
