//! Readers of the published lakehouse for servers: cheap to clone, shared
//! across threads, switching to a new build when `transform` publishes one
//! (`materia serve` is built on them; a Rust web app can use them directly).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};
use std::time::Instant;

use duckdb::Connection;

use super::{Lakehouse, ReadLimits, Rows, rows::text};
use crate::error::{Error, Result, duckdb_message, duckdb_source};

/// A table's kind (`BASE TABLE`, `VIEW`) and columns (name, DuckDB type).
pub(crate) type Relation = (String, Vec<(String, String)>);

/// The published lakehouse at a path, as one build at a time ([`Snapshot`]).
///
/// `snapshot()` checks the file (one `stat`): when `transform` has published
/// a new build since, the next snapshot is that build, opened read-only with
/// the query hardening of [`Lakehouse::open_read_only`]; requests holding the
/// old snapshot finish on it.
///
/// ```no_run
/// let readers = materia_core::transform::Readers::open("/data/materia/lakehouse.duckdb", 4)?;
/// let snap = readers.snapshot()?;
/// let n: i64 = snap.with_connection(|c| c.query_row("SELECT count(*) FROM raw.releases", [], |r| r.get(0)))?;
/// println!("build {}: {n} releases", snap.build);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Readers {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    connections: usize,
    limits: ReadLimits,
    current: Mutex<Arc<Snapshot>>,
}

/// One published build, open read-only, with a few connections to it.
pub struct Snapshot {
    /// The build's id: its generation and history id (`materia.build`).
    pub build: String,
    /// When it was published (the file's modification time).
    pub published_at: jiff::Timestamp,
    inode: (u64, u64),
    /// Owns the database (and registers it, so no transform in this process
    /// writes it in place).
    _lake: Mutex<Lakehouse>,
    pool: Pool,
    /// Every table and view, read once per build.
    catalog: OnceLock<BTreeMap<String, Relation>>,
}

/// The published lakehouse's inode (a new one: a new build) and when it was
/// published (its modification time).
pub(crate) fn stat_published(path: &Path) -> Result<((u64, u64), jiff::Timestamp)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| Error::Lakehouse {
        path: path.to_path_buf(),
        reason: format!("cannot stat the lakehouse: {e}"),
        source: Some(Box::new(e)),
    })?;
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| jiff::Timestamp::try_from(t).ok())
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    Ok(((meta.dev(), meta.ino()), modified))
}

/// A published build's id: its generation and the first 8 hex digits of its
/// history id (`materia.build`); `0` when it has none.
pub(crate) fn build_id(conn: &Connection) -> String {
    conn.query_row(
        "SELECT generation::VARCHAR || '-' || left(history_id, 8) FROM materia.build",
        [],
        |r| r.get::<_, String>(0),
    )
    .unwrap_or_else(|_| "0".into())
}

/// A build's connections, each lent to one caller at a time; a caller waits
/// for a free one, up to a deadline.
struct Pool {
    connections: Vec<Mutex<Connection>>,
    /// Indexes of the connections not lent.
    free: Mutex<Vec<usize>>,
    /// Signalled when a connection comes back.
    returned: Condvar,
}

/// A lent connection, back to its pool when dropped.
struct Lease<'a> {
    pool: &'a Pool,
    index: usize,
}

impl Pool {
    fn new(connections: Vec<Connection>) -> Pool {
        Pool {
            free: Mutex::new((0..connections.len()).rev().collect()),
            connections: connections.into_iter().map(Mutex::new).collect(),
            returned: Condvar::new(),
        }
    }

    /// A free connection, waiting for one until `deadline` (`None`: as long
    /// as it takes); `None` once the deadline passed with none free.
    fn lend(&self, deadline: Option<Instant>) -> Option<Lease<'_>> {
        let mut free = relock(&self.free);
        loop {
            if let Some(index) = free.pop() {
                return Some(Lease { pool: self, index });
            }
            free = match deadline {
                None => self
                    .returned
                    .wait(free)
                    .unwrap_or_else(PoisonError::into_inner),
                Some(deadline) => {
                    let left = deadline.checked_duration_since(Instant::now())?;
                    self.returned
                        .wait_timeout(free, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0
                }
            };
        }
    }
}

impl Lease<'_> {
    fn connection(&self) -> MutexGuard<'_, Connection> {
        // Never contended: a lease is the only holder of its index.
        relock(&self.pool.connections[self.index])
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        relock(&self.pool.free).push(self.index);
        self.pool.returned.notify_one();
    }
}

