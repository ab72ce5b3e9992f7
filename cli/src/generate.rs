//! Shell completions and man pages, generated from the command line's own definition (the
//! `Cli` of `main.rs`, passed in), so they can never list a command or an option that is
//! not there. `vigil generate` writes them; the Debian package installs them
//! (`deploy/debian/generate.sh`). Nothing else here.

use std::io::Write;
use std::path::{Path, PathBuf};

pub use clap_complete::Shell;

/// Why the files could not be written.
#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error(
        "cannot write the man pages into {dir}: {source}; check that the folder exists and is writable"
    )]
    Man {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Writes `shell`'s completion script for `command` to `out`.
pub fn completions(mut command: clap::Command, shell: Shell, out: &mut dyn Write) {
    let name = command.get_name().to_owned();
    clap_complete::generate(shell, &mut command, name, out);
}

/// Writes the man page of `command` (`vigil.1`) and one of each visible subcommand, at every
/// depth (`vigil-run.1`, `vigil-spool-inspect.1`, ...), into `dir`; returns their paths.
pub fn man_pages(command: clap::Command, dir: &Path) -> Result<Vec<PathBuf>, GenerateError> {
    // As `clap_mangen::generate_to` does it, keeping the paths: built once, so every
    // subcommand knows its full name, and without the `help` subcommand's page.
    let mut command = command.disable_help_subcommand(true);
    command.build();
    // Every page's footer names the program and its version, not the subcommand alone.
    let source = format!(
        "{} {}",
        command.get_name(),
        command.get_version().unwrap_or_default()
    );
    let mut pages = Vec::new();
    let mut todo = vec![command];
    while let Some(command) = todo.pop() {
        todo.extend(
            command
                .get_subcommands()
                .filter(|s| !s.is_hide_set())
                .cloned(),
        );
        let page = clap_mangen::Man::new(command)
            .source(source.clone())
            .generate_to(dir)
            .map_err(|source| GenerateError::Man {
                dir: dir.to_owned(),
                source,
            })?;
        pages.push(page);
    }
    Ok(pages)
}
