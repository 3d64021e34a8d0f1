"""Each Zeiler & Fergus technique against an answer computed independently."""

import numpy as np
import pytest
import torch
from torch import nn

from netsight.ops.deconvnet import Deconvnet
from netsight.ops.hooks import count_hooks
from netsight.techniques.invariance import invariance_curves, transform
from netsight.ops.occluding import occluded_copies
from tests.helpers import swap_relus
from netsight.techniques.occlusion import occlusion_maps
from netsight.ops.receptive_field import receptive_field
from netsight.ops.topk import crop, top_activations
from netsight.errors import NetsightError
from netsight.models import ModelConfig, build_model


def _gradient_projection(model, x, upto: str, signal_fn):
    """d<signal, activation(upto)>/dx with rectifying ReLU backward, computed by autograd."""
    modified = swap_relus(model).eval()
    x = x.clone().requires_grad_(True)
    store = {}
    handle = dict(modified.named_modules())[upto].register_forward_hook(lambda m, i, o: store.update(a=o))
    modified(x)
    handle.remove()
    act = store["a"]
    (grad,) = torch.autograd.grad(act, x, signal_fn(act.detach()))
    return grad


@pytest.mark.parametrize("mode", ["max", "map"])
@pytest.mark.parametrize("layer, stage", [("conv1", "relu1"), ("conv2", "relu2"), ("pool2", "pool2")])
def test_deconv_equals_gradient_with_rectified_relu_backward(mode, layer, stage):
    torch.manual_seed(0)
    model = build_model(ModelConfig("lenet5")).eval()
    x = torch.rand(5, 1, 28, 28)
    channels = torch.tensor([0, 3, 7, 11, 31])
    proj = Deconvnet(model, layer, (1, 28, 28)).project(x, channels, mode)

    def signal(act):
        s = torch.zeros_like(act)
        for i, c in enumerate(channels):
            m = act[i, c]
            if mode == "map":
                s[i, c] = m
            else:
                y, xx = divmod(int(m.argmax()), m.shape[1])
                s[i, c, y, xx] = m[y, xx]
        return s

    expected = _gradient_projection(model, x, stage, signal)
    assert proj.images.abs().sum() > 0
    torch.testing.assert_close(proj.images, expected, rtol=1e-5, atol=1e-6)


def test_deconv_by_hand():
    """conv 1x1 (weight 2, bias 5) -> ReLU -> max-pool 2 on a 4x4 image: the strongest pooled
    unit projects to 2 * (2 * pixel + 5) at the pixel the switch points to, zero elsewhere
    (the bias is not used on the way down)."""
    model = nn.Sequential()
    model.add_module("conv1", nn.Conv2d(1, 1, 1))
    model.add_module("relu1", nn.ReLU())
    model.add_module("pool1", nn.MaxPool2d(2))
    with torch.no_grad():
        model.conv1.weight.fill_(2.0)
        model.conv1.bias.fill_(5.0)
    image = torch.tensor([[1, 2, 0, 0], [3, 9, 0, 4], [0, 0, 1, 0], [7, 0, 0, 2]], dtype=torch.float32).view(1, 1, 4, 4)
    proj = Deconvnet(model, "pool1", (1, 4, 4)).project(image, 0, "max")
    expected = torch.zeros(1, 1, 4, 4)
    expected[0, 0, 1, 1] = 2 * (2 * 9 + 5)  # unit (0,0) holds relu(2*9+5) = 23; transposed 1x1 filter doubles it
    assert proj.values.item() == 23.0 and proj.positions.tolist() == [[0, 0]]
    torch.testing.assert_close(proj.images, expected)
    whole = Deconvnet(model, "pool1", (1, 4, 4)).project(image, 0, "map").images[0, 0]
    assert whole[1, 1] == 46 and whole[1, 3] == 2 * 13 and whole[3, 0] == 2 * 19 and whole[3, 3] == 2 * 9
    assert (whole != 0).sum() == 4  # exactly one pixel per pooling window: the switches


