"""The one adapter between vitnotes and transformers' model classes: the only file that names
their internal modules (blocks, q/k/v/o projections, norms, prefix tokens, the classifier's
readout, the eager switch). A new model family is one entry here.

Used by every chapter through ``core/capture.py``, the methods and the interventions.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F

__all__ = [
    "vit_layers", "cnn_stages", "prefix_tokens", "readout_tokens", "queries_keys", "attention_output",
    "attention_input", "mlp_input", "attention_layer_scale", "attention_scale", "embeddings", "family_of",
    "eager_attention", "cls_head", "context", "finish_block", "cls_block", "blocks", "attention_module",
    "projections", "mlp_activation", "final_norm", "classifier", "readout", "layer_norms", "is_regression",
    "use_attention_function", "cnn_blocks", "position_embeddings", "attention_bias", "unsupported",
]  # fmt: skip

_QKO = ("q_proj", "k_proj", "o_proj")


def vit_layers(net: torch.nn.Module):
    """The list of transformer blocks of a ViT-family model, or None."""
    base = getattr(net, "base_model", net)
    layers = getattr(base, "layers", None)
    if layers is None:
        encoder = getattr(base, "encoder", None)
        layers = getattr(encoder, "layer", None) or getattr(encoder, "layers", None)
    if layers is None or len(layers) == 0:
        return None
    attn = _attention_of(layers[0])
    if attn is None or not all(hasattr(attn, n) for n in ("q_proj", "k_proj")) or _out_of(attn) is None:
        return None
    return layers


def _attention_of(block: torch.nn.Module) -> torch.nn.Module | None:
    """A block's self-attention module: ``attention`` (ViT, DeiT, DINOv2, BEiT) or ``self_attn``
    (CLIP's and SigLIP's vision towers), or None."""
    attn = getattr(block, "attention", None)
    return attn if attn is not None else getattr(block, "self_attn", None)


def _out_of(attn: torch.nn.Module) -> torch.nn.Module | None:
    """An attention module's output projection: ``o_proj``, or ``out_proj`` (CLIP, SigLIP), or None."""
    out = getattr(attn, "o_proj", None)
    return out if out is not None else getattr(attn, "out_proj", None)


def cnn_stages(net: torch.nn.Module):
    base = getattr(net, "base_model", net)
    encoder = getattr(base, "encoder", None)
    return getattr(encoder, "stages", None)


def cnn_blocks(net: torch.nn.Module) -> list[tuple[str, torch.nn.Module]]:
    """A CNN's residual blocks in forward order, named ``S<stage>.B<block>`` (ResNet, ConvNeXt: the
    ``layers`` of each encoder stage); a model without stages is refused. Introduced in notebook 03."""
    stages = cnn_stages(net)
    if stages is None:
        raise TypeError(f"{type(net).__name__} has no encoder stages that vitnotes knows (ResNet, ConvNeXt)")
    return [(f"S{s}.B{b}", block) for s, stage in enumerate(stages) for b, block in enumerate(stage.layers)]


def prefix_tokens(config) -> int:
    """Tokens before the patches: CLS, plus DeiT's distillation token, plus DINOv2's register tokens
    (``num_register_tokens`` of them, after CLS). The grid and every statistic drop all of them."""
    if config.model_type == "deit":
        return 2
    if config.model_type == "dinov2_with_registers":
        return 1 + int(config.num_register_tokens)
    if config.model_type == "described_vit":  # vn.describe: as described (core/described.py)
        return int(config.num_prefix_tokens)
    if config.model_type == "siglip_vision_model":  # no CLS: an attention-pooling head reads the patches
        return 0
    return 1


# Classifiers that read CLS concatenated with the mean of the patch tokens (registers excluded).
_CLS_MEAN_HEADS = ("Dinov2ForImageClassification", "Dinov2WithRegistersForImageClassification")


# Classifiers that read a pooled token: BEiT's pooler, the patch mean through a layer norm
# (``use_mean_pooling``, the default) or CLS (without it).
_POOLER_HEADS = ("BeitForImageClassification",)


