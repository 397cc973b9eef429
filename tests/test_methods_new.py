"""Chapter 09's map methods (vitnotes/methods/: LeGrad, CP-LRP, integrated gradients, occlusion,
the random map, value-weighted attention) and attribution patching (vitnotes/interventions/),
each against an independent computation on a tiny random ViT: a naive autograd loop, a
hand-written forward, a hand Riemann sum, a one-patch-at-a-time loop, exact head ablation."""

import pytest
import torch
import torch.nn.functional as F
from conftest import make_vit, vitnotes_hooks

import vitnotes as vn
from vitnotes.interventions import attribution_patching
from vitnotes.methods import registered
from vitnotes.methods.cp_lrp import cp_lrp, lrp_rules
from vitnotes.methods.integrated_gradients import integrated_gradients
from vitnotes.methods.legrad import legrad
from vitnotes.methods.occlusion import occlusion
from vitnotes.methods.random_map import random_map
from vitnotes.methods.value_weighted import value_weighted

# the registry's names of the methods this file tests, with their functions
MAPS = {
    n: registered(n).fn for n in ("legrad", "cp-lrp", "integrated gradients", "occlusion", "random", "value-weighted")
}

# weights drawn with a larger spread than the default 0.02, so softmax, GELU and the layer norms
# are far from linear and a method that skips a term shows it
WIDE = {"initializer_range": 0.3}


def wide_vit(attn="sdpa", seed=0, **kw):
    return make_vit(attn, seed=seed, **{**WIDE, **kw})


@pytest.fixture
def x():
    torch.manual_seed(5)
    return torch.randn(3, 3, 16, 16)


def rel_err(a, b):
    a, b = a.detach().double(), b.detach().double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-12))


# ------------------------------------------------------------------------------------------ LeGrad
def naive_legrad(net, x, target=None):
    """Per image, per layer: eager forward with output_attentions, the layer's own readout, one
    autograd.grad per layer."""
    maps = []
    for i in range(x.shape[0]):
        out = net(x[i : i + 1], output_attentions=True, output_hidden_states=True)
        t = (
            int(out.logits.argmax())
            if target is None
            else int(torch.as_tensor(target).flatten()[i % torch.as_tensor(target).numel()])
        )
        layers = len(out.attentions)
        assert len(out.hidden_states) == layers + 1  # embeddings, then each block's output
        acc = 0
        for layer in range(layers):
            cls = out.hidden_states[layer + 1][:, 0]
            s = net.classifier(net.vit.layernorm(cls))[0, t]
            (g,) = torch.autograd.grad(s, out.attentions[layer], retain_graph=True)
            acc = acc + g.clamp_min(0).mean(1).mean(1)[0, 1:]  # heads, then queries; CLS key dropped
        m = acc / layers
        maps.append((m / m.sum()).reshape(4, 4))
    return torch.stack(maps)


def test_legrad_matches_naive_loop(x):
    net = wide_vit("sdpa")
    got = legrad(net, x, batch_size=2)
    assert net.config._attn_implementation == "sdpa" and not vitnotes_hooks(net)
    want = naive_legrad(wide_vit("eager"), x)
    assert got.shape == (3, 4, 4)
    assert torch.allclose(got.sum((1, 2)), torch.ones(3), atol=1e-6)
    assert rel_err(got, want) < 1e-5, rel_err(got, want)
    # an explicit per-image target
    got = legrad(net, x, target=[1, 2, 3], batch_size=2)
    assert rel_err(got, naive_legrad(wide_vit("eager"), x, [1, 2, 3])) < 1e-5


def test_legrad_last_layer_only_and_max_normalisation(x):
    net = wide_vit()
    m = legrad(net, x, layers=-1, normalise_to="max")
    assert torch.allclose(m.flatten(1).amax(1), torch.ones(3))
    assert rel_err(m / m.sum((1, 2), keepdim=True), legrad(net, x, layers=[2])) < 1e-5


