"""MaskGAN with its learner and discriminator as Ray actors: the objectives travel by reference,
each role's copy of the other's network by state dict; the same metrics as in one process."""

from tests.e2e.test_maskgan import maskgan_config
from tests.helpers import assert_ray_matches_one_process


def test_maskgan_on_ray_actors_matches_one_process(ray_cluster, tmp_path):
    assert_ray_matches_one_process(maskgan_config(), tmp_path)


def test_maskgan_learner_actor_death_recovers_and_writes_the_uninterrupted_metrics(ray_cluster, tmp_path):
    """The learner actor dies inside its third G step (iteration 2); new actors continue from the
    checkpoint after iteration 1, and the run's metrics are those of an uninterrupted run."""
    from seqgan_ray.distributed.recovery import ray_roles, train_with_recovery
    from seqgan_ray.roles import GeneratorLearner
    from seqgan_ray.tasks.synthetic import load_task
    from seqgan_ray.trainer import local_roles, train
    from tests.helpers import stable_metrics
    from tests.ray.test_faults import SPEC, _dies_once

    cfg = maskgan_config()
    task = load_task(cfg.data)
    learner = _dies_once(GeneratorLearner, "adversarial_step", tmp_path / "died", after_calls=3)
    train_with_recovery(cfg, task, lambda: ray_roles(cfg, SPEC, 1, learner_cls=learner), tmp_path / "run", retries=1)
    assert (tmp_path / "died").exists()
    train(cfg, task, local_roles(cfg), tmp_path / "whole")
    got, want = stable_metrics(tmp_path / "run" / "metrics.jsonl"), stable_metrics(tmp_path / "whole" / "metrics.jsonl")
    assert [r["step"] for r in got if "gen/reward_mean" in r] == [1, 2, 3]
    assert [r.keys() for r in got] == [r.keys() for r in want]
    for a, b in zip(got, want):
        for key, value in a.items():
            if isinstance(value, float):
                assert abs(value - b[key]) <= 1e-4 * max(1.0, abs(b[key])), (key, value, b[key])
