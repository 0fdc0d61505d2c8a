//! Backend-neutral SQL plumbing: statements with positional `?` arguments (both SQLite
//! and MySQL use `?`), multi-row and `IN (…)` builders that split at a backend's
//! bind-parameter and packet limits, and the small traits a backend implements so the
//! store's algorithms ([`super::engine`], [`super::ingest`]) are written once.

use super::StoreError;
use async_trait::async_trait;
use std::borrow::Cow;

/// One bound argument.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg<'a> {
    Null,
    Int(i64),
    Float(f64),
    Text(Cow<'a, str>),
}

impl Arg<'_> {
    /// Rough size on the wire, to keep a statement under the packet limit.
    fn approx_len(&self) -> usize {
        match self {
            Arg::Text(s) => s.len() + 9,
            _ => 9,
        }
    }
}

impl From<i64> for Arg<'_> {
    fn from(v: i64) -> Self {
        Arg::Int(v)
    }
}

impl From<i16> for Arg<'_> {
    fn from(v: i16) -> Self {
        Arg::Int(v.into())
    }
}

impl From<f64> for Arg<'_> {
    fn from(v: f64) -> Self {
        Arg::Float(v)
    }
}

impl<'a> From<&'a str> for Arg<'a> {
    fn from(v: &'a str) -> Self {
        Arg::Text(Cow::Borrowed(v))
    }
}

impl From<String> for Arg<'_> {
    fn from(v: String) -> Self {
        Arg::Text(Cow::Owned(v))
    }
}

impl<'a, T: Into<Arg<'a>>> From<Option<T>> for Arg<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Arg::Null, Into::into)
    }
}

/// SQL text with its arguments, in placeholder order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sql<'a> {
    pub text: String,
    pub args: Vec<Arg<'a>>,
}

impl<'a> Sql<'a> {
    pub fn new(text: impl Into<String>) -> Self {
        Sql {
            text: text.into(),
            args: Vec::new(),
        }
    }

    pub fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a `?` bound to `arg`.
    pub fn bind(&mut self, arg: impl Into<Arg<'a>>) -> &mut Self {
        self.text.push('?');
        self.args.push(arg.into());
        self
    }

    /// Appends `(?, ?, …)` bound to `args`.
    pub fn bind_tuple(&mut self, args: impl IntoIterator<Item = Arg<'a>>) -> &mut Self {
        self.text.push('(');
        for (i, arg) in args.into_iter().enumerate() {
            if i > 0 {
                self.text.push_str(", ");
            }
            self.bind(arg);
        }
        self.text.push(')');
        self
    }
}

/// How big one statement may get on a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bind parameters per statement.
    pub max_binds: usize,
    /// Approximate bytes of arguments per statement (MySQL's `max_allowed_packet`).
    pub max_bytes: usize,
}

/// `head VALUES (…), (…) tail` statements inserting rows of `width` arguments each
/// (`args` holds the rows back to back), split so each stays within `limits`.
pub fn values_statements<'a>(
    head: &str,
    tail: &str,
    width: usize,
    args: Vec<Arg<'a>>,
    limits: Limits,
) -> Vec<Sql<'a>> {
    let rows_per_stmt = (limits.max_binds / width.max(1)).max(1);
    let mut out = Vec::new();
    let mut current: Option<(Sql<'a>, usize, usize)> = None;
    let mut row: Vec<Arg<'a>> = Vec::with_capacity(width);
    for arg in args {
        row.push(arg);
        if row.len() < width {
            continue;
        }
        let row_bytes: usize = row.iter().map(Arg::approx_len).sum();
        if let Some((_, rows, bytes)) = &current {
            if *rows >= rows_per_stmt || (*rows > 0 && bytes + row_bytes > limits.max_bytes) {
                if let Some((mut sql, _, _)) = current.take() {
                    sql.push(tail);
                    out.push(sql);
                }
            }
        }
        let (sql, rows, bytes) = current.get_or_insert_with(|| {
            let mut sql = Sql::new(head);
            sql.push(" VALUES ");
            (sql, 0, 0)
        });
        if *rows > 0 {
            sql.push(", ");
        }
        sql.bind_tuple(row.drain(..));
        *rows += 1;
        *bytes += row_bytes;
    }
    if let Some((mut sql, _, _)) = current {
        sql.push(tail);
        out.push(sql);
    }
    out
}

