"""The Piccolo app that owns DecisionGraph's migrations (folder `piccolo_migrations/`)."""

from __future__ import annotations

from pathlib import Path

from piccolo.conf.apps import AppConfig

MIGRATIONS_FOLDER = Path(__file__).resolve().parents[2] / "piccolo_migrations"

APP_CONFIG = AppConfig(
    app_name="decisiongraph",
    migrations_folder_path=str(MIGRATIONS_FOLDER),
    table_classes=[],
    migration_dependencies=[],
    commands=[],
)
