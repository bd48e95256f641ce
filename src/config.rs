//! All configuration in one place: defaults, then a TOML file, then `NSW_*` environment
//! variables. `nsw serve` with nothing configured runs the embedded default.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::xml::Limits;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("environment variable {name}: {message}")]
    Env { name: String, message: String },
    #[error("invalid settings: {0}")]
    Invalid(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable on a terminal, JSON otherwise.
    Auto,
    Pretty,
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address the HTTP server binds, e.g. `127.0.0.1:8080` (port 0 picks a free port).
    pub listen: String,
    /// Where the embedded PostgreSQL cluster and other state live.
    pub data_dir: PathBuf,
    /// A PostgreSQL URL or key=value string; when absent the embedded cluster is used.
    pub database_url: Option<Secret<String>>,
    /// ISO 3166-1 alpha-2 code of this window's country.
    pub country: String,
    /// Database connections in the pool.
    pub pool_size: usize,
    /// HTTP worker threads (default: one per core).
    pub workers: Option<usize>,
    pub log_format: LogFormat,
    pub limits: LimitSettings,
    /// A routing table (TOML, as fixtures/routing/rules.toml) to install when the database has
    /// none; absent: the table shipped with the service.
    pub routing_rules: Option<PathBuf>,
    pub calendar: CalendarSettings,
    pub exchange: ExchangeSettings,
    pub events: EventSettings,
    pub webhooks: WebhookSettings,
    pub intake: IntakeSettings,
    pub jobs: crate::jobs::JobSettings,
    pub portal: PortalSettings,
    pub throttle: ThrottleSettings,
    pub console: ConsoleSettings,
    pub metrics: MetricsSettings,
    pub tokens: TokenSettings,
    pub secrets: SecretSettings,
    pub payments: PaymentSettings,
}

/// Fees paid online through the national payment platform (`payments/`, docs/payments.md).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentSettings {
    /// Collect fees online: an application with a fee waits for its payment (`awaiting_payment`)
    /// before its agency may decide it. Off: fees are shown but not collected by the window (the
    /// agency collects them its own way) and applications go straight to `received`, as before
    /// online payment existed.
    pub enabled: bool,
    /// This window's merchant id at the platform; absent: `NSW-<country>`.
    pub merchant_id: Option<String>,
    /// Base URL of the payment platform (`nsw paygate` locally).
    pub platform_url: String,
    /// The platform's certificate (PEM; several during a key rollover), pinned: read when first
    /// needed and again whenever the file changes, so the window and the platform may start in
    /// any order.
    pub platform_certificate: PathBuf,
    /// Base URL under which the platform and browsers reach this window (the `return_url` and
    /// `notify_url` of orders); absent: `http://` and the address the service listens on.
    pub public_url: Option<String>,
    /// Working days (on the window's calendar) between a fee notice and its due date.
    pub due_working_days: u32,
    /// An order still pending this long after it was created (or last asked about) is asked
    /// about at the platform: its notification may have been lost.
    pub query_after_secs: u64,
    /// Time allowed for one request to the platform (connect, send, answer).
    pub request_timeout_ms: u64,
    /// How often the payments job runs (status queries, cancellations, refunds).
    pub poll_ms: u64,
    /// Local time of day (`HH:MM`, the window's time zone) after which the payments job
    /// reconciles the day before against the platform's settlement file, once.
    pub reconcile_after: String,
}

impl Default for PaymentSettings {
    fn default() -> Self {
        PaymentSettings {
            enabled: true,
            merchant_id: None,
            platform_url: "http://127.0.0.1:8090".into(),
            platform_certificate: PathBuf::from("paygate-data/paygate.crt"),
            public_url: None,
            due_working_days: 5,
            query_after_secs: 300,
            request_timeout_ms: 10_000,
            poll_ms: 30_000,
            reconcile_after: "06:00".into(),
        }
    }
}

impl Settings {
    /// The window's merchant id at the payment platform.
    pub fn merchant_id(&self) -> String {
        self.payments
            .merchant_id
            .clone()
            .unwrap_or_else(|| format!("NSW-{}", self.country))
    }
}

/// Secrets at rest (`secrets.rs`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretSettings {
    /// The key-encryption key sealing the agencies' signing keys in the database and the
    /// window's private key files (64 hex digits, mode 0600, made on first use); absent:
    /// `agency-keys.kek` in the exchange keys directory.
    pub kek_file: Option<PathBuf>,
}

/// Bearer tokens' life time.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TokenSettings {
    /// Days after its creation a bearer token stops working; absent: tokens of systems do not
    /// expire (they are revoked with `nsw party token revoke` or the console).
    pub max_age_days: Option<u32>,
}

/// Throttles of the API, per instance (each `nsw` process counts on its own; with several
/// instances behind a balancer the allowance multiplies by their number). 0 turns one off.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ThrottleSettings {
    /// Requests with a missing, unknown or revoked token, per client address and minute;
    /// beyond it they are answered 429 (AUTH_THROTTLED) instead of 401.
    pub auth_failures_per_minute: u32,
    /// How many such failures may come at once before the rate applies.
    pub auth_failure_burst: u32,
    /// Writes (POST, PUT, DELETE) per authenticated party and second; beyond it 429
    /// (WRITES_THROTTLED). Reads are not throttled.
    pub writes_per_second: u32,
    /// How many writes a party may send at once before the rate applies.
    pub write_burst: u32,
}

impl Default for ThrottleSettings {
    fn default() -> Self {
        ThrottleSettings {
            auth_failures_per_minute: 60,
            auth_failure_burst: 120,
            writes_per_second: 200,
            write_burst: 1000,
        }
    }
}

/// The operator console (`/console`): when its alerts fire.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsoleSettings {
    /// A partner whose last delivery attempt failed, with no successful delivery for this many
    /// minutes while a message waited, is shown as failing.
    pub partner_failing_minutes: u32,
    /// Certificates (ours, partners' pinned CAs, agencies') expiring within this many days
    /// are shown.
    pub certificate_warning_days: u32,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        ConsoleSettings {
            partner_failing_minutes: 30,
            certificate_warning_days: 30,
        }
    }
}

/// `GET /metrics`: who may read it without a token.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Client addresses (`10.0.0.5`) or CIDR blocks (`10.0.0.0/24`, `::1/128`) that may read
    /// `/metrics` without credentials; everyone else needs an admin bearer token. Empty by
    /// default: behind a reverse proxy on the same host every client would look local, so even
    /// loopback is not trusted unless listed.
    pub allow_from: Vec<String>,
}

/// The web portal: people's sessions and log-in throttling.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PortalSettings {
    /// A session unused for this many minutes is ended; the person logs in again.
    pub session_idle_minutes: u32,
    /// Mark the session cookie `Secure` (sent over HTTPS only). Set it wherever the portal is
    /// reached through TLS (a terminating proxy included); off by default because `nsw serve`
    /// itself listens in plain HTTP.
    pub secure_cookies: bool,
    /// Failed log-ins for one party id, or from one address, within `login_window_minutes`
    /// after which further attempts are refused (429) until the window has passed.
    pub max_login_failures_per_party: u32,
    pub max_login_failures_per_address: u32,
    pub login_window_minutes: u32,
    /// The portal's language when the browser asks for none it has: `vi` or `en`; absent:
    /// Vietnamese for a window whose country is VN, English otherwise.
    pub default_language: Option<String>,
    /// Seconds the public dashboard's figures of a period are kept and shared between
    /// requests (`portal::dashboard_cache`); 0: computed for every request; at most a day.
    pub dashboard_cache_secs: u64,
    /// Periods of the public dashboard computed at once by one instance; a request that cannot
    /// start its computation within 5 s is answered 503. At least 1.
    pub dashboard_computations: usize,
}

impl Default for PortalSettings {
    fn default() -> Self {
        PortalSettings {
            session_idle_minutes: 30,
            secure_cookies: false,
            max_login_failures_per_party: 5,
            max_login_failures_per_address: 20,
            login_window_minutes: 15,
            default_language: None,
            dashboard_cache_secs: 60,
            dashboard_computations: 2,
        }
    }
}

/// How accepted declarations reach the database.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntakeSettings {
    /// Commit concurrent submissions together, each in its own savepoint (one WAL flush per
    /// group); off: every request commits its own transaction.
    pub group_commit: bool,
    /// Tasks committing groups, shared out among the HTTP workers: each runs
    /// ⌈committers ÷ workers⌉ of them (so at least one) on its own thread, each with a database
    /// connection of its own (beside `pool_size`). The default, 2, gives one per worker on two
    /// cores: each committer then takes everything queued while its previous group committed,
    /// and larger groups cost PostgreSQL less per declaration than more, smaller ones
    /// (`docs/performance.md`).
    pub committers: usize,
    /// Most submissions in one group.
    pub max_group: usize,
}