/// `prefix (?, ?, …) suffix` statements over `values`, split so each stays within
/// `limits` (the prefix's own arguments are repeated in each).
pub fn in_statements<'a>(
    prefix: &Sql<'a>,
    suffix: &str,
    values: Vec<Arg<'a>>,
    limits: Limits,
) -> Vec<Sql<'a>> {
    let per_stmt = limits.max_binds.saturating_sub(prefix.args.len()).max(1);
    let mut out = Vec::new();
    let mut iter = values.into_iter().peekable();
    while iter.peek().is_some() {
        let mut sql = prefix.clone();
        sql.bind_tuple(iter.by_ref().take(per_stmt));
        sql.push(suffix);
        out.push(sql);
    }
    out
}

/// A column reader over a backend's row type. Values that do not decode are
/// [`StoreError::Corrupt`].
pub trait DbRow: Send + Sync {
    fn int(&self, i: usize) -> Result<i64, StoreError>;
    fn opt_int(&self, i: usize) -> Result<Option<i64>, StoreError>;
    fn opt_float(&self, i: usize) -> Result<Option<f64>, StoreError>;
    fn opt_text(&self, i: usize) -> Result<Option<String>, StoreError>;

    fn text(&self, i: usize) -> Result<String, StoreError> {
        self.opt_text(i)?
            .ok_or_else(|| StoreError::Corrupt(format!("column {i} is NULL")))
    }
}

