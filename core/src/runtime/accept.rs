//! Taking connections on a listener (the api server, the poller's health endpoint, the test
//! harness's servers and proxies). An accept error — out of file descriptors under a storm of
//! connections, a connection reset before it was taken — pauses the loop and never ends it: a
//! listener that stopped accepting would leave every client waiting on connections nobody
//! serves.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// After an accept error, a pause before the next accept: while descriptors are exhausted the
/// error repeats at once.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// The next connection on `listener`, waiting out accept errors.
pub async fn next(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok(accepted) => return accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed; retrying");
                tokio::time::sleep(ACCEPT_PAUSE).await;
            }
        }
    }
}
