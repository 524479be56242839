//! Logging of the long-lived processes (the poller, the api server): the `RUST_LOG` filter
//! (default `info`), JSON lines when `LOG_FORMAT=json` — the template's metric filters read
//! those lines' fields (the poller's `progress`, the server's `streams`).

use tracing_subscriber::EnvFilter;

pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    if std::env::var("LOG_FORMAT").as_deref() == Ok("json") {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
}
