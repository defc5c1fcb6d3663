//! The position of a windowed poller, per scope (subscription, tenant, content type): the cursor
//! (everything with an event time before it has been read), the first start, and the ids already
//! spooled — as 64-bit keyed hashes in one-minute slices of event time, so an id costs ~10–20
//! bytes and is forgotten, slice by slice, once no window can return it again. Serialized into
//! the spool with each batch: the whole checkpoint now and then, in between only what a page
//! changed (a [`Delta`]), so neither a window of many pages nor a poll rewrites every id.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Checkpoint format written by this build.
pub const VERSION: u32 = 2;
/// The format before ids were hashed (ids as strings): still read, its ids hashed when loaded.
const VERSION_1: u32 = 1;

/// Ids one source remembers at most, over all its scopes: 2,000,000 ids are ~21 MB encoded
/// (10.7 bytes each), so a whole checkpoint stays well below the spool's per-record limit
/// (`spool::MAX_PAYLOAD`, 64 MiB) and a third of a segment; in memory they take 20–40 MB.
/// Past it the oldest slices are forgotten (with a warning): late copies of them could repeat.
pub const MAX_IDS: usize = 2_000_000;

/// Width of a slice of event time, ms: ids are looked up in the slice of their event time and
/// forgotten a slice at a time.
pub const SLICE_MS: i64 = 60_000;
/// The slice of ids whose event time is not known (read from a version 1 checkpoint): looked up
/// for every id while it lasts, forgotten when its newest id is.
const ANY_TIME: i64 = i64::MIN;

/// Deltas may add up to the whole checkpoint's size (but at least `MIN_DELTAS` and at most
/// `MAX_DELTAS` bytes) before the next batch writes the whole checkpoint again: checkpoint bytes
/// grow with what changed, and the spool's copy of the chain (which it repeats at the start of
/// every segment) stays below the whole checkpoint plus 8 MiB.
const MIN_DELTAS: usize = 64 * 1024;
const MAX_DELTAS: usize = 8 << 20;

/// The secret key ids are hashed with: random per source (kept in its checkpoint), so ids that
/// collide cannot be chosen in advance, and the hash set cannot be flooded into one bucket.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct IdKey([u64; 2]);

impl fmt::Debug for IdKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("IdKey(..)")
    }
}

impl IdKey {
    pub fn random() -> IdKey {
        IdKey([rand::random(), rand::random()])
    }

    /// SipHash-2-4 of `id` under this key: two ids of one set collide with odds of about
    /// 1 in 2^64 / (ids in the set), e.g. 5·10⁻¹⁴ per new id with a million remembered.
    pub fn hash(&self, id: &str) -> u64 {
        siphash24(self.0[0], self.0[1], id.as_bytes())
    }
}

impl Serialize for IdKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("{:016x}{:016x}", self.0[0], self.0[1]))
    }
}

impl<'de> Deserialize<'de> for IdKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<IdKey, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        let part = |r: std::ops::Range<usize>| {
            text.get(r)
                .and_then(|h| u64::from_str_radix(h, 16).ok())
                .ok_or_else(|| de::Error::custom("the id key is not 32 hex digits"))
        };
        if text.len() != 32 {
            return Err(de::Error::custom("the id key is not 32 hex digits"));
        }
        Ok(IdKey([part(0..16)?, part(16..32)?]))
    }
}

/// SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast short-input PRF", 2012,
/// <https://www.aumasson.jp/siphash/siphash.pdf>), with a 64-bit result. Written out because
/// the hashes are kept across restarts and upgrades: std's hashers may change between releases.
fn siphash24(k0: u64, k1: u64, data: &[u8]) -> u64 {
    let mut v = [
        k0 ^ 0x736f_6d65_7073_6575,
        k1 ^ 0x646f_7261_6e64_6f6d,
        k0 ^ 0x6c79_6765_6e65_7261,
        k1 ^ 0x7465_6462_7974_6573,
    ];
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    let mut compress = |m: u64| {
        v[3] ^= m;
        round(&mut v);
        round(&mut v);
        v[0] ^= m;
    };
    let chunks = data.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        compress(u64::from_le_bytes(c.try_into().expect("8 bytes")));
    }
    let mut last = (data.len() as u64) << 56;
    for (i, b) in tail.iter().enumerate() {
        last |= u64::from(*b) << (8 * i);
    }
    compress(last);
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

