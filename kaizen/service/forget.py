"""`kaizen forget --tenant T --user U` and `POST /forget`: forget one user, everywhere.

Crypto-shredding: the user's key is deleted from the key store (outside the log), so their
encrypted personal fields read as `<forgotten>` on every replay of every topic (streams/personal.py,
when `KAIZEN_ENCRYPT_PERSONAL` is on). Then the stores delete the user's rows and points, the
lessons only they supported are withdrawn and the others lose their evidence (sinks/forget.py),
and a `ForgetReceipt` on the privacy topic records what was done; `kaizen rebuild` applies every
receipt, so a rebuild after a forget gives the live state.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from kaizen.schemas import model
from kaizen.schemas.records import to_json
from kaizen.settings import Settings
from kaizen.sinks.forget import forget_in_stores
from kaizen.streams.personal import KeyStore
from kaizen.streams.publish import publish_events
from kaizen.streams.topics import Topics

if TYPE_CHECKING:
    from kaizen.service.stores import Stores


def keys_path(settings: Settings) -> Path:
    """Where the key store is (or would be), encryption on or off."""
    return settings.keys_file or settings.home / "keys" / "personal.sqlite"


def forget(settings: Settings, stores: Stores, tenant: str, user: str,
           actor: str) -> model.ForgetReceipt:
    """Shred the user's key, clean the stores, publish and return the receipt."""
    key_deleted = False
    if keys_path(settings).exists():
        keys = KeyStore(keys_path(settings))
        key_deleted = keys.forget(tenant, user)
        keys.close()
    with stores.lock:
        done = forget_in_stores(stores.clickhouse.client, stores.library, stores.index,
                                tenant, user)
    receipt = model.ForgetReceipt(
        str(uuid.uuid4()), time.time_ns() // 1_000_000, tenant, user, actor=actor,
        key_deleted=key_deleted, rows_deleted=done.rows_deleted,
        lessons_withdrawn=done.withdrawn, lessons_trimmed=done.trimmed)
    publish_events(settings.bootstrap, Topics(settings.topic_prefix).privacy,
                   [(f"{tenant}/{user}".encode(), receipt)], client=settings.kafka_client)
    return receipt


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("forget", help="forget one user: shred their key, delete their "
                            "rows, points and lessons, record a receipt")
    parser.add_argument("--tenant", required=True)
    parser.add_argument("--user", required=True)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    """Through the running service when it answers (it owns the embedded stores), else here."""
    body = json.dumps({"tenant": args.tenant, "user": args.user}).encode()
    url = settings.api_url or f"http://127.0.0.1:{settings.http_port}"
    headers = {"Content-Type": "application/json"}
    if settings.api_token is not None:
        headers["Authorization"] = f"Bearer {settings.api_token.get_secret_value()}"
    try:
        request = urllib.request.Request(f"{url}/forget", body, headers)  # noqa: S310
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 - our API
            print(response.read().decode())
            return 0
    except urllib.error.HTTPError as error:
        print(f"kaizen forget: {error.code} {error.read().decode()}", file=sys.stderr)
        return 1
    except OSError:
        pass  # no service: open the stores here
    from kaizen.service.stores import Stores

    stores = Stores.open(settings)
    try:
        receipt = forget(settings, stores, args.tenant, args.user, actor="cli")
    finally:
        stores.close()
    print(json.dumps(to_json(receipt)))
    return 0
