//! Picking the CSV member of an arbitrary (hostile) zip archive.
//!
//! Invariants: it never panics; a member it picks is a file whose name stays
//! inside a directory and is the wanted name or ends in `.csv`; reading it (with a
//! cap, as extract does) never panics either.
#![no_main]

use std::io::{Cursor, Read};

use libfuzzer_sys::fuzz_target;
use materia_core::archive::{pick_csv_member, zip};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let Ok(mut archive) = zip::ZipArchive::new(Cursor::new(bytes)) else {
        return;
    };
    let wanted = (pick % 2 == 1).then_some("psd_coffee.csv");
    let Ok(index) = pick_csv_member(&mut archive, wanted) else {
        return;
    };
    let Ok(member) = archive.by_index(index) else {
        return;
    };
    assert!(member.is_file());
    assert!(member.enclosed_name().is_some(), "{:?}", member.name());
    let name = member.name().map(|n| n.into_owned()).unwrap_or_default();
    match wanted {
        Some(w) => assert_eq!(name, w),
        None => assert!(name.to_ascii_lowercase().ends_with(".csv"), "{name:?}"),
    }
    let _ = member.take(1 << 20).read_to_end(&mut Vec::new());
});
