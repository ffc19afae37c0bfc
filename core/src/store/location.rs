//! Where a store lives: an SQLite file (a plain path, the default) or a SQL Server database
//! (`mssql://[USER@]HOST[:PORT]/DATABASE[?encrypt=required|on|off&trust_server_certificate=true]`,
//! or a `[store]` table in the config). The password is never part of a location: it comes from
//! `SSTORE_MSSQL_PASSWORD` (or the environment variable or file the config names) when
//! connecting, so a location can be printed and logged as it is.

use std::fmt;
use std::path::{Path, PathBuf};

use super::StoreError;

/// The environment variable the SQL Server password comes from by default.
pub const PASSWORD_ENV: &str = "SSTORE_MSSQL_PASSWORD";
/// The URL scheme of a store on SQL Server.
pub const SCHEME: &str = "mssql://";
/// SQL Server's default port.
pub const DEFAULT_PORT: u16 = 1433;

/// Where a store lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// An SQLite file.
    Sqlite(PathBuf),
    /// A database on SQL Server, Azure SQL or Babelfish.
    SqlServer(SqlServerConfig),
}

/// TLS for the connection (tiberius's encryption levels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encryption {
    /// TLS for everything; refused when the server does not offer it (the default).
    Required,
    /// TLS for everything when the server offers it; the server's choice otherwise.
    On,
    /// TLS for the login only (the password never travels in clear), then plain.
    Off,
    /// No TLS at all, not even for the login. Accepted for loopback servers only (test
    /// stand-ins, local engines without TLS).
    None,
}

impl Encryption {
    pub fn as_str(self) -> &'static str {
        match self {
            Encryption::Required => "required",
            Encryption::On => "on",
            Encryption::Off => "off",
            Encryption::None => "none",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "required" | "strict" | "true" | "yes" | "mandatory" => Some(Encryption::Required),
            "on" => Some(Encryption::On),
            "off" | "false" | "no" | "optional" => Some(Encryption::Off),
            "none" | "not_supported" => Some(Encryption::None),
            _ => None,
        }
    }
}

/// Where the SQL Server password comes from (it is read when connecting, never stored here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// An environment variable ([`PASSWORD_ENV`] unless the config names another).
    Env(String),
    /// The first line of an owner-only file.
    File(PathBuf),
}

/// How the login authenticates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlAuth {
    /// SQL Server authentication: a user and a password.
    Sql {
        user: String,
        password: PasswordSource,
    },
    /// Integrated Windows authentication (the process's Windows identity), where tiberius
    /// offers it: on Windows builds.
    Integrated,
}

/// A store on SQL Server. No secret: safe to print, log and pass around.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqlServerConfig {
    pub host: String,
    pub port: u16,
    pub database: String,
    pub auth: SqlAuth,
    pub encrypt: Encryption,
    /// Accept any server certificate (self-signed test servers).
    pub trust_server_certificate: bool,
    /// A CA certificate (PEM) to check the server's certificate against.
    pub ca_file: Option<PathBuf>,
    /// How long connecting and logging in may take.
    pub connect_timeout: std::time::Duration,
    /// How long the server may stay silent while answering one statement.
    pub command_timeout: std::time::Duration,
    /// How long a writer waits for another writer's lock.
    pub lock_timeout: std::time::Duration,
}

impl SqlServerConfig {
    /// A location with the defaults: port 1433, TLS required, SQL authentication as `user`
    /// with the password from [`PASSWORD_ENV`].
    pub fn new(
        host: impl Into<String>,
        database: impl Into<String>,
        user: impl Into<String>,
    ) -> Self {
        Self {
            host: host.into(),
            port: DEFAULT_PORT,
            database: database.into(),
            auth: SqlAuth::Sql {
                user: user.into(),
                password: PasswordSource::Env(PASSWORD_ENV.into()),
            },
            encrypt: Encryption::Required,
            trust_server_certificate: false,
            ca_file: None,
            connect_timeout: std::time::Duration::from_secs(15),
            command_timeout: std::time::Duration::from_secs(120),
            lock_timeout: std::time::Duration::from_secs(30),
        }
    }

