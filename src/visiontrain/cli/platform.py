"""Platform commands: `serve`, `worker`, `token create/list/revoke`, `demo`, and the client of a running
server, `platform export-annotations`.

`serve` runs the REST API (and the web UI when installed) and starts a worker process beside it;
`worker` adds more workers against the same database and storage. Both take their configuration
from flags, then VISIONTRAIN_* environment variables (see ``visiontrain.config``).
"""

from __future__ import annotations

import logging
import signal
import time
from pathlib import Path
from typing import Optional

import typer

from visiontrain.cli.common import console, fail

DATA_DIR_HELP = "Data directory for the database, images and models (default: the user data directory; $VISIONTRAIN_DATA_DIR)."
DB_HELP = "Database URL (default: SQLite in the data directory; $VISIONTRAIN_DATABASE_URL), e.g. postgresql://user@host/db."

token_app = typer.Typer(help="API tokens: each gives access to one organisation's projects.", no_args_is_help=True)
client_app = typer.Typer(
    help="Talk to a running server over its REST API (--url, --token or $VISIONTRAIN_URL, $VISIONTRAIN_TOKEN).",
    no_args_is_help=True,
)
URL_HELP = "The server's address."
TOKEN_HELP = "An API token of the view's organisation (`visiontrain token create` makes one)."


def _config(data_dir: Optional[Path], database_url: Optional[str]):  # type: ignore[no-untyped-def]
    from pydantic import ValidationError

    from visiontrain.config import ServerConfig

    try:
        return ServerConfig.from_env(data_dir=data_dir, database_url=database_url)
    except ValidationError as exc:
        fail(f"bad server configuration: {exc}")


def _open(data_dir: Optional[Path], database_url: Optional[str]):  # type: ignore[no-untyped-def]
    from sqlalchemy.exc import SQLAlchemyError

    from visiontrain.services.platform import Platform

    from visiontrain.blobs import BlobStoreError

    config = _config(data_dir, database_url)
    try:
        return Platform.open(config)
    except (BlobStoreError, ValueError) as exc:  # the byte storage's URL, bucket, endpoint or credentials
        fail(f"cannot open the byte storage {config.blob_url}: {exc}")
    except (SQLAlchemyError, OSError) as exc:
        fail(f"cannot open the platform's database {config.database_url}: {exc}")


