//! How every binary reports its metrics (`METRICS_*`).

use std::time::Duration;

use super::ConfigError;
use super::vars::{Vars, invalid};

/// Where the long-lived processes (the poller, the server) report their metrics. The functions
/// always write the Embedded Metric Format: a function has no port to scrape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsFormat {
    /// Prometheus text at the process's `/metrics` (`METRICS_FORMAT=prometheus`, the default).
    Prometheus,
    /// CloudWatch Embedded Metric Format lines on stdout every `METRICS_FLUSH_SECS`
    /// (`METRICS_FORMAT=emf`): CloudWatch Logs turns them into metrics, no scraper needed.
    Emf,
}

/// How every binary reports its metrics.
#[derive(Debug, Clone)]
pub struct MetricsSettings {
    pub format: MetricsFormat,
    /// CloudWatch namespace of the EMF lines (`METRICS_NAMESPACE`).
    pub namespace: String,
    /// How often a long-lived process writes its EMF lines (`METRICS_FLUSH_SECS`).
    pub flush_every: Duration,
}

impl MetricsSettings {
    pub(super) fn from_vars(vars: &Vars) -> Result<Self, ConfigError> {
        Ok(Self {
            format: match vars.get("METRICS_FORMAT").as_deref() {
                None | Some("prometheus") => MetricsFormat::Prometheus,
                Some("emf") => MetricsFormat::Emf,
                Some(other) => {
                    return Err(invalid(
                        "METRICS_FORMAT",
                        format!("expected prometheus or emf, got {other:?}"),
                    ));
                }
            },
            namespace: vars
                .get("METRICS_NAMESPACE")
                .unwrap_or_else(|| "LiveBalances".into()),
            flush_every: vars
                .secs("METRICS_FLUSH_SECS", 60)?
                .max(Duration::from_secs(1)),
        })
    }
}
