//! [`Lakehouse`]: the published DuckDB file, opened read-only — how the web app
//! and other crates read it.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use duckdb::{AccessMode, Config, Connection, OptionalExt};
use serde::Serialize;

use super::report::Rejected;
use crate::error::{Error, Result, duckdb_message, duckdb_source};

/// The published lakehouse, open read-only. Any number of processes can hold it
/// open while `transform` publishes new builds; each keeps the snapshot it
/// opened until it reopens. One `Lakehouse` is one connection (`Send`, not
/// `Sync`) to one build; a server wants [`Readers`](super::Readers) instead:
/// `Clone + Send + Sync`, a few connections per build with the same
/// hardening, switching to each new build as it is published.
///
/// # Untrusted SQL
///
/// DuckDB's `READ_ONLY` access mode protects the database, not the filesystem:
/// on such a connection `COPY … TO`, `read_text('/etc/passwd')`, `ATTACH` or
/// `INSTALL` would still reach files and the network. So
/// [`Lakehouse::open_read_only`] also turns off external access
/// (`enable_external_access = false`: no file or URL other than the lakehouse
/// itself, no `ATTACH`, no extension loading or installing), forbids spilling to
/// a temp directory (`max_temp_directory_size = 0`) and then locks the configuration (`lock_configuration =
/// true`), so no `SET` can undo any of it. SQL from users — `materia query`, a
/// web app passing a query through — is safe to run on [`Lakehouse::connection`].
/// [`Lakehouse::open_trusted`] opens without these limits, for callers that
/// write the SQL themselves and need DuckDB's file functions.
///
/// ```no_run
/// # fn main() -> materia_core::Result<()> {
/// use materia_core::transform::Lakehouse;
/// let lake = Lakehouse::open_read_only("/data/materia/lakehouse.duckdb")?;
/// if let Some(b) = lake.balance("BR", 2025)? {
///     println!("Brazil 2025/26: production {:?}, stocks-to-use {:?}", b.production, b.stocks_to_use);
/// }
/// let n: i64 = lake.connection().query_row("SELECT count(*) FROM serving.psd_latest", [], |r| r.get(0))
///     .map_err(|e| materia_core::Error::Transform { reason: "count".into(), source: Some(e.into()) })?;
/// // A query cannot write files, read them or change settings:
/// assert!(lake.connection().execute_batch("COPY (SELECT 1) TO '/tmp/x.csv'").is_err());
/// # Ok(()) }
/// ```
pub struct Lakehouse {
    path: PathBuf,
    conn: Connection,
    /// The file's (device, inode) while open: see [`open_in_this_process`].
    inode: Option<(u64, u64)>,
}

/// The lakehouse files this process has open, by (device, inode), with counts:
/// `transform` never updates one of them in place (`publish.rs`).
static OPEN: std::sync::Mutex<BTreeMap<(u64, u64), usize>> = std::sync::Mutex::new(BTreeMap::new());

/// The (device, inode) of the file at `path` (a link followed).
pub(crate) fn inode_of(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Whether a [`Lakehouse`] of this process has the file at `path` open.
pub(crate) fn open_in_this_process(path: &Path) -> bool {
    let open = OPEN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    inode_of(path).is_some_and(|inode| open.contains_key(&inode))
}

impl Drop for Lakehouse {
    fn drop(&mut self) {
        if let Some(inode) = self.inode {
            let mut open = OPEN
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if let Some(n) = open.get_mut(&inode) {
                *n -= 1;
                if *n == 0 {
                    open.remove(&inode);
                }
            }
        }
    }
}

/// Limits a hardened reader is opened with ([`Lakehouse::open_read_only_limited`],
/// [`Readers::open_limited`](super::Readers::open_limited)); DuckDB enforces
/// them and `lock_configuration` keeps any `SET` from raising them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadLimits {
    /// DuckDB's `memory_limit`, in bytes, for the database — every connection
    /// of it together (`None`: DuckDB's default, 80 % of RAM). A query needing
    /// more fails with DuckDB's "Out of Memory Error" (readers never spill).
    pub memory_bytes: Option<u64>,
    /// DuckDB's `max_execution_time`: a query running longer fails with
    /// "Query exceeded maximum execution time" (`None`: no limit).
    pub query_time: Option<std::time::Duration>,
}

