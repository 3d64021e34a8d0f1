"""What each named dataset is: classes, image shape and split sizes (no loading here)."""

from __future__ import annotations

from dataclasses import dataclass

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    description: str
    classes: tuple[str, ...]
    channels: int  # 1 = grayscale, 3 = RGB
    size: int  # images are size x size pixels
    train_size: int  # images in the canonical training split
    test_size: int
    bundled: bool  # shipped inside the package (works offline)
    licence: str


DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "mnist",
            "handwritten digits, 28x28 grayscale",
            tuple(str(d) for d in range(10)),
            1,
            28,
            60_000,
            10_000,
            True,
            "CC BY-SA 3.0 (Y. LeCun, C. Cortes, C. Burges)",
        ),
        DatasetSpec(
            "fashion-mnist",
            "Zalando clothing, 28x28 grayscale",
            ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
            1,
            28,
            60_000,
            10_000,
            False,
            "MIT (Zalando Research)",
        ),
        DatasetSpec(
            "cifar10",
            "CIFAR-10, 32x32 colour",
            CIFAR10_CLASSES,
            3,
            32,
            50_000,
            10_000,
            False,
            "see https://www.cs.toronto.edu/~kriz/cifar.html (A. Krizhevsky)",
        ),
        DatasetSpec(
            "cifar10-assignment",
            "the ELEC 576 course subset of CIFAR-10: first 1,000 train / 100 test images per class, "
            "ITU-R 601-2 luma, bilinear 32->28",
            CIFAR10_CLASSES,
            1,
            28,
            10_000,
            1_000,
            True,
            "as CIFAR-10",
        ),
    )
}

# the course subset: how many images of each class it keeps
ASSIGNMENT_PER_CLASS = {"train": 1_000, "test": 100}


def get_spec(name: str) -> DatasetSpec:
    from ..errors import NetsightError

    try:
        return DATASETS[name]
    except KeyError:
        raise NetsightError(f"--data {name!r}: unknown dataset; expected one of {', '.join(DATASETS)}") from None
