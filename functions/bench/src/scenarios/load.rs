//! Scenario 8: 200 concurrent clients on `GET /sites/{site}/deployments` of a real
//! `slipway dev`, a fixed number of requests in all (closed loop, as `hey -c 200 -n N`).
//! Each client holds one keep-alive HTTP/1.1 connection, as 200 separate callers would.
//! Client and server share the machine's two cores, so the client is hyper's bare
//! connection (about a third of reqwest's CPU per request), and the same load is also sent
//! to a server that answers from memory: that is the client's own ceiling here.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use slipway_core::api_types::{DeploymentOutcome, DeploymentView};
use slipway_core::model::DeploymentStatus;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

use super::dev::{mark_index, Dev};
use crate::context::{Bench, Mode};
use crate::report::{median, percentile, Baseline, Row};

const CLIENTS: usize = 200;
const REQUESTS_FULL: usize = 20_000;
const REQUESTS_QUICK: usize = 2_000;
/// Deployments the listed site has.
const DEPLOYMENTS: usize = 10;
/// No request may take longer; one that does counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
const P99_TARGET_MS: f64 = 25.0;

/// What one load run saw.
struct LoadRun {
    latencies_ms: Vec<f64>,
    errors: usize,
    elapsed: Duration,
}

impl LoadRun {
    fn throughput(&self) -> f64 {
        (self.latencies_ms.len() + self.errors) as f64 / self.elapsed.as_secs_f64()
    }
}

/// One client: a keep-alive connection to `authority`.
async fn connect(
    authority: &str,
) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Empty<Bytes>>> {
    let stream = TcpStream::connect(authority).await?;
    stream.set_nodelay(true)?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(connection);
    Ok(sender)
}

/// GET `uri` once on `sender`: whether a 200 with a body of `expect_len` bytes came back.
async fn get_once(
    sender: &mut hyper::client::conn::http1::SendRequest<Empty<Bytes>>,
    uri: &http::Uri,
    authority: &str,
    expect_len: usize,
) -> anyhow::Result<bool> {
    sender.ready().await?;
    let request = http::Request::get(uri.clone())
        .header(http::header::HOST, authority)
        .body(Empty::new())?;
    let response = sender.send_request(request).await?;
    let ok = response.status() == http::StatusCode::OK;
    let body = response.into_body().collect().await?.to_bytes();
    Ok(ok && body.len() == expect_len)
}

/// Sends exactly `total` GETs of `url` from [`CLIENTS`] concurrent clients. A client whose
/// connection fails counts the failure as an error and reconnects.
async fn load(url: &str, total: usize, expect_len: usize) -> anyhow::Result<LoadRun> {
    let uri: http::Uri = url.parse()?;
    let authority = uri
        .authority()
        .with_context(|| format!("{url} has no host"))?
        .to_string();
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut clients = Vec::with_capacity(CLIENTS);
    for _ in 0..CLIENTS {
        let (next, uri, authority) = (next.clone(), uri.clone(), authority.clone());
        clients.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let mut sender = None;
            while next.fetch_add(1, Ordering::Relaxed) < total {
                let sent = Instant::now();
                let once = async {
                    let connection = match sender.as_mut() {
                        Some(connection) => connection,
                        None => sender.insert(connect(&authority).await?),
                    };
                    get_once(connection, &uri, &authority, expect_len).await
                };
                match tokio::time::timeout(REQUEST_TIMEOUT, once).await {
                    Ok(Ok(true)) => latencies.push(sent.elapsed().as_secs_f64() * 1e3),
                    Ok(Ok(false)) => errors += 1,
                    Ok(Err(_)) | Err(_) => {
                        errors += 1;
                        sender = None;
                    }
                }
            }
            (latencies, errors)
        }));
    }
    let mut run = LoadRun {
        latencies_ms: Vec::with_capacity(total),
        errors: 0,
        elapsed: Duration::ZERO,
    };
    for client in clients {
        let (latencies, errors) = client.await?;
        run.latencies_ms.extend(latencies);
        run.errors += errors;
    }
    run.elapsed = started.elapsed();
    Ok(run)
}

/// A keep-alive HTTP/1.1 server that answers every request with `response`, doing no work:
/// the ceiling the client and loopback allow. Requests are GETs without bodies.
async fn canned_server(response: Bytes) -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(answer(stream, response.clone()));
        }
    });
    Ok((format!("http://{addr}/"), task))
}

async fn answer(mut stream: TcpStream, response: Bytes) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        // Answer each complete request head; several may arrive in one read.
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            buf.drain(..end + 4);
            if stream.write_all(&response).await.is_err() {
                return;
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// CPU seconds (user + system) a process has used, from `/proc/{pid}/stat`.
fn cpu_seconds(pid: &str, ticks_per_second: f64) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start at the state, field 3.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("/proc stat without a command name")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let field = |n: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(n - 3)
            .context("short /proc stat")?
            .parse::<f64>()?)
    };
    Ok((field(14)? + field(15)?) / ticks_per_second)
}