# ------------------------------------------------------------------------------------------ CP-LRP
def hand_forward(net, x, *, identity_gelu=False):
    """A ViT forward written from the weights, with softmax and LN std detached explicitly."""
    cfg = net.config
    heads, d = cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads

    def ln(m, h):
        mu = h.mean(-1, keepdim=True)
        sd = (h.var(-1, unbiased=False, keepdim=True) + m.eps).sqrt().detach()
        return (h - mu) / sd * m.weight + m.bias

    emb = net.vit.embeddings
    h = F.conv2d(x, emb.patch_embeddings.projection.weight, emb.patch_embeddings.projection.bias, stride=4)
    h = h.flatten(2).transpose(1, 2)
    h = torch.cat([emb.cls_token.expand(x.shape[0], -1, -1), h], 1) + emb.position_embeddings
    for blk in net.vit.layers:
        a = blk.attention
        z = ln(blk.layernorm_before, h)
        q, k, v = (
            F.linear(z, p.weight, p.bias).reshape(*z.shape[:2], heads, d).transpose(1, 2)
            for p in (a.q_proj, a.k_proj, a.v_proj)
        )
        probs = (q @ k.transpose(-1, -2) / d**0.5).softmax(-1).detach()
        o = (probs @ v).transpose(1, 2).reshape(*z.shape)
        h = h + F.linear(o, a.o_proj.weight, a.o_proj.bias)
        z = F.linear(ln(blk.layernorm_after, h), blk.mlp.fc1.weight, blk.mlp.fc1.bias)
        act = F.gelu(z) if cfg.hidden_act == "gelu" else z
        if identity_gelu:
            act = z * torch.where(z == 0, torch.full_like(z, 0.5), act / torch.where(z == 0, 1, z)).detach()
        h = h + F.linear(act, blk.mlp.fc2.weight, blk.mlp.fc2.bias)
    return net.classifier(ln(net.vit.layernorm, h)[:, 0])


def hand_cp_lrp(net, x, t, **kw):
    x = x.clone().requires_grad_(True)
    logits = hand_forward(net, x, **kw)
    (g,) = torch.autograd.grad(logits.gather(1, t[:, None]).sum(), x)
    return (x * g).sum(1).reshape(x.shape[0], 4, 4, 4, 4).sum((2, 4)), logits


@pytest.mark.parametrize("activation", ["gradient", "identity"])
def test_cp_lrp_matches_hand_forward(x, activation):
    net = wide_vit("sdpa")
    t = net(x).logits.argmax(-1)
    want, logits = hand_cp_lrp(net, x, t, identity_gelu=activation == "identity")
    assert torch.allclose(logits, net(x).logits, atol=1e-5)  # the hand forward is the model
    got = cp_lrp(net, x, activation=activation, batch_size=2)
    assert net.config._attn_implementation == "sdpa" and not vitnotes_hooks(net)
    assert rel_err(got, want) < 1e-4, rel_err(got, want)
    pixels = cp_lrp(net, x, activation=activation, level="pixels")
    assert pixels.shape == (3, 16, 16) and rel_err(pixels.reshape(3, 4, 4, 4, 4).sum((2, 4)), got) < 1e-5


def bias_like(net):
    return [p for n, p in net.named_parameters() if n.endswith(("bias", "cls_token", "position_embeddings"))]


def conservation_gap(net, x, activation):
    """(score, pixel relevance sum, bias relevance sum) per image under the CP-LRP backward."""
    rows = []
    with lrp_rules(net, activation=activation), torch.enable_grad():
        for i in range(x.shape[0]):
            xi = x[i : i + 1].clone().requires_grad_(True)
            logits = net(xi).logits
            s = logits[0, logits[0].argmax()]
            params = bias_like(net)
            g = torch.autograd.grad(s, [xi, *params], allow_unused=True)  # q/k biases: behind the detached softmax
            with torch.no_grad():
                rows.append(
                    (
                        float(s),
                        float((xi * g[0]).sum()),
                        float(sum((p * gp).sum() for p, gp in zip(params, g[1:]) if gp is not None)),
                    )
                )
    return torch.tensor(rows, dtype=torch.float64)


