//! `bench MODE [ARGS…]`: benchmarks that print figures next to a same-run baseline.

use std::process::ExitCode;

const USAGE: &str = "usage: bench <hash|schedule|codec|echo|e2e> [ARGS...]";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((mode, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match mode.as_str() {
        "hash" => apps::bench::hash::run(rest),
        "schedule" => apps::bench::schedule::run(rest),
        "codec" => apps::bench::codec::run(rest),
        "echo" => apps::bench::echo::run(rest),
        "e2e" => apps::bench::e2e::run(rest),
        "-h" | "--help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        other => Err(format!("unknown mode `{other}`\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("bench: {message}");
            ExitCode::from(2)
        }
    }
}
