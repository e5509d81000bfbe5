"""The surface: TLS and SASL settings reach every client (aiokafka's, the Faust app's, Redis'), secrets are
never shown, and the web port stays on loopback unless configured."""

from __future__ import annotations

import ssl

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streamproc.app.worker import create_app
from streamproc.clients import kafka_args, redis_client
from streamproc.settings import Settings, SettingsError

CAFILE = ssl.get_default_verify_paths().cafile or ssl.get_default_verify_paths().openssl_cafile
SECURE = {
    "KAFKA_SECURITY_PROTOCOL": "sasl_ssl",
    "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
    "KAFKA_SASL_USERNAME": "monitor",
    "KAFKA_SASL_PASSWORD": "s3cret-kafka",
    "KAFKA_SSL_CAFILE": CAFILE,
    "REDIS_URL": "rediss://redis.example:6380/0",
    "REDIS_PASSWORD": "s3cret-redis",
    "REDIS_SSL_CAFILE": CAFILE,
}
pytestmark = pytest.mark.skipif(not CAFILE, reason="no system CA bundle to point the TLS settings at")


async def test_kafka_clients_get_sasl_and_tls() -> None:
    s = Settings.from_env(SECURE)
    producer, consumer = AIOKafkaProducer(**kafka_args(s)), AIOKafkaConsumer(**kafka_args(s))
    try:
        for inner in (producer.client, consumer._client):  # the connection settings they were given
            assert inner._security_protocol == "SASL_SSL"
            assert inner._sasl_mechanism == "SCRAM-SHA-512"
            assert (inner._sasl_plain_username, inner._sasl_plain_password) == ("monitor", "s3cret-kafka")
            assert isinstance(inner._ssl_context, ssl.SSLContext)
    finally:
        await consumer.stop()
        await producer.stop()


def test_the_faust_app_gets_the_same_credentials() -> None:
    s = Settings.from_env({**SECURE, "STREAMPROC_NAMESPACE": "creds"})
    app, _ = create_app(s, dict.fromkeys(("quotes", "positions", "instruments", "orders"), 1))
    creds = app.conf.broker_credentials
    assert (creds.username, creds.password) == ("monitor", "s3cret-kafka")
    assert str(creds.mechanism.value) == "SCRAM-SHA-512" and isinstance(creds.ssl_context, ssl.SSLContext)


def test_redis_gets_the_password_and_tls() -> None:
    client = redis_client(Settings.from_env(SECURE))
    kwargs = client.connection_pool.connection_kwargs
    assert kwargs["password"] == "s3cret-redis" and kwargs["ssl_ca_certs"] == CAFILE
    assert client.connection_pool.connection_class.__name__ == "SSLConnection"


def test_plaintext_stays_plaintext() -> None:
    args = kafka_args(Settings.from_env({}))
    assert args["security_protocol"] == "PLAINTEXT" and "sasl_plain_password" not in args


def test_sasl_without_credentials_fails_at_start_up_and_secrets_are_never_shown() -> None:
    with pytest.raises(SettingsError, match="KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"):
        Settings.from_env({"KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})
    shown = str(Settings.from_env(SECURE).redacted())
    assert "s3cret" not in shown


def test_the_web_port_binds_to_loopback_unless_configured() -> None:
    partitions = dict.fromkeys(("quotes", "positions", "instruments", "orders"), 1)
    app, _ = create_app(Settings.from_env({"STREAMPROC_NAMESPACE": "web"}), partitions)
    assert app.conf.web_bind == "127.0.0.1"
    exposed = Settings.from_env({"STREAMPROC_NAMESPACE": "web2", "STREAMPROC_WEB_HOST": "0.0.0.0"})
    assert create_app(exposed, partitions)[0].conf.web_bind == "0.0.0.0"
