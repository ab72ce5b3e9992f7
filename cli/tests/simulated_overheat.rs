//! The whole pipeline: a simulated truck whose engine overheats sounds the cab buzzer while
//! nothing can leave the truck.
//!
//! "Nothing can leave": the uplink is configured but its broker's port refuses every
//! connection, the fleet taps are full and never read, and the link is reported offline.
//! The buzzer must still sound: the driver's alarm depends on nothing but the bus.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use embedded_hal::digital::{ErrorType, OutputPin};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use vigil::config::Config;
use vigil_agent::alarm::{Buzzer, BuzzerPin, Devices, DynOutputPin};
use vigil_agent::detect::alert::AlertEvent;
use vigil_agent::pipeline::{Pipeline, Plugs, Taps};
use vigil_agent::signals::COOLANT_TEMPERATURE;

/// A buzzer line that reports its first rise and keeps every level written.
struct Line {
    rose: Option<oneshot::Sender<()>>,
    levels: Arc<Mutex<Vec<bool>>>,
}

impl ErrorType for Line {
    type Error = std::convert::Infallible;
}

impl OutputPin for Line {
    fn set_low(&mut self) -> Result<(), Self::Error> {
        self.levels.lock().unwrap().push(false);
        Ok(())
    }

    fn set_high(&mut self) -> Result<(), Self::Error> {
        self.levels.lock().unwrap().push(true);
        if let Some(rose) = self.rose.take() {
            let _ = rose.send(());
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_overheating_truck_sounds_the_buzzer_with_the_uplink_cut() {
    let mut config = Config::embedded_default();
    let sim = config.source.simulator.as_mut().unwrap();
    sim.scenario = "coolant-loss".into();
    sim.speed = 0.0;
    // The uplink is configured but cut: its broker's port refuses every connection.
    let refused_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let spool = tempfile::tempdir().unwrap();
    config.spool.path = Some(spool.path().to_owned());
    config.uplink = Some(vigil_agent::uplink::UplinkConfig {
        endpoint: "127.0.0.1".into(),
        port: refused_port,
        insecure_plain_tcp: true,
        shadow_and_jobs: false,
        ..Default::default()
    });

    // The fleet path: full after one alert and one batch, never read.
    let (fleet_alerts, _unread_alerts) = mpsc::channel::<AlertEvent>(1);
    let (fleet_batches, _unread_batches) = mpsc::channel(1);
    let taps = Taps {
        readings: None,
        alerts: Some(fleet_alerts),
        batches: Some(fleet_batches),
        diagnostics: None,
        security: None,
    };
    let (rose_tx, rose) = oneshot::channel();
    let levels = Arc::new(Mutex::new(vec![]));
    let line = Line {
        rose: Some(rose_tx),
        levels: levels.clone(),
    };
    let devices = Devices {
        buzzer: Some(BuzzerPin::new(DynOutputPin::new(line))),
        ..Devices::default()
    };
    let shutdown = CancellationToken::new();
    let plugs = Plugs {
        alarm: Some(devices),
        ..Plugs::default()
    };
    let file = std::path::Path::new("(test)");
    let resolved = config.resolve(file).unwrap();
    let pipeline = Pipeline::start_with(
        resolved.stages,
        resolved.sources,
        shutdown.clone(),
        taps,
        plugs,
    )
    .unwrap();

    // The limit bounds a hang (the overheat comes within a few seconds flat out); it does
    // not synchronise anything.
    tokio::time::timeout(Duration::from_secs(120), rose)
        .await
        .expect("the buzzer rose within 2 minutes")
        .unwrap();
    {
        let panel = pipeline.panel.borrow();
        let shown = panel.shown().expect("an alert is shown");
        assert_eq!(shown.signal.as_str(), COOLANT_TEMPERATURE);
        assert_ne!(panel.buzzer(), Buzzer::Silent);
    }
    assert!(pipeline.metrics.snapshot().alerts_raised_total >= 1);
    assert_ne!(
        pipeline.link.borrow().online,
        Some(true),
        "the uplink never connected"
    );
    assert!(
        pipeline.metrics.snapshot().spool_appended_total >= 1,
        "alerts wait in the spool"
    );

    shutdown.cancel();
    pipeline.join().await.unwrap();
    let levels = levels.lock().unwrap();
    assert_eq!(levels.first(), Some(&false), "brought low at start");
    assert!(levels.contains(&true));
    assert_eq!(levels.last(), Some(&false), "silenced at shutdown");
}
