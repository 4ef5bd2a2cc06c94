//! `prepare_registration`: the interactive flow that ends with the `register_service_node`
//! line to run in the operator's wallet. Every prompt takes B(ack) or C(ancel).

use std::io::{BufRead, Write};

use jsonrpsee::core::client::ClientT;
use jsonrpsee::core::params::ObjectParams;
use jsonrpsee::http_client::HttpClientBuilder;
use serde_json::{json, Value};

use crate::console::{coins, ConsoleError};

enum Answer {
    Text(String),
    Back,
    Cancel,
}

fn ask(prompt: &str) -> Answer {
    print!("{prompt} ");
    let _ = std::io::stdout().flush();
    let mut line = String::new();
    match std::io::stdin().lock().read_line(&mut line) {
        Ok(0) | Err(_) => Answer::Cancel,
        Ok(_) => match line.trim() {
            "b" | "B" | "back" | "Back" => Answer::Back,
            "c" | "C" | "cancel" | "Cancel" => Answer::Cancel,
            t => Answer::Text(t.to_owned()),
        },
    }
}

fn yes(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "y" | "yes" => Some(true),
        "n" | "no" => Some(false),
        _ => None,
    }
}

/// Parses a coin amount like `25` or `25.5` into atomic units.
fn parse_coins(s: &str) -> Option<u64> {
    sispop_chain::Atomic::parse_coins(s).map(|a| a.0)
}

async fn call(url: &str, method: &str, params: ObjectParams) -> Result<Value, ConsoleError> {
    let c = HttpClientBuilder::default()
        .build(format!("{}/json_rpc", url.trim_end_matches('/')))
        .map_err(|e| ConsoleError::Rpc(url.into(), e.to_string()))?;
    c.request::<Value, _>(method, params)
        .await
        .map_err(|e| ConsoleError::Rpc(url.into(), e.to_string()))
}

