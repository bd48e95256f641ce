//! All configuration in one place: defaults, then a TOML file, then `NSW_*` environment
//! variables. `nsw serve` with nothing configured runs the embedded default.

use std::path::{Path, PathBuf};

use serde::Deserialize;

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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Readable on a terminal, JSON otherwise.
    Auto,
    Pretty,
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address the HTTP server binds, e.g. `127.0.0.1:8080` (port 0 picks a free port).
    pub listen: String,
    /// Where the embedded PostgreSQL cluster and other state live.
    pub data_dir: PathBuf,
    /// A PostgreSQL URL or key=value string; when absent the embedded cluster is used.
    pub database_url: Option<String>,
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
}

/// How accepted declarations reach the database.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IntakeSettings {
    /// Commit concurrent submissions together, each in its own savepoint (one WAL flush per
    /// group); off: every request commits its own transaction.
    pub group_commit: bool,
    /// Tasks committing groups, in all: each HTTP worker runs ⌈committers ÷ workers⌉ of them
    /// on its own thread, each with a database connection of its own (beside `pool_size`).
    pub committers: usize,
    /// Most submissions in one group.
    pub max_group: usize,
}

impl Default for IntakeSettings {
    fn default() -> Self {
        IntakeSettings {
            group_commit: true,
            committers: 4,
            max_group: 32,
        }
    }
}

/// The working-time calendar agency time limits are measured on.
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Deserialize)]
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
#[derive(Debug, Clone, Deserialize)]
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
    /// Messages claimed per poll.
    pub batch: i64,
    /// A fault this window shows its partners (testing and demonstrations).
    pub fault: crate::exchange::fault::Fault,
    /// How far in the future a certificate's notBefore may lie and still be accepted (clocks
    /// of partners and agencies drift); applies to every certificate check (docs/exchange.md).
    pub clock_skew_secs: u64,
}

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
            batch: 16,
            fault: crate::exchange::fault::Fault::None,
            clock_skew_secs: crate::exchange::trust::DEFAULT_CLOCK_SKEW_SECS,
        }
    }
}

/// Webhook delivery.
#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
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
        }
    }
}