    /// `HOST:PORT`, as messages name the server.
    pub fn server(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    pub fn user(&self) -> Option<&str> {
        match &self.auth {
            SqlAuth::Sql { user, .. } => Some(user),
            SqlAuth::Integrated => None,
        }
    }

    /// The same server with another database (e.g. `master` to create one).
    pub fn with_database(&self, database: &str) -> Self {
        Self {
            database: database.to_owned(),
            ..self.clone()
        }
    }

    pub(crate) fn is_loopback(&self) -> bool {
        let host = self.host.to_ascii_lowercase();
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// Parses `mssql://[USER@]HOST[:PORT]/DATABASE[?k=v&...]`. Besides `encrypt` and
    /// `trust_server_certificate`, the query may hold what a `[store]` table says:
    /// `password_env`, `password_file`, `ca_file`, `auth=integrated`, and the timeouts
    /// `connect_timeout`, `command_timeout`, `lock_timeout` (seconds). A password in the URL is
    /// refused (it would end up in logs and shell histories).
    pub fn parse_url(url: &str) -> Result<Self, StoreError> {
        let invalid = |reason: String| StoreError::InvalidLocation {
            location: redact_url(url),
            reason,
        };
        let rest =
            strip_scheme(url).ok_or_else(|| invalid(format!("it does not start with {SCHEME}")))?;
        let (main, query) = match rest.split_once('?') {
            Some((main, query)) => (main, Some(query)),
            None => (rest, None),
        };
        let (authority, database) = main.split_once('/').ok_or_else(|| {
            invalid("it names no database: use mssql://[USER@]HOST[:PORT]/DATABASE".into())
        })?;
        let database = percent_decode(database.trim_end_matches('/')).map_err(invalid)?;
        check_database_name(&database).map_err(invalid)?;
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => {
                if userinfo.contains(':') {
                    return Err(invalid(format!(
                        "it holds a password: put the password in {PASSWORD_ENV} (or password_env / password_file in the config's [store] table), never in the URL"
                    )));
                }
                (Some(percent_decode(userinfo).map_err(invalid)?), hostport)
            }
            None => (None, authority),
        };
        let (host, port) = split_host_port(hostport).map_err(invalid)?;
        let mut config = Self::new(host, database, user.clone().unwrap_or_default());
        config.port = port;
        let mut password: Option<PasswordSource> = None;
        let mut integrated = false;
        for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let value = percent_decode(value).map_err(invalid)?;
            match key.to_ascii_lowercase().as_str() {
                "encrypt" => {
                    config.encrypt = Encryption::parse(&value).ok_or_else(|| {
                        invalid(format!("encrypt={value}: use required, on or off"))
                    })?;
                }
                "trust_server_certificate" | "trustservercertificate" => {
                    config.trust_server_certificate = parse_bool(&value).ok_or_else(|| {
                        invalid(format!(
                            "trust_server_certificate={value}: use true or false"
                        ))
                    })?;
                }
                "ca_file" => config.ca_file = Some(PathBuf::from(value)),
                "password_env" => password = Some(PasswordSource::Env(value)),
                "password_file" => password = Some(PasswordSource::File(PathBuf::from(value))),
                "auth" if value.eq_ignore_ascii_case("integrated") => integrated = true,
                "auth" if value.eq_ignore_ascii_case("sql") => integrated = false,
                "connect_timeout" => {
                    config.connect_timeout = parse_secs(&value).map_err(invalid)?
                }
                "command_timeout" => {
                    config.command_timeout = parse_secs(&value).map_err(invalid)?
                }
                "lock_timeout" => config.lock_timeout = parse_secs(&value).map_err(invalid)?,
                "password" | "pwd" => {
                    return Err(invalid(format!(
                        "it holds a password: put the password in {PASSWORD_ENV}, never in the URL"
                    )));
                }
                other => {
                    return Err(invalid(format!(
                        "unknown setting '{other}' (known: encrypt, trust_server_certificate, ca_file, password_env, password_file, auth, connect_timeout, command_timeout, lock_timeout)"
                    )));
                }
            }
        }
        config.auth = match (integrated, user) {
            (true, _) => SqlAuth::Integrated,
            (false, Some(user)) if !user.is_empty() => SqlAuth::Sql {
                user,
                password: password.unwrap_or_else(|| PasswordSource::Env(PASSWORD_ENV.into())),
            },
            (false, _) => {
                return Err(invalid(
                    "it names no user: use mssql://USER@HOST/DATABASE (or auth=integrated for Windows authentication)".into(),
                ));
            }
        };
        config.check()?;
        Ok(config)
    }

