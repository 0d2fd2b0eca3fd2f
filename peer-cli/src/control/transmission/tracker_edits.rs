//! `torrent-set`'s tracker edits: `trackerList` (the whole list: announce
//! URLs one per line, a blank line between tiers), `trackerRemove`
//! (tracker ids, as `trackers[].id` shows them), `trackerReplace` (pairs of
//! an id and a URL) and `trackerAdd` (URLs, each in a tier of its own), in
//! that order, through [`Session::set_trackers`].

use super::Args;
use bittorrent_core::{InfoHash, Session};
use serde_json::Value;

/// Whether `a` edits trackers.
pub fn wanted(a: &Args) -> bool {
    [
        "trackerList",
        "trackerRemove",
        "trackerReplace",
        "trackerAdd",
    ]
    .iter()
    .any(|k| a.get(k).is_some())
}

fn urls(a: &Args, name: &str) -> Result<Vec<String>, String> {
    match a.get(name) {
        None => Ok(Vec::new()),
        Some(Value::Array(l)) => l
            .iter()
            .map(|u| {
                u.as_str()
                    .map(|u| u.trim().to_string())
                    .ok_or_else(|| format!("{name}: not a URL: {u}"))
            })
            .collect(),
        Some(v) => Err(format!("{name}: not a list of URLs: {v}")),
    }
}

fn id(v: &Value, name: &str) -> Result<usize, String> {
    v.as_u64()
        .and_then(|i| usize::try_from(i).ok())
        .ok_or_else(|| format!("{name}: not a tracker id: {v}"))
}

/// The tiers after the edits of `a` on `tiers`.
pub fn edited(a: &Args, tiers: Vec<Vec<String>>) -> Result<Vec<Vec<String>>, String> {
    let mut tiers = match a.str("trackerList")? {
        Some(list) => list
            .split("\n\n")
            .map(|t| {
                t.lines()
                    .map(str::trim)
                    .filter(|u| !u.is_empty())
                    .map(String::from)
                    .collect::<Vec<_>>()
            })
            .filter(|t| !t.is_empty())
            .collect(),
        None => tiers,
    };
    // (tier, url) by id, as torrent-get numbers them.
    let flat = |tiers: &[Vec<String>]| -> Vec<(usize, usize)> {
        tiers
            .iter()
            .enumerate()
            .flat_map(|(t, l)| (0..l.len()).map(move |i| (t, i)))
            .collect()
    };
    let ids = flat(&tiers);
    let mut gone = Vec::new();
    match a.get("trackerRemove") {
        None => {}
        Some(Value::Array(l)) => {
            for v in l {
                let i = id(v, "trackerRemove")?;
                gone.push(*ids.get(i).ok_or(format!("trackerRemove: no tracker {i}"))?);
            }
        }
        Some(v) => return Err(format!("trackerRemove: not a list of tracker ids: {v}")),
    }
    match a.get("trackerReplace") {
        None => {}
        Some(Value::Array(l)) => {
            for pair in l.chunks(2) {
                let [i, u] = pair else {
                    return Err("trackerReplace: pairs of a tracker id and a URL".into());
                };
                let i = id(i, "trackerReplace")?;
                let (t, k) = *ids
                    .get(i)
                    .ok_or(format!("trackerReplace: no tracker {i}"))?;
                let u = u.as_str().ok_or("trackerReplace: not a URL")?;
                tiers[t][k] = u.trim().to_string();
            }
        }
        Some(v) => return Err(format!("trackerReplace: not a list: {v}")),
    }
    // Removed from the back: the positions before stay valid.
    gone.sort_unstable();
    gone.dedup();
    for (t, k) in gone.into_iter().rev() {
        tiers[t].remove(k);
    }
    for u in urls(a, "trackerAdd")? {
        if !tiers.iter().flatten().any(|x| *x == u) {
            tiers.push(vec![u]);
        }
    }
    tiers.retain(|t| !t.is_empty());
    Ok(tiers)
}

/// Apply the edits of `a` to a torrent.
pub fn apply(s: &Session, a: &Args, ih: &InfoHash) -> Result<(), String> {
    let now = s.trackers(ih).unwrap_or_default();
    let tiers = edited(a, now)?;
    s.set_trackers(ih, tiers)
        .map_err(|e| format!("torrent-set: trackers: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(args: Value, tiers: &[&[&str]]) -> Result<Vec<Vec<String>>, String> {
        let Value::Object(m) = args else {
            unreachable!()
        };
        let tiers = tiers
            .iter()
            .map(|t| t.iter().map(|u| u.to_string()).collect())
            .collect();
        edited(&Args::new(&m), tiers)
    }

    #[test]
    fn lists_removals_replacements_and_additions() {
        let now: &[&[&str]] = &[&["http://a/", "http://b/"], &["udp://c:1"]];
        assert_eq!(
            run(
                json!({"trackerList": "http://x/\nhttp://y/\n\n\nudp://z:2\n"}),
                now
            )
            .unwrap(),
            vec![vec!["http://x/", "http://y/"], vec!["udp://z:2"]]
        );
        assert_eq!(
            run(json!({"trackerRemove": [0, 2]}), now).unwrap(),
            vec![vec!["http://b/"]]
        );
        assert_eq!(
            run(json!({"trackerReplace": [1, "http://q/"], "trackerAdd": ["http://a/", "http://n/"]}), now)
                .unwrap(),
            vec![vec!["http://a/", "http://q/"], vec!["udp://c:1"], vec!["http://n/"]]
        );
        assert!(run(json!({"trackerRemove": [3]}), now)
            .unwrap_err()
            .contains("no tracker 3"));
        assert!(run(json!({"trackerReplace": [0]}), now)
            .unwrap_err()
            .contains("pairs"));
        assert!(run(json!({"trackerAdd": "http://a/"}), now).is_err());
    }
}
