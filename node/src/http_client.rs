//! A small HTTP/1.1 client, for the analyst's command line (to a node's API) and for the
//! webhook (to a receiver). One connection per request, no pool, no redirects.
//!
//! A bearer token or a signed alert must never cross a network in the clear, so plain `http://`
//! is spoken only to a loopback address (`127.0.0.0/8`, `[::1]` or `localhost`, and only when
//! every address the host resolves to is loopback); anything else needs `https://`. TLS is
//! rustls on the ring provider, with the system's roots or a given CA file, and optionally a
//! client certificate for a mutual-TLS reverse proxy. Hosts are resolved by a [`Resolver`]:
//! the system's, unless a test gives its own ([`Client::with_resolver`]).

pub mod sse;

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, Uri};
use hyper_util::rt::TokioIo;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Files for TLS: a CA bundle to trust instead of the system's roots, and a client certificate
/// with its key (PEM; the key file must be readable by its owner alone).
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    /// PEM certificates to trust; the system's roots when absent.
    pub ca_file: Option<PathBuf>,
    /// PEM certificate chain presented to the server.
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`, mode 0600 or stricter.
    pub client_key: Option<PathBuf>,
}

/// Why a request could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Plain HTTP to an address that is not loopback.
    #[error(
        "refusing plain http:// to a non-loopback address; use https:// (for example through \
         the mutual-TLS reverse proxy) so nothing crosses a network in the clear"
    )]
    PlainHttp,
    /// The URL is not `http(s)://host[:port][/path]`.
    #[error("bad URL: {0}")]
    BadUrl(String),
    /// TLS set-up or handshake failed.
    #[error("tls: {0}")]
    Tls(String),
    /// The TCP connection failed.
    #[error("connecting: {0}")]
    Connect(io::Error),
    /// No answer within the time allowed.
    #[error("no answer in time")]
    Timeout,
    /// The HTTP exchange failed.
    #[error("http: {0}")]
    Http(#[from] hyper::Error),
    /// A certificate or key file could not be used.
    #[error("{0}")]
    Files(String),
}

/// What a [`Resolver`] answers: the addresses a host and port resolve to.
pub type Resolution = Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + Send>>;

/// Resolves a host (brackets removed) and port to the addresses a client may connect to.
pub type Resolver = Arc<dyn Fn(&str, u16) -> Resolution + Send + Sync>;

/// The system's resolver (`getaddrinfo`, off the async workers): what every client uses unless
/// given another.
pub fn system_resolver() -> Resolver {
    Arc::new(|host: &str, port: u16| {
        let host = host.to_owned();
        Box::pin(async move { Ok(tokio::net::lookup_host((host.as_str(), port)).await?.collect()) })
    })
}

/// How a connection is made.
#[derive(Clone)]
enum Transport {
    Plain,
    Tls { connector: TlsConnector, server_name: ServerName<'static> },
}

/// A client for one base URL.
#[derive(Clone)]
pub struct Client {
    transport: Transport,
    /// Host as dialed (no brackets) and port.
    host: String,
    port: u16,
    /// `host[:port]` for the `Host` header.
    authority: String,
    /// The base URL's path without its trailing `/` (often empty).
    base_path: String,
    /// The base URL's path exactly as given (`/` when it has none).
    exact_path: String,
    /// `scheme://host[:port]`, for logs: never a path or query.
    origin: String,
    /// Resolves `host` before each connection.
    resolver: Resolver,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client").field("origin", &self.origin).finish_non_exhaustive()
    }
}

/// Whether `host` (brackets already removed) is a loopback address or `localhost`.
pub fn is_loopback_host(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Checks a URL without building a client: `https://` anywhere, `http://` to loopback only.
pub fn check_url(base_url: &str) -> Result<(), ClientError> {
    parse_url(base_url).map(|_| ())
}

/// The parts of a base URL: https or not, host, port, authority, path.
struct UrlParts {
    https: bool,
    host: String,
    port: u16,
    authority: String,
    base_path: String,
    exact_path: String,
}

fn parse_url(base_url: &str) -> Result<UrlParts, ClientError> {
    let uri: Uri = base_url.parse().map_err(|_| ClientError::BadUrl("not a URL".into()))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(ClientError::BadUrl("the scheme must be http or https".into())),
    };
    let authority = uri.authority().ok_or_else(|| ClientError::BadUrl("no host".into()))?;
    if authority.as_str().contains('@') {
        return Err(ClientError::BadUrl("credentials in the URL are not accepted".into()));
    }
    if uri.query().is_some() {
        return Err(ClientError::BadUrl("the base URL takes no query".into()));
    }
    let host = authority.host().trim_start_matches('[').trim_end_matches(']').to_owned();
    if host.is_empty() {
        return Err(ClientError::BadUrl("no host".into()));
    }
    if !https && !is_loopback_host(&host) {
        return Err(ClientError::PlainHttp);
    }
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    Ok(UrlParts {
        https,
        host,
        port,
        authority: authority.as_str().to_owned(),
        base_path: uri.path().trim_end_matches('/').to_owned(),
        exact_path: if uri.path().is_empty() { "/".to_owned() } else { uri.path().to_owned() },
    })
}

