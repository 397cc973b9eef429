"""What the layers hold (notebooks 01 and 03): linear CKA against the explicit centring-matrix formula,
a hand value and a naive U-statistic loop; the logit lens against the model's own outputs; linear probes
on features whose answer is known; per-layer representations against transformers' hidden states."""

import itertools
import math

import numpy as np
import pytest
import torch
from conftest import LABELS, make_vit
from transformers import Dinov2Config, Dinov2ForImageClassification

import vitnotes as vn
from vitnotes.stats import cka_matrix, linear_cka


def _hsic_centring(x: np.ndarray, y: np.ndarray) -> float:
    """HSIC of linear kernels by the textbook formula, tr(K H L H) / (n - 1)^2 with H = I - 11'/n."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    return float(np.trace(x @ x.T @ h @ y @ y.T @ h)) / (n - 1) ** 2


def _cka_centring(x, y) -> float:
    return _hsic_centring(x, y) / math.sqrt(_hsic_centring(x, x) * _hsic_centring(y, y))


def _hsic_u_statistic(x: np.ndarray, y: np.ndarray) -> float:
    """Song et al.'s unbiased HSIC as the U-statistic it is: the mean over ordered 4-tuples of distinct
    images of h(i, j, q, r) = k_ij l_ij + k_ij l_qr - 2 k_ij l_iq, symmetrised over the tuple's 24 orders."""
    x, y = x - x.mean(0), y - y.mean(0)
    k, l_ = x @ x.T, y @ y.T
    total, count = 0.0, 0
    for quad in itertools.permutations(range(len(x)), 4):
        for i, j, q, r in itertools.permutations(quad):
            total += k[i, j] * l_[i, j] + k[i, j] * l_[q, r] - 2 * k[i, j] * l_[i, q]
        count += 24
    return total / count


