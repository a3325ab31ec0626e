"""The LLM-JEPA term and the objective sum against independent numpy computations."""

import numpy as np
import pytest
import torch

from lmjepa.errors import ConfigError
from lmjepa.objectives import Objective, Step
from lmjepa.objectives.jepa import gather_enc, jepa_distance


@pytest.fixture()
def pair():
    g = torch.Generator().manual_seed(0)
    return torch.randn(6, 16, generator=g, dtype=torch.float64), torch.randn(6, 16, generator=g, dtype=torch.float64)


def _np_cos(p, t):
    return (p * t).sum(1) / (np.linalg.norm(p, axis=1) * np.linalg.norm(t, axis=1))


def test_distances_match_numpy(pair):
    p, t = pair
    pn, tn = p.numpy(), t.numpy()
    assert jepa_distance(p, t, "cosine").item() == pytest.approx(np.mean(1 - _np_cos(pn, tn)), rel=1e-12)
    assert jepa_distance(p, t, "l2").item() == pytest.approx(np.mean(np.linalg.norm(pn - tn, axis=1)), rel=1e-12)
    assert jepa_distance(p, t, "mse").item() == pytest.approx(np.mean((pn - tn) ** 2), rel=1e-12)
    tau = 0.5
    sims = (pn / np.linalg.norm(pn, axis=1, keepdims=True)) @ (tn / np.linalg.norm(tn, axis=1, keepdims=True)).T / tau
    log_softmax = sims - np.log(np.exp(sims).sum(1, keepdims=True))
    assert jepa_distance(p, t, "infonce", tau).item() == pytest.approx(-np.mean(np.diag(log_softmax)), rel=1e-10)


def test_cosine_distance_is_zero_for_parallel_and_two_for_opposite(pair):
    p, _ = pair
    assert jepa_distance(p, 3 * p, "cosine").item() == pytest.approx(0.0, abs=1e-12)
    assert jepa_distance(p, -p, "cosine").item() == pytest.approx(2.0, abs=1e-12)


def test_combined_loss_is_gamma_ntp_plus_lambda_d(pair):
    p, t = pair
    ntp = torch.tensor(2.5, dtype=torch.float64)
    objective = Objective([{"name": "llm-jepa", "weight": 0.7, "distance": "cosine"}], gamma=0.3)
    out = objective(ntp, [True], Step(pred=p, target=t))
    expected = 0.3 * 2.5 + 0.7 * np.mean(1 - _np_cos(p.numpy(), t.numpy()))
    assert out.loss.item() == pytest.approx(expected, rel=1e-12)
    assert out.values["jepa_loss"].item() == pytest.approx(np.mean(1 - _np_cos(p.numpy(), t.numpy())), rel=1e-12)
    halved = objective(ntp, [True], Step(pred=p, target=t), accumulation=2)  # one of 2 micro-batches
    assert halved.loss.item() == pytest.approx(0.3 * 2.5 + 0.7 * np.mean(1 - _np_cos(p.numpy(), t.numpy())) / 2)


def test_lambda_zero_is_exactly_ntp_and_gives_no_gradient_to_views(pair):
    p, t = (x.clone().requires_grad_(True) for x in pair)
    ntp = torch.tensor(1.2345, dtype=torch.float64, requires_grad=True)
    objective = Objective([{"name": "llm-jepa", "weight": 0.0}])
    out = objective(ntp, [False], None, monitor=[True], monitor_step=Step(pred=p, target=t))
    assert out.loss.item() == 1.2345 and out.trained == []
    assert out.values["jepa_loss"].item() == pytest.approx(np.mean(1 - _np_cos(p.detach().numpy(), t.detach().numpy())))
    out.loss.backward()
    assert p.grad is None and t.grad is None
    assert ntp.grad.item() == 1.0


def test_bad_arguments_raise(pair):
    p, t = pair
    with pytest.raises(ValueError, match="unknown JEPA distance"):
        jepa_distance(p, t, "manhattan")
    with pytest.raises(ValueError, match="must both be"):
        jepa_distance(p, t[:3], "cosine")
    with pytest.raises(ValueError, match="temperature"):
        jepa_distance(p, t, "infonce", 0.0)
    with pytest.raises(ConfigError, match=r"objectives\[0\].weight must be a number ≥ 0"):
        Objective([{"name": "llm-jepa", "weight": -1.0}])


def test_gather_enc_picks_one_row_each():
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    picked = gather_enc(hidden, torch.tensor([1, 3]))
    assert torch.equal(picked, torch.stack([hidden[0, 1], hidden[1, 3]]))


def test_one_seed_helper_derives_distinct_in_range_streams():
    """``lmjepa.seeds``: over the seeds, steps and terms in use, every (seed, step, term) gets its own step seed in
    [0, 2^63) (checked against Python's exact integers), and the draw seeds of one step never collide."""
    from lmjepa.seeds import draw_seed, step_seed

    seeds, steps, terms = (82, 23, 37, 84, 4, 11, 42, 57), range(0, 3000, 7), range(4)
    values = {(s, t, i): step_seed(s, t, i) for s in seeds for t in steps for i in terms}
    assert len(set(values.values())) == len(values) and all(0 <= v < 2**63 for v in values.values())
    assert all(v == (s * 1_000_003 + t + i * 7_919_000_003) for (s, t, i), v in values.items())  # no wrap here
    assert len({draw_seed(82, t, c) for t in range(500) for c in range(100)}) == 500 * 100
