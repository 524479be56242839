//! What a failed JSON-RPC request means, in the words real providers use: slow down (429, 503,
//! a rate-limit error), unreachable (connection, timeout, 5xx), a log query too wide or too
//! large for the provider (Alchemy, Infura, QuickNode, Ankr, geth, erigon, reth, …), a method
//! the plan does not offer, or an answer about the request itself. The one place these
//! messages are recognised: the transport retries by it, log queries split by it, the trace
//! probe decides by it.

use std::time::Duration;

use alloy::rpc::json_rpc::ErrorPayload;
use alloy::transports::{RpcError, TransportError, TransportErrorKind};

/// Longest wait a provider's hint is honoured for: a misbehaving hint must not hold a step.
pub const MAX_RETRY_HINT: Duration = Duration::from_secs(30);

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Too many requests: wait (as long as the provider said, when it did) and send it again.
    RateLimited { retry_after: Option<Duration> },
    /// The endpoint did not answer usefully (connection refused or cut, timeout, 5xx, a
    /// load-balanced node behind the others): another endpoint, or the same one later.
    Unavailable,
    /// `eth_getLogs` over more blocks than the provider allows; `limit`, when the message
    /// names it, is the widest range it takes.
    LogRangeRefused { limit: Option<u64> },
    /// `eth_getLogs` whose answer would hold more logs (or bytes) than the provider returns;
    /// `suggested` is the range the provider said would work, when it said.
    LogResultsRefused { suggested: Option<(u64, u64)> },
    /// The method is not offered (not implemented, not on this plan, disabled).
    Unsupported,
    /// Anything else: the answer stands (a revert, a bad parameter).
    Other,
}

impl Fault {
    /// Short label for metrics and logs.
    pub fn kind(self) -> &'static str {
        match self {
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable => "unavailable",
            Self::LogRangeRefused { .. } => "log_range_refused",
            Self::LogResultsRefused { .. } => "log_results_refused",
            Self::Unsupported => "unsupported",
            Self::Other => "error",
        }
    }
}

/// The fault of a transport-level failure (no JSON-RPC answer, or an HTTP error status).
pub fn of_error(error: &TransportError) -> Fault {
    match error {
        RpcError::ErrorResp(payload) => of_payload(payload),
        RpcError::Transport(kind) => of_transport(kind),
        // Some providers answer an error in a shape that is not JSON-RPC's.
        RpcError::DeserError { text, .. } => of_body(text).unwrap_or(Fault::Other),
        _ => Fault::Other,
    }
}

fn of_transport(kind: &TransportErrorKind) -> Fault {
    match kind {
        TransportErrorKind::HttpError(http) => of_http(http.status, &http.body, None),
        TransportErrorKind::HttpErrorWithRetryAfter { error, retry_after } => {
            of_http(error.status, &error.body, Some(*retry_after))
        }
        TransportErrorKind::BackendGone | TransportErrorKind::PubsubUnavailable => {
            Fault::Unavailable
        }
        TransportErrorKind::MissingBatchResponse(_) => Fault::Unavailable,
        TransportErrorKind::Custom(error) => {
            let text = error.to_string();
            if text.contains("429") || text.to_ascii_lowercase().contains("too many requests") {
                Fault::RateLimited { retry_after: None }
            } else {
                // reqwest's connect, timeout and body errors: the endpoint, not the request.
                Fault::Unavailable
            }
        }
        _ => Fault::Other,
    }
}

fn of_http(status: u16, body: &str, retry_after: Option<Duration>) -> Fault {
    let hint = retry_after.map(|d| d.min(MAX_RETRY_HINT));
    match status {
        429 => Fault::RateLimited { retry_after: hint },
        // A 503 with a hint is a provider shedding load; without one, a node that is down.
        503 if hint.is_some() => Fault::RateLimited { retry_after: hint },
        500..=599 => Fault::Unavailable,
        // Some providers put the JSON-RPC error in a 4xx body (a log range, a method).
        _ => match of_body(body) {
            Some(fault) => fault,
            None if matches!(status, 403 | 404 | 405 | 501) => Fault::Unsupported,
            None => Fault::Other,
        },
    }
}

/// The fault of an error body, when it holds a JSON-RPC error.
fn of_body(body: &str) -> Option<Fault> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        error: ErrorPayload,
    }
    if let Ok(envelope) = serde_json::from_str::<Envelope>(body) {
        return Some(of_payload(&envelope.error));
    }
    serde_json::from_str::<ErrorPayload>(body)
        .ok()
        .map(|p| of_payload(&p))
}

