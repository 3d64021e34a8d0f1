"""The dataset pass (ops/dataset_pass.py): every unit's top-k over batches, shards merged in any order and a
pass resumed after Ctrl-C equal a brute-force ranking exactly, ties included; bad input is one clear line and
leaves the state file as it was."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from netsight.data.images import tensor_images
from netsight.errors import NetsightError
from netsight.ops.dataset_pass import UnitTopK, dataset_pass
from tests.helpers import K, assert_equals_brute_force, binary_images, tied_net


def test_many_ties_exist_so_the_order_is_tested():
    net, images = tied_net(), binary_images()
    with torch.no_grad():
        acts = net[:2](images.float() / 255).flatten(2).amax(2)  # [N, maps]
    assert all(len(set(col.tolist())) < len(images) / 3 for col in acts.T)


@pytest.mark.parametrize("batch_size", [1, 5, 64])
def test_one_pass_in_any_batch_size_equals_brute_force(batch_size):
    net, images = tied_net(), binary_images()
    state = dataset_pass(net, tensor_images(images), k=K, batch_size=batch_size)
    assert state.covered == [(0, len(images))]
    assert_equals_brute_force(state, net, images)


def test_shards_merged_in_any_order_equal_brute_force():
    net, images = tied_net(), binary_images()
    source = tensor_images(images)
    parts = [dataset_pass(net, source, k=K, batch_size=4, shard=s) for s in [(0, 9), (9, 30), (30, 37)]]
    a, b, c = parts
    for merged in (a.merge(b).merge(c), c.merge(a.merge(b)), b.merge(c).merge(a)):
        assert merged.covered == [(0, 37)]
        assert_equals_brute_force(merged, net, images)
    with pytest.raises(NetsightError, match="both hold images 0-8"):
        a.merge(a)


def test_a_pass_interrupted_by_ctrl_c_keeps_its_progress_and_resumes_to_the_same_result(tmp_path):
    net, images = tied_net(), binary_images()
    source = tensor_images(images)
    interrupting = tensor_images(images)
    plain = interrupting._load

    def load(indices):
        if indices[0] == 15:  # the fourth batch never arrives: Ctrl-C while it is decoded
            raise KeyboardInterrupt
        return plain(indices)

    interrupting._load = load
    state = tmp_path / "pass.safetensors"
    with pytest.raises(KeyboardInterrupt, match=f"interrupted; the dataset pass keeps 15 of 37 images in {state}, and the same"):
        dataset_pass(net, interrupting, k=K, batch_size=5, state=state)
    kept = UnitTopK.load(state)
    assert kept.covered == [(0, 15)]  # the three batches that finished
    resumed = dataset_pass(net, source, k=K, batch_size=7, state=state)
    assert resumed.covered == [(0, 37)]
    assert_equals_brute_force(resumed, net, images)
    assert_equals_brute_force(UnitTopK.load(state), net, images)  # the file holds the whole pass


def test_a_state_made_with_other_settings_is_refused_and_left_as_it_was(tmp_path):
    net, images = tied_net(), binary_images()
    source = tensor_images(images)
    state = tmp_path / "pass.safetensors"
    dataset_pass(net, source, k=K, state=state, shard=(0, 20))
    before = state.read_bytes()
    other = tied_net()
    with torch.no_grad():
        other[0].weight[0, 0, 0, 0] += 1
    cases = [
        (dict(model=net, k=K + 1), "k: 4 vs 5"),
        (dict(model=other, k=K), "weights: "),
        (dict(model=net, k=K, layers=["0"]), "layers: "),
        (dict(model=net, k=K, mean=[0.5], std=[0.25]), "normalisation: "),
        (dict(model=net, k=K, shard=(20, 37)), "outside the shard 20-36"),
    ]
    for kwargs, message in cases:
        model = kwargs.pop("model")
        with pytest.raises(NetsightError, match="other settings|outside the shard") as e:
            dataset_pass(model, source, state=state, **kwargs)
        assert message in str(e.value) and "\n" not in str(e.value)
        assert state.read_bytes() == before
    with pytest.raises(NetsightError, match="other settings.*images: "):
        dataset_pass(net, tensor_images(binary_images(36)), k=K, state=state)
    state.write_bytes(b"not a state file")
    with pytest.raises(NetsightError, match="cannot be read as a dataset pass's state.*delete it"):
        dataset_pass(net, source, k=K, state=state)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(layers=["conv9"]), "--layers conv9: not a layer of this model"),
        (dict(layers=["0", "0"]), "a layer is named twice"),
        (dict(k=0), "--top-k 0: expected a whole number"),
        (dict(batch_size=0), "--batch-size 0"),
        (dict(shard=(5, 99)), "shard 5-99: expected 0 <= start < stop <= 37"),
    ],
)
def test_bad_input_is_one_clear_line(kwargs, message):
    with pytest.raises(NetsightError) as e:
        dataset_pass(tied_net(), tensor_images(binary_images()), **kwargs)
    assert message in str(e.value) and "\n" not in str(e.value)


def test_non_finite_activations_are_named():
    net = tied_net()
    with torch.no_grad():
        net[3].weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(NetsightError, match=r"--layers 3: its activations are not finite .* images 0-36"):
        dataset_pass(net, tensor_images(binary_images()), batch_size=64)


def test_every_conv_of_a_resnet_in_one_pass_and_as_top9_ranks_it():
    """All 20 convolutions of a (random) torchvision ResNet-18 by default, a shared in-place ReLU refused with
    a clear line, and each conv's ranking the one top-9 makes for that layer alone."""
    from torchvision.models import resnet18

    from netsight.techniques.top9 import top_activations

    torch.manual_seed(0)
    model = resnet18(weights=None).eval()
    images = tensor_images(torch.rand(12, 3, 32, 32))
    state = dataset_pass(model, images, k=3, batch_size=5)
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    assert list(state.layers) == convs and len(convs) == 20
    assert state.layers["conv1"].target == "conv1"  # a BatchNorm follows, so the conv's own output
    for name in ("conv1", "layer2.1.conv2", "layer4.0.downsample.0"):
        top = top_activations(model, images, name, k=3)
        assert torch.equal(state.layers[name].images, top.image_index), name
        assert torch.equal(state.layers[name].positions, top.positions), name
        torch.testing.assert_close(state.layers[name].values, top.values, rtol=1e-5, atol=1e-6)
    with pytest.raises(NetsightError, match="--layers layer1.0.relu: this module runs 2 times"):
        dataset_pass(model, images, layers=["layer1.0.relu"])
