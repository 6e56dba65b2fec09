"""LeakGAN on Ray actors: rewards, negatives and evaluation samples on the rollout actors,
each holding G and its D snapshot; the same metrics as in one process."""

from tests.e2e.test_leakgan import leakgan_config
from tests.helpers import assert_ray_matches_one_process


def test_leakgan_on_ray_actors_matches_one_process(ray_cluster, tmp_path):
    assert_ray_matches_one_process(leakgan_config(), tmp_path)
