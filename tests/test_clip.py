"""CLIP and SigLIP as classifiers over text prompts (``vn.prompts``, ``vn.load(..., prompts=)``).

Tiny random models from written configs, saved and loaded through the real ``from_pretrained``
path; prompts as token ids (no tokenizer download) and as texts through a small word-level
tokenizer saved beside the model. Every number is checked against the model's own forward
(``logits_per_image``, ``output_attentions=True``, ``nn.MultiheadAttention``'s weights) or a hand
loop written here.
"""

import json

import pytest
import torch
from test_ops_per_batch import OpCounter
from transformers import CLIPConfig, CLIPModel, CLIPVisionModel, SiglipConfig, SiglipModel

import vitnotes as vn
from vitnotes.cli import main as cli_main
from vitnotes.core.model import geometry

TEXT = dict(
    hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, vocab_size=64,
    max_position_embeddings=16, bos_token_id=0, eos_token_id=2, pad_token_id=1,
)  # fmt: skip
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, image_size=16,
              patch_size=4)  # fmt: skip
PROMPTS = {"a cat": [0, 5, 6, 2], "a dog": [0, 7, 8, 9, 2], "a car": [0, 10, 2]}
CLS_ROW = ("gradient rollout", "attention flow", "value-weighted")


def _clip(seed=0):
    torch.manual_seed(seed)
    return CLIPModel(CLIPConfig(text_config=TEXT, vision_config=VISION, projection_dim=16)).eval()


def _siglip(seed=0):
    torch.manual_seed(seed)
    net = SiglipModel(SiglipConfig(text_config=TEXT, vision_config=VISION)).eval()
    with torch.no_grad():  # a non-trivial scale and bias, so the similarity's affine part is checked
        net.logit_scale.fill_(1.3)
        net.logit_bias.fill_(-0.7)
    return net


@pytest.fixture(scope="module")
def x():
    return torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))


def _ids(prompts, net=None):
    """The text tower's inputs, padded as each family was trained: CLIP to the longest prompt (the
    last id repeated, masked out); SigLIP to its full length with its pad token, no mask."""
    if isinstance(net, SiglipModel):
        width, pad = TEXT["max_position_embeddings"], TEXT["pad_token_id"]
        return {"input_ids": torch.tensor([v + [pad] * (width - len(v)) for v in prompts.values()])}
    width = max(len(v) for v in prompts.values())
    ids = torch.tensor([v + v[-1:] * (width - len(v)) for v in prompts.values()])
    mask = torch.tensor([[1] * len(v) + [0] * (width - len(v)) for v in prompts.values()])
    return {"input_ids": ids, "attention_mask": mask}


