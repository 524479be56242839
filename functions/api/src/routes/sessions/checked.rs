//! The request half of the session route: a session request read and bounded — its tokens,
//! lists and spenders parsed, the session's size checked — before anything is fetched, read
//! or stored. Shared by every route that writes a session (`POST /sessions`, orders).

use std::collections::BTreeSet;

use alloy::primitives::Address;
use http::Method;
use live_balances::domain::model::Spender;
use live_balances::domain::permit2::PERMIT2;

use super::{SessionRequest, Upsert};
use crate::error::ApiError;
use crate::limits;
use crate::request;
use crate::requested_tokens;
use crate::state::State;

impl Upsert {
    /// `PUT` only adds to a live session; `POST` creates one too.
    pub fn of(method: &Method) -> Self {
        if method == Method::PUT {
            Self::AddOnly
        } else {
            Self::CreateOrAdd
        }
    }
}

/// A session request that passed every check that needs no read: what
/// [`super::apply`] adds.
#[derive(Debug)]
pub struct CheckedRequest {
    pub(super) chain_id: u64,
    pub(super) owner: Address,
    pub(super) custom: BTreeSet<Address>,
    pub(super) lists: BTreeSet<String>,
    pub(super) spenders: BTreeSet<Spender>,
    pub(super) discover: bool,
}

impl CheckedRequest {
    pub fn chain_id(&self) -> u64 {
        self.chain_id
    }

    pub fn owner(&self) -> Address {
        self.owner
    }
}

/// Checks a session request for a wallet of a served chain, reading nothing.
pub fn check(
    state: &State,
    chain_id: u64,
    owner: Address,
    body: &SessionRequest,
) -> Result<CheckedRequest, ApiError> {
    let max_tokens = state.settings.limits.max_tokens_per_session;
    if body.custom_tokens.len() > max_tokens {
        return Err(ApiError::TooManyTokens(max_tokens));
    }
    let custom: BTreeSet<Address> = request::addresses("customTokens", &body.custom_tokens)?
        .into_iter()
        .collect();
    let lists = requested_tokens::check_lists(state, &body.tokens_lists_urls)?;
    if custom.is_empty() && lists.is_empty() {
        return Err(ApiError::EmptyTokenSet);
    }
    let erc20: Vec<Address> = match &body.spenders {
        Some(list) => request::addresses("spenders", list)?,
        None => vec![state.settings.default_spender],
    };
    let permit2 = request::addresses("permit2Spenders", &body.permit2_spenders)?;
    let mut spenders: BTreeSet<Spender> = erc20.into_iter().map(Spender::Erc20).collect();
    if !permit2.is_empty() {
        // Permit2 spends only what the token lets Permit2 itself move.
        spenders.insert(Spender::Erc20(PERMIT2));
    }
    spenders.extend(permit2.into_iter().map(Spender::Permit2));
    limits::check_session_size(state, &custom, &spenders)?;
    Ok(CheckedRequest {
        chain_id,
        owner,
        custom,
        lists,
        spenders,
        discover: body.discover_tokens,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(custom: &[&str], spenders: Option<&[&str]>) -> SessionRequest {
        SessionRequest {
            tokens_lists_urls: vec![],
            custom_tokens: custom.iter().map(|t| t.to_string()).collect(),
            spenders: spenders.map(|s| s.iter().map(|t| t.to_string()).collect()),
            permit2_spenders: vec![],
            discover_tokens: true,
        }
    }

    fn token(n: u8) -> String {
        format!("{:#x}", Address::repeat_byte(n))
    }

    #[test]
    fn put_only_adds_and_post_creates_too() {
        assert_eq!(Upsert::of(&Method::PUT), Upsert::AddOnly);
        assert_eq!(Upsert::of(&Method::POST), Upsert::CreateOrAdd);
    }

    #[tokio::test]
    async fn a_request_is_parsed_with_the_default_spender() {
        let state = State::offline().await;
        let owner = Address::repeat_byte(9);
        let (a, b) = (token(1), token(2));
        let checked = check(&state, 1, owner, &body(&[&a, &b, &a], None)).unwrap();
        assert_eq!((checked.chain_id(), checked.owner()), (1, owner));
        assert_eq!(checked.custom.len(), 2, "a token given twice is one token");
        assert_eq!(
            checked.spenders,
            [Spender::Erc20(state.settings.default_spender)].into()
        );
        assert!(checked.discover && checked.lists.is_empty());
        let spender = token(3);
        let checked = check(&state, 1, owner, &body(&[&a], Some(&[&spender]))).unwrap();
        assert_eq!(
            checked.spenders,
            [Spender::Erc20(Address::repeat_byte(3))].into()
        );
        let permit2 = SessionRequest {
            permit2_spenders: vec![token(4)],
            ..body(&[&a], Some(&[]))
        };
        let checked = check(&state, 1, owner, &permit2).unwrap();
        assert_eq!(
            checked.spenders,
            [
                Spender::Erc20(PERMIT2),
                Spender::Permit2(Address::repeat_byte(4))
            ]
            .into(),
            "a Permit2 spender brings the token's allowance to Permit2 with it"
        );
        let bad = check(
            &state,
            1,
            owner,
            &SessionRequest {
                permit2_spenders: vec!["0x12".into()],
                ..body(&[&a], None)
            },
        )
        .unwrap_err();
        assert!(bad.to_string().contains("permit2Spenders[0]"), "{bad}");
    }

    #[tokio::test]
    async fn what_no_read_can_fix_is_refused_first() {
        let state = State::offline().await;
        let owner = Address::repeat_byte(9);
        let code = |body: SessionRequest| {
            check(&state, 1, owner, &body)
                .map(|_| ())
                .map_err(|e| (e.code().as_str(), e.to_string()))
        };
        assert_eq!(code(body(&[], None)).unwrap_err().0, "empty_token_set");
        let (code_, message) = code(body(&[&token(1), "0x12"], None)).unwrap_err();
        assert_eq!(code_, "invalid_token");
        assert!(message.contains("customTokens[1]"), "{message}");
        let bad_spender = code(body(&[&token(1)], Some(&["nope"]))).unwrap_err();
        assert_eq!(bad_spender.0, "invalid_token");
        assert!(bad_spender.1.contains("spenders[0]"), "{}", bad_spender.1);
        let max = state.settings.bounds.max_spenders_per_session;
        let spenders: Vec<String> = (0..=max as u8).map(|n| token(n + 10)).collect();
        let spenders: Vec<&str> = spenders.iter().map(String::as_str).collect();
        assert_eq!(
            code(body(&[&token(1)], Some(&spenders))).unwrap_err().0,
            "too_many_spenders"
        );
        let too_many = state.settings.limits.max_tokens_per_session + 1;
        let many = SessionRequest {
            custom_tokens: vec![token(1); too_many],
            ..body(&[], None)
        };
        assert_eq!(code(many).unwrap_err().0, "too_many_tokens");
    }
}
