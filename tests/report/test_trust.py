"""The study report's "Which pictures to trust": one sentence per method from the measured numbers,
with the thresholds stated in it (netsight/report/trust.py)."""

from __future__ import annotations

from netsight.report.trust import FAILS_ABOVE, PASSES_BELOW, agreement_table, faith_table, sentence


def _sanity(method: str, mean: float, lo: float, hi: float) -> list[dict]:
    rows = []
    for depth in (1, 2, 3):
        m = mean if depth == 3 else 0.99  # only the deepest depth (every layer random) decides
        rows.append(dict(method=method, mode="cascading", layer=f"l{depth}", depth=str(depth), metric="spearman_abs",
                         mean=str(m), lo=str(lo if depth == 3 else 0.98), hi=str(hi if depth == 3 else 1.0), n="8"))  # fmt: skip
    return rows


FAITH = [
    dict(method="gradient", curve="deletion", auc_mean="0.10", auc_lo="0.08", auc_hi="0.12", n="8"),
    dict(method="random", curve="deletion", auc_mean="0.40", auc_lo="0.35", auc_hi="0.45", n="8"),
    dict(method="sobel", curve="deletion", auc_mean="0.11", auc_lo="0.09", auc_hi="0.14", n="8"),
    dict(method="gradient", curve="insertion", auc_mean="0.70", auc_lo="0.60", auc_hi="0.80", n="8"),
]


def test_a_method_passes_fails_or_sits_between_by_its_interval():
    low = sentence("gradient", _sanity("gradient", 0.1, 0.05, PASSES_BELOW - 0.01), [], [], [])
    assert low is not None and low.startswith(
        "gradient: after every layer is randomised its maps correlate only 0.10 [0.05, 0.29]"
    )
    assert "depend on what the model learned" in low
    high = sentence("guided_backprop", _sanity("guided_backprop", 0.82, FAILS_ABOVE + 0.28, 0.86), [], [], [])
    assert high is not None and "still correlate 0.82 [0.78, 0.86]" in high and "mostly redraws the image" in high
    mid = sentence("gradcam", _sanity("gradcam", 0.4, 0.2, 0.6), [], [], [])
    assert mid is not None and "between the two thresholds" in mid
    assert sentence("smoothgrad", _sanity("gradcam", 0.4, 0.2, 0.6), [], [], []) is None


def test_the_sentence_adds_faithfulness_seed_agreement_and_permuted_labels():
    agreement = [dict(method="gradient", metric="spearman", seeds="3", pairs="3", mean="0.21", lo="0.15", hi="0.27", n="16")]
    permuted = [dict(method="gradient", mode="permuted labels", layer="", depth="0", metric="spearman_abs", mean="0.05",
                     lo="0.01", hi="0.09", n="8")]  # fmt: skip
    s = sentence("gradient", _sanity("gradient", 0.1, 0.05, 0.2), FAITH, agreement, permuted)
    assert s is not None
    assert "area of 0.10 [0.08, 0.12], clearly below the random map" in s and "Sobel" not in s  # the intervals overlap
    assert "two seeds' maps of the same image correlate 0.21 [0.15, 0.27]" in s
    assert "permuted labels gives maps correlating 0.05 [0.01, 0.09]" in s and s.endswith(".")


def test_tables():
    header, rows = faith_table(FAITH)
    assert header[1].startswith("deletion") and rows[0] == ["gradient", "0.10 [0.08, 0.12]", "0.70 [0.60, 0.80]"]
    assert rows[1][0] == "random map (baseline)" and rows[1][2] == ""
    header, rows = agreement_table(
        [
            dict(method="gradcam", metric=k, seeds="3", pairs="3", mean="0.5", lo="0.4", hi="0.6", n="4")
            for k in ("spearman", "spearman_abs")
        ]
    )
    assert rows == [["Grad-CAM", "3", "0.50 [0.40, 0.60]", "0.50 [0.40, 0.60]"]]
