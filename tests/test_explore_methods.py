"""Which registered methods the explorer offers: every one that runs with its defaults on the model."""

import torch

import vitnotes as vn
from vitnotes.show.explorer import offered


def test_the_explorer_offers_what_runs_with_defaults(resnet):
    assert offered("vit") == vn.methods("vit")
    assert offered("cnn") == ["grad-cam", "integrated gradients"]  # occlusion and random need patch= on a CNN
    x = torch.randn(1, 3, 32, 32)
    assert vn.explain(resnet, x, "grad-cam").shape[0] == 1
    assert vn.explain(resnet, x, "integrated gradients", baseline=0.0, n_steps=2).shape == (1, 32, 32)
