//! `sispop-wallet`: command-line wallet.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use sispop_chain::{Address, Atomic, Network, NetworkParams, PublicKey};
use sispop_wallet::{Account, Daemon, Wallet, WalletFile};
use zeroize::Zeroizing;

/// `println!` for the commands' output, except that a reader that went away (`| head`) ends the
/// process quietly, as command-line tools do, instead of a panic. Not done by restoring the
/// default `SIGPIPE` action: that would also end the wallet, without a word, whenever a daemon
/// resets a connection while a request is being written to it.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let mut stdout = std::io::stdout().lock();
        if let Err(e) = writeln!(stdout, $($arg)*).and_then(|()| stdout.flush()) {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            eprintln!("writing the output: {e}");
            std::process::exit(1);
        }
    }};
}

#[derive(Parser)]
#[command(name = "sispop-wallet", about = "Sispop command-line wallet")]
struct Cli {
    /// Wallet file (keys); the scan cache lives beside it as `<file>.cache`.
    #[arg(long, global = true, default_value = "wallet.json")]
    wallet_file: PathBuf,
    /// New or restored wallets are for the test network.
    #[arg(long, global = true, conflicts_with = "devnet")]
    testnet: bool,
    /// New or restored wallets are for a local devnet.
    #[arg(long, global = true)]
    devnet: bool,
    /// File whose first line is the wallet's password (for scripts). Without it the password
    /// comes from the SISPOP_WALLET_PASSWORD environment variable, else a terminal prompt.
    #[arg(long, global = true)]
    password_file: Option<PathBuf>,
    /// Daemon RPC URL (default: the network's local RPC port).
    #[arg(long, global = true)]
    daemon_address: Option<String>,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a new wallet and print its address and 25-word recovery phrase.
    New,
    /// Create a wallet file from a 25-word recovery phrase.
    Restore {
        /// The phrase (quote it); omitted or `-`: read from standard input, which keeps it out
        /// of the shell history and the process list.
        phrase: Option<String>,
        /// Start scanning at this height (the wallet received nothing before it).
        #[arg(long, default_value_t = 0)]
        height: u64,
    },
    /// Print the recovery phrase.
    Seed,
    /// Seal the wallet file and its cache under a new password.
    #[command(name = "change_password")]
    ChangePassword {
        /// File whose first line is the new password (default: asked on the terminal).
        #[arg(long)]
        new_password_file: Option<PathBuf>,
    },
    /// Print the primary address.
    Address,
    /// Scan the chain up to the daemon's tip.
    Refresh,
    /// Show the balance (refreshes first).
    Balance,
    /// Send coins.
    Transfer {
        /// Destination address.
        address: String,
        /// Amount in coins, e.g. 12.5.
        amount: String,
    },
    /// Run the line printed by `sispopd prepare_registration` (without the leading word, or with it).
    #[command(name = "register_service_node")]
    RegisterServiceNode {
        /// The command's words.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        args: Vec<String>,
    },
    /// Contribute to a service node.
    Stake {
        /// Service node pubkey.
        sn_pubkey: String,
        /// Amount in coins.
        amount: String,
    },
    /// Ask for this wallet's stake in a service node to be unlocked.
    #[command(name = "request_stake_unlock")]
    RequestStakeUnlock {
        /// Service node pubkey.
        sn_pubkey: String,
    },
    /// List this wallet's locked stakes.
    #[command(name = "print_locked_stakes")]
    PrintLockedStakes,
}

/// Parses `12.5` coins into atomic units.
fn parse_amount(s: &str) -> anyhow::Result<u64> {
    match Atomic::parse_coins(s) {
        Some(a) if a.0 > 0 => Ok(a.0),
        Some(_) => bail!("amount must be positive"),
        None => bail!("invalid amount {s} (coins, at most 9 decimals)"),
    }
}

fn network(cli: &Cli) -> &'static NetworkParams {
    NetworkParams::get(if cli.devnet {
        Network::Devnet
    } else if cli.testnet {
        Network::Testnet
    } else {
        Network::Mainnet
    })
}

