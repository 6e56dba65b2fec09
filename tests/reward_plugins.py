"""A user-defined reward, as docs/rewards.md describes: imported by `rollout.reward`."""



class TokenShare:
    """The share of a sequence's tokens that are token 3: a reward any policy can learn."""

    def __init__(self, cfg, real):
        self.target = 3

    def __call__(self, seqs):
        return (seqs == self.target).float().mean(1)
