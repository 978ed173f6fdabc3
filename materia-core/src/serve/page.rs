//! The page at `/`: static HTML, its script and its style sheet, sent with a
//! Content-Security-Policy that allows only this server's script, style and
//! API — so even a value the page failed to treat as text could not run.

use axum::http::header;
use axum::response::{IntoResponse, Response};

/// The page's Content-Security-Policy: nothing inline (no `<script>` or
/// `style=` in markup), nothing from elsewhere.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
            (header::CONTENT_SECURITY_POLICY, CSP),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// `GET /`: the World balance, a country picker, a revision history and the
/// CFTC positioning, from this API (plain HTML, SVG and a script file).
pub(crate) async fn page() -> Response {
    asset("text/html; charset=utf-8", include_str!("page.html"))
}

/// `GET /page.js`: the page's script.
pub(crate) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("page.js"))
}

/// `GET /page.css`: the page's style sheet.
pub(crate) async fn style() -> Response {
    asset("text/css; charset=utf-8", include_str!("page.css"))
}
