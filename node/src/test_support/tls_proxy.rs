//! A mutual-TLS reverse proxy in front of a member's API, as docs/API.md recommends for remote
//! access: it accepts only clients whose certificate the given CA signed, and forwards each
//! request (bodies streamed, so the alert stream too) to the API on loopback. The tests make
//! the certificates (with rcgen) and hand them over as PEM.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

/// The certificates the proxy presents and trusts, as PEM.
#[derive(Debug, Clone)]
pub struct ProxyCertificates {
    /// The proxy's certificate chain.
    pub server_chain: String,
    /// Its private key.
    pub server_key: String,
    /// The CA whose client certificates are accepted.
    pub client_ca: String,
}

/// A running proxy; it stops when dropped.
#[derive(Debug)]
pub struct TlsProxy {
    /// Where it listens (loopback).
    pub address: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts a proxy on a loopback port that forwards to `target`.
pub async fn start(target: SocketAddr, certificates: &ProxyCertificates) -> TlsProxy {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(certificates.client_ca.as_bytes()) {
        roots.add(cert.expect("the client CA is PEM")).expect("the client CA is a certificate");
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .expect("a client verifier");
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(certificates.server_chain.as_bytes())
            .collect::<Result<_, _>>()
            .expect("the server chain is PEM");
    let key = PrivateKeyDer::from_pem_slice(certificates.server_key.as_bytes())
        .expect("the server key is PEM");
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .expect("the server certificate and key");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binding the proxy");
    let address = listener.local_addr().expect("the proxy's address");
    let task = tokio::spawn(async move {
        let mut connections = tokio::task::JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((tcp, _)) = accepted else { continue };
                    connections.spawn(serve(acceptor.clone(), tcp, target));
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    });
    TlsProxy { address, task }
}

/// One client connection: the handshake (a refused client gets the TLS alert, read before the
/// socket closes), then each request forwarded on a connection of its own.
async fn serve(acceptor: TlsAcceptor, tcp: TcpStream, target: SocketAddr) {
    let tls = match acceptor.accept(tcp).into_fallible().await {
        Ok(tls) => tls,
        Err((_, tcp)) => {
            // Drain what the client sent, so closing does not reset the connection before the
            // client reads the alert.
            let drain = async {
                let mut buffer = [0u8; 4096];
                loop {
                    if tcp.readable().await.is_err() {
                        return;
                    }
                    match tcp.try_read(&mut buffer) {
                        Ok(0) => return,
                        Ok(_) => {}
                        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
                        Err(_) => return,
                    }
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
            return;
        }
    };
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        forward(request, target)
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(TokioIo::new(tls), service)
        .await;
}

/// Forwards one request to `target` and streams its answer back; an unreachable target
/// closes the client's connection without an answer.
async fn forward(
    request: hyper::Request<Incoming>,
    target: SocketAddr,
) -> Result<hyper::Response<Incoming>, Box<dyn std::error::Error + Send + Sync>> {
    let upstream = TcpStream::connect(target).await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(upstream)).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender.send_request(request).await?)
}
