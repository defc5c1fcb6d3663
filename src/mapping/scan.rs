//! Single-pass rendering input: the mapping's paths compiled into a trie at load, and a scan of the
//! JSON bytes that keeps only the values those paths reach (strings borrowed when they have no
//! escapes, a full `Value` only for arrays and objects a path asks for as a whole).
//!
//! Two scans give the same answers: the hand-written walks of `walk.rs` (used first: several
//! times cheaper), and [`scan`] below, driven by serde_json's deserializer, which decides
//! whatever the walks leave to it and words every error.
//!
//! Guarantee: scanning accepts and rejects exactly the inputs `serde_json::from_slice::<Value>`
//! does, with the same error, and every path resolves to what it would on that `Value`. To keep
//! that true, skipped values are still parsed by serde_json's own `deserialize_any` (UTF-8,
//! escapes, number range and the 128-level depth limit are checked; nothing is allocated), not
//! by `IgnoredAny`, which checks none of these. Duplicate keys: the last one wins, as in
//! `serde_json::Map`; a repeated key first clears whatever the earlier occurrence collected.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::doc::{Doc, Node};
use super::path::{Path, Seg};
use super::{Field, Header, Variant};
pub(crate) use crate::json::capture::{Capture, Leaf, Skip};

/// One trie node: a JSON location some path passes through or ends at.
#[derive(Debug, Clone, Default)]
struct TrieNode {
    /// Children by object key.
    keys: Vec<(Box<str>, u32)>,
    /// [`tag`] of each key in `keys`: a cheap filter before comparing the text.
    tags: Vec<u32>,
    /// For a node with many keys: an open-addressing table by [`slot_of`] of the tag, holding
    /// index + 1 into `keys` (0: empty), so a key is found in a probe or two.
    table: Box<[u16]>,
    /// Children by array index.
    indices: Vec<(usize, u32)>,
    /// Set when a path ends here: the value is captured whole into this slot (no children).
    slot: Option<u32>,
    /// Slots of this subtree, cleared when a duplicate key revisits it.
    span: (u32, u32),
}

/// Where a planned path's value is found: the captured slot, and how many of the path's steps
/// that slot already accounts for (the rest are walked inside the captured `Value`).
#[derive(Debug, Clone, Copy)]
struct Entry {
    slot: u32,
    depth: u32,
}

/// The paths of one mapping compiled into a trie; built once at load.
#[derive(Debug, Clone, Default)]
pub(crate) struct Plan {
    nodes: Vec<TrieNode>,
    entries: Vec<Entry>,
    slots: u32,
}

/// Calls `f` on every path of the mapping that is resolved against the whole event (not the
/// ones relative to an element of a `select` array).
fn rooted_paths(
    header: &mut Header,
    variants: &mut [Variant],
    fields: &mut [Field],
    extra: &mut [&mut Path],
    f: &mut dyn FnMut(&mut Path),
) {
    use super::value::{Source, ValueSpec};
    let mut spec = |v: &mut ValueSpec| match &mut v.source {
        Source::Literal(_) => {}
        Source::Path(p) => f(p),
        Source::First(ps) => ps.iter_mut().for_each(&mut *f),
        Source::Template(parts) => {
            for part in parts.iter_mut() {
                if let super::path::Part::Path(p) = part {
                    f(p);
                }
            }
        }
        Source::Select(sel) => f(&mut sel.from),
    };
    header.iter_mut().flatten().for_each(&mut spec);
    for v in variants.iter_mut() {
        v.header.iter_mut().flatten().for_each(&mut spec);
    }
    for fd in fields.iter_mut() {
        spec(&mut fd.value);
    }
    for v in variants.iter_mut() {
        f(&mut v.when.path);
    }
    for fd in fields.iter_mut() {
        if let Some(w) = &mut fd.when {
            f(&mut w.path);
        }
    }
    for p in extra.iter_mut() {
        f(p);
    }
}