impl Settings {
    /// Defaults, overlaid by `file` (or `$NSW_CONFIG`) when given, then by the environment.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let from_env = std::env::var_os("NSW_CONFIG").map(PathBuf::from);
        let file = file.map(Path::to_path_buf).or(from_env);
        let mut settings = match file {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str(&text).map_err(|source| ConfigError::Parse { path, source })?
            }
            None => Settings::default(),
        };
        settings.apply_env(|name| std::env::var(name).ok())?;
        settings.validate()?;
        Ok(settings)
    }

    /// Rules that involve more than one setting, checked once all sources are applied.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.exchange.check_lease().map_err(ConfigError::Invalid)
    }

    fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<(), ConfigError> {
        fn num(name: &str, v: String) -> Result<usize, ConfigError> {
            v.parse().map_err(|_| ConfigError::Env {
                name: name.into(),
                message: format!("'{v}' is not a number"),
            })
        }
        if let Some(v) = get("NSW_LISTEN") {
            self.listen = v;
        }
        if let Some(v) = get("NSW_DATA_DIR") {
            self.data_dir = v.into();
        }
        if let Some(v) = get("NSW_DATABASE_URL").filter(|v| !v.is_empty()) {
            self.database_url = Some(v);
        }
        if let Some(v) = get("NSW_COUNTRY") {
            self.country = v;
        }
        if let Some(v) = get("NSW_POOL_SIZE") {
            self.pool_size = num("NSW_POOL_SIZE", v)?;
        }
        if let Some(v) = get("NSW_WORKERS") {
            self.workers = Some(num("NSW_WORKERS", v)?);
        }
        if let Some(v) = get("NSW_LOG_FORMAT") {
            self.log_format = match v.as_str() {
                "auto" => LogFormat::Auto,
                "pretty" => LogFormat::Pretty,
                "json" => LogFormat::Json,
                _ => {
                    return Err(ConfigError::Env {
                        name: "NSW_LOG_FORMAT".into(),
                        message: format!("'{v}' is not one of auto, pretty, json"),
                    })
                }
            };
        }
        if let Some(v) = get("NSW_EXCHANGE_KEYS_DIR") {
            self.exchange.keys_dir = Some(v.into());
        }
        if let Some(v) = get("NSW_EXCHANGE_PARTNERS") {
            self.exchange.partners_file = Some(v.into());
        }
        if let Some(v) = get("NSW_EXCHANGE_TLS_LISTEN") {
            self.exchange.tls_listen = Some(v);
        }
        if let Some(v) = get("NSW_EXCHANGE_LEASE_SECS") {
            self.exchange.lease_secs = num("NSW_EXCHANGE_LEASE_SECS", v)? as u64;
        }
        if let Some(v) = get("NSW_EXCHANGE_RETRY_BASE_MS") {
            self.exchange.retry_base_ms = num("NSW_EXCHANGE_RETRY_BASE_MS", v)? as u64;
        }
        if let Some(v) = get("NSW_EXCHANGE_RETRY_MAX_MS") {
            self.exchange.retry_max_ms = num("NSW_EXCHANGE_RETRY_MAX_MS", v)? as u64;
        }
        if let Some(v) = get("NSW_EXCHANGE_POLL_MS") {
            self.exchange.poll_ms = num("NSW_EXCHANGE_POLL_MS", v)? as u64;
        }
        if let Some(v) = get("NSW_EXCHANGE_CLOCK_SKEW_SECS") {
            self.exchange.clock_skew_secs = num("NSW_EXCHANGE_CLOCK_SKEW_SECS", v)? as u64;
        }
        if let Some(v) = get("NSW_EXCHANGE_BATCH") {
            self.exchange.batch = num("NSW_EXCHANGE_BATCH", v)? as i64;
        }
        if let Some(v) = get("NSW_EXCHANGE_FAULT_FAIL_RATIO") {
            let ratio = v.parse().map_err(|_| ConfigError::Env {
                name: "NSW_EXCHANGE_FAULT_FAIL_RATIO".into(),
                message: format!("'{v}' is not a number"),
            })?;
            self.exchange.fault = crate::exchange::fault::Fault::FailRatio { ratio };
        }
        crate::exchange::fault::FaultSwitch::check(&self.exchange.fault).map_err(|message| {
            ConfigError::Env {
                name: "exchange.fault".into(),
                message: message.into(),
            }
        })?;
        if let Some(v) = get("NSW_MAX_BODY_BYTES") {
            self.limits.max_body_bytes = num("NSW_MAX_BODY_BYTES", v)?;
        }
        if let Some(v) = get("NSW_MAX_DEPTH") {
            self.limits.max_depth = num("NSW_MAX_DEPTH", v)?;
        }
        if let Some(v) = get("NSW_MAX_ELEMENTS") {
            self.limits.max_elements = num("NSW_MAX_ELEMENTS", v)?;
        }
        if let Some(v) = get("NSW_MAX_ATTRIBUTES") {
            self.limits.max_attributes = num("NSW_MAX_ATTRIBUTES", v)?;
        }
        if let Some(v) = get("NSW_MAX_NAMESPACES") {
            self.limits.max_namespaces = num("NSW_MAX_NAMESPACES", v)?;
        }
        if let Some(v) = get("NSW_MAX_NAMES") {
            self.limits.max_names = num("NSW_MAX_NAMES", v)?;
        }
        if let Some(v) = get("NSW_MAX_NAME_BYTES") {
            self.limits.max_name_bytes = num("NSW_MAX_NAME_BYTES", v)?;
        }
        if let Some(v) = get("NSW_CPU_BUDGET_MS") {
            self.limits.cpu_budget_ms = num("NSW_CPU_BUDGET_MS", v)? as u64;
        }
        if let Some(v) = get("NSW_ROUTING_RULES").filter(|v| !v.is_empty()) {
            self.routing_rules = Some(v.into());
        }
        if let Some(v) = get("NSW_HOLIDAYS") {
            self.calendar.holidays = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
        }
        if let Some(v) = get("NSW_CLOCK_TODAY") {
            self.calendar.today = (!v.trim().is_empty()).then(|| v.trim().to_owned());
        }
        self.calendar().map_err(|message| ConfigError::Env {
            name: "calendar".into(),
            message,
        })?;
        self.clock().map_err(|message| ConfigError::Env {
            name: "calendar.today".into(),
            message,
        })?;
        if let Some(v) = get("NSW_EVENTS_MAX_WAIT_SECS") {
            self.events.max_wait_secs = num("NSW_EVENTS_MAX_WAIT_SECS", v)? as u64;
        }
        if let Some(v) = get("NSW_INTAKE_GROUP_COMMIT") {
            self.intake.group_commit = match v.as_str() {
                "1" | "true" | "on" | "yes" => true,
                "0" | "false" | "off" | "no" => false,
                _ => {
                    return Err(ConfigError::Env {
                        name: "NSW_INTAKE_GROUP_COMMIT".into(),
                        message: format!("'{v}' is not true or false"),
                    })
                }
            };
        }
        if let Some(v) = get("NSW_INTAKE_COMMITTERS") {
            self.intake.committers = num("NSW_INTAKE_COMMITTERS", v)?.max(1);
        }
        if let Some(v) = get("NSW_INTAKE_MAX_GROUP") {
            self.intake.max_group = num("NSW_INTAKE_MAX_GROUP", v)?.max(1);
        }
        if let Some(v) = get("NSW_EVENTS_SEAL_INTERVAL_MS") {
            self.events.seal_interval_ms = num("NSW_EVENTS_SEAL_INTERVAL_MS", v)? as u64;
        }
        if let Some(v) = get("NSW_EVENTS_POLL_INTERVAL_MS") {
            self.events.poll_interval_ms = num("NSW_EVENTS_POLL_INTERVAL_MS", v)? as u64;
        }
        if let Some(v) = get("NSW_WEBHOOK_RETRY_BASE_MS") {
            self.webhooks.retry_base_ms = num("NSW_WEBHOOK_RETRY_BASE_MS", v)? as u64;
        }
        if let Some(v) = get("NSW_WEBHOOK_RETRY_MAX_MS") {
            self.webhooks.retry_max_ms = num("NSW_WEBHOOK_RETRY_MAX_MS", v)? as u64;
        }
        if let Some(v) = get("NSW_WEBHOOK_TIMEOUT_MS") {
            self.webhooks.timeout_ms = num("NSW_WEBHOOK_TIMEOUT_MS", v)? as u64;
        }
        if let Some(v) = get("NSW_WEBHOOK_LEASE_SECS") {
            self.webhooks.lease_secs = num("NSW_WEBHOOK_LEASE_SECS", v)? as u64;
        }
        if let Some(v) = get("NSW_WEBHOOK_ALLOW_HTTP") {
            self.webhooks.allow_http = match v.as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => {
                    return Err(ConfigError::Env {
                        name: "NSW_WEBHOOK_ALLOW_HTTP".into(),
                        message: format!("'{v}' is not one of true, false"),
                    })
                }
            };
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_overrides_defaults() {
        let mut s = Settings::default();
        s.apply_env(|n| match n {
            "NSW_LISTEN" => Some("0.0.0.0:9000".into()),
            "NSW_POOL_SIZE" => Some("7".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(s.listen, "0.0.0.0:9000");
        assert_eq!(s.pool_size, 7);
        assert!(s.database_url.is_none());
    }

    #[test]
    fn exchange_worker_and_fault_from_environment() {
        let mut s = Settings::default();
        s.apply_env(|n| (n == "NSW_EXCHANGE_FAULT_FAIL_RATIO").then(|| "0.1".into()))
            .unwrap();
        assert_eq!(
            s.exchange.fault,
            crate::exchange::fault::Fault::FailRatio { ratio: 0.1 }
        );
        s.apply_env(|n| match n {
            "NSW_EXCHANGE_BATCH" => Some("128".into()),
            "NSW_EXCHANGE_POLL_MS" => Some("20".into()),
            "NSW_EXCHANGE_RETRY_MAX_MS" => Some("1000".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            (
                s.exchange.batch,
                s.exchange.poll_ms,
                s.exchange.retry_max_ms
            ),
            (128, 20, 1000)
        );
        for bad in ["1.5", "ten"] {
            assert!(Settings::default()
                .apply_env(|n| (n == "NSW_EXCHANGE_FAULT_FAIL_RATIO").then(|| bad.into()))
                .is_err());
        }
    }

    #[test]
    fn webhook_and_event_settings_from_environment() {
        let mut s = Settings::default();
        assert!(!s.webhooks.allow_http);
        s.apply_env(|n| match n {
            "NSW_WEBHOOK_RETRY_BASE_MS" => Some("250".into()),
            "NSW_WEBHOOK_RETRY_MAX_MS" => Some("60000".into()),
            "NSW_WEBHOOK_ALLOW_HTTP" => Some("true".into()),
            "NSW_EVENTS_MAX_WAIT_SECS" => Some("20".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(s.webhooks.retry_base_ms, 250);
        assert_eq!(s.webhooks.retry_max_ms, 60_000);
        assert!(s.webhooks.allow_http);
        assert_eq!(s.events.max_wait_secs, 20);
        let err = Settings::default()
            .apply_env(|n| (n == "NSW_WEBHOOK_ALLOW_HTTP").then(|| "yes".into()))
            .unwrap_err();
        assert!(err.to_string().contains("NSW_WEBHOOK_ALLOW_HTTP"));
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

    #[test]
    fn bad_number_is_an_error() {
        let mut s = Settings::default();
        let err = s
            .apply_env(|n| (n == "NSW_POOL_SIZE").then(|| "lots".into()))
            .unwrap_err();
        assert!(err.to_string().contains("NSW_POOL_SIZE"));
    }
}
