import gzip
import hashlib
import http.server
import shutil
import tarfile
import threading
from functools import partial

import numpy as np
import pytest
import torch

from netsight.data import load_dataset
from netsight.data.formats import encode_idx
from netsight.errors import NetsightError
from tests.conftest import tar_folder, write_cifar_batches, write_idx_folder, write_image_tree


def _assert_matches(ds, arrays):
    np.testing.assert_array_equal(ds.train_images[:, 0].numpy(), arrays["train_x"])
    np.testing.assert_array_equal(ds.train_labels.numpy(), arrays["train_y"])
    np.testing.assert_array_equal(ds.test_images[:, 0].numpy(), arrays["test_x"])
    assert ds.train_images.dtype == torch.uint8 and ds.train_labels.dtype == torch.int64


@pytest.mark.parametrize("compress", [True, False])
def test_mnist_from_a_folder_of_idx_files(tmp_path, compress):
    arrays = write_idx_folder(tmp_path, compress=compress)
    ds = load_dataset("mnist", tmp_path)
    _assert_matches(ds, arrays)
    assert ds.source == f"path:{tmp_path.resolve()}"


def test_torchvision_layouts_keep_mnist_and_fashion_apart(tmp_path):
    mnist = write_idx_folder(tmp_path / "MNIST" / "raw", compress=False)
    fashion = write_idx_folder(tmp_path / "FashionMNIST" / "raw", n_train=40)
    _assert_matches(load_dataset("mnist", tmp_path), mnist)
    _assert_matches(load_dataset("fashion-mnist", tmp_path), fashion)


def test_missing_and_broken_sources_name_what_was_expected(tmp_path):
    with pytest.raises(NetsightError, match="no such file or folder"):
        load_dataset("mnist", tmp_path / "nope")
    with pytest.raises(NetsightError, match=r"no mnist found; expected the four IDX files"):
        load_dataset("mnist", tmp_path)
    write_idx_folder(tmp_path)
    labels = tmp_path / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(encode_idx(np.array([0, 1, 12] + [0] * 17, np.uint8))))
    with pytest.raises(NetsightError, match=r"t10k-labels-idx1-ubyte.gz: label 12 out of range \(expected 0..9\)"):
        load_dataset("mnist", tmp_path)
    labels.write_bytes(gzip.compress(encode_idx(np.zeros(5, np.uint8))))
    with pytest.raises(NetsightError, match="5 labels for 20 images"):
        load_dataset("mnist", tmp_path)
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(encode_idx(np.zeros((20, 32, 32), np.uint8))))
    with pytest.raises(NetsightError, match="images are 20x32x32, expected N x 28 x 28"):
        load_dataset("mnist", tmp_path)


def test_cifar10_python_batches(tmp_path):
    arrays = write_cifar_batches(tmp_path / "cifar-10-batches-py")
    ds = load_dataset("cifar10", tmp_path)
    np.testing.assert_array_equal(ds.train_images.numpy(), arrays["train_x"])
    np.testing.assert_array_equal(ds.test_labels.numpy(), arrays["test_y"])
    assert ds.image_shape == (3, 32, 32)


def test_cifar10_image_tree_and_its_tarball(tmp_path):
    write_image_tree(tmp_path / "c10" / "top", {"train": 2, "test": 1})
    from_tree = load_dataset("cifar10", tmp_path / "c10")
    assert from_tree.train_images.shape == (20, 3, 32, 32) and from_tree.test_images.shape == (10, 3, 32, 32)
    assert from_tree.train_labels.tolist() == [c for c in range(10) for _ in range(2)]
    tarball = tar_folder(tmp_path / "c10" / "top", tmp_path / "c10.tar.gz")
    from_tar = load_dataset("cifar10", tarball)
    assert torch.equal(from_tar.train_images, from_tree.train_images)
    assert torch.equal(from_tar.test_labels, from_tree.test_labels)


def test_image_tree_errors(tmp_path):
    write_image_tree(tmp_path, {"train": 1, "test": 1})
    shutil.rmtree(tmp_path / "test" / "cat")
    (tmp_path / "test" / "cat").mkdir()
    with pytest.raises(NetsightError, match=r"test/cat: empty class folder"):
        load_dataset("cifar10", tmp_path)
    shutil.rmtree(tmp_path / "test" / "cat")
    with pytest.raises(NetsightError, match=r"test: no images of class\(es\) cat"):
        load_dataset("cifar10", tmp_path)