impl Plan {
    /// Builds the trie for every rooted path of a compiled mapping, and the `extra` paths read
    /// from the same scan (a destination's filter conditions), and gives each path its entry id.
    pub(crate) fn build(
        header: &mut Header,
        variants: &mut [Variant],
        fields: &mut [Field],
        extra: &mut [&mut Path],
    ) -> Plan {
        let mut nodes = vec![TrieNode::default()];
        let mut ends: Vec<bool> = vec![false];
        // A path with `[*]` captures the array its first `[*]` walks, whole.
        rooted_paths(header, variants, fields, extra, &mut |p| {
            let mut at = 0usize;
            for seg in p.single_segs() {
                at = child_or_insert(&mut nodes, &mut ends, at, seg);
            }
            ends[at] = true;
        });
        // Number the slots depth first; a node where a path ends captures its whole value,
        // so whatever lies below it is dropped from the trie.
        let mut slots = 0u32;
        assign(&mut nodes, &ends, 0, &mut slots);
        for n in &mut nodes {
            n.tags = n.keys.iter().map(|(k, _)| tag(k)).collect();
            n.table = table(&n.tags);
        }
        let mut plan = Plan {
            nodes,
            entries: Vec::new(),
            slots,
        };
        rooted_paths(header, variants, fields, extra, &mut |p| {
            let mut at = 0usize;
            let mut entry = None;
            for (depth, seg) in p.single_segs().iter().enumerate() {
                match plan.child(at, seg) {
                    Some(c) => at = c as usize,
                    None => break,
                }
                if let Some(slot) = plan.nodes[at].slot {
                    entry = Some(Entry {
                        slot,
                        depth: u32::try_from(depth + 1).unwrap_or(u32::MAX),
                    });
                    break;
                }
            }
            // Every rooted path ends at (or passes) a capturing node, so `entry` is set.
            p.id = match entry {
                Some(e) => {
                    plan.entries.push(e);
                    u32::try_from(plan.entries.len() - 1).unwrap_or(Path::UNPLANNED)
                }
                None => Path::UNPLANNED,
            };
        });
        plan
    }

    fn child(&self, at: usize, seg: &Seg) -> Option<u32> {
        let n = &self.nodes[at];
        match seg {
            Seg::Key(k) => n.keys.iter().find(|(kk, _)| kk == k).map(|(_, c)| *c),
            Seg::Index(i) => n.indices.iter().find(|(ii, _)| ii == i).map(|(_, c)| *c),
            Seg::Each => None,
        }
    }
}

/// Length and three bytes of a key packed into a word; equal keys have equal tags.
#[inline]
fn tag(k: &str) -> u32 {
    tag_bytes(k.as_bytes())
}

#[inline]
fn tag_bytes(b: &[u8]) -> u32 {
    match b.len() {
        0 => 0,
        n => {
            (n as u32 & 0xff)
                | u32::from(b[0]) << 8
                | u32::from(b[n / 2]) << 16
                | u32::from(b[n - 1]) << 24
        }
    }
}

/// Nodes with fewer keys are searched in order (as fast, and no table to keep).
const TABLE_FROM: usize = 6;

/// Where a key with tag `t` is first looked for in a table of `2^bits` entries.
#[inline]
fn slot_of(t: u32, bits: u32) -> usize {
    (t.wrapping_mul(0x9E37_79B1) >> (32 - bits)) as usize
}

/// The lookup table for a node's key tags (see [`TrieNode::table`]); empty for few keys.
fn table(tags: &[u32]) -> Box<[u16]> {
    if tags.len() < TABLE_FROM || tags.len() >= usize::from(u16::MAX) {
        return Box::new([]);
    }
    let bits = (tags.len() * 2).next_power_of_two().trailing_zeros();
    let mut table = vec![0u16; 1 << bits];
    for (i, t) in tags.iter().enumerate() {
        let mut at = slot_of(*t, bits);
        while table[at] != 0 {
            at = (at + 1) & (table.len() - 1);
        }
        table[at] = u16::try_from(i + 1).unwrap_or(0);
    }
    table.into_boxed_slice()
}

