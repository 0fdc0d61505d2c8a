//! SQLite: the embedded default (`sqlite://path`, `sqlite::memory:`).
//!
//! Files run in WAL mode with `synchronous=NORMAL` and a busy timeout; every writing
//! transaction starts with `BEGIN IMMEDIATE`, so writers queue on the database lock
//! up front instead of deadlocking on a read-to-write upgrade. An in-memory database
//! lives in the pool's one connection, which is never closed.

use super::engine::SqlStore;
use super::sql::{map_sqlx_error, sqlx_conn, Backend, DbFault, Limits};
use super::{redact_url, OpenOptions, Store, StoreError};
use async_trait::async_trait;
use sqlx::error::DatabaseError;
use sqlx::sqlite::{
    Sqlite, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::Connection;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The SQLite store.
pub type SqliteStore = SqlStore<SqliteBackend>;

/// Connections and dialect of SQLite.
pub struct SqliteBackend {
    pool: SqlitePool,
}

/// Whatever the extended code: SQLITE_BUSY (5) and SQLITE_LOCKED (6) are races.
/// The file unwritable or gone (SQLITE_PERM 3, SQLITE_READONLY 8, SQLITE_CANTOPEN 14,
/// SQLITE_AUTH 23), the disk (SQLITE_IOERR 10, SQLITE_FULL 13, SQLITE_NOMEM 7), a
/// damaged file (SQLITE_CORRUPT 11, SQLITE_NOTADB 26) and a schema that is not there
/// (SQLITE_ERROR with "no such table" or "no such column") are about the database:
/// the caller keeps its batch and retries. A constraint or a value the schema
/// refuses (SQLITE_CONSTRAINT, SQLITE_TOOBIG, SQLITE_MISMATCH) is about the data.
fn classify(e: &dyn DatabaseError) -> DbFault {
    classify_code(e.code().and_then(|c| c.parse::<i32>().ok()), e.message())
}

/// [`classify`] on an (extended) result code and message, for either SQLite driver.
pub(crate) fn classify_code(code: Option<i32>, message: &str) -> DbFault {
    match code.map(|c| c & 0xff) {
        Some(5 | 6) => DbFault::Race,
        // SQLITE_INTERRUPT: the progress handler stopped a statement past its time.
        Some(9) => DbFault::Timeout,
        Some(3 | 7 | 8 | 10 | 11 | 13 | 14 | 23 | 26) => DbFault::Health,
        Some(1) if message.contains("no such table") || message.contains("no such column") => {
            DbFault::Health
        }
        _ => DbFault::Data,
    }
}

fn map_err(e: sqlx::Error) -> StoreError {
    map_sqlx_error(e, classify)
}

sqlx_conn!(SqliteConn, Sqlite, SqliteRow, map_err);

#[async_trait]
impl Backend for SqliteBackend {
    type Conn = SqliteConn;
    const NAME: &'static str = "sqlite";
    const LIMITS: Limits = Limits {
        max_binds: 32_766,
        max_bytes: 64 << 20,
    };
    const ON_CONFLICT_SKIP: &'static str = " ON CONFLICT DO NOTHING";
    const FOR_UPDATE: &'static str = "";
    const FOR_UPDATE_SKIP_LOCKED: &'static str = "";
    const RETURNING: bool = true;
    const TRAIT_EQUALITY_AS_IN: bool = true;
    const TALLY_SHARDS: i64 = 1;
    const TRAITS_AS_JSON: bool = true;

    fn upsert_tail(pk: &str, cols: &[&str]) -> String {
        let sets: Vec<String> = cols.iter().map(|c| format!("{c} = excluded.{c}")).collect();
        format!(" ON CONFLICT ({pk}) DO UPDATE SET {}", sets.join(", "))
    }

    fn add_tail(pk: &str, col: &str) -> String {
        format!(" ON CONFLICT ({pk}) DO UPDATE SET {col} = {col} + excluded.{col}")
    }

    fn collector_tail() -> String {
        " ON CONFLICT (name) DO UPDATE SET last_seen = MAX(last_seen, excluded.last_seen), \
         last_generated = MAX(last_generated, excluded.last_generated)"
            .into()
    }

    async fn begin_write(&self) -> Result<SqliteConn, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map(SqliteConn::Tx)
            .map_err(map_err)
    }

    async fn read(&self) -> Result<SqliteConn, StoreError> {
        self.pool
            .acquire()
            .await
            .map(SqliteConn::Plain)
            .map_err(map_err)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        migrator()
            .run(&self.pool)
            .await
            .map_err(|e| StoreError::Migration(e.to_string()))
    }

    async fn schema_status(&self) -> Result<super::SchemaStatus, StoreError> {
        let latest = migrator().iter().map(|m| m.version).max().unwrap_or(0);
        let tables: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
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

impl SqlStore<SqliteBackend> {
    /// Opens (creating the file if missing) the database `url` names. Does not migrate.
    pub async fn connect(url: &str, open: OpenOptions) -> Result<Self, StoreError> {
        let bad_url = |reason: String| StoreError::BadUrl {
            url: redact_url(url),
            reason,
        };
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|e| bad_url(e.to_string()))?
            .create_if_missing(true)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(false);
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        if !in_memory {
            // `sqlite://data/winchester.db` on a fresh checkout: make `data/`.
            if let Some(dir) = options.get_filename().parent() {
                if !dir.as_os_str().is_empty() && !dir.exists() {
                    std::fs::create_dir_all(dir).map_err(|e| {
                        StoreError::Database(format!("cannot create {}: {e}", dir.display()))
                    })?;
                }
            }
        }
        let timeout = open.statement_timeout;
        let pool = if in_memory {
            // The database lives as long as its connection: keep exactly one, forever.
            SqlitePoolOptions::new()
                .after_connect(move |conn, _| Box::pin(arm_deadline(conn, timeout)))
                .before_acquire(move |conn, _| {
                    Box::pin(async move { arm_deadline(conn, timeout).await.map(|()| true) })
                })
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .connect_with(options)
                .await
        } else {
            SqlitePoolOptions::new()
                .after_connect(move |conn, _| Box::pin(arm_deadline(conn, timeout)))
                .before_acquire(move |conn, _| {
                    Box::pin(async move { arm_deadline(conn, timeout).await.map(|()| true) })
                })
                .max_connections(4)
                // A local file opens at once: waiting longer for a connection means
                // the file cannot be opened (unwritable, gone), which callers should
                // hear about (and retry) while it lasts, not half a minute later.
                .acquire_timeout(Duration::from_secs(5))
                // A write that failed because the file became unwritable (or the
                // disk failed) cannot roll back either; sqlx then keeps counting the
                // connection as inside a transaction and every later BEGIN on it
                // fails. Such a connection is closed on release, not reused, so the
                // store recovers as soon as the file does. (The ping waits for the
                // rollback sqlx queued when the transaction was dropped.)
                .after_release(|conn, _| {
                    Box::pin(async move {
                        if conn.ping().await.is_err() {
                            return Ok(false);
                        }
                        Ok(!conn.is_in_transaction())
                    })
                })
                .connect_with(
                    options
                        .journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Normal),
                )
                .await
        }
        .map_err(map_err)?;
        Ok(SqlStore::new(SqliteBackend { pool }))
    }
}

/// SQLite has no statement timeout: a progress handler, armed each time the pool hands
/// the connection out (a read or a transaction of the API), interrupts whatever runs
/// on it past the deadline (SQLITE_INTERRUPT, mapped to [`StoreError::Timeout`]).
async fn arm_deadline(
    conn: &mut sqlx::SqliteConnection,
    timeout: Option<Duration>,
) -> Result<(), sqlx::Error> {
    let Some(limit) = timeout else {
        return Ok(());
    };
    let deadline = std::time::Instant::now() + limit;
    let mut handle = conn.lock_handle().await?;
    // Called every 1,000 virtual-machine steps, a few microseconds apart.
    handle.set_progress_handler(1000, move || std::time::Instant::now() < deadline);
    Ok(())
}

/// The schema's migrations, embedded at build time.
pub(crate) fn migrator() -> sqlx::migrate::Migrator {
    sqlx::migrate!("./migrations/sqlite")
}

/// Connects and returns the store as the common interface.
pub async fn open_store(url: &str, options: OpenOptions) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(SqliteStore::connect(url, options).await?))
}
