"""RelGAN and TextGAN with their learner and discriminator as Ray actors: the objectives travel
by reference, each role's copy of the other's network by state dict; the same metrics as in one
process."""

import pytest

from tests.e2e.test_relaxed import relaxed_config
from tests.e2e.test_textgan import textgan_config
from tests.helpers import assert_ray_matches_one_process


@pytest.mark.parametrize("method", ["relgan", "textgan"])
def test_relaxed_gan_on_ray_actors_matches_one_process(ray_cluster, tmp_path, method):
    assert_ray_matches_one_process(relaxed_config("relgan") if method == "relgan" else textgan_config(), tmp_path)