    /// Refuses settings that cannot work or would be unsafe.
    pub fn check(&self) -> Result<(), StoreError> {
        let invalid = |reason: String| StoreError::InvalidLocation {
            location: self.to_string(),
            reason,
        };
        if self.host.is_empty() {
            return Err(invalid("it names no server".into()));
        }
        check_database_name(&self.database).map_err(invalid)?;
        if self.encrypt == Encryption::None && !self.is_loopback() {
            return Err(invalid(
                "encrypt=none (no TLS, the login in clear) is accepted for a server on this machine only: use encrypt=off, on or required"
                    .into(),
            ));
        }
        Ok(())
    }

    /// The URL form, which [`SqlServerConfig::parse_url`] reads back (no password).
    pub fn to_url(&self) -> String {
        let mut url = String::from(SCHEME);
        if let SqlAuth::Sql { user, .. } = &self.auth {
            url.push_str(&percent_encode(user));
            url.push('@');
        }
        if self.host.contains(':') {
            url.push_str(&format!("[{}]", self.host));
        } else {
            url.push_str(&self.host);
        }
        if self.port != DEFAULT_PORT {
            url.push_str(&format!(":{}", self.port));
        }
        url.push('/');
        url.push_str(&percent_encode(&self.database));
        let defaults = Self::new("", "", "");
        let mut query = vec![format!("encrypt={}", self.encrypt.as_str())];
        if self.trust_server_certificate {
            query.push("trust_server_certificate=true".into());
        }
        if let Some(ca) = &self.ca_file {
            query.push(format!("ca_file={}", percent_encode(&ca.to_string_lossy())));
        }
        match &self.auth {
            SqlAuth::Integrated => query.push("auth=integrated".into()),
            SqlAuth::Sql { password, .. } => match password {
                PasswordSource::Env(name) if name == PASSWORD_ENV => {}
                PasswordSource::Env(name) => {
                    query.push(format!("password_env={}", percent_encode(name)))
                }
                PasswordSource::File(path) => query.push(format!(
                    "password_file={}",
                    percent_encode(&path.to_string_lossy())
                )),
            },
        }
        for (name, value, default) in [
            (
                "connect_timeout",
                self.connect_timeout,
                defaults.connect_timeout,
            ),
            (
                "command_timeout",
                self.command_timeout,
                defaults.command_timeout,
            ),
            ("lock_timeout", self.lock_timeout, defaults.lock_timeout),
        ] {
            if value != default {
                query.push(format!("{name}={}", value.as_secs()));
            }
        }
        url.push('?');
        url.push_str(&query.join("&"));
        url
    }
}

impl fmt::Display for SqlServerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_url())
    }
}

