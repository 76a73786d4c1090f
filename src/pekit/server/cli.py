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
import os
import sys
import time
from typing import Any

__all__ = ["add_keys_parser", "add_serve_parser", "run_keys", "run_serve"]

def _where(p: argparse.ArgumentParser) -> None:
    p.add_argument("--memory", metavar="URI", help="memory file or URI (default: $PEKIT_MEMORY or the user data dir)")
    p.add_argument("--keys", metavar="PATH", help="API key file (default: <memory>.keys.db beside a memory file)")


def add_serve_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the HTTP service and its web page",
                       description="Serve the API (per-user namespaces by API key, OpenAPI docs at /docs) and "
                                   "the web page at /. Create keys with `pekit keys create USER`.")
    _where(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--preset", default="offline",
                   help="offline (default), offline-thorough, offline-fast, cpu or paper")
    p.add_argument("--lvlm", help="none, hf:<id or dir> or openai:<base url>#<model> (default: the preset's)")
    p.add_argument("--workers", type=int, default=1, help="server processes (each loads the models once)")
    p.add_argument("--threads", type=int, default=1, help="backbone threads per process (default 1)")
    p.add_argument("--queue", type=int, default=8, help="backbone calls that may wait per process; one more "
                   "gets 503 + Retry-After (default 8)")
    p.add_argument("--max-photo-mb", type=float, default=20.0, help="largest photo accepted, MB (default 20)")
    p.add_argument("--max-photos", type=int, default=10, help="photos per introduce request (default 10)")
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
        _where(q)
        q.add_argument("--json", action="store_true", help="machine-readable output")


def _key_store(args: argparse.Namespace) -> Any:
    from pekit.server.app import keys_path_for
    from pekit.server.keys import KeyStore

    return KeyStore(args.keys or keys_path_for(args.memory))


def _when(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def run_keys(args: argparse.Namespace) -> int:
    with _key_store(args) as keys:
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


def run_serve(args: argparse.Namespace) -> int:
    from pekit.errors import InvalidInputError, require

    uvicorn = require("uvicorn", "server")
    from pekit.server.app import CONFIG_ENV, create_app, create_app_from_env, keys_path_for
    from pekit.server.context import configure_logging

    if args.workers < 1 or args.threads < 1 or args.queue < 0:
        raise InvalidInputError("--workers and --threads must be at least 1, --queue at least 0")
    configure_logging(debug=getattr(args, "verbose", 0) >= 2)
    options: dict[str, Any] = {
        "memory": args.memory, "keys": args.keys or keys_path_for(args.memory), "preset": args.preset,
        "lvlm": args.lvlm, "workers": args.threads, "queue": args.queue,
        "log": True, "limits": {"max_photo_bytes": int(args.max_photo_mb * 1024 * 1024), "max_photos": args.max_photos},
    }
    log = logging.getLogger("pekit.server")
    log.info("serving on http://%s:%d (web page /, API docs /docs); keys in %s", args.host, args.port,
             options["keys"])
    common = {"host": args.host, "port": args.port, "log_config": None, "access_log": False}
    if args.workers == 1:
        from pekit.server.limits import Limits

        limits = Limits(**options.pop("limits"))
        options.pop("log")
        uvicorn.run(create_app(limits=limits, **options), **common)
        return 0
    # several processes: each worker builds its own app (models load once per process)
    from pekit.memory import open_memory

    open_memory(args.memory).close()  # a bad URI fails here, in one line, not in every worker
    os.environ[CONFIG_ENV] = json.dumps(options)
    uvicorn.run(f"{create_app_from_env.__module__}:create_app_from_env", factory=True, workers=args.workers,
                **common)
    return 0
