//! Webhook subscriptions, a back end's routes (each takes an API key; a subscription belongs to
//! the key's tenant, and another tenant's is not found): `POST /{chain_id}/webhooks` creates
//! one (answered with its id and, once, its signing secret); `GET`, `DELETE`, `POST …/replay`
//! and `POST …/secret` (a new signing secret, the old one signing beside it for
//! `WEBHOOK_SECRET_OVERLAP_SECS`) on `/{chain_id}/webhooks/{id}`. The secret only signs: it is
//! stored sealed and is no credential. The target URL passes the destination rules token lists
//! pass (https, public addresses after DNS). Deliveries are made by the `webhooks` function,
//! never by the api.

use std::collections::BTreeSet;
use std::sync::Arc;

use alloy::primitives::Address;
use axum::extract::State as Shared;
use futures::{StreamExt, TryStreamExt, stream};
use http::{Response, StatusCode};
use live_balances::address::lower;
use live_balances::clock::unix_now;
use live_balances::destination::{Destinations, resolve_checked};
use live_balances::hold::{HOLD_FOREVER, Holder};
use live_balances::sealing::{SealedSecret, SealingKey};
use live_balances::storage::{WebhookCreation, Written};
use live_balances::webhook::{EventKind, ParkedDelivery, Subscription, SubscriptionStatus};
use live_balances::webhook_signature::secret_from;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::auth::BackEnd;
use crate::body::{self, ResponseBody};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Segments, WholeRequest};
use crate::limits;
use crate::request;
use crate::route_docs::{BodyRefused, KeyRefused, SubscriptionRefused, UnknownChain};
use crate::state::State;
use crate::webhook_error::WebhookError;

/// Parked deliveries listed in a subscription's `GET` (the count says how many there are).
const PARKED_LISTED: i32 = 20;

/// `POST /{chain_id}/webhooks`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct WebhookRequest {
    /// Where deliveries are POSTed: https, a public address (after DNS and every redirect)
    #[schema(example = "https://hooks.example.com/balances")]
    url: String,
    /// Wallet addresses whose changes are delivered (at most `WEBHOOK_MAX_WALLETS`)
    wallets: Vec<String>,
    /// Only changes of these tokens (absent or empty: every tracked token)
    #[serde(default)]
    tokens: Vec<String>,
    /// Kinds delivered: `balance_update`, `allowance_update`, `order_status`
    events: Vec<String>,
}

/// A parked delivery, as an operator sees it before replaying.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ParkedView {
    /// The delivery's idempotency id (its feed position)
    id: String,
    owner: String,
    #[serde(rename = "type")]
    kind: String,
    /// Unix seconds
    parked_at: u64,
    /// Attempts made (0: parked behind an earlier one without being tried)
    attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
}

/// A subscription as its owner sees it (never its secret).
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WebhookView {
    id: String,
    chain_id: u64,
    url: String,
    wallets: Vec<String>,
    tokens: Vec<String>,
    events: Vec<String>,
    /// Unix seconds
    created_at: u64,
    /// `active`; `backlogged` (a delivery failed after its retries: later ones queue behind
    /// it, and each new change first tries the oldest parked one); `disabled` (failing for
    /// longer than `WEBHOOK_DISABLE_AFTER_SECS`: nothing is sent until a replay)
    status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    disabled_at: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disabled_reason: Option<String>,
    /// Unix seconds of the first failure since the last successful delivery
    #[serde(skip_serializing_if = "Option::is_none")]
    failing_since: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_error: Option<String>,
    /// Parked deliveries waiting for a replay
    parked_count: u64,
    /// The oldest parked deliveries (up to 20)
    parked: Vec<ParkedView>,
}

/// The answer to a creation: the subscription and, this once, its secret.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WebhookCreated {
    #[serde(flatten)]
    view: WebhookView,
    /// Signs every delivery (Standard Webhooks, HMAC-SHA256); verify with it. Shown only here
    /// (and a new one by `POST …/secret`).
    secret: String,
}

/// The answer to a secret rotation: the new secret, this once.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct SecretRotated {
    id: String,
    /// The new signing secret: every delivery is signed with it from now on.
    secret: String,
    /// Unix seconds until which deliveries also carry a signature by the previous secret
    /// (`webhook-signature` holds both), so a receiver can switch at any time before then.
    previous_secret_until: u64,
}

/// The answer to a replay request.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReplayAccepted {
    id: String,
    /// Parked deliveries to be sent again, in order
    parked_count: u64,
}

/// The answer to a deletion.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookDeleted {
    id: String,
    deleted: bool,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // described, never built