/// One row of `serving.coffee_balance`: a country's (or the World's) green coffee
/// balance for a market year, USDA's 19 attributes. Every quantity is in 1000
/// 60-kg bags (USDA's unit `02`); `None` where the release lacks the attribute.
/// USDA's identities hold: production = arabica + robusta + other; total
/// supply = beginning stocks + production + imports; total distribution =
/// exports + domestic consumption + ending stocks (`error` audits).
///
/// ```no_run
/// # fn main() -> materia_core::Result<()> {
/// let lake = materia_core::transform::Lakehouse::open_read_only("/data/materia/lakehouse.duckdb")?;
/// if let Some(b) = lake.balance("RP", 2005)? {
///     // The Philippines grew coffee that is neither arabica nor robusta.
///     println!("other production {:?} of {:?}", b.other_production, b.production);
///     println!("soluble exports {:?} of {:?}", b.soluble_exports, b.exports);
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Balance {
    /// Country code (`WORLD` for the sum over countries).
    pub country_code: String,
    /// Country name.
    pub country_name: Option<String>,
    /// Market year.
    pub market_year: i32,
    /// Beginning stocks, 1000 60-kg bags.
    pub beginning_stocks: Option<f64>,
    /// Production (arabica + robusta + other), 1000 60-kg bags.
    pub production: Option<f64>,
    /// Arabica production, 1000 60-kg bags.
    pub arabica_production: Option<f64>,
    /// Robusta production, 1000 60-kg bags.
    pub robusta_production: Option<f64>,
    /// Other production (neither arabica nor robusta, e.g. liberica; USDA's
    /// attribute 056), 1000 60-kg bags.
    pub other_production: Option<f64>,
    /// Imports (bean + roast & ground + soluble), 1000 60-kg bags green bean
    /// equivalent.
    pub imports: Option<f64>,
    /// Green bean imports, 1000 60-kg bags.
    pub bean_imports: Option<f64>,
    /// Roast & ground coffee imports, 1000 60-kg bags green bean equivalent.
    pub roast_ground_imports: Option<f64>,
    /// Soluble coffee imports, 1000 60-kg bags green bean equivalent.
    pub soluble_imports: Option<f64>,
    /// Exports (bean + roast & ground + soluble), 1000 60-kg bags green bean
    /// equivalent.
    pub exports: Option<f64>,
    /// Green bean exports, 1000 60-kg bags.
    pub bean_exports: Option<f64>,
    /// Roast & ground coffee exports, 1000 60-kg bags green bean equivalent.
    pub roast_ground_exports: Option<f64>,
    /// Soluble coffee exports, 1000 60-kg bags green bean equivalent.
    pub soluble_exports: Option<f64>,
    /// Domestic consumption (roast & ground + soluble), 1000 60-kg bags.
    pub domestic_consumption: Option<f64>,
    /// Roast & ground domestic consumption (USDA's "Rst,Ground Dom. Consum"),
    /// 1000 60-kg bags.
    pub roast_ground_domestic_consumption: Option<f64>,
    /// Soluble domestic consumption (USDA's "Soluble Dom. Cons."), 1000 60-kg
    /// bags.
    pub soluble_domestic_consumption: Option<f64>,
    /// Ending stocks, 1000 60-kg bags.
    pub ending_stocks: Option<f64>,
    /// Total supply (beginning stocks + production + imports), 1000 60-kg bags.
    pub total_supply: Option<f64>,
    /// Total distribution (exports + domestic consumption + ending stocks),
    /// 1000 60-kg bags.
    pub total_distribution: Option<f64>,
    /// Ending stocks ÷ domestic consumption (a ratio, no unit).
    pub stocks_to_use: Option<f64>,
}

/// One release's value of a series, and its change from the previous release.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Revision {
    /// Position of the release in publication order (1 = oldest loaded).
    pub release_ord: i64,
    /// The release's etag.
    pub release_etag: String,
    /// The release's year and month in the landing zone.
    pub release_year: i32,
    /// See `release_year`.
    pub release_month: i32,
    /// The value from that release on (`None`: empty in the file, or deleted).
    pub value: Option<f64>,
    /// Change from the value before (`None` for the first, after an empty
    /// value, and for a deletion).
    pub change: Option<f64>,
    /// The release no longer has the series (it may come back later).
    pub deleted: bool,
}

