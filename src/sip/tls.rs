//! SIP over TLS (RFC 3261 §26.2, RFC 5630): the `[tls]` settings, the
//! server and client TLS settings built from the PEM files they name
//! (swapped whole on SIGHUP), and the handshake on either side of a
//! connection.
//!
//! This room only turns files into rustls settings and TCP streams into TLS
//! streams. Framing, size caps, idle limits, the source guard and the
//! connection table stay the transport's (`transport.rs`), shared with TCP,
//! so a TLS connection is a flow like a TCP one: answers and in-dialog
//! requests go back over it. Nothing here knows of transactions, operators
//! or calls.
//!
//! Why these crates:
//! - rustls: memory-safe, maintained, and it implements TLS 1.2 and 1.3
//!   only, so "no TLS 1.1 or older" holds by construction, not by a setting
//!   someone can loosen. Its `ring` provider is used rather than aws-lc-rs:
//!   ring builds with a C compiler alone, aws-lc needs cmake and minutes of
//!   build on the two-core machine. What aws-lc adds is FIPS and hybrid
//!   post-quantum key exchange (X25519MLKEM768); rustls 0.23.48 deprecated
//!   the ring provider for lacking the latter. Moving to aws-lc-rs is a
//!   change of features in Cargo.toml and of this one provider line.
//! - tokio-rustls: the rustls session as a tokio stream, by the rustls team.
//! - PEM: rustls-pki-types' own `PemObject` (reached as `rustls::pki_types`,
//!   already in the tree through rustls). rustls-pemfile, the older choice,
//!   is archived and its authors point to this parser instead.
//!
//! A reload reads every file before it swaps anything: a missing file, a key
//! that does not match the certificate or an empty CA file keeps the
//! settings in force and is logged (and counted). Connections already open
//! keep the certificate they were opened with; new handshakes use the new.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::{Context, bail};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector, client, server};
use tracing::{debug, info, warn};

use crate::ops::metrics as m;

/// `[tls]`: SIP over TLS. Off while `listen` is empty.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// Addresses of the TLS listeners (port 0 picks a free one).
    pub listen: Vec<SocketAddr>,
    /// PEM certificate chain, leaf first; presented to TLS peers.
    pub cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the leaf certificate.
    pub key: Option<PathBuf>,
    /// PEM CA certificates that outgoing connections verify peers against;
    /// without it the gateway opens no TLS connection itself.
    pub ca: Option<PathBuf>,
    /// REGISTER and operator feature codes over anything but TLS get 403.
    pub require_for_operators: bool,
    /// TLS connections open at once (handshaking ones included).
    pub max_connections: usize,
    /// Seconds a peer has to finish its handshake.
    pub handshake_timeout: u64,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            listen: Vec::new(),
            cert: None,
            key: None,
            ca: None,
            require_for_operators: false,
            max_connections: 1024,
            handshake_timeout: 10,
        }
    }
}

impl TlsConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.cert.is_some() != self.key.is_some() {
            return Err("tls: cert and key go together".into());
        }
        if !self.listen.is_empty() && self.cert.is_none() {
            return Err("tls.listen needs tls.cert and tls.key".into());
        }
        if self.require_for_operators && self.listen.is_empty() {
            return Err("tls.require_for_operators needs a tls.listen address".into());
        }
        if self.handshake_timeout == 0 {
            return Err("tls.handshake_timeout must be at least 1 second".into());
        }
        if self.max_connections == 0 {
            return Err("tls.max_connections must be at least 1".into());
        }
        Ok(())
    }

    /// Whether TLS is used at all (a listener, or outgoing connections).
    pub fn enabled(&self) -> bool {
        !self.listen.is_empty() || self.ca.is_some()
    }
}

/// The files, with paths already resolved against the config's folder.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub ca: Option<PathBuf>,
}

/// The settings in force: what new handshakes use.
struct Settings {
    server: Option<Arc<ServerConfig>>,
    client: Option<Arc<ClientConfig>>,
}

