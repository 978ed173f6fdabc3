//! The CSV header check over arbitrary input.
//!
//! Invariants: it never panics; when it accepts, every byte passes through
//! unchanged and the first line's columns are exactly the expected ones; when it
//! refuses, the reason is a non-empty line of at most a few hundred characters.
#![no_main]

use std::io::Read;

use libfuzzer_sys::fuzz_target;
use materia_core::csv::{HeaderCheck, split_header};
use materia_core::dataset::PSD_COLUMNS;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, input)) = data.split_first() else {
        return;
    };
    let expected: Vec<String> = match pick % 3 {
        0 => PSD_COLUMNS.iter().map(|c| (*c).to_owned()).collect(),
        1 => vec!["a".into(), "b,c".into()],
        _ => vec!["x".into()],
    };
    let mut out = Vec::new();
    match HeaderCheck::new(input, &expected).read_to_end(&mut out) {
        Ok(_) => {
            assert_eq!(out, input);
            let line = input.split(|&b| b == b'\n').next().unwrap_or_default();
            assert_eq!(split_header(line), expected);
        }
        Err(e) => {
            let why = e.to_string();
            assert!(!why.is_empty());
            assert!(!why.contains('\n'), "one line: {why:?}");
            assert!(why.len() < 2048, "bounded: {} bytes", why.len());
        }
    }
});