impl Client {
    /// A client for `base_url`: `http://` only to a loopback address, `https://` anywhere.
    /// A client certificate and key go together, and only with `https://`.
    pub fn new(base_url: &str, tls: &TlsFiles) -> Result<Self, ClientError> {
        let parts = parse_url(base_url)?;
        let scheme = if parts.https { "https" } else { "http" };
        let origin = format!("{scheme}://{}", parts.authority);
        let transport = if parts.https {
            let server_name = ServerName::try_from(parts.host.clone())
                .map_err(|_| ClientError::BadUrl("the host is not a valid server name".into()))?;
            Transport::Tls { connector: tls_connector(tls)?, server_name }
        } else {
            if tls.client_cert.is_some() || tls.client_key.is_some() {
                return Err(ClientError::Files(
                    "a client certificate is only sent over https://".into(),
                ));
            }
            Transport::Plain
        };
        Ok(Self {
            transport,
            host: parts.host,
            port: parts.port,
            authority: parts.authority,
            base_path: parts.base_path,
            exact_path: parts.exact_path,
            origin,
            resolver: system_resolver(),
        })
    }

    /// The same client, resolving its host with `resolver` instead of the system's (tests give
    /// a fixed answer, to see what a name resolving elsewhere is refused).
    #[must_use]
    pub fn with_resolver(mut self, resolver: Resolver) -> Self {
        self.resolver = resolver;
        self
    }

    /// `scheme://host[:port]`, for logs and messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// A request builder for `path_and_query` (starting with `/`) under the base URL, with its
    /// `Host` header set.
    pub fn request(&self, method: Method, path_and_query: &str) -> hyper::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(format!("{}{path_and_query}", self.base_path))
            .header(hyper::header::HOST, &self.authority)
    }

    /// A request builder for the base URL itself, its path exactly as configured (a trailing
    /// `/` kept; `/` when it has none), with its `Host` header set: the webhook posts here.
    pub fn request_to_base(&self, method: Method) -> hyper::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(self.exact_path.as_str())
            .header(hyper::header::HOST, &self.authority)
    }

    /// Sends one request on a new connection. `timeout` bounds connecting, the TLS handshake
    /// and the wait for the answer's head; the body is read by the caller, at its own pace.
    /// The body may be streamed (an import's file): it is sent as the connection takes it.
    pub async fn send<B: RequestBody>(
        &self,
        request: Request<B>,
        timeout: Duration,
    ) -> Result<Response<Incoming>, ClientError> {
        tokio::time::timeout(timeout, self.send_unbounded(request))
            .await
            .map_err(|_| ClientError::Timeout)?
    }

    async fn send_unbounded<B: RequestBody>(
        &self,
        request: Request<B>,
    ) -> Result<Response<Incoming>, ClientError> {
        let resolved =
            (self.resolver)(&self.host, self.port).await.map_err(ClientError::Connect)?;
        let addresses = match &self.transport {
            // `localhost` is trusted by name: what it resolves to is checked before connecting,
            // so a hosts file mapping it elsewhere cannot carry a token in the clear.
            Transport::Plain => loopback_only(resolved)?,
            Transport::Tls { .. } => resolved,
        };
        let tcp = TcpStream::connect(&addresses[..]).await.map_err(ClientError::Connect)?;
        let _ = tcp.set_nodelay(true);
        match &self.transport {
            Transport::Plain => exchange(TokioIo::new(tcp), request).await,
            Transport::Tls { connector, server_name } => {
                let stream = connector
                    .connect(server_name.clone(), tcp)
                    .await
                    .map_err(|error| ClientError::Tls(error.to_string()))?;
                exchange(TokioIo::new(stream), request).await
            }
        }
    }
}

/// A request body the client can send: whole (`Full<Bytes>`) or streamed.
pub trait RequestBody:
    hyper::body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
    + Send
    + 'static
{
}

impl<B> RequestBody for B where
    B: hyper::body::Body<Data = Bytes, Error: Into<Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + 'static
{
}

