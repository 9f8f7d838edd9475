//! A stand-in API for command tests: answers each request from a handler, one connection
//! per request, and records what it was asked.

use std::sync::{Arc, Mutex};

use slipway_core::api_types::DeploymentView;
use slipway_core::model::Bucket;
use slipway_core::model::{Deployment, DeploymentStatus, ObjectLocation};
use slipway_core::names::{DeploymentId, SiteName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// What the handler sees: method and path (with query), both as sent, and the server's own
/// `http://host:port`.
pub struct Request {
    pub method: String,
    pub path: String,
    pub origin: String,
}

pub struct FakeApi {
    pub base: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl FakeApi {
    /// `handler` returns the status line's code and reason (`"200 OK"`) and a JSON body.
    pub async fn start<H>(mut handler: H) -> Self
    where
        H: FnMut(&Request) -> (&'static str, String) + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let origin = base.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let Some(request) = read_request(&mut socket, &origin).await else {
                    continue;
                };
                seen.lock()
                    .unwrap()
                    .push(format!("{} {}", request.method, request.path));
                let (status, body) = handler(&request);
                let response = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            }
        });
        Self { base, requests }
    }

    /// `METHOD /path` for every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

async fn read_request(socket: &mut tokio::net::TcpStream, origin: &str) -> Option<Request> {
    let mut received = Vec::new();
    let mut buf = [0u8; 8192];
    let head_end = loop {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        received.extend_from_slice(&buf[..n]);
        if let Some(at) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&received[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while received.len() < head_end + length {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            break;
        }
        received.extend_from_slice(&buf[..n]);
    }
    let mut first = head.lines().next()?.split(' ');
    Some(Request {
        method: first.next()?.to_owned(),
        path: first.next()?.to_owned(),
        origin: origin.to_owned(),
    })
}

/// A deployment of `docs` in `status`, as the API shows it.
pub fn view(id: DeploymentId, status: DeploymentStatus) -> DeploymentView {
    let mut deployment = Deployment::queued(
        id,
        SiteName::parse("docs").unwrap(),
        ObjectLocation {
            bucket: Bucket::Source,
            key: format!("uploads/docs/{id}.zip"),
        },
        false,
        time::OffsetDateTime::now_utc(),
    );
    deployment.status = status;
    DeploymentView::new(
        deployment,
        "http://docs.localhost:7080/".to_owned(),
        format!("http://{id}--docs.localhost:7080/"),
    )
}
