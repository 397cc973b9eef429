"""Any PyTorch ViT, described in a few names: ``describe`` turns a plain ``nn.Module`` ViT (timm's or
torchvision's layout, or your own) into a model every vitnotes function takes. Introduced in the
book's page "Running on other models" (section "Any PyTorch ViT").

The user's attention modules are replaced, in the user's model, by ``_Attention``: the same
parameters under the same names (the model's ``state_dict`` does not change), q/k/v projections
that are views on the original weights, and the attention itself computed by the function the
wrapper's config names (transformers' attention functions), which is how capture and every method
reach it. ``describe`` checks each replacement and the classifier's readout against the original
on a random image before it returns, and refuses a description that does not reproduce the model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .model import evaluation

__all__ = ["DescribedViT", "DescribedViTConfig", "describe"]

FAMILY = "described_vit"


def _config_class():
    from transformers import PretrainedConfig

    class DescribedViTConfig(PretrainedConfig):
        """The geometry of a described ViT: what ``core.model.geometry`` and ``core.arch`` read."""

        model_type = FAMILY

        def __init__(self, num_prefix_tokens: int = 1, readout: str = "cls", **kwargs: Any):
            self.num_prefix_tokens = num_prefix_tokens
            self.readout = readout
            super().__init__(**kwargs)

    return DescribedViTConfig


DescribedViTConfig = _config_class()


class DescriptionError(ValueError):
    """A description that does not fit the model: one sentence naming the path and the fix."""


def _resolve(root: nn.Module, path: str, where: str) -> Any:
    """The object at dotted ``path`` below ``root`` (``where`` names root in the error)."""
    obj, names = root, path.split(".")
    for i, part in enumerate(names):
        if not hasattr(obj, part):
            inside = ".".join([where, *names[:i]])
            children = [n for n, _ in obj.named_children()] if isinstance(obj, nn.Module) else []
            raise DescriptionError(
                f"{where} has no {path!r}: {inside} has no {part!r} (its children: {children}); pass vn.describe "
                "the right name"
            )
        obj = getattr(obj, part)
    return obj


def _module(root: nn.Module, path: str, where: str, what: str, kind: type = nn.Module) -> nn.Module:
    obj = _resolve(root, path, where)
    if not isinstance(obj, kind):
        raise DescriptionError(
            f"{where}.{path} is a {type(obj).__name__}, not {what}; pass vn.describe the name of the {what}"
        )
    return obj


def _eager(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **_kwargs):
    """Eager attention: the probabilities ``softmax(Q K^T s)`` (float32 softmax, cast back) are
    returned inside the autograd graph; output ``[batch, T, head, head_dim]``."""
    scores = query @ key.transpose(-1, -2) * (query.shape[-1] ** -0.5 if scaling is None else scaling)
    if attention_mask is not None:
        scores = scores + attention_mask
    weights = scores.softmax(-1, dtype=torch.float32).to(query.dtype)
    used = F.dropout(weights, dropout, training=module.training) if dropout else weights
    return (used @ value).transpose(1, 2).contiguous(), weights


def _attention_function(name: str) -> Callable:
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    return _eager if name == "eager" else ALL_ATTENTION_FUNCTIONS.get_interface(name, _eager)


class _Rows(nn.Module):
    """Rows ``start:stop`` of another module's weight (and bias) as a linear map: a q, k or v
    projection that is a view on a fused one (hooks on it fire, the parameters stay the original's,
    gradients reach them). Holds no parameters of its own."""

    def __init__(self, owner: nn.Module, weight: str, bias: str | None, start: int, stop: int):
        super().__init__()
        object.__setattr__(self, "_owner", owner)  # not a child: the owner's parameters are not duplicated
        self._names, self.start, self.stop = (weight, bias), start, stop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = getattr(self._owner, self._names[0])[self.start : self.stop]
        b = getattr(self._owner, self._names[1]) if self._names[1] else None
        return F.linear(x, w, None if b is None else b[self.start : self.stop])

    def extra_repr(self) -> str:
        return f"rows {self.start}:{self.stop} of {self._names[0]}"


class _Attention(nn.Module):
    """A user's self-attention, recomputed through the attention function the config names.

    Holds the original's parameters, buffers and children under their own names; exposes what
    ``core.arch`` reads (``q_proj``, ``k_proj``, ``v_proj``, ``o_proj``, ``num_heads``, ``head_dim``,
    ``scaling``). ``mha``: the original is an ``nn.MultiheadAttention`` (called ``(x, x, x)``, returns
    a tuple); otherwise it is called ``(x)`` and returns the output tensor."""

    def __init__(self, original: nn.Module, config, heads: int, qkv: str | Sequence[str], out: str, where: str):
        super().__init__()
        self._parameters.update(original._parameters)
        self._buffers.update(original._buffers)
        self._modules.update(original._modules)
        object.__setattr__(self, "_config", config)
        object.__setattr__(self, "_original_type", type(original).__name__)
        self.is_causal = False  # transformers' sdpa function reads it
        self.mha = isinstance(original, nn.MultiheadAttention)
        self._sink: list | None = None  # output_attentions: the weights the function returns
        aliases = {}
        if self.mha:
            if not original._qkv_same_embed_dim or original.bias_k is not None or original.add_zero_attn:
                raise DescriptionError(
                    f"{where} is an nn.MultiheadAttention with separate key/value sizes, bias_k/bias_v or "
                    "add_zero_attn; vn.describe supports plain self-attention (kdim = vdim = embed_dim)"
                )
            hidden, heads = original.embed_dim, original.num_heads
            self.batch_first, self.dropout_p = original.batch_first, float(original.dropout)
            bias = "in_proj_bias" if original.in_proj_bias is not None else None
            for i, name in enumerate(("q_proj", "k_proj", "v_proj")):
                self.add_module(name, _Rows(self, "in_proj_weight", bias, i * hidden, (i + 1) * hidden))
            aliases["o_proj"] = "out_proj"
        elif isinstance(qkv, str):
            fused = _module(original, qkv, where, "fused q/k/v linear layer", nn.Linear)
            if fused.out_features % 3:
                raise DescriptionError(
                    f"{where}.{qkv} has {fused.out_features} outputs, not 3 x hidden: not fused q|k|v"
                )
            hidden = fused.out_features // 3
            bias = "bias" if fused.bias is not None else None
            for i, name in enumerate(("q_proj", "k_proj", "v_proj")):
                self.add_module(name, _Rows(fused, "weight", bias, i * hidden, (i + 1) * hidden))
            aliases["o_proj"] = out
        else:
            if len(qkv) != 3:
                raise DescriptionError(f"qkv={qkv!r}: give one fused layer's name or three names (q, k, v)")
            for name, path in zip(("q_proj", "k_proj", "v_proj"), qkv, strict=True):
                _module(original, path, where, "query/key/value linear layer", nn.Linear)
                aliases[name] = path
            hidden = _resolve(original, qkv[0], where).out_features
            aliases["o_proj"] = out
        if not self.mha:
            _module(original, out, where, "output projection", nn.Module)
            drop = getattr(original, "attn_drop", None)
            self.dropout_p = float(drop.p) if isinstance(drop, nn.Dropout) else 0.0
        object.__setattr__(self, "_aliases", aliases)
        heads = heads or getattr(original, "num_heads", None)
        if not heads:
            raise DescriptionError(
                f"{where} has no num_heads attribute: pass vn.describe(..., heads=<number of heads>)"
            )
        if hidden % heads:
            raise DescriptionError(f"{where}: {hidden} features do not split into {heads} heads")
        self.num_heads, self.head_dim = int(heads), hidden // int(heads)
        self.scaling = float(getattr(original, "scale", self.head_dim**-0.5))

    def __getattr__(self, name: str) -> Any:
        aliases = self.__dict__.get("_aliases", {})
        if name in aliases:
            return _resolve(self, aliases[name], "attention")
        return super().__getattr__(name)

    def attend(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Self-attention on ``x`` ``[batch, T, hidden]``: (output after ``o_proj``, the function's weights)."""
        b, t, _ = x.shape

        def split(z: torch.Tensor) -> torch.Tensor:  # [batch, T, H*d] -> [batch, H, T, d]
            return z.view(b, t, self.num_heads, self.head_dim).transpose(1, 2)

        q, k, v = split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        fn = _attention_function(self._config._attn_implementation)
        dropout = self.dropout_p if self.training else 0.0
        out, weights = fn(self, q, k, v, None, dropout=dropout, scaling=self.scaling)
        if self._sink is not None:
            self._sink.append(weights)
        out = self.o_proj(out.reshape(b, t, -1))
        drop = self._modules.get("proj_drop")
        return (drop(out) if drop is not None else out), weights

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.mha:
            return self._mha(*args, **kwargs)
        x = args[0] if args else kwargs.pop("x")
        rest = [a for a in args[1:] if a is not None] + [k for k, v in kwargs.items() if v is not None]
        if rest:
            raise ValueError(
                f"{self._original_type} was called with a mask or extra inputs; vn.describe supports plain "
                "self-attention"
            )
        return self.attend(x)[0]

    def _mha(self, query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
             average_attn_weights=True, is_causal=False):  # fmt: skip
        if key is not query or value is not query:
            raise ValueError(
                "this nn.MultiheadAttention was called with different query/key/value: vn.describe supports "
                "self-attention"
            )
        if key_padding_mask is not None or attn_mask is not None or is_causal:
            raise ValueError(
                "this nn.MultiheadAttention was called with a mask; vn.describe supports unmasked self-attention"
            )
        x = query if self.batch_first else query.transpose(0, 1)
        out, weights = self.attend(x)
        if not self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        if weights is None:  # a fused kernel returns none: compute them as nn.MultiheadAttention would
            b, t, _ = x.shape
            q = self.q_proj(x).view(b, t, self.num_heads, -1).transpose(1, 2)
            k = self.k_proj(x).view(b, t, self.num_heads, -1).transpose(1, 2)
            weights = (q @ k.transpose(-1, -2) * self.scaling).softmax(-1)
        return out, weights.mean(1) if average_attn_weights else weights


