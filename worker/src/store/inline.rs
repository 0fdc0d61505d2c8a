//! SQLite driven inline, on the calling thread (rusqlite), for single-process jobs:
//! `stv3 replay`'s in-memory database.
//!
//! Why a second SQLite driver: sqlx runs each SQLite connection on a thread of its own
//! and hands every statement, and every row, over to it and back. On the replay's
//! hot path (some forty short statements per instant at which a stream becomes due)
//! those hand-offs, 100–150 µs a statement on a 2-core machine, were most of the run
//! (docs/benchmarks.md, "Replay"). Here a statement is a call: prepared once (an LRU
//! of statements keyed by their text), bound and stepped where the caller runs.
//!
//! The price is that a statement blocks the async task that runs it. That is right
//! for an in-memory database, which never waits on a disk, used by one job; it is why
//! this backend opens only `:memory:` and the services keep sqlx. The algorithms are
//! the same ones ([`super::engine`], [`super::ingest`]): this is one more [`Backend`].
//!
//! One connection, behind an async mutex: a transaction holds it until it commits or
//! is dropped (which rolls back), so concurrent callers take turns as they do on the
//! one pooled connection of sqlx's in-memory store.
//!
//! The database keeps no rollback journal (`journal_mode=OFF`): copying each page
//! before its first change in a transaction was a tenth of a replay. So a rollback
//! cannot undo what a transaction had written; a transaction that ends without its
//! commit after writing, or after a statement failed, leaves the database
//! unusable, and every later call says so. A replay stops at such an error anyway;
//! a transaction that only read (a claim that found nothing) rolls back as usual.

use super::engine::SqlStore;
use super::sql::{Arg, Backend, Conn, DbFault, DbRow, Limits, Sql, CONFLICT};
use super::sqlite::SqliteBackend;
use super::{OpenOptions, SchemaStatus, Store, StoreError};
use async_trait::async_trait;
use rusqlite::types::ValueRef;
use rusqlite::{ffi, Connection};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// The inline SQLite store.
pub type InlineStore = SqlStore<InlineBackend>;

/// Statements kept prepared. The engine's texts differ with their `IN (…)` and
/// `VALUES` lengths; a replay cycles through a few hundred.
const STATEMENT_CACHE: usize = 4096;

/// How long a caller waits for the connection before giving up: only a caller that
/// holds a transaction while asking for a second connection waits this long.
const LOCK_WAIT: Duration = Duration::from_secs(30);

/// The one connection of an in-memory database.
pub struct InlineBackend {
    conn: Arc<Mutex<Connection>>,
    statement_timeout: Option<Duration>,
    /// Set when a transaction ended half-written (see the module's documentation).
    broken: Arc<AtomicBool>,
}

/// A column value, owned (rows outlive their statement).
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    Null,
    Int(i64),
    Real(f64),
    /// Text or blob, as stored: UTF-8 is checked when read as text.
    Bytes(Vec<u8>),
}

/// One result row.
#[derive(Debug, Clone, PartialEq)]
pub struct InlineRow(Vec<Cell>);

impl InlineRow {
    fn cell(&self, i: usize) -> Result<&Cell, StoreError> {
        self.0
            .get(i)
            .ok_or_else(|| StoreError::Corrupt(format!("column {i}: no such column")))
    }
}

impl DbRow for InlineRow {
    fn int(&self, i: usize) -> Result<i64, StoreError> {
        self.opt_int(i)?
            .ok_or_else(|| StoreError::Corrupt(format!("column {i} is NULL")))
    }

    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError> {
        match self.cell(i)? {
            Cell::Null => Ok(None),
            Cell::Int(v) => Ok(Some(*v)),
            other => Err(StoreError::Corrupt(format!(
                "column {i}: {other:?} is not an integer"
            ))),
        }
    }