/// The keyed hashes are already uniform: the hash table uses them as they are.
#[derive(Debug, Default, Clone, Copy)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Ids = HashSet<u64, BuildHasherDefault<Identity>>;

/// The ids of one slice of event time.
#[derive(Clone, Default, PartialEq, Eq)]
struct Slice {
    /// The latest time any of them must be kept for (their event time, or for Office 365 records
    /// their blob's creation time): the slice is forgotten once that is before the horizon.
    keep_ms: i64,
    ids: Ids,
}

/// Ids already delivered (keyed hashes, see [`IdKey`]), by the slice of their event time.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SeenSet {
    slices: BTreeMap<i64, Slice>,
    len: usize,
}

impl fmt::Debug for SeenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SeenSet({} ids in {} slices)",
            self.len,
            self.slices.len()
        )
    }
}

/// The slice holding event time `t`.
fn slice_of(t: i64) -> i64 {
    t.saturating_sub(t.rem_euclid(SLICE_MS)).max(ANY_TIME + 1)
}

impl SeenSet {
    /// Whether hash `h` of an id with event time `time_ms` is in the set.
    pub fn contains(&self, h: u64, time_ms: i64) -> bool {
        let has = |k: i64| self.slices.get(&k).is_some_and(|s| s.ids.contains(&h));
        has(slice_of(time_ms)) || has(ANY_TIME)
    }

    /// Records hash `h` of an id with event time `time_ms`, to be kept while `keep_ms` is not
    /// before the horizon; false if it was already there (a duplicate).
    pub fn insert(&mut self, h: u64, time_ms: i64, keep_ms: i64) -> bool {
        if self.contains(h, time_ms) {
            return false;
        }
        self.add(slice_of(time_ms), h, keep_ms);
        true
    }

    fn add(&mut self, slice: i64, h: u64, keep_ms: i64) {
        let s = self.slices.entry(slice).or_insert_with(|| Slice {
            keep_ms,
            ids: Ids::default(),
        });
        s.keep_ms = s.keep_ms.max(keep_ms);
        if s.ids.insert(h) {
            self.len += 1;
        }
    }

    /// Adds every id of `other`.
    pub fn merge(&mut self, other: SeenSet) {
        for (k, s) in other.slices {
            match self.slices.get_mut(&k) {
                None => {
                    self.len += s.ids.len();
                    self.slices.insert(k, s);
                }
                Some(mine) => {
                    mine.keep_ms = mine.keep_ms.max(s.keep_ms);
                    let before = mine.ids.len();
                    mine.ids.extend(s.ids);
                    self.len += mine.ids.len() - before;
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Forgets the slices whose ids all have a keep time before `before_ms` (no window reaches
    /// back that far); returns how many ids were forgotten. A slice is kept whole, so ids up to
    /// a slice width older than `before_ms` may stay a little longer.
    pub fn prune_before(&mut self, before_ms: i64) -> usize {
        let mut dropped = 0;
        self.slices.retain(|_, s| {
            let keep = s.keep_ms >= before_ms;
            if !keep {
                dropped += s.ids.len();
            }
            keep
        });
        self.len -= dropped;
        dropped
    }

    /// The keep time and key of every slice.
    fn slice_keys(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.slices.iter().map(|(k, s)| (s.keep_ms, *k))
    }

    fn remove_slice(&mut self, k: i64) -> usize {
        let n = self.slices.remove(&k).map_or(0, |s| s.ids.len());
        self.len -= n;
        n
    }

    /// `slice | keep | n | n hashes`, little-endian, slice after slice.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.slices.len() * 20 + self.len * 8);
        for (k, s) in &self.slices {
            out.extend_from_slice(&k.to_le_bytes());
            out.extend_from_slice(&s.keep_ms.to_le_bytes());
            out.extend_from_slice(&(s.ids.len() as u32).to_le_bytes());
            for h in &s.ids {
                out.extend_from_slice(&h.to_le_bytes());
            }
        }
        out
    }

    fn decode(mut bytes: &[u8]) -> Option<SeenSet> {
        fn take<const N: usize>(b: &mut &[u8]) -> Option<[u8; N]> {
            let (head, rest) = b.split_at_checked(N)?;
            *b = rest;
            head.try_into().ok()
        }
        let mut set = SeenSet::default();
        while !bytes.is_empty() {
            let k = i64::from_le_bytes(take(&mut bytes)?);
            let keep = i64::from_le_bytes(take(&mut bytes)?);
            let n = u32::from_le_bytes(take(&mut bytes)?) as usize;
            let (ids, rest) = bytes.split_at_checked(n.checked_mul(8)?)?;
            bytes = rest;
            let mut slice = Slice {
                keep_ms: keep,
                ids: Ids::with_capacity_and_hasher(n, Default::default()),
            };
            slice.ids.extend(
                ids.chunks_exact(8)
                    .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))),
            );
            set.len += slice.ids.len();
            if set.slices.insert(k, slice).is_some() {
                return None;
            }
        }
        Some(set)
    }
}

impl Serialize for SeenSet {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&base64::display::Base64Display::new(
            &self.encode(),
            &STANDARD,
        ))
    }
}

