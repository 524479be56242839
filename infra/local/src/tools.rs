//! Where the tools installed by `infra/install.sh` live (all under the git-ignored `.tools/`).

use std::path::{Path, PathBuf};

use anyhow::bail;

#[derive(Debug, Clone)]
pub struct Tools {
    pub root: PathBuf,
}

impl Tools {
    /// The workspace root: `LIVE_BALANCES_ROOT`, else this crate's grandparent.
    pub fn locate() -> anyhow::Result<Self> {
        let root = match std::env::var_os("LIVE_BALANCES_ROOT") {
            Some(r) => PathBuf::from(r),
            None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."),
        };
        let root = root.canonicalize()?;
        let tools = Self { root };
        for (what, path) in [
            ("DynamoDB Local", tools.dynamodb_jar()),
            ("anvil", tools.anvil()),
            ("cargo-lambda", tools.venv_bin().join("cargo-lambda")),
        ] {
            if !path.exists() {
                bail!(
                    "{what} is not installed at {}: run `make install`",
                    path.display()
                );
            }
        }
        Ok(tools)
    }

    fn npm(&self) -> PathBuf {
        self.root.join(".tools/npm/node_modules")
    }

    pub fn dynamodb_jar(&self) -> PathBuf {
        self.npm()
            .join("amplify-dynamodb-simulator/emulator/DynamoDBLocal.jar")
    }

    pub fn dynamodb_lib(&self) -> PathBuf {
        self.npm()
            .join("amplify-dynamodb-simulator/emulator/DynamoDBLocal_lib")
    }

    pub fn anvil(&self) -> PathBuf {
        self.npm().join("@foundry-rs/anvil-linux-amd64/bin/anvil")
    }

    pub fn venv_bin(&self) -> PathBuf {
        self.root.join(".tools/venv/bin")
    }

    /// PATH with the venv first, so `cargo lambda` finds `cargo-lambda` and zig.
    pub fn path_env(&self) -> String {
        let current = std::env::var("PATH").unwrap_or_default();
        format!("{}:{current}", self.venv_bin().display())
    }

    /// A binary of this workspace built by `cargo build` (debug profile).
    pub fn workspace_bin(&self, name: &str) -> PathBuf {
        self.workspace_bin_of("debug", name)
    }

    /// A binary of this workspace built in `profile` (`debug`, `release`).
    pub fn workspace_bin_of(&self, profile: &str, name: &str) -> PathBuf {
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| self.root.join("target"));
        target.join(profile).join(name)
    }
}