class _Namespace:
    def __init__(self, **kwargs: Any):
        self.__dict__.update(kwargs)


class _Layer:
    """One block as ``core.arch`` reads it: ``attention``, ``norm1``, ``norm2``, ``mlp.activation_fn``.
    Not a module of its own: hooks registered on it go on the user's block, and ``modules()`` are the
    block's."""

    def __init__(self, block: nn.Module, attention: _Attention, norm1: nn.Module, norm2: nn.Module, act):
        self.block, self.attention, self.norm1, self.norm2 = block, attention, norm1, norm2
        self.mlp = _Namespace(activation_fn=act)

    def register_forward_hook(self, fn, **kwargs):
        return self.block.register_forward_hook(fn, **kwargs)

    def register_forward_pre_hook(self, fn, **kwargs):
        return self.block.register_forward_pre_hook(fn, **kwargs)

    def modules(self):
        return self.block.modules()

    def __repr__(self) -> str:
        return f"_Layer({type(self.block).__name__})"


class _Embeddings:
    """The embedding output as ``core.arch`` reads it: what the first block receives (a forward hook
    on it runs as a pre-hook on that block), the learnt position table, if one was named, and as its
    ``modules()`` every module of the model outside the blocks, the final norm and the head (the patch
    embedding, and the model itself, which holds the CLS token and the position table)."""

    def __init__(self, model: nn.Module, blocks: list[nn.Module], rest: tuple, position: torch.Tensor | None):
        self.model, self.blocks, self.rest, self.position_embeddings = model, blocks, rest, position
        self.first = blocks[0]

    def modules(self) -> list[nn.Module]:
        below = {id(m) for part in (*self.blocks, *self.rest) for m in part.modules()}
        return [m for m in self.model.modules() if id(m) not in below]

    def register_forward_hook(self, fn):
        def pre(module, args):
            out = fn(module, args, args[0])
            return None if out is None else (out, *args[1:])

        return self.first.register_forward_pre_hook(pre)


