"""Run by tests/test_processes.py, in one process (plain python) or under ``accelerate launch``:
the sweep, the attention profile, the CLS summary and the deletion study of ``fmnist-vit-p4`` on
Fashion-MNIST test images given as a ``datasets.Dataset``. Each process pickles what it got (every
process gets the gathered tables) to ``OUT.<rank>.pkl``.

usage: python tests/run_processes.py OUT [IMAGES]
"""

import pickle
import sys
import time

import datasets

import vitnotes as vn
from vitnotes.core.batches import processes


def main(out: str, n: int) -> None:
    vn.setup(seed=0, threads=1, style=False)
    rank, world = processes()
    vit, resnet = vn.load("fmnist-vit-p4"), vn.load("fmnist-resnet")
    images, labels = vn.data.fashion_mnist_arrays("test")
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=list(vn.data.FASHION_MNIST_CLASSES))}
    )
    ds = datasets.Dataset.from_dict({"image": list(images[:n]), "label": labels[:n]}, features=features)
    start = time.perf_counter()
    maps = {
        "random": vn.evaluate.random_maps(n, 28, seed=0),  # in-memory maps, one per image in the data set's order
        "last layer": lambda imgs: vn.explain(vit, vit.preprocess(imgs), "last layer"),  # computed per batch
    }
    result = {
        "rank": rank,
        "world": world,
        "sweep": vn.sweep(vit, ds, heads={0: [0, 5], 6: [3], 11: [0, 7]}, batch_size=8),
        "profile": vn.profile.attention_profile(vit, ds.to_iterable_dataset(num_shards=2), batch_size=8),
        "cls": vn.cls_summary(vit, ds, full=False, batch_size=8),
        "deletion": vn.evaluate.deletion_study({"ViT": vit, "ResNet": resnet}, ds, maps, steps=4, batch_size=8),
    }
    result["seconds"] = time.perf_counter() - start
    with open(f"{out}.{rank}.pkl", "wb") as f:
        pickle.dump(result, f)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 24)