impl<'de> Deserialize<'de> for SeenSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SeenSet, D::Error> {
        struct Packed;
        impl Visitor<'_> for Packed {
            type Value = SeenSet;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("packed seen ids in base64")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<SeenSet, E> {
                let bytes = STANDARD
                    .decode(v)
                    .map_err(|_| E::custom("seen ids are not base64"))?;
                SeenSet::decode(&bytes).ok_or_else(|| E::custom("seen ids are cut short"))
            }
        }
        d.deserialize_str(Packed)
    }
}

/// One scope's position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScopeState {
    /// Where reading began on the first start, ms since the epoch; never read before it.
    pub since_ms: i64,
    /// Every record with an event time before this has been read, ms since the epoch.
    pub cursor_ms: i64,
    /// When the window that ended at the cursor began to be read (ms since the epoch): only
    /// records of the last `overlap` before then can still turn up late.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_ms: Option<i64>,
    /// How far past the cursor the next window reaches (narrowed when windows are large).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_ms: Option<i64>,
    #[serde(default)]
    pub seen: SeenSet,
    /// Containers read whole (Office 365 content blobs, by `contentId`, at their
    /// `contentCreated`), so a re-listing does not fetch them again.
    #[serde(default, skip_serializing_if = "SeenSet::is_empty")]
    pub done: SeenSet,
}

impl ScopeState {
    pub fn new(start_ms: i64) -> Self {
        ScopeState {
            since_ms: start_ms,
            cursor_ms: start_ms,
            read_ms: None,
            span_ms: None,
            seen: SeenSet::default(),
            done: SeenSet::default(),
        }
    }
}

/// What one batch changed in one scope: its position after the batch, the ids it added, and
/// the horizon its ids were pruned at (a window's end). Written as a spool checkpoint delta.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    pub version: u32,
    pub scope: String,
    pub since_ms: i64,
    pub cursor_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub span_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "SeenSet::is_empty")]
    pub seen: SeenSet,
    #[serde(default, skip_serializing_if = "SeenSet::is_empty")]
    pub done: SeenSet,
    /// Seen ids to be kept only if kept since this time (after the adds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune_seen: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune_done: Option<i64>,
}

impl Delta {
    /// A delta that leaves `state` where it is; the caller adds ids and moves it.
    pub fn at(scope: &str, state: &ScopeState) -> Delta {
        Delta {
            version: VERSION,
            scope: scope.to_owned(),
            since_ms: state.since_ms,
            cursor_ms: state.cursor_ms,
            read_ms: state.read_ms,
            span_ms: state.span_ms,
            seen: SeenSet::default(),
            done: SeenSet::default(),
            prune_seen: None,
            prune_done: None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// Bytes of the checkpoint chain the spool holds for a source since its last whole checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ChainLen {
    base: usize,
    deltas: usize,
}

/// What to append with a batch after [`Checkpoint::commit`].
#[derive(Debug)]
pub enum Append {
    /// The whole checkpoint; `dropped` ids were forgotten to keep it within [`MAX_IDS`].
    Full { bytes: Vec<u8>, dropped: usize },
    /// A delta on the chain in the spool.
    Delta(Vec<u8>),
}

/// The whole checkpoint of one source.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    pub key: IdKey,
    pub scopes: BTreeMap<String, ScopeState>,
    /// The chain in the spool this checkpoint continues; `None` until a whole one is written
    /// (a new checkpoint, or one read from an older version).
    #[serde(skip)]
    chain: Option<ChainLen>,
    /// Per scope, the cursor this process last wrote to the spool (see
    /// [`Checkpoint::advance_unwritten`]).
    #[serde(skip)]
    written: BTreeMap<String, i64>,
}

/// How far (in cursor time) a scope's cursor may move without being written while its windows
/// bring nothing new: an idle poll costs no spool write (no fdatasync), and a restart reads at
/// most this much more again, deduplicated as after any crash.
pub const IDLE_WRITE_EVERY_MS: i64 = 5 * 60 * 1000;

impl PartialEq for Checkpoint {
    fn eq(&self, other: &Self) -> bool {
        self.version == other.version && self.key == other.key && self.scopes == other.scopes
    }
}

impl Default for Checkpoint {
    fn default() -> Self {
        Checkpoint::new()
    }
}

impl Checkpoint {
    /// An empty checkpoint with a new key.
    pub fn new() -> Checkpoint {
        Checkpoint {
            version: VERSION,
            key: IdKey::random(),
            scopes: BTreeMap::new(),
            chain: None,
            written: BTreeMap::new(),
        }
    }

