//! NATS for the relay tests: the server named by `HERALD_TEST_NATS_URL`, a stream name and a
//! subject prefix of its own for each test (so tests run in parallel), the stream's messages
//! read back in order, and a TCP proxy that cuts the relay off the server on demand.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use herald::relay::async_nats::jetstream::message::StreamMessage;
use herald::relay::async_nats::jetstream::{self, stream};
use herald::relay::async_nats::{self, ConnectOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The variable that names the NATS server (with JetStream) of the tests; `.ci/run` sets it.
pub const NATS_URL_VAR: &str = "HERALD_TEST_NATS_URL";

/// The NATS URL of the tests, or `None` after saying plainly that the test is skipped.
pub fn nats_url(test: &str) -> Option<String> {
    match std::env::var(NATS_URL_VAR) {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!("SKIPPED {test}: set {NATS_URL_VAR} to a NATS server with JetStream");
            None
        }
    }
}

/// A client that reconnects quickly, so that tests which cut the connection resume at once.
pub async fn connect(url: &str) -> async_nats::Client {
    ConnectOptions::new()
        .retry_on_initial_connect()
        .reconnect_delay_callback(|_| Duration::from_millis(5))
        .connect(url)
        .await
        .unwrap_or_else(|error| panic!("{NATS_URL_VAR}={url} is unreachable: {error}"))
}

/// A stream name and subject prefix no other test uses.
pub struct TestStream {
    /// The stream's name, e.g. `T_3f2a…`.
    pub name: String,
    /// The first token of every subject of the test, e.g. `t3f2a…`.
    pub prefix: String,
    jetstream: jetstream::Context,
}

impl TestStream {
    /// Names only: the stream is created by the test (often by `Relay::ensure_stream`).
    pub fn new(client: &async_nats::Client) -> Self {
        let id = herald::uuid::Uuid::new_v4().simple().to_string();
        Self {
            name: format!("T_{id}"),
            prefix: format!("t{id}"),
            jetstream: jetstream::new(client.clone()),
        }
    }

    /// `<prefix>.<rest>`.
    pub fn subject(&self, rest: &str) -> String {
        format!("{}.{rest}", self.prefix)
    }

    /// Creates a stream of this test named `name` with these subjects.
    pub async fn create(&self, name: &str, subjects: Vec<String>) {
        self.jetstream
            .create_stream(stream::Config {
                name: name.to_owned(),
                subjects,
                ..Default::default()
            })
            .await
            .unwrap_or_else(|error| panic!("create the stream {name}: {error}"));
    }

    /// How many messages the stream `name` holds.
    pub async fn count(&self, name: &str) -> u64 {
        let mut stream = self
            .jetstream
            .get_stream(name)
            .await
            .expect("get the stream");
        stream.info().await.expect("stream info").state.messages
    }

    /// Every message of the stream `name`, in stream order.
    pub async fn messages(&self, name: &str) -> Vec<StreamMessage> {
        let mut stream = self
            .jetstream
            .get_stream(name)
            .await
            .expect("get the stream");
        let state = stream.info().await.expect("stream info").state.clone();
        let mut messages = Vec::new();
        if state.messages == 0 {
            return messages;
        }
        for sequence in state.first_sequence..=state.last_sequence {
            messages.push(
                stream
                    .get_raw_message(sequence)
                    .await
                    .unwrap_or_else(|error| panic!("read message {sequence}: {error}")),
            );
        }
        messages
    }

    /// Deletes the streams of the test, so that the server does not fill up.
    pub async fn delete(&self, names: &[&str]) {
        for name in names {
            let _ = self.jetstream.delete_stream(name).await;
        }
    }
}

/// A TCP proxy in front of the NATS server: clients connected through it lose their
/// connection on [`Proxy::cut`] (or after every so many bytes they send, see
/// [`Proxy::cutting_every`]), and cannot reach the server at all between [`Proxy::stop`] and
/// [`Proxy::resume`].
pub struct Proxy {
    address: SocketAddr,
    upstream: String,
    cut: watch::Sender<u64>,
    cut_after_bytes: Option<usize>,
    listener: Mutex<Option<JoinHandle<()>>>,
}

impl Proxy {
    /// A proxy on a free loopback port, forwarding to the server of `nats_url`.
    pub async fn start(nats_url: &str) -> Arc<Self> {
        Self::with_cuts(nats_url, None).await
    }

    /// A proxy that drops each connection once the client sent `bytes` bytes through it: the
    /// cut comes right after a message reached the server, before its reply came back, so a
    /// publish in flight loses its ack (while the server stored the message).
    pub async fn cutting_every(nats_url: &str, bytes: usize) -> Arc<Self> {
        Self::with_cuts(nats_url, Some(bytes)).await
    }

    async fn with_cuts(nats_url: &str, cut_after_bytes: Option<usize>) -> Arc<Self> {
        let upstream = nats_url
            .trim_start_matches("nats://")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let address = listener.local_addr().expect("proxy address");
        let (cut, _) = watch::channel(0);
        let proxy = Arc::new(Self {
            address,
            upstream,
            cut,
            cut_after_bytes,
            listener: Mutex::new(None),
        });
        proxy.listen(listener);
        proxy
    }

    /// The URL clients connect to.
    pub fn url(&self) -> String {
        format!("nats://{}", self.address)
    }

    /// Drops every open connection; new ones are accepted.
    pub fn cut(&self) {
        self.cut.send_modify(|generation| *generation += 1);
    }

    /// Drops every open connection and closes the port: the server is unreachable.
    pub fn stop(&self) {
        if let Some(task) = self.listener.lock().unwrap().take() {
            task.abort();
        }
        self.cut();
    }

    /// Listens on the same port again.
    pub async fn resume(&self) {
        let listener = TcpListener::bind(self.address)
            .await
            .expect("bind the proxy's port again");
        self.listen(listener);
    }

    fn listen(&self, listener: TcpListener) {
        let upstream = self.upstream.clone();
        let cut = self.cut.subscribe();
        let cut_after_bytes = self.cut_after_bytes;
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let upstream = upstream.clone();
                let mut cut = cut.clone();
                cut.borrow_and_update();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = forward(client, server, cut_after_bytes) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        *self.listener.lock().unwrap() = Some(task);
    }
}

/// Copies both ways until either side closes, or the client has sent `limit` bytes.
async fn forward(client: TcpStream, server: TcpStream, limit: Option<usize>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = async {
        let mut buffer = vec![0; 16 * 1024];
        let mut sent = 0;
        loop {
            let read = match client_read.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => read,
            };
            if server_write.write_all(&buffer[..read]).await.is_err() {
                return;
            }
            sent += read;
            if limit.is_some_and(|limit| sent >= limit) {
                return;
            }
        }
    };
    let downstream = tokio::io::copy(&mut server_read, &mut client_write);
    tokio::select! {
        _ = upstream => {}
        _ = downstream => {}
    }
}
