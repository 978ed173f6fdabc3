//! DuckDB's Parquet writer against arrow-rs's, on the tables `materia publish`
//! writes, for `benches/publish.sh`:
//!
//! `parquet-writers --db LAKEHOUSE --out DIR`
//!
//! For each table (every table of `serving`, `raw.*_changes`, `raw.*_closed`,
//! whole): DuckDB's `COPY … TO (FORMAT parquet, COMPRESSION zstd,
//! ROW_GROUP_SIZE 1048576)`, then arrow-rs's `ArrowWriter` over DuckDB's
//! Arrow output with zstd level 3 (DuckDB's default level), the same row
//! groups and chunk statistics. Prints one JSON line per table and one of
//! totals: rows, milliseconds and bytes of each.

use std::path::Path;
use std::time::Instant;

use materia_core::transform::duckdb::{AccessMode, Config, Connection};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};

type BoxError = Box<dyn std::error::Error>;

const ROW_GROUP: usize = 1 << 20;

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let (Some(db), Some(out)) = (arg("--db"), arg("--out")) else {
        eprintln!("usage: parquet-writers --db LAKEHOUSE --out DIR");
        return std::process::ExitCode::from(2);
    };
    match run(Path::new(db), Path::new(out)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("parquet-writers: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

fn run(db: &Path, out: &Path) -> Result<(), BoxError> {
    std::fs::create_dir_all(out)?;
    let conn =
        Connection::open_with_flags(db, Config::default().access_mode(AccessMode::ReadOnly)?)?;
    let tables: Vec<String> = conn
        .prepare(
            "SELECT table_schema || '.' || table_name FROM information_schema.tables \
             WHERE table_type = 'BASE TABLE' AND (table_schema = 'serving' OR (table_schema = 'raw' \
             AND (suffix(table_name, '_changes') OR suffix(table_name, '_closed')))) ORDER BY 1",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let (mut rows_all, mut duck_ms, mut duck_bytes, mut arrow_ms, mut arrow_bytes) =
        (0u64, 0u128, 0u64, 0u128, 0u64);
    for table in &tables {
        let duck_path = out.join(format!("{table}.duckdb.parquet"));
        let started = Instant::now();
        let rows = conn.execute(
            &format!(
                "COPY (SELECT * FROM {table}) TO '{}' (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE {ROW_GROUP})",
                duck_path.display()
            ),
            [],
        )? as u64;
        let d_ms = started.elapsed().as_millis();
        let d_bytes = std::fs::metadata(&duck_path)?.len();

        let arrow_path = out.join(format!("{table}.arrow-rs.parquet"));
        let started = Instant::now();
        let mut stmt = conn.prepare(&format!("SELECT * FROM {table}"))?;
        let stream = stmt.stream_arrow([])?;
        let props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
            .set_max_row_group_row_count(Some(ROW_GROUP))
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .build();
        let mut writer = ArrowWriter::try_new(
            std::fs::File::create(&arrow_path)?,
            stream.get_schema(),
            Some(props),
        )?;
        for batch in stream {
            writer.write(&batch?)?;
        }
        writer.close()?;
        let a_ms = started.elapsed().as_millis();
        let a_bytes = std::fs::metadata(&arrow_path)?.len();
        println!(
            "{{\"table\":\"{table}\",\"rows\":{rows},\"duckdb_ms\":{d_ms},\"duckdb_bytes\":{d_bytes},\"arrow_rs_ms\":{a_ms},\"arrow_rs_bytes\":{a_bytes}}}"
        );
        rows_all += rows;
        duck_ms += d_ms;
        duck_bytes += d_bytes;
        arrow_ms += a_ms;
        arrow_bytes += a_bytes;
    }
    println!(
        "{{\"table\":\"total\",\"rows\":{rows_all},\"duckdb_ms\":{duck_ms},\"duckdb_bytes\":{duck_bytes},\"arrow_rs_ms\":{arrow_ms},\"arrow_rs_bytes\":{arrow_bytes}}}"
    );
    Ok(())
}