    fn opt_float(&self, i: usize) -> Result<Option<f64>, StoreError> {
        match self.cell(i)? {
            Cell::Null => Ok(None),
            Cell::Real(v) => Ok(Some(*v)),
            // A REAL column stores an integral value as an integer.
            Cell::Int(v) => Ok(Some(*v as f64)),
            Cell::Bytes(_) => Err(StoreError::Corrupt(format!("column {i}: not a number"))),
        }
    }

    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError> {
        match self.cell(i)? {
            Cell::Null => Ok(None),
            Cell::Bytes(b) => String::from_utf8(b.clone())
                .map(Some)
                .map_err(|e| StoreError::Corrupt(format!("column {i}: {e}"))),
            other => Err(StoreError::Corrupt(format!(
                "column {i}: {other:?} is not text"
            ))),
        }
    }
}

/// The connection, held for one transaction (or one read).
pub struct InlineConn {
    conn: OwnedMutexGuard<Connection>,
    /// Inside `BEGIN IMMEDIATE` and not yet committed: dropping rolls back.
    open_tx: bool,
    /// `total_changes()` at BEGIN, and whether a statement failed since: what tells
    /// a rollback that undoes nothing from one that cannot undo.
    changes_at_begin: u64,
    failed: bool,
    broken: Arc<AtomicBool>,
}

impl InlineConn {
    /// Prepares (or takes from the cache) and binds `sql`, then hands the statement to
    /// `run`.
    fn with_statement<T>(
        &mut self,
        sql: &Sql<'_>,
        run: impl FnOnce(&mut rusqlite::CachedStatement<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        let result = self.conn.prepare_cached(&sql.text).and_then(|mut stmt| {
            for (i, arg) in sql.args.iter().enumerate() {
                let at = i + 1;
                match arg {
                    Arg::Null => stmt.raw_bind_parameter(at, rusqlite::types::Null),
                    Arg::Int(v) => stmt.raw_bind_parameter(at, v),
                    Arg::Float(v) => stmt.raw_bind_parameter(at, v),
                    Arg::Text(v) => stmt.raw_bind_parameter(at, v.as_ref()),
                }?;
            }
            run(&mut stmt)
        });
        if result.is_err() {
            self.failed = true;
        }
        result.map_err(map_err)
    }

    /// BEGIN and COMMIT, prepared once like the rest.
    fn run_control(&mut self, sql: &str) -> Result<(), StoreError> {
        self.conn
            .prepare_cached(sql)
            .and_then(|mut stmt| stmt.raw_execute())
            .map(drop)
            .map_err(map_err)
    }
}

impl Drop for InlineConn {
    fn drop(&mut self) {
        if self.open_tx {
            if self.failed || self.conn.total_changes() != self.changes_at_begin {
                self.broken.store(true, Ordering::SeqCst);
            }
            // Nothing to report to: a failed rollback leaves the transaction open, and
            // the next BEGIN fails loudly.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
    }
}

#[async_trait]
impl Conn for InlineConn {
    type Row = InlineRow;

    async fn execute(&mut self, sql: &Sql<'_>) -> Result<u64, StoreError> {
        self.with_statement(sql, |stmt| {
            // Stepped to the end whatever it returns (`… RETURNING` run for its effect).
            let mut rows = stmt.raw_query();
            while rows.next()?.is_some() {}
            Ok(())
        })?;
        Ok(self.conn.changes())
    }

    async fn fetch(&mut self, sql: &Sql<'_>) -> Result<Vec<InlineRow>, StoreError> {
        self.with_statement(sql, |stmt| {
            let width = stmt.column_count();
            let mut rows = stmt.raw_query();
            let mut out = Vec::new();
            while let Some(row) = rows.next()? {
                let mut cells = Vec::with_capacity(width);
                for i in 0..width {
                    cells.push(match row.get_ref(i)? {
                        ValueRef::Null => Cell::Null,
                        ValueRef::Integer(v) => Cell::Int(v),
                        ValueRef::Real(v) => Cell::Real(v),
                        ValueRef::Text(b) | ValueRef::Blob(b) => Cell::Bytes(b.to_vec()),
                    });
                }
                out.push(InlineRow(cells));
            }
            Ok(out)
        })
    }