impl StoreLocation {
    /// What `--store`, `SSTORE_STORE` or a path-valued setting names: an `mssql://` URL, or
    /// else a path to an SQLite file.
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        if strip_scheme(text).is_some() {
            Ok(StoreLocation::SqlServer(SqlServerConfig::parse_url(text)?))
        } else {
            Ok(StoreLocation::Sqlite(PathBuf::from(text)))
        }
    }

    /// Reads a location carried as a path (the form jobs, requests and the service keep):
    /// the inverse of [`StoreLocation::to_locator`].
    pub fn from_locator(path: &Path) -> Result<Self, StoreError> {
        match path.to_str() {
            Some(text) if strip_scheme(text).is_some() => Self::parse(text),
            _ => Ok(StoreLocation::Sqlite(path.to_owned())),
        }
    }

    /// The location as a path-shaped value: the file itself, or the URL.
    pub fn to_locator(&self) -> PathBuf {
        match self {
            StoreLocation::Sqlite(path) => path.clone(),
            StoreLocation::SqlServer(config) => PathBuf::from(config.to_url()),
        }
    }

    /// The config's `store` setting: a path or URL string (a relative path is taken from
    /// `base`), or a `[store]` table: `kind = "sqlite"` with `path`, or `kind = "sqlserver"`
    /// with `server`, `port`, `database`, `user`, `password_env` / `password_file`, `encrypt`,
    /// `trust_server_certificate`, `ca_file`, `auth` (`sql` or `integrated`) and the timeouts
    /// `connect_timeout_secs`, `command_timeout_secs`, `lock_timeout_secs`.
    pub fn from_config(value: toml::Value, base: &Path) -> Result<Self, StoreError> {
        let invalid = |reason: String| StoreError::InvalidLocation {
            location: "[store]".into(),
            reason,
        };
        let mut table = match value {
            toml::Value::String(text) => {
                return match Self::parse(&text)? {
                    StoreLocation::Sqlite(path) => Ok(StoreLocation::Sqlite(base.join(path))),
                    server => Ok(server),
                };
            }
            toml::Value::Table(table) => table,
            other => {
                return Err(invalid(format!(
                    "`store` must be a path, an mssql:// URL or a table, not {}",
                    other.type_str()
                )));
            }
        };
        let mut take = |key: &str| table.remove(key);
        let string = |key: &str, v: Option<toml::Value>| -> Result<Option<String>, StoreError> {
            match v {
                None => Ok(None),
                Some(toml::Value::String(s)) => Ok(Some(s)),
                Some(other) => Err(invalid(format!(
                    "`{key}` must be a string, not {}",
                    other.type_str()
                ))),
            }
        };
        let kind = string("kind", take("kind"))?.unwrap_or_else(|| "sqlite".into());
        let location = match kind.as_str() {
            "sqlite" => {
                let path = string("path", take("path"))?
                    .ok_or_else(|| invalid("kind = \"sqlite\" needs `path`".into()))?;
                StoreLocation::Sqlite(base.join(path))
            }
            "sqlserver" | "mssql" => {
                let server = string("server", take("server"))?
                    .ok_or_else(|| invalid("kind = \"sqlserver\" needs `server`".into()))?;
                let database = string("database", take("database"))?
                    .ok_or_else(|| invalid("kind = \"sqlserver\" needs `database`".into()))?;
                let user = string("user", take("user"))?;
                let mut config =
                    SqlServerConfig::new(server, database, user.clone().unwrap_or_default());
                if let Some(port) = take("port") {
                    config.port = port
                        .as_integer()
                        .and_then(|p| u16::try_from(p).ok())
                        .filter(|p| *p != 0)
                        .ok_or_else(|| invalid(format!("`port` = {port} is not a port number")))?;
                }
                if let Some(text) = string("encrypt", take("encrypt"))? {
                    config.encrypt = Encryption::parse(&text).ok_or_else(|| {
                        invalid(format!("encrypt = \"{text}\": use required, on or off"))
                    })?;
                }
                if let Some(v) = take("trust_server_certificate") {
                    config.trust_server_certificate = v.as_bool().ok_or_else(|| {
                        invalid("`trust_server_certificate` must be true or false".into())
                    })?;
                }
                config.ca_file = string("ca_file", take("ca_file"))?.map(|p| base.join(p));
                for (key, slot) in [
                    ("connect_timeout_secs", &mut config.connect_timeout),
                    ("command_timeout_secs", &mut config.command_timeout),
                    ("lock_timeout_secs", &mut config.lock_timeout),
                ] {
                    if let Some(v) = take(key) {
                        *slot = v
                            .as_integer()
                            .and_then(|s| u64::try_from(s).ok())
                            .filter(|s| *s > 0)
                            .map(std::time::Duration::from_secs)
                            .ok_or_else(|| {
                                invalid(format!("`{key}` must be a number of seconds"))
                            })?;
                    }
                }
                let password_env = string("password_env", take("password_env"))?;
                let password_file = string("password_file", take("password_file"))?;
                let auth = string("auth", take("auth"))?;
                config.auth = match (auth.as_deref(), user) {
                    (Some("integrated"), _) => SqlAuth::Integrated,
                    (Some("sql") | None, Some(user)) if !user.is_empty() => SqlAuth::Sql {
                        user,
                        password: match (password_env, password_file) {
                            (Some(_), Some(_)) => {
                                return Err(invalid(
                                    "give `password_env` or `password_file`, not both".into(),
                                ));
                            }
                            (_, Some(file)) => PasswordSource::File(base.join(file)),
                            (Some(env), None) => PasswordSource::Env(env),
                            (None, None) => PasswordSource::Env(PASSWORD_ENV.into()),
                        },
                    },
                    (Some("sql") | None, _) => {
                        return Err(invalid(
                            "kind = \"sqlserver\" needs `user` (or auth = \"integrated\")".into(),
                        ));
                    }
                    (Some(other), _) => {
                        return Err(invalid(format!(
                            "auth = \"{other}\": use sql or integrated"
                        )));
                    }
                };
                config.check()?;
                StoreLocation::SqlServer(config)
            }
            other => {
                return Err(invalid(format!(
                    "kind = \"{other}\" is not a store kind (use sqlite or sqlserver)"
                )));
            }
        };
        if let Some(key) = table.keys().next() {
            let hint = if key == "password" {
                format!(
                    ": never put the password in the config; use password_env (default {PASSWORD_ENV}) or password_file"
                )
            } else {
                String::new()
            };
            return Err(invalid(format!("unknown key `{key}`{hint}")));
        }
        Ok(location)
    }

    pub fn is_sql_server(&self) -> bool {
        matches!(self, StoreLocation::SqlServer(_))
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreLocation::Sqlite(path) => write!(f, "{}", path.display()),
            StoreLocation::SqlServer(config) => write!(f, "{config}"),
        }
    }
}

