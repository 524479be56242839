//! Webhook subscriptions, a back end's routes (each takes an API key; a subscription belongs to
//! the key's tenant, and another tenant's is not found): `POST /{chain_id}/webhooks` creates
//! one (answered with its id and, once, its signing secret); `GET`, `DELETE`, `POST …/replay`
//! and `POST …/secret` (a new signing secret, the old one signing beside it for
//! `WEBHOOK_SECRET_OVERLAP_SECS`) on `/{chain_id}/webhooks/{id}`. The secret only signs: it is
//! stored sealed and is no credential. The target URL passes the destination rules token lists
//! pass (https, public addresses after DNS). Deliveries are made by the `webhooks` function,
//! never by the api.
//!
//! This file holds the routes; `views` what they take and answer, `new_subscription` the
//! checks of a new subscription and its sealed secret.

use std::sync::Arc;

use axum::extract::State as Shared;
use http::{Response, StatusCode};
use live_balances::domain::webhook::Subscription;
use live_balances::runtime::clock::unix_now;
use live_balances::runtime::sealing::SealedSecret;
use live_balances::storage::{WebhookCreation, Written};
use utoipa::IntoParams;

use crate::auth::BackEnd;
use crate::body::{self, ResponseBody};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Segments, WholeRequest};
use crate::limits;
use crate::request;
use crate::route_docs::{BodyRefused, KeyRefused, SubscriptionRefused, UnknownChain};
use crate::state::State;
use crate::webhook_error::WebhookError;

mod new_subscription;
mod views;

use new_subscription::{check_room, data_key, new_secret, subscription_of};
use views::{
    ReplayAccepted, SecretRotated, WebhookCreated, WebhookDeleted, WebhookRequest, WebhookView,
    view,
};

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

pub(super) fn refused(error: WebhookError) -> ApiError {
    ApiError::Webhook(error)
}

/// The subscription holds its wallets' sessions for as long as it lives (`held`), or lets go
/// of them ([`live_balances::storage::Table::hold_webhook_wallets`]).
async fn hold(state: &State, sub: &Subscription, held: bool) -> Result<(), ApiError> {
    let idle = state.settings.session_ttl.as_secs();
    state
        .table
        .hold_webhook_wallets(sub, held, unix_now(), idle)
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
    tracing::info!(chain = chain_id, id = %sub.id, tenant = %caller.tenant, key = %caller.key_id, wallets = sub.filter.wallets.len(), "webhook created");
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
    let previous = match &sub.secrets.current {
        SealedSecret::Legacy(plain) => key.seal(plain, &sub.id, rand::random()),
        sealed => sealed.clone(),
    };
    let until = unix_now().saturating_add(
        state
            .settings
            .webhooks
            .subscriptions
            .secret_overlap
            .as_secs(),
    );
    if state
        .table
        .rotate_webhook_secret(&sub.id, &sealed, &sub.secrets.current, &previous, until)
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
