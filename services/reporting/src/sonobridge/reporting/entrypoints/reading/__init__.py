"""The reading station in the browser: login, worklist, exam pages, served by reporting."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from sonobridge.reporting.entrypoints.reading.login import OidcClient
from sonobridge.reporting.entrypoints.reading.pages import router
from sonobridge.reporting.entrypoints.reading.web import HERE, PREFIX, Station, install_error_pages
from sonobridge.reporting.settings import ReadingSettings


def install(app: FastAPI, settings: ReadingSettings, client: OidcClient | None = None) -> Station:
    """Add the station's pages, its pinned static assets and its error pages to the app."""
    station = Station.build(settings, client)
    app.state.station = station
    app.include_router(router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=HERE / "static"), name="reading-static")
    install_error_pages(app)
    return station
