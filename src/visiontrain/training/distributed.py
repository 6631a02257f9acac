"""Data-parallel runs: one process per device, started by the run itself.

``devices: N`` (N >= 2) trains on N processes: the caller's process is rank 0 and starts ranks
1..N-1 with ``multiprocessing``'s *spawn* (a new interpreter that imports our modules and runs only
:func:`_rank_main`; the caller's command line is never run again, so a platform worker never starts
copies of itself and the CLI never redoes its data preparation). The ranks join one process group
(gloo on the CPU, NCCL on GPUs, plus a gloo group for our own coordination), and Lightning's
``DDPStrategy`` trains on it through :class:`_FixedRanks`, an environment that tells Lightning the
processes already exist.

What the ranks share:

* **feature extraction**: each rank computes its share of the images (``samples[rank::N]``) and
  writes its own vectors to the feature cache; after a barrier every rank reads all of them back
  (cache hits), so each image's features are computed once;
* **fine-tuning inputs**: each rank runs the frozen front on its share, and the shares are exchanged
  through files in the run's scratch directory;
* **decisions**: a stop request (seen by rank 0 only: the caller's ``should_stop``, Ctrl-C) is set
  on an event every rank polls, and Lightning's stop is reduced over ranks at each batch; a
  non-finite loss is skipped only when every rank agrees (``StageModule.guarded``).

Only rank 0 emits events and writes artifacts (best.pt, evaluation, summary). A rank that fails
writes its error where rank 0 reads it: its peers' next collective fails at once (gloo: "connection
closed by peer"), and rank 0 raises :class:`RankFailed` naming the rank and its error. Every
collective has a timeout (``COLLECTIVE_TIMEOUT``), so a rank that hangs ends the run, too.
"""

from __future__ import annotations

import datetime
import multiprocessing
import os
import signal
import socket
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from lightning.fabric.plugins.environments import ClusterEnvironment
from torch.utils.data import DataLoader, DistributedSampler, Subset

from visiontrain.settings import TrainingSettings

# Longest wait in one collective (a barrier waits for the slowest rank's share of the extraction).
COLLECTIVE_TIMEOUT = datetime.timedelta(minutes=30)
# Longest wait for the ranks' interpreters to start (imports of torch, Lightning, timm).
STARTUP_TIMEOUT_S = 300.0
# After rank 0 ends (or fails), how long the other ranks get to exit before they are terminated.
EXIT_GRACE_S = 60.0


class RankFailed(RuntimeError):
    """A rank of a data-parallel run failed; the message names it and its error."""


def world_size(settings: TrainingSettings) -> int:
    """Processes the run trains on: ``devices`` when 2 or more, else one (``auto`` is one)."""
    wanted = settings.devices if isinstance(settings.devices, int) else 1
    return max(1, wanted)


class _FixedRanks(ClusterEnvironment):
    """Lightning's view of processes we started: fixed rank and world size, never launched by Lightning."""

    def __init__(self, rank: int, world: int, port: int):
        super().__init__()
        self._rank, self._world, self._port = rank, world, port

    @property
    def creates_processes_externally(self) -> bool:
        return True

    @property
    def main_address(self) -> str:
        return "127.0.0.1"

    @property
    def main_port(self) -> int:
        return self._port

    @staticmethod
    def detect() -> bool:
        return False

    def world_size(self) -> int:
        return self._world

    def set_world_size(self, size: int) -> None:
        if size != self._world:
            raise RuntimeError(f"Lightning asked for {size} processes but the run started {self._world}")

    def global_rank(self) -> int:
        return self._rank

    def set_global_rank(self, rank: int) -> None:
        if rank != self._rank:
            raise RuntimeError(f"Lightning computed rank {rank} for the process started as rank {self._rank}")

    def local_rank(self) -> int:
        return self._rank

    def node_rank(self) -> int:
        return 0


