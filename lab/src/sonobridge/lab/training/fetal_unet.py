"""The fetal-skull U-Net in PyTorch and its seeded CPU training (the lab's 'train' extra only)."""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F  # noqa: N812

from sonobridge.lab.training.fetal_graphs import UnetWeights

# Share of training images cut by the frame's edge.
CUT_SHARE = 0.2


class _Block(nn.Sequential):
    """Two 3x3 convolutions, each batch-normalised and rectified."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(
            nn.Conv2d(cin, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU(inplace=True),
        )


class Unet(nn.Module):
    """A compact U-Net on a half-resolution grid: max-pool down, 2x2 transposed convolutions up.

    The head is tens of cells across at half resolution and the skull ridge search places its
    outline on the full frame, so the finest level is not worth its cost on 2 CPU cores.
    """

    def __init__(self, widths: tuple[int, ...]) -> None:
        super().__init__()
        self.widths = widths
        self.down = nn.ModuleList()
        cin = 1
        for w in widths:
            self.down.append(_Block(cin, w))
            cin = w
        self.up = nn.ModuleList()
        self.merge = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(cin, w, 2, stride=2))
            self.merge.append(_Block(2 * w, w))
            cin = w
        self.head = nn.Conv2d(cin, 2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits at the input's size."""
        logits = self.core(F.avg_pool2d(x, 2))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)

    def core(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits on the half-resolution grid for a half-resolution input."""
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        for up, merge, skip in zip(self.up, self.merge, reversed(skips[:-1]), strict=True):
            x = merge(torch.cat([skip, up(x)], dim=1))
        return self.head(x)

    def export_weights(self) -> UnetWeights:
        """Return the weights with each batch norm folded into its convolution (eval mode)."""

        def fold(block: _Block) -> list[tuple[np.ndarray, np.ndarray]]:
            out = []
            for conv, bn in ((block[0], block[1]), (block[3], block[4])):
                scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
                w = conv.weight * scale[:, None, None, None]
                b = bn.bias - bn.running_mean * scale
                out.append((w.detach().numpy(), b.detach().numpy()))
            return out

        with torch.no_grad():
            return UnetWeights(
                down=[fold(b) for b in self.down],
                up=[(u.weight.numpy().copy(), u.bias.numpy().copy()) for u in self.up],
                merge=[fold(b) for b in self.merge],
                head=(self.head.weight.numpy().copy(), self.head.bias.numpy().copy()),
            )


def _augment(x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, max_turn: float, scales):
    """Flip, turn, scale, shift and sometimes cut a batch with its labels; jitter gain and gamma.

    A cut keeps one side of the frame (40-75% of its width or height) stretched back to the full
    grid, as serving sees a frame that cuts the head: the network then runs the head region
    along the frame's border, which is how the module tells a cut-off head.
    """
    n = x.shape[0]

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    flip_x = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    flip_y = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    turn = uniform(-max_turn, max_turn) * math.pi / 180
    zoom = uniform(*scales)
    cos, sin = torch.cos(turn) / zoom, torch.sin(turn) / zoom
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * flip_x, -sin
    theta[:, 1, 0], theta[:, 1, 1] = sin, cos * flip_y
    theta[:, 0, 2], theta[:, 1, 2] = uniform(-0.1, 0.1), uniform(-0.1, 0.1)
    cut = torch.rand(n, generator=gen) < CUT_SHARE
    across = torch.rand(n, generator=gen) < 0.5
    keep = torch.where(cut, uniform(0.4, 0.75), torch.ones(n))
    side = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    # Input coordinates = crop(turn(output)): the crop scales and offsets one axis.
    for axis, chosen in ((0, across), (1, ~across)):
        k = torch.where(chosen, keep, torch.ones(n))
        theta[:, axis] = theta[:, axis] * k[:, None]
        theta[:, axis, 2] += side * (1 - k)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    xa = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    ya = F.grid_sample(y, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    gain = uniform(0.75, 1.3)[:, None, None, None]
    gamma = uniform(0.7, 1.4)[:, None, None, None]
    xa = (xa.clamp(0, 1) ** gamma * gain).clamp(0, 1)
    return xa, (ya[:, 0] >= 0.5).long()


def _dice_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    p = torch.softmax(logits, dim=1)[:, 1]
    t = y.float()
    inter = (p * t).sum(dim=(1, 2))
    return (1 - (2 * inter + 1) / (p.sum(dim=(1, 2)) + t.sum(dim=(1, 2)) + 1)).mean()


def train(
    x: np.ndarray,
    y: np.ndarray,
    *,
    widths: tuple[int, ...],
    epochs: int,
    batch: int,
    seed: int,
    lr: float,
    max_turn: float,
    scales: tuple[float, float],
    threads: int,
    log=print,
) -> Unet:
    """Train the U-Net on images x [N,H,W] in [0,1] and head masks y [N,H,W]; seeded.

    The loss is taken on the half-resolution grid the network works on: images and masks are
    pooled once, so augmentation and the final upsampling cost nothing per step.
    """
    torch.manual_seed(seed)
    # On a busy shared machine more threads than free cores make each step many times slower.
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    gen = torch.Generator().manual_seed(seed)
    net = Unet(widths)
    xs = F.avg_pool2d(torch.from_numpy(x[:, None].astype(np.float32)), 2)
    ys = F.avg_pool2d(torch.from_numpy(y[:, None].astype(np.float32)), 2)
    steps = epochs * math.ceil(len(xs) / batch)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    t0 = time.time()
    for epoch in range(epochs):
        net.train()
        order = torch.randperm(len(xs), generator=gen)
        total = 0.0
        for start in range(0, len(xs), batch):
            idx = order[start : start + batch]
            xb, yb = _augment(xs[idx], ys[idx], gen, max_turn, scales)
            logits = net.core(xb)
            loss = F.cross_entropy(logits, yb) + _dice_loss(logits, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        log(f"epoch {epoch + 1}/{epochs} loss {total / len(xs):.4f} {time.time() - t0:.0f}s")
    net.eval()
    return net


def logits_of(net: Unet, x: np.ndarray, batch: int = 16) -> np.ndarray:
    """Return the network's logits [N,2,H,W] for images x [N,H,W]."""
    out = []
    with torch.no_grad():
        for start in range(0, len(x), batch):
            xb = torch.from_numpy(x[start : start + batch, None].astype(np.float32))
            out.append(net(xb).numpy())
    return np.concatenate(out)
