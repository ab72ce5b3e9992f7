//! The path a fleet engineer walks, end to end: `deploy/aws/provision-truck.sh` against the
//! stand-in `aws` (`deploy/aws/aws-stand-in.sh`), the `install.sh` it writes run into a
//! temporary root, `vigil check-config` on what it installed, then `vigil run` on that config
//! against a real Mosquitto over mutual TLS, with the certificate and key the stand-in
//! handed out (made here with rcgen, signed by the CA the broker trusts), until the broker
//! has acknowledged the truck's first record. Also: what the script refuses before it makes
//! anything on AWS, and the package's template, which names what is left to fill in.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::broker::{Fleet, Identity, LIMIT, Mosquitto, Pki, record_id, run_agent};
use crate::{run, wait_with_limit, write_file};

const REPO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const THING: &str = "truck-0042";

fn repo(path: &str) -> PathBuf {
    Path::new(REPO).join(path)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

fn text(output: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// `PATH` with `dir` in front.
fn path_with(dir: &Path) -> OsString {
    let mut path = OsString::from(dir);
    path.push(":");
    path.push(std::env::var_os("PATH").unwrap_or_default());
    path
}

/// The stand-in `aws`, first on a PATH of its own, handing out `device`'s certificate and key.
struct Aws {
    dir: tempfile::TempDir,
    envs: Vec<(&'static str, OsString)>,
}

impl Aws {
    fn new(endpoint: &str, device: &Identity) -> Aws {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::os::unix::fs::symlink(
            repo("deploy/aws/aws-stand-in.sh"),
            dir.path().join("bin/aws"),
        )
        .unwrap();
        let envs = vec![
            ("PATH", path_with(&dir.path().join("bin"))),
            ("AWS_STUB_LOG", dir.path().join("calls.log").into()),
            ("AWS_STUB_ENDPOINT", endpoint.into()),
            ("AWS_STUB_CERTIFICATE", device.cert.clone().into()),
            ("AWS_STUB_PRIVATE_KEY", device.key.clone().into()),
        ];
        Aws { dir, envs }
    }

    /// Runs provision-truck.sh with `args`, and `extra` in its environment.
    fn provision(&self, args: &[&str], extra: &[(&str, &str)]) -> Output {
        Command::new(repo("deploy/aws/provision-truck.sh"))
            .args(args)
            .envs(self.envs.iter().map(|(k, v)| (*k, v.as_os_str())))
            .envs(extra.iter().copied())
            .stdin(Stdio::null())
            .output()
            .expect("provision-truck.sh runs")
    }

    /// Every call so far, one "service operation arguments" line each.
    fn calls(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("calls.log")).unwrap_or_default()
    }

    fn forget_calls(&self) {
        let _ = std::fs::remove_file(self.dir.path().join("calls.log"));
    }
}

fn table(path: &Path) -> toml::Table {
    toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn get<'a>(table: &'a toml::Table, dotted: &str) -> &'a toml::Value {
    let mut keys = dotted.split('.');
    let mut value = &table[keys.next().unwrap()];
    for key in keys {
        value = &value[key];
    }
    value
}

#[test]
fn a_provisioned_truck_installs_checks_and_reports_over_mutual_tls() {
    let pki = Pki::new();
    let broker = Mosquitto::start(&pki);
    let device = pki.client(THING, None, false);
    // The endpoint is the broker's address; the test CA signed its certificate for it.
    let aws = Aws::new("127.0.0.1", &device);
    let work = tempfile::tempdir().unwrap();
    let out = work.path().join("trucks");
    let port = broker.port.to_string();
    let root_ca = pki.ca.pem.to_str().unwrap();
    let args = [
        "--out",
        out.to_str().unwrap(),
        "--cargo",
        "lpg",
        "--compartments",
        "4",
        "--fleet",
        "north",
        "--region",
        "eu-west-1",
        "--port",
        &port,
        "--root-ca",
        root_ca,
        THING,
    ];

    // 1. Provisioning: the calls AWS sees, and what the gateway is given.
    let provisioned = aws.provision(&args, &[]);
    assert!(provisioned.status.success(), "{}", text(&provisioned));
    let calls = aws.calls();
    let operations: Vec<String> = calls
        .lines()
        .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        operations,
        [
            "iot describe-thing",
            "cloudformation describe-stacks",
            "cloudformation describe-stacks",
            "iot describe-endpoint",
            "iot create-thing",
            "iot create-keys-and-certificate",
            "iot attach-policy",
            "iot attach-thing-principal",
        ],
        "{calls}"
    );
    assert!(
        calls.contains(
            "--thing-type-name vigil-fleet-tanker-gateway --attribute-payload attributes={cargo=lpg,fleet=north}"
        ),
        "create-thing without the thing type and attributes: {calls}"
    );
    assert!(
        calls.contains(
            "attach-policy --policy-name vigil-fleet-device --target arn:aws:iot:eu-west-1:123456789012:cert/abc"
        ),
        "the device policy was not attached to the new certificate: {calls}"
    );
    let truck = out.join(THING);
    assert_eq!(mode(&truck.join("certs")), 0o700);
    assert_eq!(mode(&truck.join("certs/private.pem.key")), 0o600);
    let config = table(&truck.join("vigil.toml"));
    for (key, expected) in [
        ("vehicle.id", toml::Value::from(THING)),
        ("vehicle.cargo", "lpg".into()),
        ("vehicle.compartments", 4.into()),
        ("uplink.endpoint", "127.0.0.1".into()),
        ("uplink.port", i64::from(broker.port).into()),
        (
            "uplink.ca_file",
            "/etc/vigil/certs/AmazonRootCA1.pem".into(),
        ),
        ("uplink.cert_file", "/etc/vigil/certs/device.pem.crt".into()),
        ("uplink.key_file", "/etc/vigil/certs/private.pem.key".into()),
        ("spool.path", "/var/lib/vigil/spool".into()),
    ] {
        assert_eq!(get(&config, key), &expected, "{key}");
    }
    // A real truck's sources: SocketCAN and the serial node, never the simulator.
    let sources: Vec<&String> = config["source"].as_table().unwrap().keys().collect();
    assert_eq!(sources, ["can", "serial"]);

    // 2. install.sh into a temporary root, unprivileged where the test is; it runs
    // check-config itself.
    let root = work.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let vigil_dir = Path::new(env!("CARGO_BIN_EXE_vigil")).parent().unwrap();
    let installed = Command::new("sh")
        .arg(truck.join("install.sh"))
        .arg("--root")
        .arg(&root)
        .env("PATH", path_with(vigil_dir))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(installed.status.success(), "{}", text(&installed));
    let etc = root.join("etc/vigil");
    let installed_config = etc.join("vigil.toml");
    assert!(
        String::from_utf8_lossy(&installed.stdout)
            .contains(&format!("{}: ok", installed_config.display())),
        "{}",
        text(&installed)
    );
    let key = etc.join("certs/private.pem.key");
    assert_eq!(mode(&etc.join("certs")), 0o750);
    assert_eq!(mode(&etc.join("certs/device.pem.crt")), 0o644);
    let key_mode = mode(&key);
    assert_eq!(key_mode, 0o600);
    let checked = run(&["check-config", installed_config.to_str().unwrap()]);
    assert!(checked.status.success(), "{}", text(&checked));
    let installed_table = table(&installed_config);
    assert_eq!(
        get(&installed_table, "uplink.key_file").as_str(),
        key.to_str()
    );

    // 3. One rule for the key: the mode install.sh gives it is the mode the agent's own
    // refusal asks for (here for the 0640 the old install.sh gave).
    let loose = etc.join("certs/loose.pem.key");
    std::fs::copy(&key, &loose).unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o640)).unwrap();
    let loose_config = write_file(
        &etc,
        "loose.toml",
        &std::fs::read_to_string(&installed_config)
            .unwrap()
            .replace(key.to_str().unwrap(), loose.to_str().unwrap()),
    );
    let refused = run(&["check-config", loose_config.to_str().unwrap()]);
    assert_eq!(refused.status.code(), Some(2), "{}", text(&refused));
    let message = String::from_utf8_lossy(&refused.stderr);
    let asked = message
        .split("chmod ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|digits| u32::from_str_radix(digits, 8).ok())
        .unwrap_or_else(|| panic!("the refusal names no mode to set: {message}"));
    assert_eq!(
        key_mode, asked,
        "install.sh gives the key {key_mode:o}, the agent asks for {asked:o}"
    );

    // 4. The agent on the installed config. CAN and the serial node are not here: only the
    // sources are replaced, by a replay of the real truck log in tests/data at twice real
    // time; everything else (vehicle, uplink, certificates, spool) is what was installed.
    let mut replayed = installed_table.clone();
    let mut replay = toml::Table::new();
    replay.insert(
        "path".into(),
        repo("tests/data/j1939-truck-css.candump.log")
            .to_str()
            .unwrap()
            .into(),
    );
    replay.insert("speed".into(), 2.0.into());
    replayed.insert(
        "source".into(),
        toml::Value::Table(toml::Table::from_iter([(
            "replay".to_owned(),
            replay.into(),
        )])),
    );
    let run_config = write_file(&etc, "replay.toml", &toml::to_string(&replayed).unwrap());
    let fleet = Fleet::connect(
        &pki,
        broker.port,
        "fleet-provision",
        &[&format!("dt/vigil/{THING}/#")],
    );
    let (mut child, mut log) = run_agent(&run_config);
    // Mosquitto acknowledges a QoS 1 publish as it takes it in: the fleet client receiving
    // the truck's record is that PUBACK's moment. The second record comes from a later
    // batch, seconds after the first one's PUBACK.
    let seen = fleet.until("two records from the truck", |seen| {
        seen.iter().filter(|(_, p)| record_id(p).is_some()).count() >= 2
    });
    let (topic, first) = seen
        .iter()
        .find_map(|(t, p)| record_id(p).map(|id| (t, id)))
        .unwrap();
    assert!(topic.starts_with(&format!("dt/vigil/{THING}/")), "{topic}");
    assert_eq!(first.0, THING);
    let child = child.0.take().unwrap();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = wait_with_limit(child, LIMIT).expect("vigil stops on SIGTERM");
    assert!(status.success(), "{:#?}", log.rest(LIMIT));

    // The agent's side of that PUBACK: a record leaves the spool only on its
    // acknowledgement, and the first one is gone from the installed spool.
    let spool = get(&installed_table, "spool.path").as_str().unwrap();
    let inspect = run(&["spool", "inspect", "--path", spool, "--json"]);
    assert!(inspect.status.success(), "{}", text(&inspect));
    let report: serde_json::Value = serde_json::from_slice(&inspect.stdout).unwrap();
    assert!(
        report["seq_first"]
            .as_u64()
            .is_none_or(|oldest| oldest > first.2),
        "record {} is still in the spool: {report}",
        first.2
    );
}