pub(crate) struct WebhookPath {
    /// A chain this deployment serves, e.g. 1
    chain_id: u64,
    /// The id `POST /{chain_id}/webhooks` answered
    id: String,
}

#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // described, never built
pub(crate) struct ChainPath {
    /// A chain this deployment serves, e.g. 1
    chain_id: u64,
}

fn refused(error: WebhookError) -> ApiError {
    ApiError::Webhook(error)
}

/// Refuses a subscription that would take a wallet past `WEBHOOK_MAX_PER_WALLET`: each
/// subscription of a wallet is one more delivery of each of its changes.
async fn check_room(state: &State, sub: &Subscription) -> Result<(), ApiError> {
    let max = state.settings.webhooks.max_per_wallet;
    let (table, chain_id) = (&state.table, sub.chain_id);
    let mut counts = stream::iter(sub.wallets.iter().copied())
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
async fn data_key(state: &State, sealing: bool) -> Result<&SealingKey, ApiError> {
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
fn new_secret(key: &SealingKey, id: &str) -> (String, SealedSecret) {
    let secret = secret_from(rand::random());
    let sealed = key.seal(&secret, id, rand::random());
    (secret, sealed)
}

/// The checked subscription a request asks for, nothing stored yet, with its secret in the
/// clear (for the answer, this once).
async fn subscription_of(
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
    if wallets.len() > settings.max_wallets {
        return Err(refused(WebhookError::TooManyWallets(settings.max_wallets)));
    }
    let tokens: BTreeSet<Address> = request::addresses("tokens", &body.tokens)?
        .into_iter()
        .collect();
    if tokens.len() > settings.max_tokens {
        return Err(refused(WebhookError::TooManyTokens(settings.max_tokens)));
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
        secret: sealed,
        previous_secret: None,
        wallets,
        tokens,
        kinds,
        created_at: unix_now(),
        status: SubscriptionStatus::Active,
        failing_since: None,
        last_error: None,
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

async fn view(state: &State, sub: &Subscription) -> Result<WebhookView, ApiError> {
    let parked = state
        .table
        .parked_webhook_deliveries(&sub.id, PARKED_LISTED)
        .await?;
    let parked_count = state.table.parked_webhook_count(&sub.id).await?;
    let (disabled_at, disabled_reason) = match &sub.status {
        SubscriptionStatus::Disabled { at, reason } => (Some(*at), Some(reason.clone())),
        _ => (None, None),
    };
    Ok(WebhookView {
        id: sub.id.clone(),
        chain_id: sub.chain_id,
        url: sub.url.clone(),
        wallets: sub.wallets.iter().map(lower).collect(),
        tokens: sub.tokens.iter().map(lower).collect(),
        events: sub.kinds.iter().map(|k| k.name().to_string()).collect(),
        created_at: sub.created_at,
        status: sub.status.name().to_string(),
        disabled_at,
        disabled_reason,
        failing_since: sub.failing_since,
        last_error: sub.last_error.clone(),
        parked_count,
        parked: parked.iter().map(parked_view).collect(),
    })
}

fn parked_view(p: &ParkedDelivery) -> ParkedView {
    ParkedView {
        id: p.position.to_string(),
        owner: lower(&p.owner),
        kind: p.kind.clone(),
        parked_at: p.parked_at,
        attempts: p.attempts,
        last_error: p.last_error.clone(),
    }
}

/// The subscription holds its wallets' sessions for as long as it lives (`held`), or lets go
/// of them.
async fn hold(state: &State, sub: &Subscription, held: bool) -> Result<(), ApiError> {
    let holder = Holder::Webhook(&sub.id).key();
    let idle = state.settings.limits.session_ttl.as_secs();
    state
        .table
        .hold_sessions(
            sub.chain_id,
            sub.wallets.iter().copied(),
            &holder,
            held.then_some(HOLD_FOREVER),
            unix_now(),
            idle,
        )
        .await?;
    Ok(())
}

/// The subscription named by the path, if it is the caller's tenant's: another tenant's, like
/// one on another chain, is not found.
async fn owned(
    state: &State,
    caller: &BackEnd,
    chain: &str,
    id: &str,
) -> Result<Subscription, ApiError> {
    let chain_id = request::chain_id(chain)?;
    state.reader(chain_id)?;
    // Ids are 32 hex characters; anything else names no subscription (and is no table key).
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(refused(WebhookError::NotFound));
    }
    state
        .table
        .webhook(&id.to_ascii_lowercase())
        .await?
        .filter(|s| s.chain_id == chain_id && s.tenant.as_ref() == Some(&caller.tenant))
        .ok_or(refused(WebhookError::NotFound))
}

/// One subscription's path (`GET`, `DELETE`).
const SUBSCRIPTION_PATH: &str = "/{chain_id}/webhooks/{id}";

#[utoipa::path(
    post,
    path = "/{chain_id}/webhooks",
    operation_id = "createWebhook",
    tag = "webhooks",
    description = "Subscribes a target URL to the changes of some wallets: each matching feed entry is POSTed as JSON, signed the Standard Webhooks way (webhook-id = the feed position, webhook-timestamp, webhook-signature = v1,base64(HMAC-SHA256(secret, id.timestamp.body))), in order per wallet, retried with backoff, parked after the retries (see GET and replay). The secret is in this answer only. Needs an API key; the subscription belongs to the key's tenant.",
    params(ChainPath),
    request_body = WebhookRequest,
    security(("apiKey" = [])),
    responses(
        (status = 201, description = "Subscribed; keep the secret", body = WebhookCreated),
        (status = 400, description = "Malformed chain id, URL, wallet, token, event kind or body", body = ErrorBody),
        KeyRefused,
        UnknownChain,
        BodyRefused,
        (status = 409, description = "A wallet already has WEBHOOK_MAX_PER_WALLET subscriptions, or the tenant holds as many as its key's quota allows", body = ErrorBody),
        (status = 422, description = "The target URL was refused (scheme, credentials, a non-public address)", body = ErrorBody),
        (status = 429, description = "Over the key's quota or the source's subscription creation rate", body = ErrorBody),
        (status = 503, description = "Storage or the secrets' data key unavailable; nothing stored", body = ErrorBody),
    ),
)]
pub async fn create(
    caller: BackEnd,
    Shared(state): Shared<Arc<State>>,
    Segments([chain]): Segments<1>,
    WholeRequest(req): WholeRequest,
) -> Result<Response<ResponseBody>, ApiError> {
    let (state, req, caller, chain) = (&*state, &req, &caller, chain.as_str());
    let chain_id = request::chain_id(chain)?;
    state.reader(chain_id)?;
    let body: WebhookRequest = request::json_body(req)?;
    let (sub, secret) = subscription_of(state, caller, chain_id, body).await?;
    limits::admit_webhook_create(state, req).await?;
    check_room(state, &sub).await?;
    match state
        .table
        .create_webhook(&sub, caller.max_webhooks)
        .await?
    {
        WebhookCreation::Created => {}
        WebhookCreation::TenantFull => {
            return Err(refused(WebhookError::TenantFull(caller.max_webhooks)));
        }
    }
    // The subscription keeps its wallets tracked while it lives, stream or no stream. Should
    // that fail, the subscription goes again: a subscription whose wallets may lapse is the
    // silent failure holds exist to prevent.
    if let Err(error) = hold(state, &sub, true).await {
        tracing::error!(id = %sub.id, %error, "wallets not held; the subscription is withdrawn");
        if let Err(error) = state.table.delete_webhook(&sub).await {
            tracing::error!(id = %sub.id, %error, "subscription not withdrawn");
        }
        let _ = hold(state, &sub, false).await;
        return Err(error);
    }
    tracing::info!(chain = chain_id, id = %sub.id, tenant = %caller.tenant, key = %caller.key_id, wallets = sub.wallets.len(), "webhook created");
    let created = WebhookCreated {
        view: view(state, &sub).await?,
        secret,
    };
    Ok(body::json(StatusCode::CREATED, &created))
}

#[utoipa::path(
    get,
    path = SUBSCRIPTION_PATH,
    operation_id = "getWebhook",
    tag = "webhooks",
    description = "The subscription with its status (active, backlogged, disabled and why) and its parked deliveries. Needs an API key of the subscription's tenant.",
    params(WebhookPath),
    security(("apiKey" = [])),
    responses(
        (status = 200, description = "The subscription", body = WebhookView),
        SubscriptionRefused,
    ),
)]
pub async fn get(
    caller: BackEnd,
    Shared(state): Shared<Arc<State>>,
    Segments([chain, id]): Segments<2>,
) -> Result<Response<ResponseBody>, ApiError> {
    let (state, caller, chain, id) = (&*state, &caller, chain.as_str(), id.as_str());
    let sub = owned(state, caller, chain, id).await?;
    Ok(body::json(StatusCode::OK, &view(state, &sub).await?))
}

