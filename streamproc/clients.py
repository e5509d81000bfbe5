"""Kafka and Redis clients built from the settings, so TLS and SASL reach every one of them."""

from __future__ import annotations

import ssl
from typing import Any

import redis.asyncio as aioredis

from streamproc.settings import Settings


def _ssl_context(cafile: str) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=cafile or None)


def kafka_args(settings: Settings) -> dict[str, Any]:
    """Connection keyword arguments for every aiokafka client (producer, consumer, admin)."""
    protocol = settings.kafka_security_protocol
    args: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap_servers,
        "security_protocol": protocol,
    }
    if protocol in ("SSL", "SASL_SSL"):
        args["ssl_context"] = _ssl_context(settings.kafka_ssl_cafile)
    if protocol.startswith("SASL"):
        args |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_sasl_username,
            "sasl_plain_password": settings.kafka_sasl_password,
        }
    return args


def faust_credentials(settings: Settings) -> Any:
    """``broker_credentials`` for the Faust app (None: plaintext)."""
    import faust

    protocol = settings.kafka_security_protocol
    context = _ssl_context(settings.kafka_ssl_cafile) if protocol in ("SSL", "SASL_SSL") else None
    if protocol.startswith("SASL"):
        return faust.SASLCredentials(
            username=settings.kafka_sasl_username,
            password=settings.kafka_sasl_password,
            mechanism=settings.kafka_sasl_mechanism,
            ssl_context=context,
        )
    return faust.SSLCredentials(context) if context is not None else None


def redis_client(settings: Settings, **options: Any) -> aioredis.Redis:
    """A Redis client for REDIS_URL, with REDIS_PASSWORD and the TLS CA bundle when set."""
    if settings.redis_password:
        options["password"] = settings.redis_password
    if settings.redis_url.startswith("rediss://") and settings.redis_ssl_cafile:
        options["ssl_ca_certs"] = settings.redis_ssl_cafile
    return aioredis.Redis.from_url(settings.redis_url, **options)