    /// The keyed hash of `id` that the seen sets hold.
    pub fn hash(&self, id: &str) -> u64 {
        self.key.hash(id)
    }

    /// Ids remembered, over every scope.
    pub fn ids(&self) -> usize {
        self.scopes.values().map(|s| s.seen.len()).sum()
    }

    /// Forgets the state of `scope` (no longer polled); the next batch writes the whole
    /// checkpoint, since a delta cannot say that a scope is gone. True if it had one.
    pub fn forget_scope(&mut self, scope: &str) -> bool {
        let gone = self.scopes.remove(scope).is_some();
        if gone {
            self.chain = None;
            self.written.remove(scope);
        }
        gone
    }

    /// Applies `delta` without anything to write when it adds no id and only moves its scope's
    /// cursor less than [`IDLE_WRITE_EVERY_MS`] past the cursor this process last wrote for it
    /// (`false`, nothing applied, otherwise: the caller commits it). The spool then holds an
    /// earlier state of this checkpoint, which is what a crash at that point would have left:
    /// a restart reads those windows again and its seen ids drop what was sent.
    pub fn advance_unwritten(&mut self, delta: &Delta) -> bool {
        let quiet = delta.seen.is_empty() && delta.done.is_empty();
        let near = self
            .written
            .get(&delta.scope)
            .is_some_and(|&w| delta.cursor_ms >= w && delta.cursor_ms - w < IDLE_WRITE_EVERY_MS);
        let same_scope = self
            .scopes
            .get(&delta.scope)
            .is_some_and(|s| s.since_ms == delta.since_ms);
        if !(quiet && near && same_scope) {
            return false;
        }
        self.apply(delta.clone());
        true
    }

    /// Applies what `d` says to its scope.
    fn apply(&mut self, d: Delta) {
        let state = self
            .scopes
            .entry(d.scope)
            .or_insert_with(|| ScopeState::new(d.since_ms));
        state.since_ms = d.since_ms;
        state.cursor_ms = d.cursor_ms;
        state.read_ms = d.read_ms;
        state.span_ms = d.span_ms;
        state.seen.merge(d.seen);
        state.done.merge(d.done);
        if let Some(t) = d.prune_seen {
            state.seen.prune_before(t);
        }
        if let Some(t) = d.prune_done {
            state.done.prune_before(t);
        }
    }

    /// Applies `delta` and says what to append with the batch: the delta, or the whole
    /// checkpoint when no chain is known yet, when the deltas have outgrown the last whole one,
    /// or when more than [`MAX_IDS`] ids are remembered (the oldest slices are then forgotten,
    /// down to 90 % of it, so the next pages do not each write the whole checkpoint again).
    /// The caller appends it; if that fails the source stops, so this state is not used again.
    pub fn commit(&mut self, delta: Delta) -> Append {
        self.commit_within(delta, MAX_IDS)
    }

    /// [`Checkpoint::commit`] with at most `max` ids.
    fn commit_within(&mut self, delta: Delta, max: usize) -> Append {
        self.written.insert(delta.scope.clone(), delta.cursor_ms);
        let bytes = delta.encode();
        self.apply(delta);
        let over = self.ids() > max;
        let grown = self
            .chain
            .is_none_or(|c| c.deltas + bytes.len() > c.base.clamp(MIN_DELTAS, MAX_DELTAS));
        if over || grown {
            let dropped = if over { self.bound(max - max / 10) } else { 0 };
            let bytes = self.encode();
            self.chain = Some(ChainLen {
                base: bytes.len(),
                deltas: 0,
            });
            Append::Full { bytes, dropped }
        } else {
            if let Some(c) = self.chain.as_mut() {
                c.deltas += bytes.len();
            }
            Append::Delta(bytes)
        }
    }

