"""Loading Hugging Face checkpoints: a failure is never cached, a fallback is never silent."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tastemaker.encoders import clip
from tastemaker.errors import ConfigError


class Flaky:
    """A loader whose first call fails like an offline hub, and whose later calls work."""

    def __init__(self, result: Any, error: Exception | None = None) -> None:
        self.result = result
        self.error = error or OSError("We couldn't connect to 'https://huggingface.co'")
        self.calls = 0

    def __call__(self, source: str, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls == 1:
            raise self.error
        return self.result


class FakeModel:
    def eval(self) -> FakeModel:
        return self

    def to(self, device: str) -> FakeModel:
        return self


def test_a_failed_config_read_is_not_remembered(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    from transformers import AutoConfig

    joint = SimpleNamespace(text_config=object(), vision_config=object())
    monkeypatch.setattr(AutoConfig, "from_pretrained", Flaky(joint))
    source = str(tmp_path / "clip-once-offline")
    with caplog.at_level(logging.WARNING, logger="tastemaker.encoders"):
        assert clip.is_joint_model(source) is False
    assert source in caplog.text and "OSError" in caplog.text
    assert clip.is_joint_model(source) is True  # the blip was not cached
    assert clip.is_joint_model(source) is True


def test_an_unexpected_config_error_is_not_swallowed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from transformers import AutoConfig

    monkeypatch.setattr(AutoConfig, "from_pretrained", Flaky(None, KeyError("a bug of ours")))
    with pytest.raises(KeyError, match="a bug of ours"):
        clip.is_joint_model(str(tmp_path / "buggy"))


def test_a_failed_model_load_is_a_config_error_and_not_remembered(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from transformers import AutoModel

    model = FakeModel()
    monkeypatch.setattr(AutoModel, "from_pretrained", Flaky(model))
    source = str(tmp_path / "model-once-offline")
    with pytest.raises(ConfigError, match="cannot load model") as error:
        clip.load_transformers_model(source, "cpu")
    assert "local model folder" in error.value.fix
    assert clip.load_transformers_model(source, "cpu") is model


def test_a_hub_model_without_preprocessing_settings_warns_and_uses_defaults(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    saved = tmp_path / "preprocessor_config.json"
    saved.write_text(json.dumps({"image_mean": [0.5, 0.5, 0.5]}))
    offline = LocalEntryNotFoundError("cannot find the requested files in the local cache")
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", Flaky(str(saved), offline))
    with caplog.at_level(logging.WARNING, logger="tastemaker.encoders"):
        assert clip.preprocessor_config("someone/vision-model") == {}
    assert "someone/vision-model" in caplog.text and "default" in caplog.text
    assert clip.preprocessor_config("someone/vision-model") == {"image_mean": [0.5, 0.5, 0.5]}


def test_a_folder_without_preprocessing_settings_warns(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    with caplog.at_level(logging.WARNING, logger="tastemaker.encoders"):
        assert clip.preprocessor_config(str(tmp_path)) == {}
    assert str(tmp_path) in caplog.text and "default" in caplog.text


def test_unreadable_preprocessing_settings_are_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "preprocessor_config.json").write_text("{ not json")
    with pytest.raises(ConfigError, match="cannot load model"):
        clip.preprocessor_config(str(tmp_path))
