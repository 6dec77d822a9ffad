"""Ordered schema migrations; each runs in one transaction with the record that it ran."""

from __future__ import annotations

from collections.abc import Callable

from peewee import Database, PostgresqlDatabase

from ..errors import UsageError
from . import models as m


_VERSION_1 = [m.Caja, m.CajaCode, m.Voucher, m.VoucherLine, m.VoucherTax, m.VoucherPayment, m.Refusal, m.Notice, m.SyncLog, m.Lease]


def _initial(db: Database) -> None:
    # Creates these tables as their models are now; so every later migration is
    # written to be a no-op on a fresh database (IF NOT EXISTS / IF EXISTS).
    db.create_tables(_VERSION_1)


def _covering_day_index(db: Database) -> None:
    # A skip-mode re-run asks "which (code, number) of this caja and day are imported?":
    # answered from the index alone, without visiting one table row per voucher.
    db.execute_sql("CREATE INDEX IF NOT EXISTS voucher_caja_day_code_number ON voucher (caja, day, code, number)")
    db.execute_sql("DROP INDEX IF EXISTS voucher_caja_day")
    db.execute_sql("DROP INDEX IF EXISTS voucher_caja")  # a prefix of the new one


def _catalogs(db: Database) -> None:
    db.create_tables([m.Catalog, m.CatalogRecord, m.CajaCatalogs])  # safe=True: IF NOT EXISTS


def _loyalty_and_rules(db: Database) -> None:
    db.create_tables([m.LoyaltyEntry, m.LedgerCursor, m.Rule, m.RuleSource])


def _service(db: Database) -> None:
    db.create_tables([m.ImportedDay, m.CajaHealth])


def _completeness(db: Database) -> None:
    db.create_tables([m.Resolution, m.DayClosing])


def _accounting(db: Database) -> None:
    db.create_tables([m.AccountMap, m.JournalEntry, m.JournalVoucher, m.PostingStatus])


def _double_precision(db: Database) -> None:
    # Versions 1-5 made these REAL on PostgreSQL (peewee's FloatField): an epoch time in REAL is
    # rounded to 128 s, so leases expired at the wrong time. SQLite's REAL is a double already.
    if isinstance(db, PostgresqlDatabase):
        db.execute_sql('ALTER TABLE "lease" ALTER COLUMN "expires_at" TYPE DOUBLE PRECISION')
        db.execute_sql('ALTER TABLE "sync_log" ALTER COLUMN "duration_s" TYPE DOUBLE PRECISION')


def _day_names_index(db: Database) -> None:
    # A skip-mode re-run asks "which file names of this caja's day folder are imported?":
    # the path joins the covering index of version 2, so that is answered from it alone too.
    db.execute_sql("CREATE INDEX IF NOT EXISTS voucher_caja_day_code_number_path ON voucher (caja, day, code, number, path)")
    db.execute_sql("DROP INDEX IF EXISTS voucher_caja_day_code_number")  # a prefix of the new one


def _stale_files(db: Database) -> None:
    # A fresh database has the column already (version 3 creates the table as the model is now).
    if "stale" not in {c.name for c in db.get_columns("caja_catalogs")}:
        db.execute_sql('ALTER TABLE "caja_catalogs" ADD COLUMN "stale" TEXT')


def _calendar_days(db: Database) -> None:
    """No schema change. Its data fix needs the configured time zone, which a migration is not given:
    `setup.init` hands it to `upgrade` (setup.recheck_calendar), which runs it in this migration's
    transaction, so the version is recorded only once the fix is done."""


# (version, name, function). Append only: a released migration never changes.
MIGRATIONS: list[tuple[int, str, Callable[[Database], None]]] = [
    (1, "initial schema: cajas, vouchers, refusals, sync log, leases", _initial),
    (2, "covering index for a caja's vouchers of a day", _covering_day_index),
    (3, "catalogs: records with versions, what each caja committed", _catalogs),
    (4, "loyalty ledgers and commercial rules", _loyalty_and_rules),
    (5, "the service: where each caja's catch-up starts, failing passes in a row", _service),
    (6, "proof of completeness: numbering resolutions, the cajas' day closings", _completeness),
    (7, "accounting: the mapping, journal entries, a posting status per voucher", _accounting),
    (8, "PostgreSQL: lease expiry and durations in double precision", _double_precision),
    (9, "the file names of a caja's day in the covering index", _day_names_index),
    (10, "catalogs: the files a caja's next push deletes, known without listing its folder", _stale_files),
    (11, "findings: a voucher's day taken on the company's calendar", _calendar_days),
]
CALENDAR_DAYS_VERSION = 11
CALENDAR_DAYS = next(name for version, name, _ in MIGRATIONS if version == CALENDAR_DAYS_VERSION)

LATEST = MIGRATIONS[-1][0]


def current_version(db: Database) -> int:
    if not m.SchemaVersion.table_exists():
        return 0
    row = m.SchemaVersion.select().order_by(m.SchemaVersion.version.desc()).first()
    return row.version if row else 0


def refuse_newer(db: Database, version: int | None = None) -> None:
    """A schema a later syscafe-sync upgraded (the program was downgraded since) may hold tables, columns or
    meanings this one does not know: writing to it could break it for the version that made it."""
    version = current_version(db) if version is None else version
    if version <= LATEST:
        return
    newest = m.SchemaVersion.select().order_by(m.SchemaVersion.version.desc()).first()
    raise UsageError(f"the database schema is at version {version} ({newest.name!r}), newer than this syscafe-sync "
                     f"knows (version {LATEST}): a later syscafe-sync upgraded it. Nothing was changed; install that "
                     "later version again (pip install --upgrade syscafe-sync), or give --db another database.")


def upgrade(db: Database, data: dict[int, Callable[[], None]] | None = None) -> list[str]:
    """Applies every migration not yet applied; returns the names of those it ran. `data`: a fix of the rows
    by migration version, for what needs more than the database (the configured time zone), run in that
    migration's transaction."""
    db.create_tables([m.SchemaVersion])
    refuse_newer(db)
    ran = []
    from . import write_transaction

    for version, name, fn in MIGRATIONS:
        # Two `init` at once: the write lock taken at BEGIN makes the second wait, then skip.
        with write_transaction():
            if current_version(db) >= version:
                continue
            fn(db)
            if data and version in data:
                data[version]()
            m.SchemaVersion.create(version=version, name=name, applied_at=m.utcnow())
        ran.append(name)
    return ran
