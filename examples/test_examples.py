"""Runs every example's ``main()`` and checks what it shows."""

from __future__ import annotations

import os
import pkgutil
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from examples import (
    blockers,
    continuations,
    dashboard,
    deduplication,
    deletion_and_trigger,
    fastapi_service,
    limits_and_priorities,
    middleware_and_shutdown,
    mongodb_transactional_enqueue,
    observability,
    otel,
    periodic,
    postgres_partitioned,
    process_isolation,
    processing_modes,
    pydantic_validation,
    quick_start,
    retention,
    scheduling_and_retries,
    sqlalchemy_orm,
    sqlalchemy_orm_mysql,
    sqlalchemy_orm_sqlite,
    sqlalchemy_sync_session,
    sync_enqueue,
    transactional_enqueue,
    workerless,
)

HERE = Path(__file__).parent


def _httpx() -> Any:
    try:
        import httpx2
    except ImportError:  # httpx2 needs Python 3.11; 3.10 has httpx
        import httpx as httpx2  # type: ignore[no-redef, import-not-found, unused-ignore]
    return httpx2


def test_every_example_is_tested() -> None:
    tested = {name.removeprefix("test_") for name in globals() if name.startswith("test_")}
    examples = {m.name for m in pkgutil.iter_modules([str(HERE)]) if not m.name.startswith("test_")}
    assert examples <= tested


def test_examples_run_as_scripts() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "examples.quick_start"],
        cwd=HERE.parent,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "WelcomeSent(message_id='msg-42')" in done.stdout


async def test_quick_start(capsys: pytest.CaptureFixture[str]) -> None:
    sent = await quick_start.main()
    assert sent == quick_start.WelcomeSent(message_id="msg-42")
    assert "status closed, outcome completed, attempts 1" in capsys.readouterr().out


async def test_transactional_enqueue() -> None:
    exists = await transactional_enqueue.main()
    assert exists == {"o-1": False, "o-2": True, "o-3": False, "o-4": True, "o-5": True}


async def test_continuations() -> None:
    results = await continuations.main()
    assert results["linear"] == continuations.Url("https://cdn.example.com/512/cat.png")
    assert results["card"].how.startswith("card charged")
    assert results["invoice"].how.startswith("invoice sent")
    assert results["loop"] == continuations.Liftoff(ticks=3)
    assert results["loop_jobs"] == 4
    assert results["goto"].rounds == 3


async def test_blockers() -> None:
    results = await blockers.main()
    assert results["good"] == blockers.Valuation("ann", 1250 + 830 + 415, missing=[])
    assert results["lenient"] == blockers.Valuation("cy", 1250, missing=["NOPE"])
    assert results["report"].line == "user7 has 2 orders"
    assert "closed as failed" in results["bad"]


async def test_scheduling_and_retries() -> None:
    results = await scheduling_and_retries.main()
    assert results["flaky"].attempts == 3
    assert results["limited"].attempts == 2
    assert results["hanging"].attempts == 2
    assert "hanging api attempt 1 told: timeout" in results["log"]
    assert results["broken"].outcome == "failed"
    assert results["broken"].tail.attempt == 3
    log = results["log"]
    assert log.index("reminder 'after' runs") < log.index("reminder 'at' runs")


async def test_retention() -> None:
    results = await retention.main()
    assert results["expired"] >= 1
    assert results["left"] < 3, "a chain closed for longer than closed_for was kept"


async def test_periodic() -> None:
    results = await periodic.main()
    assert results["chains"] >= 3
    assert results["distinct_ticks"] == results["chains"], "a tick was started twice"


async def test_process_isolation() -> None:
    results = await process_isolation.main()
    assert results["outcomes"] == {
        "home": "rendered",
        "endless": "failed",
        "greedy": "failed",
        "flaky": "rendered after a retry",
        "about": "rendered",
    }
    assert results["errors"] == ["HandlerCrashedError", "HardTimeoutError", "MemoryLimitError"]


