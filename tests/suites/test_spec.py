import pytest

from netsight.errors import NetsightError
from netsight.suites.spec import QUICK_ITERATIONS, expand, load_suite, parse_suite


def test_the_assignment_suite_covers_the_report():
    suite = load_suite("assignment")
    runs = expand(suite)
    assert suite.seeds == 3 and len(runs) == 2 * 3 + 1 + 9 * 3 + 2 * 3  # the permuted-label LeNet5: one seed
    rnn = [r for r in runs if r.group == "rnn"]
    assert {(r.config.model, r.config.hidden) for r in rnn} == {(m, h) for m in ("rnn", "lstm", "gru") for h in (32, 64, 128)}
    assert all(r.config.lr == 1e-3 and r.config.batch_size == 128 and r.config.iterations == 5500 for r in rnn)
    cifar = [r for r in runs if r.group == "cifar"]
    assert all(r.config.data == "cifar10-assignment" and r.config.lr == 1e-4 and r.config.batch_size == 50 for r in cifar)
    first = [r for r in cifar if r.config.seed == 0]
    assert all("deconv" in r.analyses and "top9" in r.analyses for r in first)
    assert all(r.analyses == () for r in cifar if r.config.seed > 0)
    # the looks inside on the first seed, the sequence analysis on every seed
    inside = ("sequence", "rows", "units", "gates", "trajectories", "recurrent_trust", "explore")
    for r in rnn:  # a plain RNN has no gates
        first = inside if r.config.model != "rnn" else tuple(a for a in inside if a != "gates")
        assert r.analyses == (first if r.config.seed == 0 else ("sequence",)), (r.config.model, r.config.seed)
    assert all(tuple(r.config.snapshots) == (50, 200, 500, 1000, 2500, 5500) for r in rnn)  # the gates over training
    assert len({r.dirname for r in runs}) == len(runs)  # every run its own directory
    assert all("agreement" in r.analyses for r in cifar if r.config.seed == 0)
    cnn_mnist = [r for r in runs if r.group == "cnn-mnist"]  # the CNNs' row scores beside the recurrent nets'
    assert [r.analyses for r in cnn_mnist if r.config.seed == 0] == [("rows",), ("rows",)]
    # data randomisation (Adebayo et al. 2018): LeNet5 on permuted labels, one seed, the same training protocol
    (permuted,) = [r for r in runs if r.config.labels == "permuted"]
    lenet = next(r for r in cifar if r.config.model == "lenet5" and r.config.seed == 0)
    assert permuted.config.seed == 0 and permuted.analyses == ()
    same = {k: v for k, v in permuted.config.to_dict().items() if k not in ("labels", "snapshots")}
    assert same == {k: v for k, v in lenet.config.to_dict().items() if k not in ("labels", "snapshots")}
    assert all("input_invariance" in r.analyses for r in cifar if r.config.seed == 0)


def test_one_seed_leaves_out_seed_agreement():
    """--seeds 1 has no second seed to agree with: the suite leaves the technique out instead of failing after training."""
    runs = expand(load_suite("assignment"), seeds=1)
    first = [r for r in runs if r.group == "cifar"]
    assert first and all("sanity" in r.analyses and "agreement" not in r.analyses for r in first)


def test_quick_shrinks_the_same_suite():
    runs = expand(load_suite("assignment"), quick=True)
    assert len(runs) == 2 * 2 + 1 + 9 * 2 + 2 * 2
    assert all(r.config.iterations == QUICK_ITERATIONS for r in runs)
    lenet = next(r for r in runs if r.config.model == "lenet5" and r.group == "cifar")
    assert lenet.config.snapshots and max(lenet.config.snapshots) <= QUICK_ITERATIONS
    assert len(expand(load_suite("assignment"), seeds=1, quick=True)) == 14


def test_equal_configs_share_a_key_and_different_ones_do_not():
    text = '[[group]]\nname = "a"\nmodels = ["lstm"]\nhidden = [8, 16]\niterations = 10\n'
    a = expand(parse_suite(text, "x.toml"))
    b = expand(parse_suite(text, "y.toml"))
    assert [r.dirname for r in a] == [r.dirname for r in b]
    assert a[0].config.key() != a[1].config.key()


