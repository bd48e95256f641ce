//! The portal's story in a real browser: headless Chromium (Debian's `chromium`) driven by
//! `playwright-core`, against the real `nsw serve` binary on real PostgreSQL, with axe-core run
//! on every page of the story (`tests/browser/story.mjs`). Fees are paid through the real
//! `nsw paygate` process (its own database in the same cluster, its own key), which pins the
//! merchant certificate the window writes and whose certificate the window pins. Screenshots of
//! each page land in `target/browser/screenshots/`; the downloaded licence and e-receipt are
//! checked here with `openssl cms`.
//!
//! Needs Chromium, Node.js and `npm ci` in `tests/browser`: `./dev test` installs them.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::helpers::{empty_database, fresh_database, repo_root};

const PASSWORD: &str = "mật khẩu đủ dài 2026";

/// The window's commands on `database_url`, with its data (keys, the merchant certificate it
/// publishes) in `data_dir`.
fn nsw(database_url: &str, data_dir: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nsw"));
    c.env("NSW_DATABASE_URL", database_url)
        .env("NSW_DATA_DIR", data_dir)
        .env("NSW_LOG_FORMAT", "json");
    c
}

/// `nsw party add … --password-stdin`, as the README shows it; answers the party's token.
fn add_person(database_url: &str, data_dir: &Path, args: &[&str]) -> String {
    let mut child = nsw(database_url, data_dir)
        .args(["party", "add", "--password-stdin"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{PASSWORD}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "party add {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Waits for the line `… serving on <url> …` on a child's stderr; answers the URL (the rest
/// of its output is drained).
fn serving_address(child: &mut Child, what: &str) -> String {
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("{what} exited before serving"))
            .unwrap();
        if let Some(rest) = line.split("serving on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    address
}

/// `nsw serve`, collecting fees through the platform at `platform_url` whose certificate it
/// pins from `platform_certificate`; return and notification URLs are its own address.
fn serve(
    database_url: &str,
    data_dir: &Path,
    platform_url: &str,
    platform_certificate: &Path,
) -> (Process, String) {
    let mut child = nsw(database_url, data_dir)
        .arg("serve")
        .env("NSW_LISTEN", "127.0.0.1:0")
        .env("NSW_PAYMENTS__PLATFORM_URL", platform_url)
        .env("NSW_PAYMENTS__PLATFORM_CERTIFICATE", platform_certificate)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let address = serving_address(&mut child, "nsw serve");
    (Process(child), address)
}

/// `nsw paygate` on its own database, keeping its key and certificate in `data_dir`, with the
/// window as merchant `NSW-VN` whose certificate is read from `merchant_certificate` (written
/// by `nsw serve` when it starts: the platform reads it when first needed).
fn paygate(database_url: &str, data_dir: &Path, merchant_certificate: &Path) -> (Process, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_nsw"))
        .args(["paygate", "--listen", "127.0.0.1:0", "--database-url"])
        .arg(database_url)
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--merchant")
        .arg(format!("NSW-VN={}", merchant_certificate.display()))
        .env("NSW_LOG_FORMAT", "json")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let address = serving_address(&mut child, "nsw paygate");
    (Process(child), address)
}

/// A process this test started, stopped when dropped (also when the test fails on the way).
struct Process(Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn require_tool(ok: bool, what: &str) {
    assert!(
        ok,
        "{what} is missing: run the suite with ./dev test, which installs Chromium, Node.js and \
         the browser tests' npm packages"
    );
}

fn openssl_verifies(content: &Path, signature: &Path, ca: &Path) -> bool {
    Command::new("openssl")
        .args([
            "cms", "-verify", "-binary", "-inform", "DER", "-purpose", "any",
        ])
        .arg("-in")
        .arg(signature)
        .arg("-content")
        .arg(content)
        .arg("-CAfile")
        .arg(ca)
        .args(["-out", "/dev/null"])
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test]
async fn the_portal_story_in_chromium() {
    let root = repo_root();
    let browser_dir = root.join("tests/browser");
    require_tool(Path::new("/usr/bin/chromium").exists(), "Chromium");
    require_tool(
        browser_dir.join("node_modules/playwright-core").exists()
            && browser_dir.join("node_modules/axe-core").exists(),
        "tests/browser/node_modules",
    );

    let db = fresh_database().await;
    let dirs = tempfile::tempdir().unwrap();
    let window_dir = dirs.path().join("nsw-data");
    let gate_dir = dirs.path().join("paygate-data");
    let trader = add_person(
        &db,
        &window_dir,
        &[
            "--role",
            "enterprise",
            "--id",
            "1401234568",
            "--name",
            "Công ty Cổ phần Lương thực Đồng Tháp Mười",
            "--street",
            "Số 12 Quốc lộ 30, Phường 11",
            "--city",
            "Cao Lãnh, Đồng Tháp",
            "--post-code",
            "870000",
            "--country",
            "VN",
        ],
    );
    add_person(
        &db,
        &window_dir,
        &[
            "--role",
            "enterprise",
            "--id",
            "0301234567",
            "--name",
            "Công ty TNHH Sài Gòn Việt",
        ],
    );
    add_person(
        &db,
        &window_dir,
        &[
            "--role",
            "ministry",
            "--id",
            "MOIT-OFFICER-1",
            "--name",
            "Nguyễn Văn An",
            "--agency",
            "MOIT",
        ],
    );
    add_person(
        &db,
        &window_dir,
        &[
            "--role",
            "ministry",
            "--id",
            "PPD-OFFICER-1",
            "--name",
            "Phạm Thị Lúa",
            "--agency",
            "MARD-PPD",
        ],
    );
    add_person(
        &db,
        &window_dir,
        &[
            "--role",
            "customs",
            "--id",
            "CUSTOMS-DTP-1",
            "--name",
            "Trần Thị Bình",
        ],
    );

    add_person(
        &db,
        &window_dir,
        &[
            "--role",
            "admin",
            "--id",
            "OPERATOR-1",
            "--name",
            "Lê Văn Vận Hành",
        ],
    );

    // The platform first (the window pins the certificate it makes at start), then the window
    // (the platform reads the merchant certificate the window writes when it is first asked).
    let (gate, gate_address) = paygate(
        &empty_database().await,
        &gate_dir,
        &window_dir.join("payments").join("merchant.crt"),
    );
    let (server, address) = serve(
        &db,
        &window_dir,
        &gate_address,
        &gate_dir.join("paygate.crt"),
    );
    let out_dir: PathBuf = root.join("target/browser");
    let downloads = out_dir.join("downloads");
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&downloads).unwrap();
    let run = Command::new("node")
        .arg(browser_dir.join("story.mjs"))
        .current_dir(&browser_dir)
        .env("NSW_URL", &address)
        .env("NSW_PAYGATE_URL", &gate_address)
        .env("NSW_PASSWORD", PASSWORD)
        .env("NSW_FIXTURES", root.join("fixtures"))
        .env("NSW_OUT", &out_dir)
        .output();
    // The agency's certificates, as anyone holding the licence can fetch them.
    let fetch = |path: String| {
        let trader = trader.clone();
        let address = address.clone();
        async move {
            let r = reqwest::Client::new()
                .get(format!("{address}{path}"))
                .bearer_auth(&trader)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{path}");
            r.bytes().await.unwrap()
        }
    };
    let certs = fetch("/api/v1/agencies/MOIT/certificates".into()).await;
    // The e-receipts' certificate, as the API serves it.
    let receipt_cert = fetch("/api/v1/payments/receipt-certificate".into()).await;
    drop(server);
    drop(gate);
    std::fs::write(downloads.join("agency.pem"), &certs).unwrap();
    std::fs::write(downloads.join("receipt-api.pem"), &receipt_cert).unwrap();
    let run = run.expect("node runs (./dev test installs it)");
    let log = format!(
        "{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    println!("{log}");
    assert!(run.status.success(), "the browser story failed:\n{log}");

    // What the trader downloaded is the signed licence: openssl accepts the signature over the
    // document, chained to the agency's certificate the window publishes.
    let licence = downloads.join("licence.xml");
    let signature = downloads.join("licence.p7s");
    let ca = downloads.join("agency.pem");
    for f in [&licence, &signature, &ca] {
        assert!(f.exists(), "the story saved {}", f.display());
    }
    assert!(openssl_verifies(&licence, &signature, &ca));
    // And one altered byte is caught.
    let mut bytes = std::fs::read(&licence).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 1;
    let altered = downloads.join("licence-altered.xml");
    std::fs::write(&altered, bytes).unwrap();
    assert!(!openssl_verifies(&altered, &signature, &ca));

    // The e-receipt of the fee paid through the platform: signed by the window, verified with
    // the certificate the API serves (the same one the portal offered the trader).
    let receipt = downloads.join("receipt.xml");
    let receipt_signature = downloads.join("receipt.p7s");
    let receipt_ca = downloads.join("receipt-api.pem");
    for f in [&receipt, &receipt_signature] {
        assert!(f.exists(), "the story saved {}", f.display());
    }
    assert_eq!(
        std::fs::read(downloads.join("receipt-certificate.pem")).unwrap(),
        receipt_cert.to_vec(),
        "the portal's certificate link gives the API's certificate"
    );
    let text = std::fs::read_to_string(&receipt).unwrap();
    assert!(text.contains("urn:nsw:e-receipt:1"), "{text}");
    assert!(
        text.contains("<Amount currency=\"VND\">350000</Amount>"),
        "{text}"
    );
    assert!(openssl_verifies(&receipt, &receipt_signature, &receipt_ca));
    let mut bytes = std::fs::read(&receipt).unwrap();
    let i = bytes.len() / 2;
    bytes[i] ^= 1;
    let altered = downloads.join("receipt-altered.xml");
    std::fs::write(&altered, bytes).unwrap();
    assert!(!openssl_verifies(&altered, &receipt_signature, &receipt_ca));
}