def test_deconv_through_batch_norm_and_dropout_of_cnn_bn():
    torch.manual_seed(1)
    model = build_model(ModelConfig("cnn-bn")).eval()
    with torch.no_grad():
        for bn in (model.bn1, model.bn2):
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
    x = torch.rand(3, 1, 28, 28)
    proj = Deconvnet(model, "conv3", (1, 28, 28)).project(x, torch.tensor([1, 2, 3]), "map")

    def signal(act):
        s = torch.zeros_like(act)
        for i, c in enumerate([1, 2, 3]):
            s[i, c] = act[i, c]
        return s

    # BN in eval mode is affine: its input gradient is exactly the transposed per-channel scale
    torch.testing.assert_close(proj.images, _gradient_projection(model, x, "relu3", signal), rtol=1e-5, atol=1e-6)


def test_deconv_works_on_torchvision_alexnet():
    from torchvision.models import alexnet

    torch.manual_seed(0)
    model = alexnet(weights=None).eval()
    x = torch.rand(2, 3, 224, 224)
    proj = Deconvnet(model, "features.10", (3, 224, 224)).project(x, torch.tensor([5, 100]), "max")
    assert proj.images.shape == x.shape and proj.images.abs().sum() > 0

    def signal(act):
        s = torch.zeros_like(act)
        for i, (c, (y, xx)) in enumerate(zip([5, 100], proj.positions.tolist(), strict=True)):
            s[i, c, y, xx] = act[i, c, y, xx]
        return s

    torch.testing.assert_close(proj.images, _gradient_projection(model, x, "features.11", signal), rtol=1e-4, atol=1e-6)
    assert count_hooks(model) == 0


def test_deconv_names_the_first_module_it_cannot_invert():
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Upsample(scale_factor=2), nn.ReLU(), nn.Conv2d(2, 2, 3))
    with pytest.raises(NetsightError, match=r"cannot invert layer 1 \(Upsample\)"):
        Deconvnet(model, "3", (1, 8, 8))
    with pytest.raises(NetsightError, match="--layer conv9: not a layer of this model"):
        Deconvnet(build_model(ModelConfig("lenet5")), "conv9", (1, 28, 28))


def test_receptive_field_equals_gradient_support():
    """Same geometry as LeNet5 (5x5 'same' conv, pool 2, 5x5 'same' conv), with average pooling
    so the gradient reaches every pixel in view: its support is the receptive field."""
    chain = [("c1", nn.Conv2d(1, 1, 5, padding=2)), ("p1", nn.AvgPool2d(2)), ("c2", nn.Conv2d(1, 1, 5, padding=2))]
    net = nn.Sequential(*[m for _, m in chain])
    with torch.no_grad():
        for m in (chain[0][1], chain[2][1]):
            m.weight.fill_(1.0)
    field = receptive_field(chain)
    assert (field.size, field.jump, field.start) == ((14, 14), (2, 2), (-6, -6))
    lenet = build_model(ModelConfig("lenet5"))
    assert receptive_field(Deconvnet(lenet, "conv2", (1, 28, 28)).chain) == field
    for y, x in [(7, 7), (0, 0), (13, 2)]:
        img = torch.rand(1, 1, 28, 28, requires_grad=True)
        net(img)[0, 0, y, x].backward()
        rows, cols = np.nonzero(img.grad[0, 0].numpy())
        top, left, bottom, right = field.box(y, x, 28, 28)
        assert (rows.min(), cols.min(), rows.max() + 1, cols.max() + 1) == (top, left, bottom, right)


def test_crop_places_clipped_fields_on_a_fixed_canvas():
    field = receptive_field([("c", nn.Conv2d(1, 1, 3, padding=1))])
    images = torch.arange(16.0).view(1, 1, 4, 4)
    patch, valid = crop(images, torch.tensor([[0, 0]]), field)
    assert patch[0, 0].tolist() == [[0, 0, 0], [0, 0, 1], [0, 4, 5]]
    assert valid[0, 0].tolist() == [[0, 0, 0], [0, 1, 1], [0, 1, 1]]