@pytest.mark.parametrize("make", [_clip, _siglip], ids=["clip", "siglip"])
def test_logits_are_the_models_own_similarities(make, x):
    net = make()
    with torch.no_grad():
        own = net(**_ids(PROMPTS, net), pixel_values=x).logits_per_image  # [images, prompts]
    sim = vn.prompts(net, PROMPTS, score="similarity")
    soft = vn.prompts(net, PROMPTS)
    assert sim.labels == list(PROMPTS) and soft.net.score == "softmax"
    torch.testing.assert_close(sim.predict(x), own, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(soft.predict(x), own.log_softmax(-1), atol=1e-5, rtol=1e-5)
    one = vn.prompts(net, {"a cat": PROMPTS["a cat"]})
    assert one.net.score == "similarity"  # one prompt: nothing to take a softmax over
    torch.testing.assert_close(one.predict(x)[:, 0], own[:, 0], atol=1e-5, rtol=1e-5)
    # the model's own config is left as it was
    assert net.config.vision_config.id2label != sim.net.config.id2label


@pytest.mark.parametrize("make", [_clip, _siglip], ids=["clip", "siglip"])
def test_capture_equals_eager_output_attentions(make, x):
    net = make()
    model = vn.prompts(net, PROMPTS)
    eager = make()
    eager.vision_model.config._attn_implementation = "eager"
    with torch.no_grad():
        want = eager.vision_model(pixel_values=x, output_attentions=True).attentions
    got = vn.capture(model, x)
    assert len(want) == VISION["num_hidden_layers"]
    for layer, a in enumerate(want):
        torch.testing.assert_close(got.get(layer), a, atol=1e-5, rtol=1e-5)


def _gradcam_by_hand(net, x, prompt_index):
    """Grad-CAM on the last block's attention input (layer_norm1's output), written from CLIP's own
    forward: the gradient of the scaled image-text similarity (``logits_per_image``), channel weights
    the mean gradient over the patch tokens, ReLU of the weighted sum."""
    kept = {}

    def keep(_m, _i, out):
        out.retain_grad()
        kept["a"] = out

    h = net.vision_model.encoder.layers[-1].layer_norm1.register_forward_hook(keep)
    try:
        logits = net(**_ids(PROMPTS), pixel_values=x).logits_per_image
        logits[:, prompt_index].sum().backward()
    finally:
        h.remove()
    a, g = kept["a"][:, 1:], kept["a"].grad[:, 1:]  # CLS dropped
    cam = torch.relu((a * g.mean(1, keepdim=True)).sum(-1))
    return cam.reshape(x.shape[0], 4, 4).detach()


def test_prompt_maps_differ_and_gradcam_is_the_similaritys_gradient(x):
    net = _clip()
    model = vn.prompts(net, PROMPTS, score="similarity")
    cat = vn.explain(model, x, "grad-cam", target="a cat")
    dog = vn.explain(model, x, "grad-cam", target="a dog")
    assert not torch.allclose(cat, dog, atol=1e-4)
    torch.testing.assert_close(cat, _gradcam_by_hand(_clip(), x, 0), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(dog, _gradcam_by_hand(_clip(), x, 1), atol=1e-5, rtol=1e-4)
    # several prompts, the softmax: a cat rather than a dog or a car, a different map again
    rather = vn.explain(vn.prompts(net, PROMPTS), x, "integrated gradients", target="a cat")
    plain = vn.explain(model, x, "integrated gradients", target="a cat")
    assert not torch.allclose(rather, plain, atol=1e-4)


@pytest.mark.parametrize("make", [_clip, _siglip], ids=["clip", "siglip"])
def test_every_method_that_applies_runs(make, x):
    model = vn.prompts(make(), PROMPTS)
    prefix = model.geometry.prefix
    assert prefix == (1 if make is _clip else 0)
    for name in vn.methods("vit"):
        if prefix == 0 and name in CLS_ROW:
            continue
        heat = (
            vn.explain(vn.capture(model, x), None, name)
            if name == "attention flow"
            else vn.explain(model, x, name, target="a dog")
        )
        assert heat.shape == (3, 4, 4) and torch.isfinite(heat).all(), name


def test_siglip_reads_its_pooling_query(x):
    """No CLS token: 'last layer' is the pooling head's attention (nn.MultiheadAttention's own averaged
    weights), rollout is that row times the rollout product (a hand loop over eager attentions)."""
    net = _siglip()
    model = vn.prompts(net, PROMPTS)
    net.vision_model.config._attn_implementation = "eager"
    with torch.no_grad():
        out = net.vision_model(pixel_values=x, output_attentions=True)
        head = net.vision_model.head
        probe = head.probe.expand(x.shape[0], -1, -1)
        _, pooled = head.attention(probe, out.last_hidden_state, out.last_hidden_state, need_weights=True)
    net.vision_model.config._attn_implementation = "sdpa"
    pooled = pooled[:, 0]  # [batch, T], the mean over heads
    last = vn.explain(model, x, "last layer")
    torch.testing.assert_close(last, (pooled / pooled.sum(-1, keepdim=True)).reshape(3, 4, 4), atol=1e-5, rtol=1e-4)
    r = torch.eye(16).expand(3, 16, 16)
    for a in out.attentions:
        r = (0.5 * a.mean(1) + 0.5 * torch.eye(16)) @ r
    want = (pooled[:, None] @ r)[:, 0]
    torch.testing.assert_close(
        vn.explain(model, x, "rollout"), (want / want.sum(-1, keepdim=True)).reshape(3, 4, 4), atol=1e-5, rtol=1e-4
    )
    with pytest.raises(ValueError, match="reads the attention-pooling query"):
        vn.explain(model, x, "last layer", layer=0)


@pytest.mark.parametrize("name", CLS_ROW)
def test_siglip_refuses_the_cls_row_methods_in_one_sentence(name, x):
    model = vn.prompts(_siglip(), PROMPTS)
    with pytest.raises(TypeError, match="has no CLS token") as err:
        if name == "attention flow":
            vn.explain(vn.capture(model, x), None, name)
        else:
            vn.explain(model, x, name)
    assert "\n" not in str(err.value) and "rollout" in str(err.value)
    with pytest.raises(TypeError, match="has no CLS token"):
        vn.capture(model, x, cls_only=True)


def test_refusals_name_the_fix(tmp_path, x):
    with pytest.raises(TypeError, match=r"vn\.prompts"):
        vn.explain(_clip(), x, "rollout")  # a bare CLIPModel has no classes
    tower = CLIPVisionModel(_clip().config.vision_config).eval()
    with pytest.raises(ValueError, match="vision tower alone"):
        vn.prompts(tower, PROMPTS)
    with pytest.raises(ValueError, match="no tokenizer"):
        vn.prompts(_clip(), ["a cat", "a dog"])
    with pytest.raises(ValueError, match="non-empty list"):
        vn.prompts(_clip(), [])
    with pytest.raises(TypeError, match="CLIP or SigLIP"):
        vn.prompts(vn.load("fmnist-vit-p4"), ["a shoe"])
    with pytest.raises(ValueError, match="prompts= applies to CLIP and SigLIP"):
        vn.load("fmnist-vit-p4", prompts=["a shoe"])


def test_a_vision_tower_alone_explains_its_embedding(x):
    tower = CLIPVisionModel(_clip().config.vision_config).eval()
    model = vn.prompts.__globals__["prompt_classifier"](tower)  # what vn.load does for a tower
    m = vn.core.Model(model, geometry(model), [], vn.core.Preprocessing.from_dict({}, geometry(model)))
    assert vn.explain(m, x, "rollout").shape == (3, 4, 4)
    with pytest.raises(ValueError, match="target"):
        vn.explain(m, x, "grad-cam")  # 32 embedding dimensions and no class: say which
    assert vn.explain(m, x, "grad-cam", target=3).shape == (3, 4, 4)


def _word_tokenizer():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["<s>", "<pad>", "</s>", "<unk>", "a", "photo", "of", "cat", "dog", "car"]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", unk_token="<unk>")


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clip")
    _clip().save_pretrained(folder)
    _word_tokenizer().save_pretrained(folder)
    return folder


def test_load_with_text_prompts_from_a_folder(clip_folder, x):
    model = vn.load(str(clip_folder), prompts=["a photo of a cat", "a photo of a dog"])
    assert model.labels == ["a photo of a cat", "a photo of a dog"]
    tok = _word_tokenizer()
    batch = tok(model.labels, padding=True, return_tensors="pt")
    with torch.no_grad():
        own = _clip()(**batch, pixel_values=x).logits_per_image
    torch.testing.assert_close(model.predict(x), own.log_softmax(-1), atol=1e-5, rtol=1e-5)
    again = vn.prompts(model, ["a photo of a car"])  # the same model, other prompts (its tokenizer kept)
    assert again.labels == ["a photo of a car"] and model.labels == ["a photo of a cat", "a photo of a dog"]


def test_cli_explains_a_prompt(clip_folder, tmp_path):
    from PIL import Image

    image = tmp_path / "img.png"
    Image.new("RGB", (16, 16), (120, 40, 200)).save(image)
    out = tmp_path / "maps"
    argv = ["explain", str(image), "--model", str(clip_folder), "--method", "grad-cam", "--out", str(out)]
    prompts = ["--prompt", "a photo of a cat", "--prompt", "a photo of a dog"]
    code = cli_main([*argv, *prompts, "--target", "a photo of a dog"])
    assert code == 0
    record = json.loads((out / "img.json").read_text())
    assert record["target"]["label"] == "a photo of a dog"
    assert {c["label"] for c in record["top"]} == {"a photo of a cat", "a photo of a dog"}


def test_explorer_takes_prompts(clip_folder):
    import numpy as np

    app = vn.show.explore(str(clip_folder), images=[np.full((16, 16, 3), 90, np.uint8)],
                     prompts=["a photo of a cat", "a photo of a dog"]).explorer  # fmt: skip
    assert app.model.labels == ["a photo of a cat", "a photo of a dog"]
    app.method.value = "grad-cam"
    assert "a photo of a" in app.prediction.value and app.message.value == ""
    app.prompt_box.value = "a photo of a car"
    assert app.model.labels == ["a photo of a car"] and app.message.value == ""


@pytest.mark.parametrize("make", [_clip, _siglip], ids=["clip", "siglip"])
def test_ops_per_batch_do_not_grow(make, monkeypatch):
    from vitnotes.core import capture as capture_module

    monkeypatch.setattr(capture_module, "BLOCK_BYTES", {})  # the accelerator's policy: whole chunks
    model = vn.prompts(make(), PROMPTS)
    counts = {}
    for n in (4, 32):
        xb = torch.randn(n, 3, 16, 16)
        for name in ("rollout", "last layer", "grad-cam", "legrad"):
            with OpCounter() as c:
                vn.explain(model, xb, name, target="a cat", batch_size=64)
            counts[name, n] = sum(c.ops.values())
    for name in ("rollout", "last layer", "grad-cam", "legrad"):
        assert counts[name, 4] == counts[name, 32], name


def _similarity_by_hand(net, tokens):
    """The scaled image-text similarity (``logits_per_image``) read from a layer's tokens the way the
    model reads its last ones: CLIP, post_layernorm(CLS) then the projection; SigLIP, post_layernorm
    then the pooling head (its own nn.MultiheadAttention), plus the bias."""
    with torch.no_grad():
        text = net.get_text_features(**_ids(PROMPTS, net))
    text = getattr(text, "pooler_output", text)
    tower = net.vision_model
    if isinstance(net, SiglipModel):
        image = tower.head(tower.post_layernorm(tokens))
        bias = net.logit_bias
    else:
        image = net.visual_projection(tower.post_layernorm(tokens[:, 0]))
        bias = 0.0
    cos = torch.nn.functional.normalize(image, dim=-1) @ torch.nn.functional.normalize(text, dim=-1).T
    return cos * net.logit_scale.exp() + bias


def _eager_tower(net, x):
    net.vision_model.config._attn_implementation = "eager"
    try:
        return net.vision_model(pixel_values=x, output_attentions=True, output_hidden_states=True)
    finally:
        net.vision_model.config._attn_implementation = "sdpa"


@pytest.mark.parametrize("make", [_clip, _siglip], ids=["clip", "siglip"])
def test_legrad_equals_a_hand_loop(make, x):
    """Per layer: the similarity read from that layer's tokens, its gradient with respect to the
    layer's attention, ReLU, mean over heads and queries, the CLS key dropped (none for SigLIP), summed
    over layers; renormalised over the patches as the library's maps are."""
    net = make()
    model = vn.prompts(make(), PROMPTS, score="similarity")
    with torch.enable_grad():
        out = _eager_tower(net, x)
        acc = 0
        for layer in range(VISION["num_hidden_layers"]):
            s = _similarity_by_hand(net, out.hidden_states[layer + 1])[:, 1].sum()
            (g,) = torch.autograd.grad(s, out.attentions[layer], retain_graph=True)
            acc = acc + g.clamp_min(0).mean((1, 2))
    prefix = model.geometry.prefix
    rows = acc[:, prefix:]
    want = (rows / rows.sum(-1, keepdim=True)).reshape(3, 4, 4)
    torch.testing.assert_close(vn.explain(model, x, "legrad", target="a dog"), want, atol=1e-5, rtol=1e-4)


def test_clip_rollout_equals_a_hand_loop(x):
    net = _clip()
    with torch.no_grad():
        out = _eager_tower(net, x)
    r = torch.eye(17).expand(3, 17, 17)
    for a in out.attentions:
        r = (0.5 * a.mean(1) + 0.5 * torch.eye(17)) @ r
    row = r[:, 0, 1:]
    want = (row / row.sum(-1, keepdim=True)).reshape(3, 4, 4)
    torch.testing.assert_close(vn.explain(vn.prompts(net, PROMPTS), x, "rollout"), want, atol=1e-5, rtol=1e-4)


def test_siglip_gradcam_equals_a_hand_loop(x):
    """No CLS token to drop: every token is a patch."""
    net = _siglip()
    kept = {}
    h = net.vision_model.encoder.layers[-1].layer_norm1.register_forward_hook(lambda _m, _i, o: kept.update(a=o))
    try:
        with torch.enable_grad():
            logits = net(**_ids(PROMPTS, net), pixel_values=x).logits_per_image
            (g,) = torch.autograd.grad(logits[:, 2].sum(), kept["a"])
    finally:
        h.remove()
    want = torch.relu((kept["a"].detach() * g.mean(1, keepdim=True)).sum(-1)).reshape(3, 4, 4)
    model = vn.prompts(net, PROMPTS, score="similarity")
    torch.testing.assert_close(vn.explain(model, x, "grad-cam", target="a car"), want, atol=1e-5, rtol=1e-4)


def test_sweep_and_profile(x):
    """The head-ablation sweep runs on both (it ablates heads at the output projection's input); the
    per-head CLS profile runs on CLIP and is refused on SigLIP (no CLS row to profile)."""
    targets = [0, 1, 2]
    for make in (_clip, _siglip):
        model = vn.prompts(make(), PROMPTS)
        table = vn.sweep(model, x, targets)
        assert len(table) == VISION["num_hidden_layers"] * VISION["num_attention_heads"]
        assert table["loss"].notna().all()
    assert len(vn.profile.attention_profile(vn.prompts(_clip(), PROMPTS), x)) == 12
    with pytest.raises(TypeError, match="has no CLS token"):
        vn.profile.attention_profile(vn.prompts(_siglip(), PROMPTS), x)