async def test_limits_and_priorities() -> None:
    results = await limits_and_priorities.main()
    assert results["first"] == "board meeting"
    assert results["last"] == "archive"
    assert results["reports at once"] == 2, "eight slots, a limit of two"
    assert results["exports of one customer at once"] == 1
    assert results["exports at once"] == 2, "the two customers export side by side"


async def test_deduplication() -> None:
    results = await deduplication.main()
    assert results == {
        "again": True,
        "other_type": False,
        "after_close": False,
        "recent": True,
        "outside": False,
        "duplicate": True,
        "runs": [1, 2, 3],
    }


async def test_workerless() -> None:
    results = await workerless.main()
    assert results["ann"] == workerless.Paid("tr-ann")
    assert isinstance(results["bob"], workerless.Rejected)
    assert results["cy"] == "cancelled"


async def test_deletion_and_trigger() -> None:
    results = await deletion_and_trigger.main()
    assert results["refused"] is True
    assert results["deleted"] == ["build_sitemap", "crawl", "crawl"]
    assert results["blog"].url == "/blog"
    assert results["left"] == 0


async def test_processing_modes() -> None:
    results = await processing_modes.main()
    assert results["modes"] == {
        "record_payment attempt 1": "atomic",
        "record_payment attempt 2": "atomic",
        "render_pdf": "staged",
        "ping fast": "atomic",
        "ping slow": "staged",
    }
    assert results["audit"] == ["pay-1 attempt 2"], "the failed attempt's own write rolled back"


async def test_middleware_and_shutdown(capsys: pytest.CaptureFixture[str]) -> None:
    done = await middleware_and_shutdown.main()
    assert done.processed == 30
    assert done.workers == ["worker-a", "worker-b"]
    assert "process_batch took" in capsys.readouterr().out


async def test_observability() -> None:
    counts = await observability.main()
    for name in ("chain_created", "job_attempt_started", "job_attempt_completed", "chain_closed"):
        assert counts[name] == 1


async def test_pydantic_validation() -> None:
    results = await pydantic_validation.main()
    assert results["invalid"] == "invalid_input"
    assert results["confirmation"].code == "ADA"
    assert results["confirmation"].departs.day == 4
    assert results["not_json"] == "$.when"
    assert results["chains"] == 1, "the refused booking wrote nothing"


async def test_otel(capsys: pytest.CaptureFixture[str]) -> None:
    results = await otel.main()
    assert results["valuation"] == otel.Valuation("ann", 2080)
    tree = [line.strip() for line in results["tree"]]
    assert tree[:4] == [
        "POST /valuations [INTERNAL]",
        "create chain plan_valuation [PRODUCER]",
        "create plan_valuation [PRODUCER]",
        "process plan_valuation [CONSUMER]",
    ]
    assert sum(line.startswith("await ") for line in tree) == 2
    assert tree.count("resolve blocker [CONSUMER] ->1 link(s)") == 2
    assert tree.count("process fetch_price [CONSUMER ERROR]") == 1
    assert any(
        k.startswith("queuert.queue.ready{") and v == 1 for k, v in results["backlog"].items()
    )
    assert "trace trees:" in capsys.readouterr().out


async def test_dashboard() -> None:
    try:
        import httpx2
    except ImportError:  # httpx2 needs Python 3.11; 3.10 has httpx
        import httpx as httpx2  # type: ignore[no-redef, import-not-found, unused-ignore]
    from queuert import Client, InMemoryStateAdapter

    async with InMemoryStateAdapter() as state, Client(state) as client:
        worker = dashboard.build_worker(client)
        await dashboard.start_signups(client, 3)
        async with worker:
            chains = await client.list_chains()
            for chain in chains.items:
                await client.wait_for_chain(chain.id, dashboard.SendWelcome, timeout=10)
        transport = httpx2.ASGITransport(app=dashboard.build_app(client))
        async with httpx2.AsyncClient(transport=transport, base_url="http://app") as http:
            assert (await http.get("/")).status_code == 200
            refused = await http.get("/admin/queue/")
            assert refused.status_code == 401 and "Basic" in refused.headers["www-authenticate"]
            page = await http.get("/admin/queue/", auth=(dashboard.USER, dashboard.PASSWORD))
            assert page.status_code == 200
            assert (
                dashboard.SendWelcome.type_name in page.text
                and 'href="/admin/queue/chains"' in page.text
            )


