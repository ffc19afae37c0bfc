//! The service's TLS: a certificate and key given in `[serve]` or on the command line (PEM),
//! or a self-signed certificate the service makes once and keeps in its state folder
//! (`tls-cert.pem`, `tls-key.pem` owner-only). Its SHA-256 fingerprint is printed at start, so
//! a client can pin it.

use std::path::{Path, PathBuf};

use axum_server::tls_rustls::RustlsConfig;
use sha2::{Digest, Sha256};

use crate::error::ServiceError;

/// A certificate ready to serve, and its fingerprint.
pub struct Tls {
    pub config: RustlsConfig,
    /// `AB:CD:...`, SHA-256 of the first certificate (DER).
    pub fingerprint: String,
    pub cert_path: PathBuf,
    /// Made by the service (self-signed), rather than given.
    pub generated: bool,
}

/// Loads `cert`/`key`, or makes (once) a self-signed pair in `state` for `hosts`.
pub async fn load_or_generate(
    cert: Option<&Path>,
    key: Option<&Path>,
    state: &Path,
    hosts: &[String],
) -> Result<Tls, ServiceError> {
    let (cert_path, key_path, generated) = match (cert, key) {
        (Some(c), Some(k)) => (c.to_owned(), k.to_owned(), false),
        (None, None) => {
            let (c, k) = (state.join("tls-cert.pem"), state.join("tls-key.pem"));
            if !c.is_file() || !k.is_file() {
                generate(&c, &k, hosts)?;
            }
            (c, k, true)
        }
        _ => {
            return Err(ServiceError::Tls(
                "give both a certificate and its key (--tls-cert and --tls-key)".into(),
            ));
        }
    };
    let pem = std::fs::read(&cert_path).map_err(|e| ServiceError::File {
        path: cert_path.clone(),
        reason: e.to_string(),
    })?;
    let fingerprint = fingerprint_of(&pem).ok_or_else(|| {
        ServiceError::Tls(format!("{} holds no PEM certificate", cert_path.display()))
    })?;
    let config = RustlsConfig::from_pem_file(&cert_path, &key_path)
        .await
        .map_err(|e| {
            ServiceError::Tls(format!(
                "{} / {}: {e}",
                cert_path.display(),
                key_path.display()
            ))
        })?;
    Ok(Tls {
        config,
        fingerprint,
        cert_path,
        generated,
    })
}

/// A self-signed certificate for `hosts` (plus localhost), the key written owner-only.
fn generate(cert: &Path, key: &Path, hosts: &[String]) -> Result<(), ServiceError> {
    let mut names = vec![
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
        "::1".to_owned(),
    ];
    names.extend(hosts.iter().cloned());
    names.dedup();
    let certified = rcgen::generate_simple_self_signed(names)
        .map_err(|e| ServiceError::Tls(format!("making a self-signed certificate: {e}")))?;
    let write = |path: &Path, text: String| -> Result<(), ServiceError> {
        use std::io::Write;
        let fail = |e: std::io::Error| ServiceError::File {
            path: path.to_owned(),
            reason: e.to_string(),
        };
        if let Some(parent) = path.parent() {
            sstore_core::fsutil::create_private_dir_all(parent).map_err(fail)?;
        }
        let mut file = sstore_core::fsutil::create_private_file(path).map_err(fail)?;
        file.write_all(text.as_bytes()).map_err(fail)?;
        file.sync_all().map_err(fail)
    };
    write(key, certified.signing_key.serialize_pem())?;
    write(cert, certified.cert.pem())
}

/// SHA-256 of the first certificate in `pem`, as colon-separated hex.
fn fingerprint_of(pem: &[u8]) -> Option<String> {
    use rustls_pki_types::pem::PemObject;
    let der = rustls_pki_types::CertificateDer::from_pem_slice(pem).ok()?;
    let digest = Sha256::digest(der.as_ref());
    Some(
        digest
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":"),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_generated_certificate_is_kept_owner_only_and_fingerprinted() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        generate(&cert, &key, &["backup.example".into()]).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let fingerprint = fingerprint_of(&std::fs::read(&cert).unwrap()).unwrap();
        assert_eq!(fingerprint.split(':').count(), 32, "{fingerprint}");
    }
}
