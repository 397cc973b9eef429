"""``vn.describe``: a plain PyTorch ViT (two look-alikes written here, one in timm's layout, one in
torchvision's) becomes a model every vitnotes function takes, and the numbers it gives equal an
independent computation on the original weights: the logits, the captured attention, rollout,
Grad-CAM and LeGrad. Wrong descriptions are refused in one sentence."""

import collections
import copy

import pytest
import torch
import torch.nn.functional as F
from test_ops_per_batch import OpCounter
from torch import nn

import vitnotes as vn
from vitnotes.core import capture as capture_module
from vitnotes.core.model import geometry

SIZE, PATCH, HIDDEN, HEADS, CLASSES = 16, 4, 24, 4, 5
GRID = SIZE // PATCH


# ---------------------------------------------------------------- two small ViTs in plain PyTorch


class FusedAttention(nn.Module):
    """timm's layout: one ``qkv`` linear whose output is [q | k | v], heads contiguous in each."""

    def __init__(self, dim, heads, qk_norm=False):
        super().__init__()
        self.num_heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.q_norm = nn.LayerNorm(dim // heads) if qk_norm else nn.Identity()
        self.k_norm = nn.LayerNorm(dim // heads) if qk_norm else nn.Identity()
        self.attn_drop = nn.Dropout(0.1)
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(0.1)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(x).reshape(b, t, 3, self.num_heads, c // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k = self.q_norm(q), self.k_norm(k)
        a = self.attn_drop((q @ k.transpose(-2, -1) * self.scale).softmax(-1))
        return self.proj_drop(self.proj((a @ v).transpose(1, 2).reshape(b, t, c)))


class Mlp(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class TimmBlock(nn.Module):
    def __init__(self, dim, heads, qk_norm=False):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(dim), FusedAttention(dim, heads, qk_norm)
        self.norm2, self.mlp = nn.LayerNorm(dim), Mlp(dim)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self):
        super().__init__()
        self.img_size, self.patch_size = (SIZE, SIZE), (PATCH, PATCH)
        self.proj = nn.Conv2d(3, HIDDEN, PATCH, PATCH)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class TimmLike(nn.Module):
    def __init__(self, layers=3, qk_norm=False, seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.patch_embed = PatchEmbed()
        self.cls_token = nn.Parameter(torch.randn(1, 1, HIDDEN) * 0.5)
        self.pos_embed = nn.Parameter(torch.randn(1, 1 + GRID**2, HIDDEN) * 0.5)
        self.blocks = nn.Sequential(*[TimmBlock(HIDDEN, HEADS, qk_norm) for _ in range(layers)])
        self.norm, self.head = nn.LayerNorm(HIDDEN), nn.Linear(HIDDEN, CLASSES)
        for block in self.blocks:  # sharper attention than the default initialisation gives
            block.attn.qkv.weight.data *= 3

    def embed(self, x):
        p = self.patch_embed(x)
        return torch.cat([self.cls_token.expand(len(x), -1, -1), p], 1) + self.pos_embed

    def forward(self, x):
        return self.head(self.norm(self.blocks(self.embed(x)))[:, 0])


class TorchvisionBlock(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.self_attention = nn.MultiheadAttention(dim, heads, dropout=0.1, batch_first=True)
        self.dropout = nn.Dropout(0.1)
        self.ln_2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(0.1), nn.Linear(2 * dim, dim), nn.Dropout(0.1)
        )

    def forward(self, inputs):
        x = self.ln_1(inputs)
        x, _ = self.self_attention(x, x, x, need_weights=False)
        x = self.dropout(x) + inputs
        return x + self.mlp(self.ln_2(x))


class Encoder(nn.Module):
    def __init__(self, layers):
        super().__init__()
        self.pos_embedding = nn.Parameter(torch.randn(1, 1 + GRID**2, HIDDEN) * 0.5)
        self.layers = nn.Sequential(*[TorchvisionBlock(HIDDEN, HEADS) for _ in range(layers)])
        self.ln = nn.LayerNorm(HIDDEN)

    def forward(self, x):
        return self.ln(self.layers(x + self.pos_embedding))


class TorchvisionLike(nn.Module):
    def __init__(self, layers=2, seed=1):
        super().__init__()
        torch.manual_seed(seed)
        self.image_size, self.patch_size = SIZE, PATCH
        self.conv_proj = nn.Conv2d(3, HIDDEN, PATCH, PATCH)
        self.class_token = nn.Parameter(torch.randn(1, 1, HIDDEN) * 0.5)
        self.encoder = Encoder(layers)
        self.heads = nn.Sequential(collections.OrderedDict(head=nn.Linear(HIDDEN, CLASSES)))
        for block in self.encoder.layers:
            block.self_attention.in_proj_weight.data *= 3

    def embed(self, x):
        p = self.conv_proj(x).flatten(2).transpose(1, 2)
        return torch.cat([self.class_token.expand(len(x), -1, -1), p], 1) + self.encoder.pos_embedding

    def forward(self, x):
        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        x = self.encoder(torch.cat([self.class_token.expand(len(x), -1, -1), x], 1))
        return self.heads(x[:, 0])


TORCHVISION = dict(
    blocks="encoder.layers", attention="self_attention", norm1="ln_1", norm2="ln_2", activation="mlp.1",
    final_norm="encoder.ln", head="heads", position="encoder.pos_embedding",
)  # fmt: skip


# ------------------------------------------------------- the same computation by hand, on the original


def parts(ref, i):
    """(norm1, fused q|k|v weight, bias, out linear, norm2, mlp) of block i of an original model."""
    if isinstance(ref, TimmLike):
        b = ref.blocks[i]
        return b.norm1, b.attn.qkv.weight, b.attn.qkv.bias, b.attn.proj, b.norm2, b.mlp
    b = ref.encoder.layers[i]
    a = b.self_attention
    return b.ln_1, a.in_proj_weight, a.in_proj_bias, a.out_proj, b.ln_2, b.mlp


def final(ref):
    return (ref.norm, ref.head) if isinstance(ref, TimmLike) else (ref.encoder.ln, ref.heads)


def block_by_hand(ref, i, x, probs=None):
    """Block i on tokens ``x``: (output, attention [batch, head, T, T]). ``probs``: use these instead."""
    n1, w, bias, out, n2, mlp = parts(ref, i)
    b, t, c = x.shape
    d = c // HEADS
    q, k, v = (F.linear(n1(x), w, bias).view(b, t, 3, HEADS, d)[:, :, j].transpose(1, 2) for j in range(3))
    a = torch.softmax(q @ k.transpose(-1, -2) / d**0.5, -1) if probs is None else probs
    x = x + out((a @ v).transpose(1, 2).reshape(b, t, c))
    return x + mlp(n2(x)), a


def by_hand(ref, x):
    """Every layer's attention and the logits, computed by hand."""
    h, attn = ref.embed(x), []
    for i in range(len(list(final_blocks(ref)))):
        h, a = block_by_hand(ref, i, h)
        attn.append(a)
    norm, head = final(ref)
    return attn, head(norm(h)[:, 0]), h


def final_blocks(ref):
    return ref.blocks if isinstance(ref, TimmLike) else ref.encoder.layers


def renorm_grid(rows):
    p = rows[:, 1:]
    return (p / p.sum(-1, keepdim=True)).reshape(-1, GRID, GRID)


@pytest.fixture(scope="module", params=["timm", "torchvision"])
def pair(request):
    """(original kept aside, the user's model, its description, images)."""
    user = TimmLike() if request.param == "timm" else TorchvisionLike()
    ref = copy.deepcopy(user).eval()
    x = torch.randn(6, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        before = user.eval()(x)
    keys = {k: v.clone() for k, v in user.state_dict().items()}
    net = vn.describe(user, **({} if request.param == "timm" else TORCHVISION), labels=[f"c{i}" for i in range(5)])
    assert user.state_dict().keys() == keys.keys()  # same parameters under the same names
    assert all(torch.equal(user.state_dict()[k], keys[k]) for k in keys)
    return ref, user, net, x, before


def test_geometry(pair):
    _, _, net, _, _ = pair
    g = geometry(net)
    assert (g.kind, g.heads, g.head_dim, g.hidden, g.grid, g.prefix) == (
        "vit",
        HEADS,
        HIDDEN // HEADS,
        HIDDEN,
        (4, 4),
        1,
    )
    assert geometry(net).layers == len(net.layers)
    assert vn.core.model.class_labels(net) == [f"c{i}" for i in range(5)]


def test_logits_equal_the_original(pair):
    ref, user, net, x, before = pair
    with torch.no_grad():
        wrapped = vn.core.model.forward(net, x).logits
        after = user(x)
        _, hand, _ = by_hand(ref, x)
    tol = 1e-6 * (1 + before.abs().max())  # float32 rounding: three products for one fused, SDPA for by hand
    assert (wrapped - before).abs().max() < tol
    assert (after - before).abs().max() < tol
    assert (hand - before).abs().max() < 1e-5
    for impl in ("eager", "sdpa"):
        net.set_attn_implementation(impl)
        with torch.no_grad():
            assert (vn.core.model.forward(net, x).logits - before).abs().max() < tol
    assert net.config._attn_implementation == "sdpa"


def test_hidden_states_and_attentions(pair):
    ref, _, net, x, _ = pair
    with torch.no_grad():
        out = vn.core.model.forward(net, x, output_hidden_states=True)
        h = ref.embed(x)
        assert (out.hidden_states[0] - h).abs().max() < 1e-6
        for i in range(len(net.layers)):
            h, _ = block_by_hand(ref, i, h)
            assert (out.hidden_states[i + 1] - h).abs().max() < 1e-5
        with vn.core.eager_attention(net):
            attn = vn.core.model.forward(net, x, output_attentions=True).attentions
        hand, _, _ = by_hand(ref, x)
    assert len(attn) == len(hand) and all((a - b).abs().max() < 1e-5 for a, b in zip(attn, hand, strict=True))
    with pytest.raises(ValueError, match="eager"):
        vn.core.model.forward(net, x, output_attentions=True)


def test_capture_equals_attention_by_hand(pair):
    ref, _, net, x, _ = pair
    got = vn.capture(net, x)
    with torch.no_grad():
        hand, _, _ = by_hand(ref, x)
    diff = max(float((got.get(i) - hand[i]).abs().max()) for i in range(len(hand)))
    assert got.probs.shape == (len(hand), len(x), HEADS, 17, 17) and diff < 1e-5, diff
    cls = vn.capture(net, x, cls_only=True)
    assert (cls.probs - got.probs[..., 0, :]).abs().max() < 1e-5  # later layers: SDPA outputs, not ours


def test_rollout_equals_a_hand_loop(pair):
    ref, _, net, x, _ = pair
    with torch.no_grad():
        hand, _, _ = by_hand(ref, x)
    r = torch.eye(17, dtype=torch.float64).expand(len(x), 17, 17)
    for a in hand:
        r = (0.5 * a.double().mean(1) + 0.5 * torch.eye(17, dtype=torch.float64)) @ r
    want = renorm_grid(r[:, 0]).float()
    got = vn.explain(net, x, "rollout")
    assert got.shape == (len(x), GRID, GRID) and (got - want).abs().max() < 1e-6


def test_gradcam_equals_a_hand_gradient(pair):
    ref, _, net, x, _ = pair
    *_, last_in = by_hand_until_last(ref, x)
    n1, w, bias, out, n2, mlp = parts(ref, len(net.layers) - 1)
    act = n1(last_in).detach().requires_grad_(True)
    b, t, c = act.shape
    d = c // HEADS
    q, k, v = (F.linear(act, w, bias).view(b, t, 3, HEADS, d)[:, :, j].transpose(1, 2) for j in range(3))
    h = last_in + out((torch.softmax(q @ k.transpose(-1, -2) / d**0.5, -1) @ v).transpose(1, 2).reshape(b, t, c))
    h = h + mlp(n2(h))
    norm, head = final(ref)
    logits = head(norm(h)[:, 0])
    target = logits.argmax(-1)
    (g,) = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), act)
    weights = g[:, 1:].mean(1, keepdim=True)  # per channel, over the patches
    want = (weights * act[:, 1:]).sum(-1).clamp_min(0).reshape(-1, GRID, GRID).detach()
    got = vn.explain(net, x, "grad-cam")
    assert got.shape == want.shape and (got - want).abs().max() < 1e-5 * (1 + want.abs().max())


def by_hand_until_last(ref, x):
    with torch.no_grad():
        h = ref.embed(x)
        for i in range(len(list(final_blocks(ref))) - 1):
            h, _ = block_by_hand(ref, i, h)
    return None, h


def test_legrad_equals_a_hand_gradient(pair):
    ref, _, net, x, _ = pair
    norm, head = final(ref)
    with torch.no_grad():
        _, logits, _ = by_hand(ref, x)
    target = logits.argmax(-1)
    h = ref.embed(x).detach()
    layers = []
    for i in range(len(net.layers)):
        with torch.no_grad():
            _, a = block_by_hand(ref, i, h)
        a = a.clone().requires_grad_(True)  # layer i's attention as a leaf: d s_i / d A_i through block i alone
        out, _ = block_by_hand(ref, i, h, probs=a)
        s = head(norm(out)[:, 0]).gather(1, target[:, None]).sum()
        (g,) = torch.autograd.grad(s, a)
        layers.append(g.clamp_min(0).mean((1, 2)).double())
        h = out.detach()
    e = torch.stack(layers).mean(0)[:, 1:]
    want = (e / e.sum(-1, keepdim=True)).reshape(-1, GRID, GRID).float()
    got = vn.explain(net, x, "legrad")
    assert got.shape == want.shape and (got - want).abs().max() < 1e-5 * float(want.abs().max())


OPTIONS = {"integrated gradients": {"baseline": "zero", "n_steps": 4}}


def test_every_method_sweep_and_profile_run(pair):
    _, _, net, x, _ = pair
    for name in vn.methods("vit"):
        source = vn.capture(net, x) if name == "attention flow" else net
        maps = vn.explain(source, None if name == "attention flow" else x, name, **OPTIONS.get(name, {}))
        assert maps.shape == (len(x), GRID, GRID) and torch.isfinite(maps).all(), name
    table = vn.sweep(net, x, torch.arange(len(x)) % CLASSES)
    assert len(table) == len(net.layers) * HEADS and table["loss"].notna().all()
    assert table.attrs["method"] == "naive"  # the fast sweep is for transformers' CLS-only classifiers
    profile = vn.profile.attention_profile(net, x)
    assert len(profile) == len(net.layers) * HEADS and profile["entropy"].notna().all()
    assert vn.profile.position_embeddings(net).shape == (17, HIDDEN)


def test_ablation_zeroes_a_head_in_the_original_weights(pair):
    ref, _, net, x, _ = pair
    with torch.no_grad(), vn.ablate(net, [(0, 1)]):
        got = vn.core.model.forward(net, x).logits
    d = HIDDEN // HEADS
    with torch.no_grad():
        h = ref.embed(x)
        n1, w, bias, out, n2, mlp = parts(ref, 0)
        b, t, c = h.shape
        q, k, v = (F.linear(n1(h), w, bias).view(b, t, 3, HEADS, d)[:, :, j].transpose(1, 2) for j in range(3))
        ctx = (torch.softmax(q @ k.transpose(-1, -2) / d**0.5, -1) @ v).transpose(1, 2).reshape(b, t, c).clone()
        ctx[..., d : 2 * d] = 0
        h = h + out(ctx)
        h = h + mlp(n2(h))
        for i in range(1, len(net.layers)):
            h, _ = block_by_hand(ref, i, h)
        norm, head = final(ref)
        want = head(norm(h)[:, 0])
    assert (got - want).abs().max() < 1e-5


def test_gradients_reach_the_original_weights(pair):
    _, user, net, x, _ = pair
    logits = vn.core.model.forward(net, x).logits
    weight = next(p for n, p in user.named_parameters() if "qkv" in n or "in_proj_weight" in n)
    (g,) = torch.autograd.grad(logits.sum(), weight)
    assert g.abs().sum() > 0


@pytest.fixture
def accelerator_blocks(monkeypatch):
    monkeypatch.delitem(capture_module.BLOCK_BYTES, "cpu")


@pytest.mark.parametrize("name", ["capture", "rollout", "legrad"])
def test_ops_do_not_grow_with_the_batch(pair, accelerator_blocks, name):
    _, _, net, _, _ = pair
    run = {
        "capture": lambda x: vn.capture(net, x, batch_size=64),
        "rollout": lambda x: vn.explain(net, x, "rollout", batch_size=64),
        "legrad": lambda x: vn.explain(net, x, "legrad", batch_size=64),
    }[name]

    def ops(n):
        x = torch.randn(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(n))
        run(x)
        with OpCounter() as c:
            run(x)
        return c.ops

    small, large = ops(4), ops(32)
    grown = {op: (small[op], large[op]) for op in small.keys() | large.keys() if small[op] != large[op]}
    assert not grown, grown


# ---------------------------------------------------------------------------------- refusals


def one_line(err):
    text = str(err.value)
    assert "\n" not in text and len(text) < 400, text
    return text


def test_wrong_names_are_refused_in_one_line():
    with pytest.raises(ValueError) as err:
        vn.describe(TimmLike(), blocks="layers")
    assert "'layers'" in one_line(err) and "children" in str(err.value)
    with pytest.raises(ValueError) as err:
        vn.describe(TimmLike(), norm1="ln_1")
    assert "model.blocks.0" in one_line(err) and "'ln_1'" in str(err.value)
    with pytest.raises(ValueError) as err:
        vn.describe(TimmLike(), qkv="proj", out="qkv")
    one_line(err)
    with pytest.raises(ValueError) as err:
        vn.describe(TimmLike(), head="norm")
    assert "head" in one_line(err)
    with pytest.raises(ValueError) as err:
        vn.describe(TimmLike(), prefix=2)
    assert "prefix" in one_line(err)
    with pytest.raises(ValueError) as err:
        vn.describe(TimmLike(), readout="mean")
    assert "readout" in one_line(err)
    with pytest.raises(ValueError) as err:
        vn.describe(TorchvisionLike())
    assert "patch_size" in one_line(err) or "blocks" in str(err.value)
    with pytest.raises(TypeError):
        vn.describe("not a model")


def test_qk_norm_is_refused_with_the_cause():
    net = TimmLike(qk_norm=True)
    for block in net.blocks:  # a q/k norm whose effect shows
        block.attn.q_norm.weight.data.uniform_(0.2, 3.0)
    with pytest.raises(ValueError) as err:
        vn.describe(net, patch_size=PATCH, image_size=SIZE)
    text = one_line(err)
    assert "model.blocks.0.attn" in text and "q/k normalisation" in text
    assert isinstance(net.blocks[0].attn, FusedAttention)  # a refused model is left as it was


def test_mean_readout():
    net = TimmLike().eval()
    net.forward = lambda x: net.head(net.norm(net.blocks(net.embed(x))[:, 1:].mean(1)))
    described = vn.describe(net, patch_size=PATCH, image_size=SIZE, readout="mean")
    x = torch.randn(3, 3, SIZE, SIZE)
    with torch.no_grad():
        tokens = vn.core.model.forward(described, x, output_hidden_states=True).hidden_states[-1]
        assert (vn.core.arch.readout(described, tokens) - net(x)).abs().max() < 1e-6


def test_randomized_redraws_the_top_and_keeps_the_rest(pair):
    _, user, net, x, _ = pair
    last = len(net.layers) - 1
    top = (f"blocks.{last}.", f"layers.{last}.", "head")  # the last block and the classifier
    new = vn.interventions.randomized(net, from_layer=last)
    old = dict(user.named_parameters())
    for name, p in new.model.named_parameters():
        if p.ndim > 1:  # weight matrices, kernels, tables (a norm's weight is redrawn at 1)
            assert torch.equal(p, old[name]) != any(t in name for t in top), name
    assert vn.explain(new, x, "rollout").shape == (len(x), GRID, GRID)
    everything = vn.interventions.randomized(net, from_layer=0, embeddings=True)
    assert not any(torch.equal(p, old[n]) for n, p in everything.model.named_parameters() if p.ndim > 1)
