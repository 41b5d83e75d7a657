//! Connections to Redis: a pool for one server, or one multiplexed connection to a Redis
//! Cluster, behind one `run`.
//!
//! The pool's manager notices dead connections without a PING per checkout. bb8-redis's
//! manager answers `has_broken() == false` always, so with `test_on_check_out` off (it doubles
//! the cost of every call) a connection killed by a Redis restart would stay in the pool and
//! fail forever. This one marks a connection broken when a call on it fails at the transport
//! level, and bb8 then drops it and dials a fresh one.
//!
//! A cluster connection is multiplexed per node, follows `MOVED`/`ASK` and refreshes the slot
//! map itself: one is enough, cloned per call. It is dialled at the first call (the service
//! starts while the cluster is down) and dialled again after a failure that says it is bad.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bb8::Pool;
use bb8_redis::redis::aio::{ConnectionLike, MultiplexedConnection};
use bb8_redis::redis::cluster::ClusterClient;
use bb8_redis::redis::cluster_async::ClusterConnection;
use bb8_redis::redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use bb8_redis::redis::sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType};
use bb8_redis::redis::{
    self, AsyncConnectionConfig, Client, Cmd, IntoConnectionInfo, Pipeline, RedisError, RedisFuture, Value,
};

use super::Dependency;
use super::StoreError;

pub struct RedisManager {
    dialer: Dialer,
    config: AsyncConnectionConfig,
}

/// How a pooled connection is dialled: straight to one server, or to the primary the
/// Sentinels name at that moment (so a connection replaced after a failover reaches the new
/// one).
enum Dialer {
    Direct(Box<Client>),
    Sentinel(Arc<tokio::sync::Mutex<SentinelClient>>),
}

/// A pooled connection and whether a transport failure has been seen on it.
pub struct RedisConnection {
    pub inner: MultiplexedConnection,
    pub broken: bool,
}

impl RedisManager {
    fn new(dialer: Dialer, timeout: Duration) -> Self {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout));
        Self { dialer, config }
    }
}

impl bb8::ManageConnection for RedisManager {
    type Connection = RedisConnection;
    type Error = RedisError;

    async fn connect(&self) -> Result<Self::Connection, Self::Error> {
        let inner = match &self.dialer {
            Dialer::Direct(client) => {
                client
                    .get_multiplexed_async_connection_with_config(&self.config)
                    .await?
            }
            Dialer::Sentinel(sentinel) => {
                sentinel
                    .lock()
                    .await
                    .get_async_connection_with_config(&self.config)
                    .await?
            }
        };
        Ok(RedisConnection { inner, broken: false })
    }

    async fn is_valid(&self, conn: &mut Self::Connection) -> Result<(), Self::Error> {
        bb8_redis::redis::cmd("PING")
            .query_async::<String>(&mut conn.inner)
            .await
            .map(drop)
    }

    fn has_broken(&self, conn: &mut Self::Connection) -> bool {
        conn.broken
    }
}

/// Whether `e` means the connection itself is unusable.
pub fn is_transport_error(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_timeout() || e.is_unrecoverable_error()
}

/// What a Redis error means for the request (503 or 500) and for its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The store cannot serve now: 503, and the connection is replaced when `replace`.
    Unavailable { replace: bool },
    /// Our bug or bad data: 500.
    Failed,
}

/// Sorts a Redis error. Replaced: a transport failure, and a server that is no longer (or not
/// yet) the primary (`READONLY`, a demoted primary; `MASTERDOWN`, a replica without its
/// primary), because redialling reaches the new one. Kept: a server that cannot serve for the
/// moment (`LOADING` after a restart, `TRYAGAIN`, `CLUSTERDOWN`, `MOVED`, `ASK` and no
/// connection to a slot's node during a failover or a resharding, `NOREPLICAS` under
/// `min-replicas-to-write`).
pub fn verdict(e: &RedisError) -> Verdict {
    if is_transport_error(e) {
        return Verdict::Unavailable { replace: true };
    }
    if e.kind() == redis::ErrorKind::ClusterConnectionNotFound {
        return Verdict::Unavailable { replace: false };
    }
    match e.code() {
        Some("READONLY" | "MASTERDOWN") => Verdict::Unavailable { replace: true },
        // A redirect still standing after the cluster client's own retries: the slot map is
        // changing (a failover, a resharding), which the client follows.
        Some("LOADING" | "TRYAGAIN" | "CLUSTERDOWN" | "NOREPLICAS" | "MOVED" | "ASK") => {
            Verdict::Unavailable { replace: false }
        }
        _ => Verdict::Failed,
    }
}