#[utoipa::path(
    delete,
    path = SUBSCRIPTION_PATH,
    operation_id = "deleteWebhook",
    tag = "webhooks",
    description = "Ends the subscription; its parked deliveries are dropped. Needs an API key of the subscription's tenant.",
    params(WebhookPath),
    security(("apiKey" = [])),
    responses(
        (status = 200, description = "Deleted", body = WebhookDeleted),
        SubscriptionRefused,
    ),
)]
pub async fn delete(
    caller: BackEnd,
    Shared(state): Shared<Arc<State>>,
    Segments([chain, id]): Segments<2>,
) -> Result<Response<ResponseBody>, ApiError> {
    let (state, caller, chain, id) = (&*state, &caller, chain.as_str(), id.as_str());
    let sub = owned(state, caller, chain, id).await?;
    state.table.delete_webhook(&sub).await?;
    hold(state, &sub, false).await?;
    tracing::info!(chain = sub.chain_id, id = %sub.id, "webhook deleted");
    Ok(body::json(
        StatusCode::OK,
        &WebhookDeleted {
            id: sub.id,
            deleted: true,
        },
    ))
}

#[utoipa::path(
    post,
    path = "/{chain_id}/webhooks/{id}/replay",
    operation_id = "replayWebhook",
    tag = "webhooks",
    description = "Sends the parked deliveries again, oldest first, and re-enables a disabled subscription (its failure clock restarts). The delivery function does the sending; GET shows the progress. Needs an API key of the subscription's tenant.",
    params(WebhookPath),
    security(("apiKey" = [])),
    responses(
        (status = 202, description = "Replay started", body = ReplayAccepted),
        SubscriptionRefused,
    ),
)]
pub async fn replay(
    caller: BackEnd,
    Shared(state): Shared<Arc<State>>,
    Segments([chain, id]): Segments<2>,
) -> Result<Response<ResponseBody>, ApiError> {
    let (state, caller, chain, id) = (&*state, &caller, chain.as_str(), id.as_str());
    let sub = owned(state, caller, chain, id).await?;
    let parked_count = state.table.parked_webhook_count(&sub.id).await?;
    state.table.request_webhook_replay(&sub.id).await?;
    // Re-enabled: its wallets are held again (a disabled subscription let go of them).
    hold(state, &sub, true).await?;
    tracing::info!(chain = sub.chain_id, id = %sub.id, parked = parked_count, "webhook replay asked for");
    Ok(body::json(
        StatusCode::ACCEPTED,
        &ReplayAccepted {
            id: sub.id,
            parked_count,
        },
    ))
}

