"""Which explanation can you trust? Every registered method's maps with what they cost, the
model-randomisation check for any method, verdicts against the controls, and where two metrics
disagree.

Conventions (stated once, used everywhere here):

- **Verdicts.** Every value is a mean over images with its percentile-bootstrap interval
  (``vn.bootstrap``; every method resampled identically). Where the table carries per-image values
  (``evaluation_table(..., per_image=True)``), two methods are compared image by image by
  ``vn.paired_verdicts`` (``vitnotes.evaluate.paired``: paired difference, sign-flip test, Holm's
  correction across the table) and ``scorecard``, ``leaders`` and ``metric_disagreements`` take
  that table as ``paired=``. ``verdicts`` is the older, cruder reading of a table of intervals
  alone (no per-image values): method A is *better* than B only when the two intervals do not
  overlap and A's lies on the metric's better side (``BETTER``: lower deletion AUC, higher insertion
  AUC and SRG, more mass on the chirp, less on a distractor, ...), *worse* on the other side,
  *tied* otherwise; it neither pairs the images nor corrects for the number of comparisons.
- **Sanity (model randomisation, Adebayo et al. 2018).** A method's map of each image on the trained
  model against its map on a randomised copy (``vn.interventions.randomized``; by default every block, the
  classifier and the embeddings redrawn): the absolute Spearman over the map's cells and the SSIM
  of the two maps scaled to [0, 1], each a mean over images with its interval, judged by
  ``vn.sanity_verdict`` (``vitnotes.evaluate.sanity``: *passes* when both intervals lie below 0.2,
  *fails* when either lies above it, *cannot tell* otherwise). A map no registered method made (a
  control such as brightness) does not depend on the model: its randomised map is itself.

Introduced in notebook 09 (which explanation can you trust?).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..core import arch
from ..core.capture import capture
from ..core.hooks import hooks
from ..core.model import unwrap
from ..interventions.randomisation import randomized
from ..methods.base import explain, methods, registered
from ..stats import as_maps, rank_correlation
from .intervals import bootstrap
from .sanity import _fixed_targets, map_ssim, sanity_verdict
from .summary import COLUMNS

__all__ = [
    "BETTER", "CONTROLS", "SANITY_METRICS", "column_label", "every_map", "interval_table", "leaders", "method_table",
    "metric_disagreements",
    "randomisation_check", "scorecard", "verdicts",
]  # fmt: skip

# +1: higher is better, -1: lower is better (the metrics of evaluation_table; the sanity metrics have their own rule).
# deletion_lif_auc is left out: it equals insertion_auc by construction (vitnotes.evaluate.perturbation).
BETTER = {
    "deletion_auc": -1, "insertion_auc": 1, "srg": 1,
    "mass_chirp": 1, "ratio": 1, "pointing": 1, "mass_text": -1, "mass_colorbar": -1, "mass_axes": -1,
}  # fmt: skip
SANITY_METRICS = ("randomisation_abs_spearman", "randomisation_ssim", "randomisation_spearman")
CONTROLS = ("random", "brightness", "uniform")
_WORDS = {1: "better", -1: "worse", 0: "tied"}


def column_label(metric: str, baseline: str = "") -> str:
    """``"metric [baseline]"``, or the metric alone when it has no baseline (``vn.evaluate.wide``'s column names)."""
    return f"{metric} [{baseline}]" if baseline else metric


def method_table(kind: str | None = None) -> pd.DataFrame:
    """The registered map methods (for models of ``kind``, or all), one row each: the model kinds it
    explains, whether the target class changes its map, and the first line of its docstring."""
    rows = []
    for name in methods(kind):
        m = registered(name)
        rows.append(
            {
                "method": name,
                "models": "/".join(m.kinds).upper(),
                "class-specific": m.class_specific,
                "what it computes": m.summary,
            }
        )
    return pd.DataFrame(rows).set_index("method")


def _fixed(x: float, digits: int) -> str:
    """``x`` at ``digits`` decimals, without the sign of a value that rounds to zero ("-0.000")."""
    text = f"{x:.{digits}f}"
    return text.lstrip("-") if float(text) == 0 else text


def interval_table(
    table: pd.DataFrame,
    columns: Sequence[tuple[str, str]] | None = None,
    *,
    digits: int = 3,
    index: Sequence[str] = ("method",),
) -> pd.DataFrame:
    """``table`` (``evaluation_table``'s columns, and any of ``index``) as one row per ``index`` and one
    column per ``(metric, baseline)`` (``columns``: those, in that order; None: all, in the table's
    order), each cell ``"value [low, high]"`` rounded to ``digits`` decimals; "" where undefined."""
    t = table.assign(column=[column_label(m, b) for m, b in zip(table["metric"], table["baseline"])])
    cell = lambda r: (
        ""
        if pd.isna(r["value"])
        else f"{_fixed(r['value'], digits)} [{_fixed(r['low'], digits)}, {_fixed(r['high'], digits)}]"
    )  # noqa: E731
    t = t.assign(cell=[cell(r) for _, r in t.iterrows()])
    order = list(dict.fromkeys(t["column"])) if columns is None else [column_label(*c) for c in columns]
    missing = sorted(set(order) - set(t["column"]))
    if missing:
        raise ValueError(f"columns {missing} are not in the table; it has {sorted(set(t['column']))}")
    keys = list(index)
    rows = list(dict.fromkeys(map(tuple, t[keys].to_numpy())))
    out = t.pivot_table(index=keys, columns="column", values="cell", aggfunc="first")
    out = out.reindex(columns=order)
    out = out.reindex(pd.MultiIndex.from_tuples(rows, names=keys) if len(keys) > 1 else pd.Index([r[0] for r in rows]))
    out.index.names, out.columns.name = keys, None
    return out.fillna("")


# --------------------------------------------------------------------------- maps and their cost
def every_map(
    model: Any,
    pixel_values: torch.Tensor,
    target: Any = None,
    *,
    names: Sequence[str] | None = None,
    options: Mapping[str, dict] | None = None,
    flow_tokens: int = 64,
) -> tuple[dict[str, torch.Tensor], pd.DataFrame]:
    """The maps of every registered method that explains ``model`` (``vn.methods(kind)``), or of
    ``names``: ``{name: [batch, rows, cols]}``, and their cost, one row per method: ``forwards``
    (images through the model's first module per image explained: a count, the same on every
    machine; a backward pass costs about two more), ``seconds`` and ``images_per_s`` (wall clock:
    they depend on the machine and on what else runs there).

    ``target`` goes to every method (None = the predicted class; a regression model needs an
    output index for its class-specific methods); ``options``: ``{name: {option: value}}``.
    Attention flow reads a ``vn.capture`` of the model; by default it is left out of models with
    more than ``flow_tokens`` tokens (a max-flow per token: 50 tokens take ~0.1 s per image, 197
    far longer), and ``cost.attrs["skipped"]`` says so. Introduced in notebook 09.
    """
    net, geom = unwrap(model)
    options = dict(options or {})
    unknown = sorted(set(options) - set(methods()))
    if unknown:
        raise ValueError(f"options for unknown methods {unknown}; choose from {methods()}")
    chosen = list(methods(geom.kind) if names is None else names)
    skipped = [] if names is not None or geom.kind != "vit" or geom.tokens <= flow_tokens else ["attention flow"]
    maps, rows, seen = {}, [], [0]
    # every forward pass runs the first block (a ViT's, or the first stage of a CNN / Swin): count its images
    first = arch.blocks(net)[0] if geom.kind == "vit" else (arch.cnn_stages(net) or arch.swin_stages(net))[0]
    count = lambda _module, _args, out: seen.__setitem__(  # noqa: E731
        0, seen[0] + int((out[0] if isinstance(out, tuple) else out).shape[0])
    )
    for name in (n for n in chosen if n not in skipped):
        m, opts = registered(name), options.get(name, {})
        seen[0], t0 = 0, time.perf_counter()
        with hooks([(first, "forward", count)]):
            if m.takes_model:
                maps[name] = explain(model, pixel_values, name, target, **opts)
            else:
                maps[name] = explain(capture(model, pixel_values), None, name, target, **opts)
        seconds, n = time.perf_counter() - t0, len(pixel_values)
        rows.append(
            {"method": name, "forwards": seen[0] / n, "seconds": seconds, "images_per_s": n / max(seconds, 1e-9)}
        )
    cost = pd.DataFrame(rows, columns=["method", "forwards", "seconds", "images_per_s"])
    cost.attrs.update(skipped=skipped, images=len(pixel_values))
    return maps, cost


# --------------------------------------------------------------------------- sanity
def randomisation_check(
    model: Any,
    pixel_values: torch.Tensor,
    maps: Mapping[str, Any],
    target: Any = None,
    *,
    options: Mapping[str, dict] | None = None,
    from_layer: int = 0,
    embeddings: bool = True,
    seed: int = 0,
    n_boot: int = 1000,
    level: float = 0.95,
) -> tuple[pd.DataFrame, dict[str, torch.Tensor]]:
    """Model-randomisation check for every map in ``maps`` (module docstring): a tidy table in
    ``evaluation_table``'s columns plus ``values`` (per image), family ``"sanity"``, metrics
    ``randomisation_abs_spearman`` and ``randomisation_ssim`` (what ``vn.sanity_verdict`` judges) and
    ``randomisation_spearman`` (signed: below 0 when the ranking survives inverted) per method, and
    the randomised model's maps.

    ``maps``: ``{name: [batch, rows, cols]}`` of ``pixel_values`` on the trained model, as
    ``every_map`` returns them (with the same ``options``). The randomised model explains the
    trained model's targets (``target``, or the trained model's predictions). ``from_layer``,
    ``embeddings`` and ``seed`` go to ``vn.interventions.randomized``; ``n_boot``, ``level`` to ``vn.bootstrap``
    (resampling seed 0). Introduced in notebook 09.
    """
    net, geom = unwrap(model)
    geom.require_vit("the randomisation check")
    if len(pixel_values) < 2:
        raise ValueError("the randomisation check compares maps of different images: pass at least 2 images")
    fixed = _fixed_targets(net, pixel_values, target, 64).tolist()
    rand = randomized(model, from_layer, seed, embeddings=embeddings)
    own = [n for n in maps if n in methods()]
    rmaps, _ = every_map(rand, pixel_values, fixed, names=own, options=options)
    boot = {"n_boot": n_boot, "level": level, "seed": 0}
    rows = []
    for name, m in maps.items():
        trained = as_maps(m, name)
        again = as_maps(rmaps.get(name, trained), name)
        rho = rank_correlation(trained, again).double().numpy()
        for metric, values in zip(SANITY_METRICS, (np.abs(rho), map_ssim(trained, again).numpy(), rho)):
            iv = bootstrap(values, **boot)
            row = (name, "sanity", metric, "", iv.value, iv.low, iv.high, iv.n, tuple(map(float, values)))
            rows.append(dict(zip([*COLUMNS, "values"], row)))
    df = pd.DataFrame(rows, columns=[*COLUMNS, "values"])
    df.attrs.update(images=len(pixel_values), from_layer=from_layer, embeddings=embeddings, seed=seed)
    return df, rmaps


# --------------------------------------------------------------------------- verdicts
def _side(low: Any, high: Any, ref_low: Any, ref_high: Any) -> np.ndarray:
    """+1 where the interval lies wholly above the reference's, -1 wholly below, 0 where they overlap
    (or either is undefined)."""
    low, high, ref_low, ref_high = (np.asarray(v, dtype=np.float64) for v in (low, high, ref_low, ref_high))
    return np.where(low > ref_high, 1, np.where(high < ref_low, -1, 0))


def verdicts(table: pd.DataFrame, against: Sequence[str] = CONTROLS) -> pd.DataFrame:
    """One row per (method, metric, baseline) of ``table`` whose metric has a direction (``BETTER``),
    with a column ``"vs <control>"`` for each of ``against`` in the table: ``"better"``, ``"worse"``
    or ``"tied"`` (module docstring), ``""`` on the control's own rows and where the control has no
    such row. Introduced in notebook 09."""
    t = table[table["metric"].isin(list(BETTER))].reset_index(drop=True)
    direction = t["metric"].map(BETTER).to_numpy()
    for c in against:
        ref = t[t["method"] == c].set_index(["metric", "baseline"])[["low", "high"]]
        if ref.empty:
            continue
        j = t.join(ref, on=["metric", "baseline"], rsuffix="_ref")
        side = _side(j["low"], j["high"], j["low_ref"], j["high_ref"]) * direction
        words = pd.Series([_WORDS[int(s)] for s in side], index=t.index)
        words[j["low_ref"].isna() | (t["method"] == c)] = ""
        t[f"vs {c}"] = words
    return t


def _sanity_word(table: pd.DataFrame, method: str) -> str:
    """``vn.sanity_verdict`` on the method's sanity rows ("" without them)."""
    s = table[(table["method"] == method) & (table["family"] == "sanity")].set_index("metric")
    if not {"randomisation_abs_spearman", "randomisation_ssim"} <= set(s.index):
        return ""
    a, b = s.loc["randomisation_abs_spearman"], s.loc["randomisation_ssim"]
    return sanity_verdict((a["low"], a["high"]), (b["low"], b["high"]))


def _paired_words(paired: pd.DataFrame, against: str) -> pd.DataFrame:
    """``paired_verdicts``' rows of every method against ``against`` as ``verdicts``' columns:
    method, family, metric, baseline and ``"vs <against>"`` (the control's own row: "")."""
    p = paired[paired["other"] == against][["method", "family", "metric", "baseline", "verdict"]]
    return p.rename(columns={"verdict": f"vs {against}"})


def scorecard(
    table: pd.DataFrame,
    cost: pd.DataFrame | None = None,
    *,
    against: Sequence[str] = ("random", "brightness"),
    paired: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per method: for each control in ``against``, on how many faithfulness columns (metric
    x baseline) the method is better / worse than it (``"better than random"``, ...), out of
    ``"faithfulness columns"``; ``"sanity"`` (``vn.sanity_verdict``: passes / cannot tell / fails);
    with ground-truth rows and a ``"uniform"`` map in the table, whether its mass on the chirp, its
    pointing game and its mass on each distractor are better / worse than the uniform map's; and
    ``images/s`` from ``cost``. With ``paired`` (``vn.paired_verdicts`` of the same table, with each
    control in ``against`` and ``"uniform"``), better and worse are its verdicts; without, the
    interval reading of ``verdicts`` (module docstring). Introduced in notebook 03."""
    if paired is None:
        v = verdicts(table, against=(*against, "uniform"))
    else:
        keys = ["method", "family", "metric", "baseline"]
        v = table[table["metric"].isin(list(BETTER))][keys].drop_duplicates()
        for c in (*against, "uniform"):
            if (paired["other"] == c).any():
                v = v.merge(_paired_words(paired, c), on=keys, how="left").fillna({f"vs {c}": ""})
    faith = v[v["family"] == "faithfulness"]
    out = pd.DataFrame(index=pd.Index(list(dict.fromkeys(table["method"])), name="method"))
    for c in against:
        if f"vs {c}" in faith:
            for word in ("better", "worse"):
                out[f"{word} than {c}"] = faith.groupby("method")[f"vs {c}"].apply(
                    lambda s, w=word: int((s == w).sum())
                )
    out["faithfulness columns"] = faith.groupby("method").size()
    out["sanity"] = [_sanity_word(table, m) for m in out.index]
    if "vs uniform" in v:
        gt = v[v["family"] == "ground truth"].set_index(["method", "metric"])["vs uniform"]
        for metric in ("mass_chirp", "pointing", "mass_text", "mass_colorbar", "mass_axes"):
            out[f"{metric} vs uniform"] = [gt.get((m, metric), "") for m in out.index]
    if cost is not None:
        out["images/s"] = cost.set_index("method")["images_per_s"]
    return out.dropna(axis=1, how="all")


# --------------------------------------------------------------------------- disagreements
def _oriented(table: pd.DataFrame, family: str, exclude: Sequence[str]) -> pd.DataFrame:
    """Method x "metric [baseline]" of the values times their direction (higher = better)."""
    t = table[(table["family"] == family) & table["metric"].isin(list(BETTER)) & ~table["method"].isin(exclude)]
    t = t.assign(column=[column_label(m, b) for m, b in zip(t["metric"], t["baseline"])])
    t = t.assign(score=t["value"] * t["metric"].map(BETTER))
    order = list(dict.fromkeys(t["column"]))
    return t.pivot(index="method", columns="column", values="score")[order].reindex(list(dict.fromkeys(t["method"])))


def _paired_sides(paired: pd.DataFrame) -> dict[tuple, int]:
    """``{(family, column, A, B): +1 / -1}`` for every paired verdict that is not "cannot tell", both ways."""
    out = {}
    for r in paired.itertuples(index=False):
        side = {"better": 1, "worse": -1}.get(r.verdict, 0)
        if side:
            column = column_label(r.metric, r.baseline)
            out[(r.family, column, r.method, r.other)] = side
            out[(r.family, column, r.other, r.method)] = -side
    return out


def metric_disagreements(
    table: pd.DataFrame,
    *,
    family: str = "faithfulness",
    exclude: Sequence[str] = CONTROLS,
    paired: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Where two metrics disagree about the methods (``exclude``: the controls, left out).

    Returns (1) the Spearman correlation over methods between every two "metric [baseline]" columns
    of ``family``, each oriented so that higher is better (1: the two metrics rank the methods
    alike; below 0: they rank them in opposite orders), and (2) one row per contradiction: two
    columns and two methods that the first column puts in one order and the second in the other,
    each with non-overlapping intervals (``verdicts``' sense of better), or with ``paired``
    (``vn.paired_verdicts(..., pairs="all")`` of the same table) each a paired verdict: ``first``,
    ``second``, ``better by first``, ``better by second``. Introduced in notebook 09.
    """
    scores = _oriented(table, family, exclude)
    agree = scores.rank().corr(method="pearson")  # Spearman = Pearson on ranks
    t = table[(table["family"] == family) & table["metric"].isin(list(BETTER)) & ~table["method"].isin(exclude)]
    t = t.assign(column=[column_label(m, b) for m, b in zip(t["metric"], t["baseline"])])
    cols, rows = list(scores.columns), []
    by = {c: g.set_index("method") for c, g in t.groupby("column", sort=False)}
    sides = None if paired is None else _paired_sides(paired)
    for i, c1 in enumerate(cols):
        for c2 in cols[i + 1 :]:
            rows += _contradictions(by[c1], by[c2], c1, c2, sides, family)
    return agree, pd.DataFrame(rows, columns=["first", "second", "better by first", "better by second"])


def leaders(
    table: pd.DataFrame,
    *,
    family: str | None = None,
    exclude: Sequence[str] = (),
    paired: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The best method on every "metric [baseline]" column (of ``family``, or all) with a direction
    (``BETTER``), ``exclude``d methods left out: one row per column with ``best``, ``value``,
    ``runner-up`` and ``clear``: True when the best's interval does not overlap the runner-up's, or,
    with ``paired`` (``vn.paired_verdicts`` of the same table holding that pair), when the paired
    verdict calls the best better than the runner-up. Introduced in notebook 09."""
    sides = None if paired is None else _paired_sides(paired)
    t = table[table["metric"].isin(list(BETTER)) & ~table["method"].isin(exclude)]
    if family is not None:
        t = t[t["family"] == family]
    rows = []
    for (metric, baseline), g in t.dropna(subset=["value"]).groupby(["metric", "baseline"], sort=False):
        g = g.sort_values("value", ascending=BETTER[metric] < 0)
        best, second = g.iloc[0], g.iloc[1] if len(g) > 1 else None
        if sides is not None:
            runner = None if second is None else second["method"]
            clear = sides.get((best["family"], column_label(metric, baseline), best["method"], runner), 0) == 1
        else:
            clear = second is not None and bool(_side(best["low"], best["high"], second["low"], second["high"]) != 0)
        rows.append(
            {
                "column": column_label(metric, baseline),
                "best": best["method"],
                "value": best["value"],
                "runner-up": None if second is None else second["method"],
                "clear": clear,
            }
        )
    return pd.DataFrame(rows, columns=["column", "best", "value", "runner-up", "clear"]).set_index("column")


def _contradictions(
    a: pd.DataFrame, b: pd.DataFrame, ca: str, cb: str, sides: dict | None = None, family: str = ""
) -> list[dict]:
    """Method pairs that column ``a`` orders one way and ``b`` the other, both with separated intervals
    (or, with ``sides``, both with a paired verdict)."""
    out, names = [], [m for m in a.index if m in b.index]
    for i, m1 in enumerate(names):
        for m2 in names[i + 1 :]:
            if sides is not None:
                sa, sb = sides.get((family, ca, m1, m2), 0), sides.get((family, cb, m1, m2), 0)
            else:
                sa = int(_side(a.at[m1, "low"], a.at[m1, "high"], a.at[m2, "low"], a.at[m2, "high"]))
                sb = int(_side(b.at[m1, "low"], b.at[m1, "high"], b.at[m2, "low"], b.at[m2, "high"]))
                sa, sb = sa * BETTER[a.at[m1, "metric"]], sb * BETTER[b.at[m1, "metric"]]
            if sa and sb and sa != sb:
                out.append(
                    {
                        "first": ca,
                        "second": cb,
                        "better by first": m1 if sa > 0 else m2,
                        "better by second": m1 if sb > 0 else m2,
                    }
                )
    return out