async fn clock_ticks() -> f64 {
    let output = tokio::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .await;
    output
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

pub async fn run(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    let total = match bench.mode {
        Mode::Quick => REQUESTS_QUICK,
        Mode::Full => REQUESTS_FULL,
    };
    let dev = Dev::start(bench, "load-dev").await?;
    let site = "bench";
    dev.create_site(site).await?;
    let dir = bench.dir("load-site")?;
    for n in 0..DEPLOYMENTS {
        mark_index(&dir, b"<h1>load</h1>", &format!("slipway-bench load {n}"))?;
        let path = dir.to_str().context("scratch path is not UTF-8")?;
        let outcome: DeploymentOutcome = dev
            .cli_json(&["deploy", path, "--site", site, "--prebuilt"])
            .await?;
        anyhow::ensure!(outcome.status == DeploymentStatus::Live);
    }
    let path = format!("/sites/{site}/deployments");
    let listed: Vec<DeploymentView> = dev.api_get(&path).await?;
    anyhow::ensure!(
        listed.len() == DEPLOYMENTS,
        "{site} lists {} deployments",
        listed.len()
    );
    let url = format!("{}{path}", dev.api_url);
    // The exact response, for the canned server and for checking every body's length.
    let sample = reqwest::get(&url).await?;
    let mut head = format!("HTTP/1.1 {}\r\n", sample.status());
    for (name, value) in sample.headers() {
        head.push_str(&format!("{name}: {}\r\n", value.to_str()?));
    }
    head.push_str("\r\n");
    let body = sample.bytes().await?;
    let canned = Bytes::from([head.as_bytes(), &body[..]].concat());
    let (canned_url, canned_task) = canned_server(canned).await?;

    let ticks = clock_ticks().await;
    let server_pid = dev.pid().context("slipway dev has exited")?.to_string();
    // Connections and caches warm up on a short unmeasured load first.
    load(&url, CLIENTS * 2, body.len()).await?;
    load(&canned_url, CLIENTS * 2, body.len()).await?;

    let (mut p50s, mut p99s, mut rates, mut errors) = (vec![], vec![], vec![], 0);
    let (mut canned_p99s, mut canned_rates) = (vec![], vec![]);
    let (mut client_cpu, mut server_cpu) = (vec![], vec![]);
    for run in 0..bench.runs {
        let (client0, server0) = (
            cpu_seconds("self", ticks)?,
            cpu_seconds(&server_pid, ticks)?,
        );
        let measured = load(&url, total, body.len()).await?;
        let (client1, server1) = (
            cpu_seconds("self", ticks)?,
            cpu_seconds(&server_pid, ticks)?,
        );
        let canned = load(&canned_url, total, body.len()).await?;
        let (p50, p99) = (
            percentile(&measured.latencies_ms, 0.5),
            percentile(&measured.latencies_ms, 0.99),
        );
        let per_request_us = |cpu: f64| cpu / total as f64 * 1e6;
        eprintln!(
            "  load {run}: p50 {p50:.2} ms, p99 {p99:.2} ms, {:.0} req/s, {} errors; \
             CPU per request: client {:.0} µs, server {:.0} µs; \
             canned server: p99 {:.2} ms, {:.0} req/s, {} errors",
            measured.throughput(),
            measured.errors,
            per_request_us(client1 - client0),
            per_request_us(server1 - server0),
            percentile(&canned.latencies_ms, 0.99),
            canned.throughput(),
            canned.errors,
        );
        p50s.push(p50);
        p99s.push(p99);
        rates.push(measured.throughput());
        errors += measured.errors;
        canned_p99s.push(percentile(&canned.latencies_ms, 0.99));
        canned_rates.push(canned.throughput());
        client_cpu.push(per_request_us(client1 - client0));
        server_cpu.push(per_request_us(server1 - server0));
    }
    canned_task.abort();
    dev.stop().await?;

    let quick = if bench.mode == Mode::Quick {
        ", quick"
    } else {
        ""
    };
    let load_name = format!(
        "API under load ({CLIENTS} clients, {total} requests per run, \
         {DEPLOYMENTS} deployments{quick})"
    );
    let runs = p99s.len();
    let p99 = median(&p99s);
    let canned_p99 = median(&canned_p99s);
    let row = |name: &str, metric: &str, unit: &str, measured: f64, target: &str| Row {
        scenario: 8,
        name: name.to_owned(),
        metric: metric.to_owned(),
        unit: unit.to_owned(),
        measured,
        baseline: None,
        target: target.to_owned(),
        met: None,
        runs,
    };
    Ok(vec![
        Row {
            baseline: Some(Baseline {
                name: "the same client against a server answering from memory".to_owned(),
                measured: canned_p99,
                ratio: canned_p99 / p99,
            }),
            met: Some(p99 <= P99_TARGET_MS),
            ..row(
                &load_name,
                "p99 latency of GET /sites/{site}/deployments",
                "ms",
                p99,
                &format!("≤ {P99_TARGET_MS} ms"),
            )
        },
        row(&load_name, "p50 latency", "ms", median(&p50s), "-"),
        Row {
            met: Some(errors == 0),
            ..row(
                &load_name,
                "errors (non-200, wrong length, transport), all runs",
                "requests",
                errors as f64,
                "0",
            )
        },
        Row {
            baseline: Some(Baseline {
                name: "server answering from memory".to_owned(),
                measured: median(&canned_rates),
                ratio: median(&rates) / median(&canned_rates),
            }),
            ..row(&load_name, "throughput", "req/s", median(&rates), "-")
        },
        row(
            &load_name,
            "CPU per request: slipway dev",
            "µs",
            median(&server_cpu),
            "-",
        ),
        row(
            &load_name,
            "CPU per request: the load client (bench process)",
            "µs",
            median(&client_cpu),
            "-",
        ),
    ])
}
