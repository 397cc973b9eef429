"""Vision-language models (CLIP, SigLIP) as image classifiers over text prompts.

A CLIP or SigLIP model scores an image against a text by the cosine similarity of their embeddings
(times a learnt scale, plus SigLIP's learnt bias). Given a list of prompts, ``PromptClassifier``
turns the model's vision tower into a classifier whose "classes" are the prompts: its logits are
those similarities, ``[batch, prompts]``, the text embeddings computed once. Every map method then
explains a prompt as it explains a class (``target="a photo of a cat"``, or the prompt's index).
With several prompts the explained score is, by default, the log-softmax over them (``score=
"softmax"``): the map says which regions make the image this prompt rather than the others. With
``score="similarity"`` (the default for one prompt) it is the scaled similarity itself.

The vision tower's attention runs through transformers' attention functions, so capture and every
attention method work as on a ViT. CLIP has a CLS token; SigLIP has none: its classifier reads the
patch tokens through an attention-pooling head (one learnt query), and the methods that read a CLS
row read that query's attention instead where they can (``arch.pooling_attention``).
Introduced in the book's page "Running on other models".
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F

from . import arch

__all__ = ["PromptClassifier", "SCORES", "prompt_classifier", "text_embeddings"]

SCORES = ("softmax", "similarity")


class PromptClassifier(torch.nn.Module):
    """A CLIP / SigLIP vision tower with fixed text prompts, read as a classifier (module docstring).

    ``vision``: the vision transformer (blocks, norms, SigLIP's pooling head); ``projection``: the
    image projection into the shared space (CLIP) or None (SigLIP: the pooled output is the
    embedding); ``text``: the prompts' embeddings ``[prompts, dim]``, unit length; ``scale``,
    ``bias``: the similarity's factor and offset (``logit_scale.exp()``, SigLIP's ``logit_bias``).
    ``config`` is a copy of the vision tower's config with the prompts as ``id2label`` (the model's
    own config is left as it was); switching the attention implementation switches both. Without
    prompts (``text=None``: a vision tower alone, or a full model before any prompt is given) the
    outputs are the image embedding's dimensions, read as a regression model's outputs: the attention
    methods need no target, and a class-specific method explains the dimension its ``target`` names."""

    def __init__(
        self,
        vision: torch.nn.Module,
        projection: torch.nn.Module | None,
        text: torch.Tensor | None,
        scale: float = 1.0,
        bias: float = 0.0,
        prompts: Sequence[str] = (),
        score: str = "softmax",
    ):
        super().__init__()
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {score!r}")
        self.vision = vision
        self.projection = projection
        text = None if text is None else F.normalize(text.detach().float(), dim=-1)
        self.register_buffer("text", text, persistent=False)
        self.scale, self.bias = float(scale), float(bias)
        self.prompts = [str(p) for p in prompts]
        self.score = score if len(self.prompts) > 1 else "similarity"
        self.config = copy.deepcopy(vision.config)
        if text is None:
            self.config.problem_type, self.config.id2label, self.config.label2id = "regression", {}, {}
        else:
            self.config.problem_type = "single_label_classification"
            self.config.id2label = dict(enumerate(self.prompts))
            self.config.label2id = {p: i for i, p in enumerate(self.prompts)}

    @property
    def base_model(self) -> torch.nn.Module:
        return self.vision

    def set_attn_implementation(self, name: str) -> None:
        """Switch the vision tower's attention implementation (``"sdpa"``, ``"eager"``, a registered one)."""
        arch.set_attention_implementation(self.config, name)
        arch.set_attention_implementation(self.vision.config, name)

    def similarity(self, embedding: torch.Tensor) -> torch.Tensor:
        """Logits ``[batch, prompts]`` from image embeddings ``[batch, dim]`` (before the projection):
        scaled cosine similarities plus the bias; with ``score="softmax"``, their log-softmax."""
        if self.projection is not None:
            embedding = self.projection(embedding)
        if self.text is None:
            return embedding
        text = self.text.to(embedding.dtype)
        sims = F.normalize(embedding, dim=-1) @ text.T * self.scale + self.bias
        return sims.log_softmax(-1) if self.score == "softmax" else sims

    def forward(
        self,
        pixel_values: torch.Tensor,
        output_hidden_states: bool = False,
        output_attentions: bool = False,
        interpolate_pos_encoding: bool = False,
        **_kwargs: Any,
    ):
        from transformers.modeling_outputs import ImageClassifierOutput

        out = self.vision(
            pixel_values=pixel_values,
            output_hidden_states=output_hidden_states,
            output_attentions=output_attentions,
            interpolate_pos_encoding=interpolate_pos_encoding,
        )
        logits = self.similarity(arch.image_embedding(self, out.last_hidden_state, pooled=out.pooler_output))
        return ImageClassifierOutput(logits=logits, hidden_states=out.hidden_states, attentions=out.attentions)

    def extra_repr(self) -> str:
        return f"prompts={self.prompts}, score={self.score!r}"


