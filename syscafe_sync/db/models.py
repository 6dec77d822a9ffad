"""The main database: peewee models bound to a proxy that `db.connect` fills."""

from __future__ import annotations

import datetime as dt
import decimal

from peewee import (
    CompositeKey,
    BigIntegerField,
    BooleanField,
    CharField,
    DatabaseProxy,
    DecimalField,
    DoubleField,
    ForeignKeyField,
    IntegerField,
    Model,
    TextField,
    sort_models,
)

database = DatabaseProxy()


class MoneyField(DecimalField):
    """A decimal kept exactly: TEXT in SQLite (whose NUMERIC would turn it into a float), NUMERIC in PostgreSQL."""

    field_type = "DECTEXT"

    def get_modifiers(self):
        # Unconstrained NUMERIC keeps each value's own scale: "2" stays 2, "16000.00" stays 16000.00.
        return None

    def db_value(self, value):
        if value is None:
            return None
        if isinstance(value, decimal.Decimal):
            return str(value)
        return str(decimal.Decimal(value))

    def python_value(self, value):
        if value is None:
            return None
        return decimal.Decimal(str(value))


class TimestampField(TextField):
    """An aware datetime stored as UTC ISO 8601 text, so it sorts and compares the same on every database."""

    def db_value(self, value):
        if value is None:
            return None
        if isinstance(value, str):
            return value
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: times must carry a time zone")
        return value.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")

    def python_value(self, value):
        if value is None:
            return None
        return dt.datetime.fromisoformat(value)


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


class Base(Model):
    class Meta:
        database = database
        legacy_table_names = False


class SchemaVersion(Base):
    version = IntegerField(primary_key=True)
    name = CharField()
    applied_at = TimestampField()


class Caja(Base):
    name = CharField(unique=True)
    root = TextField()
    # The root as compared for uniqueness (case and separators folded where the OS folds them).
    root_key = TextField(unique=True)
    ip = CharField(null=True)
    created_at = TimestampField()
    updated_at = TimestampField()


class CajaCode(Base):
    code = CharField(primary_key=True)
    caja = ForeignKeyField(Caja, backref="codes", on_delete="CASCADE")


class Voucher(Base):
    # The caja's name, not a foreign key: imported data stays when a caja is removed.
    caja = CharField()
    code = CharField()
    number = BigIntegerField()
    day = CharField()  # the process date of the folder it came from, YYYY-MM-DD
    kind = CharField(null=True)
    prefix = CharField(null=True)
    cude = TextField(null=True)
    issued_at = TextField()  # as the caja wrote it, offset included
    issued_utc = TimestampField()
    status = CharField()
    shift = CharField(null=True)
    cashier = CharField(null=True)
    seller = CharField(null=True)
    customer_id = CharField()
    customer_id_type = CharField(null=True)
    customer_name = TextField(null=True)
    base = MoneyField(null=True)
    tax = MoneyField(null=True)
    tip = MoneyField(null=True)
    total = MoneyField()
    loyalty_customer = CharField(null=True)
    loyalty_earned = IntegerField(null=True)
    loyalty_redeemed = IntegerField(null=True)
    path = TextField()  # relative to the caja root
    sha256 = CharField()
    document = TextField()  # the original file, byte for byte as UTF-8 text
    findings = TextField(default="[]")
    imported_at = TimestampField()
    updated_at = TimestampField()

    class Meta:
        # (caja, day, code, number) is created by migration 2, which replaced (caja, day).
        indexes = ((("code", "number"), True), (("day",), False))


class VoucherLine(Base):
    voucher = ForeignKeyField(Voucher, backref="lines", on_delete="CASCADE")
    line_no = IntegerField()
    product = CharField(null=True)
    description = TextField(null=True)
    quantity = MoneyField(null=True)
    unit_price = MoneyField(null=True)
    discount = MoneyField(null=True)
    base = MoneyField(null=True)


class VoucherTax(Base):
    # (voucher, line_no) names the line: reports group taxes by voucher without a join,
    # and a batch insert needs no line ids back.
    voucher = ForeignKeyField(Voucher, backref="taxes", on_delete="CASCADE")
    line_no = IntegerField()
    type = CharField()
    rate = MoneyField(null=True)
    amount = MoneyField(null=True)


class VoucherPayment(Base):
    voucher = ForeignKeyField(Voucher, backref="payments", on_delete="CASCADE")
    line_no = IntegerField()
    method = CharField()
    amount = MoneyField()


class Refusal(Base):
    """A quarantined file: refused with its reason, tried again on every pass until it imports."""

    caja = CharField()
    day = CharField(null=True)
    path = TextField()
    reason = TextField()
    sha256 = CharField(null=True)
    first_seen = TimestampField()
    last_seen = TimestampField()
    attempts = IntegerField(default=1)
    resolved_at = TimestampField(null=True)

    class Meta:
        indexes = ((("caja", "path"), True),)


