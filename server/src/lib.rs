//! The server shell of the api: a hyper HTTP/1.1 server (the load balancer speaks HTTP/2 to
//! browsers and HTTP/1.1 to it) that serves the same router as the Lambda shell
//! ([`api::app`]) under the tower layers that do here what the function URL does for the
//! function: CORS, the request time limit, an access log; plus the client address (the load
//! balancer's `X-Forwarded-For` entry, or the peer) and a graceful drain on SIGTERM. Body
//! size and time limits are the router's own, on both transports.
//!
//! Modules: `serve` (accepting until shutdown, then draining; the layers), `cors`, `settings`
//! (the server's own).
//! `main.rs`: settings, the hub, the listener.

pub mod cors;
pub mod serve;
pub mod settings;
