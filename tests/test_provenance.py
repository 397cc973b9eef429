"""``vn.provenance``: the one line a chapter prints under its model cell is what the card says."""

import vitnotes as vn


def test_every_zoo_model_says_how_it_was_trained():
    for name in vn.zoo_names():
        info = vn.card(name)
        line = vn.provenance(name)
        stages = info["recipe"].get("stages") or [info["recipe"]]
        teachers = {s["teacher"] for s in stages if s.get("teacher")}
        assert line.startswith(f"{name}: ")
        assert ("distilled from" in line) == bool(teachers), name
        assert all(f"distilled from {t}" in line for t in teachers), name
        init = info["recipe"].get("init")
        assert f"started from {init}" in line if init else "trained from scratch" in line
        assert f"{vn.train.card_epochs(info):g} epochs in all" in line


def test_the_distilled_vits_say_so_and_a_hub_model_has_no_card():
    assert "distilled from fmnist-resnet" in vn.provenance("fmnist-vit-p4")
    assert "started from fmnist-vit-p4" in vn.provenance(vn.load("fmnist-vit-p2"))
    assert "not a zoo model" in vn.provenance("google/vit-base-patch16-224")
