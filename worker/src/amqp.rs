//! What the publisher (`notabene`) and the consumer (`yagi`) both need from AMQP:
//! where a broker is ([`AmqpParams`], whose password is never printed), the exchange
//! kinds by name, and declaring a queue bound to an exchange the way carrot and
//! kombu did (queue, then exchange, then the binding).

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::tcp::{OwnedIdentity, OwnedTLSConfig};
use lapin::types::FieldTable;
use lapin::uri::{AMQPAuthority, AMQPQueryString, AMQPScheme, AMQPUri, AMQPUserInfo};
use lapin::{AsyncTcpStream, Channel, Connection, ConnectionProperties, ExchangeKind};
use std::fmt;

/// An AMQP URL that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad AMQP URL: {0}")]
pub struct BadUrl(pub String);

/// Where to reach a broker. The password is never printed: `Debug` redacts it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AmqpParams {
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub vhost: String,
    /// `amqps://` (TLS) instead of plain `amqp://`.
    pub tls: bool,
}

impl Default for AmqpParams {
    /// The original's defaults: guest/guest on localhost:5672, vhost `/`.
    fn default() -> Self {
        AmqpParams {
            host: "localhost".to_string(),
            port: 5672,
            user: "guest".to_string(),
            password: "guest".to_string(),
            vhost: "/".to_string(),
            tls: false,
        }
    }
}

impl fmt::Debug for AmqpParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpParams")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("vhost", &self.vhost)
            .field("tls", &self.tls)
            .finish()
    }
}

impl fmt::Display for AmqpParams {
    /// `amqp://user@host:port/vhost`, without the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "amqps" } else { "amqp" };
        write!(
            f,
            "{scheme}://{}@{}:{}/{}",
            self.user, self.host, self.port, self.vhost
        )
    }
}

impl AmqpParams {
    /// Parses an `amqp://user:password@host:port/vhost` URL (percent-encoded parts,
    /// `%2f` for the vhost `/`), as the test environment gives it.
    pub fn from_url(url: &str) -> Result<Self, BadUrl> {
        let uri: AMQPUri = url.parse().map_err(BadUrl)?;
        Ok(AmqpParams {
            host: uri.authority.host,
            port: uri.authority.port,
            user: uri.authority.userinfo.username,
            password: uri.authority.userinfo.password,
            vhost: uri.vhost,
            tls: uri.scheme == AMQPScheme::AMQPS,
        })
    }

    /// The URI lapin connects with (it carries the password: never log it).
    pub fn to_uri(&self) -> AMQPUri {
        AMQPUri {
            scheme: if self.tls {
                AMQPScheme::AMQPS
            } else {
                AMQPScheme::AMQP
            },
            authority: AMQPAuthority {
                userinfo: AMQPUserInfo {
                    username: self.user.clone(),
                    password: self.password.clone(),
                },
                host: self.host.clone(),
                port: self.port,
            },
            vhost: self.vhost.clone(),
            query: AMQPQueryString::default(),
        }
    }
}

/// How to trust a TLS broker and how to prove who we are to it, beyond the platform's
/// certificate store: a private CA (the usual case for a cell's RabbitMQ), a client
/// certificate for mutual TLS, and the name the broker's certificate carries when it
/// differs from the host we dial (an IP, or a Service name the certificate does not
/// list). `Debug` never prints the private key.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    /// PEM certificates trusted as roots, in addition to the platform's.
    pub ca_pem: Option<String>,
    /// The client certificate chain and its private key (PEM, PKCS#8, PKCS#1 or SEC1).
    pub client: Option<ClientIdentity>,
    /// The name to verify the broker's certificate against (and send as SNI);
    /// the URI's host when absent.
    pub server_name: Option<String>,
}

/// A client certificate chain and its key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub cert_pem: String,
    pub key_pem: String,
}

impl fmt::Debug for TlsOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsOptions")
            .field("ca_pem", &self.ca_pem.as_ref().map(|_| "<set>"))
            .field(
                "client",
                &self.client.as_ref().map(|_| "<certificate and key>"),
            )
            .field("server_name", &self.server_name)
            .finish()
    }
}

impl TlsOptions {
    fn owned_config(&self) -> OwnedTLSConfig {
        OwnedTLSConfig {
            identity: self.client.as_ref().map(|c| OwnedIdentity::PKCS8 {
                pem: c.cert_pem.clone().into_bytes(),
                key: c.key_pem.clone().into_bytes(),
            }),
            cert_chain: self.ca_pem.clone(),
        }
    }
}

