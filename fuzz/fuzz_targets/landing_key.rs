//! Landing keys and ETag tokens from arbitrary bytes.
//!
//! Invariants: parsing never panics; whatever parses renders back to the same
//! text; whatever `Etag::from_header` returns is a valid token whose path stays
//! four plain components under the root.
#![no_main]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use libfuzzer_sys::fuzz_target;
use materia_core::landing::{Etag, LandingKey};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(key) = text.parse::<LandingKey>() {
            assert_eq!(key.to_string(), text);
            assert_eq!(text.parse::<LandingKey>().ok(), Some(key));
        }
    }
    if let Ok(key) = LandingKey::try_from(Path::new(OsStr::from_bytes(data))) {
        assert_eq!(key.relative_path(), Path::new(OsStr::from_bytes(data)));
    }
    if let Some(etag) = Etag::from_header(data) {
        assert_eq!(etag.as_str().parse::<Etag>().ok(), Some(etag.clone()));
        assert_eq!(Etag::from_header(data), Some(etag.clone()));
        let key: LandingKey = format!("psd/2026/11/{etag}.csv.gzip")
            .parse()
            .expect("a token from from_header always makes a valid key");
        let rel = key.relative_path();
        assert_eq!(rel.components().count(), 4);
        assert!(rel.components().all(|c| matches!(c, Component::Normal(_))));
    }
});