    /// Keeps at most `max` seen ids over all scopes, forgetting the slices kept for the
    /// shortest time first; returns how many ids were forgotten.
    pub fn bound(&mut self, max: usize) -> usize {
        let mut excess = self.ids().saturating_sub(max);
        if excess == 0 {
            return 0;
        }
        let mut slices: Vec<(i64, i64, String)> = self
            .scopes
            .iter()
            .flat_map(|(name, s)| s.seen.slice_keys().map(move |(keep, k)| (keep, k, name)))
            .map(|(keep, k, name)| (keep, k, name.clone()))
            .collect();
        slices.sort_unstable();
        let mut dropped = 0;
        for (_, k, name) in slices {
            if excess == 0 {
                break;
            }
            if let Some(state) = self.scopes.get_mut(&name) {
                let n = state.seen.remove_slice(k);
                dropped += n;
                excess = excess.saturating_sub(n);
            }
        }
        dropped
    }

    /// Reads a checkpoint chain as the spool keeps it (a whole checkpoint, then [`Delta`]s);
    /// `None` when absent or not one this build understands. A version 1 chain is read with
    /// its ids hashed under a new key; the next batch then writes a whole version 2 checkpoint.
    pub fn decode_chain(parts: &[Vec<u8>]) -> Option<Checkpoint> {
        let (base, deltas) = parts.split_first()?;
        if version_of(base)? == VERSION_1 {
            return legacy::decode_chain(base, deltas);
        }
        let mut ck = Checkpoint::decode(base)?;
        for d in deltas {
            let d = serde_json::from_slice::<Delta>(d)
                .ok()
                .filter(|d| d.version == VERSION)?;
            ck.apply(d);
        }
        ck.chain = Some(ChainLen {
            base: base.len(),
            deltas: deltas.iter().map(Vec::len).sum(),
        });
        Some(ck)
    }

    /// Reads a whole checkpoint (this version's or version 1); `None` when absent or not one
    /// this build understands.
    pub fn decode(bytes: &[u8]) -> Option<Checkpoint> {
        match version_of(bytes)? {
            VERSION => serde_json::from_slice::<Checkpoint>(bytes).ok(),
            VERSION_1 => legacy::decode_chain(bytes, &[]),
            _ => None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The `version` of a checkpoint or delta.
fn version_of(bytes: &[u8]) -> Option<u32> {
    #[derive(Deserialize)]
    struct Version {
        version: u32,
    }
    serde_json::from_slice::<Version>(bytes)
        .ok()
        .map(|v| v.version)
}

/// Version 1: ids as strings with their time; deltas with a page's ids.
mod legacy {
    use super::*;

    #[derive(Deserialize)]
    struct CheckpointV1 {
        scopes: BTreeMap<String, ScopeV1>,
    }

    #[derive(Deserialize)]
    struct ScopeV1 {
        since_ms: i64,
        cursor_ms: i64,
        #[serde(default)]
        seen: HashMap<String, i64>,
        #[serde(default)]
        done: HashMap<String, i64>,
    }

    #[derive(Deserialize)]
    struct DeltaV1 {
        version: u32,
        scope: String,
        seen: Vec<(String, i64)>,
    }

    /// A version 1 chain as a checkpoint of this version. Its seen ids were kept with a time
    /// that is not always their event time (Office 365 kept its blob's), so they go to the
    /// slice looked up for every id, kept until the newest of them is pruned. Blob ids were
    /// kept with their blob's creation time, which is what they are looked up by.
    pub(super) fn decode_chain(base: &[u8], deltas: &[Vec<u8>]) -> Option<Checkpoint> {
        let v1 = serde_json::from_slice::<CheckpointV1>(base).ok()?;
        let mut ck = Checkpoint::new();
        for (name, s) in v1.scopes {
            let mut state = ScopeState::new(s.since_ms);
            state.cursor_ms = s.cursor_ms;
            for (id, t) in &s.seen {
                state.seen.add(ANY_TIME, ck.key.hash(id), *t);
            }
            for (id, t) in &s.done {
                state.done.insert(ck.key.hash(id), *t, *t);
            }
            ck.scopes.insert(name, state);
        }
        for d in deltas {
            let d = serde_json::from_slice::<DeltaV1>(d)
                .ok()
                .filter(|d| d.version == VERSION_1)?;
            let key = ck.key;
            let state = ck.scopes.get_mut(&d.scope)?;
            for (id, t) in &d.seen {
                state.seen.add(ANY_TIME, key.hash(id), *t);
            }
        }
        Some(ck)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;

    #[test]
    fn siphash_matches_the_reference_vectors() {
        // Appendix A of the SipHash paper: key 00..0f, messages 00..(n-1).
        let k0 = u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]);
        let k1 = u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]);
        let msg: Vec<u8> = (0u8..64).collect();
        assert_eq!(siphash24(k0, k1, &msg[..0]), 0x726f_db47_dd0e_0e31);
        assert_eq!(siphash24(k0, k1, &msg[..15]), 0xa129_ca61_49be_45e5);
        assert_eq!(siphash24(k0, k1, &msg[..8]), 0x93f5_f579_9a93_2462);
        assert_eq!(siphash24(k0, k1, &msg[..63]), 0x958a_324c_eb06_4572);
    }