async def test_fastapi_service(tmp_path: Path) -> None:
    httpx = _httpx()
    app = fastapi_service.create_app(tmp_path / "orders.db")
    # ASGITransport does not run the lifespan: enter it around the requests, as a server would.
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as http,
    ):
        client = app.state.client
        created = await http.post("/orders", json={"order_id": "o-1", "amount_cents": 1250})
        assert created.status_code == 201
        # committed before the response: the row and the chain are both there
        order = (await http.get("/orders/o-1")).json()
        assert order["chain_id"] == created.json()["chain_id"]
        assert await client.get_chain(order["chain_id"]) is not None
        receipt = await http.get("/orders/o-1/receipt", params={"timeout": 10})
        assert receipt.status_code == 200
        assert receipt.json() == {"order_id": "o-1", "text": "paid 12.50 EUR"}

        # refused after writing the row and starting the chain: both rolled back
        refused = await http.post("/orders", json={"order_id": "o-2", "amount_cents": 10**6})
        assert refused.status_code == 402
        assert (await http.get("/orders/o-2")).status_code == 404
        chains = await client.list_chains()
        assert [c.id for c in chains.items] == [order["chain_id"]]

        duplicate = await http.post("/orders", json={"order_id": "o-1", "amount_cents": 1})
        assert duplicate.status_code == 409
        assert len((await client.list_chains()).items) == 1
        assert (await http.get("/orders/o-9/receipt")).status_code == 404


def test_fastapi_service_with_fastapi_s_test_client(tmp_path: Path) -> None:
    """The same service through FastAPI's own ``TestClient``, which runs the lifespan (client and
    worker) on an event loop of its own, as a server would, and sends each request to it."""
    from fastapi.testclient import TestClient

    app = fastapi_service.create_app(tmp_path / "orders.db")
    with TestClient(app) as http:
        created = http.post("/orders", json={"order_id": "o-1", "amount_cents": 420})
        assert created.status_code == 201
        order = http.get("/orders/o-1").json()
        assert order["chain_id"] == created.json()["chain_id"]
        receipt = http.get("/orders/o-1/receipt", params={"timeout": 10})
        assert receipt.status_code == 200
        assert receipt.json() == {"order_id": "o-1", "text": "paid 4.20 EUR"}
        refused = http.post("/orders", json={"order_id": "o-2", "amount_cents": 10**6})
        assert refused.status_code == 402
        assert http.get("/orders/o-2").status_code == 404
        assert http.get("/orders/o-2/receipt").status_code == 404


async def test_fastapi_service_receipt_timeout(tmp_path: Path) -> None:
    """Without a worker in the web process the receipt is not there in time: 504. A worker started
    afterwards (as a separate worker process would) processes it."""
    httpx = _httpx()
    app = fastapi_service.create_app(tmp_path / "orders.db", run_worker=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://app") as http,
    ):
        created = await http.post("/orders", json={"order_id": "o-1", "amount_cents": 99})
        assert created.status_code == 201
        late = await http.get("/orders/o-1/receipt", params={"timeout": 0.2})
        assert late.status_code == 504
        async with fastapi_service.build_worker(app.state.client):
            receipt = await http.get("/orders/o-1/receipt", params={"timeout": 10})
        assert receipt.json()["text"] == "paid 0.99 EUR"


