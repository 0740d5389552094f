//! Choosing which snapshot a run restores: the newest (default), the oldest within a window, or a random one
//! within a window. Sampling older snapshots (CIS Control 11.5, NIST SP 800-53 CP-9(2)) catches backups that
//! rot after they were written, which testing only the newest never does.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde::Deserialize;

use crate::model::Snapshot;
use crate::units::HumanDuration;

/// How to pick.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// The newest snapshot.
    #[default]
    Latest,
    /// The oldest snapshot taken within `window` of the run start.
    OldestWithin,
    /// A random snapshot taken within `window` of the run start.
    RandomWithin,
}

/// A strategy with its window and an optional name filter.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// How to pick.
    pub strategy: Strategy,
    /// The window for `oldest-within` / `random-within`.
    pub window: Option<Duration>,
    /// Only snapshots whose id matches.
    pub glob: Option<glob::Pattern>,
    /// Only snapshots of this backup group (`vm/101`): ids starting with `group/`.
    pub group: Option<String>,
}

/// No snapshot could be picked; the message says why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct NoSnapshot(pub String);

fn random_index(len: usize) -> usize {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(Timestamp::now().as_nanosecond() as u128);
    (h.finish() % len.max(1) as u64) as usize
}

impl Selection {
    /// The snapshots this selection considers (glob and group applied), in the given order.
    fn matching<'a>(&self, snapshots: &'a [Snapshot]) -> Vec<&'a Snapshot> {
        snapshots
            .iter()
            .filter(|s| self.glob.as_ref().is_none_or(|g| g.matches(&s.id)))
            .filter(|s| {
                self.group.as_ref().is_none_or(|g| {
                    s.id.strip_prefix(g.as_str())
                        .is_some_and(|rest| rest.starts_with('/'))
                })
            })
            .collect()
    }

    /// The newest snapshot this selection considers: the recovery point an incident would restore, whichever
    /// snapshot the strategy drills (RPA is measured from it).
    pub fn newest<'a>(&self, snapshots: &'a [Snapshot]) -> Option<&'a Snapshot> {
        self.matching(snapshots).into_iter().max_by_key(|s| s.time)
    }

    /// Picks from `snapshots` (newest first) as of `now`.
    pub fn pick<'a>(
        &self,
        snapshots: &'a [Snapshot],
        now: Timestamp,
    ) -> Result<&'a Snapshot, NoSnapshot> {
        let matching = self.matching(snapshots);
        if let (true, Some(g)) = (matching.is_empty(), &self.group)
            && !snapshots.is_empty()
        {
            return Err(NoSnapshot(format!(
                "the source holds {} snapshots but none of backup group {g}: the backup job for it may have stopped, or `group` is misspelled",
                snapshots.len()
            )));
        }
        if matching.is_empty() {
            return Err(NoSnapshot(match (&self.glob, snapshots.len()) {
                (_, 0) => "the source holds no snapshot at all: the backup job may have stopped"
                    .to_string(),
                (Some(g), n) => format!(
                    "none of the {n} snapshots matches the glob {:?}",
                    g.as_str()
                ),
                (None, _) => "no snapshot".to_string(),
            }));
        }
        let window = match self.strategy {
            Strategy::Latest => return Ok(matching[0]),
            _ => self.window.unwrap_or(Duration::from_secs(7 * 86_400)),
        };
        let since = now
            .checked_sub(SignedDuration::try_from(window).unwrap_or(SignedDuration::MAX))
            .unwrap_or(Timestamp::MIN);
        let inside: Vec<&Snapshot> = matching
            .iter()
            .copied()
            .filter(|s| s.time >= since)
            .collect();
        if inside.is_empty() {
            let newest_age = (now.as_second() - matching[0].time.as_second()) as f64;
            return Err(NoSnapshot(format!(
                "no snapshot within the last {} (the newest is {} old)",
                HumanDuration(window.as_secs_f64()),
                HumanDuration(newest_age)
            )));
        }
        Ok(match self.strategy {
            Strategy::OldestWithin => inside[inside.len() - 1],
            _ => inside[random_index(inside.len())],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{SnapshotKind, TimeSource};

    fn snap(id: &str, hours_ago: i64, now: Timestamp) -> Snapshot {
        Snapshot {
            id: id.to_string(),
            time: now - SignedDuration::from_hours(hours_ago),
            time_source: TimeSource::Name,
            size: None,
            kind: SnapshotKind::Tar,
            details: None,
        }
    }

    #[test]
    fn strategies() {
        let now = Timestamp::now();
        let snaps = vec![
            snap("c.tar", 1, now),
            snap("b.tar", 30, now),
            snap("a.tar", 300, now),
        ];
        let latest = Selection::default();
        assert_eq!(latest.pick(&snaps, now).unwrap().id, "c.tar");
        let oldest = Selection {
            strategy: Strategy::OldestWithin,
            window: Some(Duration::from_secs(48 * 3600)),
            glob: None,
            group: None,
        };
        assert_eq!(oldest.pick(&snaps, now).unwrap().id, "b.tar");
        let random = Selection {
            strategy: Strategy::RandomWithin,
            ..oldest.clone()
        };
        for _ in 0..20 {
            let id = &random.pick(&snaps, now).unwrap().id;
            assert!(id == "c.tar" || id == "b.tar", "{id} is outside the window");
        }
        let narrow = Selection {
            window: Some(Duration::from_secs(60)),
            ..oldest
        };
        assert!(
            narrow
                .pick(&snaps, now)
                .unwrap_err()
                .0
                .contains("no snapshot within the last")
        );
        let globbed = Selection {
            glob: glob::Pattern::new("a*").ok(),
            ..Selection::default()
        };
        assert_eq!(globbed.pick(&snaps, now).unwrap().id, "a.tar");
        let none = Selection {
            glob: glob::Pattern::new("z*").ok(),
            ..Selection::default()
        };
        assert!(
            none.pick(&snaps, now)
                .unwrap_err()
                .0
                .contains("matches the glob")
        );
        assert!(
            latest
                .pick(&[], now)
                .unwrap_err()
                .0
                .contains("no snapshot at all")
        );
        let grouped = Selection {
            group: Some("vm/1".into()),
            ..Selection::default()
        };
        let pbs = vec![snap("vm/10/x", 1, now), snap("vm/1/y", 2, now)];
        assert_eq!(grouped.pick(&pbs, now).unwrap().id, "vm/1/y");
        let other = Selection {
            group: Some("ct/9".into()),
            ..Selection::default()
        };
        assert!(
            other
                .pick(&pbs, now)
                .unwrap_err()
                .0
                .contains("none of backup group ct/9")
        );
    }
}
