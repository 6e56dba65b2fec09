"""MaskGAN with its learner and discriminator as Ray actors: the objectives travel by reference,
each role's copy of the other's network by state dict; the same metrics as in one process."""

from tests.e2e.test_maskgan import maskgan_config
from tests.helpers import assert_ray_matches_one_process


def test_maskgan_on_ray_actors_matches_one_process(ray_cluster, tmp_path):
    assert_ray_matches_one_process(maskgan_config(), tmp_path)
