"""Convolutional RBM with probabilistic max pooling (Lee, Grosse, Ranganath & Ng 2009).

A thin module over :mod:`seqboltz.functional._conv`. It speaks the flat :class:`EnergyModel`
interface — ``v (B, C_in·H·W)``, ``h (B, K·Hh·Wh)`` — and reshapes to images inside, so the
one training system (CD-k/PCD on free energies, sparsity) trains it unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from seqboltz import functional as Fn
from seqboltz.functional import _conv as C
from seqboltz.models._base import AnnealingPath, Conditioning, EnergyModel, GibbsStep, NoiseSpec

__all__ = ["ConvolutionalRBM"]


class ConvolutionalRBM(EnergyModel):
    """Convolutional RBM with probabilistic max pooling, binary or Gaussian (σ = 1) visibles.

    Args:
        image_shape: ``(C_in, H, W)`` of the visible images.
        n_filters: ``K``.
        filter_size: ``f`` (square filters); the detection maps are ``(H-f+1, W-f+1)``.
        pool_size: ``C``; the detection maps' sides must be multiples of it.
        visible: ``"bernoulli"`` (grayscale as probabilities) or ``"gaussian"``.
        init_std: standard deviation of the initial filters.

    Example:
        >>> crbm = ConvolutionalRBM((1, 12, 12), n_filters=4, filter_size=5, pool_size=2)
        >>> crbm.hidden_probs(torch.rand(3, 144)).shape  # 4 maps of 8×8
        torch.Size([3, 256])
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int] | list[int],
        n_filters: int,
        filter_size: int,
        pool_size: int = 2,
        visible: Literal["bernoulli", "gaussian"] = "bernoulli",
        init_std: float = 0.01,
    ) -> None:
        super().__init__()
        if len(image_shape) != 3 or min(image_shape) < 1:
            raise ValueError(f"image_shape must be (channels, height, width), got {image_shape}")
        c_in, height, width = (int(x) for x in image_shape)
        if n_filters < 1 or filter_size < 1 or pool_size < 1:
            raise ValueError(
                "n_filters, filter_size and pool_size must be >= 1; got "
                f"{n_filters}, {filter_size}, {pool_size}"
            )
        hh, wh = height - filter_size + 1, width - filter_size + 1
        if hh < 1 or wh < 1:
            raise ValueError(f"filters of size {filter_size} do not fit images of {height}×{width}")
        if hh % pool_size or wh % pool_size:
            raise ValueError(
                f"the detection maps are {hh}×{wh} ({height}×{width} images, {filter_size}×"
                f"{filter_size} filters), not divisible into {pool_size}×{pool_size} pooling "
                "blocks: change the image, filter or pool size"
            )
        if visible not in ("bernoulli", "gaussian"):
            raise ValueError(f"visible must be 'bernoulli' or 'gaussian', got {visible!r}")
        self.image_shape = (c_in, height, width)
        self.detection_shape = (n_filters, hh, wh)
        self.pool_shape = (n_filters, hh // pool_size, wh // pool_size)
        self.n_filters, self.filter_size, self.pool_size = n_filters, filter_size, pool_size
        self.visible = visible
        self.init_std = init_std
        self.n_visible = c_in * height * width
        self.n_hidden = n_filters * hh * wh
        self.filters = nn.Parameter(
            torch.randn(n_filters, c_in, filter_size, filter_size) * init_std
        )
        self.visible_bias = nn.Parameter(torch.zeros(c_in))
        self.hidden_bias = nn.Parameter(torch.zeros(n_filters))

    @property
    def visible_kind(self) -> Literal["bernoulli", "gaussian"]:  # type: ignore[override]
        return self.visible

    @property
    def _gaussian(self) -> bool:
        return self.visible == "gaussian"

    # ---- shapes ---------------------------------------------------------------------------------
    def _image(self, v: Tensor) -> Tensor:
        self.check_shape(v)
        return v.reshape(v.shape[0], *self.image_shape)

    def _maps(self, h: Tensor) -> Tensor:
        self.check_hidden_shape(h)
        return h.reshape(h.shape[0], *self.detection_shape)

    def _input(self, v: Tensor) -> Tensor:
        return C.conv_hidden_input(self._image(v), self.filters, self.hidden_bias)

    # ---- the energy-model interface --------------------------------------------------------------
    def energy(self, v: Tensor, h: Tensor, cond: Conditioning | None = None) -> Tensor:
        self.check_unconditional(cond)
        return C.conv_energy(
            self._image(v),
            self._maps(h),
            self.filters,
            self.visible_bias,
            self.hidden_bias,
            self._gaussian,
        )

    def free_energy(self, v: Tensor, cond: Conditioning | None = None) -> Tensor:
        self.check_unconditional(cond)
        return C.conv_free_energy(
            self._image(v),
            self.filters,
            self.visible_bias,
            self.hidden_bias,
            self.pool_size,
            self._gaussian,
        )

    def hidden_probs(self, v: Tensor, cond: Conditioning | None = None) -> Tensor:
        """``P(h = 1 | v)`` with probabilistic max pooling: ``(B, D)`` → ``(B, K·Hh·Wh)``."""
        self.check_unconditional(cond)
        probs, _ = C.prob_max_pool(self._input(v), self.pool_size)
        return probs.reshape(probs.shape[0], -1)

    def pooling_probs(self, v: Tensor) -> Tensor:
        """``P(p = 1 | v)``, the pooling layer: ``(B, D)`` → ``(B, K, Hh/C, Wh/C)``."""
        _, pooled = C.prob_max_pool(self._input(v), self.pool_size)
        return pooled

    def visible_params(self, h: Tensor, cond: Conditioning | None = None) -> Tensor:
        self.check_unconditional(cond)
        x = C.conv_visible_input(self._maps(h), self.filters, self.visible_bias)
        x = x.reshape(x.shape[0], -1)
        return x if self._gaussian else torch.sigmoid(x)

    def noise_spec(self) -> dict[str, NoiseSpec]:
        kind: Literal["uniform", "normal"] = "normal" if self._gaussian else "uniform"
        blocks = self.pool_shape[0] * self.pool_shape[1] * self.pool_shape[2]
        return {
            "hidden": NoiseSpec((blocks,), "uniform"),
            "visible": NoiseSpec((self.n_visible,), kind),
        }

    def gibbs_step(
        self, v: Tensor, noise: Mapping[str, Tensor], cond: Conditioning | None = None
    ) -> GibbsStep:
        self.check_unconditional(cond)
        u = noise["hidden"].reshape(v.shape[0], *self.pool_shape)
        h = C.sample_prob_max_pool(self._input(v), self.pool_size, u).reshape(v.shape[0], -1)
        mean = self.visible_params(h)
        if self._gaussian:
            v_next = mean + noise["visible"]
        else:
            v_next = Fn.bernoulli_from_uniform(mean, noise["visible"])
        return GibbsStep(v_next, mean, h)

    @torch.no_grad()
    def init_chains(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        c = self.visible_bias.repeat_interleave(self.image_shape[1] * self.image_shape[2])
        ref = self.reference_parameter()
        if self._gaussian:
            z = torch.randn(n, self.n_visible, generator=generator, dtype=ref.dtype)
            return c + z.to(ref.device)
        u = torch.rand(n, self.n_visible, generator=generator, dtype=ref.dtype).to(ref.device)
        return Fn.bernoulli_from_uniform(torch.sigmoid(c).expand(n, -1), u)

    @torch.no_grad()
    def init_from_data(self, data: Tensor) -> None:
        """Visible bias per channel from the data: the mean (Gaussian) or its logit (binary)."""
        self.check_visible(data, "data")
        mean = self._image(data.to(self.visible_bias)).mean((0, 2, 3))
        if self._gaussian:
            self.visible_bias.copy_(mean)
        else:
            p = mean.clamp(1e-3, 1 - 1e-3)
            self.visible_bias.copy_(torch.log(p) - torch.log1p(-p))

    def annealing_path(self, base_data: Tensor | None = None) -> AnnealingPath:
        raise NotImplementedError(
            "ConvolutionalRBM: no AIS path yet; evaluate it through its features "
            "(pooling_probs) or set eval_log_z: none"
        )

    def parameter_roles(self) -> dict[str, list[nn.Parameter]]:
        return {"weights": [self.filters], "biases": [self.visible_bias, self.hidden_bias]}

    def pictures(self, generator: torch.Generator | None = None) -> dict[str, np.ndarray]:
        """``filters``: every filter of every input channel, each scaled to [0, 1]."""
        from seqboltz.viz import normalized_grid

        w = self.filters.detach().double().cpu().numpy()
        return {"filters": normalized_grid(w.reshape(-1, *w.shape[2:]), ncols=8, scale=6)}

    def init_args(self) -> dict[str, Any]:
        return {
            "image_shape": list(self.image_shape),
            "n_filters": self.n_filters,
            "filter_size": self.filter_size,
            "pool_size": self.pool_size,
            "visible": self.visible,
            "init_std": self.init_std,
        }

    def extra_repr(self) -> str:
        return (
            f"image_shape={self.image_shape}, n_filters={self.n_filters}, "
            f"filter_size={self.filter_size}, pool_size={self.pool_size}, visible={self.visible}"
        )
