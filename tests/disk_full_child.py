"""Child of tests/test_publish_disk_full.py, run inside its own mount namespace on a 1 MB tmpfs (`unshare`).

Publishes the analysts' copy twice into the tmpfs: a small one that fits (the previous copy), then one that does
not. Before the first, it leaves what a `kill -9` during a publish leaves (a `.tmp` and its `.tmp.wal`). Prints
one JSON line: what the second publish raised, the files left in the folder and both copies' build ids.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import duckdb

from connectors.publish import publish_analyst_copy


def build_id(path: Path) -> str:
    conn = duckdb.connect(str(path), read_only=True)
    try:
        return str(conn.execute("SELECT build_id FROM meta.build").fetchone()[0])
    finally:
        conn.close()


def main(folder: str) -> int:
    target = Path(folder) / "kpis.duckdb"
    killed = Path(folder) / ".kpis.duckdb.0123456789abcdef.tmp"  # what a publish killed mid-copy leaves
    killed.write_bytes(b"\0" * 4096)
    killed.with_name(killed.name + ".wal").write_bytes(b"\0" * 512)
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA kpi")
    conn.execute("CREATE TABLE kpi.kpi_daily AS SELECT range AS i, md5(range::VARCHAR) AS s FROM range(100)")
    first = publish_analyst_copy(conn, target, run_id="small")
    after_first = sorted(p.name for p in Path(folder).iterdir())
    # random text does not compress: ~10 MB of it cannot fit in 1 MB
    conn.execute("INSERT INTO kpi.kpi_daily SELECT range, md5(range::VARCHAR) || md5((range + 1)::VARCHAR) "
                 "FROM range(100, 300000)")
    outcome: dict[str, object] = {"first_build": first.build_id, "after_first": after_first}
    try:
        publish_analyst_copy(conn, target, run_id="big")
        outcome["error"] = None
    except Exception as exc:  # noqa: BLE001 - reported to the parent as it is
        outcome["error"] = type(exc).__name__
        outcome["message"] = str(exc)
        outcome["cause"] = str(exc.__cause__ or "")
    outcome["files"] = sorted(p.name for p in Path(folder).iterdir())
    outcome["build_now"] = build_id(target)
    print(json.dumps(outcome))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