@pytest.mark.parametrize(
    "text, message",
    [
        ("title = ", "not valid TOML"),
        ("colour = 1\n[[group]]\nname='a'\nmodels=['lstm']", "unknown top-level key\\(s\\) colour"),
        ("title = 'x'", "no \\[\\[group\\]\\] tables"),
        (
            "[[group]]\nname='a'\nmodels=['resnet']",
            "group 1 \\(a\\): models = \\['resnet'\\]: unknown 'resnet'; expected any of lenet5",
        ),
        ("[[group]]\nname='a'\nmodels=['lstm']\n[[group]]\nname='a'\nmodels=['gru']", "name 'a' used twice"),
        ("[[group]]\nname='a'\nmodels=['lstm']\nanalyses=['saliency']", "unknown analyses \\['saliency'\\]"),
        ("[[group]]\nname='a'\nmodels=['lstm']\nlearning_rate=1", "unknown key\\(s\\) learning_rate"),
        (
            "[[group]]\nname='a'\nmodels=['lstm']\nlr=-1",
            "my_suite.toml: group a, model lstm: --lr -1: expected a number in \\(0, 1e\\+06\\]",
        ),
        ("seeds = 0\n[[group]]\nname='a'\nmodels=['lstm']", "seeds = 0: expected an integer from 1 to 1000"),
        # every value is type-checked, naming the group and the key; a float is never truncated to an integer
        (
            "[[group]]\nname='a'\nmodels=['lstm']\nhidden=32.5",
            "group 1 \\(a\\): hidden = 32.5: expected an integer or a non-empty list of integers",
        ),
        (
            "[[group]]\nname='a'\nmodels=['lstm']\nhidden=[32, 64.0]",
            "hidden = \\[32, 64.0\\]: expected an integer or a non-empty list",
        ),
        ("[[group]]\nname='a'\nmodels=['lstm']\niterations=true", "iterations = True: expected an integer"),
        ("[[group]]\nname='a'\nmodels=['lstm']\nlr='fast'", "lr = 'fast': expected a number or a non-empty list of numbers"),
        ("[[group]]\nname='a'\nmodels=['lstm']\nlr=[]", "lr = \\[\\]: expected a number or a non-empty list"),
        ("[[group]]\nname='a'\nmodels='lstm'", "models = 'lstm': expected a non-empty list of strings"),
        ("[[group]]\nname='a'\nmodels=['lstm']\ndata=['mnist']", "data = \\['mnist'\\]: expected a string"),
        (
            "[[group]]\nname='a'\nmodels=['lstm']\nsnapshots=[10, 2.5]",
            "snapshots = \\[10, 2.5\\]: expected a non-empty list of integers",
        ),
        ("[[group]]\nname='a'\nmodels=['lstm']\noptimizer=1", "optimizer = 1: expected a string"),
        ("[[group]]\nname='a'\nmodels=['lstm']\noptimizer='rmsprop'", "--optimizer 'rmsprop': expected adam or sgd"),
        ("[[group]]\nname='a'\nmodels=['lstm']\nbatch_size=[0]", "--batch-size 0: expected an integer from 1"),
        ("[[group]]\nname='a'\nmodels=['cnn-bn']\ndropout=1.5", "--dropout 1.5: expected a number in \\[0, 1\\)"),
        ("[[group]]\nname='a'\n", "group 1 \\(a\\): no models"),
        ("title = 3\n[[group]]\nname='a'\nmodels=['lstm']", "title = 3: expected a string"),
        ("seeds = 2.0\n[[group]]\nname='a'\nmodels=['lstm']", "seeds = 2.0: expected an integer"),
        ("seeds = true\n[[group]]\nname='a'\nmodels=['lstm']", "seeds = True: expected an integer"),
        # a technique's options: a known option of one of the group's analyses, checked against its declaration
        (
            "[[group]]\nname='a'\nmodels=['lenet5']\nanalyses=['top9']\n[group.options.deconv]\nlayer='conv1'",
            "my_suite.toml: group 1 \\(a\\): options.deconv: not one of this group's analyses \\(top9\\)",
        ),
        (
            "[[group]]\nname='a'\nmodels=['lenet5']\nanalyses=['top9']\n[group.options.top9]\nlayers='conv1'",
            "group 1 \\(a\\): options.top9.layers: top9 has no such option; its options: layer, maps",
        ),
        (
            "[[group]]\nname='a'\nmodels=['lenet5']\nanalyses=['top9']\n[group.options.top9]\nmaps='8'",
            "group 1 \\(a\\): options.top9.maps = '8': expected an integer",
        ),
        (
            "[[group]]\nname='a'\nmodels=['lenet5']\nanalyses=['top9']\n[group.quick_options.top9]\nmaps=0",
            "group 1 \\(a\\): quick_options.top9.maps = 0: expected a number from 1 to 65536",
        ),
        (
            "[[group]]\nname='a'\nmodels=['lenet5']\nanalyses=['deconv']\n[group.options.deconv]\nmode='all'",
            "options.deconv.mode = 'all': expected one of 'max', 'map'",
        ),
        (
            "[[group]]\nname='a'\nmodels=['lenet5']\nanalyses=['top9']\n[group.options.top9]\nlayer=2",
            "options.top9.layer = 2: expected a string",
        ),
        (
            "[[group]]\nname='a'\nmodels=['lenet5']\nanalyses=['top9']\noptions = { top9 = 3 }",
            "options.top9 = 3: expected a table of top9's options",
        ),
        (
            "[[group]]\nname='a'\nmodels=['lenet5']\nanalyses=['activations']\noptions = { activations = { count = 3 } }",
            "options.activations.count: activations has no such option; its options: none",
        ),
    ],
)
def test_bad_suites_name_the_file_and_the_key(text, message):
    with pytest.raises(NetsightError, match=message):
        expand(parse_suite(text, "my_suite.toml"))