    async fn commit(mut self) -> Result<(), StoreError> {
        if self.open_tx {
            if self.failed {
                // Dropping marks the database broken.
                return Err(StoreError::Database(
                    "a statement of this transaction failed; it cannot be committed".into(),
                ));
            }
            self.run_control("COMMIT")?;
            self.open_tx = false;
        }
        Ok(())
    }
}

/// Errors as [`super::sqlite`] classifies them: races, the database's health, the
/// data.
fn map_err(e: rusqlite::Error) -> StoreError {
    let rusqlite::Error::SqliteFailure(failure, message) = &e else {
        return StoreError::Database(e.to_string());
    };
    let text = message.clone().unwrap_or_else(|| failure.to_string());
    if matches!(
        failure.extended_code,
        ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    ) {
        return StoreError::Unavailable(format!("{CONFLICT}{text}"));
    }
    match super::sqlite::classify_code(Some(failure.extended_code), &text) {
        DbFault::Race => StoreError::Unavailable(format!("{CONFLICT}{text}")),
        DbFault::Health => StoreError::Unavailable(text),
        DbFault::Data => StoreError::Database(text),
        DbFault::Timeout => StoreError::Timeout(text),
        DbFault::Access => StoreError::AccessDenied(text),
    }
}

impl InlineBackend {
    fn memory(statement_timeout: Option<Duration>) -> Result<Self, StoreError> {
        let conn = Connection::open_in_memory().map_err(map_err)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        conn.execute_batch("PRAGMA journal_mode=OFF")
            .map_err(map_err)?;
        Ok(InlineBackend {
            conn: Arc::new(Mutex::new(conn)),
            statement_timeout,
            broken: Arc::new(AtomicBool::new(false)),
        })
    }

    async fn connection(&self) -> Result<InlineConn, StoreError> {
        let conn = tokio::time::timeout(LOCK_WAIT, self.conn.clone().lock_owned())
            .await
            .map_err(|_| {
                StoreError::Unavailable(format!(
                    "{CONFLICT}the in-memory database stayed busy for {}s",
                    LOCK_WAIT.as_secs()
                ))
            })?;
        if self.broken.load(Ordering::SeqCst) {
            return Err(StoreError::Database(
                "the in-memory database was left half-written by a transaction that \
                 failed (it keeps no rollback journal); start again"
                    .into(),
            ));
        }
        if let Some(limit) = self.statement_timeout {
            let deadline = Instant::now() + limit;
            // Called every 1,000 virtual-machine steps; true interrupts the statement.
            conn.progress_handler(1000, Some(move || Instant::now() >= deadline));
        }
        Ok(InlineConn {
            conn,
            open_tx: false,
            changes_at_begin: 0,
            failed: false,
            broken: self.broken.clone(),
        })
    }
}

#[async_trait]
impl Backend for InlineBackend {
    type Conn = InlineConn;
    // SQLite's dialect and limits, as the sqlx backend has them: one source for both.
    const NAME: &'static str = SqliteBackend::NAME;
    const LIMITS: Limits = SqliteBackend::LIMITS;
    const ON_CONFLICT_SKIP: &'static str = SqliteBackend::ON_CONFLICT_SKIP;
    const FOR_UPDATE: &'static str = SqliteBackend::FOR_UPDATE;
    const FOR_UPDATE_SKIP_LOCKED: &'static str = SqliteBackend::FOR_UPDATE_SKIP_LOCKED;
    const RETURNING: bool = SqliteBackend::RETURNING;
    const TRAIT_EQUALITY_AS_IN: bool = SqliteBackend::TRAIT_EQUALITY_AS_IN;
    const TALLY_SHARDS: i64 = SqliteBackend::TALLY_SHARDS;
    const TRAITS_AS_JSON: bool = SqliteBackend::TRAITS_AS_JSON;

