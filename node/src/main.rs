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

/// Output to a closed pipe (`| head`) ends the process quietly, as command-line tools do,
/// instead of panicking inside `println!`.
#[expect(
    unsafe_code,
    reason = "restoring the default SIGPIPE action needs libc::signal"
)]
fn default_sigpipe() {
    // SAFETY: called once at startup before any thread exists; SIG_DFL is always valid.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    default_sigpipe();
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
            Ok(out) => {
                println!("{out}");
                ExitCode::SUCCESS
            }
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