def _logging() -> None:
    """Our own news at INFO; libraries (Alembic, ONNX, Lightning) only when something is wrong."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("visiontrain").setLevel(logging.INFO)


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    database_url: Optional[str] = typer.Option(None, "--database-url", help=DB_HELP),
    workers: int = typer.Option(1, "--workers", min=0, help="Worker processes to start beside the server (0: none); several deal out the GPUs, none shared (workers beyond the GPUs run on the CPU)."),
) -> None:
    """Run the platform: REST API at /api/v1 (docs at /docs), web UI, and training workers."""
    _logging()
    platform = _open(data_dir, database_url)
    _print_first_login(platform)
    _run_server(platform, host, port, workers)


def _run_server(platform, host: str, port: int, workers: int) -> None:  # type: ignore[no-untyped-def]
    import uvicorn

    from visiontrain.api.app import create_app
    from visiontrain.jobs.supervisor import WorkerSupervisor

    supervisor = WorkerSupervisor(platform.config, count=workers)
    if workers:
        supervisor.start()
    console.print(f"visiontrain serving at [bold]http://{host}:{port}[/] (API docs: http://{host}:{port}/docs)")
    # Uvicorn shuts down gracefully on SIGTERM, then re-raises the signal: without a handler of our own the
    # process would die there, before stopping its workers.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        uvicorn.run(create_app(platform=platform), host=host, port=port, log_level="info")
    finally:
        if workers:
            console.print("stopping workers (a run in progress goes back to the queue)...")
            supervisor.stop()
        platform.close()


def _exit_on_sigterm(_signum: int, _frame: object) -> None:
    raise SystemExit(0)


def _print_first_login(platform) -> None:  # type: ignore[no-untyped-def]
    """On the first start there is no token yet: make one and show it once."""
    from visiontrain.services import auth

    with platform.sessions() as session:
        if auth.list_tokens(session, include_revoked=True):
            console.print("Log in with an API token (`visiontrain token create` makes a new one).")
            return
        _, secret = auth.create_token(session, name="first token")
        session.commit()
    console.print(
        "First start: created an API token for the organisation 'default'. It is shown only now:\n"
        f"  [bold]{secret}[/]\nUse it as 'Authorization: Bearer <token>' or paste it into the web UI's login."
    )


def worker(
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    database_url: Optional[str] = typer.Option(None, "--database-url", help=DB_HELP),
    max_jobs: Optional[int] = typer.Option(None, "--max-jobs", min=1, help="Exit after this many versions (default: run until stopped)."),
    gpus: Optional[int] = typer.Option(
        None, "--gpus", "--devices", min=0,
        help="GPUs this worker trains on, at most the machine's (default: every GPU it sees; 0: a CPU worker). "
        "It claims only versions that fit: none asking for more devices, none asking for a GPU when it has none. "
        "CUDA_VISIBLE_DEVICES picks which GPUs.",
    ),
    name: Optional[str] = typer.Option(None, "--name", help="A name for this worker, shown when a version waits for one that fits."),
) -> None:
    """Train queued model versions; run several against the same database and storage to train in parallel,
    on this machine or others (one per GPU machine: `visiontrain worker --gpus N`)."""
    from visiontrain.jobs.queue import Capabilities
    from visiontrain.jobs.worker import TrainingWorker

    if name is not None and not (name := name.strip()):
        fail("--name is empty: give the worker a name, or leave the option out")
    if name is not None and len(name) > 200:
        fail(f"--name is {len(name)} characters long: at most 200")
    try:
        capabilities = Capabilities.of_this_machine(gpus=gpus, name=name)
    except ValueError as exc:
        fail(f"--gpus {gpus}: {exc}")
    _logging()
    platform = _open(data_dir, database_url)
    training_worker = TrainingWorker(platform, capabilities)
    training_worker.install_signal_handlers()
    try:
        training_worker.run(max_jobs=max_jobs)
    finally:
        platform.close()


@token_app.command("create")
def token_create(
    organization: str = typer.Option("default", "--org", help="Organisation the token belongs to (created if new)."),
    name: str = typer.Option("token", "--name", help="A name to recognise the token by in `token list`."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    database_url: Optional[str] = typer.Option(None, "--database-url", help=DB_HELP),
) -> None:
    """Create an API token; the secret is printed once (only its hash is stored)."""
    from visiontrain.services import auth
    from visiontrain.services.errors import ServiceError

    platform = _open(data_dir, database_url)
    try:
        with platform.sessions() as session:
            token, secret = auth.create_token(session, organization=organization, name=name)
            session.commit()
            console.print(f"token {token.id} for organisation '{organization}':", highlight=False)
            print(secret)
    except ServiceError as exc:
        fail(exc.message)
    finally:
        platform.close()


@token_app.command("list")
def token_list(
    all_tokens: bool = typer.Option(False, "--all", help="Include revoked tokens."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    database_url: Optional[str] = typer.Option(None, "--database-url", help=DB_HELP),
) -> None:
    """List API tokens (their first characters, never the secret)."""
    from rich.table import Table

    from visiontrain.services import auth

    platform = _open(data_dir, database_url)
    try:
        with platform.sessions() as session:
            table = Table("id", "organisation", "name", "starts with", "created", "last used", "revoked")
            for token in auth.list_tokens(session, include_revoked=all_tokens):
                table.add_row(
                    str(token.id), token.organization.name, token.name, token.prefix + "…",
                    f"{token.created_at:%Y-%m-%d %H:%M}", f"{token.last_used_at:%Y-%m-%d %H:%M}" if token.last_used_at else "-",
                    f"{token.revoked_at:%Y-%m-%d %H:%M}" if token.revoked_at else "",
                )
            console.print(table)
    finally:
        platform.close()


@token_app.command("revoke")
def token_revoke(
    token_id: int = typer.Argument(..., help="The token's id (from `visiontrain token list`)."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    database_url: Optional[str] = typer.Option(None, "--database-url", help=DB_HELP),
) -> None:
    """Revoke a token: requests with it are refused from now on."""
    from visiontrain.services import auth
    from visiontrain.services.errors import NotFound, ServiceError

    platform = _open(data_dir, database_url)
    try:
        with platform.sessions() as session:
            auth.revoke_token(session, token_id=token_id)
            session.commit()
        console.print(f"token {token_id} revoked")
    except NotFound as exc:
        fail(f"{exc.message} (`visiontrain token list` shows them)")
    except ServiceError as exc:
        fail(exc.message)
    finally:
        platform.close()


def demo(
    shared: Path = typer.Option(Path("../shared"), "--shared", help="The shared folder holding datasets/ants_bees."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help=DATA_DIR_HELP),
    database_url: Optional[str] = typer.Option(None, "--database-url", help=DB_HELP),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to serve on afterwards."),
    port: int = typer.Option(8000, "--port", help="Port to serve on afterwards."),
    no_serve: bool = typer.Option(False, "--no-serve", help="Stop after the prediction instead of serving."),
    assignments: list[str] = typer.Option([], "--set", "-s", help="Override a training setting: name=value (default: all defaults)."),
) -> None:
    """Set up the 'Ants and bees' demo project, train it with default settings in a worker, predict, then serve."""
    from visiontrain.jobs import queue
    from visiontrain.services import demo as demo_service
    from visiontrain.services.errors import ServiceError

    from visiontrain.settings import SettingsError, load_settings, parse_assignment

    try:
        settings = load_settings(overrides=dict(parse_assignment(a) for a in assignments))
    except SettingsError as exc:
        fail("bad settings:\n  " + str(exc).replace("\n", "\n  "))
    platform = _open(data_dir, database_url)
    console.print(f"data directory: {platform.config.data_dir}")
    try:
        dataset = demo_service.find_ants_bees(shared.expanduser().resolve())
        with platform.sessions() as session:
            queue.recover_stale(session, stale_after_seconds=platform.config.stale_after_seconds)
            console.print(f"importing {dataset} ...")
            setup = demo_service.set_up(session, blobs=platform.blobs, dataset=dataset, settings=settings)
            token = demo_service.ensure_token(session, token_file=platform.config.data_dir / "demo-token.txt")
            session.commit()
    except ServiceError as exc:
        platform.close()
        fail(exc.message)
    console.print(f"project '{demo_service.PROJECT_NAME}': {setup.images} images, model version {setup.version_id}")
    try:
        if not setup.trained_before:
            _train_in_worker(platform, setup.version_id)
        version_ok = _print_version(platform, setup.version_id)
        if version_ok:
            _predict_one(platform, setup.version_id, dataset)
    except KeyboardInterrupt:
        platform.close()
        raise typer.Exit(130) from None
    except Exception as exc:  # say what failed in one line; the worker's log has the details
        platform.close()
        fail(f"demo failed: {type(exc).__name__}: {exc}", code=1)
    if no_serve or not version_ok:
        platform.close()
        if not version_ok:
            raise typer.Exit(1)
        return
    console.print(f"API token (saved in {platform.config.data_dir / 'demo-token.txt'}):\n  [bold]{token}[/]")
    _logging()
    _run_server(platform, host, port, workers=1)


def _train_in_worker(platform, version_id: int) -> None:  # type: ignore[no-untyped-def]
    """Training runs in a worker process, as on the server; this process only watches."""
    from visiontrain.jobs.supervisor import WorkerSupervisor

    supervisor = WorkerSupervisor(platform.config, count=1)
    supervisor.start()
    try:
        _follow_training(platform, version_id)
    finally:
        supervisor.stop()


def _follow_training(platform, version_id: int) -> None:  # type: ignore[no-untyped-def]
    """Print the version's progress from its stored metrics until it finishes."""
    from visiontrain.services import versions
    from visiontrain.store.base import VersionStatus
    from visiontrain.store.models import ModelVersion

    console.print("training in the worker (default settings; Ctrl-C stops waiting) ...")
    last_id, last_features = 0, -1
    while True:
        with platform.sessions() as session:
            version = session.get(ModelVersion, version_id)
            rows = versions.version_metrics(session, version=version, after_id=last_id)
            status = version.status
        for row in rows:
            last_id = row.id
            event = row.data
            if row.kind == "stage" and event.get("status") == "started":
                console.print(f"  stage {event['stage']}")
            elif row.kind == "features" and event["done"] * 10 // max(event["total"], 1) != last_features:
                last_features = event["done"] * 10 // max(event["total"], 1)
                console.print(f"    features {event['done']}/{event['total']} (cache hits {event['cache_hits']})")
            elif row.kind == "epoch":
                monitor = event.get("monitor", "val_accuracy")  # the task's metric (val_map for tagging)
                console.print(
                    f"    {event['stage']} epoch {event['epoch']}: train loss {event['train_loss']:.3f}, "
                    f"val loss {event['val_loss']:.3f}, {monitor.removeprefix('val_').replace('_', ' ')} {event[monitor]:.3f}"
                    + ("  *best*" if event.get("best") else "")
                )
        if VersionStatus(status).finished and not rows:
            return
        time.sleep(1.0)


