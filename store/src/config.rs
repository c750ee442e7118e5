//! How a binary reaches ClickHouse, where devices, sealed events, proofs and
//! epochs live, and in which database.
//!
//! Each service is its own ClickHouse user with only the rights it needs
//! (deploy/local/clickhouse/users.xml, deploy/prod/clickhouse/users.xml). A
//! password is best given as a file (a mounted secret): a flag's value is in the
//! process list for every local user to read.

use std::fmt;
use std::path::{Path, PathBuf};

use clap::Args;

/// How to reach ClickHouse; every flag can also come from the environment.
#[derive(Args, Debug, Clone)]
pub struct ClickHouseArgs {
    /// ClickHouse HTTP endpoint.
    #[arg(
        long,
        env = "SEALTRAIL_CLICKHOUSE_URL",
        default_value = "http://127.0.0.1:8123",
        global = true
    )]
    pub clickhouse_url: String,
    /// ClickHouse user.
    #[arg(
        long,
        env = "SEALTRAIL_CLICKHOUSE_USER",
        default_value = "default",
        global = true
    )]
    pub clickhouse_user: String,
    /// ClickHouse password (empty for the local default user). Prefer
    /// --clickhouse-password-file or the environment: a flag shows in `ps`.
    #[arg(
        long,
        env = "SEALTRAIL_CLICKHOUSE_PASSWORD",
        default_value = "",
        hide_env_values = true,
        global = true
    )]
    pub clickhouse_password: String,
    /// File holding the ClickHouse password, e.g. a mounted secret (one trailing
    /// newline is dropped); instead of --clickhouse-password.
    #[arg(
        long,
        env = "SEALTRAIL_CLICKHOUSE_PASSWORD_FILE",
        value_name = "FILE",
        value_parser = PasswordFile::read,
        conflicts_with = "clickhouse_password",
        global = true
    )]
    pub clickhouse_password_file: Option<PasswordFile>,
    /// The database sealtrail's tables are in (`sealer migrate` creates it).
    #[arg(
        long,
        env = "SEALTRAIL_CLICKHOUSE_DATABASE",
        default_value = "sealtrail",
        value_parser = database_name,
        global = true
    )]
    pub clickhouse_database: String,
}

/// A database name that needs no quoting: it is put in SQL as it is.
pub fn database_name(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "'{s}' is not a database name: letters, digits and _, starting with a letter or _, at most 64"
        ))
    }
}

impl ClickHouseArgs {
    /// The password: the file's if one was named, else the plain one.
    pub fn password(&self) -> &str {
        match &self.clickhouse_password_file {
            Some(file) => file.password(),
            None => &self.clickhouse_password,
        }
    }

    /// A client speaking plain RowBinary: the server may be as old as 18.16, which
    /// has no RowBinaryWithNamesAndTypes for the crate's schema validation. It
    /// sends no settings of its own, so it works for `readonly=1` users too (such
    /// a user may not change any setting, and the server refuses the whole query
    /// if one is sent); queries that need a setting add it themselves.
    /// A client of sealtrail's database.
    pub fn client(&self) -> clickhouse::Client {
        self.server().with_database(&self.clickhouse_database)
    }

    /// A client naming no database (the migrations create it).
    pub fn server(&self) -> clickhouse::Client {
        clickhouse::Client::default()
            .with_url(&self.clickhouse_url)
            .with_user(&self.clickhouse_user)
            .with_password(self.password())
            .with_validation(false)
    }
}

/// A password read from a file when the arguments are parsed, so a missing or
/// unreadable file stops the command at once with its path. Debug shows the path,
/// never the password.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordFile {
    path: PathBuf,
    password: String,
}

