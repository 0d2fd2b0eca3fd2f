//! The commands that talk to a running `peer daemon` through its control API:
//! `peer add`, `peer list`, `peer status`, `peer pause`, `peer resume`,
//! `peer remove`, `peer web`. Each reads `control.json` from `--state DIR` (or the
//! default state directory).

use crate::args::CliError;
use crate::cli::{AddArgs, IdArgs, JsonArgs, RemoveArgs, StateArg, WebArgs};
use crate::control;
use crate::progress::{human, plural};
use serde_json::{json, Value};
use std::path::PathBuf;

/// The state directory a control command talks to.
struct Parsed {
    state: PathBuf,
}

fn parse(a: StateArg) -> Result<Parsed, CliError> {
    Ok(Parsed {
        state: control::state_dir(a.state)?,
    })
}

/// Call the API; a non-2xx answer becomes a failure with its `error` text.
fn call(p: &Parsed, method: &str, path: &str, body: Option<&Value>) -> Result<Value, CliError> {
    let (status, v) = control::call(&p.state, method, path, body)?;
    if (200..300).contains(&status) {
        Ok(v)
    } else {
        let msg = v
            .get("error")
            .and_then(Value::as_str)
            .map_or_else(|| format!("HTTP {status}"), str::to_string);
        Err(CliError::Failed(msg))
    }
}

fn absolute(p: PathBuf) -> Result<PathBuf, CliError> {
    std::path::absolute(&p).map_err(|e| CliError::Failed(format!("{}: {e}", p.display())))
}

/// `peer add FILE.torrent|MAGNET... [--dir DIR] [--paused]`
pub fn add(a: AddArgs) -> Result<(), CliError> {
    let p = parse(a.state)?;
    let dir = absolute(a.dir.unwrap_or_else(|| PathBuf::from(".")))?;
    for t in &a.torrents {
        let mut body = json!({"dir": dir.to_string_lossy(), "paused": a.paused});
        // --only/--skip/--files and the torrent's limits: keys of POST /torrents.
        a.select.validate()?;
        if !a.select.only.is_empty() {
            body["only"] = json!(a.select.only);
        }
        if !a.select.skip.is_empty() {
            body["skip"] = json!(a.select.skip);
        }
        if let Some(f) = a.select.files() {
            body["files"] = json!(f);
        }
        if let Some(r) = a.rates.max_download_rate {
            body["max_download_rate"] = json!(r);
        }
        if let Some(r) = a.rates.max_upload_rate {
            body["max_upload_rate"] = json!(r);
        }
        if t.starts_with("magnet:") {
            body["magnet"] = json!(t);
        } else {
            body["path"] = json!(absolute(PathBuf::from(t))?.to_string_lossy());
        }
        let v = call(&p, "POST", "/torrents", Some(&body))?;
        if a.json {
            crate::outln!("{v}");
        } else {
            let id = v.get("id").and_then(Value::as_str).unwrap_or("?");
            let name = v.get("name").and_then(Value::as_str).unwrap_or("?");
            let extra = if v.get("state").and_then(Value::as_str) == Some("metadata") {
                " (fetching the metadata)"
            } else {
                ""
            };
            crate::outln!("added {} {name}{extra}", &id[..id.len().min(8)]);
        }
    }
    Ok(())
}

/// `peer list [--json]`
pub fn list(a: JsonArgs) -> Result<(), CliError> {
    let p = parse(a.state)?;
    let v = call(&p, "GET", "/torrents", None)?;
    if a.json {
        crate::outln!("{v}");
        return Ok(());
    }
    let rows = v.as_array().cloned().unwrap_or_default();
    crate::outln!(
        "{:<8}  {:<11}  {:>6}  {:>10}  {:>10}  {:>5}  NAME",
        "ID",
        "STATE",
        "%",
        "DOWN/s",
        "UP/s",
        "PEERS"
    );
    for t in rows {
        let s = |k: &str| t.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let n = |k: &str| t.get(k).and_then(Value::as_u64).unwrap_or(0);
        let id = s("id");
        let pct = t.get("progress").and_then(Value::as_f64).unwrap_or(0.0) * 100.0;
        crate::outln!(
            "{:<8}  {:<11}  {:>5.1}%  {:>10}  {:>10}  {:>5}  {}",
            &id[..id.len().min(8)],
            s("state"),
            pct,
            human(n("download_rate")),
            human(n("upload_rate")),
            n("peers"),
            s("name")
        );
    }
    Ok(())
}