class DescribedViT(nn.Module):
    """A plain PyTorch ViT seen the way vitnotes sees a transformers one (made by ``vn.describe``).

    ``model``: the user's module (its attention modules replaced by vitnotes' own, same parameters);
    ``config``: the geometry; ``layers``: the blocks as ``core.arch`` reads them. ``forward`` runs the
    user's model and returns a transformers ``ImageClassifierOutput`` (``logits``, and with
    ``output_hidden_states`` the first block's input and each block's output; with
    ``output_attentions`` under eager attention, every layer's probabilities)."""

    def __init__(self, model: nn.Module, config, layers: list[_Layer], norm: nn.Module, head: nn.Module,
                 embeddings: _Embeddings):  # fmt: skip
        super().__init__()
        self.model = model
        self.config = config
        self.layers = layers  # a plain list: no module registered twice
        self._parts = (norm, head, embeddings)

    @property
    def base_model(self) -> DescribedViT:
        return self

    @property
    def layernorm(self) -> nn.Module:
        return self._parts[0]

    @property
    def classifier(self) -> nn.Module:
        return self._parts[1]

    @property
    def embeddings(self) -> _Embeddings:
        return self._parts[2]

    def set_attn_implementation(self, name: str) -> None:
        """Select the attention function (``"sdpa"``, ``"eager"``, or one registered with transformers'
        ``AttentionInterface``)."""
        if name != "eager":
            from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

            if name not in ALL_ATTENTION_FUNCTIONS:
                raise ValueError(f"unknown attention implementation {name!r}; use 'sdpa', 'eager' or a registered one")
        self.config._attn_implementation = name

    def forward(self, pixel_values: torch.Tensor | None = None, output_hidden_states: bool = False,
                output_attentions: bool = False, interpolate_pos_encoding: bool | None = None, **_kwargs):  # fmt: skip
        """Logits of the user's model (it is called as ``model(pixel_values)``; another image size works
        where the model itself accepts one)."""
        from transformers.modeling_outputs import ImageClassifierOutput

        states: list[torch.Tensor] = []
        weights: list = []
        handles = []
        if output_hidden_states:
            handles.append(self.layers[0].register_forward_pre_hook(lambda _m, args: states.append(args[0])))
            for layer in self.layers:
                keep = lambda _m, _i, out: states.append(out[0] if isinstance(out, tuple) else out)  # noqa: E731
                handles.append(layer.register_forward_hook(keep))
        if output_attentions:
            for layer in self.layers:
                layer.attention._sink = weights
        try:
            logits = _logits(self.model(pixel_values))
        finally:
            for h in handles:
                h.remove()
            for layer in self.layers:
                layer.attention._sink = None
        if output_attentions and any(w is None for w in weights):
            raise ValueError("output_attentions needs eager attention: use vn.core.eager_attention(model)")
        return ImageClassifierOutput(
            logits=logits,
            hidden_states=tuple(states) if output_hidden_states else None,
            attentions=tuple(weights) if output_attentions else None,
        )


