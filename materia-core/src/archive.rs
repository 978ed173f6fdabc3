//! Zip archives as USDA publishes them: picking the one CSV member to land.

use std::io::{Read, Seek};

pub use zip;

use crate::error::{Error, Result};

/// The index of the member to land: the one named `wanted`, or else the single
/// `*.csv` member. An archive holding any member whose name would escape a
/// directory (`../x`, `/etc/x`) is refused whole; several `*.csv` members without
/// `wanted` is an error that lists them.
///
/// ```
/// use std::io::{Cursor, Write};
/// use materia_core::archive::{pick_csv_member, zip};
/// let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
/// w.start_file("readme.txt", zip::write::SimpleFileOptions::default())?;
/// w.start_file("psd_coffee.csv", zip::write::SimpleFileOptions::default())?;
/// w.write_all(b"a,b\n")?;
/// let mut archive = zip::ZipArchive::new(w.finish()?)?;
/// assert_eq!(pick_csv_member(&mut archive, None)?, 1);
/// assert!(pick_csv_member(&mut archive, Some("other.csv")).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn pick_csv_member<R: Read + Seek>(
    archive: &mut zip::ZipArchive<R>,
    wanted: Option<&str>,
) -> Result<usize> {
    let bad = |reason: String| Error::Extract {
        url: String::new(),
        reason,
    };
    let mut names = Vec::new();
    for i in 0..archive.len() {
        let member = archive
            .by_index_raw(i)
            .map_err(|e| bad(format!("cannot read the zip directory: {e}")))?;
        let name = member.name().map(|n| n.into_owned()).unwrap_or_default();
        if member.enclosed_name().is_none() {
            return Err(bad(format!(
                "the zip holds a member with an unsafe name {name:?}"
            )));
        }
        if !member.is_dir() {
            names.push((i, name));
        }
    }
    let listing = || {
        let all: Vec<&str> = names.iter().map(|(_, n)| n.as_str()).collect();
        if all.is_empty() {
            "it holds no files".to_owned()
        } else {
            format!("it holds {}", all.join(", "))
        }
    };
    if let Some(wanted) = wanted {
        return names
            .iter()
            .find(|(_, n)| n == wanted)
            .map(|(i, _)| *i)
            .ok_or_else(|| bad(format!("the zip has no member {wanted:?}; {}", listing())));
    }
    let csvs: Vec<&(usize, String)> = names
        .iter()
        .filter(|(_, n)| n.to_ascii_lowercase().ends_with(".csv"))
        .collect();
    match csvs[..] {
        [(i, _)] => Ok(*i),
        [] => Err(bad(format!("the zip holds no .csv member; {}", listing()))),
        _ => Err(bad(format!(
            "the zip holds several .csv members, name one with zip_member; {}",
            listing()
        ))),
    }
}
