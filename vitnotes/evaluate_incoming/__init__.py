"""Evaluating explanation maps (issue 14): faithfulness done properly and ground truth.

Incoming package: it moves under ``vitnotes/evaluate/`` when the redesign lands.

- ``perturbation``: deletion (most / least relevant first) and insertion curves with black, mean
  grey and blurred baselines, deletion inside a mask, AUC (trapezoid over the fraction 0..1, the
  unperturbed point included), the Symmetric Relevance Gain, random and brightness controls;
- ``ground_truth``: mass on the chirp vs its area, the pointing game and its chance rate, mass on
  each distractor (spectrograms);
- ``intervals``: percentile-bootstrap 95 % intervals over images;
- ``summary``: ``evaluation_table`` (method x metric, tidy, with intervals) and ``wide``.

Introduced in notebook 09 (which explanation can you trust?).
"""
from .ground_truth import DISTRACTORS, ground_truth, region_stack
from .intervals import Interval, bootstrap
from .perturbation import (
    SCORES,
    Curves,
    baseline_images,
    brightness_maps,
    control_maps,
    object_masks,
    perturbation_curves,
    srg,
)
from .summary import evaluation_table, wide

__all__ = [
    "DISTRACTORS",
    "SCORES",
    "Curves",
    "Interval",
    "baseline_images",
    "bootstrap",
    "brightness_maps",
    "control_maps",
    "evaluation_table",
    "ground_truth",
    "object_masks",
    "perturbation_curves",
    "region_stack",
    "srg",
    "wide",
]  # fmt: skip
