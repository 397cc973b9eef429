"""A checkpoint that does not hold exactly the model's weights is refused, with the tensors named
(transformers fills a gap with random numbers and says so only in a log line that ``vn.setup()`` used to
silence); ``new_head=True`` accepts a new classifier head on purpose, with a warning."""

import warnings

import pytest
import torch
from conftest import make_vit
from safetensors.torch import load_file, save_file

import vitnotes as vn
from vitnotes import cli


def _edit(folder, change):
    f = folder / "model.safetensors"
    tensors = load_file(f)
    change(tensors)
    save_file(tensors, f, metadata={"format": "pt"})
    return folder


def test_a_complete_checkpoint_loads_without_a_word(vit_folder):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = vn.load(vit_folder)
    torch.testing.assert_close(
        model.net.state_dict()["classifier.weight"], load_file(vit_folder / "model.safetensors")["classifier.weight"]
    )


def test_a_missing_tensor_is_named(vit_folder):
    _edit(vit_folder, lambda t: t.pop("vit.encoder.layer.1.attention.attention.key.bias"))
    with pytest.raises(ValueError, match=r"missing vit\.layers\.1\.attention\.k_proj\.bias.*new_head=True"):
        vn.load(vit_folder)


def test_an_unexpected_tensor_is_named(vit_folder):
    _edit(vit_folder, lambda t: t.update({"vit.extra.weight": torch.zeros(3)}))
    with pytest.raises(ValueError, match=r"unexpected vit\.extra\.weight"):
        vn.load(vit_folder)


def test_keys_that_match_nothing_are_refused(vit_folder):
    def rename(t):
        for k in list(t):
            t["other." + k] = t.pop(k)

    _edit(vit_folder, rename)
    with pytest.raises(ValueError, match=r"missing .* and \d+ more; unexpected other\."):
        vn.load(vit_folder)


def test_a_missing_head_is_refused_unless_asked_for(vit_folder):
    _edit(vit_folder, lambda t: (t.pop("classifier.weight"), t.pop("classifier.bias")))
    with pytest.raises(ValueError, match=r"missing classifier\.bias, classifier\.weight"):
        vn.load(vit_folder)
    with pytest.warns(UserWarning, match=r"new classifier head, as asked \(new_head=True\): classifier\.bias"):
        model = vn.load(vit_folder, new_head=True)
    assert model.net.classifier.weight.shape == (5, 24)


def test_new_head_does_not_excuse_the_backbone(vit_folder):
    _edit(vit_folder, lambda t: (t.pop("classifier.weight"), t.pop("vit.encoder.layer.0.intermediate.dense.weight")))
    with pytest.raises(ValueError, match=r"missing vit\.layers\.0\.mlp\.fc1\.weight") as err:
        vn.load(vit_folder, new_head=True)
    assert "classifier.weight" not in str(err.value)


def test_a_resized_head_needs_new_head(tmp_path):
    net = make_vit()
    folder = vn.train.save(net, tmp_path / "m")
    _edit(folder, lambda t: t.update({"classifier.weight": torch.zeros(7, 24), "classifier.bias": torch.zeros(7)}))
    with pytest.raises(ValueError, match=r"of another shape classifier\.bias, classifier\.weight"):
        vn.load(folder)


def test_the_cli_refuses_it_in_one_line(vit_folder, tmp_path, capsys):
    _edit(vit_folder, lambda t: t.pop("vit.encoder.layer.1.attention.attention.key.bias"))
    img = tmp_path / "x.png"
    from PIL import Image

    Image.new("RGB", (16, 16)).save(img)
    assert cli.main(["explain", str(img), "--model", str(vit_folder), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "k_proj.bias" in err[0]
    assert not (tmp_path / "out").exists()


def test_save_refuses_a_users_file_and_leaves_it_alone(tmp_path, vit):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    with pytest.raises(FileExistsError, match="is a file that is not a model"):
        vn.train.save(vit, notes)
    assert notes.read_text() == "my notes" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_save_refuses_a_folder_of_other_things(tmp_path, vit):
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "draft.md").write_text("x")
    with pytest.raises(FileExistsError, match=r"holds something other than a saved model \(draft\.md\)"):
        vn.train.save(vit, tmp_path / "work")
    assert [p.name for p in (tmp_path / "work").iterdir()] == ["draft.md"]


def test_save_below_a_file_says_so(tmp_path, vit):
    (tmp_path / "f").write_text("x")
    with pytest.raises(FileExistsError, match=r"is a file, not a folder"):
        vn.train.save(vit, tmp_path / "f" / "model")


def test_save_replaces_a_saved_model_and_an_empty_folder(tmp_path, vit):
    (tmp_path / "empty").mkdir()
    vn.train.save(vit, tmp_path / "empty")
    folder = vn.train.save(make_vit(seed=5), tmp_path / "empty")  # a model folder: replaced
    torch.testing.assert_close(vn.load(folder).net.classifier.weight, make_vit(seed=5).classifier.weight)


def test_the_training_cli_refuses_before_any_work(tmp_path, capsys):
    from vitnotes.train.__main__ import main

    notes = tmp_path / "notes.txt"
    notes.write_text("my notes")
    assert main(["fmnist-vit-p4", "--out", str(notes), "--limit", "8"]) == 2
    assert "is a file that is not a model" in capsys.readouterr().err
    assert notes.read_text() == "my notes" and sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_setup_keeps_transformers_warnings_about_the_model():
    """``vn.setup()`` silences progress bars, not transformers' warnings (such as one model type read as
    another, or weights it initialised): they concern the user's model."""
    import logging

    import transformers

    vn.setup(threads=1, style=False)
    for name in ("transformers.configuration_utils", "transformers.modeling_utils"):
        log = transformers.utils.logging.get_logger(name)
        assert log.isEnabledFor(logging.WARNING) and not log.isEnabledFor(logging.INFO), name
