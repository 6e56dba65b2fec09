"""MLE pretraining of G_θ on Ray Train, for corpora too large for one process.

A `TorchTrainer` runs `pretrain_g_epochs` epochs on N data-parallel workers. Each worker
streams its share of the corpus's Parquet shards through Ray Data, pads its batches the
way `corpus.read_split` does, and after every backward pass the workers average their
gradients with one all-reduce of a flat buffer (gloo on CPU, nccl on GPU). Every worker
starts from the same θ and applies the same averaged gradient with the same Adam, so θ stays
identical everywhere; rank 0 reports the epoch's loss and a Ray Train checkpoint of θ and
the optimizer. The result is handed back as the learner's state, and the caller writes
the project's own checkpoint, so adversarial training starts from it as from the
in-process loop.

The global batch is generator.batch_size, split evenly across the workers, and each epoch
runs the same number of steps on every worker (all-reduce needs every rank to take part).
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..config import Config
from .cluster import ActorResources, ClusterError


@dataclass
class PretrainResult:
    generator: dict[str, torch.Tensor]   # θ after the last epoch
    mle_opt: dict[str, Any]              # the MLE Adam's state
    epoch_losses: list[float]            # mean MLE loss per token, per epoch
    epoch_seconds: list[float]


def pretrain_on_ray_train(cfg: Config, corpus_dir: Path, *, num_workers: int, worker: ActorResources,
                          generator_state: dict[str, torch.Tensor], storage: Path) -> PretrainResult:
    """Run MLE pretraining with Ray Train on the prepared corpus `corpus_dir`; Ray must be up."""
    import ray.data
    from ray.train import CheckpointConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from ..tasks.corpus import load_metadata, shard_paths

    free = ray.available_resources().get("CPU", 0.0) - num_workers * worker.num_cpus
    if free < 1.0:
        raise ClusterError(f"MLE on Ray Train needs {num_workers} x {worker.num_cpus} CPUs for its workers "
                           f"and one more, unreserved, for Ray Data to list the shards, but only "
                           f"{free + num_workers * worker.num_cpus:g} CPUs are free; lower the num_cpus of "
                           f"metadata.seqgan.pretrain_worker (or of the role actors) in the cluster file")
    gpus = ray.available_resources().get("GPU", 0.0)
    if worker.num_gpus > 0 and gpus + 1e-9 < num_workers * worker.num_gpus:
        raise ClusterError(f"MLE on Ray Train needs {num_workers} x {worker.num_gpus:g} GPUs for its workers "
                           f"(metadata.seqgan.pretrain_worker.num_gpus), but the role actors leave {gpus:g} "
                           f"free; lower it, or train.pretrain_workers, or the role actors' num_gpus")
    meta = load_metadata(corpus_dir)
    rows = meta["splits"]["train"]["kept"]
    per_worker = max(1, cfg.generator.batch_size // num_workers)
    steps = rows // num_workers // per_worker
    if steps < 1:
        raise ValueError(f"{corpus_dir}: {rows} training sentences are fewer than one batch of "
                         f"{per_worker} per worker x {num_workers} workers")
    # Read tasks ask for no CPU of their own (the role actors wait idle meanwhile), but Ray
    # 2.60's Parquet reader first lists the files in a task that needs one whole free CPU:
    # the cluster file must leave one unreserved (clusters/local.yaml does), or this hangs.
    data = ray.data.read_parquet(shard_paths(corpus_dir, "train"), num_cpus=0).select_columns(["tokens"])
    use_gpu = worker.num_gpus > 0
    trainer = TorchTrainer(
        _train_loop,
        train_loop_config={"cfg": cfg.to_dict(), "generator": generator_state, "steps": steps,
                           "batch": per_worker, "threads": worker.threads},
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=num_workers, use_gpu=use_gpu,
                                     resources_per_worker={"CPU": worker.num_cpus,
                                                           **({"GPU": worker.num_gpus} if use_gpu else {})}),
        run_config=RunConfig(name="pretrain_g", storage_path=str(storage.resolve()),
                             checkpoint_config=CheckpointConfig(num_to_keep=1)),
        datasets={"train": data},
    )
    result = trainer.fit()
    with result.checkpoint.as_directory() as folder:
        state = torch.load(Path(folder) / "state.pt", map_location="cpu", weights_only=True)
    return PretrainResult(state["generator"], state["mle_opt"], state["losses"], state["seconds"])


def _train_loop(config: dict[str, Any]) -> None:
    """One Ray Train worker: the MLE epochs over this worker's share of the shards."""
    import ray.train
    import torch.distributed as dist
    from ray.train import Checkpoint
    from ray.train.torch import get_device

    from ..config import config_from_dict
    from ..roles import make_generator, mle_step
    from ..tasks.corpus import pad_tokens

    cfg = config_from_dict(config["cfg"])
    torch.set_num_threads(config["threads"])
    device = get_device()  # this worker's GPU under nccl, else the CPU
    generator = make_generator(cfg, 0).to(device)
    generator.load_state_dict(config["generator"])
    opt = torch.optim.Adam(generator.parameters(), lr=cfg.generator.lr)
    world, rank = dist.get_world_size(), ray.train.get_context().get_world_rank()

    def average(grads: list[torch.Tensor]) -> None:
        """The workers' mean gradient, by one all-reduce of a flat buffer."""
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)  # sum over workers, then the mean
        flat /= world
        for g, mean in zip(grads, flat.split([g.numel() for g in grads])):
            g.copy_(mean.view_as(g))

    shard = ray.train.get_dataset_shard("train")
    rng = torch.Generator(device).manual_seed(cfg.run.seed * 1000 + rank)  # a latent code's draws (latent_lstm)
    T, losses, seconds = cfg.data.seq_len, [], []
    for epoch in range(1, cfg.train.pretrain_g_epochs + 1):
        t0, total = time.perf_counter(), 0.0
        batches = shard.iter_batches(batch_size=config["batch"], batch_format="pyarrow", drop_last=True,
                                     local_shuffle_buffer_size=4 * config["batch"],
                                     local_shuffle_seed=cfg.run.seed * 1000 + epoch * 10 + rank)
        for step, table in zip(range(config["steps"]), batches):
            seqs = torch.from_numpy(pad_tokens(table.column("tokens"), T)).to(device)
            loss = mle_step(generator, opt, seqs, cfg.generator.grad_clip, rng=rng, sync_gradients=average)
            total += loss.item()
        mean = torch.tensor([total / config["steps"]], device=device)
        dist.all_reduce(mean)
        losses.append(float(mean) / world)
        seconds.append(time.perf_counter() - t0)
        metrics = {"epoch": epoch, "mle_loss": losses[-1]}
        if rank == 0:
            with tempfile.TemporaryDirectory() as folder:
                torch.save({"generator": {k: v.cpu() for k, v in generator.state_dict().items()},
                            "mle_opt": opt.state_dict(), "losses": losses, "seconds": seconds},
                           Path(folder) / "state.pt")
                ray.train.report(metrics, checkpoint=Checkpoint.from_directory(folder))
        else:
            ray.train.report(metrics)
