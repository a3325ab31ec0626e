"""Paired statistics against independent closed-form computations (not against the same library call)."""

import json
import math
from itertools import product

import numpy as np
import pytest
from scipy import stats

from lmjepa.cli.main import main
from lmjepa.data.jsonl import DataError
from lmjepa.stats.compare import compare, k_lambda_grid, load_results, load_stores, write_report
from lmjepa.stats.paired import (bootstrap_ci, correct, format_p, mcnemar, minimum_detectable_effect, paired_comparison,
                                 seeds_needed, wilcoxon_min_p)

BASE = [57.0, 52.5, 60.0, 49.0, 55.5]  # five seeds, in percent
CELL = [60.0, 58.0, 61.5, 50.5, 62.0]


def test_t_test_and_effect_size_match_closed_form():
    d = np.array(CELL) - np.array(BASE)
    t = d.mean() / (d.std(ddof=1) / math.sqrt(len(d)))
    r = paired_comparison(BASE, CELL)
    assert r.delta == pytest.approx(d.mean())
    assert r.t == pytest.approx(t)
    assert r.p_t_one_sided == pytest.approx(stats.t.sf(t, df=4))  # Student t tail, H1: cell > baseline
    assert r.p_t_two_sided == pytest.approx(2 * stats.t.sf(abs(t), df=4))
    assert r.cohens_dz == pytest.approx(d.mean() / d.std(ddof=1))
    assert r.baseline_sd == pytest.approx(np.std(BASE, ddof=1))


def test_exact_wilcoxon_by_enumerating_all_sign_flips():
    d = np.array(CELL) - np.array(BASE)
    ranks = stats.rankdata(np.abs(d))
    observed = ranks[d > 0].sum()
    flips = [sum(r for r, s in zip(ranks, signs) if s) for signs in product([0, 1], repeat=len(d))]
    mean = ranks.sum() / 2
    p_two = np.mean([abs(w - mean) >= abs(observed - mean) - 1e-12 for w in flips])
    r = paired_comparison(BASE, CELL)
    assert r.p_wilcoxon_two_sided == pytest.approx(p_two)
    assert r.wilcoxon_min_p_two_sided == 0.0625 and not r.wilcoxon_can_reject  # n = 5 can never reach 0.05
    assert paired_comparison([1, 2, 3, 4], [1, 2, 4, 6]).wilcoxon_nonzero == 2  # ties at zero are dropped
    assert wilcoxon_min_p(6) == pytest.approx(0.03125) and wilcoxon_min_p(5, two_sided=False) == 0.03125


def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    d = np.array(CELL) - np.array(BASE)
    low, high = bootstrap_ci(d, seed=1)
    assert (low, high) == bootstrap_ci(d, seed=1)
    assert d.min() <= low < d.mean() < high <= d.max()
    assert bootstrap_ci(np.full(5, 2.0)) == (2.0, 2.0)


def test_constant_difference_gives_undefined_t_not_significance():
    r = paired_comparison([1, 2, 3], [2, 3, 4])
    assert math.isnan(r.t) and math.isnan(r.p_t_one_sided) and math.isnan(r.cohens_dz)
    with pytest.raises(ValueError):
        paired_comparison([1, 2], [1, 2, 3])
    with pytest.raises(ValueError):
        paired_comparison([1], [2])


def test_holm_bonferroni_and_bh_by_hand():
    p = [0.010, 0.040, 0.030, 0.005]
    m = len(p)
    reject, adjusted = correct(p, "bonferroni")
    assert adjusted == pytest.approx([min(1, x * m) for x in p]) and reject == [True, False, False, True]
    # Holm: sorted 0.005, 0.010, 0.030, 0.040 → ×4, ×3, ×2, ×1 with running max → 0.02, 0.03, 0.06, 0.06
    reject, adjusted = correct(p, "holm")
    assert adjusted == pytest.approx([0.03, 0.06, 0.06, 0.02]) and reject == [True, False, False, True]
    # BH: sorted × m/rank → 0.02, 0.02, 0.04, 0.04 (running min from the top)
    reject, adjusted = correct(p, "bh")
    assert adjusted == pytest.approx([0.02, 0.04, 0.04, 0.02]) and reject == [True, True, True, True]
    reject, adjusted = correct([0.001, float("nan")], "holm")
    assert reject == [True, False] and math.isnan(adjusted[1]) and adjusted[0] == pytest.approx(0.002)
    with pytest.raises(ValueError):
        correct(p, "sidak-ish")


