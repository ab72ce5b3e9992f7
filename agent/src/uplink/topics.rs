//! The MQTT topics of one thing (DESIGN.md, "Uplink"): AWS's `dt/` telemetry convention for
//! what the agent sends, the reserved `$aws/things/...` topics for the shadow and jobs.

/// The agent's topics, built once from the thing name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Topics {
    pub thing: String,
    pub readings: String,
    pub alerts: String,
    pub dm1: String,
    pub security: String,
    pub status: String,
    shadow: String,
    jobs: String,
}

/// The named shadow that carries the agent's runtime config.
pub const SHADOW_NAME: &str = "vigil";

impl Topics {
    pub fn new(thing: &str) -> Self {
        let dt = format!("dt/vigil/{thing}");
        Topics {
            thing: thing.to_owned(),
            readings: format!("{dt}/readings"),
            alerts: format!("{dt}/alerts"),
            dm1: format!("{dt}/dm1"),
            security: format!("{dt}/security"),
            status: format!("{dt}/status"),
            shadow: format!("$aws/things/{thing}/shadow/name/{SHADOW_NAME}"),
            jobs: format!("$aws/things/{thing}/jobs"),
        }
    }

    /// `.../shadow/name/vigil/get`, `.../update`, `.../update/delta`, ...
    pub fn shadow(&self, suffix: &str) -> String {
        format!("{}/{suffix}", self.shadow)
    }

    /// `.../jobs/notify-next`, `.../jobs/$next/get`, `.../jobs/{id}/update`, ...
    pub fn jobs(&self, suffix: &str) -> String {
        format!("{}/{suffix}", self.jobs)
    }

    /// What the agent subscribes to after every CONNACK (clean sessions keep nothing).
    pub fn subscriptions(&self) -> Vec<String> {
        vec![
            self.shadow("update/delta"),
            self.shadow("get/accepted"),
            self.shadow("get/rejected"),
            self.shadow("update/rejected"),
            self.jobs("notify-next"),
            self.jobs("$next/get/accepted"),
            self.jobs("+/update/rejected"),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_stay_within_aws_limits() {
        // AWS IoT Core: a topic is at most 256 bytes and 7 slashes (reserved topics aside).
        let t = Topics::new(&"x".repeat(128));
        for topic in [&t.readings, &t.alerts, &t.dm1, &t.security, &t.status] {
            assert!(topic.len() <= 256, "{topic}");
            assert!(topic.matches('/').count() <= 7, "{topic}");
        }
        assert_eq!(
            Topics::new("truck-7").shadow("update/delta"),
            "$aws/things/truck-7/shadow/name/vigil/update/delta"
        );
    }
}
