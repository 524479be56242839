//! A TCP proxy between the poller and its RPC endpoint — HTTP and WebSocket alike — that can
//! cut every open connection and drop new ones for a while: an RPC outage on demand.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

#[derive(Debug)]
pub struct OutageProxy {
    pub addr: SocketAddr,
    down: watch::Sender<bool>,
    /// Connections accepted while up: proof the client really goes through the proxy.
    forwarded: Arc<AtomicU64>,
    /// Connections dropped during an outage.
    dropped: Arc<AtomicU64>,
    accept: JoinHandle<()>,
}

impl OutageProxy {
    /// Listens on a free local port and forwards every connection to `target`.
    pub async fn start(target: SocketAddr) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (down, _) = watch::channel(false);
        let forwarded = Arc::new(AtomicU64::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        let accept = tokio::spawn(accept_loop(
            listener,
            target,
            down.clone(),
            forwarded.clone(),
            dropped.clone(),
        ));
        Ok(Self {
            addr,
            down,
            forwarded,
            dropped,
            accept,
        })
    }

    /// `scheme://addr`, e.g. `http://127.0.0.1:40000`.
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr)
    }

    /// Starts an outage: open connections are closed, new ones closed as soon as accepted.
    pub fn cut(&self) {
        self.down.send_replace(true);
    }

    /// Ends the outage.
    pub fn restore(&self) {
        self.down.send_replace(false);
    }

    pub fn forwarded(&self) -> u64 {
        self.forwarded.load(Ordering::SeqCst)
    }

    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::SeqCst)
    }
}

impl Drop for OutageProxy {
    fn drop(&mut self) {
        self.down.send_replace(true);
        self.accept.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    target: SocketAddr,
    down: watch::Sender<bool>,
    forwarded: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
) {
    loop {
        let (inbound, _) = live_balances::runtime::accept::next(&listener).await;
        if *down.borrow() {
            dropped.fetch_add(1, Ordering::SeqCst);
            drop(inbound);
            continue;
        }
        forwarded.fetch_add(1, Ordering::SeqCst);
        let mut cut = down.subscribe();
        tokio::spawn(async move {
            let Ok(mut outbound) = TcpStream::connect(target).await else {
                return;
            };
            let mut inbound = inbound;
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                // Dropping both ends closes the connection mid-stream, as a failing
                // provider or load balancer would.
                _ = cut.wait_for(|down| *down) => {}
            }
        });
    }
}
