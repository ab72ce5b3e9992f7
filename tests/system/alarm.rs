//! `vigil alarm test` for installers, and the agent running on without an alarm device its
//! config names, or without a spool on disk. This machine has no GPIO or I2C devices, so these are the paths that can
//! be seen here: nothing configured, and a configured device missing.

use crate::broker::{Fleet, LIMIT, Mosquitto, Pki, run_agent};
use crate::schema::assert_valid;
use crate::uplink::agent_config;
use crate::{run, write_file};

#[test]
fn alarm_test_without_hardware_says_what_to_configure_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_file(dir.path(), "vigil.toml", "[source.simulator]\n");
    for args in [
        vec!["alarm", "test"],
        vec!["alarm", "test", "--config", path.to_str().unwrap()],
    ] {
        let out = run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains("no alarm hardware is configured") && stderr.contains("[alarm]"),
            "{args:?}: {stderr}"
        );
    }
}

#[test]
fn a_missing_gpio_chip_is_named_by_alarm_test_with_what_to_check() {
    let dir = tempfile::tempdir().unwrap();
    let chip = dir.path().join("gpiochip9");
    let text = format!(
        "[source.simulator]\n[alarm]\nbuzzer = {{ chip = {:?}, line = 17 }}\n",
        chip.to_str().unwrap()
    );
    let path = write_file(dir.path(), "vigil.toml", &text);
    let out = run(&["alarm", "test", "--config", path.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let named = format!("alarm.buzzer: cannot use line 17 of {}", chip.display());
    assert!(stderr.contains(&named), "{stderr}");
    assert!(stderr.contains("gpioinfo"), "{stderr}");
}

/// A truck whose buzzer line is missing (unplugged, a wrong chip) still watches and still
/// warns the fleet: the agent starts, says which device is missing, and the alert the
/// driver cannot hear arrives over MQTT.
#[test]
fn a_missing_buzzer_leaves_the_agent_running_and_alerting_over_mqtt() {
    let pki = Pki::new();
    let broker = Mosquitto::start(&pki);
    let fleet = Fleet::connect(&pki, broker.port, "fleet-alarm", &["dt/vigil/#"]);
    let id = pki.client("deaf-truck", None, false);
    let spool = pki.dir.path().join("spool");
    let chip = pki.dir.path().join("gpiochip9");
    let text = format!(
        "{}\n[alarm]\nbuzzer = {{ chip = {:?}, line = 17 }}\n",
        agent_config(
            "deaf-truck",
            broker.port,
            &pki.ca.pem,
            &id,
            &spool.display().to_string()
        ),
        chip.to_str().unwrap()
    );
    let config = write_file(pki.dir.path(), "vigil.toml", &text);
    let (child, mut log) = run_agent(&config);
    let missing = log
        .wait_for("alarm_device_unavailable", LIMIT)
        .expect("the missing buzzer is logged");
    assert!(
        missing.contains("device=\"buzzer\"") && missing.contains(chip.to_str().unwrap()),
        "{missing}"
    );
    fleet.until("an alert, and the missing buzzer in the status", |seen| {
        let alert = seen.iter().any(|(t, _)| t == "dt/vigil/deaf-truck/alerts");
        let reported = seen.iter().any(|(t, p)| {
            t == "dt/vigil/deaf-truck/status"
                && assert_valid("status.schema.json", p)["alarm"]["devices_unavailable"] == 1
        });
        alert && reported
    });
    drop(child);
}

/// A spool the agent cannot open (here a regular file where its folder should be; a
/// folder of another owner or mode 000 fails the same way for an unprivileged agent) does
/// not stop the alarm or the uplink: the spool is held in memory, said at start, and the
/// alert still arrives. Once the way is clear the spool goes back to the disk by itself.
#[test]
fn a_spool_that_cannot_be_opened_is_held_in_memory_and_alerts_still_arrive() {
    let pki = Pki::new();
    let broker = Mosquitto::start(&pki);
    let fleet = Fleet::connect(&pki, broker.port, "fleet-spool", &["dt/vigil/#"]);
    let id = pki.client("diskless-truck", None, false);
    let blocked = pki.dir.path().join("spool");
    std::fs::write(&blocked, b"not a folder").unwrap();
    let text = agent_config(
        "diskless-truck",
        broker.port,
        &pki.ca.pem,
        &id,
        &blocked.display().to_string(),
    );
    let config = write_file(pki.dir.path(), "vigil.toml", &text);
    let (child, mut log) = run_agent(&config);
    log.wait_for("spool_memory_only", LIMIT)
        .expect("the memory-only spool is logged");
    fleet.until(
        "an alert, and the memory-only spool in the status",
        |seen| {
            let alert = seen
                .iter()
                .any(|(t, _)| t == "dt/vigil/diskless-truck/alerts");
            let reported = seen.iter().any(|(t, p)| {
                t == "dt/vigil/diskless-truck/status"
                    && assert_valid("status.schema.json", p)["spool"]["memory_only"] == true
            });
            alert && reported
        },
    );
    std::fs::remove_file(&blocked).unwrap();
    log.wait_for("spool_store_back", LIMIT)
        .expect("the spool goes back to the disk without a restart");
    assert!(
        blocked.join("store").join("spool.redb").is_file(),
        "the store is on the disk"
    );
    drop(child);
}