/// Runs the flow; returns the command (or a cancellation note).
pub async fn prepare_registration(url: &str) -> Result<String, ConsoleError> {
    let req = call(url, "get_staking_requirement", ObjectParams::new()).await?
        ["staking_requirement"]
        .as_u64()
        .unwrap_or(0);
    println!("Current staking requirement: {} sispop", coins(req));
    let cancelled = || Ok("Registration preparation cancelled.".to_owned());
    let mut step = 0;
    let mut solo = true;
    let mut fee = "100%".to_owned();
    let mut reserve_count = 0usize;
    let mut contributions: Vec<(String, u64)> = Vec::new();
    loop {
        match step {
            0 => match ask("Will the operator contribute the entire stake? (Y/Yes/N/No/C/Cancel):") {
                Answer::Cancel | Answer::Back => return cancelled(),
                Answer::Text(t) => match yes(&t) {
                    Some(s) => {
                        solo = s;
                        step = if solo { 4 } else { 1 };
                    }
                    None => println!("Please answer Y or N."),
                },
            },
            1 => match ask("Enter operator fee as a percentage of the total staking reward [0-100]%:") {
                Answer::Cancel => return cancelled(),
                Answer::Back => step = 0,
                Answer::Text(t) => match sispop_staking::command::percent_to_basis_points(&t) {
                    Ok(_) => {
                        fee = t;
                        step = 2;
                    }
                    Err(e) => println!("{e}"),
                },
            },
            2 => match ask("Do you want to reserve portions of the stake for other specific contributors? (Y/Yes/N/No/B/Back/C/Cancel):") {
                Answer::Cancel => return cancelled(),
                Answer::Back => step = 1,
                Answer::Text(t) => match yes(&t) {
                    Some(true) => step = 3,
                    Some(false) => {
                        reserve_count = 0;
                        step = 4;
                    }
                    None => println!("Please answer Y or N."),
                },
            },
            3 => match ask("Number of additional contributors [1-3]:") {
                Answer::Cancel => return cancelled(),
                Answer::Back => step = 2,
                Answer::Text(t) => match t.parse::<usize>() {
                    Ok(n @ 1..=3) => {
                        reserve_count = n;
                        step = 4;
                    }
                    _ => println!("Enter a number from 1 to 3."),
                },
            },
            4 => match ask("Enter the sispop address for the operator:") {
                Answer::Cancel => return cancelled(),
                Answer::Back => step = if solo { 0 } else { 2 },
                Answer::Text(addr) => {
                    contributions.clear();
                    if solo {
                        contributions.push((addr, req));
                        step = 7;
                    } else {
                        contributions.push((addr, 0));
                        step = 5;
                    }
                }
            },
            5 => {
                println!("Minimum amount that can be reserved: {} sispop", coins(req / 4));
                match ask("How much sispop does the operator want to reserve in the stake?") {
                    Answer::Cancel => return cancelled(),
                    Answer::Back => step = 4,
                    Answer::Text(t) => match parse_coins(&t) {
                        Some(a) if a >= req / 4 && a <= req => {
                            contributions[0].1 = a;
                            step = 6;
                        }
                        _ => println!("Enter an amount between {} and {}.", coins(req / 4), coins(req)),
                    },
                }
            }
            6 => {
                contributions.truncate(1);
                let mut back = false;
                for i in 0..reserve_count {
                    let addr = match ask(&format!("Enter the sispop address for contributor {}:", i + 1)) {
                        Answer::Cancel => return cancelled(),
                        Answer::Back => {
                            back = true;
                            break;
                        }
                        Answer::Text(a) => a,
                    };
                    let left = req.saturating_sub(contributions.iter().map(|c| c.1).sum());
                    let amount = match ask(&format!("How much sispop does contributor {} want to reserve ({} left)?", i + 1, coins(left))) {
                        Answer::Cancel => return cancelled(),
                        Answer::Back => {
                            back = true;
                            break;
                        }
                        Answer::Text(t) => parse_coins(&t),
                    };
                    match amount {
                        Some(a) if a > 0 && a <= left => contributions.push((addr, a)),
                        _ => {
                            println!("Enter an amount between 0 and {}.", coins(left));
                            back = true;
                            break;
                        }
                    }
                }
                if back {
                    step = 5;
                    continue;
                }
                let reserved: u64 = contributions.iter().map(|c| c.1).sum();
                if reserved < req {
                    println!("The remaining {} sispop is open to contribution by anyone.", coins(req - reserved));
                    match ask("Is this ok? (Y/Yes/N/No/B/Back/C/Cancel):") {
                        Answer::Cancel => return cancelled(),
                        Answer::Back => continue,
                        Answer::Text(t) if yes(&t) == Some(true) => {}
                        Answer::Text(_) => return cancelled(),
                    }
                }
                step = 7;
            }
            _ => {
                println!();
                println!("Operating costs as % of reward: {}", if solo { "100%".to_owned() } else { fee.clone() });
                println!("{:<12} {:<97} {:>22} {:>8}", "Contributor", "Address", "Contribution", "(%)");
                for (i, (a, amt)) in contributions.iter().enumerate() {
                    let who = if i == 0 { "Operator".to_owned() } else { format!("Contributor {i}") };
                    println!("{who:<12} {a:<97} {:>22} {:>7.2}%", coins(*amt), *amt as f64 * 100.0 / req.max(1) as f64);
                }
                match ask("Is the staking information correct? (Y/Yes/N/No/B/Back/C/Cancel):") {
                    Answer::Cancel => return cancelled(),
                    Answer::Back => step = if solo { 4 } else { 5 },
                    Answer::Text(t) if yes(&t) == Some(true) => break,
                    Answer::Text(_) => return cancelled(),
                }
            }
        }
    }
    let mut p = ObjectParams::new();
    let list: Vec<Value> = contributions
        .iter()
        .map(|(a, amt)| json!({"address": a, "amount": amt}))
        .collect();
    p.insert("operator_cut", if solo { "100%".to_owned() } else { fee })
        .map_err(|e| ConsoleError::Usage(e.to_string()))?;
    p.insert("contributions", list)
        .map_err(|e| ConsoleError::Usage(e.to_string()))?;
    let v = call(url, "get_service_node_registration_cmd", p).await?;
    Ok(format!(
        "Run this command in the wallet that will fund this registration:\n\n{}\n\nThe registration is valid while the chain stays on hard fork {}.",
        v["registration_cmd"].as_str().unwrap_or("?"),
        v["registration_cmd"].as_str().and_then(|c| c.split_whitespace().rev().nth(2)).unwrap_or("?")
    ))
}