def _token_batch(prompts: Any, tokenizer: Any, model: torch.nn.Module) -> tuple[list[str], dict[str, torch.Tensor]]:
    """(prompt names, text-tower inputs) from prompt strings (tokenised with ``tokenizer``) or from a
    mapping ``{prompt: token ids}``, padded as the model's text tower was trained (``arch.text_padding``:
    CLIP, to the longest prompt with an attention mask; SigLIP, to its full length with its pad token)."""
    if isinstance(prompts, str):
        prompts = [prompts]
    length, pad = arch.text_padding(model)
    if isinstance(prompts, Mapping):
        names = [str(k) for k in prompts]
        ids = [torch.as_tensor(v, dtype=torch.long).reshape(-1) for v in prompts.values()]
        if not names or any(i.numel() == 0 for i in ids):
            raise ValueError("prompts={name: token ids} needs at least one prompt, each with at least one token id")
        width = length or max(i.numel() for i in ids)
        if any(i.numel() > width for i in ids):
            raise ValueError(f"a prompt has more token ids than the text tower reads ({width})")
        mask = torch.stack([(torch.arange(width) < i.numel()).long() for i in ids])
        padded = torch.stack([torch.cat([i, (i[-1:] if pad is None else i.new_tensor([pad])).expand(width - i.numel())])
                              for i in ids])  # fmt: skip
        return names, {"input_ids": padded} if length else {"input_ids": padded, "attention_mask": mask}
    if not isinstance(prompts, Sequence) or not prompts or not all(isinstance(p, str) and p for p in prompts):
        raise ValueError(
            f"prompts must be a non-empty list of texts (e.g. ['a photo of a cat', 'a photo of a dog']) or a "
            f"mapping {{text: token ids}}, got {prompts!r}"
        )
    if tokenizer is None:
        raise ValueError(
            "these prompts are texts but the model has no tokenizer saved beside it: save one there "
            "(AutoTokenizer.from_pretrained(hub_id).save_pretrained(folder)), pass tokenizer=, or pass "
            "prompts={text: token ids}"
        )
    options = {"padding": "max_length", "max_length": length, "truncation": True} if length else {"padding": True}
    batch = tokenizer(list(prompts), return_tensors="pt", **options)
    keep = ("input_ids",) if length else ("input_ids", "attention_mask")
    return list(prompts), {k: v for k, v in batch.items() if k in keep}


@torch.no_grad()
def text_embeddings(model: torch.nn.Module, prompts: Any, tokenizer: Any = None) -> tuple[list[str], torch.Tensor]:
    """(prompt names, their text embeddings ``[prompts, dim]``) from a full CLIP or SigLIP model."""
    names, inputs = _token_batch(prompts, tokenizer, model)
    param = next(model.parameters())
    inputs = {k: v.to(param.device) for k, v in inputs.items()}
    return names, arch.text_features(model, inputs).float()


def prompt_classifier(
    model: torch.nn.Module, prompts: Any = None, *, tokenizer: Any = None, score: str | None = None
) -> PromptClassifier:
    """A ``PromptClassifier`` from a full ``CLIPModel`` or ``SiglipModel`` and its prompts (texts, with
    the model's tokenizer, or ``{text: token ids}``; None: no prompts, the outputs are the image
    embedding's dimensions, as for a vision tower alone). ``score``: ``"softmax"`` (several prompts: the
    log-softmax over them, the default) or ``"similarity"`` (the scaled similarity; one prompt)."""
    parts = arch.image_text_parts(model)
    if prompts is None:
        out = PromptClassifier(parts["vision"], parts["projection"], None)
        out.__dict__["source"] = model
        return out
    if not parts["has_text"]:
        raise ValueError(
            f"{type(model).__name__} is a vision tower alone: it has no text tower to embed prompts with. Load the "
            "full model (CLIPModel / SiglipModel) to explain a prompt; the vision tower alone gives the attention "
            "maps (rollout, last layer, ...) and explains the image embedding's dimensions"
        )
    names, text = text_embeddings(model, prompts, tokenizer)
    score = score or ("softmax" if len(names) > 1 else "similarity")
    out = PromptClassifier(parts["vision"], parts["projection"], text, parts["scale"], parts["bias"], names, score)
    out.__dict__["source"] = model  # the full model, not a submodule: vn.prompts gives it other prompts
    return out