fn child_or_insert(nodes: &mut Vec<TrieNode>, ends: &mut Vec<bool>, at: usize, seg: &Seg) -> usize {
    let found = match seg {
        Seg::Key(k) => nodes[at]
            .keys
            .iter()
            .find(|(kk, _)| kk == k)
            .map(|(_, c)| *c),
        Seg::Index(i) => nodes[at]
            .indices
            .iter()
            .find(|(ii, _)| ii == i)
            .map(|(_, c)| *c),
        Seg::Each => unreachable!("paths are planned up to their first [*]"),
    };
    if let Some(c) = found {
        return c as usize;
    }
    let c = nodes.len();
    let id = u32::try_from(c).unwrap_or(u32::MAX);
    nodes.push(TrieNode::default());
    ends.push(false);
    match seg {
        Seg::Key(k) => nodes[at].keys.push((k.clone(), id)),
        Seg::Index(i) => nodes[at].indices.push((*i, id)),
        Seg::Each => unreachable!("paths are planned up to their first [*]"),
    }
    c
}

fn assign(nodes: &mut [TrieNode], ends: &[bool], at: usize, slots: &mut u32) {
    let lo = *slots;
    if ends[at] {
        nodes[at].slot = Some(lo);
        nodes[at].keys.clear();
        nodes[at].indices.clear();
        *slots += 1;
    } else {
        let kids: Vec<u32> = nodes[at]
            .keys
            .iter()
            .map(|(_, c)| *c)
            .chain(nodes[at].indices.iter().map(|(_, c)| *c))
            .collect();
        for c in kids {
            assign(nodes, ends, c as usize, slots);
        }
    }
    nodes[at].span = (lo, *slots);
}

/// The values of one event that a mapping's paths reach.
#[derive(Debug)]
pub(crate) struct Scanned<'p, 'de> {
    plan: &'p Plan,
    slots: Vec<Option<Leaf<'de>>>,
    /// What the top-level JSON value is, in [`super::RenderError::NotAnObject`] words.
    pub(crate) root: &'static str,
}

impl Doc for Scanned<'_, '_> {
    #[inline]
    fn at(&self, p: &Path) -> Option<Node<'_>> {
        let e = self.plan.entries.get(p.id as usize)?;
        let leaf = self.slots.get(e.slot as usize)?.as_ref()?;
        let depth = e.depth as usize;
        match leaf {
            Leaf::Str(s) if depth == p.segs().len() => Some(Node::Str(s)),
            Leaf::Str(_) => None,
            Leaf::Val(v) => p.get_from(v, depth).map(Node::Val),
        }
    }

    fn each<'a>(&'a self, p: &Path, f: &mut dyn FnMut(Node<'a>)) {
        let Some(e) = self.plan.entries.get(p.id as usize) else {
            return;
        };
        let Some(Some(leaf)) = self.slots.get(e.slot as usize) else {
            return;
        };
        let depth = e.depth as usize;
        match leaf {
            Leaf::Str(s) if depth == p.segs().len() => f(Node::Str(s)),
            Leaf::Str(_) => {}
            Leaf::Val(v) => p.each_from(v, depth, &mut |x| f(Node::Val(x))),
        }
    }
}

/// Parses `json` once, keeping the values `plan` needs. Errors are serde_json's own, exactly as
/// `serde_json::from_slice::<Value>` reports them.
pub(crate) fn scan<'p, 'de>(
    plan: &'p Plan,
    json: &'de [u8],
) -> serde_json::Result<Scanned<'p, 'de>> {
    let mut slots = Vec::with_capacity(plan.slots as usize);
    slots.resize_with(plan.slots as usize, || None);
    // Valid UTF-8 as a whole (the usual case) lets serde_json skip checking each string; the
    // result is the same, as bytes outside strings must be ASCII anyway. Otherwise the slice
    // reader finds the bad string and reports it exactly as `from_slice` does.
    let root = match std::str::from_utf8(json) {
        Ok(text) => walk(plan, &mut slots, serde_json::Deserializer::from_str(text))?,
        Err(_) => walk(plan, &mut slots, serde_json::Deserializer::from_slice(json))?,
    };
    Ok(Scanned { plan, slots, root })
}

