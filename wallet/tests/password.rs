//! The wallet file and its cache open only with their password, from the library and the CLI.

use std::process::Command;

use sispop_wallet::{Account, Wallet, WalletError, WalletFile, WalletFileError};

fn params() -> &'static sispop_chain::NetworkParams {
    sispop_chain::NetworkParams::get(sispop_chain::Network::Devnet)
}

#[test]
fn the_cache_is_sealed_and_follows_a_password_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("w.json");
    WalletFile::create(&path, &Account::generate(), params(), b"one").expect("create");
    let mut w = Wallet::open(&path, b"one").expect("open");
    w.cache.next_height = 4321;
    w.save().expect("save");
    let cache = dir.path().join("w.json.cache");
    let bytes = std::fs::read(&cache).expect("cache");
    assert!(!bytes.starts_with(b"{"), "the cache is not clear JSON");
    assert!(!String::from_utf8_lossy(&bytes).contains("4321"));
    assert_eq!(
        Wallet::open(&path, b"one")
            .expect("reopen")
            .cache
            .next_height,
        4321
    );
    assert!(matches!(
        Wallet::open(&path, b"two"),
        Err(WalletError::File(WalletFileError::WrongPassword(_)))
    ));
    Wallet::change_password(&path, b"one", b"two").expect("change");
    assert!(Wallet::open(&path, b"one").is_err());
    assert_eq!(
        Wallet::open(&path, b"two").expect("new").cache.next_height,
        4321
    );
    // A damaged cache is rebuilt by scanning again (from the restore height), never read.
    let mut bytes = std::fs::read(&cache).expect("cache");
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&cache, bytes).expect("write");
    assert_eq!(
        Wallet::open(&path, b"two")
            .expect("opens")
            .cache
            .next_height,
        0
    );
}

fn wallet(dir: &std::path::Path) -> Command {
    wallet_file(dir, "w.json", false)
}

/// The wallet CLI on `file` in `dir`, with no password in the environment and nothing on
/// standard input; `detached`: run through `setsid`, without a controlling terminal.
fn wallet_file(dir: &std::path::Path, file: &str, detached: bool) -> Command {
    let bin = env!("CARGO_BIN_EXE_sispop-wallet");
    let mut c = if detached {
        let mut c = Command::new("setsid");
        c.arg(bin);
        c
    } else {
        Command::new(bin)
    };
    c.current_dir(dir)
        .env_remove("SISPOP_WALLET_PASSWORD")
        .args(["--devnet", "--wallet-file", file])
        .stdin(std::process::Stdio::null());
    c
}

/// Runs `c`, which must succeed; its standard output.
fn succeeds(c: &mut Command) -> String {
    let out = c.output().expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_cli_opens_a_wallet_only_with_its_password() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    std::fs::write(d.join("pw"), "correct horse\n").expect("pw");
    std::fs::write(d.join("bad"), "correct horse \n").expect("bad");
    let text = succeeds(wallet(d).args(["--password-file", "pw", "new"]));
    let address = text
        .lines()
        .find_map(|l| l.strip_prefix("Address: "))
        .expect("address line")
        .to_owned();
    let addr = |c: &mut Command| {
        let o = c.arg("address").output().expect("run");
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).trim().to_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    assert_eq!(addr(wallet(d).args(["--password-file", "pw"])).1, address);
    assert_eq!(
        addr(wallet(d).env("SISPOP_WALLET_PASSWORD", "correct horse")).1,
        address
    );
    let (ok, _, err) = addr(wallet(d).args(["--password-file", "bad"]));
    assert!(!ok && err.contains("wrong password"), "{err}");
    let (ok, _, err) = addr(wallet(d).env("SISPOP_WALLET_PASSWORD", "nope"));
    assert!(!ok && err.contains("wrong password"), "{err}");
    // No password and no terminal: a clear refusal (setsid detaches the controlling terminal
    // where one exists).
    let (ok, _, err) = addr(&mut wallet_file(d, "w.json", true));
    assert!(!ok && err.contains("--password-file"), "{err}");
    // The seed needs the password too, and restoring it elsewhere gives the same address.
    let seed = succeeds(wallet(d).args(["--password-file", "pw", "seed"]));
    let restored = succeeds(
        wallet_file(d, "r.json", false)
            .args(["--password-file", "bad", "restore"])
            .arg(seed.trim()),
    );
    assert!(restored.contains(&address));
    // change_password: the old one stops working.
    succeeds(wallet(d).args([
        "--password-file",
        "pw",
        "change_password",
        "--new-password-file",
        "bad",
    ]));
    assert!(!addr(wallet(d).args(["--password-file", "pw"])).0);
    assert_eq!(addr(wallet(d).args(["--password-file", "bad"])).1, address);
}
