//! The `[log]` section: how `vigil run` writes its log to standard error. Read before
//! logging starts, so the whole log of a run has one format.

use serde::{Deserialize, Serialize};

/// The `[log]` section.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `"text"`: one line an event for people; `"json"`: one JSON object a line
    /// (`timestamp`, `level`, `event` and the event's fields) for log shippers.
    pub format: LogFormat,
    /// The least severe level written. `VIGIL_LOG` (a `tracing` filter such as
    /// `info,vigil_agent::uplink=debug`) overrides it.
    pub level: LogLevel,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Info,
    Debug,
    Trace,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warn => "warn",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
            LogLevel::Trace => "trace",
        }
    }
}

impl LogConfig {
    /// The `tracing` filter this config asks for. rumqttd (the demo's broker) logs every
    /// connection, even at error level, and the uplink's own events say what matters; tract
    /// says which CPU kernels it chose, at info, each time a model loads: neither is the
    /// operator's business.
    pub fn filter(&self) -> String {
        format!("{},rumqttd=off,tract_linalg=warn", self.level.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_at_info_by_default_and_the_level_sets_the_filter() {
        assert_eq!(
            LogConfig::default(),
            LogConfig {
                format: LogFormat::Text,
                level: LogLevel::Info
            }
        );
        let debug = LogConfig {
            level: LogLevel::Debug,
            ..LogConfig::default()
        };
        assert_eq!(debug.filter(), "debug,rumqttd=off,tract_linalg=warn");
    }
}