/// The addresses a plain `http://` host resolved to, if every one is loopback: any other is
/// refused as [`ClientError::PlainHttp`], as is resolving to nothing.
fn loopback_only(addresses: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, ClientError> {
    if addresses.is_empty() || addresses.iter().any(|address| !address.ip().is_loopback()) {
        return Err(ClientError::PlainHttp);
    }
    Ok(addresses)
}

/// One HTTP/1.1 exchange on `io`; the connection's driver runs until the body is read or
/// dropped.
async fn exchange<I, B: RequestBody>(
    io: I,
    request: Request<B>,
) -> Result<Response<Incoming>, ClientError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io).await?;
    let (failed, failure) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        // The connection ends when the answer is read, dropped, or the peer closes it.
        if let Err(error) = connection.await {
            let _ = failed.send(error);
        }
    });
    match sender.send_request(request).await {
        Ok(response) => Ok(response),
        // The request was cancelled because the connection failed: say why it failed (a TLS
        // alert, such as a client certificate refused, arrives only on the first read).
        Err(error) if error.is_canceled() => Err(failure.await.unwrap_or(error).into()),
        Err(error) => Err(error.into()),
    }
}

/// The TLS configuration: roots from `ca_file` or the system, and the client certificate.
fn tls_connector(tls: &TlsFiles) -> Result<TlsConnector, ClientError> {
    let mut roots = RootCertStore::empty();
    match &tls.ca_file {
        Some(path) => {
            for cert in read_certificates(path)? {
                roots
                    .add(cert)
                    .map_err(|error| ClientError::Files(format!("{}: {error}", path.display())))?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for cert in native.certs {
                // A system root rustls cannot parse is skipped, as browsers do.
                let _ = roots.add(cert);
            }
        }
    }
    if roots.is_empty() {
        return Err(ClientError::Tls(
            "no trusted root certificates (give a CA file, or install the system's)".into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| ClientError::Tls(error.to_string()))?
        .with_root_certificates(roots);
    let mut config = match (&tls.client_cert, &tls.client_key) {
        (Some(cert), Some(key)) => builder
            .with_client_auth_cert(read_certificates(cert)?, read_private_key(key)?)
            .map_err(|error| ClientError::Files(format!("the client certificate: {error}")))?,
        (None, None) => builder.with_no_client_auth(),
        _ => {
            return Err(ClientError::Files("a client certificate and its key go together".into()));
        }
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

/// Every certificate in a PEM file; at least one.
fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let bad = |error: &dyn std::fmt::Display| {
        ClientError::Files(format!("reading certificates from {}: {error}", path.display()))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|error| bad(&error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| bad(&error))?;
    if certs.is_empty() {
        return Err(bad(&"no certificate in the file"));
    }
    Ok(certs)
}

/// A PEM private key from a file readable by its owner alone.
fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, ClientError> {
    let text = crate::keyfile::read_private_text(path)
        .map_err(|error| ClientError::Files(format!("{}: {error}", path.display())))?;
    PrivateKeyDer::from_pem_slice(text.as_bytes()).map_err(|_| {
        ClientError::Files(format!("{}: no PEM private key in the file", path.display()))
    })
}

#[cfg(test)]
mod tests {
    use http_body_util::Full;

    use super::*;

    #[test]
    fn plain_http_goes_to_loopback_only() {
        for ok in [
            "http://127.0.0.1:7480",
            "http://[::1]:7480/",
            "http://localhost:1",
            "http://127.9.9.9",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for refused in ["http://192.0.2.1:7480", "http://example.org", "http://[2001:db8::1]:1"] {
            assert!(matches!(check_url(refused), Err(ClientError::PlainHttp)), "{refused}");
        }
        assert!(check_url("https://192.0.2.1:7480").is_ok());
    }

    #[test]
    fn plain_http_connects_only_to_what_resolves_to_loopback() {
        let at = |ip: &str| SocketAddr::new(ip.parse().unwrap(), 80);
        assert!(loopback_only(vec![at("127.0.0.1"), at("::1")]).is_ok());
        for refused in [vec![at("127.0.0.1"), at("192.0.2.1")], vec![at("2001:db8::1")], vec![]] {
            assert!(
                matches!(loopback_only(refused.clone()), Err(ClientError::PlainHttp)),
                "{refused:?}"
            );
        }
    }

    #[tokio::test]
    async fn plain_http_to_localhost_connects_to_the_loopback_address_it_resolves_to() {
        // `localhost` passes the check by name; here it resolves to loopback, and a request
        // to a port nothing listens on fails connecting, not as plain http.
        let client = Client::new("http://localhost:9", &TlsFiles::default()).unwrap();
        let request = client.request(Method::GET, "/").body(Full::<Bytes>::default()).unwrap();
        let sent = client.send(request, Duration::from_secs(5)).await;
        assert!(matches!(sent, Err(ClientError::Connect(_))), "{sent:?}");
    }

    /// A resolver answering `addresses` for any host, and the hosts it was asked for.
    fn fixed_resolver(
        addresses: Vec<SocketAddr>,
    ) -> (Resolver, Arc<std::sync::Mutex<Vec<String>>>) {
        let asked = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = asked.clone();
        let resolver: Resolver = Arc::new(move |host: &str, port: u16| {
            seen.lock().unwrap().push(format!("{host}:{port}"));
            let addresses = addresses.clone();
            Box::pin(async move { Ok(addresses) })
        });
        (resolver, asked)
    }

    #[tokio::test]
    async fn a_client_refuses_plain_http_to_a_name_resolving_elsewhere_and_never_connects() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let loopback = listener.local_addr().unwrap();
        let elsewhere = SocketAddr::new("192.0.2.1".parse().unwrap(), loopback.port());
        let url = format!("http://localhost:{}", loopback.port());
        for addresses in [vec![elsewhere], vec![loopback, elsewhere], vec![]] {
            let (resolver, asked) = fixed_resolver(addresses.clone());
            let client = Client::new(&url, &TlsFiles::default()).unwrap().with_resolver(resolver);
            let request = client.request(Method::GET, "/").body(Full::<Bytes>::default()).unwrap();
            let sent = client.send(request, Duration::from_secs(5)).await;
            assert!(matches!(sent, Err(ClientError::PlainHttp)), "{addresses:?}: {sent:?}");
            assert_eq!(*asked.lock().unwrap(), [format!("localhost:{}", loopback.port())]);
        }
        // Not even the loopback address among them was connected to.
        let accepted = tokio::time::timeout(Duration::from_millis(300), listener.accept()).await;
        assert!(accepted.is_err(), "a refused client connected");
    }

    #[tokio::test]
    async fn a_client_connects_to_the_loopback_address_a_name_resolves_to() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let loopback = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut head = Vec::new();
            let mut buffer = [0_u8; 1024];
            while !head.ends_with(b"\r\n\r\n") {
                let read = socket.read(&mut buffer).await.unwrap();
                assert!(read > 0, "the request ended early");
                head.extend_from_slice(&buffer[..read]);
            }
            socket.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await.unwrap();
            String::from_utf8(head).unwrap()
        });
        // Port 9 (nothing listens there) resolves to the listener: only the resolver given
        // leads there.
        let (resolver, asked) = fixed_resolver(vec![loopback]);
        let url = "http://localhost:9";
        let client = Client::new(url, &TlsFiles::default()).unwrap().with_resolver(resolver);
        let request = client.request(Method::GET, "/probe").body(Full::<Bytes>::default()).unwrap();
        let response = client.send(request, Duration::from_secs(5)).await.unwrap();
        assert_eq!(response.status(), 204);
        let head = tokio::time::timeout(Duration::from_secs(5), server).await.unwrap().unwrap();
        assert!(head.starts_with("GET /probe HTTP/1.1\r\n"), "{head}");
        assert_eq!(*asked.lock().unwrap(), ["localhost:9"]);
    }

    #[test]
    fn malformed_urls_are_refused() {
        for bad in
            ["", "ftp://127.0.0.1", "127.0.0.1:7480", "https://user:pw@host", "https://h/?q=1"]
        {
            assert!(matches!(check_url(bad), Err(ClientError::BadUrl(_))), "{bad:?}");
        }
    }

    #[test]
    fn requests_carry_the_base_path_and_host() {
        let client = Client::new("http://127.0.0.1:9/api/", &TlsFiles::default()).unwrap();
        let request =
            client.request(Method::GET, "/v1/status").body(Full::<Bytes>::default()).unwrap();
        assert_eq!(request.uri(), "/api/v1/status");
        assert_eq!(request.headers()[hyper::header::HOST], "127.0.0.1:9");
        assert_eq!(client.origin(), "http://127.0.0.1:9");
    }

    #[test]
    fn the_base_url_itself_is_requested_at_its_exact_path() {
        let exact = |url: &str| {
            let client = Client::new(url, &TlsFiles::default()).unwrap();
            let request = client.request_to_base(Method::POST).body(Full::<Bytes>::default());
            request.unwrap().uri().to_string()
        };
        assert_eq!(exact("http://127.0.0.1:9/hook/"), "/hook/");
        assert_eq!(exact("http://127.0.0.1:9/hook"), "/hook");
        assert_eq!(exact("http://127.0.0.1:9/"), "/");
        assert_eq!(exact("http://127.0.0.1:9"), "/");
    }

    #[test]
    fn a_client_certificate_needs_https_and_its_key() {
        let cert = TlsFiles { client_cert: Some("c.pem".into()), ..TlsFiles::default() };
        assert!(matches!(Client::new("http://127.0.0.1:1", &cert), Err(ClientError::Files(_))));
    }
}
