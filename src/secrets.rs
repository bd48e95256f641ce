//! Secrets at rest: the agencies' signing keys are stored in the database encrypted with a
//! key-encryption key (KEK) that lives outside it, in a file readable by its owner only
//! (`secrets.kek_file`, default `<keys directory>/agency-keys.kek`, made on first use). A copy of
//! the database alone (a dump, a stolen disk, a replica) discloses no agency key.
//!
//! Sealed form: `nswkek1:` followed by base64 of nonce (12 bytes) ‖ ciphertext ‖ GCM tag
//! (16 bytes), AES-256-GCM with the agency's code as associated data, so a sealed key moved to
//! another agency's row does not open.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine;
use openssl::symm::{decrypt_aead, encrypt_aead, Cipher};
use rand::RngCore;

use crate::config::Settings;

const PREFIX: &[u8] = b"nswkek1:";

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("key-encryption key {path}: {message}")]
    Kek { path: PathBuf, message: String },
    #[error("a sealed agency key does not open with this key-encryption key ({0})")]
    Open(String),
    #[error("openssl: {0}")]
    Openssl(#[from] openssl::error::ErrorStack),
}

/// The key-encryption key.
pub struct Kek([u8; 32]);

/// Where the KEK is: `secrets.kek_file`, or `agency-keys.kek` in the exchange keys directory
/// (which backups carry, encrypted, with the database).
pub fn kek_path(settings: &Settings) -> PathBuf {
    settings
        .secrets
        .kek_file
        .clone()
        .unwrap_or_else(|| settings.exchange_keys_dir().join("agency-keys.kek"))
}

impl Kek {
    /// Reads the KEK (64 hex digits), refusing a file others may read or write; makes one
    /// (mode 0600) when there is none yet.
    pub fn load_or_create(path: &Path) -> Result<Kek, SecretError> {
        let err = |message: String| SecretError::Kek {
            path: path.to_path_buf(),
            message,
        };
        match std::fs::metadata(path) {
            Ok(meta) => {
                let mode = meta.permissions().mode();
                if mode & 0o077 != 0 {
                    return Err(err(format!(
                        "accessible to others (mode {:o}); run chmod 600 on it",
                        mode & 0o777
                    )));
                }
                let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
                let bytes = hex::decode(text.trim()).map_err(|e| err(e.to_string()))?;
                let key: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| err("not 32 bytes in hex".into()))?;
                Ok(Kek(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|e| err(e.to_string()))?;
                }
                let mut key = [0u8; 32];
                rand::rngs::OsRng.fill_bytes(&mut key);
                // Written whole under a name of its own, then linked into place: a process
                // that finds the file finds it complete, and of two made at once one wins.
                let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::now_v7().simple()));
                let mut f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(|e| err(e.to_string()))?;
                f.write_all(hex::encode(key).as_bytes())
                    .and_then(|_| f.sync_all())
                    .map_err(|e| err(e.to_string()))?;
                let linked = std::fs::hard_link(&tmp, path);
                let _ = std::fs::remove_file(&tmp);
                match linked {
                    Ok(()) => Ok(Kek(key)),
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        Kek::load_or_create(path)
                    }
                    Err(e) => Err(err(e.to_string())),
                }
            }
            Err(e) => Err(err(e.to_string())),
        }
    }

    /// Seals `plain` (a private key PEM) for `agency`.
    pub fn seal(&self, agency: &str, plain: &[u8]) -> Result<Vec<u8>, SecretError> {
        let mut nonce = [0u8; 12];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let mut tag = [0u8; 16];
        let ct = encrypt_aead(
            Cipher::aes_256_gcm(),
            &self.0,
            Some(&nonce),
            agency.as_bytes(),
            plain,
            &mut tag,
        )?;
        let mut raw = Vec::with_capacity(12 + ct.len() + 16);
        raw.extend_from_slice(&nonce);
        raw.extend_from_slice(&ct);
        raw.extend_from_slice(&tag);
        let mut out = PREFIX.to_vec();
        out.extend_from_slice(
            base64::engine::general_purpose::STANDARD
                .encode(raw)
                .as_bytes(),
        );
        Ok(out)
    }

    /// Opens what `seal` made for `agency`. A key stored before keys were sealed (a PEM) is
    /// returned as it is.
    pub fn open(&self, agency: &str, stored: &[u8]) -> Result<Vec<u8>, SecretError> {
        let Some(b64) = stored.strip_prefix(PREFIX) else {
            return Ok(stored.to_vec());
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| SecretError::Open(e.to_string()))?;
        if raw.len() < 28 {
            return Err(SecretError::Open("too short".into()));
        }
        let (nonce, rest) = raw.split_at(12);
        let (ct, tag) = rest.split_at(rest.len() - 16);
        decrypt_aead(
            Cipher::aes_256_gcm(),
            &self.0,
            Some(nonce),
            agency.as_bytes(),
            ct,
            tag,
        )
        .map_err(|e| SecretError::Open(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_for_their_agency_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.kek");
        let kek = Kek::load_or_create(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let pem = b"-----BEGIN PRIVATE KEY-----\nabc\n-----END PRIVATE KEY-----\n";
        let sealed = kek.seal("MOIT", pem).unwrap();
        assert!(sealed.starts_with(PREFIX));
        assert!(!sealed.windows(7).any(|w| w == b"PRIVATE"));
        assert_eq!(kek.open("MOIT", &sealed).unwrap(), pem);
        assert!(kek.open("MARD", &sealed).is_err(), "bound to its agency");
        let again = Kek::load_or_create(&path).unwrap();
        assert_eq!(
            again.open("MOIT", &sealed).unwrap(),
            pem,
            "the same key read back"
        );
        let other = Kek::load_or_create(&dir.path().join("other.kek")).unwrap();
        assert!(other.open("MOIT", &sealed).is_err());
        // A legacy PEM reads as it is.
        assert_eq!(kek.open("MOIT", pem).unwrap(), pem);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = Kek::load_or_create(&path).err().unwrap().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }
}