def readout_tokens(config) -> int:
    """The classifier's input width in hidden sizes: DeiT averages its CLS and distillation heads
    (2), DINOv2 reads CLS concatenated with the patch mean (2), ViT reads CLS (1), BEiT reads its
    pooled token, the patch mean or CLS (1)."""
    if config.model_type in ("dinov2", "dinov2_with_registers"):
        return 2
    return prefix_tokens(config) if config.model_type == "deit" else 1


def queries_keys(block: torch.nn.Module) -> tuple[torch.nn.Module, torch.nn.Module]:
    """A block's query and key projections (their outputs are ``[batch, T, hidden]``)."""
    attn = attention_module(block)
    return attn.q_proj, attn.k_proj


def attention_output(block: torch.nn.Module) -> torch.nn.Module:
    """A block's output projection: its input is the heads' contexts, concatenated in head order."""
    return _out_of(attention_module(block))


def attention_scale(block: torch.nn.Module, head_dim: int) -> float:
    """The factor on ``Q K^T`` inside a block's softmax (``head_dim ** -0.5`` unless the module says)."""
    return getattr(attention_module(block), "scaling", head_dim**-0.5)


def _norm_names(block: torch.nn.Module) -> tuple[str, str]:
    """(pre-attention, pre-MLP) norm names: ViT/DeiT say ``layernorm_before/after``, DINOv2 ``norm1/2``,
    CLIP and SigLIP ``layer_norm1/2``."""
    if hasattr(block, "layernorm_before"):
        return ("layernorm_before", "layernorm_after")
    return ("layer_norm1", "layer_norm2") if hasattr(block, "layer_norm1") else ("norm1", "norm2")


def attention_input(block: torch.nn.Module) -> torch.nn.Module:
    """The norm whose output a block's attention reads (``[batch, T, hidden]``)."""
    return getattr(block, _norm_names(block)[0])


def mlp_input(block: torch.nn.Module) -> torch.nn.Module:
    """The norm whose output a block's MLP reads (``[batch, T, hidden]``)."""
    return getattr(block, _norm_names(block)[1])


def attention_layer_scale(block: torch.nn.Module) -> torch.Tensor | None:
    """The per-channel factor ``[hidden]`` on a block's attention output before the residual add
    (DINOv2's ``layer_scale1``, BEiT's ``lambda_1``), or None where the family has none (ViT, DeiT,
    BEiT with ``layer_scale_init_value=0``)."""
    scale = getattr(block, "layer_scale1", None)
    if scale is not None:
        return scale.lambda1
    scale = getattr(block, "lambda_1", None)  # BEiT: a parameter, or the float 1.0 when switched off
    return scale if isinstance(scale, torch.Tensor) else None


def _layer_scale(block: torch.nn.Module, which: int, x: torch.Tensor) -> torch.Tensor:
    """The per-channel layer scale on a branch's output (DINOv2's ``layer_scale1`` / BEiT's
    ``lambda_1``: attention, ``layer_scale2`` / ``lambda_2``: MLP); families without one return ``x``
    unchanged."""
    scale = getattr(block, f"layer_scale{which}", None)
    if scale is not None:
        return scale(x)
    scale = getattr(block, f"lambda_{which}", None)
    return scale * x if isinstance(scale, torch.Tensor) else x