def test_top9_streaming_equals_brute_force():
    torch.manual_seed(0)
    model = build_model(ModelConfig("lenet5")).eval()
    images = torch.randint(0, 256, (53, 1, 28, 28), dtype=torch.uint8)
    top = top_activations(model, images, "conv2", k=9, batch_size=10)
    with torch.no_grad():
        act = model.relu2(model.conv2(model.pool1(model.relu1(model.conv1(images.float() / 255)))))
    per_image = act.flatten(2).amax(2)  # [N, maps]
    values, index = per_image.T.sort(dim=1, descending=True)
    torch.testing.assert_close(top.values, values[:, :9])
    assert torch.equal(top.image_index, index[:, :9])
    for m, j in [(0, 0), (5, 3), (63, 8)]:
        i, (y, x) = int(top.image_index[m, j]), top.positions[m, j].tolist()
        assert act[i, m, y, x] == top.values[m, j]


def test_occluded_copies_cover_every_position():
    img = torch.ones(1, 6, 6)
    copies, rows, cols = occluded_copies(img, 2, 2, 0.25)
    assert (rows, cols) == (3, 3) and copies.shape == (9, 1, 6, 6)
    assert copies[4, 0, 2:4, 2:4].eq(0.25).all() and copies[4].eq(0.25).sum() == 4
    with pytest.raises(NetsightError, match="--occlusion-size 7"):
        occluded_copies(img, 7, 1, 0.5)


def test_occluded_copies_reach_the_border_where_the_squares_do_not_tile():
    """6x6, a 3-px square every 2 px: squares at 0, 2 and 4, the last cut to 2 px by the border
    (as Captum's Occlusion), so every pixel is covered by some square."""
    copies, rows, cols = occluded_copies(torch.ones(1, 6, 6), 3, 2, 0.0)
    assert (rows, cols) == (3, 3)
    grey = copies[:, 0].eq(0)
    assert grey[8, 4:, 4:].all() and grey[8].sum() == 4 and grey[2, :3, 4:].all() and grey[2].sum() == 6
    assert grey.any(0).all()
    assert grey.sum(0)[2].tolist() == [2, 2, 4, 2, 4, 2]  # pixel 2 lies under squares 0 and 2, in each direction


def test_occlusion_finds_the_pixel_the_decision_depends_on():
    """Class 0's logit is 10 x pixel (1, 1); only squares covering that pixel change p(class 0)."""
    model = nn.Sequential()
    model.add_module("conv1", nn.Conv2d(1, 1, 1))
    model.add_module("relu1", nn.ReLU())
    model.add_module("flatten", nn.Flatten())
    model.add_module("fc", nn.Linear(16, 2))
    with torch.no_grad():
        model.conv1.weight.fill_(1.0)
        model.conv1.bias.zero_()
        model.fc.weight.zero_()
        model.fc.bias.zero_()
        model.fc.weight[0, 5] = 10.0  # pixel (1, 1) of the 4x4 map
    image = torch.ones(1, 4, 4)
    maps = occlusion_maps(model, image, 0, "relu1", size=2, stride=1, fill=0.0)
    covered = torch.tensor([[True, True, False], [True, True, False], [False, False, False]])
    p_clear = torch.softmax(torch.tensor([10.0, 0.0]), 0)[0].item()
    assert maps.unoccluded_prob == pytest.approx(p_clear)
    torch.testing.assert_close(maps.true_class_prob, torch.where(covered, torch.tensor(0.5), torch.tensor(p_clear)))
    assert maps.predicted_class.tolist() == [[0, 0, 0], [0, 0, 0], [0, 0, 0]]
    assert maps.feature_max.tolist() == [[1.0] * 3] * 3  # some unoccluded pixel always keeps the max at 1
    assert count_hooks(model) == 0


