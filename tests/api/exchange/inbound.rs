//! What a window accepts from a partner: every refused message leaves nothing behind, and what
//! it stores verifies with the openssl command line.

use std::path::Path;

use base64::Engine;
use nsw::exchange::envelope;
use nsw::exchange::keys::{self, Identity, Validity};
use nsw::exchange::signature;
use uuid::Uuid;

use super::{acdd_envelope, form_d, Plan};
use crate::helpers::fixture;

#[tokio::test]
async fn refused_messages_leave_nothing_behind() {
    let plan = Plan::new(&["VN", "SG", "TH"]);
    let sg = plan.start("SG").await;
    let vn = plan.identity_of("VN");
    let acdd = fixture("valid/acdd/vn-th-rice-export.xml");
    let footprint = || async { (sg.inbound_count().await, sg.app.count("audit_log").await) };
    let empty = footprint().await;

    // Tampered: one byte changed after signing.
    let (_, env) = acdd_envelope("VN", "SG", &acdd);
    let sig = signature::sign(&vn, &env).unwrap();
    let mut tampered = env.clone();
    let pos = tampered
        .windows(6)
        .position(|w| w == b"250000")
        .expect("quantity in the payload");
    tampered[pos] = b'9';
    let r = sg.deliver(&tampered, Some(&sig)).await;
    assert_eq!(
        (r.status, r.json()["code"].as_str().unwrap()),
        (403, "SIGNATURE_INVALID")
    );

    // VN's own certificate and key, but a SHA-1 digest (signed with the openssl command line,
    // as a partner on another toolkit might): a valid signature, refused for its algorithm.
    let vn_dir = plan.dir.path().join("VN");
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("envelope.xml"), &env).unwrap();
    // The command line takes a PEM key: VN's sealed key opened, in a file of the test's.
    let pem = keys::KeyDir::at(&vn_dir)
        .private_key_pem(keys::SIGNING_KEY)
        .unwrap();
    std::fs::write(work.path().join("signing.pem"), pem).unwrap();
    let out = std::process::Command::new("openssl")
        .args(["cms", "-sign", "-binary", "-md", "sha1", "-outform", "DER"])
        .arg("-in")
        .arg(work.path().join("envelope.xml"))
        .arg("-signer")
        .arg(vn_dir.join(keys::SIGNING_CERT))
        .arg("-inkey")
        .arg(work.path().join("signing.pem"))
        .arg("-out")
        .arg(work.path().join("envelope.p7s"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sha1 = std::fs::read(work.path().join("envelope.p7s")).unwrap();
    let r = sg.deliver(&env, Some(&sha1)).await;
    assert_eq!(
        (r.status, r.json()["code"].as_str().unwrap()),
        (403, "SIGNATURE_ALGORITHM")
    );

    // Signed by a CA SG does not pin for VN.
    let (rogue_ca, rogue_key) = keys::make_ca("VN", 10).unwrap();
    let (cert, key) = keys::issue(
        &rogue_ca,
        &rogue_key,
        "VN",
        "rogue",
        &Validity::days_from_now(5),
    )
    .unwrap();
    let rogue = Identity {
        cert,
        key,
        ca: rogue_ca,
        country: "VN".into(),
        chain: Vec::new(),
    };
    let r = sg
        .deliver(&env, Some(&signature::sign(&rogue, &env).unwrap()))
        .await;
    assert_eq!(
        (r.status, r.json()["code"].as_str().unwrap()),
        (403, "CERTIFICATE_UNTRUSTED")
    );

    // VN's real CA, but an expired certificate.
    let ca_key = keys::KeyDir::at(&plan.dir.path().join("VN"))
        .private_key(keys::CA_KEY)
        .unwrap();
    let now = chrono::Utc::now().timestamp();
    let (cert, key) = keys::issue(
        &vn.ca,
        &ca_key,
        "VN",
        "old",
        &Validity {
            not_before: now - 30 * 86_400,
            not_after: now - 86_400,
        },
    )
    .unwrap();
    let expired = Identity {
        cert,
        key,
        ..vn.clone()
    };
    let r = sg
        .deliver(&env, Some(&signature::sign(&expired, &env).unwrap()))
        .await;
    assert_eq!(
        (r.status, r.json()["code"].as_str().unwrap()),
        (403, "CERTIFICATE_EXPIRED")
    );

    // VN's CA, but a certificate for Thailand on a message claiming to come from Viet Nam.
    let (cert, key) =
        keys::issue(&vn.ca, &ca_key, "TH", "th", &Validity::days_from_now(5)).unwrap();
    let th_cert = Identity {
        cert,
        key,
        ..vn.clone()
    };
    let r = sg
        .deliver(&env, Some(&signature::sign(&th_cert, &env).unwrap()))
        .await;
    assert_eq!(
        (r.status, r.json()["code"].as_str().unwrap()),
        (403, "SENDER_CERTIFICATE_MISMATCH")
    );

    // TH's own certificate, but the envelope claims VN.
    let th = plan.identity_of("TH");
    let r = sg
        .deliver(&env, Some(&signature::sign(&th, &env).unwrap()))
        .await;
    assert_eq!(
        (r.status, r.json()["code"].as_str().unwrap()),
        (403, "CERTIFICATE_UNTRUSTED")
    );

    // A sender that is not a partner.
    let (_, kh_env) = acdd_envelope("KH", "SG", &acdd);
    let r = sg
        .deliver(&kh_env, Some(&signature::sign(&vn, &kh_env).unwrap()))
        .await;
    assert_eq!(
        (r.status, r.json()["code"].as_str().unwrap()),
        (403, "PARTNER_UNKNOWN")
    );

    // No signature at all.
    let r = sg.deliver(&env, None).await;
    assert_eq!(
        (r.status, r.json()["code"].as_str().unwrap()),
        (400, "SIGNATURE_MISSING")
    );

    // Properly signed, but the payload breaks its schema: a signed rejected receipt.
    let bad = fixture("invalid/acdd/missing-discharge-port.xml");
    let (h, bad_env) = acdd_envelope("VN", "SG", &bad);
    let r = sg
        .deliver(&bad_env, Some(&signature::sign(&vn, &bad_env).unwrap()))
        .await;
    assert_eq!(r.status, 422);
    let receipt = String::from_utf8(r.body.clone()).unwrap();
    assert!(receipt.contains("<Status>rejected</Status>"), "{receipt}");
    assert!(receipt.contains("<Code>XSD_CONTENT</Code>"), "{receipt}");
    assert!(receipt.contains(&h.message_id.to_string()));
    let rsig = base64::engine::general_purpose::STANDARD
        .decode(r.header("x-nsw-signature").unwrap())
        .unwrap();
    signature::verify(&rsig, &r.body, &plan.identity_of("SG").ca, "SG").unwrap();

    // The envelope's DocumentType must match the payload.
    let mut h2 = h.clone();
    h2.message_id = Uuid::now_v7();
    h2.document_type = "FORM_D".into();
    let mismatch = envelope::build(&h2, &acdd);
    let r = sg
        .deliver(&mismatch, Some(&signature::sign(&vn, &mismatch).unwrap()))
        .await;
    assert_eq!(r.status, 422);
    assert!(String::from_utf8_lossy(&r.body).contains("DOCUMENT_TYPE_MISMATCH"));

    assert_eq!(
        footprint().await,
        empty,
        "a refused message left rows behind"
    );

    // Accepted once; the same id with other bytes is a conflict, and the stored one stays.
    let r = sg.deliver(&env, Some(&sig)).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let first_receipt = r.body.clone();
    let r = sg.deliver(&env, Some(&sig)).await;
    assert_eq!((r.status, r.header("x-nsw-duplicate")), (200, Some("true")));
    assert_eq!(r.body, first_receipt);
    let changed = String::from_utf8(env.clone())
        .unwrap()
        .replace("<Function>submit</Function>", "<Function>amend</Function>")
        .into_bytes();
    let r = sg
        .deliver(&changed, Some(&signature::sign(&vn, &changed).unwrap()))
        .await;
    assert_eq!(
        (r.status, r.json()["code"].as_str().unwrap()),
        (409, "MESSAGE_ID_REUSED")
    );
    assert_eq!(sg.inbound_count().await, 1);
}

#[tokio::test]
async fn a_stored_signature_verifies_with_the_openssl_command_line() {
    let plan = Plan::new(&["VN", "SG"]);
    let vn = plan.window("VN").without_jobs().start().await;
    let sg = plan.start("SG").await;
    let sent = vn.send_form_d(form_d()).await;
    assert_eq!(vn.app.run_outbox_once().await, 1);
    let done = vn.outbox(sent["message_id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "delivered", "{done}");
    let row = &sg.inbox().await[0];
    let id = row["id"].as_str().unwrap();
    let dir = tempfile::tempdir().unwrap();
    for (part, file) in [
        ("envelope", "envelope.xml"),
        ("signature", "envelope.p7s"),
        ("receipt", "receipt.xml"),
        ("receipt-signature", "receipt.p7s"),
    ] {
        let r = sg
            .app
            .get(&sg.customs, &format!("/api/v1/exchange/inbox/{id}/{part}"))
            .await;
        assert_eq!(r.status, 200);
        std::fs::write(dir.path().join(file), &r.body).unwrap();
    }
    let verify = |sig: &str, content: &str, ca: &Path| {
        std::process::Command::new("openssl")
            .args(["cms", "-verify", "-binary", "-inform", "DER", "-in"])
            .arg(dir.path().join(sig))
            .arg("-content")
            .arg(dir.path().join(content))
            .arg("-CAfile")
            .arg(ca)
            .args(["-out", "/dev/null"])
            .output()
            .unwrap()
    };
    let vn_ca = plan.dir.path().join("VN/ca.crt");
    let sg_ca = plan.dir.path().join("SG/ca.crt");
    let ok = verify("envelope.p7s", "envelope.xml", &vn_ca);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let ok = verify("receipt.p7s", "receipt.xml", &sg_ca);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    // And it can fail: the envelope against the wrong CA, or the receipt's signature over the
    // envelope.
    assert!(!verify("envelope.p7s", "envelope.xml", &sg_ca)
        .status
        .success());
    assert!(!verify("receipt.p7s", "envelope.xml", &sg_ca)
        .status
        .success());
}