    #[test]
    fn seen_set_dedupes_by_slice_and_prunes_by_keep_time() {
        let key = IdKey::random();
        let (a, b, c) = (key.hash("a"), key.hash("b"), key.hash("c"));
        let mut s = SeenSet::default();
        assert!(s.insert(a, 10 * MIN, 10 * MIN));
        assert!(
            !s.insert(a, 10 * MIN + 5, 10 * MIN),
            "same minute: a duplicate"
        );
        assert!(s.contains(a, 10 * MIN + 59_999));
        assert!(
            !s.contains(a, 11 * MIN),
            "looked up in the slice of its time"
        );
        assert!(s.insert(b, 20 * MIN, 20 * MIN));
        // Kept for its blob's time, not its own.
        assert!(s.insert(c, 5 * MIN, 30 * MIN));
        assert_eq!(s.len(), 3);
        assert_eq!(s.prune_before(20 * MIN), 1);
        assert!(!s.contains(a, 10 * MIN) && s.contains(b, 20 * MIN) && s.contains(c, 5 * MIN));
        assert_eq!(s.prune_before(25 * MIN), 1);
        assert!(s.contains(c, 5 * MIN) && s.len() == 1);
    }

    #[test]
    fn seen_sets_round_trip_and_merge() {
        let key = IdKey::random();
        let mut s = SeenSet::default();
        for i in 0..1000i64 {
            s.insert(key.hash(&format!("id-{i}")), i * 1000, i * 1000);
        }
        let back = SeenSet::decode(&s.encode()).unwrap();
        assert_eq!(back, s);
        assert_eq!(back.len(), 1000);
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(serde_json::from_str::<SeenSet>(&json).unwrap(), s);
        let mut half = SeenSet::default();
        for i in 500..1500i64 {
            half.insert(key.hash(&format!("id-{i}")), i * 1000, i * 1000);
        }
        let mut merged = s.clone();
        merged.merge(half);
        assert_eq!(merged.len(), 1500);
        assert!(SeenSet::decode(&s.encode()[..30]).is_none(), "cut short");
    }

    #[test]
    fn round_trips_and_rejects_other_versions() {
        let mut c = Checkpoint::new();
        let mut st = ScopeState::new(1_000);
        st.seen.insert(c.hash("x"), 1_500, 1_500);
        st.read_ms = Some(2_000);
        c.scopes.insert("sub".into(), st);
        let bytes = c.encode();
        assert_eq!(Checkpoint::decode(&bytes), Some(c.clone()));
        c.version = 99;
        assert_eq!(Checkpoint::decode(&c.encode()), None);
        assert_eq!(Checkpoint::decode(b"{not json"), None);
    }

