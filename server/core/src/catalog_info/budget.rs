//! The bound on what a descriptor's YAML expands to, checked before it is read.

use std::fmt;

use super::MAX_BYTES;

/// The most nodes and scalar bytes a file may expand to. YAML aliases (`*a`) repeat what
/// their anchor holds, so a few kilobytes can stand for gigabytes: the file is walked
/// once counting, without building anything, and refused past these bounds before it is
/// read for real.
pub const MAX_EXPANDED_NODES: usize = 200_000;
pub const MAX_EXPANDED_BYTES: usize = 4 * MAX_BYTES;

/// Walks a value counting its nodes and scalar bytes, failing once past the budget.
/// Hand-written because no YAML crate offers an expansion limit (serde_yaml_ng bounds
/// only the number of alias events, not what they expand to).
pub(super) struct Budget<'a> {
    pub(super) nodes: &'a mut usize,
    pub(super) bytes: &'a mut usize,
}

impl Budget<'_> {
    fn spend<E: serde::de::Error>(&mut self, bytes: usize) -> Result<(), E> {
        *self.nodes += 1;
        *self.bytes += bytes;
        if *self.nodes > MAX_EXPANDED_NODES || *self.bytes > MAX_EXPANDED_BYTES {
            return Err(E::custom("expands to more than a descriptor can hold (YAML aliases?)"));
        }
        Ok(())
    }
}

impl<'de> serde::de::DeserializeSeed<'de> for Budget<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for Budget<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: serde::de::Error>(mut self, _: bool) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_i64<E: serde::de::Error>(mut self, _: i64) -> Result<(), E> {
        self.spend(8)
    }
    fn visit_u64<E: serde::de::Error>(mut self, _: u64) -> Result<(), E> {
        self.spend(8)
    }
    fn visit_f64<E: serde::de::Error>(mut self, _: f64) -> Result<(), E> {
        self.spend(8)
    }
    fn visit_str<E: serde::de::Error>(mut self, v: &str) -> Result<(), E> {
        self.spend(v.len())
    }
    fn visit_unit<E: serde::de::Error>(mut self) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_none<E: serde::de::Error>(mut self) -> Result<(), E> {
        self.spend(1)
    }
    fn visit_some<D: serde::Deserializer<'de>>(mut self, d: D) -> Result<(), D::Error> {
        self.spend(1)?;
        serde::de::DeserializeSeed::deserialize(self, d)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        self.spend(1)?;
        while seq.next_element_seed(Budget { nodes: self.nodes, bytes: self.bytes })?.is_some() {}
        Ok(())
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        self.spend(1)?;
        while map.next_key_seed(Budget { nodes: self.nodes, bytes: self.bytes })?.is_some() {
            map.next_value_seed(Budget { nodes: self.nodes, bytes: self.bytes })?;
        }
        Ok(())
    }
    fn visit_enum<A: serde::de::EnumAccess<'de>>(mut self, _: A) -> Result<(), A::Error> {
        // A YAML tag (`!x`); not something a descriptor has.
        self.spend(1)?;
        Err(serde::de::Error::custom("YAML tags are not allowed in descriptors"))
    }
}