@dataclass
class Ranks:
    """This process's place in the run: ``rank`` of ``world``. ``world == 1``: a single-process run,
    every method does what one process would."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    port: int = 0
    stop_event: Any = None  # multiprocessing Event: rank 0 saw a stop request
    scratch: Path | None = None  # files the ranks exchange (fine-tuning inputs), errors
    group: Any = None  # gloo group for our own collectives (the default group may be NCCL)
    features_computed: list[int] = field(default_factory=list)  # per rank, the last sharded extraction's misses

    @property
    def backend(self) -> str:
        return "nccl" if self.device.type == "cuda" else "gloo"

    @property
    def distributed(self) -> bool:
        return self.world > 1

    # --- Lightning

    def strategy(self, *, sync_buffers: bool) -> Any:
        """Lightning's DDP over the processes already started. ``sync_buffers``: batch-norm statistics
        that train (fine-tuning with ``fine_tune_batch_norm: train``) are kept equal on every rank."""
        from lightning.pytorch.strategies import DDPStrategy

        return DDPStrategy(cluster_environment=_FixedRanks(self.rank, self.world, self.port),
                           process_group_backend=self.backend, timeout=COLLECTIVE_TIMEOUT, forward_sync_buffers=sync_buffers)

    def loaders(self, train: DataLoader, val: DataLoader, seed: int) -> tuple[DataLoader, DataLoader]:
        """The stage's loaders for this rank: a seeded shuffled share of the training rows (every rank
        the same number of batches, as DDP needs) and ``val[rank::world]`` (each image validated once;
        torchmetrics reduces the metrics over ranks)."""
        if not self.distributed:
            return train, val
        sampler = DistributedSampler(train.dataset, num_replicas=self.world, rank=self.rank, shuffle=True, seed=seed)
        share = Subset(val.dataset, range(self.rank, len(val.dataset), self.world))  # type: ignore[arg-type]
        return (DataLoader(train.dataset, batch_size=train.batch_size, sampler=sampler, num_workers=train.num_workers),
                DataLoader(share, batch_size=val.batch_size, num_workers=val.num_workers))

    # --- our collectives (gloo, CPU tensors)

    def any(self, decision: bool) -> bool:
        if not self.distributed:
            return decision
        flag = torch.tensor([int(decision)])
        dist.all_reduce(flag, group=self.group)
        return bool(flag.item())

    def gather(self, value: Any) -> list[Any]:
        if not self.distributed:
            return [value]
        values: list[Any] = [None] * self.world
        dist.all_gather_object(values, value, group=self.group)
        return values

    def from_rank0(self, value: Any) -> Any:
        """Rank 0's ``value`` on every rank (what only rank 0 decides, e.g. a learning rate it found)."""
        if not self.distributed:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier(group=self.group)

    def share(self, samples: Sequence[Any]) -> list[Any]:
        return list(samples)[self.rank::self.world]

    def full_index(self, share_index: int) -> int:
        return self.rank + share_index * self.world

    # --- stage helpers

    def extract(self, extract: Callable[..., Any], network: Any, samples: Sequence[Any], *, augmented_copies: int,
                keep_front: Any, on_progress: Callable[[int, int, int], None] | None, **common: Any) -> Any:
        """``extract_features`` over the ranks: this rank's share computed and cached, a barrier, then
        every row read back from the cache. Returns the full feature set (hits/misses counted over all
        ranks) and, when ``keep_front`` is given, this rank's share of the front's outputs
        (``shard_front``) for :meth:`share_front`."""
        from visiontrain.training.features import FeatureSet
        from visiontrain.training.fine_tune import KeptFront

        if not self.distributed:
            return extract(network, samples, augmented_copies=augmented_copies, keep_front=keep_front,
                           on_progress=on_progress, **common), None
        mine = self.share(samples)
        shard_front = None
        if keep_front is not None:
            shard_front = KeptFront(mine, augmented_copies, keep_front.spill.with_name(f"{keep_front.spill.stem}.rank{self.rank}.npy"))
        scale = len(samples) / max(1, len(mine))

        def shard_progress(done: int, total: int, hits: int) -> None:
            # Rank 0 sees its own share: the whole is estimated at the same pace on every rank.
            if on_progress and self.rank == 0:
                on_progress(min(round(done * scale), len(samples) * (1 + augmented_copies)), total, round(hits * scale))

        computed, stopped = 0, False
        try:
            shard = extract(network, mine, augmented_copies=augmented_copies, keep_front=shard_front,
                            on_progress=shard_progress, **common)
            computed = shard.misses
        except InterruptedError:
            stopped = True
        if self.any(stopped):
            raise InterruptedError("stopped while computing features")
        per_rank = self.gather(computed)
        self.features_computed = [a + b for a, b in zip(self.features_computed, per_rank)] if self.features_computed else per_rank
        whole = extract(network, samples, augmented_copies=augmented_copies, keep_front=None,
                        on_progress=on_progress if self.rank == 0 else None, **common)
        misses = sum(per_rank) + whole.misses  # whole.misses: rows another rank could not store (recomputed here)
        rows = len(whole.sample_index)
        return FeatureSet(whole.features, whole.sample_index, whole.original, hits=rows - misses, misses=misses), shard_front

    def share_front(self, kept: Any, shard: Any, name: str) -> None:
        """Fill ``kept`` (the front's outputs of every sample) from every rank's complete ``shard``
        (``samples[rank::world]``), through one file per rank in the scratch directory."""
        if not self.distributed or kept is None:
            return
        assert self.scratch is not None and shard is not None
        per_sample = 1 + kept.copies
        own = self.scratch / f"{name}.rank{self.rank}.npy"
        if shard.store is not None:
            np.save(own, np.asarray(shard.store), allow_pickle=False)
        self.barrier()
        for rank in range(self.world):
            path = self.scratch / f"{name}.rank{rank}.npy"
            if not path.exists():
                continue  # that rank's share is empty (fewer samples than ranks)
            outputs = np.load(path, mmap_mode="r")
            shares = len(outputs) // per_sample
            rows = [(rank + j * self.world) * per_sample + v for j in range(shares) for v in range(per_sample)]
            kept.put(rows, np.asarray(outputs))
        self.barrier()
        own.unlink(missing_ok=True)

    def stop_requested(self, should_stop: Callable[[], bool]) -> Callable[[], bool]:
        """Rank 0: ``should_stop`` that also tells the other ranks; other ranks: rank 0's request."""
        if not self.distributed:
            return should_stop
        event = self.stop_event
        if self.rank != 0:
            return event.is_set

        def polled() -> bool:
            if should_stop():
                event.set()
                return True
            return event.is_set()

        return polled


