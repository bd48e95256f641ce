//! Backups that restore: a backup taken while declarations are being submitted, restored into
//! an empty database, has every document's SHA-256 intact, an audit chain that verifies against
//! an anchor taken before the backup, and the key files with the key-encryption key that opens
//! them; only the recipient's key opens it.

use std::process::Command;

use nsw::domain::party::Role;

use crate::helpers::{empty_database, fixture, with_reference, TestApp};

const LAPTOPS: &str = "valid/declaration/01-import-laptops-10-items.xml";

/// `nsw` on `database_url`, its keys in `keys_dir` and its key-encryption key beside it,
/// outside that directory (`<keys_dir>.kek`).
fn nsw(database_url: &str, keys_dir: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nsw"));
    c.env("NSW_DATABASE_URL", database_url)
        .env("NSW_EXCHANGE__KEYS_DIR", keys_dir)
        .env("NSW_SECRETS__KEK_FILE", keys_dir.with_extension("kek"))
        .env("NSW_LOG_FORMAT", "json");
    c
}

/// The window's signing identity as `nsw` with these keys and KEK reads it.
fn identity(database_url: &str, keys_dir: &std::path::Path) -> nsw::exchange::keys::Identity {
    let mut s = crate::helpers::test_settings(database_url);
    s.exchange.keys_dir = Some(keys_dir.to_path_buf());
    s.secrets.kek_file = Some(keys_dir.with_extension("kek"));
    nsw::exchange::keys::load(&nsw::exchange::keys::KeyDir::of(&s), "VN").unwrap()
}

fn recipient(dir: &std::path::Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let key = dir.join(format!("{name}.key"));
    let cert = dir.join(format!("{name}.crt"));
    let ok = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .arg("-subj")
        .arg(format!("/CN=nsw backup {name}"))
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    (key, cert)
}