    #[test]
    fn deltas_follow_a_whole_checkpoint_and_decode_to_the_same_state() {
        let mut ck = Checkpoint::new();
        ck.scopes.insert("s".into(), ScopeState::new(0));
        let mut parts = Vec::new();
        for page in 0..50i64 {
            let mut d = Delta::at("s", &ck.scopes["s"]);
            for i in 0..20 {
                let t = page * MIN + i;
                d.seen.insert(ck.hash(&format!("{page}-{i}")), t, t);
            }
            if page % 10 == 9 {
                d.cursor_ms = page * MIN;
                d.read_ms = Some(page * MIN + 5);
                d.prune_seen = Some(page * MIN - 5 * MIN);
            }
            match ck.commit(d) {
                Append::Full { bytes, dropped } => {
                    assert_eq!(dropped, 0);
                    parts = vec![bytes];
                }
                Append::Delta(bytes) => parts.push(bytes),
            }
        }
        assert!(parts.len() > 10, "mostly deltas: {} parts", parts.len());
        let back = Checkpoint::decode_chain(&parts).unwrap();
        assert_eq!(back, ck);
        assert_eq!(back.scopes["s"].cursor_ms, 49 * MIN);
        assert!(back.ids() < 50 * 20, "pruned: {}", back.ids());
        assert_eq!(back.chain, ck.chain, "the chain's size is known again");
    }

