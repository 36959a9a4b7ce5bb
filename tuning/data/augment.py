"""Augmentation of training waveforms: time jitter, amplitude scaling, additive noise.

Applied by the training loop to training batches only (never to validation or scored
rows). Config keys (search-space choices, all optional; absent or 0 = off, and all off
when ``augment`` is False):

    augment_shift   largest time shift in samples (each row: uniform in -k..k); a
                    detection's alignment jitters by a sample or two. The vacated end
                    repeats the edge sample, so nothing wraps around.
    augment_scale   each row multiplied by a factor uniform in [1 - s, 1 + s]
    augment_noise   Gaussian noise, standard deviation = this x the training inputs'
                    standard deviation (so it means the same in uV and after z-scoring)

Works on the last axis of ``(batch, channels, length)`` tensors, and on ``(batch,
n_channels * length)`` rows flattened channel-major (the training loop's layout), which it
views as ``(batch, n_channels, length)`` first, so a shift never crosses from one channel
into the next; shift and scale are drawn per row (one spike: all its channels move together). Draws come
from a numpy Generator the caller seeds from ``(seed, epoch)``, so a resumed run sees the
same batches as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class Augmenter:
    max_shift: int = 0
    scale: float = 0.0
    noise_std: float = 0.0  # absolute, in the units of the (normalised) inputs
    n_channels: int = 1     # how a 2-D batch's rows split into channels

    @classmethod
    def from_config(cls, config: dict, train_inputs, n_channels: int = 1) -> "Augmenter":
        """The config's augmentation; noise relative to ``train_inputs``' overall std."""
        if not config.get("augment", True):  # the space's switch: off whatever the sub-keys say
            return cls(n_channels=n_channels)
        max_shift = int(config.get("augment_shift", 0) or 0)
        scale = float(config.get("augment_scale", 0.0) or 0.0)
        noise = float(config.get("augment_noise", 0.0) or 0.0)
        if max_shift < 0 or not 0.0 <= scale < 1.0 or noise < 0.0:
            raise ValueError(f"augmentation out of range: augment_shift={max_shift} (>= 0), "
                             f"augment_scale={scale} (0 <= s < 1), augment_noise={noise} (>= 0)")
        if noise > 0:
            stds = [float(torch.as_tensor(x).float().std()) for x in train_inputs if x.numel() > 1]
            noise *= float(np.mean(stds)) if stds else 1.0
        return cls(max_shift, scale, noise, int(n_channels))

    @property
    def active(self) -> bool:
        return self.max_shift > 0 or self.scale > 0 or self.noise_std > 0

    def __call__(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """An augmented copy of batch ``x``; ``x`` itself is left unchanged."""
        if not self.active:
            return x
        if x.dim() == 2 and self.n_channels > 1:
            return self(x.reshape(x.shape[0], self.n_channels, -1), rng).reshape(x.shape)
        rows, length = x.shape[0], x.shape[-1]
        row_shape = (rows,) + (1,) * (x.dim() - 1)  # broadcasts over channels and samples
        if self.max_shift > 0:
            shifts = rng.integers(-self.max_shift, self.max_shift + 1, size=rows)
            # Output sample t reads input sample t - shift, clamped: edges repeat.
            index = np.clip(np.arange(length)[None, :] - shifts[:, None], 0, length - 1)
            index = torch.from_numpy(index).to(x.device).reshape(rows, *(1,) * (x.dim() - 2), length)
            x = torch.gather(x, -1, index.expand(x.shape))
        if self.scale > 0:
            factors = rng.uniform(1.0 - self.scale, 1.0 + self.scale, size=rows).astype(np.float32)
            x = x * torch.from_numpy(factors).to(x.device).reshape(row_shape)
        if self.noise_std > 0:
            noise = rng.standard_normal(size=tuple(x.shape)).astype(np.float32) * self.noise_std
            x = x + torch.from_numpy(noise).to(x.device)
        return x
