//! `sightline demo`: a server that fills itself with realistic traffic.
//!
//! The server is already running in-process when [`run`] is called; the demo drives it from the
//! outside over OTLP/HTTP like any application would, with the same generator as
//! `sightline loadgen`. It first sends an hour of back-dated history so that lists, sessions and
//! charts are populated at once, then keeps a gentle live stream going (one trace per request)
//! until Ctrl-C. The live stream continues the conversations of the history: both phases draw
//! session and user identifiers from the same seed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use anyhow::bail;

use crate::loadgen::{self, LoadgenArgs};

/// Options of `sightline demo` besides the server's.
#[derive(clap::Args, Debug, Clone, PartialEq)]
pub struct DemoArgs {
    /// Traces per second the traffic generator sends once the hour of history is in.
    #[arg(long = "rate", value_name = "TRACES_PER_S", default_value_t = 5.0)]
    pub rate: f64,
}

/// Traces of back-dated history sent first.
const HISTORY_TRACES: u64 = 200;
/// How far back the history goes, in seconds.
const HISTORY_S: f64 = 3600.0;
/// A small population, so that sessions hold several traces and users several sessions.
const USERS: u32 = 25;
const SESSIONS: u32 = 60;

/// Where a client reaches a server listening on `addr` (a wildcard address means this host).
pub fn reachable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// Sends an hour of history to the server at `http_addr`, prints where to look, then sends live
/// traffic at `--rate` until Ctrl-C.
pub async fn run(demo: &DemoArgs, http_addr: SocketAddr) -> anyhow::Result<()> {
    if !demo.rate.is_finite() || demo.rate <= 0.0 {
        bail!(
            "--rate must be a positive number of traces per second, got {}",
            demo.rate
        );
    }
    let base = format!("http://{}", reachable(http_addr));
    let identity_seed = rand::random::<u64>() >> 12;
    let common = LoadgenArgs {
        endpoint: Some(base.clone()),
        users: USERS,
        sessions: SESSIONS,
        template_pool: 0,
        quiet: true,
        identity_seed: Some(identity_seed),
        ..LoadgenArgs::default()
    };

    let history = loadgen::run(&LoadgenArgs {
        traces: Some(HISTORY_TRACES),
        backdate: Some(HISTORY_S),
        batch_traces: 20,
        concurrency: 4,
        ..common.clone()
    })
    .await?;
    if history.spans.acked == 0 {
        let reason = history
            .errors
            .first()
            .map_or("no answer", |e| e.reason.as_str());
        bail!("the demo server accepted none of the history traces: {reason}");
    }

    println!("Sightline demo running: {base}/api/v1/traces");
    println!("  Web UI: {base}/");
    println!(
        "  {} traces of the last hour are in; sending {} more per second (Ctrl-C stops).",
        history.traces_acked, demo.rate
    );
    println!("  Also try {base}/api/v1/sessions, {base}/api/v1/calls and {base}/api/v1/users;");
    println!("  point any OpenTelemetry SDK at {base} (OTLP/HTTP) to add your own traces.");

    let live = loadgen::run_until(
        &LoadgenArgs {
            rate: demo.rate,
            batch_traces: 1,
            concurrency: 4,
            ..common
        },
        async {
            let _ = tokio::signal::ctrl_c().await;
        },
    )
    .await?;
    println!(
        "demo stopped: {} live traces sent, {} acknowledged",
        live.requests.sent, live.traces_acked
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_addresses_become_loopback() {
        assert_eq!(
            reachable("0.0.0.0:4318".parse().unwrap()),
            "127.0.0.1:4318".parse().unwrap()
        );
        assert_eq!(
            reachable("[::]:4318".parse().unwrap()),
            "[::1]:4318".parse().unwrap()
        );
        assert_eq!(
            reachable("10.1.2.3:80".parse().unwrap()),
            "10.1.2.3:80".parse().unwrap()
        );
    }
}