def test_course_layout_with_wrong_image_size(tmp_path):
    write_image_tree(tmp_path, {"Train": 2, "Test": 1}, mode="L", size=28, names=[str(i) for i in range(10)])
    ds = load_dataset("cifar10-assignment", tmp_path)
    assert ds.train_images.shape == (20, 1, 28, 28)
    from PIL import Image

    Image.new("L", (32, 32)).save(tmp_path / "Train" / "3" / "0000.png")
    with pytest.raises(NetsightError, match=r"Train/3/0000.png: image is 32x32, expected 28x28"):
        load_dataset("cifar10-assignment", tmp_path)


def test_assignment_subset_is_derived_from_full_cifar10(tmp_path):
    from PIL import Image

    arrays = write_cifar_batches(tmp_path / "cifar-10-batches-py", per_batch=2000)
    ds = load_dataset("cifar10-assignment", tmp_path)
    assert ds.source.endswith("(course subset derived)")
    assert ds.train_images.shape == (10_000, 1, 28, 28) and ds.test_images.shape == (1_000, 1, 28, 28)
    assert ds.train_labels.tolist() == [c for c in range(10) for _ in range(1000)]
    # first image of class 3 in the source order, converted as the course did
    first3 = arrays["train_x"][np.flatnonzero(arrays["train_y"] == 3)[0]]
    expect = np.asarray(Image.fromarray(first3.transpose(1, 2, 0)).convert("L").resize((28, 28), Image.BILINEAR))
    np.testing.assert_array_equal(ds.train_images[3000, 0].numpy(), expect)


def test_too_few_images_for_the_course_subset(tmp_path):
    write_cifar_batches(tmp_path / "cifar-10-batches-py", per_batch=20)
    with pytest.raises(NetsightError, match="only 10 images of class 0, the course subset needs 1000"):
        load_dataset("cifar10-assignment", tmp_path)


def test_bundled_copy_is_complete():
    mnist = load_dataset("mnist")
    assert mnist.source == "bundled"
    assert mnist.train_images.shape == (60_000, 1, 28, 28) and mnist.test_images.shape == (10_000, 1, 28, 28)
    assert mnist.train_labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    course = load_dataset("cifar10-assignment")
    assert course.train_images.shape == (10_000, 1, 28, 28) and course.test_images.shape == (1_000, 1, 28, 28)
    assert torch.bincount(course.test_labels).tolist() == [100] * 10
    with pytest.raises(NetsightError, match="not bundled"):
        load_dataset("cifar10")


def test_bundled_copy_equals_the_shared_data(shared_data):
    for name, root in (("mnist", shared_data / "mnist"), ("cifar10-assignment", shared_data / "cifar10" / "assignment")):
        ours, theirs = load_dataset(name), load_dataset(name, root)
        assert torch.equal(ours.train_images, theirs.train_images) and torch.equal(ours.test_labels, theirs.test_labels)


@pytest.fixture
def file_server(tmp_path):
    """A local HTTP server standing in for the official download sites."""
    served = tmp_path / "served"
    served.mkdir()
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *a: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield served, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def _md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_download_mnist_through_torchvision(tmp_path, file_server, monkeypatch):
    from torchvision import datasets

    served, url = file_server
    arrays = write_idx_folder(served)
    resources = [(p.name, _md5(p)) for p in sorted(served.glob("*.gz"))]
    monkeypatch.setattr(datasets.MNIST, "mirrors", [url])
    monkeypatch.setattr(datasets.MNIST, "resources", resources)
    ds = load_dataset("mnist", download_=True, cache_dir=tmp_path / "cache")
    _assert_matches(ds, arrays)
    assert ds.source.startswith("download:") and (tmp_path / "cache" / "MNIST" / "raw").is_dir()
    shutil.rmtree(served)  # a second load uses the cache, not the network
    _assert_matches(load_dataset("mnist", download_=True, cache_dir=tmp_path / "cache"), arrays)


def test_download_cifar10_archive_through_torchvision(tmp_path, file_server, monkeypatch):
    from torchvision import datasets

    served, url = file_server
    arrays = write_cifar_batches(tmp_path / "build" / "cifar-10-batches-py")
    archive = served / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "build" / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    monkeypatch.setattr(datasets.CIFAR10, "url", url + archive.name)
    monkeypatch.setattr(datasets.CIFAR10, "tgz_md5", _md5(archive))
    ds = load_dataset("cifar10", download_=True, cache_dir=tmp_path / "cache")
    np.testing.assert_array_equal(ds.train_images.numpy(), arrays["train_x"])


def test_download_failure_is_a_clear_error(tmp_path, file_server, monkeypatch):
    from torchvision import datasets

    _, url = file_server
    monkeypatch.setattr(datasets.CIFAR10, "url", url + "missing.tar.gz")
    with pytest.raises(NetsightError, match="--download cifar10: download into .* failed"):
        load_dataset("cifar10", download_=True, cache_dir=tmp_path / "cache")
