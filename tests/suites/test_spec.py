import pytest

from netsight.errors import NetsightError
from netsight.suites.spec import QUICK_ITERATIONS, expand, load_suite, parse_suite


def test_the_assignment_suite_covers_the_report():
    suite = load_suite("assignment")
    runs = expand(suite)
    assert suite.seeds == 3 and len(runs) == 2 * 3 + 9 * 3 + 2 * 3
    rnn = [r for r in runs if r.group == "rnn"]
    assert {(r.config.model, r.config.hidden) for r in rnn} == {(m, h) for m in ("rnn", "lstm", "gru") for h in (32, 64, 128)}
    assert all(r.config.lr == 1e-3 and r.config.batch_size == 128 and r.config.iterations == 5500 for r in rnn)
    cifar = [r for r in runs if r.group == "cifar"]
    assert all(r.config.data == "cifar10-assignment" and r.config.lr == 1e-4 and r.config.batch_size == 50 for r in cifar)
    first = [r for r in cifar if r.config.seed == 0]
    assert all("deconv" in r.analyses and "top9" in r.analyses for r in first)
    assert all(r.analyses == () for r in cifar if r.config.seed > 0)
    assert all(r.analyses == ("sequence",) for r in rnn)
    assert len({r.dirname for r in runs}) == len(runs)  # every run its own directory


def test_quick_shrinks_the_same_suite():
    runs = expand(load_suite("assignment"), quick=True)
    assert len(runs) == 2 * 2 + 9 * 2 + 2 * 2
    assert all(r.config.iterations == QUICK_ITERATIONS for r in runs)
    lenet = next(r for r in runs if r.config.model == "lenet5" and r.group == "cifar")
    assert lenet.config.snapshots and max(lenet.config.snapshots) <= QUICK_ITERATIONS
    assert len(expand(load_suite("assignment"), seeds=1, quick=True)) == 13


def test_equal_configs_share_a_key_and_different_ones_do_not():
    text = '[[group]]\nname = "a"\nmodels = ["lstm"]\nhidden = [8, 16]\niterations = 10\n'
    a = expand(parse_suite(text, "x.toml"))
    b = expand(parse_suite(text, "y.toml"))
    assert [r.dirname for r in a] == [r.dirname for r in b]
    assert a[0].config.key() != a[1].config.key()


@pytest.mark.parametrize("text, message", [
    ("title = ", "not valid TOML"),
    ("colour = 1\n[[group]]\nname='a'\nmodels=['lstm']", "unknown top-level key\\(s\\) colour"),
    ("title = 'x'", "no \\[\\[group\\]\\] tables"),
    ("[[group]]\nname='a'\nmodels=['resnet']", "models = \\['resnet'\\]: expected a list of lenet5"),
    ("[[group]]\nname='a'\nmodels=['lstm']\n[[group]]\nname='a'\nmodels=['gru']", "name 'a' used twice"),
    ("[[group]]\nname='a'\nmodels=['lstm']\nanalyses=['saliency']", "unknown analyses \\['saliency'\\]"),
    ("[[group]]\nname='a'\nmodels=['lstm']\nlearning_rate=1", "unknown key\\(s\\) learning_rate"),
    ("[[group]]\nname='a'\nmodels=['lstm']\nlr=-1", "--lr -1: expected a number > 0"),
    ("seeds = 0\n[[group]]\nname='a'\nmodels=['lstm']", "seeds = 0: expected an integer >= 1"),
])
def test_bad_suites_name_the_file_and_the_key(text, message):
    with pytest.raises(NetsightError, match=message):
        expand(parse_suite(text, "my_suite.toml"))


def test_missing_suite_file(tmp_path):
    with pytest.raises(NetsightError, match="no such file, and not a built-in suite"):
        load_suite(str(tmp_path / "nope.toml"))
