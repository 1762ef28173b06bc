//! Schema inference, merges and payload hashing (§6 and §7 of the format).
//!
//! The export thread calls [`PayloadHasher::hash_payload`] once per stored value: it decodes the value under its
//! merges (§6.1) without cloning it ([`Decoded`] holds only the replaced top-level entries), infers the schema
//! (§6.2, §6.3), and hashes the canonical text of the decoded value and of the schema's hash form (§7).

use std::sync::Arc;

use base64::Engine as _;
use smallvec::SmallVec;
use tusk_drift_schemas::tusk::drift::core::v1::{DecodedType, EncodingType, JsonSchema, JsonSchemaType};

use crate::json::{self, CanonicalSink, CanonicalWriter, Key, Value};

/// A schema merge: hints for one top-level key of a stored value (§4.4, §5.4).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Merge {
    /// `EncodingType` number; 1 (BASE64) makes [`decode`] base64-decode the value.
    pub encoding: Option<i32>,
    /// `DecodedType` number; 1 (JSON) makes [`decode`] parse the (decoded) text as JSON.
    pub decoded_type: Option<i32>,
    /// Match importance copied onto the schema (`0.0` for `headers`).
    pub match_importance: Option<f64>,
}

impl Merge {
    /// The merge for `headers`: `{match_importance: 0.0}`.
    pub const HEADERS: Merge = Merge {
        encoding: None,
        decoded_type: None,
        match_importance: Some(0.0),
    };

    /// The merge for a base64 `body`: `{encoding: 1}` plus `decoded_type` when given.
    pub const fn base64_body(decoded_type: Option<i32>) -> Merge {
        Merge {
            encoding: Some(EncodingType::Base64 as i32),
            decoded_type,
            match_importance: None,
        }
    }
}

/// The decoded value of §6.1, as a view of the stored value plus the top-level entries that decoding replaced.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded<'a> {
    stored: &'a Value,
    /// `(index in the stored object's entries, decoded value)`; empty when nothing changed. Inline: a payload has two
    /// merges at most (`headers`, `body`).
    overrides: SmallVec<[(usize, Value); 2]>,
}

impl<'a> Decoded<'a> {
    /// The stored value this view is based on.
    pub fn stored(&self) -> &'a Value {
        self.stored
    }

    /// The replaced top-level entries: `(index in` [`json::Object::entries`]`, decoded value)`.
    pub fn overrides(&self) -> &[(usize, Value)] {
        &self.overrides
    }

    /// The decoded value of top-level key `key`, if the value is an object holding it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let entries = self.stored.as_object()?.entries();
        let i = entries.iter().position(|(k, _)| k == key)?;
        Some(self.entry_value(i, &entries[i].1))
    }

    fn entry_value<'s>(&'s self, i: usize, stored: &'s Value) -> &'s Value {
        self.overrides.iter().find(|(j, _)| *j == i).map_or(stored, |(_, v)| v)
    }

    /// The top-level entries as decoding left them, `(key, decoded value)` in order, when the value is an object:
    /// what schema inference and the schema cache walk instead of the stored object.
    fn entries(&self) -> Option<impl ExactSizeIterator<Item = (&Key, &Value)>> {
        let o = self.stored.as_object()?;
        Some(
            o.entries()
                .iter()
                .enumerate()
                .map(|(i, (k, v))| (k, self.entry_value(i, v))),
        )
    }

    /// The decoded value as an owned value (clones the stored value; for tests and diagnostics).
    pub fn to_value(&self) -> Value {
        match self.stored {
            Value::Object(o) => Value::Object(
                o.entries()
                    .iter()
                    .enumerate()
                    .map(|(i, (k, v))| (k.clone(), self.entry_value(i, v).clone()))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    /// Writes the canonical text (§7.2) of the decoded value.
    pub fn write_canonical<W: CanonicalSink + ?Sized>(&self, writer: &mut CanonicalWriter, out: &mut W) {
        writer.write_with_overrides(self.stored, &self.overrides, out);
    }
}

/// Applies `merges` to `stored` (§6.1). Only top-level keys present in an object are affected:
/// - `encoding == 1` and a string: strict standard base64 (padding required); on failure the entry is unchanged and
///   the JSON step is skipped; otherwise the bytes become text with invalid UTF-8 sequences dropped;
/// - then `decoded_type == 1` and (still) a string: parsed as JSON ([`json::parse`]); on failure the text is kept.
///
/// Merge keys are expected to be unique; a repeated key is applied once (the first).
pub fn decode<'a>(stored: &'a Value, merges: &[(&str, Merge)]) -> Decoded<'a> {
    decode_into(stored, merges, &mut Vec::new(), None)
}

/// [`decode`], base64-decoding into `buf` (whose capacity the first decoded text takes over). `known_body`, when
/// given, is what the top-level `body` string is the standard base64 of: it is taken as the decoded bytes instead of
/// decoding the string again.
fn decode_into<'a>(
    stored: &'a Value,
    merges: &[(&str, Merge)],
    buf: &mut Vec<u8>,
    known_body: Option<&[u8]>,
) -> Decoded<'a> {
    let mut overrides = SmallVec::new();
    if let Value::Object(o) = stored {
        let entries = o.entries();
        for (key, merge) in merges {
            let Some(i) = entries.iter().position(|(k, _)| k == key) else {
                continue;
            };
            if overrides.iter().any(|(j, _)| *j == i) {
                continue;
            }
            let known = known_body.filter(|_| *key == "body");
            if let Some(v) = decode_entry(&entries[i].1, merge, buf, known) {
                overrides.push((i, v));
            }
        }
    }
    Decoded { stored, overrides }
}

/// The decoded form of one top-level entry, or `None` when it stays as stored. Base64 decodes into `buf`'s
/// allocation; text that is parsed as JSON gives it back.
fn decode_entry(v: &Value, merge: &Merge, buf: &mut Vec<u8>, known: Option<&[u8]>) -> Option<Value> {
    let Value::String(stored) = v else { return None };
    let mut decoded: Option<String> = None;
    if merge.encoding == Some(EncodingType::Base64 as i32) {
        buf.clear();
        match known {
            Some(raw) => {
                debug_assert_eq!(
                    base64::engine::general_purpose::STANDARD.encode(raw),
                    **stored,
                    "a known body must be what the stored string encodes"
                );
                buf.extend_from_slice(raw);
            }
            None => base64::engine::general_purpose::STANDARD.decode_vec(stored, buf).ok()?,
        }
        decoded = Some(utf8_dropping_invalid(std::mem::take(buf)));
    }
    if merge.decoded_type == Some(DecodedType::Json as i32) {
        let text = decoded.as_deref().unwrap_or(stored);
        if let Ok(parsed) = json::parse(text) {
            if let Some(text) = decoded.filter(|t| t.capacity() <= KEEP_TEXT_CAPACITY) {
                *buf = text.into_bytes();
            }
            return Some(parsed);
        }
    }
    decoded.map(Value::String)
}

/// Python's `bytes.decode("utf-8", errors="ignore")`: the valid parts of `bytes`, invalid sequences dropped.
fn utf8_dropping_invalid(bytes: Vec<u8>) -> String {
    match String::from_utf8(bytes) {
        Ok(s) => s,
        Err(e) => {
            let bytes = e.into_bytes();
            let mut s = String::with_capacity(bytes.len());
            for chunk in bytes.utf8_chunks() {
                s.push_str(chunk.valid());
            }
            s
        }
    }
}

/// A node of an inferred schema (§6.2, §6.3).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Schema {
    /// `JsonSchemaType` number: 1 NUMBER, 2 STRING, 3 BOOLEAN, 4 NULL, 6 OBJECT, 7 ORDERED_LIST.
    pub r#type: i32,
    /// For an OBJECT, one entry per key in the value's insertion order; empty otherwise.
    pub properties: Vec<(Key, Schema)>,
    /// For an ORDERED_LIST, the schema of the first element; `None` for `[]` and for other types.
    pub items: Option<Box<Schema>>,
    /// `EncodingType` number from a merge.
    pub encoding: Option<i32>,
    /// `DecodedType` number from a merge.
    pub decoded_type: Option<i32>,
    /// Match importance from a merge.
    pub match_importance: Option<f64>,
}