def _random_orthogonal(d: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    return q


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_of_a_representation_with_itself_is_one(debiased):
    x = torch.randn(20, 7, generator=torch.Generator().manual_seed(0))
    assert linear_cka(x, x, debiased=debiased) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_is_invariant_to_rotation_and_isotropic_scale_not_to_anisotropic(debiased):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(30, 6, generator=g, dtype=torch.float64)
    y = x @ torch.randn(6, 4, generator=g, dtype=torch.float64) + 0.5 * torch.randn(30, 4, generator=g)
    base = linear_cka(x, y, debiased=debiased)
    assert linear_cka(x @ _random_orthogonal(6, 2) * 7.5, y, debiased=debiased) == pytest.approx(base, abs=1e-6)
    assert linear_cka(x, 0.01 * y @ _random_orthogonal(4, 3), debiased=debiased) == pytest.approx(base, abs=1e-6)
    stretched = x * torch.tensor([10.0, 1, 1, 1, 1, 0.1], dtype=torch.float64)
    assert abs(linear_cka(stretched, y, debiased=debiased) - base) > 1e-3  # CKA is not invariant to this


def test_cka_equals_the_centring_matrix_formula():
    g = torch.Generator().manual_seed(4)
    reps_a = [torch.randn(9, d, generator=g, dtype=torch.float64) for d in (3, 5)]
    reps_b = [torch.randn(9, d, generator=g, dtype=torch.float64) + 0.3 * reps_a[0][:, :1] for d in (2, 4, 8)]
    got = cka_matrix(reps_a, reps_b)
    want = [[_cka_centring(a.numpy(), b.numpy()) for b in reps_b] for a in reps_a]
    np.testing.assert_allclose(got.numpy(), np.array(want), atol=1e-6)
    assert got.shape == (2, 3)


def test_cka_of_one_dimensional_features_is_the_squared_correlation_by_hand():
    # x = 0, 1, 2, 3 and y = x^2: centred x = (-1.5, -0.5, 0.5, 1.5), y = (-3.5, -2.5, 0.5, 5.5),
    # sum xy = 15, sum x^2 = 5, sum y^2 = 49, so CKA = r^2 = 225 / 245 = 45 / 49
    x = torch.tensor([[0.0], [1.0], [2.0], [3.0]])
    assert linear_cka(x, x**2) == pytest.approx(45 / 49, abs=1e-6)
    assert _cka_centring(x.numpy().astype(float), (x**2).numpy().astype(float)) == pytest.approx(45 / 49)


def test_debiased_cka_equals_the_u_statistic_loop():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(6, 3, generator=g, dtype=torch.float64)
    y = x[:, :2] + torch.randn(6, 2, generator=g, dtype=torch.float64)
    xy, xx, yy = (_hsic_u_statistic(a.numpy(), b.numpy()) for a, b in ((x, y), (x, x), (y, y)))
    assert linear_cka(x, y, debiased=True) == pytest.approx(xy / math.sqrt(xx * yy), abs=1e-6)


def test_debiased_cka_removes_the_bias_of_wide_unrelated_representations():
    g = torch.Generator().manual_seed(6)
    x, y = torch.randn(100, 200, generator=g), torch.randn(100, 300, generator=g)  # independent
    plain, debiased = linear_cka(x, y), linear_cka(x, y, debiased=True)
    assert plain > 0.5  # the plain estimator sees structure in noise when features outnumber images
    assert abs(debiased) < 0.05


def test_cka_refuses_bad_input():
    x = torch.randn(5, 3)
    with pytest.raises(ValueError, match="same images"):
        linear_cka(x, torch.randn(6, 3))
    with pytest.raises(ValueError, match="constant"):
        linear_cka(x, torch.ones(5, 2))
    with pytest.raises(ValueError, match="at least 4 images"):
        linear_cka(x[:3], x[:3], debiased=True)
    with pytest.raises(ValueError, match="NaN"):
        linear_cka(x, torch.full((5, 3), float("nan")))


def test_cka_table_names_layers_and_models():
    reps = {"a": torch.randn(8, 3), "b": torch.randn(8, 4)}
    t = vn.cka(reps, reps, names=("ViT", "ViT again"))
    assert list(t.index) == ["a", "b"] and list(t.columns) == ["a", "b"]
    assert (t.index.name, t.columns.name) == ("ViT", "ViT again")
    np.testing.assert_allclose(np.diag(t.to_numpy()), 1.0, atol=1e-6)
    np.testing.assert_allclose(t.to_numpy(), t.to_numpy().T, atol=1e-6)


# ------------------------------------------------------------------ representations


def test_vit_representations_are_the_hidden_states_pooled(pixels):
    net = make_vit()
    with torch.no_grad():
        states = net(pixels, output_hidden_states=True).hidden_states
    for pool, want in (("cls", lambda h: h[:, 0]), ("mean", lambda h: h[:, 1:].mean(1))):
        reps = vn.representations(net, pixels, pool=pool, batch_size=2)
        assert list(reps) == ["emb", "L0", "L1", "L2"]
        for h, got in zip(states, reps.values(), strict=True):
            torch.testing.assert_close(got, want(h))


def test_resnet_representations_are_stem_and_every_block(resnet, pixels):
    reps = vn.representations(resnet, pixels, batch_size=2)
    assert list(reps) == ["stem", "S0.B0", "S1.B0"]
    with torch.no_grad():
        states = resnet(pixels, output_hidden_states=True).hidden_states  # stem, then each stage's output
    # one block per stage here, so each block's output is its stage's output
    for h, got in zip(states, reps.values(), strict=True):
        torch.testing.assert_close(got, h.mean((2, 3)))
    assert [r.shape[1] for r in reps.values()] == [8, 8, 16]
    with pytest.raises(ValueError, match="no CLS token"):
        vn.representations(resnet, pixels, pool="cls")


# ------------------------------------------------------------------ logit lens


def _lens_by_hand(net, x, y):
    """Every layer's CLS read out by the final norm and the classifier, written out for ViT."""
    with torch.no_grad():
        states = net(x, output_hidden_states=True).hidden_states
        probs = [net.classifier(net.vit.layernorm(h)[:, 0]).softmax(-1) for h in states]
    accuracy = [(p.argmax(-1) == y).float().mean().item() for p in probs]
    return accuracy, [p[range(len(y)), y].mean().item() for p in probs]


def test_logit_lens_matches_a_hand_readout_and_the_models_own_outputs():
    net = make_vit(seed=7)
    x = torch.randn(12, 3, 16, 16, generator=torch.Generator().manual_seed(8))
    with torch.no_grad():
        logits = net(x).logits
    y = logits.argmax(-1).clone()
    y[::3] = (y[::3] + 1) % 5  # a third of the labels disagree with the model
    table = vn.logit_lens(net, x, y, batch_size=5)
    acc, p_true = _lens_by_hand(net, x, y)
    np.testing.assert_allclose(table["accuracy"], acc, atol=1e-6)
    np.testing.assert_allclose(table["p_true"], p_true, atol=1e-5)
    last = table.iloc[-1]
    assert last.name == "L2"
    assert last["accuracy"] == pytest.approx((logits.argmax(-1) == y).float().mean().item())
    assert last["p_true"] == pytest.approx(logits.softmax(-1)[range(12), y].mean().item(), abs=1e-6)
    assert (table["low"] <= table["accuracy"]).all() and (table["accuracy"] <= table["high"]).all()


def test_logit_lens_on_dinov2_reads_cls_and_the_patch_mean():
    torch.manual_seed(9)
    cfg = Dinov2Config(
        image_size=16, patch_size=4, num_channels=3, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        mlp_ratio=2, num_labels=5, id2label=LABELS, label2id={v: k for k, v in LABELS.items()},
    )  # fmt: skip
    net = Dinov2ForImageClassification(cfg).eval()
    x = torch.randn(6, 3, 16, 16, generator=torch.Generator().manual_seed(10))
    with torch.no_grad():
        logits = net(x).logits
    y = torch.arange(6) % 5
    last = vn.logit_lens(net, x, y).iloc[-1]
    assert last["p_true"] == pytest.approx(logits.softmax(-1)[range(6), y].mean().item(), abs=1e-6)


def test_logit_lens_on_the_zoo_model_ends_at_its_accuracy():
    vit = vn.load("fmnist-vit-p4")
    images, labels = vn.data.fashion_mnist_arrays("test")
    x, y = vit.preprocess(images[:64]), labels[:64]
    table = vn.logit_lens(vit, x, y)
    assert table.iloc[-1]["accuracy"] == pytest.approx(float(np.mean(vit.predict(x).argmax(-1).numpy() == y)))
    assert table.index[0] == "emb" and len(table) == vit.geometry.layers + 1
    # the CLS token entering the first block is the same vector for every image: one prediction for all
    assert table.loc["emb", "accuracy"] == pytest.approx(np.mean(y == np.bincount(y).argmax()), abs=0.2)


def test_logit_lens_refuses_bad_labels(pixels):
    net = make_vit()
    with pytest.raises(ValueError, match="one class index per image"):
        vn.logit_lens(net, pixels, [0, 1])
    with pytest.raises(ValueError, match="outside 0..4"):
        vn.logit_lens(net, pixels, [0, 1, 9])
    with pytest.raises(TypeError, match="integer class indices"):
        vn.logit_lens(net, pixels, [0.5, 1.0, 2.0])


# ------------------------------------------------------------------ linear probes


def _blobs(n: int, d: int, classes: int, seed: int, spread: float):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, d)) * 5
    y = rng.integers(0, classes, size=n)
    return centres[y] + spread * rng.normal(size=(n, d)), y