/// What is wrong, the arguments after `--out` and `--root-ca`, more of the stand-in's
/// environment, and what the refusal must say.
type Refusal<'a> = (&'a str, Vec<&'a str>, &'a [(&'a str, &'a str)], &'a str);

#[test]
fn provisioning_refuses_bad_input_before_anything_is_made_on_aws() {
    let pki = Pki::new();
    let device = pki.client(THING, None, false);
    let aws = Aws::new("a1b2c3-ats.iot.eu-west-1.amazonaws.com", &device);
    let out = tempfile::tempdir().unwrap();
    let out = out.path().to_str().unwrap();
    let ca = pki.ca.pem.to_str().unwrap();
    std::fs::create_dir(Path::new(out).join("truck-0007")).unwrap();
    let cases: [Refusal; 6] = [
        (
            "a thing name AWS refuses",
            vec!["bad/name"],
            &[],
            "may use only letters",
        ),
        (
            "9 compartments",
            vec!["--compartments", "9", THING],
            &[],
            "1 to 8",
        ),
        ("port 0", vec!["--port", "0", THING], &[], "TCP port"),
        (
            "no CA to ship",
            vec!["--root-ca", "/nonexistent/ca.pem", THING],
            &[],
            "cannot read the CA",
        ),
        (
            "a folder that exists",
            vec!["truck-0007"],
            &[],
            "exists already",
        ),
        (
            "a thing that exists",
            vec![THING],
            &[("AWS_STUB_THINGS", "truck-0001 truck-0042")],
            "exists already on AWS IoT",
        ),
    ];
    for (case, tail, extra, expected) in cases {
        aws.forget_calls();
        let mut args = vec!["--out", out, "--root-ca", ca];
        args.extend(tail);
        let output = aws.provision(&args, extra);
        assert_eq!(output.status.code(), Some(1), "{case}: {}", text(&output));
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(expected),
            "{case}: {}",
            text(&output)
        );
        let calls = aws.calls();
        assert!(
            !calls.contains("create") && !calls.contains("attach"),
            "{case}: made something: {calls}"
        );
    }
}

#[test]
fn the_packaged_template_names_what_is_left_to_fill_in() {
    // The template as the package installs it, then with each FILL IN done in turn: every
    // refusal names the next key, and the last is the certificate files that are not there.
    let template = std::fs::read_to_string(repo("deploy/vigil.toml")).unwrap();
    let with_id = template.replace("id = \"<thing name>\"", "id = \"truck-0042\"");
    let with_endpoint = with_id.replace(
        "endpoint = \"\"",
        "endpoint = \"a1b2c3-ats.iot.eu-west-1.amazonaws.com\"",
    );
    assert!(with_id != template && with_endpoint != with_id);
    let dir = tempfile::tempdir().unwrap();
    for (text, expected) in [
        (&template, "key `vehicle.id`"),
        (&with_id, "key `uplink.endpoint`"),
        (&with_endpoint, "key `uplink.ca_file`"),
    ] {
        let config = write_file(dir.path(), "vigil.toml", text);
        let output = run(&["check-config", config.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(expected), "{stderr} should name {expected}");
    }
}
