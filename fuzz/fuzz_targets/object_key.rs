//! Restore's reading of bucket object names (untrusted: they come from a listing).
//!
//! Invariants: it never panics; an accepted name is exactly the prefix, `/`, and
//! the key's canonical text, and its path is four plain components under the root.
#![no_main]

use std::path::Component;

use libfuzzer_sys::fuzz_target;
use materia_core::landing::LandingKey;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for prefix in ["landing", "", "a/b"] {
        if let Ok(key) = LandingKey::from_object_key(prefix, text) {
            let expected = if prefix.is_empty() {
                key.to_string()
            } else {
                format!("{prefix}/{key}")
            };
            assert_eq!(expected, text);
            let rel = key.relative_path();
            assert_eq!(rel.components().count(), 4);
            assert!(rel.components().all(|c| matches!(c, Component::Normal(_))));
        }
    }
});
