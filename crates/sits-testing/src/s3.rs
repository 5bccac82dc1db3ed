//! [`S3Server`], an S3-compatible server on 127.0.0.1 backed by a local
//! folder (the `s3s-fs` server), started by a test and stopped when dropped, counting
//! the HTTP requests it serves so that tests can check how many a read costs.
//!
//! Object-storage clients find it through the usual variables; [`S3Server::env`]
//! gives them (`AWS_ENDPOINT`, `AWS_ALLOW_HTTP`, keys and region).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use hyper::service::Service;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;

/// Access key the server accepts.
pub const ACCESS_KEY: &str = "sits-test";
/// Secret key the server accepts.
pub const SECRET_KEY: &str = "sits-test-secret";

/// A running S3-compatible server; stopped on drop.
pub struct S3Server {
    addr: SocketAddr,
    root: PathBuf,
    requests: Arc<AtomicUsize>,
    log: Arc<Mutex<Vec<String>>>,
    runtime: Option<tokio::runtime::Runtime>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for S3Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Server")
            .field("addr", &self.addr)
            .field("root", &self.root)
            .finish()
    }
}

impl S3Server {
    /// Serves `root` (each sub-folder is a bucket) on `127.0.0.1:port` (0: any free
    /// port) from a runtime of its own.
    pub fn start(root: &Path, port: u16) -> std::io::Result<Self> {
        let fs =
            s3s_fs::FileSystem::new(root).map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        let service = {
            let mut b = s3s::service::S3ServiceBuilder::new(fs);
            b.set_auth(s3s::auth::SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
            b.build()
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind(("127.0.0.1", port)))?;
        let addr = listener.local_addr()?;
        let requests = Arc::new(AtomicUsize::new(0));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let log = Arc::new(Mutex::new(Vec::new()));
        let count = requests.clone();
        let log_in = log.clone();
        runtime.spawn(async move {
            let http = ConnBuilder::new(TokioExecutor::new());
            loop {
                let socket = tokio::select! {
                    r = listener.accept() => match r {
                        Ok((socket, _)) => socket,
                        Err(_) => continue,
                    },
                    _ = &mut stopped => break,
                };
                let service = service.clone();
                let count = count.clone();
                let log = log_in.clone();
                let counted = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        count.fetch_add(1, Ordering::SeqCst);
                        let range = req
                            .headers()
                            .get("range")
                            .and_then(|v| v.to_str().ok())
                            .map(|r| format!(" {r}"))
                            .unwrap_or_default();
                        if let Ok(mut log) = log.lock() {
                            log.push(format!("{} {}{range}", req.method(), req.uri().path()));
                        }
                        Service::call(&service, req)
                    },
                );
                let conn = http
                    .serve_connection(TokioIo::new(socket), counted)
                    .into_owned();
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
        });
        Ok(Self {
            addr,
            root: root.to_path_buf(),
            requests,
            log,
            runtime: Some(runtime),
            stop: Some(stop),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The folder served.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Makes bucket `name` (a folder under the root).
    pub fn create_bucket(&self, name: &str) -> std::io::Result<()> {
        std::fs::create_dir_all(self.root.join(name))
    }

    /// HTTP requests served so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    /// Every request served so far as `METHOD /path [range]`, oldest first.
    pub fn request_log(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The environment variables that point an object-storage client at this server.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.into()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(std::time::Duration::from_secs(2));
        }
    }
}