def test_a_group_takes_fewer_seeds_than_the_suite():
    text = "seeds = 3\n[[group]]\nname='a'\nmodels=['lenet5']\nseeds=1\n[[group]]\nname='b'\nmodels=['lenet5']\nseeds=5\n"
    runs = expand(parse_suite(text, "x.toml"))
    assert [r.config.seed for r in runs if r.group == "a"] == [0]
    assert [r.config.seed for r in runs if r.group == "b"] == [0, 1, 2]  # at most the suite's (or --seeds') count
    assert len(expand(parse_suite(text, "x.toml"), seeds=5)) == 1 + 5
    for bad in ("0", "1.5", "'2'", "[1]"):
        with pytest.raises(NetsightError, match="group 1 \\(a\\): seeds = "):
            parse_suite(text.replace("seeds=1", f"seeds={bad}"), "x.toml")


def test_missing_suite_file(tmp_path):
    with pytest.raises(NetsightError, match="no such file, and not a built-in suite"):
        load_suite(str(tmp_path / "nope.toml"))


def test_a_suite_sets_technique_options_and_quick_ones_over_them():
    text = """
[[group]]
name = "cnn"
models = ["lenet5"]
analyses = ["filters", "top9", "occlusion"]
[group.options.top9]
layer = "conv1"
maps = 16
[group.quick_options.top9]
maps = 4
[group.options.occlusion]
layer = "conv1"
occlusion_fill = 0
"""
    full, quick = (expand(parse_suite(text, "s.toml"), seeds=1, quick=q)[0] for q in (False, True))
    assert full.options == {
        "filters": {},
        "top9": {"layer": "conv1", "maps": 16},
        "occlusion": {"layer": "conv1", "occlusion_fill": 0},
    }
    assert quick.options["top9"] == {"layer": "conv1", "maps": 4} and quick.options["occlusion"] == full.options["occlusion"]


def test_the_assignment_study_keeps_its_settings_in_its_suite_file():
    """What the technique modules once held as `study=`/`study_quick=` dictionaries."""
    suite = load_suite("assignment")
    full = {r.group: r.options for r in expand(suite, seeds=2) if r.config.seed == 0 and r.config.model in ("lenet5", "lstm")}
    quick = {
        r.group: r.options
        for r in expand(suite, seeds=2, quick=True)
        if r.config.seed == 0 and r.config.model in ("lenet5", "lstm")
    }
    for name in ("deconv", "top9", "occlusion", "evolution"):
        assert full["cifar"][name]["layer"] == quick["cifar"][name]["layer"] == "conv2"
    assert (full["cifar"]["top9"]["maps"], quick["cifar"]["top9"]["maps"]) == (16, 8)
    assert (full["cifar"]["invariance"], quick["cifar"]["invariance"]) == ({"count": 100}, {"count": 20})
    assert (
        full["cifar"]["sanity"]["methods"].split(",")[-1] == "deconvnet" and "occlusion" not in full["cifar"]["sanity"]["methods"]
    )
    assert quick["cifar"]["agreement"] == {"count": 4, "methods": "gradient,guided_backprop,gradcam", "ig_steps": 8, "samples": 4}
    assert (full["rnn"]["units"], quick["rnn"]["units"]) == ({"count": 10_000}, {"count": 500})
    assert full["cnn-mnist"]["rows"] == full["rnn"]["rows"] == {"count": 500}
    assert quick["cnn-mnist"]["rows"] == quick["rnn"]["rows"] == {"count": 50}
    assert quick["cifar"]["sanity"]["randomise_layers"] == 2 and "randomise_layers" not in full["cifar"]["sanity"]
