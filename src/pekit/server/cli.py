"""``pekit serve`` and ``pekit keys create|list|revoke`` (wired into `pekit.cli`).

    pekit keys create alice              # prints a key once; only its hash is stored
    pekit keys list
    pekit keys revoke 1a2b3c4d5e6f       # or user:alice for all of alice's keys
    pekit serve [--memory URI] [--keys PATH] [--lvlm openai:http://...#model] [--port 8080]
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from pekit.cli_args import lvlm_option

__all__ = ["add_keys_parser", "add_serve_parser", "check_backends", "check_listen", "check_serve_options", "run_keys",
           "run_serve"]

MB = 1024 * 1024

#: the defaults of ``pekit serve``'s numeric options (named in its help and its errors)
PORT, WORKERS, THREADS, QUEUE, MAX_PHOTO_MB, MAX_PHOTOS = 8080, 1, 1, 8, 20.0, 10
BODY_TIMEOUT, MAX_CONNECTIONS = 30.0, 64


def _where(p: argparse.ArgumentParser, keys_help: str) -> None:
    p.add_argument("--memory", metavar="URI", help="memory file or URI (default: $PEKIT_MEMORY or the user data dir)")
    p.add_argument("--keys", metavar="PATH", help="API key file, a file of its own (not the memory file); default: "
                   "<memory>.keys.db beside a memory file, else keys.db in the user data dir. " + keys_help)


def add_serve_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the HTTP service and its web page",
                       description="Serve the API (per-user namespaces by API key, OpenAPI docs at /docs) and "
                                   "the web page at /. Create keys with `pekit keys create USER`. The options are "
                                   "checked, and the models loaded, before the server listens.")
    _where(p, "A missing key file is created empty (keys made later with `pekit keys create` work at once), "
              "but --keys in a folder that does not exist is refused.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=PORT, help=f"TCP port, 0-65535; 0: any free port (default {PORT})")
    p.add_argument("--preset", default="offline",
                   help="offline (default), offline-thorough, offline-fast, cpu or paper")
    p.add_argument("--lvlm", help="none, hf:<id or dir> or openai:<base url>#<model> (default: the preset's)")
    p.add_argument("--lvlm-option", action="append", type=lvlm_option, metavar="KEY=VALUE",
                   help="an option of the LVLM, e.g. timeout=300, retries=5 (openai:); repeatable")
    p.add_argument("--workers", type=int, default=WORKERS,
                   help=f"server processes, at least 1 (each loads the models once; default {WORKERS})")
    p.add_argument("--threads", type=int, default=THREADS,
                   help=f"backbone threads per process, at least 1 (default {THREADS})")
    p.add_argument("--queue", type=int, default=QUEUE, help="backbone calls that may wait per process, 0 or more; "
                   f"one more gets 503 + Retry-After (default {QUEUE})")
    p.add_argument("--max-photo-mb", type=float, default=MAX_PHOTO_MB,
                   help=f"largest photo accepted, MB, more than 0 (default {MAX_PHOTO_MB:g})")
    p.add_argument("--max-photos", type=int, default=MAX_PHOTOS,
                   help=f"photos per introduce request, at least 1 (default {MAX_PHOTOS})")
    p.add_argument("--body-timeout", type=float, default=BODY_TIMEOUT, metavar="S",
                   help="seconds a client may stall in the middle of sending a request; then 408 and the "
                        f"connection closes (default {BODY_TIMEOUT:g})")
    p.add_argument("--max-connections", type=int, default=MAX_CONNECTIONS, metavar="N",
                   help="open connections and requests per process, at least 1; one more gets 503 "
                        f"(default {MAX_CONNECTIONS})")
    p.add_argument("--json-logs", action="store_true", help=argparse.SUPPRESS)


def add_keys_parser(sub: Any) -> None:
    p = sub.add_parser("keys", help="create, list or revoke API keys of the HTTP service")
    verbs = p.add_subparsers(dest="keys_command", required=True, metavar="VERB")
    c = verbs.add_parser("create", help="a new key for USER (printed once; only its hash is stored)")
    c.add_argument("user", help="the user (namespace) the key reaches, e.g. alice")
    c.add_argument("--label", default="", help="a note, e.g. 'alice phone'")
    ls = verbs.add_parser("list", help="the keys (ids, users, dates; never the secrets)")
    ls.add_argument("--user", help="only this user's keys")
    r = verbs.add_parser("revoke", help="revoke a key by id, or every key of a user with user:NAME")
    r.add_argument("key", help="key id (from `pekit keys list`), pk_<id>, or user:NAME")
    for q in (c, ls, r):
        _where(q, "`keys create` makes the file (and its folder); `list` and `revoke` never create one.")
        q.add_argument("--json", action="store_true", help="machine-readable output")


def _keys_path(args: argparse.Namespace) -> str:
    """The key file ``--keys`` names (else the memory's default), refused when it is the memory file."""
    from pekit.errors import InvalidInputError
    from pekit.server.keys import keys_path_for, memory_file_for  # (no fastapi: `keys` works without [server])

    default = keys_path_for(args.memory)
    if not args.keys:
        return default
    keys = Path(args.keys).expanduser().absolute()
    memory = memory_file_for(args.memory)
    if memory is not None and (keys == memory or (keys.exists() and memory.exists() and keys.samefile(memory))):
        raise InvalidInputError(f"--keys {args.keys} is the memory file; keep the API keys in a separate file, "
                                f"e.g. --keys {default} (the default)")
    return str(keys)


def _key_store(args: argparse.Namespace, **options: Any) -> Any:
    from pekit.server.keys import KeyStore

    return KeyStore(_keys_path(args), **options)


def _when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def run_keys(args: argparse.Namespace) -> int:
    if args.keys_command == "list" and not Path(_keys_path(args)).exists():  # listing creates nothing
        if args.json:
            print("[]")
        else:
            print(f"no keys: there is no key file at {_keys_path(args)} yet; create a key with "
                  "`pekit keys create USER`")
        return 0
    with _key_store(args, must_exist=args.keys_command != "create") as keys:
        if args.keys_command == "create":
            token = keys.create(args.user, label=args.label)
            if args.json:
                print(json.dumps({"user": args.user, "key": token, "keys": str(keys.path or ":memory:")}))
            else:
                print(token)
                print(f"(the key for '{args.user}'; it is shown only now: keep it. Stored hashed in {keys.path})",
                      file=sys.stderr)
            return 0
        if args.keys_command == "list":
            rows = keys.list(args.user)
            if args.json:
                print(json.dumps([{"key_id": k.key_id, "user": k.namespace, "label": k.label, "created": k.created,
                                   "revoked": k.revoked} for k in rows]))
            elif not rows:
                print(f"no keys in {keys.path}; create one with `pekit keys create USER`")
            for k in [] if args.json else rows:
                state = f"revoked {_when(k.revoked)}" if k.revoked else "active"
                print(f"{k.key_id}  {k.namespace:<16} {_when(k.created)}  {state}  {k.label}")
            return 0
        revoked = keys.revoke(args.key)
        if args.json:
            print(json.dumps({"revoked": [k.key_id for k in revoked]}))
        else:
            for k in revoked:
                print(f"revoked {k.key_id} ({k.namespace})")
        return 0


def check_serve_options(args: argparse.Namespace) -> None:
    """Refuse numbers ``pekit serve`` cannot work with (a port out of range, no worker, a
    photo limit that refuses every upload), each with what to pass instead."""
    from pekit.errors import InvalidInputError

    if not 0 <= args.port <= 65535:
        raise InvalidInputError(f"--port must be 0-65535 (0: any free port), got {args.port}; "
                                f"e.g. --port {PORT} (the default)")
    counts = (("--workers", args.workers, 1, WORKERS), ("--threads", args.threads, 1, THREADS),
              ("--queue", args.queue, 0, QUEUE), ("--max-photos", args.max_photos, 1, MAX_PHOTOS),
              ("--max-connections", args.max_connections, 1, MAX_CONNECTIONS))
    for flag, value, least, default in counts:
        if value < least:
            raise InvalidInputError(f"{flag} must be at least {least}, got {value}; leave it out for the "
                                    f"default ({default})")
    mb = args.max_photo_mb
    if not (math.isfinite(mb) and mb > 0 and int(mb * MB) >= 1):
        raise InvalidInputError(f"--max-photo-mb must be more than 0 (the largest photo accepted, in MB; at least "
                                f"one byte), got {mb:g}; leave it out for the default ({MAX_PHOTO_MB:g})")
    wait = args.body_timeout
    if not (math.isfinite(wait) and wait > 0):
        raise InvalidInputError(f"--body-timeout must be a number of seconds above 0, got {wait:g}; leave it out "
                                f"for the default ({BODY_TIMEOUT:g})")


def check_backends(args: argparse.Namespace) -> None:
    """Refuse an unknown ``--preset`` or ``--lvlm`` before any model loads or any worker starts."""
    from pekit.errors import BackendNotFoundError, InvalidInputError
    from pekit.presets import get_preset
    from pekit.registry import available

    preset = get_preset(args.preset)  # an unknown one lists the presets
    of_preset = f"preset {preset.name}"
    named = [("backbone", preset.backbone, of_preset), ("detector", preset.detector, of_preset),
             ("segmenter", preset.segmenter, of_preset),
             ("lvlm", preset.lvlm, of_preset) if args.lvlm is None else ("lvlm", args.lvlm, "--lvlm")]
    for kind, name, source in named:
        if name is None:
            continue
        names = available(kind)
        listed = ", ".join(f"{k}<...>" if k.endswith(":") else k for k in names) or "(none registered)"
        if not name.strip():
            raise InvalidInputError(f"{source}: the {kind} name is empty; choose one of: {listed}")
        if (name in names and not name.endswith(":")) or any(k.endswith(":") and name.startswith(k) for k in names):
            continue
        raise BackendNotFoundError(f"{source}: unknown {kind} '{name}'; available: {listed}")


def check_listen(host: str, port: int) -> int:
    """Refuse an address this machine cannot listen on (unknown host, port in use or not allowed)
    at once, not after the models have loaded; returns the port (for ``0``, a free one the
    system chose, which the server then listens on and says)."""
    import socket

    from pekit.errors import InvalidInputError

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidInputError(f"cannot listen on --host {host!r}: {getattr(exc, 'strerror', None) or exc}; pass an "
                                "address of this machine, e.g. 127.0.0.1 (the default) or 0.0.0.0 (every "
                                "interface)") from exc
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind(address)
        except OSError as exc:
            raise InvalidInputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; pass another --port "
                                    "(0: any free one) or stop the program that uses it") from exc
        return int(sock.getsockname()[1])