class Notice(Base):
    """A name seen once and logged once (an unknown file in a caja folder)."""

    caja = CharField()
    path = TextField()
    kind = CharField()
    at = TimestampField()

    class Meta:
        indexes = ((("caja", "path", "kind"), True),)


class SyncLog(Base):
    at = TimestampField(index=True)
    level = CharField()
    caja = CharField(null=True)
    action = CharField()
    mode = CharField(null=True)
    imported = IntegerField(default=0)
    updated = IntegerField(default=0)
    skipped = IntegerField(default=0)
    refused = IntegerField(default=0)
    duration_s = DoubleField(default=0.0)
    outcome = CharField()
    message = TextField(default="")
    details = TextField(null=True)

    class Meta:
        indexes = ((("caja", "action", "at"), False),)


class Lease(Base):
    """Who works on a caja now, until when: a killed holder's lease runs out."""

    name = CharField(primary_key=True)
    holder = CharField()
    host = CharField()
    pid = IntegerField()
    acquired_at = TimestampField()
    # Seconds since the epoch, compared with time.time(). DOUBLE: PostgreSQL's REAL (peewee's FloatField)
    # holds about 7 digits, so an epoch time in it is rounded to 128 s and a lease's expiry lost.
    expires_at = DoubleField()


class Catalog(Base):
    """A catalog on the main server: its key field and its current version."""

    name = CharField(primary_key=True)
    key = CharField()
    version = BigIntegerField(default=0)
    records = IntegerField(default=0)  # live records at `version`
    sha256 = CharField()  # of the canonical record set at `version` (SPEC §1, Catalogs)
    updated_at = TimestampField()


class CatalogRecord(Base):
    """The current state of one record: its last change's version; a deletion stays as a tombstone."""

    catalog = CharField()
    key = TextField()
    version = BigIntegerField()
    deleted = BooleanField(default=False)
    data = TextField(null=True)  # canonical JSON (sorted keys, compact); None once deleted

    class Meta:
        indexes = ((("catalog", "key"), True), (("catalog", "version"), False))


class CajaCatalogs(Base):
    """What a caja's catalogs/ folder holds, as the main server last committed it.

    `manifest` is written here only once the caja's manifest.json is in place;
    `pending_*` holds a manifest being written, so that a push killed between
    the rename and this row is recognised and adopted by the next push.
    """

    caja = CharField(primary_key=True)
    manifest = TextField(null=True)
    manifest_sha = CharField(null=True)
    extras = TextField(default="{}")  # {catalog: [canonical records only the caja has]}
    pending_manifest = TextField(null=True)
    pending_sha = CharField(null=True)
    pending_extras = TextField(null=True)
    # No longer written or read: schema 10 added it so that a push could skip listing catalogs/, and a push
    # now lists it every time, to check the files its manifest names (a snapshot deleted under it, say).
    stale = TextField(null=True)
    updated_at = TimestampField(null=True)


class LoyaltyEntry(Base):
    """One points movement of a caja's ledger, counted once: (caja, seq) is unique."""

    caja = CharField()
    seq = BigIntegerField()
    customer = CharField(index=True)
    kind = CharField()
    points = BigIntegerField()
    voucher = CharField(null=True)
    # The voucher reference split, so the check "did this voucher arrive?" is an indexed join.
    voucher_code = CharField(null=True)
    voucher_number = BigIntegerField(null=True)
    at = TextField(null=True)  # as the caja wrote it, offset included
    path = TextField()  # the ledger file, relative to the caja root
    line = IntegerField()
    imported_at = TimestampField()

    class Meta:
        indexes = ((("caja", "seq"), True),)


class LedgerCursor(Base):
    """How far a caja's ledger file was read, and a checksum of the last bytes read,
    so a file rewritten or cut shorter is read again from the start."""

    caja = CharField()
    path = TextField()
    offset = BigIntegerField(default=0)
    lines = IntegerField(default=0)  # complete lines before `offset`
    tail_sha = CharField(null=True)  # sha256 of the bytes [offset - tail_len, offset)
    tail_len = IntegerField(default=0)
    updated_at = TimestampField()

    class Meta:
        indexes = ((("caja", "path"), True),)


class Rule(Base):
    """The current version of a commercial rule, and the caja it came from."""

    rule_id = CharField(primary_key=True)
    version = BigIntegerField()
    updated_at = TextField(null=True)
    updated_utc = TimestampField(null=True)
    caja = CharField()
    name = TextField(null=True)
    active = BooleanField(null=True)
    sha256 = CharField()
    document = TextField()
    synced_at = TimestampField()


