"""TDPO-R: the DDIM policy log-probability, per-prompt normalisation, the per-timestep schedule, the active-neuron
reset, and determinism on a tiny environment."""
import math

import pytest
import torch

from repro.tdpor import critic, diffusion, env, experiment, train


def test_ddim_logprob_matches_the_closed_form_gaussian():
    assert experiment.logprob_check() < 1e-5
    s = diffusion.Schedule()
    t = s.timesteps()
    # eta = 1: sigma_t^2 = (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev), positive at every step (final a_0 < 1)
    a_t, a_prev = s.alphas_cumprod[t], s.prev_alpha(t)
    assert torch.allclose(s.sigma(t) ** 2, (1 - a_prev) / (1 - a_t) * (1 - a_t / a_prev))
    assert (s.sigma(t) > 0).all()
    # mean over dimensions, not sum
    x, mean, sigma = torch.zeros(1, 2), torch.ones(1, 2), torch.full((1, 1), 0.5)
    expected = -1 / (2 * 0.25) - math.log(0.5) - 0.5 * math.log(2 * math.pi)
    assert diffusion.gaussian_logprob(x, mean, sigma).item() == pytest.approx(expected)


def test_policy_step_logprob_of_its_own_sample_is_recomputed_exactly():
    torch.manual_seed(0)
    s = diffusion.Schedule()
    model = env.EpsNet(s.n_train)
    c = torch.zeros(8, dtype=torch.long)
    states, logps, ts = diffusion.sample(model, s, c, torch.Generator().manual_seed(0))
    k = 7
    _, lp, _, _ = diffusion.policy_step(model, s, states[:, k], ts[k].expand(8), c, prev_sample=states[:, k + 1])
    assert torch.allclose(lp, logps[:, k], atol=1e-5)


def test_reward_normalisation_is_per_prompt_with_batch_stats_below_min_count():
    norm = train.PerPromptNormalizer(buffer=4, min_count=3)
    prompts = torch.tensor([0, 0, 1, 1])
    r = torch.tensor([1.0, 3.0, 10.0, 30.0])
    first = norm.update(prompts, r)  # 2 < min_count per prompt: statistics of the whole batch
    assert torch.allclose(first, (r - r.mean()) / (r.std() + 1e-6))
    second = norm.update(prompts, torch.tensor([2.0, 2.0, 20.0, 20.0]))  # 4 >= 3: each prompt's own buffer
    b0, b1 = torch.tensor([1.0, 3.0, 2.0, 2.0]), torch.tensor([10.0, 30.0, 20.0, 20.0])
    assert torch.allclose(second[:2], (2.0 - b0.mean()) / (b0.std(unbiased=False) + 1e-6))
    assert torch.allclose(second[2:], (20.0 - b1.mean()) / (b1.std(unbiased=False) + 1e-6))
    norm.update(prompts, torch.tensor([5.0, 5.0, 50.0, 50.0]))
    assert len(norm.stats[0]) == 4  # the buffer keeps the last 4


def test_per_timestep_schedule_step_count_and_coverage():
    gen = torch.Generator().manual_seed(0)
    batches = list(train.tdpo_schedule(10, 20, 4, gen))
    assert len(batches) == 20 * 3 == train.optimiser_steps("tdpo", 10, 20, 4)
    assert train.optimiser_steps("ddpo", 10, 20, 4) == 3
    seen = torch.zeros(10, 20, dtype=torch.long)
    for idx, k in batches:
        seen[idx, k] += 1
    assert (seen == 1).all()  # every (sample, timestep) exactly once per epoch


def test_reset_touches_exactly_the_active_neurons_and_zeroes_their_moments():
    out = experiment.reset_check(seed=0)
    assert out["wrong_neurons"] == 0 and out["max_moment"] == 0.0
    assert 0 < out["active"] < out["neurons"]


def test_redo_zeroes_outgoing_weights_of_dormant_neurons_and_full_reset_clears_the_optimiser():
    torch.manual_seed(1)
    feats = env.FourierFeatures(seed=1)
    crit = critic.Critic(64)
    opt = torch.optim.AdamW(crit.parameters(), lr=1e-3)
    e = feats(torch.randn(64, 2))
    crit(e).sum().backward()
    opt.step()
    scores = critic.neuron_scores(crit, e)
    masks = critic.reset(crit, opt, e, "dormant", 0.0, 0)
    for k, (s, m) in enumerate(zip(scores, masks)):
        assert torch.equal(m, s <= 0.0)
        # rows re-drawn as the next layer's own dormant neurons are excluded (that layer's incoming weights)
        keep = ~masks[k + 1] if k + 1 < len(masks) else torch.ones(1, dtype=torch.bool)
        assert (crit.linears[k + 1].weight[keep][:, m] == 0).all()
    critic.reset(crit, opt, e, "all", 0.0, 0)
    assert not opt.state
    with pytest.raises(ValueError):
        critic.reset(crit, opt, e, "some", 0.0, 0)


@pytest.fixture(scope="module")
def tiny_environment():
    plan = experiment.Plan(seeds=1, epochs=2, batch=16, minibatch=8, pretrain_steps=30, reward_steps=30,
                           reset_period=1)
    return plan, experiment._build((0, plan.pretrain_steps, plan.reward_steps))


def test_same_seed_same_numbers_and_every_method_runs(tiny_environment):
    plan, e = tiny_environment
    for name, cfg in experiment.configs(plan).items():
        a = train.run(cfg, e.base, e.rewards, e.schedule, 3, e.features)
        b = train.run(cfg, e.base, e.rewards, e.schedule, 3, e.features)
        assert set(a["curves"]) >= {"proxy", "gold", "ood", "queries"}, name
        for key in a["curves"]:
            assert (a["curves"][key] == b["curves"][key]).all(), (name, key)
        if cfg.method == "tdpo":
            assert a["steps_per_epoch"] == 20 * 2
            assert a["resets"] == ([1, 2] if cfg.reset != "none" else [])


def test_matched_proxy_interpolation():
    curve = {"proxy": [0.0, 1.0, 2.0, 3.0], "gold": [0.0, 1.0, 0.5, 0.0], "ood": [0.0, 0.0, 0.0, 0.0],
             "queries": [10, 20, 30, 40]}
    import numpy as np
    run = {"curves": {k: np.array(v, dtype=float) for k, v in curve.items()}}
    assert experiment.first_crossing(np.array([0.0, 1.0, 2.0]), 1.5) == pytest.approx(1.5)
    assert np.isnan(experiment.first_crossing(np.array([0.0, 1.0]), 5.0))
    assert experiment.queries_to_reach(run, experiment.smooth(run["curves"]["proxy"])[1]) == pytest.approx(20.0)
