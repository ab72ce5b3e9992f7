//! The shell completions and man pages the package installs, generated from the CLI's own
//! definition by `vigil generate`: every command `vigil --help` lists, at every depth, is in
//! each shell's completion and has a man page that opens with NAME, SYNOPSIS and DESCRIPTION.

use crate::{run, vigil};

/// Every visible command, as the words typed after `vigil` (`["spool", "inspect"]`), read
/// from `--help` at every depth.
fn commands() -> Vec<Vec<String>> {
    let mut found = Vec::new();
    let mut todo = vec![Vec::<String>::new()];
    while let Some(words) = todo.pop() {
        let output = vigil().args(&words).arg("--help").output().unwrap();
        let help = String::from_utf8_lossy(&output.stdout).into_owned();
        let listed = help
            .split("Commands:\n")
            .nth(1)
            .map(|rest| rest.split("\n\n").next().unwrap_or(""))
            .unwrap_or("");
        for line in listed.lines() {
            // "  run   Run the agent ..."; clap's own `help` is not a command of ours.
            let Some(name) = line
                .strip_prefix("  ")
                .and_then(|l| l.split_whitespace().next())
            else {
                continue;
            };
            if name != "help" && !line.starts_with("   ") {
                let mut sub = words.clone();
                sub.push(name.to_owned());
                found.push(sub.clone());
                todo.push(sub);
            }
        }
    }
    found
}

/// How `shell`'s script offers a command called `name`: bash's state machine steps on
/// "PARENT,NAME)", zsh describes 'NAME:about', fish adds it with -a "NAME".
fn offer(shell: &str, name: &str) -> String {
    match shell {
        "bash" => format!(",{name})"),
        "zsh" => format!("'{name}:"),
        "fish" => format!("-a \"{name}\""),
        other => panic!("no pattern for {other}"),
    }
}

#[test]
fn completions_and_man_pages_cover_every_command() {
    let commands = commands();
    // Not a parse that found nothing: the top level and the nested groups are there.
    for expected in [
        vec!["run"],
        vec!["spool", "inspect"],
        vec!["fleet", "watch"],
    ] {
        assert!(
            commands.contains(&expected.iter().map(|s| s.to_string()).collect()),
            "{commands:?}"
        );
    }
    for shell in ["bash", "zsh", "fish"] {
        let output = run(&["generate", "completions", shell]);
        assert!(output.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&output.stdout);
        for words in &commands {
            let pattern = offer(shell, words.last().unwrap());
            assert!(
                script.contains(&pattern),
                "{shell} completion lacks {words:?} ({pattern})"
            );
        }
        assert!(!script.contains(&offer(shell, "no-such-command")));
    }
    let bash = run(&["generate", "completions", "bash"]).stdout;
    assert!(
        String::from_utf8_lossy(&bash).contains("complete -F _vigil"),
        "bash completion not registered for vigil"
    );

    let dir = tempfile::tempdir().unwrap();
    let output = run(&["generate", "man", dir.path().to_str().unwrap()]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let mut pages = vec!["vigil".to_owned()];
    pages.extend(
        commands
            .iter()
            .map(|words| format!("vigil-{}", words.join("-"))),
    );
    for page in &pages {
        let path = dir.path().join(format!("{page}.1"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("no man page {}: {e}", path.display()));
        for section in [".SH NAME", ".SH SYNOPSIS", ".SH DESCRIPTION"] {
            assert!(text.contains(section), "{page}.1 lacks {section}");
        }
        assert!(
            text.contains(&format!(".TH {page} 1")),
            "{page}.1 title: {}",
            text.lines().find(|l| l.starts_with(".TH")).unwrap_or("")
        );
    }
    let written = std::fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(written, pages.len(), "pages beyond the visible commands");
}
