#!/usr/bin/env python
"""Train SeqGAN on Ray. `python run.py --help` lists the options."""

import sys

from seqgan_ray.cli import main

if __name__ == "__main__":
    sys.exit(main())
