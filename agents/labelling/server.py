"""The labelling page: a small local web server a person labels pending pairs on.

``make_app`` builds the FastAPI app over a :class:`~agents.labelling.pending.PendingQueue`;
:class:`LabelServer` runs it with uvicorn in a background thread (the trainer's
human teacher, and ``vmalign label``, which then waits for Ctrl-C).

The page (``page/``: plain HTML, CSS and JavaScript, nothing fetched from the
internet) shows a pair's two segments as clips that loop together, the instruction,
and takes keys: left better, right better, equally good, can't tell, undo.

Endpoints (JSON unless said):

- ``GET /``: the page. ``GET /static/app.js``, ``/static/style.css``: its files.
- ``GET /api/state?client=ID``: the next pending pair for this tab (a pair handed to
  another tab is held for it for :data:`LEASE_SECONDS`) and the round's progress.
- ``GET /api/clip/{round}/{query}/{a|b}``: one segment as a PNG strip of its frames
  (left to right), read from the queue's own round file.
- ``POST /api/label`` ``{"round", "query", "label": left|right|equal|skip, "labeller"}``:
  stored durably before the response; 404 for an unknown pair, 409 for one answered
  already or a closed round, 422 for anything malformed.
- ``POST /api/undo`` ``{"round", "query", "labeller"}``: the pair is pending again.

Security, as Jupyter's server does it: the server binds 127.0.0.1 unless told
otherwise (:func:`check_host`), and every request must carry the random token
printed in the URL (query ``?token=``, header ``X-Vmalign-Token``, or the cookie
the page receives when it is opened with the token), else 403. Requests from
another origin are refused (403) and no CORS headers are sent; bodies over
:data:`MAX_BODY_BYTES` get 413; no file path is ever taken from a request.
"""

from __future__ import annotations

import getpass
import io
import ipaddress
import secrets
import threading
import time
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Annotated, Any, Literal

import numpy as np
import uvicorn
from fastapi import FastAPI, HTTPException, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from agents.labelling.pending import (LABELLER_PATTERN, Conflict, PendingQueue, RoundProgress,
                                      UnknownPair)

TOKEN_HEADER = "X-Vmalign-Token"
TOKEN_COOKIE = "vmalign-token"
MAX_BODY_BYTES = 2048
"""A label is a few dozen bytes; anything much larger is refused unread."""
LEASE_SECONDS = 120.0
"""How long a pair handed to one tab is kept from the others (several people, or
tabs, labelling one round see different pairs)."""
DEFAULT_PORT = 8765
LOOPBACK = ("127.0.0.1", "::1", "localhost")
PAGE_FILES = {"app.js": "text/javascript", "style.css": "text/css"}
"""The only files served besides the page itself: a fixed list, never a request path."""
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",  # the token is in the page's URL
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob:; "
                               "frame-ancestors 'none'; form-action 'none'",
}

Side = Literal["a", "b"]
Labeller = Annotated[str, Field(pattern=f"^{LABELLER_PATTERN.pattern}$", max_length=64)]


class LabelRequest(BaseModel):
    """One answer from the page."""

    model_config = ConfigDict(extra="forbid")
    round: Annotated[int, Field(ge=0)]
    query: Annotated[int, Field(ge=0)]
    label: Literal["left", "right", "equal", "skip"]
    labeller: Labeller | None = None


class UndoRequest(BaseModel):
    """Take back the answer to one pair."""

    model_config = ConfigDict(extra="forbid")
    round: Annotated[int, Field(ge=0)]
    query: Annotated[int, Field(ge=0)]
    labeller: Labeller | None = None


def default_labeller() -> str:
    """The login name when it is a valid labeller name, else ``"person"``."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):
        return "person"
    return name if LABELLER_PATTERN.fullmatch(name) else "person"


def check_host(host: str, allow_remote: bool) -> None:
    """Raises ``ValueError`` unless ``host`` is loopback or ``allow_remote`` is set."""
    if host in LOOPBACK:
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    if not allow_remote:
        raise ValueError(f"binding {host} would let anyone who can reach this machine open "
                         f"the labelling page; it binds 127.0.0.1 unless you pass "
                         f"--allow-remote (teacher_kwargs allow_remote: true). To label from "
                         f"another machine, an SSH tunnel is safer: see docs/labelling.md")


def _progress(progress: RoundProgress | None) -> dict[str, Any] | None:
    if progress is None:
        return None
    meta = progress.meta
    return {"round": progress.round, "count": progress.count, "labelled": progress.labelled,
            "skipped": progress.skipped, "pending": len(progress.pending),
            "closed": progress.closed, "budget": meta.get("budget"),
            "asked_before": meta.get("asked_before")}


def strip_png(frames: np.ndarray) -> bytes:
    """A segment uint8 (T, H, W, 3) as one PNG, its frames side by side."""
    buffer = io.BytesIO()
    Image.fromarray(np.concatenate(list(frames), axis=1)).save(buffer, format="PNG")
    return buffer.getvalue()


class _Leases:
    """Which tab each pair of the open round was last handed to, and until when."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._holders: dict[tuple[int, int], tuple[str, float]] = {}

    def choose(self, number: int, pending: list[int], client: str) -> int | None:
        """A pending pair for ``client``: one it holds, else one nobody holds, else (all
        held by other tabs) the first pending one."""
        now = time.monotonic()
        with self._lock:
            held = {query: holder for (round_, query), (holder, until) in self._holders.items()
                    if round_ == number and until > now}
            free = [q for q in pending if held.get(q, client) == client]
            choice = free[0] if free else (pending[0] if pending else None)
            if choice is not None:
                self._holders[(number, choice)] = (client, now + LEASE_SECONDS)
            return choice


