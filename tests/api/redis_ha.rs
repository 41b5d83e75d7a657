//! Sessions past one Redis: on a Redis Cluster (six private redis-server processes, three
//! primaries with a replica each) and behind Sentinels (a primary, its replica and three
//! Sentinels), on free loopback ports, started by the tests and stopped by pid.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::binary::free_port;
use crate::helpers::{Backend, TestApp, assert_error, content, expect_tokens, spawn_app_with};
use crate::metrics::Snapshot;

const PASSWORD: &str = "correct horse battery";

/// A six-node cluster; stopped and removed on drop.
pub struct RedisCluster {
    nodes: Vec<(u16, Child)>,
    dir: PathBuf,
    tls: Option<Tls>,
}

/// TLS of a private server set: the CA, and the certificate and key every server presents.
#[derive(Clone)]
struct Tls {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Tls {
    /// Made with openssl in `dir`.
    fn make(dir: &std::path::Path) -> Self {
        let (ca, cert, key) = tls_files(dir);
        Self { ca, cert, key }
    }

    /// Where a server listens: on `port` in the clear, or with `tls` on `port` over TLS only,
    /// between the servers too.
    fn listen(tls: Option<&Tls>, port: u16) -> Vec<String> {
        let port = port.to_string();
        let Some(tls) = tls else {
            return vec!["--port".into(), port];
        };
        let path = |p: &PathBuf| p.to_string_lossy().into_owned();
        [
            "--port",
            "0",
            "--tls-port",
            &port,
            "--tls-cert-file",
            &path(&tls.cert),
            "--tls-key-file",
            &path(&tls.key),
            "--tls-ca-cert-file",
            &path(&tls.ca),
            "--tls-auth-clients",
            "no",
            "--tls-replication",
            "yes",
        ]
        .map(String::from)
        .to_vec()
    }

