//! `sispop-wallet`: command-line wallet.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use sispop_chain::{Network, NetworkParams};
use sispop_wallet::{Account, WalletFile};

#[derive(Parser)]
#[command(name = "sispop-wallet", about = "Sispop command-line wallet")]
struct Cli {
    /// Wallet file.
    #[arg(long, global = true, default_value = "wallet.json")]
    wallet_file: PathBuf,
    /// Create wallets for the test network.
    #[arg(long, global = true, conflicts_with = "devnet")]
    testnet: bool,
    /// Create wallets for a local devnet.
    #[arg(long, global = true)]
    devnet: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a new wallet file.
    New,
    /// Print the wallet's primary address.
    Address,
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.cmd {
        Cmd::New => {
            let network = if cli.devnet {
                Network::Devnet
            } else if cli.testnet {
                Network::Testnet
            } else {
                Network::Mainnet
            };
            let params = NetworkParams::get(network);
            let account = Account::generate();
            WalletFile::create(&cli.wallet_file, &account, params)?;
            println!("{}", account.address().to_string(params));
        }
        Cmd::Address => {
            let (account, params) = WalletFile::load(&cli.wallet_file)?;
            println!("{}", account.address().to_string(params));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