    fn upsert_tail(pk: &str, cols: &[&str]) -> String {
        SqliteBackend::upsert_tail(pk, cols)
    }

    fn add_tail(pk: &str, col: &str) -> String {
        SqliteBackend::add_tail(pk, col)
    }

    fn collector_tail() -> String {
        SqliteBackend::collector_tail()
    }

    async fn begin_write(&self) -> Result<InlineConn, StoreError> {
        let mut conn = self.connection().await?;
        conn.run_control("BEGIN IMMEDIATE")?;
        conn.open_tx = true;
        conn.changes_at_begin = conn.conn.total_changes();
        Ok(conn)
    }

    async fn read(&self) -> Result<InlineConn, StoreError> {
        self.connection().await
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut conn = self.connection().await?;
        let fail = |e: rusqlite::Error| StoreError::Migration(e.to_string());
        // The table sqlx's migrator keeps, so `schema_status` reads both stores alike.
        conn.conn
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
                     version BIGINT PRIMARY KEY,
                     description TEXT NOT NULL,
                     installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
                     success BOOLEAN NOT NULL,
                     checksum BLOB NOT NULL,
                     execution_time BIGINT NOT NULL)",
            )
            .map_err(fail)?;
        for m in super::sqlite::migrator().iter() {
            let applied: i64 = conn
                .conn
                .query_row(
                    "SELECT COUNT(*) FROM _sqlx_migrations WHERE version = ?1 AND success = 1",
                    [m.version],
                    |r| r.get(0),
                )
                .map_err(fail)?;
            if applied > 0 {
                continue;
            }
            let started = Instant::now();
            let tx = conn.conn.transaction().map_err(fail)?;
            if let Err(e) = tx.execute_batch(&m.sql) {
                self.broken.store(true, Ordering::SeqCst);
                return Err(StoreError::Migration(format!("{}: {e}", m.description)));
            }
            tx.execute(
                "INSERT INTO _sqlx_migrations \
                 (version, description, success, checksum, execution_time) \
                 VALUES (?1, ?2, 1, ?3, ?4)",
                rusqlite::params![
                    m.version,
                    m.description.as_ref(),
                    m.checksum.as_ref(),
                    i64::try_from(started.elapsed().as_nanos()).unwrap_or(i64::MAX),
                ],
            )
            .map_err(fail)?;
            tx.commit().map_err(fail)?;
        }
        Ok(())
    }

    async fn schema_status(&self) -> Result<SchemaStatus, StoreError> {
        let latest = super::sqlite::migrator()
            .iter()
            .map(|m| m.version)
            .max()
            .unwrap_or(0);
        let mut conn = self.read().await?;
        let rows = conn
            .fetch(&Sql::new(
                "SELECT COUNT(*) FROM sqlite_master \
                 WHERE type = 'table' AND name = '_sqlx_migrations'",
            ))
            .await?;
        let tables = rows.first().map(|r| r.int(0)).transpose()?.unwrap_or(0);
        let applied = if tables == 0 {
            None
        } else {
            let rows = conn
                .fetch(&Sql::new(
                    "SELECT MAX(version) FROM _sqlx_migrations WHERE success = 1",
                ))
                .await?;
            rows.first().map(|r| r.opt_int(0)).transpose()?.flatten()
        };
        Ok(SchemaStatus { applied, latest })
    }
}

