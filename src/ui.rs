//! The dashboard page served at `GET /ui` on the admin listener.
//!
//! One self-contained HTML page: its style and script are inline, embedded in the binary with
//! `include_str!` from `src/ui/`, so there is no build step and nothing is fetched from
//! elsewhere. The page holds no data and no secret: it asks for the admin token, keeps it in the
//! tab's `sessionStorage`, and sends it as `Authorization: Bearer` with every call it makes to
//! the admin API (`/stats`, `/entries/top`, `/purge`, `/warm`), which refuses without it. So the
//! page itself may be loaded without a token, and a cross-site page can neither read it (it
//! cannot be framed) nor make an authorized call (the token is not a cookie).
//!
//! The answer carries a Content-Security-Policy that allows exactly the page's own style and
//! script, by their SHA-256 hashes (computed once from the embedded text), and calls to this
//! origin only; it cannot be framed, sends no referrer and is not cached.

use crate::body::ProxyBody;
use base64::Engine;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use http::{HeaderValue, Response};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

const TEMPLATE: &str = include_str!("ui/dashboard.html");
const STYLE: &str = include_str!("ui/dashboard.css");
const SCRIPT: &str = include_str!("ui/dashboard.js");
const STYLE_SLOT: &str = "/*STYLE*/";
const SCRIPT_SLOT: &str = "/*SCRIPT*/";

/// The page and the policy that allows its inline style and script.
struct Page {
    html: String,
    csp: HeaderValue,
}

static PAGE: LazyLock<Page> = LazyLock::new(|| {
    let html = TEMPLATE
        .replacen(STYLE_SLOT, STYLE, 1)
        .replacen(SCRIPT_SLOT, SCRIPT, 1);
    let csp = policy(&hash(STYLE), &hash(SCRIPT));
    Page {
        html,
        // The policy is ASCII (base64 and fixed text), so this cannot fail.
        csp: HeaderValue::from_str(&csp)
            .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'")),
    }
});

/// `'sha256-<base64>'` of an inline element's text, as CSP names it.
fn hash(text: &str) -> String {
    let digest = Sha256::digest(text.as_bytes());
    format!(
        "'sha256-{}'",
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

/// Nothing but the page's own style and script, calls to this origin, no framing, no forms
/// posted anywhere, no `<base>`.
fn policy(style: &str, script: &str) -> String {
    format!(
        "default-src 'none'; script-src {script}; style-src {style}; connect-src 'self'; \
         img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}

/// The `GET /ui` answer: the page with its security headers.
pub fn page() -> Response<ProxyBody> {
    let page = &*PAGE;
    let mut response = Response::new(ProxyBody::full(bytes::Bytes::from_static(
        page.html.as_bytes(),
    )));
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(CONTENT_SECURITY_POLICY, page.csp.clone());
    headers.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(
        http::header::HeaderName::from_static("cross-origin-opener-policy"),
        HeaderValue::from_static("same-origin"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The text between the first `open` and the `</close>` after it.
    fn inner<'a>(html: &'a str, open: &str, close: &str) -> &'a str {
        let start = html.find(open).expect(open) + open.len();
        let len = html[start..].find(close).expect(close);
        &html[start..start + len]
    }

    #[test]
    fn the_policy_allows_exactly_the_inline_style_and_script() {
        let html = &PAGE.html;
        let csp = PAGE.csp.to_str().unwrap();
        let style = inner(html, "<style>", "</style>");
        let script = inner(html, "<script>", "</script>");
        assert_eq!(style, STYLE);
        assert_eq!(script, SCRIPT);
        assert!(
            csp.contains(&format!("style-src {};", hash(style))),
            "{csp}"
        );
        assert!(
            csp.contains(&format!("script-src {};", hash(script))),
            "{csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(csp.starts_with("default-src 'none';"));
        // One script and one style element: anything else would be refused by the policy.
        assert_eq!(html.matches("<script").count(), 1);
        assert_eq!(html.matches("<style").count(), 1);
        assert!(!html.contains(STYLE_SLOT) && !html.contains(SCRIPT_SLOT));
    }

    #[test]
    fn the_page_fetches_nothing_from_elsewhere_and_has_no_inline_handlers() {
        // The SVG namespace is a name, never fetched.
        let html = &PAGE.html.replace("\"http://www.w3.org/2000/svg\"", "");
        for needle in ["http://", "https://", "src=", "@import", "url(", " on"] {
            let found = match needle {
                // Inline handlers (`onclick=`) would be refused by the policy.
                " on" => html.match_indices(" on").any(|(i, _)| {
                    html[i + 3..].starts_with(|c: char| c.is_ascii_lowercase()) && {
                        let rest = &html[i + 1..];
                        let name: String = rest
                            .chars()
                            .take_while(|c| c.is_ascii_alphabetic())
                            .collect();
                        rest[name.len()..].starts_with('=')
                    }
                }),
                _ => html.contains(needle),
            };
            assert!(!found, "the page holds {needle:?}");
        }
    }

    #[test]
    fn the_answer_carries_the_security_headers() {
        let response = page();
        let h = response.headers();
        assert_eq!(h[CONTENT_TYPE], "text/html; charset=utf-8");
        assert_eq!(h[X_FRAME_OPTIONS], "DENY");
        assert_eq!(h[REFERRER_POLICY], "no-referrer");
        assert_eq!(h[CACHE_CONTROL], "no-store");
        assert_eq!(h[X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert_eq!(h[CONTENT_SECURITY_POLICY], PAGE.csp);
    }
}
