//! What every request shares, built once per process: settings, the table, one balance
//! reader per configured chain, and — in the server only — the hub its streams subscribe to.

use std::collections::BTreeMap;

use live_balances::chain::{BalanceReader, ChainError, ReaderOptions};
use live_balances::config::Vars;
use live_balances::runtime::kms::DataKey;
use live_balances::runtime::secrets::{SettingsError, load_settings};
use live_balances::storage::Table;

use thiserror::Error;

use crate::catalog::Catalog;
use crate::error::ApiError;
use crate::hub::Hub;
use crate::list_fetch::TokenLists;
use crate::settings::ApiSettings;
use crate::stream_admission::LocalStreamCounts;

#[derive(Debug, Clone)]
pub struct State {
    pub settings: ApiSettings,
    pub table: Table,
    pub readers: BTreeMap<u64, BalanceReader>,
    pub token_lists: TokenLists,
    pub catalog: Catalog,
    /// The server's hub; `None` under the function URL, where each stream polls its feed.
    pub hub: Option<Hub>,
    /// The server's count of its open streams; `None` under the function URL, where they are
    /// counted in the table.
    pub local_streams: Option<LocalStreamCounts>,
    /// Seals and opens webhook signing secrets.
    pub data_key: DataKey,
}

/// Why the function cannot start.
#[derive(Debug, Error)]
pub enum StartError {
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error("token-list HTTP client: {0}")]
    HttpClient(#[from] reqwest::Error),
}

impl State {
    /// Settings from the environment, with the chain endpoints from the chain secret when
    /// one is configured (so no RPC URL sits in the function's configuration), then
    /// [`Self::connect`].
    pub async fn start() -> Result<Self, StartError> {
        let shared = load_settings().await?;
        let settings = ApiSettings::new(shared, &Vars::from_env()).map_err(SettingsError::from)?;
        Self::connect(settings).await
    }

    pub async fn connect(settings: ApiSettings) -> Result<Self, StartError> {
        let table = Table::connect(&settings).await;
        let readers = settings
            .chains
            .values()
            .map(|c| {
                let reader = BalanceReader::connect(&c.rpc_urls, ReaderOptions::of(&settings))?;
                Ok((c.chain_id, reader))
            })
            .collect::<Result<_, ChainError>>()?;
        let token_lists = TokenLists::new(&settings.token_lists)?;
        let data_key = DataKey::new(settings.sealing.clone(), table.clone());
        if !data_key.is_configured() {
            tracing::error!(
                "no data key for webhook secrets (WEBHOOK_SECRETS_KMS_KEY or WEBHOOK_SECRETS_KEY): webhook subscriptions are refused"
            );
        }
        Ok(Self {
            settings,
            table,
            readers,
            token_lists,
            catalog: Catalog::default(),
            hub: None,
            local_streams: None,
            data_key,
        })
    }

    /// The server's state: streams get their changes from a hub, started here, and are
    /// counted by the task.
    pub fn with_hub(mut self) -> Self {
        self.hub = Some(Hub::start(self.table.clone(), &self.settings));
        self.local_streams = Some(LocalStreamCounts::default());
        self
    }

    /// The reader of a configured chain.
    pub fn reader(&self, chain_id: u64) -> Result<&BalanceReader, ApiError> {
        self.readers
            .get(&chain_id)
            .ok_or(ApiError::UnknownChain(chain_id))
    }
}

#[cfg(test)]
impl State {
    /// Default settings, no chain, and a table endpoint nothing listens on: for unit tests
    /// of what reads nothing.
    pub async fn offline() -> Self {
        let settings = ApiSettings::from_vars(&Vars::new([(
            "DYNAMODB_ENDPOINT".to_string(),
            "http://127.0.0.1:9".to_string(),
        )]))
        .expect("default settings");
        Self::connect(settings).await.expect("offline state")
    }
}