/// Environment variable holding the password for scripts.
const PASSWORD_ENV: &str = "SISPOP_WALLET_PASSWORD";

/// The first line of a password file.
fn password_from_file(path: &std::path::Path) -> anyhow::Result<Zeroizing<String>> {
    let text = Zeroizing::new(
        std::fs::read_to_string(path)
            .with_context(|| format!("reading the password file {}", path.display()))?,
    );
    let line = text.lines().next().unwrap_or("");
    Ok(Zeroizing::new(line.to_owned()))
}

/// Asks on the terminal (twice when `confirm`).
fn prompt(what: &str, confirm: bool) -> anyhow::Result<Zeroizing<String>> {
    let no_tty = |e: std::io::Error| {
        anyhow::anyhow!(
            "no password given and no terminal to ask on ({e}); use --password-file or {PASSWORD_ENV}"
        )
    };
    let pw = Zeroizing::new(rpassword::prompt_password(format!("{what}: ")).map_err(no_tty)?);
    if confirm {
        let again =
            Zeroizing::new(rpassword::prompt_password(format!("{what} again: ")).map_err(no_tty)?);
        if *again != *pw {
            bail!("the two passwords differ");
        }
    }
    Ok(pw)
}

/// The wallet's password: `--password-file`, else the environment, else a prompt (asked twice
/// for a new wallet).
fn password(cli: &Cli, new: bool) -> anyhow::Result<Zeroizing<String>> {
    if let Some(f) = &cli.password_file {
        return password_from_file(f);
    }
    if let Some(v) = std::env::var_os(PASSWORD_ENV) {
        return v
            .into_string()
            .map(Zeroizing::new)
            .map_err(|_| anyhow::anyhow!("{PASSWORD_ENV} is not valid UTF-8"));
    }
    prompt("Wallet password", new)
}

fn unlock(cli: &Cli) -> anyhow::Result<sispop_wallet::Unlocked> {
    // A file from before encryption is sealed under the password given now: asked twice.
    let first_seal = !WalletFile::is_sealed(&cli.wallet_file)?;
    if first_seal {
        eprintln!(
            "{} is not encrypted yet; the password given now will seal it",
            cli.wallet_file.display()
        );
    }
    Ok(WalletFile::load(
        &cli.wallet_file,
        password(cli, first_seal)?.as_bytes(),
    )?)
}