@pytest.mark.parametrize("n, alpha, sd", [(5, 0.05, 1.0), (5, 0.05 / 22, 2.5), (3, 0.05, 0.4), (10, 0.01, 1.7)])
def test_minimum_detectable_effect_has_the_stated_power_by_the_noncentral_t(n, alpha, sd):
    """At the returned Δ the one-sided paired t-test rejects with probability 0.8: scipy's noncentral t, and a
    simulation of the test itself."""
    mde = minimum_detectable_effect(sd, n, alpha)
    critical = stats.t.ppf(1 - alpha, n - 1)
    assert stats.nct.sf(critical, n - 1, mde / sd * np.sqrt(n)) == pytest.approx(0.8, abs=1e-6)
    rng = np.random.default_rng(0)
    d = rng.normal(mde, sd, size=(20_000, n))
    t = d.mean(axis=1) / (d.std(axis=1, ddof=1) / np.sqrt(n))
    assert (t > critical).mean() == pytest.approx(0.8, abs=0.015)
    assert minimum_detectable_effect(2 * sd, n, alpha) == pytest.approx(2 * mde)  # linear in the sd


def _power(delta, sd, n, alpha):
    """The one-sided paired t-test's power, from scipy's noncentral t (independent of statsmodels)."""
    return stats.nct.sf(stats.t.ppf(1 - alpha, n - 1), n - 1, delta / sd * np.sqrt(n))


@pytest.mark.parametrize("delta, sd, alpha", [(0.4, 2.88, 0.05 / 3), (1.0, 1.0, 0.05), (3.0, 1.0, 0.05), (0.1, 0.4, 0.01),
                                             (13 / 3, 3 ** -0.5, 0.05)])  # statsmodels' solver returns NaN here
def test_seeds_needed_is_the_first_n_with_the_power(delta, sd, alpha):
    n = seeds_needed(delta, sd, alpha)
    assert _power(delta, sd, n, alpha) >= 0.8
    assert n == 2 or _power(delta, sd, n - 1, alpha) < 0.8
    mde = minimum_detectable_effect(sd, 7, alpha)  # solved to ~1e-6 in power: the inverse of the MDE up to that
    assert seeds_needed(mde * 1.001, sd, alpha) == 7 and seeds_needed(mde * 0.99, sd, alpha) == 8


def test_minimum_detectable_effect_edges():
    assert seeds_needed(0.0, 1.0, 0.05) is None and seeds_needed(-1.0, 1.0, 0.05) is None
    assert seeds_needed(1.0, 0.0, 0.05) is None
    assert math.isnan(minimum_detectable_effect(1.0, 1, 0.05)) and math.isnan(minimum_detectable_effect(0.0, 5, 0.05))
    assert math.isnan(minimum_detectable_effect(math.nan, 5, 0.05))
    with pytest.raises(ValueError, match="must lie in"):
        minimum_detectable_effect(1.0, 5, 0.0)


def test_mcnemar_exact_is_a_binomial_test_on_discordant_pairs():
    a = [1, 1, 1, 0, 0, 1, 0, 1, 1, 0, 1, 1]
    b = [1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1]
    result = mcnemar(a, b)
    assert (result["b"], result["c"]) == (5, 1)
    n, k = 6, 1
    p = min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)
    assert result["p"] == pytest.approx(p)
    with pytest.raises(ValueError):
        mcnemar([1, 0], [1])


# ---- lmjepa compare on a results store -----------------------------------------------------------