impl Default for IntakeSettings {
    fn default() -> Self {
        IntakeSettings {
            group_commit: true,
            committers: 2,
            max_group: 32,
        }
    }
}

/// The working-time calendar agency time limits are measured on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CalendarSettings {
    /// Offset of the window's local time from UTC, in minutes (Viet Nam: +420).
    pub utc_offset_minutes: i32,
    /// Start and end of the working day, local time, `HH:MM`.
    pub day_start: String,
    pub day_end: String,
    /// Public holidays (`YYYY-MM-DD`), on which no working time passes.
    pub holidays: Vec<String>,
    /// A fixed date (`YYYY-MM-DD`) the window takes as today instead of the system clock's
    /// local date (tests, demonstrations, replaying a day); absent: the system clock.
    pub today: Option<String>,
}

impl Default for CalendarSettings {
    fn default() -> Self {
        CalendarSettings {
            utc_offset_minutes: 7 * 60,
            day_start: "08:00".into(),
            day_end: "16:00".into(),
            // Viet Nam's public holidays of 2026 (New Year, Tết, Hùng Kings, 30 April, 1 May,
            // National Day).
            holidays: [
                "2026-01-01",
                "2026-02-16",
                "2026-02-17",
                "2026-02-18",
                "2026-02-19",
                "2026-02-20",
                "2026-04-27",
                "2026-04-30",
                "2026-05-01",
                "2026-09-01",
                "2026-09-02",
            ]
            .map(String::from)
            .to_vec(),
            today: None,
        }
    }
}

/// The events feed (`GET /api/v1/events`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EventSettings {
    /// Longest long poll a client may ask for, in seconds.
    pub max_wait_secs: u64,
    /// How often the sequencer gives newly committed events their feed positions (the delay
    /// between a commit and its event reaching waiting clients).
    pub seal_interval_ms: u64,
    /// How often a waiting request looks again without being woken (a lost notification).
    pub poll_interval_ms: u64,
}

impl Default for EventSettings {
    fn default() -> Self {
        EventSettings {
            max_wait_secs: 30,
            seal_interval_ms: 100,
            poll_interval_ms: 1000,
        }
    }
}

/// Exchange with partner windows: keys, partner table, outbox retry policy, fault mode.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExchangeSettings {
    /// Where `nsw keys init` put this window's CA and signing certificate
    /// (default `<data_dir>/keys`).
    pub keys_dir: Option<PathBuf>,
    /// The partner table (TOML, see docs/exchange.md); none means no partners.
    pub partners_file: Option<PathBuf>,
    /// Address of the mutual-TLS listener for partner windows (e.g. `0.0.0.0:8443`); the
    /// partner endpoint is then served there, with client certificates required.
    pub tls_listen: Option<String>,
    /// Run the outbox worker in this process.
    pub worker: bool,
    /// First retry delay; each further attempt doubles it, with jitter, up to `retry_max_ms`.
    pub retry_base_ms: u64,
    pub retry_max_ms: u64,
    /// Delivery attempts before a message becomes a dead letter.
    pub max_attempts: i32,
    /// Time after which an undelivered message becomes a dead letter.
    pub ttl_secs: u64,
    /// How long a worker holds a claimed message; must exceed twice `request_timeout_ms` plus
    /// [`LEASE_MARGIN_MS`] (see [`ExchangeSettings::check_lease`]).
    pub lease_secs: u64,
    /// Time allowed for one post to a partner (connect, send, answer).
    pub request_timeout_ms: u64,
    /// How often the worker looks for due messages.
    pub poll_ms: u64,
    /// Messages claimed per poll, and posted concurrently. Larger batches cost less per
    /// message: one claim, one signature statement and fewer settling commits at this window,
    /// and larger groups of received messages committed together at the partner's
    /// (`docs/performance-exchange.md`, run 9); the cost is as many concurrent posts per
    /// instance.
    pub batch: i64,
    /// A fault this window shows its partners (testing and demonstrations).
    pub fault: crate::exchange::fault::Fault,
    /// How far in the future a certificate's notBefore may lie and still be accepted (clocks
    /// of partners and agencies drift); applies to every certificate check (docs/exchange.md).
    pub clock_skew_secs: u64,
}

/// Most messages one outbox worker claims and posts at once (`exchange.batch`).
pub const MAX_EXCHANGE_BATCH: i64 = 1_000;

/// Time a delivery needs besides its posts (signing, storing the signature, checking the
/// receipt), on top of the posts themselves, for the lease check.
pub const LEASE_MARGIN_MS: u64 = 1_000;

impl ExchangeSettings {
    /// The outbox lease must outlast one delivery: otherwise the reaper returns a message that
    /// is still being sent and another worker sends it at the same time. A delivery may post
    /// twice (the `duplicate_delivery` fault), each post bounded by `request_timeout_ms`.
    pub fn check_lease(&self) -> Result<(), String> {
        let needed_ms = self
            .request_timeout_ms
            .saturating_mul(2)
            .saturating_add(LEASE_MARGIN_MS);
        if self.lease_secs.saturating_mul(1000) > needed_ms {
            return Ok(());
        }
        Err(format!(
            "exchange.lease_secs ({}) must exceed twice exchange.request_timeout_ms ({} ms) plus \
             {LEASE_MARGIN_MS} ms, or a message still being sent is handed to another worker; \
             raise lease_secs to at least {} or lower request_timeout_ms below {} ms",
            self.lease_secs,
            self.request_timeout_ms,
            needed_ms / 1000 + 1,
            (self.lease_secs.saturating_mul(1000)).saturating_sub(LEASE_MARGIN_MS) / 2,
        ))
    }
}

impl Default for ExchangeSettings {
    fn default() -> Self {
        ExchangeSettings {
            keys_dir: None,
            partners_file: None,
            tls_listen: None,
            worker: true,
            retry_base_ms: 2_000,
            retry_max_ms: 600_000,
            max_attempts: 12,
            ttl_secs: 86_400,
            lease_secs: 60,
            request_timeout_ms: 20_000,
            poll_ms: 500,
            batch: 64,
            fault: crate::exchange::fault::Fault::None,
            clock_skew_secs: crate::exchange::trust::DEFAULT_CLOCK_SKEW_SECS,
        }
    }
}

/// Webhook delivery.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookSettings {
    /// First retry delay after a failed delivery; doubles with every further failure.
    pub retry_base_ms: u64,
    /// Upper bound of the retry delay.
    pub retry_max_ms: u64,
    /// Time allowed for one delivery (connect, send, answer).
    pub timeout_ms: u64,
    /// Accept `http://` URLs to any host, not only to loopback addresses.
    pub allow_http: bool,
    /// How long a worker holds a claimed subscription before another instance may take it over.
    pub lease_secs: u64,
    /// Subscriptions an enterprise may have at once.
    pub max_per_party: i64,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            retry_base_ms: 1000,
            retry_max_ms: 15 * 60 * 1000,
            timeout_ms: 10_000,
            allow_http: false,
            lease_secs: 60,
            max_per_party: 10,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
/// `[limits]`: what one request or document may cost (see [`Limits`] for each one's code).
pub struct LimitSettings {
    pub max_body_bytes: usize,
    pub max_depth: usize,
    pub max_elements: usize,
    pub max_attributes: usize,
    pub max_namespaces: usize,
    pub max_names: usize,
    pub max_name_bytes: usize,
    pub cpu_budget_ms: u64,
}

impl Default for LimitSettings {
    fn default() -> Self {
        let l = Limits::default();
        LimitSettings {
            max_body_bytes: l.max_bytes,
            max_depth: l.max_depth,
            max_elements: l.max_elements,
            max_attributes: l.max_attributes,
            max_namespaces: l.max_namespaces,
            max_names: l.max_names,
            max_name_bytes: l.max_name_bytes,
            cpu_budget_ms: l.cpu_budget_ms,
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("nsw-data"),
            database_url: None,
            country: "VN".into(),
            pool_size: 32,
            workers: None,
            log_format: LogFormat::Auto,
            limits: LimitSettings::default(),
            routing_rules: None,
            calendar: CalendarSettings::default(),
            exchange: ExchangeSettings::default(),
            events: EventSettings::default(),
            webhooks: WebhookSettings::default(),
            intake: IntakeSettings::default(),
            jobs: crate::jobs::JobSettings::default(),
            portal: PortalSettings::default(),
            throttle: ThrottleSettings::default(),
            console: ConsoleSettings::default(),
            metrics: MetricsSettings::default(),
            tokens: TokenSettings::default(),
            secrets: SecretSettings::default(),
            payments: PaymentSettings::default(),
        }
    }
}