impl PasswordFile {
    /// Reads `path` (a clap value parser).
    pub fn read(path: &str) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading the password file {path}: {e}"))?;
        Self::from_text(Path::new(path), &text)
    }

    /// The password in `text`, the contents of `path`: all of it but one trailing
    /// newline (`\n` or `\r\n`). Refused when empty or when more lines remain (an
    /// HTTP header cannot carry them).
    pub fn from_text(path: &Path, text: &str) -> Result<Self, String> {
        let password = text
            .strip_suffix('\n')
            .map(|t| t.strip_suffix('\r').unwrap_or(t))
            .unwrap_or(text);
        if password.is_empty() {
            return Err(format!("the password file {} is empty", path.display()));
        }
        if password.contains(['\n', '\r']) {
            return Err(format!(
                "the password file {} holds more than one line",
                path.display()
            ));
        }
        Ok(Self {
            path: path.to_path_buf(),
            password: password.to_string(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn password(&self) -> &str {
        &self.password
    }
}

impl fmt::Debug for PasswordFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// The password file `deploy/local/up` writes for ClickHouse user `user` of the
/// local stack whose state folder is `state`.
pub fn local_password_file(state: &Path, user: &str) -> PathBuf {
    state
        .join("clickhouse/users")
        .join(format!("{user}.password"))
}

/// The password of `user`: `given` (a flag or variable) if set, else `file`'s,
/// else the local stack's file for `user` (under $SEALTRAIL_STATE_DIR) if there
/// is one, else empty.
pub fn resolve_password(
    given: Option<&str>,
    file: Option<&PasswordFile>,
    user: &str,
) -> Result<String, String> {
    if let Some(p) = given {
        return Ok(p.to_string());
    }
    if let Some(f) = file {
        return Ok(f.password().to_string());
    }
    let local = local_password_file(&schemas::kafka::state_dir(), user);
    match std::fs::read_to_string(&local) {
        Ok(text) => Ok(PasswordFile::from_text(&local, &text)?.password),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(format!(
            "reading the password file {}: {e}",
            local.display()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        clickhouse: ClickHouseArgs,
    }

    #[test]
    fn a_password_file_loses_one_trailing_newline_only() {
        let p = Path::new("p");
        let read = |t: &str| PasswordFile::from_text(p, t).map(|f| f.password().to_string());
        assert_eq!(read("s3cret\n").unwrap(), "s3cret");
        assert_eq!(read("s3cret\r\n").unwrap(), "s3cret");
        assert_eq!(read("s3cret").unwrap(), "s3cret");
        assert_eq!(read(" s3 cret \n").unwrap(), " s3 cret ");
        assert!(read("").unwrap_err().contains("is empty"));
        assert!(read("\n").unwrap_err().contains("is empty"));
        assert!(read("a\n\n").unwrap_err().contains("more than one line"));
        assert!(read("a\nb\n").unwrap_err().contains("more than one line"));
        let f = PasswordFile::from_text(p, "s3cret\n").unwrap();
        assert!(
            !format!("{f:?}").contains("s3cret"),
            "Debug hides the password"
        );
    }

    #[test]
    fn the_password_file_flag_reads_the_file_and_conflicts_with_the_password() {
        let dir = std::env::temp_dir().join(format!("ch-password-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("sealer.password");
        std::fs::write(&file, "s3cret\n").unwrap();
        let path = file.to_str().unwrap();

        let cli = Cli::try_parse_from(["x", "--clickhouse-password-file", path]).unwrap();
        assert_eq!(cli.clickhouse.password(), "s3cret");
        let cli = Cli::try_parse_from(["x", "--clickhouse-password", "plain"]).unwrap();
        assert_eq!(cli.clickhouse.password(), "plain");
        let both = Cli::try_parse_from([
            "x",
            "--clickhouse-password",
            "plain",
            "--clickhouse-password-file",
            path,
        ]);
        assert!(both.is_err(), "both a password and a password file");
        let missing = Cli::try_parse_from([
            "x",
            "--clickhouse-password-file",
            dir.join("nobody").to_str().unwrap(),
        ])
        .unwrap_err()
        .to_string();
        assert!(missing.contains("nobody"), "{missing}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_given_password_wins_then_the_file() {
        let f = PasswordFile::from_text(Path::new("f"), "from-file\n").unwrap();
        assert_eq!(
            resolve_password(Some("given"), Some(&f), "api").unwrap(),
            "given"
        );
        assert_eq!(
            resolve_password(None, Some(&f), "api").unwrap(),
            "from-file"
        );
    }

    #[test]
    fn the_database_is_a_setting_and_only_a_plain_name() {
        let cli = Cli::try_parse_from(["t"]).unwrap();
        assert_eq!(cli.clickhouse.clickhouse_database, "sealtrail");
        let cli = Cli::try_parse_from(["t", "--clickhouse-database", "sealtrail_test_7"]).unwrap();
        assert_eq!(cli.clickhouse.clickhouse_database, "sealtrail_test_7");
        for bad in [
            "",
            "a.b",
            "x; DROP TABLE devices",
            "`x`",
            "1abc",
            &"a".repeat(65),
        ] {
            let err = Cli::try_parse_from(["t", "--clickhouse-database", bad])
                .unwrap_err()
                .to_string();
            assert!(err.contains("is not a database name"), "{bad}: {err}");
        }
    }
}