#[utoipa::path(
    post,
    path = "/{chain_id}/webhooks/{id}/secret",
    operation_id = "rotateWebhookSecret",
    tag = "webhooks",
    description = "Gives the subscription a new signing secret, answered this once. Until previousSecretUntil (WEBHOOK_SECRET_OVERLAP_SECS, a day by default) every delivery carries two signatures in webhook-signature, by the new secret and by the one it replaces, so the receiver can switch to the new secret at any moment of the overlap without refusing a delivery. Needs an API key of the subscription's tenant.",
    params(WebhookPath),
    security(("apiKey" = [])),
    responses(
        (status = 200, description = "The new secret", body = SecretRotated),
        SubscriptionRefused,
        (status = 503, description = "Storage or the secrets' data key unavailable; nothing changed", body = ErrorBody),
    ),
)]
pub async fn rotate_secret(
    caller: BackEnd,
    Shared(state): Shared<Arc<State>>,
    Segments([chain, id]): Segments<2>,
) -> Result<Response<ResponseBody>, ApiError> {
    let (state, caller, chain, id) = (&*state, &caller, chain.as_str(), id.as_str());
    let sub = owned(state, caller, chain, id).await?;
    let key = data_key(state, true).await?;
    let (secret, sealed) = new_secret(key, &sub.id);
    // A secret stored in the clear by an older version is sealed as it steps aside.
    let previous = match &sub.secret {
        SealedSecret::Legacy(plain) => key.seal(plain, &sub.id, rand::random()),
        sealed => sealed.clone(),
    };
    let until = unix_now().saturating_add(state.settings.webhooks.secret_overlap.as_secs());
    if state
        .table
        .rotate_webhook_secret(&sub.id, &sealed, &sub.secret, &previous, until)
        .await?
        == Written::Skipped
    {
        // Deleted, or rotated by another request meanwhile: that one's secret stands.
        return Err(refused(WebhookError::NotFound));
    }
    tracing::info!(chain = sub.chain_id, id = %sub.id, tenant = %caller.tenant, until, "webhook secret rotated");
    Ok(body::json(
        StatusCode::OK,
        &SecretRotated {
            id: sub.id,
            secret,
            previous_secret_until: until,
        },
    ))
}