async fn open(cli: &Cli) -> anyhow::Result<(Wallet, Daemon)> {
    let u = unlock(cli)?;
    let params = u.params;
    let url = cli
        .daemon_address
        .clone()
        .unwrap_or_else(|| format!("http://127.0.0.1:{}", params.rpc_port));
    let daemon = Daemon::new(&url)?;
    let mut w = Wallet::new(u.account, params).with_cache_file(&cli.wallet_file, u.keys)?;
    // Progress on standard error, once a second, when there is much to scan.
    let started = std::time::Instant::now();
    let from = w.cache.next_height;
    let mut last = started;
    w.refresh_with_progress(&daemon, |done, total| {
        if last.elapsed() >= std::time::Duration::from_secs(1)
            || (done == total && done > from + 500)
        {
            last = std::time::Instant::now();
            let rate = (done - from) as f64 / started.elapsed().as_secs_f64().max(1e-3);
            eprintln!(
                "scanned {done}/{total} blocks ({:.0} %, {rate:.0} blocks/s)",
                done as f64 * 100.0 / total.max(1) as f64
            );
        }
    })
    .await?;
    w.save()?;
    Ok((w, daemon))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.cmd {
        Cmd::New => {
            let params = network(&cli);
            if cli.wallet_file.exists() {
                bail!(
                    "{} already exists; refusing to overwrite it",
                    cli.wallet_file.display()
                );
            }
            let pw = password(&cli, true)?;
            let account = Account::generate();
            WalletFile::create(&cli.wallet_file, &account, params, pw.as_bytes())?;
            out!("Address: {}", account.address().to_string(params));
            out!(
                "Recovery phrase (write it down; it restores this wallet):\n{}",
                account.mnemonic()
            );
        }
        Cmd::Restore { phrase, height } => {
            let params = network(&cli);
            let phrase = match phrase.as_deref() {
                Some(p) if p != "-" => p.to_owned(),
                _ => {
                    let mut line = String::new();
                    std::io::stdin()
                        .read_line(&mut line)
                        .context("reading the phrase from standard input")?;
                    line
                }
            };
            let account = Account::from_mnemonic(phrase.trim())?;
            if cli.wallet_file.exists() {
                bail!(
                    "{} already exists; refusing to overwrite it",
                    cli.wallet_file.display()
                );
            }
            let pw = password(&cli, true)?;
            WalletFile::create_from(&cli.wallet_file, &account, params, *height, pw.as_bytes())?;
            out!("Restored: {}", account.address().to_string(params));
        }
        Cmd::Seed => out!("{}", unlock(&cli)?.account.mnemonic()),
        Cmd::Address => {
            let u = unlock(&cli)?;
            out!("{}", u.account.address().to_string(u.params));
        }
        Cmd::ChangePassword { new_password_file } => {
            let old = password(&cli, false)?;
            let new = match new_password_file {
                Some(f) => password_from_file(f)?,
                None => prompt("New wallet password", true)?,
            };
            Wallet::change_password(&cli.wallet_file, old.as_bytes(), new.as_bytes())?;
            out!("Password changed");
        }
        Cmd::Refresh => {
            let (w, _) = open(&cli).await?;
            out!("Refreshed to height {}", w.cache.next_height);
        }
        Cmd::Balance => {
            let (w, d) = open(&cli).await?;
            let locked = w.locked_key_images(&d).await?;
            let b = w.balance(&locked);
            out!(
                "Balance: {}, unlocked balance: {}, locked in stakes: {}",
                b.total,
                b.unlocked,
                b.staked
            );
        }
        Cmd::Transfer { address, amount } => {
            let (mut w, d) = open(&cli).await?;
            let to = Address::parse(address, w.params)?;
            let (hash, fee) = w.transfer(&d, &to, parse_amount(amount)?).await?;
            out!("Transaction sent: {hash} (fee {})", Atomic(fee));
        }
        Cmd::RegisterServiceNode { args } => {
            let (mut w, d) = open(&cli).await?;
            let words: Vec<&str> = args
                .iter()
                .map(String::as_str)
                .skip_while(|a| *a == "register_service_node")
                .collect();
            let (hash, fee, sn) = w.stake(&d, None, None, Some(&words)).await?;
            out!(
                "Registration of service node {sn} sent: {hash} (fee {})",
                Atomic(fee)
            );
        }
        Cmd::Stake { sn_pubkey, amount } => {
            let (mut w, d) = open(&cli).await?;
            let sn = PublicKey::from_hex(sn_pubkey)
                .context("service node pubkey must be 64 hex characters")?;
            let (hash, fee, _) = w
                .stake(&d, Some(sn), Some(parse_amount(amount)?), None)
                .await?;
            out!("Stake sent: {hash} (fee {})", Atomic(fee));
        }
        Cmd::RequestStakeUnlock { sn_pubkey } => {
            let (mut w, d) = open(&cli).await?;
            let sn = PublicKey::from_hex(sn_pubkey)
                .context("service node pubkey must be 64 hex characters")?;
            let hash = w.request_unlock(&d, sn).await?;
            out!("Unlock request sent: {hash}");
        }
        Cmd::PrintLockedStakes => {
            let (w, d) = open(&cli).await?;
            let locked = w.locked_key_images(&d).await?;
            let mut any = false;
            for (sn, o) in w.stakes(&locked) {
                any = true;
                out!(
                    "Service Node: {sn}\n  Key Image: {}\n  Amount: {}",
                    o.key_image,
                    Atomic(o.amount)
                );
            }
            if !any {
                out!("No locked stakes");
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
