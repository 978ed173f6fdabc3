//! What a landing file must be before a build loads it: sound (gzip, its
//! recorded hashes) and with the columns its dataset's table declares.

use crate::csv::split_header;
use crate::dataset::TableSpec;
use crate::error::{IoContext, Result};
use crate::landing::{Entry, LandingStore};

/// What keeps a landing file from being loaded, if anything: it must be sound
/// (gzip, recorded hashes) and have the columns its table declares. I/O errors
/// are errors, not reasons to quarantine.
pub(crate) fn landing_file_problem(
    store: &LandingStore,
    entry: &Entry,
    table: &TableSpec,
) -> Result<Option<String>> {
    let path = store.path_of(&entry.key);
    if let Some(problem) = store.check(&entry.key)? {
        return Ok(Some(problem));
    }
    let mut reader = std::io::BufReader::new(store.get(&entry.key)?);
    let mut line = Vec::new();
    std::io::BufRead::read_until(&mut reader, b'\n', &mut line).at(&path)?;
    let found = split_header(line.strip_suffix(b"\n").unwrap_or(&line));
    let expected = table.header();
    if found == expected {
        return Ok(None);
    }
    Ok(Some(format!(
        "its columns differ from datasets.{}.table: {}",
        entry.key.dataset,
        column_difference(&expected, &found)
    )))
}

/// What differs between the declared columns and a file's header.
///
/// Names are shown with `{:?}` (a hostile header is quoted, never raw), at
/// most 10 of each kind.
fn column_difference(expected: &[String], found: &[String]) -> String {
    let list = |names: Vec<&String>| {
        let shown: Vec<String> = names.iter().take(10).map(|n| format!("{n:?}")).collect();
        let more = names.len().saturating_sub(10);
        if more > 0 {
            format!("{} and {more} more", shown.join(", "))
        } else {
            shown.join(", ")
        }
    };
    let missing: Vec<&String> = expected.iter().filter(|c| !found.contains(c)).collect();
    let extra: Vec<&String> = found.iter().filter(|c| !expected.contains(c)).collect();
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing {}", list(missing)));
    }
    if !extra.is_empty() {
        parts.push(format!("unexpected {}", list(extra)));
    }
    if parts.is_empty() {
        let at = expected
            .iter()
            .zip(found)
            .position(|(a, b)| a != b)
            .unwrap_or(0);
        parts.push(format!(
            "the same columns in another order (column {} is {:?}, declared {:?})",
            at + 1,
            found.get(at).map_or("", String::as_str),
            expected.get(at).map_or("", String::as_str)
        ));
    }
    parts.join("; ")
}
