"""No lost updates when two services write the same rule, balance catalog or health row at once (issue 8).

Real PostgreSQL, real concurrency: each thread has its own connection, and a barrier starts them
together, many rounds, so the read-modify-write windows overlap. On SQLite BEGIN IMMEDIATE
serializes every writer; these are the cases where PostgreSQL's READ COMMITTED would not.
"""

from __future__ import annotations

import json
import threading

from conftest import CajaFolder

from syscafe_sync import config as config_mod
from syscafe_sync import health, loyalty, registry, rules
from syscafe_sync.db.models import Catalog, CatalogRecord, CajaHealth, Rule, database


def together(n: int, work) -> list:
    """work(i) in n threads started at the same instant; their results, or their exceptions."""
    barrier = threading.Barrier(n)
    out: list = [None] * n

    def run(i):
        barrier.wait()
        try:
            out[i] = work(i)
        except Exception as exc:  # reported by the test, not swallowed
            out[i] = exc
        finally:
            database.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return out


def two_cajas(home, tmp_path):
    """The configuration, CAJA1 and CAJA2's folders, and their registry rows."""
    folders = [CajaFolder(tmp_path / f"CAJA{n}", f"CAJA{n}", [f"FV{n}"]) for n in (1, 2)]
    for f in folders:
        registry.add(f.name, str(f.root))
    return config_mod.load(home), folders, [registry.get(f.name) for f in folders]


def test_two_cajas_sending_the_same_rules_at_once_keep_the_highest_version(pg_home, tmp_path):
    cfg, folders, cajas = two_cajas(pg_home, tmp_path)
    for round_ in range(1, 6):
        # each round both cajas bring new versions of the same 60 rules; which caja wins alternates per rule
        for i, f in enumerate(folders):
            for r in range(60):
                version = 2 * round_ + (1 if (r + i + round_) % 2 else 0)
                f.writer.write_rule({"format": 1, "id": f"R-{r}", "version": version, "name": f"{f.name} {version}",
                                     "updated_at": "2026-11-20T10:00:00-05:00"})
        results = together(2, lambda i: rules.sync_caja(cfg, cajas[i]))
        assert [(r.outcome, r.message) for r in results if r.outcome != "ok"] == []
        held = {r.rule_id: r.version for r in Rule.select()}
        assert held == {f"R-{r}": 2 * round_ + 1 for r in range(60)}, f"round {round_}: a lower version overwrote a higher one"


def test_balances_computed_by_two_services_at_once_are_never_stale(pg_home, tmp_path):
    cfg, folders, cajas = two_cajas(pg_home, tmp_path)
    seq = [0, 0]
    for round_ in range(12):
        for i, f in enumerate(folders):
            entries = []
            for _ in range(20):
                seq[i] += 1
                entries.append({"seq": seq[i], "customer": f"C{seq[i] % 5}", "kind": "earn", "points": 1 + i,
                                "at": "2026-11-22T10:00:00-05:00"})
            f.writer.append_loyalty("2026-11-22", entries)

        def service(i):
            assert loyalty.sync_caja(cfg, cajas[i]).outcome == "ok"
            return loyalty.refresh_balances_catalog()

        got = together(2, service)
        assert not [g for g in got if isinstance(g, Exception)], got
        # whichever committed last, it computed from everything both had counted: nothing stale won
        catalog = {k: json.loads(d)["points"] for k, d in CatalogRecord.select(CatalogRecord.key, CatalogRecord.data)
                   .where((CatalogRecord.catalog == "loyalty_balances") & (CatalogRecord.deleted == False)).tuples()}
        assert catalog == {b["customer"]: str(b["points"]) for b in loyalty.balances()}, f"round {round_}"
    versions = [v for (v,) in CatalogRecord.select(CatalogRecord.version).where(CatalogRecord.catalog == "loyalty_balances").tuples()]
    assert len(versions) == len(set(versions)), "a version was given twice"
    assert Catalog.get(Catalog.name == "loyalty_balances").version == max(versions)


def test_failing_passes_counted_by_two_services_at_once_are_all_counted(pg_home):
    together(4, lambda i: [health.record({"CAJA1": ["failed: unreachable"]}, 1000) for _ in range(25)])
    assert CajaHealth.get(CajaHealth.caja == "CAJA1").failures == 100