fn walk<'de, R: serde_json::de::Read<'de>>(
    plan: &Plan,
    slots: &mut Vec<Option<Leaf<'de>>>,
    mut de: serde_json::Deserializer<R>,
) -> serde_json::Result<&'static str> {
    let root = Walk {
        plan,
        node: 0,
        slots,
    }
    .deserialize(&mut de)?;
    de.end()?;
    Ok(root)
}

/// Walks the value at a trie node that no path ends at.
struct Walk<'s, 'de> {
    plan: &'s Plan,
    node: u32,
    slots: &'s mut Vec<Option<Leaf<'de>>>,
}

impl<'de> Walk<'_, 'de> {
    /// Forgets what an earlier occurrence of child `c` collected (a duplicate key: the last
    /// one wins).
    #[inline]
    fn clear(&mut self, c: u32) -> &TrieNode {
        let n = &self.plan.nodes[c as usize];
        for s in &mut self.slots[n.span.0 as usize..n.span.1 as usize] {
            *s = None;
        }
        n
    }
}

impl<'de> DeserializeSeed<'de> for Walk<'_, 'de> {
    type Value = &'static str;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<&'static str, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_, 'de> {
    type Value = &'static str;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any valid JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<&'static str, E> {
        Ok("a boolean")
    }
    fn visit_i64<E>(self, _: i64) -> Result<&'static str, E> {
        Ok("a number")
    }
    fn visit_u64<E>(self, _: u64) -> Result<&'static str, E> {
        Ok("a number")
    }
    fn visit_f64<E>(self, v: f64) -> Result<&'static str, E> {
        // serde_json's `Value` turns a non-finite float into null (it never parses one).
        Ok(if v.is_finite() { "a number" } else { "null" })
    }
    fn visit_str<E>(self, _: &str) -> Result<&'static str, E> {
        Ok("a string")
    }
    fn visit_unit<E>(self) -> Result<&'static str, E> {
        Ok("null")
    }
    fn visit_none<E>(self) -> Result<&'static str, E> {
        Ok("null")
    }

    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<&'static str, A::Error> {
        while let Some(pick) = map.next_key_seed(KeyPick {
            plan: self.plan,
            node: self.node,
        })? {
            let Some(c) = pick else {
                map.next_value::<Skip>()?;
                continue;
            };
            match self.clear(c).slot {
                Some(slot) => {
                    let leaf = map.next_value_seed(Capture)?;
                    self.slots[slot as usize] = Some(leaf);
                }
                None => {
                    map.next_value_seed(Walk {
                        plan: self.plan,
                        node: c,
                        slots: &mut *self.slots,
                    })?;
                }
            }
        }
        Ok("an object")
    }

    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<&'static str, A::Error> {
        let plan = self.plan;
        let indices = &plan.nodes[self.node as usize].indices;
        let mut i = 0usize;
        loop {
            let pick = indices.iter().find(|(ii, _)| *ii == i).map(|(_, c)| *c);
            let more = match pick {
                None => seq.next_element::<Skip>()?.is_some(),
                Some(c) => match self.clear(c).slot {
                    Some(slot) => match seq.next_element_seed(Capture)? {
                        Some(leaf) => {
                            self.slots[slot as usize] = Some(leaf);
                            true
                        }
                        None => false,
                    },
                    None => seq
                        .next_element_seed(Walk {
                            plan,
                            node: c,
                            slots: &mut *self.slots,
                        })?
                        .is_some(),
                },
            };
            if !more {
                return Ok("an array");
            }
            i += 1;
        }
    }
}

/// Reads an object key and answers which child of `node` it names, if any.
struct KeyPick<'s> {
    plan: &'s Plan,
    node: u32,
}

