"""Settings of a UniMP model and its training run (Wei et al., ICLR 2024, arXiv 2403.10667).

One frozen Pydantic model, so a saved folder's ``config.json`` is the whole
recipe: the backbone, how visual tokens are made and fused, the tasks and their
loss weights λ_a, and the optimiser. Unknown fields are errors.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt

from tastemaker.errors import ConfigError

TASKS = ("recommend", "rating", "explain", "select", "search", "reconstruct")
Fusion = Literal["masked", "coarse", "none"]
ItemInit = Literal["random", "id"]
#: The offline default backbone (SmolLM2-135M, de-quantized from the packaged GGUF);
#: "tiny" is a random two-layer Llama for tests and smoke runs.
DEFAULT_LM = "SmolLM2-135M-Instruct"
TINY_LM = "tiny"


class UniMPConfig(BaseModel):
    """What the model is and how it trains; all but ``steps`` must match to resume."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lm: str = DEFAULT_LM
    # Keep only the first K decoder layers of the backbone (None: all). A CPU budget
    # knob: the default benchmark keeps 6 of SmolLM2's 30.
    lm_layers: PositiveInt | None = None
    cross_every: PositiveInt = 2  # a gated cross-attention block before every N-th layer
    fusion: Fusion = "masked"  # UniMP's item mask; "coarse": every image; "none": text only
    grid: PositiveInt = 2  # the image feature map pooled to grid x grid regions
    image_size: PositiveInt = 224
    latents: PositiveInt = 4  # visual tokens per image out of the perceiver resampler
    resampler_layers: PositiveInt = 1
    heads: PositiveInt = 4  # of the cross-attention and resampler
    lora_rank: int = Field(8, ge=0)  # 0: the backbone stays frozen
    retrieval_dim: PositiveInt = 64
    history: PositiveInt = 5  # items in a user sentence (the official code uses 5)
    title_words: PositiveInt = 12
    select_options: int = Field(4, ge=2, le=8)
    tasks: tuple[str, ...] = ("recommend", "rating", "explain", "select", "search", "reconstruct")
    # λ_a per task (missing: 1). The retrieval head's loss rides on the recommendation examples.
    weights: dict[str, float] = Field(default_factory=lambda: {"recommend": 2.0})
    retrieval_weight: float = Field(1.0, ge=0.0)
    # The retrieval head's loss: 0 = full softmax over every item; n = sampled softmax
    # over the batch's other targets plus n uniform negatives (a shared draw per step).
    retrieval_negatives: int = Field(0, ge=0)
    # The item table's start: "random", or "id" = a quickly trained BPR's item factors.
    # "id" with pool_history won the validation-user comparison (benchmarks/unimp_recipe.py).
    item_init: ItemInit = "id"
    # Add the mean of the history items' table rows to the user vector (FISM-style).
    pool_history: bool = True
    reweight: float = Field(1.0, ge=0.0)  # γ of the token re-weighting (1 - p)^γ; 0: off
    learning_rate: PositiveFloat = 5e-4
    steps: PositiveInt = 300
    batch_size: PositiveInt = 8
    save_every: PositiveInt = 100
    seed: int = 0

    def model_post_init(self, _context: object) -> None:
        unknown = [t for t in (*self.tasks, *self.weights) if t not in TASKS]
        if unknown:
            raise ConfigError(
                f"unknown UniMP task '{unknown[0]}'", f"use some of: {', '.join(TASKS)}"
            )
        if not self.tasks:
            raise ConfigError("UniMP needs at least one task", f"use some of: {', '.join(TASKS)}")

    def weight(self, task: str) -> float:
        """λ_a of ``task``."""
        return float(self.weights.get(task, 1.0))

    def resume_key(self) -> dict[str, object]:
        """The settings a checkpoint must share with the run that resumes it."""
        return self.model_dump(mode="json", exclude={"steps", "save_every"})
