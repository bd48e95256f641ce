//! Embedded default database: a private PostgreSQL cluster under a root directory, created and
//! started from the system's server binaries. Layout: `root/pgdata` (cluster), `root/run` (unix
//! socket only, no TCP), `root/log/postgresql.log`, `root/.lock` (serialises concurrent starters).
//! All calls block (they run initdb/pg_ctl): from async code use `spawn_blocking`.

use std::ffi::{CStr, CString, OsStr};
use std::fs::{self, DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

const SUPERUSER: &str = "nsw";
const PORT: u16 = 5432;
/// sun_path is 108 bytes including the terminating NUL.
const MAX_SOCKET_PATH: usize = 107;
const INITDB_ARGS: &str = "--auth=trust -E UTF8 --no-instructions";
/// Durability stays on (no fsync/synchronous_commit changes): this cluster holds real data.
const TUNING: &str = "\n# nsw embedded defaults\nmax_connections = 200\nshared_buffers = 256MB\n\
    wal_buffers = 16MB\nmax_wal_size = 2GB\ncheckpoint_timeout = 15min\n\
    include_if_exists = 'nsw_runtime.conf'\n";

#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    #[error("PostgreSQL initdb + pg_ctl not found (tried {0}); set NSW_PG_BIN to their directory")]
    BinariesNotFound(String),
    #[error("as root, PostgreSQL must run as system user {user:?}: {reason}")]
    UserLookup { user: String, reason: String },
    #[error("directory {} is not traversable by the server user {user:?}", dir.display())]
    NotTraversable { dir: PathBuf, user: String },
    #[error("unix socket path {} is longer than 107 bytes", .0.display())]
    SocketPathTooLong(PathBuf),
    #[error("refusing {}: not a directory owned by us or the server user", .0.display())]
    UnsafeDir(PathBuf),
    #[error("initdb failed ({status}): {stderr}")]
    InitdbFailed { status: String, stderr: String },
    #[error("starting PostgreSQL failed: {message}\n--- tail of {} ---\n{log_tail}", log.display())]
    StartFailed {
        message: String,
        log: PathBuf,
        log_tail: String,
    },
    #[error("stopping PostgreSQL failed: {0}")]
    StopFailed(String),
    #[error("{context}: {source}")]
    Io { context: String, source: io::Error },
}

type Result<T> = std::result::Result<T, EmbeddedError>;

fn ioe(what: &str, path: &Path) -> impl FnOnce(io::Error) -> EmbeddedError {
    let context = format!("{what} {}", path.display());
    move |source| EmbeddedError::Io { context, source }
}

/// The account the server runs as when we are root (`None`: the current user).
#[derive(Debug, Clone)]
struct RunAs {
    name: String,
    uid: u32,
    gid: u32,
    home: PathBuf,
}

#[derive(Debug, Clone)]
pub struct EmbeddedCluster {
    root: PathBuf,
    pgdata: PathBuf,
    socket_dir: PathBuf,
    port: u16,
    started_here: bool,
    bin_dir: PathBuf,
    run_as: Option<RunAs>,
}