def _logits(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    logits = getattr(out, "logits", None)
    if isinstance(logits, torch.Tensor):
        return logits
    raise DescriptionError(f"the model returned a {type(out).__name__}; vn.describe needs a model that returns logits")


def _square(value: Any, what: str) -> int:
    if isinstance(value, (tuple, list)):
        if len(set(value)) != 1:
            raise DescriptionError(f"{what}={tuple(value)} is not square; vitnotes supports square images and patches")
        value = value[0]
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DescriptionError(f"{what} must be a positive int, got {value!r}")
    return value


def _found(model: nn.Module, value: Any, paths: Sequence[str], what: str) -> int:
    """``value``, or the first of ``paths`` the model has (timm: ``patch_embed.patch_size``,
    torchvision: ``patch_size``)."""
    if value is None:
        for path in paths:
            try:
                value = _resolve(model, path, "model")
                break
            except DescriptionError:
                continue
    if value is None:
        raise DescriptionError(f"the model does not say its {what}: pass vn.describe(..., {what}=...)")
    return _square(value, what)


def describe(
    model: nn.Module,
    *,
    blocks: str = "blocks",
    attention: str = "attn",
    qkv: str | Sequence[str] = "qkv",
    out: str = "proj",
    norm1: str = "norm1",
    norm2: str = "norm2",
    activation: str = "mlp.act",
    final_norm: str = "norm",
    head: str = "head",
    position: str | None = "pos_embed",
    prefix: int = 1,
    readout: str = "cls",
    patch_size: int | None = None,
    image_size: int | None = None,
    channels: int = 3,
    heads: int | None = None,
    labels: Sequence[str] | None = None,
) -> DescribedViT:
    """A plain PyTorch ViT (timm's or torchvision's layout, or your own) as a model every vitnotes
    function takes: capture, every ViT map method, the head-ablation sweep, the profiles.

    The names are dotted attribute paths: ``blocks`` (the sequence of blocks), ``final_norm``,
    ``head`` (the classifier) and ``position`` (the learnt position table ``[1, tokens, hidden]``, or
    None) inside ``model``; ``attention``, ``norm1`` (the norm the attention reads), ``norm2`` (the
    norm the MLP reads) and ``activation`` (the MLP's activation module) inside a block; ``qkv`` (one
    fused linear whose output is ``[q | k | v]``, heads contiguous in each, or three names of separate
    q, k, v linears) and ``out`` (the output projection) inside the attention. An
    ``nn.MultiheadAttention`` is recognised as such (``qkv`` and ``out`` are not read). ``prefix``:
    tokens before the patches (CLS, distillation, registers); ``readout``: the head reads
    ``final_norm(tokens)[:, 0]`` (``"cls"``) or ``final_norm(mean of the patch tokens)`` (``"mean"``,
    timm's ``global_pool="avg"`` with ``final_norm="fc_norm"``). ``patch_size``, ``image_size``: read from
    the model (``patch_embed.patch_size``/``img_size``, ``patch_size``/``image_size``) when not given.
    ``heads``: read from the attention's ``num_heads`` when not given. ``labels``: class names.
    The defaults describe timm's ``VisionTransformer``::

        net = timm.create_model("vit_small_patch16_224", pretrained=True)
        model = vn.describe(net)

        net = torchvision.models.vit_b_16(weights="DEFAULT")
        model = vn.describe(net, blocks="encoder.layers", attention="self_attention", norm1="ln_1",
                            norm2="ln_2", activation="mlp.1", final_norm="encoder.ln", head="heads",
                            position="encoder.pos_embedding")

    The attention modules are replaced, in ``model`` itself, by vitnotes' own: the same parameters under
    the same names (``state_dict`` unchanged), q/k/v computed as views on the original weights, the
    attention through transformers' attention functions (SDPA by default; eager, or vitnotes' own
    while it captures). Before returning, every replacement is run against the original on one random
    image's activations, and the head's readout against the logits; a description that does not
    reproduce the model (q/k normalisation, rotary positions, another head layout, a wrong readout) is
    refused with the block and the likely cause, as is every wrong name. Not supported: masks,
    layer scale (timm's ``init_values``), blocks that are not pre-norm ``x + attn(norm1(x))``,
    ``x + mlp(norm2(x))`` (the value-weighted map and the fast sweep assume it), and the cascading
    randomisation of embeddings. Introduced in notebook 00; the book's page "Running on other models"
    shows it at work."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"vn.describe takes a torch nn.Module, got {type(model).__name__}")
    if isinstance(model, DescribedViT) or getattr(model, "config", None) is not None:
        raise TypeError(f"{type(model).__name__} is already a model vitnotes reads (it has a config): use it as it is")
    if readout not in ("cls", "mean"):
        raise DescriptionError(f"readout must be 'cls' or 'mean', got {readout!r}")
    if isinstance(prefix, bool) or not isinstance(prefix, int) or prefix < (1 if readout == "cls" else 0):
        raise DescriptionError(
            f"prefix must be an int >= {int(readout == 'cls')} (CLS and other tokens before the patches)"
        )
    patch = _found(model, patch_size, ("patch_embed.patch_size", "patch_size"), "patch_size")
    size = _found(model, image_size, ("patch_embed.img_size", "image_size", "img_size"), "image_size")
    if size % patch:
        raise DescriptionError(f"image_size {size} is not a multiple of patch_size {patch}")
    seq = _resolve(model, blocks, "model")
    if not isinstance(seq, (nn.ModuleList, nn.Sequential)) or len(seq) == 0:
        raise DescriptionError(
            f"model.{blocks} is a {type(seq).__name__}, not a non-empty ModuleList/Sequential of blocks"
        )
    seq = list(seq)
    norm = _module(model, final_norm, "model", "final norm")
    classifier = _module(model, head, "model", "classifier head")
    table = None
    if position is not None:
        table = _resolve(model, position, "model")
        if not isinstance(table, torch.Tensor) or table.ndim != 3:
            raise DescriptionError(f"model.{position} is not a position table [1, tokens, hidden]; pass position=None")
    parts = []
    for i, block in enumerate(seq):
        where = f"model.{blocks}.{i}"
        attn = _module(block, attention, where, "attention module")
        scale = [n for n, m in block.named_children() if "layerscale" in type(m).__name__.lower()]
        if scale:
            raise DescriptionError(f"{where}.{scale[0]} is a layer scale; vn.describe does not support layer scale")
        act = _module(block, activation, where, "MLP activation")
        parts.append((block, attn, _module(block, norm1, where, "norm"), _module(block, norm2, where, "norm"), act))
    param = next(model.parameters())
    x = torch.randn(2, channels, size, size, generator=torch.Generator().manual_seed(0))
    x = x.to(device=param.device, dtype=param.dtype)
    seen: dict[str, Any] = {"attn": {}}

    def keep_attn(i):
        def hook(_m, args, kwargs):
            seen["attn"][i] = (args, kwargs)

        return hook

    handles = [seq[0].register_forward_pre_hook(lambda _m, args: seen.__setitem__("first", args[0]))]
    handles.append(seq[-1].register_forward_hook(lambda _m, _i, o: seen.__setitem__("last", o)))
    handles += [p[1].register_forward_pre_hook(keep_attn(i), with_kwargs=True) for i, p in enumerate(parts)]
    try:
        with evaluation(model), torch.no_grad():
            logits = _logits(model(x))
    except DescriptionError:
        raise
    except Exception as e:
        raise DescriptionError(
            f"the model failed on a {size}x{size} image of {channels} channels ({e}); check image_size and channels"
        ) from e
    finally:
        for h in handles:
            h.remove()
    first = seen.get("first")
    if not isinstance(first, torch.Tensor) or first.ndim != 3:
        raise DescriptionError(f"model.{blocks}.0 did not receive tokens [batch, T, hidden]: is {blocks!r} the blocks?")
    grid = (size // patch) ** 2
    if first.shape[1] != prefix + grid:
        raise DescriptionError(
            f"the blocks see {first.shape[1]} tokens, but {size}px images at patch {patch} make {grid} patches "
            f"+ prefix {prefix}: check patch_size, image_size and prefix (batch-first tokens [batch, T, hidden] needed)"
        )
    hidden = first.shape[-1]
    config = DescribedViTConfig(
        num_prefix_tokens=prefix, readout=readout, image_size=size, patch_size=patch, num_channels=channels,
        hidden_size=hidden, num_hidden_layers=len(seq), num_labels=logits.shape[-1],
    )  # fmt: skip
    if labels is not None:
        if len(labels) != logits.shape[-1]:
            raise DescriptionError(f"{len(labels)} labels for a head with {logits.shape[-1]} outputs")
        config.id2label = {i: str(n) for i, n in enumerate(labels)}
        config.label2id = {str(n): i for i, n in enumerate(labels)}
    config._attn_implementation = "sdpa"
    shims = []
    for i, (_block, attn, *_rest) in enumerate(parts):
        shim = _Attention(attn, config, heads, qkv, out, f"model.{blocks}.{i}.{attention}")
        shim.train(attn.training)
        if shim.num_heads * shim.head_dim != hidden:
            raise DescriptionError(
                f"model.{blocks}.{i}.{attention}'s q/k/v have {shim.num_heads * shim.head_dim} features, the tokens "
                f"{hidden}: check qkv (one fused [q|k|v] linear, or three names) and out"
            )
        _check(attn, shim, seen["attn"].get(i), f"model.{blocks}.{i}.{attention}", model)
        shims.append(shim)
    if len({s.num_heads for s in shims}) != 1:
        raise DescriptionError(
            f"the blocks have {sorted({s.num_heads for s in shims})} heads; vitnotes needs one head count"
        )
    config.num_attention_heads = shims[0].num_heads
    with torch.no_grad(), evaluation(model):
        read = (classifier(norm(_last(seen))[:, 0]) if readout == "cls"
                else classifier(norm(_last(seen)[:, prefix:].mean(1))))  # fmt: skip
    if read.shape != logits.shape or not _close(read, logits):
        how = "final_norm(tokens)[:, 0]" if readout == "cls" else "final_norm(mean of the patch tokens)"
        differs = f"by {_diff(read, logits):.2g}" if read.shape == logits.shape else f"in shape {tuple(read.shape)}"
        raise DescriptionError(
            f"head({how}) differs from the model's logits {differs}: check final_norm, head, readout ('cls' or "
            "'mean') and prefix"
        )
    layers = []
    for (block, _attn, n1, n2, act), shim in zip(parts, shims, strict=True):
        _replace(block, attention, shim)
        layers.append(_Layer(block, shim, n1, n2, act))
    return DescribedViT(model, config, layers, norm, classifier, _Embeddings(model, seq, (norm, classifier), table))


def _last(seen: dict) -> torch.Tensor:
    last = seen["last"]
    return last[0] if isinstance(last, tuple) else last


def _diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.double() - b.double()).abs().max())


def _close(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Equal to the dtype's rounding (1e-5 in float32), relative to the values' size."""
    tol = max(1e-5, 100 * torch.finfo(a.dtype).eps) * (1 + float(b.abs().max()))
    return _diff(a, b) <= tol and math.isfinite(_diff(a, b))


def _check(original: nn.Module, shim: _Attention, inputs: Any, where: str, model: nn.Module) -> None:
    """The shim reproduces ``original`` on the activations the block gave it, else a one-sentence refusal."""
    if inputs is None:
        raise DescriptionError(f"{where} was never called in the model's forward: is it the attention the block uses?")
    args, kwargs = inputs
    with torch.no_grad(), evaluation(model), evaluation(shim):
        want = original(*args, **kwargs)
        try:
            got = shim(*args, **kwargs)
        except ValueError as e:
            raise DescriptionError(f"{where}: {e}") from e
    if isinstance(want, tuple) != isinstance(got, tuple):
        raise DescriptionError(
            f"{where} returns a {type(want).__name__}; vn.describe's replacement a {type(got).__name__}"
        )
    if isinstance(want, tuple):
        want, got = want[0], got[0]
    if want.shape != got.shape or not _close(got, want):
        diff = _diff(got, want) if want.shape == got.shape else float("inf")
        raise DescriptionError(
            f"{where} ({type(original).__name__}) is not softmax(q k^T / sqrt(d)) v over the heads vn.describe reads "
            f"(outputs differ by {diff:.2g}): likely q/k normalisation, rotary positions, a mask or another head "
            "layout, which vitnotes cannot reproduce"
        )


def _replace(block: nn.Module, path: str, shim: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = _resolve(block, parent_path, "block") if parent_path else block
    setattr(parent, name, shim)
