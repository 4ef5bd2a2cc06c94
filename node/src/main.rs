//! `sispopd`: the Sispop service node daemon, and its console commands forwarded to a running
//! daemon (`sispopd status`).

use std::process::ExitCode;

use sispopd::config::Args;
use sispopd::{console, run_daemon};
use tracing::error;

/// mimalloc instead of glibc's malloc: a relayed onion request or a store allocates and frees
/// dozens of small buffers, often on different threads. glibc's allocator was about 7 % of the
/// machine's CPU in `devnet bench onion` on 3 nodes, mimalloc about 4 %.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Prints a console command's output. A reader that went away (`sispopd status | head`) ends
/// the process quietly, as command-line tools do.
///
/// This is done here, for stdout only, not by restoring the default `SIGPIPE` action: the signal
/// is process-wide, and in the daemon any client that resets a connection before reading its
/// answer would make a socket write raise it and end the node at once. Rust starts every
/// program with `SIGPIPE` ignored, so a write to a closed socket is an `EPIPE` error that the
/// connection's task handles, and so it stays in `sispopd`.
fn print_output(out: &str) -> ExitCode {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    match writeln!(stdout, "{out}").and_then(|()| stdout.flush()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("writing the output: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main() -> ExitCode {
    let args = match Args::load() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e:#}");
            return ExitCode::from(2);
        }
    };
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if args.max_concurrency > 0 {
        builder.worker_threads(args.max_concurrency);
    }
    let runtime = match builder.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if !args.command.is_empty() {
        return match runtime.block_on(console::run(&args.daemon_url(), &args.command)) {
            Ok(out) => print_output(&out),
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    // A filter that does not parse (an oxend `log-level=*:WARN` from an old sispop.conf, say)
    // is said, and `info` used: the node still starts.
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_level).unwrap_or_else(|e| {
        eprintln!(
            "warning: --log-level {:?} is not a filter ({e}); logging at info",
            args.log_level
        );
        tracing_subscriber::EnvFilter::new("info")
    });
    match args.log_format {
        sispopd::config::LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .init(),
        sispopd::config::LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_current_span(false)
            .init(),
    }
    match runtime.block_on(run_daemon(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}
