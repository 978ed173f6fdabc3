//! The transform at all-commodities scale, one measurement per process (so
//! each peak RSS is its own), for `benches/scale.sh`:
//!
//! - `transform-scale gen --dir D --releases N --rows R`: a landing zone of N
//!   generated releases of about R rows each (seeds 1..=N);
//! - `transform-scale land --dir D --release K --rows R`: one more release;
//! - `transform-scale transform --dir D --db P [--memory 2GB]`: `materia`'s
//!   transform;
//! - `transform-scale load --dir D --db P [--only K]`: DuckDB alone loading the
//!   same files (or release K's) into one fresh table with the same typed CSV
//!   reading — the yardstick.
//!
//! Each prints one JSON line: wall time, bytes the process wrote to storage
//! (`/proc/self/io` `write_bytes`) and its peak RSS (`VmHWM`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use materia_core::landing::LandingStore;
use materia_core::transform::{TransformOptions, transform};

/// About 100 bytes a row in the generated CSV.
const ROW_BYTES: usize = 100;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match run(&args) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("transform-scale: {e}");
            std::process::ExitCode::from(2)
        }
    }
}

type BoxError = Box<dyn std::error::Error>;

/// What one measurement reports, in order: JSON field name and value.
type Fields = Vec<(&'static str, String)>;

/// The command line: `--name value` pairs after the subcommand.
struct Args<'a>(&'a [String]);

impl Args<'_> {
    fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .position(|a| a == name)
            .and_then(|i| self.0.get(i + 1))
            .cloned()
    }

    fn need(&self, name: &str) -> Result<String, BoxError> {
        self.get(name)
            .ok_or_else(|| format!("{name} is required").into())
    }

    fn memory(&self) -> String {
        self.get("--memory").unwrap_or_else(|| "2GB".into())
    }
}

fn run(args: &[String]) -> Result<(), BoxError> {
    let args = Args(args);
    let dir = PathBuf::from(args.need("--dir")?);
    let started = Instant::now();
    let written = write_bytes();
    let mut out = match args.0.get(1).map(String::as_str) {
        Some("gen") => gen_zone(&args, &dir)?,
        Some("land") => land(&args, &dir)?,
        Some("transform") => run_transform(&args, &dir)?,
        Some("load") => load(&args, &dir)?,
        _ => return Err("usage: transform-scale gen|land|transform|load --dir D ...".into()),
    };
    out.push(("millis", started.elapsed().as_millis().to_string()));
    out.push(("write_bytes", (write_bytes() - written).to_string()));
    out.push(("peak_rss_kib", peak_rss_kib().to_string()));
    let body: Vec<String> = out.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
    println!("{{{}}}", body.join(", "));
    Ok(())
}

/// `gen`: a landing zone of `--releases` generated releases.
fn gen_zone(args: &Args, dir: &Path) -> Result<Fields, BoxError> {
    let (n, rows): (u64, usize) = (
        args.need("--releases")?.parse()?,
        args.need("--rows")?.parse()?,
    );
    let store = materia_testkit::psd_landing_zone(dir, n, rows * ROW_BYTES)?;
    Ok(vec![("releases", store.list().len().to_string())])
}

/// `land`: release `--release` on top.
fn land(args: &Args, dir: &Path) -> Result<Fields, BoxError> {
    let (k, rows): (u64, usize) = (
        args.need("--release")?.parse()?,
        args.need("--rows")?.parse()?,
    );
    let store = LandingStore::open(dir)?.with_compression(1);
    let landed = materia_testkit::land_psd_release(&store, k, rows * ROW_BYTES)?.landed()?;
    Ok(vec![("file_bytes", landed.file_bytes.to_string())])
}

/// `transform`: `materia`'s transform into `--db`.
fn run_transform(args: &Args, dir: &Path) -> Result<Fields, BoxError> {
    let store = LandingStore::open(dir)?;
    let mut options = TransformOptions::new(args.need("--db")?);
    options.memory_limit = args.memory();
    let report = transform(&store, &options)?;
    let db = PathBuf::from(args.need("--db")?);
    Ok(vec![
        ("releases_loaded", report.releases_loaded.to_string()),
        ("rows", report.rows_loaded.to_string()),
        ("changes", report.changes.to_string()),
        ("published_bytes", size(&db).to_string()),
        (
            "slots_bytes",
            (size(&with_suffix(&db, ".a")) + size(&with_suffix(&db, ".b"))).to_string(),
        ),
        (
            "history_bytes",
            size(&with_suffix(&db, ".history")).to_string(),
        ),
    ])
}

/// `load`: DuckDB alone reading the same files (or release `--only`'s) into one
/// fresh table.
fn load(args: &Args, dir: &Path) -> Result<Fields, BoxError> {
    let store = LandingStore::open(dir)?;
    let only: Option<String> = args.get("--only");
    let files: Vec<String> = store
        .list()
        .iter()
        .filter(|e| {
            only.as_ref()
                .is_none_or(|k| e.key.etag.as_str() == format!("r{k:0>4}"))
        })
        .map(|e| format!("'{}'", store.path_of(&e.key).display()))
        .collect();
    let conn = materia_core::transform::duckdb::Connection::open(args.need("--db")?)?;
    conn.execute_batch(&format!(
        "SET memory_limit = '{}';
         CREATE TABLE psd AS SELECT * FROM read_csv([{}], compression = 'gzip',
           header = true, auto_detect = false, delim = ',', quote = '\"', escape = '\"',
           nullstr = '', columns = {{
           'Commodity_Code': 'VARCHAR', 'Commodity_Description': 'VARCHAR',
           'Country_Code': 'VARCHAR', 'Country_Name': 'VARCHAR',
           'Market_Year': 'INTEGER', 'Calendar_Year': 'INTEGER', 'Month': 'VARCHAR',
           'Attribute_ID': 'VARCHAR', 'Attribute_Description': 'VARCHAR',
           'Unit_ID': 'VARCHAR', 'Unit_Description': 'VARCHAR', 'Value': 'DOUBLE'}});
         CHECKPOINT;",
        args.memory(),
        files.join(", ")
    ))?;
    let rows: i64 = conn.query_row("SELECT count(*) FROM psd", [], |r| r.get(0))?;
    Ok(vec![
        ("files", files.len().to_string()),
        ("rows", rows.to_string()),
    ])
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Bytes this process caused to be written to storage so far.
fn write_bytes() -> u64 {
    proc_field("/proc/self/io", "write_bytes:")
}

/// Peak resident set size, in KiB.
fn peak_rss_kib() -> u64 {
    proc_field("/proc/self/status", "VmHWM:")
}

fn proc_field(file: &str, key: &str) -> u64 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next().map(str::to_owned))
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
