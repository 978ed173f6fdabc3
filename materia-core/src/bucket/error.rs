//! A bucket's failures as [`Error`]s a caller can match: which operation
//! failed ([`Operation`]: the variant) and what kind of failure it was
//! ([`RemoteKind`], from the S3 client's error: [`classify`]).

use crate::error::{BoxError, Error, RemoteKind};

/// The operation a bucket serves, which names its failures: a mirror's are
/// [`Error::Mirror`], a publish's [`Error::Publish`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Operation {
    /// `mirror`, `restore`, `drill`.
    Mirror,
    /// `publish`.
    #[cfg_attr(not(feature = "publish"), allow(dead_code))]
    Publish,
}

impl Operation {
    /// The error of this operation on `url`.
    pub(crate) fn error(
        self,
        url: &str,
        kind: RemoteKind,
        reason: impl std::fmt::Display,
        source: Option<BoxError>,
    ) -> Error {
        let (url, reason) = (url.to_owned(), reason.to_string());
        match self {
            Operation::Mirror => Error::Mirror {
                url,
                reason,
                kind,
                source,
            },
            Operation::Publish => Error::Publish {
                url,
                reason,
                kind,
                source,
            },
        }
    }

    /// The S3 client's error after its retries, classified, kept as the
    /// source; `context` (which object or part) goes before its text.
    pub(crate) fn store_error(
        self,
        url: &str,
        context: impl std::fmt::Display,
        e: object_store::Error,
    ) -> Error {
        let kind = classify(&e);
        self.error(url, kind, format!("{context}{e}"), Some(Box::new(e)))
    }
}

/// The HTTP status an error's text reports (`status code: 404`, `status: 503`).
fn http_status(text: &str) -> Option<u16> {
    ["status code: ", "status: "].iter().find_map(|marker| {
        let at = text.find(marker)? + marker.len();
        text.get(at..at + 3)?.parse().ok()
    })
}

/// What kind of failure an `object_store` error is.
pub(crate) fn classify(e: &object_store::Error) -> RemoteKind {
    use object_store::Error as E;
    match e {
        E::NotFound { .. } => RemoteKind::NotFound,
        E::AlreadyExists { .. } | E::Precondition { .. } | E::NotModified { .. } => {
            RemoteKind::Conflict
        }
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => RemoteKind::Auth,
        E::InvalidPath { .. } | E::UnknownConfigurationKey { .. } | E::NotSupported { .. } => {
            RemoteKind::Config
        }
        _ => {
            let mut source = std::error::Error::source(e);
            while let Some(s) = source {
                if let Some(http) = s.downcast_ref::<object_store::client::HttpError>() {
                    use object_store::client::HttpErrorKind as K;
                    return match http.kind() {
                        K::Timeout => RemoteKind::Timeout,
                        K::Connect | K::Request | K::Interrupted => RemoteKind::Transient,
                        _ => RemoteKind::Other,
                    };
                }
                source = s.source();
            }
            // A request error object_store does not map (a listing's): the
            // HTTP status is only in its text.
            match http_status(&e.to_string()) {
                Some(401 | 403) => RemoteKind::Auth,
                Some(404) => RemoteKind::NotFound,
                Some(409 | 412) => RemoteKind::Conflict,
                Some(429 | 500..=599) => RemoteKind::Transient,
                _ => RemoteKind::Other,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_is_read_from_either_wording() {
        assert_eq!(
            http_status("Server returned status code: 404 Not Found"),
            Some(404)
        );
        assert_eq!(http_status("request failed, status: 503"), Some(503));
        assert_eq!(http_status("connection reset"), None);
    }

    #[test]
    fn each_operation_has_its_variant() {
        let e = Operation::Publish.error("s3://b/p", RemoteKind::Config, "bad", None);
        assert!(matches!(
            e,
            Error::Publish {
                kind: RemoteKind::Config,
                ..
            }
        ));
        let e = Operation::Mirror.store_error(
            "s3://b/p",
            "x: ",
            object_store::Error::NotFound {
                path: "x".into(),
                source: "gone".into(),
            },
        );
        assert!(
            matches!(
                e,
                Error::Mirror {
                    kind: RemoteKind::NotFound,
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().starts_with("mirror s3://b/p: x: "), "{e}");
    }
}