impl EmbeddedCluster {
    /// Ensure a cluster exists under `root` (initdb if `root/pgdata` is absent or empty) and is
    /// running (start it if not; reuse it if already running from an earlier process). Safe
    /// against several processes calling it at the same time on the same root.
    pub fn start(root: &Path) -> Result<Self> {
        let dirs = DirBuilder::new().recursive(true).mode(0o755).create(root);
        dirs.map_err(ioe("create", root))?;
        let mut c = Self::new(root.canonicalize().map_err(ioe("resolve", root))?)?;
        let _lock = c.lock()?; // check, initdb and start form one critical section
        let t0 = Instant::now();
        if !c.initialized()? {
            c.initdb()?;
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if !c.is_running()? {
                c.launch()?;
                c.started_here = true;
            }
            c.adopt_pid_file();
            // pg_ctl -w already waited for "ready"; a raw connect proves the socket is live, not a
            // file left by a killed server (and the postmaster does not log empty probes).
            let sock = c.socket_dir.join(format!(".s.PGSQL.{}", c.port));
            if UnixStream::connect(&sock).is_ok() {
                break;
            }
            if Instant::now() >= deadline {
                let msg = format!(
                    "pg_ctl says running but {} accepts no connections; postmaster.pid may be \
                     stale and name an unrelated process (remove it if no server runs)",
                    sock.display()
                );
                return Err(c.start_failed(msg));
            }
            // A just-killed postmaster stays "running" for pg_ctl until its zombie is reaped.
            std::thread::sleep(Duration::from_millis(100));
        }
        let ms = t0.elapsed().as_millis() as u64;
        let (socket_dir, how) = (
            c.socket_dir.display(),
            if c.started_here { "started" } else { "reused" },
        );
        tracing::info!(%socket_dir, port = c.port, ms, "embedded PostgreSQL {how}");
        Ok(c)
    }

    /// libpq-style key=value connection string (the format tokio-postgres parses).
    pub fn connection_string(&self, dbname: &str) -> String {
        let host = conn_value(&self.socket_dir.to_string_lossy());
        format!(
            "host={host} port={} user={SUPERUSER} dbname={}",
            self.port,
            conn_value(dbname)
        )
    }

    /// true if this process started the server (so it should stop it on shutdown).
    pub fn started_here(&self) -> bool {
        self.started_here
    }

    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `pg_ctl stop -m fast`, waiting for shutdown. Already stopped counts as success.
    pub fn stop(&self) -> Result<()> {
        let _lock = self.lock()?; // don't pull the server away under a concurrent start()
        if self.is_running()? {
            let out = self.pg_ctl(&["-m", "fast", "-w", "stop"]).output();
            let out = out.map_err(ioe("run pg_ctl for", &self.pgdata))?;
            if !out.status.success() {
                return Err(EmbeddedError::StopFailed(output_text(&out)));
            }
        }
        tracing::info!(pgdata = %self.pgdata.display(), "embedded PostgreSQL stopped");
        Ok(())
    }

    fn new(root: PathBuf) -> Result<Self> {
        let bin_dir = find_bin_dir()?;
        // initdb and postgres refuse to run as root, so root hands the cluster to `postgres`.
        // SAFETY: geteuid has no preconditions.
        let run_as = match unsafe { libc::geteuid() } {
            0 => Some(lookup_user("postgres")?),
            _ => None,
        };
        if let Some(u) = &run_as {
            check_traversable(&root, u)?;
        }
        let mut socket_dir = root.join("run");
        if socket_dir.as_os_str().len() + format!("/.s.PGSQL.{PORT}").len() > MAX_SOCKET_PATH {
            let hash = fnv1a(root.as_os_str().as_bytes());
            socket_dir = PathBuf::from(format!("/tmp/nsw-pg-{hash:016x}"));
            let (root, dir) = (root.display(), socket_dir.display());
            tracing::info!(%root, %dir, "root path too long for a unix socket; socket goes under /tmp");
        }
        let pgdata = root.join("pgdata");
        let port = PORT;
        Ok(Self {
            root,
            pgdata,
            socket_dir,
            port,
            started_here: false,
            bin_dir,
            run_as,
        })
    }

