//! A new subscription checked before anything is stored: its target (a URL the destination
//! rules allow, resolving only to allowed addresses), its wallets' room for one more
//! subscription, and its signing secret, sealed.

use std::collections::BTreeSet;

use alloy::primitives::Address;
use futures::{StreamExt, TryStreamExt, stream};
use live_balances::domain::address::lower;
use live_balances::domain::webhook::{
    DeliveryHealth, EventKind, SigningSecrets, Subscription, SubscriptionFilter,
};
use live_balances::runtime::clock::unix_now;
use live_balances::runtime::destination::{Destinations, resolve_checked};
use live_balances::runtime::sealing::{SealedSecret, SealingKey};
use live_balances::wire::webhook_signature::secret_from;

use crate::auth::BackEnd;
use crate::error::ApiError;
use crate::request;
use crate::state::State;
use crate::webhook_error::WebhookError;

use super::refused;
use super::views::WebhookRequest;

/// Refuses a subscription that would take a wallet past `WEBHOOK_MAX_PER_WALLET`: each
/// subscription of a wallet is one more delivery of each of its changes.
pub(super) async fn check_room(state: &State, sub: &Subscription) -> Result<(), ApiError> {
    let max = state.settings.webhooks.subscriptions.max_per_wallet;
    let (table, chain_id) = (&state.table, sub.chain_id);
    let mut counts = stream::iter(sub.filter.wallets.iter().copied())
        .map(|owner: Address| async move {
            let ids = table.webhooks_of_wallet(chain_id, &owner).await?;
            Ok::<_, ApiError>((owner, ids.len()))
        })
        .buffered(8);
    while let Some((owner, count)) = counts.try_next().await? {
        if count >= max {
            return Err(refused(WebhookError::WalletFull {
                owner: lower(&owner),
                max,
            }));
        }
    }
    Ok(())
}

/// The data key, for sealing or opening secrets.
pub(super) async fn data_key(state: &State, sealing: bool) -> Result<&SealingKey, ApiError> {
    let found = if sealing {
        state.data_key.for_sealing().await
    } else {
        state.data_key.for_opening().await
    };
    found.map_err(|error| {
        tracing::error!(%error, "webhook secrets' data key unavailable");
        refused(WebhookError::SecretsUnavailable)
    })
}

/// A new random signing secret (`whsec_…`), and that secret sealed for subscription `id`.
pub(super) fn new_secret(key: &SealingKey, id: &str) -> (String, SealedSecret) {
    let secret = secret_from(rand::random());
    let sealed = key.seal(&secret, id, rand::random());
    (secret, sealed)
}

/// The checked subscription a request asks for, nothing stored yet, with its secret in the
/// clear (for the answer, this once).
pub(super) async fn subscription_of(
    state: &State,
    caller: &BackEnd,
    chain_id: u64,
    body: WebhookRequest,
) -> Result<(Subscription, String), ApiError> {
    let settings = &state.settings.webhooks;
    let mut wallets = BTreeSet::new();
    if body.wallets.is_empty() {
        return Err(refused(WebhookError::NoWallets));
    }
    for (index, value) in body.wallets.iter().enumerate() {
        let owner = request::owner(value).map_err(|e| ApiError::of_pair(index, value, e))?;
        wallets.insert(owner);
    }
    if wallets.len() > settings.subscriptions.max_wallets {
        return Err(refused(WebhookError::TooManyWallets(
            settings.subscriptions.max_wallets,
        )));
    }
    let tokens: BTreeSet<Address> = request::addresses("tokens", &body.tokens)?
        .into_iter()
        .collect();
    if tokens.len() > settings.subscriptions.max_tokens {
        return Err(refused(WebhookError::TooManyTokens(
            settings.subscriptions.max_tokens,
        )));
    }
    if body.events.is_empty() {
        return Err(refused(WebhookError::NoEvents));
    }
    let kinds = body
        .events
        .iter()
        .enumerate()
        .map(|(index, value)| {
            EventKind::parse(value).ok_or_else(|| {
                refused(WebhookError::UnknownEvent {
                    index,
                    value: value.clone(),
                })
            })
        })
        .collect::<Result<BTreeSet<_>, _>>()?;
    let url = check_target(
        Destinations {
            allow_insecure: settings.allow_insecure,
        },
        &body.url,
    )
    .await?;
    let id: String = rand::random::<[u8; 16]>()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let (secret, sealed) = new_secret(data_key(state, true).await?, &id);
    let sub = Subscription {
        id,
        chain_id,
        url,
        tenant: Some(caller.tenant.clone()),
        secrets: SigningSecrets {
            current: sealed,
            previous: None,
        },
        filter: SubscriptionFilter {
            wallets,
            tokens,
            kinds,
        },
        created_at: unix_now(),
        health: DeliveryHealth::active(),
        replays: 0,
    };
    Ok((sub, secret))
}

/// The target as given, checked: a URL, allowed by the rules, and a name resolving only to
/// allowed addresses (the delivery client checks again at every connection and redirect).
async fn check_target(destinations: Destinations, url: &str) -> Result<String, ApiError> {
    let parsed = url::Url::parse(url).map_err(|_| refused(WebhookError::InvalidUrl))?;
    destinations
        .check_url(&parsed)
        .map_err(|r| refused(WebhookError::Refused(r)))?;
    if let Some(url::Host::Domain(host)) = parsed.host() {
        resolve_checked(destinations, host)
            .await
            .map_err(|r| refused(WebhookError::Refused(r)))?;
    }
    Ok(parsed.to_string())
}
