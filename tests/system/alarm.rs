//! `vigil alarm test` for installers, and the agent refusing to start without the alarm
//! devices its config names. This machine has no GPIO or I2C devices, so these are the
//! paths that can be seen here: nothing configured, and a configured device missing.

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
fn a_missing_gpio_chip_is_named_by_alarm_test_and_stops_the_agent_before_it_starts() {
    let dir = tempfile::tempdir().unwrap();
    let chip = dir.path().join("gpiochip9");
    let text = format!(
        "[source.simulator]\n[alarm]\nbuzzer = {{ chip = {:?}, line = 17 }}\n",
        chip.to_str().unwrap()
    );
    let path = write_file(dir.path(), "vigil.toml", &text);
    let file = path.to_str().unwrap();
    for args in [
        vec!["alarm", "test", "--config", file],
        vec!["run", "--config", file],
    ] {
        let out = run(&args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        let named = format!("alarm.buzzer: cannot use line 17 of {}", chip.display());
        assert!(stderr.contains(&named), "{args:?}: {stderr}");
        assert!(stderr.contains("gpioinfo"), "{args:?}: {stderr}");
        assert!(!stderr.contains("pipeline_started"), "{args:?}: {stderr}");
    }
}