    /// The `redis-cli` arguments to reach such servers.
    fn cli_args(tls: Option<&Tls>) -> Vec<String> {
        tls.map(|tls| vec!["--tls".into(), "--cacert".into(), tls.ca.to_string_lossy().into_owned()])
            .unwrap_or_default()
    }
}

impl RedisCluster {
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Six nodes, over TLS only with `tls`.
    fn start_with(tls: Option<Tls>) -> Self {
        let dir = std::env::temp_dir().join(format!("auth-api-cluster-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut nodes = Vec::new();
        for _ in 0..6 {
            nodes.push(spawn_listening(tls.as_ref(), |port| {
                let mut command = Command::new("redis-server");
                command
                    .args(Tls::listen(tls.as_ref(), port))
                    .args(["--bind", "127.0.0.1"])
                    .args(["--cluster-enabled", "yes", "--cluster-node-timeout", "1000"])
                    // The bus on a free port of its own (the default, port + 10000, may be
                    // taken or past 65535), over TLS as well.
                    .args(["--cluster-port", &free_port().to_string()])
                    .args(if tls.is_some() {
                        vec!["--tls-cluster", "yes"]
                    } else {
                        vec![]
                    })
                    .args(["--cluster-config-file", &format!("nodes-{port}.conf")])
                    .args(["--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0"])
                    .arg("--dir")
                    .arg(&dir);
                command
            }));
        }
        let cluster = Self { nodes, dir, tls };
        let addresses: Vec<String> = cluster.nodes.iter().map(|(p, _)| format!("127.0.0.1:{p}")).collect();
        let created = Command::new("redis-cli")
            .args(Tls::cli_args(cluster.tls.as_ref()))
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .unwrap();
        assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stdout));
        wait_until("every node sees the cluster ok", || {
            cluster
                .nodes
                .iter()
                .all(|(p, _)| cluster.cli(*p, &["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        });
        cluster
    }

    fn cli(&self, port: u16, args: &[&str]) -> String {
        cli_with(self.tls.as_ref(), port, args)
    }

    /// `REDIS_CLUSTER_NODES`: two seeds (the client finds the rest).
    pub fn seeds(&self) -> String {
        let scheme = if self.tls.is_some() { "rediss" } else { "redis" };
        self.nodes[..2]
            .iter()
            .map(|(p, _)| format!("{scheme}://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Kills (SIGKILL) the primary at `port`.
    fn kill(&mut self, port: u16) {
        let (_, child) = self.nodes.iter_mut().find(|(p, _)| *p == port).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
    }

    /// The port of a primary, and the first of the keys it holds.
    fn a_primary_with_keys(&self) -> u16 {
        self.nodes
            .iter()
            .map(|(p, _)| *p)
            .find(|p| {
                self.cli(*p, &["ROLE"]).starts_with("master")
                    && self.cli(*p, &["DBSIZE"]).trim().parse::<u64>().unwrap_or(0) > 0
            })
            .expect("a primary holds keys")
    }

    /// The primaries (the one serving most slots first): id, port and their slots.
    fn primaries(&self) -> Vec<Primary> {
        let nodes = self.cli(self.nodes[0].0, &["CLUSTER", "NODES"]);
        let mut primaries: Vec<Primary> = nodes
            .lines()
            .filter(|line| line.split(' ').nth(2).is_some_and(|flags| flags.contains("master")))
            .map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                let port = fields[1].split(['@', ',']).next().unwrap().rsplit(':').next().unwrap();
                let slots = fields[8..]
                    .iter()
                    .filter(|range| !range.starts_with('['))
                    .flat_map(|range| match range.split_once('-') {
                        Some((a, b)) => a.parse().unwrap()..=b.parse().unwrap(),
                        None => range.parse().unwrap()..=range.parse().unwrap(),
                    })
                    .collect();
                Primary {
                    id: fields[0].to_string(),
                    port: port.parse().unwrap(),
                    slots,
                }
            })
            .collect();
        primaries.sort_by_key(|p| std::cmp::Reverse(p.slots.len()));
        primaries
    }

    /// How many replies of each of these errors the nodes gave, together (`INFO errorstats`).
    fn replies_with(&self, errors: &[&str]) -> std::collections::BTreeMap<String, u64> {
        let mut counts = std::collections::BTreeMap::new();
        for (port, _) in &self.nodes {
            for line in self.cli(*port, &["INFO", "errorstats"]).lines() {
                let Some((error, count)) = line
                    .trim()
                    .strip_prefix("errorstat_")
                    .and_then(|l| l.split_once(":count="))
                else {
                    continue;
                };
                if errors.contains(&error) {
                    *counts.entry(error.to_string()).or_insert(0) += count.parse::<u64>().unwrap();
                }
            }
        }
        counts
    }

    /// The slot of `key`, as the cluster computes it.
    fn slot_of(&self, key: &str) -> u16 {
        self.cli(self.nodes[0].0, &["CLUSTER", "KEYSLOT", key])
            .trim()
            .parse()
            .unwrap()
    }

    /// Moves `slots` slots, keys and all, from primary `from` to primary `to`, as an operator
    /// would; one key per `MIGRATE`, so a slot's keys stay split between the two nodes for a
    /// while.
    fn reshard(&self, from: &str, to: &str, slots: usize) {
        let output = Command::new("redis-cli")
            .args(Tls::cli_args(self.tls.as_ref()))
            .args(["--cluster", "reshard", &format!("127.0.0.1:{}", self.nodes[0].0)])
            .args(["--cluster-from", from, "--cluster-to", to])
            .args([
                "--cluster-slots",
                &slots.to_string(),
                "--cluster-yes",
                "--cluster-pipeline",
                "1",
            ])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "reshard: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The ports of the nodes that hold at least one key (primaries and their replicas).
    fn ports_with_keys(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .map(|(p, _)| *p)
            .filter(|p| self.cli(*p, &["DBSIZE"]).trim().parse::<u64>().unwrap_or(0) > 0)
            .collect()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for (_, child) in &mut self.nodes {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A cluster primary, as `CLUSTER NODES` lists it.
struct Primary {
    id: String,
    port: u16,
    slots: Vec<u16>,
}

/// A primary, its replica and three Sentinels (`down-after-milliseconds 1000`) monitoring it
/// as `auth`; stopped and removed on drop.
pub struct SentinelSet {
    primary: (u16, Option<Child>),
    others: Vec<Child>,
    sentinels: Vec<u16>,
    dir: PathBuf,
    tls: Option<Tls>,
}

impl SentinelSet {
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// Every server and Sentinel over TLS only with `tls`.
    fn start_with(tls: Option<Tls>) -> Self {
        let dir = std::env::temp_dir().join(format!("auth-api-sentinel-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let server = |extra: &[&str]| {
            spawn_listening(tls.as_ref(), |port| {
                let mut command = Command::new("redis-server");
                command
                    .args(Tls::listen(tls.as_ref(), port))
                    .args(["--bind", "127.0.0.1"])
                    .args(["--save", "", "--appendonly", "no", "--repl-diskless-sync-delay", "0"])
                    .arg("--dir")
                    .arg(&dir)
                    .args(extra);
                command
            })
        };
        let (primary, primary_process) = server(&[]);
        let (replica, replica_process) = server(&["--replicaof", "127.0.0.1", &primary.to_string()]);
        let mut set = Self {
            primary: (primary, Some(primary_process)),
            others: vec![replica_process],
            sentinels: Vec::new(),
            dir: dir.clone(),
            tls: tls.clone(),
        };
        wait_until("the replica in sync", || {
            set.cli(replica, &["INFO", "replication"])
                .contains("master_link_status:up")
        });
        for _ in 0..3 {
            let (port, child) = spawn_listening(tls.as_ref(), |port| {
                let conf = dir.join(format!("sentinel-{port}.conf"));
                let listen = match &tls {
                    None => format!("port {port}\n"),
                    Some(tls) => format!(
                        "port 0\ntls-port {port}\ntls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\n\
                         tls-auth-clients no\ntls-replication yes\n",
                        tls.cert.display(),
                        tls.key.display(),
                        tls.ca.display()
                    ),
                };
                std::fs::write(
                    &conf,
                    format!(
                        "{listen}bind 127.0.0.1\ndir {}\nsentinel monitor auth 127.0.0.1 {primary} 2\n\
                         sentinel down-after-milliseconds auth 1000\nsentinel failover-timeout auth 10000\n",
                        dir.display()
                    ),
                )
                .unwrap();
                let mut command = Command::new("redis-server");
                command.arg(&conf).arg("--sentinel");
                command
            });
            set.others.push(child);
            set.sentinels.push(port);
        }
        for port in set.sentinels.clone() {
            wait_until("each Sentinel knows the others and the replica", || {
                let master = set.cli(port, &["SENTINEL", "MASTER", "auth"]);
                master.contains("num-other-sentinels\n2\n") && master.contains("num-slaves\n1\n")
            });
        }
        set
    }

    fn cli(&self, port: u16, args: &[&str]) -> String {
        cli_with(self.tls.as_ref(), port, args)
    }

    /// `REDIS_SENTINELS`.
    fn urls(&self) -> String {
        let scheme = if self.tls.is_some() { "rediss" } else { "redis" };
        self.sentinels
            .iter()
            .map(|p| format!("{scheme}://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn kill_primary(&mut self) {
        let mut child = self.primary.1.take().expect("the primary runs");
        child.kill().unwrap();
        child.wait().unwrap();
    }

    fn primary_keys(&self) -> u64 {
        self.cli(self.primary.0, &["DBSIZE"]).trim().parse().unwrap_or(0)
    }
}

impl Drop for SentinelSet {
    fn drop(&mut self) {
        for child in self.primary.1.iter_mut().chain(self.others.iter_mut()) {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The cluster and the Sentinel set the `redis_cluster` and `redis_sentinel` cases of
/// [`backend_tests!`](crate::backend_tests) share, each started at its first use; each test
/// keeps to a key prefix of its own.
static SHARED_CLUSTER: Mutex<Option<RedisCluster>> = Mutex::new(None);
static SHARED_SENTINELS: Mutex<Option<SentinelSet>> = Mutex::new(None);

/// `REDIS_CLUSTER_NODES` of the shared cluster.
pub fn shared_cluster_seeds() -> String {
    let mut shared = SHARED_CLUSTER.lock().unwrap_or_else(|p| p.into_inner());
    shared.get_or_insert_with(RedisCluster::start).seeds()
}

/// `REDIS_SENTINELS` of the shared Sentinel set (its primary is named `auth`).
pub fn shared_sentinels() -> String {
    let mut shared = SHARED_SENTINELS.lock().unwrap_or_else(|p| p.into_inner());
    shared.get_or_insert_with(SentinelSet::start).urls()
}

/// Stops the shared servers (statics are never dropped): called once the run is over.
pub fn stop_shared() {
    drop(SHARED_CLUSTER.lock().unwrap_or_else(|p| p.into_inner()).take());
    drop(SHARED_SENTINELS.lock().unwrap_or_else(|p| p.into_inner()).take());
}

/// Starts the redis-server (or Sentinel) `command` makes for a port on a free port, once it
/// answers `PING`: a port another process took meanwhile makes the server exit, and another
/// port is tried.
fn spawn_listening(tls: Option<&Tls>, mut command: impl FnMut(u16) -> Command) -> (u16, Child) {
    for _ in 0..5 {
        let port = free_port();
        let mut child = command(port)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian's redis-server package)");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if cli_with(tls, port, &["PING"]).contains("PONG") {
                return (port, child);
            }
            if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    panic!("no redis-server started on five free ports in a row");
}

fn cli_with(tls: Option<&Tls>, port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(Tls::cli_args(tls))
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(Instant::now() < deadline, "timed out: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

async fn spawn_behind(set: &SentinelSet, vars: &[(&str, &str)]) -> TestApp {
    let sentinels = set.urls();
    let mut all = vec![
        ("REDIS_URL", ""),
        ("REDIS_SENTINELS", sentinels.as_str()),
        ("REDIS_SENTINEL_MASTER", "auth"),
        ("MAX_SESSIONS_PER_USER", "5"),
    ];
    all.extend_from_slice(vars);
    spawn_app_with(Backend::External, &all).await
}

async fn spawn_on(cluster: &RedisCluster, vars: &[(&str, &str)]) -> TestApp {
    let seeds = cluster.seeds();
    let mut all = vec![
        ("REDIS_URL", ""),
        ("REDIS_CLUSTER_NODES", seeds.as_str()),
        ("MAX_SESSIONS_PER_USER", "5"),
    ];
    all.extend_from_slice(vars);
    spawn_app_with(Backend::External, &all).await
}

crate::case!(sessions_live_on_a_redis_cluster needs External, RedisServers);
/// The session flows on a six-node cluster: users' keys spread over the shards, and every
/// operation (each one slot) works as on one Redis.
async fn sessions_live_on_a_redis_cluster() {
    let cluster = tokio::task::spawn_blocking(RedisCluster::start).await.unwrap();
    let app = spawn_on(&cluster, &[("REFRESH_REUSE_GRACE", "1"), ("LOGIN_MAX_FAILURES", "3")]).await;
    session_flows(&app).await;
    // Thirteen users' keys spread over more than one shard.
    let holding = cluster.ports_with_keys();
    assert!(
        holding.len() >= 4,
        "keys on at least two primaries and their replicas: {holding:?}"
    );
    drop(app);
    drop(cluster);
}

/// Sessions, rotation, the grace window, lists, revocation, logout, reuse detection and the
/// login lockout, for thirteen users; the app runs with `REFRESH_REUSE_GRACE=1` and
/// `LOGIN_MAX_FAILURES=3`.
async fn session_flows(app: &TestApp) {
    assert_eq!(app.get("/health/ready").await.status(), 200);
    for i in 0..12 {
        let email = format!("user{i}@example.com");
        let first = app.signed_up(&email).await;
        let second = expect_tokens(app.login(&email, PASSWORD).await).await;
        assert_eq!(app.me(&first.access).await.status(), 200);
        // Rotation, and the grace window's same successor for a second tab.
        let rotated = expect_tokens(app.refresh(&first.refresh).await).await;
        let other_tab = expect_tokens(app.refresh(&first.refresh).await).await;
        assert_eq!(rotated.refresh, other_tab.refresh);
        // The list, one revocation, a logout.
        let listed = content(app.sessions(&rotated.access).await).await;
        assert_eq!(listed.as_array().map(Vec::len), Some(2), "{listed}");
        let other = listed
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["current"] == json!(false))
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string();
        let revoked = app
            .client
            .delete(app.url(&format!("/auth/sessions/{other}")))
            .bearer_auth(&rotated.access)
            .send()
            .await
            .unwrap();
        assert_eq!(revoked.status(), 200);
        assert_eq!(app.refresh(&second.refresh).await.status(), 401);
        assert_eq!(app.logout(&rotated.refresh).await.status(), 200);
        assert_error(app.me(&rotated.access).await, 401, "INVALID_ACCESS_TOKEN").await;
    }
    // Reuse after the grace window revokes the session.
    let stolen = app.signed_up("victim@example.com").await;
    let legit = expect_tokens(app.refresh(&stolen.refresh).await).await;
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_error(app.refresh(&stolen.refresh).await, 401, "REFRESH_TOKEN_REUSED").await;
    assert_eq!(app.refresh(&legit.refresh).await.status(), 401);
    // The login lockout counts on the cluster too.
    for _ in 0..3 {
        assert_eq!(app.login("victim@example.com", "wrong guess").await.status(), 401);
    }
    assert_error(app.login("victim@example.com", PASSWORD).await, 429, "ACCOUNT_LOCKED").await;
}

/// What one request of the load answered, and when.
struct Answer {
    at: Instant,
    took: Duration,
    status: u16,
}

crate::case!(multi a_primary_killed_under_load_costs_seconds_of_503_and_nothing_else needs External, RedisServers);
/// A cluster primary killed (SIGKILL) under load (see [`through_a_failover`]);
/// `cluster-node-timeout 1000`.
async fn a_primary_killed_under_load_costs_seconds_of_503_and_nothing_else() {
    let cluster = tokio::task::spawn_blocking(RedisCluster::start).await.unwrap();
    let app = Arc::new(spawn_on(&cluster, &LOAD_VARS).await);
    let cluster = Arc::new(Mutex::new(cluster));
    let killer = cluster.clone();
    through_a_failover(app, move || {
        let mut cluster = killer.lock().unwrap();
        let primary = cluster.a_primary_with_keys();
        cluster.kill(primary);
        format!("cluster primary {primary}")
    })
    .await;
    drop(cluster);
}

crate::case!(multi the_sentinels_primary_killed_under_load_costs_seconds_of_503_and_nothing_else needs External, RedisServers);
/// The primary behind three Sentinels killed (SIGKILL) under load (see
/// [`through_a_failover`]); `down-after-milliseconds 1000`.
async fn the_sentinels_primary_killed_under_load_costs_seconds_of_503_and_nothing_else() {
    let set = tokio::task::spawn_blocking(SentinelSet::start).await.unwrap();
    let app = Arc::new(spawn_behind(&set, &LOAD_VARS).await);
    let set = Arc::new(Mutex::new(set));
    let killer = set.clone();
    through_a_failover(app, move || {
        killer.lock().unwrap().kill_primary();
        "the Sentinels' primary".to_string()
    })
    .await;
    drop(set);
}

crate::case!(multi every_cluster_node_is_probed_and_a_dead_one_shows_on_the_metrics needs External, RedisServers);
/// At each scrape the service pings every node of the cluster on its own links:
/// `auth_redis_node_up{node, role}` lists the six, and a killed primary shows as down at once,
/// counts a failed probe, and stays down while its replica takes over as primary.
async fn every_cluster_node_is_probed_and_a_dead_one_shows_on_the_metrics() {
    let mut cluster = tokio::task::spawn_blocking(RedisCluster::start).await.unwrap();
    let app = spawn_on(&cluster, &[("STORE_TIMEOUT_MS", "500")]).await;
    app.signed_up("probed@example.com").await;
    // node -> (role, up)
    let probe = async || {
        let scrape = Snapshot::take(&app).await;
        let nodes: std::collections::BTreeMap<String, (String, f64)> = scrape
            .series("auth_redis_node_up")
            .into_iter()
            .map(|(labels, up)| (labels["node"].clone(), (labels["role"].clone(), up)))
            .collect();
        (nodes, scrape)
    };
    let (nodes, _) = probe().await;
    let ports: Vec<String> = cluster.nodes.iter().map(|(p, _)| format!("127.0.0.1:{p}")).collect();
    assert_eq!(nodes.keys().cloned().collect::<Vec<_>>(), {
        let mut sorted = ports.clone();
        sorted.sort();
        sorted
    });
    assert!(nodes.values().all(|(_, up)| *up == 1.0), "{nodes:?}");
    let primaries = nodes.values().filter(|(role, _)| role == "primary").count();
    assert_eq!(primaries, 3, "{nodes:?}");

    let killed = cluster.primaries()[0].port;
    cluster.kill(killed);
    let dead = format!("127.0.0.1:{killed}");
    let (nodes, scrape) = probe().await;
    assert_eq!(nodes[&dead], ("primary".to_string(), 0.0), "{nodes:?}");
    assert!(scrape.get("auth_redis_node_probe_failures_total", &[("node", &dead)]) >= 1.0);
    assert_eq!(nodes.values().filter(|(_, up)| *up == 1.0).count(), 5, "{nodes:?}");
    // Its replica takes over; the dead node stays listed, down.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (nodes, _) = probe().await;
        let serving = nodes
            .iter()
            .filter(|(_, (role, up))| role == "primary" && *up == 1.0)
            .count();
        if serving == 3 {
            assert_eq!(nodes[&dead].1, 0.0, "{nodes:?}");
            break;
        }
        assert!(Instant::now() < deadline, "no failover seen: {nodes:?}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

crate::case!(sessions_live_behind_sentinels needs External, RedisServers);
/// The session flows through the primary three Sentinels name.
async fn sessions_live_behind_sentinels() {
    let set = tokio::task::spawn_blocking(SentinelSet::start).await.unwrap();
    let app = spawn_behind(&set, &[("REFRESH_REUSE_GRACE", "1"), ("LOGIN_MAX_FAILURES", "3")]).await;
    session_flows(&app).await;
    assert!(set.primary_keys() > 0, "the sessions are on the primary");
    // The probe names the primary the Sentinels name.
    let scrape = Snapshot::take(&app).await;
    let primary = format!("127.0.0.1:{}", set.primary.0);
    assert_eq!(
        scrape.get("auth_redis_node_up", &[("node", &primary), ("role", "primary")]),
        1.0
    );
}

/// The service's settings under load: logins must not evict the sessions the clients refresh.
const LOAD_VARS: [(&str, &str); 3] = [
    ("STORE_TIMEOUT_MS", "500"),
    ("SESSION_CACHE_MS", "0"),
    ("MAX_SESSIONS_PER_USER", "1000"),
];
const STORE_TIMEOUT: Duration = Duration::from_millis(500);

/// Eight clients, each with two of the sixteen users of its own, call /auth/me, refresh every
/// `refresh_every`-th call and log in every fortieth, until stopped.
struct Load {
    emails: Vec<String>,
    /// Per user: the latest tokens, and when its session was last written.
    state: Arc<Vec<Mutex<(crate::helpers::Tokens, Instant)>>>,
    answers: Arc<Mutex<Vec<Answer>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    /// Sixteen new users, and the load on them.
    async fn start(app: &Arc<TestApp>) -> Self {
        let mut users = Vec::new();
        for i in 0..16 {
            let email = format!("load{i}@example.com");
            users.push((app.signed_up(&email).await, email));
        }
        Self::on(app, users, 5)
    }

    /// The load on these sixteen signed-up users: (tokens, email).
    fn on(app: &Arc<TestApp>, users: Vec<(crate::helpers::Tokens, String)>, refresh_every: usize) -> Self {
        assert_eq!(users.len(), 16);
        let emails: Vec<String> = users.iter().map(|(_, email)| email.clone()).collect();
        let state: Arc<Vec<_>> = Arc::new(
            users
                .into_iter()
                .map(|(tokens, _)| Mutex::new((tokens, Instant::now())))
                .collect(),
        );
        let answers: Arc<Mutex<Vec<Answer>>> = Arc::default();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut workers = Vec::new();
        for w in 0..8usize {
            let (app, state, answers, stop) = (app.clone(), state.clone(), answers.clone(), stop.clone());
            let emails = emails.clone();
            workers.push(tokio::spawn(async move {
                let mut n = 0usize;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    n += 1;
                    // Each user is one worker's, as a session is one browser's.
                    let user = w * 2 + n % 2;
                    let (tokens, _) = state[user].lock().unwrap().clone();
                    let started = Instant::now();
                    let status = if n.is_multiple_of(40) {
                        app.login(&emails[user], PASSWORD).await.status().as_u16()
                    } else if n.is_multiple_of(refresh_every) {
                        let response = app.refresh(&tokens.refresh).await;
                        let status = response.status().as_u16();
                        if status == 200 {
                            let fresh = expect_tokens(response).await;
                            *state[user].lock().unwrap() = (fresh, Instant::now());
                        }
                        status
                    } else {
                        app.me(&tokens.access).await.status().as_u16()
                    };
                    answers.lock().unwrap().push(Answer {
                        at: started,
                        took: started.elapsed(),
                        status,
                    });
                }
            }));
        }
        Self {
            emails,
            state,
            answers,
            stop,
            workers,
        }
    }

    /// Stops the clients: every answer, and a summary of their statuses.
    async fn stop(&mut self) -> (Vec<Answer>, String) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for worker in self.workers.drain(..) {
            worker.await.unwrap();
        }
        let answers = std::mem::take(&mut *self.answers.lock().unwrap());
        let mut statuses = std::collections::BTreeMap::new();
        for a in answers.iter() {
            *statuses.entry(a.status).or_insert(0) += 1;
        }
        let summary = format!("{} requests by status {statuses:?}", answers.len());
        (answers, summary)
    }

    /// After the load: every user logs in; the users whose latest session no longer
    /// refreshes, with when it was written.
    async fn sessions_lost(&self, app: &TestApp) -> Vec<(usize, Instant)> {
        let mut lost = Vec::new();
        for (user, email) in self.emails.iter().enumerate() {
            expect_tokens(app.login(email, PASSWORD).await).await;
            let (tokens, written) = self.state[user].lock().unwrap().clone();
            if app.refresh(&tokens.refresh).await.status() != 200 {
                lost.push((user, written));
            }
        }
        lost
    }
}

/// Under [`Load`], after 3 s `kill` takes the primary away. Only 200, 401 and 503 come back;
/// no 503 takes longer than `STORE_TIMEOUT_MS` and a margin; every 503 comes within 4 s of the
/// kill; afterwards every user logs in, and every session refreshes but those written in the
/// last second before the kill (asynchronous replication may have lost them).
async fn through_a_failover(app: Arc<TestApp>, kill: impl FnOnce() -> String + Send + 'static) {
    let mut load = Load::start(&app).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let primary = tokio::task::spawn_blocking(kill).await.unwrap();
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let (answers, summary) = load.stop().await;
    let summary = format!("{summary}; {primary} killed");

    let count = |status: u16| answers.iter().filter(|a| a.status == status).count();
    let unavailable: Vec<&Answer> = answers.iter().filter(|a| a.status == 503).collect();
    assert!(
        answers.iter().all(|a| [200, 401, 503].contains(&a.status)),
        "only 200/401/503: {summary}"
    );
    assert!(count(200) > 100, "{summary}");
    let slowest = unavailable.iter().map(|a| a.took).max().unwrap_or_default();
    assert!(
        slowest <= STORE_TIMEOUT + Duration::from_millis(1000),
        "a 503 took {slowest:?}: {summary}"
    );
    let last = unavailable.iter().map(|a| a.at + a.took).max();
    if let Some(last) = last {
        assert!(
            last.saturating_duration_since(killed) <= Duration::from_secs(4),
            "503s until {:?} after the kill: {summary}",
            last.saturating_duration_since(killed)
        );
    }
    let served_after = answers
        .iter()
        .filter(|a| a.at > killed + Duration::from_secs(4) && a.status == 200)
        .count();
    assert!(served_after > 50, "full service after the failover: {summary}");

    let lost = load.sessions_lost(&app).await;
    for (user, written) in &lost {
        let before_kill = killed.saturating_duration_since(*written);
        assert!(
            *written <= killed && before_kill <= Duration::from_secs(1),
            "user {user}'s session, written {before_kill:?} before the kill, was lost: {summary}"
        );
    }
    let until = last.map(|l| l.saturating_duration_since(killed)).unwrap_or_default();
    eprintln!(
        "{summary}; slowest 503 {slowest:?}; 503s until {until:?} after the kill; sessions lost {}",
        lost.len()
    );
}

crate::case!(multi a_resharding_of_2000_slots_under_load_fails_nothing needs External, RedisServers);
/// `redis-cli --cluster reshard` moves 2,000 slots, with their sessions, from one primary to
/// another while sixteen users whose keys live in those slots are under [`Load`] (refreshing
/// every other call): a slot being moved answers `ASK`, or `TRYAGAIN` to a script whose keys
/// are split between the two nodes or not yet created, which the cluster client follows or
/// retries within the call's timeout. Every request succeeds, every session still refreshes
/// afterwards, and the users' slots did move.
async fn a_resharding_of_2000_slots_under_load_fails_nothing() {
    let cluster = Arc::new(tokio::task::spawn_blocking(RedisCluster::start).await.unwrap());
    let app = Arc::new(spawn_on(&cluster, &LOAD_VARS).await);
    let primaries = cluster.primaries();
    let (from, to) = (&primaries[0], &primaries[1]);
    // `redis-cli` takes a source's slots in ascending order.
    let moving: Vec<u16> = from.slots.iter().copied().take(2000).collect();
    let mut users = Vec::new();
    for i in 0..1000 {
        let email = format!("moving{i}@example.com");
        let tokens = app.signed_up(&email).await;
        let id = content(app.me(&tokens.access).await).await["id"]
            .as_str()
            .unwrap()
            .to_string();
        if moving.contains(&cluster.slot_of(&format!("{{u:{id}}}"))) {
            users.push((tokens, email));
        }
        if users.len() == 16 {
            break;
        }
    }
    let mut load = Load::on(&app, users, 2);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let resharder = cluster.clone();
    let (from_id, to_id) = (from.id.clone(), to.id.clone());
    let started = Instant::now();
    tokio::task::spawn_blocking(move || resharder.reshard(&from_id, &to_id, 2000))
        .await
        .unwrap();
    let finished = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (answers, summary) = load.stop().await;
    let during = answers.iter().filter(|a| (started..finished).contains(&a.at)).count();
    let redirected = cluster.replies_with(&["ASK", "TRYAGAIN", "MOVED"]);
    let summary = format!(
        "{summary}, {during} while 2,000 slots moved from {} to {} in {:?}; redirected or told to \
         retry {redirected:?}",
        from.port,
        to.port,
        finished - started
    );
    let now_to = cluster.primaries().into_iter().find(|p| p.id == to.id).unwrap().slots;
    assert_eq!(now_to.len(), to.slots.len() + 2000, "{summary}");
    assert!(
        moving.iter().all(|slot| now_to.contains(slot)),
        "the users' slots moved: {summary}"
    );
    assert!(
        answers.iter().all(|a| a.status == 200),
        "every request succeeds: {summary}"
    );
    assert!(during > 100, "load ran through the resharding: {summary}");
    assert!(redirected.values().sum::<u64>() > 0, "the load met the move: {summary}");
    let lost = load.sessions_lost(&app).await;
    assert!(lost.is_empty(), "sessions lost: {lost:?}; {summary}");
    let slowest = answers.iter().map(|a| a.took).max().unwrap_or_default();
    eprintln!("{summary}; slowest request {slowest:?}");
}

/// A CA and a certificate for 127.0.0.1 and localhost signed by it, made with openssl in `dir`:
/// (CA file, certificate, key).
fn tls_files(dir: &std::path::Path) -> (PathBuf, PathBuf, PathBuf) {
    let run = |args: &[&str]| {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl");
        assert!(status.success(), "openssl {args:?}");
    };
    run(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.crt",
        "-days",
        "1",
        "-subj",
        "/CN=auth-api test CA",
    ]);
    run(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "redis.key",
        "-out",
        "redis.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=DNS:localhost,IP:127.0.0.1\n").unwrap();
    run(&[
        "x509",
        "-req",
        "-in",
        "redis.csr",
        "-CA",
        "ca.crt",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "redis.crt",
        "-days",
        "1",
        "-extfile",
        "san.ext",
    ]);
    (dir.join("ca.crt"), dir.join("redis.crt"), dir.join("redis.key"))
}

crate::case!(multi sessions_reach_redis_over_tls_and_check_its_certificate needs External, RedisServers);
/// `rediss://` on all three: the release binary talks TLS to one redis-server, to a cluster
/// and to Sentinels and their primary, all speaking only TLS, trusting the CA in
/// `SSL_CERT_FILE`; without that CA the certificate is refused and readiness says so.
async fn sessions_reach_redis_over_tls_and_check_its_certificate() {
    let dir = std::env::temp_dir().join(format!("auth-api-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let tls = Tls::make(&dir);
    let (port, mut redis) = spawn_listening(Some(&tls), |port| {
        let mut command = Command::new("redis-server");
        command
            .args(Tls::listen(Some(&tls), port))
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        command
    });
    let ca = tls.ca.to_string_lossy().into_owned();
    served_over_tls(vec![("REDIS_URL", format!("rediss://127.0.0.1:{port}"))], &ca).await;
    let _ = redis.kill();
    let _ = redis.wait();

    let in_cluster = tls.clone();
    let cluster = tokio::task::spawn_blocking(move || RedisCluster::start_with(Some(in_cluster)))
        .await
        .unwrap();
    served_over_tls(vec![("REDIS_CLUSTER_NODES", cluster.seeds())], &ca).await;
    drop(cluster);

    let behind = tls.clone();
    let set = tokio::task::spawn_blocking(move || SentinelSet::start_with(Some(behind)))
        .await
        .unwrap();
    let sentinels = vec![
        ("REDIS_SENTINELS", set.urls()),
        ("REDIS_SENTINEL_MASTER", "auth".to_string()),
    ];
    served_over_tls(sentinels, &ca).await;
    drop(set);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The release binary on the Redis `redis` names: trusting `ca`, sessions work; without it,
/// readiness answers 503.
async fn served_over_tls(redis: Vec<(&'static str, String)>, ca: &str) {
    let keys = ("KEYS_ENCRYPTION_KEY", crate::mfa::SEALING_KEY.to_string());
    let start = |vars: Vec<(&'static str, String)>| {
        tokio::task::spawn_blocking(move || {
            let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
            crate::binary::start_server(&vars)
        })
    };
    let mut trusting = redis.clone();
    trusting.extend([keys.clone(), ("SSL_CERT_FILE", ca.to_string())]);
    let server = start(trusting).await.unwrap();
    let client = reqwest::Client::new();
    let base = server.address();
    let ready = client.get(format!("{base}/health/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "{redis:?}");
    let body = json!({"username": "Tls", "email": "tls@example.com", "password": PASSWORD});
    let registered = client
        .post(format!("{base}/auth/register"))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 200, "{redis:?}");
    let cookie = crate::helpers::refresh_cookie(&registered).expect("a jwt cookie");
    let refreshed = client
        .post(format!("{base}/auth/refreshAccessToken"))
        .header("cookie", format!("jwt={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(refreshed.status(), 200, "the session lives in the TLS Redis: {redis:?}");
    drop(server);
    // Without the CA: the certificate is not trusted, and readiness says so.
    let mut untrusting = redis.clone();
    untrusting.push(keys);
    let untrusting = start(untrusting).await.unwrap();
    let ready = client
        .get(format!("{}/health/ready", untrusting.address()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 503, "an unknown CA is refused: {redis:?}");
    drop(untrusting);
}
