"""SeqGAN with rollout.estimator critic on Ray actors: the value net lives in the learner actor;
the same metrics as in one process."""

import copy

from seqgan_ray.config import config_from_dict
from tests.helpers import LONGER, assert_ray_matches_one_process


def test_critic_estimator_on_ray_actors_matches_one_process(ray_cluster, tmp_path):
    data = copy.deepcopy(LONGER)
    data["rollout"] = {**data["rollout"], "estimator": "critic"}
    assert_ray_matches_one_process(config_from_dict(data), tmp_path)
