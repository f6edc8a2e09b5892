"""Every Kafka client flowgauge makes is made here: Faust's app (its consumer and
producer) and each aiokafka producer, consumer and admin client, all with the cluster's
addresses and security settings (TLS, mutual TLS, SASL) from the configuration, and every
producer with ``acks=all``. tests/test_kafka_clients.py fails on a client made elsewhere.

aiokafka meets a connection the broker refuses (an untrusted certificate, a missing client
certificate, a SASL login turned down) with a log line and "Unable to bootstrap", and
Faust with retries; ``Kafka.connect`` says why in one line and stops the command instead.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass, field
from typing import Any

import faust
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError, KafkaError, UnsupportedSaslMechanismError
from aiokafka.helpers import create_ssl_context
from pydantic import SecretStr

from streams.config import FlowgaugeConfig

TLS_PROTOCOLS = ("SSL", "SASL_SSL")


_CERTIFICATE_WANTED = (
    "it wants a client certificate (FLOWGAUGE_SSL_CERT_FILE and FLOWGAUGE_SSL_KEY_FILE)"
)


class KafkaRefused(SystemExit):
    """The broker refused this client for good: one line, a non-zero exit."""


class KafkaUnreachable(SystemExit):
    """No bootstrap server could be reached: one line, a non-zero exit, unless caught."""


@dataclass(frozen=True)
class Kafka:
    """How to reach the cluster: its bootstrap servers and this client's security."""

    servers: tuple[str, ...]  # host:port
    security_protocol: str = "PLAINTEXT"
    ssl_context: ssl.SSLContext | None = None
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = field(default=None, repr=False)
    client_certificate: bool = False  # mutual TLS

    @classmethod
    def of(cls, config: FlowgaugeConfig) -> Kafka:
        if not config.broker:
            raise SystemExit("no broker: set FLOWGAUGE_BROKER=kafka://host:port or pass --broker")
        servers = tuple(url.strip().removeprefix("kafka://") for url in config.broker.split(","))
        sasl = config.security_protocol.startswith("SASL_")
        return cls(
            servers,
            config.security_protocol,
            _tls_context(config) if config.security_protocol in TLS_PROTOCOLS else None,
            config.sasl_mechanism if sasl else None,
            config.sasl_username if sasl else None,
            config.sasl_password if sasl else None,
            config.ssl_cert_file is not None,
        )

    @property
    def bootstrap(self) -> str:
        return ",".join(self.servers)

    def producer(self, **options: Any) -> AIOKafkaProducer:
        """A producer whose sends count once every in-sync replica has them."""
        return AIOKafkaProducer(**self._options(), **options, acks="all")

    def consumer(self, *topics: str, **options: Any) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(*topics, **self._options(), **options)

    def admin(self, **options: Any) -> AIOKafkaAdminClient:
        return AIOKafkaAdminClient(**self._options(), **options)

    def app(self, app_id: str, **options: Any) -> faust.App:
        """Faust's app, whose consumer and producer connect as every other client does."""
        return faust.App(
            app_id,
            broker=[f"kafka://{server}" for server in self.servers],
            broker_credentials=self._credentials(),
            producer_acks=-1,
            **options,
        )

    async def connect(self, attempts: int = 30, pause: float = 0.5) -> None:
        """Until one bootstrap server accepts this client as the clients will connect:
        TLS handshake, SASL login. A refusal raises ``KafkaRefused`` at once; a server that
        cannot be reached is tried again, ``attempts`` rounds in all."""
        for attempt in range(attempts):
            for server in self.servers:
                if await self._accepted(server):
                    return
            if attempt < attempts - 1:
                await asyncio.sleep(pause)
        raise KafkaUnreachable(f"no Kafka broker could be reached at {self.bootstrap}")

    async def _accepted(self, server: str) -> bool:
        host, _, port = server.rpartition(":")
        try:
            connection = await create_conn(host, int(port), **self._security())
        except KafkaConnectionError:
            # A TLS 1.3 server checks the client's certificate after the handshake: its
            # refusal only closes the connection under create_conn's first request.
            refusal = await self._tls_refusal(host, int(port))
            if refusal is not None:
                raise KafkaRefused(f"{server}: {refusal}") from None
            return False
        except (ssl.SSLError, KafkaError, KeyError) as exc:
            raise KafkaRefused(f"{server}: {self._refusal(exc)}") from None
        except (TimeoutError, OSError):
            return False
        connection.close()
        return True

    async def _tls_refusal(self, host: str, port: int) -> str | None:
        """Why a server ends a TLS connection right after the handshake, if it does within
        2 s: its alert, or a bare close (a broker keeps an idle new connection for minutes)."""
        if self.ssl_context is None:
            return None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=self.ssl_context), 5.0
            )
        except (OSError, TimeoutError):
            return None
        try:
            if await asyncio.wait_for(reader.read(1), 2.0):
                return None
        except ssl.SSLError as alert:
            return self._refusal(alert)
        except (OSError, TimeoutError):
            return None
        finally:
            writer.close()
        if self.client_certificate:
            return "the broker closed the TLS connection: it refused this client's certificate"
        return f"the broker closed the TLS connection: {_CERTIFICATE_WANTED}"

    def _refusal(self, exc: BaseException) -> str:
        """Why the broker refused, in words; never a secret."""
        if isinstance(exc, ssl.SSLCertVerificationError):
            return (
                f"the broker's TLS certificate is not trusted ({exc.verify_message}):"
                " set FLOWGAUGE_SSL_CA_FILE to the authority that signed it"
            )
        if isinstance(exc, ssl.SSLError):
            reason = exc.reason or str(exc)
            hint = ""
            if "CERTIFICATE_REQUIRED" in reason.upper():
                hint = f": {_CERTIFICATE_WANTED}"
            return f"the broker refused the TLS connection ({reason}){hint}"
        login = f"SASL {self.sasl_mechanism} login as {self.sasl_username!r}"
        if isinstance(exc, KeyError):  # aiokafka's SCRAM on a server-final without a proof
            return f"{login} refused: the broker did not accept the password"
        if isinstance(exc, UnsupportedSaslMechanismError):
            return f"the broker does not offer SASL {self.sasl_mechanism}"
        return f"{login} refused: {exc}"

    def _security(self) -> dict[str, Any]:
        options: dict[str, Any] = {
            "security_protocol": self.security_protocol,
            "ssl_context": self.ssl_context,
        }
        if self.sasl_mechanism is not None:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            options["sasl_plain_password"] = _revealed(self.sasl_password)
        return options

    def _options(self) -> dict[str, Any]:
        return {"bootstrap_servers": self.bootstrap, **self._security()}

    def _credentials(self) -> Any:
        if self.sasl_mechanism is not None:
            return faust.SASLCredentials(
                username=self.sasl_username,
                password=_revealed(self.sasl_password),
                ssl_context=self.ssl_context,
                mechanism=self.sasl_mechanism,
            )
        if self.ssl_context is not None:
            return faust.SSLCredentials(self.ssl_context)
        return None


def _tls_context(config: FlowgaugeConfig) -> ssl.SSLContext:
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=config.ssl_ca_file,
            certfile=config.ssl_cert_file,
            keyfile=config.ssl_key_file,
        )
    except (OSError, ssl.SSLError) as exc:
        raise SystemExit(f"the TLS files cannot be used: {exc}") from None
    return context


def _revealed(secret: SecretStr | None) -> str | None:
    return None if secret is None else secret.get_secret_value()


async def read_to_highwaters(consumer: AIOKafkaConsumer) -> bool:
    """Whether every assigned partition has been read to the high-water mark its last fetch
    reported. From the fetch, not ListOffsets: that is also right on the embedded Tansu,
    whose ListOffsets is not (workarounds/tansu.py)."""
    for tp in consumer.assignment():
        highwater = consumer.highwater(tp)
        if highwater is None or await consumer.position(tp) < highwater:
            return False
    return True