impl<'de> DeserializeSeed<'de> for KeyPick<'_> {
    type Value = Option<u32>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<u32>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeyPick<'_> {
    type Value = Option<u32>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }
    #[inline]
    fn visit_str<E>(self, k: &str) -> Result<Option<u32>, E> {
        Ok(self.plan.pick(self.node, k))
    }
}

impl Plan {
    /// The child of trie node `node` that object key `k` names, if any.
    #[inline]
    fn pick(&self, node: u32, k: &str) -> Option<u32> {
        self.pick_bytes(node, k.as_bytes())
    }

    /// [`Plan::pick`] for a key's bytes (a key is named only by its exact bytes).
    #[inline]
    fn pick_bytes(&self, node: u32, k: &[u8]) -> Option<u32> {
        let n = &self.nodes[node as usize];
        let t = tag_bytes(k);
        if !n.table.is_empty() {
            let mask = n.table.len() - 1;
            let mut at = slot_of(t, n.table.len().trailing_zeros());
            loop {
                let i = usize::from(*n.table.get(at)?).checked_sub(1)?;
                if n.tags[i] == t && n.keys[i].0.as_bytes() == k {
                    return Some(n.keys[i].1);
                }
                at = (at + 1) & mask;
            }
        }
        for (i, kt) in n.tags.iter().enumerate() {
            if *kt == t && n.keys[i].0.as_bytes() == k {
                return Some(n.keys[i].1);
            }
        }
        None
    }
}

mod walk;
pub(crate) use walk::{
    array_member_elements, scan_checked, scan_checking, scan_checking_at, scan_checking_text,
    top_members, TopValue,
};

/// Object-key paths read from raw JSON by the checking walk, outside any mapping: the sources'
/// id and time read (`event::ident`). Built once per event kind.
#[derive(Debug)]
pub(crate) struct PathSet {
    plan: Plan,
    paths: Vec<Path>,
}

impl PathSet {
    /// The plan for `paths`, each given as its keys from the top of the event.
    pub(crate) fn new(paths: &[&[&str]]) -> PathSet {
        let mut paths: Vec<Path> = paths.iter().map(|keys| Path::of_keys(keys)).collect();
        let mut header: Header = Default::default();
        let plan = Plan::build(
            &mut header,
            &mut [],
            &mut [],
            &mut paths.iter_mut().collect::<Vec<_>>(),
        );
        PathSet { plan, paths }
    }

    /// The values of the paths in `text`, read by the checking walk: `None` when it is not
    /// sure serde_json's `Value` parse accepts `text` (then serde_json must decide).
    pub(crate) fn read_text<'s, 'de>(&'s self, text: &'de str) -> Option<PathValues<'s, 'de>> {
        Some(PathValues {
            set: self,
            doc: scan_checking_text(&self.plan, text)?,
        })
    }

    /// [`PathSet::read_text`] of the JSON value that starts at byte `at` of `text`, and where
    /// that value ends (what follows is not looked at).
    pub(crate) fn read_at<'s, 'de>(
        &'s self,
        text: &'de str,
        at: usize,
    ) -> Option<(PathValues<'s, 'de>, usize)> {
        let (doc, end) = scan_checking_at(&self.plan, text, at)?;
        Some((PathValues { set: self, doc }, end))
    }
}

/// What [`PathSet::read`] found in one JSON value.
#[derive(Debug)]
pub(crate) struct PathValues<'s, 'de> {
    set: &'s PathSet,
    doc: Scanned<'s, 'de>,
}

impl PathValues<'_, '_> {
    /// Whether the JSON value is an object.
    pub(crate) fn is_object(&self) -> bool {
        self.doc.root == "an object"
    }

    /// The value at the `i`th path given to [`PathSet::new`].
    pub(crate) fn get(&self, i: usize) -> Option<Node<'_>> {
        self.doc.at(self.set.paths.get(i)?)
    }
}

#[cfg(test)]
mod tests;