/// A connection (in a transaction or not) that runs [`Sql`].
#[async_trait]
pub trait Conn: Send {
    type Row: DbRow;
    /// Runs a statement; returns the rows it affected.
    async fn execute(&mut self, sql: &Sql<'_>) -> Result<u64, StoreError>;
    async fn fetch(&mut self, sql: &Sql<'_>) -> Result<Vec<Self::Row>, StoreError>;
    /// Commits the transaction (a no-op outside one). Dropping without committing
    /// rolls back.
    async fn commit(self) -> Result<(), StoreError>;

    /// Runs every statement in order; returns the rows affected in total.
    async fn execute_all(&mut self, stmts: &[Sql<'_>]) -> Result<u64, StoreError> {
        let mut n = 0;
        for sql in stmts {
            n += self.execute(sql).await?;
        }
        Ok(n)
    }

    /// Runs every query in order and concatenates their rows.
    async fn fetch_all(&mut self, stmts: &[Sql<'_>]) -> Result<Vec<Self::Row>, StoreError> {
        let mut rows = Vec::new();
        for sql in stmts {
            rows.extend(self.fetch(sql).await?);
        }
        Ok(rows)
    }
}

/// What differs between the databases: connections, migrations and a few bits of SQL.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    type Conn: Conn;
    /// `sqlite` or `mysql`.
    const NAME: &'static str;
    const LIMITS: Limits;
    /// The tail of an insert that skips rows whose unique key exists (and nothing
    /// else: unlike `INSERT IGNORE`, other errors still fail).
    const ON_CONFLICT_SKIP: &'static str;
    /// Appended to a SELECT that reads rows this transaction will update.
    const FOR_UPDATE: &'static str;
    /// Appended to the claim SELECT, so concurrent claimers pass over each other's rows.
    const FOR_UPDATE_SKIP_LOCKED: &'static str;
    /// Whether `INSERT … RETURNING` is available (else the new ids are selected back).
    const RETURNING: bool;
    /// Whether an equality trait filter is written `e.id IN (SELECT event_id …)`
    /// rather than a correlated `EXISTS`. SQLite runs an `EXISTS` once per event (a
    /// scan of the event table, 180 ms at 160,000 events) but drives an `IN` from the
    /// trait index (1 ms); MariaDB turns the `EXISTS` into an index-driven semi-join
    /// already, and its plans were measured on that form (docs/query-plans.md).
    const TRAIT_EQUALITY_AS_IN: bool;

    /// The tail of an insert that updates `cols` of the existing row with the same
    /// primary key `pk` instead.
    fn upsert_tail(pk: &str, cols: &[&str]) -> String;
    /// The tail of an insert that adds the new row's `col` to the existing row's
    /// instead (counters: `col = col + new`).
    fn add_tail(pk: &str, col: &str) -> String;
    /// The tail of the `collector_seen` insert: the later times win.
    fn collector_tail() -> String;
    /// Counter rows per key that concurrent writers spread over (see
    /// [`super::tally`]); 1 where writers take turns anyway (SQLite).
    const TALLY_SHARDS: i64;
    /// Whether events' traits are read one row per event, aggregated into JSON by the
    /// database ([`super::rows::TRAITS_JSON`]), rather than one row per trait. sqlx
    /// hands SQLite's rows over one by one from its connection thread, a few
    /// microseconds each, which made reading a stream's events back the largest part
    /// of a replay's pipeline passes (docs/benchmarks.md, "Replay"); MariaDB's rows
    /// come in batches off the socket.
    const TRAITS_AS_JSON: bool;

    /// A connection in a transaction that will write (SQLite: `BEGIN IMMEDIATE`).
    async fn begin_write(&self) -> Result<Self::Conn, StoreError>;
    /// A connection for reads (no transaction).
    async fn read(&self) -> Result<Self::Conn, StoreError>;
    async fn migrate(&self) -> Result<(), StoreError>;
    async fn schema_status(&self) -> Result<super::SchemaStatus, StoreError>;
}

/// How the message of an [`StoreError::Unavailable`] from a lost race (deadlock, lock
/// timeout, busy database, the unique-key race) starts: those are worth retrying at
/// once, unlike a database that went away.
pub const CONFLICT: &str = "transaction conflict: ";

/// True for a lost race (see [`CONFLICT`]).
pub fn is_conflict(e: &StoreError) -> bool {
    matches!(e, StoreError::Unavailable(m) if m.starts_with(CONFLICT))
}

/// What a database error says, for [`map_sqlx_error`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbFault {
    /// A lost race (deadlock, lock timeout, busy): retry at once.
    Race,
    /// The database itself (rights, read-only, schema, disk, going away): retry
    /// with back-off until it is back.
    Health,
    /// Something about the data written: retrying the same data fails the same way.
    Data,
    /// The statement ran past the session's statement timeout (set only where asked
    /// for, by the API): retrying the same query runs out the same way.
    Timeout,
    /// The login itself was refused (wrong password, no such user).
    Access,
}

/// Maps a sqlx error. Connection trouble and [`DbFault::Health`] become
/// [`StoreError::Unavailable`]; races and the unique-key race become `Unavailable`
/// with the [`CONFLICT`] prefix; everything else is [`StoreError::Database`].
pub fn map_sqlx_error(
    err: sqlx::Error,
    classify: fn(&dyn sqlx::error::DatabaseError) -> DbFault,
) -> StoreError {
    use sqlx::Error as E;
    match &err {
        E::Io(_)
        | E::Tls(_)
        | E::PoolTimedOut
        | E::PoolClosed
        | E::WorkerCrashed
        | E::Protocol(_)
        // A connection left inside a transaction whose rollback failed (the database
        // file went unwritable): the pool drops it, a retry gets a fresh one.
        | E::InvalidSavePointStatement
        | E::BeginFailed => StoreError::Unavailable(err.to_string()),
        E::Database(db) if db.is_unique_violation() => {
            StoreError::Unavailable(format!("{CONFLICT}{err}"))
        }
        E::Database(db) => match classify(db.as_ref()) {
            DbFault::Race => StoreError::Unavailable(format!("{CONFLICT}{err}")),
            DbFault::Health => StoreError::Unavailable(err.to_string()),
            DbFault::Data => StoreError::Database(err.to_string()),
            DbFault::Timeout => StoreError::Timeout(err.to_string()),
            DbFault::Access => StoreError::AccessDenied(err.to_string()),
        },
        E::ColumnDecode { .. } | E::Decode(_) | E::ColumnNotFound(_) | E::TypeNotFound { .. } => {
            StoreError::Corrupt(err.to_string())
        }
        _ => StoreError::Database(err.to_string()),
    }
}

/// Implements [`Conn`] (as `$conn`, a transaction or a plain pooled connection) and
/// [`DbRow`] for one sqlx database; `$map_err` maps its errors.
macro_rules! sqlx_conn {
    ($conn:ident, $db:ty, $row:ty, $map_err:path) => {
        /// A pooled connection, in a transaction or not.
        pub enum $conn {
            Tx(sqlx::Transaction<'static, $db>),
            Plain(sqlx::pool::PoolConnection<$db>),
        }

        impl $conn {
            fn raw(&mut self) -> &mut <$db as sqlx::Database>::Connection {
                match self {
                    $conn::Tx(tx) => &mut **tx,
                    $conn::Plain(conn) => &mut **conn,
                }
            }

            fn query<'q>(
                sql: &'q $crate::store::sql::Sql<'_>,
            ) -> sqlx::query::Query<'q, $db, <$db as sqlx::Database>::Arguments<'q>> {
                use $crate::store::sql::Arg;
                let mut q = sqlx::query(&sql.text);
                for arg in &sql.args {
                    q = match arg {
                        Arg::Null => q.bind(None::<i64>),
                        Arg::Int(v) => q.bind(*v),
                        Arg::Float(v) => q.bind(*v),
                        Arg::Text(v) => q.bind(v.as_ref()),
                    };
                }
                q
            }
        }

        #[async_trait::async_trait]
        impl $crate::store::sql::Conn for $conn {
            type Row = $row;

            async fn execute(
                &mut self,
                sql: &$crate::store::sql::Sql<'_>,
            ) -> Result<u64, $crate::store::StoreError> {
                Self::query(sql)
                    .execute(self.raw())
                    .await
                    .map(|r| r.rows_affected())
                    .map_err($map_err)
            }

            async fn fetch(
                &mut self,
                sql: &$crate::store::sql::Sql<'_>,
            ) -> Result<Vec<$row>, $crate::store::StoreError> {
                Self::query(sql)
                    .fetch_all(self.raw())
                    .await
                    .map_err($map_err)
            }

            async fn commit(self) -> Result<(), $crate::store::StoreError> {
                match self {
                    $conn::Tx(tx) => tx.commit().await.map_err($map_err),
                    $conn::Plain(_) => Ok(()),
                }
            }
        }

        impl $crate::store::sql::DbRow for $row {
            fn int(&self, i: usize) -> Result<i64, $crate::store::StoreError> {
                sqlx::Row::try_get::<i64, _>(self, i).map_err(|e| corrupt_column(i, e))
            }

            fn opt_int(&self, i: usize) -> Result<Option<i64>, $crate::store::StoreError> {
                sqlx::Row::try_get::<Option<i64>, _>(self, i).map_err(|e| corrupt_column(i, e))
            }

            fn opt_float(&self, i: usize) -> Result<Option<f64>, $crate::store::StoreError> {
                sqlx::Row::try_get::<Option<f64>, _>(self, i).map_err(|e| corrupt_column(i, e))
            }

            fn opt_text(&self, i: usize) -> Result<Option<String>, $crate::store::StoreError> {
                // Bytes, then UTF-8: binary collations make MySQL flag text as binary.
                match sqlx::Row::try_get::<Option<Vec<u8>>, _>(self, i) {
                    Ok(None) => Ok(None),
                    Ok(Some(bytes)) => String::from_utf8(bytes).map(Some).map_err(|e| {
                        $crate::store::StoreError::Corrupt(format!("column {i}: {e}"))
                    }),
                    Err(e) => Err(corrupt_column(i, e)),
                }
            }
        }

        fn corrupt_column(i: usize, e: sqlx::Error) -> $crate::store::StoreError {
            $crate::store::StoreError::Corrupt(format!("column {i}: {e}"))
        }
    };
}

pub(crate) use sqlx_conn;

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Limits = Limits {
        max_binds: 6,
        max_bytes: 1 << 20,
    };

    #[test]
    fn values_split_at_bind_limit() {
        let args: Vec<Arg> = (0..10).map(Arg::Int).collect();
        let stmts = values_statements("INSERT INTO t (a, b)", " X", 2, args, SMALL);
        assert_eq!(stmts.len(), 2);
        assert_eq!(
            stmts[0].text,
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?) X"
        );
        assert_eq!(
            stmts[1].args,
            vec![Arg::Int(6), Arg::Int(7), Arg::Int(8), Arg::Int(9)]
        );
    }

    #[test]
    fn values_split_at_byte_limit() {
        let big = "x".repeat(100);
        let args: Vec<Arg> = (0..3).map(|_| Arg::from(big.as_str())).collect();
        let limits = Limits {
            max_binds: 100,
            max_bytes: 150,
        };
        assert_eq!(values_statements("I", "", 1, args, limits).len(), 3);
        assert!(values_statements("I", "", 1, Vec::new(), limits).is_empty());
    }

    #[test]
    fn in_lists_repeat_the_prefix() {
        let mut prefix = Sql::new("SELECT a FROM t WHERE b = ");
        prefix.bind(1i64).push(" AND c IN ");
        let stmts = in_statements(
            &prefix,
            " ORDER BY a",
            (0..7).map(Arg::Int).collect(),
            SMALL,
        );
        assert_eq!(stmts.len(), 2);
        assert_eq!(
            stmts[1].text,
            "SELECT a FROM t WHERE b = ? AND c IN (?, ?) ORDER BY a"
        );
        assert_eq!(stmts[1].args, vec![Arg::Int(1), Arg::Int(5), Arg::Int(6)]);
    }
}
