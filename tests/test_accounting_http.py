"""The HTTP connector against a local accounting API that fails on purpose (5xx, time-outs, dropped
connections after saving): every voucher ends up posted exactly once on the server's side, retries wait
longer each time and stop, and `vouchers list` shows what was posted, held and failed."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter, defaultdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import DAY, MAPPING, cli_json, run_cli, write_config

from syscafe_sync import config as config_mod
from syscafe_sync import importer, vouchers
from syscafe_sync.accounting import journal
from syscafe_sync.accounting.http import HttpDestination
from syscafe_sync.db.models import SyncLog

TOKEN = "s3cr3t-token-never-shown"
CLIENT_TIMEOUT = 0.4


class FlakyApi:
    """An accounting API that saves an entry once per Idempotency-Key, and fails as `plan(key, n)` says
    for the n-th request with that key: "503", "500", "timeout" (saves, answers too late), "drop" (saves,
    closes the connection without an answer), "401", or "ok"."""

    def __init__(self, plan):
        self.plan = plan
        self.saved: dict[str, dict] = {}
        self.requests: Counter = Counter()
        self.arrivals: dict[str, list[float]] = defaultdict(list)  # when each request of a key came in
        self.auth: set[str] = set()
        self.lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                key = self.headers.get("Idempotency-Key")
                with api.lock:
                    api.requests[key] += 1
                    api.arrivals[key].append(time.monotonic())
                    api.auth.add(self.headers.get("Authorization"))
                    what = api.plan(key, api.requests[key])
                    if what in ("ok", "timeout", "drop"):
                        # The server's own idempotency: a key seen before is not saved again.
                        assert api.saved.setdefault(key, body) == body, f"same key {key}, another body"
                if what == "drop":
                    self.close_connection = True
                    return
                if what == "timeout":
                    time.sleep(CLIENT_TIMEOUT * 2.5)
                code = {"ok": 201, "timeout": 201, "503": 503, "500": 500, "401": 401}[what]
                try:
                    self.send_response(code)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                except OSError:
                    pass  # the client gave up waiting: that is the point

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/entries"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api_factory():
    made = []

    def make(plan) -> FlakyApi:
        made.append(FlakyApi(plan))
        return made[-1]

    yield make
    for api in made:
        api.close()


def configure(home, url, token=TOKEN, retries=5, backoff_s=0.01):
    write_config(home, accounting={"destination": "http", "url": url, "token": token, "timeout_s": CLIENT_TIMEOUT,
                                   "retries": retries, "backoff_s": backoff_s})
    return config_mod.load(home)


def every_kind_of_failure(key: str, n: int) -> str:
    # Each entry meets a different trouble on its first attempt, some a second one too.
    trouble = ["503", "timeout", "drop", "500", "ok"][sum(map(ord, key)) % 5]
    if n == 1:
        return trouble
    if n == 2 and trouble == "503":
        return "drop"
    return "ok"


def test_every_voucher_is_posted_exactly_once_despite_5xx_timeouts_and_dropped_connections(cfg, books, api_factory):
    c1, c2 = books
    c1.add_many(10, 12)
    c2.add_many(10, 12)
    importer.import_day(cfg, [], DAY, "skip")
    api = api_factory(every_kind_of_failure)
    result = journal.post(configure(cfg.home, api.url))
    assert result.outcome == "ok", result.failed
    stored = {d["key"]: d for _, d in journal.stored()}
    assert set(api.saved) == set(stored) and len(stored) == 27
    assert api.saved == stored  # what the server saved is exactly the journal
    posted_vouchers = Counter(v for e in api.saved.values() for v in e["vouchers"])
    assert len(posted_vouchers) == 27 and set(posted_vouchers.values()) == {1}
    # the failures did happen, and their retries carried the same key
    assert {k for k, n in api.requests.items() if n > 1} and max(api.requests.values()) >= 3
    assert api.auth == {f"Bearer {TOKEN}"}
    assert {v["accounting"] for v in vouchers.list_vouchers()} == {"posted"}
    # posting again sends nothing
    before = sum(api.requests.values())
    assert journal.post(configure(cfg.home, api.url)).entries == [] and sum(api.requests.values()) == before


def test_a_server_down_fails_with_the_reason_and_retry_posts_once_when_it_is_back(cfg, books, api_factory):
    down = {"state": True}
    api = api_factory(lambda key, n: "503" if down["state"] else "ok")
    result = journal.post(configure(cfg.home, api.url, retries=2))
    assert result.outcome == "failed" and len(result.failed) == 3 and api.saved == {}
    reason = result.failed[0]["reason"]
    assert "did not take entry" in reason and "after 3 attempts: HTTP 503" in reason and "accounting retry" in reason
    assert set(api.requests.values()) == {3}
    failed_rows = list(SyncLog.select().where(SyncLog.outcome == "failed"))
    assert failed_rows and all(TOKEN not in (r.message + (r.details or "")) for r in failed_rows)
    down["state"] = False
    retried = journal.post(configure(cfg.home, api.url), retry=True)
    assert retried.outcome == "ok" and len(retried.posted) == 3 and sorted(api.saved) == sorted(e["key"] for e in retried.entries)
    assert TOKEN not in cfg.log_path.read_text("utf-8")


def test_a_client_error_is_not_retried(cfg, books, api_factory):
    api = api_factory(lambda key, n: "401")
    result = journal.post(configure(cfg.home, api.url))
    assert set(api.requests.values()) == {1} and "after 1 attempts: HTTP 401" in result.failed[0]["reason"]


def test_through_the_program_the_token_comes_from_the_environment_and_is_never_shown(home, books, api_factory):
    api = api_factory(every_kind_of_failure)
    configure(home, api.url, token="")
    refused = run_cli(home, "accounting", "post", check=2)
    assert "SYSCAFE_SYNC_ACCOUNTING_TOKEN" in refused.stderr and api.requests == Counter()
    proc = run_cli(home, "--json", "accounting", "post", check=0, env={"SYSCAFE_SYNC_ACCOUNTING_TOKEN": TOKEN})
    doc = json.loads(proc.stdout)
    assert doc["destination"] == "http" and doc["where"] == api.url and len(doc["posted"]) == 3
    assert api.auth == {f"Bearer {TOKEN}"} and len(api.saved) == 3
    everything = proc.stdout + proc.stderr + run_cli(home, "log", check=0).stdout + (home / "logs" / "syscafe-sync.log").read_text("utf-8")
    assert TOKEN not in everything
    assert {v["accounting"] for v in cli_json(home, "vouchers", "list")["vouchers"]} == {"posted"}


def test_vouchers_list_shows_posted_held_and_failed_through_the_program(home, books, api_factory, tmp_path):
    c1, _ = books
    c1.add(3, payments=[("DAVIPLATA", "35864.00")])  # no account for it: held
    run_cli(home, "import", "--date", DAY.isoformat(), check=0)
    refusing = {"CAJA1:FV1:2:1"}
    api = api_factory(lambda key, n: "503" if key in refusing else "ok")
    configure(home, api.url, retries=1)
    post = json.loads(run_cli(home, "--json", "accounting", "post", check=1).stdout)
    assert [f["voucher"] for f in post["failed"]] == ["FV1-2"] and [h["voucher"] for h in post["held"]] == ["FV1-3"]

    def listed():
        return {f"{v['code']}-{v['number']}": (v["accounting"], v["accounting_reason"]) for v in cli_json(home, "vouchers", "list")["vouchers"]}

    shown = listed()
    assert shown["FV1-1"] == shown["FV2-1"] == ("posted", None)
    assert shown["FV1-3"] == ("held", "no account for payment method DAVIPLATA (payment_methods.DAVIPLATA)")
    state, reason = shown["FV1-2"]
    assert state == "failed" and f"{api.url} did not take entry CAJA1:FV1:2:1 after 2 attempts: HTTP 503" in reason
    assert reason.endswith("run `syscafe-sync accounting retry` once it is fixed")
    assert f"failed: {api.url} did not take entry CAJA1:FV1:2:1" in run_cli(home, "vouchers", "list", "--code", "FV1", check=0).stdout
    # the API takes it again, the mapping gets DAVIPLATA: retry posts both, once, and the list follows
    refusing.clear()
    (tmp_path / "map.toml").write_text(MAPPING.replace("[taxes]", 'DAVIPLATA = "11100502"\n\n[taxes]'), encoding="utf-8")
    run_cli(home, "accounting", "map", "load", str(tmp_path / "map.toml"), check=0)
    run_cli(home, "accounting", "retry", check=0)
    assert set(listed().values()) == {("posted", None)}
    assert sorted(api.saved) == ["CAJA1:FV1:1:1", "CAJA1:FV1:2:1", "CAJA1:FV1:3:1", "CAJA2:FV2:1:1"]


def test_retries_wait_doubling_up_to_30_s_and_stop_after_the_retries(api_factory):
    entry = {"key": "CAJA1:FV1:1:1", "lines": []}
    api = api_factory(lambda key, n: "503")
    waits: list[float] = []
    [reason] = HttpDestination(api.url, TOKEN, CLIENT_TIMEOUT, retries=6, backoff_s=4.0, sleep=waits.append).deliver([entry])
    assert waits == [4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert api.requests[entry["key"]] == 7 and "after 7 attempts: HTTP 503" in reason
    # taken on the third attempt: two waits, no more requests
    api = api_factory(lambda key, n: "503" if n < 3 else "ok")
    waits.clear()
    assert HttpDestination(api.url, TOKEN, CLIENT_TIMEOUT, retries=6, backoff_s=4.0, sleep=waits.append).deliver([entry]) == [None]
    assert waits == [4.0, 8.0] and api.requests[entry["key"]] == 3


def test_a_post_really_waits_between_attempts_after_a_drop_a_timeout_and_a_503(cfg, books, api_factory):
    api = api_factory(lambda key, n: {1: "drop", 2: "timeout", 3: "503"}.get(n, "ok"))
    backoff = 0.15
    result = journal.post(configure(cfg.home, api.url, retries=4, backoff_s=backoff), caja="CAJA2")
    assert result.outcome == "ok" and list(api.saved) == ["CAJA2:FV2:1:1"] and api.requests["CAJA2:FV2:1:1"] == 4
    t = api.arrivals["CAJA2:FV2:1:1"]
    gaps = [b - a for a, b in zip(t, t[1:])]
    # each gap is the attempt's own time plus a wait twice the one before; the second attempt's own time is the
    # client's time-out, counted from a little before the server noted the arrival (hence the 0.05 s)
    assert gaps[0] >= backoff and gaps[1] >= CLIENT_TIMEOUT - 0.05 + 2 * backoff and gaps[2] >= 4 * backoff, gaps


class RedirectingApi:
    """An API moved elsewhere: every POST answers `code` with a Location on another server, which records
    whatever reaches it and would answer 200 to anything."""

    def __init__(self, code: int):
        self.posts: Counter = Counter()
        self.at_target: list[tuple[str, str | None]] = []  # (method, Authorization) of what reached the target
        api = self

        class Target(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _any(self):
                api.at_target.append((self.command, self.headers.get("Authorization")))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            do_GET = do_POST = _any

        class Moved(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                api.posts[self.headers.get("Idempotency-Key")] += 1
                self.send_response(code)
                self.send_header("Location", api.target_url)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.servers = [ThreadingHTTPServer(("127.0.0.1", 0), h) for h in (Moved, Target)]
        for s in self.servers:
            s.daemon_threads = True
            threading.Thread(target=s.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.servers[0].server_address[1]}/api/entries"
        self.target_url = f"http://127.0.0.1:{self.servers[1].server_address[1]}/v2/entries"

    def close(self):
        for s in self.servers:
            s.shutdown()
            s.server_close()


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_redirect_is_not_followed_and_not_delivered(cfg, books, code):
    api = RedirectingApi(code)
    try:
        result = journal.post(configure(cfg.home, api.url, retries=2))
    finally:
        api.close()
    assert result.outcome == "failed" and len(result.failed) == 3
    assert api.at_target == []  # neither the entry nor the token went to the Location
    assert set(api.posts.values()) == {1}  # the same address answers the same: not retried
    reason = result.failed[0]["reason"]
    assert f"after 1 attempts: HTTP {code}" in reason and f"a redirect to {api.target_url}, not followed" in reason
    assert "set accounting.url in config.toml to the final address" in reason
    assert {v["accounting"] for v in vouchers.list_vouchers()} == {"failed"}


def test_retries_0_means_the_first_attempt_only_and_a_negative_one_is_refused(cfg, books, api_factory):
    api = api_factory(lambda key, n: "503")
    result = journal.post(configure(cfg.home, api.url, retries=0))
    assert set(api.requests.values()) == {1} and "after 1 attempts: HTTP 503" in result.failed[0]["reason"]
    write_config(cfg.home, accounting={"retries": -1})
    refused = run_cli(cfg.home, "accounting", "post", check=2)
    assert "accounting.retries = -1 must be 0 (no retry after the first attempt) or more" in refused.stderr


def test_entries_failed_on_the_api_go_to_a_file_with_retry_to_json_through_the_program(home, books, api_factory, tmp_path):
    api = api_factory(lambda key, n: "503")
    configure(home, api.url, retries=1)
    run_cli(home, "accounting", "post", check=1)
    write_config(home, accounting={"destination": "http", "url": api.url, "token": TOKEN, "export_dir": str(tmp_path / "exports")})
    retried = cli_json(home, "accounting", "retry", "--to", "json")
    assert retried["outcome"] == "ok" and len(retried["posted"]) == 3 and retried["file"].endswith(".json")
    assert sorted(e["key"] for e in json.loads(open(retried["file"], encoding="utf-8").read())["entries"]) == \
           ["CAJA1:FV1:1:1", "CAJA1:FV1:2:1", "CAJA2:FV2:1:1"]
    assert {v["accounting"] for v in cli_json(home, "vouchers", "list")["vouchers"]} == {"posted"}
    # delivered to the file, they are not sent to the API again
    before = sum(api.requests.values())
    run_cli(home, "accounting", "retry", check=0)
    assert sum(api.requests.values()) == before