def make_app(queue: PendingQueue, token: str, labeller: str | None = None) -> FastAPI:
    """The labelling page's app over ``queue``; every request needs ``token``."""
    if len(token) < 16:
        raise ValueError("the token must be at least 16 characters (secrets.token_urlsafe)")
    labeller = labeller or default_labeller()
    leases = _Leases()
    app = FastAPI(title="vmalign labelling", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def guard(request: Request,
                    call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        refusal = _refusal(request, token)
        response = refusal or await call_next(request)
        response.headers.update(SECURITY_HEADERS)
        if refusal is None and request.url.path == "/" and "token" in request.query_params:
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response

    @app.get("/")
    def page() -> Response:
        return Response(_page_file("index.html"), media_type="text/html")

    @app.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in PAGE_FILES:
            raise HTTPException(404, f"no page file {name!r:.60}; the page has "
                                     f"{sorted(PAGE_FILES)}")
        return Response(_page_file(name), media_type=PAGE_FILES[name])

    @app.get("/api/state")
    def state(client: Annotated[str, Query(pattern=r"^[A-Za-z0-9_-]{1,40}$")] = "page"
              ) -> dict[str, Any]:
        number = queue.open_round()
        progress = queue.progress(number) if number is not None else None
        query = (leases.choose(number, progress.pending, client)
                 if progress is not None else None)
        pair = None
        if query is not None:
            frames, _, instruction = queue.pair(number, query)
            pair = {"round": number, "query": query, "instruction": instruction,
                    "steps": int(frames.shape[0]), "height": int(frames.shape[1]),
                    "width": int(frames.shape[2])}
        return {"pair": pair, "progress": _progress(progress), "labeller": labeller}

    @app.get("/api/clip/{number}/{query}/{side}")
    def clip(number: Annotated[int, Path(ge=0)], query: Annotated[int, Path(ge=0)],
             side: Side) -> Response:
        try:
            frames_a, frames_b, _ = queue.pair(number, query)
        except UnknownPair as error:
            raise HTTPException(404, str(error)) from error
        return Response(strip_png(frames_a if side == "a" else frames_b),
                        media_type="image/png")

    @app.post("/api/label")
    def label(request: LabelRequest) -> dict[str, Any]:
        return _answer(lambda: queue.answer(request.round, request.query, request.label,
                                            request.labeller or labeller))

    @app.post("/api/undo")
    def undo(request: UndoRequest) -> dict[str, Any]:
        return _answer(lambda: queue.undo(request.round, request.query,
                                          request.labeller or labeller))

    return app


def _answer(call: Callable[[], RoundProgress]) -> dict[str, Any]:
    try:
        return {"progress": _progress(call())}
    except UnknownPair as error:
        raise HTTPException(404, str(error)) from error
    except Conflict as error:
        raise HTTPException(409, str(error)) from error
    except ValueError as error:
        raise HTTPException(422, str(error)) from error


def _refusal(request: Request, token: str) -> Response | None:
    """The response refusing ``request`` (403 / 411 / 413), or None to serve it."""
    given = (request.query_params.get("token") or request.headers.get(TOKEN_HEADER)
             or request.cookies.get(TOKEN_COOKIE) or "")
    if not secrets.compare_digest(given.encode(), token.encode()):
        return JSONResponse({"detail": "missing or wrong token: open the URL the labelling "
                                       "server printed (it ends in ?token=...)"}, 403)
    origin = request.headers.get("origin")
    host = request.headers.get("host", "")
    if (origin is not None and origin.split("://", 1)[-1] != host) or \
            request.headers.get("sec-fetch-site") == "cross-site":
        return JSONResponse({"detail": "cross-origin requests are refused"}, 403)
    if request.method == "POST":
        length = request.headers.get("content-length")
        if length is None:
            return JSONResponse({"detail": "a POST needs a Content-Length"}, 411)
        if not length.isdigit() or int(length) > MAX_BODY_BYTES:
            return JSONResponse({"detail": f"request body over {MAX_BODY_BYTES} bytes"}, 413)
    return None


def _page_file(name: str) -> bytes:
    return resources.files("agents.labelling").joinpath("page", name).read_bytes()


def new_token() -> str:
    """A random token, as Jupyter makes them."""
    return secrets.token_urlsafe(24)


class LabelServer:
    """The labelling page served from a background thread.

    :param port: 0 picks a free one; :attr:`url` says which.
    """

    def __init__(self, queue: PendingQueue, host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 allow_remote: bool = False, token: str | None = None,
                 labeller: str | None = None) -> None:
        check_host(host, allow_remote)
        self.token = token or new_token()
        self.host = host
        config = uvicorn.Config(make_app(queue, self.token, labeller), host=host, port=port,
                                log_level="warning", access_log=False, lifespan="off")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="vmalign-label",
                                        daemon=True)
        self.port = port

    def start(self, timeout: float = 10.0) -> LabelServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise OSError(f"the labelling server could not listen on {self.host}:"
                              f"{self.port} (is the port in use? choose another with port=)")
            time.sleep(0.02)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/?token={self.token}"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