impl Settings {
    /// Defaults, overlaid by `file` (or `$NSW_CONFIG`) when given, then by the environment
    /// (see [`env`] for the rule), then checked with [`Settings::validate`].
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let from_env = std::env::var_os("NSW_CONFIG").map(PathBuf::from);
        let file = file.map(Path::to_path_buf).or(from_env);
        let settings = match file {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse { path, source })?
            }
            None => Settings::default(),
        };
        let settings = settings.with_env(std::env::vars_os())?;
        settings.validate()?;
        Ok(settings)
    }

    /// These settings overridden by the `NSW_*` variables among `vars` (other variables are
    /// ignored), by the one rule of [`env`]. Rules involving several settings are left to
    /// [`Settings::validate`].
    pub fn with_env<K, V>(self, vars: impl IntoIterator<Item = (K, V)>) -> Result<Self, ConfigError>
    where
        K: Into<OsString>,
        V: Into<OsString>,
    {
        env::overlay(self, vars.into_iter().map(|(k, v)| (k.into(), v.into())))
    }

    /// Rules that involve more than one setting or a setting's format, checked once all
    /// sources are applied.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.exchange.check_lease().map_err(ConfigError::Invalid)?;
        crate::exchange::fault::FaultSwitch::check(&self.exchange.fault)
            .map_err(|m| ConfigError::Invalid(format!("exchange.fault: {m}")))?;
        self.calendar()
            .map_err(|m| ConfigError::Invalid(format!("calendar: {m}")))?;
        self.clock()
            .map_err(|m| ConfigError::Invalid(format!("calendar.today: {m}")))?;
        for (name, value) in [
            ("intake.committers", self.intake.committers),
            ("intake.max_group", self.intake.max_group),
            (
                "portal.session_idle_minutes",
                self.portal.session_idle_minutes as usize,
            ),
            (
                "portal.login_window_minutes",
                self.portal.login_window_minutes as usize,
            ),
            (
                "portal.dashboard_computations",
                self.portal.dashboard_computations,
            ),
        ] {
            if value == 0 {
                return Err(ConfigError::Invalid(format!("{name} must be at least 1")));
            }
        }
        if !(1..=MAX_EXCHANGE_BATCH).contains(&self.exchange.batch) {
            return Err(ConfigError::Invalid(format!(
                "exchange.batch must be 1 to {MAX_EXCHANGE_BATCH} (messages claimed and posted \
                 at once), not {}",
                self.exchange.batch
            )));
        }
        if self.exchange.max_attempts < 1 {
            return Err(ConfigError::Invalid(
                "exchange.max_attempts must be at least 1".into(),
            ));
        }
        if self.portal.dashboard_cache_secs > 86_400 {
            return Err(ConfigError::Invalid(
                "portal.dashboard_cache_secs must be at most 86400 (a day)".into(),
            ));
        }
        crate::metrics::parse_allow_list(&self.metrics.allow_from)
            .map_err(|m| ConfigError::Invalid(format!("metrics.allow_from: {m}")))?;
        if self.payments.due_working_days == 0 || self.payments.due_working_days > 60 {
            return Err(ConfigError::Invalid(
                "payments.due_working_days must be 1 to 60".into(),
            ));
        }
        if !(self.payments.platform_url.starts_with("http://")
            || self.payments.platform_url.starts_with("https://"))
        {
            return Err(ConfigError::Invalid(format!(
                "payments.platform_url '{}' is not an http(s) URL",
                self.payments.platform_url
            )));
        }
        if let Some(u) = &self.payments.public_url {
            if !(u.starts_with("http://") || u.starts_with("https://")) {
                return Err(ConfigError::Invalid(format!(
                    "payments.public_url '{u}' is not an http(s) URL"
                )));
            }
        }
        if crate::payments::reconciliation::parse_time_of_day(&self.payments.reconcile_after)
            .is_none()
        {
            return Err(ConfigError::Invalid(format!(
                "payments.reconcile_after '{}' is not a time of day HH:MM",
                self.payments.reconcile_after
            )));
        }
        if let Some(l) = &self.portal.default_language {
            if !matches!(l.as_str(), "vi" | "en") {
                return Err(ConfigError::Invalid(format!(
                    "portal.default_language: '{l}' is not one of vi, en"
                )));
            }
        }
        Ok(())
    }
    /// The working-time calendar, or what is wrong with its settings.
    pub fn calendar(&self) -> Result<crate::calendar::Calendar, String> {
        use chrono::{FixedOffset, NaiveDate, NaiveTime};
        let c = &self.calendar;
        let offset = FixedOffset::east_opt(c.utc_offset_minutes * 60).ok_or_else(|| {
            format!(
                "utc_offset_minutes {} is out of range",
                c.utc_offset_minutes
            )
        })?;
        let time = |s: &str| {
            NaiveTime::parse_from_str(s, "%H:%M").map_err(|_| format!("'{s}' is not HH:MM"))
        };
        let (start, end) = (time(&c.day_start)?, time(&c.day_end)?);
        if start >= end {
            return Err(format!("day_start {start} must be before day_end {end}"));
        }
        let holidays = c
            .holidays
            .iter()
            .map(|d| {
                NaiveDate::parse_from_str(d, "%Y-%m-%d")
                    .map_err(|_| format!("holiday '{d}' is not YYYY-MM-DD"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(crate::calendar::Calendar::new(offset, start, end, holidays))
    }

    /// The window's clock: the system's local date at the calendar's offset, or the fixed
    /// `calendar.today`.
    pub fn clock(&self) -> Result<crate::calendar::Clock, String> {
        use chrono::{FixedOffset, NaiveDate};
        let offset = FixedOffset::east_opt(self.calendar.utc_offset_minutes * 60)
            .ok_or_else(|| "utc_offset_minutes is out of range".to_owned())?;
        match &self.calendar.today {
            None => Ok(crate::calendar::Clock::system(offset)),
            Some(d) => NaiveDate::parse_from_str(d, "%Y-%m-%d")
                .ok()
                .filter(|d| crate::rules::date_recordable(*d))
                .map(|d| crate::calendar::Clock::fixed(offset, d))
                .ok_or_else(|| format!("today '{d}' is not YYYY-MM-DD")),
        }
    }

    pub fn exchange_keys_dir(&self) -> PathBuf {
        self.exchange
            .keys_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("keys"))
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_bytes: self.limits.max_body_bytes,
            max_depth: self.limits.max_depth,
            max_elements: self.limits.max_elements,
            max_attributes: self.limits.max_attributes,
            max_namespaces: self.limits.max_namespaces,
            max_names: self.limits.max_names,
            max_name_bytes: self.limits.max_name_bytes,
            cpu_budget_ms: self.limits.cpu_budget_ms,
        }
    }
}

/// A setting that must not appear in logs: `Debug` prints `***`. Serialized and deserialized
/// as the plain value (the configuration file and the environment give it as one).
#[derive(Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The value itself, for the one place that needs it (e.g. connecting to the database).
    pub fn expose(&self) -> &T {
        &self.0
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

impl From<String> for Secret<String> {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl From<&str> for Secret<String> {
    fn from(value: &str) -> Self {
        Secret(value.to_owned())
    }
}

/// Environment overrides, by one rule for every setting.
///
/// `NSW_` followed by the setting's TOML path, upper-cased, with `__` between a table and its
/// key: `listen` is `NSW_LISTEN`, `limits.max_depth` is `NSW_LIMITS__MAX_DEPTH`,
/// `exchange.fault` is `NSW_EXCHANGE__FAULT`. The value is read by the type of the setting:
/// numbers in decimal; booleans `true/false`, `1/0`, `yes/no`, `on/off` in any case; lists
/// comma-separated; an optional setting left empty is unset. A table (e.g. `exchange.fault`)
/// may be given whole as an inline TOML table, `{ mode = "slow", delay_ms = 200 }`, which
/// replaces it.
///
/// The names in use before the rule ([`ALIASES`]) keep working. An `NSW_` variable that is
/// neither a setting nor an alias nor one of [`NOT_SETTINGS`] is an error when it looks like
/// a setting (it contains `__`, or begins with the first word of a setting's or alias's
/// name, or is within two typing slips of one); any other is left to whoever reads it.
///
/// The overlay works on the settings' serde form: defaults and file are serialized to a JSON
/// tree (which, unlike TOML, keeps unset options as `null`, so their paths are known), the
/// variables replace leaves of it, and the tree is deserialized into [`Settings`] with each
/// variable's text parsed as the type the field asks for. A new field therefore needs no code
/// here.
pub mod env {
    use std::cell::RefCell;
    use std::collections::BTreeMap;
    use std::ffi::OsString;
    use std::rc::Rc;

    use serde::de::{self, DeserializeSeed, Error as _, IntoDeserializer, MapAccess, SeqAccess};
    use serde::Deserialize;
    use serde_json::{Error, Value};

    use super::{ConfigError, Settings};

    /// `NSW_` variables that are not settings: read by other parts of the program or by the
    /// test harness, never an error here.
    pub const NOT_SETTINGS: &[&str] = &[
        "NSW_CONFIG",            // the configuration file
        "NSW_PG_BIN",            // where the embedded cluster's binaries are
        "NSW_TEST_DATABASE_URL", // the test suite's PostgreSQL server
    ];

    /// Names that predate the rule, each the same as the variable of its setting.
    pub const ALIASES: &[(&str, &str)] = &[
        ("NSW_MAX_BODY_BYTES", "limits.max_body_bytes"),
        ("NSW_MAX_DEPTH", "limits.max_depth"),
        ("NSW_MAX_ELEMENTS", "limits.max_elements"),
        ("NSW_MAX_ATTRIBUTES", "limits.max_attributes"),
        ("NSW_MAX_NAMESPACES", "limits.max_namespaces"),
        ("NSW_MAX_NAMES", "limits.max_names"),
        ("NSW_MAX_NAME_BYTES", "limits.max_name_bytes"),
        ("NSW_CPU_BUDGET_MS", "limits.cpu_budget_ms"),
        ("NSW_HOLIDAYS", "calendar.holidays"),
        ("NSW_CLOCK_TODAY", "calendar.today"),
        ("NSW_INTAKE_GROUP_COMMIT", "intake.group_commit"),
        ("NSW_INTAKE_COMMITTERS", "intake.committers"),
        ("NSW_INTAKE_MAX_GROUP", "intake.max_group"),
        ("NSW_EXCHANGE_KEYS_DIR", "exchange.keys_dir"),
        ("NSW_EXCHANGE_PARTNERS", "exchange.partners_file"),
        ("NSW_EXCHANGE_TLS_LISTEN", "exchange.tls_listen"),
        ("NSW_EXCHANGE_LEASE_SECS", "exchange.lease_secs"),
        ("NSW_EXCHANGE_RETRY_BASE_MS", "exchange.retry_base_ms"),
        ("NSW_EXCHANGE_RETRY_MAX_MS", "exchange.retry_max_ms"),
        ("NSW_EXCHANGE_POLL_MS", "exchange.poll_ms"),
        ("NSW_EXCHANGE_BATCH", "exchange.batch"),
        ("NSW_EXCHANGE_CLOCK_SKEW_SECS", "exchange.clock_skew_secs"),
        // The value is the ratio: `exchange.fault = { mode = "fail_ratio", ratio = VALUE }`.
        ("NSW_EXCHANGE_FAULT_FAIL_RATIO", "exchange.fault"),
        ("NSW_EVENTS_MAX_WAIT_SECS", "events.max_wait_secs"),
        ("NSW_EVENTS_SEAL_INTERVAL_MS", "events.seal_interval_ms"),
        ("NSW_EVENTS_POLL_INTERVAL_MS", "events.poll_interval_ms"),
        ("NSW_WEBHOOK_RETRY_BASE_MS", "webhooks.retry_base_ms"),
        ("NSW_WEBHOOK_RETRY_MAX_MS", "webhooks.retry_max_ms"),
        ("NSW_WEBHOOK_TIMEOUT_MS", "webhooks.timeout_ms"),
        ("NSW_WEBHOOK_LEASE_SECS", "webhooks.lease_secs"),
        ("NSW_WEBHOOK_ALLOW_HTTP", "webhooks.allow_http"),
    ];

    const FAIL_RATIO_ALIAS: &str = "NSW_EXCHANGE_FAULT_FAIL_RATIO";

    /// The variable of the setting at `path` (`limits.max_depth` → `NSW_LIMITS__MAX_DEPTH`).
    pub fn variable(path: &str) -> String {
        format!("NSW_{}", path.replace('.', "__").to_ascii_uppercase())
    }

    /// The value the environment gives the setting at `path`, under its name or its alias
    /// (for commands that read one setting without loading them all).
    pub fn value_of(path: &str) -> Option<String> {
        std::iter::once(variable(path))
            .chain(
                ALIASES
                    .iter()
                    .filter(|(_, p)| *p == path)
                    .map(|(a, _)| (*a).to_owned()),
            )
            .find_map(|name| std::env::var(name).ok())
    }

    /// The one way a boolean is written in the environment.
    pub fn parse_bool(text: &str) -> Option<bool> {
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Some(true),
            "false" | "0" | "no" | "off" => Some(false),
            _ => None,
        }
    }

    /// Every path of the settings' tree: tables and leaves (unset options included), dotted.
    pub fn paths(settings: &Settings) -> Vec<(String, Value)> {
        tree(settings).map(|t| paths_in(&t)).unwrap_or_default()
    }

    fn paths_in(tree: &Value) -> Vec<(String, Value)> {
        fn walk(prefix: &str, value: &Value, out: &mut Vec<(String, Value)>) {
            if let Value::Object(map) = value {
                for (key, child) in map {
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    out.push((path.clone(), child.clone()));
                    walk(&path, child, out);
                }
            }
        }
        let mut out = Vec::new();
        walk("", tree, &mut out);
        out
    }

    fn tree(settings: &Settings) -> Result<Value, ConfigError> {
        serde_json::to_value(settings).map_err(|e| ConfigError::Invalid(e.to_string()))
    }

    /// What one variable does.
    struct Assignment {
        var: Rc<str>,
        path: Vec<String>,
        node: Node,
    }

    pub(super) fn overlay(
        settings: Settings,
        vars: impl Iterator<Item = (OsString, OsString)>,
    ) -> Result<Settings, ConfigError> {
        let base = tree(&settings)?;
        let known: BTreeMap<String, bool> = paths_in(&base)
            .into_iter()
            .map(|(p, v)| (p, v.is_object()))
            .collect();
        let mut assignments: Vec<Assignment> = Vec::new();
        let mut vars: Vec<(String, OsString)> = vars
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v)))
            .filter(|(k, _)| k.starts_with("NSW_") && !NOT_SETTINGS.contains(&k.as_str()))
            .collect();
        vars.sort();
        for (name, value) in vars {
            let Some(path) = resolve(&name, &known)? else {
                continue;
            };
            let text = value.into_string().map_err(|_| ConfigError::Env {
                name: name.clone(),
                message: "the value is not valid UTF-8".into(),
            })?;
            let var: Rc<str> = name.as_str().into();
            let node = if name == FAIL_RATIO_ALIAS {
                let mut map = BTreeMap::new();
                map.insert("mode".to_owned(), Node::Value("fail_ratio".into(), None));
                map.insert(
                    "ratio".to_owned(),
                    Node::Env(var.clone(), text.trim().into()),
                );
                Node::Table(map, Some(var.clone()))
            } else if known.get(&path).copied().unwrap_or(false) {
                Node::Value(inline_table(&name, &text)?, Some(var.clone()))
            } else {
                Node::Env(var.clone(), text.trim().into())
            };
            let path: Vec<String> = path.split('.').map(String::from).collect();
            if let Some(other) = assignments.iter().find(|a| a.path == path) {
                return Err(ConfigError::Env {
                    name: name.clone(),
                    message: format!("sets the same setting as {}; give only one", other.var),
                });
            }
            assignments.push(Assignment { var, path, node });
        }
        // A whole table first, then any of its keys set on their own.
        assignments.sort_by_key(|a| a.path.len());
        let mut root = Node::from_value(base);
        for a in assignments {
            root.set(&a.path, a.node);
        }
        let ctx = Ctx::default();
        Settings::deserialize(NodeDe {
            node: root,
            ctx: &ctx,
        })
        .map_err(|e| match ctx.failed.borrow_mut().take() {
            Some(name) => ConfigError::Env {
                name,
                message: e.to_string(),
            },
            None => ConfigError::Invalid(e.to_string()),
        })
    }

    /// The dotted path `name` sets; `None` for a variable that is not a setting.
    fn resolve(name: &str, known: &BTreeMap<String, bool>) -> Result<Option<String>, ConfigError> {
        if let Some((_, path)) = ALIASES.iter().find(|(a, _)| *a == name) {
            return Ok(Some((*path).to_owned()));
        }
        let rest = name["NSW_".len()..].to_ascii_lowercase();
        let path = rest.replace("__", ".");
        if !rest.is_empty() && known.contains_key(&path) {
            return Ok(Some(path));
        }
        let names = all_names(known);
        let flat = |s: &str| s.to_ascii_lowercase().replace("__", "_");
        let first_word = |s: &str| s.split('_').next().unwrap_or_default().to_owned();
        let nearest = names
            .iter()
            .map(|n| (distance(&flat(&n[4..]), &flat(&rest)), n))
            .min();
        let looks_like_setting = rest.contains("__")
            || names
                .iter()
                .any(|n| first_word(&n[4..].to_ascii_lowercase()) == first_word(&rest))
            || nearest.is_some_and(|(d, _)| d <= 2);
        if !looks_like_setting {
            return Ok(None);
        }
        let hint = match nearest {
            Some((d, n)) if d <= 3 => format!("; did you mean {n}?"),
            _ => String::new(),
        };
        Err(ConfigError::Env {
            name: name.to_owned(),
            message: format!(
                "no such setting{hint} (settings are NSW_ + the TOML path with __ between table \
                 and key, e.g. NSW_LIMITS__MAX_DEPTH; see docs/operations.md)"
            ),
        })
    }

    /// The variable of every setting and table, and every alias.
    fn all_names(known: &BTreeMap<String, bool>) -> Vec<String> {
        known
            .keys()
            .map(|p| variable(p))
            .chain(ALIASES.iter().map(|(a, _)| (*a).to_owned()))
            .collect()
    }

    /// Edits (insert, delete, replace, swap two neighbours) from `a` to `b`.
    fn distance(a: &str, b: &str) -> usize {
        let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
        let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
        for (i, row) in d.iter_mut().enumerate() {
            row[0] = i;
        }
        d[0] = (0..=b.len()).collect();
        for i in 1..=a.len() {
            for j in 1..=b.len() {
                let cost = usize::from(a[i - 1] != b[j - 1]);
                d[i][j] = (d[i - 1][j] + 1)
                    .min(d[i][j - 1] + 1)
                    .min(d[i - 1][j - 1] + cost);
                if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                    d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
                }
            }
        }
        d[a.len()][b.len()]
    }

    /// A table given whole: `{ key = value, … }` in TOML.
    fn inline_table(name: &str, text: &str) -> Result<Value, ConfigError> {
        let err = |message: String| ConfigError::Env {
            name: name.to_owned(),
            message,
        };
        let doc: toml::Table = toml::from_str(&format!("v = {text}")).map_err(|e| {
            err(format!(
                "a table is given as an inline TOML table, {{ key = value, … }}: {}",
                e.message()
            ))
        })?;
        match doc.get("v") {
            Some(v @ toml::Value::Table(_)) => {
                serde_json::to_value(v).map_err(|e| err(e.to_string()))
            }
            _ => Err(err(
                "a table is given as an inline TOML table, { key = value, … }".into(),
            )),
        }
    }

    /// The settings' tree with the environment's values in it.
    enum Node {
        /// A table, and the variable that gave it, if one did.
        Table(BTreeMap<String, Node>, Option<Rc<str>>),
        /// A value from the defaults or the file, or a table a variable gave whole.
        Value(Value, Option<Rc<str>>),
        /// A variable's text, read as the type the setting asks for.
        Env(Rc<str>, String),
    }

    impl Node {
        fn from_value(value: Value) -> Node {
            match value {
                Value::Object(map) => Node::Table(
                    map.into_iter()
                        .map(|(k, v)| (k, Node::from_value(v)))
                        .collect(),
                    None,
                ),
                other => Node::Value(other, None),
            }
        }

        fn origin(&self) -> Option<Rc<str>> {
            match self {
                Node::Table(_, var) | Node::Value(_, var) => var.clone(),
                Node::Env(var, _) => Some(var.clone()),
            }
        }

        /// The variable that gave this node or, in a table, the first that gave a part of it.
        fn blamed(&self) -> Option<Rc<str>> {
            match self {
                Node::Table(map, None) => map.values().find_map(Node::blamed),
                node => node.origin(),
            }
        }

        /// Puts `node` at `path`, which the settings' tree has (checked by `resolve`).
        fn set(&mut self, path: &[String], node: Node) {
            match path.split_first() {
                None => *self = node,
                Some((key, rest)) => match self {
                    Node::Table(map, _) => map
                        .entry(key.clone())
                        // A key a table given whole left out.
                        .or_insert_with(|| Node::Table(BTreeMap::new(), None))
                        .set(rest, node),
                    // Inside a table a variable gave whole: make it a tree to reach the key.
                    Node::Value(value @ Value::Object(_), var) => {
                        let mut table = Node::from_value(std::mem::take(value));
                        if let Node::Table(_, v) = &mut table {
                            *v = var.take();
                        }
                        table.set(path, node);
                        *self = table;
                    }
                    _ => {}
                },
            }
        }
    }

    /// Which variable a deserialization error comes from.
    #[derive(Default)]
    struct Ctx {
        failed: RefCell<Option<String>>,
    }

    impl Ctx {
        fn blame<T>(&self, var: Option<Rc<str>>, result: Result<T, Error>) -> Result<T, Error> {
            if let (Err(_), Some(var)) = (&result, var) {
                self.failed
                    .borrow_mut()
                    .get_or_insert_with(|| var.to_string());
            }
            result
        }
    }

    struct NodeDe<'c> {
        node: Node,
        ctx: &'c Ctx,
    }

    macro_rules! by_node {
        ($($method:ident($($arg:ident: $ty:ty),*)),* $(,)?) => {$(
            fn $method<V: de::Visitor<'de>>(self, $($arg: $ty,)* visitor: V) -> Result<V::Value, Error> {
                let (ctx, origin) = (self.ctx, self.node.origin());
                let result = match self.node {
                    Node::Table(map, _) => visitor.visit_map(TableAccess::new(map, ctx)),
                    Node::Value(value, _) => value.$method($($arg,)* visitor),
                    Node::Env(_, text) => EnvText(&text).$method($($arg,)* visitor),
                };
                ctx.blame(origin, result)
            }
        )*};
    }

    impl<'de> de::Deserializer<'de> for NodeDe<'_> {
        type Error = Error;

        by_node!(
            deserialize_any(),
            deserialize_bool(),
            deserialize_i8(),
            deserialize_i16(),
            deserialize_i32(),
            deserialize_i64(),
            deserialize_i128(),
            deserialize_u8(),
            deserialize_u16(),
            deserialize_u32(),
            deserialize_u64(),
            deserialize_u128(),
            deserialize_f32(),
            deserialize_f64(),
            deserialize_char(),
            deserialize_str(),
            deserialize_string(),
            deserialize_bytes(),
            deserialize_byte_buf(),
            deserialize_unit(),
            deserialize_unit_struct(name: &'static str),
            deserialize_seq(),
            deserialize_tuple(len: usize),
            deserialize_tuple_struct(name: &'static str, len: usize),
            deserialize_map(),
            deserialize_struct(name: &'static str, fields: &'static [&'static str]),
            deserialize_enum(name: &'static str, variants: &'static [&'static str]),
            deserialize_identifier(),
            deserialize_ignored_any(),
        );

        fn deserialize_option<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            let (ctx, origin) = (self.ctx, self.node.origin());
            let result = match self.node {
                Node::Value(value, _) => value.deserialize_option(visitor),
                Node::Env(_, text) if text.is_empty() => visitor.visit_none(),
                node => visitor.visit_some(NodeDe { node, ctx }),
            };
            ctx.blame(origin, result)
        }

        fn deserialize_newtype_struct<V: de::Visitor<'de>>(
            self,
            name: &'static str,
            visitor: V,
        ) -> Result<V::Value, Error> {
            match self.node {
                Node::Value(value, origin) => {
                    let result = value.deserialize_newtype_struct(name, visitor);
                    self.ctx.blame(origin, result)
                }
                node => visitor.visit_newtype_struct(NodeDe {
                    node,
                    ctx: self.ctx,
                }),
            }
        }
    }

    struct TableAccess<'c> {
        entries: std::collections::btree_map::IntoIter<String, Node>,
        next: Option<Node>,
        ctx: &'c Ctx,
    }

    impl<'c> TableAccess<'c> {
        fn new(map: BTreeMap<String, Node>, ctx: &'c Ctx) -> Self {
            TableAccess {
                entries: map.into_iter(),
                next: None,
                ctx,
            }
        }
    }

    impl<'de> MapAccess<'de> for TableAccess<'_> {
        type Error = Error;

        fn next_key_seed<K: DeserializeSeed<'de>>(
            &mut self,
            seed: K,
        ) -> Result<Option<K::Value>, Error> {
            let Some((key, node)) = self.entries.next() else {
                return Ok(None);
            };
            // An unknown key is blamed on the variable that brought it.
            let origin = node.origin();
            self.next = Some(node);
            let result = seed.deserialize(key.into_deserializer()).map(Some);
            self.ctx.blame(origin, result)
        }

        fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Error> {
            let node = self
                .next
                .take()
                .ok_or_else(|| Error::custom("a value without its key"))?;
            // Errors found after the value was read (an internally tagged enum buffers its
            // fields first) are blamed here.
            let blamed = node.blamed();
            let result = seed.deserialize(NodeDe {
                node,
                ctx: self.ctx,
            });
            self.ctx.blame(blamed, result)
        }
    }

    /// A variable's text, read as the type asked for.
    struct EnvText<'a>(&'a str);

    macro_rules! integer {
        ($($method:ident $ty:ty => $visit:ident),* $(,)?) => {$(
            fn $method<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                match self.0.parse::<$ty>() {
                    Ok(n) => visitor.$visit(n),
                    Err(_) => {
                        let range = if <$ty>::MAX as u128 <= u128::from(u32::MAX) {
                            format!(" from {} to {}", <$ty>::MIN, <$ty>::MAX)
                        } else if <$ty>::MIN == 0 {
                            " (0 or more)".to_owned()
                        } else {
                            String::new()
                        };
                        Err(Error::custom(format!("'{}' is not a whole number{range}", self.0)))
                    }
                }
            }
        )*};
    }

    macro_rules! float {
        ($($method:ident $ty:ty => $visit:ident),* $(,)?) => {$(
            fn $method<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
                match self.0.parse::<$ty>().ok().filter(|n| n.is_finite()) {
                    Some(n) => visitor.$visit(n),
                    None => Err(Error::custom(format!("'{}' is not a number", self.0))),
                }
            }
        )*};
    }

    impl<'de> de::Deserializer<'de> for EnvText<'_> {
        type Error = Error;

        integer!(
            deserialize_i8 i8 => visit_i8,
            deserialize_i16 i16 => visit_i16,
            deserialize_i32 i32 => visit_i32,
            deserialize_i64 i64 => visit_i64,
            deserialize_i128 i128 => visit_i128,
            deserialize_u8 u8 => visit_u8,
            deserialize_u16 u16 => visit_u16,
            deserialize_u32 u32 => visit_u32,
            deserialize_u64 u64 => visit_u64,
            deserialize_u128 u128 => visit_u128,
        );
        float!(deserialize_f32 f32 => visit_f32, deserialize_f64 f64 => visit_f64);

        /// No type asked for (a field of an internally tagged enum): a number when it reads
        /// as one, else the text.
        fn deserialize_any<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            let t = self.0;
            if let Ok(n) = t.parse::<u64>() {
                visitor.visit_u64(n)
            } else if let Ok(n) = t.parse::<i64>() {
                visitor.visit_i64(n)
            } else if let Some(n) = t
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && t.bytes().any(|b| b.is_ascii_digit()))
            {
                visitor.visit_f64(n)
            } else {
                visitor.visit_str(t)
            }
        }

        fn deserialize_bool<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            match parse_bool(self.0) {
                Some(b) => visitor.visit_bool(b),
                None => Err(Error::custom(format!(
                    "'{}' is not a boolean (true/false, 1/0, yes/no, on/off)",
                    self.0
                ))),
            }
        }

        fn deserialize_str<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            visitor.visit_str(self.0)
        }

        fn deserialize_string<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            visitor.visit_str(self.0)
        }

        fn deserialize_char<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            visitor.visit_str(self.0)
        }

        fn deserialize_identifier<V: de::Visitor<'de>>(
            self,
            visitor: V,
        ) -> Result<V::Value, Error> {
            visitor.visit_str(self.0)
        }

        fn deserialize_bytes<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            visitor.visit_str(self.0)
        }

        fn deserialize_byte_buf<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            visitor.visit_str(self.0)
        }

        fn deserialize_option<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            if self.0.is_empty() {
                visitor.visit_none()
            } else {
                visitor.visit_some(self)
            }
        }

        fn deserialize_unit<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            if self.0.is_empty() {
                visitor.visit_unit()
            } else {
                Err(Error::custom(format!("'{}': expected no value", self.0)))
            }
        }

        fn deserialize_unit_struct<V: de::Visitor<'de>>(
            self,
            _name: &'static str,
            visitor: V,
        ) -> Result<V::Value, Error> {
            self.deserialize_unit(visitor)
        }

        fn deserialize_newtype_struct<V: de::Visitor<'de>>(
            self,
            _name: &'static str,
            visitor: V,
        ) -> Result<V::Value, Error> {
            visitor.visit_newtype_struct(self)
        }

        /// A list: comma-separated, each item trimmed, empty items dropped.
        fn deserialize_seq<V: de::Visitor<'de>>(self, visitor: V) -> Result<V::Value, Error> {
            visitor.visit_seq(ListAccess(
                self.0.split(',').map(str::trim).filter(|s| !s.is_empty()),
            ))
        }

        fn deserialize_tuple<V: de::Visitor<'de>>(
            self,
            _len: usize,
            visitor: V,
        ) -> Result<V::Value, Error> {
            self.deserialize_seq(visitor)
        }

        fn deserialize_tuple_struct<V: de::Visitor<'de>>(
            self,
            _name: &'static str,
            _len: usize,
            visitor: V,
        ) -> Result<V::Value, Error> {
            self.deserialize_seq(visitor)
        }

        fn deserialize_map<V: de::Visitor<'de>>(self, _visitor: V) -> Result<V::Value, Error> {
            Err(Error::custom(
                "a table: give it whole as an inline TOML table, { key = value, … }, or set its \
                 keys one by one",
            ))
        }

        fn deserialize_struct<V: de::Visitor<'de>>(
            self,
            _name: &'static str,
            _fields: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, Error> {
            self.deserialize_map(visitor)
        }

        /// An enumeration's variant by its name (`json` for `log_format`).
        fn deserialize_enum<V: de::Visitor<'de>>(
            self,
            _name: &'static str,
            _variants: &'static [&'static str],
            visitor: V,
        ) -> Result<V::Value, Error> {
            visitor.visit_enum(IntoDeserializer::<Error>::into_deserializer(self.0))
        }

        fn deserialize_ignored_any<V: de::Visitor<'de>>(
            self,
            visitor: V,
        ) -> Result<V::Value, Error> {
            visitor.visit_unit()
        }
    }

    struct ListAccess<'a, I: Iterator<Item = &'a str>>(I);

    impl<'de, 'a, I: Iterator<Item = &'a str>> SeqAccess<'de> for ListAccess<'a, I> {
        type Error = Error;

        fn next_element_seed<T: DeserializeSeed<'de>>(
            &mut self,
            seed: T,
        ) -> Result<Option<T::Value>, Error> {
            self.0
                .next()
                .map(|s| seed.deserialize(EnvText(s)))
                .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn with_env(s: Settings, vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        s.with_env(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    fn env(vars: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        with_env(Settings::default(), vars)
    }

    fn env_err(vars: &[(&str, &str)]) -> (String, String) {
        match env(vars) {
            Err(ConfigError::Env { name, message }) => (name, message),
            other => panic!("{vars:?}: expected an environment error, got {other:?}"),
        }
    }

    fn tree(s: &Settings) -> Value {
        serde_json::to_value(s).unwrap()
    }

    fn pointer(path: &str) -> String {
        format!("/{}", path.replace('.', "/"))
    }

    /// A value for the leaf at `path` other than `default`, as the environment writes it, and
    /// the value the settings' tree should then hold (`None`: "7" read as text or number).
    fn another(path: &str, default: &Value) -> (String, Option<Value>) {
        let text = |s: &str| (s.to_owned(), Some(json!(s)));
        match (path, default) {
            // Settings whose text is constrained.
            ("log_format", _) => text("json"),
            ("exchange.fault.mode", _) => text("duplicate_delivery"),
            ("calendar.day_start", _) => text("07:30"),
            ("calendar.day_end", _) => text("17:30"),
            (_, Value::Bool(b)) => ((!b).to_string(), Some(json!(!b))),
            (_, Value::Number(n)) if n.is_u64() => {
                let n = n.as_u64().unwrap() + 1;
                (n.to_string(), Some(json!(n)))
            }
            (_, Value::Number(n)) if n.is_i64() => {
                let n = n.as_i64().unwrap() + 1;
                (n.to_string(), Some(json!(n)))
            }
            (_, Value::Number(n)) => {
                let n = n.as_f64().unwrap() + 0.5;
                (n.to_string(), Some(json!(n)))
            }
            (_, Value::String(s)) => text(&format!("{s}-changed")),
            (_, Value::Array(_)) => (
                " 2027-01-01, 2027-04-30 ,".into(),
                Some(json!(["2027-01-01", "2027-04-30"])),
            ),
            (_, Value::Null) => ("7".into(), None),
            (_, Value::Object(_)) => unreachable!("tables are not leaves"),
        }
    }

    #[test]
    fn every_setting_is_reachable_by_the_rule() {
        let defaults = Settings::default();
        let base = tree(&defaults);
        let leaves: Vec<_> = env::paths(&defaults)
            .into_iter()
            .filter(|(_, v)| !v.is_object())
            .collect();
        // Unset options are in the tree too (JSON keeps them as null).
        for path in [
            "database_url",
            "workers",
            "exchange.tls_listen",
            "calendar.today",
        ] {
            assert!(leaves.iter().any(|(p, _)| p == path), "{path}");
        }
        assert!(leaves.len() >= 45, "{} settings", leaves.len());
        for (path, default) in &leaves {
            let var = env::variable(path);
            let (text, expected) = another(path, default);
            let got = env(&[(&var, &text)]).unwrap_or_else(|e| panic!("{var}={text}: {e}"));
            let got = tree(&got);
            let value = got.pointer(&pointer(path)).unwrap().clone();
            match expected {
                Some(expected) => assert_eq!(value, expected, "{var}={text}"),
                None => assert!(value == json!("7") || value == json!(7), "{var}: {value}"),
            }
            // Nothing else changed.
            let mut want = base.clone();
            *want.pointer_mut(&pointer(path)).unwrap() = value;
            assert_eq!(got, want, "{var} changed more than {path}");
        }
    }

    #[test]
    fn names_follow_the_rule() {
        assert_eq!(env::variable("listen"), "NSW_LISTEN");
        assert_eq!(env::variable("limits.max_depth"), "NSW_LIMITS__MAX_DEPTH");
        assert_eq!(env::variable("exchange.fault"), "NSW_EXCHANGE__FAULT");
        let s = env(&[
            ("NSW_LIMITS__MAX_DEPTH", "10"),
            ("NSW_EXCHANGE__MAX_ATTEMPTS", "3"),
            ("NSW_EXCHANGE__REQUEST_TIMEOUT_MS", "5000"),
            ("NSW_LISTEN", "0.0.0.0:9000"),
            ("NSW_POOL_SIZE", " 7 "),
            ("PATH", "/bin"),
        ])
        .unwrap();
        assert_eq!(s.limits.max_depth, 10);
        assert_eq!(s.exchange.max_attempts, 3);
        assert_eq!(s.exchange.request_timeout_ms, 5000);
        assert_eq!(s.listen, "0.0.0.0:9000");
        assert_eq!(s.pool_size, 7);
        assert!(s.database_url.is_none());
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let file: Settings =
            toml::from_str("pool_size = 3\ndatabase_url = \"host=db\"\n[limits]\nmax_depth = 5\n")
                .unwrap();
        let s = with_env(file.clone(), &[("NSW_LIMITS__MAX_NAMES", "9")]).unwrap();
        assert_eq!(
            (s.pool_size, s.limits.max_depth, s.limits.max_names),
            (3, 5, 9)
        );
        assert_eq!(s.database_url.as_ref().unwrap().expose(), "host=db");
        // An optional setting left empty is unset.
        let s = with_env(file, &[("NSW_DATABASE_URL", "")]).unwrap();
        assert!(s.database_url.is_none());
        let s = env(&[("NSW_WORKERS", "3"), ("NSW_CLOCK_TODAY", " 2026-11-30 ")]).unwrap();
        assert_eq!(s.workers, Some(3));
        assert_eq!(s.calendar.today.as_deref(), Some("2026-11-30"));
    }

    #[test]
    fn booleans_are_read_one_way() {
        for (text, want) in [
            ("true", true),
            ("TRUE", true),
            ("1", true),
            ("yes", true),
            ("On", true),
            ("false", false),
            ("False", false),
            ("0", false),
            ("NO", false),
            ("off", false),
        ] {
            for (var, get) in [
                (
                    "NSW_WEBHOOKS__ALLOW_HTTP",
                    (|s: &Settings| s.webhooks.allow_http) as fn(&Settings) -> bool,
                ),
                ("NSW_WEBHOOK_ALLOW_HTTP", |s| s.webhooks.allow_http),
                ("NSW_INTAKE__GROUP_COMMIT", |s| s.intake.group_commit),
                ("NSW_INTAKE_GROUP_COMMIT", |s| s.intake.group_commit),
                ("NSW_EXCHANGE__WORKER", |s| s.exchange.worker),
            ] {
                let mut start = Settings::default();
                start.webhooks.allow_http = !want;
                start.intake.group_commit = !want;
                start.exchange.worker = !want;
                assert_eq!(
                    get(&with_env(start, &[(var, text)]).unwrap()),
                    want,
                    "{var}={text}"
                );
            }
        }
        for bad in ["maybe", "2", "", "t"] {
            let (name, message) = env_err(&[("NSW_WEBHOOK_ALLOW_HTTP", bad)]);
            assert_eq!(name, "NSW_WEBHOOK_ALLOW_HTTP");
            assert!(message.contains("not a boolean"), "{message}");
            let (name, _) = env_err(&[("NSW_EXCHANGE__WORKER", bad)]);
            assert_eq!(name, "NSW_EXCHANGE__WORKER");
        }
    }

    #[test]
    fn lists_are_comma_separated() {
        for var in ["NSW_CALENDAR__HOLIDAYS", "NSW_HOLIDAYS"] {
            let s = env(&[(var, "2027-01-01, ,2027-04-30 ")]).unwrap();
            assert_eq!(s.calendar.holidays, ["2027-01-01", "2027-04-30"]);
            let s = env(&[(var, "")]).unwrap();
            assert!(s.calendar.holidays.is_empty());
        }
        // The items are checked with the calendar.
        let s = env(&[("NSW_HOLIDAYS", "2027-01-01,tomorrow")]).unwrap();
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("'tomorrow' is not YYYY-MM-DD"), "{err}");
    }

    #[test]
    fn values_of_the_wrong_type_name_the_variable() {
        for (var, text, says) in [
            ("NSW_POOL_SIZE", "lots", "'lots' is not a whole number"),
            ("NSW_EXCHANGE__BATCH", "1.5", "'1.5' is not a whole number"),
            (
                "NSW_EXCHANGE_LEASE_SECS",
                "-1",
                "'-1' is not a whole number (0 or more)",
            ),
            (
                "NSW_EXCHANGE__MAX_ATTEMPTS",
                "3000000000",
                "from -2147483648 to 2147483647",
            ),
            ("NSW_LOG_FORMAT", "verbose", "unknown variant `verbose`"),
            ("NSW_EXCHANGE_FAULT_FAIL_RATIO", "ten", "ten"),
            ("NSW_EXCHANGE__FAULT", "slow", "inline TOML table"),
            ("NSW_EXCHANGE__FAULT", "{ mode = \"slow\" }", "delay_ms"),
            (
                "NSW_EXCHANGE__FAULT",
                "{ mode = \"slow\", delay = 1 }",
                "delay",
            ),
            ("NSW_LIMITS", "{ max_dept = 3 }", "max_dept"),
            (
                "NSW_CALENDAR__UTC_OFFSET_MINUTES",
                "7h",
                "not a whole number",
            ),
        ] {
            let (name, message) = env_err(&[(var, text)]);
            assert_eq!(name, var, "{message}");
            assert!(message.contains(says), "{var}={text}: {message}");
        }
    }

    #[test]
    fn unknown_settings_are_errors_and_other_variables_are_not() {
        for (var, hint) in [
            (
                "NSW_LIMITS__MAX_DEPHT",
                "did you mean NSW_LIMITS__MAX_DEPTH?",
            ),
            ("NSW_EXCHANGE__NO_SUCH_THING", ""),
            ("NSW_LIMITS__MAX_DEPTH__X", ""),
            (
                "NSW_EXCHANGE_MAX_ATTEMPTS",
                "did you mean NSW_EXCHANGE__MAX_ATTEMPTS?",
            ),
            (
                "NSW_WEBHOOK_MAX_PER_PARTY",
                "did you mean NSW_WEBHOOKS__MAX_PER_PARTY?",
            ),
            ("NSW_LISTN", "did you mean NSW_LISTEN?"),
            ("NSW_DATABSE_URL", "did you mean NSW_DATABASE_URL?"),
            ("NSW_LOG_LEVEL", ""),
            ("NSW_MAX_DEPHT", "did you mean NSW_MAX_DEPTH?"),
        ] {
            let (name, message) = env_err(&[(var, "1")]);
            assert_eq!(name, var);
            assert!(message.contains("no such setting"), "{var}: {message}");
            assert!(message.contains(hint), "{var}: {message}");
        }
        // Variables that are not settings, ours and others'.
        let s = env(&[
            ("NSW_CONFIG", "/nonexistent.toml"),
            ("NSW_PG_BIN", "/usr/lib/postgresql/15/bin"),
            ("NSW_TEST_DATABASE_URL", "postgres://x"),
            ("NSW_BUILD_ID", "42"),
            ("NSW_", "x"),
            ("HOME", "/root"),
        ])
        .unwrap();
        assert_eq!(tree(&s), tree(&Settings::default()));
    }

    #[test]
    fn aliases_set_the_same_as_the_rule() {
        let defaults = Settings::default();
        let base = tree(&defaults);
        for (alias, path) in env::ALIASES {
            let Some(default) = base.pointer(&pointer(path)) else {
                panic!("{alias}: no setting {path}");
            };
            if default.is_object() {
                continue; // the fault: below
            }
            let (text, _) = another(path, default);
            let by_alias = tree(&env(&[(alias, &text)]).unwrap());
            let by_rule = tree(&env(&[(&env::variable(path), &text)]).unwrap());
            assert_eq!(by_alias, by_rule, "{alias}");
            assert_ne!(by_alias, base, "{alias}");
            // Both at once is one too many.
            let (_, message) = env_err(&[(alias, &text), (&env::variable(path), &text)]);
            assert!(message.contains("sets the same setting"), "{message}");
        }
        let fault = crate::exchange::fault::Fault::FailRatio { ratio: 0.1 };
        let s = env(&[("NSW_EXCHANGE_FAULT_FAIL_RATIO", "0.1")]).unwrap();
        assert_eq!(s.exchange.fault, fault);
        let s = env(&[(
            "NSW_EXCHANGE__FAULT",
            "{ mode = \"fail_ratio\", ratio = 0.1 }",
        )])
        .unwrap();
        assert_eq!(s.exchange.fault, fault);
        let s = env(&[("NSW_EXCHANGE__FAULT__MODE", "lost_receipt")]).unwrap();
        assert_eq!(s.exchange.fault, crate::exchange::fault::Fault::LostReceipt);
        let s = env(&[("NSW_EXCHANGE__FAULT", "{ mode = \"slow\", delay_ms = 200 }")]).unwrap();
        assert_eq!(
            s.exchange.fault,
            crate::exchange::fault::Fault::Slow { delay_ms: 200 }
        );
        // Out of range: the fault's own check, at validation.
        let s = env(&[("NSW_EXCHANGE_FAULT_FAIL_RATIO", "1.5")]).unwrap();
        assert!(s
            .validate()
            .unwrap_err()
            .to_string()
            .contains("exchange.fault"));
        // A table given whole, then one of its keys.
        let s = env(&[
            ("NSW_LIMITS", "{ max_depth = 3 }"),
            ("NSW_LIMITS__MAX_NAMES", "4"),
        ])
        .unwrap();
        assert_eq!((s.limits.max_depth, s.limits.max_names), (3, 4));
    }

    #[test]
    fn secrets_are_not_printed() {
        let mut s = env(&[("NSW_DATABASE_URL", "postgres://nsw:hunter2@db/nsw")]).unwrap();
        assert_eq!(
            s.database_url.as_ref().unwrap().expose(),
            "postgres://nsw:hunter2@db/nsw"
        );
        let printed = format!("{s:?} {s:#?} {:?}", s.database_url);
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("database_url: Some(\"***\")"), "{printed}");
        s.database_url = Some("host=db password=hunter2".into());
        assert!(!format!("{s:?}").contains("hunter2"));
    }

    #[test]
    fn the_metrics_allow_list_must_be_addresses_or_blocks() {
        let s = env(&[("NSW_METRICS__ALLOW_FROM", "10.0.0.0/8, ::1,127.0.0.1")]).unwrap();
        assert_eq!(s.metrics.allow_from, ["10.0.0.0/8", "::1", "127.0.0.1"]);
        s.validate().unwrap();
        let err = env(&[("NSW_METRICS__ALLOW_FROM", "10.0.0.0/8,prometheus.local")])
            .unwrap()
            .validate()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("metrics.allow_from") && err.contains("prometheus.local"),
            "{err}"
        );
    }

    #[test]
    fn intake_needs_a_committer() {
        for var in ["NSW_INTAKE_COMMITTERS", "NSW_INTAKE__MAX_GROUP"] {
            let err = env(&[(var, "0")]).unwrap().validate().unwrap_err();
            assert!(err.to_string().contains("must be at least 1"), "{err}");
        }
    }

    #[test]
    fn the_exchange_batch_is_bounded() {
        for bad in ["0", "-1", "1001"] {
            let err = env(&[("NSW_EXCHANGE__BATCH", bad)])
                .unwrap()
                .validate()
                .unwrap_err();
            assert!(
                err.to_string().contains("exchange.batch must be 1 to 1000"),
                "{err}"
            );
        }
        for good in ["1", "1000"] {
            env(&[("NSW_EXCHANGE__BATCH", good)])
                .unwrap()
                .validate()
                .expect(good);
        }
        let err = env(&[("NSW_EXCHANGE__MAX_ATTEMPTS", "0")])
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(
            err.to_string().contains("max_attempts must be at least 1"),
            "{err}"
        );
    }

    #[test]
    fn the_dashboard_cache_is_bounded() {
        let err = env(&[("NSW_PORTAL__DASHBOARD_COMPUTATIONS", "0")])
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("must be at least 1"), "{err}");
        let err = env(&[("NSW_PORTAL__DASHBOARD_CACHE_SECS", "86401")])
            .unwrap()
            .validate()
            .unwrap_err();
        assert!(err.to_string().contains("at most 86400"), "{err}");
        let kept = env(&[("NSW_PORTAL__DASHBOARD_CACHE_SECS", "0")]).unwrap();
        kept.validate().expect("0 turns the cache off");
    }

    #[test]
    fn the_outbox_lease_must_outlast_a_delivery() {
        let mut s = Settings::default();
        s.validate().expect("the defaults are consistent");
        // Two posts of 5 s each and the margin do not fit in a 2 s lease, nor in 11 s.
        s.exchange.request_timeout_ms = 5_000;
        for lease in [2, 10, 11] {
            s.exchange.lease_secs = lease;
            let err = s.validate().unwrap_err().to_string();
            assert!(err.contains("exchange.lease_secs"), "{err}");
            assert!(err.contains("exchange.request_timeout_ms"), "{err}");
            assert!(err.contains("at least 12"), "{err}");
        }
        s.exchange.lease_secs = 12;
        s.validate().unwrap();
        // Loading a configuration file applies the check.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("nsw.toml");
        std::fs::write(
            &file,
            "[exchange]\nlease_secs = 40\nrequest_timeout_ms = 20000\n",
        )
        .unwrap();
        let err = Settings::load(Some(&file)).unwrap_err().to_string();
        assert!(
            err.contains("lower request_timeout_ms below 19500 ms"),
            "{err}"
        );
        s.exchange.request_timeout_ms = 19_499;
        s.exchange.lease_secs = 40;
        s.validate().unwrap();
    }

    /// docs/operations.md lists every setting with its variable, aliases and default.
    #[test]
    fn the_operations_table_is_complete_and_true() {
        let doc = include_str!("../docs/operations.md");
        let defaults = Settings::default();
        let paths = env::paths(&defaults);
        let mut rows = Vec::new();
        for line in doc.lines().filter(|l| l.starts_with("| `")) {
            let cells: Vec<&str> = line.split(" | ").map(str::trim).collect();
            let key = cells[0].trim_start_matches("| ").trim_matches('`');
            let Some((_, default)) = paths.iter().find(|(p, _)| p == key) else {
                continue; // another table (aliases, non-settings)
            };
            assert!(
                cells[1].contains(&format!("`{}`", env::variable(key))),
                "{key}: variable"
            );
            for (alias, _) in env::ALIASES.iter().filter(|(_, p)| *p == key) {
                assert!(cells[1].contains(&format!("`{alias}`")), "{key}: {alias}");
            }
            let shown = match default {
                Value::Null => Some("none".to_owned()),
                Value::String(s) => Some(format!("`{s}`")),
                Value::Number(_) | Value::Bool(_) => Some(format!("`{default}`")),
                _ => None,
            };
            if let Some(shown) = shown {
                assert!(
                    cells[2].starts_with(&shown),
                    "{key}: default {shown}, doc {}",
                    cells[2]
                );
            }
            rows.push(key.to_owned());
        }
        for (path, value) in &paths {
            if value.is_object() {
                continue;
            }
            let covered = rows
                .iter()
                .any(|r| r == path || path.starts_with(&format!("{r}.")));
            assert!(covered, "docs/operations.md has no row for {path}");
        }
        for (alias, _) in env::ALIASES {
            assert!(doc.contains(alias), "docs/operations.md: {alias}");
        }
        for name in env::NOT_SETTINGS {
            assert!(doc.contains(name), "docs/operations.md: {name}");
        }
    }
}
