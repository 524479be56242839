//! Many SSE clients at once, each recording when a `balance_update` (and an `order_status`)
//! reached it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use alloy::primitives::Address;
use e2e::SseClient;
use futures::StreamExt;
use live_balances::domain::address::lower;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::context::Bench;

/// One delivered update: (connection, owner, token, balance, when).
pub type Delivery = (usize, Address, String, String, Instant);

/// One delivered order status: (owner, order id, fillable, short side, when).
pub type OrderDelivery = (Address, String, bool, String, Instant);

pub struct Listeners {
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    order_statuses: Arc<Mutex<Vec<OrderDelivery>>>,
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<anyhow::Result<u32>>>,
}

/// How many streams are opened at once (each starts a function instance locally).
const OPENING: usize = 8;

impl Listeners {
    /// Opens `connections` streams spread over `owners`, each past its `all_balances`.
    pub async fn open(
        bench: &Bench,
        owners: &[Address],
        connections: usize,
    ) -> anyhow::Result<Self> {
        let env = bench.env;
        let clients: Vec<(usize, Address, SseClient)> = futures::stream::iter(0..connections)
            .map(|i| {
                let owner = owners[i % owners.len()];
                async move {
                    let mut sse = SseClient::connect(env, &lower(&owner), None).await?;
                    sse.wait_for("all_balances", |e| e.event == "all_balances")
                        .await?;
                    anyhow::Ok((i, owner, sse))
                }
            })
            .buffer_unordered(OPENING)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<anyhow::Result<_>>()?;
        let deliveries = Arc::new(Mutex::new(vec![]));
        let order_statuses = Arc::new(Mutex::new(vec![]));
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = clients
            .into_iter()
            .map(|(i, owner, mut sse)| {
                let (deliveries, stop) = (deliveries.clone(), stop.clone());
                let order_statuses = order_statuses.clone();
                tokio::spawn(async move {
                    while !stop.load(Ordering::SeqCst) {
                        let deadline = Instant::now() + Duration::from_millis(500);
                        let Ok(event) = sse.next(deadline).await else {
                            continue;
                        };
                        if event.event == "order_status" {
                            let data = &event.data;
                            let status = (
                                owner,
                                data["orderId"].as_str().unwrap_or("").to_string(),
                                data["fillable"].as_bool().unwrap_or(false),
                                data["short"].as_str().unwrap_or("").to_string(),
                                Instant::now(),
                            );
                            if let Ok(mut s) = order_statuses.lock() {
                                s.push(status);
                            }
                        } else if event.event == "balance_update" {
                            let token = event.data["address"].as_str().unwrap_or("").to_string();
                            let balance = event.data["balance"].as_str().unwrap_or("").to_string();
                            if let Ok(mut d) = deliveries.lock() {
                                d.push((i, owner, token, balance, Instant::now()));
                            }
                        }
                    }
                    Ok(sse.reconnects)
                })
            })
            .collect();
        Ok(Self {
            deliveries,
            order_statuses,
            stop,
            tasks,
        })
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default()
    }

    pub fn order_statuses(&self) -> Vec<OrderDelivery> {
        self.order_statuses
            .lock()
            .map(|d| d.clone())
            .unwrap_or_default()
    }

    /// Closes every stream; returns how many reconnects the clients made.
    pub async fn close(self) -> anyhow::Result<u32> {
        self.stop.store(true, Ordering::SeqCst);
        let mut reconnects = 0;
        for task in self.tasks {
            reconnects += task.await??;
        }
        Ok(reconnects)
    }
}
