//! Real `redis-server` processes for tests: one server on a free port, or a three-primary
//! cluster. Each is killed (by its process handle) when dropped, and its directory removed.
//!
//! Self-contained (std and the `redis` crate only), so any test binary may include it with
//! `#[path = "support/redis.rs"] mod redis_support;`.

#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The longest a server may take to answer after it is started.
const START_LIMIT: Duration = Duration::from_secs(10);

static DIRS: AtomicUsize = AtomicUsize::new(0);

fn fresh_dir(what: &str) -> PathBuf {
    let n = DIRS.fetch_add(1, Ordering::Relaxed);
    let dir =
        std::env::temp_dir().join(format!("cachegate-test-{what}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a directory for redis-server");
    dir
}

/// A free port on 127.0.0.1 (bound, read and released); with `bus`, one whose cluster bus
/// port (+10000) is free too.
fn free_port(bus: bool) -> u16 {
    for _ in 0..100 {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        if !bus {
            return port;
        }
        if port < 55000 && TcpListener::bind(("127.0.0.1", port + 10000)).is_ok() {
            return port;
        }
    }
    panic!("no free port pair for a cluster node");
}

/// Runs one command on the server at `port` and returns its reply.
pub fn command(port: u16, args: &[&str]) -> redis::RedisResult<redis::Value> {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/"))?;
    let mut conn = client.get_connection_with_timeout(Duration::from_secs(1))?;
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query(&mut conn)
}

/// A reply as text (status, bulk or verbatim string), for checks like `cluster_state:ok`.
pub fn command_text(port: u16, args: &[&str]) -> Option<String> {
    command(port, args)
        .ok()
        .and_then(|v| redis::from_redis_value::<String>(v).ok())
}

/// Waits (bounded) until the server at `port` answers PING.
fn wait_ping(port: u16, child: &mut Child) {
    let start = Instant::now();
    while start.elapsed() < START_LIMIT {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("redis-server on port {port} exited at start: {status}");
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok()
            && command_text(port, &["PING"]).as_deref() == Some("PONG")
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("redis-server on port {port} did not answer within {START_LIMIT:?}");
}

fn spawn_server(port: u16, dir: &PathBuf, extra: &[String]) -> Child {
    let mut child = Command::new("redis-server")
        .arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start redis-server (is it installed?)");
    wait_ping(port, &mut child);
    child
}

/// One `redis-server` on a free port.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let port = free_port(false);
        let dir = fresh_dir(&format!("redis-{port}"));
        let child = spawn_server(port, &dir, &[]);
        RedisServer {
            port,
            dir,
            child: Some(child),
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Kills the server (no shutdown: like a crash).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server and starts an empty one on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.child = Some(spawn_server(self.port, &self.dir, &[]));
    }

    /// Runs a command on the server.
    pub fn command(&self, args: &[&str]) -> redis::RedisResult<redis::Value> {
        command(self.port, args)
    }

    /// Drops every pub/sub connection (`CLIENT KILL TYPE pubsub`); returns how many.
    pub fn kill_pubsub(&self) -> i64 {
        match self.command(&["CLIENT", "KILL", "TYPE", "pubsub"]) {
            Ok(redis::Value::Int(n)) => n,
            other => panic!("CLIENT KILL TYPE pubsub: {other:?}"),
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A local Redis Cluster of `n` primaries and no replicas.
pub struct RedisCluster {
    ports: Vec<u16>,
    dir: PathBuf,
    children: Vec<Child>,
}

impl RedisCluster {
    pub fn start(n: usize) -> RedisCluster {
        let dir = fresh_dir("cluster");
        let mut ports = Vec::new();
        let mut children = Vec::new();
        for _ in 0..n {
            let port = free_port(true);
            let extra = vec![
                "--cluster-enabled".to_string(),
                "yes".to_string(),
                "--cluster-config-file".to_string(),
                dir.join(format!("nodes-{port}.conf")).display().to_string(),
                "--cluster-node-timeout".to_string(),
                "2000".to_string(),
            ];
            children.push(spawn_server(port, &dir, &extra));
            ports.push(port);
        }
        let cluster = RedisCluster {
            ports,
            dir,
            children,
        };
        let nodes: Vec<String> = cluster
            .ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect();
        let status = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("run redis-cli --cluster create");
        assert!(status.success(), "redis-cli --cluster create: {status}");
        let start = Instant::now();
        for &port in &cluster.ports {
            loop {
                let info = command_text(port, &["CLUSTER", "INFO"]).unwrap_or_default();
                if info.contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    start.elapsed() < START_LIMIT,
                    "cluster node {port} not ok within {START_LIMIT:?}: {info}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        cluster
    }

    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    pub fn urls(&self) -> Vec<String> {
        self.ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}/"))
            .collect()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
