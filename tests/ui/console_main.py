"""The console as NiceGUI's user simulation runs it (see conftest.py)."""

from nicegui import ui

from ui.app import register

register()
ui.run(storage_secret="console tests")
