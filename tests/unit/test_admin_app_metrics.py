"""The app's prometheus_client metrics on the admin listener (fastasgi.admin): rendered after
fastasgi's families in both formats, fastasgi's names left out, the default REGISTRY of one
process, and the multiprocess mode of --workers over files written by real processes. The
supervisor and Prometheus itself are in tests/e2e/test_admin.py."""

from __future__ import annotations

import logging
import os
import sys

import pytest

prometheus_client = pytest.importorskip("prometheus_client")

from prometheus_client.openmetrics.parser import text_string_to_metric_families  # noqa: E402

from fastasgi import admin  # noqa: E402
from fastasgi._http import _core  # noqa: E402


def counters() -> dict:
    """An empty counter block, as the core reads it."""
    return _core.metrics_read(bytearray(_core.METRICS_SIZE))


def assert_well_formed(body: str, openmetrics: bool) -> None:
    """One TYPE line per family; OpenMetrics: the client's strict parser accepts it (it
    rejects a family shown twice, a line after "# EOF", or none)."""
    types = [line.split()[2] for line in body.splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len(set(types)), "a family shown twice"
    if openmetrics:
        list(text_string_to_metric_families(body))
    else:
        assert "# EOF" not in body


def samples(body: str) -> dict[str, float]:
    """``name{labels}`` -> value, for every sample line."""
    found = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


def registry_with(*metrics):
    """A private registry holding the metrics that ``metrics`` (callables) make in it."""
    registry = prometheus_client.CollectorRegistry()
    for make in metrics:
        make(registry)
    return registry


def counted(registry):
    counter = prometheus_client.Counter("app_orders", "Orders taken.", ["shop"], registry=registry)
    counter.labels(shop="north").inc(3)
    counter.labels(shop="south").inc(4)


def impostor(registry):
    prometheus_client.Counter("fastasgi_requests", "Not fastasgi's.", registry=registry).inc(1000)


def snapshot_with(families) -> admin.Snapshot:
    return admin.Snapshot(counters(), workers_live=7, app=families)


@pytest.mark.parametrize("openmetrics", [False, True], ids=["text-0.0.4", "openmetrics"])
def test_app_families_follow_fastasgis_in_one_valid_exposition(openmetrics):
    families = admin.app_families(registry_with(counted).collect)
    body = admin.render(snapshot_with(families), openmetrics).decode()
    assert_well_formed(body, openmetrics)  # one TYPE per family, one "# EOF" at the very end
    found = samples(body)
    assert found['app_orders_total{shop="north"}'] == 3
    assert found['app_orders_total{shop="south"}'] == 4
    assert found["fastasgi_workers_live"] == 7
    assert body.index("fastasgi_workers_live") < body.index("app_orders_total")
    shown = "app_orders" if openmetrics else "app_orders_total"
    assert f"# TYPE {shown} counter" in body


def test_fastasgi_names_are_left_out_and_said_once(caplog, monkeypatch):
    monkeypatch.setattr(admin, "_left_out", set())
    registry = registry_with(counted, impostor)
    with caplog.at_level(logging.WARNING, logger="fastasgi.error"):
        families = admin.app_families(registry.collect)
        admin.app_families(registry.collect)
    assert [family.name for family in families] == ["app_orders"]
    said = [record for record in caplog.records if "'fastasgi_requests'" in record.getMessage()]
    assert len(said) == 1 and "fastasgi's own" in said[0].getMessage()
    body = admin.render(snapshot_with(families)).decode()
    assert_well_formed(body, False)
    assert "Not fastasgi's" not in body and "1000" not in body


def test_a_family_that_comes_twice_is_shown_once():
    first = list(registry_with(counted).collect())
    second = list(registry_with(counted).collect())
    families = admin.app_families(lambda: first + second)
    assert [family.name for family in families] == ["app_orders"]
    assert families[0] is first[0]


def test_a_failing_collection_leaves_fastasgis_families(caplog):
    def broken():
        raise RuntimeError("a custom collector of the app fails")

    with caplog.at_level(logging.ERROR, logger="fastasgi.error"):
        assert admin.app_families(broken) == []
    body = admin.render(snapshot_with(admin.app_families(broken))).decode()
    assert samples(body)["fastasgi_workers_live"] == 7


def test_one_process_serves_the_default_registry():
    counter = prometheus_client.Counter("app_single_hits", "Hits of this test.")
    try:
        counter.inc(5)
        body = admin.render(admin.LocalMetrics().collect()).decode()
    finally:
        prometheus_client.REGISTRY.unregister(counter)
    assert_well_formed(body, False)
    assert samples(body)["app_single_hits_total"] == 5


def test_one_process_without_the_client_imported_shows_nothing_of_it(monkeypatch):
    monkeypatch.delitem(sys.modules, "prometheus_client")
    assert admin.single_process_app_families() == []
    assert admin.LocalMetrics().collect().app == []


# -- the multiprocess mode of --workers -------------------------------------------------------


def write_metrics(monkeypatch, directory, pid: int, jobs: int) -> None:
    """What the client in worker ``pid`` writes after counting ``jobs``: its files in
    multiprocess mode (the client's own value class, told the PID; the unit suite starts
    no process)."""
    from prometheus_client.values import MultiProcessValue

    monkeypatch.setenv(admin.MULTIPROC_ENV, str(directory))
    value = MultiProcessValue(lambda: pid)
    value("counter", "app_jobs", "app_jobs_total", (), (), "Jobs done.").inc(jobs)
    value("gauge", "app_up", "app_up", (), (), "Live processes.", multiprocess_mode="livesum").set(1)


def values(app: admin.AppMultiprocess) -> dict[str, float]:
    return {sample.name: sample.value for family in app.collect() for sample in family.samples}


def test_counters_are_summed_over_processes_and_a_dead_ones_live_gauge_goes(tmp_path, monkeypatch):
    first, second = 4001, 4002
    write_metrics(monkeypatch, tmp_path, first, 3)
    write_metrics(monkeypatch, tmp_path, second, 4)
    app = admin.AppMultiprocess(str(tmp_path), owned=False)
    assert values(app) == {"app_jobs_total": 7, "app_up": 2}
    app.process_dead(first)
    # the counter keeps the dead process's count (totals never go backwards); livesum drops it
    assert values(app) == {"app_jobs_total": 7, "app_up": 1}
    app.process_dead(second)
    assert values(app) == {"app_jobs_total": 7}
    body = admin.render(admin.Snapshot(counters(), app=app.collect()), openmetrics=True).decode()
    assert_well_formed(body, True)


def test_the_users_directory_is_used_and_kept(tmp_path):
    environ = {admin.MULTIPROC_ENV: str(tmp_path)}
    app = admin.AppMultiprocess.setup(environ)
    assert app is not None and app.path == str(tmp_path) and not app.owned
    app.close(environ)
    assert tmp_path.is_dir() and environ == {admin.MULTIPROC_ENV: str(tmp_path)}


def test_a_users_path_that_is_no_directory_is_said(tmp_path, caplog):
    environ = {admin.MULTIPROC_ENV: str(tmp_path / "missing")}
    with caplog.at_level(logging.WARNING, logger="fastasgi.error"):
        assert admin.AppMultiprocess.setup(environ) is None
    assert "is not a directory" in caplog.text


def test_a_private_directory_is_made_and_removed(monkeypatch):
    # As in a supervisor that never imported the client: the variable decides its value class.
    monkeypatch.delitem(sys.modules, "prometheus_client.values")
    environ: dict[str, str] = {}
    app = admin.AppMultiprocess.setup(environ)
    assert app is not None and app.owned
    path = environ[admin.MULTIPROC_ENV]
    assert path == app.path and os.path.isdir(path) and os.listdir(path) == []
    app.close(environ)
    assert environ == {} and not os.path.exists(path)


def test_a_client_imported_before_the_supervisor_is_said(caplog):
    assert "prometheus_client.values" in sys.modules  # this test process imported it
    environ: dict[str, str] = {}
    with caplog.at_level(logging.WARNING, logger="fastasgi.error"):
        assert admin.AppMultiprocess.setup(environ) is None
    assert environ == {} and "imported before the supervisor" in caplog.text


def test_without_the_client_nothing_changes(monkeypatch):
    monkeypatch.setattr(admin.importlib.util, "find_spec", lambda name: None)
    environ: dict[str, str] = {}
    assert admin.AppMultiprocess.setup(environ) is None
    assert environ == {}