/// `peer status [--json]`
pub fn status(a: JsonArgs) -> Result<(), CliError> {
    let p = parse(a.state)?;
    let v = call(&p, "GET", "/status", None)?;
    if a.json {
        crate::outln!("{v}");
        return Ok(());
    }
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    // `listen_addrs` (all of them, `--bind` twice) when the daemon says.
    let listens: Vec<&str> = v
        .get("listen_addrs")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .filter(|a: &Vec<&str>| !a.is_empty())
        .unwrap_or_default();
    let listen = if listens.is_empty() {
        s("listen_addr")
    } else {
        listens.join(" and ")
    };
    crate::outln!("listening on {listen}, peer id {}", s("peer_id"));
    crate::outln!(
        "{}: {} downloading, {} seeding, {} paused, {} fetching metadata",
        plural(n("torrents"), "torrent"),
        n("downloading"),
        n("seeding"),
        n("paused"),
        n("fetching_metadata")
    );
    crate::outln!(
        "{}, down {}/s, up {}/s, downloaded {}, uploaded {}",
        plural(n("peers"), "peer"),
        human(n("download_rate")),
        human(n("upload_rate")),
        human(n("downloaded")),
        human(n("uploaded"))
    );
    if let Some(m) = v.pointer("/port_mapping/message").and_then(Value::as_str) {
        crate::outln!("port mapping: {m}");
    }
    let v6_on = v
        .pointer("/port_mapping/ipv6/state")
        .and_then(Value::as_str)
        != Some("off");
    if let Some(m) = v
        .pointer("/port_mapping/ipv6/message")
        .and_then(Value::as_str)
    {
        if v6_on {
            crate::outln!("IPv6 pinhole: {m}");
        }
    }
    let ext: Vec<&str> = (v.get("external_addresses").and_then(Value::as_array))
        .map(|a| a.iter().filter_map(|e| e.get("ip")?.as_str()).collect())
        .unwrap_or_default();
    if !ext.is_empty() {
        crate::outln!("external address: {}", ext.join(", "));
    }
    Ok(())
}

/// `peer pause ID` / `peer resume ID`
pub fn pause_resume(a: IdArgs, action: &str) -> Result<(), CliError> {
    let p = parse(a.state)?;
    let id = a.id;
    let v = call(
        &p,
        "POST",
        &format!("/torrents/{id}/{action}"),
        Some(&json!({})),
    )?;
    let id = v.get("id").and_then(Value::as_str).unwrap_or("?");
    crate::outln!(
        "{} {}",
        if action == "pause" {
            "paused"
        } else {
            "resumed"
        },
        &id[..id.len().min(8)]
    );
    Ok(())
}

/// `peer verify ID`
pub fn verify(a: IdArgs) -> Result<(), CliError> {
    let p = parse(a.state)?;
    let id = a.id;
    let v = call(
        &p,
        "POST",
        &format!("/torrents/{id}/verify"),
        Some(&json!({})),
    )?;
    let id = v.get("id").and_then(Value::as_str).unwrap_or("?");
    crate::outln!("checking {}", &id[..id.len().min(8)]);
    Ok(())
}

/// `peer remove ID [--delete-data]`
pub fn remove(a: RemoveArgs) -> Result<(), CliError> {
    let p = parse(a.state)?;
    let id = a.id;
    let v = call(
        &p,
        "DELETE",
        &format!("/torrents/{id}?delete_data={}", a.delete_data),
        None,
    )?;
    let id = v.get("id").and_then(Value::as_str).unwrap_or("?");
    crate::outln!(
        "removed {}{}",
        &id[..id.len().min(8)],
        if a.delete_data { " and its data" } else { "" }
    );
    Ok(())
}

/// `peer web [--open]`: print (and with `--open`, open) a one-time login
/// link to the daemon's web interface.
pub fn web(a: WebArgs) -> Result<(), CliError> {
    let p = parse(a.state)?;
    let info = control::state::read_info(&p.state)
        .ok_or_else(|| CliError::Failed(control::state::NO_DAEMON.into()))?;
    let v = call(&p, "POST", "/web/code", Some(&json!({})))?;
    let path = v
        .get("path")
        .and_then(Value::as_str)
        .ok_or_else(|| CliError::Failed("control API: no login path in the answer".into()))?;
    let url = format!("http://127.0.0.1:{}{path}", info.port);
    crate::outln!("{url}");
    if a.open {
        let opened = std::process::Command::new("xdg-open")
            .arg(&url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn();
        if let Err(e) = opened {
            eprintln!("could not start xdg-open ({e}); open the link above in a browser");
        }
    }
    Ok(())
}
