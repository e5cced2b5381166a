//! `cloudpki`: thin entry point; everything lives in the library.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cloudpki::cli::Cli::parse();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match cloudpki::cli::run(cli, &mut out) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::from(e.exit_code())
        }
    }
}