@dataclass
class _Started:
    processes: list[Any]
    errors: Path
    ready: list[Any]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _device_of(rank: int, on_gpu: bool) -> torch.device:
    return torch.device("cuda", rank) if on_gpu else torch.device("cpu")


def _join_group(ranks: Ranks) -> None:
    if ranks.device.type == "cuda":
        torch.cuda.set_device(ranks.device)
    dist.init_process_group(ranks.backend, init_method=f"tcp://127.0.0.1:{ranks.port}", rank=ranks.rank,
                            world_size=ranks.world, timeout=COLLECTIVE_TIMEOUT)
    # Our own exchanges (objects, flags, barriers) on CPU tensors, whatever the training backend.
    ranks.group = dist.new_group(backend="gloo", timeout=COLLECTIVE_TIMEOUT) if ranks.backend != "gloo" else None


def _cpu_threads(world: int) -> int:
    """Torch threads per CPU rank: the machine's cores divided between the ranks."""
    return max(1, (os.cpu_count() or 1) // world)


def _rank_main(rank: int, world: int, port: int, on_gpu: bool, scratch: str, ready: Any, stop_event: Any,
               follow: Callable[[Ranks, Any], None], payload: Any) -> None:
    """A rank other than 0: join the group, run ``follow`` (the run's stages as a follower), and on
    any failure leave the error for rank 0 and exit non-zero."""
    # Ctrl-C reaches the terminal's whole process group: rank 0 turns it into a stop request for every rank.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    ranks = Ranks(rank, world, _device_of(rank, on_gpu), port, stop_event, Path(scratch))
    if not on_gpu:
        torch.set_num_threads(_cpu_threads(world))
    _exit_with_parent()
    try:
        ready.set()
        _join_group(ranks)
        follow(ranks, payload)
    except BaseException as exc:  # noqa: BLE001 - every failure must reach rank 0, then this process ends
        message = f"{type(exc).__name__}: {exc}".strip()
        detail = traceback.format_exc(limit=8)
        (Path(scratch) / f"rank{rank}.error").write_text(f"{message}\n{detail}")
        if dist.is_initialized():
            dist.destroy_process_group()
        raise SystemExit(1) from None
    if dist.is_initialized():
        dist.destroy_process_group()


def _exit_with_parent() -> None:
    """A rank whose rank 0 was killed (a worker's machine reclaimed, kill -9) ends too, at once, instead of
    finishing its share of the work for nobody."""
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        while parent.is_alive():
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="visiontrain-rank0-watch", daemon=True).start()


