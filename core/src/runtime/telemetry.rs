//! Where every binary's metrics go: the one recorder of the `metrics` facade a process installs
//! at start, chosen by [`MetricsSettings`].
//!
//! One naming scheme for all binaries: `<binary>_<thing>_<unit|total>` (`api_requests_total`,
//! `poller_blocks_behind`, `webhooks_batch_duration_seconds`), labels from a small fixed set —
//! `chain`, `route`, `method`, `code`, `kind` — whose values come from the code, never from a
//! client (a raw path as a label would let any caller mint metrics).
//!
//! - A function (api, fanout, webhooks) writes CloudWatch Embedded Metric Format (EMF): JSON
//!   lines on stdout, flushed once per invocation ([`Telemetry::flush`]). Lambda's log group
//!   turns them into metrics of the namespace; counters are the increments since the last flush.
//! - A long-lived process (poller, server) serves Prometheus text at its `/metrics`
//!   (`METRICS_FORMAT=prometheus`, the default), or writes EMF lines every
//!   `METRICS_FLUSH_SECS` (`METRICS_FORMAT=emf`, on Fargate, where nothing scrapes).

use std::io::Write as _;
use std::sync::Arc;

use metrics_cloudwatch_embedded::Collector;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};

use crate::config::{MetricsFormat, MetricsSettings};

/// The process's installed recorder, and how its numbers leave the process.
pub struct Telemetry {
    exporter: Exporter,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let exporter = match self.exporter {
            Exporter::Prometheus(_) => "prometheus",
            Exporter::Emf(_) => "emf",
            Exporter::Nothing => "nothing",
        };
        f.debug_struct("Telemetry")
            .field("exporter", &exporter)
            .finish()
    }
}

enum Exporter {
    Prometheus(PrometheusHandle),
    Emf(&'static Collector),
    /// A recorder was installed already (only a test process starts twice): metrics go there.
    Nothing,
}

impl Telemetry {
    /// A function's: EMF, whatever `METRICS_FORMAT` says.
    pub fn for_function(settings: &MetricsSettings) -> Self {
        Self::emf(&settings.namespace)
    }

    /// A long-lived process's: as `METRICS_FORMAT` says.
    pub fn for_process(settings: &MetricsSettings) -> Self {
        match settings.format {
            MetricsFormat::Prometheus => Self::prometheus(),
            MetricsFormat::Emf => Self::emf(&settings.namespace),
        }
    }

    fn prometheus() -> Self {
        let exporter = match PrometheusBuilder::new().install_recorder() {
            Ok(handle) => Exporter::Prometheus(handle),
            Err(error) => {
                tracing::warn!(%error, "metrics recorder not installed");
                Exporter::Nothing
            }
        };
        Self { exporter }
    }

    fn emf(namespace: &str) -> Self {
        let installed = metrics_cloudwatch_embedded::Builder::new()
            .cloudwatch_namespace(namespace.to_string())
            .init();
        let exporter = match installed {
            Ok(collector) => Exporter::Emf(collector),
            Err(error) => {
                tracing::warn!(%error, "metrics recorder not installed");
                Exporter::Nothing
            }
        };
        Self { exporter }
    }

    /// The Prometheus text of `/metrics`; `None` when metrics leave as EMF lines.
    pub fn prometheus_text(&self) -> Option<String> {
        match &self.exporter {
            Exporter::Prometheus(handle) => {
                handle.run_upkeep();
                Some(handle.render())
            }
            _ => None,
        }
    }

    /// Writes the EMF lines of what changed since the last flush (nothing for Prometheus).
    /// One write for all lines, so a log line written meanwhile cannot land inside one.
    pub fn flush(&self) {
        let Exporter::Emf(collector) = &self.exporter else {
            return;
        };
        let mut lines = Vec::new();
        if let Err(error) = collector.flush(&mut lines) {
            tracing::warn!(%error, "metrics not written");
            return;
        }
        let mut stdout = std::io::stdout().lock();
        if let Err(error) = stdout.write_all(&lines).and_then(|()| stdout.flush()) {
            tracing::warn!(%error, "metrics not written");
        }
    }

    /// For EMF, flushes every `settings.flush_every`, each time after `refresh` (which sets
    /// gauges computed from state); nothing for Prometheus, whose text is rendered on request.
    pub fn flush_periodically(
        self: &Arc<Self>,
        settings: &MetricsSettings,
        refresh: impl Fn() + Send + 'static,
    ) {
        if !matches!(self.exporter, Exporter::Emf(_)) {
            return;
        }
        let (telemetry, every) = (self.clone(), settings.flush_every);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ticker.tick().await;
            loop {
                ticker.tick().await;
                refresh();
                telemetry.flush();
            }
        });
    }
}
