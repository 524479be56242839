//! Sending one delivery: signed anew for every attempt — by every secret that signs it (two
//! during a rotation's overlap) — through the checked client (the same destination rules as
//! token-list fetches, at every connection), retried with the project's backoff on an error
//! answer, a timeout or a broken connection — not on a refusal, which no retry can change.
//! A redirect is never followed: a 3xx is a failed attempt (following it would turn the POST
//! into a GET whose 2xx would count as delivered, and carry the signed headers elsewhere).

use std::time::Duration;

use live_balances::config::WebhookSettings;
use live_balances::domain::webhook::Subscription;
use live_balances::runtime::backoff::Backoff;
use live_balances::runtime::clock::unix_now;
use live_balances::runtime::destination::{Destinations, Redirects, checked_client, refusal_in};
use live_balances::wire::webhook_signature::{ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, sign};

/// Why a delivery did not get through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Attempts made.
    pub attempts: u32,
    /// What the last one met, for the subscription's `GET`.
    pub error: String,
}

/// The HTTP side of deliveries.
#[derive(Debug, Clone)]
pub struct Sender {
    client: reqwest::Client,
    destinations: Destinations,
    timeout: Duration,
    backoff: Backoff,
}

impl Sender {
    pub fn new(settings: &WebhookSettings) -> Result<Self, reqwest::Error> {
        let destinations = Destinations {
            allow_insecure: settings.allow_insecure,
        };
        Ok(Self {
            client: checked_client(destinations, Redirects::Never, settings.delivery.timeout)?,
            destinations,
            timeout: settings.delivery.timeout,
            backoff: Backoff::new(settings.delivery.retry_first, settings.delivery.retry_max),
        })
    }

    /// POSTs `body` to the subscription's target, signed with each of `secrets` (in the clear,
    /// the current one first), at most `attempts` times; `Ok` with the attempts it took once
    /// the target answers 2xx.
    pub async fn send(
        &self,
        sub: &Subscription,
        secrets: &[String],
        id: &str,
        body: &str,
        attempts: u32,
    ) -> Result<u32, Failure> {
        let url = match url::Url::parse(&sub.url) {
            Ok(url) => url,
            Err(e) => return Err(failure(0, format!("stored url does not parse: {e}"))),
        };
        // The rules may have tightened since the subscription was created.
        if let Err(refusal) = self.destinations.check_url(&url) {
            return Err(failure(0, format!("refused: {refusal}")));
        }
        let mut error = String::new();
        for attempt in 1..=attempts.max(1) {
            if attempt > 1 {
                tokio::time::sleep(self.backoff.pause(attempt - 2)).await;
            }
            let timestamp = unix_now();
            let signed: Result<Vec<String>, _> = secrets
                .iter()
                .map(|secret| sign(secret, id, timestamp, body.as_bytes()))
                .collect();
            // Standard Webhooks: several signatures, space-separated; any one verifies.
            let signature = match signed {
                Ok(s) => s.join(" "),
                Err(e) => return Err(failure(attempt - 1, e.to_string())),
            };
            let answer = self
                .client
                .post(url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(ID_HEADER, id)
                .header(TIMESTAMP_HEADER, timestamp.to_string())
                .header(SIGNATURE_HEADER, signature)
                .body(body.to_string())
                .send()
                .await;
            match answer {
                Ok(response) if response.status().is_success() => return Ok(attempt),
                Ok(response) if response.status().is_redirection() => {
                    error = format!(
                        "the target answered {} (redirects are not followed)",
                        response.status()
                    )
                }
                Ok(response) => error = format!("the target answered {}", response.status()),
                Err(e) => match refusal_in(&e) {
                    Some(Ok(refusal)) => {
                        return Err(failure(attempt, format!("refused: {refusal}")));
                    }
                    Some(Err(limit)) => return Err(failure(attempt, limit.to_string())),
                    None if e.is_timeout() => {
                        error = format!("no answer within {} ms", self.timeout.as_millis())
                    }
                    None => error = format!("the target could not be reached: {e}"),
                },
            }
            tracing::debug!(subscription = %sub.id, id, attempt, error, "delivery attempt failed");
        }
        Err(failure(attempts.max(1), error))
    }
}

fn failure(attempts: u32, error: String) -> Failure {
    Failure { attempts, error }
}
