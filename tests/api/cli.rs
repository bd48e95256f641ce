//! `nsw validate` offline: exit codes, JSON, and the same verdict as xmllint on every fixture.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::helpers::repo_root;

fn nsw() -> Command {
    Command::new(env!("CARGO_BIN_EXE_nsw"))
}

fn all_fixture_files() -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|x| x == "xml") {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&repo_root().join("fixtures"), &mut out);
    out.sort();
    out
}

/// `nsw validate --json` over `files`: one report per file, in order.
fn validate_json(files: &[PathBuf]) -> Vec<serde_json::Value> {
    let out = nsw()
        .args(["validate", "--json"])
        .args(files)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The schema a fixture is meant for: its directory names the document kind.
fn schema_for(file: &Path) -> PathBuf {
    let kind = file
        .parent()
        .and_then(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|k| k != "hostile")
        .unwrap_or_else(|| "declaration".into());
    repo_root().join(format!("schemas/{kind}/1/{kind}.xsd"))
}

#[test]
fn exit_codes_follow_the_worst_file() {
    let f = repo_root().join("fixtures");
    let valid = f.join("valid/declaration/01-import-laptops-10-items.xml");
    let invalid = f.join("invalid/declaration/hs-unknown-6-digit.xml");
    let unusable = f.join("hostile/truncated.xml");
    let status = |files: &[&Path]| {
        nsw()
            .arg("validate")
            .args(files)
            .output()
            .unwrap()
            .status
            .code()
    };
    assert_eq!(status(&[&valid]), Some(0));
    assert_eq!(status(&[&valid, &invalid]), Some(1));
    assert_eq!(status(&[&valid, &invalid, &unusable]), Some(2));
    assert_eq!(status(&[Path::new("/nonexistent/file.xml")]), Some(2));

    let out = nsw()
        .args(["validate", "--json"])
        .arg(&invalid)
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report[0]["valid"], false);
    assert_eq!(report[0]["stage"], "rules");
    assert_eq!(report[0]["errors"][0]["code"], "HS_UNKNOWN");
    assert_eq!(
        report[0]["errors"][0]["path"],
        "/Declaration/Item[3]/HSCode"
    );

    let human = nsw().arg("validate").arg(&invalid).output().unwrap();
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains("HS_UNKNOWN") && text.contains("/Declaration/Item[3]/HSCode"),
        "{text}"
    );
}

