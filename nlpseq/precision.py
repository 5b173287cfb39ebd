"""``trainer.precision``: 32-bit training, or autocast to bfloat16 / float16 (float16 with a gradient scaler)."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch

from nlpseq.errors import ConfigError

DTYPES = {"32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """Autocast for the forward pass and, for float16, loss scaling around backward and the optimizer step."""

    def __init__(self, setting: int | str, device: torch.device):
        key = str(setting)
        if key not in DTYPES:
            raise ConfigError(f"trainer.precision must be 32, bf16 or fp16, got {setting!r}")
        if key == "fp16" and device.type == "cpu":  # oneDNN has no float16 LSTM / GRU kernels
            raise ConfigError("trainer.precision=fp16 needs a GPU (the CPU's recurrent kernels have no float16); "
                              "use trainer.precision=bf16 or 32 on the CPU")
        self.dtype, self.device_type = DTYPES[key], device.type
        self.scaler = torch.amp.GradScaler(device.type) if key == "fp16" else None

    def autocast(self) -> AbstractContextManager:
        return nullcontext() if self.dtype is None else torch.autocast(self.device_type, dtype=self.dtype)

    def backward(self, loss: torch.Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def unscale(self, optimizer: torch.optim.Optimizer) -> None:
        """Bring the gradients back to their true scale before they are clipped."""
        if self.scaler is not None:
            self.scaler.unscale_(optimizer)

    def step(self, optimizer: torch.optim.Optimizer) -> None:
        """The optimizer step; with a scaler it is skipped when a gradient overflowed, and the scale adapts."""
        if self.scaler is None:
            optimizer.step()
        else:
            self.scaler.step(optimizer)
            self.scaler.update()

    def state_dict(self) -> dict | None:
        return None if self.scaler is None else self.scaler.state_dict()

    def load_state_dict(self, state: dict | None) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