def _results(tmp_path):
    rows = []
    for seed, base, cell in zip([82, 23, 37, 84, 4], BASE, CELL):
        rows.append({"cell": "ntp", "seed": seed, "metrics": {"exact_match": base, "semantic_match": base + 5}})
        rows.append({"cell": "llm-jepa", "seed": seed, "metrics": {"exact_match": cell, "semantic_match": base + 5.5,
                                                                    "grad_cosine_mean": seed / 100}})
    rows.append({"cell": "llm-jepa", "seed": 99, "metrics": {"exact_match": 99.0, "semantic_match": 99.0}})  # unpaired
    path = tmp_path / "results.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_compare_pairs_by_seed_and_corrects_over_the_family(tmp_path, capsys):
    path = _results(tmp_path)
    result = compare(load_results(path), "ntp", ["exact_match", "semantic_match"], "holm")
    assert result["family_size"] == 2
    exact = next(t for t in result["tests"] if t["metric"] == "exact_match")
    direct = paired_comparison(BASE, CELL)
    assert exact["seeds"] == [4, 23, 37, 82, 84] and exact["unpaired_seeds"] == [99]
    assert exact["delta"] == pytest.approx(direct.delta) and exact["p_t_one_sided"] == pytest.approx(direct.p_t_one_sided)
    semantic = next(t for t in result["tests"] if t["metric"] == "semantic_match")
    assert math.isnan(semantic["p_t_one_sided"]) and not semantic["reject_one_sided"]  # constant Δ: undefined
    assert exact["p_t_one_sided_corrected"] == pytest.approx(min(1.0, 2 * direct.p_t_one_sided))  # Holm, m = 2
    sd = np.std(np.subtract(CELL, BASE), ddof=1)
    assert exact["mde_one_sided"] == pytest.approx(minimum_detectable_effect(sd, 5, 0.05 / 2))
    assert math.isnan(semantic["mde_one_sided"])  # constant Δ: sd 0

    assert main(["compare", str(path), "--baseline", "ntp", "--metric", "exact_match", "--metric", "semantic_match",
                 "--out", str(tmp_path / "cmp")]) == 0
    report = (tmp_path / "cmp" / "report.md").read_text()
    assert "Family: 2 tests" in report and "holm correction" in report
    # one note per number of non-zero pairs, naming every test it applies to (here both: 5 pairs, p >= 0.0625)
    assert report.count("can never reject") == 1
    assert ("With 5 non-zero pairs (ties dropped) the exact Wilcoxon test cannot go below p = 0.0625, so it can "
            "never reject at α = 0.05: llm-jepa / exact_match, llm-jepa / semantic_match.") in report
    assert f"| {exact['mde_one_sided']:.2f} |" in report and "80 % power" in report and "at α/2" in report
    assert exact["seeds_for_observed_delta"] == seeds_needed(exact["delta"], sd, 0.05 / 2)
    assert exact["reject_one_sided"] and "would take" not in report  # a gain that was found needs no planning
    assert "seeds [99]" in report
    coupling = result["grad_cosine"]["llm-jepa"]
    assert coupling["runs"] == 5 and coupling["mean"] == pytest.approx(np.mean([0.82, 0.23, 0.37, 0.84, 0.04]))
    assert "Gradient coupling" in report and "ntp" not in result["grad_cosine"]
    assert json.loads((tmp_path / "cmp" / "stats.json").read_text())["family_size"] == 2
    assert (tmp_path / "cmp" / "deltas.png").stat().st_size > 1000


def test_a_positive_null_says_how_many_seeds_its_delta_would_need(tmp_path):
    rows = [{"cell": cell, "seed": seed, "metrics": {"exact_match": value}}
            for seed, base, gain in zip([82, 23, 37, 84, 4], BASE, [1.0, -2.0, 2.5, 0.5, -1.0])
            for cell, value in (("ntp", base), ("llm-jepa", base + gain))]
    result = compare(rows, "ntp", ["exact_match"])
    (test,) = result["tests"]
    assert not test["reject_one_sided"] and test["delta"] == pytest.approx(0.2)
    n = seeds_needed(0.2, np.std([1.0, -2.0, 2.5, 0.5, -1.0], ddof=1), 0.05)
    assert test["seeds_for_observed_delta"] == n and n > 100
    report = (write_report(result, tmp_path / "cmp")).read_text()
    assert f"llm-jepa / exact_match: were the observed Δ (+0.20) the true gain" in report
    assert f"would take ≈ {n} seeds" in report


