//! The server shell of the api: a hyper HTTP/1.1 server (the load balancer speaks HTTP/2 to
//! browsers and HTTP/1.1 to it) that hands every request to the same router as the Lambda
//! shell, and does itself what the function URL did for the function: CORS, the client
//! address, request size and time limits, and a graceful drain on SIGTERM.
//!
//! Modules: `serve` (accepting until shutdown, then draining), `exchange` (one request: body
//! limits, client address, the router), `cors`. `main.rs`: settings, the hub, the listener.

pub mod cors;
pub mod exchange;
pub mod serve;
