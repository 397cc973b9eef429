"""The main job until the book lands: the demo writes its figure, atomically."""

from vitnotes import demo


def test_demo_writes_a_figure(tmp_path):
    out = demo.main(["--out", str(tmp_path / "fig" / "demo.png")])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 20_000
    assert sorted(p.name for p in out.parent.iterdir()) == ["demo.png"]  # no temporary file left