def test_compare_errors(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"cell": "a", "seed": 1, "metrics": {}}\n{"cell": "a", "seed": 2}\n')
    with pytest.raises(DataError, match=rf"{path}:2: missing 'metrics'"):
        load_results(path)
    with pytest.raises(ValueError, match="baseline cell 'zzz' not in results"):
        compare(load_results(_results(tmp_path)), "zzz", ["exact_match"])


def test_compare_across_stores_pairs_the_same_seeds_under_labelled_cells(tmp_path, capsys):
    """Two stores (e.g. the same cells trained in fp32 and in bf16): cells become LABEL/cell and pair by seed,
    exactly as if one store held both."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = _results(tmp_path / "a"), _results(tmp_path / "b")
    shifted = [{**json.loads(line), "metrics": {k: v + 1.0 for k, v in json.loads(line)["metrics"].items()}}
               for line in second.read_text().splitlines()]
    second.write_text("".join(json.dumps(r) + "\n" for r in shifted))
    rows = load_stores([f"fp32={first}", f"bf16={second}"], ["fp32/ntp", "bf16/ntp"])
    assert sorted({r["cell"] for r in rows}) == ["bf16/ntp", "fp32/ntp"] and len(rows) == 10
    result = compare(rows, "fp32/ntp", ["exact_match"])
    (test,) = result["tests"]
    assert test["cell"] == "bf16/ntp" and test["seeds"] == [4, 23, 37, 82, 84] and test["delta"] == pytest.approx(1.0)
    assert [r["cell"] for r in load_stores([str(first)])] == [r["cell"] for r in load_results(first)]  # one: as is
    assert {r["cell"] for r in load_stores([str(first), str(second)])} >= {"a/ntp", "b/llm-jepa"}  # folder names
    with pytest.raises(ValueError, match="share a label"):
        load_stores([f"x={first}", f"x={second}"])
    with pytest.raises(ValueError, match="no cell 'fp32/stp'"):
        load_stores([f"fp32={first}", f"bf16={second}"], ["fp32/stp"])
    assert main(["compare", f"fp32={first}", f"bf16={second}", "--baseline", "fp32/ntp", "--cells",
                 "fp32/ntp,bf16/ntp,bf16/llm-jepa", "--out", str(tmp_path / "cmp")]) == 0
    report = (tmp_path / "cmp" / "report.md").read_text()
    assert "bf16/ntp" in report and "bf16/llm-jepa" in report and "fp32/llm-jepa" not in report


def test_mcnemar_cli(tmp_path, capsys):
    for name, verdicts in (("a", [1, 1, 1, 0, 1, 1]), ("b", [0, 0, 1, 0, 0, 1])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "predictions.jsonl").write_text("".join(json.dumps({"exact_match": bool(v)}) + "\n" for v in verdicts))
    assert main(["compare", "--mcnemar", str(tmp_path / "a"), str(tmp_path / "b")]) == 0
    assert "3 examples right only in" in capsys.readouterr().out


def test_k_lambda_grid_and_heatmap(tmp_path):
    rows = [{"cell": f"k{k}-l{lbd}", "seed": seed, "config": {"jepa": {"predictors": k, "lbd": lbd}},
             "metrics": {"exact_match": 10 * k + lbd + seed}}
            for k in (0, 1) for lbd in (0.5, 1.0, 2.0) for seed in (1, 3)]
    ks, lambdas, means = k_lambda_grid(rows, "exact_match")
    assert ks == [0, 1] and lambdas == [0.5, 1.0, 2.0]
    np.testing.assert_allclose(means, [[2.5, 3.0, 4.0], [12.5, 13.0, 14.0]])  # mean over seeds 1 and 3 adds 2
    assert k_lambda_grid(rows[:6], "exact_match") is None  # one k only: no grid
    result = compare(rows, "k0-l0.5", ["exact_match"])
    write_report(result, tmp_path, rows)
    assert (tmp_path / "k_lambda.png").stat().st_size > 1000 and "k_lambda.png" in (tmp_path / "report.md").read_text()


def test_gradient_coupling_is_summarised_per_term():
    rows = []
    for seed in (1, 2, 3):
        rows.append({"cell": "ntp", "seed": seed, "metrics": {"exact_match": 50.0 + seed}})
        rows.append({"cell": "aux", "seed": seed, "metrics": {"exact_match": 51.0 + seed, "grad_cosine_mean": 0.1 * seed,
                                                              "grad_cosine_sigreg_mean": -0.2 * seed}})
    coupling = compare(rows, "ntp", ["exact_match"])["grad_cosine"]
    assert coupling["aux · llm-jepa"]["mean"] == pytest.approx(0.2)
    assert coupling["aux · sigreg"]["mean"] == pytest.approx(-0.4)
    assert coupling["aux · sigreg"]["sd"] == pytest.approx(np.std([-0.2, -0.4, -0.6], ddof=1))


def test_report_p_values_never_print_as_zero():
    from lmjepa.stats.paired import format_p

    assert format_p(3.14e-6) == "3.1e-06" and format_p(0.5) == "0.5000" and format_p(1e-4) == "0.0001"
    assert format_p(0.0) == "0.0000" and format_p(float("nan")) == "n/a" and format_p(None) == "n/a"


def test_a_store_with_only_the_baseline_reports_no_mde_line():
    from lmjepa.stats.compare import render_markdown

    rows = [{"cell": "ntp", "seed": seed, "metrics": {"exact_match": value}} for seed, value in zip([82, 23], BASE)]
    result = compare(rows, "ntp", ["exact_match"])
    assert result["tests"] == [] and "MDE: the minimum detectable effect" not in render_markdown(result)
    rows += [{"cell": "llm-jepa", "seed": seed, "metrics": {"exact_match": value}} for seed, value in zip([82, 23], CELL)]
    assert "MDE: the minimum detectable effect" in render_markdown(compare(rows, "ntp", ["exact_match"]))


def test_contrasts_pair_each_cell_with_its_own_reference_against_scipy():
    """Two declared contrasts (b vs a, d vs c): the two-sided paired t-test of each against scipy, Holm over
    the family of 2 by hand, the decision's direction, and b's Δ exact split into content and termination."""
    from lmjepa.errors import ConfigError
    from lmjepa.stats.contrasts import contrast, render_contrasts

    seeds = [82, 23, 37, 84, 4]
    a, c = np.array(BASE), np.array(CELL)
    b = a + np.array([10.0, 11.0, 12.0, 10.0, 11.5])  # clearly up
    d = c + np.array([0.5, -1.0, 1.5, -0.5, 0.0])  # noise
    rows = [{"cell": cell, "seed": s, "metrics": {"exact_match": float(v[i]), "contains_target": float(v[i]) + 5}}
            for cell, v in (("a", a), ("b", b), ("c", c), ("d", d)) for i, s in enumerate(seeds)]
    result = contrast(rows, [("b", "a"), ("d", "c")], ["exact_match"])
    assert result["family_size"] == 2 and [t["reference"] for t in result["tests"]] == ["a", "c"]
    p = [stats.ttest_rel(b, a).pvalue, stats.ttest_rel(d, c).pvalue]
    low, high = sorted(range(2), key=lambda i: p[i])
    holm = [0.0, 0.0]
    holm[low] = min(1.0, 2 * p[low])
    holm[high] = min(1.0, max(holm[low], p[high]))  # Holm's step-down, kept monotone
    for test, p_raw, p_holm, gain in zip(result["tests"], p, holm, (b - a, d - c)):
        assert test["p_t_two_sided"] == pytest.approx(p_raw) and test["p_t_two_sided_corrected"] == pytest.approx(p_holm)
        assert test["delta"] == pytest.approx(gain.mean())
    up, noise = result["tests"]
    assert up["reject_two_sided"] and not noise["reject_two_sided"]
    split = result["termination"]["b vs a"]
    assert split["delta_exact"] == pytest.approx((b - a).mean())
    assert split["content"] + split["termination"] == pytest.approx(split["delta_exact"])
    lines = "\n".join(render_contrasts(result, contrast(rows, [("b", "a"), ("d", "c")], ["exact_match"], "bonferroni")))
    assert "Family: 2 tests (contrasts × metrics), holm correction" in lines
    assert "| b | a | exact_match | 5 |" in lines and "| **up** |" in lines and "| no evidence |" in lines
    assert f"| {format_p(min(1.0, 2 * p[0]))} | **up** |" in lines  # Bonferroni's two-sided p beside Holm's
    assert "**b vs a**: Δ exact" in lines and "each cell vs its reference" in lines
    with pytest.raises(ConfigError, match="contrast b vs zzz: no runs of cell 'zzz'"):
        contrast(rows, [("b", "zzz")], ["exact_match"])
    assert contrast(rows, [], ["exact_match"])["tests"] == [] and render_contrasts(contrast(rows, [], ["x"])) == []


def test_ci_is_the_t_interval_at_few_seeds_and_bca_above():
    from scipy import stats as st

    from lmjepa.stats.paired import mean_ci

    d = np.array([2.0, -8.5, -3.0, 0.5, -0.5])  # the audit's chat − ntp exact match, 5 seeds
    low, high, method = mean_ci(d)
    assert method == "t" and (low, high) == pytest.approx(st.t.interval(0.95, 4, loc=d.mean(), scale=st.sem(d)))
    assert (round(low, 1), round(high, 1)) == (-7.0, 3.2)
    wide = np.random.default_rng(0).normal(1.0, 2.0, 30)
    low, high, method = mean_ci(wide)
    assert method == "BCa bootstrap" and low < wide.mean() < high


def test_wilcoxon_is_exact_under_ties_and_zeros_by_enumeration():
    import itertools

    from scipy import stats as st

    from lmjepa.stats.paired import wilcoxon_p

    def brute(d):  # independent: every sign flip of the average ranks of the non-zero |d|
        d = np.asarray([x for x in d if x != 0])
        ranks = st.rankdata(np.abs(d))
        observed = ranks[d > 0].sum()
        centre = ranks.sum() / 2
        flips = [sum(r for r, s in zip(ranks, signs) if s) for signs in itertools.product([0, 1], repeat=len(d))]
        return np.mean([abs(t - centre) >= abs(observed - centre) - 1e-12 for t in flips])

    for d in ([2.0, -8.5, -3.0, 0.5, -0.5], [1.0, 1.0, -1.0, 0.0, 2.0, 2.0], [3.0, 1.0, 4.0, 1.5, 9.0],
              [0.0, 0.0, 0.6, 0.0, 0.0]):  # one non-zero difference (scipy's permutation test refuses n = 1)
        assert wilcoxon_p(np.array(d)) == pytest.approx(brute(d))
    assert wilcoxon_p(np.array([2.0, -8.5, -3.0, 0.5, -0.5])) == pytest.approx(0.5)  # the exact-no-ties test: 0.625
    assert wilcoxon_p(np.zeros(5)) == 1.0


def test_gradient_cosine_test_matches_the_closed_form_t():
    from scipy import stats as st

    from lmjepa.stats.compare import cosine_test

    v = np.array([-0.08, 0.01, -0.05, 0.02, -0.055])
    got = cosine_test(v)
    n, m, se = len(v), v.mean(), v.std(ddof=1) / np.sqrt(len(v))
    t = m / se
    assert got["p"] == pytest.approx(2 * st.t.sf(abs(t), n - 1))
    half = st.t.ppf(0.975, n - 1) * se
    assert (got["low"], got["high"]) == pytest.approx((m - half, m + half))
    assert np.isnan(cosine_test([0.1])["p"]) and np.isnan(cosine_test([0.2, 0.2])["p"])
