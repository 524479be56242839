//! The stack's table: DynamoDB Local started with the table created, a client of it for
//! this process, and API keys issued into it.

use std::process::Command;
use std::time::Duration;

use live_balances::storage::Table;

use super::{LocalStack, wait_for};

impl LocalStack {
    pub(super) async fn start_dynamodb(&self) -> anyhow::Result<()> {
        let mut java = Command::new("java");
        java.arg(format!(
            "-Djava.library.path={}",
            self.tools.dynamodb_lib().display()
        ))
        .arg("-jar")
        .arg(self.tools.dynamodb_jar())
        // One database for every access key and region, so no client can miss the table.
        .args(["-inMemory", "-sharedDb", "-port"])
        .arg(self.options.dynamodb_port.to_string());
        self.spawn("dynamodb", java)?;
        let table = self.table().await;
        wait_for("DynamoDB Local", Duration::from_secs(60), || async {
            self.check("dynamodb")?;
            Ok(table.create_if_missing().await?)
        })
        .await?;
        Ok(())
    }

    /// A client of the stack's table for this process (tests, the dev runner).
    pub async fn table(&self) -> Table {
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&self.endpoints.dynamodb)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(aws_sdk_dynamodb::config::Credentials::new(
                "local", "local", None, None, "local",
            ))
            .load()
            .await;
        Table::new(
            aws_sdk_dynamodb::Client::new(&conf),
            &self.options.table_name,
        )
    }

    /// Issues (and stores) a new API key of `tenant` with the default quotas, as
    /// `api-keys create` does; the key itself is only in the answer.
    pub async fn issue_api_key(&self, tenant: &str) -> anyhow::Result<String> {
        self.issue_api_key_with(tenant, live_balances::domain::api_key::Quotas::default())
            .await
    }

    /// [`Self::issue_api_key`] with `quotas`.
    pub async fn issue_api_key_with(
        &self,
        tenant: &str,
        quotas: live_balances::domain::api_key::Quotas,
    ) -> anyhow::Result<String> {
        let tenant = live_balances::domain::api_key::Tenant::parse(tenant)?;
        let (key, record) = live_balances::domain::api_key::issue(
            rand::random(),
            tenant,
            quotas,
            live_balances::runtime::clock::unix_now(),
        );
        self.table().await.create_api_key(&record).await?;
        Ok(key)
    }
}
