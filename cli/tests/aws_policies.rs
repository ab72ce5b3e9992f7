//! The AWS template and the agent agree: every topic the agent publishes, retains and
//! subscribes to, and every filter `vigil fleet watch` subscribes to (and the topics it then
//! receives), is allowed by the template's policies, read from `deploy/aws/vigil-fleet.yaml`
//! by a small policy simulator of its own (AWS IoT's rules for the parts the template uses:
//! `Allow` statements, one action each, resources with the policy's `*` wildcard and the
//! thing-name variable; MQTT wildcards in a filter are literal characters to a policy).
//! And a truck may not publish as another truck.

use std::path::Path;

use vigil::fleet::task::subscriptions;
use vigil_agent::uplink::topics::Topics;

/// One `Allow` statement: its action and the resources it names (`arn:...:topic/...`, with
/// the thing-name variable left in).
#[derive(Debug)]
struct Statement {
    action: String,
    resources: Vec<String>,
}

/// The statements of the policy named `<stack>-<suffix>`, read line by line from the
/// template (its policies are plain YAML lists under `Statement:`).
fn policy(template: &str, suffix: &str) -> Vec<Statement> {
    let start = template
        .find(&format!(
            "PolicyName: !Sub \"${{AWS::StackName}}-{suffix}\""
        ))
        .unwrap_or_else(|| panic!("no policy {suffix} in the template"));
    let rest = &template[start..];
    // The policy ends where the next resource (two-space indent) begins.
    let end = rest
        .lines()
        .skip(1)
        .position(|l| l.starts_with("  ") && !l.starts_with("   ") && l.trim_end().ends_with(':'))
        .map(|n| rest.lines().take(n + 1).map(|l| l.len() + 1).sum())
        .unwrap_or(rest.len());
    let mut statements: Vec<Statement> = Vec::new();
    let mut effect_allow = false;
    for line in rest[..end].lines() {
        let t = line.trim();
        if t.starts_with("- Sid:") || t.starts_with("- Effect:") {
            statements.push(Statement {
                action: String::new(),
                resources: Vec::new(),
            });
            effect_allow = t == "- Effect: Allow";
        } else if t.starts_with("Effect:") {
            effect_allow = t == "Effect: Allow";
        }
        let Some(current) = statements.last_mut() else {
            continue;
        };
        if let Some(action) = t.strip_prefix("Action: ") {
            current.action = action.to_owned();
        }
        if let Some(arn) = t.split('"').nth(1).filter(|a| a.starts_with("arn:"))
            && effect_allow
        {
            current.resources.push(arn.to_owned());
        }
    }
    statements
}

/// Whether `value` matches a policy resource pattern, where `*` is any run of characters.
fn glob(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((head, tail)) => {
            let Some(rest) = value.strip_prefix(head) else {
                return false;
            };
            (0..=rest.len()).any(|i| rest.is_char_boundary(i) && glob(tail, &rest[i..]))
        }
    }
}

/// Whether a statement of `statements` allows `action` on `kind/name` (`topic`,
/// `topicfilter`) for the connection of thing `thing`.
fn allows(statements: &[Statement], action: &str, kind: &str, name: &str, thing: &str) -> bool {
    let arn = format!("arn:aws:iot:eu-west-1:123456789012:{kind}/{name}");
    statements.iter().filter(|s| s.action == action).any(|s| {
        s.resources.iter().any(|r| {
            let r = r
                .replace("${AWS::Partition}", "aws")
                .replace("${AWS::Region}", "eu-west-1")
                .replace("${AWS::AccountId}", "123456789012")
                .replace("${!iot:Connection.Thing.ThingName}", thing);
            glob(&r, &arn)
        })
    })
}

fn template() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/aws/vigil-fleet.yaml");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_truck_policy_admits_every_topic_the_agent_uses_and_no_other_trucks() {
    let truck = policy(&template(), "device");
    let t = Topics::new("truck-7");
    let published = [
        t.readings.clone(),
        t.alerts.clone(),
        t.dm1.clone(),
        t.security.clone(),
        t.status.clone(),
        t.shadow("get"),
        t.shadow("update"),
        t.jobs("$next/get"),
        t.jobs("job-42/update"),
    ];
    for topic in &published {
        assert!(
            allows(&truck, "iot:Publish", "topic", topic, "truck-7"),
            "the truck may not publish {topic}"
        );
    }
    assert!(allows(
        &truck,
        "iot:RetainPublish",
        "topic",
        &t.status,
        "truck-7"
    ));
    for filter in t.subscriptions() {
        assert!(
            allows(&truck, "iot:Subscribe", "topicfilter", &filter, "truck-7"),
            "the truck may not subscribe to {filter}"
        );
        // What arrives on a filter arrives on a topic; `+` stands for one job's id.
        let topic = filter.replace('+', "job-42");
        assert!(
            allows(&truck, "iot:Receive", "topic", &topic, "truck-7"),
            "the truck may not receive {topic}"
        );
    }
    // Another truck's topics are not this truck's to use.
    let other = Topics::new("truck-8");
    for topic in [&other.alerts, &other.readings, &other.security] {
        assert!(
            !allows(&truck, "iot:Publish", "topic", topic, "truck-7"),
            "{topic}"
        );
    }
    assert!(!allows(
        &truck,
        "iot:RetainPublish",
        "topic",
        &t.alerts,
        "truck-7"
    ));
}

#[test]
fn the_watcher_policy_admits_every_stream_fleet_watch_reads() {
    let watcher = policy(&template(), "fleet-watch");
    for vehicle in [None, Some("truck-7")] {
        for filter in subscriptions(vehicle) {
            assert!(
                allows(&watcher, "iot:Subscribe", "topicfilter", &filter, "-"),
                "the watcher may not subscribe to {filter}"
            );
            let topic = filter.replace('+', "truck-7");
            assert!(
                allows(&watcher, "iot:Receive", "topic", &topic, "-"),
                "the watcher may not receive {topic}"
            );
        }
    }
    // It reads; it never publishes as a truck.
    assert!(!allows(
        &watcher,
        "iot:Publish",
        "topic",
        "dt/vigil/truck-7/alerts",
        "-"
    ));
}