/// The columns of `serving.coffee_balance` that [`balance_row`] reads, in order.
const BALANCE_COLUMNS: &str = "country_code, country_name, market_year, beginning_stocks, \
     production, arabica_production, robusta_production, other_production, imports, bean_imports, \
     roast_ground_imports, soluble_imports, exports, bean_exports, roast_ground_exports, \
     soluble_exports, domestic_consumption, roast_ground_domestic_consumption, \
     soluble_domestic_consumption, ending_stocks, total_supply, total_distribution, stocks_to_use";

/// A [`Balance`] from a row of [`BALANCE_COLUMNS`].
fn balance_row(r: &duckdb::Row<'_>) -> duckdb::Result<Balance> {
    Ok(Balance {
        country_code: r.get(0)?,
        country_name: r.get(1)?,
        market_year: r.get(2)?,
        beginning_stocks: r.get(3)?,
        production: r.get(4)?,
        arabica_production: r.get(5)?,
        robusta_production: r.get(6)?,
        other_production: r.get(7)?,
        imports: r.get(8)?,
        bean_imports: r.get(9)?,
        roast_ground_imports: r.get(10)?,
        soluble_imports: r.get(11)?,
        exports: r.get(12)?,
        bean_exports: r.get(13)?,
        roast_ground_exports: r.get(14)?,
        soluble_exports: r.get(15)?,
        domestic_consumption: r.get(16)?,
        roast_ground_domestic_consumption: r.get(17)?,
        soluble_domestic_consumption: r.get(18)?,
        ending_stocks: r.get(19)?,
        total_supply: r.get(20)?,
        total_distribution: r.get(21)?,
        stocks_to_use: r.get(22)?,
    })
}

