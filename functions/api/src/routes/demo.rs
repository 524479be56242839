//! The demo page (`GET /`, `/demo`, `/demo.js`, `/demo.css`): plain HTML, CSS and JS (the
//! TypeScript client's committed bundle included) embedded at compile time, served with a
//! Content-Security-Policy that allows only the page's own files and same-origin requests, so
//! injected markup could not run even if it got in.

use bytes::Bytes;
use http::Response;
use http::{HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Full};

use crate::body::ResponseBody;

const HTML: &str = include_str!("../../static/demo.html");
/// The TypeScript client's bundle (`make client`, global `LiveBalances`), then the page's own
/// script that uses it: one file, so the page still loads exactly one script.
const JS: &str = concat!(
    include_str!("../../static/live-balances.js"),
    "\n",
    include_str!("../../static/demo.js")
);
const CSS: &str = include_str!("../../static/demo.css");

/// No inline script or style; the favicon is an empty `data:` URL (no request, no 404).
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                   img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// One of the page's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Asset {
    Page,
    Script,
    Style,
}

impl Asset {
    fn content(self) -> (&'static str, &'static str) {
        match self {
            Self::Page => (HTML, "text/html; charset=utf-8"),
            Self::Script => (JS, "text/javascript; charset=utf-8"),
            Self::Style => (CSS, "text/css; charset=utf-8"),
        }
    }
}

/// Where each file is served (the page at the root too). Not in the OpenAPI document: the page
/// is for people, not clients.
const PATHS: [(&str, Asset); 4] = [
    ("/", Asset::Page),
    ("/demo", Asset::Page),
    ("/demo.js", Asset::Script),
    ("/demo.css", Asset::Style),
];

/// The page's routes, each answering `GET` with its file.
pub fn routes<S: Clone + Send + Sync + 'static>() -> axum::Router<S> {
    PATHS
        .into_iter()
        .fold(axum::Router::new(), |router, (path, asset)| {
            router.route(
                path,
                axum::routing::get(move || async move { serve(asset) }),
            )
        })
}

/// Whether `route` is one of the page's.
pub fn serves(route: &str) -> bool {
    PATHS.iter().any(|(path, _)| *path == route)
}

pub fn serve(asset: Asset) -> Response<ResponseBody> {
    let (content, content_type) = asset.content();
    let mut response =
        Response::new(Full::new(Bytes::from_static(content.as_bytes())).boxed_unsync());
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Short, so a redeployed page is picked up within a minute.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=60"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_loads_its_files_relatively_and_has_no_inline_script() {
        assert!(HTML.contains(r#"<script src="demo.js" defer></script>"#));
        assert!(HTML.contains(r#"href="demo.css""#));
        // With `script-src 'self'` an inline script or handler would be blocked: none exist.
        assert_eq!(HTML.matches("<script").count(), 1);
        let handlers = HTML.split(" on").skip(1).filter(|rest| {
            let name = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
            name > 0 && rest.as_bytes().get(name) == Some(&b'=')
        });
        assert_eq!(handlers.count(), 0, "no inline event handlers");
        assert!(!JS.contains("innerHTML"), "the DOM is built from text only");
        // The client comes first and the page uses it.
        assert!(JS.starts_with("// @live-balances/client"));
        assert!(JS.contains("var LiveBalances = "));
        assert!(JS.contains("LiveBalances.createClient("));
    }

    #[test]
    fn every_asset_is_served_with_its_type_and_the_policy() {
        for (asset, content_type) in [
            (Asset::Page, "text/html; charset=utf-8"),
            (Asset::Script, "text/javascript; charset=utf-8"),
            (Asset::Style, "text/css; charset=utf-8"),
        ] {
            let response = serve(asset);
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(response.headers()[header::CONTENT_TYPE], content_type);
            assert!(
                response.headers()[header::CONTENT_SECURITY_POLICY]
                    .to_str()
                    .unwrap()
                    .contains("script-src 'self'")
            );
        }
    }
}