/// TLS settings shared by the listeners and the outgoing connections.
pub struct TlsContext {
    files: TlsFiles,
    current: RwLock<Settings>,
    handshake_timeout: Duration,
}

/// Which side of a handshake we are, for the metric's `direction`.
#[derive(Debug, Clone, Copy)]
enum Side {
    In,
    Out,
}

impl Side {
    fn label(self) -> &'static str {
        match self {
            Side::In => "in",
            Side::Out => "out",
        }
    }
}

impl TlsContext {
    /// Reads the files; an error here stops the gateway from starting.
    pub fn load(files: TlsFiles, handshake_timeout: Duration) -> anyhow::Result<TlsContext> {
        let settings = build(&files)?;
        Ok(TlsContext {
            files,
            current: RwLock::new(settings),
            handshake_timeout,
        })
    }

    /// Reads the files again and swaps the settings; on any error the old
    /// ones stay in force (logged and counted either way).
    pub fn reload(&self) -> anyhow::Result<()> {
        match build(&self.files) {
            Ok(s) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = s;
                metrics::counter!(m::SIP_TLS_RELOADS_TOTAL, "result" => "ok").increment(1);
                info!("TLS certificate and CA files reloaded");
                Ok(())
            }
            Err(e) => {
                metrics::counter!(m::SIP_TLS_RELOADS_TOTAL, "result" => "error").increment(1);
                warn!(error = %format!("{e:#}"), "TLS reload failed; the previous certificate stays in force");
                Err(e)
            }
        }
    }

    fn settings(&self) -> (Option<Arc<ServerConfig>>, Option<Arc<ClientConfig>>) {
        let s = self.current.read().unwrap_or_else(|p| p.into_inner());
        (s.server.clone(), s.client.clone())
    }

    /// Whether the gateway can open TLS connections (a CA file is set).
    pub fn can_connect(&self) -> bool {
        self.settings().1.is_some()
    }

    /// Server side of a handshake on an accepted connection.
    pub(super) async fn accept(
        &self,
        tcp: TcpStream,
        from: SocketAddr,
    ) -> Option<server::TlsStream<TcpStream>> {
        let config = self.settings().0?;
        let hs = TlsAcceptor::from(config).accept(tcp);
        self.finish(Side::In, from, hs).await
    }

    /// Client side: connects to `to` and verifies its certificate for
    /// `name` against the CA file.
    pub(super) async fn connect(
        &self,
        to: SocketAddr,
        name: ServerName<'static>,
    ) -> Option<client::TlsStream<TcpStream>> {
        let config = self.settings().1?;
        let tcp = match tokio::time::timeout(self.handshake_timeout, TcpStream::connect(to)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                warn!(error = %e, %to, "TLS peer unreachable");
                return None;
            }
            Err(_) => {
                warn!(%to, "TLS peer did not accept the connection in time");
                return None;
            }
        };
        let _ = tcp.set_nodelay(true);
        let hs = TlsConnector::from(config).connect(name, tcp);
        self.finish(Side::Out, to, hs).await
    }

    async fn finish<S>(
        &self,
        side: Side,
        peer: SocketAddr,
        hs: impl Future<Output = std::io::Result<S>>,
    ) -> Option<S> {
        let (result, stream) = match tokio::time::timeout(self.handshake_timeout, hs).await {
            Ok(Ok(s)) => ("ok", Some(s)),
            Ok(Err(e)) => {
                // Scanners and old clients fail here all day: debug for
                // theirs, a warning when our own connection fails.
                match side {
                    Side::In => debug!(error = %e, %peer, "TLS handshake failed"),
                    Side::Out => warn!(error = %e, %peer, "TLS handshake failed"),
                }
                ("failed", None)
            }
            Err(_) => {
                debug!(%peer, direction = side.label(), "TLS handshake timed out");
                ("timeout", None)
            }
        };
        metrics::counter!(m::SIP_TLS_HANDSHAKES_TOTAL, "direction" => side.label(), "result" => result)
            .increment(1);
        stream
    }
}

