"""The general deconvnet (any graph) against the chain replay, Captum, and an autograd oracle;
receptive fields measured on the graph against the analytic ones and the projections' support."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netsight.ops.deconvnet import Deconvnet
from netsight.ops.deconvnet_graph import GraphDeconvnet, make_deconvnet
from netsight.ops.receptive_field import receptive_field
from netsight.errors import NetsightError
from netsight.models import ModelConfig, build_model
from tests.helpers import RectifiedBackward


@pytest.mark.parametrize(
    "name, layers",
    [("lenet5", ["conv1", "pool1", "conv2", "pool2", "fc1"]), ("cnn-bn", ["conv1", "conv2", "pool2", "conv3", "bn3"])],
)
@pytest.mark.parametrize("mode", ["max", "map"])
def test_both_paths_agree_on_chains(name, layers, mode):
    torch.manual_seed(0)
    model = build_model(ModelConfig(name)).eval()
    x = torch.rand(4, 1, 28, 28)
    for layer in layers:
        chain, graph = Deconvnet(model, layer, (1, 28, 28)), GraphDeconvnet(model, layer, (1, 28, 28))
        assert chain.target == graph.target
        channels = torch.tensor([0, 1, 2, 3])
        a, b = chain.project(x, channels, mode), graph.project(x, channels, mode)
        assert a.images.abs().sum() > 0
        torch.testing.assert_close(b.images, a.images, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(b.values, a.values)
        assert torch.equal(a.positions, b.positions)
        if layer != "fc1":
            assert graph.field == chain.field == receptive_field(chain.chain), layer


def test_make_deconvnet_keeps_the_chain_where_it_applies():
    from torchvision.models import resnet18

    lenet = build_model(ModelConfig("lenet5"))
    assert isinstance(make_deconvnet(lenet, "conv2", (1, 28, 28)), Deconvnet)
    assert isinstance(make_deconvnet(resnet18(), "layer1", (3, 32, 32)), GraphDeconvnet)


@pytest.mark.parametrize("layer, channel", [("maxpool", 2), ("layer1.0", 5), ("layer2", 9), ("layer3.1", 17)])
def test_resnet18_matches_captum_neuron_deconvolution(layer, channel):
    from captum.attr import NeuronDeconvolution
    from torchvision.models import resnet18

    torch.manual_seed(0)
    model = resnet18().eval()
    x = torch.rand(1, 3, 64, 64)
    net = GraphDeconvnet(model, layer, (3, 64, 64))
    proj = net.project(x, torch.tensor([channel]), "max")  # the map's strongest unit
    c, (y, xx), value = channel, proj.positions[0].tolist(), proj.values[0]
    assert value > 0  # a rectified unit: the projection of a value v is v times Captum's (unit signal)
    ours = proj.images[0] / value
    module = dict(model.named_modules())[layer]
    with pytest.warns(UserWarning):
        theirs = NeuronDeconvolution(model, module).attribute(x.clone(), neuron_selector=(c, y, xx))[0]
    assert theirs.abs().sum() > 0
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-6)


class Branchy(nn.Module):
    """Skip connection, concatenation, every spelling of ReLU (module in place, functional in
    place, method, in-place method), a functional max-pool: all that the chain replay refuses.
    With `oracle=True` every ReLU is the rectifying function instead, for the autograd oracle."""

    def __init__(self, oracle: bool = False):
        super().__init__()
        self.oracle = oracle
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.act = nn.ReLU(inplace=True)
        self.left = nn.Conv2d(8, 8, 3, padding=1)
        self.right = nn.Conv2d(8, 4, 1)
        self.mix = nn.Conv2d(12, 6, 3, padding=1)
        self.head = nn.Linear(6, 5)

    def forward(self, x):
        r = RectifiedBackward.apply
        x = r(self.stem(x)) if self.oracle else self.act(self.stem(x))
        skip = x
        x = r(self.left(x)) if self.oracle else F.relu(self.left(x), inplace=True)
        x = x + skip
        x = torch.cat([x, r(self.right(x)) if self.oracle else self.right(x).relu()], 1)
        x = self.mix(F.max_pool2d(x, 2))
        x = r(x) if self.oracle else x.relu_()
        return self.head(x.mean((2, 3)))


def test_a_branchy_graph_equals_the_rectifying_autograd_oracle():
    torch.manual_seed(0)
    model = Branchy().eval()
    oracle = Branchy(oracle=True).eval()
    oracle.load_state_dict(model.state_dict())
    x = torch.rand(3, 3, 16, 16)
    with pytest.raises(NetsightError):
        Deconvnet(model, "mix", (3, 16, 16)).project(x, 0)  # the chain replay refuses this graph
    net = make_deconvnet(model, "mix", (3, 16, 16))
    assert isinstance(net, GraphDeconvnet)
    channels = torch.tensor([0, 2, 5])
    proj = net.project(x, channels, "map")
    xs = x.clone().requires_grad_(True)
    store = {}
    handle = oracle.mix.register_forward_hook(lambda m, i, o: store.update(a=o))
    oracle(xs)
    handle.remove()
    act = store["a"]
    signal = torch.zeros_like(act)
    for i, c in enumerate(channels):
        signal[i, c] = act[i, c].detach()
    (expected,) = torch.autograd.grad(act, xs, signal)
    assert expected.abs().sum() > 0
    torch.testing.assert_close(proj.images, expected, rtol=1e-5, atol=1e-6)
    # the measured field: mix (3x3) after a 2x2 pool after 3x3 convs (stem, left) -> 3 + 2 + 2 + 2*2 = 10 px
    assert net.field.size == (10, 10) and net.field.jump == (2, 2)


def test_projection_lies_inside_the_measured_receptive_field_of_resnet18():
    from torchvision.models import resnet18

    from netsight.ops.topk import crop

    torch.manual_seed(1)
    model = resnet18().eval()
    x = torch.rand(3, 3, 96, 96)
    for layer, size in (("layer1.1", 43), ("layer2.0", 67)):
        net = GraphDeconvnet(model, layer, (3, 96, 96))
        assert net.field.size == (size, size)  # 7 (conv1), +4 (maxpool), +8 per 3x3 conv at jump 4, then +8 and +16 at jump 8
        strongest = net.activations(x).flatten(2).amax(2).argmax(1)  # each image's strongest map
        proj = net.project(x, strongest)
        for i in range(3):
            top, left, bottom, right = net.field.box(int(proj.positions[i, 0]), int(proj.positions[i, 1]), 96, 96)
            outside = proj.images[i].clone()
            outside[:, top:bottom, left:right] = 0
            assert proj.images[i].abs().sum() > 0 and outside.abs().max() == 0
        cropped, valid = crop(proj.images, proj.positions, net.field)
        assert cropped.abs().sum() == pytest.approx(proj.images.abs().sum().item(), rel=1e-6)


def test_fields_larger_than_the_image_and_global_layers():
    from torchvision.models import resnet18

    model = resnet18().eval()
    assert GraphDeconvnet(model, "layer4", (3, 64, 64)).field.size == (435, 435)  # grown past the 64-px image
    whole = GraphDeconvnet(model, "avgpool", (3, 64, 64)).field
    assert whole.size == (64, 64) and whole.start == (0, 0)


def test_layer_errors_are_clear():
    from torchvision.models import resnet18

    model = resnet18()
    with pytest.raises(NetsightError, match="did you mean layer1"):
        GraphDeconvnet(model, "layer_1", (3, 32, 32))
    with pytest.raises(NetsightError, match="runs 2 times"):
        GraphDeconvnet(model, "layer1.0.relu", (3, 32, 32))


def test_a_forward_relying_on_an_inplace_overwrite_is_refused():
    class Sneaky(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)
            self.out = nn.Conv2d(2, 2, 1)

        def forward(self, x):
            x = self.conv(x)
            x.relu_()  # the return value is dropped: only the overwrite rectifies x
            return self.out(x)

    torch.manual_seed(0)
    net = GraphDeconvnet(Sneaky(), "out", (1, 8, 8))
    with pytest.raises(NetsightError, match="in-place ReLU"):
        net.project(torch.rand(2, 1, 8, 8) - 0.5, 0)


def test_fields_of_many_layers_at_once_equal_one_layer_at_a_time():
    """The microscope's shared walk (one forward pass per probe size for every layer still growing) gives each layer
    the field its own walk gives, with and without a growth limit."""
    import copy

    from torchvision.models import resnet18

    from netsight.ops.receptive_field import measured_receptive_field, receptive_field_within, receptive_fields_within

    model = resnet18().eval()
    convs = [n for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    many = receptive_fields_within(copy.deepcopy(model), convs, (3, 32, 32), 2)
    single = copy.deepcopy(model)  # another instance: nothing cached from the shared walk
    some = convs[::4] + ["layer4.1.conv2"]  # one layer in four (and the last) walked alone: their probes cost the most
    assert {layer: many[layer] for layer in some} == {
        layer: receptive_field_within(single, layer, (3, 32, 32), 2) for layer in some
    }
    assert many["conv1"] == measured_receptive_field(single, "conv1", (3, 32, 32))
    assert many["layer4.1.conv2"] is None  # larger than twice the image: it sees all of it