def test_cp_lrp_conservation(x):
    """What is conserved. Identity rule for GELU: pixels + biases = score, to float rounding (the
    backward is that of a network linear in (input, biases)). Linear-only model: the same with
    the plain gradient rule. CP-LRP with GELU's gradient: not conserved; the gap is measured."""
    net = wide_vit()
    r = conservation_gap(net, x, "identity")
    assert (r[:, 1] + r[:, 2] - r[:, 0]).abs().max() < 1e-4 * r[:, 0].abs().max()
    linear = wide_vit(hidden_act="linear")
    r = conservation_gap(linear, x, "gradient")
    assert (r[:, 1] + r[:, 2] - r[:, 0]).abs().max() < 1e-4 * r[:, 0].abs().max()
    # the map itself sums to the pixels' share
    t = linear(x).logits.argmax(-1)
    assert torch.allclose(cp_lrp(linear, x, t).sum((1, 2)).double(), r[:, 1], rtol=1e-4, atol=1e-6)
    gelu_gap = conservation_gap(net, x, "gradient")
    gap = (gelu_gap[:, 1] + gelu_gap[:, 2] - gelu_gap[:, 0]).abs() / gelu_gap[:, 0].abs()
    assert gap.max() > 1e-3  # GELU's gradient breaks conservation on this model


def test_cp_lrp_regression_target():
    net = wide_vit(num_labels=3, problem_type="regression", id2label=None, label2id=None)
    x = torch.randn(2, 3, 16, 16)
    want, _ = hand_cp_lrp(net, x, torch.tensor([1, 1]))
    assert rel_err(cp_lrp(net, x, target=1), want) < 1e-4
    with pytest.raises(ValueError, match="no predicted class"):
        cp_lrp(net, x)


# ------------------------------------------------------------------------------ integrated gradients
def test_integrated_gradients_completeness_and_riemann_sum(x):
    net = wide_vit()
    t = net(x).logits.argmax(-1)
    base = torch.full_like(x, -0.5)
    ig = integrated_gradients(net, x, baseline=-0.5, n_steps=64, batch_size=2, level="pixels")
    assert ig.shape == (3, 16, 16)
    with torch.no_grad():
        delta = (net(x).logits - net(base).logits).gather(1, t[:, None])[:, 0]
    assert torch.allclose(ig.sum((1, 2)), delta, rtol=5e-3, atol=1e-5), (ig.sum((1, 2)), delta)  # measured 6e-4
    # a hand Riemann sum (midpoints, 8 steps)
    n = 8
    acc = torch.zeros_like(x)
    for k in range(n):
        xa = (base + (k + 0.5) / n * (x - base)).requires_grad_(True)
        (g,) = torch.autograd.grad(net(xa).logits.gather(1, t[:, None]).sum(), xa)
        acc += g / n
    want = (acc * (x - base)).sum(1)
    got = integrated_gradients(net, x, baseline=-0.5, n_steps=n, method="riemann_middle", batch_size=2, level="pixels")
    assert rel_err(got, want) < 1e-5, rel_err(got, want)
    grid = integrated_gradients(net, x, baseline=-0.5, n_steps=n, method="riemann_middle")  # a ViT: the patch grid
    assert rel_err(grid, want.reshape(3, 4, 4, 4, 4).sum((2, 4))) < 1e-5


def test_pixel_baselines_need_the_normalisation(vit_folder, x):
    model = vn.load(vit_folder)  # mean 0.5, std 0.25: black is -2, grey 0
    a = integrated_gradients(model, x, baseline="black", n_steps=4, method="riemann_middle")
    b = integrated_gradients(model.net, x, baseline=-2.0, n_steps=4, method="riemann_middle")
    assert torch.allclose(a, b)
    assert torch.allclose(occlusion(model, x, baseline="grey"), occlusion(model.net, x, baseline=0.0))
    with pytest.raises(ValueError, match="normalisation"):
        integrated_gradients(model.net, x, baseline="black")


