"""Methods run in the dtype the model was loaded in (bf16 on a GPU) and agree with the float32 map.

Measured on ``fmnist-vit-p4`` (trained; 16 test images, CPU, this test's images are the first 8):
Spearman over patches between the bf16 and the float32 map, (min, median) over images:
rollout 0.9994 / 0.9998, last layer 0.9985 / 0.9995, gradient rollout 0.9977 / 0.9991,
Grad-CAM 0.9958 / 0.9996, LeGrad 0.9992 / 0.9996, CP-LRP 0.9989 / 0.9996, value-weighted
0.9985 / 0.9996, integrated gradients 0.962 / 0.9998, occlusion 0.64 / 0.978. Occlusion subtracts
two logits that bf16 holds to 8 bits (a step of 1/16 at logit 10), so its small drops are rounding:
explain occlusion with a float32 model. The bounds below sit just under what was measured.
"""

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

import vitnotes as vn

BOUNDS = {  # method -> (min over images, median over images) of the Spearman correlation
    "rollout": (0.99, 0.995),
    "last layer": (0.99, 0.995),
    "gradient rollout": (0.99, 0.995),
    "grad-cam": (0.99, 0.995),
    "legrad": (0.99, 0.995),
    "cp-lrp": (0.99, 0.995),
    "value-weighted": (0.99, 0.995),
    "integrated gradients": (0.95, 0.99),
    "occlusion": (0.5, 0.95),
}


@pytest.fixture(scope="module")
def models_and_images():
    fp32 = vn.load("fmnist-vit-p4")
    bf16 = vn.load("fmnist-vit-p4", dtype=torch.bfloat16)
    images, _ = vn.data.fashion_mnist_arrays("test")
    return fp32, bf16, fp32.preprocess(list(images[:8]))


def test_every_method_has_a_bound():
    assert set(BOUNDS) == set(vn.methods("vit")) - {"attention flow", "random"}


@pytest.mark.parametrize("name", list(BOUNDS))
def test_bf16_map_agrees_with_float32(models_and_images, name):
    fp32, bf16, x = models_and_images
    assert next(bf16.net.parameters()).dtype == torch.bfloat16
    a, b = vn.explain(fp32, x, name), vn.explain(bf16, x, name)
    assert a.shape == b.shape and torch.isfinite(b.float()).all()
    rho = [spearmanr(a[i].float().flatten(), b[i].float().flatten())[0] for i in range(len(x))]
    low, mid = BOUNDS[name]
    assert min(rho) >= low and np.median(rho) >= mid, (name, min(rho), np.median(rho))
