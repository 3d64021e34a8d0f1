"""netsight.zf, the notebook API: one call per technique on a model and a tensor of images; the
model comes back as it was (no hooks, same mode, same outputs)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from netsight import zf
from netsight.ops.hooks import count_hooks
from netsight.errors import NetsightError


class TwoPath(nn.Module):
    """A small CNN with a skip connection and functional ReLUs (not a chain)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2)
        self.conv3 = nn.Conv2d(8, 12, 3, padding=1)
        self.fc = nn.Linear(12, 4)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = self.pool(x + F.relu(self.bn(self.conv2(x))))
        x = F.relu(self.conv3(x))
        return self.fc(x.mean((2, 3)))


def test_every_technique_in_one_call_each_leaves_the_model_as_it_was():
    torch.manual_seed(0)
    model = TwoPath().train()
    images = torch.rand(12, 3, 20, 20)
    norm = dict(mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.2))
    with torch.no_grad():
        before = model.eval()(images)
    model.train()
    results = [
        zf.deconv(model, images[:3], "conv3", maps=2, **norm),
        zf.top9(model, images, "conv3", maps=4, batch_size=5, **norm),
        zf.occlusion(model, images[:2], "conv3", **norm),
        zf.activations(model, images, batch_size=5, **norm),
        zf.invariance(model, images[:4], **norm),
        zf.filters(model),
    ]
    assert model.training and count_hooks(model) == 0
    with torch.no_grad():
        torch.testing.assert_close(model.eval()(images), before)
    for result in results:
        assert zf.plot(result, "TwoPath") is not None
    deconv, top = results[0], results[1]
    assert deconv.layer == "conv3" and len(deconv.rows) == 3 and len(deconv.rows[0]) == 2
    assert top.projections.shape[:2] == (4, 9) and top.top.field.size == (10, 10)
    occ = results[2]
    assert occ.label_kind == "predicted class" and occ.maps[0].size == round(6 * 20 / 28)


def test_top9_does_not_depend_on_the_batch_size_and_normalisation_is_applied():
    torch.manual_seed(1)
    model = TwoPath().eval()
    images = torch.rand(10, 3, 16, 16)
    a = zf.top_activations(model, images, "conv2", batch_size=3, mean=(0.5,) * 3, std=(0.25,) * 3)
    b = zf.top_activations(model, images, "conv2", batch_size=10, mean=(0.5,) * 3, std=(0.25,) * 3)
    assert torch.equal(a.image_index, b.image_index) and torch.allclose(a.values, b.values)
    seen = {}
    handle = model.conv2.register_forward_hook(lambda m, i, o: seen.update(a=o))
    with torch.no_grad():
        model((images - 0.5) / 0.25)
    handle.remove()
    expected = seen["a"].flatten(2).amax(2).T.sort(1, descending=True).values[:, :9]
    torch.testing.assert_close(a.values, expected)


def test_labels_given_are_tracked_and_wrong_inputs_are_refused():
    model = TwoPath().eval()
    occ = zf.occlusion(model, torch.rand(2, 3, 12, 12), "conv3", labels=[3, 1])
    assert occ.labels == [3, 1] and occ.label_kind == "true class"
    with pytest.raises(NetsightError, match="images have 1 channel"):
        zf.deconv(model, torch.rand(2, 1, 12, 12), "conv3")
    with pytest.raises(NetsightError, match="mean and std go together"):
        zf.deconv(model, torch.rand(2, 3, 12, 12), "conv3", mean=(0.5, 0.5, 0.5))
    with pytest.raises(NetsightError, match="did you mean conv3"):
        zf.top9(model, torch.rand(2, 3, 12, 12), "conv_3")


def test_every_result_plots_itself_and_zf_plot_is_that_one_call():
    """`zf.plot(result)` is `result.plot(title)` for every result type, attributions included."""
    torch.manual_seed(0)
    model = TwoPath().eval()
    images = torch.rand(2, 3, 20, 20)
    single = zf.attribute(model, images, "gradient", targets=1)
    several = zf.attribution_maps(model, images, ["gradient", "gradcam"], targets=1, layer="conv3")
    assert isinstance(single, zf.Attribution) and isinstance(single, zf.Maps) and single.inputs is not None
    assert torch.equal(single.maps, several["gradient"].maps)
    results = [single, several["gradcam"], zf.top9(model, images, "conv3", maps=2), zf.filters(model)]
    for result in results:
        for figure in (result.plot("TwoPath"), zf.plot(result, "TwoPath")):
            assert figure.axes and figure.texts + [a.get_title() for a in figure.axes]
    with pytest.raises(NetsightError, match="a dict is not a result"):
        zf.plot({})


def test_the_engines_attribution_plots_and_errors_speak_python():
    """A bare `Attribution` (netsight.ops.attribution.attribute's) plots through zf.plot, with or without
    its images; a missing labels= is named as the Python API names it, not as a command-line flag."""
    from netsight.ops.attribution import attribute

    torch.manual_seed(0)
    model = TwoPath().eval()
    images = torch.rand(2, 3, 20, 20)
    bare = attribute(model, images, "gradient", targets=1)
    assert type(bare) is zf.Attribution
    for figure in (zf.plot(bare, "TwoPath"), zf.plot(bare, "TwoPath", images=images)):
        assert figure.axes and any("TwoPath" in t.get_text() for t in figure.texts)
    with pytest.raises(NetsightError) as err:
        zf.attribute(model, images, "gradient", targets="true")
    message = str(err.value)
    assert "--target" not in message and "targets='true'" in message and "labels=" in message, message
