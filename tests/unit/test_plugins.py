"""An unknown train.method is refused, naming the registered algorithms."""

import pytest

import tests.plugins  # noqa: F401  (registers "sequence_reinforce")
from seqgan_ray.algorithms import ALGORITHMS, load_algorithm
from seqgan_ray.config import ConfigError, load_config


def test_an_unknown_method_is_refused_naming_the_registered_ones():
    with pytest.raises(ConfigError, match="seqgan, mle, scheduled_sampling") as err:
        load_config(None, ["train.method=seqgam"])
    assert "sequence_reinforce" in str(err.value)  # registered from the tests
    with pytest.raises(ConfigError, match="no_such_module"):
        load_config(None, ["train.method=no_such_module:Algo"])
    assert load_algorithm("mle") is ALGORITHMS["mle"]
