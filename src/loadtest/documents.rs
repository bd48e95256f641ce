//! `nsw loadtest --documents`: what one large document costs the server in memory, for each
//! kind a client submits. Each kind gets a fresh `nsw serve` process, warmed with a small
//! document of the same kind (schemas loaded, connections open); the figure is how far one
//! large document then raises the process's peak resident memory (`VmHWM`), and its ratio to
//! the document's size (target: at most 4×).

use serde::Serialize;

use super::{docgen, fresh_embedded_database, BoxError, Server};
use crate::domain::party::Role;
use crate::store::parties;

pub struct Options {
    pub database_url: Option<String>,
    pub data_dir: std::path::PathBuf,
    pub json: bool,
}

/// One kind's figures.
#[derive(Debug, Serialize)]
pub struct Figure {
    pub kind: &'static str,
    /// Size of the large document, in bytes.
    pub bytes: usize,
    /// HTTP status of the warm-up document and of the large one (201 when accepted).
    pub warm_up_status: u16,
    pub status: u16,
    /// Peak resident memory of the server before and after the large document, in MiB.
    pub peak_before_mib: f64,
    pub peak_after_mib: f64,
    /// Growth of the peak over the document's size.
    pub growth_over_size: f64,
}

const APPLICANT: &str = "1401234568";
const EXPORTER: &str = "0301234567";
const RICE_APPLICATION: &str =
    include_str!("../../fixtures/valid/licence-application/moit-export-licence-rice.xml");
const FORM_D: &str = include_str!("../../fixtures/valid/certificate-of-origin/vn-sg-form-d.xml");

/// The kinds measured: name, endpoint, submitter, small document, large document.
struct Kind {
    name: &'static str,
    path: &'static str,
    submitter: &'static str,
    small: Vec<u8>,
    large: Vec<u8>,
}

fn kinds() -> Vec<Kind> {
    let seq = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    vec![
        Kind {
            name: "declaration",
            path: "/api/v1/declarations",
            submitter: docgen::DECLARANT,
            small: docgen::declaration(10, seq),
            large: docgen::large_declaration(999, 10 * 1024 * 1024, seq + 1),
        },
        // The schemas bound these kinds to 999 lines of at most 512 characters: about 1 MB.
        Kind {
            name: "licence application",
            path: "/api/v1/licence-applications",
            submitter: APPLICANT,
            small: renamed(RICE_APPLICATION, "EXL-APP-2026-0152", "EXL-APP-LT-SMALL"),
            large: repeated(
                &renamed(RICE_APPLICATION, "EXL-APP-2026-0152", "EXL-APP-LT-LARGE"),
                "Line",
                999,
            ),
        },
        Kind {
            name: "certificate of origin",
            path: "/api/v1/certificates-of-origin",
            submitter: EXPORTER,
            small: renamed(FORM_D, "VN-SG-26-02-0045218", "VN-SG-26-02-0000001"),
            large: repeated(
                &renamed(FORM_D, "VN-SG-26-02-0045218", "VN-SG-26-02-0000002"),
                "Item",
                999,
            ),
        },
    ]
}

fn renamed(doc: &str, from: &str, to: &str) -> Vec<u8> {
    doc.replacen(from, to, 1).into_bytes()
}

/// `doc` with its `<tag>` blocks replaced by `count` copies of the first one, numbered from 1
/// and with the longest description the schema allows (512 characters).
pub fn repeated(doc: &[u8], tag: &str, count: usize) -> Vec<u8> {
    let doc = String::from_utf8_lossy(doc);
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let (Some(first), Some(last)) = (doc.find(&open), doc.rfind(&close)) else {
        return doc.into_owned().into_bytes();
    };
    let end_first = doc[first..].find(&close).map_or(last, |i| first + i) + close.len();
    let block = &doc[first..end_first];
    let mut out = String::with_capacity(doc.len() + count * (block.len() + 600));
    out.push_str(&doc[..first]);
    for n in 1..=count {
        let mut b = replace_text(block, "Number", &n.to_string());
        let mut description = format!("Line {n}: ");
        description.push_str(&"x".repeat(512 - description.len()));
        b = replace_text(&b, "Description", &description);
        out.push_str(&b);
        if n < count {
            out.push_str("\n  ");
        }
    }
    out.push_str(&doc[last + close.len()..]);
    out.into_bytes()
}

fn replace_text(block: &str, element: &str, text: &str) -> String {
    let (open, close) = (format!("<{element}>"), format!("</{element}>"));
    match (block.find(&open), block.find(&close)) {
        (Some(a), Some(b)) if a < b => {
            format!("{}{open}{text}{}", &block[..a], &block[b..])
        }
        _ => block.to_owned(),
    }
}

pub async fn run(opts: Options) -> Result<(), BoxError> {
    let (database_url, cluster) = match &opts.database_url {
        Some(url) => (url.clone(), None),
        None => {
            let (url, cluster) = fresh_embedded_database(&opts.data_dir).await?;
            (url, Some(cluster))
        }
    };
    let pool = crate::db::pool(&database_url, 4)?;
    let mut tokens = std::collections::HashMap::new();
    {
        let mut client = pool.get().await?;
        crate::db::migrate::run(&mut client).await?;
        for id in [docgen::DECLARANT, APPLICANT, EXPORTER] {
            let token = match parties::add(&mut client, id, Role::Enterprise, id, None).await {
                Ok(t) => t,
                Err(_) => parties::issue_token(&mut client, id).await?,
            };
            tokens.insert(id, token);
        }
    }
    let client = reqwest::Client::new();
    let mut figures = Vec::new();
    for kind in kinds() {
        let mut server = Server::start(&database_url)?;
        let url = format!("{}{}", server.address, kind.path);
        let post = |body: Vec<u8>| {
            client
                .post(&url)
                .bearer_auth(&tokens[kind.submitter])
                .header("content-type", "application/xml")
                .body(body)
                .send()
        };
        let warm_up_status = post(kind.small.clone())
            .await
            .map_or(0, |r| r.status().as_u16());
        let before = server.rss_kb("VmHWM");
        let status = post(kind.large.clone())
            .await
            .map_or(0, |r| r.status().as_u16());
        let after = server.rss_kb("VmHWM");
        server.stop();
        let growth = after.saturating_sub(before) as f64 * 1024.0;
        figures.push(Figure {
            kind: kind.name,
            bytes: kind.large.len(),
            warm_up_status,
            status,
            peak_before_mib: before as f64 / 1024.0,
            peak_after_mib: after as f64 / 1024.0,
            growth_over_size: growth / kind.large.len() as f64,
        });
    }
    drop(pool);
    // Leave the machine as we found it: a cluster this run started is stopped.
    if let Some(c) = cluster.filter(|c| c.started_here()) {
        c.stop()?;
    }
    if opts.json {
        println!("{}", serde_json::to_string_pretty(&figures)?);
    } else {
        println!("One large document per fresh server: growth of its peak resident memory");
        println!(
            "{:<22} {:>10} {:>7} {:>12} {:>12} {:>8}",
            "kind", "bytes", "status", "peak before", "peak after", "growth"
        );
        for f in &figures {
            println!(
                "{:<22} {:>10} {:>7} {:>9.1} MiB {:>9.1} MiB {:>7.1}×",
                f.kind, f.bytes, f.status, f.peak_before_mib, f.peak_after_mib, f.growth_over_size
            );
        }
    }
    Ok(())
}