class RuleSource(Base):
    """Which rule files each caja has shown, to notice one that disappears."""

    caja = CharField()
    rule_id = CharField()
    version = BigIntegerField()
    sha256 = CharField()
    present = BooleanField(default=True)
    last_seen = TimestampField()

    class Meta:
        indexes = ((("caja", "rule_id"), True),)


class ImportedDay(Base):
    """A process date a caja was imported without failing, and whether its closing.json was there:
    what the service's catch-up still has to import after downtime or midnight."""

    caja = CharField()
    day = CharField()  # YYYY-MM-DD
    closed = BooleanField(default=False)
    at = TimestampField()

    class Meta:
        primary_key = CompositeKey("caja", "day")


class CajaHealth(Base):
    """A caja's failing passes in a row, so the service reports a failing caja once and its recovery once."""

    caja = CharField(primary_key=True)
    failures = IntegerField(default=0)
    since = TimestampField(null=True)
    reason = TextField(default="")
    alerted = BooleanField(default=False)


class Resolution(Base):
    """A DIAN numbering resolution: the numbers a code may use, with which prefix, between which dates."""

    code = CharField(index=True)
    prefix = CharField()
    number_from = BigIntegerField()
    number_to = BigIntegerField()
    valid_from = CharField()  # YYYY-MM-DD, inclusive
    valid_to = CharField()  # YYYY-MM-DD, inclusive
    number = CharField(null=True)  # the resolution's own number, as DIAN wrote it
    created_at = TimestampField()


class DayClosing(Base):
    """A caja's closing.json (informe Z) for a day, as last read: what `audit` pairs with the vouchers held."""

    caja = CharField()
    day = CharField()
    document = TextField()
    sha256 = CharField()
    read_at = TimestampField()

    class Meta:
        primary_key = CompositeKey("caja", "day")


class AccountMap(Base):
    """One row of the accounting mapping (`accounting map load`): what (kind, key) posts to which account.

    kind: payment_method (key: method code), tax (key: "TYPE RATE", e.g. "IVA 19"),
    group (key: product group code), caja (key: caja name; value: its cost centre),
    account (key: receivable | tips)."""

    kind = CharField()
    key = CharField()
    value = CharField()
    loaded_at = TimestampField()

    class Meta:
        indexes = ((("kind", "key"), True),)


class JournalEntry(Base):
    """A balanced journal entry as it was computed, and whether its destination has it."""

    key = CharField(unique=True)  # the idempotency key: sent with every delivery attempt
    caja = CharField()
    day = CharField()
    per = CharField()  # voucher | day
    kind = CharField()  # sale | return | reversal | summary
    voucher = CharField(null=True)  # CODE-NUMBER for per-voucher entries
    lines = TextField()  # JSON: [{account, cost_centre, third_party, description, debit, credit}]
    total = MoneyField()  # Σ debits = Σ credits
    destination = CharField()  # csv | json | http
    state = CharField(default="ready")  # ready | delivered | failed
    error = TextField(null=True)
    attempts = IntegerField(default=0)
    created_at = TimestampField()
    delivered_at = TimestampField(null=True)
    delivered_to = TextField(null=True)  # the export file, or the URL without credentials

    class Meta:
        indexes = ((("state",), False), (("caja", "day"), False))


class JournalVoucher(Base):
    """Which vouchers an entry carries (one for a per-voucher entry, a caja's day for a summary)."""

    entry = ForeignKeyField(JournalEntry, backref="vouchers", on_delete="CASCADE")
    voucher = ForeignKeyField(Voucher, on_delete="CASCADE", index=True)


class PostingStatus(Base):
    """A voucher's accounting status. No row means pending and never looked at.

    `sha256` is the content the status is about: an overwrite import that changes
    the voucher makes it differ, and the next post handles the change.
    `posted` is what the voucher now contributes to the books (its lines, JSON),
    so a change or a void posts the difference: the reversal of this, then the new lines."""

    voucher = ForeignKeyField(Voucher, unique=True, on_delete="CASCADE")
    status = CharField()  # pending | posted | held | failed
    reason = TextField(null=True)
    sha256 = CharField()
    posted = TextField(default="[]")
    entries = IntegerField(default=0)  # entries made for this voucher so far: the next key's sequence
    updated_at = TimestampField()


def _descendants(cls) -> list:
    return [m for sub in cls.__subclasses__() for m in [sub, *_descendants(sub)]]


# Every table of the schema, parents before children (foreign keys). Derived from the classes above, not
# listed by hand: a hand-kept list once left six tables out of `migrate`, which still said "verified".
ALL_MODELS = sort_models(_descendants(Base))