#[test]
fn nsw_validate_and_xmllint_agree_on_every_fixture() {
    let xmllint = Command::new("xmllint").arg("--version").output();
    assert!(
        xmllint.is_ok(),
        "xmllint is required (Debian package libxml2-utils; `./dev test` installs it)"
    );
    let files = all_fixture_files();
    assert!(
        files.len() > 60,
        "expected the whole fixture set, found {}",
        files.len()
    );
    let reports = validate_json(&files);
    assert_eq!(reports.len(), files.len());
    let mut disagreements = Vec::new();
    for (file, report) in files.iter().zip(&reports) {
        let code = report["code"].as_str().unwrap_or("");
        // Deliberately stricter than XML 1.0: no DTDs at all, and UTF-8 only (a document that
        // declares another encoding is refused). xmllint accepts such documents, so only our
        // refusal is checked; bytes that are not valid UTF-8 both refuse.
        let other_encoding = std::fs::read(file).is_ok_and(|b| {
            let head = String::from_utf8_lossy(&b[..b.len().min(100)]).to_ascii_lowercase();
            head.contains("encoding=") && !head.contains("encoding=\"utf-8\"")
        });
        if code == "XML_DOCTYPE" || (code == "XML_ENCODING" && other_encoding) {
            assert_eq!(report["valid"], false, "{}", file.display());
            continue;
        }
        let nsw_schema_ok = report["valid"] == true || report["stage"] == "rules";
        let lint = Command::new("xmllint")
            .args(["--noout", "--nonet", "--schema"])
            .arg(schema_for(file))
            .arg(file)
            .output()
            .unwrap();
        let lint_ok = lint.status.success();
        if nsw_schema_ok != lint_ok {
            disagreements.push(format!(
                "{}: nsw {} / xmllint {} ({})",
                file.display(),
                nsw_schema_ok,
                lint_ok,
                String::from_utf8_lossy(&lint.stderr)
                    .lines()
                    .next()
                    .unwrap_or("")
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "disagreements:\n{}",
        disagreements.join("\n")
    );
}

/// The rule an invalid fixture of another kind names in its `<!-- breaks: CODE: … -->` comment.
fn named_break(file: &Path) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    let rest = &text[text.find("<!-- breaks: ")? + "<!-- breaks: ".len()..];
    Some(rest.split(':').next()?.trim().to_owned())
}

#[test]
fn nsw_validate_gives_every_fixture_its_named_verdict() {
    let files = all_fixture_files();
    let reports = validate_json(&files);
    let root = repo_root().join("fixtures");
    let expected: std::collections::HashMap<String, crate::fixtures::Expectation> =
        crate::fixtures::expectations()
            .into_iter()
            .map(|e| (e.file.clone(), e))
            .collect();
    let mut off = Vec::new();
    let mut checked_breaks = 0;
    for (file, report) in files.iter().zip(&reports) {
        let rel = file
            .strip_prefix(&root)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let errors = report["errors"].as_array().cloned().unwrap_or_default();
        let first = errors.first().map(|e| {
            (
                e["code"].as_str().unwrap_or(""),
                e["path"].as_str().unwrap_or(""),
            )
        });
        if rel.starts_with("valid/") {
            if report["valid"] != true {
                off.push(format!("{rel}: expected valid, got {report}"));
            }
            continue;
        }
        // Declarations and hostile inputs: the outcome the HTTP test also holds them to.
        let (code, path) = if let Some(e) = expected.get(&rel) {
            (e.code.clone(), e.path.clone())
        } else {
            checked_breaks += 1;
            (named_break(file), None)
        };
        let Some(code) = code else {
            off.push(format!("{rel}: names no rule it breaks"));
            continue;
        };
        let ok = if errors.is_empty() {
            report["valid"] == false && report["code"] == code.as_str()
        } else {
            first.is_some_and(|(c, p)| c == code && path.as_deref().is_none_or(|w| w == p))
                && errors.iter().all(|e| e["code"] == code.as_str())
        };
        if !ok {
            off.push(format!("{rel}: expected {code} at {path:?}, got {report}"));
        }
    }
    assert!(
        checked_breaks >= 10,
        "other kinds' invalid fixtures: {checked_breaks}"
    );
    assert!(off.is_empty(), "{} off:\n{}", off.len(), off.join("\n"));
}

#[test]
fn validate_accepts_a_byte_order_mark_on_every_document_kind() {
    let dir = tempfile::tempdir().unwrap();
    let f = repo_root().join("fixtures/valid");
    let mut files = Vec::new();
    for rel in [
        "declaration/01-import-laptops-10-items.xml",
        "licence-application/moit-export-licence-rice.xml",
        "certificate-of-origin/vn-sg-form-d.xml",
    ] {
        let target = dir.path().join(rel.replace('/', "-"));
        let mut bytes = b"\xEF\xBB\xBF".to_vec();
        bytes.extend(std::fs::read(f.join(rel)).unwrap());
        std::fs::write(&target, bytes).unwrap();
        files.push(target);
    }
    let out = nsw().arg("validate").args(&files).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// A misspelt or malformed setting variable stops the binary before it does anything, naming
/// the variable (and the nearest setting).
#[test]
fn setting_variables_are_checked_before_anything_runs() {
    for (var, value, says) in [
        (
            "NSW_EXCHANGE_MAX_ATTEMPTS",
            "3",
            "did you mean NSW_EXCHANGE__MAX_ATTEMPTS?",
        ),
        (
            "NSW_LIMITS__MAX_DEPTH",
            "deep",
            "'deep' is not a whole number",
        ),
        ("NSW_WEBHOOK_ALLOW_HTTP", "maybe", "is not a boolean"),
    ] {
        let out = nsw()
            .arg("migrate")
            .env_remove("NSW_CONFIG")
            .env(var, value)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}: {stderr}");
        assert!(stderr.contains(var), "{stderr}");
        assert!(stderr.contains(says), "{stderr}");
    }
}

/// `nsw party … --password-stdin` and `nsw party password` take the password from standard
/// input only, hold it to the policy, and store nothing but its argon2id hash.
#[tokio::test]
async fn party_passwords_come_from_standard_input_and_are_stored_hashed() {
    use std::io::Write;
    let db = crate::helpers::fresh_database().await;
    let run = |args: &[&str], stdin: &str| {
        let mut child = nsw()
            .args(args)
            .env_remove("NSW_CONFIG")
            .env("NSW_DATABASE_URL", &db)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let add = [
        "party",
        "add",
        "--role",
        "enterprise",
        "--id",
        "0301234567",
        "--name",
        "Sao Viet",
        "--password-stdin",
    ];
    let out = run(&add, "short\n");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 12 characters"));
    let out = run(&add, "mật khẩu của Sao Việt 2026\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("nsw_"),
        "the token is printed"
    );

    let pool = nsw::db::pool(&db, 1).unwrap();
    let client = pool.get().await.unwrap();
    let stored = || async {
        nsw::store::parties::password_of(&client, "0301234567")
            .await
            .unwrap()
            .expect("a password is set")
            .1
    };
    let first = stored().await;
    assert!(first.starts_with("$argon2id$"));
    assert!(nsw::passwords::verify(&first, "mật khẩu của Sao Việt 2026"));

    let out = run(
        &["party", "password", "--id", "0301234567"],
        "another long passphrase\r\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second = stored().await;
    assert!(nsw::passwords::verify(&second, "another long passphrase"));
    assert!(!nsw::passwords::verify(
        &second,
        "mật khẩu của Sao Việt 2026"
    ));
    let out = run(
        &["party", "password", "--id", "NOBODY"],
        "another long passphrase\n",
    );
    assert!(!out.status.success());
    let audit: i64 = client
        .query_one(
            "SELECT count(*) FROM audit_log WHERE action = 'party.password_set'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audit, 2);
}

/// A token's life cycle from the command line: issued, listed by id (never the secret),
/// revoked (the API then answers 401), and a deactivated party's tokens all stop.
#[tokio::test]
async fn tokens_are_listed_revoked_and_stop_with_their_party() {
    let db = crate::helpers::fresh_database().await;
    let app = crate::helpers::TestApp::builder()
        .database(&db)
        .spawn()
        .await;
    let run = |args: &[&str]| {
        let out = nsw()
            .args(args)
            .env_remove("NSW_CONFIG")
            .env("NSW_DATABASE_URL", &db)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (ok, first, err) = run(&[
        "party",
        "add",
        "--role",
        "customs",
        "--id",
        "CUS-1",
        "--name",
        "Customs one",
    ]);
    assert!(ok, "{err}");
    let first = first.trim().to_owned();
    let (ok, second, _) = run(&["party", "token", "--id", "CUS-1"]);
    assert!(ok);
    let second = second.trim().to_owned();
    let (ok, listed, _) = run(&["party", "token", "list", "--id", "CUS-1"]);
    assert!(ok);
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(
        !listed.contains(&first) && !listed.contains(&second),
        "no secret listed"
    );
    assert!(lines.iter().all(|l| l.ends_with("live")));
    // The id of the first token: the first 12 hex digits of its SHA-256.
    let first_id = hex::encode(&nsw::store::parties::token_digest(&first)[..6]);
    assert!(listed.contains(&first_id));
    let (ok, _, err) = run(&[
        "party", "token", "revoke", "--id", "CUS-1", "--token", &first_id,
    ]);
    assert!(ok, "{err}");
    assert_eq!(app.get(&first, "/api/v1/declarations").await.status, 401);
    assert_eq!(app.get(&second, "/api/v1/declarations").await.status, 200);
    let (ok, _, err) = run(&[
        "party", "token", "revoke", "--id", "CUS-1", "--token", &first_id,
    ]);
    assert!(!ok && err.contains("no live token"), "{err}");
    let (_, listed, _) = run(&["party", "token", "list", "--id", "CUS-1"]);
    assert!(listed.contains("revoked"));

    // Deactivated: the party's other token stops at once (a fresh instance, no cache).
    let (ok, _, err) = run(&["party", "deactivate", "--id", "CUS-1"]);
    assert!(ok, "{err}");
    let fresh = crate::helpers::TestApp::builder()
        .database(&db)
        .spawn()
        .await;
    assert_eq!(fresh.get(&second, "/api/v1/declarations").await.status, 401);
}
