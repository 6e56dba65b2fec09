"""No Ray below the Ray layer: every module outside distributed/ imports without it."""

import subprocess
import sys

from tests.helpers import ROOT


def test_modules_outside_the_ray_layer_do_not_import_ray():
    """Every module but distributed/, the CLI and the benchmark (which starts Ray) imports
    without Ray: the trainer is handed its roles."""
    package = ROOT / "seqgan_ray"
    modules = sorted(".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
                     for p in package.rglob("*.py")
                     if p.parts[len(package.parts)] not in ("distributed", "cli.py", "__main__.py")
                     and p.name != "bench.py")
    assert "seqgan_ray.trainer" in modules and "seqgan_ray.algorithms.seqgan" in modules
    code = ("import sys; " + "; ".join(f"import {m}" for m in modules)
            + "; bad = [m for m in sys.modules if m == 'ray' or m.startswith('ray.')]; assert not bad, bad")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
