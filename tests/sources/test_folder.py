"""The folder source: the newest complete export, a done-marker, and the landing zone's
retention."""

import time
from datetime import date
from pathlib import Path

import pytest
from sisflow.config import Source
from sisflow.sources import folder, landing
from sisflow.sources.complete import NothingToFetch, StillBeingWritten

from tests.factory import enterprise, lenient, person, run_once, write


def test_only_a_complete_export_is_taken(tmp_path, monkeypatch):
    monkeypatch.setenv("SISFLOW_HOME", str(tmp_path / "home"))
    drop = tmp_path / "drop"
    drop.mkdir()
    source = Source(path=str(drop), stable_seconds=0.1, done_marker=True)
    with pytest.raises(NothingToFetch, match="no file matching"):
        folder.fetch("kommune", source)
    (drop / "export.xml").write_text("<x/>")
    with pytest.raises(StillBeingWritten, match="export.xml.done"):
        folder.fetch("kommune", source)
    (drop / "export.xml.done").touch()
    assert Path(folder.fetch("kommune", source)).read_text() == "<x/>"
    (drop / "empty.xml").touch()  # newer, but nothing in it yet
    with pytest.raises(StillBeingWritten, match="empty"):
        folder.fetch("kommune", Source(path=str(drop), stable_seconds=0.1))


def test_exports_leave_the_landing_zone_after_the_customers_days(conn, tmp_path):
    config = lenient(landing_days=1.5 / 86400)  # a second and a half
    old = write(tmp_path, enterprise(person("p1")), "day1.xml")
    run_once(conn, "kommune", old, config=config, on=date(2025, 9, 1))
    landed = landing.folder("kommune")
    (landed / "stray.xml").write_text("<left-over/>")
    time.sleep(2)
    new = write(tmp_path, enterprise(person("p1"), person("p2")), "day2.xml")
    run_once(conn, "kommune", new, config=config, on=date(2025, 9, 2))
    assert sorted(p.name for p in landed.iterdir()) == ["day2.xml"]
    held_back = write(tmp_path, "<enterprise>", "broken.xml")  # rejected: the last good stays
    time.sleep(2)
    run_once(conn, "kommune", held_back, config=config, on=date(2025, 9, 3))
    assert sorted(p.name for p in landed.iterdir()) == ["broken.xml", "day2.xml"]


def test_a_landing_zone_in_object_storage(conn, tmp_path, monkeypatch):
    """An Airflow ObjectStoragePath (file:// here; s3:// or gs:// in a deployment): the export
    lands there, the run reads it from there, and retention works there too."""
    objects = f"file://{tmp_path}/objects"
    monkeypatch.setenv("SISFLOW_LANDING", objects)
    drop = tmp_path / "drop"
    drop.mkdir()
    write(drop, enterprise(person("p1"), person("p2")), "export.xml")
    config = lenient(
        source={"kind": "folder", "path": str(drop), "stable_seconds": 0.05},
        landing_days=1.5 / 86400,
    )
    first = run_once(conn, "kommune", None, config=config, on=date(2025, 9, 1))
    assert first["status"] == "committed" and first["counts"]["person"]["create"] == 2
    with conn.cursor() as cur:
        cur.execute("SELECT file_path FROM sis.runs")
        assert cur.fetchall() == [(f"{objects}/kommune/export.xml",)]
    landed = landing.folder("kommune")
    assert type(landed).__name__ == "ObjectStoragePath"
    assert [p.name for p in landed.iterdir()] == ["export.xml"]
    (landed / "stray.xml").write_bytes(b"<old/>")
    time.sleep(2)
    again = run_once(conn, "kommune", None, config=config, on=date(2025, 9, 2))
    assert again["status"] == "unchanged"
    assert [p.name for p in landed.iterdir()] == ["export.xml"]  # the stray one went