/// A private in-memory database (not migrated), gone when the store is dropped.
pub fn open_memory(options: OpenOptions) -> Result<Arc<dyn Store>, StoreError> {
    Ok(Arc::new(SqlStore::new(InlineBackend::memory(
        options.statement_timeout,
    )?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend(timeout: Option<Duration>) -> InlineBackend {
        InlineBackend::memory(timeout).unwrap()
    }

    /// Counts without end.
    const ENDLESS: &str = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) \
                           SELECT COUNT(*) FROM c";

    #[tokio::test]
    async fn a_statement_past_the_timeout_is_interrupted() {
        let b = backend(Some(Duration::from_millis(50)));
        let mut conn = b.read().await.unwrap();
        let err = conn.fetch(&Sql::new(ENDLESS)).await.unwrap_err();
        assert!(matches!(err, StoreError::Timeout(_)), "{err:?}");
        // The next use starts a new deadline.
        drop(conn);
        let mut conn = b.read().await.unwrap();
        let rows = conn.fetch(&Sql::new("SELECT 7")).await.unwrap();
        assert_eq!(rows[0].int(0).unwrap(), 7);
    }

    async fn table(b: &InlineBackend) {
        let mut conn = b.begin_write().await.unwrap();
        conn.execute(&Sql::new("CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)"))
            .await
            .unwrap();
        conn.commit().await.unwrap();
    }

    fn insert(a: i64) -> Sql<'static> {
        let mut insert = Sql::new("INSERT INTO t (a, b) VALUES ");
        insert.bind_tuple([Arg::Int(a), Arg::from("one")]);
        insert
    }

    #[tokio::test]
    async fn commits_keep_and_rows_read_back_typed() {
        let b = backend(None);
        table(&b).await;
        let mut conn = b.begin_write().await.unwrap();
        assert_eq!(conn.execute(&insert(1)).await.unwrap(), 1);
        conn.commit().await.unwrap();
        // A transaction that only read ends without a commit as any would.
        let mut conn = b.begin_write().await.unwrap();
        conn.fetch(&Sql::new("SELECT a FROM t")).await.unwrap();
        drop(conn);
        let mut conn = b.read().await.unwrap();
        let rows = conn
            .fetch(&Sql::new("SELECT a, b, NULL, 2.5 FROM t"))
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].int(0).unwrap(), 1);
        assert_eq!(rows[0].text(1).unwrap(), "one");
        assert_eq!(rows[0].opt_text(2).unwrap(), None);
        assert_eq!(rows[0].opt_float(3).unwrap(), Some(2.5));
        assert!(rows[0].int(1).is_err());
        assert!(rows[0].text(0).is_err());
        assert!(rows[0].int(9).is_err());
    }

    #[tokio::test]
    async fn a_transaction_dropped_after_writing_breaks_the_database() {
        let b = backend(None);
        table(&b).await;
        let mut conn = b.begin_write().await.unwrap();
        conn.execute(&insert(1)).await.unwrap();
        drop(conn);
        for err in [b.read().await.err(), b.begin_write().await.err()] {
            let err = err.expect("refused");
            assert!(matches!(err, StoreError::Database(_)), "{err:?}");
            assert!(err.to_string().contains("half-written"), "{err}");
        }
    }

    #[tokio::test]
    async fn a_failed_statement_breaks_the_database_even_if_committed() {
        let b = backend(None);
        table(&b).await;
        let mut conn = b.begin_write().await.unwrap();
        conn.execute(&insert(1)).await.unwrap();
        // The same key again is a lost race, worth a retry elsewhere; here the
        // transaction cannot be trusted any more.
        let err = conn.execute(&insert(1)).await.unwrap_err();
        assert!(super::super::sql::is_conflict(&err), "{err:?}");
        assert!(conn.commit().await.is_err());
        assert!(b.read().await.is_err());
    }

    #[tokio::test]
    async fn text_that_is_not_utf8_is_corrupt_not_a_panic() {
        let b = backend(None);
        let mut conn = b.read().await.unwrap();
        let rows = conn
            .fetch(&Sql::new("SELECT CAST(x'ff00fe' AS TEXT)"))
            .await
            .unwrap();
        assert!(matches!(rows[0].text(0), Err(StoreError::Corrupt(_))));
    }
}
