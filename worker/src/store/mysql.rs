//! MySQL/MariaDB: the production database (`mysql://user:pass@host[:port]/db`).
//!
//! Sessions run at READ COMMITTED: locking reads (`FOR UPDATE`) then take no gap
//! locks, so two ingests racing to create the same stream meet on the unique
//! `open_key` (one fails and retries, joining the other's stream) rather than
//! deadlocking. Claims use `FOR UPDATE SKIP LOCKED` (MariaDB ≥ 10.6, MySQL ≥ 8.0).

use super::engine::SqlStore;
use super::sql::{map_sqlx_error, sqlx_conn, Backend, DbFault, Limits};
use super::{redact_url, OpenOptions, Store, StoreError};
use async_trait::async_trait;
use sqlx::error::DatabaseError;
use sqlx::mysql::{
    MySql, MySqlConnectOptions, MySqlDatabaseError, MySqlPool, MySqlPoolOptions, MySqlRow,
};
use sqlx::Executor;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The MySQL/MariaDB store.
pub type MySqlStore = SqlStore<MySqlBackend>;

/// Connections and dialect of MySQL/MariaDB.
pub struct MySqlBackend {
    pool: MySqlPool,
}

/// Errors about the database itself rather than about the rows being written are
/// [`DbFault::Health`]: the same statement succeeds once the database is healthy
/// again, so the caller keeps its batch and retries (never dead-letters it). What a
/// healthy database would refuse for this data alone (1406 too long, 1366 bad
/// string, 1264 out of range, 1292 bad date, 1048 null) is [`DbFault::Data`], and
/// isolates the message.
fn classify(e: &dyn DatabaseError) -> DbFault {
    let Some(number) = e
        .try_downcast_ref::<MySqlDatabaseError>()
        .map(|e| e.number())
    else {
        return DbFault::Data;
    };
    match number {
        // Lost races: lock wait timeout, deadlock, record changed (snapshot
        // isolation), lock table full, too many active transactions.
        1205 | 1213 | 1020 | 1206 | 1637 => DbFault::Race,
        // max_statement_time (MariaDB) / max_execution_time (MySQL) ran out.
        1969 | 3024 => DbFault::Timeout,
        // The login refused: a wrong or rotated password, no such user or database
        // access (see StoreError::AccessDenied).
        1044 | 1045 | 1698 => DbFault::Access,
        // The server going away or refusing work: too many connections, shutdown,
        // connection killed, aborted or timed out, network errors, host blocked,
        // user limits, cluster node not ready (WSREP).
        1040 | 1053 | 1927 | 4031 | 1152 | 1158 | 1159 | 1160 | 1161 | 1129 | 1203 | 1226
        | 1047
        // Rights taken away (a revoked grant).
        | 1142 | 1143 | 1227
        // Read-only (a failover, --read-only, a read-only transaction, a global
        // read lock).
        | 1290 | 1792 | 1836 | 1223
        // The schema not there (not migrated, dropped, the wrong database).
        | 1049 | 1054 | 1109 | 1146
        // Storage: disk or table full, storage engine and file errors, out of
        // memory, commit or rollback failed.
        | 1021 | 1114 | 1030 | 1034 | 1035 | 1036 | 1017 | 3 | 1037 | 1038 | 1041 | 1180
        | 1181 => DbFault::Health,
        _ => DbFault::Data,
    }
}

fn map_err(e: sqlx::Error) -> StoreError {
    map_sqlx_error(e, classify)
}

sqlx_conn!(MySqlConn, MySql, MySqlRow, map_err);

#[async_trait]
impl Backend for MySqlBackend {
    type Conn = MySqlConn;
    const NAME: &'static str = "mysql";
    const LIMITS: Limits = Limits {
        max_binds: 65_535,
        max_bytes: 4 << 20,
    };
    const ON_CONFLICT_SKIP: &'static str = " ON DUPLICATE KEY UPDATE id = id";
    const FOR_UPDATE: &'static str = " FOR UPDATE";
    const FOR_UPDATE_SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";
    const RETURNING: bool = false;
    const TRAIT_EQUALITY_AS_IN: bool = false;
    const TALLY_SHARDS: i64 = 8;
    const TRAITS_AS_JSON: bool = false;