def test_probe_separates_separable_classes_and_not_random_labels():
    x, y = _blobs(1600, 20, 10, seed=0, spread=0.5)  # well separated clusters
    pred, converged = vn.evaluate.probe_predictions(x[:800], y[:800], x[800:])
    assert converged and np.mean(pred == y[800:]) > 0.99
    shuffled = np.random.default_rng(1).integers(0, 10, size=1600)  # labels unrelated to the features
    pred, _ = vn.evaluate.probe_predictions(x[:800], shuffled[:800], x[800:])
    assert abs(np.mean(pred == shuffled[800:]) - 0.1) < 0.05


def test_linear_probes_table(pixels):
    net = make_vit(seed=12)
    g = torch.Generator().manual_seed(13)
    train_x, test_x = torch.randn(40, 3, 16, 16, generator=g), torch.randn(30, 3, 16, 16, generator=g)
    train_y, test_y = np.arange(40) % 3, np.arange(30) % 3
    table = vn.linear_probes(net, train_x, train_y, test_x, test_y, batch_size=16)
    assert list(table.index) == ["emb", "L0", "L1", "L2"]
    assert (table["n_train"] == 40).all() and (table["n_test"] == 30).all()
    # the CLS token entering the first block is one vector for every image: the probe can only guess the
    # most frequent training class (class 0: 14 of 40), which is chance
    assert table.loc["emb", "accuracy"] == pytest.approx(table.loc["emb", "chance"]) == pytest.approx(10 / 30)
    # the last layer's probe read at the last layer is that layer's own probe
    assert table.loc["L2", "last_probe"] == pytest.approx(table.loc["L2", "accuracy"])
    assert table["converged"].all()
    with pytest.raises(ValueError, match="labels for"):
        vn.linear_probes(net, train_x, train_y[:5], test_x, test_y)


def test_linear_probes_find_a_class_the_images_carry():
    """Images whose brightness is their class: a random ViT's CLS token reads it from the patches in its first
    block, so the probes after every block separate the classes; before any block (``emb``) they cannot."""
    net = make_vit(seed=14)
    g = torch.Generator().manual_seed(15)
    y = torch.arange(120) % 2
    x = torch.randn(120, 3, 16, 16, generator=g) * 0.1 + (2.0 * y - 1.0)[:, None, None, None]
    table = vn.linear_probes(net, x[:60], y[:60], x[60:], y[60:])
    assert (table.loc[["L0", "L1", "L2"], "accuracy"] > 0.95).all()
    assert table.loc["emb", "accuracy"] == pytest.approx(0.5)