/// Whether `e` says a command touched keys of several slots, or of another node: keys that
/// should share a hash tag do not, a bug to fix rather than an outage.
pub fn is_slot_bug(e: &RedisError) -> bool {
    e.code() == Some("CROSSSLOT") || e.to_string().contains("non local key")
}

/// A connection a call runs on: one server's, or the cluster's.
#[derive(Clone)]
pub enum Connection {
    Single(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Connection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Single(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Single(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Single(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

/// Where calls go.
#[derive(Clone)]
enum Servers {
    /// A pool to one server, and where that server is (for the node probe).
    Single(Pool<RedisManager>, Primary),
    Cluster(Arc<Cluster>),
}

struct Cluster {
    client: ClusterClient,
    /// How to reach a seed node (credentials, TLS): the probe dials nodes the client keeps no
    /// link to (replicas) the same way.
    seed: redis::ConnectionInfo,
    /// The connection, once dialled; `None` again after a failure that says it is bad.
    connection: Mutex<Option<ClusterConnection>>,
}

impl Cluster {
    async fn connection(&self) -> Result<ClusterConnection, RedisError> {
        if let Some(c) = self.connection.lock().unwrap_or_else(|p| p.into_inner()).clone() {
            return Ok(c);
        }
        let dialled = self.client.get_async_connection().await?;
        *self.connection.lock().unwrap_or_else(|p| p.into_inner()) = Some(dialled.clone());
        Ok(dialled)
    }

    /// `PING` on a connection of its own to a node the client has no link to.
    async fn ping_directly(&self, host: String, port: u16) -> Result<(), RedisError> {
        let address = match self.seed.addr().clone() {
            redis::ConnectionAddr::TcpTls {
                insecure, tls_params, ..
            } => redis::ConnectionAddr::TcpTls {
                host,
                port,
                insecure,
                tls_params,
            },
            _ => redis::ConnectionAddr::Tcp(host, port),
        };
        let client = Client::open(self.seed.clone().set_addr(address))?;
        let mut connection = client.get_multiplexed_async_connection().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map(drop)
    }

    fn forget(&self) {
        *self.connection.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// A lazily connecting pool (or cluster connection) and the timeout of every call made
/// through it.
#[derive(Clone)]
pub struct RedisClient {
    servers: Servers,
    timeout: Duration,
}

/// The address of a pool's server: fixed, or the one the Sentinels name now.
#[derive(Clone)]
enum Primary {
    Fixed(String),
    Sentinel(Arc<tokio::sync::Mutex<SentinelClient>>),
}

/// One Redis node as [`RedisClient::probe_nodes`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeHealth {
    /// `host:port`, never credentials.
    pub node: String,
    /// `primary` or `replica`.
    pub role: &'static str,
    /// It answered `PING` within the timeout, and (on a cluster) the cluster does not flag it
    /// as failing.
    pub up: bool,
}

fn unavailable(e: impl Into<anyhow::Error>) -> StoreError {
    StoreError::Unavailable(Dependency::SessionStore, e.into())
}

impl RedisClient {
    /// The service starts even while Redis is down, and answers 503 until it is back.
    pub fn new(url: &str, pool_max: u32, timeout: Duration) -> anyhow::Result<Self> {
        let client = Client::open(url)?;
        let primary = Primary::Fixed(client.get_connection_info().addr().to_string());
        Ok(Self::pooled(
            Dialer::Direct(Box::new(client)),
            primary,
            pool_max,
            timeout,
        ))
    }

    /// The primary named `master` by the Sentinels at `sentinels`, asked again at each dial:
    /// a connection replaced after a failover (`READONLY` from the demoted primary, or a
    /// transport failure) reaches the new primary. `password` is the primary's; with `rediss://`
    /// Sentinels the primary is reached over TLS too, its certificate checked.
    pub fn sentinel(
        sentinels: &[String],
        master: &str,
        password: Option<&str>,
        pool_max: u32,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let mut node = redis::RedisConnectionInfo::default();
        if let Some(password) = password {
            node = node.set_password(password);
        }
        let sentinels = sentinels
            .iter()
            .map(|s| s.as_str().into_connection_info())
            .collect::<Result<Vec<_>, _>>()?;
        let mut node = SentinelNodeConnectionInfo::default().set_redis_connection_info(node);
        // Sentinels spoken to over TLS name a primary that speaks TLS (`tls-replication`).
        if sentinels
            .iter()
            .any(|s| matches!(s.addr(), redis::ConnectionAddr::TcpTls { .. }))
        {
            node = node.set_tls_mode(redis::TlsMode::Secure);
        }
        let client = SentinelClient::build(sentinels, master, Some(node), SentinelServerType::Master)?;
        let client = Arc::new(tokio::sync::Mutex::new(client));
        let primary = Primary::Sentinel(client.clone());
        Ok(Self::pooled(Dialer::Sentinel(client), primary, pool_max, timeout))
    }

    fn pooled(dialer: Dialer, primary: Primary, pool_max: u32, timeout: Duration) -> Self {
        let manager = RedisManager::new(dialer, timeout);
        let pool = Pool::builder()
            .max_size(pool_max)
            .min_idle(Some(0))
            .connection_timeout(timeout)
            .test_on_check_out(false)
            // A failed dial fails the waiting request at once (503); the next request dials
            // again. Retried inside the pool with a growing backoff, dials would keep requests
            // failing for seconds after Redis is back.
            .retry_connection(false)
            .max_lifetime(Some(Duration::from_secs(30 * 60)))
            .build_unchecked(manager);
        Self {
            servers: Servers::Single(pool, primary),
            timeout,
        }
    }

    /// A Redis Cluster found through `nodes` (any of its nodes; the rest are discovered).
    pub fn cluster(nodes: &[String], timeout: Duration) -> anyhow::Result<Self> {
        let seed = nodes
            .first()
            .ok_or_else(|| anyhow::anyhow!("no cluster node given"))?
            .as_str()
            .into_connection_info()?;
        let client = ClusterClient::builder(nodes.iter().map(String::as_str))
            .connection_timeout(timeout)
            .response_timeout(timeout)
            // The client's own retries (`TRYAGAIN` while a slot moves, `CLUSTERDOWN` during a
            // failover) must fit inside each call's timeout: its default first wait (1.28 s)
            // would turn every retry into a 503. Waits grow from 10 ms to at most 200 ms.
            .min_retry_wait(10)
            .max_retry_wait(200)
            .retry_wait_formula(10, 2)
            .build()?;
        Ok(Self {
            servers: Servers::Cluster(Arc::new(Cluster {
                client,
                seed,
                connection: Mutex::new(None),
            })),
            timeout,
        })
    }

    /// Runs one command or script on a pooled connection, within the timeout. A transport
    /// failure marks the connection broken so the pool replaces it.
    pub async fn run<T, Fut>(&self, call: impl FnOnce(Connection) -> Fut) -> Result<T, StoreError>
    where
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        match &self.servers {
            Servers::Single(pool, _) => {
                let mut pooled = pool.get().await.map_err(unavailable)?;
                let (result, replace) = self.call(call(Connection::Single(pooled.inner.clone()))).await;
                pooled.broken |= replace;
                result
            }
            Servers::Cluster(cluster) => {
                let connection = tokio::time::timeout(self.timeout, cluster.connection())
                    .await
                    .map_err(unavailable)?
                    .map_err(unavailable)?;
                let (result, replace) = self.call(call(Connection::Cluster(connection))).await;
                if replace {
                    cluster.forget();
                }
                result
            }
        }
    }

    /// Readiness: one server answers `PING`. On a cluster, one node chosen at random does: an
    /// instance is ready when it reaches the cluster. A shard in failover fails only the calls
    /// whose keys live there, for a few seconds; taking every instance out of its load balancer
    /// for it (a `PING` of every primary would) would turn a partial outage into a total one.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.run(|c| async move {
            match c {
                Connection::Single(mut c) => redis::cmd("PING").query_async::<String>(&mut c).await.map(drop),
                Connection::Cluster(mut c) => {
                    let random = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
                    c.route_command(redis::cmd("PING"), random).await.map(drop)
                }
            }
        })
        .await
    }

    /// Each node the service uses, and whether it answers: the one server (for Sentinels, the
    /// primary they name now), or every node of the cluster as `CLUSTER NODES` lists it, each
    /// pinged on the cluster connection's own link to it (a connection of its own for a
    /// replica, to which the client keeps none), all at once. Empty when the node list cannot
    /// be had (the readiness check reports that).
    pub async fn probe_nodes(&self) -> Vec<NodeHealth> {
        let node = match &self.servers {
            Servers::Single(_, Primary::Fixed(address)) => address.clone(),
            Servers::Single(_, Primary::Sentinel(sentinels)) => {
                let named =
                    tokio::time::timeout(self.timeout, async { sentinels.lock().await.async_get_client().await }).await;
                match named {
                    Ok(Ok(client)) => client.get_connection_info().addr().to_string(),
                    _ => return Vec::new(),
                }
            }
            Servers::Cluster(cluster) => return self.probe_cluster(cluster).await,
        };
        let up = self.ping().await.is_ok();
        vec![NodeHealth {
            node,
            role: "primary",
            up,
        }]
    }

    async fn probe_cluster(&self, cluster: &Cluster) -> Vec<NodeHealth> {
        let listed = tokio::time::timeout(self.timeout, async {
            let mut connection = cluster.connection().await?;
            let random = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
            let mut nodes = redis::cmd("CLUSTER");
            nodes.arg("NODES");
            let reply = connection.route_command(nodes, random).await?;
            Ok::<_, RedisError>((connection, redis::from_redis_value::<String>(reply)?))
        })
        .await;
        let Ok(Ok((connection, listed))) = listed else {
            return Vec::new();
        };
        let pings = cluster_nodes(&listed).into_iter().map(|(host, port, role, flagged)| {
            let mut c = connection.clone();
            async move {
                let node = format!("{host}:{port}");
                let answered = tokio::time::timeout(self.timeout, async {
                    let by_address = SingleNodeRoutingInfo::ByAddress {
                        host: host.clone(),
                        port,
                    };
                    match c
                        .route_command(redis::cmd("PING"), RoutingInfo::SingleNode(by_address))
                        .await
                    {
                        Err(e) if e.kind() == redis::ErrorKind::ClusterConnectionNotFound => {
                            cluster.ping_directly(host, port).await
                        }
                        reply => reply.map(drop),
                    }
                })
                .await
                .is_ok_and(|reply| reply.is_ok());
                NodeHealth {
                    node,
                    role,
                    up: answered && !flagged,
                }
            }
        });
        futures_util::future::join_all(pings).await
    }

    /// Runs `call` within the timeout: its result, and whether its connection is bad.
    async fn call<T>(&self, call: impl Future<Output = redis::RedisResult<T>>) -> (Result<T, StoreError>, bool) {
        match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(value)) => (Ok(value), false),
            Ok(Err(e)) => match verdict(&e) {
                Verdict::Unavailable { replace } => (Err(unavailable(e)), replace),
                Verdict::Failed => {
                    if is_slot_bug(&e) {
                        tracing::error!(error = %e, "a Redis call spans hash slots: keys of one operation must share a hash tag");
                    }
                    (Err(StoreError::Failed(Dependency::SessionStore, e.into())), false)
                }
            },
            Err(elapsed) => (Err(unavailable(elapsed)), true),
        }
    }