    fn upsert_tail(_pk: &str, cols: &[&str]) -> String {
        let sets: Vec<String> = cols.iter().map(|c| format!("{c} = VALUES({c})")).collect();
        format!(" ON DUPLICATE KEY UPDATE {}", sets.join(", "))
    }

    fn add_tail(_pk: &str, col: &str) -> String {
        format!(" ON DUPLICATE KEY UPDATE {col} = {col} + VALUES({col})")
    }

    fn collector_tail() -> String {
        " ON DUPLICATE KEY UPDATE last_seen = GREATEST(last_seen, VALUES(last_seen)), \
         last_generated = GREATEST(last_generated, VALUES(last_generated))"
            .into()
    }

    async fn begin_write(&self) -> Result<MySqlConn, StoreError> {
        self.pool.begin().await.map(MySqlConn::Tx).map_err(map_err)
    }

    async fn read(&self) -> Result<MySqlConn, StoreError> {
        self.pool
            .acquire()
            .await
            .map(MySqlConn::Plain)
            .map_err(map_err)
    }

    /// Several workers started at once against a new database would each apply the
    /// migrations and all but one fail on the migrations table (a duplicate version):
    /// a named lock, per database, makes one migrate while the others wait, then find
    /// nothing left to do.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.pool.acquire().await.map_err(map_err)?;
        let locked: Option<i64> =
            sqlx::query_scalar("SELECT GET_LOCK(CONCAT('stv3-migrate:', DATABASE()), 300)")
                .fetch_one(&mut *conn)
                .await
                .map_err(map_err)?;
        if locked != Some(1) {
            return Err(StoreError::Unavailable(
                "another process has been migrating this database for 5 minutes".into(),
            ));
        }
        let result = sqlx::migrate!("./migrations/mysql")
            .run_direct(&mut *conn)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()));
        let _ = sqlx::query("SELECT RELEASE_LOCK(CONCAT('stv3-migrate:', DATABASE()))")
            .execute(&mut *conn)
            .await;
        result
    }

    async fn schema_status(&self) -> Result<super::SchemaStatus, StoreError> {
        let migrator = sqlx::migrate!("./migrations/mysql");
        let latest = migrator.iter().map(|m| m.version).max().unwrap_or(0);
        let tables: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.tables \
             WHERE table_schema = DATABASE() AND table_name = '_sqlx_migrations'",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(map_err)?;
        let applied = if tables == 0 {
            None
        } else {
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success = 1")
                .fetch_one(&self.pool)
                .await
                .map_err(map_err)?
        };
        Ok(super::SchemaStatus { applied, latest })
    }
}

impl SqlStore<MySqlBackend> {
    /// Connects to the database `url` names. Does not migrate.
    pub async fn connect(url: &str, open: OpenOptions) -> Result<Self, StoreError> {
        let options = MySqlConnectOptions::from_str(url).map_err(|e| StoreError::BadUrl {
            url: redact_url(url),
            reason: e.to_string(),
        })?;
        let timeout = open.statement_timeout;
        let pool = MySqlPoolOptions::new()
            .max_connections(8)
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |conn, _meta| {
                Box::pin(async move {
                    conn.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
                        .await?;
                    if let Some(limit) = timeout {
                        // MariaDB counts in seconds (fractions allowed); MySQL has
                        // max_execution_time instead, in milliseconds, for SELECTs.
                        let mariadb = format!(
                            "SET SESSION max_statement_time = {:.6}",
                            limit.as_secs_f64()
                        );
                        if conn.execute(mariadb.as_str()).await.is_err() {
                            let mysql = format!(
                                "SET SESSION max_execution_time = {}",
                                limit.as_millis().max(1)
                            );
                            conn.execute(mysql.as_str()).await?;
                        }
                    }
                    Ok(())
                })
            })
            .connect_with(options)
            .await
            .map_err(map_err)?;
        Ok(SqlStore::new(MySqlBackend { pool }))
    }
}

/// Connects and returns the store as the common interface.
pub async fn open_store(url: &str, options: OpenOptions) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(MySqlStore::connect(url, options).await?))
}
