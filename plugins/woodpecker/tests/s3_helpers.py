"""The S3 test server (S3Proxy via ``scripts/s3proxy``): settings and fault control."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from walstream.testing.services import ServiceScript

SCRIPT = Path(__file__).resolve().parents[3] / "scripts" / "s3proxy"
S3_ENV = {
    "endpoint": "WALSTREAM_TEST_S3_ENDPOINT",
    "bucket": "WALSTREAM_TEST_S3_BUCKET",
    "region": "WALSTREAM_TEST_S3_REGION",
    "access_key_id": "WALSTREAM_TEST_S3_ACCESS_KEY_ID",
    "secret_access_key": "WALSTREAM_TEST_S3_SECRET_ACCESS_KEY",
}


def s3_wal_settings(server: dict[str, str], root: Path, **overrides: Any) -> dict[str, Any]:
    """JSON-able object-mode settings on a fresh random prefix of the test bucket.

    The driver's own retries are kept short, so the writer's upload retry deadline is
    what decides how long an outage is waited out."""
    extra = overrides.pop("object_store", {})
    return {
        "root": str(root),
        "storage": "object",
        "object_store_url": f"s3://{server['bucket']}/wp-{uuid.uuid4().hex[:12]}",
        "object_store": {
            "endpoint": server["endpoint"],
            "region": server["region"],
            "access_key_id": server["access_key_id"],
            "secret_access_key": server["secret_access_key"],
            "allow_http": True,
            "connect_timeout_s": 2.0,
            "request_timeout_s": 5.0,
            "retry_deadline_s": 1.0,
            **extra,
        },
        "object_flush_interval_ms": 5,
        "object_reader_poll_interval_ms": 20,
        **overrides,
    }


class S3Control(ServiceScript):
    """Kills and restarts the test S3 server through ``scripts/s3proxy``."""

    def __init__(self, run_dir: str | None) -> None:
        super().__init__(SCRIPT, "S3PROXY_RUN_DIR", run_dir)