fn relock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Snapshot {
    fn open(path: &Path, connections: usize, limits: ReadLimits) -> Result<Snapshot> {
        let (ino, published_at) = stat_published(path)?;
        let lake = Lakehouse::open_read_only_limited(path, limits)?;
        let fail = |e: duckdb::Error| Error::Lakehouse {
            path: path.to_path_buf(),
            reason: duckdb_message(&e),
            source: duckdb_source(e),
        };
        let build = build_id(lake.connection());
        let pool = (0..connections.max(1))
            .map(|_| lake.connection().try_clone())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(fail)?;
        Ok(Snapshot {
            build,
            published_at,
            inode: ino,
            _lake: Mutex::new(lake),
            pool: Pool::new(pool),
            catalog: OnceLock::new(),
        })
    }

    /// Runs `f` on a connection of this build, waiting as long as it takes
    /// for one to be free.
    pub fn with_connection<T>(&self, f: impl FnOnce(&Connection) -> T) -> T {
        loop {
            // Without a deadline `lend` waits until a connection is free.
            if let Some(lease) = self.pool.lend(None) {
                return f(&lease.connection());
            }
        }
    }

    /// Runs `f` on a connection of this build if one is free before
    /// `deadline`; `None` (and `f` never runs) when none was. A server
    /// bounds a request's wait for a connection with it, so a request whose
    /// time is up never starts its query.
    ///
    /// ```no_run
    /// use std::time::{Duration, Instant};
    /// let readers = materia_core::transform::Readers::open("/data/materia/lakehouse.duckdb", 2)?;
    /// let snap = readers.snapshot()?;
    /// let deadline = Instant::now() + Duration::from_secs(1);
    /// match snap.with_connection_until(deadline, |c| c.query_row("SELECT 42", [], |r| r.get::<_, i64>(0))) {
    ///     Some(n) => println!("{}", n?),
    ///     None => println!("every connection stayed busy for a second"),
    /// }
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn with_connection_until<T>(
        &self,
        deadline: Instant,
        f: impl FnOnce(&Connection) -> T,
    ) -> Option<T> {
        let lease = self.pool.lend(Some(deadline))?;
        Some(f(&lease.connection()))
    }

    /// How many connections this build has.
    pub fn connections(&self) -> usize {
        self.pool.connections.len()
    }
}

impl Snapshot {
    /// Every table and view of this build, by `schema.name` (read on first
    /// use through `conn`, a connection of this build).
    pub(crate) fn catalog(
        &self,
        conn: &Connection,
    ) -> std::result::Result<&BTreeMap<String, Relation>, duckdb::Error> {
        if let Some(catalog) = self.catalog.get() {
            return Ok(catalog);
        }
        let rows = Rows::fetch(
            conn,
            "SELECT c.table_schema || '.' || c.table_name, t.table_type, c.column_name, c.data_type \
             FROM information_schema.columns AS c \
             JOIN information_schema.tables AS t USING (table_schema, table_name) \
             WHERE c.table_schema IN ('raw', 'serving', 'materia') \
             ORDER BY 1, c.ordinal_position",
            &[],
        )?;
        let mut out: BTreeMap<String, Relation> = BTreeMap::new();
        for r in rows.rows {
            let s = |i: usize| text(&r[i]);
            out.entry(s(0))
                .or_insert_with(|| (s(1), Vec::new()))
                .1
                .push((s(2), s(3)));
        }
        Ok(self.catalog.get_or_init(|| out))
    }
}

impl Readers {
    /// Opens the lakehouse at `path` with `connections` connections per build.
    pub fn open(path: impl Into<PathBuf>, connections: usize) -> Result<Readers> {
        Readers::open_limited(path, connections, ReadLimits::default())
    }

    /// [`Readers::open`], each build opened with `limits` (DuckDB's memory
    /// limit is per build: while a request still holds the old build after a
    /// publish, both count).
    pub fn open_limited(
        path: impl Into<PathBuf>,
        connections: usize,
        limits: ReadLimits,
    ) -> Result<Readers> {
        let path = path.into();
        let first = Snapshot::open(&path, connections, limits)?;
        Ok(Readers {
            inner: Arc::new(Inner {
                path,
                connections,
                limits,
                current: Mutex::new(Arc::new(first)),
            }),
        })
    }

    /// The build already open when it is still the published one (one `stat`,
    /// no DuckDB work: cheap enough for an async task), else `None` — then
    /// [`Readers::snapshot`] opens the new one (blocking).
    pub fn current(&self) -> Result<Option<Arc<Snapshot>>> {
        let (ino, _) = stat_published(&self.inner.path)?;
        let current = self
            .inner
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        Ok((current.inode == ino).then(|| Arc::clone(&current)))
    }

    /// The newest published build (see the type's docs).
    pub fn snapshot(&self) -> Result<Arc<Snapshot>> {
        let (ino, _) = stat_published(&self.inner.path)?;
        let mut current = self
            .inner
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if current.inode != ino {
            tracing::info!(lakehouse = %self.inner.path.display(), "a new build was published: switching to it");
            *current = Arc::new(Snapshot::open(
                &self.inner.path,
                self.inner.connections,
                self.inner.limits,
            )?);
        }
        Ok(Arc::clone(&current))
    }
}
