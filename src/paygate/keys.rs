//! The platform's signing key: `<data_dir>/paygate.key` (PKCS#8 PEM, mode 0600) and
//! `<data_dir>/paygate.crt` (its self-signed certificate, public), made on first start.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use super::PaygateError;
use crate::payments::protocol::{generate, Signer};

pub const KEY_FILE: &str = "paygate.key";
pub const CERT_FILE: &str = "paygate.crt";

/// Reads the key and certificate, making both when there is no key yet. Refuses a key file
/// that group or others may read or write, and a key without its certificate.
/// Answers the signer and the certificate PEM.
pub fn load_or_create(dir: &Path) -> Result<(Signer, Vec<u8>), PaygateError> {
    let key_path = dir.join(KEY_FILE);
    let cert_path = dir.join(CERT_FILE);
    let err = |path: &Path, message: String| PaygateError::Key {
        path: path.display().to_string(),
        message,
    };
    std::fs::create_dir_all(dir).map_err(|e| err(dir, e.to_string()))?;
    match std::fs::metadata(&key_path) {
        Ok(meta) => {
            let mode = meta.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(err(
                    &key_path,
                    format!(
                        "accessible to others (mode {:o}); run chmod 600 on it",
                        mode & 0o777
                    ),
                ));
            }
            let key = std::fs::read(&key_path).map_err(|e| err(&key_path, e.to_string()))?;
            // A process making the pair links the key first, then renames the certificate
            // into place: give it a moment.
            let mut tries = 0;
            let cert = loop {
                match std::fs::read(&cert_path) {
                    Ok(c) => break c,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound && tries < 20 => {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(50));
                    }
                    Err(e) => {
                        return Err(err(
                            &cert_path,
                            format!("{e} (the key exists without its certificate)"),
                        ))
                    }
                }
            };
            let signer =
                Signer::from_pem(&key, &cert).map_err(|e| err(&key_path, e.to_string()))?;
            Ok((signer, cert))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let (key, cert) =
                generate("payment platform", "VN").map_err(|e| err(&key_path, e.to_string()))?;
            // The key is linked into place (of two processes, one wins), then its certificate.
            match place(&key_path, &key, 0o600, true) {
                Ok(()) => {
                    place(&cert_path, &cert, 0o644, false)
                        .map_err(|e| err(&cert_path, e.to_string()))?;
                    let signer =
                        Signer::from_pem(&key, &cert).map_err(|e| err(&key_path, e.to_string()))?;
                    Ok((signer, cert))
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => load_or_create(dir),
                Err(e) => Err(err(&key_path, e.to_string())),
            }
        }
        Err(e) => Err(err(&key_path, e.to_string())),
    }
}

/// Writes `bytes` whole under a temporary name, then puts it in place: linked (`exclusive`:
/// `AlreadyExists` when the file is there) or renamed over. A reader never sees half a file.
fn place(path: &Path, bytes: &[u8], mode: u32, exclusive: bool) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::now_v7().simple()));
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)?;
    let written = f.write_all(bytes).and_then(|_| f.sync_all());
    let placed = written.and_then(|_| {
        if exclusive {
            std::fs::hard_link(&tmp, path)
        } else {
            std::fs::rename(&tmp, path)
        }
    });
    let _ = std::fs::remove_file(&tmp);
    placed
}
