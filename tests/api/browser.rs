//! The portal's story in a real browser: headless Chromium (Debian's `chromium`) driven by
//! `playwright-core`, against the real `nsw serve` binary on real PostgreSQL, with axe-core run
//! on every page of the story (`tests/browser/story.mjs`). Screenshots of each page land in
//! `target/browser/screenshots/`; the downloaded licence is checked here with `openssl cms`.
//!
//! Needs Chromium, Node.js and `npm ci` in `tests/browser`: `./dev test` installs them.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::helpers::{fresh_database, repo_root};

const PASSWORD: &str = "mật khẩu đủ dài 2026";

fn nsw(database_url: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_nsw"));
    c.env("NSW_DATABASE_URL", database_url)
        .env("NSW_LOG_FORMAT", "json");
    c
}

/// `nsw party add … --password-stdin`, as the README shows it; answers the party's token.
fn add_person(database_url: &str, args: &[&str]) -> String {
    let mut child = nsw(database_url)
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

fn serve(database_url: &str) -> (Child, String) {
    let mut child = nsw(database_url)
        .arg("serve")
        .env("NSW_LISTEN", "127.0.0.1:0")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let address = loop {
        let line = lines.next().expect("server exited before serving").unwrap();
        if let Some(rest) = line.split("serving on ").nth(1) {
            break rest.split_whitespace().next().unwrap().to_owned();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    (child, address)
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
    let trader = add_person(
        &db,
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
        &[
            "--role",
            "admin",
            "--id",
            "OPERATOR-1",
            "--name",
            "Lê Văn Vận Hành",
        ],
    );

    let (mut server, address) = serve(&db);
    let out_dir: PathBuf = root.join("target/browser");
    let downloads = out_dir.join("downloads");
    let _ = std::fs::remove_dir_all(&out_dir);
    std::fs::create_dir_all(&downloads).unwrap();
    let run = Command::new("node")
        .arg(browser_dir.join("story.mjs"))
        .current_dir(&browser_dir)
        .env("NSW_URL", &address)
        .env("NSW_PASSWORD", PASSWORD)
        .env("NSW_FIXTURES", root.join("fixtures"))
        .env("NSW_OUT", &out_dir)
        .output();
    // The agency's certificates, as anyone holding the licence can fetch them.
    let certs = reqwest::Client::new()
        .get(format!("{address}/api/v1/agencies/MOIT/certificates"))
        .bearer_auth(&trader)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let _ = server.kill();
    let _ = server.wait();
    std::fs::write(downloads.join("agency.pem"), &certs).unwrap();
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
}