fn run(mut c: Command) -> (bool, String) {
    let out = c.output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn a_backup_taken_under_load_restores_whole_and_verified() {
    let app = TestApp::spawn().await;
    let tmp = tempfile::tempdir().unwrap();
    let keys = tmp.path().join("keys");
    // The window's exchange keys, sealed under a key-encryption key kept outside the keys
    // directory (`secrets.kek_file`).
    let (ok, log) = run({
        let mut c = nsw(&app.database_url, &keys);
        c.args(["keys", "init", "--country", "VN"]);
        c
    });
    assert!(ok, "keys init: {log}");
    let importer = app.add_party(Role::Enterprise, "0301234567").await;
    let xml = fixture(LAPTOPS);
    for i in 0..5 {
        let r = app
            .submit(&importer, with_reference(&xml, &format!("BK-{i}")))
            .await;
        assert_eq!(r.status, 201);
    }
    // The anchor an operator keeps, taken before the backup.
    let anchor = {
        let client = app.pool.get().await.unwrap();
        while nsw::store::audit::seal(&client, 1000).await.unwrap() > 0 {}
        match nsw::store::audit::verify(&client, None).await.unwrap() {
            nsw::store::audit::Verification::Intact {
                head: Some((pos, h)),
                ..
            } => format!("{pos}:{}", hex::encode(h)),
            other => panic!("{other:?}"),
        }
    };
    // Declarations keep coming while the backup runs.
    let load = {
        let (app_address, importer, xml) = (app.address.clone(), importer.clone(), xml.clone());
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut accepted = 0;
            for i in 0..40 {
                let r = client
                    .post(format!("{app_address}/api/v1/declarations"))
                    .bearer_auth(&importer)
                    .header("content-type", "application/xml")
                    .body(with_reference(&xml, &format!("BK-LOAD-{i}")))
                    .send()
                    .await
                    .unwrap();
                accepted += usize::from(r.status() == 201);
            }
            accepted
        })
    };
    // The backup starts once the load is under way.
    while app.count("declarations").await < 10 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (key, cert) = recipient(tmp.path(), "operator");
    let file = tmp.path().join("window.nswbak");
    let (ok, log) = run({
        let mut c = nsw(&app.database_url, &keys);
        c.arg("backup")
            .arg("--out")
            .arg(&file)
            .arg("--recipient")
            .arg(&cert);
        c
    });
    assert!(ok, "backup: {log}");
    assert_eq!(load.await.unwrap(), 40);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let bytes = std::fs::read(&file).unwrap();
    for clear in [&b"PGDMP"[..], &b"manifest.json"[..], &b"0301234567"[..]] {
        assert!(
            !bytes.windows(clear.len()).any(|w| w == clear),
            "the backup is encrypted: {} in clear",
            String::from_utf8_lossy(clear)
        );
    }

    // Someone else's key opens nothing.
    let (other_key, other_cert) = recipient(tmp.path(), "thief");
    let target = empty_database().await;
    let new_keys = tmp.path().join("restored-keys");
    let (ok, log) = run({
        let mut c = nsw(&target, &new_keys);
        c.arg("restore").arg("--from").arg(&file);
        c.arg("--key")
            .arg(&other_key)
            .arg("--cert")
            .arg(&other_cert);
        c
    });
    assert!(!ok, "a stranger's key must not decrypt: {log}");

    let (ok, log) = run({
        let mut c = nsw(&target, &new_keys);
        c.arg("restore").arg("--from").arg(&file);
        c.arg("--key").arg(&key).arg("--cert").arg(&cert);
        c
    });
    assert!(ok, "restore: {log}");
    assert!(log.contains("match their SHA-256"), "{log}");

    // The restored window: at least the documents before the backup, every digest recomputes,
    // the chain verifies against the anchor taken before the backup, the key file is back.
    let restored = nsw::db::pool(&target, 2).unwrap();
    let client = restored.get().await.unwrap();
    let (documents, bad): (i64, i64) = {
        let r = client
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE sha256(body) <> sha256) FROM documents",
                &[],
            )
            .await
            .unwrap();
        (r.get(0), r.get(1))
    };
    assert!(documents >= 10, "{documents}");
    assert_eq!(bad, 0);
    let orphans: i64 = client
        .query_one(
            "SELECT count(*) FROM declarations d WHERE NOT EXISTS
               (SELECT 1 FROM documents x WHERE x.id = d.document_id)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(orphans, 0, "each declaration restored with its document");
    let (ok, log) = run({
        let mut c = nsw(&target, &new_keys);
        c.args(["audit", "verify", "--anchor", &anchor]);
        c
    });
    assert!(ok, "audit verify --anchor {anchor}: {log}");
    assert_eq!(
        std::fs::read(new_keys.join("signing.key")).unwrap(),
        std::fs::read(keys.join("signing.key")).unwrap()
    );
    // The key-encryption key came back to where the restoring window keeps it, so the sealed
    // keys open there: the same signing key, and what it signs verifies.
    assert_eq!(
        std::fs::read(new_keys.with_extension("kek")).unwrap(),
        std::fs::read(keys.with_extension("kek")).unwrap()
    );
    let (before, after) = (
        identity(&app.database_url, &keys),
        identity(&target, &new_keys),
    );
    assert_eq!(
        after.key.private_key_to_der().unwrap(),
        before.key.private_key_to_der().unwrap()
    );
    let sig = nsw::exchange::signature::sign(&after, b"<m/>").unwrap();
    nsw::exchange::signature::verify(&sig, b"<m/>", &before.ca, "VN").unwrap();

    // Restoring over a database that is not empty is refused.
    let (ok, log) = run({
        let mut c = nsw(&target, &tmp.path().join("third-keys"));
        c.arg("restore").arg("--from").arg(&file);
        c.arg("--key").arg(&key).arg("--cert").arg(&cert);
        c
    });
    assert!(!ok && log.contains("not empty"), "{log}");
}

/// Agency signing keys are stored sealed with the key-encryption key, never in clear.
#[tokio::test]
async fn agency_keys_are_stored_sealed() {
    let app = TestApp::spawn().await;
    let tmp = tempfile::tempdir().unwrap();
    let mut settings = crate::helpers::test_settings(&app.database_url);
    settings.secrets.kek_file = Some(tmp.path().join("agency-keys.kek"));
    let client = app.pool.get().await.unwrap();
    let key = nsw::licensing::signing::agency_key(&client, "MOIT", &settings)
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&key.private_key_pem).contains("PRIVATE KEY"));
    let stored: Vec<u8> = client
        .query_one(
            "SELECT private_key_pem FROM agency_keys WHERE agency = 'MOIT'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(stored.starts_with(b"nswkek1:"));
    assert!(!String::from_utf8_lossy(&stored).contains("PRIVATE KEY"));
    // The same key comes back from the database, and signs.
    let again = nsw::licensing::signing::agency_key(&client, "MOIT", &settings)
        .await
        .unwrap();
    assert_eq!(again.private_key_pem, key.private_key_pem);
    // Without its key-encryption key the stored key opens to nothing.
    settings.secrets.kek_file = Some(tmp.path().join("another.kek"));
    assert!(
        nsw::licensing::signing::agency_key(&client, "MOIT", &settings)
            .await
            .is_err()
    );
}