# ---------------------------------------------------------------------------------------- occlusion
def naive_occlusion(net, x, fill, target=None):
    out = torch.zeros(x.shape[0], 4, 4)
    with torch.no_grad():
        for b in range(x.shape[0]):
            logits = net(x[b : b + 1]).logits[0]
            t = int(logits.argmax()) if target is None else target
            for i in range(4):
                for j in range(4):
                    y = x[b : b + 1].clone()
                    y[..., i * 4 : (i + 1) * 4, j * 4 : (j + 1) * 4] = fill(x[b : b + 1])[
                        ..., i * 4 : (i + 1) * 4, j * 4 : (j + 1) * 4
                    ]
                    out[b, i, j] = logits[t] - net(y).logits[0, t]
    return out


def test_occlusion_matches_one_patch_at_a_time(x):
    net = wide_vit()
    got = occlusion(net, x, batch_size=5)  # chunks of copies that straddle images
    want = naive_occlusion(net, x, lambda im: im.mean((-2, -1), keepdim=True).expand_as(im))
    assert rel_err(got, want) < 1e-5, rel_err(got, want)
    got = occlusion(net, x, target=2, baseline=0.0, batch_size=7)
    want = naive_occlusion(net, x, torch.zeros_like, target=2)
    assert rel_err(got, want) < 1e-5, rel_err(got, want)
    coarse = occlusion(net, x, patch=8)
    assert coarse.shape == (3, 2, 2)


def test_occlusion_on_a_cnn(resnet, x):
    m = occlusion(resnet, x, patch=8, batch_size=3)
    assert m.shape == (3, 2, 2) and torch.isfinite(m).all()
    with pytest.raises(ValueError, match="patch"):
        occlusion(resnet, x)


