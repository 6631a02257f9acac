"""How long a worker's claim takes when most of the queue does not fit it.

    python benchmarks/claim_fit.py [--queued 10000] [--claims 50] [--postgres URL]

A fresh database (SQLite in a temporary directory, and PostgreSQL when ``--postgres`` names a server:
a throw-away database is created and dropped on it) gets one model and ``--queued`` queued versions
inserted in bulk, 90% of them asking for 2 GPUs and older than the rest (the worst case for a CPU
worker: every one of them comes first in the queue's order and must be passed over), 10% ``auto``.
Then a CPU worker claims ``--claims`` versions one at a time through ``jobs.queue.claim_next`` and a
2-GPU worker as many; the median and the largest time of one claim are printed per backend, with the
query plan of the claim's candidate query on PostgreSQL.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path


def run(database_url: str, queued: int, claims: int) -> dict[str, float]:
    from sqlalchemy import insert, select, text

    from visiontrain.config import ServerConfig
    from visiontrain.jobs import queue
    from visiontrain.services.platform import Platform
    from visiontrain.store.base import VersionStatus
    from visiontrain.store.models import Model, ModelVersion, Organization, Project, View

    with tempfile.TemporaryDirectory() as tmp:
        platform = Platform.open(ServerConfig(data_dir=Path(tmp), database_url=database_url))
        try:
            with platform.sessions() as session:
                organization = Organization(name="bench")
                session.add(organization)
                session.flush()
                project = Project(organization_id=organization.id, name="bench")
                session.add(project)
                session.flush()
                view = View(project_id=project.id, name="bench", kind="classification")
                session.add(view)
                session.flush()
                model = Model(view_id=view.id, name="bench")
                session.add(model)
                session.flush()
                gpu_rows = queued * 9 // 10
                rows = [{"model_id": model.id, "name": f"v{i}", "settings": {"devices": 2, "accelerator": "gpu"} if i < gpu_rows else {},
                         "status": VersionStatus.queued.value, "cancel_requested": False, "sample_count": 0,
                         "needs_accelerator": "gpu" if i < gpu_rows else "any", "needs_devices": 2 if i < gpu_rows else 1}
                         for i in range(queued)]
                session.execute(insert(ModelVersion), rows)
                session.commit()
                if session.get_bind().dialect.name == "postgresql":
                    session.execute(text("ANALYZE model_versions"))
                    session.commit()
                    cpu = queue.Capabilities("cpu", 1)
                    candidate = (select(ModelVersion.id).where(ModelVersion.status == VersionStatus.queued, queue.fits(cpu))
                                 .order_by(ModelVersion.id).limit(1).with_for_update(skip_locked=True))
                    compiled = candidate.compile(session.get_bind(), compile_kwargs={"literal_binds": True})
                    plan = session.execute(text(f"EXPLAIN ANALYZE {compiled}")).scalars().all()
                    print("\n".join(plan))
                    session.rollback()
            result = {}
            for label, capabilities in (("cpu worker", queue.Capabilities("cpu", 1)), ("2-gpu worker", queue.Capabilities("gpu", 2))):
                with platform.sessions() as session:
                    worker_id = queue.register_worker(session, capabilities).id
                    session.commit()
                times = []
                for _ in range(claims):
                    with platform.sessions() as session:
                        start = time.perf_counter()
                        assert queue.claim_next(session, worker_id=worker_id) is not None
                        times.append(time.perf_counter() - start)
                result[f"{label} median ms"] = statistics.median(times) * 1000
                result[f"{label} max ms"] = max(times) * 1000
            return result
        finally:
            platform.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--queued", type=int, default=10_000)
    parser.add_argument("--claims", type=int, default=50)
    parser.add_argument("--postgres", help="a PostgreSQL server URL (a throw-away database is made on it)")
    args = parser.parse_args()
    backends = {"sqlite": None}
    if args.postgres:
        backends["postgres"] = args.postgres
    for name, server in backends.items():
        if server is None:
            with tempfile.TemporaryDirectory() as tmp:
                print(name, run(f"sqlite:///{tmp}/bench.db", args.queued, args.claims))
            continue
        from visiontrain.store.db import temporary_database

        with temporary_database(server, prefix="vt_bench") as url:
            print(name, run(url, args.queued, args.claims))


if __name__ == "__main__":
    main()
