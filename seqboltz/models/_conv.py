"""Convolutional RBM with probabilistic max pooling (Lee, Grosse, Ranganath & Ng 2009).

A thin module over :mod:`seqboltz.functional._conv`. It speaks the flat :class:`EnergyModel`
interface — ``v (B, C_in·H·W)``, ``h (B, K·Hh·Wh)`` — and reshapes to images inside, so the
one training system (CD-k/PCD on free energies, sparsity) trains it unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar, Literal, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from seqboltz import functional as Fn
from seqboltz.functional import _conv as C
from seqboltz.models._base import (
    AnnealingPath,
    Conditioning,
    EnergyModel,
    GibbsStep,
    NoiseSpec,
    draw_noise,
)

__all__ = ["ConvolutionalDBN", "ConvolutionalRBM", "DBNPosterior", "DBNStep"]


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

    export_refusal: ClassVar[str] = (
        "onnxruntime has no float64 convolution kernel, and exported samplers run in float64 "
        "so that runtime chains match torch's; sample it in torch (gibbs_chain)"
    )

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
            "ConvolutionalRBM has no AIS path, so its log-likelihood is not estimated: "
            "evaluate its features (pooling_probs) with benchmarks/conv_features.py, and set "
            "eval_log_z: none in its recipe"
        )

    def parameter_roles(self) -> dict[str, list[nn.Parameter]]:
        return {"weights": [self.filters], "biases": [self.visible_bias, self.hidden_bias]}

    def pictures(self, generator: torch.Generator | None = None) -> dict[str, np.ndarray]:
        """``filters``: every filter of every input channel, each scaled to [0, 1]."""
        from seqboltz.viz import normalized_grid

        w = self.filters.detach().double().cpu().numpy()
        return {"filters": normalized_grid(w.reshape(-1, *w.shape[2:]), ncols=8, scale=6)}

    def extra_repr(self) -> str:
        return (
            f"image_shape={self.image_shape}, n_filters={self.n_filters}, "
            f"filter_size={self.filter_size}, pool_size={self.pool_size}, visible={self.visible}"
        )


class DBNPosterior(NamedTuple):
    """Mean-field posterior of a :class:`ConvolutionalDBN` (image-shaped tensors).

    Attributes:
        h: layer-1 detection probabilities ``(B, K, Hh, Wh)``.
        p: layer-1 pooling probabilities ``(B, K, Hp, Wp)``.
        h2: layer-2 detection probabilities ``(B, L, H2, W2)``.
        p2: layer-2 pooling probabilities ``(B, L, H2/C2, W2/C2)``.
    """

    h: Tensor
    p: Tensor
    h2: Tensor
    p2: Tensor


class DBNStep(NamedTuple):
    """One joint Gibbs step of a :class:`ConvolutionalDBN`: ``v (B, D)``, its mean, ``h``
    ``(B, K, Hh, Wh)`` and ``h2 (B, L, H2, W2)`` (samples)."""

    v: Tensor
    v_mean: Tensor
    h: Tensor
    h2: Tensor


class ConvolutionalDBN(nn.Module):
    """Two-layer convolutional model with probabilistic max pooling (Lee et al. 2009, §3.3).

    Built from two :class:`ConvolutionalRBM` layers trained greedily: ``upper`` was trained on
    ``lower``'s pooling probabilities, so its filters are ``Γ (L, K, g, g)``. Jointly,
    ``E(v, h, p, h′) = E₁(v, h) - Σ p•(Γ * h′) - Σ b′ h′`` (DESIGN.md): ``upper``'s visible bias
    is dropped, since ``lower``'s hidden biases already give ``p`` its prior. Inference and
    sampling are joint: ``h′`` sends the top-down input ``Γ * h′`` into ``lower``'s pooling
    softmax (:func:`seqboltz.functional._conv.prob_max_pool`).

    Args:
        lower: the first layer (any visible kind).
        upper: the second layer, binary visibles of shape ``lower.pool_shape``.
    """

    def __init__(self, lower: ConvolutionalRBM, upper: ConvolutionalRBM) -> None:
        super().__init__()
        if tuple(upper.image_shape) != tuple(lower.pool_shape):
            raise ValueError(
                f"the upper layer's input {tuple(upper.image_shape)} must be the lower layer's "
                f"pooling layer {tuple(lower.pool_shape)}"
            )
        if upper.visible != "bernoulli":
            raise ValueError("the upper layer must have binary visibles (the pooling units)")
        self.lower, self.upper = lower, upper

    @classmethod
    def from_checkpoints(cls, lower: str | Path, upper: str | Path) -> ConvolutionalDBN:
        """Stack two ``ConvolutionalRBM`` checkpoints (see :func:`~seqboltz.models.load_model`)."""
        from seqboltz.models._registry import load_model

        layers = [load_model(path) for path in (lower, upper)]
        for path, layer in zip((lower, upper), layers, strict=True):
            if not isinstance(layer, ConvolutionalRBM):
                raise ValueError(f"{path} holds a {type(layer).__name__}, not a ConvolutionalRBM")
        return cls(*layers).eval()  # type: ignore[arg-type]

    # ---- conditionals ---------------------------------------------------------------------------
    def top_down(self, h2: Tensor) -> Tensor:
        """``Γ * h′``: ``(B, L, H2, W2)`` → ``(B, K, Hp, Wp)``."""
        return C.conv_top_down(h2, self.upper.filters)

    def lower_probs(self, v: Tensor, h2: Tensor) -> tuple[Tensor, Tensor]:
        """``P(h = 1 | v, h′)`` ``(B, K, Hh, Wh)`` and ``P(p = 1 | v, h′)`` ``(B, K, Hp, Wp)``."""
        return C.prob_max_pool(self.lower._input(v), self.lower.pool_size, self.top_down(h2))

    def upper_probs(self, p: Tensor) -> tuple[Tensor, Tensor]:
        """``P(h′ = 1 | p)`` ``(B, L, H2, W2)`` and its pooling ``(B, L, H2/C2, W2/C2)``."""
        return C.prob_max_pool(self._upper_input(p), self.upper.pool_size)

    def _upper_input(self, p: Tensor) -> Tensor:
        return C.conv_hidden_input(p, self.upper.filters, self.upper.hidden_bias)

    def energy(self, v: Tensor, h: Tensor, h2: Tensor) -> Tensor:
        """``E(v, h, p(h), h′)`` ``(B,)``.

        ``v (B, D)``, ``h (B, K, Hh, Wh)``, ``h′ (B, L, H2, W2)``.
        """
        lo, up = self.lower, self.upper
        return C.conv2_energy(
            lo._image(v),
            h,
            h2,
            lo.filters,
            lo.visible_bias,
            lo.hidden_bias,
            up.filters,
            up.hidden_bias,
            lo.pool_size,
            lo._gaussian,
        )

    # ---- inference and sampling -----------------------------------------------------------------
    def infer(self, v: Tensor, n_steps: int = 10) -> DBNPosterior:
        """Mean-field posterior with top-down input, ``n_steps ≥ 0`` updates after the bottom-up
        pass (``0``: the greedy, bottom-up features). ``v (B, D)``."""
        if n_steps < 0:
            raise ValueError(f"n_steps must be >= 0, got {n_steps}")
        self.lower.check_visible(v, "v")
        bottom_up = self.lower._input(v)
        h, p = C.prob_max_pool(bottom_up, self.lower.pool_size)
        h2, p2 = self.upper_probs(p)
        for _ in range(n_steps):
            h, p = C.prob_max_pool(bottom_up, self.lower.pool_size, self.top_down(h2))
            h2, p2 = self.upper_probs(p)
        return DBNPosterior(h, p, h2, p2)

    def features(self, v: Tensor, n_steps: int = 10) -> Tensor:
        """Both pooling layers' probabilities, flattened, concatenated: ``(B, D)`` → ``(B, F)``."""
        post = self.infer(v, n_steps)
        return torch.cat([post.p.flatten(1), post.p2.flatten(1)], dim=1)

    def noise_spec(self) -> dict[str, NoiseSpec]:
        """Noise of one :meth:`gibbs_step`: a uniform per block of each layer, and the visibles'."""
        blocks2 = self.upper.pool_shape[0] * self.upper.pool_shape[1] * self.upper.pool_shape[2]
        lower = self.lower.noise_spec()
        upper = NoiseSpec((blocks2,), "uniform")
        return {"hidden": lower["hidden"], "upper": upper, "visible": lower["visible"]}

    def gibbs_step(self, v: Tensor, h2: Tensor, noise: Mapping[str, Tensor]) -> DBNStep:
        """``h ~ p(h | v, h′)``, then ``v ~ p(v | h)`` and ``h′ ~ p(h′ | p(h))`` (one block
        Gibbs sweep), driven by the explicit ``noise`` of :meth:`noise_spec`."""
        lo, up = self.lower, self.upper
        b = v.shape[0]
        u = noise["hidden"].reshape(b, *lo.pool_shape)
        h = C.sample_prob_max_pool(lo._input(v), lo.pool_size, u, self.top_down(h2))
        p = C.max_pool_states(h, lo.pool_size)
        u2 = noise["upper"].reshape(b, *up.pool_shape)
        h2_next = C.sample_prob_max_pool(self._upper_input(p), up.pool_size, u2)
        mean = lo.visible_params(h.reshape(b, -1))
        if lo._gaussian:
            v_next = mean + noise["visible"]
        else:
            v_next = Fn.bernoulli_from_uniform(mean, noise["visible"])
        return DBNStep(v_next, mean, h, h2_next)

    @torch.no_grad()
    def sample(
        self,
        n: int,
        n_steps: int = 500,
        generator: torch.Generator | None = None,
        start: Tensor | None = None,
    ) -> Tensor:
        """Means ``(n, D)`` of ``p(v | h)`` after ``n_steps`` joint Gibbs sweeps, started at the
        visible biases or at ``start (n, D)`` (e.g. held-out images)."""
        if n < 1 or n_steps < 1:
            raise ValueError(f"n and n_steps must be >= 1, got {n}, {n_steps}")
        ref = self.lower.reference_parameter()
        if start is None:
            v = self.lower.init_chains(n, generator)
        else:
            self.lower.check_visible(start, "start")
            if start.shape[0] != n:
                raise ValueError(f"start has {start.shape[0]} rows for n = {n} chains")
            v = start.to(ref)
        h2 = torch.zeros(n, *self.upper.detection_shape, dtype=ref.dtype, device=ref.device)
        step: DBNStep | None = None
        # drawn where the generator lives (a CPU generator may drive a model on a GPU)
        where = generator.device if generator is not None else torch.device("cpu")
        for _ in range(n_steps):
            drawn = draw_noise(self.noise_spec(), n, generator, where, ref.dtype)
            noise = {name: t.to(ref.device) for name, t in drawn.items()}
            step = self.gibbs_step(v, h2, noise)
            v, h2 = step.v, step.h2
        assert step is not None
        return step.v_mean

    def upper_filters_in_input_space(self) -> Tensor:
        """Each layer-2 filter drawn as a combination of layer-1 filters (Lee et al. 2009, Fig. 2):
        ``Γˡ`` spread over its pooling blocks, then fully convolved with ``W``;
        ``(L, C_in, g·C + f - 1, g·C + f - 1)``."""
        c = self.lower.pool_size
        spread = self.upper.filters.repeat_interleave(c, dim=2).repeat_interleave(c, dim=3)
        return F.conv_transpose2d(spread, self.lower.filters)

    def pictures(
        self, generator: torch.Generator | None = None, data: Tensor | None = None
    ) -> dict[str, np.ndarray]:
        """``filters_layer1``, ``filters_layer2`` (in input space) and, given ``data (N, D)``
        single-channel images, ``samples``: rows of data, then joint Gibbs chains started
        there after 20 and 200 sweeps."""
        from seqboltz.viz import image_grid, normalized_grid

        up = self.upper_filters_in_input_space().detach().double().cpu().numpy()
        pictures = {"filters_layer1": self.lower.pictures(generator)["filters"]}
        pictures["filters_layer2"] = normalized_grid(up.reshape(-1, *up.shape[2:]), 8, scale=4)
        if data is not None and self.lower.image_shape[0] == 1:
            n = min(8, data.shape[0])
            rows = [data[:n].to(self.lower.reference_parameter())]
            for steps in (20, 200):
                rows.append(self.sample(n, steps, generator, start=rows[0]))
            x = torch.cat(rows).detach().double().cpu().numpy()
            pictures["samples"] = image_grid(x.reshape(-1, *self.lower.image_shape[1:]), n, 1, 3)
        return pictures