@contextmanager
def start_ranks(world: int, *, on_gpu: bool, scratch_root: Path, follow: Callable[[Ranks, Any], None],
                payload: Any) -> Iterator[Ranks]:
    """Rank 0 (this process) and ``world - 1`` spawned ranks in one process group, for the block.

    ``follow(ranks, payload)`` runs in each spawned rank: it must be importable (a module-level
    function) and ``payload`` picklable. On leaving, the group is closed and the ranks are joined
    (terminated after ``EXIT_GRACE_S``); a failure in any rank is raised here as :class:`RankFailed`."""
    scratch_root.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="ranks-", dir=scratch_root))
    context = multiprocessing.get_context("spawn")
    port = _free_port()
    stop_event = context.Event()
    ready = [context.Event() for _ in range(1, world)]
    processes = [
        # Not daemonic: a rank may start DataLoader workers of its own.
        context.Process(target=_rank_main, name=f"visiontrain-rank{rank}",
                        args=(rank, world, port, on_gpu, str(scratch), ready[rank - 1], stop_event, follow, payload))
        for rank in range(1, world)
    ]
    started = _Started(processes, scratch, ready)
    ranks = Ranks(0, world, _device_of(0, on_gpu), port, stop_event, scratch)
    previous_threads = torch.get_num_threads()
    try:
        for process in processes:
            process.start()
        _wait_until_started(started)
        if not on_gpu:
            torch.set_num_threads(_cpu_threads(world))
        _join_group(ranks)
        yield ranks
    except Exception as exc:
        failed = _rank_failure(started, wait=_collective_failure(exc))
        if failed is not None:
            raise failed from exc
        raise
    finally:
        torch.set_num_threads(previous_threads)
        if dist.is_initialized():
            dist.destroy_process_group()  # ranks still waiting on rank 0 fail at once and exit
        _end(processes)
        _remove(scratch)


def _wait_until_started(started: _Started) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not all(event.is_set() for event in started.ready):
        failed = _rank_failure(started, wait=False)
        if failed is not None:
            raise failed
        if any(p.exitcode is not None for p in started.processes):
            codes = ", ".join(f"{p.name} exit code {p.exitcode}" for p in started.processes if p.exitcode is not None)
            raise RankFailed(f"a rank of the data-parallel run exited while starting ({codes}): the ranks are started with "
                             "multiprocessing's spawn, which imports the script that started the run, so a script's own "
                             "top-level code must be under `if __name__ == \"__main__\":`")
        if time.monotonic() > deadline:
            raise RankFailed(f"the ranks of the data-parallel run did not start within {STARTUP_TIMEOUT_S:.0f} s")
        time.sleep(0.05)


def _rank_failure(started: _Started, wait: bool = True) -> RankFailed | None:
    """The first failed rank's error, as rank 0 raises it (None: every rank is fine so far).
    ``wait``: give a rank whose connection just closed a moment to write its error."""
    deadline = time.monotonic() + (10.0 if wait else 0.0)
    world = len(started.processes) + 1
    while True:
        for rank, process in enumerate(started.processes, start=1):
            error = started.errors / f"rank{rank}.error"
            if error.exists():
                message = error.read_text().splitlines()[0]
                return RankFailed(f"rank {rank} of {world} of the data-parallel run failed: {message}")
            if process.exitcode not in (None, 0):
                return RankFailed(f"rank {rank} of {world} of the data-parallel run ended with exit code {process.exitcode}")
        if time.monotonic() >= deadline or not any(p.is_alive() for p in started.processes):
            return None
        time.sleep(0.1)


def _collective_failure(exc: BaseException) -> bool:
    """Did this process fail because a peer went away (its error is then the one to report)?"""
    text = str(exc)
    return isinstance(exc, dist.DistError) or any(word in text for word in ("gloo", "Connection closed", "NCCL", "Broken pipe"))


def _end(processes: list[Any]) -> None:
    deadline = time.monotonic() + EXIT_GRACE_S
    for process in processes:
        if process.pid is None:
            continue
        process.join(max(0.0, deadline - time.monotonic()))
        if process.is_alive():
            process.terminate()
            process.join(10)


def _remove(directory: Path) -> None:
    import shutil

    shutil.rmtree(directory, ignore_errors=True)
