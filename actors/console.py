"""The operator console served over HTTP from the supervisor's event loop.

Pages and numbers come from ``smsgw.console``; this module only wires them to
aiohttp and to the supervisor's status and the listeners' state stores.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from smsgw import log
from smsgw.console import (
    COOKIE,
    RateWindow,
    authorized,
    console_page,
    counter_series,
    login_page,
    message_page,
    session_cookie,
    summarize,
    to_json,
)
from smsgw.credentials import ray_token
from smsgw.settings import Settings, parse_hostport

Lookup = Callable[[str], Awaitable[dict[str, Any] | None]]


class ConsoleServer:
    def __init__(
        self, settings: Settings, status: Callable[[], dict[str, Any]], lookup: Lookup
    ) -> None:
        self.settings = settings
        self.status = status
        self.lookup = lookup
        self.window = RateWindow()
        # The Ray cluster's token, as every other door of the control plane asks for
        # (docs/SECURITY.md): no token, no console.
        self.token = ray_token(settings.ray_auth_token_file) or ""
        self.runner: web.AppRunner | None = None
        self.log = log.get("smsgw.console")

    def sample(self) -> None:
        """Called after every status refresh (once a second): feeds the minute's rates."""
        self.window.add(time.time(), counter_series(self.status().get("actors") or {}))

    async def start(self) -> None:
        if not self.token:
            self.log.error(
                "console not started: no Ray cluster token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH"
                " or $SMSGW_HOME/ray_auth_token), and the console never serves without one"
            )
            return
        app = web.Application()
        app.add_routes(
            [
                web.get("/login", self._login_form),
                web.post("/login", self._login),
                web.get("/", self._page),
                web.get("/api/summary", self._summary),
                web.get("/message/{id}", self._message),
                web.get("/api/message/{id}", self._message_json),
            ]
        )
        host, port = parse_hostport(self.settings.console_listen, 8280)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        try:
            await web.TCPSite(self.runner, host, port).start()
        except OSError as exc:  # the port is taken: the gateway runs on without a console
            self.log.error(
                "console not started", listen=self.settings.console_listen, error=str(exc)
            )
            await self.stop()
            return
        self.log.info("console listening", url=f"http://{host}:{port}/")

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    def _ok(self, request: web.Request) -> bool:
        return authorized(
            self.token, request.headers.get("Authorization"), request.cookies.get(COOKIE)
        )

    async def _login_form(self, request: web.Request) -> web.Response:
        return web.Response(text=login_page(), content_type="text/html")

    async def _login(self, request: web.Request) -> web.Response:
        form = await request.post()
        token = str(form.get("token", ""))
        if not authorized(self.token, f"Bearer {token}", None):
            return web.Response(text=login_page(failed=True), status=401, content_type="text/html")
        response = web.HTTPSeeOther("/")
        response.set_cookie(COOKIE, session_cookie(self.token), httponly=True, samesite="Strict")
        return response

    def _refused(self, request: web.Request) -> web.Response:
        if request.path.startswith("/api/"):
            return web.json_response({"error": "token required"}, status=401)
        return web.Response(text=login_page(), status=401, content_type="text/html")

    async def _page(self, request: web.Request) -> web.Response:
        if not self._ok(request):
            return self._refused(request)
        return web.Response(text=console_page(), content_type="text/html")

    async def _summary(self, request: web.Request) -> web.Response:
        if not self._ok(request):
            return self._refused(request)
        model = summarize(self.status(), self.window.increases())
        return web.Response(text=to_json(model), content_type="application/json")

    async def _message(self, request: web.Request) -> web.Response:
        if not self._ok(request):
            return self._refused(request)
        mid = request.match_info["id"]
        return web.Response(
            text=message_page(mid, await self.lookup(mid)), content_type="text/html"
        )

    async def _message_json(self, request: web.Request) -> web.Response:
        if not self._ok(request):
            return self._refused(request)
        record = await self.lookup(request.match_info["id"])
        return web.json_response(record, status=200 if record else 404)
