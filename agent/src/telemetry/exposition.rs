//! Every metric of [`Metrics`] in the Prometheus text format (version 0.0.4), through
//! `prometheus-client`'s encoder: counters as `vigil_<name>` of type counter, gauges as
//! gauges, each with its doc comment as its help. The metrics stay the agent's own
//! atomics; a [`Collector`] reads a snapshot of them at each scrape, so the stages never
//! see the exposition.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::{Kind, Metrics};

/// The `Content-Type` of what [`Exposition::encode`] writes.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Every metric's name starts with this and an underscore.
pub const PREFIX: &str = "vigil";

/// The agent's metrics, ready to encode at each scrape.
pub struct Exposition {
    registry: Registry,
}

impl Exposition {
    pub fn new(metrics: Arc<Metrics>) -> Exposition {
        let mut registry = Registry::with_prefix(PREFIX);
        registry.register_collector(Box::new(Snapshot(metrics)));
        Exposition { registry }
    }

    /// The text a scrape gets: about 60 metrics, 10 KB.
    pub fn encode(&self) -> String {
        let mut text = String::with_capacity(16 * 1024);
        prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// Reads the metrics at each scrape.
#[derive(Debug)]
struct Snapshot(Arc<Metrics>);

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        for (metric, value) in self.0.snapshot().values() {
            let help = metric.help();
            match metric.kind() {
                Kind::Counter => {
                    // The encoder adds the `_total` every counter name of ours ends with.
                    let name = metric.name.strip_suffix("_total").unwrap_or(metric.name);
                    let counter = ConstCounter::new(value);
                    counter.encode(encoder.encode_descriptor(
                        name,
                        &help,
                        None,
                        counter.metric_type(),
                    )?)?;
                }
                Kind::Gauge => {
                    let gauge = ConstGauge::new(value);
                    gauge.encode(encoder.encode_descriptor(
                        metric.name,
                        &help,
                        None,
                        gauge.metric_type(),
                    )?)?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::DESCRIPTIONS;

    #[test]
    fn every_metric_has_its_help_type_and_value() {
        let metrics = Arc::new(Metrics::default());
        Metrics::add(&metrics.readings_total, 41);
        metrics
            .spool_oldest_age_ms
            .store(1500, std::sync::atomic::Ordering::Relaxed);
        let text = Exposition::new(metrics).encode();
        let expected = "# HELP vigil_readings_total Readings produced by the decoders, good or flagged.\n\
                        # TYPE vigil_readings_total counter\n\
                        vigil_readings_total 41\n";
        assert!(text.contains(expected), "{text}");
        let expected = "# HELP vigil_spool_oldest_age_ms age of the oldest pending spooled record, milliseconds (0 when empty).\n\
                        # TYPE vigil_spool_oldest_age_ms gauge\n\
                        vigil_spool_oldest_age_ms 1500\n";
        assert!(text.contains(expected), "{text}");
        let samples = text.lines().filter(|l| !l.starts_with('#')).count();
        assert_eq!(samples, DESCRIPTIONS.len(), "{text}");
        assert!(!text.contains("_total_total"), "{text}");
    }
}
