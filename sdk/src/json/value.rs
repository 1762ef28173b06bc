//! The JSON value the SDK stores, decodes and hashes.
//!
//! Unlike `serde_json::Value` it keeps integers of any size exactly (Python `json.loads` does), keeps the key order
//! of objects as built or parsed (the file form writes keys in a fixed order; canonical text sorts them when it is
//! written), and cannot hold a non-finite float (§7.4 of the format: those become `null`).

/// A JSON value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer that fits in `i64`.
    Int(i64),
    /// An integer that does not fit in `i64`, as its decimal text: optional `-`, then digits with no leading zero.
    BigInt(Box<str>),
    /// A finite float. Build it with [`Value::float`], which maps non-finite values to [`Value::Null`].
    Float(f64),
    /// A string.
    String(String),
    /// An array, order kept.
    Array(Vec<Value>),
    /// An object, keys unique, in insertion order.
    Object(Object),
}

impl Value {
    /// A float value; `NaN` and infinities become `null` (§7.4).
    pub fn float(v: f64) -> Value {
        if v.is_finite() { Value::Float(v) } else { Value::Null }
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The object, if this is one.
    pub fn as_object(&self) -> Option<&Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }

    /// The object, mutably, if this is one.
    pub fn as_object_mut(&mut self) -> Option<&mut Object> {
        match self {
            Value::Object(o) => Some(o),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::String(s)
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Value {
        Value::Int(v)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Bool(v)
    }
}

impl From<Object> for Value {
    fn from(o: Object) -> Value {
        Value::Object(o)
    }
}

/// A JSON object: unique keys in insertion order.
///
/// Inserting a key that exists replaces its value **at the first key's position**, which is what Python's `dict`
/// does with duplicate keys in `json.loads` (the last value wins, the first position stays).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Object {
    entries: Vec<(Key, Value)>,
}

/// An object key. The SDK's own keys (`method`, `headers`, common header names, …) are `'static` and cost no
/// allocation; keys from parsed or captured data are owned.
pub type Key = std::borrow::Cow<'static, str>;

impl Object {
    /// An empty object.
    pub fn new() -> Object {
        Object { entries: Vec::new() }
    }

    /// An empty object with room for `n` entries.
    pub fn with_capacity(n: usize) -> Object {
        Object {
            entries: Vec::with_capacity(n),
        }
    }

    /// Sets `key` to `value`: replaces in place when the key exists, appends otherwise.
    pub fn insert(&mut self, key: impl Into<Key>, value: impl Into<Value>) {
        let key = key.into();
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    /// Appends an entry without looking for an existing key. The caller guarantees the key is new.
    pub fn push_unique(&mut self, key: impl Into<Key>, value: impl Into<Value>) {
        self.entries.push((key.into(), value.into()));
    }

    /// The value of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The value of `key`, mutably.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.entries.iter_mut().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Removes `key`, keeping the order of the others.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let i = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(i).1)
    }

    /// The entries in insertion order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &Value)> {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v))
    }

    /// The entries in insertion order, values mutable.
    pub fn iter_mut(&mut self) -> impl ExactSizeIterator<Item = (&str, &mut Value)> {
        self.entries.iter_mut().map(|(k, v)| (&**k, v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl<K: Into<Key>> FromIterator<(K, Value)> for Object {
    fn from_iter<I: IntoIterator<Item = (K, Value)>>(iter: I) -> Object {
        let mut o = Object::new();
        for (k, v) in iter {
            o.insert(k, v);
        }
        o
    }
}

impl Object {
    /// The entries in insertion order, as a slice (for index-based walks such as the canonical writer's key sort).
    pub fn entries(&self) -> &[(Key, Value)] {
        &self.entries
    }
}
