//! Mutual TLS between windows: the partner endpoint on its own listener, requiring a client
//! certificate chained to one of the pinned partner CAs, and per-partner HTTPS clients that
//! present our TLS certificate and trust only that partner's CA.

use std::any::Any;
use std::time::Duration;

use actix_web::dev::Extensions;
use openssl::pkey::PKey;
use openssl::ssl::{SslAcceptor, SslAcceptorBuilder, SslMethod, SslVerifyMode};
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyFlags;
use openssl::x509::{X509StoreContextRef, X509};

use super::keys::{self, TlsFiles};
use super::partners::{Partner, Partners};
use super::trust;
use super::ExchangeError;
use crate::config::ExchangeSettings;

/// The country (`C=`) of the client certificate a partner connected with.
#[derive(Debug, Clone)]
pub struct PeerCountry(pub Option<String>);

fn ssl(e: openssl::error::ErrorStack) -> ExchangeError {
    ExchangeError::Crypto(e.to_string())
}

/// The acceptor for the partner listener: our TLS certificate; client certificates required
/// and verified against the partners' CAs only, under the rules of [`super::trust`]: the
/// client may send intermediates after its certificate, a pinned intermediate is an anchor
/// (partial chain), and a notBefore up to `clock_skew_secs` ahead of our clock is accepted.
/// The purpose is OpenSSL's `sslclient` (extended key usage clientAuth, if any).
pub fn acceptor(
    tls: &TlsFiles,
    partners: &Partners,
    policy: &trust::Policy,
) -> Result<SslAcceptorBuilder, ExchangeError> {
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls()).map_err(ssl)?;
    let cert = X509::from_pem(&tls.cert_pem).map_err(ssl)?;
    let key = PKey::private_key_from_pem(&tls.key_pem).map_err(ssl)?;
    b.set_certificate(&cert).map_err(ssl)?;
    b.set_private_key(&key).map_err(ssl)?;
    b.check_private_key().map_err(ssl)?;
    let mut store = X509StoreBuilder::new().map_err(ssl)?;
    for c in partners.countries() {
        if let Some(p) = partners.get(c) {
            store.add_cert(p.ca.clone()).map_err(ssl)?;
            b.add_client_ca(&p.ca).map_err(ssl)?;
        }
    }
    store
        .set_flags(X509VerifyFlags::PARTIAL_CHAIN)
        .map_err(ssl)?;
    b.set_verify_cert_store(store.build()).map_err(ssl)?;
    let policy = *policy;
    b.set_verify_callback(
        SslVerifyMode::PEER | SslVerifyMode::FAIL_IF_NO_PEER_CERT,
        move |ok, ctx| verify_client(ok, ctx, &policy),
    );
    Ok(b)
}

/// OpenSSL's verdict on one certificate of a client's chain, with the clock-skew tolerance
/// for notBefore; a refusal is logged with the code a signature would get.
fn verify_client(ok: bool, ctx: &mut X509StoreContextRef, policy: &trust::Policy) -> bool {
    if ok {
        return true;
    }
    let error = ctx.error();
    let subject = ctx.current_cert().map(keys::subject_line);
    if error.as_raw() == trust::X509_V_ERR_CERT_NOT_YET_VALID {
        match ctx.current_cert().map(|c| trust::check_time(c, policy)) {
            Some(Ok(())) => return true,
            Some(Err(e)) => {
                tracing::warn!(code = e.code(), reason = %e, "TLS client certificate refused");
                return false;
            }
            None => {}
        }
    }
    let code = match error.as_raw() {
        trust::X509_V_ERR_CERT_HAS_EXPIRED => "CERTIFICATE_EXPIRED",
        trust::X509_V_ERR_INVALID_PURPOSE => "CERTIFICATE_PURPOSE",
        _ => "CERTIFICATE_UNTRUSTED",
    };
    tracing::warn!(
        code,
        subject = subject.as_deref().unwrap_or("?"),
        depth = ctx.error_depth(),
        reason = error.error_string(),
        "TLS client certificate refused"
    );
    false
}

/// Records the client certificate's country for the handler, which compares it with the
/// envelope's sender.
pub fn on_connect(conn: &dyn Any, ext: &mut Extensions) {
    type Stream = actix_tls::accept::openssl::TlsStream<actix_web::rt::net::TcpStream>;
    if let Some(tls) = conn.downcast_ref::<Stream>() {
        let country = tls
            .ssl()
            .peer_certificate()
            .and_then(|c| keys::subject_country(&c));
        ext.insert(PeerCountry(country));
    }
}

/// The HTTP client for one partner: plain for a loopback `http://` endpoint; for `https://`,
/// our TLS identity and that partner's CA as the only trusted root.
pub fn client(
    partner: &Partner,
    tls: Option<&TlsFiles>,
    policy: &ExchangeSettings,
) -> Result<reqwest::Client, ExchangeError> {
    let mut b = reqwest::Client::builder()
        .timeout(Duration::from_millis(policy.request_timeout_ms))
        .connect_timeout(Duration::from_millis(policy.request_timeout_ms.min(5_000)));
    if partner.endpoint.starts_with("https://") {
        let tls = tls.ok_or_else(|| {
            ExchangeError::Config(format!(
                "partner {} is reached over HTTPS but this window has no {} / {}",
                partner.country,
                keys::TLS_CERT,
                keys::TLS_KEY
            ))
        })?;
        let bad = |e: reqwest::Error| {
            ExchangeError::Config(format!("TLS client for {}: {e}", partner.country))
        };
        let ca = partner.ca.to_pem().map_err(ssl)?;
        b = b
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(&ca).map_err(bad)?)
            .identity(reqwest::Identity::from_pkcs8_pem(&tls.cert_pem, &tls.key_pem).map_err(bad)?);
    }
    b.build()
        .map_err(|e| ExchangeError::Config(format!("HTTP client for {}: {e}", partner.country)))
}