# ---------------------------------------------------------------------------------------- random map
def test_random_map_is_seeded_and_leaves_global_rng(x):
    net = wide_vit()
    state = torch.get_rng_state()
    a, b = random_map(net, x, seed=3), random_map(net, x, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert a.shape == (3, 4, 4) and torch.equal(a, b) and (a >= 0).all() and (a < 1).all()
    assert not torch.equal(a, random_map(net, x, seed=4))


# ----------------------------------------------------------------------------- value-weighted attention
def hand_value_weighted(net, x, layer):
    cfg = net.config
    heads, d = cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads
    with torch.no_grad():
        h = net(x, output_hidden_states=True).hidden_states[layer]  # block `layer`'s input
        blk = net.vit.layers[layer]
        z = blk.layernorm_before(h)
        a = blk.attention
        maps = torch.zeros(x.shape[0], z.shape[1] - 1)
        for hd in range(heads):
            sl = slice(hd * d, (hd + 1) * d)
            q = z @ a.q_proj.weight[sl].T + a.q_proj.bias[sl]
            k = z @ a.k_proj.weight[sl].T + a.k_proj.bias[sl]
            v = z @ a.v_proj.weight[sl].T + a.v_proj.bias[sl]
            alpha = (q[:, 0:1] @ k.transpose(1, 2) / d**0.5).softmax(-1)[:, 0]  # [B, T]
            f = v @ a.o_proj.weight[:, sl].T  # [B, T, hidden]
            maps += (alpha * f.norm(dim=-1))[:, 1:] / heads
    return (maps / maps.sum(1, keepdim=True)).reshape(-1, 4, 4)


@pytest.mark.parametrize("layer", [-1, 0])
def test_value_weighted_matches_hand_computation(x, layer):
    net = wide_vit()
    got = value_weighted(net, x, layer=layer, batch_size=2)
    want = hand_value_weighted(net, x, layer % 3)
    assert rel_err(got, want) < 1e-5, rel_err(got, want)
    assert not vitnotes_hooks(net)


# -------------------------------------------------------------------------------- attribution patching
def exact_ablation(net, x, metric):
    """Metric change (mean over images) when each head is zeroed: one forward per head."""
    cfg = net.config
    heads, d = cfg.num_attention_heads, cfg.hidden_size // cfg.num_attention_heads
    with torch.no_grad():
        base = metric(net(x).logits)
        out = torch.zeros(cfg.num_hidden_layers, heads, dtype=torch.float64)
        for layer, blk in enumerate(net.vit.layers):
            for hd in range(heads):

                def zero(_m, args, hd=hd):
                    z = args[0].clone()
                    z[..., hd * d : (hd + 1) * d] = 0
                    return (z,)

                handle = blk.attention.o_proj.register_forward_pre_hook(zero)
                try:
                    out[layer, hd] = (metric(net(x).logits) - base).mean()
                finally:
                    handle.remove()
    return out


def spearman(a, b):
    ra, rb = a.flatten().argsort().argsort().double(), b.flatten().argsort().argsort().double()
    return float(torch.corrcoef(torch.stack([ra, rb]))[0, 1])


def test_attribution_patching_exact_where_linear(x):
    """One block, no final norm, an MLP whose output is a constant: the target logit is linear in
    every head's output, so the first-order estimate is exact."""
    net = wide_vit(num_hidden_layers=1)
    net.vit.layernorm = torch.nn.Identity()
    with torch.no_grad():
        net.vit.layers[0].mlp.fc2.weight.zero_()
    est = attribution_patching(net, x, target=2, metric="score", batch_size=2)
    exact = exact_ablation(net, x, lambda logits: logits[:, 2].double())
    assert est.shape == (1, 4)
    assert torch.allclose(est, exact, rtol=1e-4, atol=1e-6), (est, exact)


def test_attribution_patching_ranks_heads_like_exact_ablation(x):
    torch.manual_seed(0)
    labels = torch.randint(0, 5, (3,))
    net = make_vit("sdpa", seed=0, num_hidden_layers=3, initializer_range=0.1)
    est = attribution_patching(net, x, labels, batch_size=2)
    exact = exact_ablation(net, x, lambda logits: F.cross_entropy(logits.double(), labels, reduction="none"))
    rho = spearman(est, exact)
    assert est.shape == (3, 4) and rho > 0.8, (rho, est, exact)
    assert not vitnotes_hooks(net)


# ----------------------------------------------------------------------------------- the one signature
@pytest.mark.parametrize("name", sorted(MAPS))
def test_every_map_takes_the_common_signature(name, vit_folder, x):
    model = vn.load(vit_folder)
    fn = MAPS[name]
    opts = {"n_steps": 4, "baseline": "zero"} if name == "integrated gradients" else {}
    m = fn(model, x, [0, 1, 2], batch_size=2, **opts)
    assert m.shape in ((3, 4, 4), (3, 16, 16)) and torch.isfinite(m).all()
    assert torch.allclose(m, fn(model.net, x, [0, 1, 2], batch_size=3, **opts), rtol=1e-4, atol=1e-6)
    assert torch.allclose(m, vn.explain(model, x, name, [0, 1, 2], batch_size=2, **opts), rtol=1e-4, atol=1e-6)
    assert model.net.config._attn_implementation == "sdpa" and not vitnotes_hooks(model.net)


@pytest.mark.parametrize("name", sorted(MAPS))
def test_every_map_runs_on_deit_regression_and_other_sizes(name, deit):
    """DeiT (two prefix tokens), a regression ViT (target = output index) and a 24x24 input
    (interpolated positions, a 6x6 grid) all go through the same signature."""
    opts = {"n_steps": 4, "baseline": "zero", "level": "grid"} if name == "integrated gradients" else {}
    fn = MAPS[name]
    x = torch.randn(2, 3, 16, 16)
    m = fn(deit, x, batch_size=1, **opts)
    assert m.shape == (2, 4, 4) and torch.isfinite(m).all()
    reg = wide_vit(num_labels=3, problem_type="regression", id2label=None, label2id=None)
    m = fn(reg, x, 2, **opts)
    assert m.shape == (2, 4, 4) and torch.isfinite(m).all()
    m = fn(wide_vit(), torch.randn(2, 3, 24, 24), **opts)
    assert m.shape == (2, 6, 6) and torch.isfinite(m).all()


def test_attribution_patching_regression_and_bad_targets(x):
    net = wide_vit(num_labels=3, problem_type="regression", id2label=None, label2id=None)
    y = torch.randn(3, 3)
    est = attribution_patching(net, x, y, batch_size=2)
    exact = exact_ablation(net, x, lambda logits: ((logits.double() - y.double()) ** 2).mean(-1))
    assert spearman(est, exact) > 0.6 and est.shape == (3, 4)  # measured 0.82 on this wide model
    with pytest.raises(ValueError, match="needs the targets"):
        attribution_patching(net, x)
    with pytest.raises(TypeError, match="integer class"):
        attribution_patching(wide_vit(), x, torch.randn(3))


def test_methods_leave_parameters_and_model_as_they_were(x):
    net = wide_vit()
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    for name, fn in MAPS.items():
        fn(net, x, **({"n_steps": 2, "baseline": 0.0} if name == "integrated gradients" else {}))
    attribution_patching(net, x, [0, 1, 2])
    assert all(p.grad is None for p in net.parameters())
    assert all(torch.equal(p, before[n]) for n, p in net.named_parameters())
    assert net.config._attn_implementation == "sdpa" and not vitnotes_hooks(net)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda n, x: legrad(n, x, normalise_to="l2"), ValueError, "normalise_to"),
        (lambda n, x: legrad(n, x, layers=[]), ValueError, "layers is empty"),
        (lambda n, x: legrad(n, x, layers=3), IndexError, "out of range"),
        (lambda n, x: cp_lrp(n, x, level="tokens"), ValueError, "level"),
        (lambda n, x: cp_lrp(n, x, activation="relu"), ValueError, "activation"),
        (lambda n, x: cp_lrp(n, x, batch_size=0), ValueError, "batch_size"),
        (lambda n, x: integrated_gradients(n, x, baseline=0.0, n_steps=1), ValueError, "n_steps"),
        (lambda n, x: integrated_gradients(n, x, baseline="blue"), ValueError, "baseline"),
        (lambda n, x: occlusion(n, x, patch=5), ValueError, "divide"),
        (lambda n, x: occlusion(n, x, target=[0, 1]), ValueError, "one per image"),
        (lambda n, x: value_weighted(n, x, layer=7), IndexError, "out of range"),
        (lambda n, x: legrad(n, x, target=9), IndexError, "out of range"),
        (lambda n, x: attribution_patching(n, x, [0, 1], batch_size=2), ValueError, "per image"),
        (lambda n, x: attribution_patching(n, x, metric="kl"), ValueError, "metric"),
    ],
)
def test_bad_options_fail_with_a_clear_message(x, call, error, match):
    with pytest.raises(error, match=match):
        call(wide_vit(), x)


def test_vit_only_methods_refuse_a_cnn(resnet, x):
    for fn in (legrad, cp_lrp, value_weighted, attribution_patching):
        with pytest.raises(TypeError, match="ViT"):
            fn(resnet, x)


def test_integrated_gradients_level_follows_the_model(resnet, x):
    """A ViT's default is its patch grid (as every registered ViT method); a CNN's is the pixel grid."""
    net = wide_vit()
    grid = integrated_gradients(net, x, baseline=0.0, n_steps=4)
    pixels = integrated_gradients(net, x, baseline=0.0, n_steps=4, level="pixels")
    assert grid.shape == (3, 4, 4) and pixels.shape == (3, 16, 16)
    torch.testing.assert_close(grid, pixels.reshape(3, 4, 4, 4, 4).sum((2, 4)))
    xr = torch.randn(2, 3, 32, 32)
    assert vn.explain(resnet, xr, "integrated gradients", baseline=0.0, n_steps=2).shape == (2, 32, 32)
    with pytest.raises(TypeError, match="level='pixels'"):
        integrated_gradients(resnet, xr, baseline=0.0, level="grid")