impl From<PathBuf> for StoreLocation {
    fn from(path: PathBuf) -> Self {
        StoreLocation::Sqlite(path)
    }
}

impl From<&Path> for StoreLocation {
    fn from(path: &Path) -> Self {
        StoreLocation::Sqlite(path.to_owned())
    }
}

fn strip_scheme(text: &str) -> Option<&str> {
    let head = text.get(..SCHEME.len())?;
    head.eq_ignore_ascii_case(SCHEME)
        .then(|| &text[SCHEME.len()..])
}

/// The URL with anything that looks like a password cut out, for error messages.
fn redact_url(url: &str) -> String {
    let Some(rest) = strip_scheme(url) else {
        return url.to_owned();
    };
    let (main, _) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = main.split_once('/').unwrap_or((main, ""));
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{user}@{host}")
        }
        None => authority.to_owned(),
    };
    format!("{SCHEME}{authority}/{path}")
}

fn split_host_port(text: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("'{text}': an IPv6 address needs a closing ']'"))?;
        (host.to_owned(), after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (text.to_owned(), None),
        }
    };
    let port = match port {
        None => DEFAULT_PORT,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("'{p}' is not a port number"))?,
    };
    if host.is_empty() {
        return Err("it names no server".into());
    }
    Ok((host, port))
}

