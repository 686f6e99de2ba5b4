//! Prometheus metrics: HTTP requests by route template, method and status
//! (counter and latency histogram, from `actix-web-prom`), and the database
//! pool's size, idle and waiting counts, read at scrape time.

use actix_web_prom::{PrometheusMetrics, PrometheusMetricsBuilder};
use prometheus::{
    IntGauge, Opts, Registry,
    core::{Collector, Desc},
    proto::MetricFamily,
};
use tenantry_store::Pool;

/// Metric name prefix.
pub const NAMESPACE: &str = "tenantry";

/// Builds the registry and the HTTP metrics middleware on it.
///
/// # Errors
/// When a metric cannot be registered (a bug: duplicate names).
pub fn build(pool: &Pool) -> anyhow::Result<(Registry, PrometheusMetrics)> {
    let registry = Registry::new();
    registry.register(Box::new(PoolCollector::new(pool.clone())?))?;
    let http = PrometheusMetricsBuilder::new(NAMESPACE)
        .registry(registry.clone())
        .mask_unmatched_patterns("UNMATCHED")
        .build()
        .map_err(|e| anyhow::anyhow!("building HTTP metrics: {e}"))?;
    Ok((registry, http))
}

/// Reports the pool's status as gauges each time it is scraped.
struct PoolCollector {
    pool: Pool,
    max: IntGauge,
    size: IntGauge,
    idle: IntGauge,
    waiting: IntGauge,
}

impl PoolCollector {
    fn new(pool: Pool) -> prometheus::Result<Self> {
        let gauge = |name: &str, help: &str| {
            IntGauge::with_opts(Opts::new(name, help).namespace(NAMESPACE))
        };
        Ok(Self {
            pool,
            max: gauge("db_pool_max_size", "Most connections the pool may hold")?,
            size: gauge("db_pool_size", "Connections open now")?,
            idle: gauge("db_pool_idle", "Open connections not in use")?,
            waiting: gauge("db_pool_waiting", "Callers waiting for a connection")?,
        })
    }
}

fn int(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

impl Collector for PoolCollector {
    fn desc(&self) -> Vec<&Desc> {
        [&self.max, &self.size, &self.idle, &self.waiting]
            .into_iter()
            .flat_map(|g| g.desc())
            .collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let s = self.pool.status();
        self.max.set(int(s.max_size));
        self.size.set(int(s.size));
        self.idle.set(int(s.idle));
        self.waiting.set(int(s.waiting));
        [&self.max, &self.size, &self.idle, &self.waiting]
            .into_iter()
            .flat_map(|g| g.collect())
            .collect()
    }
}
