"""The zoo page's tables from cards: one row per stage with its own minutes and machine, and how a
layer's attention moved between two points of a training log (checked against hand arithmetic)."""

import pytest

from vitnotes.show.training import log_change, recipe_table, short_machine

CPU = "CPU only: Intel(R) Xeon(R) Processor, 2 cores, 1 threads, torch 2.13.0+cpu"
GPU = "NVIDIA H200 GPU, torch 2.11.0+cu130"


def _layers(entropy):
    n = len(entropy)
    return {"entropy_norm": entropy, "top10": [0.5] * n, "distance_px": [3.0] * n,
            "rollout_entropy_norm": [0.9] * n, "norm_max": [10.0] * n}  # fmt: skip


def _card():
    stage = dict(lr=1e-3)
    return {
        "name": "m",
        "machine": GPU,
        "recipe": {"stages": [dict(stage, epochs=2), dict(stage, epochs=3)], "stages_done_before": 1,
                   "earlier_machine": CPU},
        "training_log": [
            {"epoch": 0, "seconds": 0, "test_accuracy": 0.1, "layers": _layers([1.0, 0.9])},
            {"epoch": 2, "seconds": 600, "test_accuracy": 0.8, "layers": _layers([0.8, 0.6])},
            {"epoch": 5, "seconds": 660, "test_accuracy": 0.9, "layers": _layers([0.7, 0.65])},
        ],
    }  # fmt: skip


def test_recipe_table_gives_each_stage_its_minutes_and_machine():
    t = recipe_table({"m": _card()})
    assert list(t["epochs"]) == [2, 5]
    assert list(t["test score"]) == ["80.00 %", "90.00 %"]
    assert list(t["stage minutes"]) == [10.0, 1.0] and list(t["minutes so far"]) == [10.0, 11.0]
    assert list(t["ran on"]) == ["CPU, 2 cores, 1 threads", "NVIDIA H200 GPU"]


def test_short_machine():
    assert short_machine(GPU) == "NVIDIA H200 GPU"
    assert short_machine(CPU) == "CPU, 2 cores, 1 threads"


def test_log_change_is_end_minus_start_per_layer():
    t = log_change(_card(), 2)
    assert list(t[("entropy_norm", "start")]) == [0.8, 0.6]
    assert list(t[("entropy_norm", "end")]) == [0.7, 0.65]
    assert t[("entropy_norm", "change")].tolist() == pytest.approx([-0.1, 0.05])
    assert t[("top10", "change")].tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match=r"no attention at epoch\(s\) \[3\]; it has \[0, 2, 5\]"):
        log_change(_card(), 3)


def test_card_epochs_sums_the_stages():
    import vitnotes as vn

    assert vn.train.card_epochs(_card()) == 5.0
    assert vn.train.card_epochs({"recipe": {"epochs": 3}}) == 3.0


def test_training_plot_axes_start_at_zero_and_mark_chance():
    from vitnotes.show.training import training_plot

    card = dict(_card(), patches=4, patch_size=4, probe_images=8)
    fig = training_plot(card)
    panels = fig.axes[:6]  # five statistics and the score; then the layer colour bar
    assert all(ax.get_ylim()[0] == 0 for ax in panels)
    score = panels[-1]
    assert score.get_ylim() == (0, 100) and any(tuple(line.get_ydata()) == (10, 10) for line in score.lines)
    with pytest.raises(ValueError, match="no attention"):
        training_plot({"name": "m", "training_log": [{"epoch": 0, "test_accuracy": 0.1}]})