impl Schema {
    /// A node of type `ty` with no properties, items or annotations.
    pub fn leaf(ty: JsonSchemaType) -> Schema {
        Schema {
            r#type: ty as i32,
            ..Schema::default()
        }
    }

    /// The property `key`, if present.
    pub fn property(&self, key: &str) -> Option<&Schema> {
        self.properties.iter().find(|(k, _)| k == key).map(|(_, s)| s)
    }
}

/// The schema of a value (§6.2), without merge annotations.
pub fn infer_value(v: &Value) -> Schema {
    match v {
        Value::Array(items) => Schema {
            items: items.first().map(|first| Box::new(infer_value(first))),
            ..Schema::leaf(JsonSchemaType::OrderedList)
        },
        Value::Object(o) => object_schema(o.entries().iter().map(|(k, v)| (k, v))),
        scalar => Schema::leaf(value_type(scalar)),
    }
}

/// The schema of an object with these entries.
fn object_schema<'v>(entries: impl Iterator<Item = (&'v Key, &'v Value)>) -> Schema {
    Schema {
        properties: entries.map(|(k, v)| (k.clone(), infer_value(v))).collect(),
        ..Schema::leaf(JsonSchemaType::Object)
    }
}

/// The `JsonSchemaType` of a value (§6.2): non-finite floats are NULL, every number kind is NUMBER. Inference and
/// the schema cache's match both go by this.
fn value_type(v: &Value) -> JsonSchemaType {
    match v {
        Value::Null => JsonSchemaType::Null,
        Value::Float(f) if !f.is_finite() => JsonSchemaType::Null,
        Value::Bool(_) => JsonSchemaType::Boolean,
        Value::Int(_) | Value::BigInt(_) | Value::Float(_) => JsonSchemaType::Number,
        Value::String(_) => JsonSchemaType::String,
        Value::Array(_) => JsonSchemaType::OrderedList,
        Value::Object(_) => JsonSchemaType::Object,
    }
}

/// The schema of a decoded value with the merge annotations of §6.3: each merge key that is a top-level property of
/// an OBJECT schema gets the merge's `encoding`, `decoded_type` and `match_importance` (whichever are set).
pub fn infer(decoded: &Decoded<'_>, merges: &[(&str, Merge)]) -> Schema {
    let mut schema = match decoded.entries() {
        Some(entries) => object_schema(entries),
        None => infer_value(decoded.stored),
    };
    if schema.r#type == JsonSchemaType::Object as i32 {
        for (key, merge) in merges {
            if let Some((_, p)) = schema.properties.iter_mut().find(|(k, _)| k == key) {
                if merge.encoding.is_some() {
                    p.encoding = merge.encoding;
                }
                if merge.decoded_type.is_some() {
                    p.decoded_type = merge.decoded_type;
                }
                if merge.match_importance.is_some() {
                    p.match_importance = merge.match_importance;
                }
            }
        }
    }
    schema
}

/// Writes the **hash form** of a schema (§6.4) as canonical text: snake_case keys sorted, `match_importance` a
/// float (`0.0`), the others integers, absent keys omitted.
pub fn write_hash_form<W: CanonicalSink + ?Sized>(schema: &Schema, out: &mut W) {
    hash_form(schema, out, &mut Vec::new());
}

/// File form of a node with no properties, items or annotations, by type.
const FILE_FORM_LEAVES: [&[u8]; 10] = [
    b"{\"type\":0,\"properties\":{}}",
    b"{\"type\":1,\"properties\":{}}",
    b"{\"type\":2,\"properties\":{}}",
    b"{\"type\":3,\"properties\":{}}",
    b"{\"type\":4,\"properties\":{}}",
    b"{\"type\":5,\"properties\":{}}",
    b"{\"type\":6,\"properties\":{}}",
    b"{\"type\":7,\"properties\":{}}",
    b"{\"type\":8,\"properties\":{}}",
    b"{\"type\":9,\"properties\":{}}",
];

/// Hash form of a node with no properties, items or annotations, by type (the common case: every scalar).
const HASH_FORM_LEAVES: [&[u8]; 10] = [
    b"{\"properties\":{},\"type\":0}",
    b"{\"properties\":{},\"type\":1}",
    b"{\"properties\":{},\"type\":2}",
    b"{\"properties\":{},\"type\":3}",
    b"{\"properties\":{},\"type\":4}",
    b"{\"properties\":{},\"type\":5}",
    b"{\"properties\":{},\"type\":6}",
    b"{\"properties\":{},\"type\":7}",
    b"{\"properties\":{},\"type\":8}",
    b"{\"properties\":{},\"type\":9}",
];

impl Schema {
    /// Whether this node has nothing but its type.
    fn is_bare(&self) -> bool {
        self.properties.is_empty()
            && self.items.is_none()
            && self.encoding.is_none()
            && self.decoded_type.is_none()
            && self.match_importance.is_none()
    }
}