fn check_database_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("it names no database: use mssql://[USER@]HOST[:PORT]/DATABASE".into());
    }
    if name.chars().count() > 128 {
        return Err("the database name is longer than 128 characters".into());
    }
    if name.chars().any(|c| c.is_control() || c == '/') {
        return Err(format!(
            "the database name '{}' contains a control character or '/'",
            name.escape_debug()
        ));
    }
    Ok(())
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" | "" => Some(true),
        "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

fn parse_secs(text: &str) -> Result<std::time::Duration, String> {
    text.parse::<u64>()
        .ok()
        .filter(|s| *s > 0)
        .map(std::time::Duration::from_secs)
        .ok_or_else(|| format!("'{text}' is not a number of seconds"))
}

fn percent_decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = text
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| format!("'{text}' has a bad %-escape"))?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("'{text}' is not UTF-8 once decoded"))
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse_with_their_defaults_and_round_trip() {
        let c = SqlServerConfig::parse_url("mssql://sstore@db.example.com/Vault").unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.database.as_str()),
            ("db.example.com", 1433, "Vault")
        );
        assert_eq!(c.user(), Some("sstore"));
        assert_eq!(c.encrypt, Encryption::Required);
        assert!(!c.trust_server_certificate);
        assert_eq!(SqlServerConfig::parse_url(&c.to_url()).unwrap(), c);

        let c = SqlServerConfig::parse_url(
            "MSSQL://CONTOSO%5Csvc@[::1]:14330/New%20DB?encrypt=off&trust_server_certificate=true&password_file=%2Frun%2Fpw&lock_timeout=5",
        )
        .unwrap();
        assert_eq!(
            (c.host.as_str(), c.port, c.database.as_str()),
            ("::1", 14330, "New DB")
        );
        assert_eq!(c.user(), Some("CONTOSO\\svc"));
        assert_eq!(c.encrypt, Encryption::Off);
        assert!(c.trust_server_certificate);
        assert_eq!(c.lock_timeout, std::time::Duration::from_secs(5));
        assert!(
            matches!(&c.auth, SqlAuth::Sql { password: PasswordSource::File(p), .. } if p == Path::new("/run/pw"))
        );
        assert_eq!(c.server(), "[::1]:14330");
        assert_eq!(SqlServerConfig::parse_url(&c.to_url()).unwrap(), c);
        let located =
            StoreLocation::from_locator(&StoreLocation::SqlServer(c.clone()).to_locator()).unwrap();
        assert_eq!(located, StoreLocation::SqlServer(c));
    }

    #[test]
    fn bad_urls_are_refused_without_echoing_a_password() {
        for (url, says) in [
            ("mssql://sa:S3cret-Pw!@host/db", "never in the URL"),
            ("mssql://sa@host/db?password=S3cret-Pw!", "never in the URL"),
            ("mssql://sa@host", "names no database"),
            ("mssql://sa@host/", "names no database"),
            ("mssql://host/db", "names no user"),
            ("mssql://sa@host:0/db", "not a port"),
            ("mssql://sa@host/db?encrypt=maybe", "encrypt=maybe"),
            ("mssql://sa@host/db?colour=blue", "unknown setting 'colour'"),
            (
                "mssql://sa@db.example.com/db?encrypt=none",
                "this machine only",
            ),
        ] {
            let err = StoreLocation::parse(url).unwrap_err().to_string();
            assert!(err.contains(says), "{url}: {err}");
            assert!(!err.contains("S3cret"), "{url}: {err}");
        }
        assert!(StoreLocation::parse("mssql://sa@127.0.0.1:4000/db?encrypt=none").is_ok());
    }

    #[test]
    fn plain_paths_are_sqlite_files() {
        for path in [
            "store.db",
            "/var/lib/sstore/store.db",
            "C:\\data\\store.db",
            "mssql-store.db",
        ] {
            assert_eq!(
                StoreLocation::parse(path).unwrap(),
                StoreLocation::Sqlite(path.into())
            );
        }
    }
}
