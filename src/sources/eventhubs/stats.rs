//! Per-partition counters of an `eventhubs` source, read by `/metrics`: records made durable,
//! consumer lag (from librdkafka's statistics) and offset-commit latency and failures.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// The counters of one partition.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PartitionCounters {
    /// Records appended to the spool from this partition (by this instance).
    pub consumed: u64,
    /// Messages behind the partition's end; `None` while this instance does not own it.
    pub lag: Option<i64>,
    /// Offset commits done, and the seconds they took in total.
    pub commits: u64,
    pub commit_seconds: f64,
    pub commit_errors: u64,
}

/// The partitions a source has seen, keyed by partition number.
#[derive(Debug, Default)]
pub struct PartitionTable(Mutex<BTreeMap<i32, PartitionCounters>>);

impl PartitionTable {
    fn with<R>(&self, f: impl FnOnce(&mut BTreeMap<i32, PartitionCounters>) -> R) -> R {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut map)
    }

    /// A copy for rendering, in partition order.
    pub fn snapshot(&self) -> Vec<(i32, PartitionCounters)> {
        self.with(|m| m.iter().map(|(p, c)| (*p, c.clone())).collect())
    }

    pub fn add_consumed(&self, partition: i32, records: u64) {
        self.with(|m| m.entry(partition).or_default().consumed += records);
    }

    pub fn commit_done(&self, partitions: &[i32], took: Duration, ok: bool) {
        self.with(|m| {
            for p in partitions {
                let c = m.entry(*p).or_default();
                if ok {
                    c.commits += 1;
                    c.commit_seconds += took.as_secs_f64();
                } else {
                    c.commit_errors += 1;
                }
            }
        });
    }

    /// Replaces the lag of every partition: `owned` are the partitions assigned now.
    pub fn set_lags(&self, owned: &[(i32, i64)]) {
        self.with(|m| {
            for c in m.values_mut() {
                c.lag = None;
            }
            for (p, lag) in owned {
                m.entry(*p).or_default().lag = Some(*lag);
            }
        });
    }

    /// Forgets the lag of partitions this instance no longer owns.
    pub fn revoked(&self, partitions: &[i32]) {
        self.with(|m| {
            for p in partitions {
                if let Some(c) = m.get_mut(p) {
                    c.lag = None;
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_per_partition_and_drops_lag_of_revoked_ones() {
        let t = PartitionTable::default();
        t.add_consumed(1, 10);
        t.add_consumed(1, 5);
        t.commit_done(&[0, 1], Duration::from_millis(4), true);
        t.commit_done(&[1], Duration::from_millis(1), false);
        t.set_lags(&[(0, 7), (1, 3)]);
        t.revoked(&[0]);
        let s = t.snapshot();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].1.lag, None);
        assert_eq!(s[0].1.commits, 1);
        assert_eq!(
            s[1].1,
            PartitionCounters {
                consumed: 15,
                lag: Some(3),
                commits: 1,
                commit_seconds: 0.004,
                commit_errors: 1,
            }
        );
        t.set_lags(&[(0, 1)]);
        let s = t.snapshot();
        assert_eq!((s[0].1.lag, s[1].1.lag), (Some(1), None));
    }
}
