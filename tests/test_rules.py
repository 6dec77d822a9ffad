"""Commercial rules: one current version per id, conflicts, refusals, disappearing files; API and CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import cli_json, run_cli, write_config


from syscafe_sync import config as config_mod
from syscafe_sync import db, registry, rules
from syscafe_sync.db.models import Notice, Refusal, Rule, RuleSource, SyncLog

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"


def rule(rule_id: str = "R-HH-ALM", version: int = 3, updated_at: str = "2026-11-20T10:00:00-05:00", **kw) -> dict:
    doc = {
        "format": 1, "id": rule_id, "name": "Almuerzos happy hour", "type": "percent_discount", "priority": 0,
        "active": True, "version": version, "updated_at": updated_at,
        "conditions": {"group": ["ALMUERZOS"], "weekdays": [1, 2, 3, 4, 5], "time": {"from": "14:00", "to": "16:00"}},
        "action": {"percent": "10", "max_amount": "5000.00"},
        "valid_from": "2026-11-01", "valid_to": "2026-12-31",
    }
    doc.update(kw)
    return doc


def run(cfg, *names):
    return {r.caja: r for r in rules.sync(cfg, list(names)).results}


def held(rule_id: str = "R-HH-ALM") -> Rule:
    return Rule.get(Rule.rule_id == rule_id)


def log_rows(outcome: str) -> list[SyncLog]:
    return list(SyncLog.select().where((SyncLog.action == "rules sync") & (SyncLog.outcome == outcome)).order_by(SyncLog.id))


def test_a_new_rule_is_imported_with_its_caja_and_document(cfg, two):
    c1, _ = two
    path = c1.writer.write_rule(rule())
    res = run(cfg)
    assert (res["CAJA1"].outcome, res["CAJA1"].new, res["CAJA1"].updated, res["CAJA1"].conflicts) == ("ok", 1, 0, 0)
    assert (res["CAJA2"].outcome, res["CAJA2"].new) == ("ok", 0)
    r = held()
    assert (r.version, r.caja, r.name, r.active, r.updated_at) == (3, "CAJA1", "Almuerzos happy hour", True, "2026-11-20T10:00:00-05:00")
    assert r.document == path.read_text(encoding="utf-8")
    assert r.updated_utc.isoformat() == "2026-11-20T15:00:00+00:00"
    # one summary row per caja
    assert [(row.caja, row.imported) for row in log_rows("ok")] == [("CAJA1", 1), ("CAJA2", 0)]


def test_a_higher_version_wins_a_lower_one_is_ignored(cfg, two):
    c1, c2 = two
    c1.writer.write_rule(rule(version=3))
    run(cfg)
    c2.writer.write_rule(rule(version=4, updated_at="2026-11-19T10:00:00-05:00", name="Almuerzos v4"))
    res = run(cfg)
    assert (res["CAJA2"].new, res["CAJA2"].updated, res["CAJA2"].conflicts) == (0, 1, 0)
    assert (held().version, held().caja, held().name) == (4, "CAJA2", "Almuerzos v4")
    # a lower version, even a later one, changes nothing and is no conflict
    c1.writer.write_rule(rule(version=2, updated_at="2026-11-25T10:00:00-05:00", name="old"))
    res = run(cfg)
    assert (res["CAJA1"].updated, res["CAJA1"].conflicts, res["CAJA1"].skipped) == (0, 0, 1)
    assert (held().version, held().caja, held().name) == (4, "CAJA2", "Almuerzos v4")
    assert log_rows("conflict") == []


def test_same_version_later_updated_at_replaces_and_the_conflict_is_logged(cfg, two):
    c1, c2 = two
    c1.writer.write_rule(rule(action={"percent": "10"}))
    c2.writer.write_rule(rule(action={"percent": "15"}, updated_at="2026-11-21T10:00:00-05:00"))
    res = run(cfg)
    assert (res["CAJA1"].new, res["CAJA2"].updated, res["CAJA2"].conflicts) == (1, 1, 1)
    assert held().caja == "CAJA2" and json.loads(held().document)["action"] == {"percent": "15"}
    [row] = log_rows("conflict")
    assert row.level == "warning" and "CAJA1" in row.message and "CAJA2" in row.message
    # later updated_at compared as instants: 10:00-05:00 is later than 14:00+00:00
    c1.writer.write_rule(rule(rule_id="R-T", version=1, updated_at="2026-11-20T14:00:00+00:00", action={"a": "1"}))
    c2.writer.write_rule(rule(rule_id="R-T", version=1, updated_at="2026-11-20T10:00:00-05:00", action={"a": "2"}))
    run(cfg)
    assert held("R-T").caja == "CAJA2"


def test_a_conflict_keeps_the_held_version_and_names_both_cajas(cfg, two):
    c1, c2 = two
    c1.writer.write_rule(rule(action={"percent": "10"}))
    c2.writer.write_rule(rule(action={"percent": "20"}))  # same id, version and updated_at, other content
    res = run(cfg)
    assert (res["CAJA1"].new, res["CAJA1"].conflicts) == (1, 0)
    assert (res["CAJA2"].new, res["CAJA2"].updated, res["CAJA2"].conflicts) == (0, 0, 1)
    assert res["CAJA2"].outcome == "ok"
    r = held()
    assert r.caja == "CAJA1" and json.loads(r.document)["action"] == {"percent": "10"}
    [row] = log_rows("conflict")
    sha2 = RuleSource.get((RuleSource.caja == "CAJA2") & (RuleSource.rule_id == "R-HH-ALM")).sha256
    assert row.level == "warning" and row.caja == "CAJA2"
    assert "CAJA1" in row.message and "CAJA2" in row.message
    assert r.sha256[:12] in row.message and sha2[:12] in row.message and r.sha256 != sha2
    [c] = res["CAJA2"].conflict_details
    assert (c["held_caja"], c["caja"], c["kept"], c["replaced"]) == ("CAJA1", "CAJA2", "CAJA1", False)
    # the same conflict is not logged again on the next pass
    res = run(cfg)
    assert res["CAJA2"].conflicts == 0 and len(log_rows("conflict")) == 1
    # rules list shows where the contents differ
    [listed] = rules.list_rules()
    assert listed["sources"] == ["CAJA1"] and [e["caja"] for e in listed["elsewhere"]] == ["CAJA2"]


def test_a_caja_changing_a_rule_without_bumping_the_version_is_a_conflict(cfg, two):
    c1, _ = two
    c1.writer.write_rule(rule())
    run(cfg)
    c1.writer.write_rule(rule(name="changed, same version"))
    res = run(cfg)["CAJA1"]
    assert (res.updated, res.conflicts) == (0, 1)
    assert held().name == "Almuerzos happy hour"
    [row] = log_rows("conflict")
    assert row.message.count("CAJA1") >= 2


def test_the_same_content_from_two_cajas_is_not_a_conflict_even_formatted_differently(cfg, two):
    c1, c2 = two
    c1.writer.write_rule(rule())
    # the same rule, keys in another order and compact: the same rule
    doc = rule()
    c2.raw("rules/R-HH-ALM.json", json.dumps(dict(reversed(list(doc.items()))), separators=(",", ":")))
    res = run(cfg)
    assert (res["CAJA2"].new, res["CAJA2"].updated, res["CAJA2"].conflicts, res["CAJA2"].skipped) == (0, 0, 0, 1)
    assert held().caja == "CAJA1" and log_rows("conflict") == []
    [listed] = rules.list_rules()
    assert listed["sources"] == ["CAJA1", "CAJA2"] and listed["elsewhere"] == []


def test_a_removed_rule_file_is_reported_once_and_the_rule_kept(cfg, two):
    c1, c2 = two
    path = c2.writer.write_rule(rule(version=5))
    c1.writer.write_rule(rule(rule_id="R-OTHER", version=1))
    run(cfg)
    path.unlink()
    res = run(cfg)
    assert res["CAJA2"].missing == ["R-HH-ALM"] and res["CAJA1"].missing == []
    assert res["CAJA2"].outcome == "ok"
    [row] = log_rows("missing")
    assert row.level == "warning" and row.caja == "CAJA2"
    assert row.message == "rule R-HH-ALM disappeared from CAJA2; the main server keeps version 5"
    assert held().version == 5
    src = RuleSource.get((RuleSource.caja == "CAJA2") & (RuleSource.rule_id == "R-HH-ALM"))
    assert src.present is False
    # not reported again
    assert run(cfg)["CAJA2"].missing == [] and len(log_rows("missing")) == 1
    [listed] = [r for r in rules.list_rules() if r["id"] == "R-HH-ALM"]
    assert listed["sources"] == [] and listed["version"] == 5
    # the whole rules folder gone: every rule it had is reported, once
    shutil.rmtree(c1.root / "rules")
    res = run(cfg)
    assert res["CAJA1"].outcome == "ok" and res["CAJA1"].missing == ["R-OTHER"]
    assert Rule.select().count() == 2


BAD = {
    "not-utf8": (b"\xff\xfe{}", "not UTF-8"),
    "not-json": (b'{"format": 1, "id": ', "not valid JSON"),
    "not-object": (b"[1, 2]", "not a JSON object"),
    "format-2": (rule(rule_id="format-2", format=2), "format 2 is not supported"),
    "format-missing": ({k: v for k, v in rule(rule_id="format-missing").items() if k != "format"}, "format is missing"),
    "id-missing": ({k: v for k, v in rule().items() if k != "id"}, "id is missing"),
    "id-number": (rule(rule_id=7), "id = 7 is not a string"),
    "id-other": (rule(rule_id="R-ELSE"), "its name says id-other"),
    "version-text": (rule(rule_id="version-text", version="3"), "not a whole number"),
    "version-bool": (rule(rule_id="version-bool", version=True), "not a whole number"),
    "version-decimal": (b'{"format": 1, "id": "version-decimal", "version": 3.5, "updated_at": "2026-11-20T10:00:00-05:00"}',
                        "not a whole number"),
    "version-negative": (rule(rule_id="version-negative", version=-1), "not a whole number"),
    "version-missing": ({k: v for k, v in rule(rule_id="version-missing").items() if k != "version"}, "version is missing"),
    "updated-missing": ({k: v for k, v in rule(rule_id="updated-missing").items() if k != "updated_at"}, "updated_at is missing"),
    "updated-no-offset": (rule(rule_id="updated-no-offset", updated_at="2026-11-20T10:00:00"), "has no UTC offset"),
    "updated-garbage": (rule(rule_id="updated-garbage", updated_at="yesterday"), "not an ISO 8601 timestamp"),
    # Read fine, but with the offset applied they fall before year 1 or after 9999: no UTC instant.
    "updated-before-year-1": (rule(rule_id="updated-before-year-1", updated_at="0001-01-01T00:00:00+05:00"),
                              'updated_at = "0001-01-01T00:00:00+05:00"'),
    "updated-after-year-9999": (rule(rule_id="updated-after-year-9999", updated_at="9999-12-31T23:00:00-05:00"),
                                'updated_at = "9999-12-31T23:00:00-05:00"'),
    "name-number": (rule(rule_id="name-number", name=12), "name = 12 is not a string"),
    "name-nul": (rule(rule_id="name-nul", name="2x1\u0000"), "name holds a NUL character"),
    "name-half-character": (b'{"format": 1, "id": "name-half-character", "version": 1, "updated_at": "2026-11-20T10:00:00-05:00", '
                            b'"name": "Caf\\ud83d"}', "name holds half of a character"),
    "active-text": (rule(rule_id="active-text", active="yes"), "active = \"yes\" is not true or false"),
}


def _bytes(content) -> bytes:
    return content if isinstance(content, bytes) else json.dumps(content).encode()


@pytest.mark.parametrize("stem", sorted(BAD))
def test_each_refusal_reason_is_reported_and_the_rest_of_the_folder_synced(cfg, two, stem):
    c1, _ = two
    content, reason = BAD[stem]
    c1.raw(f"rules/{stem}.json", _bytes(content))
    c1.writer.write_rule(rule(rule_id="R-GOOD", version=1))
    result = rules.sync(cfg, ["CAJA1"])
    assert result.failed
    [res] = result.results
    assert (res.outcome, res.new, res.refused) == ("ok", 1, 1)
    [refusal] = res.refusals
    assert refusal["path"] == f"rules/{stem}.json" and reason in refusal["reason"], refusal
    assert [r.rule_id for r in Rule.select()] == ["R-GOOD"]
    [row] = log_rows("refused")
    assert row.level == "warning" and f"rules/{stem}.json" in row.message
    assert Refusal.get(Refusal.path == f"rules/{stem}.json").resolved_at is None


def test_a_file_over_the_size_limit_is_refused(home, caja_folder):
    write_config(home, limits={"max_file_bytes": 2000})
    cfg = config_mod.load(home)
    db.connect(cfg.db_url)
    c1 = caja_folder("CAJA1")
    registry.add("CAJA1", str(c1.root))
    c1.writer.write_rule(rule(rule_id="R-BIG", notes="x" * 5000))
    c1.writer.write_rule(rule(rule_id="R-SMALL"))
    [res] = rules.sync(cfg).results
    assert (res.new, res.refused) == (1, 1)
    assert res.refusals[0]["path"] == "rules/R-BIG.json" and "over the limit of 2000 bytes" in res.refusals[0]["reason"]


def test_a_refused_file_is_retried_and_resolved_once_fixed(cfg, two):
    c1, _ = two
    c1.raw("rules/R-X.json", "{broken")
    assert run(cfg)["CAJA1"].refused == 1
    again = run(cfg)["CAJA1"]
    assert again.refused == 1 and again.refusals[0]["path"] == "rules/R-X.json"
    assert Refusal.get(Refusal.path == "rules/R-X.json").attempts == 2
    assert len(log_rows("refused")) == 1, "logged when first refused, not on every pass that finds it unchanged"
    assert "1 refused (1 unchanged since first refused and logged)" in again.message
    c1.raw("rules/R-X.json", "{broken, otherwise")
    run(cfg)
    assert len(log_rows("refused")) == 2, "changed and still bad: logged again"
    c1.writer.write_rule(rule(rule_id="R-X", version=1))
    res = run(cfg)["CAJA1"]
    assert (res.refused, res.new) == (0, 1)
    assert Refusal.get(Refusal.path == "rules/R-X.json").resolved_at is not None
    # a refused file that is still there is not "disappeared"
    c1.raw("rules/R-X.json", "{broken again")
    assert run(cfg)["CAJA1"].missing == []


def test_temp_hidden_and_unknown_names_are_ignored_unknown_ones_logged_once(cfg, two):
    c1, _ = two
    c1.writer.write_rule(rule())
    c1.raw("rules/.R-NEW.json.tmp", "{half")
    c1.raw("rules/R-NEW.json.tmp", "{half")
    c1.raw("rules/.hidden.json", "{half")
    c1.raw("rules/notes.txt", "hello")
    (c1.root / "rules" / "sub.json").mkdir()
    for _ in range(2):
        res = run(cfg)["CAJA1"]
        assert (res.outcome, res.refused, res.new + res.skipped) == ("ok", 0, 1)
    assert sorted(n.path for n in Notice.select().where(Notice.caja == "CAJA1")) == ["rules/notes.txt", "rules/sub.json"]


def test_a_link_leading_outside_the_root_is_refused(cfg, two, tmp_path):
    c1, _ = two
    outside = tmp_path / "outside.json"
    outside.write_text(json.dumps(rule(rule_id="R-LINK")))
    (c1.root / "rules").mkdir(parents=True, exist_ok=True)
    (c1.root / "rules" / "R-LINK.json").symlink_to(outside)
    [res] = rules.sync(cfg, ["CAJA1"]).results
    assert res.refused == 1 and "outside the caja root" in res.refusals[0]["reason"]
    assert Rule.select().count() == 0


def test_an_unreachable_caja_is_reported_and_the_other_served(cfg, two):
    c1, c2 = two
    c2.writer.write_rule(rule())
    registry.edit("CAJA1", root=str(c1.root.parent / "gone"))
    result = rules.sync(cfg)
    res = {r.caja: r for r in result.results}
    assert res["CAJA1"].outcome == "unreachable" and res["CAJA2"].outcome == "ok" and res["CAJA2"].new == 1
    assert result.failed
    [row] = [r for r in log_rows("unreachable")]
    assert row.caja == "CAJA1" and row.level == "error"


def test_repeated_syncs_are_idempotent(cfg, two):
    c1, c2 = two
    c1.writer.write_rule(rule())
    c1.writer.write_rule(rule(rule_id="R-2", version=2))
    c2.writer.write_rule(rule())
    c2.writer.write_rule(rule(rule_id="R-3", version=1, action={"x": "1"}))
    run(cfg)
    before = [(r.rule_id, r.version, r.sha256, r.synced_at) for r in Rule.select().order_by(Rule.rule_id)]
    for _ in range(2):
        res = run(cfg)
        for r in res.values():
            assert (r.outcome, r.new, r.updated, r.conflicts, r.refused, r.missing) == ("ok", 0, 0, 0, 0, [])
    assert [(r.rule_id, r.version, r.sha256, r.synced_at) for r in Rule.select().order_by(Rule.rule_id)] == before


def test_cajas_are_served_in_the_order_given(cfg, two):
    c1, c2 = two
    c1.writer.write_rule(rule(action={"percent": "10"}))
    c2.writer.write_rule(rule(action={"percent": "20"}))
    res = rules.sync(cfg, ["CAJA2", "CAJA1"])
    assert [r.caja for r in res.results] == ["CAJA2", "CAJA1"]
    assert held().caja == "CAJA2"


def test_an_unknown_caja_is_a_usage_error(home):
    proc = run_cli(home, "rules", "sync", "NOPE", check=2)
    assert "NOPE" in proc.stderr


def test_rules_sync_and_list_through_the_cli(home, caja_folder):
    c1, c2 = caja_folder("CAJA1"), caja_folder("CAJA2")
    for c in (c1, c2):
        run_cli(home, "caja", "add", c.name, "--path", str(c.root), check=0)
    c1.writer.write_rule(rule())
    c2.writer.write_rule(rule(action={"percent": "99"}))  # a conflict alone: exit 0
    doc = cli_json(home, "rules", "sync")
    assert doc["action"] == "rules sync"
    assert [(r["caja"], r["outcome"], r["new"], r["updated"], r["conflicts"]) for r in doc["results"]] == [
        ("CAJA1", "ok", 1, 0, 0), ("CAJA2", "ok", 0, 0, 1)]
    assert all(isinstance(r["message"], str) for r in doc["results"])
    c2.raw("rules/R-BAD.json", "nope")
    doc = json.loads(run_cli(home, "--json", "rules", "sync", "CAJA2", check=1).stdout)
    [r] = doc["results"]
    assert r["refused"] == 1 and r["refusals"][0]["path"] == "rules/R-BAD.json"
    listed = cli_json(home, "rules", "list")
    assert list(listed) == ["rules"]
    [one] = listed["rules"]
    assert {k: one[k] for k in ("id", "version", "caja", "active", "name")} == {
        "id": "R-HH-ALM", "version": 3, "caja": "CAJA1", "active": True, "name": "Almuerzos happy hour"}
    text = run_cli(home, "rules", "list", check=0).stdout
    assert "R-HH-ALM" in text and "CAJA1" in text
    text = run_cli(home, "rules", "sync", check=1).stdout
    assert "refused rules/R-BAD.json" in text
    logged = [json.loads(line) for line in run_cli(home, "--json", "log", "--action", "rules sync", check=0).stdout.splitlines()]
    assert {"ok", "conflict", "refused"} <= {row["outcome"] for row in logged}
    for args in (["rules", "--help"], ["rules", "sync", "--help"], ["rules", "list", "--help"]):
        assert "Usage:" in run_cli(home, *args, check=0).stdout


def test_an_unreachable_caja_exits_1_through_the_cli(home, caja_folder, tmp_path):
    c1 = caja_folder("CAJA1")
    run_cli(home, "caja", "add", "CAJA1", "--path", str(c1.root), check=0)
    shutil.rmtree(c1.root)
    doc = json.loads(run_cli(home, "--json", "rules", "sync", check=1).stdout)
    assert doc["results"][0]["outcome"] == "unreachable"


def test_the_fixture_cajas_give_three_rules_and_no_conflict(home, tmp_path):
    for name in ("CAJA1", "CAJA2", "CAJA3"):
        root = tmp_path / "fx" / name
        root.mkdir(parents=True)
        shutil.copy(FIXTURES / name / "caja.json", root / "caja.json")
        shutil.copytree(FIXTURES / name / "rules", root / "rules")
        run_cli(home, "caja", "add", name, "--path", str(root), check=0)
    doc = cli_json(home, "rules", "sync")
    assert sum(r["new"] for r in doc["results"]) == 3
    assert sum(r["conflicts"] for r in doc["results"]) == 0
    assert all(r["outcome"] == "ok" and r["refused"] == 0 for r in doc["results"])
    listed = {r["id"]: r for r in cli_json(home, "rules", "list")["rules"]}
    assert sorted(listed) == ["R-CERV-2X1", "R-COMBO-DES", "R-HH-ALM"]
    assert listed["R-HH-ALM"]["caja"] == "CAJA1" and listed["R-HH-ALM"]["sources"] == ["CAJA1", "CAJA2"]
    assert (listed["R-CERV-2X1"]["caja"], listed["R-CERV-2X1"]["version"]) == ("CAJA3", 2)
    doc = cli_json(home, "rules", "sync")
    assert all((r["new"], r["updated"], r["conflicts"]) == (0, 0, 0) for r in doc["results"])


def test_postgresql_rules_sync_conflict_missing_and_list(tmp_path, pg_url, caja_folder):  # noqa: F811
    home = tmp_path / "home"
    cli_json(home, "--db", pg_url, "init")
    c1, c2 = caja_folder("CAJA1"), caja_folder("CAJA2")
    for c in (c1, c2):
        run_cli(home, "--db", pg_url, "caja", "add", c.name, "--path", str(c.root), check=0)
    c1.writer.write_rule(rule())
    gone = c1.writer.write_rule(rule(rule_id="R-GONE", version=7, active=False))
    c2.writer.write_rule(rule(action={"percent": "30"}, updated_at="2026-11-20T16:00:00+00:00"))
    doc = cli_json(home, "--db", pg_url, "rules", "sync")
    assert [(r["caja"], r["new"], r["updated"], r["conflicts"]) for r in doc["results"]] == [("CAJA1", 2, 0, 0), ("CAJA2", 0, 1, 1)]
    gone.unlink()
    doc = cli_json(home, "--db", pg_url, "rules", "sync")
    assert [(r["caja"], r["new"], r["updated"], r["conflicts"], r["missing"]) for r in doc["results"]] == [
        ("CAJA1", 0, 0, 0, ["R-GONE"]), ("CAJA2", 0, 0, 0, [])]
    listed = {r["id"]: r for r in cli_json(home, "--db", pg_url, "rules", "list")["rules"]}
    assert (listed["R-HH-ALM"]["caja"], listed["R-HH-ALM"]["sources"]) == ("CAJA2", ["CAJA2"])
    assert (listed["R-GONE"]["version"], listed["R-GONE"]["active"], listed["R-GONE"]["sources"]) == (7, False, [])
