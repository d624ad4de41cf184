//! TLS to PostgreSQL, with rustls (the same ring-backed rustls reqwest uses, so no
//! OpenSSL): used only with `sslmode=require` in `[state.postgresql] url`, and then
//! the server's certificate is verified (its name or IP against the URL's host, its
//! chain against Mozilla's roots from `webpki-roots` plus the PEM certificates in
//! `ca_file`), which is what libpq calls `verify-full`. Without `sslmode=require`
//! (libpq's default `prefer` included) coid connects without TLS: keep such
//! connections on loopback, a private network or a tunnel.

use std::path::Path;
use std::sync::Arc;

use postgres::config::SslMode;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::store::StoreError;

/// The connector every connection uses (TLS only when the config requires it).
pub(super) type Tls = MakeRustlsConnect;

/// A connector trusting Mozilla's roots and the certificates in `ca_file`.
///
/// # Errors
/// `ca_file` cannot be read or holds no usable certificate.
pub(super) fn connector(ca_file: Option<&Path>) -> Result<Tls, StoreError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(file) = ca_file {
        let bad = |what: String| {
            StoreError::Unavailable(format!(
                "state.postgresql.ca_file {}: {what}",
                file.display()
            ))
        };
        let certs = CertificateDer::pem_file_iter(file).map_err(|e| bad(e.to_string()))?;
        let mut added = 0;
        for cert in certs {
            let cert = cert.map_err(|e| bad(e.to_string()))?;
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
            added += 1;
        }
        if added == 0 {
            return Err(bad("no PEM certificate in it".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| StoreError::Unavailable(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// TLS only when required: `prefer` (libpq's default) would try TLS with any server
/// that offers it and, coid verifying certificates, fail on one whose certificate it
/// cannot verify, where libpq would have connected.
pub(super) fn settle_ssl_mode(config: &mut postgres::Config) {
    if config.get_ssl_mode() != SslMode::Require {
        config.ssl_mode(SslMode::Disable);
    }
}