    #[test]
    fn a_forgotten_scope_is_gone_from_the_next_whole_checkpoint() {
        let mut ck = Checkpoint::new();
        for scope in ["a", "b"] {
            ck.scopes.insert(scope.into(), ScopeState::new(0));
            let mut d = Delta::at(scope, &ck.scopes[scope]);
            d.cursor_ms = MIN;
            ck.commit(d);
        }
        let mut d = Delta::at("a", &ck.scopes["a"]);
        d.seen.insert(ck.hash("x"), MIN, MIN);
        assert!(matches!(ck.commit(d), Append::Delta(_)), "a chain is known");
        assert!(ck.forget_scope("b") && !ck.forget_scope("b"));
        // A delta cannot say that a scope is gone: the next append is the whole checkpoint.
        let mut d = Delta::at("a", &ck.scopes["a"]);
        d.seen.insert(ck.hash("y"), MIN, MIN);
        let Append::Full { bytes, .. } = ck.commit(d) else {
            panic!("the append after a forgotten scope is whole");
        };
        let back = Checkpoint::decode_chain(&[bytes]).unwrap();
        assert_eq!(back.scopes.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(back.scopes["a"].seen.len(), 2);
    }

    #[test]
    fn idle_cursor_moves_are_written_only_every_few_minutes() {
        let mut ck = Checkpoint::new();
        ck.scopes.insert("s".into(), ScopeState::new(0));
        // Not written yet in this process: written.
        let mut d = Delta::at("s", &ck.scopes["s"]);
        d.cursor_ms = MIN;
        assert!(!ck.advance_unwritten(&d));
        let Append::Full { bytes, .. } = ck.commit(d) else {
            panic!("the first append is whole");
        };
        // Idle windows within five minutes of cursor time: applied, nothing to write.
        for m in 2..6 {
            let mut d = Delta::at("s", &ck.scopes["s"]);
            d.cursor_ms = m * MIN;
            d.prune_seen = Some(m * MIN - 60 * MIN);
            assert!(ck.advance_unwritten(&d), "minute {m}");
            assert_eq!(ck.scopes["s"].cursor_ms, m * MIN);
        }
        // An id to remember is always written; so is a cursor five minutes past the written.
        let mut with_id = Delta::at("s", &ck.scopes["s"]);
        with_id.seen.insert(ck.hash("x"), 5 * MIN, 5 * MIN);
        assert!(!ck.advance_unwritten(&with_id));
        let mut far = Delta::at("s", &ck.scopes["s"]);
        far.cursor_ms = 6 * MIN;
        assert!(!ck.advance_unwritten(&far));
        // What the spool holds is the state last written: the older cursor.
        let back = Checkpoint::decode_chain(&[bytes]).unwrap();
        assert_eq!(back.scopes["s"].cursor_ms, MIN);
        // A resumed checkpoint writes each scope once before it skips.
        let mut resumed = back;
        let mut d = Delta::at("s", &resumed.scopes["s"]);
        d.cursor_ms = 2 * MIN;
        assert!(!resumed.advance_unwritten(&d));
    }

    #[test]
    fn a_delta_for_a_new_scope_creates_it() {
        let mut ck = Checkpoint::new();
        let Append::Full { bytes, .. } = ck.commit(Delta::at("a", &ScopeState::new(5))) else {
            panic!("the first append is whole");
        };
        let mut d = Delta::at("b", &ScopeState::new(7));
        d.seen.insert(ck.hash("x"), 9, 9);
        let Append::Delta(delta) = ck.commit(d) else {
            panic!("a delta");
        };
        let back = Checkpoint::decode_chain(&[bytes, delta]).unwrap();
        assert!(back.scopes["b"].seen.contains(back.hash("x"), 9));
        assert_eq!(back.scopes["b"].since_ms, 7);
    }

    #[test]
    fn the_bound_forgets_the_oldest_slices_over_all_scopes() {
        let mut ck = Checkpoint::new();
        for (scope, base) in [("a", 0i64), ("b", 100)] {
            let mut st = ScopeState::new(0);
            for i in 0..30i64 {
                let t = (base + i) * MIN;
                st.seen.insert(ck.hash(&format!("{scope}{i}")), t, t);
            }
            ck.scopes.insert(scope.into(), st);
        }
        assert_eq!(ck.bound(45), 15);
        assert_eq!(ck.ids(), 45);
        assert_eq!(ck.scopes["a"].seen.len(), 15, "a's oldest went first");
        assert_eq!(ck.scopes["b"].seen.len(), 30);
    }

    #[test]
    fn past_the_limit_the_oldest_are_forgotten_with_room_to_spare() {
        let mut ck = Checkpoint::new();
        let mut parts = Vec::new();
        let (mut fulls, mut dropped_total) = (0, 0);
        for page in 0..40i64 {
            let mut d = Delta::at("s", &ScopeState::new(0));
            for i in 0..5 {
                let t = page * MIN + i;
                d.seen.insert(ck.hash(&format!("{page}-{i}")), t, t);
            }
            match ck.commit_within(d, 100) {
                Append::Full { bytes, dropped } => {
                    fulls += 1;
                    dropped_total += dropped;
                    parts = vec![bytes];
                }
                Append::Delta(bytes) => parts.push(bytes),
            }
            assert!(ck.ids() <= 100, "{} ids after page {page}", ck.ids());
        }
        assert_eq!(dropped_total, 200 - ck.ids());
        // Down to 90 ids each time: a whole checkpoint every third page, not every page.
        assert!(fulls <= 1 + 40 / 3, "{fulls} whole checkpoints");
        let back = Checkpoint::decode_chain(&parts).unwrap();
        assert_eq!(back, ck);
        let s = &back.scopes["s"].seen;
        assert!(
            s.contains(back.hash("39-4"), 39 * MIN + 4),
            "the newest stay"
        );
        assert!(!s.contains(back.hash("0-0"), 0), "the oldest went");
    }

    /// A chain written by the previous version (ids as strings) still loads: every id it held
    /// is found, the cursor is kept, and the next batch writes a whole checkpoint.
    #[test]
    fn version_1_checkpoints_still_load() {
        let base = br#"{"version":1,"scopes":{"sub":{"since_ms":1000,"cursor_ms":5000,"seen":{"id-a":4000,"id-b":4500}},"Audit.Exchange":{"since_ms":0,"cursor_ms":9000,"seen":{"rec-1":8000},"done":{"blob-1":7000}}}}"#;
        let delta = br#"{"version":1,"scope":"sub","seen":[["id-c",4900]]}"#;
        let ck = Checkpoint::decode_chain(&[base.to_vec(), delta.to_vec()]).unwrap();
        assert_eq!(ck.version, VERSION);
        let sub = &ck.scopes["sub"];
        assert_eq!((sub.since_ms, sub.cursor_ms), (1000, 5000));
        for id in ["id-a", "id-b", "id-c"] {
            // Found whatever time it is looked up by.
            assert!(sub.seen.contains(ck.hash(id), 123_456_789), "{id}");
        }
        assert!(!sub.seen.contains(ck.hash("id-d"), 4000));
        let o = &ck.scopes["Audit.Exchange"];
        assert!(o.seen.contains(ck.hash("rec-1"), 1));
        assert!(o.done.contains(ck.hash("blob-1"), 7000));
        // Kept until the newest of them is older than the horizon.
        let mut pruned = sub.seen.clone();
        assert_eq!(pruned.prune_before(4900), 0);
        assert_eq!(pruned.prune_before(4901), 3);
        assert!(ck.chain.is_none(), "the next append is whole");
        let mut next = ck.clone();
        assert!(matches!(
            next.commit(Delta::at("sub", &ck.scopes["sub"])),
            Append::Full { .. }
        ));
        assert_eq!(Checkpoint::decode(base).unwrap().scopes.len(), 2);
    }
}