    fn lock(&self) -> Result<fs::File> {
        let path = self.root.join(".lock");
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path);
        let file = file.map_err(ioe("open", &path))?;
        file.lock().map_err(ioe("lock", &path))?;
        Ok(file)
    }

    fn initialized(&self) -> Result<bool> {
        match fs::read_dir(&self.pgdata) {
            Ok(mut entries) => Ok(entries.next().is_some()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(ioe("read", &self.pgdata)(e)),
        }
    }

    /// initdb into a scratch dir and rename it into place, so a crash mid-initdb never leaves a
    /// half-made `pgdata` that a later start would mistake for a cluster.
    fn initdb(&self) -> Result<()> {
        let tmp = self.root.join("pgdata.init");
        let t0 = Instant::now();
        let mut out = self.run_initdb(&tmp, "C.UTF-8")?;
        if !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("locale") {
            tracing::info!("locale C.UTF-8 unavailable; retrying initdb with --locale=C");
            out = self.run_initdb(&tmp, "C")?;
        }
        if !out.status.success() {
            let (status, stderr) = (out.status.to_string(), output_text(&out));
            return Err(EmbeddedError::InitdbFailed { status, stderr });
        }
        let conf = tmp.join("postgresql.conf");
        let file = OpenOptions::new().append(true).open(&conf);
        let mut file = file.map_err(ioe("open", &conf))?;
        file.write_all(TUNING.as_bytes())
            .map_err(ioe("write", &conf))?;
        if self.pgdata.exists() {
            fs::remove_dir(&self.pgdata).map_err(ioe("remove empty", &self.pgdata))?;
        }
        fs::rename(&tmp, &self.pgdata).map_err(ioe("rename into place", &tmp))?;
        let (pgdata, bin) = (self.pgdata.display(), self.bin_dir.display());
        let ms = t0.elapsed().as_millis() as u64;
        tracing::info!(%pgdata, %bin, ms, "initialised embedded PostgreSQL cluster");
        Ok(())
    }

    fn run_initdb(&self, dir: &Path, locale: &str) -> Result<Output> {
        if dir.exists() {
            fs::remove_dir_all(dir).map_err(ioe("remove leftover", dir))?;
        }
        self.private_dir(dir)?;
        let initdb = self.bin_dir.join("initdb");
        let mut cmd = self.command(&initdb);
        cmd.arg("-D")
            .arg(dir)
            .args(["-U", SUPERUSER])
            .args(INITDB_ARGS.split(' '))
            .arg(format!("--locale={locale}"));
        cmd.output().map_err(ioe("run", &initdb))
    }

    fn launch(&self) -> Result<()> {
        let sock = self.socket_dir.join(format!(".s.PGSQL.{}", self.port));
        if sock.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(EmbeddedError::SocketPathTooLong(sock));
        }
        self.private_dir(&self.socket_dir)?;
        let log = self.root.join("log");
        self.private_dir(&log)?;
        let log = log.join("postgresql.log");
        // Rewritten on every start rather than baked in at initdb, so it always matches the socket
        // dir computed for this root (which moves if the root does).
        let runtime = self.pgdata.join("nsw_runtime.conf");
        let dir = self
            .socket_dir
            .to_string_lossy()
            .replace('\\', "\\\\")
            .replace('\'', "''");
        // JIT compiles expressions of queries the planner thinks costly; for short
        // transactions like ours the compile time is pure loss (it showed in load profiles).
        let text = format!(
            "listen_addresses = ''\nport = {}\nunix_socket_directories = '{dir}'\n\
             unix_socket_permissions = 0700\njit = off\n",
            self.port
        );
        fs::write(&runtime, text).map_err(ioe("write", &runtime))?;
        self.chown(&runtime)?;
        let (pgdata, logfile) = (self.pgdata.display(), log.display());
        tracing::info!(%pgdata, log = %logfile, "starting embedded PostgreSQL");
        let mut cmd = self.pg_ctl(&["-w", "-t", "60", "-l"]);
        let out = cmd.arg(&log).arg("start").output();
        let out = out.map_err(ioe("run pg_ctl for", &self.pgdata))?;
        if !out.status.success() {
            return Err(self.start_failed(format!("pg_ctl start: {}", output_text(&out))));
        }
        Ok(())
    }

    /// Create (or accept) a 0700 directory owned by the server user. The socket dir may sit in a
    /// shared /tmp where anyone could pre-create the name, so an existing entry must be a real
    /// directory owned by us or the server user.
    fn private_dir(&self, dir: &Path) -> Result<()> {
        match DirBuilder::new().mode(0o700).create(dir) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let md = fs::symlink_metadata(dir).map_err(ioe("inspect", dir))?;
                // SAFETY: geteuid has no preconditions.
                let ours = [
                    unsafe { libc::geteuid() },
                    self.run_as.as_ref().map_or(u32::MAX, |u| u.uid),
                ];
                if !md.file_type().is_dir() || !ours.contains(&md.uid()) {
                    return Err(EmbeddedError::UnsafeDir(dir.to_path_buf()));
                }
            }
            created => created.map_err(ioe("create", dir))?,
        }
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(ioe("chmod", dir))?;
        self.chown(dir)
    }

    /// Trust the running server's own record of where it listens (it may predate this call).
    fn adopt_pid_file(&mut self) {
        let Ok(text) = fs::read_to_string(self.pgdata.join("postmaster.pid")) else {
            return;
        };
        let lines: Vec<&str> = text.lines().collect();
        if let Some(port) = lines.get(3).and_then(|l| l.trim().parse().ok()) {
            self.port = port;
        }
        let dir = lines
            .get(4)
            .and_then(|l| l.split(',').next())
            .map(str::trim);
        if let Some(dir) = dir.filter(|d| !d.is_empty()) {
            self.socket_dir = PathBuf::from(dir);
        }
    }

    fn is_running(&self) -> Result<bool> {
        // Exit 0 = running, 3 = not running, 4 = no usable data directory.
        let out = self.pg_ctl(&["status"]).output();
        let out = out.map_err(ioe("run pg_ctl for", &self.pgdata))?;
        Ok(out.status.code() == Some(0))
    }

    fn pg_ctl(&self, args: &[&str]) -> Command {
        let mut cmd = self.command(&self.bin_dir.join("pg_ctl"));
        cmd.arg("-D").arg(&self.pgdata).args(args);
        cmd
    }

    fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        // Our cwd may be unreadable for the server user (e.g. /root).
        cmd.current_dir(&self.root).stdin(Stdio::null());
        if let Some(u) = &self.run_as {
            // std also drops root's supplementary groups when uid is set.
            cmd.uid(u.uid).gid(u.gid).env("HOME", &u.home);
            cmd.env("USER", &u.name).env("LOGNAME", &u.name);
        }
        cmd
    }

    fn chown(&self, path: &Path) -> Result<()> {
        let Some(u) = &self.run_as else { return Ok(()) };
        std::os::unix::fs::chown(path, Some(u.uid), Some(u.gid)).map_err(ioe("chown", path))
    }

    fn start_failed(&self, message: String) -> EmbeddedError {
        let log = self.root.join("log").join("postgresql.log");
        let text = fs::read(&log).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().collect();
        let log_tail = lines[lines.len().saturating_sub(30)..].join("\n");
        EmbeddedError::StartFailed {
            message,
            log,
            log_tail,
        }
    }
}

