use std::process::ExitCode;

use clap::Parser;
use logveil::cli::{Cli, Command};
use logveil::commands;

fn main() -> ExitCode {
    let cli = Cli::parse();
    logveil::notice::set_quiet(cli.quiet());
    let result = match cli.command {
        None => commands::run(cli.run),
        Some(Command::Run(a)) => commands::run(a),
        Some(Command::Scan(a)) => commands::scan(a),
        Some(Command::Fingerprint(a)) => commands::fingerprint(a),
        Some(Command::Rules(a)) => commands::rules(a),
        Some(Command::Corpus(a)) => commands::corpus(a),
        Some(Command::Completions(a)) => commands::completions(a),
        Some(Command::Man) => commands::man(),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // One line: the error and its causes.
            eprintln!("logveil: error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::from(2)
        }
    }
}
