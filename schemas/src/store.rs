//! How a binary reaches ClickHouse, where devices, sealed events, proofs and epochs live.

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
    /// ClickHouse password (empty for the local default user).
    #[arg(
        long,
        env = "SEALTRAIL_CLICKHOUSE_PASSWORD",
        default_value = "",
        hide_env_values = true,
        global = true
    )]
    pub clickhouse_password: String,
}

impl ClickHouseArgs {
    /// A client speaking plain RowBinary: the server may be as old as 18.16, which
    /// has no RowBinaryWithNamesAndTypes for the crate's schema validation.
    pub fn client(&self) -> clickhouse::Client {
        clickhouse::Client::default()
            .with_url(&self.clickhouse_url)
            .with_user(&self.clickhouse_user)
            .with_password(&self.clickhouse_password)
            .with_validation(false)
    }
}