fn hash_form<W: CanonicalSink + ?Sized>(s: &Schema, out: &mut W, order: &mut Vec<usize>) {
    if s.is_bare()
        && let Some(text) = usize::try_from(s.r#type).ok().and_then(|t| HASH_FORM_LEAVES.get(t))
    {
        out.put(text);
        return;
    }
    // Key order is the sorted order: decoded_type < encoding < items < match_importance < properties < type.
    out.put_byte(b'{');
    if let Some(d) = s.decoded_type {
        out.put(b"\"decoded_type\":");
        json::write_int(i64::from(d), out);
        out.put_byte(b',');
    }
    if let Some(e) = s.encoding {
        out.put(b"\"encoding\":");
        json::write_int(i64::from(e), out);
        out.put_byte(b',');
    }
    if let Some(items) = &s.items {
        out.put(b"\"items\":");
        hash_form(items, out, order);
        out.put_byte(b',');
    }
    if let Some(m) = s.match_importance {
        out.put(b"\"match_importance\":");
        out.put(json::float_repr(m).as_bytes());
        out.put_byte(b',');
    }
    out.put(b"\"properties\":{");
    json::visit_sorted(
        &s.properties,
        |(k, _)| k.as_ref(),
        order,
        |pos, i, order| {
            if pos > 0 {
                out.put_byte(b',');
            }
            let (key, child) = &s.properties[i];
            json::write_string(key, out);
            out.put_byte(b':');
            hash_form(child, out, order);
        },
    );
    out.put(b"},\"type\":");
    json::write_int(i64::from(s.r#type), out);
    out.put_byte(b'}');
}

/// Writes the **file form** of a schema (§6.4) compactly: camelCase keys in the order `type`, `properties`,
/// `items`, `encoding`, `decodedType`, `matchImportance`; properties in insertion order; absent keys omitted.
pub fn write_file_form(s: &Schema, out: &mut Vec<u8>) {
    if s.is_bare()
        && let Some(text) = usize::try_from(s.r#type).ok().and_then(|t| FILE_FORM_LEAVES.get(t))
    {
        // The common node (every scalar): precomputed text.
        out.extend_from_slice(text);
        return;
    }
    out.extend_from_slice(b"{\"type\":");
    json::write_int(i64::from(s.r#type), out);
    out.extend_from_slice(b",\"properties\":{");
    for (i, (key, child)) in s.properties.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        json::write_string(key, out);
        out.push(b':');
        write_file_form(child, out);
    }
    out.push(b'}');
    if let Some(items) = &s.items {
        out.extend_from_slice(b",\"items\":");
        write_file_form(items, out);
    }
    if let Some(e) = s.encoding {
        out.extend_from_slice(b",\"encoding\":");
        json::write_int(i64::from(e), out);
    }
    if let Some(d) = s.decoded_type {
        out.extend_from_slice(b",\"decodedType\":");
        json::write_int(i64::from(d), out);
    }
    if let Some(m) = s.match_importance {
        out.extend_from_slice(b",\"matchImportance\":");
        out.extend_from_slice(json::float_repr(m).as_bytes());
    }
    out.push(b'}');
}

/// The proto form of a schema (§3.3): fields 1–6, optional ones `Some` only when set.
pub fn to_proto(s: &Schema) -> JsonSchema {
    JsonSchema {
        r#type: s.r#type,
        properties: s.properties.iter().map(|(k, v)| (k.to_string(), to_proto(v))).collect(),
        items: s.items.as_ref().map(|i| Box::new(to_proto(i))),
        encoding: s.encoding,
        decoded_type: s.decoded_type,
        match_importance: s.match_importance,
    }
}

/// A payload's schema as spans carry it: the tree (for the proto form) and its file-form text (for the trace file),
/// computed once per payload shape and shared, through an `Arc`, by every span of that shape.
#[derive(Debug, Clone, PartialEq)]
pub struct SharedSchema {
    tree: Schema,
    file_form: Box<[u8]>,
}

impl SharedSchema {
    /// Wraps `tree`, writing its file form once.
    pub fn new(tree: Schema) -> SharedSchema {
        let mut file_form = Vec::new();
        write_file_form(&tree, &mut file_form);
        SharedSchema {
            tree,
            file_form: file_form.into_boxed_slice(),
        }
    }

    /// The schema.
    pub fn tree(&self) -> &Schema {
        &self.tree
    }

    /// The schema's file form (§6.4), as [`write_file_form`] writes it.
    pub fn file_form(&self) -> &[u8] {
        &self.file_form
    }
}

/// The value hash and schema hash of one stored value (§7.1), 64 lower-case hex characters each.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadHashes {
    /// `hash(decoded value)`.
    pub value_hash: json::HexDigest,
    /// `hash(hash form of the schema)`.
    pub schema_hash: json::HexDigest,
}

/// Scratch buffers for hashing payloads, kept across spans by the export thread, and a cache of the schemas it
/// inferred.
///
/// An endpoint yields the same schema on almost every request, so the hasher remembers the last
/// [`SCHEMA_CACHE_ENTRIES`] schemas with their hashes. A payload whose shape (types, keys in order, first array
/// items) and merges match a remembered schema reuses it: no tree is built, no hash-form text written or hashed, and
/// the span shares the remembered file-form text. The match is checked node by node, so a cached schema is exactly
/// the one [`infer`] would build.
#[derive(Debug, Default)]
pub struct PayloadHasher {
    text: Vec<u8>,
    /// Base64 decodes into this allocation, recycled from payload to payload.
    decoded_text: Vec<u8>,
    writer: CanonicalWriter,
    order: Vec<usize>,
    schemas: Vec<CachedSchema>,
    next_victim: usize,
}

#[derive(Debug)]
struct CachedSchema {
    /// [`shape_fingerprint`] of the payloads it was inferred from: a quick filter before the exact match.
    fingerprint: u64,
    merges: Box<[(Box<str>, Merge)]>,
    schema: Arc<SharedSchema>,
    hash: json::HexDigest,
}

/// Canonical text buffers above this capacity are released after use, so one huge payload does not pin memory.
const KEEP_TEXT_CAPACITY: usize = 64 * 1024;

/// Number of remembered schemas.
pub const SCHEMA_CACHE_ENTRIES: usize = 32;

/// Schemas whose file form is longer than this are not remembered. That bounds the cache to well under 1 MiB: a
/// tree takes about three times the bytes of its file form, so about 32 × 16 KiB at worst.
const SCHEMA_CACHE_MAX_TEXT: usize = 4 * 1024;

impl PayloadHasher {
    /// Empty scratch.
    pub fn new() -> PayloadHasher {
        PayloadHasher::default()
    }

    /// Decodes `stored` under `merges` (§6.1), infers its schema (§6.2, §6.3) and computes both hashes (§7).
    pub fn hash_payload(&mut self, stored: &Value, merges: &[(&str, Merge)]) -> (Arc<SharedSchema>, PayloadHashes) {
        self.hash_payload_with_body(stored, merges, None)
    }

    /// [`hash_payload`](Self::hash_payload) of a value whose top-level `body` string is known to be the standard
    /// base64 of `known_body` (the export thread has the raw bytes it just encoded): decoding uses those bytes
    /// instead of decoding the string again. The result is the same either way.
    pub(crate) fn hash_payload_with_body(
        &mut self,
        stored: &Value,
        merges: &[(&str, Merge)],
        known_body: Option<&[u8]>,
    ) -> (Arc<SharedSchema>, PayloadHashes) {
        let mut decoded = decode_into(stored, merges, &mut self.decoded_text, known_body);

        self.text.clear();
        decoded.write_canonical(&mut self.writer, &mut self.text);
        let value_hash = json::sha256_hex(&self.text);

        let (schema, schema_hash) = self.schema_of(&decoded, merges);
        self.text.clear();
        if self.text.capacity() > KEEP_TEXT_CAPACITY {
            self.text.shrink_to(KEEP_TEXT_CAPACITY);
        }
        // Keep a decoded body's allocation for the next payload.
        for (_, v) in decoded.overrides.drain(..) {
            if let Value::String(text) = v
                && text.capacity() <= KEEP_TEXT_CAPACITY
                && text.capacity() > self.decoded_text.capacity()
            {
                self.decoded_text = text.into_bytes();
            }
        }
        (
            schema,
            PayloadHashes {
                value_hash,
                schema_hash,
            },
        )
    }

    /// The schema of `decoded` and its hash: remembered, or inferred, hashed and remembered.
    fn schema_of(&mut self, decoded: &Decoded<'_>, merges: &[(&str, Merge)]) -> (Arc<SharedSchema>, json::HexDigest) {
        let fingerprint = shape_fingerprint(decoded);
        let hit = self.schemas.iter().find(|c| {
            c.fingerprint == fingerprint
                && c.merges.len() == merges.len()
                && c.merges
                    .iter()
                    .zip(merges)
                    .all(|((k, m), (key, merge))| **k == **key && same_merge(m, merge))
                && decoded_matches(&c.schema.tree, decoded)
        });
        if let Some(c) = hit {
            return (Arc::clone(&c.schema), c.hash);
        }
        let tree = infer(decoded, merges);
        self.text.clear();
        hash_form(&tree, &mut self.text, &mut self.order);
        let hash = json::sha256_hex(&self.text);
        let schema = Arc::new(SharedSchema::new(tree));
        if schema.file_form.len() <= SCHEMA_CACHE_MAX_TEXT {
            let entry = CachedSchema {
                fingerprint,
                merges: merges.iter().map(|(k, m)| (Box::from(*k), *m)).collect(),
                schema: Arc::clone(&schema),
                hash,
            };
            if self.schemas.len() < SCHEMA_CACHE_ENTRIES {
                self.schemas.push(entry);
            } else {
                self.schemas[self.next_victim] = entry;
                self.next_victim = (self.next_victim + 1) % SCHEMA_CACHE_ENTRIES;
            }
        }
        (schema, hash)
    }
}

/// Whether two merges annotate a schema identically: `match_importance` compared bit for bit, since `-0.0` and `0.0`
/// are written differently (and `NaN` equals itself here).
fn same_merge(a: &Merge, b: &Merge) -> bool {
    a.encoding == b.encoding
        && a.decoded_type == b.decoded_type
        && a.match_importance.map(f64::to_bits) == b.match_importance.map(f64::to_bits)
}

/// A number that depends only on what [`infer`] looks at (types, object keys in order, first array items), without
/// building anything. Equal shapes give equal numbers; unequal shapes usually do not.
fn shape_fingerprint(decoded: &Decoded<'_>) -> u64 {
    fn mix(h: u64, x: u64) -> u64 {
        (h.rotate_left(5) ^ x).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
    fn key_bits(k: &str) -> u64 {
        let b = k.as_bytes();
        let first = u64::from(b.first().copied().unwrap_or(0));
        let last = u64::from(b.last().copied().unwrap_or(0));
        (b.len() as u64) << 16 | first << 8 | last
    }
    fn object<'v>(h: u64, entries: impl ExactSizeIterator<Item = (&'v Key, &'v Value)>) -> u64 {
        let h = mix(mix(h, JsonSchemaType::Object as u64), entries.len() as u64);
        entries.fold(h, |h, (k, v)| walk(mix(h, key_bits(k)), v))
    }
    fn walk(h: u64, v: &Value) -> u64 {
        match v {
            Value::Array(items) => {
                let h = mix(h, JsonSchemaType::OrderedList as u64);
                items.first().map_or(h, |first| walk(h, first))
            }
            Value::Object(o) => object(h, o.entries().iter().map(|(k, v)| (k, v))),
            scalar => mix(h, value_type(scalar) as u64),
        }
    }
    match decoded.entries() {
        Some(entries) => object(0, entries),
        None => walk(0, decoded.stored),
    }
}

/// Whether [`infer_value`] of `v` has the types, keys and items of `s` (annotations are not compared).
fn shape_matches(s: &Schema, v: &Value) -> bool {
    match v {
        Value::Array(items) => {
            s.r#type == JsonSchemaType::OrderedList as i32
                && match (items.first(), &s.items) {
                    (None, None) => true,
                    (Some(first), Some(item)) => shape_matches(item, first),
                    _ => false,
                }
        }
        Value::Object(o) => object_matches(s, o.entries().iter().map(|(k, v)| (k, v))),
        scalar => s.r#type == value_type(scalar) as i32,
    }
}

/// [`shape_matches`] for an object with these entries.
fn object_matches<'v>(s: &Schema, entries: impl ExactSizeIterator<Item = (&'v Key, &'v Value)>) -> bool {
    s.r#type == JsonSchemaType::Object as i32
        && s.properties.len() == entries.len()
        && s.properties
            .iter()
            .zip(entries)
            .all(|((sk, sv), (k, v))| sk == k && shape_matches(sv, v))
}

/// [`shape_matches`] for a decoded value: the overridden top-level entries are compared in their decoded form.
fn decoded_matches(s: &Schema, decoded: &Decoded<'_>) -> bool {
    match decoded.entries() {
        Some(entries) => object_matches(s, entries),
        None => shape_matches(s, decoded.stored),
    }
}

/// [`PayloadHasher::hash_payload`] with fresh scratch buffers.
pub fn hash_payload(stored: &Value, merges: &[(&str, Merge)]) -> (Schema, PayloadHashes) {
    let (schema, hashes) = PayloadHasher::new().hash_payload(stored, merges);
    (Arc::unwrap_or_clone(schema).tree, hashes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::{Object, parse, write_canonical};
    use sha2::{Digest as _, Sha256};

    const BODY_B64: Merge = Merge::base64_body(None);
    const BODY_JSON: Merge = Merge::base64_body(Some(1));

    #[track_caller]
    fn value(text: &str) -> Value {
        parse(text).unwrap_or_else(|e| panic!("{text:?}: {e}"))
    }

    fn utf8(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).expect("writers emit UTF-8")
    }

    fn canonical_of(d: &Decoded<'_>) -> String {
        let mut out = Vec::new();
        d.write_canonical(&mut CanonicalWriter::new(), &mut out);
        utf8(out)
    }

    fn hash_form_of(s: &Schema) -> String {
        let mut out = Vec::new();
        write_hash_form(s, &mut out);
        utf8(out)
    }

    fn file_form_of(s: &Schema) -> String {
        let mut out = Vec::new();
        write_file_form(s, &mut out);
        utf8(out)
    }

    /// Expected outputs for one stored value; `None` fields are not checked.
    #[derive(Default)]
    struct Expect<'e> {
        canonical: Option<&'e str>,
        value_hash: Option<&'e str>,
        schema: Option<&'e str>,
        schema_hash: Option<&'e str>,
    }

    /// Checks decode + canonical text + hash form + both hashes, through the one-call path and the step-by-step
    /// path, and that the streamed and buffered hashes agree.
    #[track_caller]
    fn check(stored: &str, merges: &[(&str, Merge)], e: Expect<'_>) -> Schema {
        let v = value(stored);
        let (schema, hashes) = hash_payload(&v, merges);
        let decoded = decode(&v, merges);
        let canonical = canonical_of(&decoded);
        let hash_form = hash_form_of(&schema);
        if let Some(c) = e.canonical {
            assert_eq!(canonical, c, "canonical text of {stored}");
        }
        if let Some(s) = e.schema {
            assert_eq!(hash_form, s, "hash form of the schema of {stored}");
        }
        if let Some(h) = e.value_hash {
            assert_eq!(hashes.value_hash, h, "value hash of {stored}");
        }
        if let Some(h) = e.schema_hash {
            assert_eq!(hashes.schema_hash, h, "schema hash of {stored}");
        }
        assert_eq!(
            hashes.value_hash,
            json::hex_lower(&Sha256::digest(canonical.as_bytes()))
        );
        assert_eq!(
            hashes.schema_hash,
            json::hex_lower(&Sha256::digest(hash_form.as_bytes()))
        );
        let mut streamed = Sha256::new();
        decoded.write_canonical(&mut CanonicalWriter::new(), &mut streamed);
        assert_eq!(hashes.value_hash, json::hex_lower(&streamed.finalize()));
        assert_eq!(schema, infer(&decoded, merges));
        schema
    }

    #[track_caller]
    fn check_types(stored: &str, ty: JsonSchemaType) -> Schema {
        let s = infer_value(&value(stored));
        assert_eq!(s.r#type, ty as i32, "type of {stored}");
        s
    }

    fn is_hex64(s: &str) -> bool {
        s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    #[test]
    fn h1_scalar_and_empty_types() {
        for (text, ty) in [
            ("null", JsonSchemaType::Null),
            (r#""hello""#, JsonSchemaType::String),
            ("42", JsonSchemaType::Number),
            ("3.14", JsonSchemaType::Number),
            ("true", JsonSchemaType::Boolean),
            ("false", JsonSchemaType::Boolean),
            ("{}", JsonSchemaType::Object),
            ("[]", JsonSchemaType::OrderedList),
        ] {
            let s = check_types(text, ty);
            assert!(s.properties.is_empty(), "{text}");
            assert_eq!(s.items, None, "{text}");
            assert!(hash_form_of(&s).contains(r#""properties":{}"#), "{text}");
            assert!(file_form_of(&s).contains(r#""properties":{}"#), "{text}");
        }
        assert_eq!(
            hash_form_of(&infer_value(&value("[]"))),
            r#"{"properties":{},"type":7}"#
        );
    }

    #[test]
    fn h2_list_items() {
        for (text, ty) in [
            ("[1,2,3]", JsonSchemaType::Number),
            (r#"["a","b"]"#, JsonSchemaType::String),
        ] {
            let s = check_types(text, JsonSchemaType::OrderedList);
            assert_eq!(s.items.as_deref(), Some(&Schema::leaf(ty)), "{text}");
        }
        let s = check_types(r#"[{"id":1}]"#, JsonSchemaType::OrderedList);
        let items = s.items.as_deref().expect("items");
        assert_eq!(items.r#type, JsonSchemaType::Object as i32);
        assert_eq!(items.property("id"), Some(&Schema::leaf(JsonSchemaType::Number)));
        // Only the first element counts.
        let s = check_types(r#"["a",1,null]"#, JsonSchemaType::OrderedList);
        assert_eq!(s.items.as_deref(), Some(&Schema::leaf(JsonSchemaType::String)));
    }

    #[test]
    fn h3_objects() {
        let s = check_types(r#"{"name":"John","age":30}"#, JsonSchemaType::Object);
        let keys: Vec<&str> = s.properties.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["name", "age"]);
        assert_eq!(s.property("name"), Some(&Schema::leaf(JsonSchemaType::String)));
        assert_eq!(s.property("age"), Some(&Schema::leaf(JsonSchemaType::Number)));
        let s = check_types(r#"{"a":{"b":{"c":true}}}"#, JsonSchemaType::Object);
        let a = s.property("a").expect("a");
        let b = a.property("b").expect("b");
        assert_eq!(a.r#type, JsonSchemaType::Object as i32);
        assert_eq!(b.r#type, JsonSchemaType::Object as i32);
        assert_eq!(b.property("c"), Some(&Schema::leaf(JsonSchemaType::Boolean)));
    }

    #[test]
    fn h4_empty_containers() {
        let s = check_types(
            r#"{"emptyObj":{},"emptyArr":[],"items":[1,2,3]}"#,
            JsonSchemaType::Object,
        );
        assert_eq!(s.property("emptyObj"), Some(&Schema::leaf(JsonSchemaType::Object)));
        assert_eq!(s.property("emptyArr"), Some(&Schema::leaf(JsonSchemaType::OrderedList)));
        let items = s.property("items").expect("items");
        assert_eq!(items.r#type, JsonSchemaType::OrderedList as i32);
        assert_eq!(items.items.as_deref(), Some(&Schema::leaf(JsonSchemaType::Number)));
    }

    #[test]
    fn h5_base64_json_body() {
        // base64 of {"message": "Hello World"}
        let stored = r#"{"body":"eyJtZXNzYWdlIjogIkhlbGxvIFdvcmxkIn0=","header":"x"}"#;
        let s = check(
            stored,
            &[("body", BODY_JSON)],
            Expect {
                canonical: Some(r#"{"body":{"message":"Hello World"},"header":"x"}"#),
                ..Expect::default()
            },
        );
        let body = s.property("body").expect("body");
        assert_eq!(body.r#type, JsonSchemaType::Object as i32);
        assert_eq!(body.property("message"), Some(&Schema::leaf(JsonSchemaType::String)));
        assert_eq!(
            (body.encoding, body.decoded_type, body.match_importance),
            (Some(1), Some(1), None)
        );
        assert_eq!(s.property("header"), Some(&Schema::leaf(JsonSchemaType::String)));
    }

    #[test]
    fn h6_non_string_body_annotated_not_decoded() {
        let s = check(
            r#"{"body":{"body":"x"}}"#,
            &[("body", BODY_B64)],
            Expect {
                canonical: Some(r#"{"body":{"body":"x"}}"#),
                ..Expect::default()
            },
        );
        let outer = s.property("body").expect("outer");
        assert_eq!((outer.r#type, outer.encoding), (JsonSchemaType::Object as i32, Some(1)));
        assert_eq!(outer.property("body"), Some(&Schema::leaf(JsonSchemaType::String)));
    }

    #[test]
    fn h7_invalid_base64_left_unchanged() {
        let stored = r#"{"body":"invalid-base64!!!"}"#;
        let s = check(
            stored,
            &[("body", BODY_JSON)],
            Expect {
                canonical: Some(stored),
                ..Expect::default()
            },
        );
        let body = s.property("body").expect("body");
        assert_eq!(
            (body.r#type, body.encoding, body.decoded_type),
            (JsonSchemaType::String as i32, Some(1), Some(1))
        );
        assert!(decode(&value(stored), &[("body", BODY_JSON)]).overrides().is_empty());
    }

    #[test]
    fn h8_order_independent_and_value_sensitive() {
        let h = |t: &str| hash_payload(&value(t), &[]).1;
        let a = h(r#"{"b":2,"a":1}"#);
        assert_eq!(a, h(r#"{"a":1,"b":2}"#));
        assert_ne!(h(r#"{"a":1,"b":2}"#).value_hash, h(r#"{"a":1,"b":3}"#).value_hash);
        assert_eq!(h(r#"{"a":1,"b":2}"#).schema_hash, h(r#"{"a":1,"b":3}"#).schema_hash);
        assert!(is_hex64(&a.value_hash) && is_hex64(&a.schema_hash));
        let mut hasher = PayloadHasher::new();
        let v = value(r#"{"b":2,"a":1}"#);
        for _ in 0..3 {
            assert_eq!(hasher.hash_payload(&v, &[]).1, a);
        }
    }

    #[test]
    fn merges_that_differ_only_in_the_sign_of_zero_give_their_own_schemas() {
        let mut hasher = PayloadHasher::new();
        let v = value(r#"{"headers":{"a":"b"}}"#);
        let merge = |m: f64| Merge {
            match_importance: Some(m),
            ..Merge::default()
        };
        for importance in [-0.0, 0.0, -0.0, f64::NAN, 0.0, f64::NAN] {
            let merges = [("headers", merge(importance))];
            let (cached, hashes) = hasher.hash_payload(&v, &merges);
            let (fresh, fresh_hashes) = hash_payload(&v, &merges);
            assert_eq!(hashes, fresh_hashes, "{importance}");
            assert_eq!(cached.file_form(), file_form_of(&fresh).as_bytes(), "{importance}");
        }
    }

    #[test]
    fn a_large_decoded_body_does_not_stay_in_the_hasher() {
        let mut hasher = PayloadHasher::new();
        let big = format!(r#"{{"items":["{}"]}}"#, "x".repeat(4 * KEEP_TEXT_CAPACITY));
        let encoded = base64::engine::general_purpose::STANDARD.encode(&big);
        for merge in [BODY_JSON, BODY_B64] {
            let v = value(&format!(r#"{{"body":"{encoded}"}}"#));
            let _ = hasher.hash_payload(&v, &[("body", merge)]);
            assert!(hasher.decoded_text.capacity() <= KEEP_TEXT_CAPACITY, "{merge:?}");
            assert!(hasher.text.capacity() <= KEEP_TEXT_CAPACITY, "{merge:?}");
        }
    }

    #[test]
    fn a_known_body_hashes_as_decoding_its_base64_does() {
        let mut hasher = PayloadHasher::new();
        let bodies: [&[u8]; 5] = [
            b"",
            b"plain text",
            br#"{"id":1,"name":"x"}"#,
            b"\xff\xfeinvalid \xc3(",
            "ünï".as_bytes(),
        ];
        for raw in bodies {
            let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
            let v = value(&format!(
                r#"{{"headers":{{"a":"b"}},"body":"{encoded}","bodySize":{}}}"#,
                raw.len()
            ));
            for merges in [
                &[("headers", Merge::HEADERS), ("body", BODY_B64)][..],
                &[("body", BODY_JSON)],
            ] {
                let known = hasher.hash_payload_with_body(&v, merges, Some(raw));
                let decoded = hasher.hash_payload(&v, merges);
                assert_eq!(known, decoded, "{raw:?} {merges:?}");
                assert_eq!(known.1, PayloadHasher::new().hash_payload(&v, merges).1);
            }
        }
    }

    #[test]
    fn the_schema_cache_gives_what_inferring_afresh_gives() {
        let mut hasher = PayloadHasher::new();
        // Pairs that differ only where the fingerprint does not look (same key lengths and end bytes), in key
        // order only (same hash form, other file form), in number kind, in first array item, in merges, and in a
        // decoded body; then more distinct schemas than the cache holds.
        let body = |json: &str| {
            format!(
                r#"{{"body":"{}","headers":{{}}}}"#,
                base64::engine::general_purpose::STANDARD.encode(json)
            )
        };
        let mut docs: Vec<String> = [
            r#"{"kab":1}"#,
            r#"{"kbb":1}"#,
            r#"{"a":1,"b":"x"}"#,
            r#"{"b":"x","a":1}"#,
            r#"{"a":1.5}"#,
            r#"{"a":null}"#,
            r#"{"a":[]}"#,
            r#"{"a":[1]}"#,
            r#"{"a":["1"]}"#,
            r#"{"a":[[1],2]}"#,
            r#"{"a":{"x":{"y":true}}}"#,
            r#"{"a":{"x":{"y":"true"}}}"#,
            r#"[]"#,
            r#""s""#,
            r#"7"#,
        ]
        .map(str::to_owned)
        .to_vec();
        docs.push(body(r#"{"id":1}"#));
        docs.push(body(r#"{"id":"1"}"#));
        docs.push(body(r#"{"di":1}"#));
        docs.push(body("not json"));
        docs.extend((0..SCHEMA_CACHE_ENTRIES + 5).map(|i| format!(r#"{{"k{i}":{i}}}"#)));
        let merge_sets: [&[(&str, Merge)]; 4] = [
            &[],
            &[("headers", Merge::HEADERS)],
            &[("headers", Merge::HEADERS), ("body", BODY_B64)],
            &[("headers", Merge::HEADERS), ("body", BODY_JSON)],
        ];
        for round in 0..2 {
            for d in &docs {
                for merges in merge_sets {
                    let v = value(d);
                    let (cached, cached_hashes) = hasher.hash_payload(&v, merges);
                    let (fresh, fresh_hashes) = hash_payload(&v, merges);
                    assert_eq!(
                        (cached.tree(), &cached_hashes),
                        (&fresh, &fresh_hashes),
                        "{d} {merges:?} {round}"
                    );
                    assert_eq!(cached.file_form(), file_form_of(&fresh).as_bytes(), "{d} {merges:?}");
                }
            }
        }
        assert_eq!(hasher.schemas.len(), SCHEMA_CACHE_ENTRIES);
        // A hit shares the remembered schema.
        let v = value(r#"{"k0":0}"#);
        let first = hasher.hash_payload(&v, &[]).0;
        assert!(Arc::ptr_eq(&first, &hasher.hash_payload(&v, &[]).0));
    }

    #[test]
    fn h9_objects_in_arrays_sorted() {
        check(
            r#"[{"b":1,"a":2}]"#,
            &[],
            Expect {
                canonical: Some(r#"[{"a":2,"b":1}]"#),
                ..Expect::default()
            },
        );
    }

    #[test]
    fn h10_invalid_utf8_dropped() {
        check(
            r#"{"body":"//5B"}"#,
            &[("body", BODY_B64)],
            Expect {
                canonical: Some(r#"{"body":"A"}"#),
                value_hash: Some("a5fe5ace418a76fdbc413244e6a0a49447e76676ccc13fb61ee5bc23d43ff7b7"),
                schema_hash: Some("4893c083c9465b2a81e82eef22d5fd6cfa95099bd0aa5e59736d30dfe075016d"),
                ..Expect::default()
            },
        );
        assert_eq!(
            utf8_dropping_invalid(vec![0x41, 0xe2, 0x82, 0x42, 0xf0, 0x9f, 0x98, 0x80, 0xc0]),
            "AB😀"
        );
    }

    #[test]
    fn h11_json_body_numbers() {
        let body = base64::engine::general_purpose::STANDARD.encode("[1e400, 1E2, -0, 12345678901234567890123]");
        let s = check(
            &format!(r#"{{"body":"{body}"}}"#),
            &[("body", BODY_JSON)],
            Expect {
                canonical: Some(r#"{"body":[null,100.0,0,12345678901234567890123]}"#),
                ..Expect::default()
            },
        );
        let b = s.property("body").expect("body");
        assert_eq!(b.r#type, JsonSchemaType::OrderedList as i32);
        assert_eq!(b.items.as_deref(), Some(&Schema::leaf(JsonSchemaType::Null)));
    }

    #[test]
    fn h12_float_text() {
        // A body decoded as JSON (floats come only from parsed bodies).
        let body = base64::engine::general_purpose::STANDARD.encode("[1e-7, 1e-5, 1e16, 1.0, -0.0]");
        check(
            &format!(r#"{{"body":"{body}"}}"#),
            &[("body", BODY_JSON)],
            Expect {
                canonical: Some(r#"{"body":[1e-07,1e-05,1e+16,1.0,-0.0]}"#),
                ..Expect::default()
            },
        );
    }

    #[test]
    fn h13_optional_keys() {
        let s = infer_value(&value(r#"{"a":[]}"#));
        for text in [hash_form_of(&s), file_form_of(&s)] {
            for key in [
                "items",
                "encoding",
                "decoded_type",
                "decodedType",
                "match_importance",
                "matchImportance",
            ] {
                assert!(!text.contains(key), "{key} in {text}");
            }
        }
        let s = infer(
            &decode(&value(r#"{"body":"e30="}"#), &[("body", BODY_JSON)]),
            &[("body", BODY_JSON)],
        );
        assert_eq!(
            hash_form_of(&s),
            r#"{"properties":{"body":{"decoded_type":1,"encoding":1,"properties":{},"type":6}},"type":6}"#
        );
        assert_eq!(
            file_form_of(&s),
            r#"{"type":6,"properties":{"body":{"type":6,"properties":{},"encoding":1,"decodedType":1}}}"#
        );
    }

    #[test]
    fn h14_depth_limit_under_decoded_type_json() {
        for (levels, parsed) in [(127, true), (128, false)] {
            let text = format!("{}{}", "[".repeat(levels), "]".repeat(levels));
            let body = base64::engine::general_purpose::STANDARD.encode(&text);
            let v = value(&format!(r#"{{"body":"{body}"}}"#));
            let (schema, hashes) = hash_payload(&v, &[("body", BODY_JSON)]);
            let b = schema.property("body").expect("body");
            let expected = if parsed {
                JsonSchemaType::OrderedList
            } else {
                JsonSchemaType::String
            };
            assert_eq!(b.r#type, expected as i32, "{levels} levels");
            let decoded = decode(&v, &[("body", BODY_JSON)]);
            if !parsed {
                assert_eq!(decoded.get("body"), Some(&Value::String(text)));
            }
            assert!(is_hex64(&hashes.value_hash));
        }
    }

    #[test]
    fn decoding_rules() {
        let merges = [("body", BODY_JSON), ("missing", BODY_B64)];
        // Invalid JSON text is kept as text.
        let v = value(r#"{"body":"TmFO"}"#); // "NaN"
        assert_eq!(decode(&v, &merges).get("body"), Some(&Value::from("NaN")));
        // decoded_type without encoding parses the string as it is.
        let m = Merge {
            decoded_type: Some(1),
            ..Merge::default()
        };
        let v = value(r#"{"body":"{\"a\":1}"}"#);
        assert_eq!(decode(&v, &[("body", m)]).to_value(), value(r#"{"body":{"a":1}}"#));
        // Other decoded types leave the text alone; non-canonical base64 is rejected (strict).
        let v = value(r#"{"body":"e30=","x":"e30"}"#);
        let html = Merge::base64_body(Some(2));
        assert_eq!(
            decode(&v, &[("body", html), ("x", BODY_B64)]).to_value(),
            value(r#"{"body":"{}","x":"e30"}"#)
        );
        assert_eq!(decode(&value(r#"{"b":"e30=\n"}"#), &[("b", BODY_B64)]).overrides(), &[]);
        assert_eq!(decode(&value(r#"{"b":"e3-="}"#), &[("b", BODY_B64)]).overrides(), &[]);
        // Merges act only on the top level of an object.
        let v = value(r#"["e30="]"#);
        assert!(decode(&v, &[("body", BODY_JSON)]).overrides().is_empty());
        let v = value(r#"{"a":{"body":"e30="}}"#);
        assert_eq!(decode(&v, &[("body", BODY_JSON)]).to_value(), v);
        // The empty body decodes to the empty text.
        assert_eq!(
            decode(&value(r#"{"body":""}"#), &[("body", BODY_B64)]).get("body"),
            Some(&Value::from(""))
        );
        // A merge on a non-object value is ignored, also for annotations.
        assert_eq!(
            infer(&decode(&Value::Null, &merges), &merges),
            Schema::leaf(JsonSchemaType::Null)
        );
    }

    #[test]
    fn vector_17_1_drift_core_basic() {
        check(
            r#"{"request":{"method":"GET","url":"https://api.example.com/v1/users","headers":{"accept":"application/json","x-debug":null}},"response":{"status":200,"body":{"id":123,"active":true}}}"#,
            &[],
            Expect {
                canonical: Some(
                    r#"{"request":{"headers":{"accept":"application/json","x-debug":null},"method":"GET","url":"https://api.example.com/v1/users"},"response":{"body":{"active":true,"id":123},"status":200}}"#,
                ),
                value_hash: Some("4a0c5cd36561536543d96e6407ddd6cc4d4bfdf3b2c541cab1834cc9e4586bba"),
                schema: Some(
                    r#"{"properties":{"request":{"properties":{"headers":{"properties":{"accept":{"properties":{},"type":2},"x-debug":{"properties":{},"type":4}},"type":6},"method":{"properties":{},"type":2},"url":{"properties":{},"type":2}},"type":6},"response":{"properties":{"body":{"properties":{"active":{"properties":{},"type":3},"id":{"properties":{},"type":1}},"type":6},"status":{"properties":{},"type":1}},"type":6}},"type":6}"#,
                ),
                schema_hash: Some("427ba2de100fd8919ca06dcb571648ff15fb020d25ec0f5cf16dd2a14d7235fa"),
            },
        );
    }

    #[test]
    fn vectors_17_2_small_values() {
        let rows: [(&str, &str, &str, &str, &str); 8] = [
            (
                r#"{"method":"GET","path":"/health"}"#,
                r#"{"method":"GET","path":"/health"}"#,
                r#"{"properties":{"method":{"properties":{},"type":2},"path":{"properties":{},"type":2}},"type":6}"#,
                "af107d11cbefff330046780718b24c937755892d5527b8080daa1d22805b7bcf",
                "b24524cedc9ed6863c9b27822cd1e2eb000e4c0a0781d926a7008d4f18821ade",
            ),
            (
                r#"{"status_code":200}"#,
                r#"{"status_code":200}"#,
                r#"{"properties":{"status_code":{"properties":{},"type":1}},"type":6}"#,
                "95c66aad9825838792f57119a9d1cef7825edfcadb8fd033e25f991cce224020",
                "eab8170d95575203dbb5973566c4021df2b7c8d2befd1e92faf14c7771723f88",
            ),
            (
                "{}",
                "{}",
                r#"{"properties":{},"type":6}"#,
                "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a",
                "ab249fbec6dbf0d17e3d2eae4ede338e9d8b20f6f442559935a494a5ad09f9a5",
            ),
            (
                r#"{"a":1}"#,
                r#"{"a":1}"#,
                r#"{"properties":{"a":{"properties":{},"type":1}},"type":6}"#,
                "015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862",
                "c55ab3b6e544e3b8a31cc19969c1d1ac0160ebc7cb202f27edafdb84a8dfff45",
            ),
            (
                r#"{"a":1.0}"#,
                r#"{"a":1.0}"#,
                r#"{"properties":{"a":{"properties":{},"type":1}},"type":6}"#,
                "c29a44abc114a1d75486434c013102c9e736f526b4fd19658d9492b7b224de6d",
                "c55ab3b6e544e3b8a31cc19969c1d1ac0160ebc7cb202f27edafdb84a8dfff45",
            ),
            (
                "null",
                "null",
                r#"{"properties":{},"type":4}"#,
                "74234e98afe7498fb5daf1f36ac2d78acc339464f950703b8c019892f982b90b",
                "dcfc8a68a8a661df939bbb72351a0e53cd0af8b5d6f9c86601e31d808a96ad76",
            ),
            (
                "[1,2]",
                "[1,2]",
                r#"{"items":{"properties":{},"type":1},"properties":{},"type":7}"#,
                "49a64717d5d4cb19952e6eac2946415cf6879adacf9908e7d872332d32c6e684",
                "73d5666c431b87ce1c58b76bcc7b9a6281fdf12526e224ae0d6d454153ba5da3",
            ),
            (
                r#""x""#,
                r#""x""#,
                r#"{"properties":{},"type":2}"#,
                "ba2df4903a2c14e86dc3bcca58911b44ac1d2514b7227bf6eb08cfb978f55a1b",
                "5851290bc8496bfea1a61495229b10ea5a6217a07b6b19660f199e8b8e661523",
            ),
        ];
        for (stored, canonical, schema, value_hash, schema_hash) in rows {
            check(
                stored,
                &[],
                Expect {
                    canonical: Some(canonical),
                    value_hash: Some(value_hash),
                    schema: Some(schema),
                    schema_hash: Some(schema_hash),
                },
            );
        }
    }

    #[test]
    fn vector_17_4_1_server_get_input() {
        check(
            r#"{"method":"GET","url":"http://127.0.0.1:5000/api/simple","target":"/api/simple","headers":{"Host":"127.0.0.1:5000","User-Agent":"python-requests/2.32.3","Accept-Encoding":"gzip, deflate","Accept":"*/*","Connection":"keep-alive"},"httpVersion":"1.1","remoteAddress":"127.0.0.1","remotePort":54321}"#,
            &[("headers", Merge::HEADERS)],
            Expect {
                canonical: Some(
                    r#"{"headers":{"Accept":"*/*","Accept-Encoding":"gzip, deflate","Connection":"keep-alive","Host":"127.0.0.1:5000","User-Agent":"python-requests/2.32.3"},"httpVersion":"1.1","method":"GET","remoteAddress":"127.0.0.1","remotePort":54321,"target":"/api/simple","url":"http://127.0.0.1:5000/api/simple"}"#,
                ),
                value_hash: Some("2d0b79c83e93f93b1bb0d12e66d26386009c8aa0d881159be7a97d7c4a0f642c"),
                schema: Some(
                    r#"{"properties":{"headers":{"match_importance":0.0,"properties":{"Accept":{"properties":{},"type":2},"Accept-Encoding":{"properties":{},"type":2},"Connection":{"properties":{},"type":2},"Host":{"properties":{},"type":2},"User-Agent":{"properties":{},"type":2}},"type":6},"httpVersion":{"properties":{},"type":2},"method":{"properties":{},"type":2},"remoteAddress":{"properties":{},"type":2},"remotePort":{"properties":{},"type":1},"target":{"properties":{},"type":2},"url":{"properties":{},"type":2}},"type":6}"#,
                ),
                schema_hash: Some("e40f264f18a889c5688b26c27156e9d74ea228e27ca834ad3eee0f1879fa435b"),
            },
        );
    }

    #[test]
    fn vector_17_4_2_server_output() {
        let s = check(
            r#"{"statusCode":200,"statusMessage":"OK","headers":{"Content-Type":"application/json","Content-Length":"54"},"body":"eyJtZXNzYWdlIjogIkhlbGxvIFdvcmxkIiwgInRpbWVzdGFtcCI6IDE3MDAwMDAwMDAwMDB9","bodySize":54}"#,
            &[("headers", Merge::HEADERS), ("body", BODY_B64)],
            Expect {
                canonical: Some(
                    r#"{"body":"{\"message\": \"Hello World\", \"timestamp\": 1700000000000}","bodySize":54,"headers":{"Content-Length":"54","Content-Type":"application/json"},"statusCode":200,"statusMessage":"OK"}"#,
                ),
                value_hash: Some("0fe765fa61447d1632495b2f24d8b4c8c11533f72bfc7e530e472975f8139026"),
                schema: Some(
                    r#"{"properties":{"body":{"encoding":1,"properties":{},"type":2},"bodySize":{"properties":{},"type":1},"headers":{"match_importance":0.0,"properties":{"Content-Length":{"properties":{},"type":2},"Content-Type":{"properties":{},"type":2}},"type":6},"statusCode":{"properties":{},"type":1},"statusMessage":{"properties":{},"type":2}},"type":6}"#,
                ),
                schema_hash: Some("3ac9963ed134d812f048189e821b490a979462988c3f2de2c6c030c00568d3e8"),
            },
        );
        assert!(file_form_of(&s).contains(r#""matchImportance":0.0"#));
    }

    #[test]
    fn example_6_4_client_output_of_5_6() {
        let stored = r#"{"statusCode":200,"statusMessage":"OK","headers":{"content-type":"application/json","content-length":"18"},"body":"eyJpZCI6Nywib2siOnRydWV9","bodySize":18}"#;
        let merges = [("headers", Merge::HEADERS), ("body", BODY_JSON)];
        let s = check(
            stored,
            &merges,
            Expect {
                canonical: Some(
                    r#"{"body":{"id":7,"ok":true},"bodySize":18,"headers":{"content-length":"18","content-type":"application/json"},"statusCode":200,"statusMessage":"OK"}"#,
                ),
                schema: Some(
                    r#"{"properties":{"body":{"decoded_type":1,"encoding":1,"properties":{"id":{"properties":{},"type":1},"ok":{"properties":{},"type":3}},"type":6},"bodySize":{"properties":{},"type":1},"headers":{"match_importance":0.0,"properties":{"content-length":{"properties":{},"type":2},"content-type":{"properties":{},"type":2}},"type":6},"statusCode":{"properties":{},"type":1},"statusMessage":{"properties":{},"type":2}},"type":6}"#,
                ),
                ..Expect::default()
            },
        );
        assert_eq!(
            file_form_of(s.property("body").expect("body")),
            r#"{"type":6,"properties":{"id":{"type":1,"properties":{}},"ok":{"type":3,"properties":{}}},"encoding":1,"decodedType":1}"#
        );
        assert_eq!(
            file_form_of(&s),
            r#"{"type":6,"properties":{"statusCode":{"type":1,"properties":{}},"statusMessage":{"type":2,"properties":{}},"headers":{"type":6,"properties":{"content-type":{"type":2,"properties":{}},"content-length":{"type":2,"properties":{}}},"matchImportance":0.0},"body":{"type":6,"properties":{"id":{"type":1,"properties":{}},"ok":{"type":3,"properties":{}}},"encoding":1,"decodedType":1},"bodySize":{"type":1,"properties":{}}}}"#
        );
    }

    /// The §8.4 line: stored values, merges of §4.4, and the four hashes and two file-form schemas it carries.
    const LINE_8_4_INPUT: &str = r#"{"method":"GET","url":"http://127.0.0.1:5000/api/simple","target":"/api/simple","headers":{"host":"127.0.0.1:5000","user-agent":"drift-bench/0.1","accept":"*/*"},"httpVersion":"1.1","remoteAddress":"127.0.0.1","remotePort":54321}"#;
    const LINE_8_4_OUTPUT: &str = r#"{"statusCode":200,"statusMessage":"OK","headers":{"content-type":"application/json"},"body":"eyJtZXNzYWdlIjoiSGVsbG8gV29ybGQiLCJ0aW1lc3RhbXAiOjE3MDAwMDAwMDAwMDB9","bodySize":51}"#;

    /// Server merges of §4.4: `headers` always, `body` when the value has one.
    fn server_merges(v: &Value) -> Vec<(&'static str, Merge)> {
        let mut m = vec![("headers", Merge::HEADERS)];
        if v.as_object().is_some_and(|o| o.contains_key("body")) {
            m.push(("body", BODY_B64));
        }
        m
    }

    #[test]
    fn line_8_4_hashes_and_schemas() {
        let input = value(LINE_8_4_INPUT);
        let output = value(LINE_8_4_OUTPUT);
        let (in_schema, in_hashes) = hash_payload(&input, &server_merges(&input));
        let (out_schema, out_hashes) = hash_payload(&output, &server_merges(&output));
        assert_eq!(
            in_hashes.schema_hash,
            "4380527cd78ea8e920017ec22596e39dda3d9cc23b9758d0dd9d93793a782ccc"
        );
        assert_eq!(
            out_hashes.schema_hash,
            "fd75f20ce5f9a73714c5d8f9b38c9b2b17df44429f04562b20e66f2750b05489"
        );
        assert_eq!(
            in_hashes.value_hash,
            "9336334e1160b5974b1e1d6251b4195d24ba859d350e7c2d05c5b74e0d3df456"
        );
        assert_eq!(
            out_hashes.value_hash,
            "ba57da513cea26d9118cbf34094ba28d545657c0f61e60d4d73947bdaece1e88"
        );
        assert_eq!(
            file_form_of(&in_schema),
            r#"{"type":6,"properties":{"method":{"type":2,"properties":{}},"url":{"type":2,"properties":{}},"target":{"type":2,"properties":{}},"headers":{"type":6,"properties":{"host":{"type":2,"properties":{}},"user-agent":{"type":2,"properties":{}},"accept":{"type":2,"properties":{}}},"matchImportance":0.0},"httpVersion":{"type":2,"properties":{}},"remoteAddress":{"type":2,"properties":{}},"remotePort":{"type":1,"properties":{}}}}"#
        );
        assert_eq!(
            file_form_of(&out_schema),
            r#"{"type":6,"properties":{"statusCode":{"type":1,"properties":{}},"statusMessage":{"type":2,"properties":{}},"headers":{"type":6,"properties":{"content-type":{"type":2,"properties":{}}},"matchImportance":0.0},"body":{"type":2,"properties":{},"encoding":1},"bodySize":{"type":1,"properties":{}}}}"#
        );
        // The stored values round-trip through the compact writer unchanged (the line's own text).
        for (v, text) in [(&input, LINE_8_4_INPUT), (&output, LINE_8_4_OUTPUT)] {
            let mut out = Vec::new();
            json::write_compact(v, &mut out);
            assert_eq!(utf8(out), text);
        }
    }

    #[test]
    fn l1_size_estimate_of_empty_payloads() {
        let empty = Value::Object(Object::new());
        assert_eq!(
            json::python_dumps_len(&empty) + json::python_dumps_len(&empty) + 51200,
            51200
        );
    }

    #[test]
    fn proto_schema() {
        // P2: OBJECT {name: STRING, count: NUMBER}.
        let p = to_proto(&infer_value(&value(r#"{"name":"x","count":1}"#)));
        assert_eq!(p.r#type, 6);
        assert_eq!(p.properties["name"].r#type, 2);
        assert_eq!(p.properties["count"].r#type, 1);
        assert_eq!(
            (p.items, p.encoding, p.decoded_type, p.match_importance),
            (None, None, None, None)
        );
        let output = value(LINE_8_4_OUTPUT);
        let (s, _) = hash_payload(&output, &server_merges(&output));
        let p = to_proto(&s);
        assert_eq!(p.properties["headers"].match_importance, Some(0.0));
        assert_eq!(p.properties["body"].encoding, Some(1));
        assert_eq!(p.properties["body"].decoded_type, None);
        let p = to_proto(&infer_value(&value("[[true]]")));
        let inner = p.items.as_deref().expect("items");
        assert_eq!((p.r#type, inner.r#type), (7, 7));
        assert_eq!(inner.items.as_deref().map(|s| s.r#type), Some(3));
    }

    #[test]
    fn cross_check_against_serde_json() {
        // Independent check of parse + canonical text on documents without floats (serde_json's float text differs,
        // §7.5) or integers beyond i64 (serde_json without arbitrary_precision reads them as floats; H11 covers
        // them); keys sorted by hand.
        fn sorted(v: serde_json::Value) -> serde_json::Value {
            match v {
                serde_json::Value::Object(m) => {
                    let mut entries: Vec<_> = m.into_iter().collect();
                    entries.sort_by(|a, b| a.0.cmp(&b.0));
                    serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
                }
                serde_json::Value::Array(a) => serde_json::Value::Array(a.into_iter().map(sorted).collect()),
                other => other,
            }
        }
        let docs = [
            LINE_8_4_INPUT,
            LINE_8_4_OUTPUT,
            r#"{"z":[{"é":"\u0001\t\"","a":-1234567890123456789},{}],"\u00e9x":null,"":true,"y😀":"/\u007f"}"#,
            r#"[[[],{}],{"b":{"d":1,"c":[false,"x"]},"a":0}]"#,
        ];
        for doc in docs {
            let expected =
                serde_json::to_string(&sorted(serde_json::from_str(doc).expect("serde parses"))).expect("ser");
            let mut out = Vec::new();
            write_canonical(&value(doc), &mut out);
            assert_eq!(utf8(out), expected, "{doc}");
        }
    }
}