impl Lakehouse {
    /// Opens `path` read-only, for untrusted SQL: no file, URL or extension can
    /// be reached and no setting changed (see [the type's docs](Lakehouse)).
    /// Fails if a process holds it read-write (DuckDB's lock); `transform` never
    /// does.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Lakehouse> {
        Lakehouse::open(path.as_ref(), Some(ReadLimits::default()))
    }

    /// [`Lakehouse::open_read_only`] with `limits` on memory and query time,
    /// locked with the rest of the configuration (a server's readers: see
    /// [`ReadLimits`]).
    ///
    /// ```no_run
    /// use materia_core::transform::{Lakehouse, ReadLimits};
    /// let limits = ReadLimits {
    ///     memory_bytes: Some(256 << 20),
    ///     query_time: Some(std::time::Duration::from_secs(5)),
    /// };
    /// let lake = Lakehouse::open_read_only_limited("/data/materia/lakehouse.duckdb", limits)?;
    /// // A query needing more than 256 MiB fails; nothing can raise the limit:
    /// assert!(lake.connection().execute_batch("SET memory_limit = '8GB'").is_err());
    /// # Ok::<(), materia_core::Error>(())
    /// ```
    pub fn open_read_only_limited(path: impl AsRef<Path>, limits: ReadLimits) -> Result<Lakehouse> {
        Lakehouse::open(path.as_ref(), Some(limits))
    }

    /// Opens `path` read-only with DuckDB's external access on: SQL on this
    /// connection can read and write any file the process can (`COPY … TO`,
    /// `read_csv`, `ATTACH`). Only for SQL the caller wrote itself.
    pub fn open_trusted(path: impl AsRef<Path>) -> Result<Lakehouse> {
        Lakehouse::open(path.as_ref(), None)
    }

    /// Opens `path` read-only; hardened with `limits` unless `None` (trusted).
    fn open(path: &Path, hardened: Option<ReadLimits>) -> Result<Lakehouse> {
        let path = path.to_path_buf();
        let fail = |e: duckdb::Error| Error::Lakehouse {
            path: path.clone(),
            reason: duckdb_message(&e),
            source: duckdb_source(e),
        };
        if !path.exists() {
            return Err(Error::Lakehouse {
                path,
                reason: "no such file: run `materia transform` first".into(),
                source: None,
            });
        }
        let mut config = Config::default()
            .access_mode(AccessMode::ReadOnly)
            .and_then(|c| c.enable_autoload_extension(false))
            .and_then(|c| c.with("autoinstall_known_extensions", "false"))
            .map_err(fail)?;
        if let Some(limits) = hardened {
            config = config
                .enable_external_access(false)
                .and_then(|c| c.with("allow_community_extensions", "false"))
                // No spilling: a reader never writes beside the lakehouse.
                .and_then(|c| c.with("max_temp_directory_size", "0B"))
                .map_err(fail)?;
            if let Some(bytes) = limits.memory_bytes {
                config = config
                    .with("memory_limit", format!("{bytes}B"))
                    .map_err(fail)?;
            }
            if let Some(time) = limits.query_time {
                // DuckDB's own deadline (ms, 0: none), counted from a query's start.
                let ms = time.as_millis().clamp(1, i64::MAX as u128);
                config = config
                    .with("max_execution_time", ms.to_string())
                    .map_err(fail)?;
            }
            config = config.with("lock_configuration", "true").map_err(fail)?;
        }
        let conn = Connection::open_with_flags(&path, config).map_err(fail)?;
        let inode = inode_of(&path);
        if let Some(inode) = inode {
            *OPEN
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .entry(inode)
                .or_default() += 1;
        }
        Ok(Lakehouse { path, conn, inode })
    }

    /// The connection, for any SQL: read-only, and (from [`Lakehouse::open_read_only`])
    /// without access to files, extensions or settings.
    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn fail(&self, e: duckdb::Error) -> Error {
        Error::Lakehouse {
            path: self.path.clone(),
            reason: duckdb_message(&e),
            source: duckdb_source(e),
        }
    }

    /// Whether `schema.table` exists.
    fn has_table(&self, schema: &str, table: &str) -> Result<bool> {
        self.conn
            .query_row(
                "SELECT count(*) > 0 FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?",
                [schema, table],
                |r| r.get(0),
            )
            .map_err(|e| self.fail(e))
    }

    /// The schema version, history id and generation this file was built from
    /// (`materia.build`); `None` for a file that predates them.
    pub(crate) fn build_info(&self) -> Result<Option<(i64, String, i64)>> {
        if !self.has_table("materia", "build")? {
            return Ok(None);
        }
        self.conn
            .query_row(
                "SELECT schema_version, history_id, generation FROM materia.build",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()
            .map_err(|e| self.fail(e))
    }

    /// What this file was built from (`materia.published`, `materia.datasets`,
    /// `materia.models`); `None` for a file without it.
    pub(crate) fn record(&self) -> Result<Option<super::record::Record>> {
        super::record::Record::read(&self.conn, None).map_err(|e| self.fail(e))
    }

    /// Where this build's declarations and models came from (`None`: a file
    /// that does not record them, built by an older Materia).
    ///
    /// ```no_run
    /// # fn main() -> materia_core::Result<()> {
    /// let lake = materia_core::transform::Lakehouse::open_read_only("/data/materia/lakehouse.duckdb")?;
    /// if let Some(s) = lake.sources()? {
    ///     println!("declarations: {}; models: {}", s.config_text(), s.models_text());
    /// }
    /// # Ok(()) }
    /// ```
    pub fn sources(&self) -> Result<Option<super::Sources>> {
        Ok(self
            .record()?
            .filter(super::record::Record::is_complete)
            .map(|r| r.sources))
    }

    /// The landing files quarantined by builds (`raw.rejected`), oldest first:
    /// they could not be loaded and every later build skips them.
    ///
    /// ```no_run
    /// # fn main() -> materia_core::Result<()> {
    /// let lake = materia_core::transform::Lakehouse::open_read_only("/data/materia/lakehouse.duckdb")?;
    /// for r in lake.rejected()? {
    ///     eprintln!("quarantined {}: {}", r.landing_key, r.reason);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn rejected(&self) -> Result<Vec<Rejected>> {
        if !self.has_table("raw", "rejected")? {
            return Ok(Vec::new());
        }
        let mut stmt = self
            .conn
            .prepare(
                "SELECT landing_key, reason FROM raw.rejected ORDER BY rejected_at, landing_key",
            )
            .map_err(|e| self.fail(e))?;
        stmt.query_map([], |r| {
            Ok(Rejected {
                landing_key: r.get(0)?,
                reason: r.get(1)?,
            })
        })
        .map_err(|e| self.fail(e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| self.fail(e))
    }

    /// The landing keys loaded into this lakehouse.
    pub(crate) fn loaded_keys(&self) -> Result<HashSet<String>> {
        if !self.has_table("raw", "releases")? {
            return Ok(HashSet::new());
        }
        let mut stmt = self
            .conn
            .prepare("SELECT landing_key FROM raw.releases")
            .map_err(|e| self.fail(e))?;
        let keys = stmt
            .query_map([], |r| r.get::<_, String>(0))
            .map_err(|e| self.fail(e))?
            .collect::<Result<HashSet<_>, _>>()
            .map_err(|e| self.fail(e))?;
        Ok(keys)
    }

    /// The balance of `country_code` (or `WORLD`) for `market_year`, from the
    /// newest release.
    pub fn balance(&self, country_code: &str, market_year: i32) -> Result<Option<Balance>> {
        self.conn
            .query_row(
                &format!(
                    "SELECT {BALANCE_COLUMNS} FROM serving.coffee_balance \
                     WHERE country_code = ? AND market_year = ?"
                ),
                duckdb::params![country_code, market_year],
                balance_row,
            )
            .optional()
            .map_err(|e| self.fail(e))
    }

    /// What the newest release landed under `year`/`month` said one value of
    /// green coffee was (`serving.psd_as_of`): `None` when that release did not
    /// have the series (or there is no such release), `Some(None)` when it had
    /// it empty.
    ///
    /// ```no_run
    /// # fn main() -> materia_core::Result<()> {
    /// let lake = materia_core::transform::Lakehouse::open_read_only("/data/materia/lakehouse.duckdb")?;
    /// // Brazil's 2024/25 production, as the May 2025 release had it.
    /// let then = lake.value_as_of(2025, 5, "BR", 2024, "028")?;
    /// # let _ = then; Ok(()) }
    /// ```
    pub fn value_as_of(
        &self,
        year: i32,
        month: i32,
        country_code: &str,
        market_year: i32,
        attribute_id: &str,
    ) -> Result<Option<Option<f64>>> {
        self.conn
            .query_row(
                "SELECT value FROM serving.psd_as_of(?, ?) \
                 WHERE commodity_code = '0711100' AND country_code = ? AND market_year = ? \
                 AND attribute_id = ?",
                duckdb::params![year, month, country_code, market_year, attribute_id],
                |r| r.get::<_, Option<f64>>(0),
            )
            .optional()
            .map_err(|e| self.fail(e))
    }

    /// How the estimate of one series (country × market year × attribute, for
    /// green coffee) was revised, oldest first: one entry per release in which
    /// it first appeared, changed or disappeared (releases that left it as it
    /// was have none).
    pub fn revisions(
        &self,
        country_code: &str,
        market_year: i32,
        attribute_id: &str,
    ) -> Result<Vec<Revision>> {
        let mut stmt = self
            .conn
            .prepare(
                "SELECT release_ord, release_etag, release_year, release_month, value, change, \
                 deleted FROM serving.psd_revisions \
                 WHERE commodity_code = '0711100' AND country_code = ? AND market_year = ? \
                 AND attribute_id = ? ORDER BY release_ord",
            )
            .map_err(|e| self.fail(e))?;
        stmt.query_map(
            duckdb::params![country_code, market_year, attribute_id],
            |r| {
                Ok(Revision {
                    release_ord: r.get(0)?,
                    release_etag: r.get(1)?,
                    release_year: r.get(2)?,
                    release_month: r.get(3)?,
                    value: r.get(4)?,
                    change: r.get(5)?,
                    deleted: r.get(6)?,
                })
            },
        )
        .map_err(|e| self.fail(e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| self.fail(e))
    }
}