    /// Connections of the pool: (idle, in use); a cluster's one multiplexed connection counts
    /// as in use once dialled.
    pub fn pool_connections(&self) -> (u32, u32) {
        match &self.servers {
            Servers::Single(pool, _) => {
                let state = pool.state();
                (
                    state.idle_connections,
                    state.connections.saturating_sub(state.idle_connections),
                )
            }
            Servers::Cluster(cluster) => {
                let dialled = cluster.connection.lock().unwrap_or_else(|p| p.into_inner()).is_some();
                (0, u32::from(dialled))
            }
        }
    }
}

/// The nodes of a `CLUSTER NODES` reply: host, port, role, and whether the cluster flags the
/// node as failing (`fail` or `fail?`). Nodes being added (`handshake`) or without an address
/// are left out.
fn cluster_nodes(listed: &str) -> Vec<(String, u16, &'static str, bool)> {
    listed
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(' ');
            let (_id, address, flags) = (fields.next()?, fields.next()?, fields.next()?);
            let flags: Vec<&str> = flags.split(',').collect();
            if flags.iter().any(|f| matches!(*f, "handshake" | "noaddr")) {
                return None;
            }
            // `ip:port@cport` or `ip:port@cport,hostname`.
            let (host, port) = address.split(['@', ',']).next()?.rsplit_once(':')?;
            let role = if flags.contains(&"master") {
                "primary"
            } else {
                "replica"
            };
            let flagged = flags.iter().any(|f| matches!(*f, "fail" | "fail?"));
            Some((host.to_string(), port.parse().ok()?, role, flagged))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error a server's reply line makes.
    fn reply(line: &str) -> RedisError {
        let value = redis::parse_redis_value(format!("-{line}\r\n").as_bytes()).unwrap();
        value.extract_error().unwrap_err()
    }

    #[test]
    fn a_failover_or_a_busy_server_is_a_503_and_a_demoted_primary_is_redialled() {
        let replaced = Verdict::Unavailable { replace: true };
        let kept = Verdict::Unavailable { replace: false };
        for (line, expected) in [
            ("READONLY You can't write against a read only replica.", replaced),
            (
                "MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'.",
                replaced,
            ),
            ("LOADING Redis is loading the dataset in memory", kept),
            ("TRYAGAIN Multiple keys request during rehashing of slot", kept),
            ("CLUSTERDOWN The cluster is down", kept),
            ("NOREPLICAS Not enough good replicas to write.", kept),
            ("MOVED 3999 127.0.0.1:6381", kept),
            ("ASK 3999 127.0.0.1:6381", kept),
            ("CROSSSLOT Keys in request don't hash to the same slot", Verdict::Failed),
            ("ERR Error running script: wrong number of arguments", Verdict::Failed),
            (
                "WRONGTYPE Operation against a key holding the wrong kind of value",
                Verdict::Failed,
            ),
        ] {
            assert_eq!(verdict(&reply(line)), expected, "{line}");
        }
        assert!(is_slot_bug(&reply(
            "CROSSSLOT Keys in request don't hash to the same slot"
        )));
        assert!(is_slot_bug(&reply(
            "ERR Script attempted to access a non local key in a cluster node script: x"
        )));
        assert!(!is_slot_bug(&reply(
            "READONLY You can't write against a read only replica."
        )));
    }

    #[test]
    fn cluster_nodes_are_read_with_their_role_and_the_clusters_verdict() {
        let listed = "\
07c37dfe 127.0.0.1:30004@31004 slave e7d1eecc 0 1426238317239 4 connected
67ed2db8 127.0.0.1:30002@31002,redis-2.internal master - 0 1426238316232 2 connected 5461-10922
292f8b36 127.0.0.1:30003@31003 master,fail? - 0 1426238318243 3 connected 10923-16383
6ec23923 ::1:30005@31005 slave,fail 67ed2db8 0 1426238316232 5 disconnected
824fe116 127.0.0.1:30006@31006 handshake - 0 1426238316232 0 connected
e7d1eecc 127.0.0.1:30001@31001 myself,master - 0 0 1 connected 0-5460
";
        assert_eq!(
            cluster_nodes(listed),
            vec![
                ("127.0.0.1".into(), 30004, "replica", false),
                ("127.0.0.1".into(), 30002, "primary", false),
                ("127.0.0.1".into(), 30003, "primary", true),
                ("::1".into(), 30005, "replica", true),
                ("127.0.0.1".into(), 30001, "primary", false),
            ]
        );
    }
}
