//! Property tests: keys round-trip, and no ETag can lead a path out of the root.

use std::path::{Component, Path};

use materia_core::landing::{Dataset, Etag, LandingKey, Month, Year};
use proptest::prelude::*;

fn key() -> impl Strategy<Value = LandingKey> {
    (
        "[a-z0-9_-]{1,64}",
        1900i64..=9999,
        1i64..=12,
        "[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}",
    )
        .prop_map(|(d, y, m, e)| LandingKey {
            dataset: d.parse().expect("generated valid"),
            year: Year::new(y).expect("generated valid"),
            month: Month::new(m).expect("generated valid"),
            etag: e.parse().expect("generated valid"),
        })
}

/// Byte strings weighted towards what breaks paths.
fn hostile_header() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        "\\PC{0,200}".prop_map(String::into_bytes),
        proptest::collection::vec(
            prop_oneof![
                Just(&b"../"[..]),
                Just(&b"/"[..]),
                Just(&b".."[..]),
                Just(&b"\0"[..]),
                Just(&b"\""[..]),
                Just(&b"W/"[..]),
                Just(&b"a"[..]),
                Just(&b" "[..]),
                Just("é".as_bytes()),
            ],
            0..40
        )
        .prop_map(|parts| parts.concat()),
        (1usize..12_000).prop_map(|n| vec![b'a'; n]),
    ]
}

proptest! {
    #[test]
    fn render_then_parse_is_identity(k in key()) {
        let rendered = k.to_string();
        prop_assert_eq!(rendered.parse::<LandingKey>()?, k.clone());
        prop_assert_eq!(LandingKey::try_from(k.relative_path().as_path())?, k);
    }

    #[test]
    fn parse_then_render_is_identity(s in "[a-z0-9/._-]{0,40}") {
        if let Ok(k) = s.parse::<LandingKey>() {
            prop_assert_eq!(k.to_string(), s);
        }
    }

    #[test]
    fn any_etag_header_stays_under_the_root(header in hostile_header()) {
        let Some(etag) = Etag::from_header(&header) else {
            // Only a value that is empty once `W/` and the quotes are gone.
            let empty: [&[u8]; 4] = [b"", b"\"\"", b"W/", b"W/\"\""];
            prop_assert!(empty.contains(&header.trim_ascii()), "{:?}", header);
            return Ok(());
        };
        let key = LandingKey {
            dataset: "psd".parse::<Dataset>()?,
            year: Year::new(2026)?,
            month: Month::new(11)?,
            etag: etag.clone(),
        };
        let root = Path::new("/srv/landing");
        let path = root.join(key.relative_path());
        prop_assert!(path.starts_with(root));
        let rel = path.strip_prefix(root).expect("checked");
        prop_assert_eq!(rel.components().count(), 4);
        prop_assert!(rel.components().all(|c| matches!(c, Component::Normal(_))));
        // The token is a valid etag, and the mapping is a function.
        prop_assert_eq!(etag.as_str().parse::<Etag>()?, etag.clone());
        prop_assert_eq!(Etag::from_header(&header), Some(etag));
    }
}