def _print_version(platform, version_id: int) -> bool:  # type: ignore[no-untyped-def]
    from visiontrain.store.models import ModelVersion

    with platform.sessions() as session:
        version = session.get(ModelVersion, version_id)
        if version.status != "succeeded":
            console.print(f"[red]version {version.name} {version.status}[/]: {version.error or ''}", highlight=False)
            return False
        metrics = ", ".join(f"{k} {v:.4f}" for k, v in (version.best_metrics or {}).items())
        console.print(f"version {version.name} succeeded: best epoch {version.best_epoch} ({version.best_stage}): {metrics}")
        evaluation = version.evaluation or {}
        if "accuracy" in evaluation:
            console.print(f"evaluation on {version.summary.get('counts', {}).get('val_images', '?')} validation images: accuracy {evaluation['accuracy']:.4f}")
    return True


def _predict_one(platform, version_id: int, dataset: Path) -> None:  # type: ignore[no-untyped-def]
    from visiontrain.services.predictions import PredictorCache, predict
    from visiontrain.store.models import ModelVersion

    image = sorted((dataset / "val" / "bees").glob("*.jpg"))[0]
    with platform.sessions() as session:
        version = session.get(ModelVersion, version_id)
        checkpoint = next((a for a in version.artifacts if a.kind == "checkpoint"), None)
        [result] = predict(cache=PredictorCache(1), blobs=platform.blobs, version=version, checkpoint=checkpoint,
                           files=[(image.name, image.read_bytes())], top_k=2)
    ranked = ", ".join(f"{p['label']} {p['probability']:.3f}" for p in result["predictions"])
    console.print(f"prediction for val/bees/{image.name}: {ranked}")


