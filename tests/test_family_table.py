"""The family table in the README and in the book's "Running on other models" page is what the code
does today: every registered method run on a tiny random model of each family (``tests/families.py``)."""

from families import PAGES, held, table


def test_the_pages_hold_the_family_table_the_code_makes():
    made = table()
    for page in PAGES:
        assert held(page.read_text()) == made, (
            f"{page.name}: the family table is stale; run python tests/families.py --write"
        )


def test_the_table_names_every_family_and_method():
    import vitnotes as vn

    made = table()
    for family in ("ViT", "DeiT", "DINOv2", "BEiT", "CLIP", "SigLIP", "Swin", "vn.describe", "ResNet", "ConvNeXt",
                   "ViT-MAE", "data2vec-vision"):  # fmt: skip
        assert f"| {family}" in made or f"through `{family}`" in made, family
    assert all(name in made for name in vn.methods())