def attention_bias(net: torch.nn.Module, block: torch.nn.Module, height: int, width: int) -> torch.Tensor | None:
    """The additive bias ``[1, head, T, T]`` that ``block`` adds to its attention scores before the
    softmax for ``height x width`` images, or None where the family adds none (ViT, DeiT, DINOv2).
    BEiT's relative position bias: the model's shared table (``use_shared_relative_position_bias``)
    plus the block's own (``use_relative_position_bias``), each read through the model's own module
    exactly as its forward reads it (so with the same interpolation at another image size).
    Captured attention needs none of this (the bias reaches the attention function as its mask);
    it is for the methods that recompute scores from q and k (``value-weighted``)."""
    parts = [getattr(getattr(net, "base_model", net), "shared_position_bias", None)]
    parts.append(getattr(block, "relative_position_bias", None))
    parts = [m for m in parts if isinstance(m, torch.nn.Module)]
    if not parts:
        return None
    patch = net.config.patch_size
    window = (height // patch, width // patch)
    interpolate = (height, width) != (net.config.image_size,) * 2  # as core.model.forward decides
    tokens = prefix_tokens(net.config) + window[0] * window[1]
    return sum(m(window, interpolate, dim_size=tokens) for m in reversed(parts))  # the block's, then the shared


def unsupported(net: torch.nn.Module) -> str | None:
    """Why vitnotes refuses a model that otherwise looks like a ViT, or None. ViT-MAE's encoder
    (``vit_mae``) shuffles its patch tokens at random on every forward and keeps only ``1 -
    mask_ratio`` of them, so its tokens have no fixed place on the patch grid (even with
    ``mask_ratio=0`` the order is random). data2vec-vision (``data2vec-vision``) has BEiT's layout but
    its own attention modules (``query``/``key``/``value`` and its own SDPA path), which bypass the
    attention functions every capture and method goes through."""
    if family_of(net) == "vit_mae":
        ratio = getattr(net.config, "mask_ratio", "?")
        return (
            f"{type(net).__name__} (ViT-MAE) shuffles its patch tokens at random on every forward and keeps "
            f"1 - mask_ratio of them (mask_ratio={ratio}; even 0 keeps the random order), so its attention has no "
            "fixed patch grid; vitnotes refuses it: load the encoder's weights into a ViTForImageClassification"
        )
    if family_of(net) == "data2vec-vision":
        return (
            f"{type(net).__name__} (data2vec-vision) computes attention in its own modules, outside transformers' "
            "attention functions, so vitnotes cannot capture it or swap it; vitnotes refuses it (BEiT, the same "
            "layout, is supported)"
        )
    return None


def config_family(config) -> str:
    """The family name a transformers config gives (its ``model_type``), or "?"."""
    return str(getattr(config, "model_type", "?"))


def set_attention_implementation(config, name: str) -> None:
    """Switch the attention implementation a model's modules read from ``config`` at every forward
    (for a module that is not a ``PreTrainedModel``: CLIP / SigLIP read over prompts, ``core.prompts``)."""
    config._attn_implementation = name


def family_of(net: torch.nn.Module) -> str:
    """The family name transformers gives the model (``"vit"``, ``"deit"``, ``"resnet"``, ...)."""
    return str(getattr(getattr(net, "config", None), "model_type", "?"))


def embeddings(net: torch.nn.Module) -> torch.nn.Module | None:
    """The patch and position embeddings (with the prefix tokens), or None."""
    return getattr(getattr(net, "base_model", net), "embeddings", None)


def position_embeddings(net: torch.nn.Module) -> torch.Tensor | None:
    """The learnt position embeddings ``[tokens, hidden]`` as stored (float32, detached; the patch
    tokens' rows last), or None for a model without a learnt table. Introduced in notebook 01."""
    table = getattr(embeddings(net), "position_embeddings", None)
    if not isinstance(table, torch.Tensor) or table.ndim != 3:
        return None
    return table.detach().float()[0]


@contextmanager
def eager_attention(net: torch.nn.Module):
    """Temporarily switch a transformers model to eager attention (restored on exit, even on error).

    Eager attention returns the probability matrices as part of the autograd graph, which
    gradient-weighted methods need. Capture itself (``vn.capture``) does not need this.
    Introduced in notebook 03 (CNN vs ViT), with gradient rollout.
    """
    before = net.config._attn_implementation
    if before == "eager":
        yield net
        return
    net.set_attn_implementation("eager")
    try:
        yield net
    finally:
        net.set_attn_implementation(before)


_CLS_HEADS = ("ViTForImageClassification", "DeiTForImageClassification")


def cls_head(net: torch.nn.Module):
    """(embeddings, blocks, final norm, classifier) when the logits read the CLS token alone, else None
    (DINOv2's classifier also reads the patch mean and BEiT's the patch mean alone, so the fast
    ablation sweep's CLS-only last layer would be wrong there: ``sweep`` falls back to one full
    forward per head)."""
    if type(net).__name__ not in _CLS_HEADS:
        return None
    base = net.base_model
    blocks = vit_layers(net)
    parts = ("layernorm_before", "layernorm_after", "mlp", "attention")
    if blocks is None or not all(hasattr(b, p) for b in blocks for p in parts) or not hasattr(base, "layernorm"):
        return None
    return base.embeddings, blocks, base.layernorm, net.classifier


def context(block: torch.nn.Module, x: torch.Tensor, queries: int | None = None) -> torch.Tensor:
    """Attention context ``(B, Q, H*d)`` before the output projection; ``queries=1``: CLS row only.
    No additive bias is added (``attention_bias``): only the families ``cls_head`` accepts, which have
    none, come here."""
    b, n, _ = x.shape
    attn = block.attention
    q = attn.q_proj(x if queries is None else x[:, :queries])
    k, v = attn.k_proj(x), attn.v_proj(x)
    d = attn.head_dim

    def split(t: torch.Tensor) -> torch.Tensor:  # (B, T, H*d) -> (B, H, T, d)
        return t.reshape(b, t.shape[1], -1, d).transpose(1, 2)

    ctx = F.scaled_dot_product_attention(split(q), split(k), split(v), scale=attn.scaling)
    return ctx.transpose(1, 2).reshape(b, q.shape[1], -1)


def finish_block(block: torch.nn.Module, residual: torch.Tensor, ctx: torch.Tensor) -> torch.Tensor:
    """The rest of a block from its attention context: output projection, residual, MLP, residual."""
    h = _layer_scale(block, 1, block.attention.o_proj(ctx)) + residual
    return _layer_scale(block, 2, block.mlp(mlp_input(block)(h))) + h


def cls_block(block: torch.nn.Module, h: torch.Tensor) -> torch.Tensor:
    """A whole block computed for the CLS token only: ``(B, T, D) -> (B, 1, D)``."""
    return finish_block(block, h[:, :1], context(block, attention_input(block)(h), queries=1))


# ------------------------------------------------------------------ for the gradient methods (chapter 09)


def blocks(net: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer blocks in order; a model without them (a CNN) is refused."""
    layers = vit_layers(net)
    if layers is None:
        raise TypeError(f"{type(net).__name__} has no transformer blocks that vitnotes knows (ViT, DeiT, DINOv2, BEiT)")
    return list(layers)


def attention_module(block: torch.nn.Module) -> torch.nn.Module:
    """A block's self-attention module (the ``module`` an attention function receives)."""
    attn = _attention_of(block)
    if attn is None:
        raise TypeError(f"{type(block).__name__} has no self-attention module that vitnotes knows")
    return attn


def projections(block: torch.nn.Module) -> tuple[torch.nn.Linear, torch.nn.Linear, torch.nn.Linear, torch.nn.Linear]:
    """(q, k, v, o) projections of a block. Heads are concatenated in order: head h owns features
    ``h*d:(h+1)*d`` of q/k/v's output and of o's input."""
    a = attention_module(block)
    return a.q_proj, a.k_proj, a.v_proj, _out_of(a)


def mlp_activation(block: torch.nn.Module) -> torch.nn.Module:
    """The MLP's activation module (GELU for ViT, DeiT, DINOv2 and BEiT). A gated MLP (DINOv2's SwiGLU,
    ``use_swiglu_ffn``) has no single activation to give a rule to, and is refused."""
    act = getattr(block.mlp, "activation_fn", None)
    if act is None:
        raise TypeError(
            f"{type(block.mlp).__name__} is a gated MLP (SwiGLU): its output multiplies two branches, so no single "
            "activation carries the rule; use activation='gradient' (the default)"
        )
    return act


def final_norm(net: torch.nn.Module) -> torch.nn.Module:
    """The layer norm after the last block (BEiT with mean pooling: an identity, its layer norm sits
    in the pooler after the mean; ``readout`` reads it there; CLIP and SigLIP: ``post_layernorm``)."""
    base = getattr(net, "base_model", net)
    norm = getattr(base, "layernorm", None)
    return norm if norm is not None else base.post_layernorm


def classifier(net: torch.nn.Module) -> torch.nn.Module:
    """The linear head. Models with two heads (DeiT with teacher) are refused."""
    if type(net).__name__.endswith("WithTeacher"):
        raise TypeError(f"{type(net).__name__} averages two heads; use a model with one classifier")
    head = getattr(net, "classifier", None)
    if head is None:
        raise TypeError(f"{type(net).__name__} has no classifier head; the methods explain an image classifier")
    return head


def readout(net: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """Outputs ``[batch, outputs]`` read from token states ``[batch, T, hidden]`` the way the model
    reads its last ones: final layer norm, then the classifier on the CLS token (ViT, DeiT) or on
    CLS concatenated with the mean of the patch tokens, every prefix token dropped (DINOv2, with
    or without registers); BEiT: its own pooler, the layer-normed mean of the patch tokens (CLS
    dropped; ``use_mean_pooling``, the default) or the final-normed CLS token, then the classifier."""
    if type(net).__name__ in _POOLER_HEADS:
        base = net.base_model
        return classifier(net)(base.pooler(base.layernorm(tokens)))
    if hasattr(net, "similarity"):  # CLIP / SigLIP read as a classifier over prompts (core.prompts)
        return net.similarity(image_embedding(net, tokens))
    if family_of(net) == "described_vit" and net.config.readout == "mean":  # vn.describe(readout="mean")
        return classifier(net)(final_norm(net)(tokens[:, prefix_tokens(net.config) :].mean(1)))
    normed = final_norm(net)(tokens)
    if type(net).__name__ in _CLS_MEAN_HEADS:
        prefix = prefix_tokens(net.config)
        return classifier(net)(torch.cat([normed[:, 0], normed[:, prefix:].mean(1)], dim=-1))
    return classifier(net)(normed[:, 0])


def layer_norms(net: torch.nn.Module) -> list[torch.nn.LayerNorm]:
    """Every LayerNorm in the model (pre-attention, pre-MLP and the final one)."""
    return [m for m in net.modules() if isinstance(m, torch.nn.LayerNorm)]


def is_regression(net: torch.nn.Module) -> bool:
    """Whether the model regresses (``problem_type == "regression"``) rather than classifies."""
    return getattr(getattr(net, "config", None), "problem_type", None) == "regression"


# ------------------------------------------------------------------ CLIP and SigLIP (core/prompts.py)
_IMAGE_TEXT = ("CLIPModel", "CLIPVisionModel", "CLIPVisionModelWithProjection", "SiglipModel", "SiglipVisionModel")
_HAS_TEXT = ("CLIPModel", "SiglipModel")


def is_image_text(net: torch.nn.Module) -> bool:
    """Whether ``net`` is a CLIP or SigLIP model (full, or its vision tower) that ``core.prompts`` reads."""
    return type(net).__name__ in _IMAGE_TEXT


def image_text_parts(net: torch.nn.Module) -> dict:
    """A CLIP / SigLIP model's parts: ``vision`` (the vision transformer), ``projection`` (CLIP's image
    projection, or None), ``scale`` (``logit_scale.exp()``), ``bias`` (SigLIP's ``logit_bias``, else
    0) and ``has_text`` (whether the model has a text tower to embed prompts with)."""
    name = type(net).__name__
    if name not in _IMAGE_TEXT:
        raise TypeError(f"{name} is not a CLIP or SigLIP model (CLIPModel, SiglipModel or their vision towers)")
    scale, bias = getattr(net, "logit_scale", None), getattr(net, "logit_bias", None)
    vision = getattr(net, "vision_model", None)  # a full model's tower; a tower is itself, or wraps one
    return {
        "vision": vision if vision is not None else net,
        "projection": getattr(net, "visual_projection", None),
        "scale": float(scale.detach().exp()) if isinstance(scale, torch.Tensor) else 1.0,
        "bias": float(bias.detach()) if isinstance(bias, torch.Tensor) else 0.0,
        "has_text": name in _HAS_TEXT,
    }


def text_features(net: torch.nn.Module, inputs: dict) -> torch.Tensor:
    """Text embeddings ``[texts, dim]`` (in the shared space, before normalising) of a full CLIP or
    SigLIP model for tokenised ``inputs`` (``input_ids``, ``attention_mask``)."""
    out = net.get_text_features(**inputs)
    return getattr(out, "pooler_output", out)


def text_padding(net: torch.nn.Module) -> tuple[int | None, int | None]:
    """(length, pad token id) a full model's prompts are padded to: SigLIP's text tower reads its last
    position and was trained on prompts padded to its full length (``max_position_embeddings``) with
    its pad token; CLIP's (None, None): pad to the longest prompt, masked, it reads the end-of-text token."""
    if type(net).__name__ != "SiglipModel":
        return None, None
    text = net.config.text_config
    return int(text.max_position_embeddings), int(text.pad_token_id)


def _pooling_head(net: torch.nn.Module) -> torch.nn.Module | None:
    """SigLIP's attention-pooling head (one learnt query over the final-normed tokens), or None."""
    return getattr(getattr(net, "base_model", net), "head", None) if family_of(net) == "siglip_vision_model" else None


def image_embedding(net: torch.nn.Module, tokens: torch.Tensor, pooled: torch.Tensor | None = None) -> torch.Tensor:
    """The image embedding a CLIP / SigLIP classifier (``core.prompts``) reads from the last block's
    tokens ``[batch, T, hidden]``: CLIP, the final-normed CLS token; SigLIP, its pooling head on the
    final-normed tokens. ``pooled``: the vision tower's own pooled output, used as it is when given."""
    if pooled is not None:
        return pooled
    base = net.base_model
    head = _pooling_head(net)
    if head is not None:
        return head(base.post_layernorm(tokens))
    return base.post_layernorm(tokens[:, 0])


def pooling_attention(net: torch.nn.Module, tokens: torch.Tensor) -> torch.Tensor:
    """SigLIP's pooling query's attention over the last block's tokens, ``[batch, head, T]`` (float32):
    what its classifier reads, where a ViT's classifier reads the CLS token. Recomputed from the
    head's ``nn.MultiheadAttention`` weights: ``softmax(q k^T / sqrt(d))`` with q the learnt probe."""
    head = _pooling_head(net)
    if head is None:
        raise TypeError(f"{type(net).__name__} has no attention-pooling head (SigLIP's vision tower has one)")
    mha = head.attention
    x = net.base_model.post_layernorm(tokens)
    d = mha.embed_dim
    w, b = mha.in_proj_weight, mha.in_proj_bias
    q = F.linear(head.probe.expand(x.shape[0], -1, -1), w[:d], None if b is None else b[:d])
    k = F.linear(x, w[d : 2 * d], None if b is None else b[d : 2 * d])
    h, hd = mha.num_heads, d // mha.num_heads
    q = q.view(x.shape[0], 1, h, hd).transpose(1, 2)
    k = k.view(x.shape[0], -1, h, hd).transpose(1, 2)
    return (q @ k.transpose(-1, -2) * hd**-0.5).softmax(-1, dtype=torch.float32)[:, :, 0]


_names = itertools.count()


@contextmanager
def use_attention_function(net: torch.nn.Module, fn: Callable) -> Iterator[dict[int, int]]:
    """Run ``net`` with ``fn`` as its attention function for the duration of a ``with`` block.

    ``fn(module, query, key, value, attention_mask, scaling=..., dropout=..., **kwargs)`` gets
    query/key/value as ``[batch, head, tokens, head_dim]`` and returns ``(output [batch, tokens,
    head, head_dim], weights)``, like transformers' eager attention. It is registered with
    ``transformers.AttentionInterface`` under a fresh name and selected with
    ``set_attn_implementation``; the previous implementation is restored on exit, even on error.
    Yields ``{id(attention module): layer index}`` so ``fn`` can tell the layers apart.
    Introduced in notebook 09 (LeGrad, CP-LRP).
    """
    from transformers import AttentionInterface

    name = f"vitnotes_{getattr(fn, '__name__', 'attention')}_{next(_names)}"
    AttentionInterface.register(name, fn)
    before = net.config._attn_implementation
    net.set_attn_implementation(name)
    try:
        yield {id(attention_module(b)): i for i, b in enumerate(blocks(net))}
    finally:
        net.set_attn_implementation(before)
        AttentionInterface._global_mapping.pop(name, None)


# ------------------------------------------------------------------ Swin (core/windows.py, Grad-CAM)
# Swin (``model_type == "swin"``: SwinForImageClassification) has no CLS token. Its blocks attend inside
# local windows of ``window_size x window_size`` patches, every second block on the grid rolled by half a
# window (a mask keeps the wrapped-around regions apart), and patch merging halves the grid between stages.
# Every name of its internal modules is in this section.
__all__ += [
    "swin_stages", "swin_blocks", "swin_stage_output", "swin_attention", "swin_block_grid", "swin_window",
    "swin_attention_inputs", "swin_attention_weights", "swin_window_probs",
]  # fmt: skip


def swin_stages(net: torch.nn.Module) -> list[torch.nn.Module] | None:
    """A Swin model's stages in order (``encoder.layers``: each a ``SwinStage`` with its ``blocks`` and
    its patch merging, ``downsample``, None in the last), or None for any other model."""
    if family_of(net) != "swin":
        return None
    layers = getattr(getattr(getattr(net, "base_model", net), "encoder", None), "layers", None)
    if not layers or not all(hasattr(stage, "blocks") for stage in layers):
        return None
    return list(layers)


def swin_blocks(net: torch.nn.Module) -> list[tuple[int, int, torch.nn.Module]]:
    """(stage, block within the stage, block) for every Swin block in forward order; a block at an odd
    index within its stage is a shifted one (``swin_window``)."""
    stages = swin_stages(net)
    if stages is None:
        raise TypeError(f"{type(net).__name__} is not a Swin model (SwinForImageClassification)")
    return [(s, b, block) for s, stage in enumerate(stages) for b, block in enumerate(stage.blocks)]


def swin_stage_output(net: torch.nn.Module, stage: int) -> torch.nn.Module:
    """The module whose output holds stage ``stage``'s feature map before patch merging: its last
    block. Its output is a tuple ``(tokens [batch, rows * cols, channels], attention or None)``, the
    tokens row-major on the stage's grid; the last stage's tokens go on to the final norm and the mean."""
    return swin_stages(net)[stage].blocks[-1]


def swin_attention(block: torch.nn.Module) -> torch.nn.Module:
    """A Swin block's window attention module (its forward's inputs: ``swin_attention_inputs``)."""
    return block.attention


def swin_block_grid(args: tuple, kwargs: dict) -> tuple[int, int]:
    """(rows, cols) of the grid entering a Swin block, from its forward's arguments
    ``(hidden_states, input_dimensions, ...)`` (a ``forward_pre_kwargs`` hook's)."""
    dims = args[1] if len(args) > 1 else kwargs["input_dimensions"]
    return int(dims[0]), int(dims[1])


def swin_window(block: torch.nn.Module) -> tuple[int, int]:
    """(window side, shift) a Swin block used in its last forward, in patches: read after the forward,
    as transformers shrinks both in place (window = the grid's shorter side, shift 0) when the grid is
    no larger than a window."""
    return int(block.window_size), int(block.shift_size)


def swin_attention_inputs(args: tuple) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(windows ``[batch * windows, window_tokens, channels]``, shift mask ``[windows, window_tokens,
    window_tokens]`` or None) from a Swin attention module's forward arguments. The windows are taken
    row-major from the grid (padded to whole windows, rolled by ``-shift`` in a shifted block), their
    tokens row-major within each window; the mask is 0 within a region and -100 across regions."""
    return args[0], (args[1] if len(args) > 1 else None)


def swin_attention_weights(output: tuple) -> torch.Tensor | None:
    """The probabilities ``[batch * windows, head, N, N]`` a Swin attention module returned (eager
    attention), or None (SDPA returns none)."""
    return output[1]


def swin_window_probs(attention: torch.nn.Module, windows: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """The window attention probabilities ``[batch * windows, head, N, N]`` (float32) a Swin attention
    module computes from its inputs (``swin_attention_inputs``): ``softmax(Q K^T * scale + (relative
    position bias + shift mask))``, as its eager attention does, the bias and mask summed first."""
    n, t, _ = windows.shape
    d = attention.head_dim
    q = attention.q_proj(windows).view(n, t, -1, d).transpose(1, 2)
    k = attention.k_proj(windows).view(n, t, -1, d).transpose(1, 2)
    scores = q @ k.transpose(-1, -2) * attention.scaling  # [batch * windows, head, N, N]
    bias = attention.relative_position_bias()  # [1, head, N, N]
    if mask is None:
        return (scores + bias).softmax(-1, dtype=torch.float32)
    combined = bias + mask[:, None]  # [windows, head, N, N], the same for every image
    scores = scores.view(-1, *combined.shape) + combined
    return scores.view(n, *scores.shape[2:]).softmax(-1, dtype=torch.float32)
