"""Building the pulsar-client ``Client`` and the producer and reader arguments."""

from __future__ import annotations

from typing import Any

import pulsar  # type: ignore[import-untyped]

from walstream_pulsar.settings import PulsarSettings

_LOG_LEVELS = {
    "DEBUG": pulsar.LoggerLevel.Debug,
    "INFO": pulsar.LoggerLevel.Info,
    "WARNING": pulsar.LoggerLevel.Warn,
    "ERROR": pulsar.LoggerLevel.Error,
}
"""The pulsar-client C++ logger writes to stderr at this level. (A Python ``logging``
logger would cost a call into Python, under the GIL, for each log line of its I/O
threads, also the filtered ones: about 2 per message sent.)"""


def make_client(settings: PulsarSettings) -> pulsar.Client:
    """A client for ``settings`` (it connects lazily: creating it does no I/O)."""
    kwargs: dict[str, Any] = {
        "operation_timeout_seconds": settings.operation_timeout_s,
        "connection_timeout_ms": settings.connection_timeout_ms,
        "io_threads": 1,
        "message_listener_threads": 1,
        "logger": pulsar.ConsoleLogger(_LOG_LEVELS[settings.client_log_level]),
    }
    if settings.auth_token is not None:
        kwargs["authentication"] = pulsar.AuthenticationToken(
            settings.auth_token.get_secret_value()
        )
    if settings.service_url.startswith("pulsar+ssl://"):
        kwargs["use_tls"] = True
        kwargs["tls_allow_insecure_connection"] = settings.tls_allow_insecure_connection
        kwargs["tls_validate_hostname"] = settings.tls_validate_hostname
        if settings.tls_trust_certs_file_path is not None:
            kwargs["tls_trust_certs_file_path"] = str(settings.tls_trust_certs_file_path)
        if settings.tls_certificate_file_path is not None:
            kwargs["tls_certificate_file_path"] = str(settings.tls_certificate_file_path)
        if settings.tls_private_key_file_path is not None:
            kwargs["tls_private_key_file_path"] = str(settings.tls_private_key_file_path)
    return pulsar.Client(settings.service_url, **kwargs)


def producer_kwargs(settings: PulsarSettings) -> dict[str, Any]:
    """``create_producer`` arguments of a WAL writer (without the topic)."""
    kwargs: dict[str, Any] = dict(settings.producer_overrides)
    kwargs.update(
        access_mode=pulsar.ProducerAccessMode.ExclusiveWithFencing,
        send_timeout_millis=max(1, int(settings.append_timeout_s * 1000)),
        block_if_queue_full=False,
        max_pending_messages=settings.max_pending_messages,
        batching_enabled=settings.batching_enabled,
        batching_max_messages=settings.batching_max_messages,
        batching_max_allowed_size_in_bytes=settings.batching_max_bytes,
        batching_max_publish_delay_ms=settings.batching_max_publish_delay_ms,
    )
    return kwargs


def reader_kwargs(settings: PulsarSettings, receiver_queue_size: int = 0) -> dict[str, Any]:
    """``create_reader`` arguments of a scanner (without topic and start)."""
    kwargs: dict[str, Any] = dict(settings.reader_overrides)
    kwargs["receiver_queue_size"] = receiver_queue_size or settings.receiver_queue_size
    return kwargs