def run_serve(args: argparse.Namespace) -> int:
    from pekit.errors import require

    uvicorn = require("uvicorn", "server")
    require("fastapi", "server")
    from pekit.server.app import CONFIG_ENV, create_app, create_app_from_env
    from pekit.server.context import configure_logging
    from pekit.server.keys import KeyStore
    from pekit.server.limits import Limits

    check_serve_options(args)
    check_backends(args)
    args.port = check_listen(args.host, args.port)  # --port 0: the free port chosen, said in the log line below
    from pekit.memory import open_memory

    open_memory(args.memory).close()  # a bad URI fails here, in one line (not in every worker), creating nothing
    keys_path = _keys_path(args)
    # a missing key file is created empty (keys made while serving work at once); a --keys in a
    # missing folder is refused (a typo); the default one's folder is the user data dir
    keys = KeyStore(keys_path, make_folder=not args.keys)
    configure_logging(debug=getattr(args, "verbose", 0) >= 2)
    log = logging.getLogger("pekit.server")
    if not any(k.revoked is None for k in keys.list()):
        log.warning("no active API key in %s: every request will get 401 until you run "
                    "`pekit keys create USER --keys %s` (it works while the server runs)", keys_path, keys_path)
    photo_bytes = int(args.max_photo_mb * MB)
    # a photo at the limit must fit in a request's body
    limits = {"max_photo_bytes": photo_bytes, "max_photos": args.max_photos,
              "max_body_bytes": max(Limits.max_body_bytes, photo_bytes + MB), "body_timeout_s": args.body_timeout}
    options: dict[str, Any] = {"memory": args.memory, "preset": args.preset, "lvlm": args.lvlm,
                               "workers": args.threads, "queue": args.queue,
                               **({"lvlm_options": dict(args.lvlm_option)} if args.lvlm_option else {})}
    from pekit.server.protocol import HeadTimeoutH11

    HeadTimeoutH11.head_timeout_s = float(args.body_timeout)  # workers read it from CONFIG_ENV
    common = {"host": args.host, "port": args.port, "log_config": None, "access_log": False,
              "limit_concurrency": args.max_connections, "http": HeadTimeoutH11}
    if args.workers == 1:
        try:
            app = create_app(limits=Limits(**limits), keys=keys, warm=False, **options)
        except BaseException:
            keys.close()
            raise
        try:  # a backend that cannot load fails here, as one pekit error, not in uvicorn's start-up
            app.state.service.warm()
        except BaseException:
            app.state.service.close()
            raise
        log.info("serving on http://%s:%d (web page /, API docs /docs); keys in %s", args.host, args.port, keys_path)
        uvicorn.run(app, **common)
        return 0
    # several processes: each worker builds its own app (models load once per process)
    keys.close()
    log.info("serving on http://%s:%d (web page /, API docs /docs); keys in %s", args.host, args.port, keys_path)
    os.environ[CONFIG_ENV] = json.dumps({**options, "keys": keys_path, "limits": limits, "log": True})
    uvicorn.run(f"{create_app_from_env.__module__}:create_app_from_env", factory=True, workers=args.workers,
                **common)
    return 0