/// The name an outgoing connection verifies the peer's certificate for: the
/// URI's host, an IP address (checked against the certificate's IP SANs)
/// or a DNS name.
pub fn server_name(host: &str) -> Option<ServerName<'static>> {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).ok()
}

/// TLS versions offered and accepted: 1.3 and 1.2, nothing older.
const VERSIONS: &[&rustls::SupportedProtocolVersion] =
    &[&rustls::version::TLS13, &rustls::version::TLS12];

fn build(files: &TlsFiles) -> anyhow::Result<Settings> {
    // rustls 0.23.48 marks ring's provider deprecated for its lack of
    // post-quantum key exchange; see the module doc for why ring still.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let identity = match (&files.cert, &files.key) {
        (Some(cert), Some(key)) => {
            let chain = CertificateDer::pem_file_iter(cert)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .with_context(|| format!("reading the certificate chain {}", cert.display()))?;
            if chain.is_empty() {
                bail!("no certificate in {}", cert.display());
            }
            let key = PrivateKeyDer::from_pem_file(key)
                .with_context(|| format!("reading the private key {}", key.display()))?;
            Some((chain, key))
        }
        _ => None,
    };
    let server = match &identity {
        Some((chain, key)) => Some(Arc::new(
            ServerConfig::builder_with_provider(provider.clone())
                .with_protocol_versions(VERSIONS)?
                .with_no_client_auth()
                .with_single_cert(chain.clone(), key.clone_key())
                .context("the certificate and the key do not make a usable pair")?,
        )),
        None => None,
    };
    let client = match &files.ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            let certs = CertificateDer::pem_file_iter(ca)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .with_context(|| format!("reading the CA file {}", ca.display()))?;
            for c in certs {
                roots
                    .add(c)
                    .with_context(|| format!("a CA certificate in {}", ca.display()))?;
            }
            if roots.is_empty() {
                bail!("no CA certificate in {}", ca.display());
            }
            let builder = ClientConfig::builder_with_provider(provider)
                .with_protocol_versions(VERSIONS)?
                .with_root_certificates(roots);
            // A carrier may ask for a client certificate: ours, when we have one.
            let config = match identity {
                Some((chain, key)) => builder
                    .with_client_auth_cert(chain, key)
                    .context("the certificate and the key as a client identity")?,
                None => builder.with_no_client_auth(),
            };
            Some(Arc::new(config))
        }
        None => None,
    };
    Ok(Settings { server, client })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_needs_cert_and_key_and_operators_need_a_listener() {
        let mut c = TlsConfig {
            listen: vec!["127.0.0.1:5061".parse().unwrap()],
            ..TlsConfig::default()
        };
        assert!(c.validate().unwrap_err().contains("tls.cert"));
        c.cert = Some("c.pem".into());
        assert!(c.validate().unwrap_err().contains("together"));
        c.key = Some("k.pem".into());
        assert!(c.validate().is_ok());
        let c = TlsConfig {
            require_for_operators: true,
            ..TlsConfig::default()
        };
        assert!(c.validate().unwrap_err().contains("require_for_operators"));
        assert!(!TlsConfig::default().enabled());
        assert!(TlsConfig::default().validate().is_ok());
    }

    #[test]
    fn missing_files_are_an_error_not_a_panic() {
        let files = TlsFiles {
            cert: Some("/nonexistent/cert.pem".into()),
            key: Some("/nonexistent/key.pem".into()),
            ca: None,
        };
        let err = TlsContext::load(files, Duration::from_secs(1))
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("/nonexistent/cert.pem"));
    }

    #[test]
    fn server_names_from_uri_hosts() {
        assert!(matches!(
            server_name("127.0.0.1"),
            Some(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name("[::1]"),
            Some(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name("sip.example.com"),
            Some(ServerName::DnsName(_))
        ));
        assert!(server_name("bad host").is_none());
    }
}