def _http_client(url: str, token: str):  # type: ignore[no-untyped-def]
    """An HTTP client for the server at ``url`` with the token (tests swap in the app's own client)."""
    import httpx

    return httpx.Client(base_url=url.rstrip("/"), headers={"Authorization": f"Bearer {token}"}, timeout=httpx.Timeout(30.0, read=600.0))


def _error_detail(response) -> str:  # type: ignore[no-untyped-def]
    """The server's reason for an error response, in one line."""
    try:
        detail = response.json().get("detail")
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(detail, list):  # a 422: the fields and why
        return "; ".join(str(item.get("msg", item)) for item in detail if isinstance(item, dict)) or str(detail)
    return str(detail)


@client_app.command("export-annotations")
def export_annotations(
    view_id: int = typer.Argument(..., min=1, help="The view's id (in the studio's address, or GET /api/v1/projects/{id}/views)."),
    format_name: str = typer.Option(..., "--format", "-f", help="coco, yolo or voc (detection views), csv (any view)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="The zip file to write (default: the server's name for it, here)."),
    url: str = typer.Option("http://127.0.0.1:8000", "--url", envvar="VISIONTRAIN_URL", help=URL_HELP),
    token: str = typer.Option(..., "--token", envvar="VISIONTRAIN_TOKEN", help=TOKEN_HELP, show_default=False),
) -> None:
    """Download a view's annotations as a dataset zip (GET /api/v1/views/VIEW_ID/export?format=...).

    The zip imports back (`POST /api/v1/views/{id}/import`, or `visiontrain convert`) with the same
    images, annotations and train/val/test sides.
    """
    import os
    import tempfile
    from email.message import Message

    import httpx

    if out is not None and out.is_dir():
        fail(f"{out} is a folder: give the .zip file to write")
    try:
        with _http_client(url, token) as client, client.stream(
            "GET", f"/api/v1/views/{view_id}/export", params={"format": format_name}
        ) as response:
            if response.status_code != 200:
                response.read()
                fail(f"the server refused the export ({response.status_code}): {_error_detail(response)}")
            if out is None:
                header = Message()
                header["content-disposition"] = response.headers.get("content-disposition", "")
                out = Path(Path(header.get_filename() or f"view-{view_id}-{format_name}.zip").name)
            out.parent.mkdir(parents=True, exist_ok=True)
            fd, partial = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".partial")
            try:
                with os.fdopen(fd, "wb") as handle:
                    for chunk in response.iter_bytes():
                        handle.write(chunk)
                os.replace(partial, out)
            except BaseException:
                Path(partial).unlink(missing_ok=True)
                raise
            counts = {key: response.headers.get(f"x-export-{key}", "?") for key in ("images", "boxes", "unannotated")}
    except httpx.HTTPError as exc:
        fail(f"cannot reach the server at {url}: {exc}")
    size_mb = out.stat().st_size / 1e6
    console.print(
        f"Wrote [bold]{out}[/] ({size_mb:.1f} MB): {counts['images']} images"
        + (f", {counts['boxes']} boxes" if counts["boxes"] not in ("0", "?") else "")
        + (f"; {counts['unannotated']} unannotated image(s) left out" if counts["unannotated"] not in ("0", "?") else ""),
        highlight=False,
        soft_wrap=True,
    )


def register(app: typer.Typer) -> None:
    settings = {"help_option_names": ["-h", "--help"]}
    app.command(context_settings=settings)(serve)
    app.command(context_settings=settings)(worker)
    app.command(context_settings=settings)(demo)
    app.add_typer(token_app, name="token")
    app.add_typer(client_app, name="platform", context_settings=settings)