/// Opens a connection to the broker `params` names, with `tls` applied when the
/// scheme is `amqps` (ignored otherwise). lapin verifies against the URI's host; a
/// `server_name` needs our own dial (resolve, connect, then the TLS handshake under
/// that name), which lapin's `connector` exists for.
pub async fn connect(
    params: &AmqpParams,
    tls: &TlsOptions,
    properties: ConnectionProperties,
) -> lapin::Result<Connection> {
    let uri = params.to_uri();
    let runtime = lapin::runtime::default_runtime()?;
    let config = tls.owned_config();
    match (&tls.server_name, params.tls) {
        (Some(name), true) => {
            let name = name.clone();
            Connection::connector(
                uri,
                runtime,
                async move |uri: AMQPUri, runtime| {
                    let addrs: Vec<std::net::SocketAddr> =
                        tokio::net::lookup_host((uri.authority.host.as_str(), uri.authority.port))
                            .await?
                            .collect();
                    let stream = AsyncTcpStream::connect(&runtime, addrs).await?;
                    Ok(stream.into_tls(&name, config.as_ref()).await?)
                },
                properties,
            )
            .await
        }
        _ => Connection::connect_uri_with_config(uri, properties, config, runtime).await,
    }
}

/// An exchange type by name: `topic`, `direct`, `fanout`, `headers`, or a plugin's.
pub fn exchange_kind(name: &str) -> ExchangeKind {
    match name {
        "topic" => ExchangeKind::Topic,
        "direct" => ExchangeKind::Direct,
        "fanout" => ExchangeKind::Fanout,
        "headers" => ExchangeKind::Headers,
        other => ExchangeKind::Custom(other.to_string()),
    }
}

/// A queue bound to an exchange with a routing key. An empty exchange name is the
/// default exchange, which exists already and routes by queue name: nothing to declare
/// or bind then.
#[derive(Debug, Clone, Copy)]
pub struct BoundQueue<'a> {
    pub queue: &'a str,
    pub queue_durable: bool,
    pub queue_auto_delete: bool,
    pub exchange: &'a str,
    pub exchange_type: &'a str,
    pub exchange_durable: bool,
    pub exchange_auto_delete: bool,
    pub routing_key: &'a str,
}

/// Which declaration failed, and why (the broker's words).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeclareError {
    #[error("cannot declare queue '{name}': {reason}")]
    Queue { name: String, reason: String },
    #[error("cannot declare exchange '{name}': {reason}")]
    Exchange { name: String, reason: String },
    #[error("cannot bind queue '{queue}' to exchange '{exchange}': {reason}")]
    Bind {
        queue: String,
        exchange: String,
        reason: String,
    },
}

impl BoundQueue<'_> {
    /// Declares the queue, the exchange and the binding on `channel`.
    pub async fn declare(&self, channel: &Channel) -> Result<(), DeclareError> {
        channel
            .queue_declare(
                self.queue.into(),
                QueueDeclareOptions {
                    durable: self.queue_durable,
                    auto_delete: self.queue_auto_delete,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| DeclareError::Queue {
                name: self.queue.to_string(),
                reason: e.to_string(),
            })?;
        if self.exchange.is_empty() {
            return Ok(());
        }
        channel
            .exchange_declare(
                self.exchange.into(),
                exchange_kind(self.exchange_type),
                ExchangeDeclareOptions {
                    durable: self.exchange_durable,
                    auto_delete: self.exchange_auto_delete,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| DeclareError::Exchange {
                name: self.exchange.to_string(),
                reason: e.to_string(),
            })?;
        channel
            .queue_bind(
                self.queue.into(),
                self.exchange.into(),
                self.routing_key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| DeclareError::Bind {
                queue: self.queue.to_string(),
                exchange: self.exchange.to_string(),
                reason: e.to_string(),
            })?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_from_url() {
        let p = AmqpParams::from_url("amqp://guest:pw%40x@127.0.0.1:5672/%2f").unwrap();
        assert_eq!(p.host, "127.0.0.1");
        assert_eq!(p.port, 5672);
        assert_eq!(p.user, "guest");
        assert_eq!(p.password, "pw@x");
        assert_eq!(p.vhost, "/");
        assert!(!p.tls);
        assert!(AmqpParams::from_url("http://x").is_err());
        let uri = p.to_uri();
        assert_eq!(uri.authority.userinfo.password, "pw@x");
        assert_eq!(uri.vhost, "/");
    }

    #[test]
    fn exchange_kinds() {
        assert_eq!(exchange_kind("topic"), ExchangeKind::Topic);
        assert_eq!(exchange_kind("fanout"), ExchangeKind::Fanout);
        assert_eq!(
            exchange_kind("x-delayed-message"),
            ExchangeKind::Custom("x-delayed-message".to_string())
        );
    }
}
