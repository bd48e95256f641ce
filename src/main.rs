//! The `nsw` command line: serve, migrate, validate, party, audit, payments.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use nsw::app::{self, Application};
use nsw::config::Settings;
use nsw::domain::party::Role;
use nsw::store::{audit, parties};

mod validate_cmd;

#[derive(Parser)]
#[command(
    name = "nsw",
    version,
    about = "National Single Window for customs documents"
)]
struct Cli {
    /// TOML configuration file (also NSW_CONFIG); NSW_* variables override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service (embedded PostgreSQL unless a database URL is configured).
    Serve,
    /// Apply database migrations and exit.
    Migrate,
    /// Validate documents offline with the service's engine (schema chosen by namespace).
    Validate {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// This window's country, for the rules that depend on it.
        #[arg(long, default_value = "VN")]
        country: String,
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Manage parties (enterprises, ministries, customs, partners, administrators).
    Party {
        #[command(subcommand)]
        command: PartyCommand,
    },
    /// Load a real `nsw serve` over HTTP and measure, in the same run, the machine's limits
    /// (database commits, libxml2 validation); prints the service's figures as ratios of them.
    Loadtest {
        /// Concurrent HTTP connections (and database connections for the commit baseline).
        #[arg(long, default_value_t = 16)]
        connections: usize,
        /// Seconds per phase (with --exchange: per baseline).
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Item counts of the declarations in the mix.
        #[arg(long, value_delimiter = ',', default_value = "1,10,50")]
        items: Vec<usize>,
        /// Load this database instead of a fresh one in the embedded cluster.
        #[arg(long)]
        database_url: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// After the first measurements, store this many dossiers (e.g. 1000000) and measure
        /// intake again, printing the ratio of the two rates. With --exchange: store this
        /// many exchanged messages in both windows and measure a third, clean phase.
        #[arg(long, default_value_t = 0)]
        prefill: i64,
        /// Measure memory instead: how far one large document of each kind a client submits
        /// (a ~10 MB declaration; a licence application and a certificate of origin at the
        /// largest their schemas allow) raises a fresh server's peak resident memory.
        #[arg(long, conflicts_with = "exchange")]
        documents: bool,
        /// Measure the partner exchange instead: signed messages per second from a VN window
        /// to an SG window (`nsw serve` process), end to end, then with SG failing requests.
        #[arg(long)]
        exchange: bool,
        /// With --exchange: messages per phase (each phase waits at most 120 s).
        #[arg(long, default_value_t = 8_000)]
        messages: usize,
        /// With --exchange: share of SG's answers that fail with 503 in the second phase.
        #[arg(long, default_value_t = 0.1)]
        fail_ratio: f64,
        /// With --exchange: messages the outbox worker claims and sends concurrently per poll
        /// (VN's `exchange.batch`, 1 to 1000; the same default).
        #[arg(long, default_value_t = 64)]
        batch: i64,
        /// With --exchange: VN `nsw serve` processes (outbox workers) sharing VN's database.
        #[arg(long, default_value_t = 1)]
        senders: usize,
    },
    /// The audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Write a consistent backup of the window (database and key files) to one file,
    /// encrypted for a recipient's certificate (docs/operations.md, "Backups and restore").
    Backup {
        /// The backup file to write (mode 0600).
        #[arg(long)]
        out: PathBuf,
        /// PEM certificate of the recipient whose private key alone can decrypt the backup.
        #[arg(long)]
        recipient: PathBuf,
    },
    /// Restore a backup into an empty database and keys directory, then check every document's
    /// SHA-256 and the audit chain up to the head the backup recorded.
    Restore {
        /// The backup file.
        #[arg(long)]
        from: PathBuf,
        /// The recipient's private key (PEM).
        #[arg(long)]
        key: PathBuf,
        /// The recipient's certificate (PEM).
        #[arg(long)]
        cert: PathBuf,
    },
    /// Viet Nam plus Singapore and Thailand on loopback: an export's ACDD and e-Form D go
    /// out, signed receipts and business responses come back.
    Demo,
    /// A simulator of the national payment platform, with its own key and database
    /// (docs/paygate.md). Runs until Ctrl-C or SIGTERM.
    Paygate {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: String,
        /// Where its key (paygate.key, 0600), certificate (paygate.crt) and embedded database
        /// (pg/) live.
        #[arg(long, default_value = "paygate-data")]
        data_dir: PathBuf,
        /// Its database (default: an embedded cluster under the data directory).
        #[arg(long)]
        database_url: Option<String>,
        /// Base URL of its payer's pages, as browsers reach it (default http://<listen>).
        #[arg(long)]
        public_url: Option<String>,
        /// A merchant and its certificate file, ID=CERT_PATH (repeatable; default
        /// NSW-VN=nsw-data/payments/merchant.crt). The file may appear later.
        #[arg(long = "merchant")]
        merchants: Vec<String>,
        /// A file holding the bearer token of PUT /api/faults (without it, faults are off).
        #[arg(long)]
        control_token_file: Option<PathBuf>,
    },
    /// This window's exchange keys (certificate authority and signing certificate).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Fees paid online through the payment platform (docs/payments.md).
    Payments {
        #[command(subcommand)]
        command: PaymentsCommand,
    },
}

#[derive(Subcommand)]
enum PaymentsCommand {
    /// Print this window's merchant certificate (PEM), made with its key on first use: what
    /// the payment platform pins to check the window's signed requests.
    Certificate,
    /// Reconcile one day: the platform's settlement file against the payments and refunds the
    /// window recorded; every mismatch on a line, the run recorded. Exit status 0 when they
    /// match, 1 with mismatches, 2 when the run failed (file unavailable, not verified,
    /// unreadable) or could not be made.
    Reconcile {
        /// The local day (the window's time zone), YYYY-MM-DD.
        #[arg(long)]
        date: chrono::NaiveDate,
        /// A settlement file an operator downloaded, instead of fetching it from the platform:
        /// its signature cannot be checked (the run is recorded with source `file`).
        #[arg(long)]
        file: Option<PathBuf>,
        /// Print the run as JSON (as the API answers it).
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create the CA and signing certificate (EC P-256) in the keys directory
    /// (default <data_dir>/keys).
    Init {
        /// ISO 3166-1 alpha-2 country of this window (default: the configured country).
        #[arg(long)]
        country: Option<String>,
        /// Host name partners reach this window by, for the TLS certificate (repeatable;
        /// localhost, 127.0.0.1 and ::1 are always included).
        #[arg(long = "host")]
        hosts: Vec<String>,
    },
}

#[derive(Subcommand)]
enum PartyCommand {
    /// Register a party and print its bearer token (shown once, stored only as a hash).
    Add {
        #[arg(long, value_enum)]
        role: Role,
        #[arg(long)]
        id: String,
        #[arg(long)]
        name: String,
        /// Agency a ministry officer acts for (e.g. MOIT), or a partner's country.
        #[arg(long)]
        agency: Option<String>,
        /// Also give the party a password for the portal, read as one line from standard input
        /// (at least 12 characters; stored only as an argon2id hash).
        #[arg(long)]
        password_stdin: bool,
        /// The party's address, as documents the portal writes for it carry it (street, city,
        /// postal code and ISO 3166-1 country: all four or none; the trader can also set them
        /// on the portal's profile page).
        #[arg(long, requires_all = ["city", "post_code", "country"])]
        street: Option<String>,
        #[arg(long, requires_all = ["street", "post_code", "country"])]
        city: Option<String>,
        #[arg(long, requires_all = ["street", "city", "country"])]
        post_code: Option<String>,
        #[arg(long, requires_all = ["street", "city", "post_code"])]
        country: Option<String>,
    },
    /// Set or replace a party's portal password, read as one line from standard input.
    Password {
        #[arg(long)]
        id: String,
    },
    /// Issue another token for an existing party.
    /// Issue another token (`token --id ID`), list a party's tokens (`token list --id ID`,
    /// by id and creation time, never the secret) or revoke one (`token revoke --id ID
    /// --token TOKEN_ID`).
    #[command(args_conflicts_with_subcommands = true)]
    Token {
        #[command(subcommand)]
        action: Option<TokenCommand>,
        #[arg(long)]
        id: Option<String>,
    },
    /// Deactivate a party: its tokens and portal sessions stop at once, its dossiers stay.
    Deactivate {
        #[arg(long)]
        id: String,
    },
    /// List parties.
    List,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Issue another token (shown once).
    Issue {
        #[arg(long)]
        id: String,
    },
    /// A party's tokens: id (the first 12 hex digits of the token's SHA-256), created, revoked.
    List {
        #[arg(long)]
        id: String,
    },
    /// Revoke one token of a party by its id.
    Revoke {
        #[arg(long)]
        id: String,
        #[arg(long)]
        token: String,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Seal pending entries (as the service does), recompute the whole hash chain, name the
    /// first broken link, and print the head to keep as an anchor for later runs.
    Verify {
        /// `POSITION:SHA256HEX` printed by an earlier run: the chain must still hold that link,
        /// so a rewritten or truncated history is found even when it recomputes.
        #[arg(long)]
        anchor: Option<String>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Validate {
        json,
        country,
        files,
    } = &cli.command
    {
        return validate_cmd::run(files, *json, country);
    }
    let settings = match Settings::load(cli.config.as_deref()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("nsw: {e}");
            return ExitCode::from(2);
        }
    };
    let quiet = matches!(
        cli.command,
        Command::Demo | Command::Loadtest { exchange: true, .. }
    );
    if quiet && std::env::var_os("RUST_LOG").is_none() {
        // The demo prints its own story; only problems go to the log.
        // (the connection a partner drops on purpose is logged by actix_http as an error)
        // (the exchange load test makes failed attempts on purpose: only errors are news)
        let filter = if matches!(cli.command, Command::Demo) {
            "warn,actix_server=error,actix_http=off"
        } else {
            "error,actix_server=error,actix_http=off"
        };
        std::env::set_var("RUST_LOG", filter);
    }
    nsw::telemetry::init(settings.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("nsw: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli.command, settings)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("nsw: {}", with_causes(&*e));
            ExitCode::FAILURE
        }
    }
}

/// An error with its chain of causes ("db error: …" alone says little).
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = s.source();
    }
    text
}

async fn run(command: Command, settings: Settings) -> Result<ExitCode, Box<dyn std::error::Error>> {
    match command {
        Command::Serve => {
            let app = Application::build(settings.clone()).await?;
            if settings.payments.enabled {
                // The platform pins this certificate (`nsw paygate` reads it from here).
                let path = nsw::payments::keys::publish_certificate(app.pool(), &settings).await?;
                tracing::info!(path = %path.display(), "merchant certificate written");
            }
            tracing::info!(port = app.port(), listen = %settings.listen, "nsw serving");
            eprintln!(
                "nsw: serving on http://{} (Ctrl-C to stop)",
                settings.listen.replace(":0", &format!(":{}", app.port()))
            );
            app.run_until_stopped().await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Migrate => {
            let db = app::connect(&settings).await?;
            println!("migrations applied; schema is current");
            db.shutdown();
            Ok(ExitCode::SUCCESS)
        }
        Command::Party { command } => {
            let db = app::connect(&settings).await?;
            let result = party(command, &db).await;
            db.shutdown();
            result
        }
        Command::Backup { out, recipient } => {
            let pem = std::fs::read(&recipient)
                .map_err(|e| format!("--recipient {}: {e}", recipient.display()))?;
            let m = nsw::backup::backup(&settings, &out, &pem).await?;
            eprintln!(
                "backup written to {}: {} documents, {} key file(s){}, audit head {}",
                out.display(),
                m.documents,
                m.key_files.len(),
                if m.kek {
                    " and the key-encryption key"
                } else {
                    ""
                },
                m.audit_head
                    .as_ref()
                    .map_or("(empty)".to_owned(), |(p, h)| format!("{p}:{h}"))
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Restore { from, key, cert } => {
            let key = std::fs::read(&key).map_err(|e| format!("--key {}: {e}", key.display()))?;
            let cert =
                std::fs::read(&cert).map_err(|e| format!("--cert {}: {e}", cert.display()))?;
            let r = nsw::backup::restore(&settings, &from, &key, &cert).await?;
            eprintln!(
                "restored the backup of {} ({}): {} documents and {} envelopes match their \
                 SHA-256; the audit chain verifies ({} entries, anchor {})",
                r.manifest.created_at.to_rfc3339(),
                r.manifest.country,
                r.documents_checked,
                r.envelopes_checked,
                r.audit_sealed,
                r.manifest
                    .audit_head
                    .as_ref()
                    .map_or("none".to_owned(), |(p, h)| format!("{p}:{h}"))
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Audit {
            command: AuditCommand::Verify { anchor },
        } => {
            let anchor = match anchor.as_deref().map(parse_anchor) {
                None => None,
                Some(Ok(a)) => Some(a),
                Some(Err(e)) => {
                    eprintln!("nsw: --anchor: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            let db = app::connect(&settings).await?;
            let client = db.pool.get().await?;
            audit::seal(&client, i32::MAX).await?;
            let outcome = audit::verify(
                &client,
                anchor.as_ref().map(|(pos, hash)| (*pos, hash.as_slice())),
            )
            .await?;
            drop(client);
            db.shutdown();
            match outcome {
                audit::Verification::Intact {
                    sealed,
                    unsealed,
                    head,
                } => {
                    println!(
                        "audit trail intact: {sealed} entries chained, {unsealed} awaiting seal"
                    );
                    if let Some((pos, hash)) = head {
                        println!("head (keep as --anchor): {pos}:{}", hex::encode(hash));
                    }
                    Ok(ExitCode::SUCCESS)
                }
                audit::Verification::Broken {
                    chain_pos,
                    id,
                    reason,
                } => {
                    println!("audit trail BROKEN at chain position {chain_pos} (entry id {id}): {reason}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Loadtest {
            seconds,
            json,
            exchange: true,
            messages,
            fail_ratio,
            batch,
            senders,
            prefill,
            ..
        } => {
            nsw::loadtest::exchange::run(nsw::loadtest::exchange::Options {
                messages,
                duration: std::time::Duration::from_secs(seconds),
                fail_ratio,
                batch,
                senders,
                prefill,
                data_dir: settings.data_dir.clone(),
                json,
            })
            .await
            .map_err(|e| with_causes(&*e))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Loadtest {
            documents: true,
            database_url,
            json,
            ..
        } => {
            nsw::loadtest::documents::run(nsw::loadtest::documents::Options {
                database_url,
                data_dir: settings.data_dir.clone(),
                json,
            })
            .await
            .map_err(|e| with_causes(&*e))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Loadtest {
            connections,
            seconds,
            items,
            database_url,
            json,
            prefill,
            ..
        } => {
            nsw::loadtest::run(nsw::loadtest::Options {
                connections,
                duration: std::time::Duration::from_secs(seconds),
                sizes: items,
                database_url,
                data_dir: settings.data_dir.clone(),
                json,
                prefill,
            })
            .await
            .map_err(|e| with_causes(&*e))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo => {
            nsw::demo::run(&settings.data_dir).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys {
            command: KeysCommand::Init { country, hosts },
        } => {
            let country = country.unwrap_or_else(|| settings.country.clone());
            let keys = nsw::exchange::keys::KeyDir::of(&settings);
            let dir = keys.dir.clone();
            for path in nsw::exchange::keys::init(&keys, &country, &hosts)? {
                println!("{}", path.display());
            }
            eprintln!(
                "keys for {country} created; give partners {} to pin",
                dir.join(nsw::exchange::keys::CA_CERT).display()
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Payments {
            command: PaymentsCommand::Certificate,
        } => {
            let db = app::connect(&settings).await?;
            let pem = nsw::payments::keys::merchant_certificate(&db.pool, &settings).await;
            db.shutdown();
            print!("{}", String::from_utf8_lossy(&pem?));
            Ok(ExitCode::SUCCESS)
        }
        Command::Paygate {
            listen,
            data_dir,
            database_url,
            public_url,
            merchants,
            control_token_file,
        } => {
            paygate(
                listen,
                data_dir,
                database_url,
                public_url,
                merchants,
                control_token_file,
            )
            .await
        }
        Command::Payments {
            command: PaymentsCommand::Reconcile { date, file, json },
        } => Ok(reconcile(&settings, date, file, json).await),
        Command::Validate { .. } => unreachable!("handled before the runtime starts"),
    }
}

/// `nsw payments reconcile`: exit 0 matched, 1 mismatches, 2 failed or not run (every error
/// here is 2, so that 1 keeps meaning "mismatches").
async fn reconcile(
    settings: &Settings,
    date: chrono::NaiveDate,
    file: Option<PathBuf>,
    json: bool,
) -> ExitCode {
    use nsw::payments::reconcile::Outcome;
    use nsw::payments::reconciliation::{text_report, Input, Reconciler};
    let input = match &file {
        Some(path) => match std::fs::read(path) {
            Ok(bytes) => {
                eprintln!(
                    "nsw: {} is used as given: its signature cannot be checked (recorded as \
                     source=file)",
                    path.display()
                );
                Input::Given(bytes)
            }
            Err(e) => {
                eprintln!("nsw: --file {}: {e}", path.display());
                return ExitCode::from(2);
            }
        },
        None => Input::Platform,
    };
    let db = match app::connect(settings).await {
        Ok(db) => db,
        Err(e) => {
            eprintln!("nsw: {}", with_causes(&e));
            return ExitCode::from(2);
        }
    };
    let result = match Reconciler::from_settings(db.pool.clone(), settings) {
        Ok(r) => match r.check_date(date) {
            Ok(()) => r.run(date, input, "cli").await.map_err(|e| with_causes(&e)),
            Err(e) => Err(e),
        },
        Err(e) => Err(e),
    };
    db.shutdown();
    let run = match result {
        Ok(run) => run,
        Err(e) => {
            eprintln!("nsw: {e}");
            return ExitCode::from(2);
        }
    };
    if json {
        match serde_json::to_string_pretty(&run) {
            Ok(text) => println!("{text}"),
            Err(e) => {
                eprintln!("nsw: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        print!("{}", text_report(&run));
    }
    match run.outcome {
        Outcome::Matched => ExitCode::SUCCESS,
        Outcome::Mismatches => ExitCode::from(1),
        Outcome::Failed => ExitCode::from(2),
    }
}

async fn paygate(
    listen: String,
    data_dir: PathBuf,
    database_url: Option<String>,
    public_url: Option<String>,
    merchants: Vec<String>,
    control_token_file: Option<PathBuf>,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    use nsw::paygate::{CertificateSource, Merchant, Settings as PaygateSettings};
    let mut settings = PaygateSettings {
        listen,
        data_dir: data_dir.clone(),
        database_url,
        public_url,
        ..PaygateSettings::default()
    };
    if !merchants.is_empty() {
        settings.merchants = merchants
            .iter()
            .map(|m| match m.split_once('=') {
                Some((id, path)) if !id.is_empty() && !path.is_empty() => Ok(Merchant {
                    id: id.to_owned(),
                    certificate: CertificateSource::Path(PathBuf::from(path)),
                }),
                _ => Err(format!("--merchant {m}: expected ID=CERT_PATH")),
            })
            .collect::<Result<_, _>>()?;
    }
    if let Some(file) = control_token_file {
        let token = std::fs::read_to_string(&file)
            .map_err(|e| format!("--control-token-file {}: {e}", file.display()))?;
        let token = token.trim().to_owned();
        if token.is_empty() {
            return Err(format!("--control-token-file {}: empty", file.display()).into());
        }
        settings.control_token = Some(token);
    }
    let merchants_text: Vec<String> = settings
        .merchants
        .iter()
        .map(|m| match &m.certificate {
            CertificateSource::Path(p) => format!("{} ({})", m.id, p.display()),
            CertificateSource::Pem(_) => m.id.clone(),
        })
        .collect();
    let running = nsw::paygate::start(settings).await?;
    eprintln!(
        "nsw paygate: serving on {} (Ctrl-C to stop)\n  its certificate (pin it in the window): {}\n  merchants: {}",
        running.url(),
        data_dir.join("paygate.crt").display(),
        merchants_text.join(", ")
    );
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    eprintln!("nsw paygate: stopping");
    running.stop().await;
    Ok(ExitCode::SUCCESS)
}

async fn party(
    command: PartyCommand,
    db: &app::Database,
) -> Result<ExitCode, Box<dyn std::error::Error>> {
    let mut client = db.pool.get().await?;
    match command {
        PartyCommand::Add {
            role,
            id,
            name,
            agency,
            password_stdin,
            street,
            city,
            post_code,
            country,
        } => {
            // Read and check the password and the address before anything is written.
            let phc = if password_stdin {
                Some(nsw::passwords::hash(&read_password()?)?)
            } else {
                None
            };
            let country = country.map(|c| c.trim().to_ascii_uppercase());
            if let Some(c) = &country {
                if !nsw::codelists::CodeLists::get().country_known(c) {
                    return Err(format!("--country {c}: not an ISO 3166-1 alpha-2 code").into());
                }
            }
            let token = parties::add(&mut client, &id, role, &name, agency.as_deref()).await?;
            if street.is_some() {
                nsw::store::sessions::update_profile(
                    &mut client,
                    &nsw::store::sessions::Profile {
                        id: id.clone(),
                        name: name.clone(),
                        street,
                        city,
                        post_code,
                        country,
                    },
                    "cli",
                )
                .await?;
            }
            if let Some(phc) = phc {
                parties::set_password(&mut client, &id, &phc, "cli").await?;
                eprintln!("password of {id} set");
            }
            eprintln!(
                "party {id} ({}) added; its bearer token (shown only now):",
                role.as_str()
            );
            println!("{token}");
        }
        PartyCommand::Password { id } => {
            let phc = nsw::passwords::hash(&read_password()?)?;
            parties::set_password(&mut client, &id, &phc, "cli")
                .await
                .map_err(|e| match e {
                    nsw::store::StoreError::NotFound => format!("no party '{id}'").into(),
                    other => Box::<dyn std::error::Error>::from(other),
                })?;
            eprintln!("password of {id} set");
        }
        PartyCommand::Token { action, id } => match (action, id) {
            (Some(TokenCommand::Issue { id }), _) | (None, Some(id)) => {
                let token = parties::issue_token(&mut client, &id).await?;
                println!("{token}");
            }
            (Some(TokenCommand::List { id }), _) => {
                if nsw::store::console::party(&client, &id).await?.is_none() {
                    return Err(format!("no party '{id}'").into());
                }
                for t in nsw::store::console::tokens(&client, &id).await? {
                    println!(
                        "{}\t{}\t{}",
                        t.id,
                        t.created_at.to_rfc3339(),
                        t.revoked_at
                            .map_or("live".to_owned(), |r| format!("revoked {}", r.to_rfc3339()))
                    );
                }
            }
            (Some(TokenCommand::Revoke { id, token }), _) => {
                nsw::store::console::revoke_token(&mut client, &id, &token, "cli")
                    .await
                    .map_err(|e| match e {
                        nsw::store::StoreError::NotFound => {
                            format!("party '{id}' has no live token '{token}'").into()
                        }
                        other => Box::<dyn std::error::Error>::from(other),
                    })?;
                eprintln!(
                    "token {token} of {id} revoked (an instance that looked it up in the last \
                     30 s may accept it until then)"
                );
            }
            (None, None) => return Err("party token: give --id ID, or list / revoke".into()),
        },
        PartyCommand::Deactivate { id } => {
            let ended = nsw::store::console::deactivate(&mut client, &id, "cli").await?;
            eprintln!("party {id} deactivated; {ended} portal session(s) ended");
        }
        PartyCommand::List => {
            for p in parties::list(&client).await? {
                println!(
                    "{}\t{}\t{}\t{}",
                    p.id,
                    p.role,
                    p.agency.unwrap_or_default(),
                    p.name
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// One line of standard input without its line ending: a password is never an argument (it
/// would show in the process list and the shell's history).
fn read_password() -> Result<String, Box<dyn std::error::Error>> {
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    let line = line.strip_suffix('\n').unwrap_or(&line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    Ok(line.to_owned())
}

/// `POSITION:SHA256HEX`, as `nsw audit verify` prints the head.
fn parse_anchor(text: &str) -> Result<(i64, Vec<u8>), String> {
    let (pos, hash) = text.split_once(':').ok_or("expected POSITION:SHA256HEX")?;
    let pos: i64 = pos
        .parse()
        .ok()
        .filter(|p| *p >= 1)
        .ok_or("the position is a chain position (1, 2, …)")?;
    let hash = hex::decode(hash)
        .ok()
        .filter(|h| h.len() == 32)
        .ok_or("the hash is 64 hexadecimal digits")?;
    Ok((pos, hash))
}
