"""Seconds per training step of the zoo's ViTs on this machine's GPU (bfloat16 autocast, AdamW), so
``tools/zoo_gpu.sh`` can size each run's epochs to the time it has. Prints one JSON object."""

from __future__ import annotations

import json
import time

import torch
from transformers import ViTConfig, ViTForImageClassification

from vitnotes.train.recipes import _VIT


def seconds_per_step(patch: int, size: int, channels: int, batch: int, steps: int = 20) -> float:
    cfg = ViTConfig(**dict(_VIT, patch_size=patch, image_size=size, num_channels=channels, num_labels=10))
    net = ViTForImageClassification(cfg).cuda().train()
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4)
    x = torch.randn(batch, channels, size, size, device="cuda")
    y = torch.randint(0, 10, (batch,), device="cuda")
    for i in range(steps + 5):
        if i == 5:
            torch.cuda.synchronize()
            t0 = time.time()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = torch.nn.functional.cross_entropy(net(pixel_values=x).logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
    torch.cuda.synchronize()
    return (time.time() - t0) / steps


if __name__ == "__main__":
    print(json.dumps({
        "p4_512": seconds_per_step(4, 28, 1, 512),
        "p4_128": seconds_per_step(4, 28, 1, 128),
        "p2_128": seconds_per_step(2, 28, 1, 128),
        "sv_32": seconds_per_step(4, 56, 3, 32),
    }))  # fmt: skip
