"""``AlignmentConfig``: the heads, optimiser and item split of one alignment run."""

from __future__ import annotations

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    model_validator,
)


class AlignmentConfig(BaseModel):
    """Heads, optimiser and item split of one alignment run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dim: PositiveInt = 256  # width of the shared space
    hidden: NonNegativeInt = 512  # hidden width of each head's MLP; 0: linear heads
    dropout: float = Field(0.1, ge=0.0, lt=1.0)  # inside the MLP heads (hidden > 0)
    epochs: PositiveInt = 100
    learning_rate: PositiveFloat = 1e-3
    batch_size: int = Field(256, ge=2)  # InfoNCE needs negatives: at least 2 pairs a batch
    weight_decay: NonNegativeFloat = 0.01
    temperature: PositiveFloat = 0.07  # initial; learned (CLIP's init)
    valid_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    test_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    seed: int = 0  # the split, the heads' initialisation, dropout and the batch order
    patience: PositiveInt = 15  # epochs without a lower valid loss before stopping

    @model_validator(mode="after")
    def _leave_training_items(self) -> AlignmentConfig:
        if self.valid_fraction + self.test_fraction > 0.9:
            raise ValueError("valid_fraction + test_fraction must leave >= 10% for training")
        return self
