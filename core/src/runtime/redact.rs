//! Redaction of chain endpoints: RPC and WebSocket URLs carry API keys (in the path, the
//! query, the fragment or userinfo), so logs, errors and `Debug` output show an endpoint only
//! as `scheme://host[:port]/…`.

/// `scheme://host[:port]/…`: enough to tell endpoints apart in logs, never a key.
pub fn redact_url(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    // Userinfo (`user:key@host`) is a credential too.
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let suffix = if rest.len() > authority.len() {
        "/…"
    } else {
        ""
    };
    format!("{scheme}://{host}{suffix}")
}

/// `text` (an error message) with every URL in it redacted as by [`redact_url`]: transport
/// errors quote the URL they failed on, API key included, and such messages end up in logs.
pub fn redact_urls(text: &str) -> String {
    const SCHEMES: [&str; 4] = ["https://", "http://", "wss://", "ws://"];
    // ASCII lowercasing keeps byte offsets, so positions found in it are positions in `text`.
    let folded = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    while let Some(start) = SCHEMES
        .iter()
        .filter_map(|s| folded[rest..].find(s).map(|i| rest + i))
        .min()
    {
        let len = text[start..]
            .find(|c: char| c.is_whitespace() || "()\"'<>[]{}`".contains(c))
            .unwrap_or(text.len() - start);
        out.push_str(&text[rest..start]);
        out.push_str(&redact_url(&text[start..start + len]));
        rest = start + len;
    }
    out.push_str(&text[rest..]);
    out
}

#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn redaction_never_panics(url in "\\PC{0,60}") {
            let _ = redact_url(&url);
            let _ = redact_urls(&url);
        }

        /// An error message quoting a URL, as transport errors do, loses the key and keeps
        /// the rest of the message.
        #[test]
        fn urls_inside_messages_lose_their_keys(
            before in "[a-z :(]{0,20}",
            scheme in prop::sample::select(vec!["http", "https", "ws", "wss", "HTTPS"]),
            host in "[a-z0-9.-]{1,20}(:[0-9]{1,5})?",
            key in "[A-Z][A-Z0-9_]{7,31}",
            place in 0usize..3,
            after in "[a-z :)]{0,20}",
            urls in 1usize..3,
        ) {
            let url = match place {
                0 => format!("{scheme}://{host}/v2/{key}"),
                1 => format!("{scheme}://{host}/?apikey={key}"),
                _ => format!("{scheme}://user:{key}@{host}"),
            };
            let message = format!("{before}{}{after}", vec![url; urls].join(" and "));
            let shown = redact_urls(&message);
            prop_assert!(!shown.contains(&key), "{} shown as {}", message, shown);
            prop_assert!(shown.starts_with(&before) && shown.contains(&host), "{}", shown);
        }
    }
}
