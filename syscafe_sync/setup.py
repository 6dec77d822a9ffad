"""Creating and upgrading a home: folders, configuration, database schema."""

from __future__ import annotations

from . import config as config_mod
from . import db as db_mod
from . import synclog
from .db import migrations


def open_home(home, db_url) -> config_mod.Config:
    """An initialised home's configuration, with the database connected and the log file set up."""
    cfg = config_mod.load(home, db_url)
    return open_config(cfg)


def open_config(cfg: config_mod.Config) -> config_mod.Config:
    db_mod.require_file(cfg.db_url)
    db = db_mod.connect(cfg.db_url)
    db_mod.require_schema(db)
    synclog.setup(cfg.log_path, cfg.get("log", "file_max_bytes"), cfg.get("log", "file_backups"))
    return cfg


def init(cfg: config_mod.Config) -> dict:
    cfg.home.mkdir(parents=True, exist_ok=True)
    config_path = config_mod.write_default(cfg.home)
    # Re-read: a configuration that already existed may hold values that must be valid.
    cfg = config_mod.load(cfg.home, cfg.db_url)
    db = db_mod.connect(cfg.db_url)
    ran = migrations.upgrade(db)
    synclog.setup(cfg.log_path, cfg.get("log", "file_max_bytes"), cfg.get("log", "file_backups"))
    message = ("schema upgraded: " + "; ".join(ran)) if ran else "schema already up to date"
    synclog.record(synclog.Entry(action="init", outcome="ok", message=message))
    return {
        "home": str(cfg.home),
        "config": str(config_path),
        "database": db_mod.redact(cfg.db_url),
        "schema_version": migrations.current_version(db),
        "migrations": ran,
        "log_file": str(cfg.log_path),
    }
