//! The ClickHouse migrations, embedded from `schemas/clickhouse/NNN_name.sql`.
//!
//! Applied in version order, each exactly once, by `sealer migrate` (which
//! `deploy/local/up` runs). An applied migration is never edited: its checksum is
//! recorded and a changed file is refused; a change to the schema is a new file.

use sha2::{Digest, Sha256};

/// One numbered DDL file.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: u32,
    pub name: &'static str,
    pub sql: &'static str,
}

macro_rules! migration {
    ($version:literal, $name:literal) => {
        Migration {
            version: $version,
            name: $name,
            sql: include_str!(concat!("../clickhouse/", $name, ".sql")),
        }
    };
}

/// Every migration, in the order it is applied.
pub const MIGRATIONS: &[Migration] = &[
    migration!(1, "001_devices"),
    migration!(2, "002_sealed_events_and_epochs"),
    migration!(3, "003_seal_timings"),
    migration!(4, "004_events_by_id"),
    migration!(5, "005_device_key_history"),
    migration!(6, "006_partition_by_sealing_month"),
    migration!(7, "007_epoch_leases"),
    migration!(8, "008_epoch_tiles"),
    migration!(9, "009_epoch_tiles_small_granules"),
    migration!(10, "010_epcis_events"),
    migration!(11, "011_events_by_epc"),
];

/// Where the applied versions are recorded.
/// The table that records what ran, in the database migrated.
pub const VERSION_TABLE: &str = "schema_migrations";

/// The database the migration files name; the runner puts the configured one
/// in its place (`in_database`), so one set of files serves every database.
pub const FILE_DATABASE: &str = "sealtrail";

impl Migration {
    /// Hex SHA-256 of the file, recorded when applied so later edits are caught.
    pub fn checksum(&self) -> String {
        Sha256::digest(self.sql.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// The file's statements. ClickHouse's HTTP interface runs one statement per
    /// request, so files separate statements with a `;` that ends a line.
    /// The statements for `database`: each `sealtrail.` qualifier of the file
    /// becomes `database.` (the checksum stays the file's).
    pub fn statements_in(&self, database: &str) -> Vec<String> {
        let from = format!("{FILE_DATABASE}.");
        let to = format!("{database}.");
        self.statements()
            .into_iter()
            .map(|s| s.replace(&from, &to))
            .collect()
    }

    pub fn statements(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut current = String::new();
        for line in self.sql.lines() {
            let trimmed = line.trim();
            if trimmed.starts_with("--") || trimmed.is_empty() {
                continue;
            }
            current.push_str(line);
            current.push('\n');
            if trimmed.ends_with(';') {
                let stmt = current.trim().trim_end_matches(';').trim().to_string();
                if !stmt.is_empty() {
                    out.push(stmt);
                }
                current.clear();
            }
        }
        let rest = current.trim();
        if !rest.is_empty() {
            out.push(rest.to_string());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_and_match_file_names() {
        for pair in MIGRATIONS.windows(2) {
            assert!(pair[0].version < pair[1].version, "{pair:?}");
        }
        for m in MIGRATIONS {
            let prefix: u32 = m.name[..3].parse().expect("NNN_ prefix");
            assert_eq!(prefix, m.version, "{}", m.name);
        }
    }

    #[test]
    fn every_file_in_the_folder_is_listed() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/clickhouse");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".sql"))
            .map(|n| n.trim_end_matches(".sql").to_string())
            .collect();
        on_disk.sort();
        let listed: Vec<String> = MIGRATIONS.iter().map(|m| m.name.to_string()).collect();
        assert_eq!(on_disk, listed);
    }

    #[test]
    fn statements_split_on_semicolon_line_ends_and_skip_comments() {
        let m = Migration {
            version: 9,
            name: "009_x",
            sql: "-- a comment; not a statement\nCREATE TABLE a (x String DEFAULT ';')\nENGINE = Log;\n\nSELECT 1;\nSELECT 2",
        };
        assert_eq!(
            m.statements(),
            vec![
                "CREATE TABLE a (x String DEFAULT ';')\nENGINE = Log",
                "SELECT 1",
                "SELECT 2"
            ]
        );
    }

    #[test]
    fn checksum_changes_with_the_text() {
        let a = Migration {
            version: 1,
            name: "001_a",
            sql: "SELECT 1",
        };
        let b = Migration {
            version: 1,
            name: "001_a",
            sql: "SELECT 2",
        };
        assert_eq!(a.checksum().len(), 64);
        assert_ne!(a.checksum(), b.checksum());
    }

    #[test]
    fn statements_name_the_database_they_are_given() {
        let m = Migration {
            version: 9,
            name: "009_x",
            sql:
                "CREATE TABLE sealtrail.a (x UInt8) ENGINE = Log;\n\
                  CREATE MATERIALIZED VIEW sealtrail.v TO sealtrail.b AS SELECT x FROM sealtrail.a;",
        };
        assert_eq!(
            m.statements_in("t_1"),
            [
                "CREATE TABLE t_1.a (x UInt8) ENGINE = Log",
                "CREATE MATERIALIZED VIEW t_1.v TO t_1.b AS SELECT x FROM t_1.a"
            ]
        );
        assert_eq!(m.statements_in(FILE_DATABASE), m.statements());
        // Every file names its tables in sealtrail, so each moves whole.
        for m in MIGRATIONS {
            for stmt in m.statements_in("other_db") {
                assert!(!stmt.contains("sealtrail."), "{}: {stmt}", m.name);
            }
        }
    }
}