/// The PostgreSQL binaries' directory (`pg_dump`, `pg_restore` are there too).
pub fn bin_dir() -> Result<PathBuf> {
    find_bin_dir()
}

/// Search order: NSW_PG_BIN, `pg_config --bindir`, PATH, highest /usr/lib/postgresql/*/bin.
/// A candidate must hold both initdb and pg_ctl: Debian's pg_config may come with a newer libpq
/// than the installed server.
fn find_bin_dir() -> Result<PathBuf> {
    let usable = |d: &Path| d.join("initdb").is_file() && d.join("pg_ctl").is_file();
    if let Some(dir) = std::env::var_os("NSW_PG_BIN").map(PathBuf::from) {
        let tried = format!("NSW_PG_BIN={}", dir.display());
        return usable(&dir)
            .then_some(dir)
            .ok_or(EmbeddedError::BinariesNotFound(tried));
    }
    let pg_config = Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .output();
    if let Some(out) = pg_config.ok().filter(|o| o.status.success()) {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if usable(&dir) {
            return Ok(dir);
        }
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    if let Some(dir) = std::env::split_paths(&path).find(|d| usable(d)) {
        return Ok(dir);
    }
    let entries = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten();
    let versions =
        entries.filter_map(|e| Some((e.file_name().to_str()?.parse::<u32>().ok()?, e.path())));
    let best = versions
        .map(|(v, p)| (v, p.join("bin")))
        .filter(|(_, d)| usable(d))
        .max();
    best.map(|(_, dir)| dir).ok_or_else(|| {
        let tried = "NSW_PG_BIN, pg_config --bindir, PATH, /usr/lib/postgresql/*/bin";
        EmbeddedError::BinariesNotFound(tried.into())
    })
}

fn lookup_user(name: &str) -> Result<RunAs> {
    let err = |reason: String| EmbeddedError::UserLookup {
        user: name.into(),
        reason,
    };
    let cname = CString::new(name).map_err(|e| err(e.to_string()))?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: a zeroed passwd is a valid out-parameter; getpwnam_r (unlike getpwnam) is
    // thread-safe and writes only into `pwd`/`buf`, which outlive every pointer read below.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    let (bufp, len) = (buf.as_mut_ptr(), buf.len());
    let rc = unsafe { libc::getpwnam_r(cname.as_ptr(), &mut pwd, bufp, len, &mut found) };
    if rc != 0 {
        return Err(err(io::Error::from_raw_os_error(rc).to_string()));
    }
    if found.is_null() || pwd.pw_dir.is_null() {
        let reason = "no such user (install the PostgreSQL server package or run as non-root)";
        return Err(err(reason.into()));
    }
    // SAFETY: pw_dir is a NUL-terminated string inside `buf`, checked non-null above.
    let home = PathBuf::from(OsStr::from_bytes(
        unsafe { CStr::from_ptr(pwd.pw_dir) }.to_bytes(),
    ));
    Ok(RunAs {
        name: name.into(),
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
        home,
    })
}

/// Mode bits only (primary group, no ACLs), so the error names the exact directory instead of
/// leaving the user to decode "Permission denied" from initdb.
fn check_traversable(root: &Path, u: &RunAs) -> Result<()> {
    for dir in root.ancestors() {
        let md = fs::metadata(dir).map_err(ioe("stat", dir))?;
        let bit = match (md.uid() == u.uid, md.gid() == u.gid) {
            (true, _) => 0o100,
            (false, true) => 0o010,
            _ => 0o001,
        };
        if md.mode() & bit == 0 {
            let (dir, user) = (dir.to_path_buf(), u.name.clone());
            return Err(EmbeddedError::NotTraversable { dir, user });
        }
    }
    Ok(())
}

/// FNV-1a: stable across Rust releases (unlike DefaultHasher), so all processes and versions map
/// a root to the same /tmp socket dir.
fn fnv1a(bytes: &[u8]) -> u64 {
    let step = |h: u64, b: &u8| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, step)
}

fn conn_value(v: &str) -> String {
    if !v.is_empty() && !v.contains(|c: char| c.is_whitespace() || c == '\'' || c == '\\') {
        return v.to_string();
    }
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn output_text(out: &Output) -> String {
    let text = [&out.stderr[..], &out.stdout[..]].concat();
    String::from_utf8_lossy(&text).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conn_values_are_quoted_only_when_needed() {
        assert_eq!(conn_value("/srv/nsw/run"), "/srv/nsw/run");
        assert_eq!(conn_value("my db"), "'my db'");
        assert_eq!(conn_value(r"a'b\c"), r"'a\'b\\c'");
        assert_eq!(conn_value(""), "''");
    }

    #[test]
    fn socket_dir_hash_is_stable() {
        // Other processes (and older builds) must derive the same /tmp dir for a root.
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
