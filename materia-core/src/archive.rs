//! Zip archives as USDA publishes them: picking the one CSV member to land.

use std::io::{Read, Seek};

pub use zip;

use crate::error::{Error, Result};

/// The index of the member to land: the one named `wanted`, or else the single
/// `*.csv` member; only regular files count (a symlink named `x.csv` is not a
/// candidate). An archive holding any member whose name would escape a
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
    let bad = |reason: String| Error::InvalidInput { reason };
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
        // Regular files only: directories, symlinks and the odd Unix mode
        // (a FIFO bit, say) are never landed.
        if member.is_file() {
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

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use super::*;

    #[test]
    fn only_regular_files_are_candidates() {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default();
        w.add_symlink("psd_coffee.csv", "/etc/passwd", opts)
            .expect("symlink");
        w.add_directory("data.csv/", opts).expect("dir");
        let mut archive = zip::ZipArchive::new(w.finish().expect("zip")).expect("read");
        let err = pick_csv_member(&mut archive, None).expect_err("no file");
        assert!(err.to_string().contains("no .csv member"), "{err}");
        let named = pick_csv_member(&mut archive, Some("psd_coffee.csv")).expect_err("link");
        assert!(named.to_string().contains("no member"), "{named}");

        // The input the fuzzer found: a member whose Unix mode has a FIFO bit.
        let found = include_bytes!("../../fuzz/corpus/zip_member/fifo-mode-member");
        let mut archive = zip::ZipArchive::new(Cursor::new(&found[1..])).expect("read");
        assert!(pick_csv_member(&mut archive, None).is_err());
        let mut ok = zip::ZipWriter::new(Cursor::new(Vec::new()));
        ok.start_file("psd_coffee.csv", opts).expect("file");
        ok.write_all(b"a\n").expect("write");
        let mut archive = zip::ZipArchive::new(ok.finish().expect("zip")).expect("read");
        assert_eq!(pick_csv_member(&mut archive, None).expect("file"), 0);
    }
}