def test_invariance_identity_amounts_give_zero_distance():
    torch.manual_seed(0)
    model = build_model(ModelConfig("lenet5")).eval()
    x = torch.rand(4, 1, 28, 28)
    y = torch.tensor([0, 1, 2, 3])
    sweeps = {"vertical translation (pixels)": np.array([0.0, 4.0]), "scale (factor)": np.array([1.0, 0.6])}
    curves = invariance_curves(model, x, y, sweeps)
    assert curves.layers == ("pool1", "relu3")
    for kind in sweeps:
        assert np.allclose(curves.values[kind]["first"][0], 0, atol=1e-6)
        assert np.all(curves.values[kind]["first"][1] > 0.01)
    p = torch.softmax(model(x), 1)[torch.arange(4), y].detach().numpy()
    np.testing.assert_allclose(curves.values["scale (factor)"]["p_true"][0], p, rtol=1e-5)
    shifted = transform(x, "vertical translation (pixels)", 4)
    torch.testing.assert_close(shifted[:, :, 4:], x[:, :, :-4])


class _Residual(nn.Module):
    """conv -> relu -> conv, plus the block's input: not a chain of its leaf modules."""

    def __init__(self):
        super().__init__()
        self.conv1, self.relu1 = nn.Conv2d(1, 4, 3, padding=1), nn.ReLU()
        self.conv2, self.relu2 = nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()

    def forward(self, x):
        h = self.relu1(self.conv1(x))
        return self.relu2(self.conv2(h) + h)


class _Functional(nn.Module):
    """A functional op between modules (the replay never sees the doubling)."""

    def __init__(self):
        super().__init__()
        self.conv1, self.relu1, self.conv2 = nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3)

    def forward(self, x):
        return self.conv2(self.relu1(self.conv1(x)) * 2.0)


class _Concat(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_a, self.conv_b, self.relu = nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(1, 2, 3, padding=1), nn.ReLU()

    def forward(self, x):
        return self.relu(torch.cat([self.conv_a(x), self.conv_b(x)], 1))


@pytest.mark.parametrize("model, layer", [(_Residual(), "conv2"), (_Functional(), "conv2"), (_Concat(), "relu")])
def test_deconv_refuses_a_model_that_is_not_a_chain(model, layer):
    x = torch.rand(3, 1, 10, 10)
    deconv = Deconvnet(model, layer, (1, 10, 10))
    with pytest.raises(NetsightError, match=r"(does not reproduce its forward pass|fails) .* not a plain chain"):
        deconv.project(x, 0)
    assert count_hooks(model) == 0


def test_the_replay_check_passes_a_chain_with_inplace_relus():
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(inplace=True), nn.MaxPool2d(2), nn.Conv2d(3, 3, 3), nn.ReLU(inplace=True))
    proj = Deconvnet(model, "3", (1, 12, 12)).project(torch.rand(2, 1, 12, 12), 1)
    assert proj.images.shape == (2, 1, 12, 12)


def test_deconv_and_top9_work_for_a_float64_model():
    torch.manual_seed(0)
    model = build_model(ModelConfig("lenet5")).double().eval()
    x = torch.rand(4, 1, 28, 28, dtype=torch.float64)
    proj = Deconvnet(model, "conv2", (1, 28, 28)).project(x, torch.tensor([0, 1, 2, 3]))
    assert proj.images.dtype == torch.float64

    def signal(act):
        s = torch.zeros_like(act)
        for i, c in enumerate(proj.channels.tolist()):
            y, xx = proj.positions[i].tolist()
            s[i, c, y, xx] = act[i, c, y, xx]
        return s

    torch.testing.assert_close(proj.images, _gradient_projection(model, x, "relu2", signal), rtol=1e-10, atol=1e-12)
    top = top_activations(model, (torch.rand(20, 1, 28, 28) * 255).to(torch.uint8), "conv2", k=3)
    assert top.values.dtype == torch.float64 and top.values.shape == (64, 3)
