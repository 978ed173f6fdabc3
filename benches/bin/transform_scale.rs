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

fn run(args: &[String]) -> Result<(), Box<dyn std::error::Error>> {
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let need = |name: &str| arg(name).ok_or_else(|| format!("{name} is required"));
    let dir = PathBuf::from(need("--dir")?);
    let started = Instant::now();
    let written = write_bytes();
    let mut out: Vec<(&str, String)> = Vec::new();
    match args.get(1).map(String::as_str) {
        Some("gen") => {
            let (n, rows): (u64, usize) = (need("--releases")?.parse()?, need("--rows")?.parse()?);
            let store = materia_testkit::psd_landing_zone(&dir, n, rows * ROW_BYTES)?;
            out.push(("releases", store.list().len().to_string()));
        }
        Some("land") => {
            let (k, rows): (u64, usize) = (need("--release")?.parse()?, need("--rows")?.parse()?);
            let store = LandingStore::open(&dir)?.with_compression(1);
            let landed =
                materia_testkit::land_psd_release(&store, k, rows * ROW_BYTES)?.landed()?;
            out.push(("file_bytes", landed.file_bytes.to_string()));
        }
        Some("transform") => {
            let store = LandingStore::open(&dir)?;
            let mut options = TransformOptions::new(need("--db")?);
            options.memory_limit = arg("--memory").unwrap_or_else(|| "2GB".into());
            let report = transform(&store, &options)?;
            out.push(("releases_loaded", report.releases_loaded.to_string()));
            out.push(("rows", report.rows_loaded.to_string()));
            out.push(("changes", report.changes.to_string()));
            let db = PathBuf::from(need("--db")?);
            out.push(("published_bytes", size(&db).to_string()));
            out.push((
                "slots_bytes",
                (size(&with_suffix(&db, ".a")) + size(&with_suffix(&db, ".b"))).to_string(),
            ));
            out.push((
                "history_bytes",
                size(&with_suffix(&db, ".history")).to_string(),
            ));
        }
        Some("load") => {
            let store = LandingStore::open(&dir)?;
            let only: Option<String> = arg("--only");
            let files: Vec<String> = store
                .list()
                .iter()
                .filter(|e| {
                    only.as_ref()
                        .is_none_or(|k| e.key.etag.as_str() == format!("r{k:0>4}"))
                })
                .map(|e| format!("'{}'", store.path_of(&e.key).display()))
                .collect();
            let conn = materia_core::transform::duckdb::Connection::open(need("--db")?)?;
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
                arg("--memory").unwrap_or_else(|| "2GB".into()),
                files.join(", ")
            ))?;
            let rows: i64 = conn.query_row("SELECT count(*) FROM psd", [], |r| r.get(0))?;
            out.push(("files", files.len().to_string()));
            out.push(("rows", rows.to_string()));
        }
        _ => return Err("usage: transform-scale gen|land|transform|load --dir D ...".into()),
    }
    out.push(("millis", started.elapsed().as_millis().to_string()));
    out.push(("write_bytes", (write_bytes() - written).to_string()));
    out.push(("peak_rss_kib", peak_rss_kib().to_string()));
    let body: Vec<String> = out.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
    println!("{{{}}}", body.join(", "));
    Ok(())
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