/// The fault of a JSON-RPC error answer.
pub fn of_payload(payload: &ErrorPayload) -> Fault {
    let message = payload.message.to_ascii_lowercase();
    // Log refusals first: Infura answers "more than 10000 results" with -32005, the code it
    // also uses for rate limits.
    if is_results_refusal(&message) {
        return Fault::LogResultsRefused {
            suggested: suggested_range(&payload.message),
        };
    }
    if is_range_refusal(&message) {
        return Fault::LogRangeRefused {
            limit: suggested_range(&payload.message)
                .map(|(from, to)| to.saturating_sub(from) + 1)
                .or_else(|| last_number(&payload.message)),
        };
    }
    if payload.code == -32601 || payload.code == -32004 || is_unsupported(&message) {
        return Fault::Unsupported;
    }
    // A node behind a load balancer that has not seen the block yet: ask again.
    if message == "header not found" || message.contains("unknown block") {
        return Fault::Unavailable;
    }
    if payload.is_retry_err() {
        return Fault::RateLimited {
            retry_after: payload_hint(payload).map(|d| d.min(MAX_RETRY_HINT)),
        };
    }
    Fault::Other
}

/// The wait a rate-limit error asks for: Infura's `data.rate.backoff_seconds`, or "try again
/// in 250ms" in the message.
fn payload_hint(payload: &ErrorPayload) -> Option<Duration> {
    if let Some(Ok(data)) = payload.try_data_as::<serde_json::Value>() {
        let seconds = &data["rate"]["backoff_seconds"];
        if let Some(s) = seconds.as_f64() {
            return Some(Duration::from_secs_f64(s.max(0.0)));
        }
    }
    let message = payload.message.to_ascii_lowercase();
    let at = message.find("try again in ")? + "try again in ".len();
    let rest = &message[at..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    let value: u64 = digits.parse().ok()?;
    let unit = rest[digits.len()..].trim_start();
    Some(if unit.starts_with("ms") {
        Duration::from_millis(value)
    } else {
        Duration::from_secs(value)
    })
}

fn is_results_refusal(message: &str) -> bool {
    const PHRASES: [&str; 12] = [
        "more than",
        "max results",
        "too many results",
        "response size",
        "too many logs",
        "result set",
        "results exceed",
        "response is too big",
        "response too large",
        "query timeout",
        "logs exceed",
        "too large response",
    ];
    let about_logs =
        message.contains("result") || message.contains("log") || message.contains("response");
    about_logs && PHRASES.iter().any(|p| message.contains(p))
}

fn is_range_refusal(message: &str) -> bool {
    const PHRASES: [&str; 13] = [
        "block range",
        "blocks range",
        "range is too",
        "range too",
        "too many blocks",
        "max range",
        "maximum range",
        "range exceeds",
        "exceeds the range",
        "limited to a",
        "range limit",
        "ranges over",
        "number of requested blocks",
    ];
    PHRASES.iter().any(|p| message.contains(p))
}

fn is_unsupported(message: &str) -> bool {
    const PHRASES: [&str; 11] = [
        "does not exist",
        "not available",
        "not supported",
        "unsupported",
        "method not found",
        "not allowed",
        "not enabled",
        "is disabled",
        "not whitelisted",
        "upgrade your plan",
        "requires a paid",
    ];
    PHRASES.iter().any(|p| message.contains(p))
}

/// The block range a provider suggests: `[0x1a, 0x2f]` (Alchemy, Infura) or `the range
/// 26-47` (reth).
fn suggested_range(message: &str) -> Option<(u64, u64)> {
    if let Some(open) = message.find('[') {
        let close = open + message[open..].find(']')?;
        let mut parts = message[open + 1..close].split(',').map(str::trim);
        let from = parse_number(parts.next()?)?;
        let to = parse_number(parts.next()?)?;
        return (from <= to).then_some((from, to));
    }
    let lower = message.to_ascii_lowercase();
    let at = lower.find("the range ")? + "the range ".len();
    let rest: String = lower[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    let (from, to) = rest.split_once('-')?;
    let (from, to) = (parse_number(from)?, parse_number(to)?);
    (from <= to).then_some((from, to))
}

fn parse_number(text: &str) -> Option<u64> {
    match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// The last number in a message, thousands separators and a `K` suffix understood: the limit
/// in "exceed maximum block range: 5000", "limited to a 10,000 range", "maximum is set to
/// 2048".
fn last_number(message: &str) -> Option<u64> {
    let mut last = None;
    let mut chars = message.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if !c.is_ascii_digit() {
            continue;
        }
        // Not part of a hex literal or a word.
        let before = message[..start].chars().next_back();
        if before.is_some_and(|b| b.is_ascii_alphanumeric()) {
            while chars.peek().is_some_and(|(_, c)| c.is_ascii_alphanumeric()) {
                chars.next();
            }
            continue;
        }
        let mut digits = String::from(c);
        while let Some(&(_, next)) = chars.peek() {
            if next.is_ascii_digit() {
                digits.push(next);
            } else if next != ',' {
                break;
            }
            chars.next();
        }
        let mut value: u64 = digits.parse().ok()?;
        if chars
            .peek()
            .is_some_and(|(_, c)| c.eq_ignore_ascii_case(&'k'))
        {
            value = value.saturating_mul(1000);
        }
        last = Some(value);
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(code: i64, message: &str) -> ErrorPayload {
        serde_json::from_value(serde_json::json!({"code": code, "message": message}))
            .expect("payload")
    }

    #[test]
    fn providers_log_result_refusals() {
        let infura = payload(
            -32005,
            "query returned more than 10000 results. Try with this block range [0x10, 0x1F].",
        );
        assert_eq!(
            of_payload(&infura),
            Fault::LogResultsRefused {
                suggested: Some((16, 31))
            }
        );
        let alchemy = payload(
            -32602,
            "Log response size exceeded. You can make eth_getLogs requests with up to a 2K block \
             range and no limit on the response size, or you can request any block range with a \
             cap of 10K logs in the response. Based on your parameters, this block range should \
             work: [0x64, 0x7d]",
        );
        assert_eq!(
            of_payload(&alchemy),
            Fault::LogResultsRefused {
                suggested: Some((100, 125))
            }
        );
        let reth = payload(
            -32602,
            "query exceeds max results 20000, retry with the range 100-150",
        );
        assert_eq!(
            of_payload(&reth),
            Fault::LogResultsRefused {
                suggested: Some((100, 150))
            }
        );
        let geth = payload(-32000, "query returned more than 50 results");
        assert_eq!(
            of_payload(&geth),
            Fault::LogResultsRefused { suggested: None }
        );
    }

    #[test]
    fn providers_log_range_refusals() {
        let cases = [
            ("block range is too wide", None),
            ("exceed maximum block range: 5000", Some(5000)),
            ("eth_getLogs is limited to a 10,000 range", Some(10_000)),
            (
                "requested too many blocks from 1 to 5000, maximum is set to 2048",
                Some(2048),
            ),
            (
                "Under the Free tier plan, you can make eth_getLogs requests with up to a 10 \
                 block range. Based on your parameters, this block range should work: [0x1, \
                 0xa]. Upgrade to PAYG for expanded block range.",
                Some(10),
            ),
            ("Block range limit exceeded.", None),
            (
                "ranges over 10000 blocks are not supported on freetier",
                Some(10_000),
            ),
        ];
        for (message, limit) in cases {
            assert_eq!(
                of_payload(&payload(-32600, message)),
                Fault::LogRangeRefused { limit },
                "{message}"
            );
        }
    }

    #[test]
    fn rate_limits_and_missing_methods() {
        let infura = payload(-32005, "daily request count exceeded, request rate limited");
        assert!(matches!(of_payload(&infura), Fault::RateLimited { .. }));
        let alchemy = payload(
            429,
            "Your app has exceeded its compute units per second capacity.",
        );
        assert!(matches!(of_payload(&alchemy), Fault::RateLimited { .. }));
        for message in [
            "the method debug_traceBlockByNumber does not exist/is not available",
            "Method not found",
            "debug_traceBlockByNumber is not available on the Free tier - upgrade your plan",
            "Unsupported method: trace_block",
        ] {
            assert_eq!(
                of_payload(&payload(-32000, message)),
                Fault::Unsupported,
                "{message}"
            );
        }
        assert_eq!(of_payload(&payload(-32601, "whatever")), Fault::Unsupported);
        assert_eq!(of_payload(&payload(3, "execution reverted")), Fault::Other);
        assert_eq!(
            of_payload(&payload(-32000, "header not found")),
            Fault::Unavailable
        );
    }

    #[test]
    fn http_statuses() {
        let limited = TransportErrorKind::http_error_with_retry_after(
            429,
            String::new(),
            Some(Duration::from_secs(2)),
        );
        assert_eq!(
            of_error(&limited),
            Fault::RateLimited {
                retry_after: Some(Duration::from_secs(2))
            }
        );
        let absurd = TransportErrorKind::http_error_with_retry_after(
            503,
            String::new(),
            Some(Duration::from_secs(86_400)),
        );
        assert_eq!(
            of_error(&absurd),
            Fault::RateLimited {
                retry_after: Some(MAX_RETRY_HINT)
            }
        );
        assert_eq!(
            of_error(&TransportErrorKind::http_error(502, "bad gateway".into())),
            Fault::Unavailable
        );
        let refused_in_body = TransportErrorKind::http_error(
            400,
            r#"{"jsonrpc":"2.0","id":1,"error":{"code":-32600,"message":"block range is too wide"}}"#
                .into(),
        );
        assert_eq!(
            of_error(&refused_in_body),
            Fault::LogRangeRefused { limit: None }
        );
        assert_eq!(
            of_error(&TransportErrorKind::http_error(405, String::new())),
            Fault::Unsupported
        );
        assert_eq!(
            of_error(&TransportErrorKind::custom_str(
                "error sending request: connection refused"
            )),
            Fault::Unavailable
        );
    }
}