async def test_postgres_partitioned() -> None:
    results = await postgres_partitioned.main()
    assert results["applied"] == ["layout_partitioned"]
    assert results["partitions"][0].endswith("job_phistory")
    assert results["partitions"][-1].endswith("job_pdefault")
    assert results["after"] == results["partitions"][1:], "only the history partition was dropped"
    assert results["dropped_chains"] == 3
    assert results["old_left"] == 0


async def test_sqlalchemy_orm() -> None:
    import asyncpg  # type: ignore[import-untyped, unused-ignore]

    schema = f"ex_orm_{uuid.uuid4().hex[:12]}"
    results = await sqlalchemy_orm.main(sqlalchemy_orm.DSN, schema)
    assert results["declined_row"] is False
    assert results["declined_chains"] == 0, "the rolled-back session left no chain"
    assert results["shipment"] == sqlalchemy_orm.Shipment("TRK-o-2")
    assert results["row"] == ("shipped", "TRK-o-2"), "the handler's write committed with the job"
    conn = await asyncpg.connect(sqlalchemy_orm.PG_DSN)
    try:
        left = await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema)
    finally:
        await conn.close()
    assert left == 0, "the example drops its schema"


def test_sync_enqueue() -> None:
    results = sync_enqueue.main()
    assert results["declined_chain"] is None, "the rolled-back transaction left no chain"
    assert results["shipment"] == sync_enqueue.Shipment("TRK-o-2"), "the worker shipped the order"
    assert results["refund"] is True
    assert results["row"] == ("refunded",), "the completion's write committed with it"


def test_sqlalchemy_sync_session() -> None:
    results = sqlalchemy_sync_session.main()
    assert results["declined_chain"] is None, "the rolled-back session left no chain"
    assert results["extra_chain"] is None, "the rolled-back savepoint left no chain"
    assert results["orders"] == ["o-2"]
    assert results["shipment"] == sqlalchemy_sync_session.Shipment("TRK-o-2")


async def test_sqlalchemy_orm_sqlite() -> None:
    results = await sqlalchemy_orm_sqlite.main()
    assert results["declined_chains"] == 0, "the rolled-back session left no chain"
    assert results["shipment"] == sqlalchemy_orm_sqlite.Shipment("TRK-o-2")
    assert results["rows"] == [("o-2", "shipped")], "the handler's write committed with the job"


@pytest.fixture(scope="module")
def mongodb_url() -> Iterator[str]:
    """``QUEUERT_MONGODB_URL``, or a SecantusDB (a MongoDB wire-protocol server installed with the
    workspace) started on a free port for this module."""
    url = os.environ.get("QUEUERT_MONGODB_URL")
    if url:
        yield url
        return
    binary = shutil.which("secantusd-py") or str(Path(sys.executable).with_name("secantusd-py"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    with tempfile.TemporaryDirectory() as data:
        server = subprocess.Popen(
            [binary, "--host", "127.0.0.1", "--port", str(port), "--storage-path", data + "/db"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield f"mongodb://127.0.0.1:{port}/?replicaSet=secantus"
        finally:
            server.terminate()
            server.wait(timeout=30)


async def test_mongodb_transactional_enqueue(mongodb_url: str) -> None:
    results = await mongodb_transactional_enqueue.main(mongodb_url)
    assert results["declined_order"] is False
    assert results["declined_chains"] == 0, "the aborted transaction left no chain"
    assert results["shipment"] == mongodb_transactional_enqueue.Shipment("TRK-o-2")
    assert results["status"] == "shipped", "the handler's write committed with the job"


async def test_sqlalchemy_orm_mysql() -> None:
    results = await sqlalchemy_orm_mysql.main()
    assert results["declined_row"] is False
    assert results["declined_chains"] == 0, "the rolled-back session left no chain"
    assert results["shipment"] == sqlalchemy_orm_mysql.Shipment("TRK-o-2")
    assert results["status"] == "shipped", "the handler's write committed with the job"
